//! The output buffer of a task, as a pure function of its transcript.
//!
//! The renderer turns stream-json messages into the lines of a markdown buffer and hands them out
//! as [`Update`]s ("replace from line `start` to the end with `lines`"). It keeps only what can
//! still change: the text block being streamed (as a hash of its finished lines plus the line
//! still growing) and the tool calls waiting for their results. Every line handed out is
//! forgotten, so memory stays bounded however long the transcript is; a block that must be
//! rewritten after its lines were handed out is simply re-sent from its first line.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::mem;

use crate::claude::{self, one_line, tool_summary, Block, BlockKind, Event, Msg, ResultInfo};
use crate::framing::Line;
use crate::task::Status;
use crate::timefmt;

/// Replace the buffer from line `start` (0-based) to its end with `lines`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub start: usize,
    pub lines: Vec<String>,
}

impl Update {
    /// What Neovim does with it: `doc`'s lines from `start` on replaced by `lines`.
    pub fn apply_to(self, doc: &mut Vec<String>) {
        doc.truncate(self.start);
        doc.extend(self.lines);
    }
}

pub struct Header<'a> {
    pub id: u64,
    pub name: &'a str,
    pub cwd: &'a str,
    pub started_at_ms: u64,
}

pub struct Footer<'a> {
    pub status: Status,
    pub duration_ms: Option<u64>,
    pub num_turns: u64,
    pub cost_usd: f64,
    pub error: Option<&'a str>,
}

/// Strings kept for reuse (`Renderer::recycle`): a few calls' worth of lines...
const SPARE_LINES: usize = 8 * 1024;
/// ... of at most this capacity each.
const SPARE_CAPACITY: usize = 1024;

/// Result lines shown under a tool call: the first one, then this many more.
const RESULT_MORE_LINES: usize = 4;
/// Longest result line shown, in characters.
const RESULT_LINE_CHARS: usize = 160;
/// Tool calls waiting for a result that we keep open; older ones are left as they are.
const MAX_OPEN_TOOLS: usize = 256;
/// Tool calls whose result may still arrive after their group was closed.
const MAX_LATE_TOOLS: usize = 64;
/// Bytes of one line shown at most; the rest is counted in a `… (N bytes)` marker. A longer line
/// (an answer without newlines, a minified file) would make every redraw slow, and a growing one
/// would be sent again and again while it streams.
pub const MAX_SHOWN_LINE: usize = 16 * 1024;

/// `line` as shown: cut to `MAX_SHOWN_LINE` bytes (at a character boundary) with a marker.
fn clip(line: &str) -> Cow<'_, str> {
    if line.len() <= MAX_SHOWN_LINE {
        return Cow::Borrowed(line);
    }
    Cow::Owned(marked(
        line[..line.floor_char_boundary(MAX_SHOWN_LINE)].to_string(),
        line.len(),
    ))
}

fn marked(mut prefix: String, total: usize) -> String {
    use std::fmt::Write;
    let _ = write!(prefix, "… ({total} bytes)");
    prefix
}

/// Kinds of blocks; a blank line separates blocks, except consecutive ones of a grouping kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Start,
    Header,
    Init,
    Text,
    Thinking,
    Tools,
    Retry,
    Notice,
    Plain,
    Separator,
    Footer,
}

impl Kind {
    fn groups(self) -> bool {
        matches!(self, Kind::Tools | Kind::Retry | Kind::Notice | Kind::Plain)
    }
}

/// The lines of the document not yet handed out, after the `base` lines that were.
struct Doc {
    base: usize,
    pending: Vec<String>,
    /// Strings of lines already written, given back (`Renderer::recycle`) to hold new lines:
    /// a flood renders a line per 80 bytes, and allocating each one here to free it on another
    /// thread after its write was a sixth of the backend's CPU.
    spare: Vec<String>,
    pending_bytes: usize,
    changed: bool,
    /// Whether the last line is blank (or the document is empty), to avoid doubled blank lines.
    last_blank: bool,
}

impl Doc {
    fn len(&self) -> usize {
        self.base + self.pending.len()
    }

    fn push(&mut self, line: &str) {
        let clipped = clip(line);
        let line = match sanitize(&clipped) {
            Cow::Owned(clean) => clean,
            Cow::Borrowed(clean) => self.copy(clean),
        };
        self.push_clean(line);
    }

    /// `push` of a line known to hold no control character (`claude::TextDelta::clean`).
    fn push_known_clean(&mut self, line: &str) {
        let line = match clip(line) {
            Cow::Owned(cut) => cut,
            Cow::Borrowed(line) => self.copy(line),
        };
        self.push_clean(line);
    }

    /// `s` in a string of a line already written, if one was given back.
    fn copy(&mut self, s: &str) -> String {
        let mut line = self.spare.pop().unwrap_or_default();
        line.clear();
        line.push_str(s);
        line
    }

    fn push_owned(&mut self, line: String) {
        let line = match clip(&line) {
            Cow::Borrowed(_) => line,
            Cow::Owned(cut) => cut,
        };
        self.push_shown(line);
    }

    /// A line already cut to size.
    fn push_shown(&mut self, line: String) {
        let line = match sanitize(&line) {
            Cow::Borrowed(_) => line,
            Cow::Owned(clean) => clean,
        };
        self.push_clean(line);
    }

    fn push_clean(&mut self, line: String) {
        self.last_blank = line.is_empty();
        self.pending_bytes += line.len();
        self.pending.push(line);
        self.changed = true;
    }

    /// Cuts the document to `at` lines; `last_blank` tells whether line `at - 1` is blank, as
    /// that line may already have been handed out.
    fn truncate(&mut self, at: usize, last_blank: bool) {
        if at >= self.len() {
            return;
        }
        if at < self.base {
            self.pending.clear();
            self.pending_bytes = 0;
            self.base = at;
        } else {
            for l in self.pending.drain(at - self.base..) {
                self.pending_bytes -= l.len();
            }
        }
        self.last_blank = last_blank;
        self.changed = true;
    }
}

/// The document state before a block began, to remove the block (and its separator) again.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: usize,
    kind: Kind,
    last_blank: bool,
}

/// Assistant text streamed by deltas and not yet confirmed by its `assistant` line.
struct TextBlock {
    mark: Mark,
    /// First line of the text.
    start: usize,
    index: u64,
    /// Finished lines, already in the document.
    lines: usize,
    /// Hash of the finished lines, to tell whether the authoritative text begins with them
    /// without keeping them.
    hash: u64,
    last_blank: bool,
    /// Text after the last newline: a line still growing, shown but not in the document. Only
    /// its first `MAX_SHOWN_LINE` bytes are kept; `tail_len` counts all of them.
    tail: String,
    tail_len: usize,
    /// `hash` carried on over the tail's bytes so far, so a line longer than what is kept still
    /// hashes whole; a `\r` at the end is not in it yet (a line's last `\r` does not count).
    tail_hash: LineHasher,
    tail_cr: bool,
    /// The growing line has no control character but tabs: shown as it is.
    tail_clean: bool,
}

impl TextBlock {
    fn new(mark: Mark, start: usize, index: u64) -> Self {
        TextBlock {
            mark,
            start,
            index,
            lines: 0,
            hash: HASH_START,
            last_blank: true,
            tail: String::new(),
            tail_len: 0,
            tail_hash: LineHasher::new(HASH_START),
            tail_cr: false,
            tail_clean: true,
        }
    }

    /// Adds `s` to the growing line; `clean` as in `claude::TextDelta`.
    fn extend_tail(&mut self, s: &str, clean: bool) {
        if s.is_empty() {
            return;
        }
        if self.tail_len == 0 {
            self.tail_hash = LineHasher::new(self.hash);
            self.tail_clean = true;
        }
        self.tail_clean &= clean;
        let mut bytes = s.as_bytes();
        if mem::take(&mut self.tail_cr) {
            self.tail_hash.write(b"\r");
        }
        if let Some((b'\r', head)) = bytes.split_last() {
            bytes = head;
            self.tail_cr = true;
        }
        self.tail_hash.write(bytes);
        // Once something was left out, nothing after it may be kept.
        if self.tail.len() == self.tail_len {
            let room = MAX_SHOWN_LINE - self.tail.len();
            self.tail.push_str(&s[..s.floor_char_boundary(room)]);
        }
        self.tail_len += s.len();
    }

    /// The growing line as shown.
    fn shown_tail(&self) -> String {
        if self.tail.len() < self.tail_len {
            marked(self.tail.clone(), self.tail_len)
        } else {
            self.tail.clone()
        }
    }

    /// Ends the growing line (a newline came): the line as shown, its hash chained on.
    fn take_line(&mut self) -> String {
        if self.tail_len == 0 {
            self.tail_hash = LineHasher::new(self.hash);
        }
        self.hash = self.tail_hash.finish();
        let whole = self.tail.len() == self.tail_len;
        let total = self.tail_len - usize::from(self.tail_cr);
        let mut shown = mem::take(&mut self.tail);
        if whole && self.tail_cr {
            shown.pop();
        }
        self.tail_len = 0;
        self.tail_cr = false;
        if whole {
            shown
        } else {
            marked(shown, total)
        }
    }
}

