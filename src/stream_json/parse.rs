//! The general parser of a transcript line: serde, with a borrowed fast path for stream
//! events and lenient accessors, so that no line is ever lost.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::delta::text_delta_line;
use super::fields::{get_bool, get_f64, get_str, get_string, get_text, get_u64};
use super::{
    ApiRetry, Assistant, Block, BlockKind, Denial, Event, Init, Msg, ResultInfo, Stream,
    ToolResult, User, UserBlock,
};
use crate::transcript::framing::{Line, LineRef};

/// How many characters of a truncated line we keep to show it.
pub(super) const TRUNCATED_PREFIX_CHARS: usize = 200;

/// Parses one line of the transcript. Never panics, whatever the bytes.
pub fn parse(line: &Line) -> Msg {
    parse_ref(line.as_ref())
}

/// `parse` of a lent line.
pub fn parse_ref(line: LineRef) -> Msg {
    if line.truncated() {
        // A UTF-8 char is at most 4 bytes, so this many bytes hold the prefix we show.
        let head = &line.bytes[..line.bytes.len().min(TRUNCATED_PREFIX_CHARS * 4)];
        let prefix: String = String::from_utf8_lossy(head)
            .chars()
            .take(TRUNCATED_PREFIX_CHARS)
            .collect();
        return Msg::Truncated {
            prefix,
            total_len: line.total_len,
        };
    }
    parse_bytes(line.bytes)
}

/// Parses the bytes of one complete line (without its newline).
pub fn parse_bytes(bytes: &[u8]) -> Msg {
    // Text deltas are most of the lines of a long answer, and serde costs ~8k instructions each.
    if let Some(stream) = text_delta_line(bytes) {
        return Msg::Stream(stream);
    }
    parse_bytes_general(bytes)
}

pub(super) fn parse_bytes_general(bytes: &[u8]) -> Msg {
    // Deltas are most of the lines of a long answer, so they get a parse into borrowed structs
    // that skips every field we do not need; anything unusual takes the general path.
    if bytes.starts_with(br#"{"type":"stream_event""#) {
        if let Ok(fast) = serde_json::from_slice::<FastStream>(bytes) {
            if fast.ty == "stream_event" {
                return Msg::Stream(Stream {
                    parent_tool_use_id: fast.parent_tool_use_id,
                    event: fast.event.into_event(),
                });
            }
        }
    }
    let value = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => v,
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            match text {
                // Valid UTF-8 that is not JSON: nothing more to try.
                Cow::Borrowed(s) => return Msg::Text(s.to_string()),
                Cow::Owned(s) => match serde_json::from_str::<Value>(&s) {
                    Ok(v) => v,
                    Err(_) => return Msg::Text(s),
                },
            }
        }
    };
    if !value.is_object() {
        return Msg::Text(String::from_utf8_lossy(bytes).into_owned());
    }
    from_value(&value)
}

#[derive(Deserialize)]
struct FastStream<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(default)]
    parent_tool_use_id: Option<String>,
    #[serde(borrow)]
    event: FastEvent<'a>,
}

#[derive(Deserialize)]
struct FastEvent<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<FastDelta<'a>>,
    #[serde(default, borrow)]
    content_block: Option<FastBlock<'a>>,
    #[serde(default)]
    message: Option<FastMessage>,
}

// Borrowed where the JSON has no escapes, to save an allocation per field on the hot path.
#[derive(Deserialize)]
struct FastDelta<'a> {
    #[serde(rename = "type", default, borrow)]
    ty: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct FastBlock<'a> {
    #[serde(rename = "type", default, borrow)]
    ty: Cow<'a, str>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct FastMessage {
    #[serde(default)]
    id: Option<String>,
}

