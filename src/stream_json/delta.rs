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
    let (parent, _) = delta_tail(text.rest)?;
    Some(TextDelta {
        index,
        text: text.raw.map_or(Cow::Owned(decoded), Cow::Borrowed),
        clean: text.clean,
        parent_tool_use_id: parent,
    })
}

/// `text_delta` with a memory of the last tail it checked. The CLI writes the same session id and
/// keys on every line and only the uuid changes, so a tail that starts with the same bytes as the
/// last one needs only its last value checked; anything else takes the whole check (and becomes
/// the new memory). Same results as `text_delta`, line for line.
#[derive(Default)]
pub struct DeltaParser {
    /// The last checked tail up to its last value's opening quote; empty when it cannot be
    /// reused (its last value was null, or named something that matters).
    pub(super) prefix: Vec<u8>,
    /// Where `parent_tool_use_id`'s string is within `prefix`, if it is one.
    parent: Option<(usize, usize)>,
    /// The text of a delta with escapes (nearly every one: a line ends in `\n`), decoded here
    /// rather than into a new `String` per line.
    decoded: String,
}

impl DeltaParser {
    pub fn parse<'a>(&'a mut self, b: &'a [u8]) -> Option<TextDelta<'a>> {
        let (index, JsonStr { raw, clean, rest }) = delta_head(b, &mut self.decoded)?;
        let text = Cow::Borrowed(raw.unwrap_or(self.decoded.as_str()));
        if !self.prefix.is_empty() {
            if let Some(last) = rest.strip_prefix(self.prefix.as_slice()) {
                if plain_string(last).is_some_and(|(_, end)| end == b"}") {
                    let parent = match self.parent {
                        Some((from, to)) => Some(std::str::from_utf8(&rest[from..to]).ok()?),
                        None => None,
                    };
                    return Some(TextDelta {
                        index,
                        text,
                        clean,
                        parent_tool_use_id: parent,
                    });
                }
            }
        }
        let (parent, last_value) = delta_tail(rest)?;
        self.prefix.clear();
        if let Some(at) = last_value {
            self.prefix.extend_from_slice(&rest[..at]);
            self.parent = parent.map(|p| {
                let from = p.as_ptr() as usize - rest.as_ptr() as usize;
                (from, from + p.len())
            });
        }
        Some(TextDelta {
            index,
            text,
            clean,
            parent_tool_use_id: parent,
        })
    }
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

/// The rest of the top-level object after the event, when it is only strings without escapes
/// and nulls: the `parent_tool_use_id`, and where the last value begins (its opening quote) when
/// that value is a string under a key that does not matter here, so that a later line's tail
/// with the same bytes before it needs only that value checked (`DeltaParser`).
fn delta_tail(all: &[u8]) -> Option<(Option<&str>, Option<usize>)> {
    let mut rest = all;
    let mut parent = None;
    let mut seen_parent = false;
    let mut last_value = None;
    loop {
        match rest {
            [b'}'] => break,
            [b',', tail @ ..] => {
                let (key, tail) = plain_string(tail)?;
                let tail = tail.strip_prefix(b":")?;
                let at = all.len() - tail.len();
                let (value, tail) = match tail.strip_prefix(b"null") {
                    Some(tail) => (None, tail),
                    None => {
                        let (v, tail) = plain_string(tail)?;
                        (Some(v), tail)
                    }
                };
                last_value = value.map(|_| at);
                match key {
                    b"parent_tool_use_id" if !seen_parent => {
                        seen_parent = true;
                        last_value = None;
                        parent = match value {
                            Some(v) => Some(std::str::from_utf8(v).ok()?),
                            None => None,
                        };
                    }
                    // serde rejects a repeated known field (unknown ones it skips).
                    b"parent_tool_use_id" | b"type" | b"event" => return None,
                    _ => {}
                }
                rest = tail;
            }
            _ => return None,
        }
    }
    Some((parent, last_value))
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
