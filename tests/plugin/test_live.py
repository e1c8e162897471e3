"""A conversation with a live task from the editor: the real backend and fake-claude, with a UI
attached and keys typed as a terminal UI sends them (`nvim_input`). The prompt line of the
output buffer (opened on the last line, multi-line and growing, sent with <C-s> or <CR> in
normal mode, closed with <Esc><Esc> or q, <Up>/<Down> through the task's earlier prompts),
a warm follow-up to the same process, `a` still allowing a waiting request, a message said
while a task runs shown pending then taken, <C-c> interrupting without a question, idle tasks
in the statusline and the picker, :ClaudeTasks say / interrupt / tui and their bad input."""
import json
import os
import time

import pytest

EVENTS = """
_G.__ev = {}
vim.api.nvim_create_autocmd('User', { pattern = 'ClaudeTask*', callback = function(a)
  table.insert(_G.__ev, { pattern = a.match, data = a.data })
end })
function _G.__count(pattern)
  local n = 0
  for _, e in ipairs(_G.__ev) do
    if e.pattern == pattern then n = n + 1 end
  end
  return n
end
function _G.__last(pattern)
  for i = #_G.__ev, 1, -1 do
    if _G.__ev[i].pattern == pattern then return _G.__ev[i].data end
  end
end
function _G.__text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf or 0, 0, -1, false), '\\n')
end
function _G.__has_line(buf, line)
  for _, l in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    if l == line then return true end
  end
  return false
end
"""


@pytest.fixture
def ui(child, real_backend):
    """The child with a UI attached and the real backend, fake-claude as its CLI; returns
    `use(*fake_args, **options)`. A new task's output takes the cursor (focus = true): the
    tests type in it."""
    child.nvim.ui_attach(120, 40, rgb=True, ext_linegrid=True)
    child.lua(EVENTS)
    bin_, fake = real_backend

    def use(*fake_args, **opts):
        child.lua(
            "local bin, cmd, opts = ...; require('claude-tasks').setup(vim.tbl_extend('force',"
            " { binary = bin, cmd = cmd, notify = true, focus = true }, opts))",
            bin_,
            [fake, *fake_args],
            opts,
        )

    return use


def done(child, n, timeout=30):
    child.wait("__count('ClaudeTaskDone') >= %d" % n, timeout=timeout, what="%d runs done" % n)


def task(child, id_=1):
    return child.lua("return require('claude-tasks').get(...)", id_)


def typed(child, keys):
    """Keys as a UI sends them."""
    child.nvim.input(keys)


def in_prompt(child):
    child.wait("vim.b.claude_task_prompt ~= nil", what="the prompt window")


def height(child):
    """The window's text rows (its height counts its bar)."""
    return child.lua(
        "return vim.api.nvim_win_get_height(0) - (vim.wo.winbar ~= '' and 1 or 0)"
    )


def test_the_prompt_line_sends_a_warm_follow_up_to_the_same_process(child, ui):
    ui()
    child.lua("require('claude-tasks').start('first', { open = 'split' })")
    done(child, 1)
    out = child.lua("return vim.api.nvim_get_current_buf()")
    pid = task(child)["process"]["pid"]
    assert task(child)["live"]["until_ms"] > 0
    # The run is over and its Claude idles: not counted as running.
    assert child.lua("return require('claude-tasks').statusline()") == ""
    typed(child, "Gi")
    in_prompt(child)
    assert child.lua("return vim.api.nvim_get_mode().mode") == "i"
    assert child.lua("return vim.bo.filetype") == "markdown"
    # Under the output's window, one line high.
    assert child.lua("return vim.fn.winnr()") == child.lua("return vim.fn.winnr('k') + 1")
    assert height(child) == 1
    assert "to its live Claude" in child.lua("return vim.wo.winbar")
    typed(child, "and the docs<C-s>")
    done(child, 2)
    assert task(child)["process"]["pid"] == pid
    assert task(child)["runs"][1]["via"] == "live"
    child.wait("__has_line(%d, '── ↻ follow-up #2 (live): and the docs ──')" % out)
    assert child.lua("return vim.api.nvim_get_current_buf()") == out
    assert child.lua("return vim.b.claude_task_prompt") is None


