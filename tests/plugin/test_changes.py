"""What a task changed, in the editor, with the real backend and fake-claude making real edits
(its edit tools and Bash): the quickfix list, the review (the diff buffer, <CR>, a file side by
side in diff mode), files_changed in the Done event, buffers reloaded and the modified-buffer
warning, "also edited by you", revert (clean, a later edit kept, a conflict, deleted and created
files, the confirmation), the fallback outside git, a detached HEAD, an empty repository, a
submodule, names with spaces and non-ASCII. Every test that uses git compares the user's index,
HEAD, branches and stash before and after."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gitstate import UserState, git, numbered  # noqa: E402

WARN = 3

HELPERS = """
_G.__ev = {}
vim.api.nvim_create_autocmd('User', { pattern = 'ClaudeTaskDone', callback = function(a)
  table.insert(_G.__ev, a.data)
end })
function _G.__done(n) return #_G.__ev >= n end
function _G.__buf_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf or 0, 0, -1, false), '\\n')
end
-- vim.ui.select answers with the item `__choose` (an index), after noting what it was asked.
_G.__choose = 1
vim.ui.select = function(items, opts, cb)
  _G.__asked = { prompt = opts.prompt, items = items }
  cb(items[_G.__choose], _G.__choose)
end
"""


class Repo:
    """The project's work tree (a repository or not), as the user sees it."""

    def __init__(self, root):
        self.root = str(root)

    def git(self, *args, check=True):
        return git(self.root, *args, check=check)

    def init(self):
        self.git("init", "-q", "-b", "main")
        return self

    def path(self, rel):
        return os.path.join(self.root, rel)

    def write(self, rel, text):
        os.makedirs(os.path.dirname(self.path(rel)), exist_ok=True)
        with open(self.path(rel), "w", encoding="utf-8") as f:
            f.write(text)

    def read(self, rel):
        with open(self.path(rel), encoding="utf-8") as f:
            return f.read()

    def exists(self, rel):
        return os.path.lexists(self.path(rel))

    def commit_all(self, msg="commit"):
        self.git("add", "-A")
        self.git("commit", "-q", "-m", msg)

    def capture(self):
        return UserState.capture(self.root)

    def assert_same(self, before, changed=()):
        """The user's index, HEAD, branches and stash as `before`, and every file but those
        under `changed`."""
        before.assert_same(self.capture(), tuple(changed))


