"""Permission requests on the Lua side, against tests/plugin/fake_backend.py (its `_request`
makes a task wait): the ClaudeTaskPermission autocmd and notification, the statusline, the
output buffer's keys, the commands, the picker, questions through vim.ui.select, the rules,
and the unsaved-files list sent to the backend."""
import json
import os
import time

WARN, ERROR = 3, 4


def use(child, fake_backend, **extra):
    opts = ", ".join("%s = %s" % (k, v) for k, v in extra.items())
    child.lua(
        # focus: these tests drive the output window they open.
        "require('claude-tasks').setup({ binary = ..., notify = true, focus = true%s })"
        % ((", " + opts) if opts else ""),
        fake_backend,
    )


def requests(child):
    state_dir = child.lua("return require('claude-tasks.config').state_dir()")
    path = os.path.join(state_dir, "fake-requests.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def until(what, pred, timeout=10.0):
    """Polls `pred` (the fake backend logs in its own process); the timeout only guards."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


def calls(child, method):
    return [r["args"] for r in requests(child) if r["method"] == method]


BASH = {
    "request_id": "43ba1187-f9f7-480d-8bc1-8caace58423a",
    "tool_name": "Bash",
    "input": {"command": "npm test", "description": "Run the tests"},
    "title": "Bash: npm test",
    "rule": "Bash(npm test:*)",
    "suggestions": [],
}

QUESTION = {
    "request_id": "6aa9350b-bf23-4b80-9bcd-e2f76cf49992",
    "tool_name": "AskUserQuestion",
    "input": {"questions": [
        {"question": "Which color?", "header": "Color", "multiSelect": False,
         "options": [{"label": "Red", "description": "warm"}, {"label": "Blue", "description": "cold"}]},
        {"question": "Which sizes?", "header": "Size", "multiSelect": True,
         "options": [{"label": "S"}, {"label": "M"}, {"label": "L"}]},
    ]},
    "title": "AskUserQuestion: Which color?",
}


def start(child, prompt="fix the tests", open_="false"):
    return child.lua(
        "return require('claude-tasks').start(..., { open = %s })" % open_, prompt
    )


def make_wait(child, task_id, req):
    child.lua(
        "return require('claude-tasks.backend').request('_request',"
        " { id = ..., cwd = vim.fn.getcwd(), request = select(2, ...) })",
        task_id,
        req,
    )


def record_events(child):
    child.lua(
        "_G.__perm = {}; vim.api.nvim_create_autocmd('User', { pattern = 'ClaudeTaskPermission',"
        " callback = function(a) table.insert(_G.__perm, a.data) end })"
    )


def answers(child, task_id):
    rec = child.lua(
        "return require('claude-tasks.backend').request('get', { id = ..., cwd = vim.fn.getcwd() })",
        task_id,
    )
    return rec.get("_answers", [])


def test_a_request_fires_the_autocmd_once_notifies_on_one_line_and_counts_in_the_statusline(
    child, fake_backend
):
    use(child, fake_backend)
    record_events(child)
    child.lua("vim.o.columns = 160")
    assert start(child) == 1
    assert start(child, "second") == 2
    assert child.lua("return require('claude-tasks').statusline()") == "✻ 2"
    evil = dict(BASH, title="Bash: echo \x1b[31mred\x1b[0m\nrm -rf ~", request_id="ffff0000-1")
    make_wait(child, 1, evil)
    child.flush()
    assert child.lua("return require('claude-tasks').statusline()") == "✻ 1 ? 1"
    data = child.lua("return _G.__perm")
    assert len(data) == 1
    d = data[0]
    assert (d["id"], d["request_id"], d["tool_name"]) == (1, "ffff0000-1", "Bash")
    assert d["input"] == BASH["input"] and d["suggestions"] == [] and d["name"] == "fix the tests"
    note = child.notes()[-1]
    assert note["level"] == WARN
    msg = note["msg"]
    assert "\n" not in msg and "\x1b" not in msg, msg
    assert msg.startswith("claude-tasks: #1 fix the tests asks: Bash: echo red"), msg
    assert ":ClaudeTasks allow 1" in msg
    # The same request shown again (another event, a list) is not announced again.
    child.lua("require('claude-tasks').list()")
    child.lua("require('claude-tasks').get(1)")
    child.flush()
    assert len(child.lua("return _G.__perm")) == 1
    # A narrow screen: the title is cut first, and the message stays one short line.
    child.lua("vim.o.columns = 50")
    make_wait(child, 2, dict(BASH, request_id="eeee0000-2", title="Bash: " + "x" * 200))
    child.flush()
    msg = child.notes()[-1]["msg"]
    assert len(msg) <= 50 and msg.startswith("claude-tasks: #2 second asks: Bash: xx"), msg
    child.lua("require('claude-tasks').setup({ binary = ..., statusline = { waiting_icon = '⁇' } })",
              fake_backend)
    assert child.lua("return require('claude-tasks').statusline()") == "⁇ 2"


def test_buffer_keys_allow_deny_and_edit_the_request_under_the_cursor(child, fake_backend):
    use(child, fake_backend)
    start(child, "fix", "'split'")
    make_wait(child, 1, BASH)
    second = dict(BASH, request_id="aaaabbbb-2", input={"command": "make"}, rule="Bash(make:*)")
    make_wait(child, 1, second)
    buf = child.lua("return vim.api.nvim_get_current_buf()")
    # The request headers as the backend draws them; the cursor on the second one.
    child.lua(
        "local b = ...; vim.bo[b].modifiable = true; vim.api.nvim_buf_set_lines(b, 0, -1, false, {"
        " '# #1 fix', '● Bash(npm test)', '? Allow Bash: npm test  [43ba1187]', '  $ npm test',"
        " '● Bash(make)', '? Allow Bash: make  [aaaabbbb]', '  $ make' });"
        " vim.bo[b].modifiable = false; vim.api.nvim_win_set_cursor(0, { 7, 0 })",
        buf,
    )
    child.lua("vim.ui.input = function(o, cb) _G.__input = o; cb('not this one') end")
    child.nvim.feedkeys("d")
    child.wait("#require('claude-tasks.permissions').pending("
               "require('claude-tasks.state').get(vim.fn.getcwd(), 1)) == 1")
    got = answers(child, 1)
    assert got == [{"behavior": "deny", "message": "not this one", "interrupt": None,
                    "request_id": "aaaabbbb-2"}]
    # `e` on the first: the command edited, then allowed with it.
    child.lua("vim.api.nvim_win_set_cursor(0, { 4, 0 })")
    child.lua("vim.ui.input = function(o, cb) _G.__input = o; cb('npm test -- --ci') end")
    child.nvim.feedkeys("e")
    child.wait("#require('claude-tasks.permissions').pending("
               "require('claude-tasks.state').get(vim.fn.getcwd(), 1)) == 0")
    assert child.lua("return _G.__input.default") == "npm test"
    got = answers(child, 1)[-1]
    assert got["behavior"] == "allow" and got["input"] == {
        "command": "npm test -- --ci", "description": "Run the tests"}
    assert child.lua("return require('claude-tasks').statusline()") == "✻ 1"
    # Nothing waits any more: the key says so and sends nothing.
    n = len(requests(child))
    child.nvim.feedkeys("a")
    child.flush()
    assert "not waiting for an answer" in child.notes()[-1]["msg"]
    assert len(requests(child)) == n


def test_always_shows_the_rule_for_editing_and_asks_the_scope(child, fake_backend):
    use(child, fake_backend)
    start(child)
    make_wait(child, 1, BASH)
    child.lua(
        "vim.ui.input = function(o, cb) _G.__input = o; cb('Bash(npm:*)') end;"
        " vim.ui.select = function(items, o, cb) _G.__scopes = vim.tbl_map(o.format_item, items);"
        " cb(items[2]) end"
    )
    child.nvim.command("ClaudeTasks always 1")
    child.wait("#(require('claude-tasks.state').get(vim.fn.getcwd(), 1).pending or {}) == 0")
    assert child.lua("return _G.__input.default") == "Bash(npm test:*)"
    assert child.lua("return _G.__scopes")[0] == "only in task #1"
    got = answers(child, 1)[-1]
    assert (got["always"], got["scope"]) == ("Bash(npm:*)", "project")
    # :ClaudeTasks rules lists it; choosing it and "Remove" removes it.
    child.lua(
        "vim.ui.select = function(items, o, cb) _G.__shown = vim.tbl_map(o.format_item or tostring,"
        " items); cb(items[1]) end"
    )
    child.nvim.command("ClaudeTasks rules")
    assert child.lua("return _G.__shown") == ["Remove", "Keep"]
    assert calls(child, "remove_rule")[-1]["rule"] == "Bash(npm:*)"
    child.nvim.command("ClaudeTasks rules")
    assert "no 'always' rules" in child.notes()[-1]["msg"]


def test_commands_without_an_id_pick_among_waiting_tasks_and_deny_takes_a_reason(
    child, fake_backend
):
    use(child, fake_backend)
    start(child, "one")
    start(child, "two")
    start(child, "three")
    child.nvim.command("ClaudeTasks allow")
    assert "no task in this project waits" in child.notes()[-1]["msg"]
    make_wait(child, 1, BASH)
    make_wait(child, 3, dict(BASH, request_id="cccc0000-3"))
    child.lua(
        "vim.ui.select = function(items, o, cb) _G.__items = vim.tbl_map(o.format_item, items);"
        " cb(items[2]) end"
    )
    child.nvim.command("ClaudeTasks deny too risky")
    items = child.lua("return _G.__items")
    assert len(items) == 2 and all("? waiting" in i and "Bash: npm test" in i for i in items), items
    got = answers(child, 1)[-1]
    assert (got["behavior"], got["message"]) == ("deny", "too risky")
    child.nvim.command("ClaudeTasks allow 3")
    assert answers(child, 3)[-1]["behavior"] == "allow"
    child.nvim.command("ClaudeTasks allow 2")
    assert child.notes()[-1]["msg"] == "claude-tasks: #2 is not waiting for an answer"
    assert child.notes()[-1]["level"] == ERROR
    # Completion offers the waiting tasks only.
    make_wait(child, 2, dict(BASH, request_id="dddd0000-4"))
    assert child.lua("return vim.fn.getcompletion('ClaudeTasks allow ', 'cmdline')") == ["2 two"]


def test_the_picker_lists_waiting_tasks_first_with_their_actions(child, fake_backend):
    use(child, fake_backend)
    start(child, "old one")
    start(child, "newest")
    make_wait(child, 1, BASH)
    child.lua(
        "_G.__menus = {}; vim.ui.select = function(items, o, cb)"
        " table.insert(_G.__menus, vim.tbl_map(o.format_item, items));"
        " if #_G.__menus == 1 then cb(items[1]) end end"
    )
    child.nvim.command("ClaudeTasks")
    menus = child.lua("return _G.__menus")
    assert menus[0][0].startswith("#1 ? waiting"), menus[0]
    assert menus[0][1].startswith("#2 running"), menus[0]
    assert menus[1][:4] == ["Allow: Bash: npm test", "Always allow…", "Edit and allow…", "Deny…"]


def test_questions_are_asked_with_vim_ui_select_multi_select_and_free_text(child, fake_backend):
    use(child, fake_backend)
    start(child)
    make_wait(child, 1, QUESTION)
    # Color: Blue; sizes: S, then L, then Done.
    child.lua(
        "_G.__prompts = {}; local script = { 2, 1, 3, 'done' };"
        " vim.ui.select = function(items, o, cb) table.insert(_G.__prompts, o.prompt);"
        " local pick = table.remove(script, 1);"
        " if pick == 'done' then for _, it in ipairs(items) do if it.done then return cb(it) end end end;"
        " cb(items[pick]) end"
    )
    child.lua("require('claude-tasks.permissions').act({ id = 1, cwd = vim.fn.getcwd() },"
              " require('claude-tasks.permissions').find({ id = 1, cwd = vim.fn.getcwd() }), 'allow')")
    child.wait("#(require('claude-tasks.state').get(vim.fn.getcwd(), 1).pending or {}) == 0")
    assert child.lua("return _G.__prompts")[0] == "Color: Which color?"
    got = answers(child, 1)[-1]
    assert got["answers"] == {"Which color?": "Blue", "Which sizes?": "S, L"}
    # Free text through "Other".
    make_wait(child, 1, dict(QUESTION, request_id="77770000-q"))
    child.lua(
        "vim.ui.select = function(items, o, cb) for _, it in ipairs(items) do"
        " if it.other then return cb(it) end end end;"
        " vim.ui.input = function(o, cb) cb('Green, please') end"
    )
    child.lua("require('claude-tasks').answer(1, { ['Which color?'] = { 'Red', 'Blue' } })")
    got = answers(child, 1)[-1]
    assert got["answers"] == {"Which color?": "Red, Blue"}


def test_lua_api_checks_its_arguments_and_reports_backend_errors(child, fake_backend):
    use(child, fake_backend)
    start(child)
    r = child.lua("return { require('claude-tasks').allow(1, { input = 'x' }) }")
    assert r == [None, "claude-tasks: allow(): 'input' must be a table"]
    r = child.lua("return { require('claude-tasks').allow(1, { scope = 'world' }) }")
    assert r[1] == "claude-tasks: allow(): 'scope' must be \"task\" or \"project\""
    r = child.lua("return { require('claude-tasks').answer(1, {}) }")
    assert r[1].startswith("claude-tasks: answer(): 'answers' must be a table")
    r = child.lua("return { require('claude-tasks').allow(1) }")
    assert r == [None, "claude-tasks: allow: task #1 has no pending request"]
    make_wait(child, 1, BASH)
    r = child.lua("return { require('claude-tasks').allow(1, { request_id = 'zzz' }) }")
    assert r[1] == "claude-tasks: allow: task #1 has no pending request 'zzz' (pending: 43ba1187)"
    r = child.lua("return { require('claude-tasks').answer(1, { q = 'a' }) }")
    assert r[1] == ("claude-tasks: answer: request 43ba1187 of task #1 is a Bash request,"
                    " not a question")
    rec = child.lua("return require('claude-tasks').allow(1, { request_id = '43ba' })")
    assert rec["pending"] == [] and answers(child, 1)[-1]["request_id"] == BASH["request_id"]


def test_options_permissions_and_permission_mode_are_validated(child, fake_backend):
    bad = [
        ("{ permissions = 'maybe' }", "option 'permissions' must be one of \"ask\", \"deny\""),
        # A single word is a newer CLI's mode, passed on with a warning (test_everyday.py).
        ("{ permission_mode = 'yo lo' }", "option 'permission_mode' must be one of"),
        ("{ allowed_tools = { 'Bash(' } }", "option 'allowed_tools' must be a list of tool rules"),
    ]
    for opts, msg in bad:
        err = child.lua("local ok, e = pcall(require('claude-tasks').setup, %s); return e" % opts)
        assert msg in err, (opts, err)
    use(child, fake_backend, permissions="'deny'")
    r = child.lua("return { require('claude-tasks').start('x', { permissions = 'never' }) }")
    assert "start() option 'permissions' must be one of" in r[1]
    start(child)
    child.lua("require('claude-tasks').start('unwatched', { permissions = 'ask', open = false })")
    got = [c.get("permissions") for c in calls(child, "start")]
    assert got == ["deny", "ask"]


def test_the_backend_learns_which_files_have_unsaved_changes(child, fake_backend, tmp_path):
    use(child, fake_backend)
    f = tmp_path / "project" / "lib.rs"
    f.write_text("fn main() {}\n")
    start(child)

    def unsaved():
        return [r["args"]["files"] for r in requests(child) if r["method"] == "unsaved"]

    assert unsaved() == []  # an empty list is no news to a new backend
    child.nvim.command("edit " + str(f))
    child.nvim.command("normal! Ox")
    until("the modified file", lambda: unsaved() and unsaved()[-1] == [str(f)])
    n = len(unsaved())
    child.nvim.command("normal! Oy")  # still modified: nothing new to say
    child.nvim.command("write")
    until("the saved file", lambda: unsaved()[-1] == [])
    assert len(unsaved()) == n + 1
    assert all(r.get("notification") for r in requests(child) if r["method"] == "unsaved")
    # A new backend (after a crash) is told at once what is unsaved.
    child.nvim.command("normal! Oz")
    until("modified again", lambda: unsaved()[-1] == [str(f)])
    child.lua("require('claude-tasks.backend').stop()")
    os.remove(os.path.join(child.lua("return require('claude-tasks.config').state_dir()"),
                           "fake-requests.jsonl"))
    child.lua("require('claude-tasks').list()")
    until("the new backend's list", lambda: unsaved() == [[str(f)]])


def test_request_lines_have_their_highlights(child):
    lines = ["? Run this command?  [43ba1187]", "  $ npm test", "  ✓ allowed",
             "  ✗ denied: no", "?notarequest", "plain"]
    groups = child.lua(
        "local hl = require('claude-tasks.highlights'); "
        "return vim.tbl_map(function(l) return hl.group_of(l, 10) or '' end, ...)",
        lines,
    )
    assert groups == ["ClaudeTasksRequest", "", "ClaudeTasksAllowed", "ClaudeTasksError", "", ""]
