"""The real Claude Code CLI against the mock Messages API, without the plugin: proves that the
mock speaks what the CLI needs and pins down the CLI behaviour the plugin relies on, on every
pinned CLI version (claude-versions.txt; each test id ends in ``cli-<version>``). Where the
versions differ, the test states what holds for both, or names the version.

Run: .deps/venv/bin/pytest tests/e2e/test_cli_mock.py   (after scripts/install-claude.sh)
"""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
import uuid

import pytest

import helpers
from helpers import MockServer


def _assert_success(run: helpers.ClaudeRun) -> dict:
    assert run.returncode == 0, run.describe()
    result = run.result
    assert result is not None, run.describe()
    assert result["subtype"] == "success" and result["is_error"] is False, run.describe()
    return result


# ---------------------------------------------------------------------------------------------
# The mock on its own (no CLI needed)


def _http(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, bytes, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def _sse_events(raw: bytes) -> list[tuple[str, dict]]:
    out = []
    for frame in raw.decode().split("\n\n"):
        if not frame.strip():
            continue
        fields = dict(line.split(": ", 1) for line in frame.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


def _body(prompt: str, stream: bool, messages: list | None = None) -> dict:
    return {"model": "claude-test-1", "max_tokens": 100, "stream": stream,
            "tools": [{"name": "Bash"}],
            "system": [{"type": "text", "text": "env\n - Primary working directory: /x/proj\n"}],
            "messages": messages or [{"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nctx\n</system-reminder>\n"},
                {"type": "text", "text": prompt}]}]}


def test_mock_protocol_without_cli(tmp_path):
    with MockServer(tmp_path / "mock") as server:
        status, _, _ = _http(server.url + "/", "HEAD")
        assert status == 200
        status, raw, _ = _http(server.url + "/v1/models")
        assert status == 404 and json.loads(raw)["type"] == "error"
        status, raw, _ = _http(server.url + "/v1/messages/count_tokens?beta=true", "POST",
                               _body("SCENARIO:hello", False))
        assert status == 200 and json.loads(raw)["input_tokens"] > 0

        # streaming: the event sequence, the echoed model, stop reason and usage
        status, raw, headers = _http(server.url + "/v1/messages?beta=true", "POST",
                                     _body("SCENARIO:write", True))
        assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
        assert headers["request-id"].startswith("req_mock_")
        events = _sse_events(raw)
        names = [e for e, _ in events]
        assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
        start = events[0][1]["message"]
        assert start["model"] == "claude-test-1" and start["usage"]["input_tokens"] > 0
        assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
        partial = "".join(d["delta"]["partial_json"] for e, d in events
                          if e == "content_block_delta"
                          and d["delta"]["type"] == "input_json_delta")
        assert json.loads(partial) == {"file_path": "/x/proj/hello.txt",
                                       "content": "hello from the mock\n"}

        # non-streaming fallback; step 1 after a tool_result
        tool_id = "toolu_1"
        msgs = _body("SCENARIO:bash cmd='echo a b'", False)["messages"] + [
            {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id,
                                               "name": "Bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id,
                                          "content": "a b", "is_error": False}]}]
        status, raw, _ = _http(server.url + "/v1/messages?beta=true", "POST",
                               _body("", False, msgs))
        msg = json.loads(raw)
        assert status == 200 and msg["stop_reason"] == "end_turn"
        assert msg["content"][0]["text"] == "Bash step finished.\ntool_result is_error=False: a b"

        status, raw, _ = _http(server.url + "/v1/messages?beta=true", "POST",
                               _body("SCENARIO:error529", True))
        assert status == 529
        assert json.loads(raw)["error"]["type"] == "overloaded_error"

        reqs = server.message_requests()
        assert [r["scenario"] for r in reqs] == ["write", "bash", "error529"]
        assert [r["step"] for r in reqs] == [0, 1, 0]
        assert reqs[1]["body"]["messages"][-1]["content"][0]["content"] == "a b"
        assert "x-api-key" not in reqs[0]["headers"]


# ---------------------------------------------------------------------------------------------
# The real CLI


