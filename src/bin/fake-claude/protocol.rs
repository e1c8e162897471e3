//! The control protocol's lines as the CLI writes them: requests (`can_use_tool`, hook
//! callbacks), tool results, the echo of a user message, `dontAsk`'s denial line.

use std::path::Path;

use serde_json::{json, Value};

use crate::json::{js, now_iso, uuid};
use crate::opts::Cli;
use crate::out::Ctx;
use crate::tools::input_path;
use crate::turn::Call;

impl Ctx {
    /// The echo of a user message (`--replay-user-messages`).
    pub fn user_replay(&self, text: &str) -> String {
        format!(
            r#"{{"type":"user","message":{{"role":"user","content":{}}},"session_id":{},"parent_tool_use_id":null,"uuid":{},"timestamp":{},"isReplay":true}}"#,
            js(text),
            js(&self.sid),
            js(&uuid()),
            js(&now_iso())
        )
    }

    /// A `tool_result` user line; `accepted` says whether the user allowed the call (2.1.332
    /// notes it in `tool_result_meta`; None: an interrupt rejected it).
    pub fn tool_result_line(
        &self,
        id: &str,
        content: &str,
        is_error: bool,
        accepted: Option<bool>,
        tool_use_result: &str,
    ) -> String {
        let meta = match (self.cli, accepted) {
            (Cli::V2_1_197, _) => String::new(),
            (Cli::V2_1_332, None) => format!(
                r#","tool_result_meta":[{{"id":{},"non_execution_kind":"user-rejected"}}]"#,
                js(id)
            ),
            (Cli::V2_1_332, Some(true)) => format!(
                r#","tool_result_meta":[{{"id":{},"permission_decision":{{"decision":"accept","source":"user_accept"}}}}]"#,
                js(id)
            ),
            (Cli::V2_1_332, Some(false)) => format!(
                r#","tool_result_meta":[{{"id":{},"non_execution_kind":"permission-rule","permission_decision":{{"decision":"reject","source":"user_reject"}}}}]"#,
                js(id)
            ),
        };
        format!(
            r#"{{"type":"user","message":{{"role":"user","content":[{{"type":"tool_result","content":{},"is_error":{},"tool_use_id":{}}}]}},"parent_tool_use_id":null,"session_id":{},"uuid":{},"timestamp":{},"tool_use_result":{}{}}}"#,
            js(content),
            is_error,
            js(id),
            js(&self.sid),
            js(&uuid()),
            js(&now_iso()),
            js(tool_use_result),
            meta
        )
    }

    /// A `can_use_tool` request as the real CLI writes it for `call`.
    pub fn can_use_tool(
        &self,
        request_id: &str,
        call: &Call,
        tool_use_id: &str,
        hook_reason: Option<&str>,
    ) -> String {
        let mut req = serde_json::Map::new();
        req.insert("subtype".into(), "can_use_tool".into());
        req.insert("tool_name".into(), call.name.clone().into());
        req.insert("display_name".into(), call.name.clone().into());
        req.insert("input".into(), call.input.clone());
        let path = input_path(&self.cwd, &call.input, "file_path");
        match call.name.as_str() {
            "Bash" => {
                if let Some(d) = call.input.get("description").and_then(Value::as_str) {
                    req.insert("description".into(), d.into());
                }
            }
            "AskUserQuestion" | "ExitPlanMode" => {}
            _ => {
                if let Some(p) = &path {
                    let shown = p
                        .strip_prefix(&self.cwd)
                        .map_or_else(|_| p.display().to_string(), |r| r.display().to_string());
                    req.insert("description".into(), shown.into());
                }
            }
        }
        match hook_reason {
            Some(reason) => {
                req.insert("decision_reason".into(), reason.into());
                req.insert("decision_reason_type".into(), "hook".into());
            }
            None => match call.name.as_str() {
                "Bash" => {
                    let cmd = call.input.get("command").cloned().unwrap_or(Value::Null);
                    req.insert(
                        "permission_suggestions".into(),
                        json!([{"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": cmd}], "behavior": "allow", "destination": "localSettings"}]),
                    );
                    req.insert(
                        "decision_reason".into(),
                        "This command requires approval".into(),
                    );
                    req.insert("decision_reason_type".into(), "other".into());
                }
                "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => {
                    req.insert(
                        "permission_suggestions".into(),
                        json!([{"type": "setMode", "mode": "acceptEdits", "destination": "session"}]),
                    );
                    if let Some(p) = path.filter(|p| !p.starts_with(Path::new(&self.cwd))) {
                        req.insert("blocked_path".into(), p.display().to_string().into());
                        req.insert(
                            "decision_reason".into(),
                            "Path is outside allowed working directories".into(),
                        );
                        req.insert("decision_reason_type".into(), "workingDir".into());
                    }
                }
                _ => {}
            },
        }
        req.insert("tool_use_id".into(), tool_use_id.into());
        json!({"type": "control_request", "request_id": request_id, "request": req}).to_string()
    }

    /// A `PreToolUse` hook callback request for `call`.
    pub fn hook_callback(
        &self,
        request_id: &str,
        callback_id: &str,
        call: &Call,
        tool_use_id: &str,
        mode: &str,
    ) -> String {
        json!({
            "type": "control_request",
            "request_id": request_id,
            "request": {
                "subtype": "hook_callback",
                "callback_id": callback_id,
                "input": {
                    "session_id": self.sid,
                    "transcript_path": "",
                    "cwd": self.cwd,
                    "permission_mode": mode,
                    "hook_event_name": "PreToolUse",
                    "tool_name": call.name,
                    "tool_input": call.input,
                    "tool_use_id": tool_use_id,
                },
                "tool_use_id": tool_use_id,
            }
        })
        .to_string()
    }

    /// The line `dontAsk` writes for a call it denies.
    pub fn permission_denied(&self, call: &Call, tool_use_id: &str) -> String {
        json!({
            "type": "system",
            "subtype": "permission_denied",
            "tool_name": call.name,
            "tool_use_id": tool_use_id,
            "decision_reason_type": "mode",
            "message": format!("Permission to use {} has been denied because Claude Code is running in don't ask mode.", call.name),
            "session_id": self.sid,
            "uuid": uuid(),
        })
        .to_string()
    }
}
