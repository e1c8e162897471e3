""":checkhealth claude-tasks and the help file."""
import os
import re
import shutil

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
        "export_markdown", "statusline", "binary", "keep", "log_file",
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
               "statusline", "dispose"):
        assert "*claude-tasks.%s()*" % fn in text, fn
