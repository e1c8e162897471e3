""":checkhealth claude-tasks and the help file."""
import os
import re
import shutil
import stat

import pytest

from conftest import ROOT

DOC = os.path.join(ROOT, "doc", "claude-tasks.txt")


def health_text(child):
    child.nvim.command("checkhealth claude-tasks")
    return "\n".join(child.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)"))


def test_health_runs_without_error(child):
    text = health_text(child)
    assert "claude-tasks" in text
    assert "Failed to run healthcheck" not in text
    assert "stack traceback" not in text
    assert "Neovim 0." in text
    assert "state directory" in text and "is writable" in text
    # no binary configured here: a clear error with the build command
    assert "cargo build --release" in text or "backend version" in text


def test_health_with_a_backend_binary(child, fake_backend):
    child.lua("require('claude-tasks').setup({ binary = ..., cmd = 'sh' })", fake_backend)
    text = health_text(child)
    assert "backend version 0.1.0 (same as the plugin)" in text
    assert "`sh` found" in text


def test_health_version_mismatch(child, fake_backend, monkeypatch):
    child.lua(
        "vim.env.FAKE_BACKEND_VERSION = '9.9.9'; require('claude-tasks').setup({ binary = ... })",
        fake_backend,
    )
    text = health_text(child)
    assert "backend version 9.9.9, but the plugin is 0.1.0" in text
    assert "cargo build --release" in text


def pinned_range():
    """The oldest and newest version in claude-versions.txt (the file the health check reads)."""
    with open(os.path.join(ROOT, "claude-versions.txt"), encoding="utf-8") as f:
        pins = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
    pins.sort(key=lambda v: tuple(int(p) for p in v.split(".")))
    return pins[0], pins[-1]


def fake_claude(tmp_path, output):
    """A `cmd` that prints output for --version, as `claude --version` does."""
    path = tmp_path / "fake-claude-version"
    path.write_text("#!/bin/sh\nprintf '%%s\\n' '%s'\n" % output)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def next_to(version, step):
    """The patch release just after (step 1) or before (step -1) version."""
    major, minor, patch = (int(p) for p in version.split("."))
    if patch + step < 0:
        return "%d.%d.999" % (major, minor - 1)
    return "%d.%d.%d" % (major, minor, patch + step)


@pytest.mark.parametrize("which", ["oldest", "between", "newest"])
def test_health_claude_version_in_the_tested_range(child, tmp_path, which):
    oldest, newest = pinned_range()
    version = {"oldest": oldest, "between": next_to(oldest, 1), "newest": newest}[which]
    child.lua("require('claude-tasks').setup({ cmd = ... })", fake_claude(
        tmp_path, version + " (Claude Code)"))
    text = health_text(child)
    [ok] = [l for l in text.splitlines() if "tested range" in l]
    assert "OK Claude Code %s is in the tested range %s to %s" % (version, oldest, newest) in ok


@pytest.mark.parametrize("which", ["older", "newer"])
def test_health_warns_outside_the_tested_range(child, tmp_path, which):
    oldest, newest = pinned_range()
    version = next_to(oldest, -1) if which == "older" else next_to(newest, 1)
    child.lua("require('claude-tasks').setup({ cmd = ... })", fake_claude(
        tmp_path, version + " (Claude Code)"))
    text = health_text(child)
    line = "Claude Code %s is %s than the tested range %s to %s" % (version, which, oldest,
                                                                    newest)
    [warning] = [l for l in text.splitlines() if line in l]
    assert "WARNING" in warning, warning
    assert "npm install -g @anthropic-ai/claude-code@" + newest in text


def test_health_warns_about_an_unparseable_version(child, tmp_path):
    oldest, newest = pinned_range()
    child.lua("require('claude-tasks').setup({ cmd = ... })", fake_claude(tmp_path, "Claude Code"))
    text = health_text(child)
    [warning] = [l for l in text.splitlines() if "cannot tell the Claude Code version" in l]
    assert "WARNING" in warning and "`Claude Code`" in warning, warning
    assert "(tested: %s to %s)" % (oldest, newest) in warning
    assert "in the tested range" not in text


