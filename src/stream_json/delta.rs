//! The hand-written parse of a `text_delta` line, the fast path for most lines of a long
//! answer: it accepts only lines that serde would read the same way and leaves the rest to
//! `parse`.

use std::borrow::Cow;

use super::{Event, Stream};
use crate::transcript::scan::string_run;

pub(super) const DELTA_HEAD: &[u8] =
    br#"{"type":"stream_event","event":{"type":"content_block_delta","index":"#;
const TEXT_HEAD: &[u8] = br#","delta":{"type":"text_delta","text":""#;

/// A text delta in exactly the shape the CLI writes it, parsed by hand. `None` for anything else,
/// so the general path decides: this accepts only lines that serde reads the same way.
#[inline]
pub(super) fn text_delta_line(b: &[u8]) -> Option<Stream> {
    let d = text_delta(b)?;
    Some(Stream {
        parent_tool_use_id: d.parent_tool_use_id.map(str::to_owned),
        event: Event::TextDelta {
            index: d.index,
            text: d.text.into_owned(),
        },
    })
}

/// A `text_delta` stream event, borrowed from its line where it has no escapes.
#[derive(Debug, PartialEq)]
pub struct TextDelta<'a> {
    pub index: u64,
    pub text: Cow<'a, str>,
    /// The text has no control character but newlines and tabs: its lines need no sanitizing.
    pub clean: bool,
    pub parent_tool_use_id: Option<&'a str>,
}

/// The hand-written parse of a `text_delta` line (see `text_delta_line`), without copying the
/// text: the view renders most lines of a long answer straight from the bytes it read.
pub fn text_delta(b: &[u8]) -> Option<TextDelta<'_>> {
    let mut decoded = String::new();
    let (index, text) = delta_head(b, &mut decoded)?;
    let parent = delta_tail(text.rest, |_, _| {})?;
    Some(TextDelta {
        index,
        text: text.raw.map_or(Cow::Owned(decoded), Cow::Borrowed),
        clean: text.clean,
        parent_tool_use_id: parent,
    })
}

/// `text_delta` with a memory of the last tail it checked in full. The CLI writes the same keys
/// and values after the event on every line of a message but one string, which changes on every
/// line: the uuid, last in 2.1.197, followed by `api_message_id` in 2.1.332. So a tail that is
/// the remembered one with one string under a key that does not matter changed, wherever it
/// is, needs only that string checked; anything else takes the whole check (and becomes the new
/// memory). Same results as `text_delta`, line for line.
#[derive(Default)]
pub struct DeltaParser {
    pub(super) memory: TailMemory,
    /// Lines whose tail took the short check (what the benchmarks report).
    reused: u64,
    /// The text of a delta with escapes (nearly every one: a line ends in `\n`), decoded here
    /// rather than into a new `String` per line.
    decoded: String,
}

/// A longer tail is checked whole every time rather than kept (the CLI's are ~150 bytes).
const MAX_REMEMBERED_TAIL: usize = 4096;

impl DeltaParser {
    pub fn parse<'a>(&'a mut self, b: &'a [u8]) -> Option<TextDelta<'a>> {
        let (index, JsonStr { raw, clean, rest }) = delta_head(b, &mut self.decoded)?;
        let text = Cow::Borrowed(raw.unwrap_or(self.decoded.as_str()));
        let parent = match self.memory.reuse(rest) {
            Some(parent) => {
                self.reused += 1;
                match parent {
                    Some((from, to)) => Some(std::str::from_utf8(&rest[from..to]).ok()?),
                    None => None,
                }
            }
            None => {
                let m = &mut self.memory;
                m.free.clear();
                let parent = delta_tail(rest, |from, to| m.free.push((from, to)));
                m.tail.clear();
                if parent.is_some() && rest.len() <= MAX_REMEMBERED_TAIL {
                    m.tail.extend_from_slice(rest);
                }
                let parent = parent?;
                m.parent = parent.map(|p| {
                    let from = p.as_ptr() as usize - rest.as_ptr() as usize;
                    (from, from + p.len())
                });
                parent
            }
        };
        Some(TextDelta {
            index,
            text,
            clean,
            parent_tool_use_id: parent,
        })
    }

    /// How many lines' tails were found to be the remembered one but for one free string.
    pub fn reused(&self) -> u64 {
        self.reused
    }

    /// Drops the remembered tail: the next line takes the whole check, as every line would if
    /// its tail changed in more than one place (the benchmarks' reference).
    pub fn forget_tail(&mut self) {
        self.memory.tail.clear();
    }
}

