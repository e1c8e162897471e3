"""Shared helpers for end-to-end tests that drive the real Claude Code CLI against the mock
Messages API in ``mock_anthropic.py`` (Python stdlib only; pytest is used only for skip/fail).

Main pieces:

* The CLIs under test: ``pinned_versions()`` (``<repo>/claude-versions.txt``),
  ``clis_under_test()`` (every pinned version, each at
  ``<repo>/.deps/claude-<version>/node_modules/.bin/claude`` from ``scripts/install-claude.sh``;
  env ``E2E_CLAUDE_VERSIONS`` picks some of them, env ``CLAUDE_BIN`` one other binary instead),
  ``require_cli(spec)`` -> ``Cli`` (version, path); missing -> skip, or fail when
  ``E2E_REQUIRED=1``. ``version_key(v)`` orders versions.
* ``MockServer``: starts ``mock_anthropic.py`` as a subprocess on a free port; ``.url``,
  ``.port``, ``.log_path``, ``.requests()``, ``.message_requests()``, ``.events()``, ``.stop()``.
* ``claude_env(home, base_url, **extra)``: a clean environment for the CLI (nothing inherited
  but ``PATH``): throwaway ``HOME``, ``ANTHROPIC_BASE_URL``, dummy key, no nonessential traffic,
  no autoupdater.
* ``claude_args(...)``: the argv the plugin uses (``-p --output-format stream-json --verbose
  --include-partial-messages --permission-mode M --session-id=U`` or ``--resume=U``).
* ``ClaudeProcess`` / ``start_claude(...)`` / ``run_claude(...)``: run the CLI with the prompt on
  stdin from a regular file and stdout/stderr to regular files (never pipes), then parse the
  stream-json transcript into a ``Transcript``.
* ``wait_for(...)``, ``wait_for_line(...)``: condition waits with a timeout as a failure guard.
* ``env_flag(name)``, ``e2e_required()``, ``missing(msg)``: a prerequisite that is not there
  skips the test, or fails it when ``E2E_REQUIRED=1``.
* ``text_deltas(lines)``: the streamed text of stream-json lines (also ``Transcript``).
* Processes, from /proc: ``descendants(pid)``, ``cmdline(pid)``, ``pid_alive(pid)``,
  ``kill_tree(pid)`` (Bash tool commands run in their own sessions, so killing the CLI's
  process group does not reach them); ``proc_stat(pid)``, ``snapshot(pids)``,
  ``survivors(snap, reaper)``, ``wait_gone(...)``, ``wait_no_children(pid)`` for "nothing
  survives" (a pid is matched with its start time, so a reused pid is not mistaken for one).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, NoReturn

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parent.parent
MOCK_SCRIPT = E2E_DIR / "mock_anthropic.py"
PINS_FILE = REPO / "claude-versions.txt"
DEPS = REPO / ".deps"

STREAM_JSON_ARGS = ["-p", "--output-format", "stream-json", "--verbose",
                    "--include-partial-messages"]


# ---------------------------------------------------------------------------------------------
# Locating the CLIs


def pinned_versions(path: Path = PINS_FILE) -> list[str]:
    """The CLI versions the suite runs on, oldest first: the lines of claude-versions.txt that
    are not blank or comments. A line that is not an explicit x.y.z version is an error (a tag
    such as "latest" would make a test run depend on the day)."""
    out = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not re.fullmatch(r"\d+\.\d+\.\d+", line):
            raise ValueError(f"{path}:{n}: {line!r} is not an explicit version (x.y.z)")
        out.append(line)
    if not out:
        raise ValueError(f"{path}: no versions")
    return sorted(out, key=version_key)


def version_key(version: str) -> tuple[int, ...]:
    """Sort key of an x.y.z version (ValueError if it is not one)."""
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if not m:
        raise ValueError(f"not an x.y.z version: {version!r}")
    return tuple(int(g) for g in m.groups())


def installed_claude(version: str) -> Path:
    """Where scripts/install-claude.sh puts a version's CLI."""
    return DEPS / f"claude-{version}" / "node_modules" / ".bin" / "claude"


