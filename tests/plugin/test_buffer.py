"""Output buffers: output.write semantics, buffer options and keys, windows."""
import os

import pytest


def write(child, buf, start, lines):
    return child.lua("return require('claude-tasks.output').write(...)", buf, start, lines)


def lines(child, buf):
    return child.lua("return vim.api.nvim_buf_get_lines(..., 0, -1, false)", buf)


@pytest.fixture
def scratch(child):
    return child.lua(
        "local b = vim.api.nvim_create_buf(false, true); vim.bo[b].modifiable = false; return b"
    )


def test_write_replaces_from_start_to_end(child, scratch):
    assert write(child, scratch, 0, ["a", "b", "c"]) is True
    assert lines(child, scratch) == ["a", "b", "c"]
    assert write(child, scratch, 1, ["x"]) is True
    assert lines(child, scratch) == ["a", "x"]
    assert write(child, scratch, 2, ["y", "z"]) is True
    assert lines(child, scratch) == ["a", "x", "y", "z"]
    assert write(child, scratch, 0, []) is True
    assert lines(child, scratch) == [""]
    # start past the end appends
    write(child, scratch, 0, ["a"])
    assert write(child, scratch, 5, ["b"]) is True
    assert lines(child, scratch) == ["a", "b"]
    # the user still cannot modify it
    assert child.lua("return vim.bo[...].modifiable", scratch) is False


def test_write_to_invalid_buffer_returns_false(child, scratch):
    child.lua("vim.api.nvim_buf_delete(..., { force = true })", scratch)
    assert write(child, scratch, 0, ["a"]) is False
    assert write(child, 99999, 0, ["a"]) is False


def windows_at(child, buf, rows, tab_last=False):
    """Shows `buf` in one window per row (split; the last in a new tabpage with `tab_last`),
    each with its cursor on that row; returns the windows."""
    return child.lua(
        """
        local buf, rows, tab_last = ...
        vim.api.nvim_win_set_buf(0, buf)
        local wins = {}
        for i, row in ipairs(rows) do
          if i > 1 then vim.cmd((tab_last and i == #rows) and 'tab split' or 'split') end
          wins[i] = vim.api.nvim_get_current_win()
          vim.api.nvim_win_set_cursor(wins[i], { row, 0 })
        end
        return wins
        """,
        buf,
        rows,
        tab_last,
    )


def test_following_windows(child, scratch):
    write(child, scratch, 0, ["l%d" % i for i in range(1, 51)])
    # on the last line: follows; elsewhere: stays; in another tabpage on the last line: follows
    wins = windows_at(child, scratch, [50, 10, 50], tab_last=True)
    write(child, scratch, 49, ["l50 longer", "l51", "l52"])
    cursors = [child.lua("return vim.api.nvim_win_get_cursor(...)", w) for w in wins]
    assert cursors == [[52, 0], [10, 0], [52, 0]]
    # shrinking: a follower stays on the (new) last line; a window below the end is clamped
    write(child, scratch, 5, ["end"])
    cursors = [child.lua("return vim.api.nvim_win_get_cursor(...)", w)[0] for w in wins]
    assert cursors[0] == 6 and cursors[2] == 6


def test_write_of_a_flood_in_10k_line_calls(child, scratch):
    child.lua(
        """
        local buf = ...
        vim.api.nvim_win_set_buf(0, buf)
        local lines = {}
        for i = 1, 10000 do lines[i] = string.rep('x', 80) .. i end
        local w = require('claude-tasks.output').write
        for i = 0, 9 do w(buf, i * 10000, lines) end
        """,
        scratch,
    )
    assert lines(child, scratch)[-1].endswith("10000")
    assert child.lua("return vim.api.nvim_buf_line_count(...)", scratch) == 100000
    assert child.lua("return vim.api.nvim_win_get_cursor(0)[1]") == 100000


def open_task(child, id_=1, mode="split"):
    child.stub_backend()
    child.lua("__add_task({ id = %d, name = 'demo' })" % id_)
    return child.lua("return require('claude-tasks').open(%d, { open = %s })" % (
        id_, "false" if mode is False else repr(mode).replace("'", '"')))


