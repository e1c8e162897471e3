//! The file edits a transcript line tells of, for the record of a run's changes outside git
//! (`changes::fallback`): the calls of the edit tools (Write, Edit, MultiEdit, NotebookEdit) and
//! the file's content before the edit when the CLI reports it with the call's result
//! (`tool_use_result.originalFile`, or `type: "create"` for a file that did not exist).
//!
//! Lenient like the rest of `stream_json`: no key order is assumed, a line that is not what we
//! look for gives nothing, a subagent's edits count as much as the main agent's.

use serde::Deserialize;
use serde_json::Value;

/// The tools whose calls name the one file they write.
pub const EDIT_TOOLS: &[&str] = &["Write", "Edit", "MultiEdit", "NotebookEdit"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditEvent {
    /// An edit tool is called on `path` (as the call names it: absolute, or relative to the
    /// CLI's directory).
    Call {
        id: String,
        tool: String,
        path: String,
    },
    /// The call `tool_use_id` ran; the CLI says what the file held before it.
    Before { tool_use_id: String, before: Before },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Before {
    /// The file did not exist (a Write that created it).
    Absent,
    Content(String),
}

#[derive(Deserialize)]
struct LineShape {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: Option<MessageShape>,
    #[serde(default)]
    tool_use_result: Option<Value>,
}

#[derive(Deserialize)]
struct MessageShape {
    /// A string for a plain user message, else a list of blocks.
    #[serde(default)]
    content: Value,
}

/// The edit events of one complete line (without its newline).
pub fn edit_events(line: &[u8]) -> Vec<EditEvent> {
    // Most lines (deltas, text) have nothing to do with tools: spare them the parse.
    if !contains(line, b"tool_use") {
        return Vec::new();
    }
    let Ok(shape) = serde_json::from_slice::<LineShape>(line) else {
        return Vec::new();
    };
    let blocks = match shape.message.as_ref().map(|m| &m.content) {
        Some(Value::Array(blocks)) => blocks.as_slice(),
        _ => &[],
    };
    let mut out = Vec::new();
    match shape.kind.as_str() {
        "assistant" => {
            for b in blocks {
                if b.get("type").and_then(Value::as_str) != Some("tool_use") {
                    continue;
                }
                let (Some(id), Some(name)) = (str_of(b, "id"), str_of(b, "name")) else {
                    continue;
                };
                if !EDIT_TOOLS.contains(&name) {
                    continue;
                }
                let key = if name == "NotebookEdit" {
                    "notebook_path"
                } else {
                    "file_path"
                };
                let path = b.get("input").and_then(|i| str_of(i, key));
                if let Some(path) = path.filter(|p| !p.is_empty()) {
                    out.push(EditEvent::Call {
                        id: id.to_owned(),
                        tool: name.to_owned(),
                        path: path.to_owned(),
                    });
                }
            }
        }
        "user" => {
            // The result's details belong to the message's one tool result; with several,
            // which one they describe is not said.
            let mut ids = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                .filter(|b| b.get("is_error").and_then(Value::as_bool) != Some(true))
                .filter_map(|b| str_of(b, "tool_use_id"));
            let (Some(id), None) = (ids.next(), ids.next()) else {
                return out;
            };
            let Some(result) = shape.tool_use_result.as_ref() else {
                return out;
            };
            let before = match (result.get("originalFile"), str_of(result, "type")) {
                (Some(Value::String(s)), _) => Some(Before::Content(s.clone())),
                (_, Some("create")) => Some(Before::Absent),
                _ => None,
            };
            if let Some(before) = before {
                out.push(EditEvent::Before {
                    tool_use_id: id.to_owned(),
                    before,
                });
            }
        }
        _ => {}
    }
    out
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_of_edit_tools_name_their_file_whatever_the_key_order() {
        let line = br#"{"message":{"content":[{"type":"text","text":"x"},
            {"input":{"content":"hi\n","file_path":"/p/a b.txt"},"name":"Write","id":"t1","type":"tool_use"},
            {"type":"tool_use","id":"t2","name":"Bash","input":{"command":"rm x"}},
            {"type":"tool_use","id":"t3","name":"NotebookEdit","input":{"notebook_path":"n.ipynb"}},
            {"type":"tool_use","id":"t4","name":"Edit","input":{}}]},"type":"assistant"}"#;
        let line: Vec<u8> = line.iter().copied().filter(|&c| c != b'\n').collect();
        assert_eq!(
            edit_events(&line),
            [
                EditEvent::Call {
                    id: "t1".into(),
                    tool: "Write".into(),
                    path: "/p/a b.txt".into()
                },
                EditEvent::Call {
                    id: "t3".into(),
                    tool: "NotebookEdit".into(),
                    path: "n.ipynb".into()
                },
            ]
        );
    }

    #[test]
    fn a_result_tells_the_content_before_the_edit() {
        let edit = br#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"t1","type":"tool_result","content":"ok"}]},"tool_use_result":{"filePath":"/p/a","originalFile":"old\n","oldString":"o"}}"#;
        assert_eq!(
            edit_events(edit),
            [EditEvent::Before {
                tool_use_id: "t1".into(),
                before: Before::Content("old\n".into())
            }]
        );
        // The fixtures' Write of a new file (CLI 2.1.197 and 2.1.332).
        let create = br#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"t2","type":"tool_result","content":"File created"}]},"tool_use_result":{"type":"create","filePath":"/p/h","content":"x","structuredPatch":[],"originalFile":null}}"#;
        assert_eq!(
            edit_events(create),
            [EditEvent::Before {
                tool_use_id: "t2".into(),
                before: Before::Absent
            }]
        );
        // A refused call (its result a string), an error, two results: nothing.
        let refused = br#"{"type":"user","message":{"content":[{"type":"tool_result","content":"no","is_error":true,"tool_use_id":"t3"}]},"tool_use_result":"Error: no"}"#;
        assert!(edit_events(refused).is_empty());
        let two = br#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"a"},{"type":"tool_result","tool_use_id":"b"}]},"tool_use_result":{"originalFile":"x"}}"#;
        assert!(edit_events(two).is_empty());
    }

    #[test]
    fn every_fixture_line_parses_without_a_panic() {
        for (name, data) in crate::testutil::fixtures() {
            let mut calls = 0;
            for line in data.split(|&b| b == b'\n') {
                calls += edit_events(line)
                    .iter()
                    .filter(|e| matches!(e, EditEvent::Call { .. }))
                    .count();
            }
            if name.contains("write-") {
                assert!(calls >= 1, "{name}: the Write call is seen");
            }
        }
        assert!(edit_events(b"not json tool_use").is_empty());
        assert!(edit_events(br#"{"type":"user","message":{"content":"tool_use"}}"#).is_empty());
    }
}