@dataclass(frozen=True)
class Cli:
    """One CLI under test: its version ("2.1.332") and its executable."""

    version: str
    path: Path


CUSTOM_CLI = "bin"  # the spec of the one binary CLAUDE_BIN names


def clis_under_test() -> list[str]:
    """Specs of the CLIs to run the suite on (test ids ``cli-<spec>``): every pinned version,
    or those env E2E_CLAUDE_VERSIONS lists (comma or space separated); or only CUSTOM_CLI when
    env CLAUDE_BIN names a binary (a version to try before it is pinned)."""
    if os.environ.get("CLAUDE_BIN"):
        return [CUSTOM_CLI]
    chosen = os.environ.get("E2E_CLAUDE_VERSIONS", "").replace(",", " ").split()
    for v in chosen:
        version_key(v)
    return chosen or pinned_versions()


def cli_version(path: Path) -> str:
    """The version a CLI binary reports (``claude --version``: "2.1.332 (Claude Code)"), run in
    a throwaway HOME."""
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run([str(path), "--version"], cwd=home, env=claude_env(home),
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=60)
    m = re.match(r"\s*(\d+\.\d+\.\d+)", out.stdout)
    if out.returncode != 0 or not m:
        fail(f"{path} --version: exit {out.returncode}, {out.stdout!r} {out.stderr[-500:]!r}")
    return m.group(1)


def require_cli(spec: str) -> Cli:
    """The CLI of a spec from clis_under_test(), or skip the test (fail instead when
    E2E_REQUIRED=1). A pinned version's binary must report that version."""
    path = Path(os.environ["CLAUDE_BIN"]) if spec == CUSTOM_CLI else installed_claude(spec)
    if not (path.is_file() and os.access(path, os.X_OK)):
        missing(f"claude CLI {spec} not found at {path}; run scripts/install-claude.sh")
    version = cli_version(path)
    if spec != CUSTOM_CLI and version != spec:
        fail(f"{path} reports version {version}, expected {spec}; run scripts/install-claude.sh")
    return Cli(version, path)


def env_flag(name: str) -> bool:
    """Whether the environment variable is set to something other than "", 0, false, no."""
    return os.environ.get(name, "") not in ("", "0", "false", "no")


def e2e_required() -> bool:
    return env_flag("E2E_REQUIRED")


def fail(msg: str) -> NoReturn:
    """Fails the test with msg (no traceback); RuntimeError outside pytest."""
    try:
        import pytest
    except ImportError:
        raise RuntimeError(msg) from None
    pytest.fail(msg, pytrace=False)


def missing(msg: str) -> NoReturn:
    """A prerequisite is missing: skip the test (fail instead when E2E_REQUIRED=1)."""
    if e2e_required():
        fail(msg)
    try:
        import pytest
    except ImportError:
        raise RuntimeError(msg) from None
    pytest.skip(msg)


# ---------------------------------------------------------------------------------------------
# Waiting


