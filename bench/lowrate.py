#!/usr/bin/env python3
"""A stand-in for the Claude CLI that streams text slowly, for the latency benchmark.

Run by the backend as a task's `cmd` (so its stdout is the task's transcript file, exactly like
the real CLI's): it reads stdin up to the prompt (a stream-json user message), ignores the CLI flags the backend appends, and
writes stream-json lines like `claude -p --output-format stream-json --include-partial-messages`:
init, message_start, then one `text_delta` per line, each text being `seq=<n> t=<ns>\n` where
<ns> is CLOCK_MONOTONIC (the clock of vim.uv.hrtime()) taken just before the line is written,
then the `assistant` line, the end of the message and a `result` line.

    lowrate.py --count=60 --interval-ms=100 --warmup-ms=300 [claude flags...]
"""
import json
import os
import sys
import time
import uuid


def main():
    count, interval_ms, warmup_ms = 60, 100, 300
    for a in sys.argv[1:]:
        if a.startswith("--count="):
            count = int(a.split("=", 1)[1])
        elif a.startswith("--interval-ms="):
            interval_ms = float(a.split("=", 1)[1])
        elif a.startswith("--warmup-ms="):
            warmup_ms = float(a.split("=", 1)[1])
    # The backend speaks the CLI's control protocol on a stdin that never ends (a FIFO it keeps
    # open): read its lines up to the prompt (a stream-json user message), not to an EOF.
    try:
        for raw in sys.stdin.buffer:
            try:
                if json.loads(raw).get("type") == "user":
                    break
            except (ValueError, AttributeError):
                continue
    except OSError:
        pass
    sid = str(uuid.uuid4())

    def out(obj):
        os.write(1, (json.dumps(obj, separators=(",", ":")) + "\n").encode())

    def ev(event):
        out({"type": "stream_event", "event": event, "session_id": sid,
             "parent_tool_use_id": None, "uuid": str(uuid.uuid4())})

    out({"type": "system", "subtype": "init", "cwd": os.getcwd(), "session_id": sid,
         "tools": [], "model": "lowrate", "permissionMode": "default"})
    ev({"type": "message_start", "message": {"id": "msg_lowrate", "type": "message",
                                             "role": "assistant", "content": []}})
    ev({"type": "content_block_start", "index": 0,
        "content_block": {"type": "text", "text": ""}})
    # Let the editor attach its buffer before the measured lines begin.
    time.sleep(warmup_ms / 1000.0)
    texts = []
    start = time.monotonic()
    for i in range(count):
        due = start + i * interval_ms / 1000.0
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        text = "seq=%d t=%d\n" % (i, time.monotonic_ns())
        texts.append(text)
        ev({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": text}})
    out({"type": "assistant", "message": {"id": "msg_lowrate", "type": "message",
                                          "role": "assistant",
                                          "content": [{"type": "text", "text": "".join(texts)}]},
         "parent_tool_use_id": None, "session_id": sid, "uuid": str(uuid.uuid4())})
    ev({"type": "content_block_stop", "index": 0})
    ev({"type": "message_stop"})
    out({"type": "result", "subtype": "success", "is_error": False, "duration_ms": 1,
         "num_turns": 1, "result": "done", "session_id": sid, "total_cost_usd": 0.0})


if __name__ == "__main__":
    main()
