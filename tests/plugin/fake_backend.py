#!/usr/bin/env python3
"""A stand-in for the Rust backend, speaking doc/protocol.md over stdio (msgpack-RPC).

It lets the Lua side be tested without building the backend: version check, configure, start,
attach (with a nested `output.write` *inside* the attach request, as the real backend may do),
events, errors, crashes. Every request is appended as JSON to <state-dir>/fake-requests.jsonl.

Environment:
  FAKE_BACKEND_VERSION   what `version` answers (default 0.1.0)
  FAKE_BACKEND_CRASH_ON  a method that makes the backend exit with code 3 instead of answering

Extra methods for tests: `_finish {id, cwd?, status?}` ends a task (event + footer line),
`_crash {}` exits with code 3 at once, `_request {id, cwd?, request}` makes a task wait for an
answer (the request joins `pending`, a `permission` event is sent). Answers (`allow`, `deny`,
`answer`) are kept in the record's `_answers` for the tests to read. Notifications (`unsaved`)
are logged like requests.
"""
import json
import os
import sys
import time

import msgpack

args = sys.argv[1:]
if args == ["--version"]:
    print("claude-tasks " + os.environ.get("FAKE_BACKEND_VERSION", "0.1.0"))
    sys.exit(0)

state_dir = args[args.index("--state-dir") + 1] if "--state-dir" in args else "/tmp"
os.makedirs(state_dir, exist_ok=True)
requests_log = os.path.join(state_dir, "fake-requests.jsonl")

stdin = sys.stdin.buffer
stdout = sys.stdout.buffer
unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
packer = msgpack.Packer(use_bin_type=True)
next_msgid = [1]
pending = []  # messages read while waiting for a response

tasks = {}  # (cwd, id) -> record
views = {}  # (cwd, id) -> set of bufs
next_id = {}


def send(msg):
    stdout.write(packer.pack(msg))
    stdout.flush()


def read_message():
    while True:
        for msg in unpacker:
            return msg
        data = os.read(stdin.fileno(), 65536)
        if not data:
            sys.exit(0)
        unpacker.feed(data)


def call_nvim(method, params):
    msgid = next_msgid[0]
    next_msgid[0] += 1
    send([0, msgid, method, params])
    while True:
        msg = read_message()
        if msg[0] == 1 and msg[1] == msgid:
            if msg[2] is not None:
                raise RuntimeError(str(msg[2]))
            return msg[3]
        if msg[0] == 0:
            handle_request(msg)
        else:
            pending.append(msg)


def exec_lua(code, args):
    return call_nvim("nvim_exec_lua", [code, args])


def dispatch(typ, rec, request=None):
    ev = {"type": typ, "task": rec}
    if request is not None:
        ev["request"] = request
    exec_lua('return require("claude-tasks.events").dispatch(...)', [ev])


def write(buf, start, lines):
    return exec_lua('return require("claude-tasks.output").write(...)', [buf, start, lines])


def now_ms():
    return int(time.time() * 1000)


def rendered(rec):
    lines = ["# #%d %s" % (rec["id"], rec["name"]), "", "● Bash(echo hi)", "  ⎿ hi"]
    if rec["status"] == "completed":
        lines += ["", "✓ done in 1.0s · 1 turns · $0.0100"]
    elif rec["status"] == "cancelled":
        lines += ["", "■ cancelled"]
    elif rec["status"] == "failed":
        lines += ["", "✗ failed: boom"]
    return lines


def redraw(key):
    rec = tasks[key]
    for buf in list(views.get(key, ())):
        if write(buf, 0, rendered(rec)) is False:
            views[key].discard(buf)


class RpcError(Exception):
    pass


rules = []  # {rule, scope, id?, cwd}


def pending_request(method, rec, a):
    pend = rec.get("pending") or []
    if rec["status"] != "running":
        raise RpcError("%s: task #%d is %s; there is nothing to answer" % (
            method, rec["id"], rec["status"]))
    if not pend:
        raise RpcError("%s: task #%d has no pending request" % (method, rec["id"]))
    rid = a.get("request_id")
    if rid is None:
        return pend[0]
    for r in pend:
        if r["request_id"] == rid or r["request_id"].startswith(rid):
            return r
    raise RpcError("%s: task #%d has no pending request '%s' (pending: %s)" % (
        method, rec["id"], rid, ", ".join(r["request_id"][:8] for r in pend)))


