"""Hardening, end to end through the plugin in a headless child Neovim with the real backend:
cancel during the real CLI's API retry backoff, quitting Neovim with running tasks, the backend
or Neovim SIGKILLed while a task streams, output buffers wiped or their windows toggled during a
flood.

"No survivors": no process of the task's tree (CLI, its descendants, the backend when it should
be gone) remains alive, and the backend has no zombie child, from /proc (a pid is matched with
its start time, so a reused pid is not mistaken for a survivor). "Nothing lost": the transcript
holds exactly what the CLI wrote (every streamed line once, in order, one result line) and the
buffer shows all of it: it equals a fresh render (the task opened in a new Neovim after it
ended).

Tests: 1. cancel during the API retry backoff; 2. :qa! with three running tasks (one ignoring
signals); 3. the backend SIGKILLed while streaming; 4. Neovim SIGKILLed while streaming; 5. the
output buffer wiped while streaming (reopened after the end), the output window toggled 50 times
during a 50,000-line flood, and the buffer wiped + reopened or `:edit`ed 40 times while streaming
(each replaces the backend's view, often while a write of the old view is in flight).

Row 1 uses the real Claude Code CLI against the mock Messages API (conftest.py); the others the
fake CLI (target/debug/fake-claude), whose flags make hangs, grandchildren, ignored signals and
floods deterministic. Every wait polls state with a timeout that only guards failures.

Neovim binaries: ``NVIM_BINS`` or the two local installs; every test runs on each, and row 1
also on each pinned CLI version (conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

import helpers
import nvim_helpers
from helpers import wait_gone, wait_no_children
from nvim_helpers import (HAS_LINE, ChildNvim, assert_fake_lines_transcript,
                          assert_shows_fake_lines, on_nvims, read_pids, transcript_lines)

ERROR = 4


class Editors(nvim_helpers.Editors):
    """``nvim_helpers.Editors`` whose fresh renders open the task with
    ``require("claude-tasks").open(id)``."""

    def open_fresh(self, nv: ChildNvim, task_id: int) -> None:
        res = nv.lua("local b, e = require('claude-tasks').open(...); return { b = b, e = e }",
                     task_id)
        assert res.get("b"), res


@pytest.fixture
def editors_class() -> type:
    return Editors


# ---------------------------------------------------------------------------------------------
# Helpers


def error_free(nv: ChildNvim) -> dict:
    """What would show an error in the child: v:errmsg, :messages, ERROR notifications."""
    return nv.lua("""
      local msgs = vim.api.nvim_exec2('messages', { output = true }).output
      local errs = {}
      for _, n in ipairs(_G.__e2e.notes) do
        if n.level >= vim.log.levels.ERROR then errs[#errs + 1] = n.msg end
      end
      return { errmsg = vim.v.errmsg, messages = msgs, notes = errs }
    """)


def backend_log_problems(nv: ChildNvim, pid: int) -> list[str]:
    """ERROR/WARN lines the backend with this pid logged."""
    path = nv.log_file()
    text = path.read_text(errors="replace") if path.exists() else ""
    return [ln for ln in text.splitlines()
            if f"[{pid}]" in ln and re.search(r"\b(ERROR|WARN)\b", ln)]


def wait_done_same_backend(nv: ChildNvim, task_id: int, backend_pid: int,
                           timeout: float = 60) -> dict:
    """Waits for the task's ClaudeTaskDone, failing at once if the backend goes away first."""
    how = nv.wait_for(
        "(function(id, pid) if #_G.__e2e.of(id, 'ClaudeTaskDone') > 0 then return 'done' end;"
        " local i = require('claude-tasks.backend').info();"
        " if not i or vim.fn.jobpid(i.job) ~= pid then return 'the backend went away' end"
        " end)(...)", task_id, backend_pid, timeout=timeout, what=f"task {task_id} to end")
    assert how == "done", f"{how}\n{nv.diagnostics(task_id)}"
    return nv.events(task_id, "ClaudeTaskDone")[0]["data"]


# ---------------------------------------------------------------------------------------------
# 1. Cancel during the real CLI's API retry backoff


@on_nvims()
def test_cancel_during_api_retry_backoff(cli_editors, mock_server):
    # Default retries (CLAUDE_CODE_MAX_RETRIES unset: the child's environment is not inherited):
    # the mock answers 500 every time and the CLI backs off 0.5 s, 1 s, 2 s, ... between
    # attempts.
    nv = cli_editors.new()
    nv.command("ClaudeTask SCENARIO:error500 keep failing")
    task_id = 1
    assert nv.lua("return vim.b.claude_task.id") == task_id
    backend_pid = nv.backend_pid()
    cli_pid = nv.task_pid(task_id)
    # The third announced retry waits ~2 s: cancel inside that backoff.
    nv.wait_line(task_id, "^↻ API error 500, retry 3/%d+ in", "the third ↻ api_retry line", 60)
    tree = helpers.snapshot([cli_pid, *helpers.descendants(cli_pid)])
    nv.command(f"ClaudeTasks cancel {task_id}")
    requests_at_cancel = len(mock_server.message_requests(kind=None))
    data = nv.wait_done(task_id, timeout=30)
    assert data["status"] == "cancelled", nv.diagnostics(task_id)
    assert [p for p in nv.patterns(task_id) if p != "ClaudeTaskQueued"] == [
        "ClaudeTaskStarted", "ClaudeTaskCancelled", "ClaudeTaskDone"]
    lines = nv.wait_footer(task_id)
    assert lines[-1].startswith("■ cancelled"), lines

    # the cancel landed in the backoff: no request after the third retry's announcement
    rec = nv.get(task_id)
    tr = transcript_lines(rec["transcript"])
    retries = [ln for ln in tr if ln.get("subtype") == "api_retry"]
    assert [r["attempt"] for r in retries] == [1, 2, 3], retries
    main = mock_server.message_requests()
    assert [r["reply"] for r in main] == ["error:500"] * 3, main
    assert len(mock_server.message_requests(kind=None)) == requests_at_cancel

    # every retry line is shown, once, in order
    shown = [ln for ln in lines if ln.startswith("↻ ")]
    assert [re.sub(r" in [\d.]+s$", "", s) for s in shown] == [
        f"↻ API error 500, retry {r['attempt']}/{r['max_retries']}" for r in retries], lines

    # the result line, when the CLI wrote one, is rendered (and exactly one was written)
    results = [ln for ln in tr if ln.get("type") == "result"]
    assert len(results) <= 1, results
    if results:
        res = results[0]
        assert res["is_error"] is True
        if any(ln.get("type") == "user" and "[Request interrupted by user"
               in json.dumps(ln) for ln in tr):
            assert "■ interrupted by user" in lines, lines
        for d in res.get("permission_denials") or []:
            assert any("permission denied" in ln for ln in lines), lines
        text = res.get("result")
        if isinstance(text, str) and text.strip():
            assert any(text.strip().splitlines()[0] in ln for ln in lines), (text, lines)
    # and the whole buffer equals what a fresh render of the transcript shows
    assert cli_editors.fresh_render(task_id) == lines

    # no survivors: the CLI's tree is gone and the backend has no child (no zombie)
    wait_gone(tree, backend_pid, 5, "the cancelled CLI's tree", interval=0.005)
    wait_no_children(backend_pid)
    assert nv.lua("return require('claude-tasks').statusline()") == ""


# ---------------------------------------------------------------------------------------------
# 2. :qa! with three running tasks


@on_nvims()
def test_quit_with_three_running_tasks_leaves_no_survivors(editors, fake, tmp_path):
    grace_ms = 2000
    nv = editors.new(concurrency="parallel", on_exit="cancel", cancel_grace_ms=grace_ms)
    ids, pids_files = [], []
    for i in range(3):
        pf = tmp_path / f"pids-{i}"
        cmd = [str(fake), "--fake-hang", "--fake-grandchildren=2", f"--fake-pids-file={pf}"]
        if i == 2:
            cmd.append("--fake-ignore-signals")
        ids.append(nv.start(f"hang {i}", cmd=cmd, open=False))
        pids_files.append(pf)
    backend_pid = nv.backend_pid()
    nvim_pid = nv.pid
    clis = [nv.task_pid(i) for i in ids]
    grandchildren = [p for pf in pids_files for p in read_pids(pf, 2)]
    # each CLI hangs mid-turn, its Bash tool "running"
    for i in ids:
        path = Path(nv.get(i)["transcript"])

        def in_tool(path=path):
            complete = path.read_bytes().rpartition(b"\n")[0]
            return b'"type":"tool_use"' in complete

        helpers.wait_for(in_tool, 30, f"task {i} in its tool call")
    # The statusline follows the backend's events, which can come after the CLI's first lines.
    nv.wait_for("require('claude-tasks').statusline() == '✻ 3'", what="the statusline's ✻ 3")
    dirs = {i: nv.get(i)["dir"] for i in ids}
    log_path = nv.log_file()
    watched = [backend_pid, *clis, *grandchildren, *helpers.descendants(backend_pid)]
    tree = helpers.snapshot(watched)
    assert set(clis + grandchildren + [backend_pid]) <= set(tree), tree

    t0 = nvim_helpers.monotonic()
    nv.nvim.command("qa!", async_=True)
    # the backend, the CLIs and their grandchildren, in its own session each, are all gone
    wait_gone(tree, None, 10, "the task trees after :qa!", interval=0.005)
    took = nvim_helpers.monotonic() - t0
    print(f"last process gone {took:.3f}s after :qa!")
    assert took <= grace_ms / 1000 + 1.0, took
    # Neovim itself exits too
    helpers.wait_for(lambda: not helpers.pid_alive(nvim_pid), 10, "Neovim to exit")
    # the backend settled every task itself and exited (Neovim did not have to kill it)
    log = [ln for ln in log_path.read_text(errors="replace").splitlines()
           if f"[{backend_pid}]" in ln]
    assert any(ln.endswith("shutdown: every task settled") for ln in log), "\n".join(log)
    assert any(ln.endswith(" exiting") for ln in log), "\n".join(log)
    # and the records on disk say cancelled
    records = {i: json.loads((Path(d) / "task.json").read_text()) for i, d in dirs.items()}
    assert {i: r["status"] for i, r in records.items()} == {i: "cancelled" for i in ids}, (
        json.dumps(records, indent=1)[:4000] + "\n" + "\n".join(log))


# ---------------------------------------------------------------------------------------------
# 3. The backend SIGKILLed while a task streams


@on_nvims()
def test_backend_killed_while_streaming_restarts_and_loses_nothing(editors, fake):
    n = 400
    nv = editors.new(cmd=[str(editors.cmd[0]), f"--fake-lines={n}", "--fake-delay-ms=10"])
    nv.command("ClaudeTask stream four hundred lines")
    task_id = 1
    old = nv.backend_pid()
    cli = nv.task_pid(task_id)
    nv.wait_line(task_id, "^line 000020 ", "line 20 in the buffer", 30)
    log_path = nv.log_file()
    # Hold the CLI mid-stream (SIGSTOP) so that it is certainly still running when the new
    # backend looks at it; it goes on (SIGCONT) once re-adopted.
    with helpers.held(cli):
        os.kill(old, signal.SIGKILL)
        # restarted at once (no command issued: an output buffer is open)
        new = nv.wait_new_backend(old)
        # which re-adopts the CLI that outlived the old one
        helpers.wait_for(lambda: f"[{new}] task #1 in {editors.cwd}: adopted pid {cli}"
                         in log_path.read_text(errors="replace"), 10, "the re-adoption")
        assert helpers.pid_alive(cli)
        rec = nv.get(task_id)
        assert rec["status"] == "running" and rec["process"]["owner_pid"] == new, rec
    data = nv.wait_done(task_id, timeout=60)
    assert data["status"] == "completed", nv.diagnostics(task_id)
    assert nv.backend_pid() == new
    lines = nv.wait_footer(task_id)

    # reported once, with the log path
    nv.lua("_G.__f = false; vim.schedule(function() _G.__f = true end)")
    nv.wait_for("_G.__f")
    crashes = [x for x in nv.notes() if "exited unexpectedly" in x["msg"]]
    assert len(crashes) == 1 and crashes[0]["level"] == ERROR, nv.notes()
    assert [x for x in nv.notes() if x["level"] >= ERROR] == crashes, nv.notes()
    # one outcome, from the new backend, which re-adopted the running CLI
    assert [p for p in nv.patterns(task_id) if p != "ClaudeTaskQueued"] == [
        "ClaudeTaskStarted", "ClaudeTaskCompleted", "ClaudeTaskDone"]
    rec = nv.get(task_id)
    assert rec["status"] == "completed", rec
    adopted = [ln for ln in log_path.read_text(errors="replace").splitlines()
               if f"adopted pid {cli}" in ln]
    assert len(adopted) == 1, adopted

    # nothing lost
    assert_fake_lines_transcript(rec["transcript"], n, one_init=True)
    assert_shows_fake_lines(lines, n)
    nonblank = [ln for ln in lines if ln.strip()]
    assert len(nonblank) == len(set(nonblank)), "a line is shown twice"
    assert editors.fresh_render(task_id) == lines
    assert not helpers.pid_alive(old)


# ---------------------------------------------------------------------------------------------
# 4. Neovim SIGKILLed while a task streams (on_exit = "cancel", the default)


@on_nvims()
def test_editor_killed_leaves_the_task_to_the_next_editor(editors, fake):
    n = 300
    cmd = [str(editors.cmd[0]), f"--fake-lines={n}", "--fake-delay-ms=10"]
    nv = editors.new(cmd=cmd)
    assert nv.lua("return require('claude-tasks.config').get().on_exit") == "cancel"
    nv.command("ClaudeTask stream then lose the editor")
    task_id = 1
    backend_pid = nv.backend_pid()
    cli = nv.task_pid(task_id)
    nv.wait_line(task_id, "^line 000020 ", "line 20 in the buffer", 30)
    log_path = nv.log_file()
    # Hold the CLI mid-stream (SIGSTOP) until the next editor has re-adopted it, so that it is
    # certainly still running then; it goes on (SIGCONT) afterwards.
    with helpers.held(cli):
        os.kill(nv.pid, signal.SIGKILL)
        # its backend notices (channel closed and parent gone), leaves the task, and exits
        helpers.wait_for(lambda: not helpers.pid_alive(backend_pid), 10,
                         "the old backend to exit")
        assert helpers.pid_alive(cli), "the task must keep running"
        log = [ln for ln in log_path.read_text(errors="replace").splitlines()
               if f"[{backend_pid}]" in ln]
        assert any(ln.endswith("the editor went away: leaving 1 task(s) running")
                   for ln in log), log
        assert not any("shutdown" in ln for ln in log), log
        nv.close()

        nv2 = editors.new(cmd=cmd)
        tasks = nv2.lua("return require('claude-tasks').list()")
        assert [(t["id"], t["status"]) for t in tasks] == [(task_id, "running")], tasks
        new_pid = nv2.backend_pid()
        assert new_pid and new_pid != backend_pid
        # re-adopted by the new backend, while it still runs
        rec = nv2.wait_owned(task_id, new_pid)
        assert rec["status"] == "running" and rec["process"]["pid"] == cli, rec
    nv2.command(f"ClaudeTasks open {task_id}")
    data = nv2.wait_done(task_id, timeout=60)
    assert data["status"] == "completed", nv2.diagnostics(task_id)
    lines = nv2.wait_footer(task_id)
    assert_fake_lines_transcript(rec["transcript"], n, one_init=True)
    assert_shows_fake_lines(lines, n)
    assert editors.fresh_render(task_id) == lines
    assert not helpers.pid_alive(backend_pid)


# ---------------------------------------------------------------------------------------------
# 5. Buffers wiped, windows toggled while a task streams


@on_nvims()
def test_bwipeout_while_streaming_is_harmless(editors, fake):
    n = 300
    nv = editors.new(cmd=[str(editors.cmd[0]), f"--fake-lines={n}", "--fake-delay-ms=5"])
    nv.command("ClaudeTask stream into a buffer that goes away")
    task_id = 1
    backend_pid = nv.backend_pid()
    nv.wait_line(task_id, "^line 000020 ", "line 20 in the buffer", 30)
    buf = nv.lua("return _G.__e2e.buf(...)", task_id)
    # wiped while the task streams: it had not ended at that moment
    ended_before = nv.lua("local id, buf = ...; local n = #_G.__e2e.of(id, 'ClaudeTaskDone');"
                          " vim.cmd('bwipeout! ' .. buf); return n", task_id, buf)
    assert ended_before == 0
    assert nv.lua("return vim.api.nvim_buf_is_valid(...)", buf) is False
    data = wait_done_same_backend(nv, task_id, backend_pid)
    assert data["status"] == "completed", nv.diagnostics(task_id)
    assert nv.buffer_lines(task_id) is None  # not recreated behind the user's back

    nv.command(f"ClaudeTasks open {task_id}")
    lines = nv.wait_footer(task_id)
    assert_shows_fake_lines(lines, n)
    assert editors.fresh_render(task_id) == lines
    problems = error_free(nv)
    assert problems == {"errmsg": "", "messages": "", "notes": []}, problems
    assert backend_log_problems(nv, backend_pid) == []


@on_nvims()
def test_window_toggled_50_times_during_a_flood(editors, fake):
    n = 50000
    nv = editors.new(cmd=[str(editors.cmd[0]), f"--fake-lines={n}"])
    nv.command("ClaudeTask flood")
    task_id = 1
    backend_pid = nv.backend_pid()
    cli = nv.task_pid(task_id)
    nv.wait_line(task_id, "^line 000001 ", "the first line", 30)
    # Hold the CLI (SIGSTOP) so that the task certainly runs through the 50 toggles while the
    # backend is still pushing the lines it has already written into the buffer.
    with helpers.held(cli):
        toggles = nv.lua("""
          local id = ...
          local during = 0
          for _ = 1, 50 do
            local buf = _G.__e2e.buf(id)
            for _, w in ipairs(vim.fn.win_findbuf(buf)) do vim.api.nvim_win_close(w, false) end
            assert(#vim.fn.win_findbuf(buf) == 0)
            vim.cmd('ClaudeTasks open ' .. id)
            assert(vim.api.nvim_get_current_buf() == buf)
            -- During the flood: the task runs, or its view still pushes lines (no footer yet).
            -- A run ends at its result now (its CLI may stay, idle), which the held CLI may
            -- have written before it was stopped.
            local last = vim.api.nvim_buf_get_lines(buf, -2, -1, false)[1] or ''
            if require('claude-tasks.state').get(vim.fn.getcwd(), id).status == 'running'
                or not last:find('^✓ done') then
              during = during + 1
            end
            -- let the backend's writes in between (one event-loop turn, not a delay)
            vim.wait(0)
          end
          return during
        """, task_id)
        shown = nv.lua("return #_G.__e2e.lines(...)", task_id)
    # At least the first toggles came while the lines were still coming in (the view pushes
    # 50k lines in batches; how many of the 50 it took depends on the machine).
    assert toggles >= 1
    data = nv.wait_done(task_id, timeout=120)
    assert data["status"] == "completed", nv.diagnostics(task_id)
    lines = nv.wait_footer(task_id, timeout=60)
    assert lines[-1].startswith("✓ done"), lines[-3:]
    assert_shows_fake_lines(lines, n)
    assert editors.fresh_render(task_id) == lines
    problems = error_free(nv)
    assert problems == {"errmsg": "", "messages": "", "notes": []}, problems
    assert backend_log_problems(nv, backend_pid) == []
    print(f"{shown} lines shown after the 50 toggles")




@on_nvims()
def test_view_replaced_again_and_again_while_streaming(editors, fake):
    """Wiping the buffer (then opening it again) and `:edit` of it replace the backend's view
    of the task: the old view is detached or superseded, often while one of its writes is in
    flight. 40 rounds while the task streams: the backend and the task must not mind."""
    n = 600
    nv = editors.new(cmd=[str(editors.cmd[0]), f"--fake-lines={n}", "--fake-delay-ms=5"])
    nv.command("ClaudeTask stream while the view changes")
    task_id = 1
    backend_pid = nv.backend_pid()
    nv.wait_line(task_id, "^line 000010 ", "line 10 in the buffer", 30)
    for round_ in range(40):
        if round_ % 2 == 0:
            nv.command(f"bwipeout! {nv.lua('return _G.__e2e.buf(...)', task_id)}")
            nv.command(f"ClaudeTasks open {task_id}")
        else:
            nv.command("edit")  # BufReadCmd: attach the same buffer again
        # the new view has written (its first write replaces the whole buffer), on the same
        # backend
        how = nv.wait_for(
            "(function(id, pat, pid) local i = require('claude-tasks.backend').info();"
            " if not i or vim.fn.jobpid(i.job) ~= pid then return 'the backend went away' end;"
            " if " + HAS_LINE.replace("(...)", "(id, pat)") + " then return 'written' end"
            " end)(...)", task_id, "^# #1 ", backend_pid, timeout=10,
            what=f"round {round_}: the new view's first write")
        assert how == "written", f"round {round_}: {how}\n{nv.diagnostics(task_id)}"
    data = wait_done_same_backend(nv, task_id, backend_pid)
    assert data["status"] == "completed", nv.diagnostics(task_id)
    assert [p for p in nv.patterns(task_id) if p != "ClaudeTaskQueued"] == [
        "ClaudeTaskStarted", "ClaudeTaskCompleted", "ClaudeTaskDone"]
    lines = nv.wait_footer(task_id)
    assert_shows_fake_lines(lines, n)
    assert editors.fresh_render(task_id) == lines
    problems = error_free(nv)
    assert problems == {"errmsg": "", "messages": "", "notes": []}, problems
    assert backend_log_problems(nv, backend_pid) == []