def test_filetype_waits_until_the_buffer_is_shown(child):
    child.lua(
        "_G.__ft = {}; vim.api.nvim_create_autocmd('FileType', { pattern = 'claude-tasks', "
        "callback = function(ev) table.insert(_G.__ft, ev.buf) end })"
    )
    buf = open_task(child, mode=False)
    ft = "return vim.bo[...].filetype"
    # Not shown: no filetype yet, so nothing a FileType autocmd starts is paid for it.
    assert child.lua(ft, buf) == ""
    child.lua("vim.cmd('syntax on'); vim.cmd('botright split'); vim.api.nvim_win_set_buf(0, ...)", buf)
    assert child.lua(ft, buf) == "claude-tasks"
    # The FileType autocommands ran (the autocmd is nested), and no syntax script or treesitter
    # highlighter came with the filetype: the plugin's decoration provider draws it.
    assert child.lua("return _G.__ft") == [buf]
    assert child.lua("return vim.bo[...].syntax", buf) == "claude-tasks"
    assert child.lua("return vim.b[...].current_syntax", buf) is None
    assert child.lua("return vim.treesitter.highlighter.active[...] == nil", buf) is True


def test_task_buffer_options_and_keys(child):
    buf = open_task(child)
    assert child.lua("return vim.fn.bufname(...)", buf) == "claude #1 demo"
    opts = child.lua(
        """
        local b = ...
        local o = {}
        for _, k in ipairs({ 'buftype', 'bufhidden', 'swapfile', 'undolevels', 'modifiable',
          'filetype', 'buflisted', 'path' }) do o[k] = vim.bo[b][k] end
        return o
        """,
        buf,
    )
    assert opts == {
        "buftype": "nofile",
        "bufhidden": "hide",
        "swapfile": False,
        "undolevels": -1,
        "modifiable": False,
        "filetype": "claude-tasks",
        "buflisted": False,
        "path": os.getcwd().replace(",", "\\,").replace(" ", "\\ "),
    }
    maps = child.lua(
        """
        local out = {}
        for _, m in ipairs(vim.api.nvim_buf_get_keymap(..., 'n')) do out[#out + 1] = m.lhs end
        table.sort(out)
        return out
        """,
        buf,
    )
    for lhs in ("q", "c", "<C-C>", "r", "i", "o", "a", "<CR>", "gf", "gF"):
        assert lhs in maps
    assert child.lua("return vim.b[...].claude_task", buf) == {"id": 1, "cwd": os.getcwd()}


def test_q_closes_the_window_not_the_task(child):
    buf = open_task(child)
    assert len(child.lua("return vim.api.nvim_tabpage_list_wins(0)")) == 2
    child.nvim.feedkeys("q", "x")
    child.wait("#vim.api.nvim_tabpage_list_wins(0) == 1")
    assert child.lua("return vim.api.nvim_buf_is_valid(...)", buf) is True
    assert child.calls("cancel") == [] and child.calls("detach") == []
    # q in the last window shows another buffer instead of failing
    child.lua("vim.api.nvim_win_set_buf(0, ...)", buf)
    child.nvim.feedkeys("q", "x")
    assert child.lua("return vim.api.nvim_get_current_buf()") != buf


def test_ctrl_c_interrupts_without_asking_and_r_opens_the_prompt_window(child):
    buf = open_task(child)
    child.lua("vim.ui.select = function() error('asked') end; vim.fn.confirm = vim.ui.select")
    child.nvim.feedkeys(child.nvim.replace_termcodes("<C-c>", True, False, True), "x")
    # Interrupt, not cancel: nothing is lost, so nothing is asked.
    assert child.calls("interrupt") == [{"id": 1, "cwd": os.getcwd()}]
    assert child.calls("cancel") == []
    child.nvim.feedkeys("r", "x")
    assert child.lua("return vim.bo.filetype") == "markdown"
    assert child.lua("return vim.b.claude_task_prompt") == {"id": 1, "cwd": os.getcwd()}
    child.lua("vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'and then?' })")
    child.nvim.feedkeys(child.nvim.replace_termcodes("<C-s>", True, False, True), "x")
    assert child.calls("resume") == [{"id": 1, "prompt": "and then?", "cwd": os.getcwd()}]
    assert child.lua("return vim.api.nvim_get_current_buf()") == buf


