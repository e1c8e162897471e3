"""events.dispatch: cache, statusline, User autocmds, notifications."""
import pytest

ERROR, WARN, INFO = 4, 3, 2

RECORD = """
local function rec(id, status, extra)
  local t = {
    schema = 1, id = id, name = 'fix the test', cwd = vim.fn.getcwd(), status = status,
    session_id = 'sess-' .. id, created_at_ms = 1000, started_at_ms = 1000,
    cost_usd = 0, num_turns = 0, cancel_requested = false,
    options = { cmd = { 'claude' }, permission_mode = 'acceptEdits', allowed_tools = {}, args = {} },
    runs = { { n = 1, prompt_title = 'fix the test', transcript_offset = 0, status = status } },
  }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end
_G.__rec = rec
_G.__ev = {}
vim.api.nvim_create_autocmd('User', {
  pattern = 'ClaudeTask*',
  callback = function(a) table.insert(_G.__ev, { pattern = a.match, data = a.data }) end,
})
"""


def setup_events(child):
    child.lua(RECORD)


def dispatch(child, typ, id_, status, extra="{}"):
    return child.lua(
        "return require('claude-tasks.events').dispatch({ type = '%s', task = __rec(%d, '%s', %s) })"
        % (typ, id_, status, extra)
    )


def events(child):
    child.flush()
    return child.lua("return _G.__ev")


def statusline(child):
    return child.lua("return require('claude-tasks').statusline()")


def test_started_then_completed(child):
    setup_events(child)
    assert statusline(child) == ""
    assert dispatch(child, "started", 3, "running") is True
    assert statusline(child) == "✻ 1"  # at once, not scheduled
    ev = events(child)
    assert [e["pattern"] for e in ev] == ["ClaudeTaskStarted"]
    assert dispatch(
        child,
        "completed",
        3,
        "completed",
        "{ duration_ms = 42100, cost_usd = 0.0312, num_turns = 6, exit_code = 0, result = 'ok' }",
    )
    assert statusline(child) == ""
    ev = events(child)
    assert [e["pattern"] for e in ev] == [
        "ClaudeTaskStarted",
        "ClaudeTaskCompleted",
        "ClaudeTaskDone",
    ]
    import os

    assert ev[1]["data"] == {
        "id": 3,
        "name": "fix the test",
        "status": "completed",
        "cwd": os.getcwd(),
        "exit_code": 0,
        "duration_ms": 42100,
        "session_id": "sess-3",
        "cost_usd": 0.0312,
        "num_turns": 6,
        "result": "ok",
        "denied": [],
        "interrupted": False,
        "live": False,
    }
    assert ev[2]["data"] == ev[1]["data"]
    notes = child.notes()
    assert notes == [
        {"msg": "claude-tasks: #3 fix the test — done in 42.1s · $0.0312", "level": INFO}
    ]


@pytest.mark.parametrize(
    "typ,status,pattern,level,text",
    [
        ("failed", "failed", "ClaudeTaskFailed", ERROR, "— failed after 2.0s: API error 500"),
        ("cancelled", "cancelled", "ClaudeTaskCancelled", WARN, "— cancelled after 2.0s"),
        ("failed", "interrupted", "ClaudeTaskFailed", WARN, "— interrupted"),
    ],
)
def test_outcomes(child, typ, status, pattern, level, text):
    setup_events(child)
    dispatch(child, "started", 1, "running")
    dispatch(child, typ, 1, status, "{ duration_ms = 2000, error = 'API error 500', exit_code = 1 }")
    ev = events(child)
    assert [e["pattern"] for e in ev] == ["ClaudeTaskStarted", pattern, "ClaudeTaskDone"]
    assert ev[2]["data"]["status"] == status
    (note,) = child.notes()
    assert note["level"] == level
    assert text in note["msg"]


def test_interrupted_by_update_of_a_live_task(child):
    setup_events(child)
    dispatch(child, "started", 1, "running")
    dispatch(child, "updated", 1, "interrupted")
    assert [e["pattern"] for e in events(child)] == [
        "ClaudeTaskStarted",
        "ClaudeTaskFailed",
        "ClaudeTaskDone",
    ]
    # An old interrupted task showing up again is not news.
    dispatch(child, "updated", 2, "interrupted")
    assert len(events(child)) == 3


