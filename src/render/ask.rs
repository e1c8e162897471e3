//! Permission requests and questions, drawn under the tool call they are about while they wait
//! (a Bash command, a Write as a diff against the file on disk, an Edit's old -> new, the
//! questions and their options, any other tool's input), then folded to one line that says what
//! was decided and by whom, from the echo of the answer in the transcript.

use std::borrow::Cow;
use std::path::Path;

use serde_json::Value;

use super::diff::unified;
use super::doc::Kind;
use super::tools::{tool_summary, Ask, ToolGroup};
use super::{sanitize, Open, Renderer};
use crate::stream_json::control::{CanUseTool, Control, ControlResponse, RequestKind};
use crate::text::{cut_chars, one_line};

/// Longest body of a request, in lines; the rest is counted.
const MAX_BODY: usize = 200;
/// Longest line of a request's body, in characters.
const LINE_CHARS: usize = 400;
/// Requests drawn on their own (no open tool call to put them under) whose answer may come.
const MAX_LONE_ASKS: usize = 64;
/// Largest file read to diff a Write against.
pub const MAX_DIFF_FILE: u64 = 1024 * 1024;

/// A file as a request's diff sees it.
pub enum FileText {
    Missing,
    Text(String),
    /// There, but not shown as text (too large, not UTF-8, unreadable): why.
    Unshown(String),
}

/// Reads a file of the project for a request's diff (the view gives the renderer one: the
/// renderer itself does no I/O).
pub type FileReader = Box<dyn Fn(&Path) -> FileText + Send + Sync>;

impl Renderer {
    pub(super) fn control(&mut self, c: &Control) {
        match c {
            Control::Request(r) => {
                if let RequestKind::CanUseTool(req) = &r.kind {
                    self.ask(&r.request_id, req);
                }
            }
            Control::Cancel { request_id } => {
                self.decided(request_id, |_| "  ■ request withdrawn".to_string());
            }
            Control::Response(resp) => {
                let resp = resp.clone();
                self.decided(&resp.request_id.clone(), move |ask| {
                    decision_line(ask, &resp)
                });
            }
        }
    }

    fn ask(&mut self, request_id: &str, req: &CanUseTool) {
        let ask = Ask {
            request_id: request_id.to_string(),
            tool_name: req.tool_name.clone(),
            questions: questions(&req.input)
                .iter()
                .map(|q| {
                    (
                        str_of(q, "question").to_string(),
                        str_of(q, "header").to_string(),
                    )
                })
                .collect(),
            lines: self.request_lines(request_id, req),
        };
        if let (Some(id), Open::Tools(group)) = (&req.tool_use_id, &mut self.open) {
            if let Some(i) = group.entries.iter().position(|e| e.id == *id) {
                let e = &mut group.entries[i];
                let keep = e.head_lines() + usize::from(e.sub.is_some());
                e.ask = Some(ask);
                redraw(&mut self.doc, group, i, keep);
                return;
            }
        }
        // No open call to put it under: on its own, its answer will follow it.
        self.begin(Kind::Notice);
        for l in &ask.lines {
            self.doc.push_owned(l.clone());
        }
        if self.lone_asks.len() == MAX_LONE_ASKS {
            self.lone_asks.pop_front();
        }
        self.lone_asks.push_back(Ask {
            lines: Vec::new(),
            ..ask
        });
    }

    /// The request `request_id` was answered or withdrawn: its lines become `line(ask)`.
    fn decided(&mut self, request_id: &str, line: impl FnOnce(&Ask) -> String) {
        if let Open::Tools(group) = &mut self.open {
            if let Some(i) = group
                .entries
                .iter()
                .position(|e| e.ask.as_ref().is_some_and(|a| a.request_id == request_id))
            {
                let e = &mut group.entries[i];
                let keep = e.head_lines() + usize::from(e.sub.is_some());
                if let Some(ask) = e.ask.as_mut() {
                    ask.lines = vec![line(ask)];
                }
                redraw(&mut self.doc, group, i, keep);
                return;
            }
        }
        let lone = self
            .lone_asks
            .iter()
            .position(|a| a.request_id == request_id);
        if let Some(ask) = lone.and_then(|i| self.lone_asks.remove(i)) {
            self.begin(Kind::Notice);
            self.doc.push_owned(line(&ask));
        }
        // Anything else (our hooks' answers, the CLI's answers to our own requests) is not
        // shown.
    }

