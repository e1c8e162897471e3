"""tests/e2e/record_fixture.py, the fixture recorder, on each pinned CLI version: a prompt on a
file and a driven stream-json run land in the fixture layout, consistent with each other."""

from __future__ import annotations

import json

import record_fixture


def test_records_a_prompt_run_and_a_driven_run(cli, tmp_path):
    out = tmp_path / "fixtures"
    names = ["hello-stream-json-partial", "input-stream-json-hello"]
    assert record_fixture.main(["--cli", str(cli.path), "--out", str(out), *names]) == 0

    for name in names:
        d = out / name
        assert (d / "exit_code.txt").read_text() == "0\n"
        assert (d / "stderr.txt").read_text() == ""
        raw = (d / "stdout.jsonl").read_bytes()
        lines = [json.loads(ln) for ln in raw.splitlines()]
        meta = json.loads((d / "meta.json").read_text())
        assert meta["claude_code_version"] == cli.version and meta["exit_code"] == 0
        assert meta["stdout_lines"] == len(lines) and meta["stdout_bytes"] == len(raw)
        assert meta["line_types"] == [record_fixture.label(ln) for ln in lines]
        assert lines[0]["type"] in ("system", "control_response")
        [result] = [ln for ln in lines if ln["type"] == "result"]
        assert result["result"].startswith("Hello from the mock Anthropic server!")
        timeline = (d / "timeline.txt").read_text().splitlines()
        stdout_rows = [row for row in timeline if "<- stdout" in row]
        assert len(stdout_rows) == len(lines) and "result/success" in stdout_rows[-1]
        assert timeline[-1].split()[1:] == ["exit", "exit", "code", "0"], timeline[-1]
        cmd = (d / "cmd.txt").read_text()
        assert "setsid claude -p " in cmd and "--include-partial-messages" in cmd
        reqs = [json.loads(ln) for ln in (d / "requests.jsonl").read_text().splitlines()]
        # 2.1.197 sends a HEAD / first, 2.1.332 does not
        [req] = [r for r in reqs if r["method"] == "POST"]
        assert req["scenario"] == "hello" and req["stream"] is True and "Bash" in req["tools"]

    # the prompt came from a file; the driven run's stdin is logged with its times
    prompt_run, driven = out / names[0], out / names[1]
    assert (prompt_run / "stdin.txt").read_text() == "SCENARIO:hello say hi"
    assert not (prompt_run / "stdin.jsonl").exists()
    stdin = [json.loads(ln) for ln in (driven / "stdin.jsonl").read_text().splitlines()]
    assert [e.get("event") or record_fixture.label(e["sent"]) for e in stdin] == [
        "spawn", "control_request/initialize", "user", "close_stdin"]
    assert [e["t_ms"] for e in stdin] == sorted(e["t_ms"] for e in stdin)
    assert "< <pipe written by the driver" in (driven / "cmd.txt").read_text()

    index = (out / "INDEX.txt").read_text()
    assert all(f"\n{name} " in index for name in names), index
    assert (out / "help.txt").read_text().startswith("Usage: claude ")
