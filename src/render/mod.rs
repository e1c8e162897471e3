//! The output buffer of a task, as a pure function of its transcript.
//!
//! The renderer turns stream-json messages into the lines of a markdown buffer and hands them out
//! as [`Update`]s ("replace from line `start` to the end with `lines`"). It keeps only what can
//! still change: the text block being streamed (as a hash of its finished lines plus the line
//! still growing) and the tool calls waiting for their results. Every line handed out is
//! forgotten, so memory stays bounded however long the transcript is; a block that must be
//! rewritten after its lines were handed out is simply re-sent from its first line.

mod ask;
mod diff;
mod doc;
mod frame;
mod said;
mod sanitize;
#[cfg(test)]
mod tests;
mod text;
mod tools;

use std::collections::VecDeque;
use std::mem;

use crate::stream_json::reader::Consumer;
use crate::stream_json::{self, Block, BlockKind, Event, Msg, ResultInfo};
use crate::text::one_line;
use crate::transcript::framing::Line;
use doc::{hash_line, Doc, Kind, Mark, HASH_START};
use text::{TextBlock, ThinkingBlock};
use tools::{ToolEntry, ToolGroup, MAX_LATE_TOOLS};

pub use ask::{FileReader, FileText, MAX_DIFF_FILE};
pub use frame::{model_name, Footer, FooterChanges, Header, MAX_STDERR_LINES};
pub use said::SaidLine;
pub use sanitize::sanitize;
pub use tools::tool_summary;

/// Replace the buffer from line `start` (0-based) to its end with `lines`, whose `folds` are
/// closed at first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    pub start: usize,
    pub lines: Vec<String>,
    /// Ranges of `lines` to fold, in document lines, in order.
    pub folds: Vec<Fold>,
}

/// Lines `first..=last` (0-based document lines) that the buffer shows folded: the part of a
/// tool's result under its first lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fold {
    pub first: usize,
    pub last: usize,
}

impl Update {
    /// What Neovim does with it: `doc`'s lines from `start` on replaced by `lines`.
    pub fn apply_to(self, doc: &mut Vec<String>) {
        doc.truncate(self.start);
        doc.extend(self.lines);
    }
}

/// Strings kept for reuse (`Renderer::recycle`): a few calls' worth of lines...
const SPARE_LINES: usize = 8 * 1024;
/// ... of at most this capacity each.
const SPARE_CAPACITY: usize = 1024;

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
    /// The run's working directory (from its init line), to show paths relative to it.
    cwd: String,
    /// Reads a file for the diff of a waiting Write request (set by the view).
    files: Option<FileReader>,
    /// Requests shown on their own, whose answer is still to come.
    lone_asks: VecDeque<tools::Ask>,
    /// What the user said to the current run, and how far the CLI took it.
    said: said::Said,
    /// The lines at the end for messages still waiting changed since the last update.
    trailer_dirty: bool,
    /// The last update ended with such lines.
    trailer_in_buffer: bool,
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
                folds: Vec::new(),
            },
            open: Open::None,
            last_kind: Kind::Start,
            tail_dirty: false,
            tail_in_buffer: false,
            late: VecDeque::new(),
            interrupted: false,
            shown_error: None,
            shortened: false,
            cwd: String::new(),
            files: None,
            lone_asks: VecDeque::new(),
            said: said::Said::default(),
            trailer_dirty: false,
            trailer_in_buffer: false,
        }
    }

    /// How the renderer reads a file that a waiting Write request would replace (to show the
    /// change as a diff). Without one, a Write shows its whole content.
    pub fn set_file_reader(&mut self, read: FileReader) {
        self.files = Some(read);
    }

    pub fn feed_line(&mut self, line: &Line) {
        self.feed(&stream_json::parse(line));
    }

    /// A line too long to hold, re-read from the file with its long strings cut
    /// (`transcript::longline`): rendered like any other, except that a cut text can neither
    /// confirm nor replace what was streamed for it, so the streamed text stands as it is.
    pub fn feed_shortened(&mut self, msg: &Msg) {
        self.shortened = true;
        self.feed(msg);
        self.shortened = false;
    }

    /// A text delta parsed in place (`stream_json::text_delta`): the same as feeding its `Msg`,
    /// without building one.
    pub fn feed_text_delta(&mut self, d: &stream_json::TextDelta) {
        // A subagent's stream would interleave with ours (as in `feed`).
        if d.parent_tool_use_id.is_none() {
            self.text_delta(d.index, &d.text, d.clean);
        }
    }

    pub fn feed(&mut self, msg: &Msg) {
        match msg {
            Msg::Init(init) => {
                self.said_turn_begins();
                self.cwd.clone_from(&init.cwd);
                let mut parts = Vec::new();
                if !init.model.is_empty() {
                    parts.push(format!("model: {}", model_name(&init.model)));
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
            Msg::Control(c) => self.control(c),
            Msg::Assistant(a) => self.assistant(a),
            Msg::User(u) => {
                // A subagent's.
                if u.parent_tool_use_id.is_some() {
                    return;
                }
                // The echo of a message we wrote: the run's prompt (its header shows it), or one
                // said during the run.
                if u.replay {
                    let text = if self.shortened { None } else { u.text() };
                    self.said_echo(text);
                    return;
                }
                for b in &u.content {
                    match b {
                        stream_json::UserBlock::ToolResult(r) => self.tool_result(r),
                        stream_json::UserBlock::Text(_) => {
                            if b.is_interruption() {
                                self.begin(Kind::Notice);
                                self.doc.push("■ interrupted by user");
                                self.interrupted = true;
                                self.said_interrupted();
                            }
                        }
                        stream_json::UserBlock::Other(_) => {}
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
                            ask: None,
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
        if !self.doc.changed && !self.tail_dirty && !self.trailer_dirty {
            return None;
        }
        let start = self.doc.base;
        let folds = mem::take(&mut self.doc.folds);
        let mut lines = mem::take(&mut self.doc.pending);
        self.doc.base += lines.len();
        self.doc.pending_bytes = 0;
        self.doc.changed = false;
        let tail = self.tail_line();
        self.tail_in_buffer = tail.is_some();
        self.tail_dirty = false;
        lines.extend(tail);
        let trailer = self.said_trailer();
        self.trailer_in_buffer = !trailer.is_empty();
        self.trailer_dirty = false;
        lines.extend(trailer);
        Some(Update {
            start,
            lines,
            folds,
        })
    }

    /// The lines after the document (messages still waiting) are to be drawn again: the next
    /// update re-sends the end of the buffer even when nothing else changed.
    fn trailer_changed(&mut self) {
        if self.trailer_in_buffer || !self.said_trailer().is_empty() {
            self.trailer_dirty = true;
        }
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
        self.doc.len() + usize::from(self.tail_line_exists()) + self.said_trailer().len()
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

    fn assistant(&mut self, a: &stream_json::Assistant) {
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
        self.said_result();
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

impl Consumer for Renderer {
    fn feed(&mut self, msg: &Msg) {
        Renderer::feed(self, msg);
    }

    fn feed_shortened(&mut self, msg: &Msg) {
        Renderer::feed_shortened(self, msg);
    }

    fn feed_text_delta(&mut self, d: &stream_json::TextDelta) {
        Renderer::feed_text_delta(self, d);
    }
}

fn strip_cr(s: &str) -> &str {
    s.strip_suffix('\r').unwrap_or(s)
}

/// Assistant text as shown: without leading blank lines and trailing whitespace.
fn trim_body(text: &str) -> &str {
    text.trim_start_matches(['\n', '\r']).trim_end()
}
