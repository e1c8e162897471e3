"""Durability, end to end through the plugin's public interface: several real headless Neovims
(pynvim children) that share one state directory (same HOME / XDG dirs) and one project
directory, each with its own real backend (target/debug/claude-tasks), running the fake CLI
(target/debug/fake-claude) or, for one test, the real Claude Code CLI against the mock Messages
API. tests/backend_process.rs checks the same properties with the test playing Neovim; here
Neovim is real.

Tests:
1. History: Neovim A runs two tasks and quits; Neovim B in the same directory lists them in the
   `:ClaudeTasks` picker (vim.ui.select stubbed) newest first (entries with status and
   duration, items with cost),
   `:ClaudeTasks open <id>` replays each whole (equal to what A showed); `list()` vs
   `list { all = true }` (a task of another project only in the latter); retention (`keep = 2`
   then a third task: the oldest finished one leaves the list and its directory is removed).
2. Detach then re-adopt: A with `on_exit = "detach"` quits (`:qa!`) while a task streams; the
   CLI keeps running; B opens the task, follows it live to the end, the task completes in B
   (ClaudeTaskCompleted in B), and B's buffer is every line once, equal to a fresh render in a
   third Neovim. When a re-adopted CLI ends, its leftover tool processes are killed as after a
   run the backend started itself.
3. Follow-up after a completed run (`--resume=<session>` on argv, the new prompt on stdin, a
   `follow-up` separator and two footers, 2 runs with summed cost/turns/duration) and after an
   interrupted one (A's backend and the task's processes SIGKILLed: B sees `interrupted`, and
   the follow-up resumes the session).
4. Two editors, one project: 10 + 10 concurrent starts give 20 distinct ids; B follows A's
   running task live to its footer; B cancels A's running task: A gets ClaudeTaskCancelled and
   nothing of the task's tree survives.
5. export_markdown = true: `<cwd>/.claude-tasks/task-<id>-output.md` has the name, status,
   project, created, duration, cost and the rendered output (= the buffer); also for a task
   that finished after re-adoption.
6. Real CLI: the backend SIGKILLed mid-stream (mock scenario `slow`), the plugin restarts it at
   once (an output buffer is open), it re-adopts the CLI and re-attaches the buffer: all 20
   chunks once, one `✓ done` footer.

Every wait polls state (events recorded in the children, /proc, files) with a timeout that
only guards failures; where a task must still be running when another editor looks at it, its
CLI is held with SIGSTOP and released with SIGCONT (never a sleep).

Neovim binaries: ``NVIM_BINS`` (colon-separated) or the two local installs; every test runs on
each, and test 6 also on each pinned CLI version (conftest.py). Missing backend / fake / Neovim
/ CLI: skipped, or failed when ``E2E_REQUIRED=1``.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
from pathlib import Path

import pytest

import helpers
from helpers import text_deltas, wait_gone, wait_no_children
from nvim_helpers import (FOOTER_RE, ChildNvim, Editors, assert_fake_lines_transcript,
                          assert_shows_fake_lines, on_nvims, read_pids, transcript_lines)

BUILTIN_COST = 0.0123  # fake-claude's built-in script: 2 turns, $0.0123
LINES_COST = 0.0042  # fake-claude --fake-lines=N: 1 turn, $0.0042


# ---------------------------------------------------------------------------------------------
# Helpers


def complete_lines(path: str | Path) -> list[dict]:
    """The complete JSON lines of a transcript that may still be written."""
    return helpers.read_jsonl(path)


def lua_duration(ms: int) -> str:
    """format.duration / timefmt::duration."""
    if ms < 60000:
        return f"{ms / 1000:.1f}s"
    if ms < 3600000:
        return f"{ms // 60000}m {(ms // 1000) % 60:02d}s"
    return f"{ms // 3600000}h {(ms // 60000) % 60:02d}m"


def wait_in_tool(transcript: str | Path, runs: int = 1) -> None:
    """The last of `runs` --fake-hang runs in a transcript has reached its hang point (its Bash
    tool call is "running"): `runs` complete assistant tool_use lines."""
    path = Path(transcript)

    def in_tool() -> bool:
        return sum(1 for ln in helpers.read_jsonl(path) if ln.get("type") == "assistant"
                   and any(c.get("type") == "tool_use"
                           for c in ln.get("message", {}).get("content", []))) >= runs

    helpers.wait_for(in_tool, 30, f"run {runs} in {path} to reach its tool call")


def wait_event(nv: ChildNvim, pattern: str, task_id: int, cwd: str | Path,
               timeout: float = 60) -> dict:
    """Waits for a ``User <pattern>`` autocmd of task (id, cwd) in nv; returns its data."""
    code = ("(function(pat, id, cwd) for _, e in ipairs(_G.__e2e.events) do"
            " if e.pattern == pat and e.data.id == id and e.data.cwd == cwd then return e.data"
            " end end end)(...)")
    try:
        return nv.wait_for(code, pattern, task_id, str(cwd), timeout=timeout,
                           what=f"{pattern} of task {task_id} in {cwd}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{nv.diagnostics(task_id)}") from None


def log_lines(eds: Editors, pid: int) -> list[str]:
    """What the backend with this pid logged (the editors share one log file)."""
    path = eds.log_path
    text = path.read_text(errors="replace") if path and path.exists() else ""
    return [ln for ln in text.splitlines() if f"[{pid}]" in ln]


# Records, after each change of a buffer, its last line: shows whether the buffer followed a
# task live (lines arriving one write after another) rather than in one final replay.
_WATCH = r"""
local buf = ...
_G.__watch = _G.__watch or {}
local seen = {}
_G.__watch[buf] = seen
vim.api.nvim_buf_attach(buf, false, {
  on_lines = function(_, b)
    local n = vim.api.nvim_buf_line_count(b)
    seen[#seen + 1] = vim.api.nvim_buf_get_lines(b, n - 1, n, false)[1] or ""
  end,
})
"""


def watch_buffer(nv: ChildNvim, task_id: int) -> int:
    buf = nv.lua("return _G.__e2e.buf(...)", task_id)
    assert buf, f"no buffer for task {task_id}"
    nv.lua(_WATCH, buf)
    return buf


def live_last_lines(nv: ChildNvim, buf: int) -> list[int]:
    """The numbers of fake lines that were the buffer's last line after a write, in order, up
    to the first write that showed the footer."""
    out = []
    for last in nv.lua("return _G.__watch[...]", buf):
        if FOOTER_RE.match(last):
            break
        m = re.match(r"line (\d{6}) ", last)
        if m:
            out.append(int(m.group(1)))
    return out


def error_notes(nv: ChildNvim) -> list[str]:
    return [n["msg"] for n in nv.notes() if n["level"] >= 4]


# ---------------------------------------------------------------------------------------------
# 1. History


# vim.ui.select stub: records what a picker would show.
_SELECT_STUB = r"""
_G.__sel = {}
vim.ui.select = function(items, opts, _)
  local shown = {}
  for i, it in ipairs(items) do
    shown[i] = opts.format_item and opts.format_item(it) or tostring(it)
  end
  table.insert(_G.__sel, { items = items, shown = shown, prompt = opts.prompt or "" })
end
"""


@on_nvims()
def test_history_picker_replay_list_all_and_retention(editors, fake, project_dir, tmp_path):
    # Neovim A runs two tasks (the built-in script, then 30 streamed lines) and quits.
    a = editors.new()
    a.command("ClaudeTask first task")
    a_done1 = a.wait_done(1)
    a_lines1 = a.wait_footer(1)
    assert a.start("second task", cmd=[str(fake), "--fake-lines=30"]) == 2
    a_done2 = a.wait_done(2)
    a_lines2 = a.wait_footer(2)
    assert (a_done1["status"], a_done2["status"]) == ("completed", "completed"), a.diagnostics()
    assert a_done1["cost_usd"] == pytest.approx(BUILTIN_COST)
    assert a_done2["cost_usd"] == pytest.approx(LINES_COST)
    assert any(ln.startswith("● Bash(ls)") for ln in a_lines1), a_lines1
    assert_shows_fake_lines(a_lines2, 30, once=True)
    editors.quit(a)

    # Neovim B, same directory and state: the picker lists both, newest first.
    b = editors.new()
    b.lua(_SELECT_STUB)
    b.command("ClaudeTasks")
    [sel] = b.lua("return _G.__sel")
    # This project's tasks, then an entry for the other projects' (issue 23, item 18).
    assert sel["items"][-1] == {"others": True} and sel["shown"][-1] == "… tasks of other projects"
    items, shown = sel["items"][:-1], sel["shown"][:-1]
    assert [(t["id"], t["status"]) for t in items] == [(2, "completed"), (1, "completed")], items
    by_id = {t["id"]: t for t in items}
    for done, name in ((a_done1, "first task"), (a_done2, "second task")):
        t = by_id[done["id"]]
        assert t["name"] == name and t["cwd"] == str(project_dir)
        assert t["cost_usd"] == pytest.approx(done["cost_usd"]) and t["cost_usd"] > 0
        assert t["duration_ms"] == done["duration_ms"] and t["duration_ms"] > 0
        assert t["num_turns"] == done["num_turns"]
    for entry, t in zip(shown, items):
        # "#2 completed     0.1s second task · ." (DESIGN §1: `#id status elapsed name`)
        want = re.compile(rf"^#{t['id']} completed\s+{re.escape(lua_duration(t['duration_ms']))}"
                          rf" {re.escape(t['name'])}\b")
        assert want.match(entry), (entry, t["duration_ms"])

    # `:ClaudeTasks open <id>` replays the whole transcript: what A showed, line for line.
    for task_id, want in ((1, a_lines1), (2, a_lines2)):
        b.command(f"ClaudeTasks open {task_id}")
        assert b.lua("return vim.b.claude_task.id") == task_id
        assert b.wait_footer(task_id) == want
    # B's backend did not run (or re-run) anything
    assert b.events() == [], b.events()

    # list() is this project's; list { all = true } every project's, newest first.
    other = tmp_path / "other"
    other.mkdir()
    res = b.lua("local id, e = require('claude-tasks').start(...); return { id = id, e = e }",
                "elsewhere", {"cwd": str(other), "open": False})
    assert res.get("id") == 1, res  # ids are per project
    assert wait_event(b, "ClaudeTaskDone", 1, other)["status"] == "completed"
    here = b.lua("return require('claude-tasks').list()")
    assert [(t["id"], t["cwd"]) for t in here] == [
        (2, str(project_dir)), (1, str(project_dir))], here
    everywhere = b.lua("return require('claude-tasks').list({ all = true })")
    assert [(t["id"], t["cwd"]) for t in everywhere] == [
        (1, str(other)), (2, str(project_dir)), (1, str(project_dir))], everywhere
    assert [t["status"] for t in everywhere] == ["completed"] * 3
    # The picker shows the other project's task on request only.
    b.lua("_G.__sel = {}")
    b.command("ClaudeTasks")
    assert [(t.get("id"), t.get("cwd")) for t in b.lua("return _G.__sel")[0]["items"]] == [
        (2, str(project_dir)), (1, str(project_dir)), (None, None)]
    b.command("ClaudeTasks pick all")
    assert [(t["id"], t["cwd"]) for t in b.lua("return _G.__sel")[1]["items"]] == [
        (1, str(other)), (2, str(project_dir)), (1, str(project_dir))]

    # Retention: keep = 2, then a third task: the oldest finished one is disposed of.
    dir1 = Path(here[1]["dir"])
    assert dir1.is_dir() and (dir1 / "transcript.jsonl").is_file()
    b.setup(**editors.options(keep=2))
    b.command("ClaudeTask third task")
    assert b.wait_done(3)["status"] == "completed", b.diagnostics(3)
    ids = b.wait_for(
        "(function() local l = require('claude-tasks').list(); local ids = {}"
        " for i, t in ipairs(l) do ids[i] = t.id end;"
        " if #ids == 2 then return ids end end)()", what="the list trimmed to 2 tasks")
    assert ids == [3, 2], ids
    assert not dir1.exists(), sorted(p.name for p in dir1.parent.iterdir())
    assert (dir1.parent / "2").is_dir() and (dir1.parent / "3").is_dir()
    # the other project is not this project's retention's business
    assert [(t["id"], t["cwd"]) for t in b.lua(
        "return require('claude-tasks').list({ all = true })")] == [
        (3, str(project_dir)), (1, str(other)), (2, str(project_dir))]
    res = b.lua("local t, e = require('claude-tasks').get(1); return { t = t, e = e }")
    assert res.get("t") is None and "no task" in (res.get("e") or ""), res
    assert error_notes(b) == []


# ---------------------------------------------------------------------------------------------
# 2. Detach on exit, then re-adoption by the next editor


@on_nvims()
def test_detached_task_is_readopted_and_followed_live(editors, fake):
    n = 200
    cmd = [str(fake), f"--fake-lines={n}", "--fake-delay-ms=20"]
    a = editors.new(on_exit="detach", cmd=cmd)
    a.command("ClaudeTask stream while I quit")
    task_id = 1
    cli = a.task_pid(task_id)
    editors.keep_an_eye_on(cli)
    transcript = Path(a.get(task_id)["transcript"])
    a.wait_line(task_id, "^line 000010 ", "line 10 in A's buffer")
    old_backend = editors.quit(a)
    assert old_backend
    log = log_lines(editors, old_backend)
    assert any(ln.endswith("shutdown: leaving running tasks running and idle CLIs alive"
                           " (on_exit = 'detach')")
               for ln in log), log

    # The CLI keeps running without any backend: alive, no longer the old backend's child,
    # still writing its transcript.
    st = helpers.proc_stat(cli)
    assert st and st["state"] != "Z", st
    assert st["ppid"] != old_backend
    size = transcript.stat().st_size
    helpers.wait_for(lambda: transcript.stat().st_size > size, 10,
                     "the detached CLI to go on writing")
    # Held (SIGSTOP) so that it certainly still runs when B looks at it; released once B owns
    # it.
    with helpers.held(cli):
        lines_now = complete_lines(transcript)
        assert not [ln for ln in lines_now if ln.get("type") == "result"], \
            "the task ended before B could adopt it (the machine is too slow for this test)"
        k = len(text_deltas(lines_now))
        assert 10 <= k < n, k

        b = editors.new()
        b.command(f"ClaudeTasks open {task_id}")
        assert b.lua("return vim.b.claude_task.id") == task_id
        buf = watch_buffer(b, task_id)
        b_backend = b.backend_pid()
        rec = b.get(task_id)
        assert rec["status"] == "running", rec
        assert rec["process"]["pid"] == cli and rec["process"]["owner_pid"] == b_backend, rec
        assert any(ln.endswith(f"adopted pid {cli}") for ln in log_lines(editors, b_backend))
        # the replay of what was written so far
        b.wait_line(task_id, f"^line {k:06d} ", f"line {k} (replayed) in B's buffer")

    data = b.wait_done(task_id)
    assert data["status"] == "completed", b.diagnostics(task_id)
    assert data["num_turns"] == 1 and data["cost_usd"] == pytest.approx(LINES_COST)
    # B only heard the outcome: the start happened in A
    assert b.patterns(task_id) == ["ClaudeTaskCompleted", "ClaudeTaskDone"]
    lines = b.wait_footer(task_id)
    # followed live: lines arrived in several writes after the release, before the footer
    live = [x for x in live_last_lines(b, buf) if k < x < n]
    assert len(set(live)) >= 2, live_last_lines(b, buf)
    assert live == sorted(live), live

    # nothing lost, nothing twice, and the same as a fresh render in a third Neovim
    assert_fake_lines_transcript(transcript, n)
    assert_shows_fake_lines(lines, n, once=True)
    assert editors.fresh_render(task_id) == lines
    # B keeps the CLI it adopted alive and idle for a follow-up (keep_alive_ms).
    rec = b.get(task_id)
    assert rec["status"] == "completed"
    assert rec["live"] and rec["process"]["pid"] == cli, rec
    assert helpers.pid_alive(cli)
    assert error_notes(b) == []


@on_nvims()
def test_readopted_task_leaves_no_tool_process(editors, fake, tmp_path):
    pids_file = tmp_path / "pids"
    cmd = [str(fake), "--fake-lines=50", "--fake-delay-ms=20", "--fake-grandchildren=1",
           f"--fake-pids-file={pids_file}"]
    a = editors.new(on_exit="detach", cmd=cmd)
    a.command("ClaudeTask a tool process outlives the editor")
    task_id = 1
    cli = a.task_pid(task_id)
    [tool] = read_pids(pids_file, 1)
    editors.keep_an_eye_on(tool)
    tree = helpers.snapshot([cli, tool])
    with helpers.held(cli):  # still running when B adopts it
        editors.quit(a)
        b = editors.new()
        b.command(f"ClaudeTasks open {task_id}")
        b.wait_owned(task_id, b.backend_pid())
    assert b.wait_done(task_id)["status"] == "completed", b.diagnostics(task_id)
    # Its CLI idles, kept for a follow-up; closed, nothing of its tree is left, as after a
    # run the backend started itself.
    b.command(f"ClaudeTasks cancel {task_id}")
    wait_gone(tree, None, 3, "the re-adopted task's tree after its CLI closed")


# ---------------------------------------------------------------------------------------------
# 3. Follow-ups: after a completed run, after an interrupted one


@on_nvims()
def test_follow_up_after_completed_resumes_the_session(editors, fake, tmp_path):
    record = tmp_path / "rec"
    argv_file, stdin_file = Path(f"{record}.argv"), Path(f"{record}.stdin")
    # A new CLI for the follow-up: keep_alive_ms = 0 (the warm follow-up is test_live_e2e's).
    a = editors.new(cmd=[str(fake), f"--fake-record={record}"], keep_alive_ms=0)
    a.command("ClaudeTask first question")
    task_id = 1
    first = a.wait_done(task_id)
    assert first["status"] == "completed", a.diagnostics(task_id)
    a.wait_footer(task_id)
    session = a.get(task_id)["session_id"]
    assert session and first["session_id"] == session
    argv1 = argv_file.read_text().splitlines()
    assert f"--session-id={session}" in argv1 and not any(
        x.startswith("--resume") for x in argv1), argv1
    assert stdin_file.read_bytes() == b"first question"
    argv_file.unlink()

    a.command(f"ClaudeTasks resume {task_id} more please")
    second = a.wait_done(task_id, n=2)
    assert second["status"] == "completed", a.diagnostics(task_id)
    argv2 = argv_file.read_text().splitlines()
    assert f"--resume={session}" in argv2, argv2
    assert not any(x.startswith("--session-id") for x in argv2), argv2
    assert stdin_file.read_bytes() == b"more please"

    lines = a.wait_footer(task_id, n=2)
    seps = [i for i, ln in enumerate(lines) if ln.startswith("── ↻ follow-up")]
    assert [lines[i] for i in seps] == ["── ↻ follow-up #2 (resumed): more please ──"], lines
    footers = [i for i, ln in enumerate(lines) if FOOTER_RE.match(ln)]
    assert len(footers) == 2 and footers[0] < seps[0] < footers[1], lines
    assert all(lines[i].startswith("✓ done") for i in footers), lines
    # each run's output on its side of the separator
    calls = [i for i, ln in enumerate(lines) if ln.startswith("● Bash(ls)")]
    assert len(calls) == 2 and calls[0] < seps[0] < calls[1], lines

    rec = a.get(task_id)
    runs = rec["runs"]
    assert [(r["n"], r["status"]) for r in runs] == [(1, "completed"), (2, "completed")], runs
    assert rec["status"] == "completed" and rec["session_id"] == session
    assert rec["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in runs))
    assert rec["cost_usd"] == pytest.approx(2 * BUILTIN_COST)
    assert rec["num_turns"] == sum(r["num_turns"] for r in runs) == 4
    assert rec["duration_ms"] == sum(r["duration_ms"] for r in runs)
    assert second["cost_usd"] == pytest.approx(rec["cost_usd"])
    assert second["num_turns"] == rec["num_turns"]
    # the second footer shows the second run's numbers, and the task's total beside them
    assert lines[footers[1]].endswith(
        f"2 turns · ${BUILTIN_COST:.4f} · task ${2 * BUILTIN_COST:.4f}"), lines[footers[1]]
    assert editors.fresh_render(task_id) == lines


@on_nvims()
def test_follow_up_after_interrupted_resumes_the_session(editors, fake, tmp_path):
    record, pids_file = tmp_path / "rec", tmp_path / "pids"
    argv_file, stdin_file = Path(f"{record}.argv"), Path(f"{record}.stdin")
    cmd = [str(fake), "--fake-hang", "--fake-grandchildren=1", f"--fake-pids-file={pids_file}",
           f"--fake-record={record}"]
    # No output buffer in A: a crashed backend is then not restarted at once (which would
    # settle the task before the "reboot" below is complete).
    a = editors.new(cmd=cmd, open=False)
    task_id = a.start("hang until the machine dies")
    assert task_id == 1
    backend_pid = a.backend_pid()
    assert backend_pid in helpers.descendants(a.pid)
    cli = a.task_pid(task_id)
    grandchildren = read_pids(pids_file, 1)
    rec = a.get(task_id)
    session = rec["session_id"]
    wait_in_tool(rec["transcript"])
    tree = helpers.snapshot([backend_pid, cli, *grandchildren,
                             *helpers.descendants(backend_pid)])

    # The machine "dies": the backend and every process of the task, SIGKILLed.
    os.kill(backend_pid, signal.SIGKILL)
    for p in [cli, *grandchildren]:
        helpers.kill_tree(p, signal.SIGKILL)
    wait_gone(tree, None, 10, "the killed backend and task")
    a.wait_for("#vim.tbl_filter(function(n) return n.msg:find('exited unexpectedly') end,"
               " _G.__e2e.notes) == 1", what="A to report the crash")
    assert a.lua("return require('claude-tasks.backend').info()") is None

    # Neovim B: the task is interrupted (the record still said running).
    on_disk = json.loads((Path(rec["dir"]) / "task.json").read_text())
    assert on_disk["status"] == "running", on_disk
    b = editors.new()
    got = b.get(task_id)
    assert got["status"] == "interrupted", got
    assert [r["status"] for r in got["runs"]] == ["interrupted"]
    assert got.get("process") is None, got
    failed = wait_event(b, "ClaudeTaskFailed", task_id, editors.cwd)
    assert failed["status"] == "interrupted", failed
    assert [t["status"] for t in b.lua("return require('claude-tasks').list()")] == [
        "interrupted"]

    # resume: the same session, the new prompt on stdin
    argv_file.unlink()
    pids_file.unlink()
    b.command(f"ClaudeTasks resume {task_id} go on please")
    assert b.lua("return vim.b.claude_task.id") == task_id
    helpers.wait_for(argv_file.exists, 30, "the follow-up's CLI to start")
    argv = argv_file.read_text().splitlines()
    assert f"--resume={session}" in argv, argv
    assert not any(x.startswith("--session-id") for x in argv), argv
    assert stdin_file.read_bytes() == b"go on please"
    cli2 = b.task_pid(task_id)
    grandchildren2 = read_pids(pids_file, 1)
    b_backend = b.backend_pid()
    tree2 = helpers.snapshot([cli2, *grandchildren2])
    wait_in_tool(rec["transcript"], runs=2)  # the follow-up hangs in its tool call

    # it hangs again: cancel it
    b.command(f"ClaudeTasks cancel {task_id}")
    cancelled = wait_event(b, "ClaudeTaskCancelled", task_id, editors.cwd, timeout=30)
    assert cancelled["status"] == "cancelled"
    lines = b.wait_footer(task_id, n=1)
    sep = lines.index("── ↻ follow-up #2 (resumed): go on please ──")
    interrupted = [i for i, ln in enumerate(lines) if ln == "⚠ interrupted"]
    assert interrupted and interrupted[0] < sep, lines
    assert lines[-1].startswith("■ cancelled"), lines
    final = b.get(task_id)
    assert [(r["n"], r["status"]) for r in final["runs"]] == [
        (1, "interrupted"), (2, "cancelled")], final["runs"]
    assert final["session_id"] == session
    wait_gone(tree2, b_backend, 10, "the cancelled follow-up's tree")
    wait_no_children(b_backend)


# ---------------------------------------------------------------------------------------------
# 4. Two editors, one project


_START_MANY = r"""
local who, n = ...
_G.__ids = {}
for i = 1, n do
  local id, err = require('claude-tasks').start(who .. ' ' .. i, { open = false })
  _G.__ids[#_G.__ids + 1] = id or ('error: ' .. tostring(err))
end
_G.__ids_done = true
"""

# A Lua expression, ... = a list of ids: each of them has a completed ClaudeTaskDone.
_DONE_OF = r"""(function(ids)
  local n = 0
  for _, id in ipairs(ids) do
    for _, e in ipairs(_G.__e2e.of(id, 'ClaudeTaskDone')) do
      if e.data.status == 'completed' then n = n + 1; break end
    end
  end
  return n == #ids
end)(...)"""


@on_nvims()
def test_two_editors_share_one_project(editors, fake, tmp_path):
    # No CLI kept idle after its run: at the end the backend has no child left at all.
    opts = {"concurrency": "parallel", "max_running": 20, "keep_alive_ms": 0}
    a = editors.new(**opts)
    b = editors.new(**opts)
    # both backends up, then both editors start 10 tasks at the same time
    for nv in (a, b):
        assert nv.lua("return require('claude-tasks').list()") == []
    a.nvim.exec_lua(_START_MANY, "from A", 10, async_=True)
    b.nvim.exec_lua(_START_MANY, "from B", 10, async_=True)
    ids_a = a.wait_for("_G.__ids_done and _G.__ids", what="A's 10 starts")
    ids_b = b.wait_for("_G.__ids_done and _G.__ids", what="B's 10 starts")
    assert all(isinstance(i, int) for i in ids_a + ids_b), (ids_a, ids_b)
    assert sorted(ids_a + ids_b) == list(range(1, 21)), (ids_a, ids_b)
    a.wait_for(_DONE_OF, ids_a, timeout=60, what="A's 10 tasks completed")
    b.wait_for(_DONE_OF, ids_b, timeout=60, what="B's 10 tasks completed")
    listed = b.lua("return require('claude-tasks').list()")
    assert sorted(t["id"] for t in listed) == list(range(1, 21))
    # newest first (by creation time: two editors allocate ids and stamp records independently)
    created = [t["created_at_ms"] for t in listed]
    assert created == sorted(created, reverse=True), [(t["id"], t["created_at_ms"]) for t in listed]
    names = {t["id"]: t["name"] for t in listed}
    assert {names[i] for i in ids_a} == {f"from A {i}" for i in range(1, 11)}
    assert {names[i] for i in ids_b} == {f"from B {i}" for i in range(1, 11)}
    assert {t["status"] for t in listed} == {"completed"}

    # B follows A's running task live, to its footer.
    n = 60
    watched = a.start("watched", cmd=[str(fake), f"--fake-lines={n}", "--fake-delay-ms=20"])
    assert watched == 21
    cli = a.task_pid(watched)
    a_backend = a.backend_pid()
    a.wait_line(watched, "^line 000005 ", "line 5 in A's buffer")
    with helpers.held(cli):  # so that it certainly still runs when B opens it
        b.command(f"ClaudeTasks open {watched}")
        buf = watch_buffer(b, watched)
        rec = b.get(watched)
        assert rec["status"] == "running" and rec["process"]["owner_pid"] == a_backend, rec
        b.wait_line(watched, "^line 000005 ", "line 5 in B's buffer")
    assert a.wait_done(watched)["status"] == "completed", a.diagnostics(watched)
    b_lines = b.wait_footer(watched)
    a_lines = a.wait_footer(watched)
    assert b_lines == a_lines
    assert_shows_fake_lines(b_lines, n, once=True)
    live = [x for x in live_last_lines(b, buf) if 5 < x < n]
    assert len(set(live)) >= 2, live_last_lines(b, buf)
    # the task stayed A's: B's backend never adopted it
    assert b.get(watched)["status"] == "completed"
    assert not any("adopted" in ln for ln in log_lines(editors, b.backend_pid()))

    # B cancels a task A runs: A reports it cancelled, nothing of its tree survives.
    pids_file = tmp_path / "pids"
    victim = a.start("victim", open=False, cmd=[
        str(fake), "--fake-hang", "--fake-grandchildren=2", f"--fake-pids-file={pids_file}"])
    cli = a.task_pid(victim)
    grandchildren = read_pids(pids_file, 2)
    wait_in_tool(a.get(victim)["transcript"])
    tree = helpers.snapshot([cli, *grandchildren, *helpers.descendants(cli)])
    assert set(tree) >= {cli, *grandchildren}
    b.command(f"ClaudeTasks cancel {victim}")
    data = wait_event(a, "ClaudeTaskCancelled", victim, editors.cwd, timeout=30)
    assert data["status"] == "cancelled"
    assert [p for p in a.patterns(victim) if p != "ClaudeTaskQueued"] == [
        "ClaudeTaskStarted", "ClaudeTaskCancelled", "ClaudeTaskDone"]
    wait_gone(tree, a_backend, 10, "the cancelled task's tree")
    wait_no_children(a_backend)
    assert a.get(victim)["status"] == "cancelled"
    assert a.lua("return require('claude-tasks').statusline()") == ""
    assert error_notes(a) == [] and error_notes(b) == []


# ---------------------------------------------------------------------------------------------
# 5. export_markdown


def parse_export(path: Path) -> tuple[dict, list[str], str]:
    """(the `- key: value` fields, the body lines, the title line) of an exported task."""
    text = path.read_text()
    assert text.endswith("\n"), text[-200:]
    lines = text[:-1].split("\n")
    title = lines[0]
    assert lines[1] == "", lines[:10]
    fields, i = {}, 2
    while lines[i].startswith("- "):
        key, _, value = lines[i][2:].partition(": ")
        fields[key] = value
        i += 1
    assert lines[i] == "", lines[:12]
    return fields, lines[i + 1:], title


def local(ms: int) -> str:
    """The backend's local time with its UTC offset (its TZ is this process's)."""
    t = datetime.datetime.fromtimestamp(ms // 1000).astimezone()
    off = int(t.utcoffset().total_seconds())
    sign = "-" if off < 0 else "+"
    off = abs(off)
    return t.strftime("%Y-%m-%d %H:%M:%S ") + "%s%02d:%02d" % (sign, off // 3600, off // 60 % 60)


def check_export(path: Path, rec: dict, buffer_lines: list[str]) -> None:
    if not path.is_file():
        there = sorted(p.name for p in path.parent.iterdir()) if path.parent.exists() else None
        pytest.fail(f"no {path} (in its directory: {there})", pytrace=False)
    fields, body, title = parse_export(path)
    assert title == f"# Task #{rec['id']}: {rec['name']}", title
    assert fields == {
        "status": rec["status"],
        "project": rec["cwd"],
        "created": local(rec["created_at_ms"]),
        "duration": lua_duration(rec["duration_ms"]),
        "cost": f"${rec['cost_usd']:.4f}",
    }, fields
    assert body == buffer_lines


@on_nvims()
def test_export_markdown_on_completion(editors, project_dir):
    a = editors.new(export_markdown=True)
    a.command("ClaudeTask export me")
    task_id = 1
    data = a.wait_done(task_id)
    assert data["status"] == "completed", a.diagnostics(task_id)
    lines = a.wait_footer(task_id)
    rec = a.get(task_id)
    path = project_dir / ".claude-tasks" / f"task-{task_id}-output.md"
    # written before the outcome is announced
    check_export(path, rec, lines)
    assert any(ln.startswith("● Bash(ls)") for ln in lines)
    assert rec["cost_usd"] == pytest.approx(BUILTIN_COST)
    # a follow-up rewrites it with both runs
    a.command(f"ClaudeTasks resume {task_id} and again")
    assert a.wait_done(task_id, n=2)["status"] == "completed"
    lines = a.wait_footer(task_id, n=2)
    check_export(path, a.get(task_id), lines)
    assert "── ↻ follow-up #2 (live): and again ──" in lines


@on_nvims()
def test_export_markdown_after_readoption(editors, fake, project_dir):
    n = 50
    cmd = [str(fake), f"--fake-lines={n}", "--fake-delay-ms=20"]
    a = editors.new(on_exit="detach", export_markdown=True, cmd=cmd)
    a.command("ClaudeTask export after a restart")
    task_id = 1
    cli = a.task_pid(task_id)
    editors.keep_an_eye_on(cli)
    a.wait_line(task_id, "^line 000005 ", "line 5 in A's buffer")
    with helpers.held(cli):
        editors.quit(a)
        b = editors.new(export_markdown=True, cmd=cmd)
        b.command(f"ClaudeTasks open {task_id}")
        b.wait_owned(task_id, b.backend_pid())
    assert b.wait_done(task_id)["status"] == "completed", b.diagnostics(task_id)
    lines = b.wait_footer(task_id)
    assert_shows_fake_lines(lines, n, once=True)
    check_export(project_dir / ".claude-tasks" / f"task-{task_id}-output.md", b.get(task_id),
                 lines)


# ---------------------------------------------------------------------------------------------
# 6. The real CLI: the backend SIGKILLed mid-stream, restarted at once, the task re-adopted


@on_nvims()
def test_real_cli_backend_killed_mid_stream_is_readopted(cli_editors, project_dir):
    nv = cli_editors.new()
    nv.command("ClaudeTask SCENARIO:slow chunks=20 delay=0.3")
    task_id = 1
    assert nv.lua("return vim.b.claude_task.id") == task_id
    old = nv.backend_pid()
    cli = nv.task_pid(task_id)
    cli_editors.keep_an_eye_on(cli)
    nv.wait_line(task_id, "^slow chunk 03$", "slow chunk 03 in the buffer", 60)
    log_path = nv.log_file()
    # Held (SIGSTOP) so that it certainly still streams when the new backend looks at it.
    with helpers.held(cli):
        os.kill(old, signal.SIGKILL)
        # restarted at once, with no command issued (the output buffer is open)
        new = nv.wait_new_backend(old)
        helpers.wait_for(
            lambda: f"[{new}] task #{task_id} in {project_dir}: adopted pid {cli}"
            in log_path.read_text(errors="replace"), 10, "the re-adoption")
        rec = nv.get(task_id)
        assert rec["status"] == "running" and rec["process"]["owner_pid"] == new, rec
    data = nv.wait_done(task_id, timeout=60)
    assert data["status"] == "completed", nv.diagnostics(task_id)
    assert nv.backend_pid() == new and not helpers.pid_alive(old)
    lines = nv.wait_footer(task_id)
    chunks = [ln for ln in lines if ln.startswith("slow chunk ")]
    assert chunks == [f"slow chunk {i:02d}" for i in range(1, 21)], lines
    footers = [ln for ln in lines if FOOTER_RE.match(ln)]
    assert len(footers) == 1 and footers[0].startswith("✓ done") and lines[-1] == footers[0]
    nonblank = [ln for ln in lines if ln.strip()]
    assert len(nonblank) == len(set(nonblank)), "a line is shown twice"
    assert [p for p in nv.patterns(task_id) if p != "ClaudeTaskQueued"] == [
        "ClaudeTaskStarted", "ClaudeTaskCompleted", "ClaudeTaskDone"]
    crashes = [x for x in nv.notes() if "exited unexpectedly" in x["msg"]]
    assert len(crashes) == 1, nv.notes()
    # the transcript: one result line, the 20 chunks streamed once
    tr = transcript_lines(nv.get(task_id)["transcript"])
    assert [ln for ln in tr if ln.get("type") == "result"][0]["is_error"] is False
    assert "".join(text_deltas(tr)).count("slow chunk ") == 20
    assert cli_editors.fresh_render(task_id) == lines


