"""Hardening of the user-facing entry points, with the real backend and the fake CLI.

* `:ClaudeTask {prompt}` delivers prompts that look like CLI flags or shell syntax verbatim on the
  CLI's stdin (fake `--fake-record=PATH` writes PATH.stdin and PATH.argv) and nothing runs them.
* Empty and whitespace-only prompts: a clear error, no task (no record, no backend request).
* A bad `cmd` (missing, not executable, a directory): a failed task whose buffer's last line
  says why.
* A current directory that no longer exists: a clear error, no task.

Runs on every Neovim of conftest.py (0.10.4 and 0.11.4). Waits poll state; timeouts only guard
failures.
"""
import os
import stat

import pytest

ERROR = 4

RECORDER = """
_G.__ev = {}
vim.api.nvim_create_autocmd('User', { pattern = 'ClaudeTask*', callback = function(a)
  table.insert(_G.__ev, { pattern = a.match, data = a.data })
end })
function _G.__done(id)
  for _, e in ipairs(_G.__ev) do
    if e.pattern == 'ClaudeTaskDone' and e.data.id == id then return e.data end
  end
end
function _G.__buf_lines(id)
  local b = require('claude-tasks.buffer').find(id, vim.fn.getcwd())
  if b then
    return vim.api.nvim_buf_get_lines(b, 0, -1, false)
  end
end
-- Every request the plugin sends to the backend, by method.
_G.__requests = {}
local backend = require('claude-tasks.backend')
local request = backend.request
backend.request = function(method, args)
  table.insert(_G.__requests, method)
  return request(method, args)
end
"""


@pytest.fixture
def real(child, real_backend):
    """`use(cmd=None, **opts)`: setup() with the real backend; cmd defaults to the fake CLI."""
    bin_, fake = real_backend
    child.lua(RECORDER)

    def use(cmd=None, **opts):
        child.lua(
            "local bin, cmd, opts = ...; require('claude-tasks').setup(vim.tbl_extend('force',"
            " { binary = bin, cmd = cmd, focus = true }, opts))",
            bin_,
            cmd if cmd is not None else [fake],
            opts,
        )

    use.fake = fake
    return use


def state_task_dirs(child):
    """Task directories under the state dir (<state>/<project key>/<id>/)."""
    root = child.lua("return require('claude-tasks.config').state_dir()")
    out = []
    if not os.path.isdir(root):
        return out
    for key in os.listdir(root):
        kdir = os.path.join(root, key)
        if os.path.isdir(kdir):
            out += [os.path.join(kdir, d) for d in os.listdir(kdir) if d.isdigit()]
    return out


def error_notes(child):
    child.flush()
    return [n["msg"] for n in child.notes() if n["level"] == ERROR]


def files_named(root, name):
    found = []
    for dirpath, _dirs, files in os.walk(root):
        if name in files:
            found.append(os.path.join(dirpath, name))
    return found


# ---------------------------------------------------------------------------------------------
# Prompts that look like flags or shell syntax


@pytest.mark.parametrize(
    "prompt",
    ["--help", "-c", "$(touch INJECTED)", "; touch INJECTED"],
    ids=["dashdash-help", "dash-c", "command-substitution", "semicolon"],
)
def test_prompt_is_delivered_verbatim(child, real, prompt, tmp_path):
    record = tmp_path / "rec"
    real(cmd=[real.fake, "--fake-record=%s" % record])
    child.nvim.command("ClaudeTask " + prompt)
    assert child.lua("return vim.b.claude_task.id") == 1, child.notes()
    data = child.wait("__done(1)", timeout=30, what="ClaudeTaskDone of #1")
    assert data["status"] == "completed", (data, child.lua("return __buf_lines(1)"))
    # byte for byte on stdin, and never an argument of the CLI
    assert (tmp_path / "rec.stdin").read_bytes() == prompt.encode()
    argv = (tmp_path / "rec.argv").read_text().splitlines()
    assert prompt not in argv, argv
    assert not any(a.endswith("=" + prompt) for a in argv), argv
    assert (tmp_path / "rec.cwd").read_text().strip() == os.getcwd()
    # nothing ran it: no INJECTED file anywhere under the test's directory or the project
    assert files_named(str(tmp_path), "INJECTED") == []
    assert files_named(os.getcwd(), "INJECTED") == []
    # the name shown is the prompt too
    assert data["name"] == prompt.strip()
    assert error_notes(child) == []


