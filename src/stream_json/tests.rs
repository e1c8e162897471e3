use super::*;
use serde_json::json;

use super::delta::{common_prefix, text_delta_line, DELTA_HEAD};
use super::parse::{from_value, parse_bytes_general, TRUNCATED_PREFIX_CHARS};
use crate::testutil::{delta_line, line};
use crate::transcript::framing::Line;

fn p(s: &str) -> Msg {
    parse(&line(s.as_bytes()))
}

#[test]
fn parses_init() {
    let m = p(
        r#"{"type":"system","subtype":"init","cwd":"/p","session_id":"s1","tools":["Bash"],"model":"opus","permissionMode":"default","x":{"y":[1]}}"#,
    );
    assert_eq!(
        m,
        Msg::Init(Init {
            session_id: "s1".into(),
            model: "opus".into(),
            cwd: "/p".into(),
            permission_mode: "default".into()
        })
    );
}

#[test]
fn parses_api_retry() {
    let m = p(
        r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":2,"retry_delay_ms":510.8134944319151,"error_status":500,"error":"server_error","session_id":"s"}"#,
    );
    assert_eq!(
        m,
        Msg::ApiRetry(ApiRetry {
            attempt: 1,
            max_retries: 2,
            retry_delay_ms: 510.8134944319151,
            error_status: Some(500),
            error: "server_error".into()
        })
    );
    let m = p(
        r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":2,"retry_delay_ms":599,"error_status":null,"error":"unknown"}"#,
    );
    let Msg::ApiRetry(r) = m else {
        panic!("not a retry")
    };
    assert_eq!(r.error_status, None);
}

#[test]
fn other_system_subtypes() {
    assert_eq!(
        p(r#"{"type":"system","subtype":"status","status":"requesting"}"#),
        Msg::System {
            subtype: "status".into()
        }
    );
    assert_eq!(
        p(r#"{"type":"system","subtype":"task_notification","status":"stopped"}"#),
        Msg::System {
            subtype: "task_notification".into()
        }
    );
}

#[test]
fn parses_assistant_blocks() {
    let m = p(
        r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"text","text":"hi"},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}},{"type":"thinking","thinking":"hmm","signature":"x"},{"type":"image"}]},"parent_tool_use_id":null}"#,
    );
    assert_eq!(
        m,
        Msg::Assistant(Assistant {
            message_id: "m1".into(),
            parent_tool_use_id: None,
            content: vec![
                Block::Text("hi".into()),
                Block::ToolUse {
                    id: "t1".into(),
                    name: "Bash".into(),
                    input: json!({"command": "ls"})
                },
                Block::Thinking("hmm".into()),
                Block::Other("image".into()),
            ],
            error: None,
        })
    );
}

#[test]
fn parses_synthetic_api_error_message() {
    let m = p(
        r#"{"type":"assistant","message":{"id":"x","content":[{"type":"text","text":"API Error: 500 boom"}]},"error":"server_error"}"#,
    );
    let Msg::Assistant(a) = m else {
        panic!("not assistant")
    };
    assert_eq!(a.error.as_deref(), Some("server_error"));
}

#[test]
fn parses_user_tool_results_and_text() {
    let m = p(
        r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"t1","type":"tool_result","content":"out","is_error":false},{"type":"tool_result","tool_use_id":"t2","content":[{"type":"text","text":"a"},{"type":"image","source":{}},{"type":"text","text":"b"}],"is_error":true},{"type":"text","text":"[Request interrupted by user]"}]}}"#,
    );
    assert_eq!(
        m,
        Msg::User(User {
            parent_tool_use_id: None,
            replay: false,
            content: vec![
                UserBlock::ToolResult(ToolResult {
                    tool_use_id: "t1".into(),
                    content: "out".into(),
                    is_error: false
                }),
                UserBlock::ToolResult(ToolResult {
                    tool_use_id: "t2".into(),
                    content: "a\n[image]\nb".into(),
                    is_error: true
                }),
                UserBlock::Text("[Request interrupted by user]".into()),
            ]
        })
    );
    // A missing is_error means success; string content of the message is text.
    let m = p(r#"{"type":"user","message":{"role":"user","content":"hello"}}"#);
    assert_eq!(
        m,
        Msg::User(User {
            parent_tool_use_id: None,
            replay: false,
            content: vec![UserBlock::Text("hello".into())]
        })
    );
}

