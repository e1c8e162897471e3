"""Issue 23, what a new user trips over in the first hour (items 1-5, 10-12, 24, 26): each test
is named after its item. The real backend with the fake CLI where the backend is involved
(skipped when they are not built), a fake `cmd` for the health check."""
import os
import re
import shutil
import stat
import time

import pynvim
import pytest

from conftest import ROOT, real_backend_paths

ERROR, WARN, INFO = 4, 3, 2

FIXTURES = os.path.join(ROOT, "tests", "fixtures")

EVENTS = """
_G.__ev = {}
vim.api.nvim_create_autocmd('User', { pattern = 'ClaudeTask*', callback = function(a)
  table.insert(_G.__ev, { pattern = a.match, data = a.data })
end })
function _G.__event(pattern, id)
  for i = #_G.__ev, 1, -1 do
    local e = _G.__ev[i]
    if e.pattern == pattern and (id == nil or e.data.id == id) then return e.data end
  end
end
function _G.__lines(id)
  local buf = require('claude-tasks.buffer').find(id, vim.fn.getcwd())
  if not buf then return {} end
  return vim.api.nvim_buf_get_lines(buf, 0, -1, false)
end
function _G.__has_line(id, pattern)
  for _, l in ipairs(__lines(id)) do
    if l:find(pattern) then return l end
  end
  return false
end
"""


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


@pytest.fixture
def real(child, real_backend):
    """setup() with the real backend; `cmd` defaults to the fake CLI."""
    bin_, fake = real_backend

    def use(cmd=None, **opts):
        child.lua(
            "local bin, cmd, opts = ...; require('claude-tasks').setup(vim.tbl_extend('force',"
            " { binary = bin, cmd = cmd }, opts))",
            bin_,
            cmd or [fake],
            opts,
        )
        return fake

    child.lua(EVENTS)
    return use


def notes(child, level=None):
    child.flush()
    return [n for n in child.notes() if level is None or n["level"] == level]


# ----------------------------------------------------------------------------------- item 1


def test_23_01_the_cli_s_own_error_is_shown(child, real, tmp_path):
    # A CLI that rejects its --permission-mode as the real one does: the reason is on stderr
    # only, and it exits 1 without a result line.
    cli = script(
        tmp_path,
        "claude",
        'for a in "$@"; do case "$a" in --permission-mode=*) mode=${a#*=};; esac; done\n'
        "echo 'Additional CA cert(s): /etc/ssl/certs/ca-certificates.crt' >&2\n"
        "printf '\\033[31merror:\\033[0m option '\\''--permission-mode <mode>'\\'' argument "
        "'\\''%s'\\'' is invalid. Allowed choices are acceptEdits, default.\\n' \"$mode\" >&2\n"
        "exit 1\n",
    )
    real(cmd=[cli], permission_mode="bogus")
    # A well-formed mode the tested CLIs do not know is passed on with a warning (item 2).
    assert any("'permission_mode' \"bogus\"" in n["msg"] for n in notes(child, WARN))
    child.nvim.command("ClaudeTask hello")
    child.wait("__event('ClaudeTaskDone', 1) ~= nil", timeout=30)
    why = (
        "the CLI exited with code 1 without a result: error: option '--permission-mode <mode>' "
        "argument 'bogus' is invalid. Allowed choices are acceptEdits, default."
    )
    data = child.lua("return __event('ClaudeTaskFailed', 1)")
    assert data["error"] == why
    child.wait("__has_line(1, '^  │ error:')", timeout=10)
    lines = child.lua("return __lines(1)")
    failed = [l for l in lines if l.startswith("✗ failed: ")]
    assert failed and failed[0].startswith("✗ failed: " + why + " · "), lines
    # The last stderr lines under the footer, without the terminal's colours.
    assert lines[-2:] == [
        "  │ Additional CA cert(s): /etc/ssl/certs/ca-certificates.crt",
        "  │ error: option '--permission-mode <mode>' argument 'bogus' is invalid. "
        "Allowed choices are acceptEdits, default.",
    ], lines
    [note] = [n for n in notes(child, ERROR) if "failed" in n["msg"]]
    assert note["msg"].endswith(": " + why) and "\n" not in note["msg"]


