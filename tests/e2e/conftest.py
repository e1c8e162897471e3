"""pytest fixtures for end-to-end tests against the real Claude Code CLI and the mock API.

The real CLI: every test that uses it (through ``cli``, ``claude_bin``, ``claude`` or
``cli_editors``) runs once per CLI under test (``helpers.clis_under_test()``: each version pinned
in claude-versions.txt), with the test id ``cli-<version>``.

Fixtures:

* ``cli``          -> the ``helpers.Cli`` under test (version, path); skips the test when it is
                      not installed (fails if E2E_REQUIRED=1).
* ``claude_bin``   -> its path.
* ``mock_server``  -> a running ``helpers.MockServer`` (``.url``, ``.log_path``, ``.requests()``,
                      ``.message_requests()``), stopped after the test.
* ``claude_home``  -> a throwaway HOME directory.
* ``project_dir``  -> a fresh project directory (the CLI's cwd).
* ``claude``       -> a ``ClaudeRunner`` bound to the three above:
                      ``claude.run(prompt, **opts)`` / ``claude.start(prompt, **opts)``.
                      Every process it started is killed (with its tool commands) at teardown.

For the child-Neovim tests (``nvim_helpers``; ``nvim_bin`` comes from ``on_nvims``):

* ``backend``      -> the real backend (skips when not built, fails if E2E_REQUIRED=1).
* ``fake``         -> the fake CLI next to it (target/debug/fake-claude).
* ``editors``      -> ``editors_class(...)`` (``nvim_helpers.Editors`` unless a module overrides
                      the ``editors_class`` fixture): child Neovims in ``project_dir`` sharing
                      ``claude_home`` and XDG dirs, running the fake CLI; closed at teardown.
* ``cli_editors``  -> the same running the real CLI against ``mock_server``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402
import nvim_helpers  # noqa: E402
from helpers import ClaudeProcess, ClaudeRun, MockServer  # noqa: E402


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cli" in metafunc.fixturenames:
        specs = helpers.clis_under_test()
        metafunc.parametrize("cli", specs, ids=[f"cli-{s}" for s in specs], indirect=True,
                             scope="session")


@pytest.fixture(scope="session")
def cli(request: pytest.FixtureRequest) -> helpers.Cli:
    return helpers.require_cli(request.param)


@pytest.fixture(scope="session")
def claude_bin(cli: helpers.Cli) -> Path:
    return cli.path


@pytest.fixture
def mock_server(tmp_path: Path):
    server = MockServer(tmp_path / "mock")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def claude_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    return proj


class ClaudeRunner:
    """Runs the CLI in ``project_dir`` with ``claude_home`` against ``mock_server``."""

    def __init__(self, bin_path: Path, server: MockServer, home: Path, cwd: Path,
                 out_dir: Path):
        self.bin_path = bin_path
        self.server = server
        self.home = home
        self.cwd = cwd
        self.out_dir = out_dir
        self.processes: list[ClaudeProcess] = []

    def env(self, **extra: Any) -> dict:
        return helpers.claude_env(self.home, self.server.url, **extra)

    def start(self, prompt: str, *, cwd: Path | None = None, **opts: Any) -> ClaudeProcess:
        p = helpers.start_claude(prompt, cwd=cwd or self.cwd, home=self.home,
                                 base_url=self.server.url, out_dir=self.out_dir,
                                 bin_path=self.bin_path, **opts)
        self.processes.append(p)
        return p

    def run(self, prompt: str, *, timeout: float = 60.0, **opts: Any) -> ClaudeRun:
        p = self.start(prompt, **opts)
        rc = p.wait(timeout)
        return ClaudeRun(p, rc, p.transcript(), p.stderr(), p.duration or 0.0)

    def cleanup(self) -> None:
        for p in self.processes:
            if p.poll() is None or p.leftover_processes():
                p.kill()


@pytest.fixture
def claude(claude_bin: Path, mock_server: MockServer, claude_home: Path, project_dir: Path,
           tmp_path: Path):
    runner = ClaudeRunner(claude_bin, mock_server, claude_home, project_dir, tmp_path / "runs")
    try:
        yield runner
    finally:
        runner.cleanup()


# ---------------------------------------------------------------------------------------------
# Child Neovims


def _built(path: Path, what: str) -> Path:
    if not (path.is_file() and os.access(path, os.X_OK)):
        helpers.missing(f"no {what} at {path}; run: cargo build --bins")
    return path


@pytest.fixture
def backend() -> Path:
    return _built(nvim_helpers.backend_bin(), "backend")


@pytest.fixture
def fake(backend: Path) -> Path:
    return _built(backend.parent / "fake-claude", "fake CLI")


@pytest.fixture
def editors_class() -> type:
    return nvim_helpers.Editors


def _editors(editors_class: type, nvim_bin: str, backend: Path, cmd: Any, home: Path,
             base_url: str | None, cwd: Path, tmp_path: Path):
    nvim_helpers.require_nvim(nvim_bin)
    env = nvim_helpers.nvim_env(home, base_url, tmp_path / "xdg")
    eds = editors_class(nvim_bin, backend, cmd, env, cwd)
    try:
        yield eds
    finally:
        eds.close()


@pytest.fixture
def editors(editors_class: type, nvim_bin: str, backend: Path, fake: Path, claude_home: Path,
            project_dir: Path, tmp_path: Path):
    yield from _editors(editors_class, nvim_bin, backend, [str(fake)], claude_home, None,
                        project_dir, tmp_path)


@pytest.fixture
def cli_editors(editors_class: type, nvim_bin: str, backend: Path, claude_bin: Path,
                mock_server: MockServer, claude_home: Path, project_dir: Path, tmp_path: Path):
    yield from _editors(editors_class, nvim_bin, backend, str(claude_bin), claude_home,
                        mock_server.url, project_dir, tmp_path)
