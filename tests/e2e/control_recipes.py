"""Recipes for record_fixture.py (``--script tests/e2e/control_recipes.py``): the control
protocol as the backend drives it (doc/protocol.md, "Permission requests"), with the plugin's
exact flags. Each is what the backend relies on, recorded for every pinned CLI:

    .deps/venv/bin/python tests/e2e/record_fixture.py --cli 2.1.332 \\
        --script tests/e2e/control_recipes.py control-permission-allow ...

The answers carry the plugin's own top-level key (``claude_tasks``), which the CLI must echo
verbatim (``--replay-user-messages``): the buffer shows who decided from that echo.
"""

from __future__ import annotations

import signal
import time

from record_fixture import Run, STREAM_INPUT, is_tool_use, one

# The backend's flags (cli/invoke.rs), except the session id, which the recorder sets.
PLUGIN = STREAM_INPUT + ["--permission-prompt-tool", "stdio", "--replay-user-messages"]
DEFAULT = ["--permission-mode", "default"]
ACCEPT = ["--permission-mode", "acceptEdits"]
BYPASS = ["--permission-mode", "bypassPermissions"]
AUTO = ["--permission-mode", "auto"]
NEW = ["--session-id={sid}"]
HOOK = {"PreToolUse": [{"matcher": "Write|Edit|MultiEdit|NotebookEdit",
                        "hookCallbackIds": ["claude_tasks_unsaved"]}]}


def initialize(run: Run, hooks: dict | None = HOOK) -> None:
    run.send({"type": "control_request", "request_id": "ct-init-1",
              "request": {"subtype": "initialize", "hooks": hooks}})


def can_use_tool(ln: dict) -> bool:
    return ln.get("type") == "control_request" and ln["request"].get("subtype") == "can_use_tool"


def hook_callback(ln: dict) -> bool:
    return ln.get("type") == "control_request" and ln["request"].get("subtype") == "hook_callback"


def result(ln: dict) -> bool:
    return ln.get("type") == "result"


def answer(run: Run, req: dict, response: dict, by: str = "user", **ours) -> None:
    run.send({"type": "control_response", "claude_tasks": {"by": by, **ours},
              "response": {"subtype": "success", "request_id": req["request_id"],
                           "response": response}})


def end_idle(run: Run) -> None:
    """As the backend ends an idle CLI whose stdin never closes: SIGTERM."""
    run.signal(signal.SIGTERM)


def allow(run: Run) -> None:
    """A Write in default mode: the hook answered `{}` (go on), the request allowed with the
    input echoed back; our key comes back in the echo; SIGTERM once idle."""
    initialize(run)
    run.user("SCENARIO:write make a file")
    hook = run.wait_line(hook_callback, what="the hook callback")
    run.send({"type": "control_response", "claude_tasks": {"by": "hook"},
              "response": {"subtype": "success", "request_id": hook["request_id"],
                           "response": {}}})
    req = run.wait_line(can_use_tool, what="the permission request")
    answer(run, req, {"behavior": "allow", "updatedInput": req["request"]["input"]})
    run.wait_line(result, what="the result")
    end_idle(run)


def deny(run: Run) -> None:
    """A Bash command denied with a reason; SIGTERM once idle."""
    initialize(run, None)
    run.user('SCENARIO:bash cmd="touch made-by-bash.txt"')
    req = run.wait_line(can_use_tool, what="the permission request")
    answer(run, req, {"behavior": "deny", "message": "The user denied this in Neovim."})
    run.wait_line(result, what="the result")
    end_idle(run)


def edited(run: Run) -> None:
    """A Bash command allowed with an edited command, which is what runs; then a rule's
    answer for the second one (what the backend writes for an "always")."""
    initialize(run, None)
    run.user('SCENARIO:bash2 cmd="touch one.txt" cmd2="touch two.txt"')
    req = run.wait_line(can_use_tool, what="the first request")
    answer(run, req, {"behavior": "allow", "updatedInput": {"command": "touch edited.txt"}},
           edited=True)
    req2 = run.wait_line(can_use_tool, what="the second request", nth=2)
    answer(run, req2, {"behavior": "allow", "updatedInput": req2["request"]["input"]},
           by="rule", rule="Bash(touch:*)", scope="task")
    run.wait_line(result, what="the result")
    end_idle(run)


def unsaved(run: Run) -> None:
    """acceptEdits, which writes without asking: our hook answers `ask` (the file has unsaved
    changes), so the CLI asks; denied."""
    initialize(run)
    run.user("SCENARIO:write make a file")
    hook = run.wait_line(hook_callback, what="the hook callback")
    run.send({"type": "control_response",
              "claude_tasks": {"by": "hook", "unsaved": "hello.txt"},
              "response": {"subtype": "success", "request_id": hook["request_id"],
                           "response": {"hookSpecificOutput": {
                               "hookEventName": "PreToolUse", "permissionDecision": "ask",
                               "permissionDecisionReason":
                                   "you have unsaved changes in hello.txt"}}}})
    req = run.wait_line(can_use_tool, what="the request the hook made")
    answer(run, req, {"behavior": "deny", "message": "The user denied this in Neovim."})
    run.wait_line(result, what="the result")
    end_idle(run)


