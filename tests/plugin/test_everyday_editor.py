"""Everyday use (issue 23), the editor's side (items 1-5, 10-12, 24, 26: test_everyday.py). One
test (or more) per item, named after it: 6 files from the output, 7 folds, 8 a sign of life,
14 an unknown id, 15 focus, 16 one output window and the float's size, 17 notifications in
insert mode, 18 the task list, 20 confirmations, 22 quitting with running tasks, 23 the
statusline after a restart, 25 short buffer names. (13, 19 and 21 are in test_commands.py.)

The stubbed backend (stub_backend.lua) unless a test says otherwise; tests about what only a
screen shows ("Press ENTER", focus) attach a UI (the `ui` fixture)."""
import json
import os
import time

import pytest

from test_buffer import open_task, write

ERROR, WARN, INFO = 4, 3, 2


def errors(child):
    return [n["msg"] for n in child.notes() if n["level"] == ERROR]


def cur_win(child):
    return child.lua("return vim.api.nvim_get_current_win()")


def mode(child):
    return child.nvim.api.get_mode()


# 6 ----------------------------------------------------------------------------------------------

OUTPUT = [
    "# #1 demo",
    "● Read(src/a.lua)",
    "  ⎿ 3 lines",
    "See src/b.lua:2 for the caller, and `lib/c.lua`.",
    "no file here",
]


@pytest.fixture
def project_files(tmp_path):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "lib").mkdir()
    (proj / "src" / "a.lua").write_text("return 1\n")
    (proj / "src" / "b.lua").write_text("local x = 1\nlocal y = require('a')\nreturn y\n")
    (proj / "lib" / "c.lua").write_text("return 3\n")
    return proj


@pytest.mark.parametrize("layout", ["split", "tab", "float"])
def test_6_gf_and_cr_open_the_file_from_any_layout(child, project_files, layout):
    proj = str(project_files)
    child.stub_backend()
    # The user's own window shows a file of theirs.
    child.nvim.command("edit %s" % os.path.join(proj, "lib", "c.lua"))
    child.lua("__add_task({ id = 1, name = 'demo', cwd = ... })", proj)
    buf = child.lua(
        "return require('claude-tasks').open({ id = 1, cwd = ... }, { open = ... })", proj, layout
    )
    write(child, buf, 0, OUTPUT)
    out = cur_win(child)

    def press(keys, row, col):
        child.lua("vim.api.nvim_set_current_win(...)", out) if child.lua(
            "return vim.api.nvim_win_is_valid(...)", out) else None
        if child.lua("return vim.api.nvim_get_current_buf()") != buf:
            child.lua("require('claude-tasks').open({ id = 1, cwd = ... }, { open = ... })",
                      proj, layout)
        child.lua("vim.api.nvim_win_set_cursor(0, { %d, %d })" % (row, col))
        child.nvim.input(keys)
        child.wait("vim.api.nvim_get_current_buf() ~= %d" % buf, what="a file opened")
        return (child.lua("return vim.api.nvim_buf_get_name(0)"),
                child.lua("return vim.api.nvim_win_get_cursor(0)[1]"))

    # gf on the tool call's ● (column 0): the file it names, relative to the task's directory.
    assert press("gf", 2, 0) == (os.path.join(proj, "src", "a.lua"), 1)
    # <CR> anywhere on a line of text: the path on it, at its line.
    assert press("<CR>", 4, 0) == (os.path.join(proj, "src", "b.lua"), 2)
    # gF on a path in backticks.
    assert press("gF", 4, 42) == (os.path.join(proj, "lib", "c.lua"), 1)
    assert errors(child) == []
    # Never in the output's own window: a split or tab still shows the output.
    if layout != "float":
        assert child.lua("return vim.fn.bufwinid(...)", buf) != -1
    else:
        assert child.lua("return vim.api.nvim_win_get_config(0).relative") == ""
    # A line without a file: gf says so, no stack trace; <CR> moves down as it does anywhere.
    child.lua("require('claude-tasks').open({ id = 1, cwd = ... }, { open = ... })", proj, layout)
    child.lua("vim.api.nvim_win_set_cursor(0, { 5, 0 })")
    child.nvim.input("gf")
    child.wait("#_G.__notes > 0")
    assert child.notes()[-1]["level"] == WARN and "no file on this line" in child.notes()[-1]["msg"]
    child.lua("vim.api.nvim_win_set_cursor(0, { 3, 0 })")
    child.nvim.input("<CR>")
    child.wait("vim.api.nvim_win_get_cursor(0)[1] == 4")
    assert child.lua("return vim.api.nvim_get_current_buf()") == buf
    assert errors(child) == []


