//! Tool calls: their one-line summaries, their results folded under them, calls shown while
//! streamed, a subagent's calls counted under its task.

use super::*;
use serde_json::json;

#[test]
fn tool_results_fold_and_late_results_find_their_call() {
    let tool = |id: &str, cmd: &str| {
        serde_json::json!({"type":"assistant","message":{"content":[{"type":"tool_use","id":id,"name":"Bash","input":{"command":cmd}}]}}).to_string()
    };
    let result = |id: &str, content: &str, err: bool| {
        serde_json::json!({"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":id,"content":content,"is_error":err}]}}).to_string()
    };
    let mut r = Renderer::new();
    feed(&mut r, &tool("a", "make"));
    feed(&mut r, &tool("b", "ls"));
    assert_eq!(r.take_update(), upd(0, &["● Bash(make)", "● Bash(ls)"]));
    let long: Vec<String> = (1..=12).map(|i| format!("line {i}")).collect();
    feed(&mut r, &result("a", &long.join("\n"), false));
    // The first call's result goes under it, whole, its lines after the fifth folded (issue
    // 23, item 7); the second call is re-sent after it.
    let mut lines = vec!["  ⎿ line 1".to_string()];
    lines.extend((2..=12).map(|i| format!("    line {i}")));
    lines.push("● Bash(ls)".into());
    assert_eq!(
        r.take_update(),
        Some(Update {
            start: 1,
            lines,
            folds: vec![Fold { first: 6, last: 12 }],
        })
    );
    feed(&mut r, &assistant_text("meanwhile"));
    feed(
        &mut r,
        &result("b", "\x1b[31mno such file\x1b[0m\r\n", true),
    );
    assert_eq!(
        r.take_update(),
        upd(14, &["", "meanwhile", "", "● Bash(ls)", "  ✗ no such file"])
    );
    feed(&mut r, &result("zzz", "", false));
    assert_eq!(
        r.take_update(),
        upd(19, &["● tool result", "  ⎿ (no output)"])
    );
}

#[test]
fn long_results_are_folded_up_to_a_bound_and_short_ones_are_not() {
    let call = |id: &str| {
        serde_json::json!({"type":"assistant","message":{"content":[{"type":"tool_use","id":id,"name":"Read","input":{"file_path":"a.rs"}}]}}).to_string()
    };
    let result = |id: &str, n: usize| {
        let text: Vec<String> = (1..=n).map(|i| format!("l{i}")).collect();
        serde_json::json!({"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":id,"content":text.join("\n")}]}}).to_string()
    };
    let mut r = Renderer::new();
    // Six lines: one would be hidden, which is no fold.
    feed(&mut r, &call("a"));
    feed(&mut r, &result("a", 6));
    let u = r.take_update().unwrap();
    assert_eq!((u.lines.len(), u.folds.len()), (7, 0));
    // Seven lines: two hidden.
    feed(&mut r, &call("b"));
    feed(&mut r, &result("b", 7));
    let u = r.take_update().unwrap();
    assert_eq!(u.start, 7);
    assert_eq!(
        u.folds,
        vec![Fold {
            first: 13,
            last: 14
        }]
    );
    assert_eq!(u.lines[u.lines.len() - 2..], ["    l6", "    l7"]);
    // 1000 lines: 200 in the buffer, then how many were left out, in the fold too.
    feed(&mut r, &call("c"));
    feed(&mut r, &result("c", 1000));
    let u = r.take_update().unwrap();
    assert_eq!(u.lines.len(), 1 + 200 + 1);
    assert_eq!(u.lines.last().unwrap(), "  … 800 more lines not shown");
    assert_eq!(
        u.folds,
        vec![Fold {
            first: u.start + 6,
            last: u.start + 201
        }]
    );
}

#[test]
fn streamed_tool_call_is_shown_before_its_input_is_complete() {
    let mut r = Renderer::new();
    feed(
        &mut r,
        r#"{"type":"stream_event","event":{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"Write","input":{}}}}"#,
    );
    assert_eq!(r.take_update(), upd(0, &["● Write"]));
    feed(
        &mut r,
        r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1","name":"Write","input":{"file_path":"a.txt","content":"x"}}]}}"#,
    );
    assert_eq!(r.take_update(), upd(0, &["● Write(a.txt)"]));
    // A provisional call that never got confirmed disappears with a new message.
    feed(
        &mut r,
        r#"{"type":"stream_event","event":{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t2","name":"Bash","input":{}}}}"#,
    );
    assert_eq!(r.take_update(), upd(1, &["● Bash"]));
    feed(&mut r, MESSAGE_START);
    assert_eq!(r.take_update(), upd(1, &[]));
    assert_eq!(r.line_count(), 1);
}