impl FastEvent<'_> {
    fn into_event(self) -> Event {
        let index = self.index.unwrap_or(0);
        match &*self.ty {
            "content_block_delta" => {
                let d = self.delta.unwrap_or(FastDelta {
                    ty: Cow::Borrowed(""),
                    text: None,
                    partial_json: None,
                    thinking: None,
                });
                let own = |s: Option<Cow<str>>| s.map(Cow::into_owned);
                delta_event(
                    index,
                    &d.ty,
                    own(d.text),
                    own(d.partial_json),
                    own(d.thinking),
                )
            }
            "content_block_start" => {
                let b = self.content_block.unwrap_or(FastBlock {
                    ty: Cow::Borrowed(""),
                    id: None,
                    name: None,
                });
                Event::BlockStart {
                    index,
                    block: block_kind(&b.ty, b.id, b.name),
                }
            }
            "content_block_stop" => Event::BlockStop { index },
            "message_start" => Event::MessageStart {
                id: self.message.and_then(|m| m.id).unwrap_or_default(),
            },
            "message_delta" => Event::MessageDelta,
            "message_stop" => Event::MessageStop,
            other => Event::Other(other.to_string()),
        }
    }
}

fn delta_event(
    index: u64,
    ty: &str,
    text: Option<String>,
    partial_json: Option<String>,
    thinking: Option<String>,
) -> Event {
    match ty {
        "text_delta" => Event::TextDelta {
            index,
            text: text.unwrap_or_default(),
        },
        "input_json_delta" => Event::InputJsonDelta {
            index,
            partial_json: partial_json.unwrap_or_default(),
        },
        "thinking_delta" => Event::ThinkingDelta {
            index,
            thinking: thinking.unwrap_or_default(),
        },
        other => Event::OtherDelta {
            index,
            kind: other.to_string(),
        },
    }
}

fn block_kind(ty: &str, id: Option<String>, name: Option<String>) -> BlockKind {
    match ty {
        "text" => BlockKind::Text,
        "tool_use" | "server_tool_use" | "mcp_tool_use" => BlockKind::ToolUse {
            id: id.unwrap_or_default(),
            name: name.unwrap_or_default(),
        },
        "thinking" | "redacted_thinking" => BlockKind::Thinking,
        other => BlockKind::Other(other.to_string()),
    }
}

pub(super) fn from_value(v: &Value) -> Msg {
    let kind = get_str(v, "type").unwrap_or_default();
    match kind {
        "system" => match get_str(v, "subtype").unwrap_or_default() {
            "init" => Msg::Init(Init {
                session_id: get_string(v, "session_id"),
                model: get_string(v, "model"),
                cwd: get_string(v, "cwd"),
                permission_mode: get_string(v, "permissionMode"),
            }),
            "api_retry" => Msg::ApiRetry(ApiRetry {
                attempt: get_u64(v, "attempt").unwrap_or(0),
                max_retries: get_u64(v, "max_retries").unwrap_or(0),
                retry_delay_ms: get_f64(v, "retry_delay_ms").unwrap_or(0.0),
                error_status: get_u64(v, "error_status"),
                error: get_text(v, "error").unwrap_or_default(),
            }),
            other => Msg::System {
                subtype: other.to_string(),
            },
        },
        "assistant" => {
            let message = v.get("message").unwrap_or(&Value::Null);
            Msg::Assistant(Assistant {
                message_id: get_string(message, "id"),
                parent_tool_use_id: get_str(v, "parent_tool_use_id").map(str::to_string),
                content: content_items(message)
                    .map(|items| items.iter().map(assistant_block).collect())
                    .unwrap_or_else(|| {
                        get_str(message, "content")
                            .map(|s| vec![Block::Text(s.to_string())])
                            .unwrap_or_default()
                    }),
                error: get_text(v, "error"),
            })
        }
        "user" => {
            let message = v.get("message").unwrap_or(&Value::Null);
            Msg::User(User {
                parent_tool_use_id: get_str(v, "parent_tool_use_id").map(str::to_string),
                replay: get_bool(v, "isReplay").unwrap_or(false),
                content: content_items(message)
                    .map(|items| items.iter().map(user_block).collect())
                    .unwrap_or_else(|| {
                        get_str(message, "content")
                            .map(|s| vec![UserBlock::Text(s.to_string())])
                            .unwrap_or_default()
                    }),
            })
        }
        "stream_event" => {
            let e = v.get("event").unwrap_or(&Value::Null);
            Msg::Stream(Stream {
                parent_tool_use_id: get_str(v, "parent_tool_use_id").map(str::to_string),
                event: event_from_value(e),
            })
        }
        "result" => Msg::Result(result_from_value(v)),
        other => match super::control::from_value(other, v) {
            Some(c) => Msg::Control(c),
            None => Msg::Other {
                kind: other.to_string(),
            },
        },
    }
}

