//! The stream-json parsers' tests, by topic; this module holds only the helpers they share.

mod bad_input;
mod delta_memory;
mod fast_path;
mod messages;
mod results;
mod unsaved_modes;
mod versions;

use super::delta::text_delta_line;
use super::parse::parse_bytes_general;
use super::*;
use crate::testutil::line;

fn p(s: &str) -> Msg {
    parse(&line(s.as_bytes()))
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

/// A text delta as 2.1.332 writes it: `api_message_id` after the uuid, which changes on every
/// line.
const SAMPLE_DELTA_332: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello from the mock Anthrop"}},"session_id":"3c51411a-8ca3-48d4-9bc6-8982346afca4","parent_tool_use_id":null,"uuid":"dbce6dee-3144-486a-a1b2-f2542b89e525","api_message_id":"msg_mock_2793bd3ce77144d7b637eedf"}"#;
