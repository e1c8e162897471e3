"""`e` on a request whose input is not a Bash command (issue 21: "e edit the input and allow"):
a Write's content, an Edit's new text and any other tool's input as JSON are edited in a
scratch buffer that `:w` allows with and `:q` leaves waiting; plan approval (ExitPlanMode) is
allowed with its plan as it came and never made an "always" rule. Against
tests/plugin/fake_backend.py, which keeps every answer in the record's `_answers`."""
from test_permissions import WARN, ERROR, answers, calls, make_wait, start, use

WRITE = {
    "request_id": "5b1c0e2a-7d41-4f0e-9a55-3c1d2e4f5a6b",
    "tool_name": "Write",
    "input": {"file_path": "/p/src/sample.lua", "content": "local a = 1\nreturn a\n"},
    "title": "Write: src/sample.lua",
    "rule": "Write(src/sample.lua)",
}

EDIT = {
    "request_id": "9e8d7c6b-5a49-4382-8716-0f1e2d3c4b5a",
    "tool_name": "Edit",
    "input": {"file_path": "/p/README.md", "old_string": "old", "new_string": "new\ntext"},
    "title": "Edit: README.md",
}

FETCH = {
    "request_id": "1a2b3c4d-0000-4000-8000-000000000001",
    "tool_name": "WebFetch",
    "input": {"url": "https://example.invalid/doc", "prompt": "summarize"},
    "title": "WebFetch: https://example.invalid/doc",
}

PLAN = {
    "request_id": "7f6e5d4c-3b2a-4190-8f7e-6d5c4b3a2910",
    "tool_name": "ExitPlanMode",
    "input": {"plan": "1. Read the failing test\n2. Fix the off-by-one"},
    "title": "ExitPlanMode",
}

PENDING = ("#require('claude-tasks.permissions').pending("
           "require('claude-tasks.state').get(vim.fn.getcwd(), 1))")


def open_editor(child, req):
    """Starts task 1 with its output split, makes it wait for `req`, presses `e` there and
    returns the scratch buffer that opened."""
    start(child, "fix", "'split'")
    make_wait(child, 1, req)
    child.nvim.feedkeys("e")
    name = "claude-tasks://1/request/" + req["request_id"][:8]
    return child.wait(
        "(function() local b = vim.api.nvim_get_current_buf();"
        " return vim.api.nvim_buf_get_name(b) == %r and b end)()" % name,
        what="the request's edit buffer",
    )


def buf_state(child, buf):
    return child.lua(
        "local b = ...; return { lines = vim.api.nvim_buf_get_lines(b, 0, -1, false),"
        " buftype = vim.bo[b].buftype, filetype = vim.bo[b].filetype }",
        buf,
    )


def test_e_on_a_write_edits_its_content_and_w_allows_with_it(child, fake_backend):
    use(child, fake_backend)
    buf = open_editor(child, WRITE)
    got = buf_state(child, buf)
    # The content as the CLI would write it, typed by the file's name; :w goes to us.
    assert got == {"lines": ["local a = 1", "return a", ""], "buftype": "acwrite",
                   "filetype": "lua"}
    child.lua("vim.api.nvim_buf_set_lines(..., 0, 1, false, { 'local a = 2' })", buf)
    child.nvim.command("write")
    child.wait(PENDING + " == 0", what="the request answered")
    assert answers(child, 1)[-1] == {
        "behavior": "allow", "always": None, "scope": None, "request_id": WRITE["request_id"],
        "input": {"file_path": "/p/src/sample.lua", "content": "local a = 2\nreturn a\n"},
    }
    # The scratch buffer is gone once it has said its piece.
    assert not child.lua("return vim.api.nvim_buf_is_valid(...)", buf)


def test_e_on_an_edit_changes_its_new_text_only(child, fake_backend):
    use(child, fake_backend)
    buf = open_editor(child, EDIT)
    got = buf_state(child, buf)
    assert got["lines"] == ["new", "text"] and got["filetype"] == "markdown"
    child.lua("vim.api.nvim_buf_set_lines(..., 0, -1, false, { 'newer' })", buf)
    child.nvim.command("write")
    child.wait(PENDING + " == 0", what="the request answered")
    got = answers(child, 1)[-1]
    assert got["behavior"] == "allow"
    assert got["input"] == {"file_path": "/p/README.md", "old_string": "old",
                            "new_string": "newer"}


