"""The prompt line of the output buffer (issue 25, item 3) beyond test_live.py: keys remapped
by `prompt.keys` (the new ones work, the defaults they replace do nothing), and a message sent
from the window to a running task (said at once, pending until its answer) and to a finished
task whose CLI is gone (`keep_alive_ms = 0`: a cold resume). The real backend and fake-claude,
a UI attached, keys typed as a terminal UI sends them."""
from test_live import done, in_prompt, task, typed, ui  # noqa: F401 (ui: the fixture)


def prompt_open(child):
    return child.lua("return vim.b.claude_task_prompt ~= nil")


def runs(child):
    return len(task(child)["runs"])


def test_25_03_remapped_prompt_keys_replace_the_defaults(child, ui):  # noqa: F811
    ui(prompt={"keys": {"open": "s", "send": "S", "send_insert": "<C-j>", "close": "Q"}})
    child.lua("require('claude-tasks').start('first', { open = 'split' })")
    done(child, 1)
    out = child.lua("return vim.api.nvim_get_current_buf()")
    # The default open keys no longer open the window (`i` is Vim's own again).
    typed(child, "Gi<Esc>")
    child.wait("vim.api.nvim_get_mode().mode == 'n'")
    child.flush()
    assert not prompt_open(child)
    assert child.lua("return vim.api.nvim_get_current_buf()") == out
    # The new one does, and says the new keys in its bar.
    typed(child, "Gs")
    in_prompt(child)
    bar = child.lua("return vim.wo.winbar")
    assert "<C-j> send" in bar and "Q close" in bar and "<C-s>" not in bar, bar
    # <Esc><Esc> and q do not close it any more, <CR> in normal mode does not send.
    typed(child, "not yet<Esc>")
    child.wait("vim.api.nvim_get_mode().mode == 'n'")
    typed(child, "<Esc><CR>")
    child.flush()
    assert prompt_open(child)
    assert child.lua("return __text()") == "not yet"
    assert runs(child) == 1
    # Q closes it, nothing sent.
    typed(child, "Q")
    child.wait("vim.b.claude_task_prompt == nil", what="the window closed")
    assert child.lua("return vim.api.nvim_get_current_buf()") == out
    assert runs(child) == 1
    # S sends in normal mode.
    typed(child, "Gssecond<Esc>")
    child.wait("vim.api.nvim_get_mode().mode == 'n' and vim.b.claude_task_prompt ~= nil")
    typed(child, "S")
    done(child, 2)
    child.wait("__has_line(%d, '── ↻ follow-up #2 (live): second ──')" % out)
    assert not prompt_open(child)
    # <C-s> in insert mode does not send (it is typed, as Vim types an unmapped key); <C-j>
    # does.
    typed(child, "Gsthird<C-s>")
    in_prompt(child)
    child.flush()
    assert prompt_open(child) and runs(child) == 2
    typed(child, "<C-u>third<C-j>")
    done(child, 3)
    child.wait("__has_line(%d, '── ↻ follow-up #3 (live): third ──')" % out)
    assert not prompt_open(child)


def test_25_03_the_prompt_line_says_it_to_a_running_task_at_once(child, ui):  # noqa: F811
    ui("--fake-lines=60", "--fake-delay-ms=40")
    child.lua("require('claude-tasks').start('stream', { open = 'split' })")
    out = child.lua("return vim.api.nvim_get_current_buf()")
    child.wait("__text(%d):find('line 000002', 1, true) ~= nil" % out, timeout=30)
    typed(child, "i")
    in_prompt(child)
    assert "said now" in child.lua("return vim.wo.winbar")
    typed(child, "hold on<C-s>")
    # Sent while the run goes on: shown pending in the output at once.
    child.wait("vim.b.claude_task_prompt == nil", what="the window closed")
    child.wait("__has_line(%d, '› hold on · waiting')" % out, what="the pending mark")
    assert task(child)["status"] == "running"
    assert child.lua("return __count('ClaudeTaskDone')") == 0
    done(child, 1)
    child.wait("__has_line(%d, '› hold on · a turn of its own')" % out)
    assert "· waiting" not in child.lua("return __text(...)", out)
    assert runs(child) == 1


def test_25_03_the_prompt_line_resumes_a_finished_task_whose_cli_is_gone(child, ui):  # noqa: F811
    ui(keep_alive_ms=0)
    child.lua("require('claude-tasks').start('first', { open = 'split' })")
    done(child, 1)
    out = child.lua("return vim.api.nvim_get_current_buf()")
    # Its CLI ended with its run: nothing is kept for a follow-up.
    assert task(child).get("live") is None and task(child).get("process") is None
    typed(child, "Gi")
    in_prompt(child)
    assert "resumes its session" in child.lua("return vim.wo.winbar")
    typed(child, "and again<C-s>")
    done(child, 2)
    child.wait("__has_line(%d, '── ↻ follow-up #2 (resumed): and again ──')" % out)
    assert task(child)["runs"][1]["via"] == "resumed"
    assert not prompt_open(child)
