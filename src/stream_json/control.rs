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

    /// How many messages the CLI says it still has queued, in its answer to an interrupt
    /// (2.1.332: `"response":{"still_queued":[]}`; 2.1.197 says nothing).
    pub fn still_queued(&self) -> Option<usize> {
        self.response
            .as_ref()
            .and_then(|r| r.get("still_queued"))
            .and_then(Value::as_array)
            .map(Vec::len)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream_json::{parse_bytes, Msg};
    use crate::testutil::fixtures;

    fn controls(stdout: &[u8]) -> Vec<Control> {
        stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| match parse_bytes(l) {
                Msg::Control(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// What the backend relies on, in the runs recorded with its own flags on every pinned CLI
    /// (tests/e2e/control_recipes.py): the requests' fields, our key in the echoes, the
    /// withdrawal of a waiting request, the echo of an answer given twice only once.
    #[test]
    fn the_recorded_control_runs_say_what_the_backend_reads() {
        let runs: Vec<_> = fixtures()
            .into_iter()
            .filter(|(n, _)| n.contains("/control-"))
            .collect();
        let versions: std::collections::HashSet<&str> = runs
            .iter()
            .filter_map(|(n, _)| n.split('/').next())
            .collect();
        assert!(versions.len() >= 2, "{versions:?}");
        for (name, stdout) in &runs {
            let c = controls(stdout);
            let asks: Vec<&CanUseTool> = c
                .iter()
                .filter_map(|x| match x {
                    Control::Request(ControlRequest {
                        kind: RequestKind::CanUseTool(r),
                        ..
                    }) => Some(r),
                    _ => None,
                })
                .collect();
            let echoes: Vec<&ControlResponse> = c
                .iter()
                .filter_map(|x| match x {
                    Control::Response(r) if r.decided.is_some() => Some(r),
                    _ => None,
                })
                .collect();
            for a in &asks {
                assert!(!a.tool_name.is_empty() && a.input.is_object(), "{name}");
                assert!(a.tool_use_id.is_some(), "{name}");
            }
            let scenario = name.split('/').nth(1).unwrap_or_default();
            match scenario {
                "control-permission-allow" => {
                    assert_eq!(asks[0].tool_name, "Write", "{name}");
                    let hooks = c.iter().filter(|x| matches!(x, Control::Request(ControlRequest { kind: RequestKind::HookCallback(h), .. }) if h.callback_id == "claude_tasks_unsaved" && h.tool_name == "Write")).count();
                    assert_eq!(hooks, 1, "{name}");
                    let user: Vec<_> = echoes
                        .iter()
                        .filter(|e| e.decided.as_ref().unwrap().by == "user")
                        .collect();
                    assert_eq!(user.len(), 1, "{name}");
                    assert_eq!(user[0].behavior(), Some("allow"));
                    assert!(user[0].updated_input().is_some());
                }
                "control-permission-edited" => {
                    let e = echoes[0].decided.as_ref().unwrap();
                    assert!(e.edited, "{name}");
                    let r = echoes[1].decided.as_ref().unwrap();
                    assert_eq!(
                        (r.by.as_str(), r.rule.as_deref(), r.scope.as_deref()),
                        ("rule", Some("Bash(touch:*)"), Some("task")),
                        "{name}"
                    );
                }
                "control-permission-unsaved-hook" => {
                    assert_eq!(
                        asks[0].decision_reason_type.as_deref(),
                        Some("hook"),
                        "{name}"
                    );
                    assert_eq!(
                        asks[0].decision_reason.as_deref(),
                        Some("you have unsaved changes in hello.txt")
                    );
                    let hook = echoes
                        .iter()
                        .find(|e| e.decided.as_ref().unwrap().by == "hook");
                    assert_eq!(
                        hook.and_then(|h| h.decided.as_ref()?.unsaved.clone())
                            .as_deref(),
                        Some("hello.txt")
                    );
                }
                "control-permission-question" => {
                    assert_eq!(asks[0].tool_name, "AskUserQuestion", "{name}");
                    assert!(asks[0].suggestions.is_empty());
                }
                "control-interrupt-waiting" => {
                    let Some(Control::Cancel { request_id }) =
                        c.iter().find(|x| matches!(x, Control::Cancel { .. }))
                    else {
                        panic!("{name}: no withdrawal");
                    };
                    assert!(c
                        .iter()
                        .any(|x| matches!(x, Control::Request(r) if r.request_id == *request_id)));
                    assert!(echoes.is_empty(), "{name}");
                }
                "control-answer-twice" => assert_eq!(echoes.len(), 1, "{name}"),
                "control-permission-deny" => {
                    assert_eq!(echoes[0].behavior(), Some("deny"), "{name}");
                    assert!(echoes[0].message().is_some());
                }
                _ => {}
            }
        }
    }

    #[test]
    fn odd_control_lines_are_still_understood_as_far_as_they_go() {
        let p = |s: &str| parse_bytes(s.as_bytes());
        // Fields of the wrong type read as absent; nothing is lost or panics.
        let Msg::Control(Control::Request(r)) =
            p(r#"{"request":{"subtype":"can_use_tool","tool_name":5},"type":"control_request"}"#)
        else {
            panic!("not a request");
        };
        assert_eq!(r.request_id, "");
        assert!(
            matches!(r.kind, RequestKind::CanUseTool(ref c) if c.tool_name.is_empty() && c.input.is_null())
        );
        assert!(matches!(
            p(r#"{"type":"control_request","request":{"subtype":"set_model"}}"#),
            Msg::Control(Control::Request(ControlRequest { kind: RequestKind::Other(ref s), .. })) if s == "set_model"
        ));
        let Msg::Control(Control::Response(r)) =
            p(r#"{"type":"control_response","response":null,"claude_tasks":"user"}"#)
        else {
            panic!("not a response");
        };
        assert!(r.decided.is_none() && r.behavior().is_none());
        assert!(matches!(
            p(r#"{"type":"control_cancel_request"}"#),
            Msg::Control(Control::Cancel { .. })
        ));
        assert!(may_matter(br#"{"x":1,"type":"control_request"}"#));
        assert!(may_matter(br#"{"isReplay":true}"#));
        assert!(!may_matter(br#"{"type":"stream_event","event":{}}"#));
    }
}