def test_23_01_a_usage_text_after_the_error_does_not_hide_it(child, real, tmp_path):
    # A `cmd` that is not Claude: it rejects a flag, then prints its usage, a dozen lines, and
    # a line about --help. The error is the line that says what went wrong, not the last one.
    usage = "".join("echo '  -%d, --option-%d   does thing %d' >&2\n" % (i, i, i) for i in range(12))
    cli = script(
        tmp_path,
        "notclaude",
        "echo \"notclaude: unrecognized option '--output-format'\" >&2\n"
        "echo 'Usage: notclaude [OPTION]... [FILE]...' >&2\n"
        + usage
        + "echo \"Try 'notclaude --help' for more information.\" >&2\n"
        "exit 2\n",
    )
    real(cmd=[cli])
    child.nvim.command("ClaudeTask hello")
    child.wait("__event('ClaudeTaskDone', 1) ~= nil", timeout=30)
    why = (
        "the CLI exited with code 2 without a result: "
        "notclaude: unrecognized option '--output-format'"
    )
    assert child.lua("return __event('ClaudeTaskFailed', 1)")["error"] == why
    [note] = [n for n in notes(child, ERROR) if "failed" in n["msg"]]
    assert note["msg"].endswith(": " + why), note
    # Under the footer: that line first, then the last lines (at most 5 in all).
    child.wait("__has_line(1, '^  │ Try ')", timeout=10)
    shown = [l for l in child.lua("return __lines(1)") if l.startswith("  │ ")]
    assert shown == [
        "  │ notclaude: unrecognized option '--output-format'",
        "  │ -9, --option-9   does thing 9",
        "  │ -10, --option-10   does thing 10",
        "  │ -11, --option-11   does thing 11",
        "  │ Try 'notclaude --help' for more information.",
    ], shown


# ----------------------------------------------------------------------------------- item 2


def test_23_02_permission_mode_and_model_are_validated(child):
    child.stub_backend()
    ct = "require('claude-tasks')"

    def setup(opts):
        return child.lua("local ok, err = pcall(%s.setup, %s); return { ok, err }" % (ct, opts))

    # Documented modes, both CLIs' ("manual" is 2.1.332's name for "default"): no warning.
    for mode in ("acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan",
                 "manual"):
        assert setup("{ permission_mode = '%s' }" % mode) == [True], mode
    assert notes(child, WARN) == []
    # A newer CLI's mode: allowed on purpose, with a warning that says so.
    assert setup("{ permission_mode = 'yoloMode' }") == [True]
    [w] = notes(child, WARN)
    assert w["msg"].startswith("claude-tasks: option 'permission_mode' \"yoloMode\" is not a mode")
    assert "passed to the CLI as it is" in w["msg"] and "acceptEdits" in w["msg"]
    assert child.lua("return require('claude-tasks.config').get().permission_mode") == "yoloMode"
    # Not a mode at all, and an empty model: errors naming the key.
    for opts, msg in (
        ("{ permission_mode = 'accept edits' }", "option 'permission_mode' must be one of"),
        ("{ permission_mode = '' }", "option 'permission_mode' must be one of"),
        ("{ permission_mode = '--dangerously-skip-permissions' }", "'permission_mode' must be"),
        ("{ model = '' }", "option 'model' must be a non-empty string or nil; got \"\""),
    ):
        ok, err = setup(opts)
        assert ok is False and msg in err, (opts, err)
    # start() checks its own options the same way.
    child.lua("%s.setup({})" % ct)
    res = child.lua("return { %s.start('x', { model = '' }) }" % ct)
    assert res[0] is None and "start() option 'model' must be a non-empty string" in res[1]
    res = child.lua("return { %s.start('x', { permission_mode = 'newMode' }) }" % ct)
    assert res[0] is not None
    assert any("start() option 'permission_mode' \"newMode\"" in n["msg"]
               for n in notes(child, WARN))
    assert child.calls("start")[-1]["permission_mode"] == "newMode"