@pytest.fixture(autouse=True)
def gitenv(monkeypatch, tmp_path):
    """The backend's git (it inherits the child Neovim's environment) reads a configuration of
    the test's own."""
    cfg = tmp_path / "gitconfig"
    cfg.write_text("[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def ct(child, real_backend):
    """Runs tasks whose CLI makes the given tool calls (its shell commands without asking:
    test_permissions.py asks); returns the project's Repo."""
    bin_, fake = real_backend
    child.lua(
        "local bin, fake = ...; require('claude-tasks').setup({ binary = bin, cmd = { fake },"
        " open = false, permission_mode = 'bypassPermissions' })",
        bin_,
        fake,
    )
    child.lua(HELPERS)
    return Repo(os.getcwd())


def tools(*steps):
    return json.dumps(list(steps))


def edit(path, old, new):
    return {"name": "Edit", "input": {"file_path": path, "old_string": old, "new_string": new}}


def write(path, content):
    return {"name": "Write", "input": {"file_path": path, "content": content}}


def bash(command):
    return {"name": "Bash", "input": {"command": command}}


def run_task(child, steps, n=1, name="change things"):
    """Starts a task making `steps`, waits for its Done; returns the Done event's data."""
    child.lua(
        "assert(require('claude-tasks').start(..., { open = false }))",
        "%s\nfake-tools: %s" % (name, steps),
    )
    child.wait("__done(%d)" % n, timeout=30)
    child.flush()
    return child.lua("return _G.__ev[%d]" % n)


def git_repo(repo):
    repo.init()
    repo.write("a.txt", numbered(20))
    repo.write("b.txt", "bee\n")
    repo.write("gone.txt", "to be deleted\n")
    repo.write("old name.txt", "moved\n")
    repo.commit_all("first")
    return repo


def qf(child):
    return child.lua(
        """
        local l = vim.fn.getqflist({ title = 1, items = 1 })
        local out = { title = l.title, items = {} }
        for _, it in ipairs(l.items) do
          table.insert(out.items, { file = vim.fn.bufname(it.bufnr), lnum = it.lnum, text = it.text })
        end
        return out
        """
    )


def test_changes_quickfix_and_done_event(child, ct):
    git_repo(ct)
    before = ct.capture()
    data = run_task(
        child,
        tools(
            edit("a.txt", "line 3\n", "line three\n"),
            write("dir with space/ünï.txt", "hello\nwörld\n"),
            bash("rm gone.txt && mv 'old name.txt' 'new name.txt'"),
        ),
    )
    assert data["status"] == "completed", data
    files = sorted((f["path"], f["status"], f["added"], f["removed"]) for f in data["files_changed"])
    assert files == [
        ("a.txt", "modified", 1, 1),
        ("dir with space/ünï.txt", "added", 2, 0),
        ("gone.txt", "deleted", 0, 1),
        ("new name.txt", "renamed", 0, 0),
    ]
    assert any("4 files +3 −2" in n["msg"] for n in child.notes())
    child.nvim.command("ClaudeTasks changes 1")
    q = qf(child)
    assert q["title"].startswith("claude-tasks #1 run 1: change things · 4 files +3 −2"), q
    got = [(os.path.basename(i["file"]), i["lnum"], i["text"]) for i in q["items"]]
    assert ("a.txt", 3, "+1 −1") in got
    assert ("ünï.txt", 1, "+2 −0") in got
    assert ("gone.txt", 1, "deleted −1") in got
    assert ("new name.txt", 1, "renamed from old name.txt") in got
    assert child.lua("return vim.bo.buftype") == "quickfix"
    # ]q / [q: the list is the current one.
    child.nvim.command("cfirst")
    first = child.lua("return vim.fn.expand('%:t')")
    child.nvim.command("cnext")
    assert child.lua("return vim.fn.expand('%:t')") != first
    ct.assert_same(before, ("a.txt", "dir with space", "gone.txt", "old name.txt", "new name.txt"))


def test_diff_buffer_cr_and_a_file_side_by_side(child, ct):
    git_repo(ct)
    before = ct.capture()
    run_task(
        child,
        tools(edit("a.txt", "line 3\n", "line three\n"), edit("a.txt", "line 15\n", "")),
    )
    child.nvim.command("ClaudeTasks diff 1")
    assert child.lua("return vim.api.nvim_buf_get_name(0)") == "claude-tasks://1/diff"
    assert child.lua("return vim.bo.filetype") == "diff"
    text = child.lua("return __buf_text()")
    assert "-line 3\n+line three" in text
    assert text.startswith("# claude-tasks #1 run 1")
    # <CR> on the added line: the real file, at that line.
    row = child.lua("return vim.fn.search('^+line three$')")
    assert row > 0
    child.lua("vim.api.nvim_feedkeys(vim.keycode('<CR>'), 'x', false)")
    assert child.lua("return vim.fn.expand('%:t')") == "a.txt"
    assert child.lua("return vim.api.nvim_win_get_cursor(0)[1]") == 3
    # On the removed line 15: the line now in its place.
    child.nvim.command("ClaudeTasks diff 1")
    child.lua("vim.fn.search('^-line 15$')")
    child.lua("vim.api.nvim_feedkeys(vim.keycode('<CR>'), 'x', false)")
    assert child.lua("return vim.api.nvim_win_get_cursor(0)[1]") == 15
    assert child.lua("return vim.api.nvim_get_current_line()") == "line 16"

    # A file side by side: the snapshot's content beside the file, in diff mode.
    tabs = child.lua("return #vim.api.nvim_list_tabpages()")
    child.nvim.command("ClaudeTasks diff 1 a.txt")
    assert child.lua("return #vim.api.nvim_list_tabpages()") == tabs + 1
    wins = child.lua(
        "local out = {} for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do"
        " local b = vim.api.nvim_win_get_buf(w)"
        " table.insert(out, { name = vim.api.nvim_buf_get_name(b), diff = vim.wo[w].diff,"
        " text = __buf_text(b) }) end return out"
    )
    assert [w["diff"] for w in wins] == [True, True]
    assert wins[0]["name"] == "claude-tasks://1/before/a.txt"
    assert wins[0]["text"] + "\n" == numbered(20)
    assert wins[1]["name"].endswith("/a.txt")
    # `do` on the first hunk brings the old line back into the buffer.
    child.lua("vim.fn.cursor(3, 1)")
    child.nvim.command("diffget")
    assert child.lua("return vim.fn.getline(3)") == "line 3"
    assert child.lua("return vim.bo.modified") is True
    child.nvim.command("tabclose!")
    ct.assert_same(before, ("a.txt",))


def test_diff_from_a_quickfix_entry_and_of_a_deleted_file(child, ct):
    git_repo(ct)
    before = ct.capture()
    run_task(child, tools(bash("rm gone.txt"), edit("b.txt", "bee\n", "bee!\n")))
    child.nvim.command("ClaudeTasks changes 1")
    # The entry of gone.txt, then :ClaudeTasks diff from the quickfix window.
    row = child.lua(
        "for i, it in ipairs(vim.fn.getqflist()) do"
        " if vim.fn.bufname(it.bufnr):find('gone.txt', 1, true) then return i end end"
    )
    child.lua("vim.fn.cursor(%d, 1)" % row)
    child.nvim.command("ClaudeTasks diff")
    assert child.lua("return vim.api.nvim_buf_get_name(0)").endswith("/gone.txt")
    left = child.lua("return __buf_text(vim.fn.winbufnr(1))")
    assert left == "to be deleted"
    assert child.lua("return vim.wo.diff") is True
    child.nvim.command("tabclose!")
    ct.assert_same(before, ("gone.txt", "b.txt"))


def test_buffers_reload_and_a_modified_buffer_is_named(child, ct):
    git_repo(ct)
    before = ct.capture()
    child.nvim.command("edit a.txt")
    a = child.lua("return vim.api.nvim_get_current_buf()")
    child.nvim.command("edit b.txt")
    b = child.lua("return vim.api.nvim_get_current_buf()")
    child.lua("vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'my unsaved text' })")
    child.nvim.command("edit c.txt")  # not changed by the task
    child.nvim.command("buffer %d" % a)
    child.lua(
        "assert(require('claude-tasks').start(..., { open = false }))",
        "edit\nfake-tools: %s"
        % tools(edit("a.txt", "line 2\n", "line two\n"), edit("b.txt", "bee\n", "task\n")),
    )
    # The edit of a file with unsaved changes asks first (test_permissions.py); allowed here.
    child.wait("(require('claude-tasks').get(1).pending or {})[1] ~= nil", timeout=30)
    assert child.lua("return require('claude-tasks').get(1).pending[1].unsaved") == "b.txt"
    child.lua("assert(require('claude-tasks').allow(1))")
    child.wait("__done(1)", timeout=30)
    child.flush()
    assert child.lua("return vim.fn.getbufline(%d, 2)[1]" % a) == "line two"
    assert child.lua("return vim.bo[%d].modified" % a) is False
    assert child.lua("return vim.fn.getbufline(%d, 1)[1]" % b) == "my unsaved text"
    warn = [n for n in child.notes() if n["level"] == WARN and "claude-tasks: #1 changed" in n["msg"]]
    assert len(warn) == 1 and "b.txt" in warn[0]["msg"] and "a.txt" not in warn[0]["msg"], warn
    assert "unsaved changes" in warn[0]["msg"]
    ct.assert_same(before, ("a.txt", "b.txt"))


def test_a_file_saved_during_the_run_is_also_edited_by_you(child, ct):
    git_repo(ct)
    before = ct.capture()
    ct.write(".gitignore", "*.log\n")
    child.lua(
        "assert(require('claude-tasks').start(..., { open = false }))",
        "wait\nfake-tools: %s"
        % tools(bash("while [ ! -e go.log ]; do sleep 0.02; done; echo task >> a.txt")),
    )
    child.wait("require('claude-tasks').statusline() == '✻ 1'", timeout=15)
    child.nvim.command("edit b.txt")
    child.lua("vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'saved by me' })")
    child.nvim.command("write")
    ct.write("go.log", "")
    child.wait("__done(1)", timeout=30)
    data = child.lua("return _G.__ev[1]")
    by = {f["path"]: f.get("edited_by_you", False) for f in data["files_changed"]}
    assert by == {"a.txt": False, "b.txt": True}, by
    child.nvim.command("ClaudeTasks changes 1")
    texts = [i["text"] for i in qf(child)["items"] if i["file"].endswith("b.txt")]
    assert texts == ["+1 −1 (also edited by you)"]
    ct.assert_same(before, ("a.txt", "b.txt", ".gitignore", "go.log"))


def revert(child, which="1"):
    child.lua("_G.__asked = nil")
    child.nvim.command("ClaudeTasks revert " + which)
    child.flush()
    return child.lua("return _G.__asked")


def test_revert_clean_restores_deleted_and_removes_created_files(child, ct):
    git_repo(ct)
    before = ct.capture()
    run_task(
        child,
        tools(
            edit("a.txt", "line 3\n", "line three\n"),
            write("made by the task.txt", "new\n"),
            bash("rm gone.txt"),
        ),
    )
    child.nvim.command("edit a.txt")
    child.lua("require('claude-tasks').open(1, { open = 'split' })")
    out = child.lua("return vim.api.nvim_get_current_buf()")
    # Cancel first: nothing happens.
    child.lua("_G.__choose = 2")
    asked = revert(child)
    assert asked["prompt"] == "Revert run 1 of #1 change things?"
    assert asked["items"][0] == (
        "Revert 3 files: a.txt, gone.txt, made by the task.txt"
    ), asked
    assert ct.exists("made by the task.txt")
    child.lua("_G.__choose = 1")
    revert(child)
    assert ct.read("a.txt") == numbered(20)
    assert not ct.exists("made by the task.txt")
    assert ct.read("gone.txt") == "to be deleted\n"
    # The open buffer of a.txt shows the reverted file.
    assert child.lua("return vim.fn.getbufline(vim.fn.bufnr('a.txt'), 3)[1]") == "line 3"
    assert any("reverted run 1 of #1" in n["msg"] for n in child.notes())
    # The record and the output buffer say so.
    task = child.lua("return require('claude-tasks').get(1)")
    assert len(task["runs"][0]["changes"]["reverts"]) == 1
    child.wait("__buf_text(%d):find('↶ run 1 reverted: 3 files', 1, true) ~= nil" % out)
    ct.assert_same(before)


def test_revert_keeps_a_later_edit_and_a_conflict_leaves_markers_and_a_list(child, ct):
    git_repo(ct)
    before = ct.capture()
    run_task(child, tools(edit("a.txt", "line 3\n", "task 3\n"), edit("b.txt", "bee\n", "task\n")))
    # Later, the user edits a.txt elsewhere and b.txt on the task's line.
    ct.write("a.txt", numbered(20).replace("line 3\n", "task 3\n").replace("line 17\n", "mine\n"))
    ct.write("b.txt", "mine\n")
    revert(child)
    assert ct.read("a.txt") == numbered(20).replace("line 17\n", "mine\n")
    text = ct.read("b.txt")
    assert text == "<<<<<<< yours\nmine\n=======\nbee\n>>>>>>> before task #1 run 1\n", text
    q = qf(child)
    assert q["title"] == "claude-tasks #1 run 1: revert conflicts"
    assert [(os.path.basename(i["file"]), i["lnum"]) for i in q["items"]] == [("b.txt", 1)]
    warn = [n for n in child.notes() if n["level"] == WARN]
    assert any("1 conflict" in n["msg"] for n in warn), warn
    ct.assert_same(before, ("a.txt", "b.txt"))


def test_outside_git_the_edited_files_are_recorded_and_reverted(child, ct):
    ct.write("keep.txt", numbered(5))
    run_task(child, tools(edit("keep.txt", "line 2\n", "two\n"), write("ünï new.txt", "n\n")))
    data = child.lua("return _G.__ev[1]")
    assert sorted(f["path"] for f in data["files_changed"]) == ["keep.txt", "ünï new.txt"]
    task = child.lua("return require('claude-tasks').get(1)")
    assert task["runs"][0]["changes"]["method"] == "files"
    child.nvim.command("ClaudeTasks changes 1")
    assert "(edit tools only: not a git work tree)" in qf(child)["title"]
    child.nvim.command("ClaudeTasks diff 1")
    assert "# outside git: only the files its edit tools named" in child.lua("return __buf_text()")
    revert(child)
    assert ct.read("keep.txt") == numbered(5)
    assert not ct.exists("ünï new.txt")
    assert not ct.exists(".git")


def test_a_detached_head_stays_detached(child, ct):
    git_repo(ct)
    ct.write("b.txt", "second\n")
    ct.commit_all("second")
    ct.git("checkout", "-q", "--detach", "HEAD~1")
    before = ct.capture()
    run_task(child, tools(edit("a.txt", "line 1\n", "one\n")))
    child.nvim.command("ClaudeTasks changes 1")
    assert len(qf(child)["items"]) == 1
    revert(child)
    assert ct.read("a.txt") == numbered(20)
    ct.assert_same(before)


def test_an_empty_repository(child, ct):
    ct.init()
    ct.write("first.txt", "one\n")
    before = ct.capture()
    run_task(child, tools(write("second.txt", "two\n"), edit("first.txt", "one\n", "uno\n")))
    data = child.lua("return _G.__ev[1]")
    assert sorted(f["path"] for f in data["files_changed"]) == ["first.txt", "second.txt"]
    revert(child)
    assert ct.read("first.txt") == "one\n"
    assert not ct.exists("second.txt")
    assert ct.git("rev-parse", "-q", "--verify", "HEAD", check=False) == ""
    ct.assert_same(before)


def test_a_task_in_a_submodule_records_the_submodule(child, ct, tmp_path):
    lib = Repo(tmp_path / "libsrc")
    os.makedirs(lib.root)
    lib.init()
    lib.write("lib.txt", "lib\n")
    lib.commit_all("lib")
    git_repo(ct)
    ct.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", lib.root, "vendor/lib")
    ct.commit_all("submodule")
    sub = Repo(ct.path("vendor/lib"))
    before, sub_before = ct.capture(), sub.capture()
    child.lua("require('claude-tasks').start(..., { open = false, cwd = 'vendor/lib' })",
              "in the submodule\nfake-tools: %s" % tools(edit("lib.txt", "lib\n", "LIB\n")))
    child.wait("__done(1)", timeout=30)
    data = child.lua("return _G.__ev[1]")
    assert [f["path"] for f in data["files_changed"]] == ["lib.txt"]
    task = child.lua("return require('claude-tasks').get(1, { cwd = 'vendor/lib' }) or"
                     " require('claude-tasks').list({ cwd = 'vendor/lib' })[1]")
    assert task["runs"][0]["changes"]["root"] == os.path.realpath(sub.root)
    child.lua(
        "require('claude-tasks').revert({ id = 1, cwd = vim.fn.fnamemodify('vendor/lib', ':p'):gsub('/$', '') },"
        " { confirm = false })"
    )
    assert sub.read("lib.txt") == "lib\n"
    ct.assert_same(before)
    sub.assert_same(sub_before)


def test_the_task_list_keys_review_and_revert_a_run(child, ct):
    """The task list (issue 23) acts on a run's changes with the picker's actions: C the
    quickfix list, = the diff, u the revert (asked first)."""
    git_repo(ct)
    before = ct.capture()
    run_task(child, tools(edit("a.txt", "line 3\n", "three\n")))
    child.nvim.command("ClaudeTasks list")
    listwin = child.lua("return vim.api.nvim_get_current_win()")
    assert "1 file" in child.lua("return vim.api.nvim_get_current_line()")

    def on(key):
        child.lua("vim.api.nvim_set_current_win(...); vim.api.nvim_win_set_cursor(0, { 1, 0 })",
                  listwin)
        child.nvim.input(key)
        child.flush()

    on("C")
    assert [i["file"] for i in qf(child)["items"]] == ["a.txt"]
    on("=")
    assert child.lua("return vim.fn.bufname()") == "claude-tasks://1/diff"
    assert "+three" in child.lua("return __buf_text()")
    child.lua("_G.__choose = 2; _G.__asked = nil")
    on("u")
    assert child.lua("return _G.__asked.prompt") == "Revert run 1 of #1 change things?"
    assert ct.read("a.txt") != numbered(20)
    child.lua("_G.__choose = 1")
    on("u")
    assert ct.read("a.txt") == numbered(20)
    ct.assert_same(before)


def test_picker_offers_changes_diff_and_revert(child, ct):
    git_repo(ct)
    before = ct.capture()
    run_task(child, tools(edit("a.txt", "line 3\n", "three\n")))
    labels = child.lua(
        "local t = require('claude-tasks').get(1)"
        " return vim.tbl_map(function(a) return a.label end, require('claude-tasks.picker').actions(t))"
    )
    assert "Changes (quickfix): 1 file +1 −1" in labels
    assert "Diff" in labels and "Revert" in labels
    ct.assert_same(before, ("a.txt",))
