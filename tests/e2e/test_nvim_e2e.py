"""End to end through the plugin's public interface: a headless child Neovim (pynvim) with
claude-tasks.nvim loaded, the real backend (target/debug/claude-tasks), and the real ``claude``
CLI talking to the mock Messages API (mock_anthropic.py).

Each test starts tasks with ``:ClaudeTask`` / ``:ClaudeTasks`` (or ``require("claude-tasks")
.start(prompt, opts)`` where a per-task option differs), waits for ``User ClaudeTaskDone``
(recorded in the child by an autocmd, polled; timeouts are failure guards only), and checks the
output buffer of the task (``b:claude_task``), the event data, the files and processes left behind, and
what the mock received.

Every scenario runs on each Neovim binary (``NVIM_BINS``, colon-separated, or the two local
installs) with each pinned CLI version (claude-versions.txt; conftest.py). Missing CLI / backend
/ Neovim: skipped, or failed when ``E2E_REQUIRED=1``. Only one CLI runs at a time.
"""

from __future__ import annotations

import os
import re
import sys
import warnings

import pytest

import helpers
import nvim_helpers
from nvim_helpers import ChildNvim, on_nvims

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gitstate import UserState, make_repo  # noqa: E402

HELLO_LINES = [
    "Hello from the mock Anthropic server!",
    "This is line two of the hello scenario.",
    "And this is line three. Bye.",
]
DONE_KEYS = {"id", "name", "status", "cwd", "exit_code", "duration_ms", "session_id",
             "cost_usd", "num_turns", "result"}


@pytest.fixture
def make_nvim(cli_editors, claude_home, mock_server, tmp_path):
    """``make_nvim(setup=None, **extra_env)``: a ChildNvim in project_dir, its env pointing at
    the mock, set up with the real backend and CLI (and the ``setup`` options). Closed (backend
    stopped, leftovers killed) at the end."""
    def make(setup: dict | None = None, **extra_env: str) -> ChildNvim:
        env = nvim_helpers.nvim_env(claude_home, mock_server.url, tmp_path / "xdg", **extra_env)
        return cli_editors.new(env=env, **(setup or {}))

    return make


def current_task_id(nv: ChildNvim) -> int:
    """The id of the task whose output the current window shows (``b:claude_task``)."""
    task = nv.lua("return vim.b.claude_task")
    name = nv.lua("return vim.fn.bufname()")
    assert task, f"the current buffer is {name!r}, not a task output buffer"
    assert re.fullmatch(r"claude #%d .*" % task["id"], name), name
    return int(task["id"])


def no_queued(patterns: list[str]) -> list[str]:
    # The backend may report a task as queued before it starts, even when it does not wait.
    return [p for p in patterns if p != "ClaudeTaskQueued"]


def content_before_footer(lines: list[str]) -> list[str]:
    """The lines before the last footer, without trailing blank lines."""
    body = lines[:-1]
    while body and body[-1].strip() == "":
        body.pop()
    return body


# ---------------------------------------------------------------------------------------------


@on_nvims()
def test_hello_completes_with_cost(make_nvim, mock_server, project_dir):
    nv = make_nvim()
    nv.command("ClaudeTask SCENARIO:hello say hi")
    # the command returned at once with the output open in a split
    task_id = current_task_id(nv)
    assert task_id == 1
    assert nv.lua("return #vim.api.nvim_list_wins()") == 2

    data = nv.wait_done(task_id)
    assert DONE_KEYS <= set(data), data
    assert data["id"] == task_id and data["status"] == "completed", nv.diagnostics(task_id)
    assert data["cwd"] == str(project_dir)
    assert data["exit_code"] == 0 and data["num_turns"] == 1
    assert data["cost_usd"] > 0, data
    assert data["duration_ms"] > 0 and data["session_id"]
    assert data["result"] == "\n".join(HELLO_LINES)
    assert no_queued(nv.patterns(task_id)) == ["ClaudeTaskStarted", "ClaudeTaskCompleted",
                                               "ClaudeTaskDone"]
    started = nv.events(task_id, "ClaudeTaskStarted")[0]["data"]
    assert started["session_id"] == data["session_id"]

    lines = nv.wait_footer(task_id)
    footer = lines[-1]
    assert footer.startswith("✓ done") and "$0." in footer, footer
    assert re.search(r"\$0\.\d{4}$", footer), footer
    assert lines[0].startswith(f"# #{task_id} SCENARIO:hello say hi"), lines[:3]
    body = content_before_footer(lines)
    assert body[-3:] == HELLO_LINES, lines

    # buffer properties of the public interface
    buf_opts = nv.lua(
        "local b = _G.__e2e.buf(...); return { bt = vim.bo[b].buftype, mod = vim.bo[b].modifiable,"
        " ft = vim.bo[b].filetype }", task_id)
    assert buf_opts["bt"] == "nofile" and buf_opts["mod"] is False
    assert buf_opts["ft"] == "claude-tasks"
    assert nv.lua("return require('claude-tasks').statusline()") == ""

    done_notes = [n for n in nv.notes() if "done" in n["msg"]]
    assert len(done_notes) == 1 and done_notes[0]["level"] == 2, nv.notes()

    # what the CLI sent: our prompt, once, streaming
    [req] = mock_server.message_requests()
    assert [p.strip() for p in helpers.user_prompts(req["body"])] == ["SCENARIO:hello say hi"]
    assert req["body"]["stream"] is True