# ---------------------------------------------------------------------------------------------
# Empty prompts


@pytest.mark.parametrize("args", ["", "   ", "\t \t"], ids=["empty", "spaces", "tabs"])
def test_empty_prompt_command_is_a_clear_error(child, real, args):
    real()
    # Asked for (issue 23, item 21); an empty answer is no task and no error.
    child.lua("_G.__answers = { ... }", args)
    child.nvim.command("ClaudeTask" + ((" " + args) if args else ""))
    assert child.lua("return _G.__inputs") == ["Claude task: "]
    assert error_notes(child) == []
    # no task: no request went to the backend, no buffer, no record
    assert child.lua("return _G.__requests") == []
    assert child.lua("return #vim.api.nvim_list_bufs()") == 1
    assert child.lua("return require('claude-tasks').list()") == []
    assert state_task_dirs(child) == []


@pytest.mark.parametrize("prompt", ["", " ", "\n\t \n"], ids=["empty", "space", "newlines"])
def test_empty_prompt_lua_api_is_a_clear_error(child, real, prompt):
    real()
    res = child.lua(
        "local id, err = require('claude-tasks').start(...); return { id = id, err = err }",
        prompt,
    )
    assert res == {"err": "claude-tasks: the prompt is empty"}
    assert child.lua("return _G.__requests") == []
    assert child.lua("return require('claude-tasks').list()") == []
    assert state_task_dirs(child) == []


# ---------------------------------------------------------------------------------------------
# A bad `cmd`


def _missing(tmp_path):
    return str(tmp_path / "no-such-dir" / "claude"), "does not exist"


def _not_executable(tmp_path):
    path = tmp_path / "claude-noexec"
    path.write_text("#!/bin/sh\necho hi\n")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return str(path), "permission denied (not executable)"


def _directory(tmp_path):
    path = tmp_path / "claude-dir"
    path.mkdir()
    return str(path), "is a directory"


@pytest.mark.parametrize(
    "make_cmd", [_missing, _not_executable, _directory], ids=["missing", "not-executable", "dir"]
)
def test_bad_cmd_gives_a_failed_task_that_says_why(child, real, tmp_path, make_cmd):
    cmd, why = make_cmd(tmp_path)
    real(cmd=cmd)
    child.nvim.command("ClaudeTask hello")
    data = child.wait("__done(1)", timeout=30, what="ClaudeTaskDone of #1")
    assert data["status"] == "failed", data
    assert why in (data.get("error") or ""), data
    lines = child.wait(
        "(function() local l = __buf_lines(1); if l and l[#l]:find('^✗ failed') then"
        " return l end end)()",
        timeout=15,
        what="the ✗ failed footer",
    )
    last = lines[-1]
    assert last.startswith("✗ failed: "), lines
    assert cmd in last and why in last, last
    # the notification says it too
    notes = error_notes(child)
    assert len(notes) == 1 and why in notes[0] and "failed" in notes[0], notes
    assert child.lua("return require('claude-tasks').statusline()") == ""


# ---------------------------------------------------------------------------------------------
# A current directory that was deleted


def test_deleted_cwd_is_a_clear_error_and_no_task(child, real, tmp_path):
    real()
    gone = tmp_path / "gone"
    gone.mkdir()
    child.nvim.command("cd " + str(gone))
    gone.rmdir()
    child.nvim.command("ClaudeTask x")
    notes = error_notes(child)
    assert len(notes) == 1, notes
    assert notes[0] == (
        "claude-tasks: the current directory '%s' no longer exists; :cd to an existing one"
        % gone
    ), notes
    assert child.lua("return vim.api.nvim_buf_get_name(0)") == ""
    assert child.lua("return #vim.api.nvim_list_bufs()") == 1
    assert "start" not in child.lua("return _G.__requests")
    assert state_task_dirs(child) == []
    # and nothing was started in another directory either
    assert child.lua("return require('claude-tasks').list({ all = true })") == []
    assert child.lua("return require('claude-tasks').statusline()") == ""
