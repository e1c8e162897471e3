use super::doc::LineHasher;
use super::frame::footer_line;
use super::*;
use crate::stream_json::parse_bytes;
use crate::task::{Permissions, Status};
use crate::text::MAX_SHOWN_LINE;
use serde_json::json;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::testutil::line;

fn apply(buf: &mut Vec<String>, u: Update) {
    assert!(
        u.start <= buf.len(),
        "update starts at {} past the end {}",
        u.start,
        buf.len()
    );
    u.apply_to(buf);
}

/// Feeds a transcript line by line, taking an update after every line (as a live buffer
/// would), and checks the result against taking a single update at the end.
fn render(jsonl: &str) -> Vec<String> {
    let mut live = Renderer::new();
    let mut once = Renderer::new();
    let mut buf = Vec::new();
    for l in jsonl.split('\n').filter(|l| !l.is_empty()) {
        live.feed_line(&line(l.as_bytes()));
        once.feed_line(&line(l.as_bytes()));
        if let Some(u) = live.take_update() {
            apply(&mut buf, u);
        }
        assert_eq!(buf.len(), live.line_count());
    }
    let mut whole = Vec::new();
    if let Some(u) = once.take_update() {
        assert_eq!(u.start, 0);
        apply(&mut whole, u);
    }
    assert_eq!(buf, whole, "live and one-shot renders differ");
    for l in &buf {
        assert!(!l.contains('\n') && !l.contains('\r'), "bad line {l:?}");
    }
    buf
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/claude-cli-2.1.197/",
            $name,
            "/stdout.jsonl"
        ))
    };
}

const INIT_DEFAULT: &str = "model: claude-opus-4-8 (1M context) · permission: default";

/// What 2.1.332 writes differently renders on purpose: its model in the init line; its
/// `status` and `permission_denied` lines show nothing (the refused call's result and the
/// run's denials say it already); its new fields change nothing; text whose stream was
/// abandoned goes when the retry comes, as any unconfirmed text; an API failure shows its
/// text once although the result repeats it with `type` after it.
#[test]
fn the_lines_of_2_1_332_render_on_purpose() {
    use crate::testutil::cli_2_1_332 as v;
    let denied = [
        v::INIT,
        v::STATUS,
        v::ASSISTANT_WRITE,
        v::PERMISSION_DENIED,
        v::USER_DENIED,
        v::STATUS,
        v::RESULT_DENIED,
    ];
    let want_denied = [
        "model: claude-opus-5-5 · permission: default",
        "",
        "● Write(/tmp/proj/hello.txt)",
        "  ✗ Claude requested permissions to write to /tmp/proj/hello.txt, but you haven't granted it yet.",
        "",
        "⚠ permission denied: Write(/tmp/proj/hello.txt)",
    ];
    assert_eq!(render(&denied.join("\n")), want_denied);
    let without_new_kinds = [
        v::INIT,
        v::ASSISTANT_WRITE,
        v::USER_DENIED,
        v::RESULT_DENIED,
    ];
    assert_eq!(render(&without_new_kinds.join("\n")), want_denied);
    // A stream broken after one delta: shown while it lasts, dropped by the retry.
    let cut = [v::INIT, v::STATUS, v::MESSAGE_START, v::DELTA];
    let streamed = render(&cut.join("\n"));
    assert_eq!(
        streamed.last().map(String::as_str),
        Some("Hello from the mock Anthrop")
    );
    let retried = [&cut[..], &[v::MESSAGE_STOP_ABANDONED, v::API_RETRY]].concat();
    assert_eq!(
        render(&retried.join("\n")),
        [
            "model: claude-opus-5-5 · permission: default",
            "",
            "↻ API error: unknown, retry 1/10 in 0.6s",
        ]
    );
    let failed = [
        v::INIT,
        v::STATUS,
        v::ASSISTANT_API_ERROR,
        v::RESULT_API_ERROR,
    ];
    assert_eq!(
        render(&failed.join("\n")),
        [
            "model: claude-opus-5-5 · permission: default",
            "",
            "✗ API Error: 500 Mock error 500 (api_error). This is a server-side issue, usually temporary — try again in a moment.",
        ]
    );
}

#[test]
fn hello_without_partial_messages() {
    assert_eq!(
        render(fixture!("hello-stream-json")),
        [
            INIT_DEFAULT,
            "",
            "Hello from the mock Anthropic server!",
            "This is line two of the hello scenario.",
            "And this is line three. Bye.",
        ]
    );
}

#[test]
fn hello_with_partial_messages_is_the_same() {
    assert_eq!(
        render(fixture!("hello-stream-json-partial")),
        render(fixture!("hello-stream-json"))
    );
}

#[test]
fn hello_streams_partial_lines_as_they_grow() {
    let mut r = Renderer::new();
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    for l in fixture!("hello-stream-json-partial").lines() {
        r.feed_line(&line(l.as_bytes()));
        if let Some(u) = r.take_update() {
            apply(&mut buf, u);
            seen.push(buf.clone());
        }
    }
    let states: Vec<Vec<&str>> = seen
        .iter()
        .map(|b| b.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        states,
        [
            vec![INIT_DEFAULT],
            vec![INIT_DEFAULT, "", "Hello from the mock Anthrop"],
            vec![
                INIT_DEFAULT,
                "",
                "Hello from the mock Anthropic server!",
                "This is line two"
            ],
            vec![
                INIT_DEFAULT,
                "",
                "Hello from the mock Anthropic server!",
                "This is line two of the hello scenario.",
                "And"
            ],
            vec![
                INIT_DEFAULT,
                "",
                "Hello from the mock Anthropic server!",
                "This is line two of the hello scenario.",
                "And this is line three. Bye."
            ],
            // The assistant line confirms the streamed text: the growing line becomes final.
            vec![
                INIT_DEFAULT,
                "",
                "Hello from the mock Anthropic server!",
                "This is line two of the hello scenario.",
                "And this is line three. Bye."
            ],
        ]
    );
}