@on_nvims()
def test_write_with_accept_edits_creates_the_file(make_nvim, project_dir):
    nv = make_nvim()
    task_id = nv.start("SCENARIO:write make a file", permission_mode="acceptEdits")
    data = nv.wait_done(task_id)
    assert data["status"] == "completed", nv.diagnostics(task_id)
    target = project_dir / "hello.txt"
    assert target.read_text() == "hello from the mock\n"

    lines = nv.wait_footer(task_id)
    calls = [i for i, ln in enumerate(lines) if ln.startswith("● Write(")]
    assert len(calls) == 1, lines
    assert "hello.txt" in lines[calls[0]]
    # its (successful) result folded right under it
    assert lines[calls[0] + 1].startswith("  ⎿ ") and "hello.txt" in lines[calls[0] + 1], lines
    assert not any("permission denied" in ln for ln in lines), lines
    assert any(ln.startswith("Write step finished.") for ln in lines)
    assert lines[-1].startswith("✓ done")
    assert data["num_turns"] == 2


@on_nvims()
def test_the_written_file_is_in_changes_and_revert_removes_it(make_nvim, project_dir):
    make_repo(project_dir, {"README": "read me\n"})
    before = UserState.capture(project_dir)
    # The CLI's own `git status` must not refresh the index either: what is compared is ours.
    nv = make_nvim(GIT_OPTIONAL_LOCKS="0")
    task_id = nv.start("SCENARIO:write make a file", permission_mode="acceptEdits")
    data = nv.wait_done(task_id)
    assert data["status"] == "completed", nv.diagnostics(task_id)
    assert [(f["path"], f["status"], f["added"]) for f in data["files_changed"]] == [
        ("hello.txt", "added", 1)], data
    lines = nv.wait_footer(task_id)
    assert lines[-1].endswith(" · 1 file +1 −0"), lines[-1]

    nv.command(f"ClaudeTasks changes {task_id}")
    items = nv.lua("return vim.tbl_map(function(i) return { vim.fn.bufname(i.bufnr), i.lnum,"
                   " i.text } end, vim.fn.getqflist())")
    assert [(os.path.basename(f), n, t) for f, n, t in items] == [("hello.txt", 1, "+1 −0")]
    assert nv.lua("return vim.fn.getqflist({ title = 1 }).title").startswith(
        f"claude-tasks #{task_id} run 1: SCENARIO:write make a file")

    nv.lua("vim.ui.select = function(items, _, cb) cb(items[1], 1) end")
    nv.command(f"ClaudeTasks revert {task_id}")
    assert not (project_dir / "hello.txt").exists()
    nv.wait_line(task_id, r"^↶ run 1 reverted: 1 file$", "the revert's note")
    before.assert_same(UserState.capture(project_dir))


