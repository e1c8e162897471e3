//! The control protocol's lines in the transcript (CONTROL.md in the shared fixtures): what the
//! CLI asks (`control_request`: a permission request, a hook callback), what it withdraws
//! (`control_cancel_request`), and the `control_response` lines: its answers to our requests,
//! and the echoes of our answers to its requests (`--replay-user-messages`), which carry the key
//! we add to say who decided.

use serde_json::Value;

use super::fields::{get_bool, get_str, get_string};

/// The top-level key we add to every line we write to the CLI; the CLI ignores it and echoes it.
pub const OUR_KEY: &str = "claude_tasks";

#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// The CLI asks something (`control_request`).
    Request(ControlRequest),
    /// The CLI withdraws one of its requests (`control_cancel_request`): an interrupt came.
    Cancel { request_id: String },
    /// A `control_response`.
    Response(ControlResponse),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ControlRequest {
    /// The CLI's id, to answer with.
    pub request_id: String,
    pub kind: RequestKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RequestKind {
    /// `can_use_tool`: may this tool call run?
    CanUseTool(CanUseTool),
    /// `hook_callback`: a hook we registered with `initialize` fires.
    HookCallback(HookCallback),
    /// Another subtype (a newer CLI's): nothing we answer.
    Other(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CanUseTool {
    pub tool_name: String,
    pub input: Value,
    /// `permission_suggestions`, as the CLI sent them (an empty list when it sent none).
    pub suggestions: Vec<Value>,
    pub tool_use_id: Option<String>,
    pub description: Option<String>,
    pub decision_reason: Option<String>,
    /// `hook` when one of our hooks asked for this request (an edit of an unsaved file).
    pub decision_reason_type: Option<String>,
    pub blocked_path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookCallback {
    pub callback_id: String,
    /// `PreToolUse`, ...
    pub event: String,
    pub tool_name: String,
    pub tool_input: Value,
    pub tool_use_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlResponse {
    pub request_id: String,
    /// `success` or `error`.
    pub subtype: String,
    /// The `error` of an error response.
    pub error: Option<String>,
    /// `response` of a success: for an answer to `can_use_tool`, `behavior` and the rest.
    pub response: Option<Value>,
    /// Our key: who decided (set only on the echoes of our own answers).
    pub decided: Option<Decided>,
}

/// What our key on an answer says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decided {
    /// `user`, `rule`, `policy` or `hook`.
    pub by: String,
    /// The rule that allowed it (`by: rule`), or the "always" rule the user added with it.
    pub rule: Option<String>,
    /// `task` or `project` for a rule.
    pub scope: Option<String>,
    /// The user edited the input before allowing it.
    pub edited: bool,
    /// The file with unsaved changes that made a hook ask.
    pub unsaved: Option<String>,
}

impl ControlResponse {
    /// `allow`, `deny`, or None (not an answer to a permission request, or a malformed one).
    pub fn behavior(&self) -> Option<&str> {
        self.response.as_ref().and_then(|r| get_str(r, "behavior"))
    }

    /// The denial's message.
    pub fn message(&self) -> Option<&str> {
        self.response.as_ref().and_then(|r| get_str(r, "message"))
    }

    /// A denial that also ends the turn.
    pub fn interrupts(&self) -> bool {
        self.response
            .as_ref()
            .and_then(|r| get_bool(r, "interrupt"))
            .unwrap_or(false)
    }

    /// The input an allow runs with.
    pub fn updated_input(&self) -> Option<&Value> {
        self.response
            .as_ref()
            .and_then(|r| r.get("updatedInput"))
            .filter(|v| v.is_object())
    }
}

/// The control line `v` (an object whose `type` is `kind`), or None when it is no control line.
pub(super) fn from_value(kind: &str, v: &Value) -> Option<Control> {
    match kind {
        "control_request" => {
            let req = v.get("request").unwrap_or(&Value::Null);
            let kind = match get_str(req, "subtype").unwrap_or_default() {
                "can_use_tool" => RequestKind::CanUseTool(CanUseTool {
                    tool_name: get_string(req, "tool_name"),
                    input: req.get("input").cloned().unwrap_or(Value::Null),
                    suggestions: req
                        .get("permission_suggestions")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                    tool_use_id: get_str(req, "tool_use_id").map(str::to_string),
                    description: get_str(req, "description").map(str::to_string),
                    decision_reason: get_str(req, "decision_reason").map(str::to_string),
                    decision_reason_type: get_str(req, "decision_reason_type").map(str::to_string),
                    blocked_path: get_str(req, "blocked_path").map(str::to_string),
                }),
                "hook_callback" => {
                    let input = req.get("input").unwrap_or(&Value::Null);
                    RequestKind::HookCallback(HookCallback {
                        callback_id: get_string(req, "callback_id"),
                        event: get_string(input, "hook_event_name"),
                        tool_name: get_string(input, "tool_name"),
                        tool_input: input.get("tool_input").cloned().unwrap_or(Value::Null),
                        tool_use_id: get_str(input, "tool_use_id")
                            .or_else(|| get_str(req, "tool_use_id"))
                            .map(str::to_string),
                    })
                }
                other => RequestKind::Other(other.to_string()),
            };
            Some(Control::Request(ControlRequest {
                request_id: get_string(v, "request_id"),
                kind,
            }))
        }
        "control_cancel_request" => Some(Control::Cancel {
            request_id: get_string(v, "request_id"),
        }),
        "control_response" => {
            let r = v.get("response").unwrap_or(&Value::Null);
            let decided = v.get(OUR_KEY).filter(|k| k.is_object()).map(|k| Decided {
                by: get_string(k, "by"),
                rule: get_str(k, "rule").map(str::to_string),
                scope: get_str(k, "scope").map(str::to_string),
                edited: get_bool(k, "edited").unwrap_or(false),
                unsaved: get_str(k, "unsaved").map(str::to_string),
            });
            Some(Control::Response(ControlResponse {
                request_id: get_string(r, "request_id"),
                subtype: get_string(r, "subtype"),
                error: get_str(r, "error").map(str::to_string),
                response: r.get("response").cloned(),
                decided,
            }))
        }
        _ => None,
    }
}

/// Whether a complete line may be one the control side reads (a control line, a `result`, the
/// echo of a user message): a cheap scan that lets a watcher skip the rest of a flood unparsed.
/// False positives are parsed and found out; there are no false negatives, whatever the key
/// order, because each of these kinds names itself in a value the scan looks for.
pub fn may_matter(bytes: &[u8]) -> bool {
    use memchr::memmem;
    memmem::find(bytes, b"\"control_").is_some()
        || memmem::find(bytes, b"\"result\"").is_some()
        || memmem::find(bytes, b"\"isReplay\"").is_some()
}

/// The `request.input` of the control request whose line starts at `offset` of `path` (read
/// back whole when the copy kept was cut). At most `max` bytes are read.
pub fn request_input_at(path: &std::path::Path, offset: u64, max: u64) -> Result<Value, String> {
    use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut line = Vec::new();
    BufReader::new(f.take(max + 1))
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if line.len() as u64 > max {
        return Err(format!("the request is larger than {max} bytes"));
    }
    let v: Value = serde_json::from_slice(line.trim_ascii_end())
        .map_err(|e| format!("the request's line is not JSON: {e}"))?;
    if get_str(&v, "type") != Some("control_request") {
        return Err("no control request at that offset".into());
    }
    v.get("request")
        .and_then(|r| r.get("input"))
        .cloned()
        .ok_or_else(|| "the request has no input".into())
}