#[test]
fn subagent_calls_are_counted_under_their_task() {
    let mut r = Renderer::new();
    feed(
        &mut r,
        r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"task1","name":"Task","input":{"description":"find bugs","prompt":"…"}}]}}"#,
    );
    for f in ["a.rs", "b.rs"] {
        feed(
                &mut r,
                &serde_json::json!({"type":"assistant","parent_tool_use_id":"task1","message":{"content":[{"type":"text","text":"looking"},{"type":"tool_use","id":f,"name":"Read","input":{"file_path":f}}]}}).to_string(),
            );
        feed(
                &mut r,
                &serde_json::json!({"type":"user","parent_tool_use_id":"task1","message":{"content":[{"type":"tool_result","tool_use_id":f,"content":"..."}]}}).to_string(),
            );
    }
    feed(
        &mut r,
        r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"task1","content":[{"type":"text","text":"No bugs."}]}]}}"#,
    );
    let mut buf = Vec::new();
    apply(&mut buf, r.take_update().unwrap());
    assert_eq!(
        buf,
        [
            "● Task(find bugs)",
            "  ↳ 2 tool calls, last: Read(b.rs)",
            "  ⎿ No bugs."
        ]
    );
}

#[test]
fn tool_summaries() {
    let cases = [
        (
            "Bash",
            json!({"command": "npm test", "description": "d"}),
            "Bash(npm test)",
        ),
        (
            "Write",
            json!({"file_path": "src/lib.rs", "content": "x"}),
            "Write(src/lib.rs)",
        ),
        (
            "Edit",
            json!({"file_path": "/abs/a.rs", "old_string": "a"}),
            "Edit(/abs/a.rs)",
        ),
        ("Read", json!({"file_path": "README.md"}), "Read(README.md)"),
        (
            "Grep",
            json!({"pattern": "fn main", "path": "src"}),
            "Grep(fn main)",
        ),
        ("Glob", json!({"pattern": "**/*.rs"}), "Glob(**/*.rs)"),
        (
            "WebFetch",
            json!({"url": "https://x.y/z", "prompt": "p"}),
            "WebFetch(https://x.y/z)",
        ),
        (
            "Task",
            json!({"description": "find bugs", "prompt": "long"}),
            "Task(find bugs)",
        ),
        (
            "TodoWrite",
            json!({"todos": [{}, {}, {}]}),
            "TodoWrite(3 items)",
        ),
        ("TodoWrite", json!({"todos": [{}]}), "TodoWrite(1 item)"),
        (
            "mcp__gh__create_issue",
            json!({"title": "Bug", "n": 1}),
            "mcp__gh__create_issue(Bug)",
        ),
        ("Custom", json!({"n": 1}), "Custom"),
        ("Custom", json!(null), "Custom"),
        (
            "Bash",
            json!({"command": 5, "description": "fallback"}),
            "Bash(fallback)",
        ),
    ];
    for (name, input, want) in cases {
        assert_eq!(tool_summary(name, &input), want);
    }
}

#[test]
fn tool_summary_is_one_short_line() {
    let long = "x".repeat(200);
    let s = tool_summary("Bash", &json!({ "command": long }));
    assert_eq!(s, format!("Bash({}…)", "x".repeat(79)));
    let s = tool_summary("Bash", &json!({"command": "\n  cd /tmp  \nmake\tall"}));
    assert_eq!(s, "Bash(cd /tmp…)");
    let s = tool_summary("Bash", &json!({"command": "a\u{1b}[31mb\r"}));
    assert_eq!(s, "Bash(a [31mb)");
    assert_eq!(one_line(&"é".repeat(80), 80), "é".repeat(80));
    assert_eq!(
        one_line(&"é".repeat(81), 80),
        format!("{}…", "é".repeat(79))
    );
    assert_eq!(one_line("", 80), "");
}