/// A provisional `✻ thinking…` line, replaced when the thinking block arrives.
struct ThinkingBlock {
    mark: Mark,
    line: usize,
}

/// Consecutive tool calls, kept while some wait for their results so each result can be folded
/// under its own call.
struct ToolGroup {
    /// Set while the group still holds its first call, so the whole group can be removed.
    mark: Option<Mark>,
    /// First line of `entries[0]`.
    start: usize,
    /// Whether the line before `start` is blank.
    start_blank: bool,
    entries: Vec<ToolEntry>,
}

struct ToolEntry {
    id: String,
    call: String,
    /// Announced by a stream event; the `assistant` line with its input has not come yet.
    provisional: bool,
    /// Tool calls of the subagent this call runs: how many, and the last one.
    sub: Option<(u64, String)>,
    result: Option<Vec<String>>,
}

impl ToolEntry {
    fn line_count(&self) -> usize {
        1 + usize::from(self.sub.is_some()) + self.result.as_ref().map_or(0, Vec::len)
    }

    fn complete(&self) -> bool {
        !self.provisional && self.result.is_some()
    }

    /// Lines before the subagent line and before the result, which a change of those keeps.
    fn head_lines(&self) -> usize {
        1
    }

    fn push_lines(&self, doc: &mut Doc, skip: usize) {
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
        for l in self.result.iter().flatten() {
            push(doc, Cow::Borrowed(l));
        }
    }

    fn retained_bytes(&self) -> usize {
        self.id.capacity()
            + self.call.capacity()
            + self.sub.as_ref().map_or(0, |(_, s)| s.capacity())
            + self
                .result
                .iter()
                .flatten()
                .map(|l| l.capacity() + mem::size_of::<String>())
                .sum::<usize>()
    }
}

#[derive(Default)]
enum Open {
    #[default]
    None,
    Text(TextBlock),
    Thinking(ThinkingBlock),
    Tools(ToolGroup),
}

pub struct Renderer {
    doc: Doc,
    open: Open,
    last_kind: Kind,
    /// The growing line of the streamed text changed since the last update.
    tail_dirty: bool,
    /// The last update ended with such a line, which the buffer still shows.
    tail_in_buffer: bool,
    /// Calls whose group closed before their result came: (id, call line).
    late: VecDeque<(String, String)>,
    /// This run was interrupted by the user: its error result says nothing more.
    interrupted: bool,
    /// Hash of the API error text shown for this run, not to show it twice with the result.
    shown_error: Option<u64>,
    /// The message being fed had its long strings cut (`feed_shortened`).
    shortened: bool,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    pub fn new() -> Self {
        Renderer {
            doc: Doc {
                base: 0,
                pending: Vec::new(),
                spare: Vec::new(),
                pending_bytes: 0,
                changed: false,
                last_blank: true,
            },
            open: Open::None,
            last_kind: Kind::Start,
            tail_dirty: false,
            tail_in_buffer: false,
            late: VecDeque::new(),
            interrupted: false,
            shown_error: None,
            shortened: false,
        }
    }

    /// `# #3 fix the test`, `cwd: … · started …`, blank.
    pub fn header(&mut self, h: &Header) {
        self.close(false);
        self.blank_line();
        let name = one_line(h.name, 200);
        self.doc
            .push_owned(format!("# #{} {name}", h.id).trim_end().to_string());
        self.doc.push_owned(format!(
            "cwd: {} · started {}",
            h.cwd,
            timefmt::utc(h.started_at_ms)
        ));
        self.doc.push("");
        self.last_kind = Kind::Header;
    }

    /// Start of a follow-up run: blank, `── follow-up #2: <prompt> ──`, blank.
    pub fn separator(&mut self, run_n: u32, prompt_title: &str) {
        self.close(false);
        self.blank_line();
        self.doc.push_owned(format!(
            "── follow-up #{run_n}: {} ──",
            one_line(prompt_title, 80)
        ));
        self.doc.push("");
        self.last_kind = Kind::Separator;
        self.new_run();
    }

    /// The status line of a finished (or abandoned) run.
    pub fn footer(&mut self, f: &Footer) {
        self.begin(Kind::Footer);
        self.doc.push_owned(footer_line(f));
        self.new_run();
    }

    pub fn feed_line(&mut self, line: &Line) {
        self.feed(&claude::parse(line));
    }

    /// A line too long to hold, re-read from the file with its long strings cut
    /// (`crate::longline`): rendered like any other, except that a cut text can neither confirm
    /// nor replace what was streamed for it, so the streamed text stands as it is.
    pub fn feed_shortened(&mut self, msg: &Msg) {
        self.shortened = true;
        self.feed(msg);
        self.shortened = false;
    }

    /// A text delta parsed in place (`claude::text_delta`): the same as feeding its `Msg`,
    /// without building one.
    pub fn feed_text_delta(&mut self, d: &claude::TextDelta) {
        // A subagent's stream would interleave with ours (as in `feed`).
        if d.parent_tool_use_id.is_none() {
            self.text_delta(d.index, &d.text, d.clean);
        }
    }

    pub fn feed(&mut self, msg: &Msg) {
        match msg {
            Msg::Init(init) => {
                let mut parts = Vec::new();
                if !init.model.is_empty() {
                    parts.push(format!("model: {}", init.model));
                }
                if !init.permission_mode.is_empty() {
                    parts.push(format!("permission: {}", init.permission_mode));
                }
                if !parts.is_empty() {
                    self.begin(Kind::Init);
                    self.doc.push_owned(parts.join(" · "));
                }
            }
            Msg::ApiRetry(r) => {
                let what = match (r.error_status, r.error.as_str()) {
                    (Some(status), _) => format!("API error {status}"),
                    (None, "") => "API error".to_string(),
                    (None, e) => format!("API error: {e}"),
                };
                self.begin(Kind::Retry);
                self.doc.push_owned(format!(
                    "↻ {what}, retry {}/{} in {:.1}s",
                    r.attempt,
                    r.max_retries,
                    r.retry_delay_ms / 1000.0
                ));
            }
            Msg::System { .. } | Msg::Other { .. } => {}
            Msg::Assistant(a) => self.assistant(a),
            Msg::User(u) => {
                if u.parent_tool_use_id.is_some() {
                    return;
                }
                for b in &u.content {
                    match b {
                        claude::UserBlock::ToolResult(r) => self.tool_result(r),
                        claude::UserBlock::Text(t) => {
                            if t.trim_start().starts_with("[Request interrupted by user") {
                                self.begin(Kind::Notice);
                                self.doc.push("■ interrupted by user");
                                self.interrupted = true;
                            }
                        }
                        claude::UserBlock::Other(_) => {}
                    }
                }
            }
            Msg::Stream(s) => {
                // A subagent's stream would interleave with ours; its calls show via `assistant`.
                if s.parent_tool_use_id.is_some() {
                    return;
                }
                match &s.event {
                    Event::MessageStart { .. } => self.drop_unconfirmed(),
                    Event::BlockStart { block, .. } => match block {
                        BlockKind::Thinking => {
                            let mark = self.begin(Kind::Thinking);
                            self.doc.push("✻ thinking…");
                            self.open = Open::Thinking(ThinkingBlock {
                                mark,
                                line: self.doc.len() - 1,
                            });
                        }
                        BlockKind::ToolUse { id, name } => self.add_tool(ToolEntry {
                            id: id.clone(),
                            call: format!("● {}", one_line(name, 80)),
                            provisional: true,
                            sub: None,
                            result: None,
                        }),
                        BlockKind::Text | BlockKind::Other(_) => {}
                    },
                    Event::TextDelta { index, text } => self.text_delta(*index, text, false),
                    _ => {}
                }
            }
            Msg::Result(r) => self.result(r),
            Msg::Text(t) => {
                if !t.trim().is_empty() {
                    self.begin(Kind::Plain);
                    self.doc.push(t);
                }
            }
            Msg::Truncated { prefix, total_len } => {
                self.begin(Kind::Plain);
                self.doc
                    .push_owned(format!("{prefix}… ({total_len} bytes)"));
            }
        }
    }

    /// Everything that changed since the last call, or `None`.
    /// Gives back the strings of lines that were written, to hold later lines; a bounded
    /// number, and none that grew large.
    pub fn recycle(&mut self, lines: Vec<String>) {
        let room = SPARE_LINES.saturating_sub(self.doc.spare.len());
        self.doc.spare.extend(
            lines
                .into_iter()
                .filter(|l| l.capacity() <= SPARE_CAPACITY)
                .take(room),
        );
    }

    pub fn take_update(&mut self) -> Option<Update> {
        if !self.doc.changed && !self.tail_dirty {
            return None;
        }
        let start = self.doc.base;
        let mut lines = mem::take(&mut self.doc.pending);
        self.doc.base += lines.len();
        self.doc.pending_bytes = 0;
        self.doc.changed = false;
        let tail = self.tail_line();
        self.tail_in_buffer = tail.is_some();
        self.tail_dirty = false;
        lines.extend(tail);
        Some(Update { start, lines })
    }