    fn relative<'a>(&self, path: &'a str) -> Cow<'a, str> {
        if self.cwd.is_empty() {
            return Cow::Borrowed(path);
        }
        match Path::new(path).strip_prefix(&self.cwd) {
            Ok(rel) if !rel.as_os_str().is_empty() => Cow::Owned(rel.display().to_string()),
            _ => Cow::Borrowed(path),
        }
    }

    /// The lines a waiting request shows.
    fn request_lines(&self, request_id: &str, req: &CanUseTool) -> Vec<String> {
        let input = &req.input;
        let tag = request_id.get(..8).unwrap_or(request_id);
        let path = str_of(input, "file_path");
        let shown_path = self.relative(path);
        let head = match req.tool_name.as_str() {
            "Bash" => "Run this command?".to_string(),
            "Write" | "Edit" | "MultiEdit" => format!("{} {}?", req.tool_name, shown_path),
            "NotebookEdit" => format!(
                "Edit the notebook {}?",
                self.relative(str_of(input, "notebook_path"))
            ),
            "AskUserQuestion" => "Claude asks:".to_string(),
            "ExitPlanMode" => "Approve this plan?".to_string(),
            other => format!("Allow {}?", one_line(other, 80)),
        };
        let mut lines = vec![sanitize(&format!("? {head}  [{tag}]")).into_owned()];
        let mut body: Vec<String> = Vec::new();
        let hook = req.decision_reason_type.as_deref() == Some("hook");
        if let Some(reason) = &req.decision_reason {
            if hook || req.decision_reason_type.as_deref() == Some("workingDir") {
                body.push(format!("⚠ {}", one_line(reason, 200)));
            }
        }
        match req.tool_name.as_str() {
            "Bash" => {
                let cmd = str_of(input, "command");
                for (i, l) in cmd.split('\n').enumerate() {
                    body.push(format!("{}{l}", if i == 0 { "$ " } else { "  " }));
                }
                if let Some(d) = req.description.as_deref().filter(|d| !d.is_empty()) {
                    body.push(format!("# {}", one_line(d, 200)));
                }
            }
            "Write" => {
                let new = str_of(input, "content");
                let old = match &self.files {
                    Some(read) => read(Path::new(path)),
                    None => FileText::Unshown("not read".into()),
                };
                match old {
                    FileText::Text(old) => {
                        let d = unified(&old, new);
                        if d.is_empty() {
                            body.push("(the file already has this content)".into());
                        }
                        body.extend(d);
                    }
                    FileText::Missing => {
                        body.push(format!("(new file, {} lines)", new.lines().count()));
                        body.extend(new.lines().map(|l| format!("+{l}")));
                    }
                    FileText::Unshown(why) => {
                        body.push(format!(
                            "(replaces the file, {why}; new content: {} lines)",
                            new.lines().count()
                        ));
                        body.extend(new.lines().map(|l| format!("+{l}")));
                    }
                }
            }
            "Edit" => {
                edit_diff(&mut body, input);
                if input.get("replace_all").and_then(Value::as_bool) == Some(true) {
                    body.push("(every occurrence)".into());
                }
            }
            "MultiEdit" => {
                let edits = input.get("edits").and_then(Value::as_array);
                for e in edits.into_iter().flatten() {
                    edit_diff(&mut body, e);
                }
            }
            "NotebookEdit" => {
                body.extend(str_of(input, "new_source").lines().map(|l| format!("+{l}")));
            }
            "AskUserQuestion" => {
                for q in questions(input) {
                    let header = str_of(q, "header");
                    let many = q.get("multiSelect").and_then(Value::as_bool) == Some(true);
                    body.push(format!(
                        "{}{}{}",
                        if header.is_empty() {
                            String::new()
                        } else {
                            format!("{header}: ")
                        },
                        one_line(str_of(q, "question"), 200),
                        if many { " (one or more)" } else { "" }
                    ));
                    let options = q.get("options").and_then(Value::as_array);
                    for (i, o) in options.into_iter().flatten().enumerate() {
                        let desc = str_of(o, "description");
                        body.push(format!(
                            "  {}. {}{}",
                            i + 1,
                            one_line(str_of(o, "label"), 100),
                            if desc.is_empty() {
                                String::new()
                            } else {
                                format!(" — {}", one_line(desc, 150))
                            }
                        ));
                    }
                }
            }
            "ExitPlanMode" => body.extend(str_of(input, "plan").lines().map(str::to_string)),
            _ => {
                if let Some(map) = input.as_object() {
                    for (k, v) in map {
                        let v = match v {
                            Value::String(s) => one_line(s, 200),
                            other => one_line(&other.to_string(), 200),
                        };
                        body.push(format!("{k}: {v}"));
                    }
                }
            }
        }
        let total = body.len();
        for l in body.into_iter().take(MAX_BODY) {
            let l = sanitize(&l);
            lines.push(format!("  {}", cut_chars(l.trim_end(), LINE_CHARS)));
        }
        if total > MAX_BODY {
            lines.push(format!(
                "  … {} more lines (the whole request: :ClaudeTasks log)",
                total - MAX_BODY
            ));
        }
        // The keys that do something here: no "always" for what is never made a rule.
        lines.push(match req.tool_name.as_str() {
            "AskUserQuestion" => "  a answer · d decline".to_string(),
            "ExitPlanMode" => "  a approve · d deny · e edit".to_string(),
            _ => "  a allow · A always · d deny · e edit".to_string(),
        });
        // The group's lines are never blank.
        for l in lines.iter_mut() {
            if l.trim().is_empty() {
                *l = "  ".to_string();
            }
        }
        lines
    }
}