def unsaved_any_mode(run: Run) -> None:
    """A mode that may write without asking (bypassPermissions, auto): our hook answers `ask`.
    Whether the CLI then asks is what is recorded, so a CLI that ignores the hook's `ask` and
    writes is recorded as it is (the driver waits for a request or the result, whichever comes
    first); a request is denied."""
    initialize(run)
    run.user("SCENARIO:write make a file")
    hook = run.wait_line(hook_callback, what="the hook callback")
    run.send({"type": "control_response",
              "claude_tasks": {"by": "hook", "unsaved": "hello.txt"},
              "response": {"subtype": "success", "request_id": hook["request_id"],
                           "response": {"hookSpecificOutput": {
                               "hookEventName": "PreToolUse", "permissionDecision": "ask",
                               "permissionDecisionReason":
                                   "you have unsaved changes in hello.txt"}}}})
    first = run.wait_line(lambda ln: can_use_tool(ln) or result(ln),
                          what="the request the hook made, or the result")
    if can_use_tool(first):
        run.note("the CLI asked: the hook's ask was obeyed")
        answer(run, first, {"behavior": "deny", "message": "The user denied this in Neovim."})
        run.wait_line(result, what="the result")
    else:
        run.note("NO request: the CLI ignored the hook's ask in this mode")
    end_idle(run)


def question(run: Run) -> None:
    """AskUserQuestion answered as the backend answers it: allow + input + answers."""
    initialize(run, None)
    run.user("SCENARIO:ask which color")
    req = run.wait_line(can_use_tool, what="the question")
    answered = dict(req["request"]["input"],
                    answers={"Which color should the button be?": "Blue"})
    answer(run, req, {"behavior": "allow", "updatedInput": answered})
    run.wait_line(result, what="the result")
    end_idle(run)


def interrupt_waiting(run: Run) -> None:
    """Cancel while a request waits: interrupt (the request is withdrawn first), then the idle
    CLI ended with SIGTERM."""
    initialize(run, None)
    run.user('SCENARIO:bash cmd="touch never.txt"')
    run.wait_line(can_use_tool, what="the permission request")
    run.send({"type": "control_request", "request_id": "ct-int-1",
              "request": {"subtype": "interrupt"}})
    run.wait_line(result, what="the interrupted result")
    end_idle(run)


def duplicate(run: Run) -> None:
    """An answer given twice (a backend that crashed after writing it, and the next one): the
    second is neither echoed nor acted on; an empty line (what a re-opening backend writes
    first) is ignored."""
    initialize(run, None)
    run.user('SCENARIO:bash cmd="touch once.txt"')
    req = run.wait_line(can_use_tool, what="the permission request")
    answer(run, req, {"behavior": "allow", "updatedInput": req["request"]["input"]})
    assert run.proc.stdin is not None
    run.proc.stdin.write(b"\n")
    run.proc.stdin.flush()
    run.note("wrote an empty line")
    answer(run, req, {"behavior": "allow", "updatedInput": req["request"]["input"]})
    run.wait_line(result, what="the result")
    time.sleep(0.3)
    end_idle(run)


RECIPES = [
    one("control-permission-allow", PLUGIN + DEFAULT + NEW, drive=allow,
        notes="The plugin's flags; initialize with its PreToolUse hook; a Write allowed with "
              "the input echoed back; our claude_tasks key echoed verbatim; SIGTERM when idle "
              "(exits, writes nothing)."),
    one("control-permission-deny", PLUGIN + DEFAULT + NEW, drive=deny,
        notes="A Bash command denied with a message: the tool does not run, the model gets "
              "the message."),
    one("control-permission-edited", PLUGIN + DEFAULT + NEW, drive=edited,
        notes="An edited updatedInput is what runs (edited.txt, not one.txt); a rule's answer "
              "for the next command."),
    one("control-permission-unsaved-hook", PLUGIN + ACCEPT + NEW, drive=unsaved,
        notes="acceptEdits: the PreToolUse hook answered permissionDecision=ask makes the CLI "
              "ask for a Write it would have run (decision_reason_type hook)."),
    one("control-permission-unsaved-hook-bypassPermissions", PLUGIN + BYPASS + NEW,
        drive=unsaved_any_mode, env={"IS_SANDBOX": "1"},
        notes="bypassPermissions (IS_SANDBOX=1: as root the CLI refuses the mode without it): "
              "the PreToolUse hook answered permissionDecision=ask; whether "
              "the CLI still asks for the Write (a can_use_tool, denied) or writes anyway is "
              "what this run shows (timeline.txt, cwd_files.txt). Recorded: 2.1.197 and 2.1.332 "
              "both ask; the Write is denied and nothing is written."),
    one("control-permission-unsaved-hook-auto", PLUGIN + AUTO + NEW,
        drive=unsaved_any_mode,
        notes="auto: the PreToolUse hook answered permissionDecision=ask; whether the CLI "
              "still asks for the Write (a can_use_tool, denied) or writes anyway is what this "
              "run shows (timeline.txt, cwd_files.txt). Recorded: 2.1.197 and 2.1.332 both "
              "ask; the Write is denied and nothing is written."),
    one("control-permission-question", PLUGIN + DEFAULT + NEW, drive=question,
        notes="AskUserQuestion answered with allow + updatedInput.answers."),
    one("control-interrupt-waiting", PLUGIN + DEFAULT + NEW, drive=interrupt_waiting,
        notes="interrupt while a request waits: control_cancel_request first, then the "
              "interrupt's answer and an error_during_execution result; SIGTERM when idle."),
    one("control-answer-twice", PLUGIN + DEFAULT + NEW, drive=duplicate,
        notes="The same answer twice with an empty line between: one echo, the tool runs once."),
]
