"""Loading: commands exist without setup(), nothing heavy is required at startup, and options
are validated."""
import pytest


def loaded_modules(child):
    return child.lua(
        """
        local out = {}
        for name in pairs(package.loaded) do
          if name:match("^claude%-tasks") or name:match("^lualine%.components%.claude") then
            out[#out + 1] = name
          end
        end
        table.sort(out)
        return out
        """
    )


def test_commands_defined_without_setup_or_modules(child):
    cmds = child.nvim.api.get_commands({})
    assert "ClaudeTask" in cmds and "ClaudeTasks" in cmds
    assert cmds["ClaudeTask"]["nargs"] == "*"
    assert cmds["ClaudeTask"]["range"] != ""
    assert cmds["ClaudeTasks"]["nargs"] == "*"
    assert child.lua("return vim.g.loaded_claude_tasks") == 1
    assert loaded_modules(child) == []
    # The BufReadCmd for claude-tasks:// is there too, still without loading anything.
    au = child.nvim.api.get_autocmds({"event": "BufReadCmd", "group": "claude-tasks"})
    assert au and au[0]["pattern"] == "claude-tasks://*"


def test_sourcing_twice_is_harmless(child):
    child.lua("vim.cmd('runtime! plugin/claude-tasks.lua')")
    assert loaded_modules(child) == []


def test_completion_loads_only_what_it_needs(child):
    assert child.lua("return vim.fn.getcompletion('ClaudeTasks ', 'cmdline')") == [
        "open",
        "cancel",
        "resume",
        "say",
        "interrupt",
        "tui",
        "dispose",
        "log",
        "list",
        "pick",
        "changes",
        "diff",
        "revert",
        "apply",
        "discard",
        "allow",
        "always",
        "deny",
        "rules",
    ]
    assert child.lua("return vim.fn.getcompletion('ClaudeTasks ca', 'cmdline')") == ["cancel"]
    assert child.lua("return vim.fn.getcompletion('ClaudeTasks res', 'cmdline')") == ["resume"]
    assert "claude-tasks.backend" not in loaded_modules(child) or not child.lua(
        "return require('claude-tasks.backend').running()"
    )


def test_require_does_not_start_a_backend(child):
    child.lua("require('claude-tasks'); require('claude-tasks').setup({})")
    assert child.lua("return require('claude-tasks.backend').running()") is False
    assert child.lua("return require('claude-tasks').statusline()") == ""


BAD_OPTIONS = [
    ("{ cmd = 1 }", "'cmd' must be a non-empty string or a non-empty list of strings; got 1"),
    ("{ cmd = {} }", "'cmd' must be a non-empty string or a non-empty list of strings"),
    ("{ cmd = { 'claude', 2 } }", "'cmd' must be"),
    ("{ args = 'x' }", "'args' must be a list of strings; got \"x\""),
    ("{ args = { 1 } }", "'args' must be a list of strings"),
    ("{ model = 3 }", "'model' must be a non-empty string or nil; got 3"),
    ("{ model = '' }", "'model' must be a non-empty string or nil; got \"\""),
    ("{ permission_mode = '' }", "'permission_mode' must be one of acceptEdits, auto,"),
    ("{ permission_mode = 'accept edits' }", "(or a newer CLI's mode, a single word)"),
    ("{ permission_mode = '--yolo' }", "'permission_mode' must be one of"),
    ("{ allowed_tools = { x = 1 } }", "'allowed_tools' must be a list of tool rules"),
    ("{ allowed_tools = { 'Bash(' } }", "'allowed_tools' must be a list of tool rules"),
    ("{ permissions = 'yes' }", "'permissions' must be one of \"ask\", \"deny\"; got \"yes\""),
    (
        "{ open = 'bottom' }",
        "claude-tasks: option 'open' must be one of \"split\", \"vsplit\", \"tab\", \"float\", "
        "false; got \"bottom\"",
    ),
    ("{ open = true }", "'open' must be one of"),
    ("{ notify = 'yes' }", "'notify' must be a boolean; got \"yes\""),
    ("{ filetype = '' }", "'filetype' must be a non-empty string; got \"\""),
    ("{ filetype = false }", "'filetype' must be a non-empty string; got false"),
    ("{ concurrency = 'serial' }", "'concurrency' must be one of \"queue\", \"reject\", \"parallel\""),
    ("{ max_running = 0 }", "'max_running' must be a positive integer; got 0"),
    ("{ max_running = 1.5 }", "'max_running' must be a positive integer; got 1.5"),
    ("{ on_exit = 'kill' }", "'on_exit' must be one of \"cancel\", \"detach\""),
    ("{ isolation = 'full' }", "'isolation' must be one of \"none\", \"worktree\"; got \"full\""),
    ("{ branch_prefix = 'a b/' }", "'branch_prefix' must be a non-empty string without spaces"),
    ("{ branch_prefix = '' }", "'branch_prefix' must be a non-empty string without spaces"),
    ("{ apply = 'push' }", "'apply' must be one of \"files\", \"commit\"; got \"push\""),
    ("{ cancel_grace_ms = -1 }", "'cancel_grace_ms' must be a non-negative integer; got -1"),
    ("{ nice = 20 }", "'nice' must be an integer from 0 to 19; got 20"),
    ("{ nice = -1 }", "'nice' must be an integer from 0 to 19; got -1"),
    ("{ state_dir = 1 }", "'state_dir' must be a non-empty string"),
    ("{ log_file = false }", "'log_file' must be a non-empty string"),
    ("{ binary = {} }", "'binary' must be a non-empty string"),
    ("{ keep = -2 }", "'keep' must be a non-negative integer"),
    ("{ export_markdown = 1 }", "'export_markdown' must be a boolean; got 1"),
    ("{ statusline = '✻' }", "'statusline' must be a table with keys icon, queued_icon, waiting_icon"),
    ("{ statusline = { icon = 1 } }", "'statusline.icon' must be a string; got 1"),
    ("{ statusline = { queued_icon = false } }", "'statusline.queued_icon' must be a string"),
    ("{ opne = 'split' }", "unknown option 'opne' (did you mean 'open'?)"),
    ("{ statusline = { icn = 'x' } }", "unknown option 'statusline.icn'"),
    ("'split'", "setup() expects a table of options"),
]


