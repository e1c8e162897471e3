//! The document model: the lines not yet handed out, marks to take a block back, and the line
//! hash that tells whether a text begins with lines already handed out.

use std::borrow::Cow;

use super::{sanitize, Fold};
use crate::hash::FNV_OFFSET;
use crate::text::MAX_SHOWN_LINE;

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

pub(super) fn marked(mut prefix: String, total: usize) -> String {
    use std::fmt::Write;
    let _ = write!(prefix, "… ({total} bytes)");
    prefix
}

/// Kinds of blocks; a blank line separates blocks, except consecutive ones of a grouping kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
    /// A message the user said during the run.
    Said,
}

impl Kind {
    pub(super) fn groups(self) -> bool {
        matches!(
            self,
            Kind::Tools | Kind::Retry | Kind::Notice | Kind::Plain | Kind::Said
        )
    }
}

/// The lines of the document not yet handed out, after the `base` lines that were.
pub(super) struct Doc {
    pub(super) base: usize,
    pub(super) pending: Vec<String>,
    /// Strings of lines already written, given back (`Renderer::recycle`) to hold new lines:
    /// a flood renders a line per 80 bytes, and allocating each one here to free it on another
    /// thread after its write was a sixth of the backend's CPU.
    pub(super) spare: Vec<String>,
    pub(super) pending_bytes: usize,
    pub(super) changed: bool,
    /// Whether the last line is blank (or the document is empty), to avoid doubled blank lines.
    pub(super) last_blank: bool,
    /// Folds of the lines not yet handed out, in order.
    pub(super) folds: Vec<Fold>,
}

impl Doc {
    pub(super) fn len(&self) -> usize {
        self.base + self.pending.len()
    }

    pub(super) fn push(&mut self, line: &str) {
        let clipped = clip(line);
        let line = match sanitize(&clipped) {
            Cow::Owned(clean) => clean,
            Cow::Borrowed(clean) => self.copy(clean),
        };
        self.push_clean(line);
    }

    /// `push` of a line known to hold no control character (`stream_json::TextDelta::clean`).
    #[inline]
    pub(super) fn push_known_clean(&mut self, line: &str) {
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

    pub(super) fn push_owned(&mut self, line: String) {
        let line = match clip(&line) {
            Cow::Borrowed(_) => line,
            Cow::Owned(cut) => cut,
        };
        self.push_shown(line);
    }

    /// A line already cut to size.
    pub(super) fn push_shown(&mut self, line: String) {
        let line = match sanitize(&line) {
            Cow::Borrowed(_) => line,
            Cow::Owned(clean) => clean,
        };
        self.push_clean(line);
    }

    pub(super) fn push_clean(&mut self, line: String) {
        self.last_blank = line.is_empty();
        self.pending_bytes += line.len();
        self.pending.push(line);
        self.changed = true;
    }

    /// Folds lines `first..=last`, which are (or are about to be) in the document.
    pub(super) fn fold(&mut self, first: usize, last: usize) {
        if last > first {
            self.folds.push(Fold { first, last });
        }
    }

    /// Cuts the document to `at` lines; `last_blank` tells whether line `at - 1` is blank, as
    /// that line may already have been handed out.
    pub(super) fn truncate(&mut self, at: usize, last_blank: bool) {
        if at >= self.len() {
            return;
        }
        // A fold keeps the lines it still has; one line is no fold.
        self.folds.retain_mut(|f| {
            f.last = f.last.min(at.saturating_sub(1));
            f.first < at && f.last > f.first
        });
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
pub(super) struct Mark {
    pub(super) at: usize,
    pub(super) kind: Kind,
    pub(super) last_blank: bool,
}

/// Where a line hash starts: the hash of no lines.
pub(super) const HASH_START: u64 = FNV_OFFSET;

/// A line hash chained over lines: identical line sequences give equal hashes however the text
/// was split into deltas. Eight bytes at a time (a byte-wise hash was ~8 % of a flood's CPU),
/// and fed in pieces it gives what it gives fed at once.
#[derive(Clone, Copy)]
pub(super) struct LineHasher {
    pub(super) h: u64,
    /// Bytes not yet mixed in, little-endian, and how many.
    pub(super) buf: u64,
    pub(super) n: u32,
}

impl LineHasher {
    pub(super) fn new(h: u64) -> Self {
        LineHasher { h, buf: 0, n: 0 }
    }

    fn mix(&mut self, w: u64) {
        self.h = (self.h ^ w)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }

    pub(super) fn write(&mut self, mut bytes: &[u8]) {
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
    pub(super) fn finish(mut self) -> u64 {
        let (buf, n) = (self.buf, self.n);
        self.mix(buf);
        // The count of trailing bytes tells "ab" from "ab\0".
        self.mix(0x100 | u64::from(n));
        self.h
    }
}

// Called for every streamed line from `text`, a module of its own: without the hint it was no
// longer inlined there (a codegen unit per module), ~2 % of the pipeline at 1M lines.
#[inline]
pub(super) fn hash_line(h: u64, line: &str) -> u64 {
    let mut x = LineHasher::new(h);
    x.write(line.as_bytes());
    x.finish()
}