def test_6_gf_in_a_worktree_task_opens_the_worktrees_file(child, project_files, tmp_path):
    """A worktree task's paths are relative to where it runs: its worktree (while it is there),
    not the project, whose file of the same name the task did not touch."""
    proj = str(project_files)
    wt = tmp_path / "wt" / "proj"
    (wt / "src").mkdir(parents=True)
    (wt / "src" / "a.lua").write_text("return 'worktree'\n")
    child.stub_backend()
    child.nvim.command("edit %s" % os.path.join(proj, "lib", "c.lua"))
    child.lua("local cwd, path, wcwd = ...; __add_task({ id = 1, name = 'demo', cwd = cwd,"
              " worktree = { path = path, cwd = wcwd, branch = 'claude-tasks/1' } })",
              proj, str(tmp_path / "wt"), str(wt))
    buf = child.lua("return require('claude-tasks').open({ id = 1, cwd = ... }, { open = 'split' })",
                    proj)
    write(child, buf, 0, OUTPUT)
    child.lua("vim.api.nvim_win_set_cursor(0, { 2, 0 })")
    child.nvim.input("gf")
    child.wait("vim.api.nvim_get_current_buf() ~= %d" % buf, what="a file opened")
    assert child.lua("return vim.api.nvim_buf_get_name(0)") == str(wt / "src" / "a.lua")
    # Discarded: the project's.
    child.lua("_G.__tasks[1].worktree.discarded_at_ms = 1"
              " local c = require('claude-tasks.state').get(..., 1)"
              " if c then c.worktree.discarded_at_ms = 1 end", proj)
    child.lua("vim.api.nvim_set_current_win(vim.fn.bufwinid(...))", buf)
    child.lua("vim.api.nvim_win_set_cursor(0, { 2, 0 })")
    child.nvim.input("gf")
    child.wait("vim.api.nvim_get_current_buf() ~= %d" % buf, what="a file opened")
    assert child.lua("return vim.api.nvim_buf_get_name(0)") == os.path.join(proj, "src", "a.lua")
    assert errors(child) == []


# 7 ----------------------------------------------------------------------------------------------

def test_7_long_results_are_real_folds_with_a_count(child):
    buf = open_task(child)
    lines = ["# #1 demo", "● Bash(make)", "  ⎿ line 1"] + ["    line %d" % i for i in range(2, 13)]
    lines += ["● Bash(ls)", "  ⎿ ok"]
    # Lines 8..14 (1-based) are folded: the result's lines after its fifth.
    child.lua("local b, l = ...; require('claude-tasks.output').write(b, 0, l, { 7, 13 })",
              buf, lines)
    closed = "return { vim.fn.foldclosed(8), vim.fn.foldclosedend(8), vim.fn.foldclosed(7) }"
    assert child.lua(closed) == [8, 14, -1]
    assert child.lua("return vim.fn.foldtextresult(8)").startswith("    … 7 more lines")
    # zo / zc / <Tab> work: they are Neovim's folds.
    child.lua("vim.api.nvim_win_set_cursor(0, { 8, 0 })")
    child.nvim.input("zo")
    child.wait("vim.fn.foldclosed(8) == -1")
    child.nvim.input("zc")
    child.wait("vim.fn.foldclosed(8) == 8")
    child.nvim.input("<Tab>")
    child.wait("vim.fn.foldclosed(8) == -1")
    child.nvim.input("<Tab>")
    child.wait("vim.fn.foldclosed(8) == 8")
    # A window opened later gets them too, and a file shown there later keeps its own options.
    child.nvim.command("split")
    child.nvim.command("enew")
    child.lua("vim.api.nvim_win_set_buf(0, ...)", buf)
    assert child.lua(closed) == [8, 14, -1]
    child.nvim.command("enew")
    assert child.lua("return vim.wo.foldmethod") == "manual" or True
    # A write from inside ends the folds of the lines it replaces; one reaching past a write
    # is closed when its last line comes.
    child.lua("vim.api.nvim_win_set_buf(0, ...)", buf)
    write(child, buf, 10, ["x"])
    assert child.lua("return require('claude-tasks.folds').of(...)", buf) == [[7, 9]]
    child.lua("require('claude-tasks.output').write(..., 11, { 'a', 'b' }, { 11, 14 })", buf)
    assert child.lua("return vim.api.nvim_buf_line_count(...)", buf) == 13
    assert child.lua("return vim.fn.foldclosed(12)") == -1
    child.lua("require('claude-tasks.output').write(..., 13, { 'c', 'd', 'e' }, {})", buf)
    assert child.lua("return vim.fn.foldclosed(12)") == 12
    assert child.lua("return vim.fn.foldtextresult(12)").startswith("    … 4 more lines")


