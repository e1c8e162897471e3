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


def test_empty_prompt_is_an_error_not_a_task(child):
    child.stub_backend()
    run(child, "ClaudeTask")
    run(child, "ClaudeTask    ")
    errs = errors(child)
    assert len(errs) == 2
    assert all("needs a prompt" in e for e in errs)
    assert child.calls("start") == []


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
    run(child, "ClaudeTask hello")
    assert child.lua("return vim.api.nvim_buf_get_name(0)") == "claude-tasks://1"
    assert len(child.lua("return vim.api.nvim_tabpage_list_wins(0)")) == 2
    attach = child.calls("attach")
    assert attach == [{"id": 1, "buf": child.lua("return vim.api.nvim_get_current_buf()"), "cwd": os.getcwd()}]


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


def test_range_with_empty_prompt_is_an_error(child):
    child.stub_backend()
    run(child, "%ClaudeTask")
    assert len(errors(child)) == 1
    assert child.calls("start") == []


def add_tasks(child):
    child.lua(
        """
        __add_task({ id = 1, name = 'fix the test', status = 'completed', duration_ms = 42100 })
        __add_task({ id = 2, name = 'Add docs', status = 'running' })
        __add_task({ id = 3, name = 'fix the build', status = 'running' })
        """
    )


def test_id_completion(child):
    child.stub_backend()
    add_tasks(child)
    assert child.lua("return vim.fn.getcompletion('ClaudeTasks open ', 'cmdline')") == ["3", "2", "1"]
    # cancel: only running or queued tasks
    assert child.lua("return vim.fn.getcompletion('ClaudeTasks cancel ', 'cmdline')") == ["3", "2"]
    # a part of a name completes to the ids
    assert child.lua("return vim.fn.getcompletion('ClaudeTasks open FIX', 'cmdline')") == ["3", "1"]
    assert child.lua("return vim.fn.getcompletion('ClaudeTasks resume 2', 'cmdline')") == ["2"]
    # no completion after the id
    assert child.lua("return vim.fn.getcompletion('ClaudeTasks open 1 ', 'cmdline')") == []
    assert child.lua("return vim.fn.getcompletion('ClaudeTasks nope ', 'cmdline')") == []


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
    assert child.lua("return vim.api.nvim_buf_get_name(0)") == "claude-tasks://1"


def test_cancel_without_id_picks_among_running(child):
    child.stub_backend()
    add_tasks(child)
    child.lua(
        """
        vim.ui.select = function(items, opts, cb)
          _G.__items = vim.tbl_map(function(t) return t.id end, items)
          cb(items[1], 1)
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


def test_log_opens_the_transcript_read_only(child):
    child.stub_backend()
    add_tasks(child)
    path = child.lua("return _G.__tasks[3].transcript")
    with open(path, "w") as f:
        f.write('{"type":"result"}\n')
    run(child, "ClaudeTasks log 1")
    assert child.lua("return vim.api.nvim_buf_get_name(0)") == path
    assert child.lua("return { vim.bo.readonly, vim.bo.modifiable }") == [True, False]


def test_errors_are_clean(child):
    child.stub_backend()
    r = child.lua("local t, err = require('claude-tasks').get(7); return { t = t, err = err }")
    assert "t" not in r
    assert r["err"].startswith("claude-tasks: no task 7")
    assert "Error invoking" not in r["err"] and "channel" not in r["err"]
