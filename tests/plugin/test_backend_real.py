"""End to end with the real backend (target/debug/claude-tasks, or $CLAUDE_TASKS_BIN) and the
fake CLI next to it (fake-claude). Skipped when they are not built."""
import os
import subprocess

import pytest

INFO = 2

EVENTS = """
_G.__ev = {}
vim.api.nvim_create_autocmd('User', { pattern = 'ClaudeTask*', callback = function(a)
  table.insert(_G.__ev, { pattern = a.match, data = a.data })
end })
-- The backend may report a task as queued before it starts, even when it does not wait.
function _G.__patterns()
  local out = {}
  for _, e in ipairs(_G.__ev) do
    if e.pattern ~= 'ClaudeTaskQueued' then out[#out + 1] = e.pattern end
  end
  return out
end
function _G.__event(pattern)
  for _, e in ipairs(_G.__ev) do
    if e.pattern == pattern then return e.data end
  end
end
function _G.__buf_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf or 0, 0, -1, false), '\\n')
end
"""


@pytest.fixture
def real(child, real_backend):
    bin_, fake = real_backend

    def use(*fake_args, **opts):
        cmd = [fake, *fake_args]
        child.lua(
            "local bin, cmd, opts = ...; require('claude-tasks').setup(vim.tbl_extend('force',"
            " { binary = bin, cmd = cmd, focus = true }, opts))",
            bin_,
            cmd,
            opts,
        )

    child.lua(EVENTS)
    return use