const BASH: [&str; 9] = [
    INIT_DEFAULT,
    "",
    "Running a shell command.",
    "",
    "● Bash(echo from-bash; ls)",
    "  ⎿ from-bash",
    "",
    "Bash step finished.",
    "tool_result is_error=False: from-bash",
];

#[test]
fn bash() {
    assert_eq!(render(fixture!("bash-stream-json-default")), BASH);
    assert_eq!(render(fixture!("bash-stream-json-partial")), BASH);
}

#[test]
fn write_denied_by_default() {
    assert_eq!(
            render(fixture!("write-stream-json-default")),
            [
                INIT_DEFAULT,
                "",
                "I'll create hello.txt now.",
                "",
                "● Write(/home/user/proj/hello.txt)",
                "  ✗ Claude requested permissions to write to /home/user/proj/hello.txt, but you haven't granted it yet.",
                "",
                "Write step finished.",
                "tool_result is_error=True: Claude requested permissions to write to /home/user/proj/hello.txt, but you haven't granted it yet.",
                "",
                "⚠ permission denied: Write(/home/user/proj/hello.txt)",
            ]
        );
}

#[test]
fn write_with_accept_edits() {
    let want = [
            "model: claude-opus-4-8 (1M context) · permission: acceptEdits",
            "",
            "I'll create hello.txt now.",
            "",
            "● Write(/home/user/proj/hello.txt)",
            "  ⎿ File created successfully at: /home/user/proj/hello.txt (file state is current in your context — no need to Read it back)",
            "",
            "Write step finished.",
            "tool_result is_error=False: File created successfully at: /home/user/proj/hello.txt (file state is current in your context — no need to Read it back)",
        ];
    assert_eq!(render(fixture!("write-stream-json-acceptEdits")), want);
    assert_eq!(
        render(fixture!("write-stream-json-partial-acceptEdits")),
        want
    );
}

#[test]
fn parallel_tool_calls_fold_their_own_results() {
    assert_eq!(
        render(fixture!("multi-stream-json-default")),
        [
            INIT_DEFAULT,
            "",
            "Running two commands.",
            "",
            "● Bash(echo one)",
            "  ⎿ one",
            "● Bash(echo two)",
            "  ⎿ two",
            "",
            "Both commands finished.",
            "tool_result is_error=False: one",
            "tool_result is_error=False: two",
        ]
    );
}

#[test]
fn api_errors_with_retries() {
    assert_eq!(
            render(fixture!("error500-stream-json-max-retries-2")),
            [
                INIT_DEFAULT,
                "",
                "↻ API error 500, retry 1/2 in 0.5s",
                "↻ API error 500, retry 2/2 in 1.1s",
                "",
                "✗ API Error: 500 Mock error 500 (api_error). This is a server-side issue, usually temporary — try again in a moment. If it persists, check your inference gateway (127.0.0.1:40759).",
            ]
        );
}

#[test]
fn cut_stream_is_replaced_by_the_retried_answer() {
    assert_eq!(
        render(fixture!("cut-stream-json-partial")),
        [
            INIT_DEFAULT,
            "",
            "This answer will be cut by a closed connection"
        ]
    );
}

#[test]
fn stream_error_does_not_duplicate_text() {
    assert_eq!(
        render(fixture!("streamerror-stream-json-partial")),
        [
            INIT_DEFAULT,
            "",
            "This answer will be cut by a stream error"
        ]
    );
}

#[test]
fn thinking_is_one_line() {
    assert_eq!(
        render(fixture!("thinking-stream-json-partial")),
        [
            INIT_DEFAULT,
            "",
            "✻ Let me think about this mock question. It is simple.",
            "",
            "After thinking: the answer is 42.",
        ]
    );
}

#[test]
fn interrupted_by_user() {
    let mut buf = render(fixture!("signal-slow-INT-pid"));
    assert_eq!(
        buf.drain(..3).collect::<Vec<_>>(),
        [
            "model: claude-opus-4-8 (1M context) · permission: default",
            "",
            "slow chunk 01"
        ]
    );
    assert_eq!(
        buf[buf.len() - 3..],
        ["slow chunk 09", "", "■ interrupted by user"]
    );
    // Interrupted while a tool ran: its rejection is folded under it, no diagnostics.
    assert_eq!(
            render(fixture!("signal-hang-INT-pid-late")),
            [
                INIT_DEFAULT,
                "",
                "Starting a long-running command.",
                "",
                "● Bash(sleep 300 & sleep 301; wait)",
                "  ✗ The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, the new_string was NOT written to the file). STOP wh…",
                "",
                "■ interrupted by user",
            ]
        );
}