    /// Bytes of the lines the next update would carry.
    pub fn pending_bytes(&self) -> usize {
        let tail = match &self.open {
            Open::Text(tb) if self.tail_dirty => tb.tail.len(),
            _ => 0,
        };
        self.doc.pending_bytes + tail
    }

    /// Lines of the document so far.
    pub fn line_count(&self) -> usize {
        self.doc.len() + usize::from(self.tail_line_exists())
    }

    /// Heap bytes held by the renderer (for tests and diagnostics): bounded by what is pending
    /// and what can still change, not by the length of the transcript.
    pub fn retained_bytes(&self) -> usize {
        let pending = self.doc.pending.capacity() * mem::size_of::<String>()
            + self.doc.pending.iter().map(String::capacity).sum::<usize>();
        let open = match &self.open {
            Open::None | Open::Thinking(_) => 0,
            Open::Text(tb) => tb.tail.capacity(),
            Open::Tools(g) => {
                g.entries.capacity() * mem::size_of::<ToolEntry>()
                    + g.entries
                        .iter()
                        .map(ToolEntry::retained_bytes)
                        .sum::<usize>()
            }
        };
        let late = self.late.capacity() * mem::size_of::<(String, String)>()
            + self
                .late
                .iter()
                .map(|(a, b)| a.capacity() + b.capacity())
                .sum::<usize>();
        pending + open + late
    }

    fn new_run(&mut self) {
        self.interrupted = false;
        self.shown_error = None;
    }

    fn tail_line_exists(&self) -> bool {
        matches!(&self.open, Open::Text(tb) if tb.tail_len > 0)
    }

    fn tail_line(&self) -> Option<String> {
        match &self.open {
            Open::Text(tb) if tb.tail_len > 0 && tb.tail_clean => Some(tb.shown_tail()),
            Open::Text(tb) if tb.tail_len > 0 => Some(sanitize(&tb.shown_tail()).into_owned()),
            _ => None,
        }
    }

    fn blank_line(&mut self) {
        if self.doc.len() > 0 && !self.doc.last_blank {
            self.doc.push("");
        }
    }

    /// Starts a block of `kind` at the end of the document, closing the open one; returns where
    /// the document stood before, to take the block back if it turns out to be provisional.
    fn begin(&mut self, kind: Kind) -> Mark {
        // A retry means the streamed response failed: what it showed unconfirmed goes.
        self.close(kind == Kind::Retry);
        let mark = Mark {
            at: self.doc.len(),
            kind: self.last_kind,
            last_blank: self.doc.last_blank,
        };
        if !(kind == self.last_kind && kind.groups()) {
            self.blank_line();
        }
        self.last_kind = kind;
        mark
    }

    fn restore(&mut self, mark: Mark) {
        self.doc.truncate(mark.at, mark.last_blank);
        self.last_kind = mark.kind;
    }

    /// Closes the open block: its provisional parts are dropped (`drop`) or kept as they are.
    fn close(&mut self, drop: bool) {
        match mem::take(&mut self.open) {
            Open::None => {}
            Open::Text(tb) => {
                if self.tail_in_buffer {
                    self.tail_dirty = true;
                }
                if drop {
                    self.restore(tb.mark);
                } else if tb.tail_len > 0 {
                    self.doc.push_shown(tb.shown_tail());
                }
            }
            Open::Thinking(th) => {
                if drop {
                    self.restore(th.mark);
                }
            }
            Open::Tools(mut group) => {
                if drop {
                    self.drop_provisional_tools(&mut group);
                }
                for e in group.entries {
                    if e.result.is_none() {
                        if self.late.len() == MAX_LATE_TOOLS {
                            self.late.pop_front();
                        }
                        self.late.push_back((e.id, e.call));
                    }
                }
            }
        }
    }

    /// A new message starts: whatever the previous attempt streamed without confirmation goes.
    fn drop_unconfirmed(&mut self) {
        match mem::take(&mut self.open) {
            Open::Tools(mut group) => {
                self.drop_provisional_tools(&mut group);
                if !group.entries.is_empty() || group.mark.is_none() {
                    self.open = Open::Tools(group);
                }
            }
            other => {
                self.open = other;
                self.close(true);
            }
        }
    }

