"""Backend management against tests/plugin/fake_backend.py, a Python stand-in speaking
doc/protocol.md: start on first use, version check, configure, nested callbacks, crashes."""
import json
import os

ERROR, INFO = 4, 2


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


def methods(child):
    return [r["method"] for r in requests(child)]


def test_no_backend_until_first_use(child, fake_backend):
    use(child, fake_backend)
    assert child.lua("return require('claude-tasks.backend').running()") is False
    assert requests(child) == []


def test_start_attach_write_and_complete(child, fake_backend):
    use(child, fake_backend)
    child.lua(
        "_G.__ev = {}; vim.api.nvim_create_autocmd('User', { pattern = 'ClaudeTask*',"
        " callback = function(a) table.insert(_G.__ev, a.match) end })"
    )
    child.nvim.command("ClaudeTask say hi")
    assert methods(child)[:4] == ["version", "configure", "start", "attach"]
    cfg = requests(child)[1]["args"]
    assert cfg == {
        "on_exit": "cancel",
        "concurrency": "queue",
        "max_running": 4,
        "cancel_grace_ms": 2000,
        "keep": 100,
        "keep_alive_ms": 600000,
        "max_idle": 2,
        "export_markdown": False,
        "track_changes": True,
    }
    # The fake writes the buffer from inside the attach request (nested call).
    buf = child.lua("return vim.api.nvim_get_current_buf()")
    assert child.lua("return vim.fn.bufname()") == "claude #1 say hi"
    assert child.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)") == [
        "# #1 say hi",
        "",
        "● Bash(echo hi)",
        "  ⎿ hi",
    ]
    assert child.lua("return vim.api.nvim_win_get_cursor(0)[1]") == 4  # followed
    assert child.lua("return require('claude-tasks').statusline()") == "✻ 1"
    child.lua("require('claude-tasks.backend').request('_finish', { id = 1, cwd = vim.fn.getcwd() })")
    assert child.lua("return require('claude-tasks').statusline()") == ""
    assert child.lua("return vim.api.nvim_buf_get_lines(..., -2, -1, false)", buf) == [
        "✓ done in 1.0s · 1 turns · $0.0100"
    ]
    child.flush()
    assert child.lua("return _G.__ev") == [
        "ClaudeTaskStarted",
        "ClaudeTaskCompleted",
        "ClaudeTaskDone",
    ]
    notes = child.notes()
    assert notes[-1]["level"] == INFO
    assert notes[-1]["msg"] == "claude-tasks: #1 say hi — done in 1.0s · $0.0100"


def test_setup_reconfigures_a_running_backend(child, fake_backend):
    use(child, fake_backend)
    child.lua("require('claude-tasks').list()")
    use(child, fake_backend, max_running=2, on_exit="'detach'")
    cfgs = [r["args"] for r in requests(child) if r["method"] == "configure"]
    assert len(cfgs) == 2
    assert cfgs[1]["max_running"] == 2 and cfgs[1]["on_exit"] == "detach"


def test_backend_errors_are_clean(child, fake_backend):
    use(child, fake_backend)
    r = child.lua("local t, e = require('claude-tasks').cancel(42); return { t = t, e = e }")
    assert r == {"e": "claude-tasks: cancel: no task 42 in %s" % os.getcwd()}
    r = child.lua(
        "local ok, e = pcall(require('claude-tasks.backend').request, 'frobnicate', {});"
        "return { ok = ok, e = e }"
    )
    assert r == {"ok": False, "e": "claude-tasks: unknown method 'frobnicate'"}
    child.nvim.command("ClaudeTasks cancel 42")
    msg = child.notes()[-1]
    assert msg["level"] == ERROR
    assert msg["msg"].startswith("claude-tasks: no task matches '42'")


def test_version_mismatch_is_refused(child, fake_backend):
    child.lua("vim.env.FAKE_BACKEND_VERSION = '0.0.9'")
    use(child, fake_backend)
    r = child.lua("local id, e = require('claude-tasks').start('x'); return { id = id, e = e }")
    assert "id" not in r
    assert "is version \"0.0.9\" but the plugin is 0.1.0" in r["e"]
    assert "cargo build --release" in r["e"]
    assert child.lua("return require('claude-tasks.backend').running()") is False
    assert methods(child) == ["version"]
    child.flush()
    # refusing it is not an "unexpected exit"
    assert not any("unexpectedly" in n["msg"] for n in child.notes())


def test_missing_binary(child):
    child.lua("require('claude-tasks').setup({ binary = '/nonexistent/claude-tasks' })")
    child.nvim.command("ClaudeTask hi")
    (note,) = child.notes()
    assert note["level"] == ERROR
    assert "/nonexistent/claude-tasks" in note["msg"]
    assert "cargo build --release" in note["msg"]


