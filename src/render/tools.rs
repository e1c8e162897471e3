//! Tool calls as one line each.

use serde_json::Value;

use crate::stream_json::Denial;

impl Denial {
    /// `Write(/path)`, as in the tool call line.
    pub fn summary(&self) -> String {
        tool_summary(&self.tool_name, &self.tool_input)
    }
}

/// Longest argument shown in a tool call line, in characters, `…` included.
const TOOL_ARG_CHARS: usize = 80;

/// One-line description of a tool call: `Bash(npm test)`, `Write(src/lib.rs)`, `TodoWrite(3 items)`.
pub fn tool_summary(name: &str, input: &Value) -> String {
    let name = one_line(name, TOOL_ARG_CHARS);
    let key = match name.as_str() {
        "Bash" => Some("command"),
        "Write" | "Edit" | "MultiEdit" | "Read" => Some("file_path"),
        "NotebookEdit" => Some("notebook_path"),
        "Grep" | "Glob" => Some("pattern"),
        "WebFetch" => Some("url"),
        "WebSearch" => Some("query"),
        "Task" | "Agent" => Some("description"),
        "TodoWrite" => {
            let n = input
                .get("todos")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let unit = if n == 1 { "item" } else { "items" };
            return format!("TodoWrite({n} {unit})");
        }
        _ => None,
    };
    let arg = key
        .and_then(|k| input.get(k).and_then(Value::as_str))
        .filter(|s| !s.trim().is_empty())
        .or_else(|| first_string_field(input));
    match arg {
        Some(a) => format!("{name}({})", one_line(a, TOOL_ARG_CHARS)),
        None => name,
    }
}

/// The argument an unknown tool is best known by: a usual key if present, else the first
/// non-empty string field (in the map's order).
fn first_string_field(input: &Value) -> Option<&str> {
    const USUAL: [&str; 9] = [
        "command",
        "file_path",
        "path",
        "pattern",
        "url",
        "query",
        "description",
        "prompt",
        "name",
    ];
    let map = input.as_object()?;
    USUAL
        .iter()
        .filter_map(|k| map.get(*k).and_then(Value::as_str))
        .chain(map.values().filter_map(Value::as_str))
        .find(|s| !s.trim().is_empty())
}

/// The first non-blank line of `s`, trimmed, control characters as spaces, at most `max`
/// characters; `…` marks anything cut (more characters or more lines).
pub fn one_line(s: &str, max: usize) -> String {
    let mut lines = s.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    let more_lines = lines.next().is_some();
    let mut out = String::with_capacity(first.len().min(max * 4));
    let mut count = 0;
    let mut cut = more_lines;
    for c in first.chars() {
        if count == max {
            cut = true;
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
        count += 1;
    }
    if cut {
        if count == max {
            out.pop();
        }
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_summaries() {
        let cases = [
            (
                "Bash",
                json!({"command": "npm test", "description": "d"}),
                "Bash(npm test)",
            ),
            (
                "Write",
                json!({"file_path": "src/lib.rs", "content": "x"}),
                "Write(src/lib.rs)",
            ),
            (
                "Edit",
                json!({"file_path": "/abs/a.rs", "old_string": "a"}),
                "Edit(/abs/a.rs)",
            ),
            ("Read", json!({"file_path": "README.md"}), "Read(README.md)"),
            (
                "Grep",
                json!({"pattern": "fn main", "path": "src"}),
                "Grep(fn main)",
            ),
            ("Glob", json!({"pattern": "**/*.rs"}), "Glob(**/*.rs)"),
            (
                "WebFetch",
                json!({"url": "https://x.y/z", "prompt": "p"}),
                "WebFetch(https://x.y/z)",
            ),
            (
                "Task",
                json!({"description": "find bugs", "prompt": "long"}),
                "Task(find bugs)",
            ),
            (
                "TodoWrite",
                json!({"todos": [{}, {}, {}]}),
                "TodoWrite(3 items)",
            ),
            ("TodoWrite", json!({"todos": [{}]}), "TodoWrite(1 item)"),
            (
                "mcp__gh__create_issue",
                json!({"title": "Bug", "n": 1}),
                "mcp__gh__create_issue(Bug)",
            ),
            ("Custom", json!({"n": 1}), "Custom"),
            ("Custom", json!(null), "Custom"),
            (
                "Bash",
                json!({"command": 5, "description": "fallback"}),
                "Bash(fallback)",
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(tool_summary(name, &input), want);
        }
    }

    #[test]
    fn tool_summary_is_one_short_line() {
        let long = "x".repeat(200);
        let s = tool_summary("Bash", &json!({ "command": long }));
        assert_eq!(s, format!("Bash({}…)", "x".repeat(79)));
        let s = tool_summary("Bash", &json!({"command": "\n  cd /tmp  \nmake\tall"}));
        assert_eq!(s, "Bash(cd /tmp…)");
        let s = tool_summary("Bash", &json!({"command": "a\u{1b}[31mb\r"}));
        assert_eq!(s, "Bash(a [31mb)");
        assert_eq!(one_line(&"é".repeat(80), 80), "é".repeat(80));
        assert_eq!(
            one_line(&"é".repeat(81), 80),
            format!("{}…", "é".repeat(79))
        );
        assert_eq!(one_line("", 80), "");
    }
}