def wait_for(predicate: Callable[[], Any], timeout: float, what: str = "condition",
             interval: float = 0.02) -> Any:
    """Poll predicate until it returns something truthy (returned); TimeoutError after timeout.
    The timeout is a failure guard, not a synchronisation mechanism."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def read_jsonl(path: Path | str) -> list[dict]:
    """Complete JSON lines of a file (a trailing partial line is ignored; non-JSON lines are
    returned as {"_raw": line})."""
    out = []
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return out
    for raw in data.split(b"\n")[:-1]:
        if not raw.strip():
            continue
        try:
            out.append(json.loads(raw))
        except ValueError:
            out.append({"_raw": raw.decode("utf-8", "replace")})
    return out


# ---------------------------------------------------------------------------------------------
# Mock server


class MockServer:
    """``mock_anthropic.py`` running as a subprocess on 127.0.0.1:<free port>."""

    def __init__(self, workdir: Path | str, *, startup_timeout: float = 15.0):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "mock-requests.jsonl"
        self.port_file = self.workdir / "mock-port"
        self.stderr_path = self.workdir / "mock-stderr.log"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(MOCK_SCRIPT), "--port-file", str(self.port_file),
             "--log", str(self.log_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
            start_new_session=True,
        )
        try:
            self.port = self._read_port(startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{self.port}"

    def _read_port(self, timeout: float) -> int:
        # The mock prints "PORT=<n>" once it is listening: block on that line (the timeout only
        # guards against a mock that never starts).
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise TimeoutError(f"mock server did not start: {self.stderr_text()}")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"mock server exited early: {self.stderr_text()}")
            buf += chunk
        line = buf.split(b"\n", 1)[0].decode()
        if not line.startswith("PORT="):
            raise RuntimeError(f"unexpected mock output {line!r}")
        return int(line[len("PORT="):])

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- the request log ----------------------------------------------------------------------

    def log_entries(self) -> list[dict]:
        return read_jsonl(self.log_path)

    def requests(self, since: int = 0) -> list[dict]:
        """Every logged request with seq > since: {"seq", "t", "method", "path", "headers",
        "body", and for /v1/messages "scenario", "step", "kind", "stream", "reply"}."""
        return [e for e in self.log_entries() if "method" in e and e["seq"] > since]

    def message_requests(self, since: int = 0, kind: str | None = "main") -> list[dict]:
        """POST /v1/messages requests (by default only main-loop ones, not side requests)."""
        return [r for r in self.requests(since)
                if r["method"] == "POST" and r["path"].split("?")[0] == "/v1/messages"
                and (kind is None or r.get("kind") == kind)]

    def events(self) -> list[dict]:
        """Stream outcome lines: {"seq", "event": "stream_done"|"stream_cut"|"client_gone"}."""
        return [e for e in self.log_entries() if "event" in e]

    def last_seq(self) -> int:
        reqs = self.requests()
        return reqs[-1]["seq"] if reqs else 0

    # -- lifetime -----------------------------------------------------------------------------

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> "MockServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# Messages in requests


def message_text(message: dict) -> str:
    """All text of one request message (text blocks and tool_result contents)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = []
    for b in content or []:
        if not isinstance(b, dict):
            continue
        if b.get("type") == "text":
            parts.append(b.get("text", ""))
        elif b.get("type") == "tool_result":
            c = b.get("content")
            parts.append(c if isinstance(c, str) else message_text({"content": c}))
    return "\n".join(parts)


def user_prompts(body: dict) -> list[str]:
    """The user prompts in a request body: user messages without tool_result, minus
    <system-reminder> blocks."""
    out = []
    for m in body.get("messages") or []:
        if m.get("role") != "user":
            continue
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        if any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks):
            continue
        text = "\n".join(b.get("text", "") for b in blocks if isinstance(b, dict)
                         and b.get("type") == "text"
                         and not b.get("text", "").lstrip().startswith("<system-reminder>"))
        if text.strip():
            out.append(text)
    return out


# ---------------------------------------------------------------------------------------------
# Processes (from /proc)


