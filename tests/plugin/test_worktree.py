"""Worktree tasks through the commands and the Lua API, with the real backend and the fake CLI
(skipped when they are not built) in a git repository: `:ClaudeTask!`, the options, the review
(`:ClaudeTasks diff`), apply (clean, conflicting, as a commit), discard and dispose with their
questions, the picker. The CLI runs through `sh -c`, sourcing a script the test writes, so that
it edits files in its directory first as the CLI's tools would.

Every test compares the user's index, HEAD, branches and stash before and after
(tests/gitstate.py).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gitstate import UserState, git, make_repo, numbered  # noqa: E402

WARN = 3

EVENTS = """
_G.__ev = {}
vim.api.nvim_create_autocmd('User', { pattern = 'ClaudeTaskDone', callback = function(a)
  table.insert(_G.__ev, a.data)
end })
function _G.__done(id)
  for _, d in ipairs(_G.__ev) do
    if d.id == id then return d end
  end
end
_G.__selects = {}
_G.__choose = {}
vim.ui.select = function(items, opts, cb)
  local shown = {}
  for i, it in ipairs(items) do shown[i] = opts.format_item and opts.format_item(it) or it end
  table.insert(_G.__selects, { prompt = opts.prompt, kind = opts.kind, items = shown })
  local want = table.remove(_G.__choose, 1)
  for i, s in ipairs(shown) do
    if s == want then return cb(items[i], i) end
  end
  cb(nil, nil)
