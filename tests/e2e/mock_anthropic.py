#!/usr/bin/env python3
"""Mock Anthropic Messages API for driving the real Claude Code CLI in tests.

Python 3.11 standard library only. Listens on 127.0.0.1 (port 0 = a free port by default) and
speaks what `claude -p` needs (verified with Claude Code 2.1.197 and 2.1.332):

* ``POST /v1/messages?beta=true`` with ``"stream": true``: Server-Sent Events ``message_start``,
  ``content_block_start``, ``content_block_delta`` (``text_delta`` / ``input_json_delta``),
  ``content_block_stop``, ``message_delta`` (``stop_reason``, ``usage``), ``message_stop``.
  With ``"stream": false`` (the CLI's fallback after a broken stream): one JSON message.
* ``POST /v1/messages/count_tokens``: ``{"input_tokens": N}``.
* ``HEAD`` anything: 200. Any other path: 404 with an Anthropic-style error body.

What to answer is decided by a marker in a user prompt (a user message with text, not a
tool_result; <system-reminder> blocks are ignored)::

    SCENARIO:<name> [key=value ...]

The rest of the marker's line is split like a shell would, so values may be quoted (a quoted
value may span lines); tokens that are not key=value are ignored, so free text may follow. The
newest prompt that has a marker wins (texts the CLI injects itself never carry one), and the
step is the number of assistant messages after that prompt: a tool_result coming back from the
CLI makes the next request step 1. Scenarios:

  hello                     3 lines of text, end_turn.
  write [path=/abs/file] [content=...]
                            step 0: text + tool_use Write {file_path: path or <cwd>/hello.txt
                            (<cwd>: the CLI's working directory, from its environment block),
                            content: "hello from the mock\\n"}, stop tool_use;
                            step 1: "Write step finished.\\ntool_result is_error=<bool>: <result>".
  bash [cmd=...]            step 0: text + tool_use Bash {command: cmd or "echo from-bash"};
                            step 1: "Bash step finished.\\ntool_result is_error=<bool>: <result>".
  longbash [cmd=...]        like bash with cmd "sh -c 'exec sleep 300'" (timeout 600000 ms): for
                            cancel tests. Not a bare "sleep 300": 2.1.332's Bash tool refuses a
                            command that starts with `sleep N` ("Blocked: standalone sleep
                            300"); `exec` leaves one process, `sleep 300`, as with 2.1.197. The
                            command needs permission (--allowedTools Bash), unlike a bare sleep.
  slow [chunks=20] [delay=0.5]
                            "slow chunk NN" lines, one text_delta per chunk, delay s apart.
  big [lines=31250] [width=80] [chunk=400]
                            ~2.5 MB of "line 000001 ..." lines (width bytes each incl. newline),
                            chunk lines per text_delta, last line "END OF BIG ANSWER".
  remember                  text proving the mock saw the earlier turns: the number of user
                            prompts in the request and the first one, quoted.
  error<NNN> [message=...]  HTTP NNN (e.g. error500, error529, error429, error401) with
                            {"type":"error","error":{"type":...,"message":...}}, every time.
  cut                       streaming: the stream is cut (connection closed) after one delta;
                            non-streaming fallback: the full text. Partial text is not retracted.
  multi                     step 0: two Bash tool_uses (echo one / echo two); step 1: text.
  bash2 [cmd=...] [cmd2=...]
                            step 0: Bash cmd (default "touch one.txt"); step 1: Bash cmd2
                            (default "touch two.txt"); step 2: text with both results.
  ask                       step 0: AskUserQuestion "Which color should the button be?"
                            (header Color, options Red / Blue); step 1: "Got the answer."
                            and the tool_result (the answers).
  (none / unknown)          a short text answer naming the scenario it did not know.

A request without tools (a "side" request such as title generation, only made when
nonessential traffic is enabled) gets a short text answer and never consumes a scenario.

Every request is logged as one JSON object per line to ``--log FILE``:
``{"seq", "t", "mono_ns" (when the request line arrived, CLOCK_MONOTONIC ns), "method", "path",
"headers", "body" (parsed JSON or text), "scenario", "step", "reply"}``; after a streamed answer a ``{"seq", "event": "stream_done" | "stream_cut" |
"client_gone"}`` line follows.

Start: ``python3 mock_anthropic.py [--port 0] [--port-file F] [--log F]``. It prints
``PORT=<n>`` on stdout (and writes ``<n>`` to the port file, atomically) once it accepts
connections, then serves until SIGTERM / SIGINT.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shlex
import signal
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

MARKER_RE = re.compile(r"SCENARIO:([A-Za-z0-9_-]+)")
# The CLI's environment block names its working directory: 2.1.197 in the system prompt,
# 2.1.332 in a `role: "system"` entry of `messages` (after the first prompt). Both are searched:
# the system prompt, then the `system` entries, then the other messages' text blocks.
CWD_RES = [
    re.compile(r"Primary working directory:\s*(\S+)"),
    re.compile(r"Working directory:\s*(\S+)"),
    re.compile(r"<cwd>\s*(\S+?)\s*</cwd>"),
]

HELLO_TEXT = (
    "Hello from the mock Anthropic server!\n"
    "This is line two of the hello scenario.\n"
    "And this is line three. Bye."
)
BIG_LAST_LINE = "END OF BIG ANSWER"
LONG_COMMAND = "sh -c 'exec sleep 300'"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _new_id(prefix: str) -> str:
    return f"{prefix}_mock_{uuid.uuid4().hex[:24]}"


def _split(text: str, n: int) -> list[str]:
    """Split text into about n non-empty pieces."""
    if not text:
        return [""]
    size = max(1, -(-len(text) // max(1, n)))
    return [text[i : i + size] for i in range(0, len(text), size)]


# ---------------------------------------------------------------------------------------------
# Reading the request


def _blocks(message: dict) -> list[dict]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _prompt_text(message: dict) -> str | None:
    """The prompt text of a user message, or None if it is not a prompt (tool results, or only
    <system-reminder> blocks)."""
    if message.get("role") != "user":
        return None
    blocks = _blocks(message)
    if any(b.get("type") == "tool_result" for b in blocks):
        return None
    texts = [
        b.get("text", "")
        for b in blocks
        if b.get("type") == "text" and not b.get("text", "").lstrip().startswith("<system-reminder>")
    ]
    text = "\n".join(t for t in texts if t.strip())
    return text or None


def _tool_results(message: dict) -> list[dict]:
    out = []
    for b in _blocks(message):
        if b.get("type") == "tool_result":
            out.append({"text": _text_of(b.get("content")), "is_error": bool(b.get("is_error"))})
    return out


def _system_text(body: dict) -> str:
    system = body.get("system")
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(b.get("text", "") for b in system if isinstance(b, dict))
    return ""


def _find_cwd(body: dict) -> str | None:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    # The CLI's own system entries before the user's prompts, which could quote such a line.
    messages.sort(key=lambda m: m.get("role") != "system")
    haystacks = [_system_text(body)]
    for m in messages:
        haystacks.extend(b.get("text", "") for b in _blocks(m) if b.get("type") == "text")
    for text in haystacks:
        for rx in CWD_RES:
            m = rx.search(text)
            if m:
                return m.group(1).rstrip(".,;")
    return None


def _parse_args(rest: str) -> dict[str, str]:
    """key=value tokens of the rest of the marker line, split like a shell would; a quoted value
    may span lines (the following lines are added while a quote is open)."""
    lines = rest.split("\n")
    tokens = None
    for n in range(1, len(lines) + 1):
        try:
            tokens = shlex.split("\n".join(lines[:n]))
            break
        except ValueError:
            continue
    if tokens is None:
        tokens = lines[0].split()
    params = {}
    for tok in tokens:
        key, sep, value = tok.partition("=")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            params[key] = value
    return params


class Conversation:
    """What the mock needs to know about one request."""

    def __init__(self, body: dict):
        self.body = body
        self.messages = [m for m in (body.get("messages") or []) if isinstance(m, dict)]
        self.model = body.get("model") or "claude-mock"
        self.stream = bool(body.get("stream"))
        self.tools = body.get("tools") or []
        self.prompts: list[tuple[int, str]] = []
        for i, m in enumerate(self.messages):
            text = _prompt_text(m)
            if text is not None:
                self.prompts.append((i, text))
        self.scenario: str | None = None
        self.params: dict[str, str] = {}
        self.step = 0
        marker_at = None
        for i, text in reversed(self.prompts):
            found = list(MARKER_RE.finditer(text))
            if found:
                m = found[-1]
                self.scenario = m.group(1)
                self.params = _parse_args(text[m.end():])
                marker_at = i
                break
        if marker_at is None and self.prompts:
            marker_at = self.prompts[-1][0]
        if marker_at is not None:
            self.step = sum(
                1 for m in self.messages[marker_at + 1 :] if m.get("role") == "assistant"
            )
        last_user = next((m for m in reversed(self.messages) if m.get("role") == "user"), None)
        self.last_tool_results = _tool_results(last_user) if last_user else []

    @property
    def is_side(self) -> bool:
        return not self.tools


# ---------------------------------------------------------------------------------------------
# Building answers


class Reply:
    """An assistant message to send: content blocks plus how to stream them."""

    def __init__(self, blocks: list[dict], stop_reason: str, *, chunks: int = 4,
                 delay: float = 0.0, cut_after: int | None = None):
        self.blocks = blocks
        self.stop_reason = stop_reason
        self.chunks = chunks  # text pieces per text block (ignored for blocks with "pieces")
        self.delay = delay  # seconds between deltas
        self.cut_after = cut_after  # close the connection after this many deltas

    def describe(self) -> str:
        kinds = ",".join(
            b["type"] + (":" + b["name"] if b["type"] == "tool_use" else "") for b in self.blocks
        )
        return f"{kinds} stop={self.stop_reason}"


class ErrorReply:
    def __init__(self, status: int, message: str | None = None):
        self.status = status
        self.type = ERROR_TYPES.get(status, "api_error")
        self.message = message or f"Mock error {status} ({self.type})"

    def describe(self) -> str:
        return f"error:{self.status}"


def text_block(text: str, pieces: list[str] | None = None) -> dict:
    b = {"type": "text", "text": text}
    if pieces is not None:
        b["pieces"] = pieces
    return b


def tool_block(name: str, tool_input: dict) -> dict:
    return {"type": "tool_use", "id": _new_id("toolu"), "name": name, "input": tool_input}


def _result_summary(conv: Conversation) -> str:
    if not conv.last_tool_results:
        return "tool_result missing"
    return "\n".join(
        f"tool_result is_error={r['is_error']}: {r['text']}" for r in conv.last_tool_results
    )


def _float(params: dict, key: str, default: float) -> float:
    try:
        return float(params.get(key, default))
    except ValueError:
        return default


def _int(params: dict, key: str, default: int) -> int:
    try:
        return int(params.get(key, default))
    except ValueError:
        return default


def decide(conv: Conversation) -> Reply | ErrorReply:
    if conv.is_side:
        return Reply([text_block("Mock title")], "end_turn", chunks=1)
    name, p, step = conv.scenario, conv.params, conv.step

    if name is None:
        return Reply([text_block("Mock: no SCENARIO marker in the prompt.")], "end_turn")

    m = re.fullmatch(r"error(\d{3})", name)
    if m:
        return ErrorReply(int(m.group(1)), p.get("message"))

    if name == "hello":
        return Reply([text_block(HELLO_TEXT)], "end_turn")

    if name in ("write", "bash", "longbash"):
        if step == 0:
            if name == "write":
                path = p.get("path")
                if not path:
                    cwd = _find_cwd(conv.body) or os.getcwd()
                    path = os.path.join(cwd, "hello.txt")
                content = p.get("content", "hello from the mock\n")
                return Reply(
                    [text_block(f"I'll create {os.path.basename(path)} now."),
                     tool_block("Write", {"file_path": path, "content": content})],
                    "tool_use",
                )
            if name == "bash":
                cmd = p.get("cmd", "echo from-bash")
                return Reply(
                    [text_block("Running a shell command."),
                     tool_block("Bash", {"command": cmd, "description": "Run a mock command"})],
                    "tool_use",
                )
            cmd = p.get("cmd", LONG_COMMAND)
            return Reply(
                [text_block("Starting a long-running command."),
                 tool_block("Bash", {"command": cmd, "description": "Run a long command",
                                     "timeout": 600000})],
                "tool_use",
            )
        title = {"write": "Write", "bash": "Bash", "longbash": "Long bash"}[name]
        return Reply([text_block(f"{title} step finished.\n{_result_summary(conv)}")], "end_turn")

    if name == "bash2":
        if step in (0, 1):
            key, default = ("cmd", "touch one.txt") if step == 0 else ("cmd2", "touch two.txt")
            return Reply(
                [text_block(f"Step {step + 1}."),
                 tool_block("Bash", {"command": p.get(key, default),
                                     "description": f"Step {step + 1}"})],
                "tool_use",
            )
        return Reply([text_block(f"Both steps finished.\n{_result_summary(conv)}")], "end_turn")

    if name == "ask":
        if step == 0:
            question = {
                "question": "Which color should the button be?",
                "header": "Color",
                "options": [{"label": "Red", "description": "A red button"},
                            {"label": "Blue", "description": "A blue button"}],
                "multiSelect": False,
            }
            return Reply([tool_block("AskUserQuestion", {"questions": [question]})], "tool_use")
        return Reply([text_block(f"Got the answer.\n{_result_summary(conv)}")], "end_turn")

    if name == "multi":
        if step == 0:
            return Reply(
                [text_block("Running two commands."),
                 tool_block("Bash", {"command": "echo one", "description": "Echo one"}),
                 tool_block("Bash", {"command": "echo two", "description": "Echo two"})],
                "tool_use",
            )
        return Reply([text_block(f"Both commands finished.\n{_result_summary(conv)}")], "end_turn")

    if name == "slow":
        n = max(1, _int(p, "chunks", 20))
        pieces = [f"slow chunk {i:02d}\n" for i in range(1, n + 1)]
        return Reply([text_block("".join(pieces), pieces)], "end_turn",
                     delay=max(0.0, _float(p, "delay", 0.5)))

    if name == "big":
        n = max(1, _int(p, "lines", 31250))
        width = max(24, _int(p, "width", 80))
        per = max(1, _int(p, "chunk", 400))
        lines = []
        for i in range(1, n):
            head = f"line {i:06d} "
            lines.append(head + ("abcdefghijklmnopqrstuvwxyz" * 8)[: width - len(head) - 1] + "\n")
        lines.append(BIG_LAST_LINE)
        pieces = ["".join(lines[i : i + per]) for i in range(0, len(lines), per)]
        return Reply([text_block("".join(pieces), pieces)], "end_turn")

    if name == "remember":
        prompts = [t for _, t in conv.prompts]
        first = prompts[0] if prompts else ""
        text = (
            f"I remember {len(prompts)} user prompts.\n"
            f"First prompt: {json.dumps(first, ensure_ascii=False)}\n"
            f"All prompts: {json.dumps(prompts, ensure_ascii=False)}"
        )
        return Reply([text_block(text)], "end_turn")

    if name == "cut":
        return Reply([text_block("This answer will be cut by a closed connection")], "end_turn",
                     cut_after=1)

    return Reply([text_block(f"Mock: unknown scenario {name!r}.")], "end_turn")


# ---------------------------------------------------------------------------------------------
# HTTP


class MockState:
    def __init__(self, log_path: str | None):
        self.lock = threading.Lock()
        self.seq = 0
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None

    def next_seq(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq

    def log(self, entry: dict) -> None:
        if not self.log_file:
            return
        line = json.dumps(entry, ensure_ascii=False)
        with self.lock:
            self.log_file.write(line + "\n")
            self.log_file.flush()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"


def _usage(input_tokens: int, output_tokens: int) -> dict:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-anthropic/1"
    sys_version = ""
    state: MockState  # set on the class by main()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def parse_request(self) -> bool:
        # Called as soon as the request line is read: when the request reached us, on the
        # clock (CLOCK_MONOTONIC) other processes' timestamps use (vim.uv.hrtime()).
        self._arrived_ns = time.monotonic_ns()
        return super().parse_request()

    # -- plumbing ---------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            raw = self.rfile.read(length)
        elif "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                raw += self.rfile.read(size)
                self.rfile.readline()
        else:
            raw = b""
        enc = (self.headers.get("Content-Encoding") or "").lower()
        if enc == "gzip":
            raw = gzip.decompress(raw)
        elif enc == "deflate":
            raw = zlib.decompress(raw)
        return raw

    def _send_json(self, status: int, obj: Any, request_id: str | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if request_id:
            self.send_header("request-id", request_id)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _sse(self, event: str, data: dict) -> None:
        self._chunk(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

    def _entry(self, seq: int, body: Any) -> dict:
        return {
            "seq": seq,
            "t": _now(),
            "mono_ns": getattr(self, "_arrived_ns", None),
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()
                        if k.lower() not in ("authorization", "x-api-key")},
            "body": body,
        }

    # -- verbs ------------------------------------------------------------------------------

    def do_HEAD(self) -> None:  # noqa: N802
        seq = self.state.next_seq()
        self.state.log(self._entry(seq, None))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        seq = self.state.next_seq()
        self.state.log(self._entry(seq, None))
        self._not_found()

    def do_DELETE(self) -> None:  # noqa: N802
        self.do_GET()

    def do_PUT(self) -> None:  # noqa: N802
        self.do_POST()

    def do_PATCH(self) -> None:  # noqa: N802
        self.do_POST()

    def _not_found(self) -> None:
        self._send_json(404, {"type": "error", "error": {
            "type": "not_found_error", "message": f"mock: no route for {self.command} {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        seq = self.state.next_seq()
        raw = self._read_body()
        try:
            body: Any = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = raw.decode("utf-8", "replace")
        entry = self._entry(seq, body)
        route = urlsplit(self.path).path.rstrip("/")

        if route == "/v1/messages/count_tokens":
            self.state.log(entry)
            self._send_json(200, {"input_tokens": max(1, len(raw) // 4)})
            return
        if route != "/v1/messages" or not isinstance(body, dict):
            self.state.log(entry)
            if route == "/v1/messages":
                self._send_json(400, {"type": "error", "error": {
                    "type": "invalid_request_error", "message": "mock: body is not a JSON object"}})
            else:
                self._not_found()
            return

        conv = Conversation(body)
        reply = decide(conv)
        entry.update(scenario=None if conv.is_side else conv.scenario,
                     step=None if conv.is_side else conv.step,
                     kind="side" if conv.is_side else "main",
                     stream=conv.stream, reply=reply.describe())
        self.state.log(entry)
        request_id = _new_id("req")

        if isinstance(reply, ErrorReply):
            self._send_json(reply.status, {"type": "error", "error": {
                "type": reply.type, "message": reply.message}}, request_id)
            return

        input_tokens = max(1, len(raw) // 4)
        output_tokens = max(1, sum(len(json.dumps(b)) for b in reply.blocks) // 4)
        msg_id = _new_id("msg")
        clean_blocks = [{k: v for k, v in b.items() if k != "pieces"} for b in reply.blocks]

        if not conv.stream:
            self._send_json(200, {
                "id": msg_id, "type": "message", "role": "assistant", "model": conv.model,
                "content": clean_blocks, "stop_reason": reply.stop_reason,
                "stop_sequence": None, "usage": _usage(input_tokens, output_tokens),
            }, request_id)
            return

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", request_id)
        self.end_headers()
        outcome = "stream_done"
        try:
            outcome = self._stream(reply, msg_id, conv.model, input_tokens, output_tokens)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            outcome = "client_gone"
            self.close_connection = True
        self.state.log({"t": _now(), "seq": seq, "event": outcome,
                        "output_tokens": output_tokens})

    def _stream(self, reply: Reply, msg_id: str, model: str, input_tokens: int,
                output_tokens: int) -> str:
        self._sse("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": _usage(input_tokens, 1)}})
        deltas = 0
        for index, block in enumerate(reply.blocks):
            if block["type"] == "text":
                start = {"type": "text", "text": ""}
                pieces = block.get("pieces") or _split(block["text"], reply.chunks)
                deltas_of = [{"type": "text_delta", "text": t} for t in pieces]
            else:
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                deltas_of = [{"type": "input_json_delta", "partial_json": t}
                             for t in _split(json.dumps(block["input"]), 3)]
            self._sse("content_block_start",
                      {"type": "content_block_start", "index": index, "content_block": start})
            for delta in deltas_of:
                if reply.delay and deltas:
                    time.sleep(reply.delay)
                self._sse("content_block_delta",
                          {"type": "content_block_delta", "index": index, "delta": delta})
                deltas += 1
                if reply.cut_after is not None and deltas >= reply.cut_after:
                    time.sleep(0.2)
                    self.close_connection = True
                    self.wfile.flush()
                    # Abort the chunked body without its terminator: the client sees a cut.
                    return "stream_cut"
            self._sse("content_block_stop", {"type": "content_block_stop", "index": index})
        self._sse("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
            "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": output_tokens}})
        self._sse("message_stop", {"type": "message_stop"})
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return "stream_done"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away (a cancelled CLI) is normal here, not worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                            TimeoutError)):
            return
        super().handle_error(request, client_address)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the port number to this file once listening")
    ap.add_argument("--log", help="append every request (JSON, one per line) to this file")
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the mock only listens on loopback")

    Handler.state = MockState(args.log)
    server = Server((args.host, args.port), Handler)
    port = server.server_address[1]

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    if args.port_file:
        tmp = f"{args.port_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"PORT={port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