@on_nvims()
def test_write_denied_in_default_mode(make_nvim, project_dir):
    nv = make_nvim()
    # permissions = "deny": nobody is asked, as `claude -p` alone would deny it.
    task_id = nv.start("SCENARIO:write make a file", permission_mode="default",
                       permissions="deny")
    data = nv.wait_done(task_id)
    # the model goes on after a denial: the task itself succeeds
    assert data["status"] == "completed", nv.diagnostics(task_id)
    assert not (project_dir / "hello.txt").exists()

    lines = nv.wait_footer(task_id)
    text = "\n".join(lines)
    call = next(i for i, ln in enumerate(lines) if ln.startswith("● Write("))
    assert lines[call + 2].startswith("  ✗ "), lines  # the tool's error result, under it
    assert lines[call + 1] == '  ✗ denied (permissions = "deny")', lines
    denials = [ln for ln in lines if "permission denied: Write(" in ln]
    assert len(denials) == 1, text
    assert "hello.txt" in denials[0]
    assert "tool_result is_error=True" in text
    # Issue 23 item 3: the footer counts it and says what allows it, as the Done event does.
    assert data["denied"] == ["Write"], data
    footer = next(ln for ln in lines if ln.startswith("✓ done"))
    assert footer.endswith(" · 1 tool denied (Write)"), lines[-3:]
    # Nobody was asked (permissions = "deny"): asking is what allows it.
    assert lines[-1].startswith('  ⚠ to allow: permissions = "ask" (you are asked), or '
                                'allowed_tools = { "Write" }'), lines[-3:]


@on_nvims()
def test_23_01_a_mode_the_cli_rejects_fails_with_the_cli_s_words(make_nvim):
    """Issue 23 item 1: `permission_mode = "bogus"` passes setup() with a warning (item 2), and
    the CLI's own refusal, printed on stderr only, is the task's error and under its footer."""
    nv = make_nvim()
    task_id = nv.start("SCENARIO:hello say hi", permission_mode="bogus")
    data = nv.wait_done(task_id)
    assert data["status"] == "failed", nv.diagnostics(task_id)
    why = "option '--permission-mode <mode>' argument 'bogus' is invalid"
    assert data["error"].startswith("the CLI exited with code 1 without a result: error: "), data
    assert why in data["error"], data
    lines = nv.wait_footer(task_id)
    assert any(ln.startswith("✗ failed: the CLI exited with code 1") for ln in lines), lines
    assert any(ln.startswith("  │ error: ") and why in ln for ln in lines), lines[-4:]
    failed = [n for n in nv.notes() if "failed" in n["msg"]]
    assert len(failed) == 1 and why in failed[0]["msg"], nv.notes()


@on_nvims()
def test_bash_call_with_folded_output(make_nvim):
    nv = make_nvim()
    nv.command('ClaudeTask SCENARIO:bash cmd="seq 1 12"')
    task_id = current_task_id(nv)
    data = nv.wait_done(task_id)
    assert data["status"] == "completed", nv.diagnostics(task_id)

    lines = nv.wait_footer(task_id)
    calls = [i for i, ln in enumerate(lines) if ln.startswith("● Bash(")]
    assert len(calls) == 1, lines
    assert lines[calls[0]] == "● Bash(seq 1 12)"
    # the output, whole, its lines after the fifth in a closed fold that says how many
    block = []
    for ln in lines[calls[0] + 1:]:
        if ln.strip() == "":
            break
        block.append(ln)
    assert block[0] == "  ⎿ 1", block
    assert [b.strip() for b in block[1:]] == [str(i) for i in range(2, 13)], block
    row = calls[0] + 2 + 5  # 1-based: the call, the first five lines, then the fold
    fold = nv.lua("local b, r = ...; return vim.api.nvim_buf_call(b, function()"
                  " return { vim.fn.foldclosed(r), vim.fn.foldclosedend(r),"
                  " vim.fn.foldtextresult(r) } end)",
                  nv.lua("return _G.__e2e.buf(...)", task_id), row)
    assert fold[:2] == [row, row + 6], (fold, block)
    assert fold[2].startswith("    … 7 more lines"), fold
    assert any(ln.startswith("Bash step finished.") for ln in lines)