def test_the_window_grows_sends_with_enter_closes_and_walks_earlier_prompts(child, ui):
    ui()
    child.lua("require('claude-tasks').start('first prompt', { open = 'split' })")
    done(child, 1)
    typed(child, "Go")
    in_prompt(child)
    typed(child, "one<CR>two<CR>three")
    child.wait("vim.api.nvim_win_get_height(0) - 1 == 3", what="three lines high")
    typed(child, "<CR>4<CR>5<CR>6<CR>7<CR>8<CR>9<CR>10<CR>11<CR>12")
    child.wait("vim.api.nvim_buf_line_count(0) == 12")
    assert height(child) == 10
    # <Esc><Esc>: closed, nothing sent.
    typed(child, "<Esc><Esc>")
    child.wait("vim.b.claude_task_prompt == nil", what="the window closed")
    assert len(task(child)["runs"]) == 1
    # q closes it too.
    typed(child, "Gi")
    in_prompt(child)
    child.lua("vim.cmd.stopinsert()")
    child.wait("vim.api.nvim_get_mode().mode == 'n'")
    typed(child, "q")
    child.wait("vim.b.claude_task_prompt == nil", what="the window closed")
    # <CR> in normal mode sends.
    typed(child, "Gisecond prompt<Esc>")
    child.wait("vim.api.nvim_get_mode().mode == 'n' and vim.b.claude_task_prompt ~= nil")
    typed(child, "<CR>")
    done(child, 2)
    # <Up> and <Down> walk the task's prompts, newest first, back to the draft.
    typed(child, "Gidraft")
    in_prompt(child)
    typed(child, "<Up>")
    child.wait("__text() == 'second prompt'")
    typed(child, "<Up>")
    child.wait("__text() == 'first prompt'")
    typed(child, "<Up>")
    child.flush()
    assert child.lua("return __text()") == "first prompt"
    typed(child, "<Down>")
    child.wait("__text() == 'second prompt'")
    typed(child, "<Down>")
    child.wait("__text() == 'draft'")


def test_a_allows_a_waiting_request_and_opens_the_prompt_line_when_nothing_waits(child, ui):
    ui()
    steps = json.dumps([{"name": "Bash", "input": {"command": "touch made", "description": "x"}}])
    child.lua(
        "require('claude-tasks').start(..., { open = 'split', permission_mode = 'default' })",
        "make it\nfake-tools: " + steps,
    )
    child.wait(
        "#require('claude-tasks.permissions').pending(require('claude-tasks.state').get(vim.fn.getcwd(), 1)) == 1",
        timeout=30,
        what="the request",
    )
    typed(child, "Ga")
    done(child, 1)
    assert os.path.exists("made")
    assert child.lua("return vim.b.claude_task_prompt") is None
    typed(child, "Ga")
    in_prompt(child)
    # Not on the last line, `a` is still about requests.
    typed(child, "<Esc><Esc>gga")
    child.flush()
    assert child.lua("return vim.b.claude_task_prompt") is None
    assert "not waiting for an answer" in child.notes()[-1]["msg"]


def test_a_message_said_while_text_streams_shows_pending_then_its_own_turn(child, ui):
    ui("--fake-lines=40", "--fake-delay-ms=40")
    child.lua("require('claude-tasks').start('stream', { open = 'split' })")
    out = child.lua("return vim.api.nvim_get_current_buf()")
    child.wait("__text(%d):find('line 000002', 1, true) ~= nil" % out, timeout=30)
    assert child.lua("return require('claude-tasks').statusline()") == "✻ 1"
    child.nvim.command("ClaudeTasks say 1 hold on")
    child.wait("__has_line(%d, '› hold on · waiting')" % out, what="the pending mark")
    done(child, 1)
    child.wait("__has_line(%d, '› hold on · a turn of its own')" % out)
    assert "· waiting" not in child.lua("return __text(...)", out)
    assert len(task(child)["runs"]) == 1
    assert child.lua("return require('claude-tasks').statusline()") == ""