#[test]
fn unknown_session_error() {
    assert_eq!(
        render(fixture!("session-5-resume-unknown-id")),
        ["✗ No conversation found with session ID: 00000000-0000-4000-8000-000000000000"]
    );
}

#[test]
fn the_header_of_a_worktree_task_names_its_worktree_and_branch() {
    let mut r = Renderer::new();
    r.header(&Header {
        id: 4,
        name: "port the parser",
        cwd: "/home/me/proj",
        queued_at_ms: 1_795_000_000_123,
        started_at_ms: Some(1_795_000_000_123),
        model: None,
        context: &[],
        worktree: Some(("claude-tasks/4", "/state/proj-1/4/claude-tasks-4")),
        permissions: None,
    });
    let mut buf = Vec::new();
    apply(&mut buf, r.take_update().unwrap());
    assert_eq!(
        buf,
        [
            "# #4 port the parser",
            format!(
                "cwd: /home/me/proj · started {}",
                crate::timefmt::local(1_795_000_000_123)
            )
            .as_str(),
            "worktree: /state/proj-1/4/claude-tasks-4 · branch claude-tasks/4",
            "",
        ]
    );
}

#[test]
fn header_separator_and_footers() {
    let mut r = Renderer::new();
    r.header(&Header {
        id: 3,
        name: "fix the failing test",
        cwd: "/home/me/proj",
        queued_at_ms: 1_795_000_000_123,
        started_at_ms: Some(1_795_000_000_200),
        model: None,
        context: &[],
        worktree: None,
        permissions: None,
    });
    for l in fixture!("hello-stream-json").lines() {
        r.feed_line(&line(l.as_bytes()));
    }
    r.footer(&Footer {
        status: Status::Completed,
        duration_ms: Some(42_100),
        num_turns: 6,
        cost_usd: 0.0312,
        error: None,
        stderr: &[],
        denied: &[],
        permissions: Permissions::Ask,
        changes: None,
        interrupted: false,
        task_cost_usd: None,
    });
    r.separator(2, "and now\nthe docs", crate::task::Via::Resumed);
    r.feed(&parse_bytes(
        br#"{"type":"assistant","message":{"content":[{"type":"text","text":"ok"}]}}"#,
    ));
    r.footer(&Footer {
        status: Status::Failed,
        duration_ms: Some(1_200),
        num_turns: 1,
        cost_usd: 0.0,
        error: Some("API Error: 500\nmore"),
        stderr: &[],
        denied: &[],
        permissions: Permissions::Ask,
        changes: None,
        interrupted: false,
        task_cost_usd: Some(0.0312),
    });
    let mut buf = Vec::new();
    apply(&mut buf, r.take_update().unwrap());
    assert_eq!(
        buf,
        [
            "# #3 fix the failing test",
            format!(
                "cwd: /home/me/proj · started {}",
                crate::timefmt::local(1_795_000_000_200)
            )
            .as_str(),
            "",
            INIT_DEFAULT,
            "",
            "Hello from the mock Anthropic server!",
            "This is line two of the hello scenario.",
            "And this is line three. Bye.",
            "",
            "✓ done in 42.1s · 6 turns · $0.0312",
            "",
            "── ↻ follow-up #2 (resumed): and now… ──",
            "",
            "ok",
            "",
            "✗ failed: API Error: 500… · 1.2s",
        ]
    );
    let footer = |status, duration_ms| {
        footer_line(&Footer {
            status,
            duration_ms,
            num_turns: 1,
            cost_usd: 0.0,
            error: None,
            stderr: &[],
            denied: &[],
            permissions: Permissions::Ask,
            changes: None,
            interrupted: false,
            task_cost_usd: None,
        })
    };
    assert_eq!(footer(Status::Completed, None), "✓ done · 1 turn");
    assert_eq!(footer(Status::Failed, None), "✗ failed");
    assert_eq!(
        footer(Status::Cancelled, Some(3_000)),
        "■ cancelled after 3.0s"
    );
    assert_eq!(footer(Status::Cancelled, None), "■ cancelled");
    assert_eq!(footer(Status::Interrupted, Some(5)), "⚠ interrupted");
    // A run's own cost, and the task's beside it; a run the user interrupted.
    let mut f = Footer {
        status: Status::Completed,
        duration_ms: Some(2_000),
        num_turns: 1,
        cost_usd: 0.112,
        error: None,
        stderr: &[],
        denied: &[],
        permissions: Permissions::Ask,
        changes: None,
        interrupted: false,
        task_cost_usd: Some(0.224),
    };
    assert_eq!(
        footer_line(&f),
        "✓ done in 2.0s · 1 turn · $0.1120 · task $0.2240"
    );
    f.task_cost_usd = Some(0.112);
    assert_eq!(footer_line(&f), "✓ done in 2.0s · 1 turn · $0.1120");
    f.status = Status::Cancelled;
    f.interrupted = true;
    f.task_cost_usd = Some(0.3);
    assert_eq!(
        footer_line(&f),
        "■ interrupted after 2.0s · $0.1120 · task $0.3000 · the task waits for your next message"
    );
    // Segments of their own (what the run changed, its denied tools) come before the hint.
    let denied = ["Bash".to_string()];
    f.changes = Some(FooterChanges {
        files: 2,
        added: 5,
        removed: 1,
        ..FooterChanges::default()
    });
    f.denied = &denied;
    assert_eq!(
        footer_line(&f),
        "■ interrupted after 2.0s · $0.1120 · task $0.3000 · 2 files +5 −1 · 1 tool denied (Bash) \
         · the task waits for your next message"
    );
}