#[test]
fn parses_stream_events_fast_and_slow() {
    let cases = [
        (
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"a\"\n\u00e9"}},"session_id":"s","parent_tool_use_id":null,"uuid":"u"}"#,
            Event::TextDelta {
                index: 2,
                text: "a\"\né".into(),
            },
        ),
        (
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"c"}}}"#,
            Event::InputJsonDelta {
                index: 1,
                partial_json: "{\"c".into(),
            },
        ),
        (
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}}"#,
            Event::ThinkingDelta {
                index: 0,
                thinking: "hm".into(),
            },
        ),
        (
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"x"}}}"#,
            Event::OtherDelta {
                index: 0,
                kind: "signature_delta".into(),
            },
        ),
        (
            r#"{"type":"stream_event","event":{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"Bash","input":{}}}}"#,
            Event::BlockStart {
                index: 1,
                block: BlockKind::ToolUse {
                    id: "t".into(),
                    name: "Bash".into(),
                },
            },
        ),
        (
            r#"{"type":"stream_event","event":{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}}"#,
            Event::BlockStart {
                index: 0,
                block: BlockKind::Thinking,
            },
        ),
        (
            r#"{"type":"stream_event","event":{"type":"content_block_stop","index":0}}"#,
            Event::BlockStop { index: 0 },
        ),
        (
            r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m","content":[],"usage":{"a":1}}},"ttft_ms":3}"#,
            Event::MessageStart { id: "m".into() },
        ),
        (
            r#"{"type":"stream_event","event":{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{}}}"#,
            Event::MessageDelta,
        ),
        (
            r#"{"type":"stream_event","event":{"type":"message_stop"}}"#,
            Event::MessageStop,
        ),
        (
            r#"{"type":"stream_event","event":{"type":"ping"}}"#,
            Event::Other("ping".into()),
        ),
    ];
    for (json, want) in cases {
        let fast = p(json);
        assert_eq!(
            fast,
            Msg::Stream(Stream {
                parent_tool_use_id: None,
                event: want.clone()
            }),
            "{json}"
        );
        // The general path (taken when the fast one fails) gives the same answer.
        let slow = from_value(&serde_json::from_str(json).unwrap());
        assert_eq!(slow, fast, "{json}");
    }
}

#[test]
fn odd_stream_events_fall_back_to_the_general_path() {
    // message_delta's `delta` has no `type`; an index as a float; duplicated keys.
    let m = p(
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":1.0,"delta":{"type":"text_delta","text":"x"}}}"#,
    );
    assert_eq!(
        m,
        Msg::Stream(Stream {
            parent_tool_use_id: None,
            event: Event::TextDelta {
                index: 1,
                text: "x".into()
            }
        })
    );
    let m = p(
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","text":"y"}}}"#,
    );
    assert_eq!(
        m,
        Msg::Stream(Stream {
            parent_tool_use_id: None,
            event: Event::TextDelta {
                index: 0,
                text: "y".into()
            }
        })
    );
    let m = p(
        r#"{"type":"stream_event","parent_tool_use_id":"toolu_1","event":{"type":"message_stop"}}"#,
    );
    assert_eq!(
        m,
        Msg::Stream(Stream {
            parent_tool_use_id: Some("toolu_1".into()),
            event: Event::MessageStop
        })
    );
}

#[test]
fn parses_results() {
    let m = p(
        r#"{"type":"result","subtype":"success","is_error":false,"api_error_status":null,"duration_ms":307,"duration_api_ms":120,"num_turns":2,"result":"done","session_id":"s","total_cost_usd":0.196635,"permission_denials":[{"tool_name":"Write","tool_use_id":"t","tool_input":{"file_path":"/p/h.txt","content":"x"}}],"terminal_reason":"completed"}"#,
    );
    let Msg::Result(r) = m else {
        panic!("not a result")
    };
    assert_eq!(
        r,
        ResultInfo {
            subtype: "success".into(),
            is_error: false,
            duration_ms: Some(307),
            duration_api_ms: Some(120),
            num_turns: 2,
            total_cost_usd: 0.196635,
            result: Some("done".into()),
            session_id: Some("s".into()),
            api_error_status: None,
            permission_denials: vec![Denial {
                tool_name: "Write".into(),
                tool_input: json!({"file_path": "/p/h.txt", "content": "x"})
            }],
            errors: vec![],
            terminal_reason: Some("completed".into()),
        }
    );
    assert_eq!(r.error_message(), None);
    assert_eq!(r.permission_denials[0].summary(), "Write(/p/h.txt)");
}