/// The last tail `DeltaParser` checked whole, and where its free strings are.
#[derive(Default)]
pub(super) struct TailMemory {
    /// The last tail that passed the whole check; empty when there is none to reuse.
    pub(super) tail: Vec<u8>,
    /// The contents of the string values under keys that do not matter in `tail`, as the index
    /// of their first byte and of their closing quote, in order.
    free: Vec<(usize, usize)>,
    /// Where `parent_tool_use_id`'s string is within `tail`, if it is one.
    parent: Option<(usize, usize)>,
    /// Which of `free` was the one changed in the last tail reused: likely the one changed in
    /// the next, so it is tried first.
    changed: usize,
}

impl TailMemory {
    /// Whether `rest` is the remembered tail with at most one of its free strings replaced by
    /// another string without escapes: then it passes `delta_tail` as the remembered one did
    /// (the same keys, in the same order, with values of the same kinds). Returns where the
    /// `parent_tool_use_id` string is in `rest`.
    fn reuse(&mut self, rest: &[u8]) -> Option<Option<(usize, usize)>> {
        if self.tail.is_empty() {
            return None;
        }
        // Two comparisons (before and after the string) when the same string changed again.
        if let Some(&(from, to)) = self.free.get(self.changed) {
            if let Some(end) = self.only_changed(rest, from, to) {
                return Some(self.parent_in(end, to));
            }
        }
        let same = common_prefix(rest, &self.tail);
        if same == rest.len() && same == self.tail.len() {
            return Some(self.parent);
        }
        // The first difference is inside a free string's content or at its closing quote.
        let k = self
            .free
            .iter()
            .position(|&(f, t)| f <= same && same <= t)?;
        let (from, to) = self.free[k];
        let end = self.only_changed(rest, from, to)?;
        self.changed = k;
        Some(self.parent_in(end, to))
    }

    /// Where the closing quote of the string at `from` is in `rest`, when `rest` is the
    /// remembered tail but for that string (whose closing quote was at `to`), which has no
    /// escapes.
    fn only_changed(&self, rest: &[u8], from: usize, to: usize) -> Option<usize> {
        if rest.get(..from)? != &self.tail[..from] {
            return None;
        }
        // From its opening quote, the same in both.
        let (value, after) = plain_string(&rest[from - 1..])?;
        (after == &self.tail[to + 1..]).then_some(from + value.len())
    }

    /// The parent's string in a tail whose changed string closes at `end` instead of `to`.
    fn parent_in(&self, end: usize, to: usize) -> Option<(usize, usize)> {
        self.parent.map(|(a, b)| {
            if a > to {
                (a + end - to, b + end - to)
            } else {
                (a, b)
            }
        })
    }
}

/// How many bytes `a` and `b` have in common from their starts.
pub(super) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    // Eight bytes at a time: the first differing byte is the lowest set byte of the xor.
    while i + 8 <= n {
        let word = |s: &[u8]| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or([0; 8]));
        let x = word(a) ^ word(b);
        if x != 0 {
            return i + x.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// A delta line up to its text: the index, and the text as `json_string` gives it, with what
/// follows the `}}` after it as its `rest`.
fn delta_head<'a>(b: &'a [u8], decoded: &mut String) -> Option<(u64, JsonStr<'a>)> {
    let rest = b.strip_prefix(DELTA_HEAD)?;
    let (index, rest) = json_u64(rest)?;
    let rest = rest.strip_prefix(TEXT_HEAD)?;
    let mut text = json_string(rest, decoded)?;
    text.rest = text.rest.strip_prefix(b"}}")?;
    Some((index, text))
}

/// The `parent_tool_use_id` of the rest of the top-level object after the event, when it is
/// only strings without escapes and nulls. `free` is told where each string value under a key
/// that does not matter here is (its content's first byte and its closing quote): a later line's
/// tail that differs from this one only inside one of them passes as this one does
/// (`DeltaParser`).
fn delta_tail(all: &[u8], mut free: impl FnMut(usize, usize)) -> Option<Option<&str>> {
    let mut rest = all;
    let mut parent = None;
    let mut seen_parent = false;
    loop {
        match rest {
            [b'}'] => break,
            [b',', tail @ ..] => {
                let (key, tail) = plain_string(tail)?;
                let tail = tail.strip_prefix(b":")?;
                let (value, tail) = match tail.strip_prefix(b"null") {
                    Some(tail) => (None, tail),
                    None => {
                        let (v, tail) = plain_string(tail)?;
                        (Some(v), tail)
                    }
                };
                match key {
                    b"parent_tool_use_id" if !seen_parent => {
                        seen_parent = true;
                        parent = match value {
                            Some(v) => Some(std::str::from_utf8(v).ok()?),
                            None => None,
                        };
                    }
                    // serde rejects a repeated known field (unknown ones it skips).
                    b"parent_tool_use_id" | b"type" | b"event" => return None,
                    _ => {
                        if let Some(v) = value {
                            let from = v.as_ptr() as usize - all.as_ptr() as usize;
                            free(from, from + v.len());
                        }
                    }
                }
                rest = tail;
            }
            _ => return None,
        }
    }
    Some(parent)
}