@on_nvims()
def test_slow_stream_is_visible_before_the_end(make_nvim):
    nv = make_nvim()
    nv.command("ClaudeTask SCENARIO:slow chunks=20 delay=0.3")
    task_id = current_task_id(nv)
    # In one Lua call: the first chunk is in the buffer, and at that moment the task is still
    # running (no Done event, the record says running, the last chunk has not arrived).
    seen = nv.wait_for(
        """(function(id)
          local lines = _G.__e2e.lines(id)
          if lines == vim.NIL then return nil end
          local has = function(s)
            for _, l in ipairs(lines) do if l == s then return true end end
            return false
          end
          if not has("slow chunk 01") then return nil end
          local t = require("claude-tasks").get(id)
          return { status = t and t.status, done = #_G.__e2e.of(id, "ClaudeTaskDone"),
                   last = has("slow chunk 20"), statusline = require("claude-tasks").statusline() }
        end)(...)""",
        task_id, timeout=30, what="'slow chunk 01' in the buffer")
    assert seen == {"status": "running", "done": 0, "last": False, "statusline": "✻ 1"}, seen

    data = nv.wait_done(task_id)
    assert data["status"] == "completed", nv.diagnostics(task_id)
    lines = nv.wait_footer(task_id)
    chunks = [ln for ln in lines if ln.startswith("slow chunk ")]
    assert chunks == [f"slow chunk {i:02d}" for i in range(1, 21)], lines


@on_nvims()
def test_http_500_fails_with_the_api_error(make_nvim, mock_server):
    nv = make_nvim(CLAUDE_CODE_MAX_RETRIES="1")
    nv.command("ClaudeTask SCENARIO:error500 boom")
    task_id = current_task_id(nv)
    data = nv.wait_done(task_id, timeout=60)
    assert data["status"] == "failed", nv.diagnostics(task_id)
    assert no_queued(nv.patterns(task_id)) == ["ClaudeTaskStarted", "ClaudeTaskFailed",
                                               "ClaudeTaskDone"]
    assert data["exit_code"] not in (None, 0)

    lines = nv.wait_footer(task_id)
    assert lines[-1].startswith("✗ failed"), lines
    api_errors = [ln for ln in lines[:-1] if ln.startswith("✗ ") and "API Error: 500" in ln]
    assert len(api_errors) == 1, lines
    assert "Mock error 500" in api_errors[0]
    # the retry the CLI announced is shown too
    retries = [ln for ln in lines if "retry" in ln.lower() and "500" in ln]
    assert len(retries) == 1, lines
    assert [r["reply"] for r in mock_server.message_requests()] == ["error:500"] * 2

    failed_notes = [n for n in nv.notes() if "failed" in n["msg"]]
    assert len(failed_notes) == 1 and failed_notes[0]["level"] == 4, nv.notes()


@on_nvims()
def test_cancel_long_bash_leaves_no_process(make_nvim):
    # the long command (sh -c 'exec sleep 300') needs permission, unlike a bare sleep
    nv = make_nvim(setup={"allowed_tools": ["Bash"]})
    nv.command("ClaudeTask SCENARIO:longbash")
    task_id = current_task_id(nv)
    backend_pid = nv.backend_pid()
    assert backend_pid

    record = nv.get(task_id)
    assert record["status"] in ("queued", "running"), record
    cli_pid = nv.task_pid(task_id)
    assert cli_pid in helpers.descendants(backend_pid)

    # once the tool's `sleep 300` runs (`sh` exec'ed it), snapshot the whole tree under the CLI
    sleeper = helpers.wait_for(
        lambda: [p for p in helpers.descendants(cli_pid) if helpers.cmdline(p) == ["sleep", "300"]],
        30, "the `sleep 300` tool process")
    tree = helpers.snapshot([cli_pid, *helpers.descendants(cli_pid)])
    assert sleeper[0] in tree and cli_pid in tree
    assert nv.lua("return require('claude-tasks').statusline()") == "✻ 1"

    t0 = nvim_helpers.monotonic()
    nv.command(f"ClaudeTasks cancel {task_id}")
    data = nv.wait_done(task_id, timeout=30)
    took = nvim_helpers.monotonic() - t0
    assert data["status"] == "cancelled", nv.diagnostics(task_id)
    assert no_queued(nv.patterns(task_id)) == ["ClaudeTaskStarted", "ClaudeTaskCancelled",
                                               "ClaudeTaskDone"]
    # SIGINT is honoured within ~150 ms: no need to climb the ladder to SIGTERM (2 s grace)
    assert took < 10, took

    lines = nv.wait_footer(task_id)
    assert lines[-1].startswith("■ cancelled"), lines
    assert "● Bash(sh -c 'exec sleep 300')" in lines, lines

    # nothing of the tree survives; zombies the backend has not reaped count as alive
    zombies = helpers.wait_gone(tree, backend_pid, 5, "the cancelled task's processes to be gone",
                                interval=0.02, detail=lambda: nv.diagnostics(task_id))
    if zombies:
        warnings.warn(f"zombies (not children of the backend) after cancel: {zombies}")
    # the backend has no child left either (no adopted orphan, no unreaped zombie)
    helpers.wait_no_children(backend_pid)
    assert nv.lua("return require('claude-tasks').statusline()") == ""
    assert nv.get(task_id)["status"] == "cancelled"


