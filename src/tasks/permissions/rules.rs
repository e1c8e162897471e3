//! The plugin's own "always" rules (doc/protocol.md, "Rules"): their syntax, what they match,
//! and the rule proposed for a request. A rule never matches a shell command with an operator,
//! a substitution or a redirection unless it names that exact command.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

/// The tools an `Edit(...)` rule covers, as the CLI's own rules do.
pub const EDIT_TOOLS: [&str; 4] = ["Write", "Edit", "MultiEdit", "NotebookEdit"];

/// Tools that ask the user something: no rule answers for the user.
const NEVER_ALWAYS: [&str; 2] = ["AskUserQuestion", "ExitPlanMode"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub tool: String,
    /// What is inside the parentheses; None: any call of the tool.
    pub spec: Option<String>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.spec {
            Some(s) => write!(f, "{}({s})", self.tool),
            None => write!(f, "{}", self.tool),
        }
    }
}

impl Rule {
    /// `Tool` or `Tool(spec)`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let t = text.trim();
        let (tool, spec) = match t.find('(') {
            None => (t, None),
            Some(open) => {
                let Some(inner) = t[open + 1..].strip_suffix(')') else {
                    return Err(format!("rule {t:?} has no closing ')'"));
                };
                if inner.trim().is_empty() {
                    return Err(format!(
                        "rule {t:?} has nothing between its parentheses (write {:?} for any call)",
                        &t[..open]
                    ));
                }
                (&t[..open], Some(inner.to_string()))
            }
        };
        if tool.is_empty()
            || !tool
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            return Err(format!(
                "rule {t:?} must start with a tool name such as Bash or Edit"
            ));
        }
        if NEVER_ALWAYS.contains(&tool) {
            return Err(format!(
                "{tool} always asks the user: no rule can answer it"
            ));
        }
        Ok(Rule {
            tool: tool.to_string(),
            spec,
        })
    }

    /// Whether this rule allows calling `tool` with `input` in a task run in `cwd`.
    pub fn matches(&self, tool: &str, input: &Value, cwd: &str) -> bool {
        let same_tool = self.tool == tool || (self.tool == "Edit" && EDIT_TOOLS.contains(&tool));
        if !same_tool || NEVER_ALWAYS.contains(&tool) {
            return false;
        }
        let Some(spec) = &self.spec else {
            return true;
        };
        if tool == "Bash" {
            let cmd = str_of(input, "command");
            return match spec.strip_suffix(":*") {
                Some(prefix) => {
                    let prefix = prefix.trim_end();
                    simple_command(cmd)
                        && (cmd.trim() == prefix
                            || cmd
                                .trim_start()
                                .strip_prefix(prefix)
                                .is_some_and(|rest| rest.starts_with([' ', '\t'])))
                }
                None => cmd.trim() == spec.trim(),
            };
        }
        if EDIT_TOOLS.contains(&tool) {
            let Some(path) = tool_path(tool, input, cwd) else {
                return false;
            };
            if Path::new(spec).is_absolute() {
                return glob(spec.as_bytes(), path.to_string_lossy().as_bytes(), true);
            }
            return match path.strip_prefix(cwd) {
                Ok(rel) => glob(spec.as_bytes(), rel.to_string_lossy().as_bytes(), true),
                Err(_) => false,
            };
        }
        let arg = main_arg(input);
        match spec.strip_suffix(":*") {
            Some(prefix) => arg.starts_with(prefix),
            None => glob(spec.as_bytes(), arg.as_bytes(), false),
        }
    }
}

/// The rule proposed to the user for a request (shown and editable before it applies); None for
/// the tools no rule may answer.
pub fn propose(tool: &str, input: &Value, cwd: &str) -> Option<String> {
    if NEVER_ALWAYS.contains(&tool) {
        return None;
    }
    if tool == "Bash" {
        let cmd = str_of(input, "command").trim();
        if cmd.is_empty() {
            return Some("Bash".into());
        }
        if !simple_command(cmd) {
            return Some(format!("Bash({cmd})"));
        }
        let mut words = cmd.split_whitespace();
        let first = words.next().unwrap_or_default();
        let sub = words.next().filter(|w| {
            w.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':'))
        });
        return Some(match sub {
            Some(sub) => format!("Bash({first} {sub}:*)"),
            None => format!("Bash({first}:*)"),
        });
    }
    if EDIT_TOOLS.contains(&tool) {
        let path = tool_path(tool, input, cwd)?;
        let shown = match path.strip_prefix(cwd) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => path.display().to_string(),
        };
        return Some(format!("{tool}({shown})"));
    }
    Some(tool.to_string())
}

