//! Lines as other CLI versions write them: 2.1.332's, and every kind with `type` after the
//! other keys.

use super::*;

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