#[test]
fn footers_say_what_the_run_changed_and_notes_say_it_was_reverted() {
    let with = |status, changes| {
        footer_line(&Footer {
            status,
            duration_ms: Some(2_000),
            num_turns: 2,
            cost_usd: 0.0,
            error: None,
            stderr: &[],
            denied: &[],
            permissions: Permissions::Ask,
            changes: Some(changes),
            interrupted: false,
            task_cost_usd: None,
        })
    };
    let three = FooterChanges {
        files: 3,
        added: 12,
        removed: 4,
        ..FooterChanges::default()
    };
    assert_eq!(
        with(Status::Completed, three),
        "✓ done in 2.0s · 2 turns · 3 files +12 −4"
    );
    assert_eq!(
        with(
            Status::Cancelled,
            FooterChanges {
                files: 1,
                by_you: 1,
                ..three
            }
        ),
        "■ cancelled after 2.0s · 1 file +12 −4 (1 also edited by you)"
    );
    assert_eq!(
        with(
            Status::Completed,
            FooterChanges {
                edits_only: true,
                ..three
            }
        ),
        "✓ done in 2.0s · 2 turns · 3 files +12 −4 (edit tools only: not a git work tree)"
    );
    // Nothing changed: nothing said.
    assert_eq!(
        with(Status::Completed, FooterChanges::default()),
        "✓ done in 2.0s · 2 turns"
    );
    let mut r = Renderer::new();
    r.reverted(1, 3, 0);
    r.reverted(2, 1, 2);
    let mut buf = Vec::new();
    apply(&mut buf, r.take_update().unwrap());
    assert_eq!(
        buf,
        [
            "↶ run 1 reverted: 3 files",
            "↶ run 2 reverted: 1 file, 2 conflicts (:ClaudeTasks changes)"
        ]
    );
}

fn delta(index: u64, text: &str) -> String {
    serde_json::json!({"type":"stream_event","event":{"type":"content_block_delta","index":index,"delta":{"type":"text_delta","text":text}}}).to_string()
}

fn assistant_text(text: &str) -> String {
    serde_json::json!({"type":"assistant","message":{"id":"m","content":[{"type":"text","text":text}]}}).to_string()
}

const MESSAGE_START: &str =
    r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m"}}}"#;

fn feed(r: &mut Renderer, s: &str) {
    r.feed_line(&line(s.as_bytes()));
}

fn upd(start: usize, lines: &[&str]) -> Option<Update> {
    Some(Update {
        start,
        lines: lines.iter().map(|s| s.to_string()).collect(),
        folds: Vec::new(),
    })
}

#[test]
fn authoritative_text_replaces_the_streamed_one() {
    let mut r = Renderer::new();
    feed(&mut r, MESSAGE_START);
    feed(&mut r, &delta(0, "Helo wrld\nsecond"));
    assert_eq!(r.take_update(), upd(0, &["Helo wrld", "second"]));
    // The streamed text was wrong from its first (already handed out) line: all re-sent.
    feed(&mut r, &assistant_text("Hello world\nsecond line"));
    assert_eq!(r.take_update(), upd(0, &["Hello world", "second line"]));
    assert_eq!(r.take_update(), None);
    assert_eq!(r.line_count(), 2);
}

#[test]
fn take_update_sends_only_what_changed() {
    let mut r = Renderer::new();
    assert_eq!(r.take_update(), None);
    feed(&mut r, &assistant_text("one"));
    assert_eq!(r.take_update(), upd(0, &["one"]));
    feed(&mut r, MESSAGE_START);
    assert_eq!(r.take_update(), None);
    feed(&mut r, &delta(0, "a\nb"));
    assert_eq!(r.pending_bytes(), 2);
    assert_eq!(r.take_update(), upd(1, &["", "a", "b"]));
    feed(&mut r, &delta(0, "c"));
    // Only the growing line is re-sent.
    assert_eq!(r.take_update(), upd(3, &["bc"]));
    feed(&mut r, &delta(0, "\nd\n"));
    assert_eq!(r.take_update(), upd(3, &["bc", "d"]));
    assert_eq!(r.take_update(), None);
    // The authoritative text differs from a finished line: the block is re-sent whole
    // (only a hash of finished lines is kept, so the first difference is not known).
    feed(&mut r, &assistant_text("a\nbc\nD"));
    assert_eq!(r.take_update(), upd(2, &["a", "bc", "D"]));
    assert_eq!(r.line_count(), 5);
    assert_eq!(r.pending_bytes(), 0);
    // The same text again (already confirmed, not streamed) is a new block.
    feed(&mut r, &assistant_text("x"));
    assert_eq!(r.take_update(), upd(5, &["", "x"]));
}

#[test]
fn message_start_drops_unconfirmed_text_even_when_taken() {
    let mut r = Renderer::new();
    feed(&mut r, &assistant_text("intro"));
    feed(&mut r, MESSAGE_START);
    feed(&mut r, &delta(0, "partial\nlin"));
    assert_eq!(r.take_update(), upd(0, &["intro", "", "partial", "lin"]));
    // The stream broke and the CLI retried with a new stream.
    feed(&mut r, MESSAGE_START);
    assert_eq!(r.take_update(), upd(1, &[]));
    assert_eq!(r.line_count(), 1);
    feed(&mut r, &delta(0, "whole answer"));
    feed(&mut r, &assistant_text("whole answer"));
    assert_eq!(r.take_update(), upd(1, &["", "whole answer"]));
}