fn content_items(message: &Value) -> Option<&Vec<Value>> {
    message.get("content").and_then(Value::as_array)
}

fn assistant_block(b: &Value) -> Block {
    match get_str(b, "type").unwrap_or_default() {
        "text" => Block::Text(get_string(b, "text")),
        "tool_use" | "server_tool_use" | "mcp_tool_use" => Block::ToolUse {
            id: get_string(b, "id"),
            name: get_string(b, "name"),
            input: b.get("input").cloned().unwrap_or(Value::Null),
        },
        "thinking" => Block::Thinking(get_string(b, "thinking")),
        "redacted_thinking" => Block::Thinking(String::new()),
        other => Block::Other(other.to_string()),
    }
}

fn user_block(b: &Value) -> UserBlock {
    match get_str(b, "type").unwrap_or_default() {
        "tool_result" => UserBlock::ToolResult(ToolResult {
            tool_use_id: get_string(b, "tool_use_id"),
            content: tool_result_text(b.get("content").unwrap_or(&Value::Null)),
            is_error: get_bool(b, "is_error").unwrap_or(false),
        }),
        "text" => UserBlock::Text(get_string(b, "text")),
        other => UserBlock::Other(other.to_string()),
    }
}

fn tool_result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                let piece: Cow<str> = match get_str(p, "type").unwrap_or_default() {
                    "text" => Cow::Borrowed(get_str(p, "text").unwrap_or_default()),
                    "" => match p.as_str() {
                        Some(s) => Cow::Borrowed(s),
                        None => continue,
                    },
                    other => Cow::Owned(format!("[{other}]")),
                };
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&piece);
            }
            out
        }
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn event_from_value(e: &Value) -> Event {
    let index = get_u64(e, "index").unwrap_or(0);
    match get_str(e, "type").unwrap_or_default() {
        "content_block_delta" => {
            let d = e.get("delta").unwrap_or(&Value::Null);
            let s = |k| get_str(d, k).map(str::to_string);
            delta_event(
                index,
                get_str(d, "type").unwrap_or_default(),
                s("text"),
                s("partial_json"),
                s("thinking"),
            )
        }
        "content_block_start" => {
            let b = e.get("content_block").unwrap_or(&Value::Null);
            Event::BlockStart {
                index,
                block: block_kind(
                    get_str(b, "type").unwrap_or_default(),
                    get_str(b, "id").map(str::to_string),
                    get_str(b, "name").map(str::to_string),
                ),
            }
        }
        "content_block_stop" => Event::BlockStop { index },
        "message_start" => Event::MessageStart {
            id: e
                .get("message")
                .map(|m| get_string(m, "id"))
                .unwrap_or_default(),
        },
        "message_delta" => Event::MessageDelta,
        "message_stop" => Event::MessageStop,
        other => Event::Other(other.to_string()),
    }
}

fn result_from_value(v: &Value) -> ResultInfo {
    let subtype = get_string(v, "subtype");
    let is_error = get_bool(v, "is_error").unwrap_or(subtype != "success");
    let errors = match v.get("errors") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => get_text(other, "message").unwrap_or_else(|| other.to_string()),
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let permission_denials = v
        .get("permission_denials")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|d| Denial {
                    tool_name: get_string(d, "tool_name"),
                    tool_input: d.get("tool_input").cloned().unwrap_or(Value::Null),
                })
                .collect()
        })
        .unwrap_or_default();
    ResultInfo {
        subtype,
        is_error,
        duration_ms: get_u64(v, "duration_ms"),
        duration_api_ms: get_u64(v, "duration_api_ms"),
        num_turns: get_u64(v, "num_turns").unwrap_or(0),
        total_cost_usd: get_f64(v, "total_cost_usd").unwrap_or(0.0),
        result: get_str(v, "result").map(str::to_string),
        session_id: get_str(v, "session_id").map(str::to_string),
        api_error_status: get_u64(v, "api_error_status"),
        permission_denials,
        errors,
        terminal_reason: get_str(v, "terminal_reason").map(str::to_string),
    }
}