@pytest.mark.parametrize("opts,expected", BAD_OPTIONS, ids=[o for o, _ in BAD_OPTIONS])
def test_wrong_option_is_an_error_naming_the_key(child, opts, expected):
    ok, err = child.lua(
        "local ok, err = pcall(require('claude-tasks').setup, %s); return { ok, err }" % opts
    )
    assert ok is False
    assert err.startswith("claude-tasks: ")
    assert expected in err


def test_wrong_option_changes_nothing(child):
    child.lua("require('claude-tasks').setup({ open = 'float' })")
    child.lua("pcall(require('claude-tasks').setup, { open = 'vsplit', notify = 'x' })")
    assert child.lua("return require('claude-tasks.config').get().open") == "float"


def test_valid_options_apply_over_defaults(child):
    child.lua(
        """
        require('claude-tasks').setup({
          cmd = { 'claude', '--debug' }, args = { '--x' }, model = 'sonnet', open = false,
          notify = false, concurrency = 'parallel', max_running = 2, on_exit = 'detach',
          cancel_grace_ms = 0, state_dir = '/tmp/st', log_file = '/tmp/l.log', binary = '/bin/true',
          keep = 0, export_markdown = true, statusline = { icon = 'C' },
          permission_mode = 'plan', allowed_tools = { 'Bash(git:*)' },
        })
        """
    )
    o = child.lua("return require('claude-tasks.config').get()")
    assert o["open"] is False and o["max_running"] == 2 and o["statusline"] == {
        "icon": "C",
        "queued_icon": "⏳",
        "waiting_icon": "?",
    }
    # A second setup() starts from the defaults again.
    child.lua("require('claude-tasks').setup({ notify = false })")
    o = child.lua("return require('claude-tasks.config').get()")
    assert o["open"] == "split" and o["notify"] is False and o["keep"] == 100


def test_defaults(child):
    o = child.lua("return require('claude-tasks.config').get()")
    assert o["cmd"] == "claude"
    assert o["permission_mode"] == "acceptEdits"
    assert o["open"] == "split"
    assert o["filetype"] == "claude-tasks"
    assert o["concurrency"] == "queue"
    assert o["max_running"] == 4
    assert o["on_exit"] == "cancel"
    assert o["cancel_grace_ms"] == 2000
    assert o["nice"] == 10
    assert o["keep"] == 100
    assert o["statusline"] == {"icon": "✻", "queued_icon": "⏳", "waiting_icon": "?"}
    assert o["permissions"] == "ask"
    state_dir = child.lua("return require('claude-tasks.config').state_dir()")
    assert state_dir == child.lua("return vim.fn.stdpath('state')") + "/claude-tasks"
    log = child.lua("return require('claude-tasks.config').log_file()")
    assert log == child.lua("return vim.fn.stdpath('log')") + "/claude-tasks.log"


def test_start_option_validation(child):
    child.stub_backend()
    r = child.lua("local id, err = require('claude-tasks').start('x', { open = 'bottom' }); return { id = id, err = err }")
    assert "id" not in r
    assert "start() option 'open' must be one of" in r["err"]
    r = child.lua("local id, err = require('claude-tasks').start('x', { nme = 'x' }); return { id = id, err = err }")
    assert "id" not in r and "unknown" in r["err"]
    assert child.calls("start") == []


def test_prompt_completion_offers_files_without_expanding(child):
    open("notes.txt", "w").close()
    assert child.lua("return vim.fn.getcompletion('ClaudeTask read no', 'cmdline')") == [
        "notes.txt"
    ]


def test_startup_cost(nvim_bin, tmp_path):
    """Sourcing plugin/claude-tasks.lua at startup costs (far) less than a millisecond or two."""
    import os
    import subprocess

    if not os.path.exists(nvim_bin):
        import pytest

        pytest.skip("no Neovim at %s" % nvim_bin)
    from conftest import ROOT

    log = tmp_path / "startuptime.log"
    best = None
    for _ in range(3):
        if log.exists():
            log.unlink()
        subprocess.run(
            [nvim_bin, "--headless", "--clean", "--cmd", "set rtp^=" + ROOT,
             "--startuptime", str(log), "+qa!"],
            check=True,
            timeout=30,
            env=dict(os.environ, XDG_STATE_HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path)),
        )
        lines = [l for l in log.read_text().splitlines() if "plugin/claude-tasks.lua" in l]
        assert len(lines) == 1, log.read_text()
        # "clock  self+sourced  self:  sourcing <file>"
        self_ms = float(lines[0].split()[1])
        best = self_ms if best is None else min(best, self_ms)
    assert best < 2.0, best