#[test]
fn retry_drops_unconfirmed_text() {
    let mut r = Renderer::new();
    feed(&mut r, MESSAGE_START);
    feed(&mut r, &delta(0, "half an ans"));
    assert_eq!(r.take_update(), upd(0, &["half an ans"]));
    feed(
        &mut r,
        r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":600,"error_status":529,"error":"overloaded"}"#,
    );
    feed(&mut r, &assistant_text("half an answer, whole"));
    assert_eq!(
        r.take_update(),
        upd(
            0,
            &[
                "↻ API error 529, retry 1/10 in 0.6s",
                "",
                "half an answer, whole"
            ]
        )
    );
}

#[test]
fn empty_assistant_text_removes_the_streamed_block() {
    let mut r = Renderer::new();
    feed(&mut r, &assistant_text("before"));
    feed(&mut r, &delta(0, "  \n"));
    assert_eq!(r.take_update(), upd(0, &["before", "", "  "]));
    feed(&mut r, &assistant_text("\n \n"));
    assert_eq!(r.take_update(), upd(1, &[]));
    feed(&mut r, &assistant_text(""));
    assert_eq!(r.take_update(), None);
    // Leading newlines of a streamed block are not shown.
    feed(&mut r, &delta(1, "\n\n"));
    assert_eq!(r.take_update(), None);
    feed(&mut r, &delta(1, "\nx"));
    assert_eq!(r.take_update(), upd(1, &["", "x"]));
}

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
fn bad_input_lines() {
    let mut r = Renderer::new();
    feed(&mut r, "plain text from somewhere");
    r.feed_line(&line(
        b"bad \xff utf8 \x00 nul \x1b[1;32mgreen\x1b[0m \x1b]0;title\x07end",
    ));
    feed(&mut r, "   ");
    r.feed_line(&Line {
        bytes: br#"{"type":"assistant","message":{"content":[{"type":"text","text":"huge"#.to_vec(),
        total_len: 9_000_000,
        offset: 0,
    });
    feed(
        &mut r,
        &assistant_text("tab\there\u{7}bell\nprogress 10%\rprogress 100%\r\n"),
    );
    feed(&mut r, r#"{"type":"brand_new_kind","x":1}"#);
    feed(
        &mut r,
        r#"{"type":"system","subtype":"status","status":"requesting"}"#,
    );
    let mut buf = Vec::new();
    apply(&mut buf, r.take_update().unwrap());
    assert_eq!(
        buf,
        [
            "plain text from somewhere",
            "bad \u{fffd} utf8 ␀ nul green end",
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"huge… (9000000 bytes)"#,
            "",
            "tab\there␇bell",
            "progress 100%",
        ]
    );
}

#[test]
fn sanitize_lines() {
    assert!(matches!(sanitize("plain\ttext é"), Cow::Borrowed(_)));
    assert_eq!(sanitize("a\nb"), "a␊b");
    assert_eq!(sanitize("x\u{7f}\u{1b}"), "x␡");
    assert_eq!(
        sanitize("\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\"),
        "link"
    );
    assert_eq!(sanitize("\u{1b}(Bok"), "ok");
    assert_eq!(sanitize("a\r\r"), "a");
}

/// Deltas rendered in place (`feed_text_delta`, which skips sanitizing a text it is told is
/// clean) give exactly what parsed ones give, control characters or not, whole lines or
/// lines grown over several deltas.
#[test]
fn in_place_deltas_with_control_characters_render_like_parsed_ones() {
    let texts = [
        "plain line\nand a tab\there\n",
        "\u{1b}[31mred\u{1b}[0m\n",
        "half a li",
        "ne\u{7}, then\r\n",
        "progress 10%\rprogress 100%\n",
        "del\u{7f}\n",
        "clean tail ",
        "then dirty\u{8}\n",
        "dirty tail\u{c} ",
        "then clean\n",
        "a growing line shown before its end",
    ];
    let lines: Vec<String> = texts
        .iter()
        .map(|t| {
            let quoted = serde_json::to_string(t).expect("a string");
            let tail = r#","session_id":"s","parent_tool_use_id":null,"uuid":"u"}"#;
            crate::testutil::delta_line("0", &quoted[1..quoted.len() - 1], tail)
        })
        .collect();
    let (mut in_place, mut parsed) = (Renderer::new(), Renderer::new());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for l in &lines {
        let d = stream_json::text_delta(l.as_bytes()).expect("a text delta");
        in_place.feed_text_delta(&d);
        parsed.feed_line(&line(l.as_bytes()));
        // Each update too: the growing line is shown as it grows.
        if let Some(u) = in_place.take_update() {
            apply(&mut a, u);
        }
        if let Some(u) = parsed.take_update() {
            apply(&mut b, u);
        }
        assert_eq!(a, b, "after {l}");
        assert!(
            a.iter()
                .all(|l| crate::transcript::scan::is_clean(l.as_bytes())),
            "{a:?}"
        );
    }
    assert!(a.iter().any(|l| l == "red"), "{a:?}");
    assert!(a.iter().any(|l| l == "progress 100%"), "{a:?}");
    assert!(a.iter().any(|l| l == "del␡"), "{a:?}");
}

#[test]
fn delta_splits_do_not_matter() {
    // Re-split every text delta of the streamed fixtures at pseudo-random char boundaries.
    let mut seed: u64 = 42;
    let mut next = move |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % n.max(1)
    };
    for fixture in [
        fixture!("hello-stream-json-partial"),
        fixture!("bash-stream-json-partial"),
        fixture!("thinking-stream-json-partial"),
        fixture!("write-stream-json-partial-acceptEdits"),
        fixture!("signal-slow-INT-pid"),
    ] {
        let want = render(fixture);
        for _ in 0..20 {
            let mut text = String::new();
            let mut out = Vec::new();
            let flush =
                |text: &mut String, out: &mut Vec<String>, next: &mut dyn FnMut(usize) -> usize| {
                    let chars: Vec<char> = text.chars().collect();
                    let mut i = 0;
                    while i < chars.len() {
                        let n = 1 + next(chars.len() - i);
                        out.push(delta(0, &chars[i..i + n].iter().collect::<String>()));
                        i += n;
                    }
                    text.clear();
                };
            for l in fixture.lines() {
                match parse_bytes(l.as_bytes()) {
                    Msg::Stream(stream_json::Stream {
                        event: Event::TextDelta { index: 0, text: t },
                        ..
                    }) => text.push_str(&t),
                    _ => {
                        flush(&mut text, &mut out, &mut next);
                        out.push(l.to_string());
                    }
                }
            }
            // Take updates at random points too.
            let mut r = Renderer::new();
            let mut buf = Vec::new();
            for l in &out {
                feed(&mut r, l);
                if next(3) == 0 {
                    if let Some(u) = r.take_update() {
                        apply(&mut buf, u);
                    }
                }
            }
            if let Some(u) = r.take_update() {
                apply(&mut buf, u);
            }
            assert_eq!(buf, want);
        }
    }
}

#[test]
fn memory_stays_bounded_on_a_huge_stream() {
    let mut r = Renderer::new();
    let mut lines_seen = 0usize;
    let mut max_retained = 0usize;
    let mut take = |r: &mut Renderer, lines_seen: &mut usize| {
        if let Some(u) = r.take_update() {
            *lines_seen = u.start + u.lines.len();
        }
        max_retained = max_retained.max(r.retained_bytes());
    };
    // One text block of 1M lines streamed in deltas of 10 lines, then confirmed.
    feed(&mut r, MESSAGE_START);
    let mut full = String::new();
    let mut chunk = String::new();
    for i in 0..1_000_000u32 {
        chunk.push_str(&format!("line {i}\n"));
        if i % 10 == 9 {
            r.feed(&Msg::Stream(stream_json::Stream {
                parent_tool_use_id: None,
                event: Event::TextDelta {
                    index: 0,
                    text: chunk.clone(),
                },
            }));
            full.push_str(&chunk);
            chunk.clear();
            if i % 1000 == 999 {
                take(&mut r, &mut lines_seen);
            }
        }
    }
    r.feed(&Msg::Assistant(stream_json::Assistant {
        content: vec![Block::Text(full)],
        ..Default::default()
    }));
    let u = r.take_update();
    // Identical to what was streamed: nothing to re-send.
    assert_eq!(u, None);
    assert_eq!(r.line_count(), 1_000_000);
    assert_eq!(lines_seen, 1_000_000);
    // Many small confirmed messages, each streamed first.
    for i in 0..100_000u32 {
        r.feed(&parse_bytes(MESSAGE_START.as_bytes()));
        r.feed(&parse_bytes(delta(0, &format!("msg {i}")).as_bytes()));
        r.feed(&parse_bytes(assistant_text(&format!("msg {i}")).as_bytes()));
        if i % 100 == 99 {
            take(&mut r, &mut lines_seen);
        }
    }
    take(&mut r, &mut lines_seen);
    assert_eq!(r.line_count(), 1_000_000 + 200_000);
    assert_eq!(lines_seen, r.line_count());
    assert_eq!(r.retained_bytes(), 0);
    assert!(max_retained < 64 * 1024, "retained {max_retained} bytes");
}

/// The shared recordings' directory of every CLI version (`claude-cli-<version>`), sorted.
fn shared_fixtures() -> Vec<PathBuf> {
    // Resolved from this source file, so it also works when the module is compiled into
    // another crate; CI has `shared/` beside the repository.
    let file = Path::new(file!());
    let src = if file.is_absolute() {
        file.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
    };
    // src/render/tests.rs: the repository is three levels up.
    let Some(root) = src.parent().and_then(Path::parent).and_then(Path::parent) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(root.join("../shared/fixtures")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("claude-cli-"))
        })
        .collect();
    dirs.sort();
    dirs
}