@on_nvims()
def test_long_answer_completes_with_its_cost(make_nvim):
    # 150 lines of 80 bytes: a final answer of ~12 KB, past any prefix window of the result line
    nv = make_nvim()
    nv.command("ClaudeTask SCENARIO:big lines=150")
    task_id = current_task_id(nv)
    data = nv.wait_done(task_id)
    assert data["status"] == "completed", nv.diagnostics(task_id)
    assert data["cost_usd"] > 0 and data["num_turns"] == 1, data
    # the event's result is the answer's start, shortened (`…`)
    assert data["result"].startswith("line 000001 ") and data["result"].endswith("…"), data
    lines = nv.wait_footer(task_id)
    assert lines[-1].startswith("✓ done") and re.search(r"\$0\.\d{4}$", lines[-1]), lines[-1]
    assert content_before_footer(lines)[-1] == "END OF BIG ANSWER"


@on_nvims()
def test_big_answer_reaches_the_buffer_whole(make_nvim):
    nv = make_nvim()
    nv.command("ClaudeTask SCENARIO:big")
    task_id = current_task_id(nv)
    data = nv.wait_done(task_id, timeout=120)
    assert data["status"] == "completed", nv.diagnostics(task_id)
    lines = nv.wait_footer(task_id, timeout=30)
    body = content_before_footer(lines)
    assert body[-1] == "END OF BIG ANSWER", body[-5:]
    numbered = [ln for ln in body if ln.startswith("line ")]
    assert len(numbered) == 31249, (len(numbered), numbered[:1], numbered[-1:])
    assert numbered[0].startswith("line 000001 ") and numbered[-1].startswith("line 031249 ")
    assert lines[-1].startswith("✓ done")


@on_nvims()
def test_follow_up_resumes_the_session(make_nvim, mock_server):
    nv = make_nvim()
    nv.command("ClaudeTask SCENARIO:hello first turn")
    task_id = current_task_id(nv)
    first = nv.wait_done(task_id)
    assert first["status"] == "completed", nv.diagnostics(task_id)
    nv.wait_footer(task_id)
    seq = mock_server.last_seq()

    nv.command(f"ClaudeTasks resume {task_id} SCENARIO:remember what did I say?")
    second = nv.wait_done(task_id, n=2)
    assert second["status"] == "completed", nv.diagnostics(task_id)
    assert second["id"] == task_id and second["session_id"] == first["session_id"]

    # the second run sent the earlier turns
    reqs = mock_server.message_requests(since=seq)
    assert len(reqs) == 1, reqs
    body = reqs[0]["body"]
    assert [p.strip() for p in helpers.user_prompts(body)] == [
        "SCENARIO:hello first turn", "SCENARIO:remember what did I say?"]
    assistant = [helpers.message_text(m) for m in body["messages"] if m["role"] == "assistant"]
    assert any(HELLO_LINES[0] in t for t in assistant), assistant

    lines = nv.wait_footer(task_id, n=2)
    text = "\n".join(lines)
    seps = [i for i, ln in enumerate(lines) if ln.startswith("── ↻ follow-up #2 (live)")]
    assert len(seps) == 1, text
    assert "what did I say?" in lines[seps[0]]
    footers = [i for i, ln in enumerate(lines) if nvim_helpers.FOOTER_RE.match(ln)]
    assert len(footers) == 2 and footers[0] < seps[0] < footers[1], text
    after = lines[seps[0]:]
    assert "I remember 2 user prompts." in after, after
    assert any(ln.startswith('First prompt: "SCENARIO:hello first turn') for ln in after), after
    # the first run's output is still there, above the separator
    assert all(h in lines[:seps[0]] for h in HELLO_LINES)

    record = nv.get(task_id)
    assert record["status"] == "completed"
    assert len(record["runs"]) == 2, record["runs"]
    assert [r["status"] for r in record["runs"]] == ["completed", "completed"]
    assert [r["n"] for r in record["runs"]] == [1, 2]