def test_health_checks_git_for_worktree_tasks(child, tmp_path, monkeypatch):
    text = health_text(child)
    [line] = [l for l in text.splitlines() if "for worktree tasks" in l]
    assert "OK" in line and "git version" in line, line
    # Without git: a warning, an error when worktree tasks are the default.
    monkeypatch.setenv("PATH", str(tmp_path))
    child.lua("vim.env.PATH = ...", str(tmp_path))
    text = health_text(child)
    [line] = [l for l in text.splitlines() if "git cannot be run" in l]
    assert "WARNING" in line and "worktree tasks (:ClaudeTask!) need it" in line, line
    child.lua("require('claude-tasks').setup({ isolation = 'worktree' })")
    text = health_text(child)
    [line] = [l for l in text.splitlines() if "git cannot be run" in l]
    assert "ERROR" in line, line


def test_helptags_clean(child, tmp_path):
    d = tmp_path / "doc"
    d.mkdir()
    shutil.copy(DOC, d / "claude-tasks.txt")
    child.lua("vim.v.errmsg = ''")
    child.nvim.command("helptags " + str(d))
    assert child.lua("return vim.v.errmsg") == ""
    tags = (d / "tags").read_text()
    for tag in (
        "claude-tasks",
        ":ClaudeTask",
        ":ClaudeTasks",
        "claude-tasks-options",
        "ClaudeTaskDone",
        "claude-tasks.setup()",
        "claude-tasks.statusline()",
        "ClaudeTasksRunning",
    ):
        assert re.search(r"^%s\t" % re.escape(tag), tags, re.M), tag


def test_help_links_resolve(child, tmp_path):
    d = tmp_path / "rtp" / "doc"
    d.mkdir(parents=True)
    shutil.copy(DOC, d / "claude-tasks.txt")
    child.nvim.command("helptags " + str(d))
    child.lua("vim.opt.runtimepath:prepend(...)", str(tmp_path / "rtp"))
    text = open(DOC, encoding="utf-8").read()
    # |links| outside of code examples (lines indented with a tab or 4+ spaces after '>')
    links = set(re.findall(r"\|([^|\s]+)\|", text))
    missing = [
        link
        for link in sorted(links)
        if not child.lua("return pcall(vim.cmd, 'help ' .. vim.fn.escape(..., ' '))", link)
    ]
    assert missing == []


def test_help_file_format(child):
    text = open(DOC, encoding="utf-8").read()
    lines = text.splitlines()
    assert lines[0].startswith("*claude-tasks.txt*")
    assert lines[-1].strip() == "vim:tw=78:ts=8:ft=help:norl:"
    too_long = [i + 1 for i, l in enumerate(lines) if len(l) > 78 and "http" not in l]
    assert too_long == []
    # every option, command, autocmd and highlight group is documented
    for name in (
        "cmd", "args", "model", "permission_mode", "allowed_tools", "open", "notify",
        "concurrency", "max_running", "on_exit", "cancel_grace_ms", "nice", "state_dir",
        "export_markdown", "statusline", "binary", "keep", "log_file", "isolation",
        "branch_prefix", "apply", "track_changes",
    ):
        assert "*claude-tasks-option-%s*" % name in text, name
    for name in ("ClaudeTaskStarted", "ClaudeTaskCompleted", "ClaudeTaskFailed",
                 "ClaudeTaskCancelled", "ClaudeTaskDone", "ClaudeTaskQueued"):
        assert "*%s*" % name in text, name
    for name in ("ClaudeTasksRunning", "ClaudeTasksQueued", "ClaudeTasksCompleted",
                 "ClaudeTasksFailed", "ClaudeTasksCancelled", "ClaudeTasksInterrupted",
                 "ClaudeTasksHeader", "ClaudeTasksTool", "ClaudeTasksToolResult",
                 "ClaudeTasksFooter", "ClaudeTasksError", "ClaudeTasksSeparator"):
        assert name in text, name
    for fn in ("setup", "start", "cancel", "open", "resume", "list", "get", "pick",
               "statusline", "dispose", "diff", "apply", "discard", "changes", "revert"):
        assert "*claude-tasks.%s()*" % fn in text, fn