def test_gf_resolves_relative_to_the_task_cwd(child, tmp_path):
    proj = tmp_path / "other"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "lib.rs").write_text("fn main() {}\nfn b() {}\n")
    child.stub_backend()
    child.lua("__add_task({ id = 1, cwd = ... })", str(proj))
    buf = child.lua("return require('claude-tasks').open({ id = 1, cwd = ... })", str(proj))
    write(child, buf, 0, ["● Write(src/lib.rs)", "● Read(src/lib.rs:2)"])
    child.lua("vim.api.nvim_win_set_cursor(0, { 1, 10 })")
    child.nvim.feedkeys("gf", "x")
    assert child.lua("return vim.api.nvim_buf_get_name(0)") == str(proj / "src" / "lib.rs")
    # in the window the user came from: the output window still shows the output
    assert child.lua("return vim.fn.bufwinid(...)", buf) != -1
    # gF with a line number, from a float: the file opens in the previous window
    child.nvim.command("only")
    child.lua("require('claude-tasks').open({ id = 1, cwd = ... }, { open = 'float' })", str(proj))
    assert child.lua("return vim.api.nvim_win_get_config(0).relative") == "editor"
    child.lua("vim.api.nvim_win_set_cursor(0, { 2, 9 })")
    child.nvim.feedkeys("gF", "x")
    assert child.lua("return vim.api.nvim_win_get_config(0).relative") == ""
    assert child.lua("return vim.api.nvim_buf_get_name(0)") == str(proj / "src" / "lib.rs")
    assert child.lua("return vim.api.nvim_win_get_cursor(0)[1]") == 2


@pytest.mark.parametrize("mode", ["split", "vsplit", "tab", "float"])
def test_open_modes_and_window_reuse(child, mode):
    buf = open_task(child, mode=mode)
    win = child.lua("return vim.api.nvim_get_current_win()")
    assert child.lua("return vim.api.nvim_win_get_buf(...)", win) == buf
    layout = child.lua("return vim.fn.winlayout()")
    if mode == "split":
        assert layout[0] == "col"
    elif mode == "vsplit":
        assert layout[0] == "row"
    elif mode == "tab":
        assert child.lua("return #vim.api.nvim_list_tabpages()") == 2
    else:
        assert child.lua("return vim.api.nvim_win_get_config(0).relative") == "editor"
    # opening again (from another window) reuses the window
    child.nvim.command("wincmd p" if mode != "tab" else "tabprevious")
    child.lua("require('claude-tasks').open(1, { open = '%s' })" % mode)
    assert child.lua("return vim.api.nvim_get_current_win()") == win
    assert len(child.lua("return vim.api.nvim_list_wins()")) == 2
    assert len(child.calls("attach")) == 1


def test_open_false_only_creates_and_attaches(child):
    buf = open_task(child, mode=False)
    assert child.lua("return #vim.api.nvim_list_wins()") == 1
    assert child.calls("attach") == [{"id": 1, "buf": buf, "cwd": os.getcwd()}]


def test_wipeout_detaches(child):
    buf = open_task(child)
    child.nvim.command("bwipeout! %d" % buf)
    child.flush()
    assert child.calls("detach") == [{"id": 1, "buf": buf, "cwd": os.getcwd()}]
    # reopening creates a fresh buffer and attaches again
    buf2 = child.lua("return require('claude-tasks').open(1)")
    assert buf2 != buf
    assert len(child.calls("attach")) == 2


def test_unload_detaches_and_reopen_reattaches(child):
    buf = open_task(child)
    child.nvim.command("bdelete! %d" % buf)
    child.flush()
    assert len(child.calls("detach")) == 1
    assert child.lua("return require('claude-tasks').open(1)") == buf
    assert len(child.calls("attach")) == 2


