//! Splits a byte stream (the CLI's transcript, read in arbitrary chunks) into lines.
//!
//! There is no fixed line-length limit: stream-json lines can be megabytes long. Memory stays
//! bounded all the same, because a line longer than `max_line` keeps only its first `max_line`
//! bytes and only counts the rest.

/// The default cap on the stored part of one line. A longer line is copied with its long strings
/// cut as it is read (`longline`), so this bounds memory, not what is understood.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// One line of the stream, without its `\n` and without a `\r` just before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line's bytes, or its first `max_line` bytes when it is longer; not necessarily UTF-8.
    pub bytes: Vec<u8>,
    /// The full length of the line (without `\n` / `\r`), even when `bytes` is cut short.
    pub total_len: usize,
    /// File offset of the line's first byte.
    pub offset: u64,
}

impl Line {
    pub fn truncated(&self) -> bool {
        self.total_len > self.bytes.len()
    }

    pub fn as_ref(&self) -> LineRef<'_> {
        LineRef {
            bytes: &self.bytes,
            total_len: self.total_len,
            offset: self.offset,
        }
    }
}

/// A line lent by `Framer::push_with`: straight from the chunk read when it lies inside it, so
/// the lines of a flood cost no allocation each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRef<'a> {
    pub bytes: &'a [u8],
    pub total_len: usize,
    pub offset: u64,
}

impl LineRef<'_> {
    pub fn truncated(&self) -> bool {
        self.total_len > self.bytes.len()
    }

    pub fn to_line(&self) -> Line {
        Line {
            bytes: self.bytes.to_vec(),
            total_len: self.total_len,
            offset: self.offset,
        }
    }
}

/// A held partial line larger than this is freed once it is complete rather than kept for reuse.
const KEEP_PARTIAL: usize = 64 * 1024;

