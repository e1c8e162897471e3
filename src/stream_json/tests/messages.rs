//! Each kind of line parses to its message: init, retries, system lines, assistant and user
//! messages, stream events (by the fast path and by the general one).

use super::*;
use crate::stream_json::parse::from_value;
use serde_json::json;

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
