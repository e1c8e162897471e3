//! The frame around a run's lines: the task's header, follow-up separators, footers and
//! notes, and the model's name in the init line.

use super::*;
use crate::render::frame::footer_line;
use crate::stream_json::parse_bytes;
use crate::task::{Permissions, Status};

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
