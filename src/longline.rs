//! Shortened copies of over-long transcript lines.
//!
//! The framer keeps only a prefix of a line longer than its cap, which loses everything after
//! the huge part (a `result` line's cost comes after its huge text). So such a line is copied,
//! in bounded memory, with every long string cut, which keeps the copy valid JSON that the
//! normal parser can read: on the way, as a view reads it (`Cutter`), or re-read from the
//! transcript file, the truth (`shorten_file`).

use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::scan::simple_escape;

/// A shortened copy of one over-long JSON line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortened {
    /// Valid JSON (if the input was): the same structure, long strings cut.
    pub json: Vec<u8>,
    /// How many strings were cut.
    pub cut: usize,
}

const READ_BUF: usize = 64 * 1024;

/// Reads exactly `len` bytes from `r` (one transcript line, without its newline) and copies
/// them, cutting every JSON string (keys and values) whose raw (escaped) content is longer than
/// `max_string` bytes: the kept part ends at a UTF-8 character boundary and never inside an
/// escape sequence (nor between the two halves of a `\uD83D\uDE00` surrogate pair), and the
/// marker `… (N bytes)` (N = the raw length of the whole string's content) is appended inside
/// the string.
///
/// Returns Ok(None) when the bytes are not a JSON object/array (the first non-space byte is not
/// `{` or `[`), when they are not well-formed JSON as far as a cheap structural check can tell
/// (unbalanced brackets, unterminated string, invalid escape, or trailing bytes), or when the
/// output would exceed `max_out` bytes (e.g. millions of small strings). Reading stops as soon
/// as the answer is known to be None.
///
/// I/O errors are returned as Err; a reader that ends before `len` bytes is an
/// `ErrorKind::UnexpectedEof` error, because the caller's idea of the line no longer matches the
/// file. Memory use is bounded by `max_out` + a fixed read buffer (64 KiB), whatever `len` is.
fn shorten(
    mut r: impl Read,
    len: u64,
    max_string: usize,
    max_out: usize,
) -> io::Result<Option<Shortened>> {
    let mut buf = vec![0u8; READ_BUF];
    let mut cutter = Cutter::new(max_string, max_out);
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("line ended {left} bytes early"),
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        left -= n as u64;
        cutter.feed(&buf[..n]);
        if cutter.rejected {
            return Ok(None);
        }
    }
    Ok(cutter.finish())
}

/// The same on bytes already in memory.
#[cfg(test)]
fn shorten_bytes(bytes: &[u8], max_string: usize, max_out: usize) -> Option<Shortened> {
    let mut c = Cutter::new(max_string, max_out);
    c.feed(bytes);
    c.finish()
}

/// `shorten` fed piece by piece, for a line that passes by anyway: the view's framer hands over
/// the bytes of an over-long line as it reads them, so the line need not be read a second
/// time (for a 80 MB answer that second read came after everything else, and the buffer's last
/// lines waited 20–35 ms for it).
pub struct Cutter {
    m: Machine,
    rejected: bool,
}

impl Cutter {
    pub fn new(max_string: usize, max_out: usize) -> Self {
        Cutter {
            m: Machine::new(max_string, max_out),
            rejected: false,
        }
    }

    /// The line's next bytes (a trailing `\r` is fine: it is whitespace).
    pub fn feed(&mut self, bytes: &[u8]) {
        if !self.rejected {
            self.rejected = !self.m.feed(bytes);
        }
    }

    /// As `shorten`'s result: None when the line is not a JSON object or array, or its copy
    /// would be too large.
    pub fn finish(self) -> Option<Shortened> {
        if self.rejected {
            return None;
        }
        self.m.finish()
    }
}

/// Convenience: open `path`, seek to `offset`, shorten `len` bytes.
pub fn shorten_file(
    path: &Path,
    offset: u64,
    len: u64,
    max_string: usize,
    max_out: usize,
) -> io::Result<Option<Shortened>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    shorten(f, len, max_string, max_out)
}