# ----------------------------------------------------------------------------------- item 3


def test_23_03_a_denied_tool_is_said_with_what_allows_it(child, real):
    fake = real()
    transcript = os.path.join(FIXTURES, "claude-cli-2.1.197", "write-stream-json-default",
                              "stdout.jsonl")
    real(cmd=[fake, "--fake-transcript=" + transcript])
    child.nvim.command("ClaudeTask write hello.txt")
    child.wait("__event('ClaudeTaskDone', 1) ~= nil", timeout=30)
    data = child.lua("return __event('ClaudeTaskDone', 1)")
    assert data["status"] == "completed" and data["denied"] == ["Write"]
    child.wait("__has_line(1, '^  ⚠ to allow')", timeout=10)
    lines = child.lua("return __lines(1)")
    assert lines[-2].startswith("✓ done in ") and lines[-2].endswith(" · 1 tool denied (Write)")
    assert lines[-1] == ('  ⚠ to allow: A (always) on the next request, or '
                         'allowed_tools = { "Write" } (:help claude-tasks-permissions)')
    [note] = [n for n in notes(child, INFO) if "— done" in n["msg"]]
    assert note["msg"].endswith(' · 1 tool denied (Write); to allow: A on the next request'
                                ' or allowed_tools = { "Write" }'), note
    msg = child.lua("local t = require('claude-tasks').get(1); t.options.permissions = 'deny';"
                    " return require('claude-tasks.events').message(t)")
    assert msg.endswith(' · 1 tool denied (Write); to allow: permissions = "ask"'
                        ' or allowed_tools = { "Write" }'), msg
    # A run without denials has an empty list, not nil.
    real(cmd=[fake])
    child.nvim.command("ClaudeTask hello")
    child.wait("__event('ClaudeTaskDone', 2) ~= nil", timeout=30)
    assert child.lua("return __event('ClaudeTaskDone', 2).denied") in ([], {})
    assert "denied" not in [n for n in notes(child, INFO) if "#2" in n["msg"]][0]["msg"]


# ----------------------------------------------------------------------------------- item 4


def fake_cli(tmp_path, auth):
    """A `cmd` with --version and, per `auth`, `auth status` as 2.1.197 and 2.1.332 answer it
    offline (JSON; exit 1 when logged out), or no such command (an older CLI)."""
    answers = {
        "out": "echo '{\"loggedIn\": false, \"authMethod\": \"none\", "
        "\"apiProvider\": \"firstParty\"}'; exit 1",
        "in": "echo '{\"loggedIn\": true, \"authMethod\": \"api_key\", "
        "\"apiProvider\": \"firstParty\", \"apiKeySource\": \"ANTHROPIC_API_KEY\"}'",
        "none": "echo \"error: unknown command 'auth'\" >&2; exit 1",
    }
    return script(
        tmp_path,
        "claude-" + auth,
        'case "$1" in\n'
        "  --version) echo '2.1.197 (Claude Code)';;\n"
        "  auth) %s;;\n"
        "esac\n" % answers[auth],
    )


def health(child):
    child.nvim.command("checkhealth claude-tasks")
    return child.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)")


def line_with(lines, text):
    found = [l for l in lines if text in l]
    assert found, "%r not in:\n%s" % (text, "\n".join(lines))
    return found[0]