/// What `Framer::push_pieces` hands over.
pub enum Piece<'a> {
    /// A complete line.
    Line(LineRef<'a>),
    /// Raw bytes of a line longer than the cap (`\r` included), in order: all of them, from
    /// the line's first byte, before the line itself comes as a `Line`, which is truncated
    /// unless only a final `\r` took it past the cap.
    Long(&'a [u8]),
}

/// Incremental line splitter; feed it chunks in file order.
#[derive(Debug)]
pub struct Framer {
    max_line: usize,
    /// Stored prefix of the incomplete line (never more than `max_line` bytes).
    partial: Vec<u8>,
    /// Raw length of the incomplete line so far, stored or not, a trailing `\r` included.
    partial_len: usize,
    /// Whether the last raw byte of the incomplete line is `\r`: it must be known even when
    /// that byte was not stored, and even when the `\n` arrives in a later chunk.
    partial_cr: bool,
    /// Offset of the first byte that does not belong to an emitted line.
    line_start: u64,
}

impl Framer {
    pub fn new(max_line: usize, start_offset: u64) -> Self {
        Framer {
            max_line,
            partial: Vec::new(),
            partial_len: 0,
            partial_cr: false,
            line_start: start_offset,
        }
    }

    /// Appends every line that `chunk` completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Line>) {
        self.push_with(chunk, |l| out.push(l.to_line()));
    }

    /// Hands every line that `chunk` completes to `f`, in order.
    pub fn push_with(&mut self, chunk: &[u8], mut f: impl FnMut(LineRef<'_>)) {
        self.push_pieces(chunk, |p| {
            if let Piece::Line(l) = p {
                f(l)
            }
        });
    }

    /// `push_with`, also handing over every byte of a line longer than `max_line` as it comes
    /// (`Piece::Long`), so that such a line can be understood without reading it again.
    pub fn push_pieces(&mut self, chunk: &[u8], mut f: impl FnMut(Piece<'_>)) {
        let mut rest = chunk;
        while let Some(i) = find_newline(rest) {
            let seg = &rest[..i];
            let raw_len = if self.partial_len == 0 {
                // The common case: the whole line is inside this chunk, so it is lent straight
                // from the chunk.
                if i > self.max_line {
                    f(Piece::Long(seg));
                }
                let content_len = if seg.last() == Some(&b'\r') { i - 1 } else { i };
                f(Piece::Line(LineRef {
                    bytes: &seg[..content_len.min(self.max_line)],
                    total_len: content_len,
                    offset: self.line_start,
                }));
                i
            } else {
                self.append(seg, &mut f);
                let raw_len = self.partial_len;
                self.lend_partial(&mut |l| f(Piece::Line(l)));
                raw_len
            };
            self.line_start += raw_len as u64 + 1;
            rest = &rest[i + 1..];
        }
        self.append(rest, &mut f);
    }

    /// Emits the last line when the stream ended without a final `\n`.
    pub fn finish(&mut self, out: &mut Vec<Line>) {
        self.finish_with(|l| out.push(l.to_line()));
    }

    /// `finish`, lending the line to `f`.
    pub fn finish_with(&mut self, mut f: impl FnMut(LineRef<'_>)) {
        if self.partial_len > 0 {
            let raw_len = self.partial_len;
            self.lend_partial(&mut f);
            self.line_start += raw_len as u64;
        }
    }

    /// Bytes held in memory for the incomplete line.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// File offset just after the last byte pushed.
    pub fn offset(&self) -> u64 {
        self.line_start + self.partial_len as u64
    }

    fn append(&mut self, seg: &[u8], f: &mut impl FnMut(Piece<'_>)) {
        let Some(&last) = seg.last() else {
            return;
        };
        let was = self.partial_len;
        let take = self
            .max_line
            .saturating_sub(self.partial.len())
            .min(seg.len());
        if take > 0 {
            let need = self.partial.len() + take;
            if need > self.partial.capacity() {
                // Vec's doubling could overshoot max_line by up to 2x; grow the same way but
                // never past the cap.
                let want = need.max(self.partial.capacity() * 2).min(self.max_line);
                self.partial.reserve_exact(want - self.partial.len());
            }
            self.partial.extend_from_slice(&seg[..take]);
        }
        self.partial_len += seg.len();
        self.partial_cr = last == b'\r';
        if self.partial_len > self.max_line {
            if was <= self.max_line {
                // Past the cap just now: what is stored first, then the rest of `seg`.
                f(Piece::Long(&self.partial));
                f(Piece::Long(&seg[take..]));
            } else {
                f(Piece::Long(seg));
            }
        }
    }

    fn lend_partial(&mut self, f: &mut impl FnMut(LineRef<'_>)) {
        let content_len = self.partial_len - usize::from(self.partial_cr);
        let stored = self.partial.len().min(content_len);
        f(LineRef {
            bytes: &self.partial[..stored],
            total_len: content_len,
            offset: self.line_start,
        });
        if self.partial.capacity() > KEEP_PARTIAL {
            self.partial = Vec::new();
        } else {
            self.partial.clear();
        }
        self.partial_len = 0;
        self.partial_cr = false;
    }
}

/// Position of the first `\n`: the framer's whole cost in a flood, so it is the `memchr`
/// crate's, which scans 16 or 32 bytes at a time (SSE2, AVX2 where the CPU has it).
#[inline]
fn find_newline(hay: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', hay)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::Rng;

    fn frame_all(data: &[u8], max_line: usize, start: u64, cuts: &[usize]) -> Vec<Line> {
        crate::testutil::frame_chunked(data, cuts, max_line, start)
    }

    /// The obvious, slow reference implementation.
    fn reference(data: &[u8], max_line: usize, start: u64) -> Vec<Line> {
        let mut out = Vec::new();
        let mut off = 0usize;
        let mut pieces: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        if data.last() == Some(&b'\n') || data.is_empty() {
            pieces.pop();
        }
        for p in pieces {
            let content = p.strip_suffix(b"\r").unwrap_or(p);
            out.push(Line {
                bytes: content[..content.len().min(max_line)].to_vec(),
                total_len: content.len(),
                offset: start + off as u64,
            });
            off += p.len() + 1;
        }
        out
    }

    #[test]
    fn simple_lines_and_offsets() {
        let out = frame_all(b"ab\ncde\n\nf", MAX_LINE, 100, &[]);
        let got: Vec<(&[u8], usize, u64)> = out
            .iter()
            .map(|l| (l.bytes.as_slice(), l.total_len, l.offset))
            .collect();
        assert_eq!(
            got,
            vec![
                (&b"ab"[..], 2, 100),
                (&b"cde"[..], 3, 103),
                (&b""[..], 0, 107),
                (&b"f"[..], 1, 108),
            ]
        );
    }

    #[test]
    fn empty_lines_are_lines() {
        let out = frame_all(b"\n\n\n", MAX_LINE, 0, &[1]);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|l| l.bytes.is_empty() && l.total_len == 0));
        assert_eq!(
            out.iter().map(|l| l.offset).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn no_final_newline_only_on_finish() {
        let mut f = Framer::new(MAX_LINE, 0);
        let mut out = Vec::new();
        f.push(b"one\ntwo", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(f.buffered(), 3);
        f.finish(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].bytes, b"two");
        assert_eq!(out[1].offset, 4);
        // finish with nothing pending emits nothing, not an empty line.
        f.finish(&mut out);
        assert_eq!(out.len(), 2);
        assert!(frame_all(b"", MAX_LINE, 0, &[]).is_empty());
        assert_eq!(frame_all(b"x\n", MAX_LINE, 0, &[]).len(), 1);
    }

    #[test]
    fn crlf_is_stripped_even_across_chunks() {
        let data = b"a\r\nb\r\r\n\r\nc\rd\n";
        for cut in 0..=data.len() {
            let out = frame_all(data, MAX_LINE, 0, &[cut]);
            let lines: Vec<&[u8]> = out.iter().map(|l| l.bytes.as_slice()).collect();
            assert_eq!(lines, vec![&b"a"[..], b"b\r", b"", b"c\rd"], "cut at {cut}");
            assert_eq!(out[1].total_len, 2);
        }
        // A lone trailing '\r' without '\n' at the end of the stream is stripped as well.
        let out = frame_all(b"x\r", MAX_LINE, 0, &[1]);
        assert_eq!(out[0].bytes, b"x");
    }

    #[test]
    fn invalid_utf8_is_preserved() {
        let data = b"\xff\xfe\x00ok\xc3\n\xe2\x82\n";
        let out = frame_all(data, MAX_LINE, 0, &[2, 7]);
        assert_eq!(out[0].bytes, b"\xff\xfe\x00ok\xc3");
        assert_eq!(out[1].bytes, b"\xe2\x82");
    }

    #[test]
    fn huge_line_is_counted_not_stored() {
        const MB: usize = 1024 * 1024;
        let max = MB;
        let mut f = Framer::new(max, 10);
        let mut out = Vec::new();
        f.push(b"first\n", &mut out);
        let block = vec![b'x'; 64 * 1024];
        // 50 MB in 64 KiB chunks: the framer never holds more than max_line.
        for _ in 0..(50 * MB / block.len()) {
            f.push(&block, &mut out);
            assert!(f.buffered() <= max);
            assert!(f.partial.capacity() <= max);
        }
        f.push(b"\r\nlast\n", &mut out);
        assert_eq!(out.len(), 3);
        let big = &out[1];
        assert_eq!(big.offset, 16);
        assert_eq!(big.bytes.len(), max);
        assert_eq!(big.total_len, 50 * MB);
        assert!(big.truncated());
        assert!(!out[0].truncated());
        assert_eq!(out[2].offset, 16 + 50 * MB as u64 + 2);
        assert_eq!(out[2].bytes, b"last");
    }

    #[test]
    fn line_of_exactly_max_with_cr_is_not_truncated() {
        let out = frame_all(b"abcd\r\nabcde\r\n", 4, 0, &[5]);
        assert_eq!(out[0].bytes, b"abcd");
        assert!(!out[0].truncated());
        assert_eq!(out[1].bytes, b"abcd");
        assert_eq!(out[1].total_len, 5);
        assert!(out[1].truncated());
    }

    #[test]
    fn find_newline_matches_naive() {
        let mut rng = Rng(7);
        for len in 0..70 {
            for _ in 0..20 {
                let hay: Vec<u8> = (0..len)
                    .map(|_| match rng.below(6) {
                        0 => b'\n',
                        1 => 0x8a, // '\n' | 0x80: must not match
                        2 => 0x0b,
                        _ => rng.next_u64() as u8,
                    })
                    .collect();
                assert_eq!(
                    find_newline(&hay),
                    hay.iter().position(|&b| b == b'\n'),
                    "{hay:?}"
                );
            }
        }
    }

    /// Up to `max_len` bytes drawn from `alphabet`.
    fn random_data(rng: &mut Rng, max_len: usize, alphabet: &[u8]) -> Vec<u8> {
        let len = rng.below(max_len);
        (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect()
    }

    /// Up to 19 read boundaries in `0..=len`, in order.
    fn random_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = (0..rng.below(20)).map(|_| rng.below(len + 1)).collect();
        cuts.sort_unstable();
        cuts
    }

    #[test]
    fn framing_is_independent_of_chunk_boundaries() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..300 {
            let data = random_data(&mut rng, 400, b"ab\n\r\xff\x00{\"");
            let max_line = 1 + rng.below(12);
            let start = rng.below(1000) as u64;
            let expected = reference(&data, max_line, start);
            let whole = frame_all(&data, max_line, start, &[]);
            assert_eq!(whole, expected, "round {round}");
            for _ in 0..10 {
                let cuts = random_cuts(&mut rng, data.len());
                assert_eq!(
                    frame_all(&data, max_line, start, &cuts),
                    expected,
                    "round {round} cuts {cuts:?}"
                );
            }
            // Byte by byte, the worst case.
            let every: Vec<usize> = (1..data.len()).collect();
            assert_eq!(frame_all(&data, max_line, start, &every), expected);
        }
    }

    #[test]
    fn a_long_line_is_handed_over_whole_before_it_comes() {
        let mut rng = Rng(0x1f2e);
        for round in 0..300 {
            let data = random_data(&mut rng, 300, b"ab\n\r");
            let max_line = 1 + rng.below(12);
            let mut cuts = random_cuts(&mut rng, data.len());
            cuts.push(data.len());
            // The raw lines (the last one may lack its '\n') that are longer than the cap.
            let want: Vec<Vec<u8>> = data
                .split_inclusive(|&b| b == b'\n')
                .map(|l| l.strip_suffix(b"\n").unwrap_or(l).to_vec())
                .filter(|l| l.len() > max_line)
                .collect();
            let mut f = Framer::new(max_line, 0);
            let mut long = Vec::new();
            let mut got = Vec::new();
            let mut prev = 0;
            let on = |p: Piece<'_>, long: &mut Vec<u8>, got: &mut Vec<Vec<u8>>| match p {
                Piece::Long(b) => long.extend_from_slice(b),
                Piece::Line(l) => {
                    if !long.is_empty() {
                        // The pieces are the line's raw bytes; only a '\r' may be beyond it.
                        let content = long.strip_suffix(b"\r").unwrap_or(long);
                        assert_eq!(content.len(), l.total_len, "round {round}");
                        assert_eq!(&content[..l.bytes.len()], l.bytes, "round {round}");
                        got.push(std::mem::take(long));
                    } else {
                        assert!(
                            !l.truncated(),
                            "round {round}: a long line without its bytes"
                        );
                    }
                }
            };
            for &c in &cuts {
                f.push_pieces(&data[prev..c], |p| on(p, &mut long, &mut got));
                prev = c;
            }
            f.finish_with(|l| on(Piece::Line(l), &mut long, &mut got));
            assert_eq!(got, want, "round {round} max {max_line} cuts {cuts:?}");
        }
    }
}
