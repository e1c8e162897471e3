""":ClaudeTask and :ClaudeTasks against a stubbed backend (tests/plugin/stub_backend.lua)."""
import os

import pytest

ERROR = 4
INFO = 2


def run(child, cmd):
    """Runs an Ex command; errors shown by vim.notify are captured in _G.__notes."""
    child.nvim.command(cmd)


def errors(child):
    return [n["msg"] for n in child.notes() if n["level"] == ERROR]


def test_21_no_prompt_asks_for_it(child):
    child.stub_backend()
    child.lua("require('claude-tasks').setup({ open = false })")
    # Nothing typed (or only spaces): no task, no error.
    run(child, "ClaudeTask")
    child.lua("_G.__answers = { '   ' }")
    run(child, "ClaudeTask    ")
    assert child.lua("return _G.__inputs") == ["Claude task: ", "Claude task: "]
    assert child.calls("start") == [] and errors(child) == []
    # An answer is the prompt.
    child.lua("_G.__answers = { 'write the docs' }")
    run(child, "ClaudeTask")
    assert [s["prompt"] for s in child.calls("start")] == ["write the docs"]


@pytest.mark.parametrize(
    "args",
    [
        "list all TODOs",
        "open the file",  # looks like a subcommand of :ClaudeTasks: still a prompt
        'fix "quotes" | and bars % # <cword> \\n',
        "-p --flag looks like an option",
    ],
)
def test_prompt_is_the_whole_argument_verbatim(child, args):
    child.stub_backend()
    child.lua("require('claude-tasks').setup({ open = false })")
    run(child, "ClaudeTask " + args)
    starts = child.calls("start")
    assert len(starts) == 1
    assert starts[0]["prompt"] == args
    assert starts[0]["cwd"] == os.getcwd()
    assert errors(child) == []


def test_start_sends_the_options(child):
    child.stub_backend()
    child.lua(
        """require('claude-tasks').setup({ open = false, cmd = { 'fake', '--x' }, args = { '--a' },
        model = 'opus', permission_mode = 'plan', allowed_tools = { 'Read' } })"""
    )
    run(child, "ClaudeTask go")
    s = child.calls("start")[0]
    assert s["cmd"] == ["fake", "--x"]
    assert s["args"] == ["--a"]
    assert s["model"] == "opus"
    assert s["permission_mode"] == "plan"
    assert s["allowed_tools"] == ["Read"]
    # The API's per-task options win.
    child.lua("require('claude-tasks').start('p', { model = 'haiku', name = 'mine', cwd = '/tmp/' })")
    s = child.calls("start")[1]
    assert s["model"] == "haiku" and s["name"] == "mine" and s["cwd"] == "/tmp"


def test_start_opens_the_output_per_option(child):
    child.stub_backend()
    win = child.lua("return vim.api.nvim_get_current_win()")
    run(child, "ClaudeTask hello")
    # Shown beside, the cursor stays (focus = false).
    assert child.lua("return vim.api.nvim_get_current_win()") == win
    wins = child.lua("return vim.api.nvim_tabpage_list_wins(0)")
    assert len(wins) == 2
    out = [w for w in wins if w != win][0]
    buf = child.lua("return vim.api.nvim_win_get_buf(...)", out)
    assert child.lua("return vim.fn.bufname(...)", buf) == "claude #1 hello"
    attach = child.calls("attach")
    assert attach == [{"id": 1, "buf": buf, "cwd": os.getcwd()}]


def test_open_false_says_how_to_open(child):
    child.stub_backend()
    child.lua("require('claude-tasks').setup({ open = false })")
    run(child, "ClaudeTask hello")
    assert len(child.lua("return vim.api.nvim_tabpage_list_wins(0)")) == 1
    assert any(":ClaudeTasks open 1" in n["msg"] for n in child.notes())


def test_range_adds_the_lines_as_context(child):
    child.stub_backend()
    child.lua("require('claude-tasks').setup({ open = false })")
    os.makedirs("lua", exist_ok=True)
    with open("lua/foo.lua", "w") as f:
        f.write("local a = 1\nlocal b = 2\nlocal c = '```'\nreturn a\n")
    run(child, "edit lua/foo.lua")
    run(child, "2,3ClaudeTask explain this")
    prompt = child.calls("start")[0]["prompt"]
    assert prompt == (
        "explain this\n\nContext: lua/foo.lua lines 2-3:\n````lua\nlocal b = 2\nlocal c = '```'\n````"
    )
    run(child, "4ClaudeTask and this")
    prompt = child.calls("start")[1]["prompt"]
    assert prompt == "and this\n\nContext: lua/foo.lua line 4:\n```lua\nreturn a\n```"