fn read_stdout(dir: &Path) -> Option<Vec<u8>> {
    if let Ok(b) = std::fs::read(dir.join("stdout.jsonl")) {
        return Some(b);
    }
    let gz = dir.join("stdout.jsonl.gz");
    if !gz.exists() {
        return None;
    }
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(&gz)
        .output()
        .ok()?;
    Some(out.stdout)
}

#[test]
fn every_shared_fixture_renders() {
    let roots = shared_fixtures();
    if roots.is_empty() {
        eprintln!("shared fixtures not found: skipped");
        return;
    }
    let mut count = 0;
    let dirs = roots
        .iter()
        .flat_map(|root| std::fs::read_dir(root).unwrap())
        .map(|entry| entry.unwrap().path());
    for dir in dirs {
        let Some(bytes) = read_stdout(&dir) else {
            continue;
        };
        let mut live = Renderer::new();
        let mut once = Renderer::new();
        let mut buf = Vec::new();
        for (i, l) in bytes.split(|b| *b == b'\n').enumerate() {
            if l.is_empty() {
                continue;
            }
            let l = line(l);
            live.feed_line(&l);
            once.feed_line(&l);
            if i % 3 == 0 {
                if let Some(u) = live.take_update() {
                    apply(&mut buf, u);
                }
            }
        }
        for r in [&mut live, &mut once] {
            r.footer(&Footer {
                status: Status::Completed,
                duration_ms: Some(1),
                num_turns: 1,
                cost_usd: 0.1,
                error: None,
                stderr: &[],
                denied: &[],
                permissions: Permissions::Ask,
                changes: None,
                interrupted: false,
                task_cost_usd: None,
            });
        }
        if let Some(u) = live.take_update() {
            apply(&mut buf, u);
        }
        let mut whole = Vec::new();
        if let Some(u) = once.take_update() {
            apply(&mut whole, u);
        }
        assert_eq!(buf, whole, "{}", dir.display());
        assert!(buf.iter().all(|l| !l.contains('\n')), "{}", dir.display());
        count += 1;
    }
    assert!(count > 50, "only {count} fixtures");
}