def _stat(pid: int | str) -> tuple[str, list[str]] | None:
    """(comm, the fields after it: state, ppid, ...) of /proc/<pid>/stat, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    close = stat.rindex(")")
    return stat[stat.index("(") + 1: close], stat[close + 2:].split()


def descendants(pid: int) -> list[int]:
    """All live descendants of pid (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(entry)
        if st is None:
            continue
        children.setdefault(int(st[1][1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    st = _stat(pid)
    return st is not None and st[1][0] != "Z"


def kill_tree(pid: int, sig: int = signal.SIGKILL, extra: Iterable[int] = ()) -> None:
    """Signal pid, its descendants and the given extra pids (each pid and its process group)."""
    pids = [pid, *descendants(pid), *extra]
    for p in pids:
        for target in (lambda: os.killpg(os.getpgid(p), sig), lambda: os.kill(p, sig)):
            try:
                target()
            except (ProcessLookupError, PermissionError, OSError):
                pass


@contextlib.contextmanager
def held(pid: int):
    """Holds a process (SIGSTOP) for the body, so that it is certainly still running there, and
    lets it go on (SIGCONT) afterwards, whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def proc_stat(pid: int) -> dict | None:
    """{"pid", "state", "ppid", "starttime", "cmd"} from /proc, or None if the pid is gone."""
    st = _stat(pid)
    if st is None:
        return None
    comm, rest = st
    return {"pid": pid, "state": rest[0], "ppid": int(rest[1]), "starttime": int(rest[19]),
            "cmd": cmdline(pid) or [comm]}


def snapshot(pids: Iterable[int]) -> dict[int, dict]:
    """pid -> proc_stat for the pids that exist now."""
    out = {}
    for p in pids:
        st = proc_stat(p)
        if st:
            out[p] = st
    return out


def survivors(snap: dict[int, dict], reaper_pid: int | None) -> tuple[list[dict], list[dict]]:
    """Of the processes in a snapshot (same pid and start time, so a reused pid is not
    mistaken for one of them): (alive ones, zombies). A zombie whose parent is ``reaper_pid``
    (the backend, which must reap its children and adopted orphans) counts as alive."""
    alive, zombies = [], []
    for pid, old in snap.items():
        st = proc_stat(pid)
        if st is None or st["starttime"] != old["starttime"]:
            continue
        st["cmd_then"] = old["cmd"]
        if st["state"] == "Z":
            zombies.append(st)
            if reaper_pid is not None and st["ppid"] == reaper_pid:
                alive.append(st)
        else:
            alive.append(st)
    return alive, zombies


def wait_gone(snap: dict[int, dict], reaper: int | None, timeout: float, what: str,
              interval: float = 0.01, detail: Callable[[], str] | None = None) -> list[dict]:
    """Waits until no process of the snapshot survives (see ``survivors``), else fails the
    test with the survivors (and ``detail()``). Returns the zombies left at that moment."""
    state: dict = {}

    def gone() -> bool:
        state["alive"], state["zombies"] = survivors(snap, reaper)
        return not state["alive"]

    try:
        wait_for(gone, timeout, what, interval)
    except TimeoutError:
        fail(f"survivors ({what}): {state['alive']}" + (f"\n{detail()}" if detail else ""))
    return state["zombies"]


def child_stats(pid: int) -> list[dict]:
    """proc_stat of every descendant of pid (zombies included)."""
    return [st for st in map(proc_stat, descendants(pid)) if st]


def is_watchdog(st: dict) -> bool:
    """The backend's own helper (`claude-tasks --watchdog`), not a process of any task."""
    return "--watchdog" in (st.get("cmd") or [])


def wait_no_children(pid: int, timeout: float = 5) -> None:
    """Waits until pid (a backend) has no child left, zombies included, else fails the test.
    Its watchdog lives as long as it does, and is not counted."""
    state: dict = {}

    def none() -> bool:
        state["kids"] = [st for st in child_stats(pid) if not is_watchdog(st)]
        return not state["kids"]

    try:
        wait_for(none, timeout, "the backend to have no children")
    except TimeoutError:
        fail(f"backend children (zombies included): {state['kids']}")


# ---------------------------------------------------------------------------------------------
# Transcripts


def stream_events(lines: Iterable[dict], event_type: str | None = None,
                  delta_type: str | None = None) -> list[dict]:
    """The raw API events of the stream_event lines, filtered by event / delta type."""
    out = []
    for ln in lines:
        if ln.get("type") != "stream_event":
            continue
        ev = ln.get("event") or {}
        if event_type and ev.get("type") != event_type:
            continue
        if delta_type and (ev.get("delta") or {}).get("type") != delta_type:
            continue
        out.append(ev)
    return out


def text_deltas(lines: Iterable[dict]) -> list[str]:
    """The text of every text_delta, in order."""
    return [ev["delta"]["text"] for ev in stream_events(lines, "content_block_delta",
                                                        "text_delta")]


# ---------------------------------------------------------------------------------------------
# Running the CLI


def claude_env(home: Path | str, base_url: str | None = None, **extra: str | None) -> dict:
    """A clean environment for the CLI: only PATH is inherited (no ANTHROPIC_*/CLAUDE_* leak
    from the developer's shell). ``extra`` adds or (with None) removes variables."""
    home = Path(home)
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "SHELL": "/bin/bash",
        "LANG": "C.UTF-8",
        "ANTHROPIC_API_KEY": "dummy",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    if base_url:
        env["ANTHROPIC_BASE_URL"] = base_url
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def claude_args(*, permission_mode: str | None = "acceptEdits", session_id: str | None = None,
                resume: str | None = None, model: str | None = None,
                allowed_tools: Iterable[str] = (), extra: Iterable[str] = ()) -> list[str]:
    """Arguments as the plugin builds them (ids in the --flag=value form)."""
    args = list(STREAM_JSON_ARGS)
    if permission_mode:
        args += ["--permission-mode", permission_mode]
    if model:
        args += ["--model", model]
    allowed_tools = list(allowed_tools)
    if allowed_tools:
        args += ["--allowedTools", *allowed_tools]
    if resume:
        args.append(f"--resume={resume}")
    elif session_id:
        args.append(f"--session-id={session_id}")
    args += list(extra)
    return args


@dataclass
class Transcript:
    """A parsed stream-json stdout file."""

    path: Path
    lines: list[dict] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | str) -> "Transcript":
        return cls(Path(path), read_jsonl(path))

    def of_type(self, type_: str, subtype: str | None = None) -> list[dict]:
        return [ln for ln in self.lines if ln.get("type") == type_
                and (subtype is None or ln.get("subtype") == subtype)]

    @property
    def init(self) -> dict | None:
        found = self.of_type("system", "init")
        return found[0] if found else None

    @property
    def result(self) -> dict | None:
        found = self.of_type("result")
        return found[-1] if found else None

    def stream_events(self, event_type: str | None = None,
                      delta_type: str | None = None) -> list[dict]:
        """The raw API events of stream_event lines, filtered by event / delta type."""
        return stream_events(self.lines, event_type, delta_type)

    def text_deltas(self) -> list[str]:
        return text_deltas(self.lines)

    def assistant_blocks(self, block_type: str | None = None) -> list[dict]:
        out = []
        for ln in self.of_type("assistant"):
            for b in (ln.get("message") or {}).get("content") or []:
                if block_type is None or b.get("type") == block_type:
                    out.append(b)
        return out

    def assistant_texts(self) -> list[str]:
        return [b.get("text", "") for b in self.assistant_blocks("text")]

    def tool_uses(self, name: str | None = None) -> list[dict]:
        return [b for b in self.assistant_blocks("tool_use") if name is None or b["name"] == name]

    def tool_results(self) -> list[dict]:
        """tool_result blocks of user lines: {"tool_use_id", "content", "is_error"?}."""
        out = []
        for ln in self.of_type("user"):
            content = (ln.get("message") or {}).get("content")
            for b in content if isinstance(content, list) else []:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    out.append(b)
        return out


class ClaudeProcess:
    """One CLI run: prompt from a regular file on stdin, stdout/stderr to regular files."""

    _counter = 0

    def __init__(self, prompt: str, *, cwd: Path | str, env: dict, args: list[str],
                 out_dir: Path | str, bin_path: Path | str, name: str | None = None):
        ClaudeProcess._counter += 1
        self.name = name or f"run{ClaudeProcess._counter}"
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prompt_path = self.out_dir / f"{self.name}-prompt.txt"
        self.stdout_path = self.out_dir / f"{self.name}-stdout.jsonl"
        self.stderr_path = self.out_dir / f"{self.name}-stderr.log"
        self.prompt_path.write_text(prompt)
        self.bin_path = Path(bin_path)
        self.argv = [str(self.bin_path), *args]
        self.cwd = Path(cwd)
        self.known_descendants: set[int] = set()
        with open(self.prompt_path, "rb") as stdin, open(self.stdout_path, "wb") as stdout, \
                open(self.stderr_path, "wb") as stderr:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=env, stdin=stdin,
                                         stdout=stdout, stderr=stderr, start_new_session=True)
        self.pid = self.proc.pid
        self.duration: float | None = None

    def transcript(self) -> Transcript:
        return Transcript.load(self.stdout_path)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def poll(self) -> int | None:
        rc = self.proc.poll()
        if rc is not None and self.duration is None:
            self.duration = time.monotonic() - self.started
        return rc

    def descendants(self) -> list[int]:
        pids = descendants(self.pid)
        self.known_descendants.update(pids)
        return pids

    def wait_for_line(self, predicate: Callable[[dict], bool], timeout: float,
                      what: str = "a matching stdout line") -> dict:
        """Wait until a stdout line satisfies predicate (fails early if the CLI exits first)."""
        def check() -> Any:
            for ln in self.transcript().lines:
                if predicate(ln):
                    return ln
            if self.poll() is not None:
                for ln in self.transcript().lines:  # the last lines may have landed meanwhile
                    if predicate(ln):
                        return ln
                raise AssertionError(f"claude exited ({self.proc.returncode}) before {what}; "
                                     f"stderr: {self.stderr()[-2000:]}")
            return None
        return wait_for(check, timeout, what)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(f"claude did not exit within {timeout}s: {self.argv}; "
                               f"stderr: {self.stderr()[-2000:]}") from None
        self.poll()
        return rc

    def signal(self, sig: int) -> None:
        self.descendants()
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the CLI and everything it started (also tool commands in other sessions)."""
        self.descendants()
        kill_tree(self.pid, signal.SIGKILL, extra=self.known_descendants)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def leftover_processes(self) -> list[int]:
        """Known descendants that are still alive (not zombies)."""
        return [p for p in self.known_descendants if pid_alive(p)]


@dataclass
class ClaudeRun:
    """A finished CLI run."""

    process: ClaudeProcess
    returncode: int
    transcript: Transcript
    stderr: str
    duration: float

    @property
    def result(self) -> dict | None:
        return self.transcript.result

    @property
    def lines(self) -> list[dict]:
        return self.transcript.lines

    @property
    def stdout_path(self) -> Path:
        return self.process.stdout_path

    def describe(self) -> str:
        return (f"rc={self.returncode} duration={self.duration:.1f}s "
                f"result={json.dumps(self.result)[:1500]} stderr={self.stderr[-1500:]!r}")


def start_claude(prompt: str, *, bin_path: Path | str, cwd: Path | str, home: Path | str,
                 base_url: str, out_dir: Path | str | None = None, env: dict | None = None,
                 extra_env: dict | None = None, name: str | None = None,
                 **arg_opts: Any) -> ClaudeProcess:
    """Start the CLI at bin_path. ``arg_opts`` go to ``claude_args`` (permission_mode,
    session_id, resume, model, allowed_tools, extra); a session id is generated when neither
    session_id nor resume is given."""
    if not arg_opts.get("resume") and not arg_opts.get("session_id"):
        arg_opts["session_id"] = str(uuid.uuid4())
    if env is None:
        env = claude_env(home, base_url, **(extra_env or {}))
    return ClaudeProcess(prompt, cwd=cwd, env=env, args=claude_args(**arg_opts),
                         out_dir=out_dir or Path(home) / "runs", bin_path=bin_path, name=name)


def run_claude(prompt: str, *, timeout: float = 60.0, **kwargs: Any) -> ClaudeRun:
    """Start the CLI and wait for it to exit; see start_claude."""
    p = start_claude(prompt, **kwargs)
    try:
        rc = p.wait(timeout)
    finally:
        if p.poll() is None:
            p.kill()
    return ClaudeRun(p, rc, p.transcript(), p.stderr(), p.duration or 0.0)