def test_visual_range_from_a_mapping(child):
    child.stub_backend()
    child.lua("require('claude-tasks').setup({ open = false })")
    child.lua(
        "vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'one', 'two', 'three' });"
        "vim.bo.filetype = 'python'"
    )
    child.nvim.input(":1,2ClaudeTask why<CR>")
    child.wait("#_G.__calls_of('start') == 1")
    prompt = child.calls("start")[0]["prompt"]
    assert prompt == "why\n\nContext: [No Name] lines 1-2:\n```python\none\ntwo\n```"


def test_21_range_without_prompt_asks_and_keeps_the_range(child):
    child.stub_backend()
    child.lua("require('claude-tasks').setup({ open = false })")
    child.lua("vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'one', 'two', 'three' })")
    # The answer comes when another buffer is current (a float input, say): the lines are the
    # range's, taken when the command ran.
    child.lua(
        """
        vim.ui.input = function(opts, cb)
          _G.__prompt = opts.prompt
          vim.schedule(function()
            vim.cmd('enew')
            vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'other' })
            cb('why so')
          end)
        end
        """
    )
    run(child, "2,3ClaudeTask")
    child.wait("#_G.__calls_of('start') == 1")
    assert child.lua("return _G.__prompt") == "Claude task ([No Name]:2-3): "
    prompt = child.calls("start")[0]["prompt"]
    assert prompt == "why so\n\nContext: [No Name] lines 2-3:\n```\ntwo\nthree\n```"
    # Cancelled input: nothing.
    child.lua("vim.ui.input = function(opts, cb) cb(nil) end")
    run(child, "%ClaudeTask")
    assert len(child.calls("start")) == 1 and errors(child) == []


def add_tasks(child):
    child.lua(
        """
        __add_task({ id = 1, name = 'fix the test', status = 'completed', duration_ms = 42100 })
        __add_task({ id = 2, name = 'Add docs', status = 'running' })
        __add_task({ id = 3, name = 'fix the build', status = 'running' })
        """
    )


def complete(child, line):
    return child.lua("return vim.fn.getcompletion(..., 'cmdline')", line)


def test_19_completion_names_the_tasks_a_subcommand_can_act_on(child):
    child.stub_backend()
    add_tasks(child)
    assert complete(child, "ClaudeTasks open ") == [
        "3 fix the build", "2 Add docs", "1 fix the test"]
    # cancel: only running or queued tasks; resume and dispose: only finished ones
    assert complete(child, "ClaudeTasks cancel ") == ["3 fix the build", "2 Add docs"]
    assert complete(child, "ClaudeTasks resume ") == ["1 fix the test"]
    assert complete(child, "ClaudeTasks dispose ") == ["1 fix the test"]
    # a part of a name, or the start of an id, completes
    assert complete(child, "ClaudeTasks open FIX") == ["3 fix the build", "1 fix the test"]
    assert complete(child, "ClaudeTasks open 2") == ["2 Add docs"]
    assert complete(child, "ClaudeTasks cancel test") == []
    # no completion after the task
    assert complete(child, "ClaudeTasks open 1 fix the test ") == []
    assert complete(child, "ClaudeTasks nope ") == []
    assert complete(child, "ClaudeTasks pick ") == ["all"]


def test_19_a_completed_task_with_its_name_is_its_id(child):
    child.stub_backend()
    add_tasks(child)
    child.lua("require('claude-tasks').setup({ open = false, confirm = false })")
    run(child, "ClaudeTasks cancel 3 fix the build")
    assert [c["id"] for c in child.calls("cancel")] == [3]
    # resume: the name after the id is not part of the prompt
    run(child, "ClaudeTasks resume 1 fix the test and now the docs")
    run(child, "ClaudeTasks resume 1 fix the test")
    run(child, "ClaudeTasks resume 1 fixes first")
    assert [c["prompt"] for c in child.calls("resume")] == ["and now the docs", "fixes first"]
    assert child.lua("return _G.__inputs") == ["Follow up on #1: "]
    assert errors(child) == []


def test_cancel_by_id_and_by_unique_name_part(child):
    child.stub_backend()
    add_tasks(child)
    run(child, "ClaudeTasks cancel 2")
    run(child, "ClaudeTasks cancel BUILD")
    assert [c["id"] for c in child.calls("cancel")] == [2, 3]
    assert errors(child) == []


def test_ambiguous_name_opens_a_narrowed_picker(child):
    child.stub_backend()
    add_tasks(child)
    child.lua(
        """
        _G.__selects = {}
        vim.ui.select = function(items, opts, cb)
          local shown = {}
          for i, it in ipairs(items) do shown[i] = opts.format_item(it) end
          table.insert(_G.__selects, { prompt = opts.prompt, items = shown })
          cb(items[2], 2)
        end
        """
    )
    run(child, "ClaudeTasks open fix")
    sel = child.lua("return _G.__selects")
    assert len(sel) == 1
    assert [s.split()[0] for s in sel[0]["items"]] == ["#3", "#1"]
    assert child.lua("return vim.fn.bufname()") == "claude #1 fix the test"