def test_same_id_in_two_projects(child, tmp_path):
    child.stub_backend()
    other = str(tmp_path / "xdg_data_home")
    child.lua("__add_task({ id = 1 }); __add_task({ id = 1, cwd = ... })", other)
    a = child.lua("return require('claude-tasks').open(1)")
    b = child.lua("return require('claude-tasks').open({ id = 1, cwd = ... })", other)
    assert a != b
    assert child.lua("return vim.fn.bufname(...)", a) == "claude #1 task 1"
    assert child.lua("return vim.fn.bufname(...)", b).startswith("claude #1 task 1 (")
    assert "/" not in child.lua("return vim.fn.bufname(...)", b)


def test_edit_url_attaches(child):
    child.stub_backend()
    child.lua("__add_task({ id = 4 })")
    child.nvim.command("edit claude-tasks://4")
    buf = child.lua("return vim.api.nvim_get_current_buf()")
    assert child.calls("attach") == [{"id": 4, "buf": buf, "cwd": os.getcwd()}]
    assert child.lua("return vim.bo.buftype") == "nofile"
    assert child.lua("return vim.fn.bufname()") == "claude #4 task 4"
    # no buffer is left behind under the URL
    assert child.lua("return vim.fn.bufnr('claude-tasks://4')") == -1
    # :edit in it renders it again
    child.nvim.command("edit")
    assert len(child.calls("attach")) == 2 and child.calls("attach")[1]["buf"] == buf
    # open() finds that buffer instead of making another
    assert child.lua("return require('claude-tasks').open(4)") == buf


def test_highlight_groups(child):
    child.lua("require('claude-tasks.highlights').setup()")
    for group in (
        "ClaudeTasksRunning",
        "ClaudeTasksQueued",
        "ClaudeTasksCompleted",
        "ClaudeTasksFailed",
        "ClaudeTasksCancelled",
        "ClaudeTasksInterrupted",
        "ClaudeTasksHeader",
        "ClaudeTasksTool",
        "ClaudeTasksFooter",
    ):
        hl = child.lua("return vim.api.nvim_get_hl(0, { name = ... })", group)
        assert hl.get("link"), group
        assert hl.get("default") is True, group
    # a user's own definition wins, and :colorscheme keeps ours defined
    child.lua("vim.api.nvim_set_hl(0, 'ClaudeTasksTool', { fg = '#ff0000' })")
    child.lua("require('claude-tasks.highlights').apply()")
    assert child.lua("return vim.api.nvim_get_hl(0, { name = 'ClaudeTasksTool' }).fg") == 0xFF0000
    child.nvim.command("colorscheme default")
    assert child.lua("return vim.api.nvim_get_hl(0, { name = 'ClaudeTasksTool' }).link") == "Function"


def test_decorations_highlight_visible_lines(child):
    buf = open_task(child)
    text = ["plain text", "● Bash(npm test)", "  ⎿ ok", "✓ done in 1.0s", "✗ failed: x", "■ cancelled"]
    write(child, buf, 0, text)
    groups = child.lua(
        "local hl = require('claude-tasks.highlights'); "
        "return vim.tbl_map(function(l) return hl.group_of(l) or '' end, ...)",
        text,
    )
    assert groups == [
        "",
        "ClaudeTasksTool",
        "ClaudeTasksToolResult",
        "ClaudeTasksCompleted",
        "ClaudeTasksFailed",
        "ClaudeTasksCancelled",
    ]
    # and the provider draws them: the tool line looks different from the plain one
    child.lua("vim.api.nvim_set_hl(0, 'ClaudeTasksTool', { fg = '#00ff00', bold = true })")
    child.nvim.command("normal! gg")
    child.nvim.command("redraw!")
    attrs = child.lua(
        """
        local win = vim.api.nvim_get_current_win()
        local pos = vim.fn.win_screenpos(win)
        return { vim.fn.screenattr(pos[1], pos[2] + 2), vim.fn.screenattr(pos[1] + 1, pos[2] + 2) }
        """
    )
    assert attrs[0] != attrs[1]


