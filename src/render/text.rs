//! Assistant text and thinking: text streamed by deltas (kept as a hash of its finished lines
//! and the line still growing) until its `assistant` line confirms or replaces it.

use std::mem;

use super::doc::{hash_line, marked, LineHasher, Mark, HASH_START};
use super::{strip_cr, trim_body, Kind, Open, Renderer};
use crate::text::{one_line, MAX_SHOWN_LINE};

/// Assistant text streamed by deltas and not yet confirmed by its `assistant` line.
pub(super) struct TextBlock {
    pub(super) mark: Mark,
    /// First line of the text.
    pub(super) start: usize,
    pub(super) index: u64,
    /// Finished lines, already in the document.
    pub(super) lines: usize,
    /// Hash of the finished lines, to tell whether the authoritative text begins with them
    /// without keeping them.
    pub(super) hash: u64,
    pub(super) last_blank: bool,
    /// Text after the last newline: a line still growing, shown but not in the document. Only
    /// its first `MAX_SHOWN_LINE` bytes are kept; `tail_len` counts all of them.
    pub(super) tail: String,
    pub(super) tail_len: usize,
    /// `hash` carried on over the tail's bytes so far, so a line longer than what is kept still
    /// hashes whole; a `\r` at the end is not in it yet (a line's last `\r` does not count).
    tail_hash: LineHasher,
    tail_cr: bool,
    /// The growing line has no control character but tabs: shown as it is.
    pub(super) tail_clean: bool,
}

impl TextBlock {
    pub(super) fn new(mark: Mark, start: usize, index: u64) -> Self {
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

    /// Adds `s` to the growing line; `clean` as in `stream_json::TextDelta`.
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
    pub(super) fn shown_tail(&self) -> String {
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
pub(super) struct ThinkingBlock {
    pub(super) mark: Mark,
    pub(super) line: usize,
}

impl Renderer {
    /// `clean`: the delta holds no control character but newlines and tabs.
    pub(super) fn text_delta(&mut self, index: u64, delta: &str, clean: bool) {
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

    pub(super) fn assistant_text(&mut self, text: &str) {
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

    pub(super) fn thinking(&mut self, text: &str) {
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
}
