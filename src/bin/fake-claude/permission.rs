//! How the fake decides a tool call, as the real CLI does: which calls need permission in which
//! mode, the `--allowedTools` rules, and what an answer to `can_use_tool` means.

use serde_json::Value;

use crate::tools::input_path;
use crate::turn::Call;

/// What the permission steps decided for a call.
pub enum Verdict {
    Allow(Value),
    Deny { message: String, interrupt: bool },
}

/// The answer to a `can_use_tool`, as the real CLI reads it (CONTROL.md §0.1, §2).
pub fn verdict_of(resp: &Value) -> Verdict {
    if resp.get("subtype").and_then(Value::as_str) == Some("error") {
        let e = resp.get("error").and_then(Value::as_str).unwrap_or("");
        return Verdict::Deny {
            message: format!("Tool permission request failed: Error: {e}"),
            interrupt: false,
        };
    }
    let r = resp.get("response").cloned().unwrap_or(Value::Null);
    match r.get("behavior").and_then(Value::as_str) {
        Some("allow") => match r.get("updatedInput") {
            Some(v) if v.is_object() => Verdict::Allow(v.clone()),
            _ => Verdict::Deny {
                message: r#"Tool permission request failed: ZodError: [{"expected":"record","code":"invalid_type","path":["updatedInput"],"message":"Invalid input: expected record, received undefined"}]"#.into(),
                interrupt: false,
            },
        },
        Some("deny") => match r.get("message").and_then(Value::as_str) {
            Some(m) => Verdict::Deny {
                message: m.to_string(),
                interrupt: r.get("interrupt").and_then(Value::as_bool) == Some(true),
            },
            None => zod_denial(),
        },
        _ => zod_denial(),
    }
}

fn zod_denial() -> Verdict {
    Verdict::Deny {
        message: r#"Tool permission request failed: ZodError: [{"code":"invalid_union","path":[],"message":"Invalid input"}]"#.into(),
        interrupt: false,
    }
}

/// `Bash(ls)`, `Write(a.txt)`: how the final text names a call.
pub fn summary(call: &Call) -> String {
    let key = match call.name.as_str() {
        "Bash" => "command",
        "NotebookEdit" => "notebook_path",
        _ => "file_path",
    };
    match call.input.get(key).and_then(Value::as_str) {
        Some(a) => format!("{}({a})", call.name),
        None => call.name.clone(),
    }
}

/// Commands that change nothing, which the real CLI runs without asking.
const READ_ONLY: &[&str] = &[
    "ls", "pwd", "echo", "cat", "head", "tail", "wc", "true", "date", "grep",
];

pub fn needs_permission(call: &Call, mode: &str, cwd: &str) -> bool {
    match call.name.as_str() {
        "Read" | "Glob" | "Grep" | "TodoWrite" | "LS" => false,
        "Bash" => {
            let cmd = call
                .input
                .get("command")
                .and_then(Value::as_str)
                .unwrap_or("");
            // A redirection or a substitution may write anything.
            cmd.contains(['>', '`', '$'])
                || !cmd
                    .split([';', '&', '|', '\n'])
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .all(|c| READ_ONLY.contains(&c.split_whitespace().next().unwrap_or("")))
        }
        "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => {
            let key = if call.name == "NotebookEdit" {
                "notebook_path"
            } else {
                "file_path"
            };
            let inside = input_path(cwd, &call.input, key).is_some_and(|p| p.starts_with(cwd));
            !(mode == "acceptEdits" && inside)
        }
        _ => true,
    }
}

/// `--allowedTools` rules: `Tool`, `Bash(cmd)` (that command) or `Bash(prefix:*)`.
pub fn rule_allows(rule: &str, call: &Call) -> bool {
    let (tool, spec) = match rule.split_once('(') {
        Some((t, rest)) => (t, rest.strip_suffix(')')),
        None => (rule, None),
    };
    if tool != call.name {
        return false;
    }
    let Some(spec) = spec else { return true };
    let arg = call
        .input
        .get("command")
        .or_else(|| call.input.get("file_path"))
        .and_then(Value::as_str)
        .unwrap_or("");
    match spec.strip_suffix(":*") {
        Some(prefix) => arg == prefix || arg.starts_with(&format!("{prefix} ")),
        None => arg == spec,
    }
}
