"""Permission requests with the real CLI (each pinned version) against the mock Messages API,
answered in a headless Neovim the way a user does: the output buffer's keys, the commands,
``vim.ui.select`` for a question. The backend gives the CLI a stdin FIFO and speaks its control
protocol; these tests check that the CLI really does what was answered."""

from __future__ import annotations

import json

import pytest

from nvim_helpers import ChildNvim, on_nvims


@pytest.fixture
def make_nvim(cli_editors, claude_home, mock_server, tmp_path):
    import nvim_helpers

    def make(setup: dict | None = None) -> ChildNvim:
        env = nvim_helpers.nvim_env(claude_home, mock_server.url, tmp_path / "xdg")
        return cli_editors.new(env=env, **(setup or {}))

    return make


def wait_asked(nv: ChildNvim, task_id: int, n: int = 1) -> dict:
    """Waits for the n-th ``User ClaudeTaskPermission`` of the task; its data."""
    nv.wait_for(f"#_G.__e2e.of(..., 'ClaudeTaskPermission') >= {n}", task_id,
                what=f"request #{n} of task {task_id}")
    return nv.events(task_id, "ClaudeTaskPermission")[n - 1]["data"]


def press(nv: ChildNvim, task_id: int, keys: str) -> None:
    """Types ``keys`` in the task's output window (opened and focused first)."""
    nv.command(f"ClaudeTasks open {task_id}")
    nv.lua("vim.api.nvim_win_set_cursor(0, { vim.api.nvim_buf_line_count(0), 0 })")
    nv.nvim.input(keys)


@on_nvims()
def test_a_write_allowed_from_the_buffer_key_writes_the_file(make_nvim, project_dir):
    nv = make_nvim({"open": "split"})
    task_id = nv.start("SCENARIO:write make a file", permission_mode="default")
    data = wait_asked(nv, task_id)
    assert data["tool_name"] == "Write"
    assert data["input"]["file_path"] == str(project_dir / "hello.txt")
    assert data["input"]["content"] == "hello from the mock\n"
    nv.wait_line(task_id, "^%? Write hello%.txt%?  %[%x+%]$", "the request in the buffer")
    nv.wait_line(task_id, "^  %+hello from the mock$", "the new content as a diff")
    press(nv, task_id, "a")
    done = nv.wait_done(task_id)
    assert done["status"] == "completed", nv.diagnostics(task_id)
    assert (project_dir / "hello.txt").read_text() == "hello from the mock\n"
    lines = nv.wait_footer(task_id)
    call = next(i for i, ln in enumerate(lines) if ln.startswith("● Write("))
    assert lines[call + 1] == "  ✓ allowed", lines
    assert lines[call + 2].startswith("  ⎿ File created successfully"), lines
    assert "tool_result is_error=False" in "\n".join(lines)


@on_nvims()
def test_a_write_denied_from_the_buffer_writes_nothing_and_says_why(make_nvim, project_dir):
    nv = make_nvim({"open": "split"})
    task_id = nv.start("SCENARIO:write make a file", permission_mode="default")
    wait_asked(nv, task_id)
    nv.lua("vim.ui.input = function(_, cb) cb('not in this file') end")
    press(nv, task_id, "d")
    done = nv.wait_done(task_id)
    assert done["status"] == "completed", nv.diagnostics(task_id)
    assert not (project_dir / "hello.txt").exists()
    lines = nv.wait_footer(task_id)
    text = "\n".join(lines)
    assert "  ✗ denied: not in this file" in lines, lines
    # The model got the reason as the tool's error.
    assert "tool_result is_error=True: not in this file" in text, text
    # Issue 23 item 3: the footer counts the denial and points to the next request's `A`.
    footer = next(ln for ln in lines if ln.startswith("✓ done"))
    assert footer.endswith(" · 1 tool denied (Write)"), lines[-3:]
    assert lines[-1].startswith("  ⚠ to allow: A (always) on the next request"), lines[-3:]
    assert done["denied"] == ["Write"], done


