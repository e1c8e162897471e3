"""pytest fixtures for end-to-end tests against the real Claude Code CLI and the mock API.

Fixtures:

* ``claude_bin``   -> Path of the CLI (skips the test when missing, fails if E2E_REQUIRED=1).
* ``mock_server``  -> a running ``helpers.MockServer`` (``.url``, ``.log_path``, ``.requests()``,
                      ``.message_requests()``), stopped after the test.
* ``claude_home``  -> a throwaway HOME directory.
* ``project_dir``  -> a fresh project directory (the CLI's cwd).
* ``claude``       -> a ``ClaudeRunner`` bound to the three above:
                      ``claude.run(prompt, **opts)`` / ``claude.start(prompt, **opts)``.
                      Every process it started is killed (with its tool commands) at teardown.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402
from helpers import ClaudeProcess, ClaudeRun, MockServer  # noqa: E402


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    return helpers.require_claude_bin()


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