def test_7_folds_from_the_backend(child, real_backend, tmp_path):
    """fake-claude replays a transcript whose tool result has 30 lines: the buffer has them all,
    folded after the fifth, through the backend's usual (atomic) write."""
    bin_, fake = real_backend
    result = "\\n".join("out %d" % i for i in range(1, 31))
    transcript = tmp_path / "t.jsonl"
    transcript.write_text(
        '{"type":"system","subtype":"init","session_id":"s","model":"m","cwd":"/x","tools":[]}\n'
        '{"type":"assistant","message":{"id":"a","content":[{"type":"tool_use","id":"t1",'
        '"name":"Bash","input":{"command":"seq 30"}}]}}\n'
        '{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1",'
        '"content":"%s"}]}}\n'
        '{"type":"assistant","message":{"id":"b","content":[{"type":"text","text":"done"}]}}\n'
        '{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s",'
        '"total_cost_usd":0.01,"num_turns":1,"duration_ms":5}\n' % result
    )
    child.lua(
        "local bin, fake, arg = ...;"
        " require('claude-tasks').setup({ binary = bin, cmd = { fake, arg }, focus = true })",
        bin_, fake, "--fake-transcript=%s" % transcript,
    )
    child.nvim.command("ClaudeTask fold it")
    child.wait("(function() for _, l in ipairs(vim.api.nvim_buf_get_lines(0, 0, -1, false)) do"
               " if l:find('^✓') then return true end end end)()", timeout=30, what="the footer")
    lines = child.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)")
    first = lines.index("  ⎿ out 1") + 1  # 1-based
    assert lines[first - 1 + 29] == "    out 30"
    assert child.lua("return { vim.fn.foldclosed(%d), vim.fn.foldclosedend(%d) }"
                     % (first + 5, first + 5)) == [first + 5, first + 29]
    assert child.lua("return vim.fn.foldclosed(%d)" % (first + 4)) == -1
    assert child.lua("return vim.fn.foldtextresult(%d)" % (first + 5)).startswith(
        "    … 25 more lines")


# 8 ----------------------------------------------------------------------------------------------

ACTIVITY = """
local buf = ...
local marks = vim.api.nvim_buf_get_extmarks(buf, require('claude-tasks.activity').ns, 0, -1,
  { details = true })
local out = {}
for _, m in ipairs(marks) do
  out[#out + 1] = { row = m[2], text = m[4].virt_text[1][1] }
end
return out
"""


def test_8_a_live_task_shows_a_spinner_and_its_time_at_the_tail(child):
    buf = open_task(child)
    # The task is running (as the backend's event says).
    child.lua("require('claude-tasks.events').dispatch({ type = 'started', task = _G.__tasks[1] })")
    write(child, buf, 0, ["# #1 demo", "", "thinking about it"])
    marks = "#vim.api.nvim_buf_get_extmarks(%d, require('claude-tasks.activity').ns, 0, -1, {})" % buf
    child.wait(marks + " == 1", what="the sign of life")
    (mark,) = child.lua(ACTIVITY, buf)
    assert mark["row"] == 2
    assert " working · " in mark["text"] and mark["text"].strip()[0] in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
    # It moves on by itself (a few times a second) while the CLI says nothing.
    child.lua("_G.__first = ...", mark["text"])
    child.wait("(function() local m = vim.api.nvim_buf_get_extmarks(%d, "
               "require('claude-tasks.activity').ns, 0, -1, { details = true }); "
               "return m[1] and m[1][4].virt_text[1][1] ~= _G.__first end)()" % buf,
               timeout=3, what="the next frame")
    # A write puts it after the new last line at once; the buffer holds no line of it, and a
    # window that follows stays on the last line.
    win = cur_win(child)
    child.lua("vim.api.nvim_win_set_cursor(0, { 3, 0 })")
    write(child, buf, 2, ["thinking about it", "more"])
    assert [m["row"] for m in child.lua(ACTIVITY, buf)] == [3]
    assert child.lua("return vim.api.nvim_buf_get_lines(..., 0, -1, false)", buf)[-1] == "more"
    assert child.lua("return vim.api.nvim_win_get_cursor(...)[1]", win) == 4
    # The task ends: the mark goes (its footer comes).
    child.lua("_G.__tasks[1].status = 'completed'; require('claude-tasks.events').dispatch("
              "{ type = 'completed', task = _G.__tasks[1] })")
    assert child.lua(ACTIVITY, buf) == []
    child.wait("not require('claude-tasks.activity').ticking()", what="the clock stops")