def test_mock_finds_the_cwd_where_either_cli_puts_it(tmp_path):
    # 2.1.197: the environment block is in the system prompt (see _body); 2.1.332: in a
    # `role: "system"` message after the first prompt. A prompt quoting such a line loses.
    prompt = {"role": "user", "content": [
        {"type": "text", "text": "SCENARIO:write\nPrimary working directory: /not/this"}]}
    env = {"role": "system", "content": [{"type": "text", "text": (
        "# Environment\nYou have been invoked in the following environment: \n"
        " - Primary working directory: /y/proj\n - Is a git repository: false\n")}]}
    body = _body("", True, [prompt, env])
    del body["system"]
    with MockServer(tmp_path / "mock") as server:
        status, raw, _ = _http(server.url + "/v1/messages?beta=true", "POST", body)
    assert status == 200
    partial = "".join(d["delta"]["partial_json"] for e, d in _sse_events(raw)
                      if e == "content_block_delta" and d["delta"]["type"] == "input_json_delta")
    assert json.loads(partial)["file_path"] == "/y/proj/hello.txt"


def test_hello(claude, mock_server, cli):
    sid = str(uuid.uuid4())
    run = claude.run("SCENARIO:hello say hi\n", permission_mode="default", session_id=sid)
    result = _assert_success(run)
    assert result["total_cost_usd"] > 0
    assert result["num_turns"] == 1 and result["session_id"] == sid
    assert result["result"].splitlines() == [
        "Hello from the mock Anthropic server!",
        "This is line two of the hello scenario.",
        "And this is line three. Bye.",
    ]
    init = run.transcript.init
    assert init["session_id"] == sid and init["cwd"] == str(claude.cwd)
    assert init["permissionMode"] == "default" and init["claude_code_version"] == cli.version
    # partial messages: raw API events, text deltas that add up to the assistant text
    assert "".join(run.transcript.text_deltas()) == result["result"]
    assert run.transcript.assistant_texts() == [result["result"]]
    assert run.stderr == ""

    reqs = mock_server.message_requests()
    assert len(reqs) == 1
    body = reqs[0]["body"]
    assert body["stream"] is True and reqs[0]["path"] == "/v1/messages?beta=true"
    assert helpers.user_prompts(body) == ["SCENARIO:hello say hi\n"]
    assert reqs[0]["headers"]["x-claude-code-session-id"] == sid
    # the message_start model echoes the requested one
    start = run.transcript.stream_events("message_start")[0]["message"]
    assert start["model"] == body["model"]
    # nothing but a HEAD preflight and the messages call
    others = [(r["method"], r["path"]) for r in mock_server.requests()
              if r not in reqs]
    assert set(others) <= {("HEAD", "/")}, others


@pytest.mark.parametrize("where", ["cwd", "explicit"])
def test_write_accept_edits(claude, mock_server, where):
    target = claude.cwd / "hello.txt"
    prompt = "SCENARIO:write make a file"
    if where == "explicit":
        target = claude.cwd / "sub dir" / "out.txt"
        prompt = f"SCENARIO:write path='{target}' content='custom content\n'"
    run = claude.run(prompt, permission_mode="acceptEdits")
    result = _assert_success(run)
    expected = "hello from the mock\n" if where == "cwd" else "custom content\n"
    assert target.read_text() == expected
    [tool_use] = run.transcript.tool_uses("Write")
    assert tool_use["input"] == {"file_path": str(target), "content": expected}
    [tool_result] = run.transcript.tool_results()
    assert tool_result["tool_use_id"] == tool_use["id"] and not tool_result.get("is_error")
    assert result["result"].startswith("Write step finished.\ntool_result is_error=False: ")
    assert result["permission_denials"] == [] and result["num_turns"] == 2
    # the second request carries the tool result back
    reqs = mock_server.message_requests()
    assert [r["step"] for r in reqs] == [0, 1]
    assert reqs[1]["body"]["messages"][-1]["content"][0]["type"] == "tool_result"


def test_write_default_is_denied(claude):
    run = claude.run("SCENARIO:write make a file", permission_mode="default")
    result = _assert_success(run)
    assert not (claude.cwd / "hello.txt").exists()
    [denial] = result["permission_denials"]
    assert denial["tool_name"] == "Write"
    assert denial["tool_input"] == {"file_path": str(claude.cwd / "hello.txt"),
                                    "content": "hello from the mock\n"}
    [tool_result] = run.transcript.tool_results()
    assert tool_result["is_error"] is True
    assert "requested permissions to write" in tool_result["content"]
    assert result["result"].startswith("Write step finished.\ntool_result is_error=True: ")


@pytest.mark.parametrize("cmd,expected", [(None, "from-bash"),
                                          ("echo 'custom output'; echo second", None)])