/// No operator, substitution or redirection: one command and its arguments.
pub fn simple_command(cmd: &str) -> bool {
    !cmd.contains([';', '&', '|', '<', '>', '`', '\n', '\r']) && !cmd.contains("$(")
}

/// The file an edit tool writes, absolute and without `.`/`..` (lexically, against `cwd`).
pub fn tool_path(tool: &str, input: &Value, cwd: &str) -> Option<PathBuf> {
    let key = if tool == "NotebookEdit" {
        "notebook_path"
    } else {
        "file_path"
    };
    let p = input.get(key).and_then(Value::as_str)?;
    if p.is_empty() {
        return None;
    }
    let joined = Path::new(cwd).join(p);
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The argument a tool is best known by (its URL, pattern, query...).
fn main_arg(input: &Value) -> &str {
    for k in [
        "url",
        "pattern",
        "query",
        "command",
        "file_path",
        "path",
        "prompt",
    ] {
        if let Some(s) = input.get(k).and_then(Value::as_str) {
            return s;
        }
    }
    ""
}

/// `*` any run (within one path segment when `paths`), `**` any run across segments, `?` one
/// character; everything else literally.
fn glob(p: &[u8], t: &[u8], paths: bool) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => {
            // `**/` may match no directory at all.
            let rest = if p.get(2) == Some(&b'/') {
                &p[3..]
            } else {
                &p[2..]
            };
            (0..=t.len()).any(|i| glob(rest, &t[i..], paths))
                || (p.get(2) == Some(&b'/') && glob(&p[2..], t, paths))
        }
        Some(b'*') => {
            let mut i = 0;
            loop {
                if glob(&p[1..], &t[i..], paths) {
                    return true;
                }
                if i == t.len() || (paths && t[i] == b'/') {
                    return false;
                }
                i += 1;
            }
        }
        Some(b'?') => !(t.is_empty() || paths && t[0] == b'/') && glob(&p[1..], &t[1..], paths),
        Some(c) => t.first() == Some(c) && glob(&p[1..], &t[1..], paths),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bash(cmd: &str) -> Value {
        json!({ "command": cmd })
    }

    #[test]
    fn parsing_says_what_is_wrong() {
        assert_eq!(
            Rule::parse(" Bash(npm test:*) ").unwrap().to_string(),
            "Bash(npm test:*)"
        );
        assert_eq!(Rule::parse("Read").unwrap().spec, None);
        assert!(Rule::parse("mcp__srv__tool").is_ok());
        assert!(Rule::parse("Bash(").unwrap_err().contains("no closing"));
        assert!(Rule::parse("Bash()")
            .unwrap_err()
            .contains("nothing between"));
        assert!(Rule::parse("(ls)").unwrap_err().contains("tool name"));
        assert!(Rule::parse("Ba sh").unwrap_err().contains("tool name"));
        assert!(Rule::parse("AskUserQuestion")
            .unwrap_err()
            .contains("always asks"));
    }

    #[test]
    fn a_command_prefix_never_covers_a_compound_command() {
        let r = Rule::parse("Bash(npm test:*)").unwrap();
        for ok in ["npm test", "npm test -- --ci", "  npm test\tfoo"] {
            assert!(r.matches("Bash", &bash(ok), "/p"), "{ok}");
        }
        for no in [
            "npm testing",
            "npm test && rm -rf /",
            "npm test; curl x",
            "npm test | sh",
            "npm test > /etc/passwd",
            "npm test $(rm -rf ~)",
            "npm test `id`",
            "npm test\nrm -rf /",
            "npx test",
        ] {
            assert!(!r.matches("Bash", &bash(no), "/p"), "{no}");
        }
        // An exact rule matches exactly what the user saw, compound or not.
        let exact = Rule::parse("Bash(make && make test)").unwrap();
        assert!(exact.matches("Bash", &bash("make && make test"), "/p"));
        assert!(!exact.matches("Bash", &bash("make && make test; rm x"), "/p"));
        assert!(Rule::parse("Bash")
            .unwrap()
            .matches("Bash", &bash("anything; at all"), "/p"));
        assert!(!r.matches("Write", &bash("npm test"), "/p"));
    }

    #[test]
    fn edit_rules_match_paths_relative_to_the_task() {
        let cwd = "/home/me/proj";
        let w = |p: &str| json!({ "file_path": p, "content": "" });
        let r = Rule::parse("Edit(src/**)").unwrap();
        assert!(r.matches("Write", &w("/home/me/proj/src/a/b.rs"), cwd));
        assert!(r.matches("Edit", &w("src/lib.rs"), cwd));
        assert!(r.matches("MultiEdit", &w("/home/me/proj/src/x"), cwd));
        assert!(!r.matches("Write", &w("/home/me/proj/tests/a.rs"), cwd));
        assert!(!r.matches("Write", &w("/home/me/proj/src/../../etc/passwd"), cwd));
        assert!(!r.matches("Write", &w("/etc/passwd"), cwd));
        let one = Rule::parse("Write(src/*.rs)").unwrap();
        assert!(one.matches("Write", &w("src/lib.rs"), cwd));
        assert!(!one.matches("Write", &w("src/a/lib.rs"), cwd));
        assert!(!one.matches("Edit", &w("src/lib.rs"), cwd));
        let abs = Rule::parse("Write(/tmp/**)").unwrap();
        assert!(abs.matches("Write", &w("/tmp/x/y"), cwd));
        let nb = Rule::parse("Edit(**/*.ipynb)").unwrap();
        assert!(nb.matches("NotebookEdit", &json!({"notebook_path": "a.ipynb"}), cwd));
        assert!(nb.matches(
            "NotebookEdit",
            &json!({"notebook_path": "d/e/a.ipynb"}),
            cwd
        ));
    }

    #[test]
    fn other_tools_match_their_main_argument() {
        let r = Rule::parse("WebFetch(https://docs.rs/*)").unwrap();
        assert!(r.matches("WebFetch", &json!({"url": "https://docs.rs/serde/x"}), "/p"));
        assert!(!r.matches("WebFetch", &json!({"url": "https://evil/docs.rs/"}), "/p"));
        assert!(Rule::parse("WebSearch")
            .unwrap()
            .matches("WebSearch", &json!({}), "/p"));
    }

    #[test]
    fn proposals() {
        let cwd = "/p";
        let p = |t: &str, i: Value| propose(t, &i, cwd);
        assert_eq!(
            p("Bash", bash("npm test")).as_deref(),
            Some("Bash(npm test:*)")
        );
        assert_eq!(
            p("Bash", bash("cargo build --release")).as_deref(),
            Some("Bash(cargo build:*)")
        );
        assert_eq!(p("Bash", bash("ls -la")).as_deref(), Some("Bash(ls:*)"));
        assert_eq!(
            p("Bash", bash("./run.sh x")).as_deref(),
            Some("Bash(./run.sh x:*)").or(Some("Bash(./run.sh:*)"))
        );
        assert_eq!(p("Bash", bash("a && b")).as_deref(), Some("Bash(a && b)"));
        assert_eq!(
            p("Write", json!({"file_path": "/p/src/lib.rs"})).as_deref(),
            Some("Write(src/lib.rs)")
        );
        assert_eq!(
            p("Edit", json!({"file_path": "/etc/x"})).as_deref(),
            Some("Edit(/etc/x)")
        );
        assert_eq!(
            p("WebFetch", json!({"url": "u"})).as_deref(),
            Some("WebFetch")
        );
        assert_eq!(p("AskUserQuestion", json!({})), None);
        // Every proposal parses and matches the request it was made for.
        for (t, i) in [
            ("Bash", bash("npm test")),
            ("Bash", bash("a && b")),
            ("Write", json!({"file_path": "/p/src/lib.rs"})),
            ("WebFetch", json!({"url": "u"})),
        ] {
            let rule = Rule::parse(&p(t, i.clone()).unwrap()).unwrap();
            assert!(rule.matches(t, &i, cwd), "{rule}");
        }
    }
}