/// What 2.1.332 writes differently, each read on purpose: its new `system` subtypes are
/// `System` lines (the renderer shows none), its new fields are ignored, its result is read
/// with `type` after the answer.
#[test]
fn parses_the_lines_of_2_1_332() {
    use crate::testutil::cli_2_1_332 as v;
    assert_eq!(
        p(v::INIT),
        Msg::Init(Init {
            session_id: "de382825-553f-47f3-9a37-bcf93dde753c".into(),
            model: "claude-opus-5-5".into(),
            cwd: "/tmp/proj".into(),
            permission_mode: "default".into(),
        })
    );
    for (line, subtype) in [
        (v::STATUS, "status"),
        (v::PERMISSION_DENIED, "permission_denied"),
    ] {
        assert_eq!(
            p(line),
            Msg::System {
                subtype: subtype.into()
            }
        );
    }
    let stream = |event| {
        Msg::Stream(Stream {
            parent_tool_use_id: None,
            event,
        })
    };
    assert_eq!(
        p(v::MESSAGE_START),
        stream(Event::MessageStart {
            id: "msg_mock_2793bd3ce77144d7b637eedf".into()
        })
    );
    assert_eq!(
        p(v::DELTA),
        stream(Event::TextDelta {
            index: 0,
            text: "Hello from the mock Anthrop".into()
        })
    );
    assert!(
        same_as_general(v::DELTA.as_bytes()),
        "the fast path takes it"
    );
    assert_eq!(p(v::MESSAGE_STOP_ABANDONED), stream(Event::MessageStop));
    assert_eq!(
        p(v::API_RETRY),
        Msg::ApiRetry(ApiRetry {
            attempt: 1,
            max_retries: 10,
            retry_delay_ms: 570.0,
            error_status: None,
            error: "unknown".into(),
        })
    );
    let Msg::Assistant(a) = p(v::ASSISTANT_API_ERROR) else {
        panic!("not an assistant line")
    };
    assert_eq!(a.error.as_deref(), Some("server_error"));
    assert!(matches!(&a.content[..], [Block::Text(t)] if t.starts_with("API Error: 500 ")));
    let Msg::User(u) = p(v::USER_DENIED) else {
        panic!("not a user line")
    };
    assert!(
        matches!(&u.content[..], [UserBlock::ToolResult(r)] if r.is_error
            && r.tool_use_id == "toolu_mock_a13d993b046745d5bde69747")
    );
    let Msg::Result(r) = p(v::RESULT_API_ERROR) else {
        panic!("not a result")
    };
    assert_eq!(
        (r.is_error, r.api_error_status, r.terminal_reason.as_deref()),
        (true, Some(500), Some("api_error"))
    );
    assert!(r
        .error_message()
        .unwrap()
        .starts_with("API Error: 500 Mock error 500"));
    let Msg::Result(r) = p(v::RESULT_DENIED) else {
        panic!("not a result")
    };
    assert_eq!(
        (r.is_error, r.num_turns, r.total_cost_usd),
        (false, 2, 0.10068)
    );
    assert_eq!(
        r.permission_denials[0].summary(),
        "Write(/tmp/proj/hello.txt)"
    );
    assert_eq!(r.result.as_deref(), Some("Write step finished."));
}