    fn drop_provisional_tools(&mut self, group: &mut ToolGroup) {
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
    fn redraw_tools(doc: &mut Doc, group: &ToolGroup, from: usize, keep: usize) {
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

    /// `clean`: the delta holds no control character but newlines and tabs.
    fn text_delta(&mut self, index: u64, delta: &str, clean: bool) {
        if !matches!(&self.open, Open::Text(tb) if tb.index == index) {
            let delta = delta.trim_start_matches(['\n', '\r']);
            if delta.is_empty() {
                return;
            }
            let mark = self.begin(Kind::Text);
            self.open = Open::Text(TextBlock::new(mark, self.doc.len(), index));
            self.append_text(delta, clean);
        } else {
            self.append_text(delta, clean);
        }
    }

    fn append_text(&mut self, delta: &str, clean: bool) {
        let Open::Text(tb) = &mut self.open else {
            return;
        };
        if delta.is_empty() {
            return;
        }
        self.tail_dirty = true;
        let mut rest = delta;
        // The memchr crate's SIMD scan: this runs over every byte of a streamed answer.
        while let Some(nl) = memchr::memchr(b'\n', rest.as_bytes()) {
            let piece = &rest[..nl];
            if tb.tail_len == 0 {
                // The common case: the whole line is in this delta.
                let raw = strip_cr(piece);
                tb.hash = hash_line(tb.hash, raw);
                if clean {
                    self.doc.push_known_clean(raw);
                } else {
                    self.doc.push(raw);
                }
            } else {
                tb.extend_tail(piece, clean);
                let clean = tb.tail_clean;
                let line = tb.take_line();
                if clean {
                    self.doc.push_clean(line);
                } else {
                    self.doc.push_shown(line);
                }
            }
            tb.lines += 1;
            tb.last_blank = self.doc.last_blank;
            rest = &rest[nl + 1..];
        }
        tb.extend_tail(rest, clean);
    }

    fn assistant(&mut self, a: &claude::Assistant) {
        if let Some(parent) = &a.parent_tool_use_id {
            self.subagent(parent, a);
            return;
        }
        if a.error.is_some() {
            // The CLI's synthetic message for a failed API call: its text is the error.
            let text: Vec<&str> = a
                .content
                .iter()
                .filter_map(|b| match b {
                    Block::Text(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect();
            let text = text.join("\n");
            let body = trim_body(&text);
            if matches!(self.open, Open::Text(_)) {
                self.close(true);
            }
            if !body.is_empty() {
                self.begin(Kind::Notice);
                self.push_error_lines(body);
                self.shown_error = Some(hash_line(HASH_START, body));
            }
            return;
        }
        for b in &a.content {
            match b {
                Block::Text(t) => self.assistant_text(t),
                Block::ToolUse { id, name, input } => {
                    let call = format!("● {}", tool_summary(name, input));
                    self.confirm_tool(id, call);
                }
                Block::Thinking(t) => self.thinking(t),
                Block::Other(_) => {}
            }
        }
    }

    fn push_error_lines(&mut self, body: &str) {
        for (i, l) in body.split('\n').enumerate() {
            let l = strip_cr(l);
            if i == 0 {
                self.doc.push_owned(format!("✗ {l}"));
            } else {
                self.doc.push_owned(format!("  {l}"));
            }
        }
    }

    fn assistant_text(&mut self, text: &str) {
        let body = trim_body(text);
        if !matches!(self.open, Open::Text(_)) {
            if !body.is_empty() {
                self.begin(Kind::Text);
                for l in body.split('\n') {
                    self.doc.push(strip_cr(l));
                }
            }
            return;
        }
        let Open::Text(tb) = mem::take(&mut self.open) else {
            return;
        };
        // The authoritative text replaces what was streamed for it.
        if self.tail_in_buffer || tb.tail_len > 0 {
            self.tail_dirty = true;
        }
        if self.shortened {
            // All of the text was streamed; the growing line was its last.
            let mut tb = tb;
            if tb.tail_len > 0 {
                self.doc.push_shown(tb.take_line());
            }
            self.last_kind = Kind::Text;
            return;
        }
        if body.is_empty() {
            self.restore(tb.mark);
            return;
        }
        let mut lines = body.split('\n').map(strip_cr);
        let mut hash = HASH_START;
        let mut matched = 0;
        while matched < tb.lines {
            match lines.next() {
                Some(l) => hash = hash_line(hash, l),
                None => break,
            }
            matched += 1;
        }
        if matched == tb.lines && hash == tb.hash {
            // The finished lines stand; the rest replaces the growing line.
            for l in lines {
                self.doc.push(l);
            }
        } else {
            self.doc.truncate(tb.start, true);
            for l in body.split('\n') {
                self.doc.push(strip_cr(l));
            }
        }
        self.last_kind = Kind::Text;
    }

    fn thinking(&mut self, text: &str) {
        let summary = one_line(text, 80);
        let line = if summary.is_empty() {
            "✻ thinking…".to_string()
        } else {
            format!("✻ {summary}")
        };
        if let Open::Thinking(th) = mem::take(&mut self.open) {
            self.doc.truncate(th.line, true);
            self.doc.push_owned(line);
            self.last_kind = Kind::Thinking;
        } else {
            self.begin(Kind::Thinking);
            self.doc.push_owned(line);
        }
    }

    fn add_tool(&mut self, entry: ToolEntry) {
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

    fn confirm_tool(&mut self, id: &str, call: String) {
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
            result: None,
        });
    }

    fn tool_result(&mut self, r: &claude::ToolResult) {
        let folded = fold_result(&r.content, r.is_error);
        if let Open::Tools(group) = &mut self.open {
            if let Some(i) = group.entries.iter().position(|e| e.id == r.tool_use_id) {
                let e = &mut group.entries[i];
                let keep = e.head_lines() + usize::from(e.sub.is_some());
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
    fn subagent(&mut self, parent: &str, a: &claude::Assistant) {
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

    fn result(&mut self, r: &ResultInfo) {
        let mut errors: Vec<String> = Vec::new();
        if r.is_error {
            let user_errors: Vec<&str> = r.user_errors().collect();
            let text = r.result.as_deref().map(trim_body).unwrap_or("");
            if !user_errors.is_empty() {
                errors.extend(user_errors.into_iter().map(str::to_string));
            } else if !text.is_empty() {
                if self.shown_error != Some(hash_line(HASH_START, text)) {
                    errors.push(text.to_string());
                }
            } else if !self.interrupted {
                errors.extend(r.error_message());
            }
        }
        if !errors.is_empty() || !r.permission_denials.is_empty() {
            self.begin(Kind::Notice);
            for e in &errors {
                self.push_error_lines(trim_body(e));
            }
            for d in &r.permission_denials {
                self.doc
                    .push_owned(format!("⚠ permission denied: {}", d.summary()));
            }
        }
        self.new_run();
    }
}

fn footer_line(f: &Footer) -> String {
    let duration = f.duration_ms.map(timefmt::duration);
    match f.status {
        Status::Completed => {
            let mut parts = vec![match &duration {
                Some(d) => format!("✓ done in {d}"),
                None => "✓ done".to_string(),
            }];
            if f.num_turns > 0 {
                let unit = if f.num_turns == 1 { "turn" } else { "turns" };
                parts.push(format!("{} {unit}", f.num_turns));
            }
            if f.cost_usd > 0.0 {
                parts.push(format!("${:.4}", f.cost_usd));
            }
            parts.join(" · ")
        }
        Status::Failed => {
            let mut s = "✗ failed".to_string();
            if let Some(e) = f.error.map(|e| one_line(e, 200)).filter(|e| !e.is_empty()) {
                s.push_str(": ");
                s.push_str(&e);
            }
            if let Some(d) = duration {
                s.push_str(" · ");
                s.push_str(&d);
            }
            s
        }
        Status::Cancelled => match duration {
            Some(d) => format!("■ cancelled after {d}"),
            None => "■ cancelled".to_string(),
        },
        Status::Interrupted => "⚠ interrupted".to_string(),
        Status::Running => "… running".to_string(),
        Status::Queued => "… queued".to_string(),
    }
}

/// Result lines folded under a call: first line, a few more, and how many were left out.
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
    let mut out = vec![format!("{marker}{}", shorten(&first, RESULT_LINE_CHARS))];
    for l in lines.by_ref().take(RESULT_MORE_LINES) {
        out.push(
            format!("    {}", shorten(&l, RESULT_LINE_CHARS))
                .trim_end()
                .to_string(),
        );
    }
    let more = lines.count();
    if more > 0 {
        let unit = if more == 1 { "line" } else { "lines" };
        out.push(format!("  … {more} more {unit}"));
    }
    out
}

fn shorten(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some(_) => {
            let cut: String = s.chars().take(max - 1).collect();
            Cow::Owned(cut + "…")
        }
    }
}

fn strip_cr(s: &str) -> &str {
    s.strip_suffix('\r').unwrap_or(s)
}

/// Assistant text as shown: without leading blank lines and trailing whitespace.
fn trim_body(text: &str) -> &str {
    text.trim_start_matches(['\n', '\r']).trim_end()
}

const HASH_START: u64 = 0xcbf2_9ce4_8422_2325;

/// A line hash chained over lines: identical line sequences give equal hashes however the text
/// was split into deltas. Eight bytes at a time (a byte-wise hash was ~8 % of a flood's CPU),
/// and fed in pieces it gives what it gives fed at once.
#[derive(Clone, Copy)]
struct LineHasher {
    h: u64,
    /// Bytes not yet mixed in, little-endian, and how many.
    buf: u64,
    n: u32,
}

impl LineHasher {
    fn new(h: u64) -> Self {
        LineHasher { h, buf: 0, n: 0 }
    }

    fn mix(&mut self, w: u64) {
        self.h = (self.h ^ w)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }

    fn write(&mut self, mut bytes: &[u8]) {
        while self.n != 0 {
            let Some((&b, rest)) = bytes.split_first() else {
                return;
            };
            self.buf |= u64::from(b) << (8 * self.n);
            self.n += 1;
            bytes = rest;
            if self.n == 8 {
                self.mix(self.buf);
                (self.buf, self.n) = (0, 0);
            }
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.mix(u64::from_le_bytes(w));
        }
        for &b in words.remainder() {
            self.buf |= u64::from(b) << (8 * self.n);
            self.n += 1;
        }
    }

    /// The hash of everything so far as one line; the start of the next line's hash.
    fn finish(mut self) -> u64 {
        let (buf, n) = (self.buf, self.n);
        self.mix(buf);
        // The count of trailing bytes tells "ab" from "ab\0".
        self.mix(0x100 | u64::from(n));
        self.h
    }
}

fn hash_line(h: u64, line: &str) -> u64 {
    let mut x = LineHasher::new(h);
    x.write(line.as_bytes());
    x.finish()
}

/// A line fit for a Neovim buffer: no newline, no terminal escape sequences, other control
/// characters shown as their Unicode pictures (tabs kept); after a carriage return only what a
/// terminal would show last.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if crate::scan::is_clean(s.as_bytes()) {
        return Cow::Borrowed(s);
    }
    let s = s.trim_end_matches('\r');
    let s = match s.rfind('\r') {
        Some(i) => &s[i + 1..],
        None => s,
    };
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                Some('[') => {
                    // CSI: parameters and intermediates up to a final byte in @..~.
                    chars.next();
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    // OSC (titles, hyperlinks): up to BEL or ESC \.
                    chars.next();
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                Some(_) => {
                    // nF escapes (charset selection...): intermediates, then one final char.
                    for c in chars.by_ref() {
                        if !('\u{20}'..='\u{2f}').contains(&c) {
                            break;
                        }
                    }
                }
                None => {}
            },
            '\t' => out.push('\t'),
            '\u{7f}' => out.push('␡'),
            c if (c as u32) < 0x20 => {
                out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::parse_bytes;
    use std::path::{Path, PathBuf};

    use crate::testutil::line;

    fn apply(buf: &mut Vec<String>, u: Update) {
        assert!(
            u.start <= buf.len(),
            "update starts at {} past the end {}",
            u.start,
            buf.len()
        );
        u.apply_to(buf);
    }

    /// Feeds a transcript line by line, taking an update after every line (as a live buffer
    /// would), and checks the result against taking a single update at the end.
    fn render(jsonl: &str) -> Vec<String> {
        let mut live = Renderer::new();
        let mut once = Renderer::new();
        let mut buf = Vec::new();
        for l in jsonl.split('\n').filter(|l| !l.is_empty()) {
            live.feed_line(&line(l.as_bytes()));
            once.feed_line(&line(l.as_bytes()));
            if let Some(u) = live.take_update() {
                apply(&mut buf, u);
            }
            assert_eq!(buf.len(), live.line_count());
        }
        let mut whole = Vec::new();
        if let Some(u) = once.take_update() {
            assert_eq!(u.start, 0);
            apply(&mut whole, u);
        }
        assert_eq!(buf, whole, "live and one-shot renders differ");
        for l in &buf {
            assert!(!l.contains('\n') && !l.contains('\r'), "bad line {l:?}");
        }
        buf
    }

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!(
                "../tests/fixtures/claude-cli-2.1.197/",
                $name,
                "/stdout.jsonl"
            ))
        };
    }

    const INIT_DEFAULT: &str = "model: claude-opus-4-8[1m] · permission: default";

    /// What 2.1.332 writes differently renders on purpose: its model in the init line; its
    /// `status` and `permission_denied` lines show nothing (the refused call's result and the
    /// run's denials say it already); its new fields change nothing; text whose stream was
    /// abandoned goes when the retry comes, as any unconfirmed text; an API failure shows its
    /// text once although the result repeats it with `type` after it.
    #[test]
    fn the_lines_of_2_1_332_render_on_purpose() {
        use crate::testutil::cli_2_1_332 as v;
        let denied = [
            v::INIT,
            v::STATUS,
            v::ASSISTANT_WRITE,
            v::PERMISSION_DENIED,
            v::USER_DENIED,
            v::STATUS,
            v::RESULT_DENIED,
        ];
        let want_denied = [
            "model: claude-opus-5-5 · permission: default",
            "",
            "● Write(/tmp/proj/hello.txt)",
            "  ✗ Claude requested permissions to write to /tmp/proj/hello.txt, but you haven't granted it yet.",
            "",
            "⚠ permission denied: Write(/tmp/proj/hello.txt)",
        ];
        assert_eq!(render(&denied.join("\n")), want_denied);
        let without_new_kinds = [
            v::INIT,
            v::ASSISTANT_WRITE,
            v::USER_DENIED,
            v::RESULT_DENIED,
        ];
        assert_eq!(render(&without_new_kinds.join("\n")), want_denied);
        // A stream broken after one delta: shown while it lasts, dropped by the retry.
        let cut = [v::INIT, v::STATUS, v::MESSAGE_START, v::DELTA];
        let streamed = render(&cut.join("\n"));
        assert_eq!(
            streamed.last().map(String::as_str),
            Some("Hello from the mock Anthrop")
        );
        let retried = [&cut[..], &[v::MESSAGE_STOP_ABANDONED, v::API_RETRY]].concat();
        assert_eq!(
            render(&retried.join("\n")),
            [
                "model: claude-opus-5-5 · permission: default",
                "",
                "↻ API error: unknown, retry 1/10 in 0.6s",
            ]
        );
        let failed = [
            v::INIT,
            v::STATUS,
            v::ASSISTANT_API_ERROR,
            v::RESULT_API_ERROR,
        ];
        assert_eq!(
            render(&failed.join("\n")),
            [
                "model: claude-opus-5-5 · permission: default",
                "",
                "✗ API Error: 500 Mock error 500 (api_error). This is a server-side issue, usually temporary — try again in a moment.",
            ]
        );
    }

    #[test]
    fn hello_without_partial_messages() {
        assert_eq!(
            render(fixture!("hello-stream-json")),
            [
                INIT_DEFAULT,
                "",
                "Hello from the mock Anthropic server!",
                "This is line two of the hello scenario.",
                "And this is line three. Bye.",
            ]
        );
    }

    #[test]
    fn hello_with_partial_messages_is_the_same() {
        assert_eq!(
            render(fixture!("hello-stream-json-partial")),
            render(fixture!("hello-stream-json"))
        );
    }

    #[test]
    fn hello_streams_partial_lines_as_they_grow() {
        let mut r = Renderer::new();
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        for l in fixture!("hello-stream-json-partial").lines() {
            r.feed_line(&line(l.as_bytes()));
            if let Some(u) = r.take_update() {
                apply(&mut buf, u);
                seen.push(buf.clone());
            }
        }
        let states: Vec<Vec<&str>> = seen
            .iter()
            .map(|b| b.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            states,
            [
                vec![INIT_DEFAULT],
                vec![INIT_DEFAULT, "", "Hello from the mock Anthrop"],
                vec![
                    INIT_DEFAULT,
                    "",
                    "Hello from the mock Anthropic server!",
                    "This is line two"
                ],
                vec![
                    INIT_DEFAULT,
                    "",
                    "Hello from the mock Anthropic server!",
                    "This is line two of the hello scenario.",
                    "And"
                ],
                vec![
                    INIT_DEFAULT,
                    "",
                    "Hello from the mock Anthropic server!",
                    "This is line two of the hello scenario.",
                    "And this is line three. Bye."
                ],
                // The assistant line confirms the streamed text: the growing line becomes final.
                vec![
                    INIT_DEFAULT,
                    "",
                    "Hello from the mock Anthropic server!",
                    "This is line two of the hello scenario.",
                    "And this is line three. Bye."
                ],
            ]
        );
    }

    const BASH: [&str; 9] = [
        INIT_DEFAULT,
        "",
        "Running a shell command.",
        "",
        "● Bash(echo from-bash; ls)",
        "  ⎿ from-bash",
        "",
        "Bash step finished.",
        "tool_result is_error=False: from-bash",
    ];

    #[test]
    fn bash() {
        assert_eq!(render(fixture!("bash-stream-json-default")), BASH);
        assert_eq!(render(fixture!("bash-stream-json-partial")), BASH);
    }

    #[test]
    fn write_denied_by_default() {
        assert_eq!(
            render(fixture!("write-stream-json-default")),
            [
                INIT_DEFAULT,
                "",
                "I'll create hello.txt now.",
                "",
                "● Write(/home/user/proj/hello.txt)",
                "  ✗ Claude requested permissions to write to /home/user/proj/hello.txt, but you haven't granted it yet.",
                "",
                "Write step finished.",
                "tool_result is_error=True: Claude requested permissions to write to /home/user/proj/hello.txt, but you haven't granted it yet.",
                "",
                "⚠ permission denied: Write(/home/user/proj/hello.txt)",
            ]
        );
    }

    #[test]
    fn write_with_accept_edits() {
        let want = [
            "model: claude-opus-4-8[1m] · permission: acceptEdits",
            "",
            "I'll create hello.txt now.",
            "",
            "● Write(/home/user/proj/hello.txt)",
            "  ⎿ File created successfully at: /home/user/proj/hello.txt (file state is current in your context — no need to Read it back)",
            "",
            "Write step finished.",
            "tool_result is_error=False: File created successfully at: /home/user/proj/hello.txt (file state is current in your context — no need to Read it back)",
        ];
        assert_eq!(render(fixture!("write-stream-json-acceptEdits")), want);
        assert_eq!(
            render(fixture!("write-stream-json-partial-acceptEdits")),
            want
        );
    }

    #[test]
    fn parallel_tool_calls_fold_their_own_results() {
        assert_eq!(
            render(fixture!("multi-stream-json-default")),
            [
                INIT_DEFAULT,
                "",
                "Running two commands.",
                "",
                "● Bash(echo one)",
                "  ⎿ one",
                "● Bash(echo two)",
                "  ⎿ two",
                "",
                "Both commands finished.",
                "tool_result is_error=False: one",
                "tool_result is_error=False: two",
            ]
        );
    }

    #[test]
    fn api_errors_with_retries() {
        assert_eq!(
            render(fixture!("error500-stream-json-max-retries-2")),
            [
                INIT_DEFAULT,
                "",
                "↻ API error 500, retry 1/2 in 0.5s",
                "↻ API error 500, retry 2/2 in 1.1s",
                "",
                "✗ API Error: 500 Mock error 500 (api_error). This is a server-side issue, usually temporary — try again in a moment. If it persists, check your inference gateway (127.0.0.1:40759).",
            ]
        );
    }

    #[test]
    fn cut_stream_is_replaced_by_the_retried_answer() {
        assert_eq!(
            render(fixture!("cut-stream-json-partial")),
            [
                INIT_DEFAULT,
                "",
                "This answer will be cut by a closed connection"
            ]
        );
    }

    #[test]
    fn stream_error_does_not_duplicate_text() {
        assert_eq!(
            render(fixture!("streamerror-stream-json-partial")),
            [
                INIT_DEFAULT,
                "",
                "This answer will be cut by a stream error"
            ]
        );
    }

    #[test]
    fn thinking_is_one_line() {
        assert_eq!(
            render(fixture!("thinking-stream-json-partial")),
            [
                INIT_DEFAULT,
                "",
                "✻ Let me think about this mock question. It is simple.",
                "",
                "After thinking: the answer is 42.",
            ]
        );
    }

    #[test]
    fn interrupted_by_user() {
        let mut buf = render(fixture!("signal-slow-INT-pid"));
        assert_eq!(
            buf.drain(..3).collect::<Vec<_>>(),
            [
                "model: claude-opus-4-8[1m] · permission: default",
                "",
                "slow chunk 01"
            ]
        );
        assert_eq!(
            buf[buf.len() - 3..],
            ["slow chunk 09", "", "■ interrupted by user"]
        );
        // Interrupted while a tool ran: its rejection is folded under it, no diagnostics.
        assert_eq!(
            render(fixture!("signal-hang-INT-pid-late")),
            [
                INIT_DEFAULT,
                "",
                "Starting a long-running command.",
                "",
                "● Bash(sleep 300 & sleep 301; wait)",
                "  ✗ The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, the new_string was NOT written to the file). STOP wh…",
                "",
                "■ interrupted by user",
            ]
        );
    }

    #[test]
    fn unknown_session_error() {
        assert_eq!(
            render(fixture!("session-5-resume-unknown-id")),
            ["✗ No conversation found with session ID: 00000000-0000-4000-8000-000000000000"]
        );
    }

    #[test]
    fn header_separator_and_footers() {
        let mut r = Renderer::new();
        r.header(&Header {
            id: 3,
            name: "fix the failing test",
            cwd: "/home/me/proj",
            started_at_ms: 1_795_000_000_123,
        });
        for l in fixture!("hello-stream-json").lines() {
            r.feed_line(&line(l.as_bytes()));
        }
        r.footer(&Footer {
            status: Status::Completed,
            duration_ms: Some(42_100),
            num_turns: 6,
            cost_usd: 0.0312,
            error: None,
        });
        r.separator(2, "and now\nthe docs");
        r.feed(&parse_bytes(
            br#"{"type":"assistant","message":{"content":[{"type":"text","text":"ok"}]}}"#,
        ));
        r.footer(&Footer {
            status: Status::Failed,
            duration_ms: Some(1_200),
            num_turns: 1,
            cost_usd: 0.0,
            error: Some("API Error: 500\nmore"),
        });
        let mut buf = Vec::new();
        apply(&mut buf, r.take_update().unwrap());
        assert_eq!(
            buf,
            [
                "# #3 fix the failing test",
                "cwd: /home/me/proj · started 2026-11-18 11:06:40 UTC",
                "",
                INIT_DEFAULT,
                "",
                "Hello from the mock Anthropic server!",
                "This is line two of the hello scenario.",
                "And this is line three. Bye.",
                "",
                "✓ done in 42.1s · 6 turns · $0.0312",
                "",
                "── follow-up #2: and now… ──",
                "",
                "ok",
                "",
                "✗ failed: API Error: 500… · 1.2s",
            ]
        );
        let footer = |status, duration_ms| {
            footer_line(&Footer {
                status,
                duration_ms,
                num_turns: 1,
                cost_usd: 0.0,
                error: None,
            })
        };
        assert_eq!(footer(Status::Completed, None), "✓ done · 1 turn");
        assert_eq!(footer(Status::Failed, None), "✗ failed");
        assert_eq!(
            footer(Status::Cancelled, Some(3_000)),
            "■ cancelled after 3.0s"
        );
        assert_eq!(footer(Status::Cancelled, None), "■ cancelled");
        assert_eq!(footer(Status::Interrupted, Some(5)), "⚠ interrupted");
    }

    fn delta(index: u64, text: &str) -> String {
        serde_json::json!({"type":"stream_event","event":{"type":"content_block_delta","index":index,"delta":{"type":"text_delta","text":text}}}).to_string()
    }

    fn assistant_text(text: &str) -> String {
        serde_json::json!({"type":"assistant","message":{"id":"m","content":[{"type":"text","text":text}]}}).to_string()
    }

    const MESSAGE_START: &str =
        r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m"}}}"#;

    fn feed(r: &mut Renderer, s: &str) {
        r.feed_line(&line(s.as_bytes()));
    }

    fn upd(start: usize, lines: &[&str]) -> Option<Update> {
        Some(Update {
            start,
            lines: lines.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn authoritative_text_replaces_the_streamed_one() {
        let mut r = Renderer::new();
        feed(&mut r, MESSAGE_START);
        feed(&mut r, &delta(0, "Helo wrld\nsecond"));
        assert_eq!(r.take_update(), upd(0, &["Helo wrld", "second"]));
        // The streamed text was wrong from its first (already handed out) line: all re-sent.
        feed(&mut r, &assistant_text("Hello world\nsecond line"));
        assert_eq!(r.take_update(), upd(0, &["Hello world", "second line"]));
        assert_eq!(r.take_update(), None);
        assert_eq!(r.line_count(), 2);
    }

    #[test]
    fn take_update_sends_only_what_changed() {
        let mut r = Renderer::new();
        assert_eq!(r.take_update(), None);
        feed(&mut r, &assistant_text("one"));
        assert_eq!(r.take_update(), upd(0, &["one"]));
        feed(&mut r, MESSAGE_START);
        assert_eq!(r.take_update(), None);
        feed(&mut r, &delta(0, "a\nb"));
        assert_eq!(r.pending_bytes(), 2);
        assert_eq!(r.take_update(), upd(1, &["", "a", "b"]));
        feed(&mut r, &delta(0, "c"));
        // Only the growing line is re-sent.
        assert_eq!(r.take_update(), upd(3, &["bc"]));
        feed(&mut r, &delta(0, "\nd\n"));
        assert_eq!(r.take_update(), upd(3, &["bc", "d"]));
        assert_eq!(r.take_update(), None);
        // The authoritative text differs from a finished line: the block is re-sent whole
        // (only a hash of finished lines is kept, so the first difference is not known).
        feed(&mut r, &assistant_text("a\nbc\nD"));
        assert_eq!(r.take_update(), upd(2, &["a", "bc", "D"]));
        assert_eq!(r.line_count(), 5);
        assert_eq!(r.pending_bytes(), 0);
        // The same text again (already confirmed, not streamed) is a new block.
        feed(&mut r, &assistant_text("x"));
        assert_eq!(r.take_update(), upd(5, &["", "x"]));
    }

    #[test]
    fn message_start_drops_unconfirmed_text_even_when_taken() {
        let mut r = Renderer::new();
        feed(&mut r, &assistant_text("intro"));
        feed(&mut r, MESSAGE_START);
        feed(&mut r, &delta(0, "partial\nlin"));
        assert_eq!(r.take_update(), upd(0, &["intro", "", "partial", "lin"]));
        // The stream broke and the CLI retried with a new stream.
        feed(&mut r, MESSAGE_START);
        assert_eq!(r.take_update(), upd(1, &[]));
        assert_eq!(r.line_count(), 1);
        feed(&mut r, &delta(0, "whole answer"));
        feed(&mut r, &assistant_text("whole answer"));
        assert_eq!(r.take_update(), upd(1, &["", "whole answer"]));
    }

    #[test]
    fn retry_drops_unconfirmed_text() {
        let mut r = Renderer::new();
        feed(&mut r, MESSAGE_START);
        feed(&mut r, &delta(0, "half an ans"));
        assert_eq!(r.take_update(), upd(0, &["half an ans"]));
        feed(
            &mut r,
            r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":600,"error_status":529,"error":"overloaded"}"#,
        );
        feed(&mut r, &assistant_text("half an answer, whole"));
        assert_eq!(
            r.take_update(),
            upd(
                0,
                &[
                    "↻ API error 529, retry 1/10 in 0.6s",
                    "",
                    "half an answer, whole"
                ]
            )
        );
    }

    #[test]
    fn empty_assistant_text_removes_the_streamed_block() {
        let mut r = Renderer::new();
        feed(&mut r, &assistant_text("before"));
        feed(&mut r, &delta(0, "  \n"));
        assert_eq!(r.take_update(), upd(0, &["before", "", "  "]));
        feed(&mut r, &assistant_text("\n \n"));
        assert_eq!(r.take_update(), upd(1, &[]));
        feed(&mut r, &assistant_text(""));
        assert_eq!(r.take_update(), None);
        // Leading newlines of a streamed block are not shown.
        feed(&mut r, &delta(1, "\n\n"));
        assert_eq!(r.take_update(), None);
        feed(&mut r, &delta(1, "\nx"));
        assert_eq!(r.take_update(), upd(1, &["", "x"]));
    }

    #[test]
    fn tool_results_fold_and_late_results_find_their_call() {
        let tool = |id: &str, cmd: &str| {
            serde_json::json!({"type":"assistant","message":{"content":[{"type":"tool_use","id":id,"name":"Bash","input":{"command":cmd}}]}}).to_string()
        };
        let result = |id: &str, content: &str, err: bool| {
            serde_json::json!({"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":id,"content":content,"is_error":err}]}}).to_string()
        };
        let mut r = Renderer::new();
        feed(&mut r, &tool("a", "make"));
        feed(&mut r, &tool("b", "ls"));
        assert_eq!(r.take_update(), upd(0, &["● Bash(make)", "● Bash(ls)"]));
        let long: Vec<String> = (1..=12).map(|i| format!("line {i}")).collect();
        feed(&mut r, &result("a", &long.join("\n"), false));
        // The first call's result goes under it: the second call is re-sent after it.
        assert_eq!(
            r.take_update(),
            upd(
                1,
                &[
                    "  ⎿ line 1",
                    "    line 2",
                    "    line 3",
                    "    line 4",
                    "    line 5",
                    "  … 7 more lines",
                    "● Bash(ls)"
                ]
            )
        );
        feed(&mut r, &assistant_text("meanwhile"));
        feed(
            &mut r,
            &result("b", "\x1b[31mno such file\x1b[0m\r\n", true),
        );
        assert_eq!(
            r.take_update(),
            upd(8, &["", "meanwhile", "", "● Bash(ls)", "  ✗ no such file"])
        );
        feed(&mut r, &result("zzz", "", false));
        assert_eq!(
            r.take_update(),
            upd(13, &["● tool result", "  ⎿ (no output)"])
        );
    }

    #[test]
    fn streamed_tool_call_is_shown_before_its_input_is_complete() {
        let mut r = Renderer::new();
        feed(
            &mut r,
            r#"{"type":"stream_event","event":{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"Write","input":{}}}}"#,
        );
        assert_eq!(r.take_update(), upd(0, &["● Write"]));
        feed(
            &mut r,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1","name":"Write","input":{"file_path":"a.txt","content":"x"}}]}}"#,
        );
        assert_eq!(r.take_update(), upd(0, &["● Write(a.txt)"]));
        // A provisional call that never got confirmed disappears with a new message.
        feed(
            &mut r,
            r#"{"type":"stream_event","event":{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t2","name":"Bash","input":{}}}}"#,
        );
        assert_eq!(r.take_update(), upd(1, &["● Bash"]));
        feed(&mut r, MESSAGE_START);
        assert_eq!(r.take_update(), upd(1, &[]));
        assert_eq!(r.line_count(), 1);
    }

    #[test]
    fn subagent_calls_are_counted_under_their_task() {
        let mut r = Renderer::new();
        feed(
            &mut r,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"task1","name":"Task","input":{"description":"find bugs","prompt":"…"}}]}}"#,
        );
        for f in ["a.rs", "b.rs"] {
            feed(
                &mut r,
                &serde_json::json!({"type":"assistant","parent_tool_use_id":"task1","message":{"content":[{"type":"text","text":"looking"},{"type":"tool_use","id":f,"name":"Read","input":{"file_path":f}}]}}).to_string(),
            );
            feed(
                &mut r,
                &serde_json::json!({"type":"user","parent_tool_use_id":"task1","message":{"content":[{"type":"tool_result","tool_use_id":f,"content":"..."}]}}).to_string(),
            );
        }
        feed(
            &mut r,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"task1","content":[{"type":"text","text":"No bugs."}]}]}}"#,
        );
        let mut buf = Vec::new();
        apply(&mut buf, r.take_update().unwrap());
        assert_eq!(
            buf,
            [
                "● Task(find bugs)",
                "  ↳ 2 tool calls, last: Read(b.rs)",
                "  ⎿ No bugs."
            ]
        );
    }

    #[test]
    fn bad_input_lines() {
        let mut r = Renderer::new();
        feed(&mut r, "plain text from somewhere");
        r.feed_line(&line(
            b"bad \xff utf8 \x00 nul \x1b[1;32mgreen\x1b[0m \x1b]0;title\x07end",
        ));
        feed(&mut r, "   ");
        r.feed_line(&Line {
            bytes: br#"{"type":"assistant","message":{"content":[{"type":"text","text":"huge"#
                .to_vec(),
            total_len: 9_000_000,
            offset: 0,
        });
        feed(
            &mut r,
            &assistant_text("tab\there\u{7}bell\nprogress 10%\rprogress 100%\r\n"),
        );
        feed(&mut r, r#"{"type":"brand_new_kind","x":1}"#);
        feed(
            &mut r,
            r#"{"type":"system","subtype":"status","status":"requesting"}"#,
        );
        let mut buf = Vec::new();
        apply(&mut buf, r.take_update().unwrap());
        assert_eq!(
            buf,
            [
                "plain text from somewhere",
                "bad \u{fffd} utf8 ␀ nul green end",
                r#"{"type":"assistant","message":{"content":[{"type":"text","text":"huge… (9000000 bytes)"#,
                "",
                "tab\there␇bell",
                "progress 100%",
            ]
        );
    }

    #[test]
    fn sanitize_lines() {
        assert!(matches!(sanitize("plain\ttext é"), Cow::Borrowed(_)));
        assert_eq!(sanitize("a\nb"), "a␊b");
        assert_eq!(sanitize("x\u{7f}\u{1b}"), "x␡");
        assert_eq!(
            sanitize("\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\"),
            "link"
        );
        assert_eq!(sanitize("\u{1b}(Bok"), "ok");
        assert_eq!(sanitize("a\r\r"), "a");
    }

    /// Deltas rendered in place (`feed_text_delta`, which skips sanitizing a text it is told is
    /// clean) give exactly what parsed ones give, control characters or not, whole lines or
    /// lines grown over several deltas.
    #[test]
    fn in_place_deltas_with_control_characters_render_like_parsed_ones() {
        let texts = [
            "plain line\nand a tab\there\n",
            "\u{1b}[31mred\u{1b}[0m\n",
            "half a li",
            "ne\u{7}, then\r\n",
            "progress 10%\rprogress 100%\n",
            "del\u{7f}\n",
            "clean tail ",
            "then dirty\u{8}\n",
            "dirty tail\u{c} ",
            "then clean\n",
            "a growing line shown before its end",
        ];
        let lines: Vec<String> = texts
            .iter()
            .map(|t| {
                let quoted = serde_json::to_string(t).expect("a string");
                let tail = r#","session_id":"s","parent_tool_use_id":null,"uuid":"u"}"#;
                crate::testutil::delta_line("0", &quoted[1..quoted.len() - 1], tail)
            })
            .collect();
        let (mut in_place, mut parsed) = (Renderer::new(), Renderer::new());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for l in &lines {
            let d = claude::text_delta(l.as_bytes()).expect("a text delta");
            in_place.feed_text_delta(&d);
            parsed.feed_line(&line(l.as_bytes()));
            // Each update too: the growing line is shown as it grows.
            if let Some(u) = in_place.take_update() {
                apply(&mut a, u);
            }
            if let Some(u) = parsed.take_update() {
                apply(&mut b, u);
            }
            assert_eq!(a, b, "after {l}");
            assert!(
                a.iter().all(|l| crate::scan::is_clean(l.as_bytes())),
                "{a:?}"
            );
        }
        assert!(a.iter().any(|l| l == "red"), "{a:?}");
        assert!(a.iter().any(|l| l == "progress 100%"), "{a:?}");
        assert!(a.iter().any(|l| l == "del␡"), "{a:?}");
    }

    #[test]
    fn delta_splits_do_not_matter() {
        // Re-split every text delta of the streamed fixtures at pseudo-random char boundaries.
        let mut seed: u64 = 42;
        let mut next = move |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n.max(1)
        };
        for fixture in [
            fixture!("hello-stream-json-partial"),
            fixture!("bash-stream-json-partial"),
            fixture!("thinking-stream-json-partial"),
            fixture!("write-stream-json-partial-acceptEdits"),
            fixture!("signal-slow-INT-pid"),
        ] {
            let want = render(fixture);
            for _ in 0..20 {
                let mut text = String::new();
                let mut out = Vec::new();
                let flush = |text: &mut String,
                             out: &mut Vec<String>,
                             next: &mut dyn FnMut(usize) -> usize| {
                    let chars: Vec<char> = text.chars().collect();
                    let mut i = 0;
                    while i < chars.len() {
                        let n = 1 + next(chars.len() - i);
                        out.push(delta(0, &chars[i..i + n].iter().collect::<String>()));
                        i += n;
                    }
                    text.clear();
                };
                for l in fixture.lines() {
                    match parse_bytes(l.as_bytes()) {
                        Msg::Stream(claude::Stream {
                            event: Event::TextDelta { index: 0, text: t },
                            ..
                        }) => text.push_str(&t),
                        _ => {
                            flush(&mut text, &mut out, &mut next);
                            out.push(l.to_string());
                        }
                    }
                }
                // Take updates at random points too.
                let mut r = Renderer::new();
                let mut buf = Vec::new();
                for l in &out {
                    feed(&mut r, l);
                    if next(3) == 0 {
                        if let Some(u) = r.take_update() {
                            apply(&mut buf, u);
                        }
                    }
                }
                if let Some(u) = r.take_update() {
                    apply(&mut buf, u);
                }
                assert_eq!(buf, want);
            }
        }
    }

    #[test]
    fn memory_stays_bounded_on_a_huge_stream() {
        let mut r = Renderer::new();
        let mut lines_seen = 0usize;
        let mut max_retained = 0usize;
        let mut take = |r: &mut Renderer, lines_seen: &mut usize| {
            if let Some(u) = r.take_update() {
                *lines_seen = u.start + u.lines.len();
            }
            max_retained = max_retained.max(r.retained_bytes());
        };
        // One text block of 1M lines streamed in deltas of 10 lines, then confirmed.
        feed(&mut r, MESSAGE_START);
        let mut full = String::new();
        let mut chunk = String::new();
        for i in 0..1_000_000u32 {
            chunk.push_str(&format!("line {i}\n"));
            if i % 10 == 9 {
                r.feed(&Msg::Stream(claude::Stream {
                    parent_tool_use_id: None,
                    event: Event::TextDelta {
                        index: 0,
                        text: chunk.clone(),
                    },
                }));
                full.push_str(&chunk);
                chunk.clear();
                if i % 1000 == 999 {
                    take(&mut r, &mut lines_seen);
                }
            }
        }
        r.feed(&Msg::Assistant(claude::Assistant {
            content: vec![Block::Text(full)],
            ..Default::default()
        }));
        let u = r.take_update();
        // Identical to what was streamed: nothing to re-send.
        assert_eq!(u, None);
        assert_eq!(r.line_count(), 1_000_000);
        assert_eq!(lines_seen, 1_000_000);
        // Many small confirmed messages, each streamed first.
        for i in 0..100_000u32 {
            r.feed(&parse_bytes(MESSAGE_START.as_bytes()));
            r.feed(&parse_bytes(delta(0, &format!("msg {i}")).as_bytes()));
            r.feed(&parse_bytes(assistant_text(&format!("msg {i}")).as_bytes()));
            if i % 100 == 99 {
                take(&mut r, &mut lines_seen);
            }
        }
        take(&mut r, &mut lines_seen);
        assert_eq!(r.line_count(), 1_000_000 + 200_000);
        assert_eq!(lines_seen, r.line_count());
        assert_eq!(r.retained_bytes(), 0);
        assert!(max_retained < 64 * 1024, "retained {max_retained} bytes");
    }

    /// The shared recordings' directory of every CLI version (`claude-cli-<version>`), sorted.
    fn shared_fixtures() -> Vec<PathBuf> {
        // Resolved from this source file, so it also works when the module is compiled into
        // another crate; CI has `shared/` beside the repository.
        let file = Path::new(file!());
        let src = if file.is_absolute() {
            file.to_path_buf()
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
        };
        let Some(root) = src.parent().and_then(Path::parent) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(root.join("../shared/fixtures")) else {
            return Vec::new();
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("claude-cli-"))
            })
            .collect();
        dirs.sort();
        dirs
    }

    fn read_stdout(dir: &Path) -> Option<Vec<u8>> {
        if let Ok(b) = std::fs::read(dir.join("stdout.jsonl")) {
            return Some(b);
        }
        let gz = dir.join("stdout.jsonl.gz");
        if !gz.exists() {
            return None;
        }
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&gz)
            .output()
            .ok()?;
        Some(out.stdout)
    }

    #[test]
    fn every_shared_fixture_renders() {
        let roots = shared_fixtures();
        if roots.is_empty() {
            eprintln!("shared fixtures not found: skipped");
            return;
        }
        let mut count = 0;
        let dirs = roots
            .iter()
            .flat_map(|root| std::fs::read_dir(root).unwrap())
            .map(|entry| entry.unwrap().path());
        for dir in dirs {
            let Some(bytes) = read_stdout(&dir) else {
                continue;
            };
            let mut live = Renderer::new();
            let mut once = Renderer::new();
            let mut buf = Vec::new();
            for (i, l) in bytes.split(|b| *b == b'\n').enumerate() {
                if l.is_empty() {
                    continue;
                }
                let l = line(l);
                live.feed_line(&l);
                once.feed_line(&l);
                if i % 3 == 0 {
                    if let Some(u) = live.take_update() {
                        apply(&mut buf, u);
                    }
                }
            }
            for r in [&mut live, &mut once] {
                r.footer(&Footer {
                    status: Status::Completed,
                    duration_ms: Some(1),
                    num_turns: 1,
                    cost_usd: 0.1,
                    error: None,
                });
            }
            if let Some(u) = live.take_update() {
                apply(&mut buf, u);
            }
            let mut whole = Vec::new();
            if let Some(u) = once.take_update() {
                apply(&mut whole, u);
            }
            assert_eq!(buf, whole, "{}", dir.display());
            assert!(buf.iter().all(|l| !l.contains('\n')), "{}", dir.display());
            count += 1;
        }
        assert!(count > 50, "only {count} fixtures");
    }

    #[test]
    fn flood_fixture_keeps_its_20000_lines() {
        let roots = shared_fixtures();
        let Some(root) = roots.iter().find(|r| r.ends_with("claude-cli-2.1.197")) else {
            return;
        };
        let Some(bytes) = read_stdout(&root.join("flood-stream-json-partial")) else {
            return;
        };
        let mut r = Renderer::new();
        let mut n = 0;
        for l in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            r.feed_line(&line(l));
            if let Some(u) = r.take_update() {
                n = u.start + u.lines.len();
            }
            assert!(r.retained_bytes() < 64 * 1024);
        }
        // Init line, blank, 20000 lines of text.
        assert_eq!(n, 20_002);
    }

    fn all_lines(r: &mut Renderer) -> Vec<String> {
        let mut buf = Vec::new();
        if let Some(u) = r.take_update() {
            apply(&mut buf, u);
        }
        buf
    }

    #[test]
    fn a_shortened_assistant_line_leaves_the_streamed_text_standing() {
        let mut r = Renderer::new();
        feed(&mut r, MESSAGE_START);
        feed(&mut r, &delta(0, "first line\nsecond "));
        // The growing line was shown, then the shortened confirmation comes.
        assert_eq!(all_lines(&mut r), vec!["first line", "second "]);
        feed(&mut r, &delta(0, "half"));
        let cut = assistant_text("first line\nsec… (99999999 bytes)");
        r.feed_shortened(&claude::parse_bytes(cut.as_bytes()));
        let mut buf = vec!["first line".to_string(), "second ".to_string()];
        while let Some(u) = r.take_update() {
            apply(&mut buf, u);
        }
        assert_eq!(buf, vec!["first line", "second half"]);
        // What follows goes on as usual.
        feed(&mut r, &delta(1, "next block"));
        feed(&mut r, &assistant_text("next block"));
        if let Some(u) = r.take_update() {
            apply(&mut buf, u);
        }
        assert_eq!(buf.last().map(String::as_str), Some("next block"));
    }

    #[test]
    fn a_shortened_assistant_line_without_streaming_shows_the_cut_text() {
        let mut r = Renderer::new();
        let cut = assistant_text("only line one\nline tw… (5000000 bytes)");
        r.feed_shortened(&claude::parse_bytes(cut.as_bytes()));
        assert_eq!(
            all_lines(&mut r),
            vec!["only line one", "line tw… (5000000 bytes)"]
        );
    }

    #[test]
    fn a_long_streamed_line_is_shown_cut_and_still_confirmed_whole() {
        let long: String = "é".repeat(MAX_SHOWN_LINE) + "z\r";
        let text = format!("{long}\nshort\n");
        let mut r = Renderer::new();
        feed(&mut r, MESSAGE_START);
        let mut buf = Vec::new();
        // Split inside characters' byte ranges is impossible in UTF-8 strings; split anywhere
        // else, and look at the growing line on the way.
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(997) {
            let piece: String = piece.iter().collect();
            feed(&mut r, &delta(0, &piece));
            if let Some(u) = r.take_update() {
                apply(&mut buf, u);
            }
            assert!(buf.iter().all(|l| l.len() <= MAX_SHOWN_LINE + 32));
        }
        let body = long.trim_end_matches('\r');
        let want_first = format!(
            "{}… ({} bytes)",
            &body[..body.floor_char_boundary(MAX_SHOWN_LINE)],
            body.len()
        );
        assert_eq!(buf, vec![want_first.clone(), "short".to_string()]);
        // The authoritative text matches what was streamed: nothing changes.
        feed(&mut r, &assistant_text(&text));
        if let Some(u) = r.take_update() {
            apply(&mut buf, u);
        }
        assert_eq!(buf, vec![want_first.clone(), "short".to_string()]);
        // The same text arriving without streaming is cut the same way.
        let mut once = Renderer::new();
        feed(&mut once, &assistant_text(&text));
        assert_eq!(all_lines(&mut once), vec![want_first, "short".to_string()]);
    }

    #[test]
    fn a_growing_line_keeps_bounded_memory_and_shows_its_size() {
        let mut r = Renderer::new();
        feed(&mut r, MESSAGE_START);
        let piece = "x".repeat(10_000);
        for _ in 0..100 {
            feed(&mut r, &delta(0, &piece));
        }
        assert!(
            r.retained_bytes() < 4 * MAX_SHOWN_LINE,
            "{}",
            r.retained_bytes()
        );
        let lines = all_lines(&mut r);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].ends_with("… (1000000 bytes)"),
            "{}",
            &lines[0][lines[0].len() - 40..]
        );
        // A different authoritative text replaces it.
        feed(&mut r, &assistant_text("other"));
        let mut buf = lines;
        if let Some(u) = r.take_update() {
            apply(&mut buf, u);
        }
        assert_eq!(buf, vec!["other"]);
    }

    #[test]
    fn line_hash_is_the_same_whatever_the_pieces() {
        let mut rng = crate::testutil::Rng(7);
        for _ in 0..5_000 {
            let n = rng.below(70);
            let line = rng.bytes(n);
            let whole = {
                let mut x = LineHasher::new(HASH_START);
                x.write(&line);
                x.finish()
            };
            let mut x = LineHasher::new(HASH_START);
            let mut rest = &line[..];
            while !rest.is_empty() {
                let (a, b) = rest.split_at(rng.below(rest.len() + 1));
                x.write(a);
                rest = b;
            }
            assert_eq!(x.finish(), whole);
        }
        let h = |s: &str| hash_line(HASH_START, s);
        assert_ne!(h("ab"), h("ab\0"));
        assert_ne!(h(""), h("\0"));
        assert_ne!(h("12345678"), h("12345678\0\0\0\0\0\0\0\0"));
        // Chained: the same lines in another order hash differently.
        assert_ne!(hash_line(h("a"), "b"), hash_line(h("b"), "a"));
    }
}
