"""Recipes for record_fixture.py (``--script tests/e2e/live_recipes.py``): one CLI process kept
alive between turns, as the backend drives a task's warm follow-ups (doc/protocol.md, "A live
task"): several turns in one process, messages written while a turn runs (folded into it, or
run as the next turn), interrupt without ending the process, and what an interrupt leaves
queued. Recorded for every pinned CLI:

    .deps/venv/bin/python tests/e2e/record_fixture.py --cli 2.1.332 \\
        --script tests/e2e/live_recipes.py control-live-two-turns ...
"""

from __future__ import annotations

import signal
import time

from record_fixture import Run, STREAM_INPUT, is_text_delta, is_tool_use, one

PLUGIN = STREAM_INPUT + ["--permission-prompt-tool", "stdio", "--replay-user-messages",
                         "--include-partial-messages"]
DEFAULT = ["--permission-mode", "default"]
NEW = ["--session-id={sid}"]
BASH = ["--allowedTools", "Bash"]
SLEEPER = ["sleep", "300"]


def initialize(run: Run) -> None:
    run.send({"type": "control_request", "request_id": "ct-init-1",
              "request": {"subtype": "initialize", "hooks": None}})


def user(run: Run, text: str, **ours) -> None:
    """A user message as the backend writes it, with our key when given."""
    msg = {"type": "user", "message": {"role": "user", "content": text},
           "parent_tool_use_id": None, "session_id": ""}
    if ours:
        msg["claude_tasks"] = ours
    run.send(msg)


def result(ln: dict) -> bool:
    return ln.get("type") == "result"


def echo(ln: dict) -> bool:
    return ln.get("type") == "user" and ln.get("isReplay") is True


def can_use_tool(ln: dict) -> bool:
    return ln.get("type") == "control_request" and ln["request"].get("subtype") == "can_use_tool"


def interrupt(run: Run, n: int = 1) -> None:
    run.send({"type": "control_request", "request_id": f"ct-int-{n}",
              "request": {"subtype": "interrupt"}})


def quiet(run: Run, seconds: float) -> None:
    """Waits, noting it: nothing more is expected (an idle CLI writes nothing)."""
    run.note(f"waiting {seconds}s for anything more")
    time.sleep(seconds)


def two_turns(run: Run) -> None:
    """Two messages, the second after the first's result: two turns in one process, each
    echoed (our key on the second: is it echoed?); total_cost_usd adds up."""
    initialize(run)
    user(run, "SCENARIO:hello first turn")
    run.wait_line(result, what="the first result")
    user(run, "SCENARIO:hello second turn", said={"n": 2})
    run.wait_line(result, what="the second result", nth=2)
    quiet(run, 1.0)
    run.signal(signal.SIGTERM)


def queued_two(run: Run) -> None:
    """Two messages written while the first turn streams text (no tool call after): does each
    run as its own turn, or both in one?"""
    initialize(run)
    user(run, "SCENARIO:slow chunks=8 delay=0.15 first turn")
    run.wait_line(is_text_delta, what="the third text delta", nth=3)
    user(run, "SCENARIO:hello queued one")
    user(run, "SCENARIO:remember queued two")
    run.wait_line(result, what="the second result", nth=2)
    quiet(run, 2.0)
    run.signal(signal.SIGTERM)


def folded(run: Run) -> None:
    """A message written while a permission request waits (the turn calls the API again after
    the tool): folded into that call, one result, echoed after the tool_result."""
    initialize(run)
    user(run, "SCENARIO:write make a file")
    req = run.wait_line(can_use_tool, what="the permission request")
    user(run, "SCENARIO:hello typed while the request waits")
    time.sleep(0.5)
    run.send({"type": "control_response", "claude_tasks": {"by": "user"},
              "response": {"subtype": "success", "request_id": req["request_id"],
                           "response": {"behavior": "allow",
                                        "updatedInput": req["request"]["input"]}}})
    run.wait_line(result, what="the result")
    quiet(run, 2.0)
    run.signal(signal.SIGTERM)


def interrupt_queued(run: Run) -> None:
    """A message written while text streams, then an interrupt: what becomes of the queued
    message (2.1.332's answer lists it in still_queued)?"""
    initialize(run)
    user(run, "SCENARIO:slow chunks=12 delay=0.15 first turn")
    run.wait_line(is_text_delta, what="the third text delta", nth=3)
    user(run, "SCENARIO:hello queued before the interrupt")
    time.sleep(0.1)
    interrupt(run)
    run.wait_line(result, what="the interrupted result")
    quiet(run, 2.5)
    run.signal(signal.SIGTERM)


def interrupt_tool_follow_up(run: Run) -> None:
    """An interrupt while the Bash tool runs (its process killed, the CLI stays), then a
    follow-up in the same process."""
    initialize(run)
    user(run, "SCENARIO:longbash")
    run.wait_line(is_tool_use, what="the Bash tool_use")
    run.wait_tool_process(SLEEPER)
    interrupt(run)
    first = run.wait_line(result, what="the interrupted result")
    after = run.lines().index(first) + 1
    user(run, "SCENARIO:remember are you still there?")
    run.wait_line(result, what="the follow-up's result", after=after)
    quiet(run, 0.5)
    run.signal(signal.SIGTERM)


RECIPES = [
    one("control-live-two-turns", PLUGIN + DEFAULT + NEW, drive=two_turns, by_name_only=True,
        notes="Two turns in one process: each message echoed just before its turn's answer; "
              "total_cost_usd and duration_api_ms are running sums over the process's turns."),
    one("control-live-queued-two", PLUGIN + DEFAULT + NEW, drive=queued_two, by_name_only=True,
        notes="Two messages written while the first turn streams text: each runs as a turn of "
              "its own after the first result (or together: see the timeline)."),
    one("control-live-folded", PLUGIN + DEFAULT + NEW, drive=folded, by_name_only=True,
        notes="A message written while a Write request waits: folded into the next API call "
              "of the running turn, echoed after the tool_result, one result for both."),
    one("control-live-interrupt-queued", PLUGIN + DEFAULT + NEW, drive=interrupt_queued,
        by_name_only=True,
        notes="A message queued while text streams, then interrupt: the interrupt's answer "
              "(2.1.332: still_queued) and what the CLI does with the queued message."),
    one("control-live-interrupt-tool", PLUGIN + DEFAULT + BASH + NEW,
        drive=interrupt_tool_follow_up, by_name_only=True,
        notes="interrupt while the Bash tool's sleep runs: the tool killed, the process "
              "stays; a follow-up in the same process sees the interrupted turn."),
]
