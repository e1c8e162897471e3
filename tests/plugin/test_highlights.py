"""The output's highlighting: its own filetype, the markdown of the rows a window draws
(highlights.lua's decoration provider, markdown.lua), nothing drawn as an error on normal
output, and the option that hands the buffer to markdown instead.

What is drawn is read back from the screen grid (`nvim__inspect_cell`) after giving every group
of interest a colour of its own, so the tests see the groups a user sees, not the code's idea
of them."""
from test_buffer import open_task, write

OURS = [
    "ClaudeTasksHeader",
    "ClaudeTasksFooter",
    "ClaudeTasksTool",
    "ClaudeTasksToolResult",
    "ClaudeTasksError",
    "ClaudeTasksCompleted",
    "ClaudeTasksFailed",
    "ClaudeTasksHeading",
    "ClaudeTasksCode",
    "ClaudeTasksCodeFence",
    "ClaudeTasksCodeSpan",
    "ClaudeTasksStrong",
    "ClaudeTasksEmphasis",
    "ClaudeTasksQuote",
    "ClaudeTasksListMarker",
    "ClaudeTasksRule",
    "ClaudeTasksLink",
    "ClaudeTasksUrl",
]
ERRORS = ["Error", "ErrorMsg", "DiagnosticError", "markdownError", "ClaudeTasksError",
          "ClaudeTasksFailed"]

PAINT = """
local by_fg = {}
for i, g in ipairs({ ... }) do
  vim.api.nvim_set_hl(0, g, { fg = 0x100000 + i })
  by_fg[0x100000 + i] = g
end
_G.__by_fg = by_fg
"""

READ = """
local win = ...
local pos = vim.fn.win_screenpos(win)
local out = {}
for r = 0, vim.api.nvim_win_get_height(win) - 1 do
  local cells = {}
  for c = 0, vim.api.nvim_win_get_width(win) - 1 do
    local cell = vim.api.nvim__inspect_cell(1, pos[1] - 1 + r, pos[2] - 1 + c)
    cells[#cells + 1] = { cell[1], _G.__by_fg[cell[2].foreground] or "" }
  end
  out[#out + 1] = cells
end
return out
"""


def screen(child, win, groups=OURS + ERRORS):
    """The window's rows as (text, [(run text, group), ...]), trailing blanks dropped. Each
    group in `groups` gets a colour of its own first."""
    child.lua(PAINT, *groups)
    # Neovim numbers its highlight attributes anew on the first nvim__inspect_cell (it starts
    # keeping their stacks): cells drawn before it would read as other attributes.
    child.lua("vim.api.nvim__inspect_cell(1, 0, 0)")
    child.nvim.command("redraw!")
    rows = []
    for cells in child.lua(READ, win):
        text = "".join(c[0] for c in cells).rstrip()
        runs = []
        for ch, group in cells[: len(text)]:
            if runs and runs[-1][1] == group:
                runs[-1][0] += ch
            else:
                runs.append([ch, group])
        rows.append((text, [(t, g) for t, g in runs if g]))
    return rows


def row_of(rows, line):
    for text, runs in rows:
        if text == line:
            return runs
    raise AssertionError("%r is not on the screen:\n%s" % (line, "\n".join(t for t, _ in rows)))


def shown_task(child, lines, height=40):
    """A task buffer holding `lines`, shown in a window of `height` rows (no wrapping), the
    screen wide enough for every line."""
    # The window gets the lines but the command line and the status line.
    child.lua("vim.o.columns = 140; vim.o.lines = %d" % (height + 2))
    buf = open_task(child)
    win = child.lua("return vim.api.nvim_get_current_win()")
    child.lua("vim.cmd('only'); vim.wo.wrap = false")
    write(child, buf, 0, lines)
    return buf, win


HEADER = ["# #1 demo", "cwd: ~/proj · started 12:00", ""]


