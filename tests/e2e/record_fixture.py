#!/usr/bin/env python3
"""Records fixtures: the real Claude Code CLI run against the mock Messages API
(mock_anthropic.py), each run into a directory of ``tests/fixtures/claude-cli-<version>/`` in
the layout of the 2.1.197 fixtures.

    .deps/venv/bin/python tests/e2e/record_fixture.py --list
    .deps/venv/bin/python tests/e2e/record_fixture.py [--cli 2.1.332|PATH] [--out DIR]
                                                     [--force] [--script FILE.py] [NAME ...]

``--cli`` is a pinned version (installed by scripts/install-claude.sh; default: the newest in
claude-versions.txt) or the path of a binary. Without names, every recipe but the
``by_name_only`` ones (stream-json input, see default_recipes) is recorded; an existing
directory is kept unless ``--force``. ``--script FILE.py`` adds the recipes of its
``RECIPES`` list (``Recipe`` objects from this module), e.g. permission prompts driven over
stream-json. INDEX.txt and help.txt (the CLI's ``--help``) are written next to the runs
(``--no-runs``: help.txt only).

Each run (a recipe step) gets a directory with:

* ``cmd.txt``       the command line, its environment and stdin, and what the driver did;
* ``stdout.jsonl``  what the CLI wrote (``stdout.jsonl.gz`` past 256 KiB), ``stderr.txt``,
  ``exit_code.txt`` (negative: killed by that signal);
* ``stdin.txt``     the prompt, when it came on stdin from a regular file (as the plugin does);
  ``stdin.jsonl`` with ``--input-format stream-json``: every line the driver wrote, with its
  time (``{"t_ms", "sent"}``) and the spawn / stdin close (``{"t_ms", "event"}``);
* ``timeline.txt``  stdin, stdout, stderr and the driver's actions merged, in ms since spawn;
* ``meta.json``     version, argv, exit, wall time, line arrival times and types, leftovers;
* ``requests.jsonl`` a summary of each request the mock got (model, stream, tools, roles,
  scenario and reply); ``cwd_files.txt`` the project's files afterwards.

A run is started as the plugin starts it: its own session, stdout and stderr regular files,
a throwaway HOME (``<tmp>/home/user``) and project (``<tmp>/home/user/proj``), only loopback.
Stdout is followed by polling the file (every 2 ms), so a line's time is when it was complete
in the file. Steps of one recipe share the HOME, the project and the session id (``{sid}`` in
the arguments), so a later step can ``--resume`` an earlier one.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402

GZIP_OVER = 256 * 1024
SHOWN = 220  # characters of a line in timeline.txt
PARTIAL = ["-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages"]
STREAM_INPUT = ["-p", "--input-format", "stream-json", "--output-format", "stream-json",
                "--verbose", "--include-partial-messages"]


# ---------------------------------------------------------------------------------------------
# Recipes


@dataclass
class Step:
    """One CLI run. ``args`` may hold ``{sid}`` (the recipe's session id); ``prompt`` goes on
    stdin from a regular file unless ``args`` has ``--input-format stream-json`` (then stdin is
    a pipe that ``drive`` writes with ``run.send``). ``drive(run)`` acts while the CLI runs
    (signals, stdin); when it returns (or without one), stdin is closed and the exit waited
    for, ``timeout`` seconds at most (then the CLI and its tools are killed)."""

    name: str
    args: list[str]
    prompt: str = ""
    env: dict[str, str] = field(default_factory=dict)
    drive: Callable[["Run"], None] | None = None
    notes: str = ""
    timeout: float = 120.0


@dataclass
class Recipe:
    """Steps sharing a HOME, a project and a session id. ``by_name_only``: not recorded by
    default, only when named (see default_recipes)."""

    name: str
    steps: list[Step]
    by_name_only: bool = False

    def dir_names(self) -> list[str]:
        if len(self.steps) == 1:
            return [self.name]
        return [f"{self.name}-{i}-{s.name}" for i, s in enumerate(self.steps, 1)]


def one(name: str, args: list[str], prompt: str = "", *, by_name_only: bool = False,
        **kw: Any) -> Recipe:
    return Recipe(name, [Step(name, args, prompt, **kw)], by_name_only)


# ---------------------------------------------------------------------------------------------
# A run being recorded


class Run:
    """The CLI process of one step, followed while it runs. The driver API: ``send(obj)``,
    ``close_stdin()``, ``wait_line(pred)``, ``wait_tool_process(argv)``, ``signal(sig)``,
    ``note(text)``, ``lines()``."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict, out: Path, prompt: str,
                 stream_input: bool):
        self.out = out
        self.stream_input = stream_input
        self.events: list[tuple[float, str, str]] = []  # (t_ms, channel, text) for the timeline
        self.stdin_log: list[dict] = []
        self.parsed: list[dict] = []
        self.arrivals: list[float] = []
        self.cond = threading.Condition()
        self.seen_pids: set[int] = set()
        stdout = open(out / "stdout.jsonl", "wb")
        stderr = open(out / "stderr.txt", "wb")
        if stream_input:
            stdin: Any = subprocess.PIPE
        else:
            (out / "stdin.txt").write_text(prompt)
            stdin = open(out / "stdin.txt", "rb")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=stdout,
                                     stderr=stderr, start_new_session=True)
        for f in (stdout, stderr) if stream_input else (stdout, stderr, stdin):
            f.close()
        self.pid = self.proc.pid
        self._log_stdin({"event": "spawn", "pid": self.pid})
        self.exit_ms: float | None = None
        self.stop = threading.Event()
        self.followers = [threading.Thread(target=self._follow, args=(name,), daemon=True)
                          for name in ("stdout", "stderr")]
        for t in self.followers:
            t.start()

    def ms(self) -> float:
        return round((time.monotonic() - self.t0) * 1000, 1)

    def _event(self, channel: str, text: str, t: float | None = None) -> None:
        with self.cond:
            self.events.append((self.ms() if t is None else t, channel, text))

    def _log_stdin(self, entry: dict) -> None:
        t = self.ms()
        self.stdin_log.append({"t_ms": t, **entry})
        if "sent" in entry:
            self._event("-> stdin ", f"{label(entry['sent'])}  {json.dumps(entry['sent'])}", t)
        else:
            rest = " ".join(f"{k}={v}" for k, v in entry.items() if k != "event")
            self._event("-> stdin ", f"{entry['event']}  {rest}".rstrip(), t)

    def _follow(self, name: str) -> None:
        path = self.out / ("stdout.jsonl" if name == "stdout" else "stderr.txt")
        pos, buf = 0, b""
        with open(path, "rb") as f:
            while True:
                done = self.stop.is_set()  # read once more after the exit
                f.seek(pos)
                chunk = f.read()
                pos += len(chunk)
                buf += chunk
                *complete, buf = buf.split(b"\n")
                t = self.ms()
                for raw in complete:
                    self._took_line(name, raw, t)
                if done:
                    if buf:
                        self._took_line(name, buf, t, torn=True)
                    return
                time.sleep(0.002)

    def _took_line(self, name: str, raw: bytes, t: float, torn: bool = False) -> None:
        text = raw.decode("utf-8", "replace")
        if name == "stderr":
            self._event("<- stderr", text, t)
            return
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = {"_raw": text}
        with self.cond:
            self.parsed.append(obj)
            self.arrivals.append(t)
            self.cond.notify_all()
        tag = label(obj) + (" (no newline)" if torn else "")
        self._event("<- stdout", f"{tag:<34} {text}", t)

    # -- the driver's API ----------------------------------------------------------------------

    def send(self, obj: dict) -> None:
        """Writes one JSON line to the CLI's stdin (stream-json input only)."""
        assert self.proc.stdin is not None, "stdin is a file: use --input-format stream-json"
        self._log_stdin({"sent": obj})
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def user(self, text: str) -> None:
        """Sends a user message (the SDK's shape)."""
        self.send({"type": "user", "message": {"role": "user", "content": text},
                   "parent_tool_use_id": None, "session_id": ""})

    def close_stdin(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self._log_stdin({"event": "close_stdin"})
            self.proc.stdin.close()

    def note(self, text: str) -> None:
        """An action of the driver, for the timeline."""
        self._event("!! driver", text)

    def lines(self) -> list[dict]:
        with self.cond:
            return list(self.parsed)

    def wait_line(self, pred: Callable[[dict], bool], timeout: float = 60.0,
                  what: str = "a line", after: int = 0, nth: int = 1) -> dict:
        """The nth stdout line (of index >= after) for which pred holds; an error if the CLI
        exits without it (its last lines are given 0.5 s to be read) or after the timeout."""
        deadline = time.monotonic() + timeout
        exited: float | None = None
        with self.cond:
            while True:
                found = [ln for ln in self.parsed[after:] if pred(ln)]
                if len(found) >= nth:
                    return found[nth - 1]
                now = time.monotonic()
                if exited is None and self.proc.poll() is not None:
                    exited = now
                if exited is not None and now - exited > 0.5:
                    raise RuntimeError(f"the CLI exited before {what}")
                if now >= deadline:
                    raise TimeoutError(f"no {what} within {timeout}s")
                self.cond.wait(min(deadline - now, 0.05))

    def wait_tool_process(self, argv: list[str], timeout: float = 60.0) -> int:
        """The pid of a descendant of the CLI whose command line is argv (a tool's process)."""
        pid = helpers.wait_for(
            lambda: next((p for p in self._descendants() if helpers.cmdline(p) == argv), None),
            timeout, f"a process {argv}", interval=0.005)
        self.note(f"tool process up: pid {pid} {shlex.join(argv)}")
        return pid

    def signal(self, sig: int) -> None:
        """Sends sig to the CLI (not its group: as the plugin's cancel does)."""
        self._descendants()
        self.note(f"kill -{signal.Signals(sig).name.removeprefix('SIG')} {self.pid} (the CLI)")
        os.kill(self.pid, sig)

    def _descendants(self) -> list[int]:
        pids = helpers.descendants(self.pid)
        self.seen_pids.update(pids)
        return pids

    # -- the end ---------------------------------------------------------------------------

    def wait_exit(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.note(f"no exit within {timeout}s: SIGKILL to the CLI and its tools")
            self.kill()
            rc = self.proc.wait(10)
        self.exit_ms = self.ms()
        self._event("   exit  ", f"exit code {rc}", self.exit_ms)
        self.close_stdin()
        self.stop.set()
        for t in self.followers:
            t.join(10)
        return rc

    def leftovers(self) -> list[dict]:
        """Processes the CLI started that are still alive (not zombies)."""
        return [helpers.proc_stat(p) for p in sorted(self.seen_pids) if helpers.pid_alive(p)]

    def kill(self) -> None:
        self._descendants()
        helpers.kill_tree(self.pid, signal.SIGKILL, extra=self.seen_pids)


def label(obj: dict) -> str:
    """type/subtype of a stream-json line (stream_event/<event type>, control_*/<subtype>)."""
    if "_raw" in obj:
        return "(not JSON)"
    t = str(obj.get("type"))
    if t == "stream_event":
        return f"stream_event/{(obj.get('event') or {}).get('type')}"
    if t in ("control_request", "control_response"):
        inner = obj.get("request") or obj.get("response") or {}
        return f"{t}/{inner.get('subtype')}"
    return f"{t}/{obj['subtype']}" if isinstance(obj.get("subtype"), str) else t


# ---------------------------------------------------------------------------------------------
# Writing a fixture


def record_recipe(recipe: Recipe, cli: helpers.Cli, out_root: Path) -> list[str]:
    """Records every step of a recipe; returns the directory names."""
    tmp = Path(tempfile.mkdtemp(prefix="claude-fixture-"))
    home = tmp / "home" / "user"
    proj = home / "proj"
    proj.mkdir(parents=True)
    sid = str(uuid.uuid4())
    server = helpers.MockServer(tmp / "mock")
    names = recipe.dir_names()
    try:
        for i, (step, name) in enumerate(zip(recipe.steps, names)):
            out = out_root / name
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            since = server.last_seq()
            record_step(step, cli, out, home=home, proj=proj, sid=sid, server=server,
                        first=i == 0)
            write_requests(out, server.requests(since))
            print(f"recorded {out}", file=sys.stderr)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return names


def record_step(step: Step, cli: helpers.Cli, out: Path, *, home: Path, proj: Path, sid: str,
                server: helpers.MockServer, first: bool) -> None:
    args = [a.replace("{sid}", sid) for a in step.args]
    stream_input = input_format(args) == "stream-json"
    env = helpers.claude_env(home, server.url, **step.env)
    run = Run([str(cli.path), *args], cwd=proj, env=env, out=out, prompt=step.prompt,
              stream_input=stream_input)
    error = None
    try:
        if step.drive:
            step.drive(run)
    except Exception as e:  # noqa: BLE001 - recorded, then the run is ended
        error = f"{type(e).__name__}: {e}"
        run.note(f"driver failed: {error}")
    run.close_stdin()  # the CLI waits for more input while its stdin is open
    rc = run.wait_exit(step.timeout)
    time.sleep(0.5)  # what the CLI left behind is looked at half a second after its exit
    leftovers = run.leftovers()
    run.kill()

    (out / "exit_code.txt").write_text(f"{rc}\n")
    write_cmd(out, step, args, env, cli, home, proj, stream_input, first, leftovers)
    if stream_input:
        with open(out / "stdin.jsonl", "w") as f:
            for entry in run.stdin_log:
                f.write(json.dumps(entry) + "\n")
    write_timeline(out, run)
    stdout = out / "stdout.jsonl"
    size = stdout.stat().st_size
    if size > GZIP_OVER:
        with open(stdout, "rb") as src, gzip.open(out / "stdout.jsonl.gz", "wb", 9) as dst:
            shutil.copyfileobj(src, dst)
        stdout.unlink()
    files = sorted(p for p in proj.rglob("*") if p.is_file())
    (out / "cwd_files.txt").write_text(
        "".join(f"{p.relative_to(proj)}\t{p.stat().st_size}\n" for p in files))
    lines = run.lines()
    meta = {
        "claude_code_version": cli.version,
        "cli_args": args,
        "stdin": "pipe (stdin.jsonl)" if stream_input else "regular file (stdin.txt)",
        "env_extra": step.env,
        "exit_code": rc,
        "wall_ms": run.exit_ms,
        "first_stdout_line_ms": run.arrivals[0] if run.arrivals else None,
        "stdout_bytes": size,
        "stdout_lines": len(lines),
        "stdout_ends_with_newline": size == 0 or ends_with_newline(out),
        "line_types": [label(ln) for ln in lines][:2000],
        "line_arrival_ms": run.arrivals[:2000],
        "leftover_processes": leftovers,
        "driver_error": error,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    if step.notes:
        (out / "NOTES.txt").write_text(step.notes.strip() + "\n")


def input_format(args: list[str]) -> str:
    for i, a in enumerate(args):
        if a == "--input-format" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--input-format="):
            return a.split("=", 1)[1]
    return "text"


def ends_with_newline(out: Path) -> bool:
    gz = out / "stdout.jsonl.gz"
    if gz.exists():
        with gzip.open(gz, "rb") as f:
            data = f.read()
        return data.endswith(b"\n")
    with open(out / "stdout.jsonl", "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def write_cmd(out: Path, step: Step, args: list[str], env: dict, cli: helpers.Cli, home: Path,
              proj: Path, stream_input: bool, first: bool, leftovers: list[dict]) -> None:
    shown = {k: shlex.quote(v) for k, v in env.items() if k != "PATH"}
    shown["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:$PORT"  # the mock's port, left to expand
    fresh = "fresh" if first else "kept from the previous step"
    stdin = ("< <pipe written by the driver, see stdin.jsonl>" if stream_input
             else "< stdin.txt")
    text = (
        f"# Claude Code {cli.version} against tests/e2e/mock_anthropic.py; HOME={home} and "
        f"cwd={proj} ({fresh}); stdout and stderr are regular files; own session (setsid)\n"
        f"cd {shlex.quote(str(proj))} && env -i PATH=\"$PATH\" "
        + " ".join(f"{k}={v}" for k, v in sorted(shown.items()))
        + " \\\n  setsid claude " + shlex.join(args)
        + f" \\\n  > stdout.jsonl 2> stderr.txt {stdin}\n")
    if step.drive and step.drive.__doc__:
        text += "# driver: " + " ".join(step.drive.__doc__.split()) + "\n"
    if leftovers:
        text += f"# alive 0.5 s after the exit (then killed): {leftovers}\n"
    (out / "cmd.txt").write_text(text)


def write_timeline(out: Path, run: Run) -> None:
    with open(out / "timeline.txt", "w") as f:
        f.write("# ms since spawn; -> written to the CLI's stdin, <- read from its stdout / "
                "stderr file, !! the driver's actions (lines cut at "
                f"{SHOWN} characters)\n")
        for t, channel, text in sorted(run.events, key=lambda e: e[0]):
            cut = text if len(text) <= SHOWN else text[:SHOWN] + "…"
            f.write(f"{t:9.1f}  {channel}  {cut}\n")


def write_requests(out: Path, requests: list[dict]) -> None:
    """One summary line per request the mock got during the step."""
    with open(out / "requests.jsonl", "w") as f:
        for r in requests:
            body = r.get("body") if isinstance(r.get("body"), dict) else {}
            msgs = [m for m in body.get("messages") or [] if isinstance(m, dict)]
            f.write(json.dumps({
                "seq": r["seq"], "method": r["method"], "path": r["path"],
                "model": body.get("model"), "stream": body.get("stream"),
                "max_tokens": body.get("max_tokens"),
                "tools": [t.get("name") for t in body.get("tools") or []],
                "roles": [m.get("role") for m in msgs],
                "user_agent": r.get("headers", {}).get("user-agent"),
                "beta": r.get("headers", {}).get("anthropic-beta"),
                "scenario": r.get("scenario"), "step": r.get("step"), "reply": r.get("reply"),
            }) + "\n")


def write_index(out_root: Path) -> None:
    """INDEX.txt: one line per run directory, from its meta.json."""
    rows = []
    for d in sorted(p for p in out_root.iterdir() if p.is_dir()):
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        stdout = "stdout.jsonl.gz" if (d / "stdout.jsonl.gz").exists() else "stdout.jsonl"
        state = ("empty" if meta["stdout_bytes"] == 0 else "ends with newline"
                 if meta["stdout_ends_with_newline"] else "TRUNCATED (no final newline)")
        first = meta["first_stdout_line_ms"]
        rows.append(f"{d.name:<48} rc={meta['exit_code']:<4} wall={meta['wall_ms']}ms "
                    f"first_line={first}ms lines={meta['stdout_lines']}; {stdout}: {state}")
    if not rows:
        return
    head = ("# Generated by tests/e2e/record_fixture.py (one line per run; see NOTES.md for what "
            "differs from the previous version)\n")
    (out_root / "INDEX.txt").write_text(head + "\n".join(rows) + "\n")


def write_help(cli: helpers.Cli, out_root: Path) -> None:
    with tempfile.TemporaryDirectory() as home:
        res = subprocess.run([str(cli.path), "--help"], cwd=home, env=helpers.claude_env(home),
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=60)
    (out_root / "help.txt").write_text(res.stdout + res.stderr)


# ---------------------------------------------------------------------------------------------
# The recipes


def is_tool_use(ln: dict) -> bool:
    return ln.get("type") == "assistant" and any(
        b.get("type") == "tool_use" for b in (ln.get("message") or {}).get("content") or [])


def is_text_delta(ln: dict) -> bool:
    ev = ln.get("event") or {}
    return ln.get("type") == "stream_event" and (ev.get("delta") or {}).get("type") == "text_delta"


SLEEPER = ["sleep", "300"]


def sigint_in_tool(run: Run) -> None:
    """SIGINT to the CLI once the Bash tool's `sleep 300` runs (sh exec'ed it); the CLI must
    end the tool and exit."""
    run.wait_line(is_tool_use, what="the Bash tool_use")
    run.wait_tool_process(SLEEPER)
    run.signal(signal.SIGINT)


def sigint_mid_stream(run: Run) -> None:
    """SIGINT to the CLI after the third text delta of a slow stream."""
    run.wait_line(is_text_delta, what="the third text delta", nth=3)
    run.signal(signal.SIGINT)


def input_hello(run: Run) -> None:
    """initialize, then one user message; stdin closed after the result."""
    run.send({"type": "control_request", "request_id": "req_1_init",
              "request": {"subtype": "initialize", "hooks": None}})
    run.wait_line(lambda ln: ln.get("type") == "control_response", what="the initialize answer")
    run.user("SCENARIO:hello say hi")
    run.wait_line(lambda ln: ln.get("type") == "result", what="the result")
    run.close_stdin()


def interrupt_tool(run: Run) -> None:
    """A user message whose Bash tool runs `sleep 300`; once it runs an interrupt control
    request; after its result a second user message (hello) in the same process; then stdin is
    closed."""
    run.user("SCENARIO:longbash")
    run.wait_line(is_tool_use, what="the Bash tool_use")
    run.wait_tool_process(SLEEPER)
    run.send({"type": "control_request", "request_id": "req_1_int",
              "request": {"subtype": "interrupt"}})
    first = run.wait_line(lambda ln: ln.get("type") == "result", what="the interrupted result")
    after = run.lines().index(first) + 1
    run.user("SCENARIO:hello are you still there?")
    run.wait_line(lambda ln: ln.get("type") == "result", what="the second result", after=after)
    run.close_stdin()


def default_recipes() -> list[Recipe]:
    """The runs of tests/fixtures/claude-cli-<version>/: the plugin's flags, the prompt on
    stdin from a file. The stream-json input ones (input-*, control-*) show how to drive a run
    and are recorded only when named: they write control_* lines, which the backend does not
    read yet, and the Rust tests parse every line of every run under tests/fixtures/ as a
    kind the backend knows."""
    default, accept = ["--permission-mode", "default"], ["--permission-mode", "acceptEdits"]
    new = ["--session-id={sid}"]
    bash_allowed = ["--allowedTools", "Bash"]
    retries2 = {"CLAUDE_CODE_MAX_RETRIES": "2"}
    plain = ["-p", "--output-format", "stream-json", "--verbose"]
    return [
        one("hello-stream-json", plain + default + new, "SCENARIO:hello say hi",
            notes="Without --include-partial-messages: init, assistant, result."),
        one("hello-stream-json-partial", PARTIAL + default + new, "SCENARIO:hello say hi"),
        one("bash-stream-json-partial", PARTIAL + default + new, "SCENARIO:bash run it",
            notes="`echo from-bash` runs in default mode (read-only, no permission needed)."),
        one("bash-sleep-refused-stream-json-partial", PARTIAL + default + bash_allowed + new,
            "SCENARIO:bash cmd='sleep 300'",
            notes="A bare long sleep, Bash allowed: 2.1.332 refuses it before running anything "
                  "(tool_result is_error, `<tool_use_error>Blocked: standalone sleep 300. …`); "
                  "2.1.197 runs it. Short sleeps (sleep 5) run on both."),
        one("write-stream-json-partial-default", PARTIAL + default + new,
            "SCENARIO:write make a file",
            notes="Write in default mode: denied (result.permission_denials), no file."),
        one("write-stream-json-partial-acceptEdits", PARTIAL + accept + new,
            "SCENARIO:write make a file", notes="Write in acceptEdits: hello.txt is created."),
        one("write-stream-json-partial-manual", PARTIAL + ["--permission-mode", "manual"] + new,
            "SCENARIO:write make a file",
            notes="`--permission-mode manual`: 2.1.332's --help lists `manual` where 2.1.197 "
                  "lists `default`; it runs as `default` (init permissionMode \"default\", "
                  "the Write denied). 2.1.197 refuses `manual` (exit 1, usage error)."),
        one("multi-stream-json-partial", PARTIAL + default + new, "SCENARIO:multi two commands"),
        one("error500-stream-json-max-retries-2", PARTIAL + default + new,
            "SCENARIO:error500 boom", env=retries2,
            notes="HTTP 500 every time, CLAUDE_CODE_MAX_RETRIES=2: two api_retry lines, a "
                  "synthetic assistant text, an error result, exit 1."),
        one("cut-stream-json-partial", PARTIAL + default + new, "SCENARIO:cut x", env=retries2,
            notes="The stream is cut after one delta every time. 2.1.332 streams again up to "
                  "CLAUDE_CODE_MAX_RETRIES times (api_retry, error_status null), then asks "
                  "without streaming; each attempt's partial text stays in the stream_events."),
        one("long-answer-stream-json-partial", PARTIAL + default + new,
            "SCENARIO:big lines=150",
            notes="A final answer of ~12 KB (150 lines of 80 bytes): the result line's `type` "
                  "comes after its `result` text on 2.1.332."),
        one("flood-stream-json-partial", PARTIAL + default + new, "SCENARIO:big",
            notes="A 2.5 MB answer (31,250 lines) in 400-line deltas; gzipped."),
        one("signal-tool-INT-pid", PARTIAL + default + bash_allowed + new, "SCENARIO:longbash",
            drive=sigint_in_tool,
            notes="Cancel during a tool: SIGINT to the CLI while `sh -c 'exec sleep 300'` runs "
                  "(Bash allowed). meta.json leftover_processes: what was still alive 0.5 s "
                  "after the exit."),
        one("signal-slow-INT-pid", PARTIAL + default + new,
            "SCENARIO:slow chunks=20 delay=0.2", drive=sigint_mid_stream,
            notes="Cancel mid-stream: SIGINT after the third text delta."),
        Recipe("session", [
            Step("first-with-session-id", PARTIAL + default + new, "SCENARIO:hello first turn"),
            Step("resume", PARTIAL + default + ["--resume={sid}"],
                 "SCENARIO:remember what did I say?",
                 notes="A follow-up: --resume of step 1's session from the same cwd and HOME; "
                       "the mock's answer quotes the earlier prompts it was sent."),
        ]),
        Recipe("resume-after-sigint", [
            Step("probe", PARTIAL + default + bash_allowed + new, "SCENARIO:longbash",
                 drive=sigint_in_tool),
            Step("resume", PARTIAL + default + ["--resume={sid}"],
                 "SCENARIO:remember what did I say?",
                 notes="A follow-up after a cancel during a tool."),
        ]),
        one("session-resume-unknown-id", PARTIAL + default + ["--resume={sid}"],
            "SCENARIO:hello", notes="--resume of a session that does not exist: exit 1."),
        one("input-stream-json-hello", STREAM_INPUT + default + new, drive=input_hello,
            by_name_only=True, notes="--input-format stream-json: initialize, a user message, stdin closed after "
                  "the result."),
        one("control-interrupt-tool", STREAM_INPUT + default + bash_allowed + new,
            drive=interrupt_tool, by_name_only=True,
            notes="--input-format stream-json: an interrupt control request while the Bash "
                  "tool's `sleep 300` runs, then a second turn in the same process."),
    ]


# ---------------------------------------------------------------------------------------------


def resolve_cli(spec: str | None) -> helpers.Cli:
    if spec and ("/" in spec or not re.fullmatch(r"\d+\.\d+\.\d+", spec)):
        path = Path(spec).resolve()
        return helpers.Cli(helpers.cli_version(path), path)
    version = spec or helpers.pinned_versions()[-1]
    path = helpers.installed_claude(version)
    if not path.is_file():
        sys.exit(f"record_fixture: {path} missing: scripts/install-claude.sh {version}")
    found = helpers.cli_version(path)
    if found != version:
        sys.exit(f"record_fixture: {path} is {found}, not {version}")
    return helpers.Cli(version, path)


def load_script(path: str) -> list[Recipe]:
    spec = importlib.util.spec_from_file_location("recipes", path)
    if spec is None or spec.loader is None:
        sys.exit(f"record_fixture: cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return list(mod.RECIPES)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="recipes to record (default: all)")
    ap.add_argument("--cli", help="a pinned version or a binary (default: the newest pin)")
    ap.add_argument("--out", help="fixture root (default: tests/fixtures/claude-cli-<version>)")
    ap.add_argument("--force", action="store_true", help="record again over existing runs")
    ap.add_argument("--script", action="append", default=[], help="a file with RECIPES")
    ap.add_argument("--list", action="store_true", help="list the recipes and exit")
    ap.add_argument("--no-runs", action="store_true", help="only write help.txt (and INDEX.txt)")
    args = ap.parse_args(argv)

    recipes = default_recipes()
    for path in args.script:
        recipes += load_script(path)
    by_name = {r.name: r for r in recipes}
    if args.list:
        for r in recipes:
            only = " (only by name)" if r.by_name_only else ""
            print(r.name, "->", ", ".join(r.dir_names()) + only)
        return 0
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        ap.error(f"unknown recipes {unknown}; see --list")

    cli = resolve_cli(args.cli)
    out_root = Path(args.out) if args.out else (
        helpers.REPO / "tests" / "fixtures" / f"claude-cli-{cli.version}")
    out_root.mkdir(parents=True, exist_ok=True)
    chosen = ([by_name[n] for n in args.names] if args.names
              else [r for r in recipes if not r.by_name_only])
    if args.no_runs:
        chosen = []
    for recipe in chosen:
        if not args.force and all((out_root / d).exists() for d in recipe.dir_names()):
            print(f"kept {recipe.name} (--force records it again)", file=sys.stderr)
            continue
        record_recipe(recipe, cli, out_root)
    write_help(cli, out_root)
    write_index(out_root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