def settle(key, req, decision):
    rec = tasks[key]
    rec["pending"] = [r for r in rec["pending"] if r["request_id"] != req["request_id"]]
    rec.setdefault("_answers", []).append(dict(decision, request_id=req["request_id"]))
    dispatch("updated", rec)
    return rec


def rules_of(cwd, tid):
    return [r for r in rules if r["cwd"] == cwd and (r["scope"] == "project" or r.get("id") == tid)]


def find(method, a, cwd):
    key = (cwd, a.get("id"))
    if key not in tasks:
        raise RpcError("%s: no task %s in %s" % (method, a.get("id"), cwd))
    return key


def handle(method, params):
    a = params[0] if params and isinstance(params[0], dict) else {}
    with open(requests_log, "a") as f:
        f.write(json.dumps({"method": method, "args": a}) + "\n")
    if method == os.environ.get("FAKE_BACKEND_CRASH_ON") or method == "_crash":
        sys.stderr.write("fake backend: crashing on %s\n" % method)
        sys.stderr.flush()
        os._exit(3)
    cwd = a.get("cwd") or os.getcwd()
    if method == "version":
        return os.environ.get("FAKE_BACKEND_VERSION", "0.1.0")
    if method == "configure":
        return True
    if method == "start":
        prompt = a.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise RpcError("start: 'prompt' must be a non-empty string")
        n = next_id.get(cwd, 0) + 1
        next_id[cwd] = n
        name = a.get("name") or prompt.strip().splitlines()[0][:40]
        rec = {
            "schema": 1, "id": n, "name": name, "cwd": cwd, "status": "running",
            "session_id": "00000000-0000-4000-8000-%012d" % n, "created_at_ms": now_ms(),
            "started_at_ms": now_ms(), "cost_usd": 0.0, "num_turns": 0, "cancel_requested": False,
            "options": {"cmd": a.get("cmd"), "permission_mode": a.get("permission_mode"),
                        "allowed_tools": a.get("allowed_tools"), "args": a.get("args")},
            "runs": [{"n": 1, "prompt_title": name, "transcript_offset": 0, "stderr_offset": 0,
                      "status": "running", "cost_usd": 0.0, "num_turns": 0}],
            "dir": os.path.join(state_dir, "p", str(n)),
            "transcript": os.path.join(state_dir, "p", str(n), "transcript.jsonl"),
            "stderr": os.path.join(state_dir, "p", str(n), "stderr.log"),
        }
        os.makedirs(rec["dir"], exist_ok=True)
        with open(rec["transcript"], "w") as f:
            f.write('{"type":"system","subtype":"init"}\n')
        tasks[(cwd, n)] = rec
        dispatch("started", rec)
        return rec
    if method == "_request":
        key = find(method, a, cwd)
        rec = tasks[key]
        req = dict(a["request"])
        req.setdefault("since", now_ms())
        req.setdefault("suggestions", [])
        rec.setdefault("pending", []).append(req)
        dispatch("permission", rec, req)
        return rec
    if method == "allow":
        key = find(method, a, cwd)
        req = pending_request(method, tasks[key], a)
        if a.get("input") is not None and not isinstance(a["input"], dict):
            raise RpcError("allow: 'input' must be a map")
        always = a.get("always")
        if always:
            rule = req.get("rule") if always is True else always
            rules.append({"rule": rule, "scope": a.get("scope") or "task", "id": key[1], "cwd": cwd})
        return settle(key, req, {"behavior": "allow", "input": a.get("input") or req["input"],
                                 "always": always, "scope": a.get("scope")})
    if method == "deny":
        key = find(method, a, cwd)
        req = pending_request(method, tasks[key], a)
        return settle(key, req, {"behavior": "deny", "message": a.get("message"),
                                 "interrupt": a.get("interrupt")})
    if method == "answer":
        key = find(method, a, cwd)
        req = pending_request(method, tasks[key], a)
        if req["tool_name"] != "AskUserQuestion":
            raise RpcError("answer: request %s of task #%d is a %s request, not a question" % (
                req["request_id"][:8], key[1], req["tool_name"]))
        return settle(key, req, {"behavior": "answer", "answers": a.get("answers")})
    if method == "rules":
        return [{k: v for k, v in r.items() if k != "cwd"} for r in rules_of(cwd, a.get("id"))]
    if method == "remove_rule":
        rules[:] = [r for r in rules if not (r["cwd"] == cwd and r["rule"] == a.get("rule")
                                             and r["scope"] == (a.get("scope") or "task"))]
        return [{k: v for k, v in r.items() if k != "cwd"} for r in rules_of(cwd, a.get("id"))]
    if method == "_finish":
        key = find(method, a, cwd)
        rec = tasks[key]
        rec["status"] = a.get("status", "completed")
        rec["ended_at_ms"] = now_ms()
        rec["duration_ms"] = 1000
        rec["exit_code"] = 0 if rec["status"] == "completed" else 1
        rec["cost_usd"] = 0.01
        rec["num_turns"] = 1
        rec["result"] = "all good"
        rec["runs"][-1]["status"] = rec["status"]
        redraw(key)
        dispatch(rec["status"], rec)
        return rec
    if method == "cancel":
        key = find(method, a, cwd)
        rec = tasks[key]
        if rec["status"] not in ("running", "queued"):
            raise RpcError("cancel: task %d is %s" % (rec["id"], rec["status"]))
        rec["status"] = "cancelled"
        rec["cancel_requested"] = True
        rec["duration_ms"] = 500
        rec["runs"][-1]["status"] = "cancelled"
        redraw(key)
        dispatch("cancelled", rec)
        return rec
    if method == "interrupt":
        key = find(method, a, cwd)
        rec = tasks[key]
        if rec["status"] != "running":
            raise RpcError("interrupt: task %d is not running (it is %s)" % (rec["id"], rec["status"]))
        rec["status"] = "cancelled"
        rec["runs"][-1]["status"] = "cancelled"
        rec["runs"][-1]["interrupted"] = True
        rec["live"] = {"since_ms": now_ms(), "until_ms": now_ms() + 600000}
        redraw(key)
        dispatch("cancelled", rec)
        return rec
    if method == "resume":
        key = find(method, a, cwd)
        rec = tasks[key]
        rec["status"] = "running"
        rec["runs"].append({"n": len(rec["runs"]) + 1, "prompt_title": a.get("prompt"),
                            "transcript_offset": 0, "stderr_offset": 0, "status": "running",
                            "cost_usd": 0.0, "num_turns": 0})
        dispatch("started", rec)
        return rec
    if method == "dispose":
        key = find(method, a, cwd)
        rec = tasks.pop(key)
        dispatch("disposed", rec)
        return True
    if method == "get":
        return tasks[find(method, a, cwd)]
    if method == "list":
        recs = [r for (c, _), r in tasks.items() if a.get("all") or c == cwd]
        return sorted(recs, key=lambda r: r["created_at_ms"] * 1000 + r["id"], reverse=True)
    if method == "attach":
        key = find(method, a, cwd)
        views.setdefault(key, set()).add(a["buf"])
        # Nested: write before answering, as the real backend may.
        write(a["buf"], 0, rendered(tasks[key]))
        return True
    if method == "detach":
        key = (cwd, a.get("id"))
        views.get(key, set()).discard(a.get("buf"))
        return True
    raise RpcError("unknown method '%s'" % method)


def handle_request(msg):
    _, msgid, method, params = msg
    try:
        result = handle(method, params)
        send([1, msgid, None, result])
    except RpcError as e:
        send([1, msgid, str(e), None])
    except Exception as e:  # noqa: BLE001
        send([1, msgid, "fake backend: %r" % (e,), None])


def main():
    while True:
        msg = pending.pop(0) if pending else read_message()
        if msg[0] == 0:
            handle_request(msg)
        elif msg[0] == 2:
            _, method, params = msg
            a = params[0] if params and isinstance(params[0], dict) else {}
            with open(requests_log, "a") as f:
                f.write(json.dumps({"method": method, "args": a, "notification": True}) + "\n")


main()