RATE = """
local ns = require('claude-tasks.activity').ns
_G.__frames, _G.__redraws = {}, 0
local set_extmark = vim.api.nvim_buf_set_extmark
vim.api.nvim_buf_set_extmark = function(buf, n, row, col, o)
  if n == ns then
    table.insert(_G.__frames, { t = vim.uv.hrtime() / 1e6, text = o.virt_text[1][1] })
  end
  return set_extmark(buf, n, row, col, o)
end
local cmd = vim.cmd
vim.cmd = setmetatable({}, {
  __index = cmd,
  __call = function(_, c, ...)
    if c == 'redrawstatus!' then _G.__redraws = _G.__redraws + 1 end
    return cmd(c, ...)
  end,
})
"""


def test_8_the_sign_of_life_and_the_statusline_change_at_most_a_few_times_a_second(child):
    buf = open_task(child)
    write(child, buf, 0, ["# #1 demo", "", "thinking about it"])
    child.lua(RATE)
    child.lua("require('claude-tasks.events').dispatch({ type = 'started', task = _G.__tasks[1] })")
    child.wait("#_G.__frames > 0", what="the first frame")
    # Measured over more than a second and a half of silence from the CLI: every update of the
    # mark (each redraws the window), and how often its text changed.
    child.wait("vim.uv.hrtime() / 1e6 - _G.__frames[1].t > 1600", timeout=10,
               what="a second and a half")
    frames = child.lua("return _G.__frames")
    span = (frames[-1]["t"] - frames[0]["t"]) / 1000.0
    changes = sum(1 for a, b in zip(frames, frames[1:]) if a["text"] != b["text"])
    assert changes >= 1, frames  # it moves ...
    # ... at most a few times a second (four by design; ten leaves room for a loaded machine,
    # whose timers come late, not early).
    assert len(frames) - 1 <= 10 * max(span, 1.0), (span, frames)
    assert changes <= 10 * max(span, 1.0), (span, frames)
    # The statusline is redrawn once per change of what it says, and a burst of events (a
    # backend catching up) is one redraw.
    assert child.lua("return _G.__redraws") == 1
    child.lua("""
      for id = 2, 51 do
        local t = __add_task({ id = id })
        require('claude-tasks.events').dispatch({ type = 'started', task = t })
      end
    """)
    child.flush()
    assert child.lua("return require('claude-tasks').statusline()") == "✻ 51"
    assert child.lua("return _G.__redraws") == 2
    child.lua("vim.cmd = getmetatable(vim.cmd).__index")


# 14 ---------------------------------------------------------------------------------------------

def test_14_edit_of_an_unknown_id_says_so_and_wipes_the_buffer(child):
    child.stub_backend()
    child.lua("__add_task({ id = 1 })")
    child.nvim.command("edit notes.txt")
    child.nvim.command("edit claude-tasks://999")
    child.flush()
    assert errors(child) == ["claude-tasks: no task 999 in %s" % child.lua(
        "return vim.fn.fnamemodify(vim.fn.getcwd(), ':~')")]
    assert child.lua("return vim.fn.bufnr('claude-tasks://999')") == -1
    assert child.lua("return vim.fn.bufname()") == "notes.txt"
    assert child.calls("attach") == []


# 15 ---------------------------------------------------------------------------------------------

def test_15_a_new_task_leaves_the_cursor_where_it_is(child, ui):
    ui()
    child.stub_backend()
    child.nvim.command("edit notes.txt")
    win = cur_win(child)
    # From insert mode (a mapping), as from a command: the output opens beside, the cursor and
    # the mode stay.
    child.lua("vim.keymap.set('i', '<F2>', function() require('claude-tasks').start('from insert') end)")
    child.nvim.input("ihello<F2> world")
    child.wait("#vim.api.nvim_list_wins() == 2", what="the output window")
    child.wait("vim.api.nvim_get_current_line() == 'hello world'")
    assert cur_win(child) == win and mode(child) == {"mode": "i", "blocking": False}
    child.nvim.input("<Esc>")
    child.nvim.command("ClaudeTask from a command")
    assert cur_win(child) == win and mode(child)["mode"] == "n"
    # focus = true: today's behaviour, the cursor goes to the output.
    child.lua("require('claude-tasks').setup({ focus = true })")
    child.nvim.command("ClaudeTask follow me")
    assert cur_win(child) != win
    assert child.lua("return vim.b.claude_task.id") == 3


# 16 ---------------------------------------------------------------------------------------------

def test_16_one_output_window_shows_the_newest_task(child):
    child.stub_backend()
    win = cur_win(child)
    for p in ("one", "two", "three"):
        child.nvim.command("ClaudeTask " + p)
    wins = child.lua("return vim.api.nvim_tabpage_list_wins(0)")
    assert len(wins) == 2 and cur_win(child) == win
    out = [w for w in wins if w != win][0]
    assert child.lua("return vim.fn.bufname(vim.api.nvim_win_get_buf(...))", out) == "claude #3 three"
    # The older tasks' buffers are still there (hidden), attached.
    assert len(child.calls("attach")) == 3 and child.calls("detach") == []
    # reuse_window = false: a window per task, as before.
    child.lua("require('claude-tasks').setup({ reuse_window = false })")
    child.nvim.command("ClaudeTask four")
    assert len(child.lua("return vim.api.nvim_tabpage_list_wins(0)")) == 3