#[test]
fn flood_fixture_keeps_its_20000_lines() {
    let roots = shared_fixtures();
    let Some(root) = roots.iter().find(|r| r.ends_with("claude-cli-2.1.197")) else {
        return;
    };
    let Some(bytes) = read_stdout(&root.join("flood-stream-json-partial")) else {
        return;
    };
    let mut r = Renderer::new();
    let mut n = 0;
    for l in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        r.feed_line(&line(l));
        if let Some(u) = r.take_update() {
            n = u.start + u.lines.len();
        }
        assert!(r.retained_bytes() < 64 * 1024);
    }
    // Init line, blank, 20000 lines of text.
    assert_eq!(n, 20_002);
}

fn all_lines(r: &mut Renderer) -> Vec<String> {
    let mut buf = Vec::new();
    if let Some(u) = r.take_update() {
        apply(&mut buf, u);
    }
    buf
}

#[test]
fn a_shortened_assistant_line_leaves_the_streamed_text_standing() {
    let mut r = Renderer::new();
    feed(&mut r, MESSAGE_START);
    feed(&mut r, &delta(0, "first line\nsecond "));
    // The growing line was shown, then the shortened confirmation comes.
    assert_eq!(all_lines(&mut r), vec!["first line", "second "]);
    feed(&mut r, &delta(0, "half"));
    let cut = assistant_text("first line\nsec… (99999999 bytes)");
    r.feed_shortened(&stream_json::parse_bytes(cut.as_bytes()));
    let mut buf = vec!["first line".to_string(), "second ".to_string()];
    while let Some(u) = r.take_update() {
        apply(&mut buf, u);
    }
    assert_eq!(buf, vec!["first line", "second half"]);
    // What follows goes on as usual.
    feed(&mut r, &delta(1, "next block"));
    feed(&mut r, &assistant_text("next block"));
    if let Some(u) = r.take_update() {
        apply(&mut buf, u);
    }
    assert_eq!(buf.last().map(String::as_str), Some("next block"));
}

#[test]
fn a_shortened_assistant_line_without_streaming_shows_the_cut_text() {
    let mut r = Renderer::new();
    let cut = assistant_text("only line one\nline tw… (5000000 bytes)");
    r.feed_shortened(&stream_json::parse_bytes(cut.as_bytes()));
    assert_eq!(
        all_lines(&mut r),
        vec!["only line one", "line tw… (5000000 bytes)"]
    );
}

#[test]
fn a_long_streamed_line_is_shown_cut_and_still_confirmed_whole() {
    let long: String = "é".repeat(MAX_SHOWN_LINE) + "z\r";
    let text = format!("{long}\nshort\n");
    let mut r = Renderer::new();
    feed(&mut r, MESSAGE_START);
    let mut buf = Vec::new();
    // Split inside characters' byte ranges is impossible in UTF-8 strings; split anywhere
    // else, and look at the growing line on the way.
    let chars: Vec<char> = text.chars().collect();
    for piece in chars.chunks(997) {
        let piece: String = piece.iter().collect();
        feed(&mut r, &delta(0, &piece));
        if let Some(u) = r.take_update() {
            apply(&mut buf, u);
        }
        assert!(buf.iter().all(|l| l.len() <= MAX_SHOWN_LINE + 32));
    }
    let body = long.trim_end_matches('\r');
    let want_first = format!(
        "{}… ({} bytes)",
        &body[..body.floor_char_boundary(MAX_SHOWN_LINE)],
        body.len()
    );
    assert_eq!(buf, vec![want_first.clone(), "short".to_string()]);
    // The authoritative text matches what was streamed: nothing changes.
    feed(&mut r, &assistant_text(&text));
    if let Some(u) = r.take_update() {
        apply(&mut buf, u);
    }
    assert_eq!(buf, vec![want_first.clone(), "short".to_string()]);
    // The same text arriving without streaming is cut the same way.
    let mut once = Renderer::new();
    feed(&mut once, &assistant_text(&text));
    assert_eq!(all_lines(&mut once), vec![want_first, "short".to_string()]);
}