/// A plain JSON u64. Leading zeros are invalid JSON, and serde reads an overflow as a float.
fn json_u64(b: &[u8]) -> Option<(u64, &[u8])> {
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && b[0] == b'0') {
        return None;
    }
    let mut n: u64 = 0;
    for &c in &b[..digits] {
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some((n, &b[digits..]))
}

/// A JSON string as `json_string` reads it.
struct JsonStr<'a> {
    /// Its text, borrowed from the line when it has no escapes (else it is in the caller's
    /// `decoded`).
    raw: Option<&'a str>,
    /// The text has no control character but newlines and tabs, raw or escaped: its lines go
    /// into a buffer as they are (`render::sanitize` would return them unchanged).
    clean: bool,
    /// What follows its closing quote.
    rest: &'a [u8],
}

/// The JSON string that `b` starts inside of (just after its opening quote): its text, borrowed
/// from `b` when it has no escapes, else decoded into `decoded`. `None` where serde_json would
/// fail: raw control characters, bad escapes, lone surrogates, invalid UTF-8.
fn json_string<'a>(b: &'a [u8], decoded: &mut String) -> Option<JsonStr<'a>> {
    let run = string_run(b, 0)?;
    if b[run.end] == b'"' {
        return Some(JsonStr {
            raw: Some(utf8(&b[..run.end], run.ascii)?),
            clean: run.no_del,
            rest: &b[run.end + 1..],
        });
    }
    // Escaped: decoded in the same pass, run by run. Escapes are ASCII, so validating the runs
    // between them validates the whole.
    decoded.clear();
    let (mut from, mut run, mut clean) = (0, run, true);
    loop {
        decoded.push_str(utf8(&b[from..run.end], run.ascii)?);
        clean &= run.no_del;
        match b[run.end] {
            b'"' => {
                return Some(JsonStr {
                    raw: None,
                    clean,
                    rest: &b[run.end + 1..],
                })
            }
            b'\\' => {
                from = unescape(b, run.end + 1, decoded)?;
                // The escape's character is the last one decoded; one of several bytes is not
                // a control character. A newline is fine: lines are split at it.
                clean &= decoded
                    .as_bytes()
                    .last()
                    .is_some_and(|&c| c == b'\n' || !crate::transcript::scan::is_unclean(c));
                run = string_run(b, from)?;
            }
            // A raw control character.
            _ => return None,
        }
    }
}

/// `b` as text; `ascii` says the scan that found `b` saw only ASCII bytes in it.
fn utf8(b: &[u8], ascii: bool) -> Option<&str> {
    if ascii {
        debug_assert!(b.is_ascii());
        // SAFETY: every byte of `b` is ASCII (the caller's scan saw no high bit), and ASCII is
        // valid UTF-8. Validating again was ~5 % of the backend's CPU in a flood.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        std::str::from_utf8(b).ok()
    }
}

/// Decodes the escape whose letter is at `b[i]` into `out`; returns the index after it.
fn unescape(b: &[u8], i: usize, out: &mut String) -> Option<usize> {
    let c = match *b.get(i)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hi = hex4(b.get(i + 1..i + 5)?)?;
            if !(0xD800..0xDC00).contains(&hi) {
                // char::from_u32 refuses a lone trailing surrogate, as serde_json does.
                out.push(char::from_u32(hi)?);
                return Some(i + 5);
            }
            if b.get(i + 5..i + 7)? != b"\\u" {
                return None;
            }
            let lo = hex4(b.get(i + 7..i + 11)?)?;
            if !(0xDC00..0xE000).contains(&lo) {
                return None;
            }
            out.push(char::from_u32(
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00),
            )?);
            return Some(i + 11);
        }
        _ => return None,
    };
    out.push(c);
    Some(i + 1)
}

fn hex4(h: &[u8]) -> Option<u32> {
    h.iter()
        .try_fold(0u32, |n, &c| Some(n * 16 + char::from(c).to_digit(16)?))
}

/// A JSON string without escapes at the start of `b` (its bytes, valid UTF-8), and what follows.
fn plain_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let b = b.strip_prefix(b"\"")?;
    let run = string_run(b, 0)?;
    let s = &b[..run.end];
    if b[run.end] != b'"' || !(run.ascii || std::str::from_utf8(s).is_ok()) {
        return None;
    }
    Some((s, &b[run.end + 1..]))
}
