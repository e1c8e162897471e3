//! Tool calls as one line each.

use std::borrow::Cow;
use std::mem;

use serde_json::Value;

use super::doc::{Doc, Mark};
use super::{sanitize, strip_cr, Kind, Open, Renderer};
use crate::stream_json::{self, Block, Denial};
use crate::text::{cut_chars, one_line};

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

/// A request drawn under its tool call.
#[derive(Debug)]
pub(super) struct Ask {
    pub(super) request_id: String,
    pub(super) tool_name: String,
    /// The questions' texts and headers (AskUserQuestion), to name the answers.
    pub(super) questions: Vec<(String, String)>,
    pub(super) lines: Vec<String>,
}

impl Ask {
    pub(super) fn retained_bytes(&self) -> usize {
        self.request_id.capacity()
            + self.tool_name.capacity()
            + self
                .lines
                .iter()
                .map(|l| l.capacity() + std::mem::size_of::<String>())
                .sum::<usize>()
    }
}

/// Result lines shown under a tool call: the first one, then this many more; the rest is in
/// the buffer too, folded (`Fold`), up to `RESULT_MAX_LINES` lines in all.
const RESULT_MORE_LINES: usize = 4;
/// Result lines in the buffer at most; how many more there were is said after them.
pub(super) const RESULT_MAX_LINES: usize = 200;
/// Longest result line shown, in characters.
const RESULT_LINE_CHARS: usize = 160;
/// Tool calls waiting for a result that we keep open; older ones are left as they are.
const MAX_OPEN_TOOLS: usize = 256;
/// Tool calls whose result may still arrive after their group was closed.
pub(super) const MAX_LATE_TOOLS: usize = 64;

/// Consecutive tool calls, kept while some wait for their results so each result can be folded
/// under its own call.
pub(super) struct ToolGroup {
    /// Set while the group still holds its first call, so the whole group can be removed.
    pub(super) mark: Option<Mark>,
    /// First line of `entries[0]`.
    pub(super) start: usize,
    /// Whether the line before `start` is blank.
    start_blank: bool,
    pub(super) entries: Vec<ToolEntry>,
}

pub(super) struct ToolEntry {
    pub(super) id: String,
    pub(super) call: String,
    /// Announced by a stream event; the `assistant` line with its input has not come yet.
    pub(super) provisional: bool,
    /// Tool calls of the subagent this call runs: how many, and the last one.
    pub(super) sub: Option<(u64, String)>,
    /// A permission request about this call: waiting, or the line that says what was decided.
    pub(super) ask: Option<Ask>,
    pub(super) result: Option<Vec<String>>,
}

impl ToolEntry {
    pub(super) fn line_count(&self) -> usize {
        1 + usize::from(self.sub.is_some())
            + self.ask.as_ref().map_or(0, |a| a.lines.len())
            + self.result.as_ref().map_or(0, Vec::len)
    }

    fn complete(&self) -> bool {
        !self.provisional && self.result.is_some()
    }

    /// Lines before the subagent line and before the result, which a change of those keeps.
    pub(super) fn head_lines(&self) -> usize {
        1
    }

    fn push_lines(&self, doc: &mut Doc, skip: usize) {
        // The entry's `skip` first lines are the document's last ones.
        let at = doc.len() - skip;
        let result_at =
            1 + usize::from(self.sub.is_some()) + self.ask.as_ref().map_or(0, |a| a.lines.len());
        if let Some(result) = &self.result {
            // Under its first lines, a long result is folded (the note of lines left out
            // included); a fold already in the document stays as it is.
            let first = result_at + 1 + RESULT_MORE_LINES;
            if result.len() > first - result_at + 1 && first >= skip {
                doc.fold(at + first, at + result_at + result.len() - 1);
            }
        }
        let mut n = 0;
        let mut push = |doc: &mut Doc, line: Cow<str>| {
            if n >= skip {
                doc.push_owned(line.into_owned());
            }
            n += 1;
        };
        push(doc, Cow::Borrowed(&self.call));
        if let Some((count, last)) = &self.sub {
            let calls = if *count == 1 {
                "tool call"
            } else {
                "tool calls"
            };
            push(
                doc,
                Cow::Owned(format!("  ↳ {count} {calls}, last: {last}")),
            );
        }
        for l in self.ask.iter().flat_map(|a| a.lines.iter()) {
            push(doc, Cow::Borrowed(l));
        }
        for l in self.result.iter().flatten() {
            push(doc, Cow::Borrowed(l));
        }
    }

    pub(super) fn retained_bytes(&self) -> usize {
        self.id.capacity()
            + self.call.capacity()
            + self.sub.as_ref().map_or(0, |(_, s)| s.capacity())
            + self.ask.as_ref().map_or(0, Ask::retained_bytes)
            + self
                .result
                .iter()
                .flatten()
                .map(|l| l.capacity() + mem::size_of::<String>())
                .sum::<usize>()
    }
}

impl Renderer {
    pub(super) fn drop_provisional_tools(&mut self, group: &mut ToolGroup) {
        let Some(first) = group.entries.iter().position(|e| e.provisional) else {
            return;
        };
        group.entries.retain(|e| !e.provisional);
        if group.entries.is_empty() {
            if let Some(mark) = group.mark {
                self.restore(mark);
                return;
            }
        }
        Self::redraw_tools(&mut self.doc, group, first.min(group.entries.len()), 0);
    }