def test_markdown_is_drawn_with_its_groups_on_the_right_lines(child):
    lines = HEADER + [
        "## Plan",
        "Some **strong** words, an *emphasis*, `a_code span` and a [link](https://x.io/a).",
        "- first item",
        "  2. nested item",
        "> quoted line",
        "---",
        "```lua",
        "local x = require('y') -- **not strong**",
        "```",
        "See https://example.com/page.",
        "",
        "● Bash(npm test)",
        "  ⎿ ok",
        "",
        "✓ done in 1.0s · 1 turn · $0.0100",
    ]
    _, win = shown_task(child, lines)
    rows = screen(child, win)
    assert row_of(rows, "# #1 demo") == [("# #1 demo", "ClaudeTasksHeader")]
    assert row_of(rows, "## Plan") == [("## Plan", "ClaudeTasksHeading")]
    assert row_of(rows, lines[4]) == [
        ("**strong**", "ClaudeTasksStrong"),
        ("*emphasis*", "ClaudeTasksEmphasis"),
        ("`a_code span`", "ClaudeTasksCodeSpan"),
        ("[link]", "ClaudeTasksLink"),
        ("https://x.io/a", "ClaudeTasksUrl"),
    ]
    assert row_of(rows, "- first item") == [("-", "ClaudeTasksListMarker")]
    assert row_of(rows, "  2. nested item") == [("2.", "ClaudeTasksListMarker")]
    assert row_of(rows, "> quoted line") == [("> quoted line", "ClaudeTasksQuote")]
    assert row_of(rows, "---") == [("---", "ClaudeTasksRule")]
    assert row_of(rows, "```lua") == [("```lua", "ClaudeTasksCodeFence")]
    # Inside a fence everything is code: no strong, no URL.
    code = "local x = require('y') -- **not strong**"
    assert row_of(rows, code) == [(code, "ClaudeTasksCode")]
    assert row_of(rows, "```") == [("```", "ClaudeTasksCodeFence")]
    # A sentence's full stop is not part of its URL.
    assert row_of(rows, "See https://example.com/page.") == [
        ("https://example.com/page", "ClaudeTasksUrl")
    ]
    assert row_of(rows, "● Bash(npm test)") == [("● Bash(npm test)", "ClaudeTasksTool")]
    assert row_of(rows, "  ⎿ ok") == [("  ⎿ ok", "ClaudeTasksToolResult")]
    assert row_of(rows, lines[-1]) == [(lines[-1], "ClaudeTasksCompleted")]


NORMAL_OUTPUT = [
    "I renamed parse_line_fast to parse_line and kept __init__ and _private_helper.",
    "The file src/my_module/some_file.rs has snake_case_names everywhere: a_b_c, _x_, __y__.",
    "Unmatched markers stay text: 2 * 3 = 6, a * b, *not closed, **neither, ` stray tick.",
    "Angle brackets and such: <div class=x>, 1 < 2 > 0, $HOME, 100% & more | pipes | here.",
    "    indented four spaces: not a code block here",
    "  ⎿ total 0",
    "    -rw-r--r-- 1 user user 0 my_file_name.txt",
]


def test_23_09_normal_output_is_never_drawn_as_an_error(child):
    # Issue 23 item 9: markdown's syntax drew snake_case underscores as errors (red).
    lines = HEADER + NORMAL_OUTPUT + ["", "✓ done in 1.0s · 1 turn · $0.0100"]
    buf, win = shown_task(child, lines)
    for text, runs in screen(child, win):
        if text in NORMAL_OUTPUT:
            assert [g for _, g in runs if g in ERRORS] == [], (text, runs)
            # And no emphasis or strong from underscores or unmatched stars.
            assert [g for _, g in runs if g in ("ClaudeTasksEmphasis", "ClaudeTasksStrong")] == []
    # The check sees errors where they are drawn: markdown's own syntax marks the same lines.
    child.lua("vim.cmd('syntax on'); vim.bo[...].filetype = 'markdown'", buf)
    rows = screen(child, win)
    assert any(g == "markdownError" for _, g in row_of(rows, NORMAL_OUTPUT[0]))


