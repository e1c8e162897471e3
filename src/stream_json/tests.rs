use super::*;
use serde_json::json;

use super::delta::{text_delta_line, DELTA_HEAD};
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
        r#"{"type":"result","subtype":"success","is_error":false,"api_error_status":null,"duration_ms":307,"num_turns":2,"result":"done","session_id":"s","total_cost_usd":0.196635,"permission_denials":[{"tool_name":"Write","tool_use_id":"t","tool_input":{"file_path":"/p/h.txt","content":"x"}}],"terminal_reason":"completed"}"#,
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
        let tail = tails[next() % 4].0;
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

/// The memory of `DeltaParser` never changes a result: every line, in any order, parses as
/// `text_delta` parses it alone.
#[test]
fn delta_parser_with_memory_matches_text_delta() {
    fn check(p: &mut DeltaParser, b: &[u8]) {
        assert_eq!(p.parse(b), text_delta(b), "{}", String::from_utf8_lossy(b));
    }
    let mut p = DeltaParser::default();
    // The fixtures, in order.
    for (_, data) in crate::testutil::fixtures() {
        data.split(|&c| c == b'\n').for_each(|l| check(&mut p, l));
    }
    // Lines that share the remembered tail up to their last value, or part of it.
    let base = SAMPLE_DELTA.as_bytes();
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
    ];
    for v in &variants {
        check(&mut p, with_parent.as_bytes());
        check(&mut p, v.as_bytes());
    }
    check(&mut p, base);
    assert!(!p.prefix.is_empty(), "the CLI's line is remembered");
    // The mutations of the fast path's own test, each after a line that sets the memory.
    let mut rng = crate::testutil::Rng(0x9e37_79b9_7f4a_7c15);
    let interesting = b"\"\\{}:,0123456789unlx \x00\x1f\x7f\x80\xc3\xa9\xed";
    for _ in 0..20_000 {
        let mut b = base.to_vec();
        // Mostly in the tail, where the memory is used.
        let tail_from = b.len() - 120;
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
        check(&mut p, base);
        check(&mut p, &b);
    }
}

#[test]
fn text_delta_fast_path_matches_cut_and_mutated_lines() {
    let samples = [
        SAMPLE_DELTA.to_string(),
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
        let mut b = samples[(next() % 2) as usize].as_bytes().to_vec();
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
