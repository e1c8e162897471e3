//! Recorded CLI runs render as a person should read them: the repository's fixtures, fed
//! line by line and in one go, and every shared recording alike.

use super::*;
use crate::task::{Permissions, Status};

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
fn every_shared_fixture_renders() {
    // Every recorded run of every CLI version: the repository's (both pinned versions, the
    // compressed floods included) and the shared set where it is checked out.
    let roots = fixture_versions();
    let mut count = 0;
    let mut compressed = 0;
    let dirs = roots
        .iter()
        .flat_map(|root| std::fs::read_dir(root).unwrap())
        .map(|entry| entry.unwrap().path());
    for dir in dirs {
        let Some(bytes) = read_stdout(&dir) else {
            continue;
        };
        if !dir.join("stdout.jsonl").exists() {
            compressed += 1;
        }
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
    // At least 2.1.332's flood, which only this reader decompresses.
    assert!(compressed >= 1, "no compressed fixture rendered");
    let versions: Vec<_> = roots.iter().filter_map(|r| r.file_name()).collect();
    for v in ["claude-cli-2.1.197", "claude-cli-2.1.332"] {
        assert!(
            versions.iter().any(|n| *n == v),
            "{v} missing: {versions:?}"
        );
    }
}
