//! What we write to the CLI in its control protocol (doc/protocol.md, "Permission requests"):
//! the prompt as a user message, `initialize` with our hook, `interrupt`, and the answers to its
//! requests, each answer carrying our key that says who decided; and the stdin they go to (the
//! task's FIFO), one whole line at a time under a lock every backend takes.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use crate::store::{lock_exclusive, open_fifo, FifoAccess, TaskDir};

/// Our top-level key on the lines we write (the CLI ignores it and echoes it verbatim).
pub const OUR_KEY: &str = "claude_tasks";
/// The id of the `PreToolUse` hook callback that guards unsaved buffers.
pub const UNSAVED_HOOK: &str = "claude_tasks_unsaved";
/// The tools whose calls reach the unsaved-buffers hook.
pub const EDIT_TOOLS: &str = "Write|Edit|MultiEdit|NotebookEdit";

/// A stream-json user message (the form the Agent SDK writes).
pub fn user_message(text: &str) -> String {
    json!({
        "type": "user",
        "message": {"role": "user", "content": text},
        "parent_tool_use_id": null,
        "session_id": "",
    })
    .to_string()
}

/// `initialize`, registering the hook callback that lets us see every edit first.
pub fn initialize(request_id: &str) -> String {
    json!({
        "type": "control_request",
        "request_id": request_id,
        "request": {
            "subtype": "initialize",
            "hooks": {"PreToolUse": [{"matcher": EDIT_TOOLS, "hookCallbackIds": [UNSAVED_HOOK]}]},
        },
    })
    .to_string()
}

/// `interrupt`: the CLI ends its turn (its tools killed, its requests withdrawn) and stays.
pub fn interrupt(request_id: &str) -> String {
    json!({
        "type": "control_request",
        "request_id": request_id,
        "request": {"subtype": "interrupt"},
    })
    .to_string()
}

/// Who decided an answer, written under our key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decider {
    /// `user`, `rule`, `policy` or `hook`.
    pub by: &'static str,
    pub rule: Option<String>,
    pub scope: Option<&'static str>,
    pub edited: bool,
    pub unsaved: Option<String>,
}

impl Decider {
    pub fn user() -> Decider {
        Decider {
            by: "user",
            ..Decider::default()
        }
    }

    fn value(&self) -> Value {
        let mut m = Map::new();
        m.insert("by".into(), self.by.into());
        if let Some(r) = &self.rule {
            m.insert("rule".into(), r.clone().into());
        }
        if let Some(s) = self.scope {
            m.insert("scope".into(), s.into());
        }
        if self.edited {
            m.insert("edited".into(), true.into());
        }
        if let Some(u) = &self.unsaved {
            m.insert("unsaved".into(), u.clone().into());
        }
        Value::Object(m)
    }
}

/// An answer to a `can_use_tool` request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Runs with `input` (the request's own, or the user's edit: the CLI really uses it).
    Allow { input: Value },
    /// `interrupt`: the turn ends too.
    Deny { message: String, interrupt: bool },
}

/// The `control_response` line of `answer` to request `request_id`.
pub fn answer(request_id: &str, answer: &Answer, who: &Decider) -> String {
    let response = match answer {
        Answer::Allow { input } => json!({"behavior": "allow", "updatedInput": input}),
        Answer::Deny {
            message,
            interrupt: false,
        } => json!({"behavior": "deny", "message": message}),
        Answer::Deny {
            message,
            interrupt: true,
        } => json!({"behavior": "deny", "message": message, "interrupt": true}),
    };
    response_line(request_id, response, who)
}

/// The answer to our unsaved-buffers hook: go on as the mode says (`None`), or make the CLI ask
/// (`Some(reason)`), whatever its mode.
pub fn hook_answer(request_id: &str, ask: Option<&str>, who: &Decider) -> String {
    let response = match ask {
        None => json!({}),
        Some(reason) => json!({
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "ask",
                "permissionDecisionReason": reason,
            }
        }),
    };
    response_line(request_id, response, who)
}

fn response_line(request_id: &str, response: Value, who: &Decider) -> String {
    let mut line = Map::new();
    line.insert("type".into(), "control_response".into());
    line.insert(
        "response".into(),
        json!({"subtype": "success", "request_id": request_id, "response": response}),
    );
    line.insert(OUR_KEY.into(), who.value());
    Value::Object(line).to_string()
}

/// The CLI's stdin as one backend writes it.
pub struct Stdin {
    file: File,
    lock: PathBuf,
}

impl Stdin {
    /// Opens the task's FIFO for writing (after its checks: see `store::open_fifo`). `fresh`:
    /// a backend that did not write the run's first lines first writes an empty line, which
    /// the CLI ignores, to end a line a crashed writer may have left half written.
    pub fn open(dir: &TaskDir, fresh: bool) -> Result<Stdin, String> {
        let path = dir.stdin_fifo();
        let file = open_fifo(&path, FifoAccess::Write).map_err(|e| e.to_string())?;
        let mut s = Stdin {
            file,
            lock: dir.stdin_lock(),
        };
        if fresh {
            s.write_raw(b"\n")?;
        }
        Ok(s)
    }

    /// Writes `line` and its newline whole, holding the task's stdin lock. Blocks while the
    /// pipe is full (a long line waits for the CLI to read); fails when the CLI is gone.
    pub fn write_line(&mut self, line: &str) -> Result<(), String> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.write_raw(&buf)
    }

    /// Writes `bytes` as they are, holding the lock (the rest of lines begun before the spawn).
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.write_raw(bytes)
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        let _lock = lock_exclusive(&self.lock).map_err(|e| e.to_string())?;
        self.file.write_all(bytes).map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => "the CLI is gone (its stdin has no reader)".into(),
            _ => format!("cannot write to the CLI's stdin: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_single_json_objects_with_our_key() {
        let l = answer(
            "r1",
            &Answer::Allow {
                input: json!({"command": "ls\nrm"}),
            },
            &Decider {
                by: "rule",
                rule: Some("Bash(ls:*)".into()),
                scope: Some("task"),
                ..Decider::default()
            },
        );
        assert!(!l.contains('\n'));
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["type"], "control_response");
        assert_eq!(v["response"]["request_id"], "r1");
        assert_eq!(v["response"]["response"]["behavior"], "allow");
        assert_eq!(
            v["response"]["response"]["updatedInput"]["command"],
            "ls\nrm"
        );
        assert_eq!(
            v[OUR_KEY],
            json!({"by": "rule", "rule": "Bash(ls:*)", "scope": "task"})
        );
        let d: Value = serde_json::from_str(&answer(
            "r2",
            &Answer::Deny {
                message: "no".into(),
                interrupt: true,
            },
            &Decider::user(),
        ))
        .unwrap();
        assert_eq!(
            d["response"]["response"],
            json!({"behavior": "deny", "message": "no", "interrupt": true})
        );
        let h: Value =
            serde_json::from_str(&hook_answer("h", Some("unsaved"), &Decider::user())).unwrap();
        assert_eq!(
            h["response"]["response"]["hookSpecificOutput"]["permissionDecision"],
            "ask"
        );
        let u: Value = serde_json::from_str(&user_message("-p \u{0}")).unwrap();
        assert_eq!(u["message"]["content"], "-p \u{0}");
        let i: Value = serde_json::from_str(&initialize("i1")).unwrap();
        assert_eq!(
            i["request"]["hooks"]["PreToolUse"][0]["hookCallbackIds"][0],
            UNSAVED_HOOK
        );
    }
}
