//! A run's result line: its fields, its error message, fields of the wrong type.

use super::*;
use serde_json::json;

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