/// Where the machine is inside an escape sequence of a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    /// Just after `\`.
    Backslash,
    /// Inside `\uXXXX`: hex digits still to come and the value so far.
    Hex {
        left: u8,
        value: u16,
    },
}

/// The state of one copy; fed chunk by chunk so nothing depends on where reads end.
struct Machine {
    max_string: usize,
    /// Bytes beyond which the output can no longer fit in `max_out`. The cut of a string drops
    /// at most 12 already-copied bytes (a surrogate pair) and then adds a marker of at least 13,
    /// so the output never ends shorter than it was; the slack only keeps that argument loose.
    abort_len: usize,
    max_out: usize,
    out: Vec<u8>,
    cut: usize,
    /// Open brackets, one bit each (set for `{`), so that even a line of nothing but `[` stays
    /// within the memory bound.
    stack: Vec<u64>,
    depth: usize,
    started: bool,
    done: bool,
    in_str: bool,
    // The current string.
    /// Where its content starts in `out`.
    str_start: usize,
    /// Raw (escaped) content bytes seen so far.
    raw: u64,
    /// Largest cut position ≤ `max_string` known to be safe.
    cut_at: usize,
    /// A position right after a high-surrogate escape, safe only if the escape starting there
    /// is not the low half of the pair; undecided until that escape ends.
    pending: Option<u64>,
    /// The last unit was a high-surrogate escape.
    after_high: bool,
    /// Continuation bytes still expected by the current UTF-8 sequence.
    utf8_need: u8,
    esc: Esc,
    /// The string is being cut: its content is no longer copied, only scanned for the end.
    cutting: bool,
}

impl Machine {
    fn new(max_string: usize, max_out: usize) -> Self {
        Machine {
            max_string,
            abort_len: max_out.saturating_add(16),
            max_out,
            out: Vec::new(),
            cut: 0,
            stack: Vec::new(),
            depth: 0,
            started: false,
            done: false,
            in_str: false,
            str_start: 0,
            raw: 0,
            cut_at: 0,
            pending: None,
            after_high: false,
            utf8_need: 0,
            esc: Esc::None,
            cutting: false,
        }
    }

    /// Inside a string being cut, skips from `chunk[i]` to the next byte that matters here: a
    /// quote, or a backslash that does not begin a two-byte escape, which the byte-by-byte
    /// machine checks (a control character in what is cut away changes nothing); None when that
    /// is past the chunk. Skipping is the bulk of a huge line.
    fn skip_cut(&mut self, chunk: &[u8], i: usize) -> Option<usize> {
        let end = crate::scan::skip_escaped(chunk, i);
        self.raw += (end.unwrap_or(chunk.len()) - i) as u64;
        end
    }

    /// False when the input is rejected; the machine must not be fed again then.
    fn feed(&mut self, chunk: &[u8]) -> bool {
        let mut i = 0;
        while i < chunk.len() {
            if self.in_str && self.cutting && self.esc == Esc::None {
                match self.skip_cut(chunk, i) {
                    Some(k) => i = k,
                    None => return true,
                }
            }
            let b = chunk[i];
            i += 1;
            let ok = if self.in_str {
                if self.cutting {
                    self.skip_byte(b)
                } else {
                    self.string_byte(b)
                }
            } else {
                self.structure_byte(b)
            };
            if !ok || self.out.len() > self.abort_len {
                return false;
            }
        }
        true
    }

    fn finish(self) -> Option<Shortened> {
        if !self.done || self.out.len() > self.max_out {
            return None;
        }
        Some(Shortened {
            json: self.out,
            cut: self.cut,
        })
    }