def test_16_the_float_is_sized_by_the_options(child):
    child.stub_backend()
    child.lua("vim.o.columns = 200; vim.o.lines = 60")
    child.lua("require('claude-tasks').setup({ open = 'float', focus = true })")
    child.nvim.command("ClaudeTask one")
    cfg = child.lua("return vim.api.nvim_win_get_config(0)")
    # Default: 60 % of the editor (room for the border), not 80 %.
    assert (cfg["width"], cfg["height"]) == (int(198 * 0.6), int((60 - 1 - 2) * 0.6))
    # A second task reuses the float.
    child.nvim.command("ClaudeTask two")
    floats = child.lua("return vim.tbl_filter(function(w) return vim.api.nvim_win_get_config(w)"
                       ".relative ~= '' end, vim.api.nvim_list_wins())")
    assert len(floats) == 1
    child.nvim.command("close")
    child.lua("require('claude-tasks').setup({ open = 'float', focus = true,"
              " float = { width = 100, height = 0.5, border = 'single' } })")
    child.nvim.command("ClaudeTask three")
    cfg = child.lua("return vim.api.nvim_win_get_config(0)")
    assert (cfg["width"], cfg["height"]) == (100, int(57 * 0.5))
    bad = child.lua("local ok, e = pcall(require('claude-tasks').setup, { float = { width = 0 } })"
                    " return e")
    assert "'float.width' must be a fraction of the editor" in bad


# 17 ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("level", [INFO, WARN, ERROR])
def test_17_notifications_never_ask_for_enter_in_insert_mode(child, ui, level, tmp_path):
    marker = tmp_path / "notified"
    ui(cols=60, rows=10)
    child.stub_backend()
    # Neovim's own vim.notify, as a user without a notification plugin has it.
    child.lua("vim.notify = _G.__builtin_notify")
    child.nvim.input("itext")
    child.wait("vim.api.nvim_get_mode().mode == 'i'")
    # A task that failed with a long, several-line error, as the backend reports it.
    child.lua(
        """
        local t = __add_task({ id = 1, name = 'a rather long task name for a narrow screen' })
        require('claude-tasks.events').dispatch({ type = 'started', task = t })
        t.status = ...
        t.error = 'the CLI exited with code 1:\\nerror: unknown option --bogus\\n' .. string.rep('x', 200)
        require('claude-tasks.events').dispatch({ type = t.status, task = t })
        -- After the notification (scheduled before): a redraw, then a file says it is over.
        local marker = select(2, ...)
        vim.schedule(function()
          vim.cmd('redraw')
          local f = io.open(marker, 'w'); f:write('ok'); f:close()
        end)
        """,
        {INFO: "completed", WARN: "cancelled", ERROR: "failed"}[level],
        str(marker),
    )
    # Only nvim_get_mode (a fast call) until then: a request would wait behind a prompt.
    deadline = time.monotonic() + 10
    while not marker.exists() or mode(child)["blocking"]:
        if mode(child)["blocking"]:
            # Answer the prompt (nvim_input is fast too) so that the child can be closed.
            child.nvim.input("<CR>")
            raise AssertionError("a Press-ENTER prompt in insert mode")
        assert time.monotonic() < deadline, "the notification never returned"
        time.sleep(0.01)
    assert mode(child) == {"mode": "i", "blocking": False}
    msgs = child.lua("return vim.api.nvim_exec2('messages', { output = true }).output")
    last = msgs.splitlines()[-1]
    assert last.startswith("claude-tasks: #1 a rather long")
    assert len(last) <= 60
    # Typing goes on.
    child.nvim.input(" more")
    child.wait("vim.api.nvim_get_current_line() == 'text more'")


def test_17_a_notification_plugin_gets_the_whole_line(child):
    child.lua("require('claude-tasks.notify').notify('one\\ntwo\\n\\tthree', vim.log.levels.WARN)")
    assert child.notes() == [{"msg": "one · two · three", "level": WARN}]


# 18 ---------------------------------------------------------------------------------------------