/// Every line of every recording, and 2.1.332's lines, with `type` moved last after a
/// string of up to 1 MiB: the same message. No kind is told by its first bytes.
#[test]
fn every_kind_parses_the_same_whatever_the_key_order() {
    use crate::testutil::{cli_2_1_332 as v, type_last};
    let mut lines: Vec<Vec<u8>> = crate::testutil::fixtures()
        .into_iter()
        .flat_map(|(_, data)| {
            data.split(|&c| c == b'\n')
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    for l in [
        v::INIT,
        v::STATUS,
        v::PERMISSION_DENIED,
        v::MESSAGE_START,
        v::DELTA,
    ]
    .into_iter()
    .chain([v::MESSAGE_STOP_ABANDONED, v::API_RETRY, v::ASSISTANT_WRITE])
    .chain([v::USER_DENIED, v::ASSISTANT_API_ERROR])
    {
        lines.push(l.as_bytes().to_vec());
    }
    let mut kinds = std::collections::HashSet::new();
    for (i, l) in lines.iter().enumerate() {
        let Ok(text) = std::str::from_utf8(l) else {
            continue;
        };
        let pad = [0, 100, 8 * 1024, 64 * 1024][i % 4];
        let Some(moved) = type_last(text, pad) else {
            continue;
        };
        let want = parse_bytes(l);
        assert!(!matches!(want, Msg::Text(_) | Msg::Other { .. }), "{text}");
        assert_eq!(parse_bytes(moved.as_bytes()), want, "{moved}");
        let kind = format!("{want:?}");
        kinds.insert(kind.split(['(', ' ', '{']).next().unwrap_or("").to_owned());
    }
    // One line of each kind with a long string, in full.
    let huge = [
        v::INIT,
        v::STATUS,
        v::DELTA,
        v::ASSISTANT_WRITE,
        v::USER_DENIED,
    ];
    for l in huge {
        let moved = type_last(l, 1 << 20).unwrap();
        assert_eq!(parse_bytes(moved.as_bytes()), parse_bytes(l.as_bytes()));
    }
    for kind in [
        "Init",
        "ApiRetry",
        "System",
        "Assistant",
        "User",
        "Stream",
        "Result",
    ] {
        assert!(kinds.contains(kind), "{kind} missing from {kinds:?}");
    }
}

#[test]
fn result_error_messages() {
    let r = |s: &str| match p(s) {
        Msg::Result(r) => r,
        other => panic!("{other:?}"),
    };
    let unknown = r(
        r#"{"type":"result","subtype":"error_during_execution","duration_ms":0,"is_error":true,"num_turns":0,"total_cost_usd":0,"permission_denials":[],"errors":["No conversation found with session ID: 0000"]}"#,
    );
    assert_eq!(
        unknown.error_message().as_deref(),
        Some("No conversation found with session ID: 0000")
    );
    let api = r(
        r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":500,"result":"API Error: 500 Mock error 500 (api_error). More."}"#,
    );
    assert_eq!(
        api.error_message().as_deref(),
        Some("API Error: 500 Mock error 500 (api_error). More.")
    );
    let interrupted = r(
        r#"{"type":"result","subtype":"error_during_execution","is_error":true,"terminal_reason":"aborted_streaming","errors":["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"]}"#,
    );
    assert_eq!(interrupted.user_errors().count(), 0);
    assert_eq!(
        interrupted.error_message().as_deref(),
        Some("error_during_execution (aborted_streaming)")
    );
    let status_only =
        r(r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":"529"}"#);
    assert_eq!(
        status_only.error_message().as_deref(),
        Some("API error 529")
    );
    // No is_error: anything but success is an error.
    let bare = r(r#"{"type":"result","subtype":"error_max_turns"}"#);
    assert!(bare.is_error);
    assert_eq!(bare.error_message().as_deref(), Some("error_max_turns"));
}

#[test]
fn wrong_field_types_do_not_lose_the_line() {
    let m = p(
        r#"{"type":"result","subtype":7,"is_error":"yes","duration_ms":"12","num_turns":-1,"total_cost_usd":"0.5","permission_denials":{"a":1},"errors":[{"message":"bad"},3]}"#,
    );
    let Msg::Result(r) = m else {
        panic!("not a result")
    };
    assert!(r.is_error);
    assert_eq!(r.duration_ms, Some(12));
    assert_eq!(r.num_turns, 0);
    assert_eq!(r.total_cost_usd, 0.5);
    assert_eq!(r.errors, ["bad", "3"]);
    assert!(r.permission_denials.is_empty());
}

#[test]
fn unknown_and_bad_lines() {
    assert_eq!(
        p(r#"{"type":"future_thing","x":1}"#),
        Msg::Other {
            kind: "future_thing".into()
        }
    );
    assert_eq!(p(r#"{"no_type":1}"#), Msg::Other { kind: "".into() });
    assert_eq!(p("not json at all"), Msg::Text("not json at all".into()));
    assert_eq!(p("[1,2]"), Msg::Text("[1,2]".into()));
    assert_eq!(p("42"), Msg::Text("42".into()));
    assert_eq!(p(""), Msg::Text("".into()));
    assert_eq!(
        p(r#"{"type":"assistant","message":{"content":[{"type":"te"#),
        Msg::Text(r#"{"type":"assistant","message":{"content":[{"type":"te"#.into())
    );
    // Deep nesting hits serde_json's recursion limit: an error, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(p(&deep), Msg::Text(_)));
}

#[test]
fn invalid_utf8_is_read_lossily() {
    let mut bytes =
        br#"{"type":"assistant","message":{"content":[{"type":"text","text":"a"#.to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(br#"b"}]}}"#);
    let Msg::Assistant(a) = parse(&line(&bytes)) else {
        panic!("not assistant")
    };
    assert_eq!(a.content, vec![Block::Text("a\u{fffd}\u{fffd}b".into())]);
    assert_eq!(
        parse(&line(b"plain \xff text\x00")),
        Msg::Text("plain \u{fffd} text\0".into())
    );
    // Same in a delta, which goes through the fast path first.
    let mut bytes = br#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""#.to_vec();
    bytes.push(0xc3);
    bytes.extend_from_slice(br#""}}}"#);
    assert_eq!(
        parse(&line(&bytes)),
        Msg::Stream(Stream {
            parent_tool_use_id: None,
            event: Event::TextDelta {
                index: 0,
                text: "\u{fffd}".into()
            }
        })
    );
}

#[test]
fn truncated_lines_keep_a_prefix() {
    let mut bytes = vec![b'x'; 1000];
    bytes[0] = b'{';
    let l = Line {
        bytes: bytes.clone(),
        total_len: 9_000_000,
        offset: 5,
    };
    let Msg::Truncated { prefix, total_len } = parse(&l) else {
        panic!("not truncated")
    };
    assert_eq!(total_len, 9_000_000);
    assert_eq!(prefix.chars().count(), TRUNCATED_PREFIX_CHARS);
    assert!(prefix.starts_with("{xxx"));
    // A multi-byte char cut by the framer becomes a replacement char, never a panic.
    let l = Line {
        bytes: "é".repeat(10).into_bytes()[..7].to_vec(),
        total_len: 100,
        offset: 0,
    };
    let Msg::Truncated { prefix, .. } = parse(&l) else {
        panic!("not truncated")
    };
    assert_eq!(prefix, "ééé\u{fffd}");
}

#[test]
fn never_panics_on_arbitrary_bytes() {
    let mut rng = crate::testutil::Rng(0x9e37_79b9_7f4a_7c15);
    let mut next = move || rng.next_u64();
    let base = br#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}}"#;
    for _ in 0..20_000 {
        let mut b = base.to_vec();
        let edits = next() % 4 + 1;
        for _ in 0..edits {
            let pos = (next() as usize) % b.len();
            match next() % 3 {
                0 => b[pos] = next() as u8,
                1 => {
                    b.remove(pos);
                }
                _ => b.insert(pos, next() as u8),
            }
        }
        let _ = parse(&line(&b));
    }
}

/// The fast path and the general one agree; returns whether the fast path took the line.
fn same_as_general(b: &[u8]) -> bool {
    let general = parse_bytes_general(b);
    assert_eq!(parse_bytes(b), general, "{}", String::from_utf8_lossy(b));
    if let Some(d) = text_delta(b) {
        // `clean` exactly when sanitizing would find nothing but the newlines it splits at.
        let clean = !d
            .text
            .bytes()
            .any(|c| c != b'\n' && crate::transcript::scan::is_unclean(c));
        assert_eq!(d.clean, clean, "{}", String::from_utf8_lossy(b));
    }
    match text_delta_line(b) {
        Some(stream) => {
            assert_eq!(Msg::Stream(stream), general);
            true
        }
        None => false,
    }
}

const SAMPLE_DELTA: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Runnin"}},"session_id":"3de759a8-2e73-4cfa-a1bb-60dea8c48e6a","parent_tool_use_id":null,"uuid":"e7ccae0a-df20-4486-a70e-86bd8f333fad"}"#;

#[test]
fn text_delta_fast_path_reads_the_cli_line() {
    assert_eq!(
        text_delta_line(SAMPLE_DELTA.as_bytes()),
        Some(Stream {
            parent_tool_use_id: None,
            event: Event::TextDelta {
                index: 0,
                text: "Runnin".into()
            }
        })
    );
    let b = delta_line(
        "3",
        r"a\n\u00e9\ud83d\ude00",
        r#","parent_tool_use_id":"toolu_1"}"#,
    );
    assert_eq!(
        text_delta_line(b.as_bytes()),
        Some(Stream {
            parent_tool_use_id: Some("toolu_1".into()),
            event: Event::TextDelta {
                index: 3,
                text: "a\né😀".into()
            }
        })
    );
}

#[test]
fn text_delta_fast_path_matches_the_fixtures() {
    let (mut lines, mut fast) = (0, 0);
    for (_, data) in crate::testutil::fixtures() {
        for l in data.split(|&c| c == b'\n') {
            lines += 1;
            let took = same_as_general(l);
            // Every text delta the CLI wrote has the shape the fast path expects.
            let is_text_delta =
                l.starts_with(DELTA_HEAD) && l.windows(12).any(|w| w == br#""text_delta""#);
            assert_eq!(took, is_text_delta, "{}", String::from_utf8_lossy(l));
            fast += usize::from(took);
        }
    }
    assert!(lines > 100 && fast > 10, "{lines} lines, {fast} fast");
}

#[test]
fn text_delta_fast_path_matches_generated_lines() {
    // (text as written in the JSON, whether the fast path takes it)
    let texts = [
        ("", true),
        ("Runnin", true),
        ("a long enough text to cross several eight-byte words", true),
        (r"\n", true),
        (r"\t\b\f\r", true),
        (r#"\""#, true),
        (r"\\", true),
        (r"\/", true),
        (r"x\\\\\\y", true),
        (r"\u00e9", true),
        (r"\u00E9x", true),
        (r"\u0000", true),
        (r"\ud83d\ude00", true),
        (r"\uD83D\uDE00tail", true),
        ("é漢😀 and more multibyte ✓", true),
        (r"é\u00e9é", true),
        (r"\ud800", false),
        (r"\ud800x", false),
        (r"\ud800\u0041", false),
        (r"\ud800\ud800", false),
        (r"\udc00", false),
        (r"\x", false),
        (r"\u12", false),
        (r"\u12g4", false),
        (r"\U00e9", false),
        ("\u{1}", false),
        ("tab\there", false),
        ("\u{7f}", true),
        ("x\u{7f}y and more text to cross a sixteen-byte block", true),
        (r"\u001b[31mred\u001b[0m", true),
        (r"\u0009\u000a\u001f\u007f\u0080", true),
        (r"bell\u0007", true),
    ];
    let indexes = [
        ("0", true),
        ("7", true),
        ("18446744073709551615", true),
        ("18446744073709551616", false),
        ("99999999999999999999999", false),
        ("00", false),
        ("01", false),
        ("-1", false),
        ("-0", false),
        ("1.0", false),
        ("1e2", false),
        (" 1", false),
        ("\"1\"", false),
        ("null", false),
    ];
    let tails = [
        ("}", true),
        (
            r#","session_id":"s","parent_tool_use_id":null,"uuid":"u"}"#,
            true,
        ),
        (r#","parent_tool_use_id":"toolu_1"}"#, true),
        (
            r#","session_id":"s","parent_tool_use_id":null,"uuid":"u","api_message_id":"msg_1"}"#,
            true,
        ),
        (
            r#","uuid":"u","parent_tool_use_id":"p","session_id":"s"}"#,
            true,
        ),
        (r#","parent_tool_use_id":"é"}"#, true),
        (r#","extra":"x","extra":null}"#, true),
        (r#","":""}"#, true),
        (r#","extra":1}"#, false),
        (r#","extra":{}}"#, false),
        (
            r#","parent_tool_use_id":null,"parent_tool_use_id":"p"}"#,
            false,
        ),
        (r#","parent_tool_use_id":"a\"b"}"#, false),
        (r#","parent_tool_use_id":"\u0070"}"#, false),
        (r#","parent\u005ftool_use_id":"p"}"#, false),
        (r#","parent_tool_use_id":1}"#, false),
        (r#","parent_tool_use_id":true}"#, false),
        (r#","parent_tool_use_id":nul}"#, false),
        (r#","type":"stream_event"}"#, false),
        (r#","event":null}"#, false),
        (r#","type":"assistant"}"#, false),
        (r#", "uuid":"u"}"#, false),
        (r#","uuid" :"u"}"#, false),
        (r#","uuid":"u",}"#, false),
        ("} ", false),
        ("}\r", false),
        ("}x", false),
        ("}}", false),
        (",", false),
        ("", false),
    ];
    for (text, text_ok) in texts {
        for (index, index_ok) in indexes {
            for (tail, tail_ok) in tails {
                let b = delta_line(index, text, tail);
                let took = same_as_general(b.as_bytes());
                assert_eq!(took, text_ok && index_ok && tail_ok, "{b}");
            }
        }
    }
    // Random texts from pieces that meet at every boundary: escapes next to runs, surrogate
    // halves in any order, stray quotes, backslashes and control characters.
    let pieces = [
        "a",
        "é",
        "漢",
        "😀",
        " ",
        r"\n",
        r#"\""#,
        r"\\",
        r"\/",
        r"\b",
        r"\u00e9",
        r"\u0000",
        r"\uD83D",
        r"\uDE00",
        r"\ud83d\ude00",
        r"\x",
        "\\",
        "\"",
        "\u{1}",
        "\t",
        "}",
    ];
    let mut seed: u64 = 0x1234_5678_9abc_def1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as usize
    };
    let mut fast = 0;
    for _ in 0..5_000 {
        let text: String = (0..next() % 12)
            .map(|_| pieces[next() % pieces.len()])
            .collect();
        let tail = tails[next() % 5].0;
        fast += usize::from(same_as_general(delta_line("1", &text, tail).as_bytes()));
    }
    assert!(fast > 500, "{fast}");
    // Other shapes all go to the general path.
    for b in [
        r#"{"event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}},"type":"stream_event"}"#,
        r#"{"type": "stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"},"index":0}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"text":"x","type":"text_delta"}}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","text":"y"}}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"},"index":1}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"x"}}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}},"parent_tool_use_id":"p","event":{}}"#,
    ] {
        assert!(!same_as_general(b.as_bytes()), "{b}");
    }
    // Invalid UTF-8 anywhere: the general path reads it lossily.
    for (text, tail) in [
        (&b"a\xc3"[..], &b"}"[..]),
        (b"\xff", b"}"),
        (b"\xed\xa0\x80", b"}"),
        (b"ok", b",\"uuid\":\"\xff\"}"),
        (b"ok", b",\"parent_tool_use_id\":\"\xc3\"}"),
        (b"\\n\xc3", b"}"),
    ] {
        let mut b = delta_line("0", "", "").into_bytes();
        b.truncate(b.len() - 3);
        b.extend_from_slice(text);
        b.extend_from_slice(b"\"}}");
        b.extend_from_slice(tail);
        assert!(!same_as_general(&b), "{}", String::from_utf8_lossy(&b));
    }
}

#[test]
fn common_prefix_finds_the_first_difference() {
    let mut rng = crate::testutil::Rng(0x51ed_2701);
    for _ in 0..20_000 {
        let n = rng.below(40);
        let a = rng.bytes(n);
        let mut b = a.clone();
        b.truncate(rng.below(a.len() + 1));
        if !b.is_empty() && rng.below(2) == 0 {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        let more = rng.below(5);
        b.extend(rng.bytes(more));
        let naive = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        assert_eq!(common_prefix(&a, &b), naive, "{a:?} {b:?}");
    }
}

/// A text delta as 2.1.332 writes it: `api_message_id` after the uuid, which changes on every
/// line.
const SAMPLE_DELTA_332: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello from the mock Anthrop"}},"session_id":"3c51411a-8ca3-48d4-9bc6-8982346afca4","parent_tool_use_id":null,"uuid":"dbce6dee-3144-486a-a1b2-f2542b89e525","api_message_id":"msg_mock_2793bd3ce77144d7b637eedf"}"#;

/// `DeltaParser` parses `b` as `text_delta` does alone, and as the general path does (the
/// fast path's own reference); returns whether it reused its memory for it.
fn check(p: &mut DeltaParser, b: &[u8]) -> bool {
    let before = p.reused();
    assert_eq!(p.parse(b), text_delta(b), "{}", String::from_utf8_lossy(b));
    same_as_general(b);
    p.reused() > before
}

/// The lines of one message from either CLI, the uuid new on every line: all but the first
/// take the short check.
#[test]
fn delta_parser_reuses_the_tail_of_both_clis_lines() {
    for sample in [SAMPLE_DELTA, SAMPLE_DELTA_332] {
        let mut p = DeltaParser::default();
        let uuid = sample.find(r#""uuid":""#).unwrap() + r#""uuid":""#.len();
        for i in 0..100u64 {
            let mut line = sample.to_string();
            line.replace_range(uuid..uuid + 36, &format!("{:036x}", i * 7919));
            assert!(text_delta(line.as_bytes()).is_some(), "{line}");
            assert_eq!(check(&mut p, line.as_bytes()), i > 0, "{line}");
        }
    }
}

/// Tails of five fields in every order, the changing string in every position: the memory
/// is reused for a changed free string wherever it sits, and for nothing else (the parent's
/// string, two changed strings, a changed key, a string that became null, an escape, a
/// number), and every line parses as it parses alone.
#[test]
fn delta_parser_reuses_the_tail_whatever_the_changing_values_position() {
    const SESSION: &str = r#""3c51411a-8ca3-48d4-9bc6-8982346afca4""#;
    for parent in ["null", r#""toolu_01""#] {
        let fields = [
            ("session_id", SESSION),
            ("parent_tool_use_id", parent),
            ("uuid", r#""dbce6dee-3144-486a-a1b2-f2542b89e525""#),
            ("api_message_id", r#""msg_mock_2793bd3ce77144d7b637eedf""#),
            ("note", r#""""#),
        ];
        let n = fields.len();
        let orders = (0..n.pow(n as u32)).filter_map(|mut code| {
            let order: Vec<usize> = (0..n)
                .map(|_| {
                    let i = code % n;
                    code /= n;
                    i
                })
                .collect();
            let distinct = (0..n).all(|i| order.contains(&i));
            distinct.then_some(order)
        });
        let mut orders_seen = 0;
        for order in orders {
            orders_seen += 1;
            let line = |changed: &[(usize, &str)], key_of: Option<usize>| {
                let mut tail = String::new();
                for &i in &order {
                    let (key, value) = fields[i];
                    let value = changed
                        .iter()
                        .find(|(c, _)| *c == i)
                        .map_or(value, |(_, v)| *v);
                    let key = if key_of == Some(i) { "other_key" } else { key };
                    tail.push_str(&format!(r#","{key}":{value}"#));
                }
                tail.push('}');
                delta_line("0", r"a line\n", &tail)
            };
            let base = line(&[], None);
            // Whether the line right after the base line reuses the base's memory.
            let after_base = |b: &str| {
                let mut p = DeltaParser::default();
                assert!(!check(&mut p, base.as_bytes()), "{base}");
                check(&mut p, b.as_bytes())
            };
            for (i, (key, _)) in fields.iter().enumerate() {
                let is_free = *key != "parent_tool_use_id";
                // Another string, of any length, in the free field: reused.
                for v in [r#""x""#, r#""a longer value é 漢""#, r#""""#] {
                    let b = line(&[(i, v)], None);
                    let same = b == base;
                    assert_eq!(after_base(&b), is_free || same, "{b}");
                }
                // Changes the short check must not take: each checked whole.
                let others = [
                    line(&[(i, r#""a\nb""#)], None),
                    line(&[(i, "null")], None),
                    line(&[(i, "1")], None),
                    line(&[(i, r#""x"#)], None),
                    line(&[], Some(i)),
                    line(&[(i, r#""x""#), ((i + 1) % n, r#""z""#)], None),
                ];
                for b in others.iter().filter(|b| **b != base) {
                    assert!(!after_base(b), "{b}");
                }
            }
            // The parent's string changed: a different result, never the remembered one.
            if parent != "null" {
                let b = line(&[(1, r#""toolu_02""#)], None);
                assert!(!after_base(&b), "{b}");
                let mut p = DeltaParser::default();
                p.parse(base.as_bytes());
                let d = p.parse(b.as_bytes()).expect("a delta");
                assert_eq!(d.parent_tool_use_id, Some("toolu_02"));
            }
            // A message's lines, each with a new uuid, whatever the order.
            let mut p = DeltaParser::default();
            for k in 0..20 {
                let uuid = format!(r#""u-{k}""#);
                assert_eq!(check(&mut p, line(&[(2, &uuid)], None).as_bytes()), k > 0);
            }
            // The changed string in turn in each free field, against the same memory (the
            // first of those lines).
            for k in 0..30 {
                let field = [0, 2, 3, 4][k % 4];
                let value = format!(r#""v-{k}""#);
                let mut changed = vec![(2, r#""u-0""#), (field, value.as_str())];
                changed.retain(|&(f, v)| f != field || v == value);
                assert!(check(&mut p, line(&changed, None).as_bytes()), "{k}");
            }
        }
        assert_eq!(orders_seen, 120);
    }
}

/// The memory of `DeltaParser` never changes a result: every line, in any order, parses as
/// `text_delta` parses it alone.
#[test]
fn delta_parser_with_memory_matches_text_delta() {
    let mut p = DeltaParser::default();
    // The fixtures, in order.
    for (_, data) in crate::testutil::fixtures() {
        for l in data.split(|&c| c == b'\n') {
            check(&mut p, l);
        }
    }
    // Lines that share the remembered tail but for one value, or part of it.
    let with_parent = delta_line(
        "1",
        "x",
        r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u1"}"#,
    );
    let variants = [
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2"}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2","x":1}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"\n"}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":null}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"é"}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u"} "#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u""#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2","api_message_id":"m"}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u1","api_message_id":"m"}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2","api_message_id":"m2"}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2","api_message_id":null}"#,
        ),
    ];
    for v in &variants {
        check(&mut p, with_parent.as_bytes());
        check(&mut p, v.as_bytes());
        check(&mut p, v.as_bytes());
    }
    check(&mut p, SAMPLE_DELTA.as_bytes());
    assert!(!p.memory.tail.is_empty(), "the CLI's line is remembered");
    // The mutations of the fast path's own test, each after a line that sets the memory (the
    // unchanged line, or the mutation before it).
    let mut rng = crate::testutil::Rng(0x9e37_79b9_7f4a_7c15);
    let interesting = b"\"\\{}:,0123456789unlx \x00\x1f\x7f\x80\xc3\xa9\xed";
    let mut previous = Vec::new();
    for round in 0..40_000 {
        let base = [SAMPLE_DELTA, SAMPLE_DELTA_332][round % 2].as_bytes();
        let mut b = base.to_vec();
        // Mostly in the tail, where the memory is used.
        let tail_from = b.len() - 200;
        for _ in 0..rng.below(3) + 1 {
            let pos = tail_from + rng.below(b.len() - tail_from + 1);
            let byte = interesting[rng.below(interesting.len())];
            match rng.below(3) {
                0 if pos < b.len() => b[pos] = byte,
                1 if pos < b.len() => {
                    b.remove(pos);
                }
                _ => b.insert(pos, byte),
            }
        }
        if rng.below(2) == 0 {
            check(&mut p, base);
        } else {
            check(&mut p, &previous);
        }
        check(&mut p, &b);
        previous = b;
    }
}

#[test]
fn text_delta_fast_path_matches_cut_and_mutated_lines() {
    let samples = [
        SAMPLE_DELTA.to_string(),
        SAMPLE_DELTA_332.to_string(),
        delta_line(
            "12",
            r#"a\"\\\/\n\u00e9\ud83d\ude00é"#,
            r#","parent_tool_use_id":"toolu_01","uuid":"u"}"#,
        ),
    ];
    for s in &samples {
        assert!(same_as_general(s.as_bytes()));
        for cut in 0..s.len() {
            assert!(!same_as_general(&s.as_bytes()[..cut]));
        }
    }
    let mut rng = crate::testutil::Rng(0x2545_f491_4f6c_dd1d);
    let mut next = move || rng.next_u64();
    // Bytes that matter to the grammar are far likelier than random ones.
    let interesting = b"\"\\{}:,0123456789unlx \x00\x1f\x7f\x80\xc3\xa9\xed";
    let mut fast = 0;
    for _ in 0..20_000 {
        let mut b = samples[(next() % 3) as usize].as_bytes().to_vec();
        for _ in 0..next() % 3 + 1 {
            let pos = (next() as usize) % (b.len() + 1);
            let byte = if next() % 4 == 0 {
                next() as u8
            } else {
                interesting[(next() as usize) % interesting.len()]
            };
            match next() % 3 {
                0 if pos < b.len() => b[pos] = byte,
                1 if pos < b.len() => {
                    b.remove(pos);
                }
                _ => b.insert(pos, byte),
            }
        }
        fast += usize::from(same_as_general(&b));
    }
    // Some mutations keep the shape (inside the text or the ids), so both sides get tested.
    assert!(fast > 1000, "{fast}");
}