    /// Rewrites the group from line `keep` of entry `from` to the end of the document.
    pub(super) fn redraw_tools(doc: &mut Doc, group: &ToolGroup, from: usize, keep: usize) {
        let at = group.start
            + keep
            + group.entries[..from]
                .iter()
                .map(ToolEntry::line_count)
                .sum::<usize>();
        // Lines of the group are calls and results, never blank.
        doc.truncate(at, at == group.start && group.start_blank);
        for (i, e) in group.entries[from..].iter().enumerate() {
            e.push_lines(doc, if i == 0 { keep } else { 0 });
        }
    }

    pub(super) fn add_tool(&mut self, entry: ToolEntry) {
        if !matches!(self.open, Open::Tools(_)) {
            let mark = self.begin(Kind::Tools);
            self.open = Open::Tools(ToolGroup {
                mark: Some(mark),
                start: self.doc.len(),
                start_blank: self.doc.last_blank,
                entries: Vec::new(),
            });
        }
        let Open::Tools(group) = &mut self.open else {
            return;
        };
        entry.push_lines(&mut self.doc, 0);
        group.entries.push(entry);
        if group.entries.len() > MAX_OPEN_TOOLS {
            // Its lines stay as they are; a result arriving later is shown on its own.
            let old = group.entries.remove(0);
            group.start += old.line_count();
            group.start_blank = false;
            group.mark = None;
            if self.late.len() == MAX_LATE_TOOLS {
                self.late.pop_front();
            }
            self.late.push_back((old.id, old.call));
        }
    }

    pub(super) fn confirm_tool(&mut self, id: &str, call: String) {
        if let Open::Tools(group) = &mut self.open {
            if let Some(i) = group
                .entries
                .iter()
                .position(|e| !id.is_empty() && e.id == id)
            {
                let e = &mut group.entries[i];
                e.provisional = false;
                if e.call != call {
                    e.call = call;
                    Self::redraw_tools(&mut self.doc, group, i, 0);
                }
                Self::pop_complete(group);
                return;
            }
        }
        self.add_tool(ToolEntry {
            id: id.to_string(),
            call,
            provisional: false,
            sub: None,
            ask: None,
            result: None,
        });
    }

    pub(super) fn tool_result(&mut self, r: &stream_json::ToolResult) {
        let folded = fold_result(&r.content, r.is_error);
        if let Open::Tools(group) = &mut self.open {
            if let Some(i) = group.entries.iter().position(|e| e.id == r.tool_use_id) {
                let e = &mut group.entries[i];
                let keep = e.head_lines()
                    + usize::from(e.sub.is_some())
                    + e.ask.as_ref().map_or(0, |a| a.lines.len());
                e.result = Some(folded);
                Self::redraw_tools(&mut self.doc, group, i, keep);
                Self::pop_complete(group);
                return;
            }
        }
        let call = match self.late.iter().position(|(id, _)| *id == r.tool_use_id) {
            Some(i) => self.late.remove(i).map(|(_, call)| call),
            None => None,
        };
        self.add_tool(ToolEntry {
            id: r.tool_use_id.clone(),
            call: call.unwrap_or_else(|| "● tool result".to_string()),
            provisional: false,
            sub: None,
            ask: None,
            result: Some(folded),
        });
        if let Open::Tools(group) = &mut self.open {
            Self::pop_complete(group);
        }
    }

    /// Calls at the front of the group that have their result can no longer change.
    fn pop_complete(group: &mut ToolGroup) {
        let done = group.entries.iter().take_while(|e| e.complete()).count();
        if done > 0 {
            group.start += group.entries[..done]
                .iter()
                .map(ToolEntry::line_count)
                .sum::<usize>();
            group.entries.drain(..done);
            group.start_blank = false;
            group.mark = None;
        }
    }

    /// A subagent's tool calls are counted under the call that runs it, not shown one by one.
    pub(super) fn subagent(&mut self, parent: &str, a: &stream_json::Assistant) {
        let Open::Tools(group) = &mut self.open else {
            return;
        };
        let Some(i) = group.entries.iter().position(|e| e.id == parent) else {
            return;
        };
        let mut changed = false;
        for b in &a.content {
            if let Block::ToolUse { name, input, .. } = b {
                let e = &mut group.entries[i];
                let n = e.sub.as_ref().map_or(0, |(n, _)| *n) + 1;
                e.sub = Some((n, tool_summary(name, input)));
                changed = true;
            }
        }
        if changed {
            let keep = group.entries[i].head_lines();
            Self::redraw_tools(&mut self.doc, group, i, keep);
        }
    }
}

/// Result lines under a call: its first line, up to `RESULT_MAX_LINES` in all (the buffer folds
/// those after the first few), and how many were left out.
fn fold_result(content: &str, is_error: bool) -> Vec<String> {
    let marker = if is_error { "  ✗ " } else { "  ⎿ " };
    let mut lines = content
        .trim_matches(|c| c == '\n' || c == '\r')
        .split('\n')
        .map(|l| sanitize(strip_cr(l)).trim_end().to_string());
    let first = match lines.next() {
        Some(l) if !l.is_empty() || !content.trim().is_empty() => l,
        _ => return vec![format!("{marker}(no output)")],
    };
    let mut out = vec![format!("{marker}{}", cut_chars(&first, RESULT_LINE_CHARS))];
    for l in lines.by_ref().take(RESULT_MAX_LINES - 1) {
        out.push(
            format!("    {}", cut_chars(&l, RESULT_LINE_CHARS))
                .trim_end()
                .to_string(),
        );
    }
    let more = lines.count();
    if more > 0 {
        let unit = if more == 1 { "line" } else { "lines" };
        out.push(format!("  … {more} more {unit} not shown"));
    }
    out
}