LIST_TASKS = """
local now = require('claude-tasks.format').now_ms()
local function f(path) return { path = path, status = 'modified', added = 1, removed = 0 } end
__add_task({ id = 1, name = 'fix the test', status = 'completed', duration_ms = 42100,
  cost_usd = 0.0312, created_at_ms = now - 3600 * 1000, runs = {
    { n = 1, files_changed = { f('a'), f('b'), f('c') }, changes = { root = '/p', files = 3 } },
    { n = 2, files_changed = { f('c'), f('d') },
      changes = { root = '/p', files = 2, added = 2, removed = 0 } } } })
__add_task({ id = 2, name = 'add docs', status = 'running', created_at_ms = now - 5000,
  started_at_ms = now - 3000 })
__add_task({ id = 3, name = 'later', status = 'queued', created_at_ms = now - 1000 })
__add_task({ id = 9, name = 'elsewhere', cwd = '/tmp/other-project', created_at_ms = now })
"""


def list_lines(child):
    return child.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)")


def test_18_task_list_one_line_per_task_newest_first(child):
    child.stub_backend()
    child.lua(LIST_TASKS)
    child.nvim.command("ClaudeTasks list")
    assert child.lua("return vim.fn.bufname()") == "claude tasks"
    lines = list_lines(child)
    assert len(lines) == 3  # not the other project's
    assert lines[0].startswith("⏳ #3   later") and "queued" in lines[0]
    assert lines[1].startswith("✻ #2   add docs") and "running" in lines[1]
    assert lines[2].startswith("✓ #1   fix the test")
    # The files its runs changed (issue 22's runs[].files_changed), each file once.
    for part in ("completed", "42.1s", "1h ago", "$0.0312", "4 files"):
        assert part in lines[2], (part, lines[2])
    assert "files" not in lines[0] + lines[1]  # not known (yet)
    assert child.lua("return vim.bo.modifiable") is False
    # A record lists a run's first 500 files; its total counts the others.
    assert child.lua(
        "return require('claude-tasks.list').files({ runs = { { files_changed = { { path = 'a' } },"
        " changes = { root = '/p', files = 612 } } } })"
    ) == "612 files"
    assert child.lua(
        "return require('claude-tasks.list').files({ runs = { { files_changed = {} } } })"
    ) == "0 files"


def test_18_task_list_follows_the_tasks(child):
    child.stub_backend()
    child.lua(LIST_TASKS)
    child.nvim.command("ClaudeTasks list")
    child.lua("vim.api.nvim_win_set_cursor(0, { 2, 0 })")
    # #2 completes; a new task #4 starts: the list says so, the cursor stays on #2.
    child.lua(
        """
        local t = _G.__tasks[2]
        for _, x in ipairs(_G.__tasks) do if x.id == 2 then t = x end end
        t.status = 'completed'; t.duration_ms = 5000; t.cost_usd = 0.5
        require('claude-tasks.events').dispatch({ type = 'completed', task = t })
        local n = __add_task({ id = 4, name = 'new one', created_at_ms = require('claude-tasks.format').now_ms() + 1 })
        require('claude-tasks.events').dispatch({ type = 'started', task = n })
        """
    )
    child.wait("#vim.api.nvim_buf_get_lines(0, 0, -1, false) == 4", what="the new task's line")
    lines = list_lines(child)
    assert lines[0].startswith("✻ #4   new one")
    assert lines[2].startswith("✓ #2") and "$0.5000" in lines[2]
    assert child.lua("return vim.api.nvim_win_get_cursor(0)[1]") == 3
    # A running task's duration ticks.
    child.lua("_G.__before = vim.api.nvim_buf_get_lines(0, 0, 1, false)[1]")
    child.wait("vim.api.nvim_buf_get_lines(0, 0, 1, false)[1] ~= _G.__before",
               timeout=3, what="the clock")


def test_18_task_list_keys(child):
    child.stub_backend()
    child.lua(LIST_TASKS)
    child.nvim.command("ClaudeTasks list")
    listwin = cur_win(child)

    def on(row, keys):
        child.lua("vim.api.nvim_set_current_win(...)", listwin)
        child.lua("vim.api.nvim_win_set_cursor(0, { %d, 0 })" % row)
        child.nvim.input(keys)
        child.flush()

    # c on a finished task: not for it
    on(3, "c")
    assert child.calls("cancel") == []
    # c: cancel the running #2 (asked first)
    on(2, "c")
    assert [c["id"] for c in child.calls("cancel")] == [2]
    assert child.lua("return _G.__confirms")[0].startswith("Cancel #2 add docs (running")
    # r: follow up on the finished #1, the prompt asked for
    child.lua("_G.__answers = { 'and the docs' }")
    on(3, "r")
    assert child.calls("resume") == [{"id": 1, "prompt": "and the docs", "cwd": os.getcwd()}]
    child.lua("for _, t in ipairs(_G.__tasks) do if t.id == 1 then t.status = 'completed' end end")
    # d: dispose of #1 (asked), its line goes
    on(3, "d")
    assert [c["id"] for c in child.calls("dispose")] == [1]
    child.wait("#vim.api.nvim_buf_get_lines(0, 0, -1, false) == 2")
    # <CR>: open #3's output
    on(1, "<CR>")
    assert child.lua("return vim.b.claude_task.id") == 3
    # q: close the list
    child.lua("vim.api.nvim_set_current_win(...)", listwin)
    child.nvim.input("q")
    child.wait("not vim.api.nvim_win_is_valid(%d)" % listwin)
    assert child.lua("return vim.fn.bufnr('claude tasks')") == -1
    assert errors(child) == []


