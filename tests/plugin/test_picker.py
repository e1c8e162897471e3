"""The picker (vim.ui.select) and its actions, against a stubbed backend."""
import os
import re

SELECT_STUB = """
_G.__selects = {}
_G.__choose = {}   -- labels/indexes to choose, in order
vim.ui.select = function(items, opts, cb)
  local shown = {}
  for i, it in ipairs(items) do shown[i] = opts.format_item and opts.format_item(it) or it end
  table.insert(_G.__selects, { prompt = opts.prompt, kind = opts.kind, items = shown })
  local want = table.remove(_G.__choose, 1)
  if want == nil then return cb(nil, nil) end
  for i, s in ipairs(shown) do
    if s == want or i == want then return cb(items[i], i) end
  end
  cb(nil, nil)
end
"""


def setup_picker(child):
    child.stub_backend()
    child.lua(SELECT_STUB)
    child.lua(
        """
        local now = require('claude-tasks.format').now_ms()
        __add_task({ id = 1, name = 'fix the test', status = 'completed', duration_ms = 42100,
          created_at_ms = now - 60000 })
        __add_task({ id = 2, name = 'add docs', status = 'running', created_at_ms = now - 5000,
          started_at_ms = now - 3000 })
        __add_task({ id = 3, name = 'later', status = 'queued', created_at_ms = now - 1000 })
        """
    )


def selects(child):
    return child.lua("return _G.__selects")


def test_entries_newest_first(child):
    setup_picker(child)
    child.nvim.command("ClaudeTasks")
    (sel,) = selects(child)
    assert sel["kind"] == "claude-tasks"
    items = sel["items"]
    here = os.path.basename(os.getcwd())
    assert [i.split()[0] for i in items] == ["#3", "#2", "#1", "…"]
    assert items[3] == "… tasks of other projects"
    assert re.match(r"^#3 queued +\d+\.\ds later · .*%s$" % re.escape(here), items[0]), items[0]
    assert re.match(r"^#2 running +3\.\ds add docs · ", items[1]), items[1]
    assert re.match(r"^#1 completed +42\.1s fix the test · ", items[2]), items[2]


def test_actions_of_a_finished_task(child):
    setup_picker(child)
    child.lua("_G.__choose = { 3, 'Copy session id' }")
    child.lua("require('claude-tasks').pick()")
    sels = selects(child)
    assert sels[1]["items"] == [
        "Open output",
        "Follow up",
        "Open Claude's TUI on its session",
        "Transcript",
        "Copy session id",
        "Dispose",
    ]
    assert sels[1]["prompt"] == "#1 fix the test"
    assert child.lua("return vim.fn.getreg('\"')") == "sid-1"


def test_actions_of_a_running_task(child):
    setup_picker(child)
    # a running task: asked first (issue 23, item 20)
    child.lua("_G.__choose = { 2, 'Cancel', 'Cancel it' }")
    child.lua("require('claude-tasks').pick()")
    sels = selects(child)
    assert sels[1]["items"] == [
        "Open output",
        "Say… (now, into the running turn or right after it)",
        "Interrupt (stop this turn; the task waits for your next message)",
        "Cancel",
        "Transcript",
        "Copy session id",
    ]
    assert sels[2]["items"] == ["Cancel it", "No"]
    assert sels[2]["prompt"].startswith("Cancel #2 add docs (running for ")
    assert child.calls("cancel") == [{"id": 2, "cwd": os.getcwd()}]
    # "No" keeps it running
    child.lua("_G.__choose = { 2, 'Cancel', 'No' }")
    child.lua("require('claude-tasks').pick()")
    assert len(child.calls("cancel")) == 1


def test_open_and_dispose_actions(child):
    setup_picker(child)
    child.lua("_G.__choose = { 1, 'Open output' }")
    child.lua("require('claude-tasks').pick()")
    assert child.lua("return vim.fn.bufname()") == "claude #3 later"
    child.lua("_G.__choose = { 3, 'Dispose', 'Dispose' }")
    child.lua("require('claude-tasks').pick()")
    assert child.calls("dispose") == [{"id": 1, "cwd": os.getcwd()}]
    assert selects(child)[-1]["prompt"] == (
        "Dispose of #1 fix the test? Its output and transcript are deleted.")


def test_follow_up_action(child):
    setup_picker(child)
    child.lua("require('claude-tasks').setup({ open = false })")
    child.lua("vim.ui.input = function(o, cb) cb('again') end")
    child.lua("_G.__choose = { 3, 'Follow up' }")
    child.lua("require('claude-tasks').pick()")
    assert child.calls("resume") == [{"id": 1, "prompt": "again", "cwd": os.getcwd()}]


def test_18_picker_shows_other_projects_only_on_request(child):
    setup_picker(child)
    child.lua(
        """
        __add_task({ id = 1, name = 'elsewhere', cwd = '/tmp/other-project',
          created_at_ms = require('claude-tasks.format').now_ms() })
        require('claude-tasks.events').dispatch({ type = 'started', task = _G.__tasks[1] })
        """
    )
    # This project's tasks, and an entry that asks for the others...
    child.lua("_G.__choose = { 4, 1 }")
    child.lua("require('claude-tasks').pick()")
    first, every = selects(child)[0]["items"], selects(child)[1]["items"]
    assert [i.split()[0] for i in first] == ["#3", "#2", "#1", "…"]
    assert not any("other-project" in i for i in first)
    # ... which opens the picker of every project.
    assert every[0].startswith("#1 running") and every[0].endswith("· /tmp/other-project")
    assert len(every) == 4
    child.nvim.command("ClaudeTasks pick all")
    assert selects(child)[3]["items"] == every


def test_empty_picker_says_so(child):
    child.stub_backend()
    child.lua(SELECT_STUB)
    child.nvim.command("ClaudeTasks")
    assert selects(child) == []
    assert "no task yet" in child.notes()[0]["msg"]