@on_nvims()
def test_bash_allowed_always_runs_the_next_command_without_asking(make_nvim, project_dir):
    nv = make_nvim({"open": "split"})
    task_id = nv.start('SCENARIO:bash2 cmd="touch one.txt" cmd2="touch two.txt"',
                       permission_mode="default")
    data = wait_asked(nv, task_id)
    assert data["input"]["command"] == "touch one.txt"
    assert data["rule"] == "Bash(touch one.txt:*)" or data["rule"] == "Bash(touch:*)"
    nv.lua(
        "_G.__shown = {}; vim.ui.input = function(o, cb) _G.__shown.rule = o.default;"
        " cb('Bash(touch:*)') end;"
        " vim.ui.select = function(items, o, cb) _G.__shown.scope = o.format_item(items[1]);"
        " cb(items[1]) end")
    nv.command(f"ClaudeTasks always {task_id}")
    done = nv.wait_done(task_id)
    assert done["status"] == "completed", nv.diagnostics(task_id)
    assert (project_dir / "one.txt").exists() and (project_dir / "two.txt").exists()
    # Asked once: the rule answered the second command.
    assert len(nv.events(task_id, "ClaudeTaskPermission")) == 1
    assert nv.lua("return _G.__shown.scope") == f"only in task #{task_id}"
    lines = nv.wait_footer(task_id)
    assert "  ✓ always: Bash(touch:*)" in lines, lines
    assert "  ✓ allowed by rule Bash(touch:*)" in lines, lines
    rules = nv.lua("return require('claude-tasks').rules({ id = ... })", task_id)
    assert rules == [{"rule": "Bash(touch:*)", "scope": "task", "id": task_id}]


@on_nvims()
def test_a_question_answered_through_vim_ui_select_reaches_the_model(
        make_nvim, mock_server):
    nv = make_nvim({"open": "split"})
    task_id = nv.start("SCENARIO:ask which color", permission_mode="default")
    data = wait_asked(nv, task_id)
    assert data["tool_name"] == "AskUserQuestion"
    nv.wait_line(task_id, "^  Color: Which color should the button be%?$", "the question")
    nv.wait_line(task_id, "^    2%. Blue — A blue button$", "its options")
    nv.lua(
        "_G.__prompts = {}; vim.ui.select = function(items, o, cb)"
        " table.insert(_G.__prompts, o.prompt);"
        " for _, it in ipairs(items) do if it.label == 'Blue' then return cb(it) end end end")
    press(nv, task_id, "a")
    done = nv.wait_done(task_id)
    assert done["status"] == "completed", nv.diagnostics(task_id)
    assert nv.lua("return _G.__prompts") == ["Color: Which color should the button be?"]
    lines = nv.wait_footer(task_id)
    assert "  ✓ answered: Color = Blue" in lines, lines
    # The model's next request carries the answer in the tool's result.
    last = mock_server.message_requests()[-1]
    body = json.dumps(last["body"]["messages"][-1])
    assert "Which color should the button be?" in body and "Blue" in body, body


# ---------------------------------------------------------------------------------------------
# With the fake CLI (target/debug/fake-claude): durability and what reaches the screen


def fake_steps(*steps: dict) -> str:
    return "fake-tools: " + json.dumps(list(steps))


@on_nvims()
def test_a_waiting_task_survives_an_editor_restart_with_detach_and_is_answered(
        editors, fake, project_dir):
    import helpers

    a = editors.new(on_exit="detach", open="split", cmd=[str(fake)])
    task_id = a.start("wait for me\n" + fake_steps(
        {"name": "Bash", "input": {"command": "touch after-restart"}}))
    wait_asked(a, task_id)
    cli = a.task_pid(task_id)
    editors.keep_an_eye_on(cli)
    editors.quit(a)
    # No backend, no editor: the CLI still waits, its request open (no EOF reached it).
    assert helpers.pid_alive(cli)
    assert not (project_dir / "after-restart").exists()

    b = editors.new(open="split", cmd=[str(fake)])
    b.lua("require('claude-tasks').list()")
    data = wait_asked(b, task_id)
    assert data["input"]["command"] == "touch after-restart"
    assert b.lua("return require('claude-tasks').statusline()") == "? 1"
    b.command(f"ClaudeTasks allow {task_id}")
    helpers.wait_for(lambda: (project_dir / "after-restart").exists(), 30,
                     "the allowed command to run")
    rec = b.wait_for("(function(id) local t = require('claude-tasks').get(id);"
                     " return t.status == 'completed' and t end)(...)", task_id)
    assert rec["pending"] == []
    # The new editor's backend keeps the CLI it adopted, idle, for a follow-up.
    assert rec["live"] and rec["process"]["pid"] == cli, rec
    b.command(f"ClaudeTasks cancel {task_id}")
    helpers.wait_for(lambda: not helpers.pid_alive(cli), 30, "the idle CLI to be closed")