def test_default_binary_location(child):
    root = child.lua("return require('claude-tasks.backend').plugin_root()")
    assert os.path.isfile(os.path.join(root, "lua", "claude-tasks", "backend.lua"))
    r = child.lua(
        "local p, e = require('claude-tasks.backend').find_binary(); return { p = p, e = e }"
    )
    path, err = r.get("p"), r.get("e")
    release = os.path.join(root, "target/release/claude-tasks")
    debug = os.path.join(root, "target/debug/claude-tasks")
    if os.access(release, os.X_OK):
        assert path == release
    elif os.access(debug, os.X_OK):
        assert path == debug
    else:
        assert "cargo build --release" in err


def test_crash_is_reported_once_and_a_new_backend_starts(child, fake_backend):
    use(child, fake_backend)
    child.lua("require('claude-tasks').start('one', { open = false })")
    assert child.lua("return require('claude-tasks').statusline()") == "✻ 1"
    job = child.lua("return require('claude-tasks.backend').info().job")
    child.lua("pcall(require('claude-tasks.backend').request, '_crash', {})")
    child.wait("not require('claude-tasks.backend').running()")
    child.flush()
    crashes = [n for n in child.notes() if "unexpectedly" in n["msg"]]
    assert len(crashes) == 1
    log = child.lua("return require('claude-tasks.config').log_file()")
    assert crashes[0]["level"] == ERROR and log in crashes[0]["msg"]
    # its stderr went to the log
    with open(log) as f:
        assert "fake backend: crashing on _crash" in f.read()
    # the cache no longer counts what the dead backend ran
    assert child.lua("return require('claude-tasks').statusline()") == ""
    # next call: a fresh backend, version-checked and configured again
    assert child.lua("return require('claude-tasks').list()") == []
    assert child.lua("return require('claude-tasks.backend').info().job") != job
    assert methods(child).count("version") == 2
    assert methods(child).count("configure") == 2
    child.flush()
    assert len([n for n in child.notes() if "unexpectedly" in n["msg"]]) == 1


def test_crash_during_a_request(child, fake_backend):
    child.lua("vim.env.FAKE_BACKEND_CRASH_ON = 'start'")
    use(child, fake_backend)
    r = child.lua("local id, e = require('claude-tasks').start('x'); return { id = id, e = e }")
    assert "id" not in r and r["e"].startswith("claude-tasks: ")
    assert "Error invoking" not in r["e"]
    child.wait("not require('claude-tasks.backend').running()")


def test_open_buffers_are_reattached_after_a_crash(child, fake_backend):
    use(child, fake_backend)
    child.nvim.command("ClaudeTask one")
    buf = child.lua("return vim.api.nvim_get_current_buf()")
    job = child.lua("return require('claude-tasks.backend').info().job")
    child.lua("pcall(require('claude-tasks.backend').request, '_crash', {})")
    # An output buffer is open, so a new backend starts at once and re-attaches it.
    child.wait(
        "require('claude-tasks.backend').running()"
        " and require('claude-tasks.backend').info().job ~= %d" % job
    )
    # The fake starts empty, so re-attaching fails quietly; the buffer stays as it was.
    attaches = [r for r in requests(child) if r["method"] == "attach"]
    assert [a["args"]["buf"] for a in attaches] == [buf, buf]
    assert child.lua("return vim.api.nvim_buf_is_valid(...)", buf) is True


def test_wipeout_sends_detach(child, fake_backend):
    use(child, fake_backend)
    child.nvim.command("ClaudeTask one")
    buf = child.lua("return vim.api.nvim_get_current_buf()")
    child.nvim.command("bwipeout %d" % buf)
    child.flush()
    child.lua("require('claude-tasks').list()")  # a request after the scheduled detach
    detach = [r["args"] for r in requests(child) if r["method"] == "detach"]
    assert detach == [{"id": 1, "buf": buf, "cwd": os.getcwd()}]


def test_cancel_command(child, fake_backend):
    use(child, fake_backend)
    child.nvim.command("ClaudeTask long job")
    child.nvim.command("ClaudeTasks cancel 1")
    assert child.lua("return require('claude-tasks').statusline()") == ""
    assert child.lua("return vim.api.nvim_buf_get_lines(0, -2, -1, false)") == ["■ cancelled"]
    child.flush()
    assert "— cancelled" in child.notes()[-1]["msg"]


def test_first_attach_starts_the_backend_once_and_attaches_once(child, fake_backend):
    use(child, fake_backend)
    child.lua("require('claude-tasks').start('one', { open = false })")
    child.lua("require('claude-tasks.backend').stop()")
    # A new backend starts inside the attach request of open(); the buffer is attached once.
    r = child.lua("local b, e = require('claude-tasks').open(1); return { b = b, e = e }")
    # the fake forgot task 1 (new process): the error is reported cleanly, and only one
    # attach was sent to the new backend
    assert r.get("e", "").startswith("claude-tasks: attach: no task 1")
    assert methods(child).count("attach") == 1