def test_bash(claude, cmd, expected):
    prompt = "SCENARIO:bash run it" + (f' cmd="{cmd}"' if cmd else "")
    expected = expected or "custom output\nsecond"
    run = claude.run(prompt, permission_mode="default")
    result = _assert_success(run)
    [tool_use] = run.transcript.tool_uses("Bash")
    assert tool_use["input"]["command"] == (cmd or "echo from-bash")
    [tool_result] = run.transcript.tool_results()
    assert tool_result["content"] == expected and tool_result["is_error"] is False
    assert result["result"] == f"Bash step finished.\ntool_result is_error=False: {expected}"
    assert [b["delta"]["type"] for b in run.transcript.stream_events("content_block_delta")
            ].count("input_json_delta") >= 2


def test_multi_tool_uses_and_model_echo(claude, mock_server):
    run = claude.run("SCENARIO:multi two commands", permission_mode="default", model="sonnet")
    result = _assert_success(run)
    assert [t["input"]["command"] for t in run.transcript.tool_uses("Bash")] == ["echo one",
                                                                               "echo two"]
    assert sorted(r["content"] for r in run.transcript.tool_results()) == ["one", "two"]
    assert result["result"].startswith("Both commands finished.\n")
    reqs = mock_server.message_requests()
    # the alias resolves to the CLI's own sonnet (2.1.197: claude-sonnet-5, 2.1.332:
    # claude-sonnet-5-5), and the answers carry the model the request named
    model = reqs[0]["body"]["model"]
    assert len(reqs) == 2 and model.startswith("claude-sonnet-"), model
    assert {ln["message"]["model"] for ln in run.transcript.of_type("assistant")} == {model}


def test_slow_stream_is_seen_before_the_end(claude):
    p = claude.start("SCENARIO:slow delay=0.2 chunks=20", permission_mode="default")
    # the first text delta is in the stdout file while the CLI is still running
    p.wait_for_line(lambda ln: ln.get("type") == "stream_event"
                    and (ln["event"].get("delta") or {}).get("type") == "text_delta", 30,
                    "the first text_delta")
    assert p.poll() is None
    assert p.transcript().result is None
    rc = p.wait(60)
    t = p.transcript()
    assert rc == 0 and t.result["subtype"] == "success"
    deltas = t.text_deltas()
    assert deltas == [f"slow chunk {i:02d}\n" for i in range(1, 21)]
    assert t.result["result"] == "".join(deltas)


def test_error500_fails_fast_with_max_retries(claude, mock_server):
    run = claude.run("SCENARIO:error500 boom", permission_mode="default",
                     extra_env={"CLAUDE_CODE_MAX_RETRIES": "1"}, timeout=60)
    assert run.returncode == 1, run.describe()
    result = run.result
    assert result["is_error"] is True and result["api_error_status"] == 500, run.describe()
    assert result["result"].startswith("API Error: 500 Mock error 500 (api_error)")
    retries = run.transcript.of_type("system", "api_retry")
    assert [r["error_status"] for r in retries] == [500]
    [synthetic] = run.transcript.of_type("assistant")
    assert synthetic["message"]["model"] == "<synthetic>"
    assert [r["reply"] for r in mock_server.message_requests()] == ["error:500"] * 2


def test_big_answer_is_complete(claude):
    run = claude.run("SCENARIO:big", permission_mode="default", timeout=90)
    result = _assert_success(run)
    raw = run.stdout_path.read_bytes()
    assert raw.endswith(b"\n")
    assert json.loads(raw.rsplit(b"\n", 2)[-2])["type"] == "result"
    text = result["result"]
    lines = text.split("\n")
    assert len(lines) == 31250 and lines[-1] == "END OF BIG ANSWER"
    assert lines[0].startswith("line 000001 ") and len(lines[0]) == 79
    assert 2_400_000 < len(text) < 2_600_000
    assert run.transcript.assistant_texts()[-1] == text
    assert "".join(run.transcript.text_deltas()) == text


def test_resume_sends_earlier_turns(claude, mock_server):
    sid = str(uuid.uuid4())
    first = claude.run("SCENARIO:hello first turn", permission_mode="default", session_id=sid)
    _assert_success(first)
    seq = mock_server.last_seq()

    second = claude.run("SCENARIO:remember what did I say?", permission_mode="default",
                        resume=sid)
    result = _assert_success(second)
    assert second.transcript.init["session_id"] == sid and result["session_id"] == sid

    [req] = mock_server.message_requests(since=seq)
    body = req["body"]
    assert helpers.user_prompts(body) == ["SCENARIO:hello first turn",
                                          "SCENARIO:remember what did I say?"]
    assistant_texts = [helpers.message_text(m) for m in body["messages"]
                       if m["role"] == "assistant"]
    assert any("Hello from the mock Anthropic server!" in t for t in assistant_texts)
    assert result["result"].startswith(
        'I remember 2 user prompts.\nFirst prompt: "SCENARIO:hello first turn"')