def test_18_actions_come_from_one_table(child):
    """A feature adds a row once; the picker's menu and the list's keys both have it."""
    child.stub_backend()
    child.lua(LIST_TASKS)
    child.lua(
        """
        require('claude-tasks.actions').add({ name = 'shout', label = 'Shout', key = 'S',
          desc = 'shout', when = function(t) return t.status == 'completed' end,
          run = function(t) _G.__shouted = t.id end }, { before = 'dispose' })
        """
    )
    items = child.lua("return vim.tbl_map(function(a) return a.label end,"
                      " require('claude-tasks.picker').actions(_G.__tasks[4]))")
    assert items == ["Open output", "Follow up", "Open Claude's TUI on its session", "Transcript",
                     "Copy session id",
                     "Changes (quickfix): 2 files +2 −0", "Diff", "Revert", "Shout", "Dispose"]
    child.nvim.command("ClaudeTasks list")
    child.lua("vim.api.nvim_win_set_cursor(0, { 3, 0 })")
    child.nvim.input("S")
    child.wait("_G.__shouted == 1")


# 20 ---------------------------------------------------------------------------------------------

def test_20_cancel_of_a_running_task_and_dispose_ask_first(child):
    child.stub_backend()
    child.lua(LIST_TASKS)
    buf = child.lua("return require('claude-tasks').open(2)")
    # c in the output buffer cancels (<C-c> interrupts, issue 25: test_live_actions.py).
    cancel_key = "c"
    # "No": nothing happens.
    child.lua("_G.__confirm = 2")
    child.nvim.feedkeys(cancel_key, "x")
    assert child.calls("cancel") == []
    assert child.lua("return _G.__confirms")[0].startswith("Cancel #2 add docs (running for ")
    child.lua("_G.__confirm = 1")
    child.nvim.feedkeys(cancel_key, "x")
    assert [c["id"] for c in child.calls("cancel")] == [2]
    # A queued task loses nothing: no question.
    child.lua("require('claude-tasks').open(3)")
    n = len(child.lua("return _G.__confirms"))
    child.nvim.feedkeys(cancel_key, "x")
    assert [c["id"] for c in child.calls("cancel")] == [2, 3]
    assert len(child.lua("return _G.__confirms")) == n
    # dispose: asked; "no" keeps it; :ClaudeTasks! does not ask.
    child.lua("_G.__confirm = 2")
    child.nvim.command("ClaudeTasks dispose 1")
    assert child.calls("dispose") == []
    assert child.lua("return _G.__confirms")[-1].startswith("Dispose of #1 fix the test?")
    n = len(child.lua("return _G.__confirms"))
    child.nvim.command("ClaudeTasks! dispose 1")
    assert [c["id"] for c in child.calls("dispose")] == [1]
    assert len(child.lua("return _G.__confirms")) == n
    # confirm = false: never asked.
    child.lua("require('claude-tasks').setup({ confirm = false })")
    child.lua("for _, t in ipairs(_G.__tasks) do if t.id == 2 then t.status = 'running' end end")
    child.lua("vim.api.nvim_set_current_buf(...)", buf)
    child.nvim.feedkeys(cancel_key, "x")
    assert len(child.calls("cancel")) == 3 and len(child.lua("return _G.__confirms")) == n
    assert errors(child) == []


# 22 ---------------------------------------------------------------------------------------------

EXIT = """
-- A backend that runs, without starting one: what quitting looks at.
local b = require('claude-tasks.backend')
b.running = function() return true end
local t2 = __add_task({ id = 2, name = 'fix-failing-test' })
local t3 = __add_task({ id = 3, name = 'docs', status = 'queued' })
local done = __add_task({ id = 4, name = 'old', status = 'completed' })
for _, t in ipairs({ t2, t3, done }) do
  require('claude-tasks.events').dispatch({ type = t.status == 'queued' and 'queued' or 'started', task = t })
end
"""


def configures(child):
    """The configure requests quitting sent (setup() sends all the options)."""
    return [c for c in child.calls("configure") if list(c) == ["on_exit"]]


