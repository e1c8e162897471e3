"""Issue 25 in issue 23's places (the stubbed backend, stub_backend.lua): an idle task (its run
over, its Claude kept alive) in the task list, the picker and the statusline; interrupt, say,
TUI and close as rows of the actions table, keys of the task list; the output buffer's keys
side by side: <C-c> interrupts without a question, c cancels after one, <CR> jumps to a file on
a line of the output and opens the prompt window on the last line; the sign of life at an
output's tail: none while the task idles, back during a warm follow-up's turn."""
import os

from test_buffer import open_task, write

ERROR, WARN, INFO = 4, 3, 2

TASKS = """
local now = require('claude-tasks.format').now_ms()
__add_task({ id = 1, name = 'warm', status = 'completed', duration_ms = 4200,
  created_at_ms = now - 30000, live = { since_ms = now - 1000, until_ms = now + 600000 } })
__add_task({ id = 2, name = 'busy', status = 'running', created_at_ms = now - 20000,
  started_at_ms = now - 3000 })
__add_task({ id = 3, name = 'cold', status = 'completed', duration_ms = 1000,
  created_at_ms = now - 10000 })
for _, t in ipairs(_G.__tasks) do require('claude-tasks.state').put(t) end
"""


def list_lines(child):
    return child.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)")


def labels(child, id_):
    return child.lua(
        "return vim.tbl_map(function(a) return a.label end,"
        " require('claude-tasks.picker').actions(require('claude-tasks').get(...)))",
        id_,
    )


def test_an_idle_task_is_idle_in_the_list_the_picker_and_not_in_the_statusline(child):
    child.stub_backend()
    child.lua(TASKS)
    child.nvim.command("ClaudeTasks list")
    lines = list_lines(child)
    # Newest first: #3, #2, #1.
    assert lines[2].startswith("✓ #1   warm") and " idle " in lines[2], lines
    assert "completed" not in lines[2]
    assert " running " in lines[1] and " completed " in lines[0]
    # The statusline counts the running task only.
    assert child.lua("return require('claude-tasks.state').statusline()") == "✻ 1"
    assert child.lua("return require('claude-tasks.format').entry(require('claude-tasks')"
                     ".get(1))").startswith("#1 idle ")
    assert labels(child, 1) == [
        "Open output",
        "Follow up (its Claude is live)",
        "Open Claude's TUI on its session",
        "Close its idle Claude",
        "Transcript",
        "Copy session id",
        "Dispose",
    ]
    assert labels(child, 3)[:3] == ["Open output", "Follow up", "Open Claude's TUI on its session"]
    assert "Close its idle Claude" not in labels(child, 3)


def test_the_task_list_interrupts_says_closes_and_opens_the_tui(child):
    child.stub_backend()
    child.lua(TASKS)
    child.lua("_G.__tui = {}; require('claude-tasks').tui = function(t)"
              " table.insert(_G.__tui, t.id); return 1 end")
    child.nvim.command("ClaudeTasks list")
    listwin = child.lua("return vim.api.nvim_get_current_win()")
    cwd = os.getcwd()

    def on(row, keys):
        child.lua("vim.api.nvim_set_current_win(...)", listwin)
        child.lua("vim.api.nvim_win_set_cursor(0, { %d, 0 })" % row)
        child.nvim.input(keys)
        child.flush()

    # <C-c> on the running #2: interrupted, nothing asked (nothing is lost).
    on(2, "<C-c>")
    assert child.calls("interrupt") == [{"id": 2, "cwd": cwd}]
    assert child.calls("cancel") == [] and child.lua("return _G.__confirms") == []
    # On a finished task it is not for it: said, nothing sent.
    on(3, "<C-c>")
    assert len(child.calls("interrupt")) == 1
    assert "Interrupt" in child.notes()[-1]["msg"] and child.notes()[-1]["level"] == WARN
    # r on the running #2 says something to it (the prompt asked for).
    child.lua("_G.__answers = { 'and the docs' }")
    on(2, "r")
    assert child.calls("resume") == [{"id": 2, "prompt": "and the docs", "cwd": cwd}]
    # c on the idle #1 closes its Claude: no question, the session stays.
    on(3, "c")
    assert child.calls("cancel") == [{"id": 1, "cwd": cwd}]
    assert child.lua("return _G.__confirms") == []
    # T on the finished #3: Claude's TUI on its session.
    on(1, "T")
    assert child.lua("return _G.__tui") == [3]
    # g? names the new keys.
    on(1, "g?")
    help_ = child.notes()[-1]["msg"]
    for part in ("<C-c> interrupt", "T tui", "r say", "c cancel"):
        assert part in help_, help_
    assert [n["msg"] for n in child.notes() if n["level"] == ERROR] == []


def test_completion_offers_say_interrupt_and_tui_with_names(child):
    child.stub_backend()
    child.lua(TASKS)

    def complete(line):
        return child.lua("return vim.fn.getcompletion(..., 'cmdline')", line)

    assert {"say", "interrupt", "tui"} <= set(complete("ClaudeTasks "))
    assert complete("ClaudeTasks interrupt ") == ["2 busy"]
    assert sorted(complete("ClaudeTasks tui ")) == ["1 warm", "3 cold"]
    assert sorted(complete("ClaudeTasks say ")) == ["1 warm", "2 busy", "3 cold"]
    # The name completion inserted is not part of the message.
    child.nvim.command("ClaudeTasks say 2 busy also the docs")
    assert child.calls("resume") == [{"id": 2, "prompt": "also the docs", "cwd": os.getcwd()}]