def test_cancel_without_id_picks_among_running(child):
    child.stub_backend()
    add_tasks(child)
    child.lua(
        """
        vim.ui.select = function(items, opts, cb)
          if opts.kind == 'claude-tasks' then
            _G.__items = vim.tbl_map(function(t) return t.id end, items)
          end
          cb(items[1], 1)  -- the task, then "Cancel it"
        end
        """
    )
    run(child, "ClaudeTasks cancel")
    assert child.lua("return _G.__items") == [3, 2]
    assert [c["id"] for c in child.calls("cancel")] == [3]


def test_unknown_subcommand_and_id_list_what_is_valid(child):
    child.stub_backend()
    add_tasks(child)
    run(child, "ClaudeTasks frobnicate 1")
    run(child, "ClaudeTasks open 9")
    run(child, "ClaudeTasks open zebra")
    errs = errors(child)
    assert "unknown subcommand 'frobnicate'" in errs[0]
    for sub in ("open [id]", "cancel [id]", "resume {id} {prompt}", "dispose {id}", "log {id}"):
        assert sub in errs[0]
    assert "no task matches '9'" in errs[1] and "1 (fix the test)" in errs[1]
    assert "3 (fix the build)" in errs[1]
    assert "no task matches 'zebra'" in errs[2]


def test_resume_sends_the_rest_as_prompt(child):
    child.stub_backend()
    add_tasks(child)
    child.lua("require('claude-tasks').setup({ open = false })")
    run(child, "ClaudeTasks resume 1 now also   fix | the docs")
    assert child.calls("resume") == [{"id": 1, "prompt": "now also   fix | the docs", "cwd": os.getcwd()}]
    run(child, "ClaudeTasks resume")
    assert "usage: :ClaudeTasks resume {id} {prompt}" in errors(child)[0]


def test_resume_without_prompt_asks(child):
    child.stub_backend()
    add_tasks(child)
    child.lua("require('claude-tasks').setup({ open = false })")
    child.lua("vim.ui.input = function(opts, cb) _G.__input = opts.prompt; cb('more please') end")
    run(child, "ClaudeTasks resume docs")
    assert child.lua("return _G.__input") == "Follow up on #2: "
    assert child.calls("resume")[0]["prompt"] == "more please"


def test_dispose_wipes_the_buffer(child):
    child.stub_backend()
    add_tasks(child)
    run(child, "ClaudeTasks open 1")
    buf = child.lua("return vim.api.nvim_get_current_buf()")
    run(child, "ClaudeTasks dispose 1")
    assert child.calls("dispose") == [{"id": 1, "cwd": os.getcwd()}]
    assert child.lua("return vim.api.nvim_buf_is_valid(%d)" % buf) is False


def test_13_log_follows_the_transcript_and_closes_with_q(child):
    child.stub_backend()
    add_tasks(child)
    path = child.lua("return _G.__tasks[3].transcript")
    with open(path, "w") as f:
        f.write('{"type":"system"}\n{"type":"assistant","n":1}\n')
    win = child.lua("return vim.api.nvim_get_current_win()")
    run(child, "ClaudeTasks log 1")
    assert child.lua("return vim.fn.bufname()") == "claude #1 log"
    assert child.lua("return { vim.bo.modifiable, vim.bo.buftype }") == [False, "nofile"]
    child.wait("vim.api.nvim_buf_line_count(0) == 2")
    # Appended lines come in (a line without its newline waits for it); the window follows.
    with open(path, "a") as f:
        f.write('{"type":"result"}\n{"type":"par')
    child.wait("vim.api.nvim_buf_line_count(0) == 3", what="the appended line")
    with open(path, "a") as f:
        f.write('tial"}\n')
    child.wait("vim.api.nvim_buf_line_count(0) == 4", what="the completed line")
    assert child.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)") == [
        '{"type":"system"}', '{"type":"assistant","n":1}', '{"type":"result"}',
        '{"type":"partial"}']
    assert child.lua("return vim.api.nvim_win_get_cursor(0)[1]") == 4
    # Opening it again shows the same buffer; q closes its window.
    buf = child.lua("return vim.api.nvim_get_current_buf()")
    run(child, "ClaudeTasks log 1")
    assert child.lua("return vim.api.nvim_get_current_buf()") == buf
    child.nvim.input("q")
    child.wait("vim.api.nvim_get_current_win() == %d" % win)
    assert child.lua("return vim.api.nvim_buf_is_valid(%d)" % buf) is False


def test_errors_are_clean(child):
    child.stub_backend()
    r = child.lua("local t, err = require('claude-tasks').get(7); return { t = t, err = err }")
    assert "t" not in r
    assert r["err"].startswith("claude-tasks: no task 7")
    assert "Error invoking" not in r["err"] and "channel" not in r["err"]