def code_rows(rows, prefix):
    """Whether each screen row starting with `prefix` is drawn as code."""
    return [runs == [(text, "ClaudeTasksCode")] for text, runs in rows if text.startswith(prefix)]


def test_a_code_block_opened_above_the_window_is_still_code(child):
    code = ["x_%03d = 1  # code" % i for i in range(120)]
    lines = HEADER + ["Text before.", "```python"] + code + ["```", "after the block"]
    _, win = shown_task(child, lines, height=20)
    # The window's top is in the middle of the block: its fence is 60 rows above.
    child.lua("vim.api.nvim_win_set_cursor(0, { 66, 0 }); vim.cmd('normal! zt')")
    rows = screen(child, win)
    assert all(code_rows(rows, "x_")) and len(code_rows(rows, "x_")) == 20
    # The block ends at its closing fence.
    child.lua("vim.cmd('normal! G')")
    rows = screen(child, win)
    assert row_of(rows, "after the block") == []
    assert all(code_rows(rows, "x_"))


def test_a_block_of_ours_ends_an_unclosed_fence(child):
    lines = HEADER + ["```sh", "echo unclosed", "", "● Bash(ls)", "  ⎿ a_b", "", "After the tool."]
    _, win = shown_task(child, lines)
    rows = screen(child, win)
    assert row_of(rows, "echo unclosed") == [("echo unclosed", "ClaudeTasksCode")]
    assert row_of(rows, "● Bash(ls)") == [("● Bash(ls)", "ClaudeTasksTool")]
    assert row_of(rows, "After the tool.") == []
    # The same when the window's top comes past the tool line: from the fence state kept at
    # the last top row (inside the fence), read forward over the tool line.
    child.lua("vim.fn.winrestview({ topline = 5 })")
    assert code_rows(screen(child, win), "echo") == [True]
    child.lua("vim.fn.winrestview({ topline = 10 })")
    rows = screen(child, win)
    assert rows[0][0] == "After the tool." and rows[0][1] == []


def test_a_long_code_block_streamed_while_followed_stays_code(child):
    # Far longer than the rows read back (LOOKBACK): a window following the stream keeps the
    # fence state from its last redraw and reads on from there. A few lines per redraw, as a
    # stream comes (a flood's frames are not decorated, see the next test).
    buf, win = shown_task(child, HEADER + ["```text"], height=10)
    lookback = child.lua("return require('claude-tasks.highlights').LOOKBACK")
    n = 0
    while n < 3 * lookback:
        write(child, buf, 4 + n, ["code line %04d" % i for i in range(n, n + 8)])
        n += 8
        child.lua("vim.cmd('redraw')")
    assert child.lua("return vim.fn.line('w0')") > 3 * lookback - 20
    rows = screen(child, win)
    assert len(code_rows(rows, "code line")) == 10 and all(code_rows(rows, "code line"))
    # A rewrite of the lines above (here: the fence replaced by text) is seen, however far up.
    write(child, buf, 3, ["no fence any more"] + ["code line %04d" % i for i in range(n)])
    rows = screen(child, win)
    assert len(code_rows(rows, "code line")) == 10 and not any(code_rows(rows, "code line"))


def test_hidden_buffers_are_never_decorated(child):
    # Neither filetype nor decorations until a window shows it (open = false).
    child.stub_backend()
    child.lua("__add_task({ id = 1, name = 'demo' })")
    buf = child.lua("return require('claude-tasks').open(1, { open = false })")
    write(child, buf, 0, HEADER + ["## Heading"])
    child.lua(
        "local buf = ...; _G.__drawn = 0; vim.api.nvim_set_decoration_provider("
        "vim.api.nvim_create_namespace('t'), { on_win = function(_, _, b) "
        "if b == buf then _G.__drawn = _G.__drawn + 1 end end })",
        buf,
    )
    child.lua("vim.cmd('redraw!')")
    assert child.lua("return _G.__drawn") == 0
    assert child.lua("return vim.bo[...].filetype", buf) == ""


