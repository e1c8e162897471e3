"""A conversation with a live task, with the real CLI (each pinned version) against the mock
Messages API, in a headless Neovim: follow-ups answered by the one CLI process that ran the
task (no respawn, the session's history in each request, each run's own cost), an interrupt
during a Bash tool (the tool killed, the process kept) then a follow-up, and a message said
while the answer streams, answered as a turn of its own (shown pending, then taken)."""

from __future__ import annotations

import json

import pytest

import helpers
from nvim_helpers import ChildNvim, on_nvims


@pytest.fixture
def make_nvim(cli_editors, claude_home, mock_server, tmp_path):
    import nvim_helpers

    def make(setup: dict | None = None) -> ChildNvim:
        env = nvim_helpers.nvim_env(claude_home, mock_server.url, tmp_path / "xdg")
        return cli_editors.new(env=env, **(setup or {}))

    return make


def runs(nv: ChildNvim, task_id: int) -> list[dict]:
    return nv.get(task_id)["runs"]


@on_nvims()
def test_two_follow_ups_are_answered_by_the_one_cli_process(make_nvim, mock_server):
    nv = make_nvim({"open": "split"})
    task_id = nv.start("SCENARIO:hello first")
    assert nv.wait_done(task_id)["status"] == "completed", nv.diagnostics(task_id)
    rec = nv.get(task_id)
    pid = rec["process"]["pid"]
    assert rec["live"], rec
    for n, prompt in ((2, "SCENARIO:hello second"), (3, "SCENARIO:remember third")):
        nv.command(f"ClaudeTasks say {task_id} {prompt}")
        assert nv.wait_done(task_id, n)["status"] == "completed", nv.diagnostics(task_id)
        rec = nv.get(task_id)
        assert rec["process"]["pid"] == pid, "a new CLI was started"
        assert rec["runs"][n - 1]["via"] == "live", rec
        assert helpers.pid_alive(pid)
    # One process, one session: the last request carried every prompt.
    answer = mock_server.message_requests()[-1]["reply"]
    assert answer, mock_server.message_requests()[-1]
    assert rec["result"].startswith("I remember 3 user prompts"), rec["result"]
    # total_cost_usd sums the process's turns: each run counts only its own, the task all.
    costs = [r["cost_usd"] for r in rec["runs"]]
    assert all(c > 0 for c in costs), costs
    assert rec["cost_usd"] == pytest.approx(sum(costs))
    assert rec["runs"][2]["cli_cost_usd"] == pytest.approx(sum(costs))
    lines = nv.wait_footer(task_id, 3)
    assert "── ↻ follow-up #2 (live): SCENARIO:hello second ──" in lines, lines
    assert "── ↻ follow-up #3 (live): SCENARIO:remember third ──" in lines, lines
    assert lines[-1].endswith("· task $%.4f" % rec["cost_usd"]), lines


@on_nvims()
def test_interrupt_during_a_bash_tool_then_a_follow_up(make_nvim, mock_server):
    # The long command (sh -c 'exec sleep 300') needs permission, unlike a bare sleep.
    nv = make_nvim({"open": "split", "allowed_tools": ["Bash"]})
    task_id = nv.start("SCENARIO:longbash")
    cli = nv.task_pid(task_id)
    sleeper = helpers.wait_for(
        lambda: [p for p in helpers.descendants(cli) if helpers.cmdline(p) == ["sleep", "300"]],
        30, "the `sleep 300` tool process")
    nv.command(f"ClaudeTasks interrupt {task_id}")
    data = nv.wait_done(task_id, timeout=30)
    assert data["status"] == "cancelled" and data["interrupted"] is True, nv.diagnostics(task_id)
    # The protocol's interrupt: the tool is gone, the CLI stays.
    helpers.wait_for(lambda: not helpers.pid_alive(sleeper[0]), 10, "the tool killed")
    assert helpers.pid_alive(cli)
    lines = nv.wait_footer(task_id)
    assert lines[-1].startswith("■ interrupted"), lines
    assert "■ interrupted by user" in lines, lines
    assert nv.lua("return require('claude-tasks').statusline()") == ""
    nv.command(f"ClaudeTasks say {task_id} SCENARIO:remember are you still there?")
    assert nv.wait_done(task_id, 2)["status"] == "completed", nv.diagnostics(task_id)
    rec = nv.get(task_id)
    assert rec["process"]["pid"] == cli and rec["runs"][1]["via"] == "live", rec
    # The same session: its next request holds the interrupted call and the new prompt.
    body = json.dumps(mock_server.message_requests()[-1]["body"]["messages"])
    assert "are you still there?" in body and "sh -c 'exec sleep 300'" in body, body


@on_nvims()
def test_a_message_said_while_the_answer_streams_is_a_turn_of_its_own(make_nvim):
    nv = make_nvim({"open": "split"})
    task_id = nv.start("SCENARIO:slow chunks=12 delay=0.25")
    nv.wait_line(task_id, "^slow chunk 02$", "the streamed answer")
    nv.command(f"ClaudeTasks say {task_id} SCENARIO:hello and then?")
    nv.wait_line(task_id, "^› SCENARIO:hello and then%? · waiting$", "the pending mark")
    assert nv.wait_done(task_id)["status"] == "completed", nv.diagnostics(task_id)
    lines = nv.wait_footer(task_id)
    assert "› SCENARIO:hello and then? · a turn of its own" in lines, lines
    assert not any(ln.endswith("· waiting") for ln in lines), lines
    rec = nv.get(task_id)
    assert len(rec["runs"]) == 1 and rec["runs"][0]["num_turns"] == 2, rec
    assert "Hello from the mock Anthropic server!" in lines, lines