def test_q_leaves_the_request_waiting_and_sends_nothing(child, fake_backend):
    use(child, fake_backend)
    buf = open_editor(child, WRITE)
    child.lua("vim.api.nvim_buf_set_lines(..., 0, -1, false, { 'never sent' })", buf)
    child.nvim.command("quit!")
    child.flush()
    assert not child.lua("return vim.api.nvim_buf_is_valid(...)", buf)
    assert child.lua("return " + PENDING) == 1
    assert calls(child, "allow") == [] and answers(child, 1) == []
    # The request can still be answered.
    child.nvim.feedkeys("a")
    child.wait(PENDING + " == 0", what="the request allowed")
    assert answers(child, 1)[-1]["input"] == WRITE["input"]


def test_any_other_input_is_edited_as_json_and_bad_json_is_refused(child, fake_backend):
    use(child, fake_backend)
    buf = open_editor(child, FETCH)
    got = buf_state(child, buf)
    assert got["filetype"] == "json"
    assert child.lua("return vim.json.decode(table.concat(vim.api.nvim_buf_get_lines(..., 0, -1,"
                     " false), '\\n'))", buf) == FETCH["input"]
    # Not an object: said, nothing sent, the buffer kept for another try.
    child.lua("vim.api.nvim_buf_set_lines(..., 0, -1, false, { '{\"url\": ' })", buf)
    child.nvim.command("write")
    child.flush()
    note = child.notes()[-1]
    assert note["level"] == ERROR and "not a JSON object" in note["msg"], note
    assert calls(child, "allow") == []
    assert child.lua("return vim.api.nvim_buf_is_valid(...)", buf)
    for array in ("[1, 2]", "  []"):
        child.lua("local b, l = ...; vim.api.nvim_buf_set_lines(b, 0, -1, false, { l })", buf, array)
        child.nvim.command("write")
        child.flush()
        assert calls(child, "allow") == [] and child.lua("return " + PENDING) == 1
    child.lua("vim.api.nvim_buf_set_lines(..., 0, -1, false,"
              " { '{\"url\": \"https://example.invalid/other\",', '\"prompt\": \"list\"}' })", buf)
    child.nvim.command("write")
    child.wait(PENDING + " == 0", what="the request answered")
    assert answers(child, 1)[-1]["input"] == {"url": "https://example.invalid/other",
                                              "prompt": "list"}


def test_an_empty_object_goes_out_as_an_object(child, fake_backend):
    use(child, fake_backend)
    buf = open_editor(child, FETCH)
    child.lua("vim.api.nvim_buf_set_lines(..., 0, -1, false, { '{ }' })", buf)
    child.nvim.command("write")
    child.wait(PENDING + " == 0", what="the request answered")
    # A map on the wire (the fake backend refuses anything else), empty.
    assert calls(child, "allow")[-1]["input"] == {}
    assert answers(child, 1)[-1]["behavior"] == "allow"


def test_a_plan_is_approved_as_it_came_and_never_made_a_rule(child, fake_backend):
    use(child, fake_backend)
    start(child, "plan it", "'split'")
    make_wait(child, 1, PLAN)
    # The picker (and the task list) offer no "always" for it either (issue 23's actions table).
    labels = child.lua("return vim.tbl_map(function(a) return a.label end,"
                       " require('claude-tasks.picker').actions(require('claude-tasks').get(1)))")
    assert "Allow: ExitPlanMode" in labels[0] and "Always allow…" not in labels, labels
    child.nvim.feedkeys("A")
    child.flush()
    note = child.notes()[-1]
    assert note["level"] == WARN and "no 'always' for ExitPlanMode" in note["msg"], note
    assert calls(child, "allow") == []
    child.nvim.feedkeys("a")
    child.wait(PENDING + " == 0", what="the plan approved")
    got = answers(child, 1)[-1]
    assert got["behavior"] == "allow" and got["always"] is None
    assert got["input"] == PLAN["input"]


def test_an_input_too_large_to_show_is_not_edited(child, fake_backend):
    use(child, fake_backend)
    start(child, "fix", "'split'")
    cut = dict(WRITE, input={"file_path": "/p/big.txt", "content": "x" * 64}, input_cut=True)
    make_wait(child, 1, cut)
    buf = child.lua("return vim.api.nvim_get_current_buf()")
    child.nvim.feedkeys("e")
    child.flush()
    note = child.notes()[-1]
    assert note["level"] == WARN and "too large to edit" in note["msg"], note
    assert child.lua("return vim.api.nvim_get_current_buf()") == buf
    assert child.lua("return " + PENDING) == 1 and calls(child, "allow") == []
