//! Shortened copies of over-long transcript lines.
//!
//! The framer keeps only a prefix of a line longer than its cap, which loses everything after
//! the huge part (a `result` line's cost comes after its huge text). So such a line is copied,
//! in bounded memory, with every long string cut, which keeps the copy valid JSON that the
//! normal parser can read: on the way, as a view reads it (`Cutter`), or re-read from the
//! transcript file, the truth (`cut_long_strings_in_file`).

use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::transcript::scan::simple_escape;

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
fn cut_long_strings(
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
fn cut_long_strings_in_bytes(bytes: &[u8], max_string: usize, max_out: usize) -> Option<Shortened> {
    let mut c = Cutter::new(max_string, max_out);
    c.feed(bytes);
    c.finish()
}

/// `cut_long_strings` fed piece by piece, for a line that passes by anyway: the view's framer
/// hands over the bytes of an over-long line as it reads them, so the line need not be read a
/// second time (for a 80 MB answer that second read came after everything else, and the
/// buffer's last lines waited 20–35 ms for it).
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

    /// As `cut_long_strings`'s result: None when the line is not a JSON object or array, or its
    /// copy would be too large.
    pub fn finish(self) -> Option<Shortened> {
        if self.rejected {
            return None;
        }
        self.m.finish()
    }
}

/// Convenience: open `path`, seek to `offset`, cut the long strings of `len` bytes.
pub fn cut_long_strings_in_file(
    path: &Path,
    offset: u64,
    len: u64,
    max_string: usize,
    max_out: usize,
) -> io::Result<Option<Shortened>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    cut_long_strings(f, len, max_string, max_out)
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
        let end = crate::transcript::scan::skip_escaped(chunk, i);
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
mod tests;