def test_filetype_option_hands_the_buffer_to_markdown(child):
    child.lua("require('claude-tasks').setup({ filetype = 'markdown' }); vim.cmd('syntax on')")
    lines = HEADER + ["Some **strong** words.", "", "● Bash(ls)"]
    buf, win = shown_task(child, lines)
    assert child.lua("return vim.bo[...].filetype", buf) == "markdown"
    assert child.lua("return vim.b[...].current_syntax", buf) == "markdown"
    rows = screen(child, win, OURS + ["markdownBold"])
    # Markdown's own syntax draws the answer; our lines keep their groups.
    assert row_of(rows, "Some **strong** words.") == [("**strong**", "markdownBold")]
    assert row_of(rows, "● Bash(ls)") == [("● Bash(ls)", "ClaudeTasksTool")]


def test_links_follow_what_the_colorscheme_defines(child):
    # Treesitter's markup groups when the colorscheme defines them, else a built-in group
    # that is never empty (the default colorscheme leaves @markup.raw empty).
    child.lua("vim.api.nvim_set_hl(0, '@markup.raw.block', { fg = '#123456' })")
    child.lua("require('claude-tasks.highlights').setup()")
    link = "return vim.api.nvim_get_hl(0, { name = ... }).link"
    assert child.lua(link, "ClaudeTasksCode") == "@markup.raw.block"
    assert child.lua(link, "ClaudeTasksCodeSpan") == "String"
    assert child.lua(link, "ClaudeTasksHeading") == "@markup.heading"
    assert child.lua("return vim.api.nvim_get_hl(0, { name = 'ClaudeTasksCode' }).default")















def test_fence_rules(child):
    # What opens and closes a fence (CommonMark's rules for the fence line itself).
    states = child.lua(
        """
        local md = require('claude-tasks.markdown')
        local out, state = {}, nil
        for _, l in ipairs(...) do
          state = md.step(state, l)
          out[#out + 1] = state and state.lang or false
        end
        return out
        """,
        [
            "````md",  # opens (four backticks, info "md")
            "```",  # too short to close: code
            "~~~",  # another character: code
            "````",  # closes
            "   ~~~ sh",  # three spaces of indent: opens
            "~~~ x",  # info on a closing fence: code
            "~~~~",  # closes (longer is fine)
            "    ```",  # four spaces: not a fence
            "``` a`b",  # a backtick in a backtick fence's info: not a fence
        ],
    )
    assert states == ["md", "md", "md", False, "sh", "sh", False, False, False]



def test_a_flood_is_drawn_plain_and_decorated_once_it_settles(child):
    # Each redraw of a flood shows rows no earlier frame showed: they go by faster than anyone
    # reads, so they are not decorated, and the window is decorated again FLYING_MS later.
    buf, win = shown_task(child, HEADER, height=10)
    child.lua(
        """
        local md = require('claude-tasks.markdown')
        local line = md.line
        _G.__lines = 0
        md.line = function(...) _G.__lines = _G.__lines + 1; return line(...) end
        """
    )
    frames, ms, calls = child.lua(
        """
        local buf = ...
        local write = require('claude-tasks.output').write
        local t0, frames = vim.uv.hrtime(), 0
        for i = 1, 20 do
          local lines = {}
          for j = 1, 100 do lines[j] = ('## heading %d.%d'):format(i, j) end
          write(buf, vim.api.nvim_buf_line_count(buf), lines)
          vim.cmd('redraw')
          frames = frames + 1
        end
        return { frames, (vim.uv.hrtime() - t0) / 1e6, _G.__lines }
        """,
        buf,
    )
    flying = child.lua("return require('claude-tasks.highlights').FLYING_MS")
    # At most one decorated frame per FLYING_MS (and the first), each of 10 rows.
    assert calls <= 10 * (2 + int(ms / flying)) < 10 * frames, (calls, ms)
    # Then the last frame is decorated without anything else happening.
    child.wait("_G.__lines > %d" % calls, timeout=5, what="the decorated redraw")
    rows = screen(child, win)
    assert row_of(rows, "## heading 20.100") == [("## heading 20.100", "ClaudeTasksHeading")]