    fn structure_byte(&mut self, b: u8) -> bool {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'{' | b'[' => {
                if self.done {
                    return false;
                }
                self.started = true;
                self.open(b == b'{');
            }
            b'}' | b']' => {
                if self.close() != Some(b == b'}') {
                    return false;
                }
                self.done = self.depth == 0;
            }
            _ if !self.started || self.done => return false,
            b'"' => {
                self.out.push(b);
                self.in_str = true;
                self.str_start = self.out.len();
                self.raw = 0;
                self.cut_at = 0;
                self.pending = None;
                self.after_high = false;
                self.utf8_need = 0;
                self.esc = Esc::None;
                self.cutting = false;
                return true;
            }
            _ => {}
        }
        self.out.push(b);
        true
    }

    /// A byte of a string that is (so far) copied whole.
    fn string_byte(&mut self, b: u8) -> bool {
        let p = self.raw;
        match self.esc {
            Esc::None if b == b'"' => {
                self.out.push(b);
                self.in_str = false;
                return true;
            }
            Esc::None => {
                if self.utf8_need > 0 && b & 0xC0 == 0x80 {
                    self.utf8_need -= 1;
                } else {
                    // A broken sequence is left as it is; only a complete one must not be split.
                    self.utf8_need = 0;
                    if b == b'\\' {
                        if self.after_high {
                            self.pending = Some(p);
                        } else {
                            self.safe_at(p);
                        }
                        self.esc = Esc::Backslash;
                    } else {
                        self.after_high = false;
                        self.safe_at(p);
                        self.utf8_need = match b {
                            0xC0..=0xDF => 1,
                            0xE0..=0xEF => 2,
                            0xF0..=0xF7 => 3,
                            _ => 0,
                        };
                    }
                }
            }
            _ => match self.escape_byte(b) {
                Err(()) => return false,
                Ok(None) => {}
                Ok(Some(value)) => self.escape_done(value),
            },
        }
        self.raw += 1;
        self.out.push(b);
        if self.raw > self.max_string as u64 && self.pending.is_none() {
            self.cutting = true;
            self.out.truncate(self.str_start + self.cut_at);
        }
        true
    }

    /// A byte of a string being cut: only its end and the validity of its escapes matter.
    fn skip_byte(&mut self, b: u8) -> bool {
        match self.esc {
            Esc::None if b == b'"' => {
                self.out.extend_from_slice("… (".as_bytes());
                self.out.extend_from_slice(self.raw.to_string().as_bytes());
                self.out.extend_from_slice(b" bytes)\"");
                self.cut += 1;
                self.in_str = false;
                return true;
            }
            Esc::None => {
                if b == b'\\' {
                    self.esc = Esc::Backslash;
                }
            }
            _ => {
                if self.escape_byte(b).is_err() {
                    return false;
                }
            }
        }
        self.raw += 1;
        true
    }

    /// Advances an escape sequence; Ok(Some(v)) when it ends, with the value of a `\u` escape.
    fn escape_byte(&mut self, b: u8) -> Result<Option<Option<u16>>, ()> {
        match self.esc {
            Esc::None => Err(()),
            Esc::Backslash => match b {
                b'u' => {
                    self.esc = Esc::Hex { left: 4, value: 0 };
                    Ok(None)
                }
                c if simple_escape(c) => {
                    self.esc = Esc::None;
                    Ok(Some(None))
                }
                _ => Err(()),
            },
            Esc::Hex { left, value } => {
                let d = (b as char).to_digit(16).ok_or(())? as u16;
                let value = value << 4 | d;
                if left == 1 {
                    self.esc = Esc::None;
                    Ok(Some(Some(value)))
                } else {
                    self.esc = Esc::Hex {
                        left: left - 1,
                        value,
                    };
                    Ok(None)
                }
            }
        }
    }

    fn escape_done(&mut self, value: Option<u16>) {
        let high = matches!(value, Some(0xD800..=0xDBFF));
        let low = matches!(value, Some(0xDC00..=0xDFFF));
        if let Some(p) = self.pending.take() {
            if low {
                // The pair is one character: the position between its halves is not a cut.
                self.after_high = false;
                return;
            }
            self.safe_at(p);
        }
        self.after_high = high;
    }

    fn open(&mut self, brace: bool) {
        let (word, bit) = (self.depth / 64, self.depth % 64);
        if word == self.stack.len() {
            self.stack.push(0);
        }
        if brace {
            self.stack[word] |= 1 << bit;
        } else {
            self.stack[word] &= !(1 << bit);
        }
        self.depth += 1;
    }

    /// Whether the innermost open bracket was `{`; None when nothing is open.
    fn close(&mut self) -> Option<bool> {
        self.depth = self.depth.checked_sub(1)?;
        let (word, bit) = (self.depth / 64, self.depth % 64);
        Some(self.stack[word] >> bit & 1 == 1)
    }

    fn safe_at(&mut self, p: u64) {
        if p <= self.max_string as u64 {
            self.cut_at = p as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Hands out the data in reads of the given sizes, cycling.
    struct Chunky<'a> {
        data: &'a [u8],
        sizes: &'a [usize],
        i: usize,
    }

    impl Read for Chunky<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.i % self.sizes.len()];
            self.i += 1;
            let n = size.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn chunked(
        data: &[u8],
        sizes: &[usize],
        max_string: usize,
        max_out: usize,
    ) -> Option<Shortened> {
        let r = Chunky { data, sizes, i: 0 };
        shorten(r, data.len() as u64, max_string, max_out).unwrap()
    }

    const READ_SIZES: [&[usize]; 6] = [&[1], &[2], &[3], &[7], &[4096], &[1, 2, 3, 7, 4096, 5]];

    fn marker(n: usize) -> String {
        format!("… ({n} bytes)")
    }

    /// Raw (escaped) length of a string's content as serde_json writes it.
    fn raw_len(s: &str) -> usize {
        serde_json::to_string(s).unwrap().len() - 2
    }

    /// Checks one string of the output against the original, whose content was `orig_raw` bytes
    /// long in the input: equal, or a prefix of it plus the marker. Returns the kept part.
    fn check_raw_string<'a>(
        orig: &str,
        orig_raw: usize,
        got: &'a str,
        max_string: usize,
    ) -> &'a str {
        if orig_raw <= max_string {
            assert_eq!(got, orig);
            return got;
        }
        let m = marker(orig_raw);
        let kept = got
            .strip_suffix(m.as_str())
            .unwrap_or_else(|| panic!("{got:?} lacks {m:?}"));
        assert!(
            orig.starts_with(kept),
            "{kept:?} is not a prefix of {orig:?}"
        );
        kept
    }

    /// The same for input that serde_json wrote, so that raw lengths can be recomputed.
    fn check_string(orig: &str, got: &str, max_string: usize) {
        let kept = check_raw_string(orig, raw_len(orig), got, max_string);
        assert!(raw_len(kept) <= max_string);
    }

    #[test]
    fn small_line_is_copied_byte_identical() {
        let line = br#" {"type":"system","n":[1, 2.5e3, true, null, {"k":"v\n\u00e9"}], "s":""} "#;
        let s = shorten_bytes(line, 64, 1 << 20).unwrap();
        assert_eq!(s.cut, 0);
        assert_eq!(s.json, line);
        let s = chunked(line, &[1], 64, 1 << 20).unwrap();
        assert_eq!(s.json, line);
    }

    fn huge_text(len: usize) -> String {
        let piece = "Some text,\nwith \"quotes\", é, 😀, 中文 and a \\ backslash.\t";
        let mut t = String::with_capacity(len + piece.len());
        while t.len() < len {
            t.push_str(piece);
        }
        t
    }

    #[test]
    fn huge_assistant_text_is_cut_and_the_rest_kept() {
        let text = huge_text(3 << 20);
        let v = serde_json::json!({
            "type": "assistant",
            "message": {"id": "m", "content": [{"type": "text", "text": text}]},
            "parent_tool_use_id": null,
        });
        let line = serde_json::to_vec(&v).unwrap();
        let max_string = 64 * 1024;
        let s = shorten_bytes(&line, max_string, 1 << 20).unwrap();
        assert_eq!(s.cut, 1);
        assert!(s.json.len() < max_string + 200);
        let got: Value = serde_json::from_slice(&s.json).unwrap();
        let got_text = got["message"]["content"][0]["text"].as_str().unwrap();
        check_string(&text, got_text, max_string);
        assert!(got_text.len() > max_string / 2);
        assert_eq!(got["type"], "assistant");
        assert_eq!(got["message"]["id"], "m");
        assert_eq!(got["message"]["content"][0]["type"], "text");
        assert_eq!(got["message"]["content"].as_array().unwrap().len(), 1);
        assert_eq!(got["parent_tool_use_id"], Value::Null);
        assert_eq!(got.as_object().unwrap().len(), 3);
        assert_eq!(chunked(&line, &[4096, 7, 1], max_string, 1 << 20), Some(s));
    }

    #[test]
    fn result_line_keeps_what_follows_the_huge_result() {
        let text = huge_text(1 << 20);
        let v = serde_json::json!({
            "type": "result",
            "subtype": "success",
            "is_error": false,
            "result": text,
            "total_cost_usd": 0.25,
            "usage": {"input_tokens": 3, "output_tokens": 9},
        });
        let line = serde_json::to_vec(&v).unwrap();
        // Keys sorted: `type` comes after the huge text, as 2.1.332 writes it.
        let at = |k: &str| line.windows(k.len()).position(|w| w == k.as_bytes());
        assert!(at(r#""type":"result""#) > at(r#""result":""#));
        let s = shorten_bytes(&line, 1000, 1 << 20).unwrap();
        assert_eq!(s.cut, 1);
        let got: Value = serde_json::from_slice(&s.json).unwrap();
        assert_eq!(got["type"], "result");
        assert_eq!(got["total_cost_usd"], 0.25);
        assert_eq!(got["usage"]["output_tokens"], 9);
        assert_eq!(got["subtype"], "success");
        check_string(&text, got["result"].as_str().unwrap(), 1000);
    }

    /// Every kind of escape and multibyte character, back to back.
    const HEAVY: &str =
        r#"ab\n\"\\\/\b\f\r\t\u00e9\u4e2d\ud83d\ude00é中😀\ud83d\ude00\ud83d\ude00x\u0041"#;

    #[test]
    fn reads_of_any_size_give_the_same_output_at_every_cut_position() {
        let content = HEAVY.repeat(3);
        let line = format!(r#"{{"k":"{content}","after":[1,"{HEAVY}"]}}"#);
        let orig: Value = serde_json::from_str(&line).unwrap();
        let orig_k = orig["k"].as_str().unwrap();
        let orig_after = orig["after"][1].as_str().unwrap();
        // From 5 on, so that the keys ("after") stay whole and can be looked up.
        for max_string in 5..=content.len() + 2 {
            let s = shorten_bytes(line.as_bytes(), max_string, 1 << 20).unwrap();
            for sizes in READ_SIZES {
                assert_eq!(
                    chunked(line.as_bytes(), sizes, max_string, 1 << 20).as_ref(),
                    Some(&s),
                    "max_string {max_string}, reads {sizes:?}"
                );
            }
            let got: Value = serde_json::from_slice(&s.json).unwrap_or_else(|e| {
                panic!(
                    "max_string {max_string}: {e}: {}",
                    String::from_utf8_lossy(&s.json)
                )
            });
            check_raw_string(
                orig_k,
                content.len(),
                got["k"].as_str().unwrap(),
                max_string,
            );
            check_raw_string(
                orig_after,
                HEAVY.len(),
                got["after"][1].as_str().unwrap(),
                max_string,
            );
            if max_string < content.len() {
                let kept_raw = s.json.windows(3).position(|w| w == "…".as_bytes()).unwrap()
                    - br#"{"k":""#.len();
                assert!(kept_raw <= max_string);
                // Nothing safe was given up: one more unit would not have fitted.
                assert!(kept_raw + 12 > max_string);
            }
            if max_string >= content.len() {
                assert_eq!(s.json, line.as_bytes());
            }
        }
    }

    #[test]
    fn the_kept_part_is_as_long_as_it_safely_can_be() {
        let line = |content: &str| format!(r#"["{content}"]"#);
        let kept = |content: &str, max_string: usize| {
            let s = shorten_bytes(line(content).as_bytes(), max_string, 1 << 20).unwrap();
            let v: Value = serde_json::from_slice(&s.json).unwrap();
            let got = v[0].as_str().unwrap().to_string();
            got[..got.rfind('…').unwrap()].to_string()
        };
        assert_eq!(kept("abcdef", 3), "abc");
        assert_eq!(kept(r"ab\ncd", 3), "ab");
        assert_eq!(kept(r"ab\ncd", 4), "ab\n");
        assert_eq!(kept(r"a\u00e9b", 6), "a");
        assert_eq!(kept(r"a\u00e9b", 7), "aé");
        assert_eq!(kept("aé中b", 2), "a");
        assert_eq!(kept("aé中b", 3), "aé");
        assert_eq!(kept("aé中b", 5), "aé");
        assert_eq!(kept("aé中b", 6), "aé中");
        assert_eq!(kept(r"a\ud83d\ude00b", 12), "a");
        assert_eq!(kept(r"a\ud83d\ude00b", 13), "a😀");
        assert_eq!(kept(r"a\ud83d\ude00\u0041b", 18), "a😀");
        assert_eq!(kept(r"a\ud83d\ude00\u0041b", 19), "a😀A");
    }

    #[test]
    fn lone_surrogates_and_broken_utf8_are_cut_like_anything_else() {
        // Invalid content, copied as it is: the cut must still be chunk-independent, keep a
        // prefix of the raw bytes and never split an escape.
        let content: &[u8] =
            b"a\\ud83d\\nb\\udc00\\ud83d\\ud83d\\ude00\xc3x\x80\x80\xe4\xb8\xad\xf0\x9f\x98";
        let mut line = b"[\"".to_vec();
        line.extend_from_slice(content);
        line.extend_from_slice(b"\",1]");
        for max_string in 0..=content.len() + 1 {
            let s = shorten_bytes(&line, max_string, 1 << 20).unwrap();
            for sizes in READ_SIZES {
                assert_eq!(
                    chunked(&line, sizes, max_string, 1 << 20).as_ref(),
                    Some(&s)
                );
            }
            if max_string >= content.len() {
                assert_eq!(s.json, line);
                continue;
            }
            let m = marker(content.len());
            let tail = format!("{m}\",1]");
            let kept = &s.json[2..s.json.len() - tail.len()];
            assert_eq!(&s.json[s.json.len() - tail.len()..], tail.as_bytes());
            assert!(content.starts_with(kept) && kept.len() <= max_string);
            assert!(
                kept.len() + 12 > max_string,
                "max_string {max_string}: kept {kept:?}"
            );
            let mut i = 0;
            while i < kept.len() {
                i += match kept[i..] {
                    [b'\\', b'u', ..] => 6,
                    [b'\\', ..] => 2,
                    _ => 1,
                };
            }
            assert_eq!(i, kept.len(), "max_string {max_string}: kept {kept:?}");
            let high_then_low =
                kept.ends_with(b"\\ud83d") && content[kept.len()..].starts_with(b"\\ude00");
            assert!(!high_then_low, "max_string {max_string}: kept {kept:?}");
            let next = content[kept.len()];
            assert!(next & 0xC0 != 0x80 || !matches!(kept.last(), Some(0xC0..=0xFF)));
        }
    }

    #[test]
    fn deep_nesting_is_fine() {
        for depth in [1, 63, 64, 65, 200, 100_000] {
            let line = format!("{}{}", "[{\"a\":".repeat(depth), "}]".repeat(depth));
            let line = line.replace(":}", ":1}");
            assert_eq!(
                shorten_bytes(line.as_bytes(), 8, 1 << 24).map(|s| s.json),
                Some(line.clone().into_bytes())
            );
            let mismatched = format!("{}}}", &line[..line.len() - 1]);
            assert_eq!(shorten_bytes(mismatched.as_bytes(), 8, 1 << 24), None);
        }
    }

    #[test]
    fn keys_are_cut_too() {
        let s = shorten_bytes(br#"{"abcdefgh":1,"ab":2}"#, 4, 1 << 20).unwrap();
        assert_eq!(s.cut, 1);
        assert_eq!(s.json, r#"{"abcd… (8 bytes)":1,"ab":2}"#.as_bytes());
    }

    use crate::testutil::Rng;

    fn random_string(rng: &mut Rng, max_len: usize) -> String {
        const CHARS: &[char] = &[
            'a', 'b', 'z', ' ', '"', '\\', '/', '\n', '\t', '\r', '\u{1}', '\u{1f}', '\u{7f}', 'é',
            '中', '😀', '\u{2028}', '\u{ffff}',
        ];
        let len = rng.below(max_len + 1);
        (0..len).map(|_| CHARS[rng.below(CHARS.len())]).collect()
    }

    fn random_value(rng: &mut Rng, depth: usize) -> Value {
        let pick = if depth == 0 {
            rng.below(4)
        } else {
            rng.below(6)
        };
        match pick {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 1),
            2 => serde_json::json!(rng.next_u64() as i64 as f64 / 1e6),
            3 => Value::String(random_string(rng, 60)),
            4 => (0..rng.below(5))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..rng.below(5) {
                    // Short ASCII keys, so that a large enough max_string never cuts them.
                    let key: String = (0..rng.below(5))
                        .map(|_| (b'a' + rng.below(3) as u8) as char)
                        .collect();
                    m.insert(key, random_value(rng, depth - 1));
                }
                Value::Object(m)
            }
        }
    }

    fn same_shape(orig: &Value, got: &Value, max_string: usize) {
        match (orig, got) {
            (Value::String(o), Value::String(g)) => check_string(o, g, max_string),
            (Value::Array(o), Value::Array(g)) => {
                assert_eq!(o.len(), g.len());
                for (o, g) in o.iter().zip(g) {
                    same_shape(o, g, max_string);
                }
            }
            (Value::Object(o), Value::Object(g)) => {
                assert_eq!(o.len(), g.len());
                for (k, o) in o {
                    same_shape(o, &g[k], max_string);
                }
            }
            (o, g) => assert_eq!(o, g),
        }
    }

    #[test]
    fn random_json_stays_valid() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut rounds_with_cuts = 0;
        for round in 0..3000 {
            let mut v = random_value(&mut rng, 4);
            if !v.is_object() && !v.is_array() {
                v = Value::Array(vec![v]);
            }
            let line = if round % 3 == 0 {
                serde_json::to_vec_pretty(&v).unwrap()
            } else {
                serde_json::to_vec(&v).unwrap()
            };
            let max_string = rng.below(48);
            let s = shorten_bytes(&line, max_string, 1 << 20).unwrap();
            let got: Value = serde_json::from_slice(&s.json)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&s.json)));
            if s.cut == 0 {
                assert_eq!(s.json, line);
            } else {
                rounds_with_cuts += 1;
            }
            if max_string >= 4 {
                // Compared with the input as parsed, not with `v`: float parsing is not exact.
                let orig: Value = serde_json::from_slice(&line).unwrap();
                same_shape(&orig, &got, max_string);
            }
            let sizes = [1 + rng.below(9), 1 + rng.below(9), 1 + rng.below(200)];
            assert_eq!(chunked(&line, &sizes, max_string, 1 << 20), Some(s));
        }
        assert!(rounds_with_cuts > 500, "{rounds_with_cuts}");
    }

    #[test]
    fn not_json_is_none() {
        let cases: &[&[u8]] = &[
            b"",
            b"   ",
            b"plain text",
            br#""string""#,
            b"42",
            b"null",
            br#"{"a":[}"#,
            br#"{"a":1"#,
            br#"{"a":1}}"#,
            b"]",
            br#"{"a":"unterminated}"#,
            br#"{"a":"x\"}"#,
            br#"{} x"#,
            br#"{}{}"#,
            br#"[] "s""#,
            br#"["bad \x escape"]"#,
            br#"["bad \u12g4 escape"]"#,
            br#"["cut \u12"]"#,
        ];
        for &case in cases {
            for max_string in [0, 1, 2, 100] {
                assert_eq!(
                    shorten_bytes(case, max_string, 1 << 20),
                    None,
                    "{:?}",
                    String::from_utf8_lossy(case)
                );
                for sizes in READ_SIZES {
                    assert_eq!(chunked(case, sizes, max_string, 1 << 20), None);
                }
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        const ALPHABET: &[u8] =
            b"{}[]\":,\\unbt0123456789abcdefABCDEF \n\xc3\xa9\xf0\x9f\x98\x80\xff";
        let mut rng = Rng(12345);
        for _ in 0..20_000 {
            let len = rng.below(40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(8) == 0 {
                        rng.next_u64() as u8
                    } else {
                        ALPHABET[rng.below(ALPHABET.len())]
                    }
                })
                .collect();
            let max_string = rng.below(10);
            let s = shorten_bytes(&bytes, max_string, 64);
            assert_eq!(chunked(&bytes, &[1 + rng.below(5)], max_string, 64), s);
        }
    }

    #[test]
    fn too_much_output_is_none() {
        let many: String = format!("[{}1]", "\"ab\",".repeat(10_000));
        assert_eq!(
            shorten_bytes(many.as_bytes(), 64, many.len()).map(|s| s.json),
            Some(many.clone().into_bytes())
        );
        assert_eq!(shorten_bytes(many.as_bytes(), 64, many.len() - 1), None);
        assert_eq!(chunked(many.as_bytes(), &[4096], 64, 1000), None);
        // Cut strings count with their marker.
        let line = format!(r#"["{}"]"#, "x".repeat(100));
        let s = shorten_bytes(line.as_bytes(), 10, 1 << 20).unwrap();
        assert_eq!(
            shorten_bytes(line.as_bytes(), 10, s.json.len()),
            Some(s.clone())
        );
        assert_eq!(shorten_bytes(line.as_bytes(), 10, s.json.len() - 1), None);
    }

    #[test]
    fn early_eof_is_an_error() {
        let line = br#"{"a":"b"}"#;
        let r = Chunky {
            data: line,
            sizes: &[3],
            i: 0,
        };
        let e = shorten(r, line.len() as u64 + 5, 64, 1 << 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn reads_exactly_len_bytes() {
        // The next line must not leak in: a reader positioned on a line reads only that line.
        let data = b"{\"a\":1}\n{\"b\":2}\n";
        let r = Chunky {
            data,
            sizes: &[4096],
            i: 0,
        };
        let s = shorten(r, 7, 64, 1 << 20).unwrap().unwrap();
        assert_eq!(s.json, b"{\"a\":1}");
    }

    #[test]
    fn shortens_a_line_in_a_file() {
        let text = huge_text(200_000);
        let first = b"{\"type\":\"system\"}\n";
        let second = serde_json::to_vec(
            &serde_json::json!({"type": "result", "result": text, "total_cost_usd": 1.5}),
        )
        .unwrap();
        let path = std::env::temp_dir().join(format!(
            "claude-tasks-longline-{}.jsonl",
            std::process::id()
        ));
        let mut data = first.to_vec();
        data.extend_from_slice(&second);
        data.extend_from_slice(b"\n{\"type\":\"user\"}\n");
        std::fs::write(&path, &data).unwrap();
        let got = shorten_file(
            &path,
            first.len() as u64,
            second.len() as u64,
            4096,
            1 << 20,
        );
        std::fs::remove_file(&path).unwrap();
        let s = got.unwrap().unwrap();
        assert_eq!(s.cut, 1);
        let v: Value = serde_json::from_slice(&s.json).unwrap();
        assert_eq!(v["total_cost_usd"], 1.5);
        check_string(&text, v["result"].as_str().unwrap(), 4096);
    }
}
