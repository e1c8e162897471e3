"""Worktree tasks with the real CLI against the mock Messages API, through the plugin in a child
Neovim: a Write of a worktree task lands in its worktree, not in the project; the CLI works
there (the mock sees the worktree as its working directory) and a follow-up too; `:ClaudeTasks
apply` brings the file over and `:ClaudeTasks discard` removes the worktree and its branch. The
user's index, HEAD, branches and stash are compared before and after (tests/gitstate.py).

Runs on each Neovim (``NVIM_BINS``) with each pinned CLI version, like test_nvim_e2e.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import mock_anthropic
import nvim_helpers
from nvim_helpers import ChildNvim, on_nvims

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gitstate import UserState, git, make_repo  # noqa: E402


@pytest.fixture
def make_nvim(cli_editors, claude_home, mock_server, tmp_path):
    def make(setup: dict | None = None) -> ChildNvim:
        env = nvim_helpers.nvim_env(claude_home, mock_server.url, tmp_path / "xdg")
        return cli_editors.new(env=env, **(setup or {}))

    return make


def primary_dirs(mock_server) -> list[str]:
    """The working directory the CLI told the model about, per main request (found as the
    mock's ``write`` scenario finds it)."""
    return [mock_anthropic._find_cwd(req["body"]) for req in mock_server.message_requests()]


@on_nvims()
def test_a_write_in_a_worktree_task_lands_there_and_apply_brings_it_over(
        make_nvim, mock_server, project_dir):
    make_repo(project_dir)
    before = UserState.capture(project_dir)
    nv = make_nvim()
    task_id = nv.start("SCENARIO:write make a file", isolation="worktree",
                       permission_mode="acceptEdits")
    data = nv.wait_done(task_id)
    assert data["status"] == "completed", nv.diagnostics(task_id)
    wt = nv.get(task_id)["worktree"]
    path = Path(wt["path"])
    assert wt["branch"] == f"claude-tasks/{task_id}"
    assert (path / "hello.txt").read_text() == "hello from the mock\n"
    assert not (project_dir / "hello.txt").exists(), "the project is untouched"
    dirs = primary_dirs(mock_server)
    assert dirs and all(d == str(path) for d in dirs), dirs
    lines = nv.wait_footer(task_id)
    assert lines[2] == f"worktree: {path} · branch claude-tasks/{task_id}", lines[:4]
    before.without_task_branches().assert_same(UserState.capture(project_dir).without_task_branches())

    # A follow-up works in the worktree too (the session is found there).
    nv.command(f"ClaudeTasks resume {task_id} SCENARIO:hello again")
    again = nv.wait_done(task_id, n=2)
    assert again["status"] == "completed", nv.diagnostics(task_id)
    dirs = primary_dirs(mock_server)
    assert len(dirs) >= 3 and dirs[-1] == str(path), dirs

    nv.command(f"ClaudeTasks apply {task_id}")
    assert (project_dir / "hello.txt").read_text() == "hello from the mock\n"
    notes = [n["msg"] for n in nv.notes() if f"applied #{task_id}" in n["msg"]]
    assert notes and "1 file created" in notes[0], nv.notes()
    before.without_task_branches().assert_same(
        UserState.capture(project_dir).without_task_branches(), ("hello.txt",))

    nv.lua("vim.ui.select = function(items, _, cb) cb(items[1], 1) end")
    nv.command(f"ClaudeTasks discard {task_id}")
    assert not path.exists()
    assert git(project_dir, "branch", "--list", "claude-tasks/*") == ""
    before.assert_same(UserState.capture(project_dir), ("hello.txt",))