end
"""


class Project:
    def __init__(self, child, root, script):
        self.child = child
        self.root = root
        self.script = script

    def task_does(self, text):
        """What the CLI does in its directory before it answers (sh), for tasks started next."""
        self.script.write_text(text + "\n")

    def start(self, prompt="edit", **opts):
        return self.child.lua(
            "local id, err = require('claude-tasks').start(...); return id or err", prompt, opts
        )

    def wait_done(self, id_):
        self.child.wait("__done(%d)" % id_, timeout=30, what="task #%d's end" % id_)
        data = self.child.lua("return __done(...)", id_)
        assert data["status"] == "completed", data
        return data

    def get(self, id_):
        return self.child.lua("return require('claude-tasks').get(...)", id_)

    def read(self, rel):
        return (self.root / rel).read_text()

    def notes(self):
        self.child.flush()
        return self.child.notes()


@pytest.fixture
def project(child, real_backend, tmp_path):
    bin_, fake = real_backend
    root = make_repo(os.getcwd())
    script = tmp_path / "task.sh"
    script.write_text(":\n")
    cmd = ["sh", "-c", '. "%s"\nexec "$@"' % script, "sh", fake]
    child.lua(
        "local bin, cmd = ...; require('claude-tasks').setup({ binary = bin, cmd = cmd, open = false })",
        bin_,
        cmd,
    )
    child.lua(EVENTS)
    return Project(child, root, script)


def edit_line(n, text):
    return "sed -i 's/^line %d$/%s/' src/lib.rs" % (n, text)


def test_bang_runs_in_a_worktree_and_diff_and_apply_bring_it_back(child, project):
    project.task_does(edit_line(2, "task 2"))
    before = UserState.capture(project.root)
    child.lua("require('claude-tasks').setup(vim.tbl_extend('force', require('claude-tasks.config').get(), { open = 'split', focus = true }))")
    child.nvim.command("ClaudeTask! change line two")
    assert child.lua("return vim.fn.bufname()") == "claude #1 change line two"
    project.wait_done(1)
    rec = project.get(1)
    wt = rec["worktree"]
    assert wt["branch"] == "claude-tasks/1" and wt["base"], rec
    assert (os.path.join(wt["path"], "src", "lib.rs"))
    with open(os.path.join(wt["path"], "src/lib.rs")) as f:
        assert "task 2" in f.read()
    assert project.read("src/lib.rs") == numbered(20), "the project is untouched"
    # The header names the worktree.
    child.wait("vim.api.nvim_buf_get_lines(0, 2, 3, false)[1] ~= nil")
    header = child.lua("return vim.api.nvim_buf_get_lines(0, 0, 3, false)")
    assert header[2] == "worktree: %s · branch claude-tasks/1" % wt["path"], header
    # list() and the picker show the branch.
    child.lua("_G.__choose = {}")
    child.nvim.command("ClaudeTasks")
    items = child.lua("return _G.__selects[#_G.__selects].items")
    assert items[0].endswith(" · ⎇ claude-tasks/1"), items

    # The review: a diff buffer, and the hunks in the quickfix list.
    child.nvim.command("ClaudeTasks diff 1")
    assert child.lua("return vim.api.nvim_buf_get_name(0)") == "claude-tasks://1/diff"
    assert child.lua("return vim.bo.filetype") == "diff"
    lines = child.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)")
    assert "+task 2" in lines and "-line 2" in lines, lines
    qf = child.lua(
        "local l = vim.fn.getqflist({ title = 1, items = 1 }); "
        "return { title = l.title, items = vim.tbl_map(function(i) return "
        "{ vim.fn.bufname(i.bufnr), i.lnum, i.text } end, l.items) }"
    )
    assert qf["title"] == "claude-tasks #1: worktree changes (claude-tasks/1)"
    assert qf["items"] == [[os.path.join(wt["path"], "src/lib.rs"), 2, "+1 −1"]]
    # <CR> on the added line opens the worktree's file there.
    row = lines.index("+task 2") + 1
    child.lua("vim.api.nvim_win_set_cursor(0, { ..., 0 })", row)
    child.nvim.feedkeys(child.nvim.replace_termcodes("<CR>", True, False, True), "x", False)
    assert child.lua("return vim.api.nvim_buf_get_name(0)") == os.path.join(wt["path"], "src/lib.rs")
    assert child.lua("return vim.api.nvim_win_get_cursor(0)[1]") == 2
    assert UserState.capture(project.root).without_task_branches() == before

    # A buffer of the file, unmodified, is reloaded by apply.
    child.nvim.command("edit src/lib.rs")
    child.nvim.command("ClaudeTasks apply 1")
    assert project.read("src/lib.rs") == numbered(20).replace("line 2\n", "task 2\n")
    assert child.lua("return vim.api.nvim_buf_get_lines(0, 1, 2, false)[1]") == "task 2"
    notes = [n for n in project.notes() if "applied #1" in n["msg"]]
    assert len(notes) == 1 and "applied #1: 1 file updated ·" in notes[0]["msg"], project.notes()
    assert "discard 1" in notes[0]["msg"]
    before.without_task_branches().assert_same(
        UserState.capture(project.root).without_task_branches(), ("src/lib.rs",)
    )
    # Nothing new: said so.
    child.nvim.command("ClaudeTasks apply 1")
    assert any("nothing new to apply" in n["msg"] for n in project.notes())


def test_a_conflicting_apply_leaves_markers_and_opens_the_quickfix_list(child, project):
    project.task_does(edit_line(4, "task four"))
    assert project.start(isolation="worktree") == 1
    project.wait_done(1)
    (project.root / "src/lib.rs").write_text(numbered(20).replace("line 4\n", "user four\n"))
    child.nvim.command("edit src/lib.rs")
    child.nvim.command("ClaudeTasks apply 1")
    text = project.read("src/lib.rs")
    assert "<<<<<<< yours\nuser four\n=======\ntask four\n>>>>>>> task #1\n" in text, text
    qf = child.lua(
        "local l = vim.fn.getqflist({ title = 1, items = 1 }); "
        "return { title = l.title, n = #l.items, lnum = l.items[1].lnum, "
        "file = vim.fn.bufname(l.items[1].bufnr) }"
    )
    assert qf["title"] == "claude-tasks #1: conflicts of apply"
    assert qf["n"] == 1 and qf["lnum"] == 4
    assert os.path.realpath(qf["file"]) == os.path.realpath(project.root / "src/lib.rs")
    assert child.lua("return vim.fn.getqflist({ winid = 0 }).winid") != 0, "opened"
    note = [n for n in project.notes() if "applied #1" in n["msg"]][0]
    assert note["level"] == WARN and "1 conflict left" in note["msg"], note


def test_options_isolation_branch_prefix_and_apply_commit(child, project):
    for bad, key in [
        ("{ isolation = 'sideways' }", "isolation"),
        ("{ branch_prefix = '' }", "branch_prefix"),
        ("{ apply = 'push' }", "apply"),
    ]:
        err = child.lua("local ok, e = pcall(require('claude-tasks').setup, %s); return e" % bad)
        assert "option '%s'" % key in err, err
    err = project.start(isolation="bogus")
    assert "start() option 'isolation' must be one of" in err, err
    # The options apply to :ClaudeTask without a bang.
    child.lua(
        "require('claude-tasks').setup(vim.tbl_extend('force', require('claude-tasks.config').get(),"
        " { isolation = 'worktree', branch_prefix = 'ai/', apply = 'commit' }))"
    )
    project.task_does(edit_line(9, "task 9"))
    before = UserState.capture(project.root)
    child.nvim.command("ClaudeTask change nine")
    project.wait_done(1)
    assert project.get(1)["worktree"]["branch"] == "ai/1"
    # Per task, "none" wins over the option.
    assert project.start(isolation="none") == 2
    project.wait_done(2)
    assert project.get(2).get("worktree") is None
    head = git(project.root, "rev-parse", "HEAD").strip()
    child.nvim.command("ClaudeTasks apply 1")
    assert git(project.root, "rev-parse", "HEAD^").strip() == head
    assert git(project.root, "log", "-1", "--format=%s").strip() == "change nine"
    assert git(project.root, "status", "--porcelain") == ""
    assert any("committed " in n["msg"] for n in project.notes()), project.notes()
    # The commit moved main and set the index entry of the committed file; nothing else.
    after = UserState.capture(project.root)
    assert after.stash == before.stash and after.head_file == before.head_file
    assert [b for b in after.branches if "heads/main" not in b and "ai/" not in b] == [
        b for b in before.branches if "heads/main" not in b
    ]


def test_discard_asks_first_and_the_record_survives(child, project):
    project.task_does(edit_line(3, "task 3"))
    before = UserState.capture(project.root)
    project.start(isolation="worktree")
    project.wait_done(1)
    path = project.get(1)["worktree"]["path"]
    child.lua("_G.__choose = { 'Keep it' }")
    child.nvim.command("ClaudeTasks discard 1")
    sel = child.lua("return _G.__selects[#_G.__selects]")
    assert sel["prompt"] == (
        "Discard the worktree of #1 (branch claude-tasks/1, 1 changed file not applied "
        "(src/lib.rs))?"
    ), sel
    assert sel["items"] == ["Discard", "Keep it"]
    assert os.path.isdir(path)
    child.lua("_G.__choose = { 'Discard' }")
    child.nvim.command("ClaudeTasks discard 1")
    assert not os.path.exists(path)
    assert git(project.root, "branch", "--list", "claude-tasks/*") == ""
    rec = project.get(1)
    assert rec["worktree"]["discarded_at_ms"], rec
    items = child.lua(
        "return vim.tbl_map(function(t) return require('claude-tasks.format').entry(t) end,"
        " require('claude-tasks').list())"
    )
    assert items[0].endswith("⎇ claude-tasks/1 (discarded)"), items
    assert any("discarded the worktree of #1" in n["msg"] for n in project.notes())
    before.assert_same(UserState.capture(project.root))
    # Nothing to discard or apply any more: the completion no longer offers it.
    assert child.lua("return vim.fn.getcompletion('ClaudeTasks apply ', 'cmdline')") == []


def test_dispose_asks_first_when_changes_were_not_applied(child, project):
    project.task_does(edit_line(5, "task 5"))
    before = UserState.capture(project.root)
    for _ in range(2):
        project.start(isolation="worktree")
    project.wait_done(1)
    project.wait_done(2)
    paths = [project.get(i)["worktree"]["path"] for i in (1, 2)]
    child.lua("_G.__choose = { 'Keep it' }")
    child.nvim.command("ClaudeTasks dispose 1")
    sel = child.lua("return _G.__selects[#_G.__selects]")
    assert sel["prompt"] == (
        "Dispose of #1? Its worktree has 1 changed file not applied (src/lib.rs): "
        "they will be lost."
    ), sel
    assert os.path.isdir(paths[0]) and project.get(1)["id"] == 1
    child.lua("_G.__choose = { 'Dispose' }")
    child.nvim.command("ClaudeTasks dispose 1")
    assert not os.path.exists(paths[0])
    assert "no task #1" in child.lua("return select(2, require('claude-tasks').get(1))")
    # Applied: nothing would be lost, only the plain question of any dispose (issue 23, item
    # 20); disposed with its worktree.
    child.nvim.command("ClaudeTasks apply 2")
    child.lua("_G.__choose = { 'Dispose' }")
    child.nvim.command("ClaudeTasks dispose 2")
    sel = child.lua("return _G.__selects[#_G.__selects]")
    assert sel["prompt"].startswith("Dispose of #2 "), sel
    assert not os.path.exists(paths[1])
    assert git(project.root, "branch", "--list", "claude-tasks/*") == ""
    before.assert_same(UserState.capture(project.root), ("src/lib.rs",))


def test_the_picker_offers_diff_apply_and_discard(child, project):
    before = UserState.capture(project.root)
    project.start(isolation="worktree")
    project.wait_done(1)
    project.start()
    project.wait_done(2)
    child.lua("_G.__choose = { 2 }")
    child.lua(
        "local t = require('claude-tasks').get(1); require('claude-tasks.picker').act(t)"
    )
    sel = child.lua("return _G.__selects[#_G.__selects]")
    # Both tasks' Claude idles, kept alive for a follow-up.
    live = ["Follow up (its Claude is live)", "Open Claude's TUI on its session",
            "Close its idle Claude"]
    assert sel["items"] == [
        "Open output",
        *live,
        "Transcript",
        "Copy session id",
        "Diff of the worktree",
        "Apply to the project",
        "Discard the worktree",
        "Dispose",
    ], sel
    child.lua("require('claude-tasks.picker').act(require('claude-tasks').get(2))")
    sel = child.lua("return _G.__selects[#_G.__selects]")
    assert sel["items"] == ["Open output", *live, "Transcript", "Copy session id", "Dispose"]
    assert child.lua("return vim.fn.getcompletion('ClaudeTasks apply ', 'cmdline')") == [
        "1 " + child.lua("return require('claude-tasks').get(1).name")]
    # diff of a task run in place is its run's changes (test_changes.py): here, none.
    child.nvim.command("ClaudeTasks diff 2")
    assert any("run 1 of #2 changed no file" in n["msg"] for n in project.notes()), project.notes()
    before.without_task_branches().assert_same(
        UserState.capture(project.root).without_task_branches()
    )


def test_outside_a_git_work_tree_a_worktree_task_is_a_clear_error(child, project):
    plain = project.root / "not-git"
    plain.mkdir()
    # (a directory inside the repository is in a work tree: use one outside)
    outside = project.root.parent / "plain"
    outside.mkdir()
    err = project.start(isolation="worktree", cwd=str(outside))
    assert "cannot run a task in a worktree" in err and "is not in a git work tree" in err, err
    child.nvim.command("cd " + str(outside))
    child.nvim.command("ClaudeTask! anything")
    notes = project.notes()
    assert "is not in a git work tree" in notes[-1]["msg"], notes
    assert child.lua("return require('claude-tasks').list()") == []
    assert child.lua("return require('claude-tasks').statusline()") == ""


def test_after_a_backend_restart_the_worktree_task_is_listed_and_applied(child, project):
    project.task_does(edit_line(8, "task 8"))
    before = UserState.capture(project.root)
    project.start(isolation="worktree")
    project.wait_done(1)
    path = project.get(1)["worktree"]["path"]
    child.lua("require('claude-tasks.backend').stop()")
    # A new backend (the next request starts it) finds the task, its worktree and branch.
    items = child.lua(
        "return vim.tbl_map(function(t) return require('claude-tasks.format').entry(t) end,"
        " require('claude-tasks').list())"
    )
    assert items[0].endswith("⎇ claude-tasks/1"), items
    assert os.path.isdir(path)
    child.nvim.command("ClaudeTasks apply 1")
    assert project.read("src/lib.rs") == numbered(20).replace("line 8\n", "task 8\n")
    before.without_task_branches().assert_same(
        UserState.capture(project.root).without_task_branches(), ("src/lib.rs",)
    )