fn redraw(doc: &mut super::doc::Doc, group: &ToolGroup, from: usize, keep: usize) {
    Renderer::redraw_tools(doc, group, from, keep);
}

fn questions(input: &Value) -> &[Value] {
    input
        .get("questions")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An Edit's old -> new as a diff (of the strings: the file is not read).
fn edit_diff(body: &mut Vec<String>, edit: &Value) {
    let d = unified(str_of(edit, "old_string"), str_of(edit, "new_string"));
    body.extend(d);
}

/// The one line a decided request becomes.
fn decision_line(ask: &Ask, resp: &ControlResponse) -> String {
    let who = resp.decided.as_ref();
    let by = who.map_or("", |d| d.by.as_str());
    let line = if resp.subtype == "error" {
        format!(
            "✗ not allowed: {}",
            one_line(resp.error.as_deref().unwrap_or("error"), 200)
        )
    } else {
        match resp.behavior() {
            Some("allow") => match resp.updated_input() {
                None => "✗ not allowed (an answer without the input)".to_string(),
                Some(input) if ask.tool_name == "AskUserQuestion" => {
                    let answers = input.get("answers").and_then(Value::as_object);
                    let said: Vec<String> = answers
                        .into_iter()
                        .flatten()
                        .map(|(q, a)| {
                            let name = ask
                                .questions
                                .iter()
                                .find(|(text, header)| text == q && !header.is_empty())
                                .map_or(q.as_str(), |(_, header)| header.as_str());
                            let a = a.as_str().map_or_else(|| a.to_string(), str::to_string);
                            format!("{} = {}", one_line(name, 60), one_line(&a, 100))
                        })
                        .collect();
                    format!("✓ answered: {}", said.join("; "))
                }
                Some(input) => match (by, who) {
                    ("rule", Some(d)) => format!(
                        "✓ allowed by rule {}",
                        d.rule.as_deref().unwrap_or("(a rule)")
                    ),
                    (_, Some(d)) if d.rule.is_some() => format!(
                        "✓ always: {}{}",
                        d.rule.as_deref().unwrap_or(""),
                        if d.scope.as_deref() == Some("project") {
                            " (every task here)"
                        } else {
                            ""
                        }
                    ),
                    (_, Some(d)) if d.edited => format!(
                        "✓ allowed (edited): {}",
                        tool_summary(&ask.tool_name, input)
                    ),
                    _ => "✓ allowed".to_string(),
                },
            },
            Some("deny") => {
                let msg = resp.message().unwrap_or("").trim();
                let stopped = if resp.interrupts() {
                    " and stopped"
                } else {
                    ""
                };
                if by == "policy" {
                    format!("✗ denied{stopped} (permissions = \"deny\")")
                } else if msg.is_empty() {
                    format!("✗ denied{stopped}")
                } else {
                    format!("✗ denied{stopped}: {}", one_line(msg, 200))
                }
            }
            _ => "✗ not allowed (an answer the CLI does not take)".to_string(),
        }
    };
    format!("  {}", sanitize(&line))
}

#[cfg(test)]
mod tests {
    use super::super::Renderer;
    use super::FileText;
    use crate::testutil::line;
    use serde_json::{json, Value};

    /// Renders `lines` (JSON values), one update per line as a live buffer takes them.
    fn render_with(r: &mut Renderer, lines: &[Value]) -> Vec<String> {
        let mut buf = Vec::new();
        for l in lines {
            r.feed_line(&line(l.to_string().as_bytes()));
            if let Some(u) = r.take_update() {
                u.apply_to(&mut buf);
            }
        }
        buf
    }

    fn render(lines: &[Value]) -> Vec<String> {
        render_with(&mut Renderer::new(), lines)
    }

    fn init() -> Value {
        json!({"type": "system", "subtype": "init", "cwd": "/p", "session_id": "s",
               "model": "m", "permissionMode": "default"})
    }

    fn tool_use(id: &str, name: &str, input: Value) -> Value {
        json!({"type": "assistant", "message": {"id": "msg", "role": "assistant",
               "content": [{"type": "tool_use", "id": id, "name": name, "input": input}]}})
    }

    fn request(rid: &str, tool_use_id: &str, name: &str, input: Value) -> Value {
        json!({"type": "control_request", "request_id": rid, "request": {
            "subtype": "can_use_tool", "tool_name": name, "input": input,
            "tool_use_id": tool_use_id, "permission_suggestions": []}})
    }

    fn echo(rid: &str, response: Value, ours: Value) -> Value {
        json!({"claude_tasks": ours, "type": "control_response",
               "response": {"subtype": "success", "request_id": rid, "response": response}})
    }

    fn result_line(id: &str, text: &str) -> Value {
        json!({"type": "user", "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": id, "content": text}]}})
    }

    const RID: &str = "43ba1187-f9f7-480d-8bc1-8caace58423a";

    #[test]
    fn a_bash_request_waits_under_its_call_then_says_what_was_decided() {
        let cmd = json!({"command": "npm test\nnpm run lint", "description": "Run the tests"});
        let mut req = request(RID, "t1", "Bash", cmd.clone());
        req["request"]["description"] = json!("Run the tests");
        let asked = [init(), tool_use("t1", "Bash", cmd.clone()), req];
        let lines = render(&asked);
        assert_eq!(
            lines[2..],
            [
                "● Bash(npm test…)",
                "? Run this command?  [43ba1187]",
                "  $ npm test",
                "    npm run lint",
                "  # Run the tests",
                "  a allow · A always · d deny · e edit",
            ]
        );
        let cases = [
            (
                json!({"behavior": "allow", "updatedInput": cmd}),
                json!({"by": "user"}),
                "  ✓ allowed",
            ),
            (
                json!({"behavior": "allow", "updatedInput": {"command": "npm test -- --ci"}}),
                json!({"by": "user", "edited": true}),
                "  ✓ allowed (edited): Bash(npm test -- --ci)",
            ),
            (
                json!({"behavior": "allow", "updatedInput": cmd}),
                json!({"by": "user", "rule": "Bash(npm:*)", "scope": "project"}),
                "  ✓ always: Bash(npm:*) (every task here)",
            ),
            (
                json!({"behavior": "allow", "updatedInput": cmd}),
                json!({"by": "rule", "rule": "Bash(npm test:*)", "scope": "task"}),
                "  ✓ allowed by rule Bash(npm test:*)",
            ),
            (
                json!({"behavior": "deny", "message": "not now"}),
                json!({"by": "user"}),
                "  ✗ denied: not now",
            ),
            (
                json!({"behavior": "deny", "message": "x", "interrupt": true}),
                json!({"by": "user"}),
                "  ✗ denied and stopped: x",
            ),
            (
                json!({"behavior": "deny", "message": "x"}),
                json!({"by": "policy"}),
                "  ✗ denied (permissions = \"deny\")",
            ),
            (
                json!({"behavior": "allow"}),
                json!({"by": "user"}),
                "  ✗ not allowed (an answer without the input)",
            ),
        ];
        for (response, ours, want) in cases {
            let mut all = asked.to_vec();
            all.push(echo(RID, response, ours));
            all.push(result_line("t1", "ok"));
            let lines = render(&all);
            assert_eq!(lines[2..], ["● Bash(npm test…)", want, "  ⎿ ok"], "{want}");
        }
        // Withdrawn by an interrupt.
        let mut all = asked.to_vec();
        all.push(json!({"type": "control_cancel_request", "request_id": RID}));
        assert_eq!(render(&all)[3], "  ■ request withdrawn");
    }

    #[test]
    fn a_write_is_a_diff_against_the_file_on_disk() {
        let input = json!({"file_path": "/p/src/lib.rs", "content": "fn a() {}\nfn b() {}\n"});
        let lines = [
            init(),
            tool_use("t1", "Write", input.clone()),
            request(RID, "t1", "Write", input.clone()),
        ];
        let mut r = Renderer::new();
        r.set_file_reader(Box::new(|p| {
            assert_eq!(p, std::path::Path::new("/p/src/lib.rs"));
            FileText::Text("fn a() {}\n".into())
        }));
        let shown = render_with(&mut r, &lines);
        assert_eq!(
            shown[3..],
            [
                "? Write src/lib.rs?  [43ba1187]",
                "  @@ -1 +1,2 @@",
                "   fn a() {}",
                "  +fn b() {}",
                "  a allow · A always · d deny · e edit",
            ]
        );
        let mut r = Renderer::new();
        r.set_file_reader(Box::new(|_| FileText::Missing));
        assert_eq!(render_with(&mut r, &lines)[4], "  (new file, 2 lines)");
        let mut r = Renderer::new();
        r.set_file_reader(Box::new(|_| FileText::Unshown("over 1024 KiB".into())));
        assert!(render_with(&mut r, &lines)[4].starts_with("  (replaces the file, over 1024 KiB"));
    }

    #[test]
    fn an_edit_an_unsaved_file_and_a_question() {
        let edit = json!({"file_path": "/p/a.rs", "old_string": "x\ny", "new_string": "x\nz"});
        let mut req = request(RID, "t1", "Edit", edit.clone());
        req["request"]["decision_reason"] = json!("you have unsaved changes in a.rs");
        req["request"]["decision_reason_type"] = json!("hook");
        let lines = render(&[init(), tool_use("t1", "Edit", edit), req]);
        assert_eq!(
            lines[3..],
            [
                "? Edit a.rs?  [43ba1187]",
                "  ⚠ you have unsaved changes in a.rs",
                "  @@ -1,2 +1,2 @@",
                "   x",
                "  -y",
                "  +z",
                "  a allow · A always · d deny · e edit",
            ]
        );
        let q = json!({"questions": [{"question": "Which color?", "header": "Color",
            "multiSelect": true, "options": [{"label": "Red", "description": "warm"},
            {"label": "Blue", "description": ""}]}]});
        let asked = [
            init(),
            tool_use("t2", "AskUserQuestion", q.clone()),
            request(RID, "t2", "AskUserQuestion", q.clone()),
        ];
        assert_eq!(
            render(&asked)[3..],
            [
                "? Claude asks:  [43ba1187]",
                "  Color: Which color? (one or more)",
                "    1. Red — warm",
                "    2. Blue",
                "  a answer · d decline",
            ]
        );
        let mut answered = q.clone();
        answered["answers"] = json!({"Which color?": "Red, Blue"});
        let mut all = asked.to_vec();
        all.push(echo(
            RID,
            json!({"behavior": "allow", "updatedInput": answered}),
            json!({"by": "user"}),
        ));
        assert_eq!(render(&all)[3], "  ✓ answered: Color = Red, Blue");
    }

    #[test]
    fn a_plan_a_multi_edit_a_notebook_and_any_other_tool_show_their_input() {
        let plan = json!({"plan": "1. Read the test\n2. Fix it"});
        let asked = [
            init(),
            tool_use("t1", "ExitPlanMode", plan.clone()),
            request(RID, "t1", "ExitPlanMode", plan.clone()),
        ];
        assert_eq!(
            render(&asked)[3..],
            [
                "? Approve this plan?  [43ba1187]",
                "  1. Read the test",
                "  2. Fix it",
                "  a approve · d deny · e edit",
            ]
        );
        let mut all = asked.to_vec();
        all.push(echo(
            RID,
            json!({"behavior": "allow", "updatedInput": plan}),
            json!({"by": "user"}),
        ));
        assert_eq!(render(&all)[3], "  ✓ allowed");

        let multi = json!({"file_path": "/p/m.rs", "edits": [
            {"old_string": "a", "new_string": "b"}, {"old_string": "c\nd", "new_string": "c"}]});
        let shown = render(&[
            init(),
            tool_use("t2", "MultiEdit", multi.clone()),
            request(RID, "t2", "MultiEdit", multi),
        ]);
        assert_eq!(shown[3], "? MultiEdit m.rs?  [43ba1187]");
        assert_eq!(shown[4..shown.len() - 1].concat().matches("@@").count(), 4);
        assert!(shown.contains(&"  -a".to_string()) && shown.contains(&"  +b".to_string()));
        assert!(shown.contains(&"  -d".to_string()), "{shown:#?}");

        let nb = json!({"notebook_path": "/p/n.ipynb", "new_source": "print(1)\nprint(2)"});
        let shown = render(&[
            init(),
            tool_use("t3", "NotebookEdit", nb.clone()),
            request(RID, "t3", "NotebookEdit", nb),
        ]);
        assert_eq!(
            shown[3..6],
            [
                "? Edit the notebook n.ipynb?  [43ba1187]",
                "  +print(1)",
                "  +print(2)"
            ]
        );

        // Any other tool: its input key by key, each on one line and cut.
        let long = "y".repeat(500);
        let other = json!({"url": "https://example.invalid/doc", "prompt": long, "n": 3});
        let shown = render(&[
            init(),
            tool_use("t4", "WebFetch", other.clone()),
            request(RID, "t4", "WebFetch", other),
        ]);
        assert_eq!(shown[3], "? Allow WebFetch?  [43ba1187]");
        let body = &shown[4..shown.len() - 1];
        assert!(
            body.contains(&"  url: https://example.invalid/doc".to_string()),
            "{body:#?}"
        );
        assert!(body.contains(&"  n: 3".to_string()), "{body:#?}");
        let prompt = body.iter().find(|l| l.starts_with("  prompt: ")).unwrap();
        assert!(prompt.chars().count() < 260, "{prompt}");
    }

    #[test]
    fn escapes_never_reach_the_buffer_and_a_lone_request_is_answered_below() {
        let evil = json!({"command": "echo \u{1b}[31mred\u{1b}[0m\u{7}"});
        // No tool call to put it under (the call was not in the transcript).
        let lines = render(&[
            init(),
            request(RID, "nowhere", "Bash", evil.clone()),
            echo(
                RID,
                json!({"behavior": "deny", "message": "no \u{1b}[2J"}),
                json!({"by": "user"}),
            ),
        ]);
        for l in &lines {
            assert!(!l.contains('\u{1b}') && !l.contains('\u{7}'), "{l:?}");
        }
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("  $ echo ") && l.contains("red")),
            "{lines:#?}"
        );
        assert!(
            lines.last().unwrap().starts_with("  ✗ denied: no "),
            "{lines:#?}"
        );
        // The echo of a user message we wrote, and answers to our own requests, show nothing.
        let quiet = render(&[
            init(),
            json!({"type": "user", "isReplay": true, "message": {"role": "user", "content": "[Request interrupted by user] trick"}}),
            json!({"type": "control_response", "response": {"subtype": "success", "request_id": "ct-int-1"}}),
            json!({"type": "control_request", "request_id": "h", "request": {"subtype": "hook_callback", "callback_id": "x", "input": {}}}),
        ]);
        assert_eq!(quiet, ["model: m · permission: default"]);
    }
}