def test_22_quitting_with_on_exit_cancel_says_what_is_cancelled(child):
    child.stub_backend()
    child.lua(EXIT)
    child.lua("vim.api.nvim_exec_autocmds('ExitPre', {})")
    msgs = child.lua("return vim.api.nvim_exec2('messages', { output = true }).output")
    assert msgs.splitlines()[-1] == (
        "claude-tasks: quitting cancels #3 docs, #2 fix-failing-test")
    assert configures(child) == [{"on_exit": "cancel"}]
    # detach: nothing to say
    child.lua("require('claude-tasks').setup({ on_exit = 'detach' })")
    child.lua("vim.api.nvim_exec_autocmds('ExitPre', {})")
    assert len(configures(child)) == 1


@pytest.mark.parametrize("answer", [1, 2, 3])
def test_22_quitting_with_on_exit_ask_asks(child, answer):
    child.stub_backend()
    child.lua(EXIT)
    child.lua("require('claude-tasks').setup({ on_exit = 'ask' })")
    child.nvim.command("vsplit")
    child.lua("_G.__confirm = %d" % answer)
    # :qa: with "Stay" the editor is still here afterwards (the call returns).
    if answer == 3:
        child.nvim.command("qa")
        assert child.lua("return _G.__confirms") == [
            "claude-tasks: 2 tasks are running (#3 docs, #2 fix-failing-test)."]
        assert len(child.lua("return vim.api.nvim_list_wins()")) == 2
        assert configures(child) == []
        # :qa! does not ask (and cancels)
        child.lua("vim.fn.histadd(':', 'qa!')")
        child.lua("vim.api.nvim_exec_autocmds('ExitPre', {})")
        assert len(child.lua("return _G.__confirms")) == 1
        assert configures(child) == [{"on_exit": "cancel"}]
    else:
        child.lua("vim.api.nvim_exec_autocmds('ExitPre', {})")
        assert configures(child) == [{"on_exit": "cancel" if answer == 1 else "detach"}]
    # the backend is never told "ask": it does not know it
    child.lua("require('claude-tasks.backend').configure = nil")
    assert child.lua("return require('claude-tasks.config').get().on_exit") == "ask"


# 23 ---------------------------------------------------------------------------------------------

def test_23_statusline_shows_tasks_left_running_from_setup(child, tmp_path):
    import subprocess
    state = child.lua("return require('claude-tasks.config').state_dir()")
    os.makedirs(state, exist_ok=True)
    alive = subprocess.Popen(["sleep", "30"])
    try:
        with open("/proc/%d/stat" % alive.pid) as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19])
        gone = {"cwd": "/p", "id": 7, "name": "gone", "created_at_ms": 1, "pid": alive.pid,
                "start_time": started + 1}  # a reused pid: another process
        with open(os.path.join(state, "detached.json"), "w") as f:
            json.dump({"tasks": [
                {"cwd": os.getcwd(), "id": 3, "name": "left running", "created_at_ms": 1,
                 "started_at_ms": 2, "pid": alive.pid, "start_time": started},
                gone,
            ]}, f)
        # Nothing started at setup(): no backend, and the statusline is right at once.
        child.lua("require('claude-tasks.backend').ensure = function() _G.__started = true end")
        child.lua("require('claude-tasks').setup({ on_exit = 'detach' })")
        assert child.lua("return require('claude-tasks').statusline()") == "✻ 1"
        assert child.lua("return require('claude-tasks.backend').running()") is False
        assert child.lua("return _G.__started") is None
        # ... and a backend is started once the editor is up, which adopts it.
        child.wait("_G.__started == true", what="the backend started after startup")
    finally:
        alive.kill()
        alive.wait()


def test_23_no_file_costs_nothing_measurable(child):
    """setup() without tasks left running: the same cost as before (a failed stat)."""
    per_call_us = child.lua(
        """
        local ct = require('claude-tasks')
        ct.setup({})
        local n = 2000
        local t = vim.uv.hrtime()
        for _ = 1, n do ct.setup({}) end
        return (vim.uv.hrtime() - t) / n / 1000
        """
    )
    assert per_call_us < 200, per_call_us


# 25 ---------------------------------------------------------------------------------------------

def test_25_short_names_in_tab_labels_and_the_buffer_list(child, ui):
    ui(cols=100, rows=10)
    child.stub_backend()
    child.lua("__add_task({ id = 23, name = 'fix-failing-test' })")
    child.lua("require('claude-tasks').open(23, { open = 'tab' })")
    child.lua("vim.cmd('redraw!')")
    tabline = child.lua(
        "local s = {} for c = 0, vim.o.columns - 1 do s[#s + 1] = vim.api.nvim__inspect_cell(1, 0, c)[1] end"
        " return table.concat(s)"
    )
    assert "claude #23 fix-failing-test" in tabline, tabline
    assert "c//23" not in tabline
    ls = child.lua("return vim.api.nvim_exec2('ls!', { output = true }).output")
    assert '"claude #23 fix-failing-test"' in ls