def test_resume_unknown_session_fails(claude, mock_server):
    run = claude.run("SCENARIO:hello", permission_mode="default", resume=str(uuid.uuid4()))
    assert run.returncode == 1, run.describe()
    assert run.result is not None and run.result["is_error"] is True, run.describe()
    assert mock_server.message_requests() == []


def test_cut_stream_falls_back_to_non_streaming(claude, mock_server):
    run = claude.run("SCENARIO:cut x", permission_mode="default",
                     extra_env={"CLAUDE_CODE_MAX_RETRIES": "2"})
    result = _assert_success(run)
    assert result["result"] == "This answer will be cut by a closed connection"
    # 2.1.197 falls back to a non-streaming request at once; 2.1.332 first streams again up to
    # CLAUDE_CODE_MAX_RETRIES times (an api_retry line with error_status null before each).
    # Either way every stream was cut and the last request did not stream.
    streams = [r["stream"] for r in mock_server.message_requests()]
    assert streams in ([True, False], [True, True, True, False]), streams
    attempts = len(streams) - 1
    assert [e["event"] for e in mock_server.events()][:attempts] == ["stream_cut"] * attempts
    retries = run.transcript.of_type("system", "api_retry")
    assert [r["error_status"] for r in retries] == [None] * (attempts - 1)
    # the partial text already streamed is not retracted (each attempt's message_start starts
    # a new message): the assistant line is the truth
    assert run.transcript.text_deltas() == ["This answer "] * attempts
    assert len(run.transcript.stream_events("message_start")) == attempts
    assert run.transcript.assistant_texts() == [result["result"]]


def test_longbash_sigint_cancels_and_reaps_tool(claude):
    p = claude.start("SCENARIO:longbash", permission_mode="default", allowed_tools=["Bash"])
    p.wait_for_line(lambda ln: any(b.get("type") == "tool_use"
                                   for b in (ln.get("message") or {}).get("content") or []
                                   if ln.get("type") == "assistant"), 30, "the Bash tool_use")
    sleeper = helpers.wait_for(
        lambda: [d for d in p.descendants() if helpers.cmdline(d) == ["sleep", "300"]], 30,
        "the `sh -c 'exec sleep 300'` tool process")[0]
    assert helpers.pid_alive(sleeper)
    p.signal(signal.SIGINT)
    rc = p.wait(15)
    # usually 1, but 0 when the signal lands right as the tool starts: the exit code does not
    # tell a cancel, the result line (and knowing that we asked) does
    assert rc in (0, 1)
    result = p.transcript().result
    assert result["subtype"] == "error_during_execution" and result["is_error"] is True
    helpers.wait_for(lambda: not helpers.pid_alive(sleeper), 10, "the sleep to be gone")
    assert p.leftover_processes() == []


def test_bare_long_sleep(claude, cli):
    """Why the mock's long command is `sh -c 'exec sleep 300'`: 2.1.332's Bash tool refuses a
    command that is a bare long `sleep` (short ones run) before running anything, so no tool
    would be there to cancel; 2.1.197 runs it."""
    p = claude.start("SCENARIO:bash cmd='sleep 300'", permission_mode="default",
                     allowed_tools=["Bash"])
    if helpers.version_key(cli.version) >= (2, 1, 332):
        assert p.wait(30) == 0
        [tool_result] = p.transcript().tool_results()
        assert tool_result["is_error"] is True
        assert tool_result["content"].startswith(
            "<tool_use_error>Blocked: standalone sleep 300."), tool_result
        assert p.transcript().result["subtype"] == "success"
        return
    [sleeper] = helpers.wait_for(lambda: [d for d in p.descendants()
                                          if helpers.cmdline(d) == ["sleep", "300"]],
                                 30, "`sleep 300`")
    p.signal(signal.SIGINT)
    p.wait(15)
    assert p.transcript().result["subtype"] == "error_during_execution"
    helpers.wait_for(lambda: not helpers.pid_alive(sleeper), 10, "the sleep to be gone")