#[test]
fn a_growing_line_keeps_bounded_memory_and_shows_its_size() {
    let mut r = Renderer::new();
    feed(&mut r, MESSAGE_START);
    let piece = "x".repeat(10_000);
    for _ in 0..100 {
        feed(&mut r, &delta(0, &piece));
    }
    assert!(
        r.retained_bytes() < 4 * MAX_SHOWN_LINE,
        "{}",
        r.retained_bytes()
    );
    let lines = all_lines(&mut r);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].ends_with("… (1000000 bytes)"),
        "{}",
        &lines[0][lines[0].len() - 40..]
    );
    // A different authoritative text replaces it.
    feed(&mut r, &assistant_text("other"));
    let mut buf = lines;
    if let Some(u) = r.take_update() {
        apply(&mut buf, u);
    }
    assert_eq!(buf, vec!["other"]);
}

#[test]
fn line_hash_is_the_same_whatever_the_pieces() {
    let mut rng = crate::testutil::Rng(7);
    for _ in 0..5_000 {
        let n = rng.below(70);
        let line = rng.bytes(n);
        let whole = {
            let mut x = LineHasher::new(HASH_START);
            x.write(&line);
            x.finish()
        };
        let mut x = LineHasher::new(HASH_START);
        let mut rest = &line[..];
        while !rest.is_empty() {
            let (a, b) = rest.split_at(rng.below(rest.len() + 1));
            x.write(a);
            rest = b;
        }
        assert_eq!(x.finish(), whole);
    }
    let h = |s: &str| hash_line(HASH_START, s);
    assert_ne!(h("ab"), h("ab\0"));
    assert_ne!(h(""), h("\0"));
    assert_ne!(h("12345678"), h("12345678\0\0\0\0\0\0\0\0"));
    // Chained: the same lines in another order hash differently.
    assert_ne!(hash_line(h("a"), "b"), hash_line(h("b"), "a"));
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

/// Issue 23 item 11: the model as the CLI names it for people, in the init line too.
#[test]
fn issue23_11_models_read_as_people_name_them() {
    assert_eq!(
        model_name("claude-opus-4-8[1m]"),
        "claude-opus-4-8 (1M context)"
    );
    assert_eq!(model_name("claude-x[200k]"), "claude-x (200K context)");
    for same in [
        "claude-opus-5-5",
        "opus",
        "",
        "[1m]",
        "a[]",
        "a[m]",
        "a[1x]",
        "a[1m",
        "a[-1m]",
    ] {
        assert_eq!(model_name(same), same);
    }
    let mut r = Renderer::new();
    r.feed(&parse_bytes(
        br#"{"type":"system","subtype":"init","model":"claude-opus-4-8[1m]","permissionMode":"default","session_id":"s"}"#,
    ));
    assert_eq!(
        r.take_update().unwrap().lines,
        ["model: claude-opus-4-8 (1M context) · permission: default"]
    );
}

/// Issue 23 items 1 and 3: a failed run's footer shows the CLI's stderr under it; denied tools
/// are counted in the footer, with what allows them.
#[test]
fn issue23_1_3_footers_show_stderr_and_denied_tools() {
    let stderr =
        vec!["error: option '--permission-mode <mode>' argument 'bogus' is invalid.".to_string()];
    let denied = vec!["Bash".to_string(), "Write".to_string(), "Bash".to_string()];
    let mut r = Renderer::new();
    r.footer(&Footer {
        status: Status::Failed,
        duration_ms: Some(400),
        num_turns: 0,
        cost_usd: 0.0,
        error: Some("the CLI exited with code 1 without a result: error: …"),
        stderr: &stderr,
        denied: &[],
        permissions: Permissions::Ask,
        changes: None,
        interrupted: false,
        task_cost_usd: None,
    });
    r.footer(&Footer {
        status: Status::Completed,
        duration_ms: Some(1_000),
        num_turns: 2,
        cost_usd: 0.5,
        error: None,
        stderr: &stderr,
        denied: &denied[..1],
        permissions: Permissions::Ask,
        changes: None,
        interrupted: false,
        task_cost_usd: None,
    });
    r.footer(&Footer {
        status: Status::Completed,
        duration_ms: None,
        num_turns: 0,
        cost_usd: 0.0,
        error: None,
        stderr: &[],
        denied: &denied,
        permissions: Permissions::Deny,
        changes: None,
        interrupted: false,
        task_cost_usd: None,
    });
    assert_eq!(
        r.take_update().unwrap().lines,
        [
            "✗ failed: the CLI exited with code 1 without a result: error: … · 0.4s",
            "  │ error: option '--permission-mode <mode>' argument 'bogus' is invalid.",
            "",
            "✓ done in 1.0s · 2 turns · $0.5000 · 1 tool denied (Bash)",
            "  ⚠ to allow: A (always) on the next request, or allowed_tools = { \"Bash\" } \
             (:help claude-tasks-permissions)",
            "",
            "✓ done · 3 tools denied (Bash, Write)",
            "  ⚠ to allow: permissions = \"ask\" (you are asked), or allowed_tools = \
             { \"Bash\", \"Write\" } (:help claude-tasks-permissions)",
        ]
    );
}