def test_output_keys_ctrl_c_interrupts_c_cancels_cr_jumps_or_opens_the_prompt(child):
    os.makedirs("src")
    with open(os.path.join("src", "a.lua"), "w") as f:
        f.write("return 1\n")
    buf = open_task(child)
    write(child, buf, 0, ["# #1 demo", "● Read(src/a.lua)", "  ⎿ 1 line", "reading it"])
    out = child.lua("return vim.api.nvim_get_current_win()")
    # <C-c>: interrupt, no question.
    child.nvim.input("<C-c>")
    child.flush()
    assert child.calls("interrupt") == [{"id": 1, "cwd": os.getcwd()}]
    assert child.lua("return _G.__confirms") == [] and child.calls("cancel") == []
    # c: cancel, after a question ("No" keeps it running, then "Cancel it").
    child.lua("_G.__confirm = 2")
    child.nvim.input("c")
    child.flush()
    assert child.calls("cancel") == []
    assert child.lua("return _G.__confirms")[0].startswith("Cancel #1 demo (running")
    child.lua("_G.__confirm = 1")
    child.nvim.input("c")
    child.flush()
    assert child.calls("cancel") == [{"id": 1, "cwd": os.getcwd()}]
    # <CR> on a line naming a file: the file, in another window.
    child.lua("vim.api.nvim_win_set_cursor(0, { 2, 0 })")
    child.nvim.input("<CR>")
    child.wait("vim.api.nvim_get_current_buf() ~= %d" % buf, what="the file opened")
    assert child.lua("return vim.api.nvim_buf_get_name(0)") == os.path.join(os.getcwd(), "src",
                                                                            "a.lua")
    assert child.lua("return vim.b.claude_task_prompt") is None
    # <CR> on the last line: the prompt window under the output.
    child.lua("vim.api.nvim_set_current_win(...)", out)
    child.lua("vim.api.nvim_win_set_cursor(0, { 4, 0 })")
    child.nvim.input("<CR>")
    child.wait("vim.b.claude_task_prompt ~= nil", what="the prompt window")
    assert child.lua("return vim.bo.filetype") == "markdown"
    assert child.lua("return vim.fn.bufname()") == "claude #1 prompt"
    # The output buffer is still found by b:claude_task, the prompt's by its own variable.
    assert child.lua("return vim.b[...].claude_task", buf) == {"id": 1, "cwd": os.getcwd()}
    assert child.lua("return vim.b.claude_task") is None
    assert [n["msg"] for n in child.notes() if n["level"] == ERROR] == []


ACTIVITY = ("#vim.api.nvim_buf_get_extmarks(%d,"
            " require('claude-tasks.activity').ns, 0, -1, {})")


def test_no_sign_of_life_while_idle_and_one_during_a_warm_follow_up(child):
    buf = open_task(child)
    child.lua("require('claude-tasks.events').dispatch({ type = 'started', task = _G.__tasks[1] })")
    write(child, buf, 0, ["# #1 demo", "", "the answer"])
    child.wait((ACTIVITY % buf) + " == 1", what="the sign of life")
    # The run is over and its Claude idles, waiting for the user: no spinner.
    child.lua("local t = _G.__tasks[1]; t.status = 'completed'; t.live = { since_ms = 1,"
              " until_ms = 2 }; require('claude-tasks.events').dispatch({ type = 'completed',"
              " task = t })")
    assert child.lua("return " + ACTIVITY % buf) == 0
    child.wait("not require('claude-tasks.activity').ticking()", what="the clock stops")
    assert child.lua("return require('claude-tasks.activity').text(_G.__tasks[1])") is None
    # A warm follow-up: the same Claude takes the next turn, the sign is back.
    child.lua("local t = _G.__tasks[1]; t.status = 'running'; t.live = nil;"
              " require('claude-tasks.events').dispatch({ type = 'started', task = t })")
    write(child, buf, 3, ["", "── ↻ follow-up #2 (live): and then? ──"])
    child.wait((ACTIVITY % buf) + " == 1", what="the sign of life again")
    row = child.lua("return vim.api.nvim_buf_get_extmarks(%d, require('claude-tasks.activity')"
                    ".ns, 0, -1, {})[1][2]" % buf)
    assert row == 4


def test_cancel_of_an_idle_task_closes_its_claude_without_a_question(child):
    """`:ClaudeTasks cancel 1` of a task whose Claude idles closes that Claude (the backend's
    cancel of an idle task), as before the actions table: not "not for it"."""
    child.stub_backend()
    child.lua(TASKS)
    child.nvim.command("ClaudeTasks cancel 1")
    child.flush()
    assert child.calls("cancel") == [{"id": 1, "cwd": os.getcwd()}]
    assert child.lua("return _G.__confirms") == []
    # A finished task without a live Claude: nothing to cancel, said so.
    child.nvim.command("ClaudeTasks cancel 3")
    child.flush()
    assert len(child.calls("cancel")) == 1
    assert child.notes()[-1]["level"] == WARN