def test_repeated_events_fire_once_per_run(child):
    setup_events(child)
    dispatch(child, "started", 1, "running")
    dispatch(child, "updated", 1, "running")
    dispatch(child, "started", 1, "running")
    dispatch(child, "completed", 1, "completed")
    dispatch(child, "completed", 1, "completed")
    assert [e["pattern"] for e in events(child)] == [
        "ClaudeTaskStarted",
        "ClaudeTaskCompleted",
        "ClaudeTaskDone",
    ]
    # A follow-up run is a new run.
    runs2 = "{ runs = { { n = 1, status = 'completed' }, { n = 2, status = 'running' } } }"
    dispatch(child, "started", 1, "running", runs2)
    assert [e["pattern"] for e in events(child)][-1] == "ClaudeTaskStarted"
    assert len(events(child)) == 4


def test_queued_and_statusline_counts(child):
    setup_events(child)
    dispatch(child, "started", 1, "running")
    dispatch(child, "started", 2, "running")
    dispatch(child, "queued", 3, "queued")
    assert statusline(child) == "✻ 2 ⏳ 1"
    assert [e["pattern"] for e in events(child)][-1] == "ClaudeTaskQueued"
    child.lua("require('claude-tasks').setup({ statusline = { icon = 'R', queued_icon = 'Q' } })")
    assert statusline(child) == "R 2 Q 1"
    dispatch(child, "disposed", 1, "running")
    dispatch(child, "cancelled", 2, "cancelled")
    assert statusline(child) == "Q 1"
    dispatch(child, "started", 3, "running")
    assert statusline(child) == "R 1"
    dispatch(child, "completed", 3, "completed")
    assert statusline(child) == ""


def test_tasks_of_other_projects_count(child):
    setup_events(child)
    dispatch(child, "started", 1, "running", "{ cwd = '/elsewhere' }")
    dispatch(child, "started", 1, "running")
    assert statusline(child) == "✻ 2"


def test_notify_option(child):
    setup_events(child)
    child.lua("require('claude-tasks').setup({ notify = false })")
    dispatch(child, "started", 1, "running")
    dispatch(child, "completed", 1, "completed")
    assert len(events(child)) == 3
    assert child.notes() == []


def test_dispatch_never_throws(child):
    setup_events(child)
    child.lua(
        """vim.api.nvim_create_autocmd('User', { pattern = 'ClaudeTaskStarted',
        callback = function() error('user handler broke') end })"""
    )
    assert child.lua("return require('claude-tasks.events').dispatch(nil)") is True
    assert child.lua("return require('claude-tasks.events').dispatch({ type = 'started' })") is True
    assert child.lua("return require('claude-tasks.events').dispatch({ type = 'x', task = 5 })") is True
    assert dispatch(child, "started", 1, "running") is True
    ev = events(child)
    assert [e["pattern"] for e in ev] == ["ClaudeTaskStarted"]
    # vim.NIL (msgpack nil) fields are fine too
    assert (
        child.lua(
            "return require('claude-tasks.events').dispatch({ type = 'completed', "
            "task = __rec(1, 'completed', { result = vim.NIL, duration_ms = vim.NIL }) })"
        )
        is True
    )
    ev = events(child)
    assert ev[-1]["pattern"] == "ClaudeTaskDone" and "result" not in ev[-1]["data"]


def test_statusline_redraws(child):
    setup_events(child)
    child.lua(
        "vim.o.statusline = '%!v:lua.require(\"claude-tasks\").statusline()'; vim.o.laststatus = 2"
    )
    child.nvim.command("redraw")
    dispatch(child, "started", 1, "running")
    child.flush()  # the plugin's scheduled redrawstatus!, no explicit redraw here
    rows = child.lua("return vim.o.lines")
    # the status line is the row above the command line
    row = rows - child.lua("return vim.o.cmdheight")
    text = child.lua(
        """
        local row = ...
        local s = {}
        for col = 1, 10 do s[#s + 1] = vim.fn.screenstring(row, col) end
        return table.concat(s)
        """,
        row,
    )
    assert text.startswith("✻ 1")


def test_lualine_component_without_lualine(child):
    comp = child.lua(
        "local c = require('lualine.components.claude-tasks'); return c.update_status()"
    )
    assert comp == ""