def test_23_04_checkhealth_warns_when_the_cli_is_not_logged_in(child, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    child.lua("vim.env.HOME = ...; vim.env.ANTHROPIC_API_KEY = nil; vim.env.CLAUDE_CONFIG_DIR = nil",
              str(home))
    child.lua("require('claude-tasks').setup({ cmd = ... })", fake_cli(tmp_path, "out"))
    lines = health(child)
    warning = line_with(lines, "Claude Code is not logged in")
    assert "WARNING" in warning and "auth status --json" in warning
    assert any("claude auth login" in l for l in lines)
    assert any("ANTHROPIC_API_KEY" in l for l in lines)

    child.lua("require('claude-tasks').setup({ cmd = ... })", fake_cli(tmp_path, "in"))
    ok = line_with(health(child), "Claude Code is logged in")
    assert "OK" in ok and "(api_key from ANTHROPIC_API_KEY)" in ok

    # A CLI without `auth status`: what the environment and the credentials file say.
    child.lua("require('claude-tasks').setup({ cmd = ... })", fake_cli(tmp_path, "none"))
    warning = line_with(health(child), "cannot tell whether Claude Code is logged in")
    assert "WARNING" in warning and str(home / ".claude" / ".credentials.json") in warning
    (home / ".claude").mkdir()
    (home / ".claude" / ".credentials.json").write_text("{}")
    ok = line_with(health(child), "Claude Code credentials: ")
    assert "OK" in ok and ".credentials.json" in ok
    (home / ".claude" / ".credentials.json").unlink()
    child.lua("vim.env.ANTHROPIC_API_KEY = 'sk-test'")
    assert "OK" in line_with(health(child), "$ANTHROPIC_API_KEY is set")


@pytest.mark.parametrize("version", ["2.1.197", "2.1.332"])
def test_23_04_the_real_cli_s_auth_status_is_read_offline(child, tmp_path, version):
    """The pinned CLIs, logged out in an empty HOME: the check says so. (`auth status` reads
    local state only; the CLI's own network is pointed at a closed loopback port anyway.)"""
    cli = os.path.join(ROOT, ".deps", "claude-" + version, "node_modules", ".bin", "claude")
    if not os.access(cli, os.X_OK):
        pytest.skip("no Claude Code %s in .deps" % version)
    home = tmp_path / "home"
    home.mkdir()
    child.lua(
        "vim.env.HOME = ...; vim.env.ANTHROPIC_API_KEY = nil; vim.env.CLAUDE_CONFIG_DIR = nil;"
        " vim.env.HTTPS_PROXY = 'http://127.0.0.1:9'; vim.env.HTTP_PROXY = 'http://127.0.0.1:9'",
        str(home),
    )
    child.lua("require('claude-tasks').setup({ cmd = ... })", cli)
    lines = health(child)
    assert "WARNING" in line_with(lines, "Claude Code is not logged in")
    child.lua("vim.env.ANTHROPIC_API_KEY = 'sk-ant-test-not-a-key'")
    assert "OK" in line_with(health(child), "Claude Code is logged in (api_key")


# ----------------------------------------------------------------------------------- item 5


def manual_install(tmp_path):
    """A git clone's files (no doc/tags) in a directory of their own."""
    clone = tmp_path / "claude-tasks.nvim"
    for d in ("lua", "plugin", "doc"):
        shutil.copytree(os.path.join(ROOT, d), clone / d,
                        ignore=shutil.ignore_patterns("tags"))
    return clone


@pytest.fixture
def bare_nvim(nvim_bin, tmp_path):
    """A child Neovim with only `clone` (given later) on its runtimepath, not the repository."""
    made = []

    def start(clone):
        nvim = pynvim.attach(
            "child", argv=[nvim_bin, "--embed", "--headless", "--clean", "-n", "-i", "NONE"])
        made.append(nvim)
        nvim.exec_lua("vim.opt.runtimepath:prepend(...); vim.cmd('runtime plugin/claude-tasks.lua')",
                      str(clone))
        return nvim

    yield start
    for nvim in made:
        try:
            nvim.close()
        except Exception:  # noqa: BLE001
            pass


def help_works(nvim):
    """[true] or [false, the error]."""
    return nvim.exec_lua("local ok, err = pcall(vim.cmd, 'help claude-tasks');"
                         " return ok and { true } or { false, err }")


@pytest.mark.parametrize("by", ["setup", "command"])
def test_23_05_help_works_after_a_manual_install(bare_nvim, tmp_path, by):
    clone = manual_install(tmp_path)
    nvim = bare_nvim(clone)
    ok, err = help_works(nvim)
    assert ok is False and "E149" in err
    assert not (clone / "doc" / "tags").exists()
    if by == "setup":
        nvim.exec_lua("require('claude-tasks').setup({})")
    else:
        # Any :ClaudeTasks use does it too (without setup()): here its completion.
        nvim.exec_lua("vim.fn.getcompletion('ClaudeTasks ', 'cmdline')")
    assert (clone / "doc" / "tags").is_file()
    assert help_works(nvim) == [True]
    assert nvim.exec_lua("return vim.fn.expand('%:t')") == "claude-tasks.txt"


def test_23_05_existing_tags_and_a_read_only_doc_dir_are_left_alone(bare_nvim, tmp_path):
    clone = manual_install(tmp_path)
    (clone / "doc" / "tags").write_text("mine\tclaude-tasks.txt\t/*mine*\n")
    nvim = bare_nvim(clone)
    nvim.exec_lua("require('claude-tasks').setup({})")
    assert (clone / "doc" / "tags").read_text() == "mine\tclaude-tasks.txt\t/*mine*\n"
    if os.geteuid() == 0:
        return  # root writes to a read-only directory
    other = manual_install(tmp_path / "ro")
    (other / "doc").chmod(0o555)
    try:
        nvim = bare_nvim(other)
        assert nvim.exec_lua("return { pcall(require('claude-tasks').setup, {}) }") == [True]
        assert not (other / "doc" / "tags").exists()
    finally:
        (other / "doc").chmod(0o755)


# ---------------------------------------------------------------------------------- item 10


def header(child, id_):
    child.wait("#__lines(%d) >= 2" % id_, timeout=10)
    return child.lua("return __lines(...)", id_)[1]


def test_23_10_the_header_shows_local_time_and_queued_apart_from_started(child, real):
    # A POSIX TZ (no zone files needed): the backend reads it from the editor's environment.
    child.lua("vim.env.TZ = 'IST-5:30'")
    fake = real(open=False)
    ct = "require('claude-tasks')"
    assert child.lua("return %s.start('hang', { cmd = { ..., '--fake-hang' } })" % ct, fake) == 1
    child.wait("__event('ClaudeTaskStarted', 1) ~= nil", timeout=30)
    child.lua("%s.open(1)" % ct)
    # The header's second line: "cwd: … · started … · permissions: ask", in segments.
    seg = header(child, 1).split(" · ")
    assert seg[0] == "cwd: " + os.getcwd() and seg[-1] == "permissions: ask", seg
    assert len(seg) == 3 and seg[1].startswith("started ") and seg[1].endswith(" +05:30"), seg
    # The second task of this directory waits for the first (concurrency = "queue").
    assert child.lua("return %s.start('two')" % ct) == 2
    child.lua("%s.open(2)" % ct)
    child.wait("(__lines(2)[2] or ''):find('queued', 1, true) ~= nil", timeout=10)
    waiting = header(child, 2).split(" · ")
    assert len(waiting) == 3 and waiting[1].startswith("queued ") and waiting[1].endswith(" +05:30")
    # Not a wait for an event: the queue time and the start time must differ by more than a
    # second to be shown apart.
    time.sleep(1.2)
    child.lua("%s.cancel(1)" % ct)
    child.wait("__event('ClaudeTaskDone', 2) ~= nil", timeout=30)
    child.wait("(__lines(2)[2] or ''):find('started', 1, true) ~= nil", timeout=10)
    both = header(child, 2).split(" · ")
    assert both[:2] == waiting[:2] and both[3:] == waiting[2:], (waiting, both)
    # The same day and offset as the queue time: the time only.
    assert re.fullmatch(r"started \d\d:\d\d:\d\d", both[2]), both


# ---------------------------------------------------------------------------------- item 11


def test_23_11_the_model_reads_as_people_name_it(child, real):
    real(model="claude-opus-4-8[1m]")
    child.nvim.command("ClaudeTask hello")
    child.wait("__event('ClaudeTaskDone', 1) ~= nil", timeout=30)
    child.wait("__has_line(1, '^✓ done')", timeout=10)
    lines = child.lua("return __lines(1)")
    assert lines[2] == "model: claude-opus-4-8 (1M context)", lines[:6]
    assert "model: claude-opus-4-8 (1M context) · permission: acceptEdits" in lines
    assert not [l for l in lines if "[1m]" in l]


# ---------------------------------------------------------------------------------- item 12


def test_23_12_the_range_s_context_is_in_the_header(child, real):
    real()
    os.makedirs("src")
    with open("src/sample.lua", "w") as f:
        f.write("local a = 1\nlocal b = 2\nlocal c = 3\nlocal d = 4\nreturn a\n")
    child.nvim.command("edit src/sample.lua")
    child.nvim.command("2,4ClaudeTask explain this")
    child.wait("__event('ClaudeTaskDone', 1) ~= nil", timeout=30)
    assert child.lua("return __lines(1)")[2] == "context: src/sample.lua:2-4"
    rec = child.lua("return require('claude-tasks').get(1)")
    assert rec["context"] == ["src/sample.lua:2-4"]
    # One line: "file:line".
    child.nvim.command("edit src/sample.lua")
    child.nvim.command("3ClaudeTask and this")
    child.wait("__event('ClaudeTaskDone', 2) ~= nil", timeout=30)
    assert child.lua("return __lines(2)")[2] == "context: src/sample.lua:3"


# ---------------------------------------------------------------------------------- item 24


RECORD = """
local runs, cost = ...
local t = {
  schema = 1, id = 4, name = 'fix it', cwd = vim.fn.getcwd(), status = 'completed',
  session_id = 's', created_at_ms = 1000, cost_usd = cost, num_turns = 3,
  duration_ms = 50000, options = { cmd = { 'claude' }, permission_mode = 'acceptEdits' },
  runs = runs,
}
local msg, level = require('claude-tasks.events').message(t)
return { msg, level }
"""


def test_23_24_the_notification_says_which_cost_is_the_run_s(child):
    one = [{"n": 1, "status": "completed", "duration_ms": 50000, "cost_usd": 0.0312}]
    msg, level = child.lua(RECORD, one, 0.0312)
    assert msg == "claude-tasks: #4 fix it — done in 50.0s · $0.0312" and level == INFO
    two = [
        {"n": 1, "status": "completed", "duration_ms": 45900, "cost_usd": 0.0212},
        {"n": 2, "status": "completed", "duration_ms": 4100, "cost_usd": 0.01},
    ]
    msg, level = child.lua(RECORD, two, 0.0312)
    # The run's time and cost, as its footer says, and the task's total apart.
    assert msg == ("claude-tasks: #4 fix it — run 2 done in 4.1s · $0.0100 this run · "
                   "$0.0312 task total (2 runs)"), msg


# ---------------------------------------------------------------------------------- item 26


def test_23_26_dispose_removes_the_export_and_an_empty_folder(child, real):
    real(export_markdown=True)
    child.nvim.command("ClaudeTask export me")
    child.wait("__event('ClaudeTaskDone', 1) ~= nil", timeout=30)
    folder = os.path.join(os.getcwd(), ".claude-tasks")
    export = os.path.join(folder, "task-1-output.md")
    assert os.path.isfile(export)
    assert child.lua("return { require('claude-tasks').dispose(1) }") == [True]
    assert not os.path.exists(export) and not os.path.exists(folder)


def test_23_02_the_modes_are_those_the_pinned_clis_document(child):
    """The lists in config.lua are the union of the pinned CLIs' `--help` choices (saved in
    tests/fixtures/claude-cli-<version>/help.txt): a new pin that documents another mode fails
    here until config.lua knows it."""
    documented = set()
    for d in sorted(os.listdir(FIXTURES)):
        path = os.path.join(FIXTURES, d, "help.txt")
        if not os.path.isfile(path):
            continue
        text = open(path, encoding="utf-8").read()
        m = re.search(r"--permission-mode <mode>.*?\(choices: ([^)]*)\)", text, re.S)
        assert m, path
        documented |= set(re.findall(r'"([^"]+)"', m.group(1)))
    known = child.lua("local c = require('claude-tasks.config');"
                      " return vim.list_extend(vim.deepcopy(c.PERMISSION_MODES),"
                      " c.PERMISSION_MODES_NEWER)")
    assert documented and set(known) == documented