def test_version_flag(real_backend):
    bin_, _ = real_backend
    out = subprocess.run([bin_, "--version"], capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == "claude-tasks 0.1.0"


def test_start_streams_into_the_buffer_and_completes(child, real):
    real()
    # Count the two write paths: the atomic one (before_write) is the usual one; Lua's write()
    # is only the fallback (doc/protocol.md).
    child.lua(
        """
        local b = require('claude-tasks.output')
        _G.__calls = { before = 0, write = 0 }
        local before, write = b.before_write, b.write
        b.before_write = function(...) _G.__calls.before = _G.__calls.before + 1; return before(...) end
        b.write = function(...) _G.__calls.write = _G.__calls.write + 1; return write(...) end
        """
    )
    child.nvim.command("ClaudeTask say hello")
    buf = child.lua("return vim.api.nvim_get_current_buf()")
    assert child.lua("return vim.fn.bufname()") == "claude #1 say hello"
    child.wait("vim.tbl_contains(__patterns(), 'ClaudeTaskDone')", timeout=30)
    assert child.lua("return __patterns()") == [
        "ClaudeTaskStarted",
        "ClaudeTaskCompleted",
        "ClaudeTaskDone",
    ]
    data = child.lua("return __event('ClaudeTaskDone')")
    assert data["id"] == 1 and data["status"] == "completed" and data["cwd"] == os.getcwd()
    assert data["session_id"] and data["exit_code"] == 0
    # the footer is written soon after the record says completed
    child.wait("__buf_text(%d):find('✓ done', 1, true) ~= nil" % buf, timeout=10)
    text = child.lua("return __buf_text(...)", buf)
    assert text.startswith("# #1 say hello")
    assert "● Bash(" in text
    # the window followed the output
    last = child.lua("return vim.api.nvim_buf_line_count(...)", buf)
    assert child.lua("return vim.api.nvim_win_get_cursor(0)[1]") == last
    calls = child.lua("return _G.__calls")
    assert calls["before"] > 0 and calls["write"] == 0, calls
    assert child.lua("return vim.bo[...].modifiable", buf) is False
    # the backend runs at the configured niceness (default 10)
    job = child.lua("return require('claude-tasks.backend').info().job")
    pid = child.lua("return vim.fn.jobpid(...)", job)
    with open("/proc/%d/stat" % pid) as f:
        assert int(f.read().rsplit(")", 1)[1].split()[16]) == 10
    # and, leading its own session under jobstart, so does its autogroup (where they exist)
    if os.path.exists("/proc/%d/autogroup" % pid):
        with open("/proc/%d/autogroup" % pid) as f:
            assert f.read().strip().endswith("nice 10")
    child.flush()
    done = [n for n in child.notes() if "— done" in n["msg"]]
    assert len(done) == 1 and done[0]["level"] == INFO
    assert done[0]["msg"].startswith("claude-tasks: #1 say hello — done in ")


def test_live_output_with_a_paced_cli(child, real):
    real("--fake-delay-ms=50")
    child.nvim.command("ClaudeTask pace yourself")
    # the buffer grows while the task runs
    child.wait("require('claude-tasks').statusline() == '✻ 1'", timeout=10)
    first = child.wait(
        "(function() local n = vim.api.nvim_buf_line_count(0); "
        "return n > 3 and require('claude-tasks').statusline() ~= '' and n end)()",
        timeout=30,
    )
    child.wait("vim.api.nvim_buf_line_count(0) > %d" % first, timeout=30)
    child.wait("vim.tbl_contains(__patterns(), 'ClaudeTaskDone')", timeout=60)
    assert child.lua("return require('claude-tasks').statusline()") == ""


def test_statusline_and_cancel_from_the_command(child, real):
    real("--fake-hang")
    assert child.lua("return require('claude-tasks').statusline()") == ""
    child.nvim.command("ClaudeTask hang around")
    child.wait("require('claude-tasks').statusline() == '✻ 1'", timeout=15)
    child.nvim.command("ClaudeTasks cancel 1")
    child.wait("vim.tbl_contains(__patterns(), 'ClaudeTaskDone')", timeout=30)
    assert child.lua("return __patterns()") == [
        "ClaudeTaskStarted",
        "ClaudeTaskCancelled",
        "ClaudeTaskDone",
    ]
    assert child.lua("return require('claude-tasks').statusline()") == ""
    child.wait("__buf_text():find('■ cancelled', 1, true) ~= nil", timeout=10)
    child.flush()
    assert any("— cancelled" in n["msg"] for n in child.notes())


def test_picker_lists_the_task(child, real):
    real("--fake-hang")
    child.lua("require('claude-tasks').start('pick me', { open = false })")
    child.wait("require('claude-tasks').statusline() == '✻ 1'", timeout=15)
    child.lua(
        """
        vim.ui.select = function(items, opts, cb)
          _G.__items = vim.tbl_map(opts.format_item, items)
        end
        """
    )
    child.nvim.command("ClaudeTasks")
    items = child.lua("return _G.__items")
    assert len(items) == 2 and items[1] == "… tasks of other projects"
    assert items[0].startswith("#1 running")
    assert " pick me · " in items[0]
    assert child.lua("return vim.fn.getcompletion('ClaudeTasks cancel ', 'cmdline')") == [
        "1 pick me"]
    child.lua("require('claude-tasks').cancel(1)")
    child.wait("vim.tbl_contains(__patterns(), 'ClaudeTaskDone')", timeout=30)


def test_follow_up_and_reopen_after_a_backend_restart(child, real):
    real()
    child.lua("require('claude-tasks').start('first', { open = false })")
    child.wait("#vim.tbl_filter(function(p) return p == 'ClaudeTaskDone' end, __patterns()) == 1", timeout=30)
    child.nvim.command("ClaudeTasks resume 1 and a second thing")
    child.wait("#vim.tbl_filter(function(p) return p == 'ClaudeTaskDone' end, __patterns()) == 2", timeout=30)
    buf = child.lua("return vim.api.nvim_get_current_buf()")
    child.wait("select(2, __buf_text(%d):gsub('✓ done', '')) == 2" % buf, timeout=10)
    assert "── ↻ follow-up #2 (live): and a second thing ──" in child.lua("return __buf_text(...)", buf)
    # a new backend renders the whole transcript again from disk
    child.lua("require('claude-tasks.backend').stop()")
    child.nvim.command("bwipeout %d" % buf)
    child.lua("require('claude-tasks').open(1)")
    try:
        child.wait("select(2, __buf_text():gsub('✓ done', '')) == 2", timeout=15)
    except AssertionError:
        print(child.lua("return __buf_text()"))
        print(child.lua("return vim.inspect(require('claude-tasks').get(1))"))
        raise
    assert child.lua("return __buf_text()").startswith("# #1 first")


def test_log_opens_the_transcript(child, real):
    real()
    child.lua("require('claude-tasks').start('log me', { open = false })")
    child.wait("vim.tbl_contains(__patterns(), 'ClaudeTaskDone')", timeout=30)
    child.nvim.command("ClaudeTasks log 1")
    assert child.lua("return vim.fn.bufname()") == "claude #1 log"
    assert child.lua("return vim.bo.modifiable") is False
    child.wait("__buf_text():gsub(' ', ''):find('\"type\":\"system\"', 1, true) ~= nil",
               what="the transcript's lines")


def test_checkhealth_with_the_real_backend(child, real):
    real()
    child.nvim.command("checkhealth claude-tasks")
    text = "\n".join(child.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)"))
    assert "backend version 0.1.0 (same as the plugin)" in text