def test_ctrl_c_interrupts_without_a_question_and_the_task_goes_on(child, ui):
    ui(permission_mode="bypassPermissions")
    steps = json.dumps([{"name": "Bash", "input": {"command": "sleep 29", "description": "x"}}])
    child.lua("require('claude-tasks').start(..., { open = 'split' })", "wait\nfake-tools: " + steps)
    out = child.lua("return vim.api.nvim_get_current_buf()")
    child.wait("__text(%d):find('Bash(sleep 29)', 1, true) ~= nil" % out, timeout=30)
    child.lua("vim.ui.select = function() error('asked') end; vim.fn.confirm = vim.ui.select")
    typed(child, "<C-c>")
    child.wait("__count('ClaudeTaskCancelled') == 1", timeout=30)
    data = child.lua("return __last('ClaudeTaskCancelled')")
    assert data["interrupted"] is True and data["live"] is True
    assert "interrupted; it waits for your next message" in child.notes()[-1]["msg"]
    pid = task(child)["process"]["pid"]
    assert child.lua("return vim.uv.kill(..., 0)", pid) == 0
    # The picker and the list say idle; the statusline counts nothing.
    entry = child.lua("return require('claude-tasks.format').entry(require('claude-tasks').get(1))")
    assert entry.startswith("#1 idle"), entry
    labels = child.lua(
        "return vim.tbl_map(function(a) return a.label end,"
        " require('claude-tasks.picker').actions(require('claude-tasks').get(1)))"
    )
    assert "Follow up (its Claude is live)" in labels and "Open Claude's TUI on its session" in labels
    child.nvim.command("ClaudeTasks say 1 go on")
    done(child, 2)
    assert task(child)["process"]["pid"] == pid
    # Interrupting an idle task says why not.
    child.nvim.command("ClaudeTasks interrupt 1")
    child.flush()
    assert "is not running (its CLI is idle" in child.notes()[-1]["msg"]


def test_tui_opens_claude_on_the_session_and_bad_input_is_told(child, ui, real_backend):
    ui()
    child.lua("require('claude-tasks').start('first', { open = false })")
    done(child, 1)
    sid = task(child)["session_id"]
    pid = task(child)["process"]["pid"]
    child.nvim.command("ClaudeTasks tui 1")
    child.wait("vim.bo.buftype == 'terminal'", what="a terminal")
    job = child.lua("return vim.fn.jobpid(vim.b.terminal_job_id)")

    def argv():
        # Forked, maybe not executed yet.
        with open("/proc/%d/cmdline" % job, "rb") as f:
            return f.read().split(b"\0")

    want = ("--resume=%s" % sid).encode()
    deadline = time.monotonic() + 10
    while want not in argv() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert want in argv(), argv()
    assert os.readlink("/proc/%d/cwd" % job) == os.getcwd()
    # Its idle Claude was closed first; the record notes the TUI.
    child.wait("vim.uv.kill(%d, 0) ~= 0" % pid, what="the idle Claude closed")
    assert task(child).get("live") is None and task(child)["tui_at_ms"] > 0
    # A follow-up while the TUI is open would write the same session.
    assert child.lua("return select(2, require('claude-tasks').say(1, 'hi'))").startswith(
        "claude-tasks: Claude's TUI is open on #1's session"
    )
    child.lua("vim.fn.jobstop(vim.b.terminal_job_id)")
    # Bad input: an empty message, no text, an unknown task, a program that is not there.
    n = len(child.notes())
    child.nvim.command("ClaudeTasks say 1")
    child.nvim.command("ClaudeTasks say 9 hello")
    child.lua("require('claude-tasks').setup({ binary = ..., cmd = '/nonexistent/claude' })", real_backend[0])
    child.lua("require('claude-tasks').start('second', { open = false })")
    done(child, 2)
    child.nvim.command("ClaudeTasks tui 2")
    child.flush()
    msgs = [x["msg"] for x in child.notes()[n:]]
    assert any("usage: :ClaudeTasks say [id] {text}" in m for m in msgs), msgs
    assert any("no task" in m and "9" in m for m in msgs), msgs
    assert any("'/nonexistent/claude' is not executable or not on PATH" in m for m in msgs), msgs
    assert child.lua("return select(2, require('claude-tasks').say(2, 'again'))").find(
        "failed before Claude started its session"
    ) >= 0