def test_write_while_text_is_locked_is_applied_later_in_order(child, scratch):
    # The backend may call write() while Lua waits in an rpcrequest made where text is
    # locked (an <expr> mapping, a statusline expression...): the write waits, in order.
    child.lua(
        """
        local buf = ...
        _G.__w = {}
        function _G.__stl()
          local w = require('claude-tasks.output').write
          table.insert(_G.__w, w(buf, 0, { 'a', 'b' }))
          table.insert(_G.__w, w(buf, 1, { 'c' }))
          _G.__during = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
          vim.o.statusline = ''
          return ''
        end
        vim.o.laststatus = 2
        vim.o.statusline = '%!v:lua.__stl()'
        vim.cmd('redrawstatus')
        """,
        scratch,
    )
    assert child.lua("return _G.__w") == [True, True]
    assert child.lua("return _G.__during") == [""]  # really locked: not written yet
    child.flush()
    child.wait("vim.api.nvim_buf_get_lines(%d, 0, -1, false)[2] == 'c'" % scratch)
    assert lines(child, scratch) == ["a", "c"]
    # later writes go straight through again
    assert write(child, scratch, 2, ["d"]) is True
    assert lines(child, scratch) == ["a", "c", "d"]


def test_unload_then_reopen_at_once_keeps_the_new_view(child):
    buf = open_task(child)
    child.lua(
        "vim.cmd('bdelete! ' .. ...); require('claude-tasks').open(1)",
        buf,
    )
    child.flush()
    assert child.calls("detach") == []
    assert len(child.calls("attach")) == 2


def test_edit_reloads_a_task_buffer(child):
    buf = open_task(child)
    child.nvim.command("edit")
    child.flush()
    assert child.lua("return vim.api.nvim_get_current_buf()") == buf
    assert child.calls("detach") == []
    assert len(child.calls("attach")) == 2


BEFORE = "return require('claude-tasks.output').before_write(...)"
AFTER = "return require('claude-tasks.output').after_write(...)"


def atomic_write(child, buf, start, new_lines):
    """The backend's usual write (src/nvim/editor.rs): one nvim_call_atomic; returns its error."""
    res = child.nvim.request(
        "nvim_call_atomic",
        [
            ["nvim_exec_lua", [BEFORE, [buf, start]]],
            ["nvim_buf_set_lines", [buf, start, -1, False, new_lines]],
            ["nvim_exec_lua", [AFTER, [buf, True]]],
        ],
    )
    return res[1]


def test_atomic_write_replaces_lines_and_moves_followers(child, scratch):
    assert atomic_write(child, scratch, 0, ["l%d" % i for i in range(1, 11)]) is None
    wins = windows_at(child, scratch, [10, 3])
    assert atomic_write(child, scratch, 9, ["l10+", "l11", "l12"]) is None
    assert lines(child, scratch)[8:] == ["l9", "l10+", "l11", "l12"]
    cursors = child.lua(
        "local w = ...; return { vim.api.nvim_win_get_cursor(w[1])[1], "
        "vim.api.nvim_win_get_cursor(w[2])[1] }",
        wins,
    )
    assert cursors == [12, 3]
    assert child.lua("return vim.bo[...].modifiable", scratch) is False


def test_atomic_write_stops_at_before_write_when_it_must(child, scratch):
    # A wiped buffer ends the view.
    gone = child.lua("local b = vim.api.nvim_create_buf(false, true); return b")
    child.lua("vim.api.nvim_buf_delete(..., { force = true })", gone)
    err = atomic_write(child, gone, 0, ["a"])
    assert err[0] == 0 and "buffer gone" in err[2]
    # A start past the end, or writes waiting for a text lock: the backend uses write().
    err = atomic_write(child, scratch, 5, ["a"])
    assert err[0] == 0 and "use write()" in err[2]
    assert lines(child, scratch) == [""]
    assert child.lua("return vim.bo[...].modifiable", scratch) is False


def test_atomic_write_whose_set_lines_fails_is_undone_by_after_write(child, scratch):
    err = atomic_write(child, scratch, 0, ["a\nb"])
    assert err[0] == 1
    # The backend then calls after_write(buf, false) and falls back to write().
    child.lua(AFTER, scratch, False)
    assert child.lua("return vim.bo[...].modifiable", scratch) is False
    assert write(child, scratch, 0, ["a\nb"]) is True
    assert lines(child, scratch) == ["a", "b"]