@on_nvims()
def test_terminal_escapes_in_a_request_reach_neither_the_buffer_nor_the_notification(
        editors, fake):
    nv = editors.new(open="split", cmd=[str(fake)])
    evil = "echo \x1b[31mred\x1b[0m \x07bell\x1b]0;title\x07"
    task_id = nv.start("escapes\n" + fake_steps({"name": "Bash", "input": {"command": evil}}))
    wait_asked(nv, task_id)
    nv.wait_line(task_id, "^%? Run this command%?", "the request in the buffer")
    lines = nv.buffer_lines(task_id)
    assert not any("\x1b" in ln or "\x07" in ln for ln in lines), lines
    assert any(ln.startswith("  $ echo ") and "red" in ln for ln in lines), lines
    nv.wait_for("#_G.__e2e.notes > 0")
    notes = [n["msg"] for n in nv.notes()]
    assert notes and all("\x1b" not in m and "\x07" not in m and "\n" not in m for m in notes)
    assert any("asks: Bash(echo" in m for m in notes), notes
    nv.command(f"ClaudeTasks deny {task_id} no escapes")
    assert nv.wait_done(task_id)["status"] == "completed"


# ---------------------------------------------------------------------------------------------
# Unsaved work in a mode that writes without asking (issue 21 item 4)


@on_nvims()
def test_bypass_permissions_still_asks_before_overwriting_an_unsaved_buffer(
        cli, cli_editors, claude_home, mock_server, project_dir, tmp_path):
    """With `permission_mode = "bypassPermissions"` the CLI asks for nothing, yet the Write to a
    file with unsaved changes in the editor must become a request (the backend's PreToolUse
    hook answers `ask`). Some CLI versions were reported to ignore a hook's `ask` in this mode:
    should a pinned one do so, this fails saying which (the fixtures
    control-permission-unsaved-hook-bypassPermissions record what each version does)."""
    import nvim_helpers

    # As root, the CLI refuses bypassPermissions unless told it runs in a sandbox.
    env = nvim_helpers.nvim_env(claude_home, mock_server.url, tmp_path / "xdg",
                                IS_SANDBOX="1")
    nv = cli_editors.new(env=env, open="split")
    # The mock's Write creates hello.txt; the user is typing that new file and has not saved
    # it yet. (An existing file would need a Read first: the CLI refuses a Write of a file it
    # has not read before any hook runs, and the mock only writes.)
    target = project_dir / "hello.txt"
    nv.command("edit " + str(target))
    nv.lua("vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'my unsaved', 'work' })")
    assert nv.lua("return vim.bo.modified") is True
    buf = nv.lua("return vim.api.nvim_get_current_buf()")
    before = nv.lua("return vim.api.nvim_buf_get_lines(..., 0, -1, false)", buf)
    assert before == ["my unsaved", "work"]

    task_id = nv.start("SCENARIO:write make a file", permission_mode="bypassPermissions")
    # A request, or (a CLI that ignores the hook's ask) the run's end: whichever comes first.
    nv.wait_for("#_G.__e2e.of(..., 'ClaudeTaskPermission') >= 1"
                " or #_G.__e2e.of(..., 'ClaudeTaskDone') >= 1", task_id,
                what=f"a request or the end of task {task_id}", timeout=60)
    asked = nv.events(task_id, "ClaudeTaskPermission")
    assert asked, (
        f"CLI {cli.version}: bypassPermissions wrote without asking although the file has "
        f"unsaved changes (the hook's ask was ignored); on disk: "
        f"{target.read_text() if target.exists() else None!r}\n"
        + nv.diagnostics(task_id))
    data = asked[0]["data"]
    assert data["tool_name"] == "Write"
    assert data["input"]["file_path"] == str(target)
    assert not target.exists(), "written before the answer"
    nv.wait_line(task_id, "^  ⚠ you have unsaved changes in hello%.txt$", "the warning")

    nv.lua("vim.ui.input = function(_, cb) cb('I am editing it') end")
    press(nv, task_id, "d")
    done = nv.wait_done(task_id)
    assert done["status"] == "completed", nv.diagnostics(task_id)
    assert done["denied"] == ["Write"], done
    # The file and the buffer are as the user left them: nothing written, the text unsaved.
    assert not target.exists()
    assert nv.lua("return vim.api.nvim_buf_get_lines(..., 0, -1, false)", buf) == before
    assert nv.lua("return vim.bo[...].modified", buf) is True
    lines = nv.wait_footer(task_id)
    assert "  ✗ denied: I am editing it" in lines, lines
    assert nv.lua("return vim.api.nvim_buf_get_lines(..., 0, -1, false)", buf) == before
