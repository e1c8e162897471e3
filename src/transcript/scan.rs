//! The byte scans under every JSON string we read and every line we show: where a plain run of
//! string content ends (a `"`, a `\` or a control character) and what it held (all ASCII, any
//! DEL), the skip over a string being cut, and the control-character check of a shown line.
//! This is most of the work per transcript line (the delta parser, the long-line cutter, the
//! renderer, fake-claude's escaping), so it looks at 16 bytes at a time where the CPU allows it,
//! and the ASCII and DEL answers come with the same loads, sparing a separate UTF-8 validation
//! of the common, ASCII, case.

/// Index of the first `"`, `\` or control character (< 0x20) at or after `from`.
#[inline]
pub fn find_special(b: &[u8], from: usize) -> Option<usize> {
    string_run(b, from).map(|r| r.end)
}

/// A run of plain string content, as `string_run` finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Index of the `"`, `\` or control character (< 0x20) that ends it.
    pub end: usize,
    /// Every byte of the run is ASCII.
    pub ascii: bool,
    /// No byte of the run is DEL (0x7f), the one control character a JSON string may hold
    /// raw: with no escape of a control character either, a text needs no sanitizing.
    pub no_del: bool,
}

/// From `from`: where the plain run ends (`find_special`), whether it was all ASCII, and
/// whether it held a DEL.
#[inline]
pub fn string_run(b: &[u8], from: usize) -> Option<Run> {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::string_run(b, from)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let end = swar_find_special(b, from)?;
        Some(run_of(b, from, end))
    }
}

/// The `Run` of `b[from..end]`, byte by byte.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn run_of(b: &[u8], from: usize, end: usize) -> Run {
    Run {
        end,
        ascii: b[from..end].is_ascii(),
        no_del: !b[from..end].contains(&0x7f),
    }
}

/// Whether `s` has no control character other than tabs (bytes below 0x20, and 0x7f): a line
/// that goes into the buffer as it is. Every shown line is checked.
#[inline]
pub fn is_clean(s: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::is_clean(s)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        !s.iter().any(|&c| is_unclean(c))
    }
}

/// The letter of a two-byte JSON escape (`\n`, `\"`, ...).
#[inline]
pub fn simple_escape(c: u8) -> bool {
    matches!(c, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')
}

/// Inside a JSON string whose content is not kept, from `from`: index of the first `"` or of
/// the first `\` that does not begin a complete two-byte escape (a `\u` escape, an invalid one,
/// or one cut by the end of `b`); the two-byte escapes before it are passed over. None when `b`
/// ends first. A long text has an escape on every line (its `\n`), so they are passed over
/// inside the vector scan (64-byte blocks): a search started again after each cost as much as
/// the scan itself.
#[inline]
pub fn skip_escaped(b: &[u8], from: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::skip_escaped(b, from)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        skip_escaped_bytes(b, from)
    }
}

/// `skip_escaped` a byte at a time, from `i` on: the tail of the vector scan.
#[inline]
fn skip_escaped_bytes(b: &[u8], mut i: usize) -> Option<usize> {
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => return Some(i),
            b'\\' if b.get(i + 1).copied().is_some_and(simple_escape) => i += 2,
            b'\\' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// A byte `is_clean` refuses.
#[inline]
pub fn is_unclean(c: u8) -> bool {
    (c < 0x20 && c != b'\t') || c == 0x7f
}

#[inline]
fn is_special(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

/// Eight bytes at a time in a `u64`, for CPUs without the 16-byte path.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn swar_find_special(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().ok()?);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        // High bit of each byte that is zero (resp. below 0x20). Borrows only carry past a
        // hit, towards later bytes, so the lowest flagged byte is always a real one.
        let hits = (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | w.wrapping_sub(ONES * 0x20) & !w)
            & HIGH;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| is_special(c))
        .map(|p| i + p)
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };

    #[inline]
    pub fn is_clean(s: &[u8]) -> bool {
        if s.len() < 16 {
            return !s.iter().any(|&c| super::is_unclean(c));
        }
        // SAFETY: as in `string_run`: SSE2 always exists on x86_64, and each unaligned load
        // reads 16 bytes inside `s`: `i..i + 16` by the loop condition, and the last 16.
        unsafe {
            let control = _mm_set1_epi8(0x1f);
            let tab = _mm_set1_epi8(b'\t' as i8);
            let del = _mm_set1_epi8(0x7f);
            let bad = |at: usize| {
                let v = _mm_loadu_si128(s.as_ptr().add(at).cast::<__m128i>());
                let below = _mm_cmpeq_epi8(_mm_min_epu8(v, control), v);
                let bad = _mm_or_si128(
                    _mm_andnot_si128(_mm_cmpeq_epi8(v, tab), below),
                    _mm_cmpeq_epi8(v, del),
                );
                _mm_movemask_epi8(bad) != 0
            };
            let mut i = 0;
            while i + 16 <= s.len() {
                if bad(i) {
                    return false;
                }
                i += 16;
            }
            // The rest, as the last 16 bytes (overlapping what was checked): a byte loop over
            // up to 15 bytes cost more than the whole vector part of a usual line.
            i == s.len() || !bad(s.len() - 16)
        }
    }

    #[inline]
    pub fn skip_escaped(b: &[u8], from: usize) -> Option<usize> {
        let mut i = from;
        // The block's first byte is the letter of an escape begun at the end of the last one.
        let mut letter = false;
        // SAFETY: as in `string_run`: SSE2 always exists on x86_64, and the four unaligned loads
        // read `i..i + 64`, inside `b` by the loop condition.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let hits = |at: usize| {
                let v = _mm_loadu_si128(b.as_ptr().add(at).cast::<__m128i>());
                let h = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
                u64::from(_mm_movemask_epi8(h) as u32)
            };
            // 64 bytes a block: a long text has an escape about every 80 bytes, so most blocks
            // have one hit or none.
            while i + 64 <= b.len() {
                let mut m = hits(i) | hits(i + 16) << 16 | hits(i + 32) << 32 | hits(i + 48) << 48;
                m &= !u64::from(letter);
                letter = false;
                while m != 0 {
                    let k = i + m.trailing_zeros() as usize;
                    if b[k] == b'"' || !b.get(k + 1).copied().is_some_and(super::simple_escape) {
                        return Some(k);
                    }
                    // Passed over: the backslash and its letter, which may be a `"` or a `\\`.
                    let past = k + 2 - i;
                    if past >= 64 {
                        letter = past == 65;
                        m = 0;
                    } else {
                        m &= !((1u64 << past) - 1);
                    }
                }
                i += 64;
            }
        }
        super::skip_escaped_bytes(b, i + usize::from(letter))
    }

    #[inline]
    pub fn string_run(b: &[u8], from: usize) -> Option<super::Run> {
        let mut i = from;
        // Of the bytes passed so far: high bits (bits 0-15) and DELs (bits 16-31).
        let mut seen = 0u32;
        let run = |end: usize, seen: u32| super::Run {
            end,
            ascii: seen & 0xffff == 0,
            no_del: seen >> 16 == 0,
        };
        // SAFETY: SSE2 is part of the x86_64 baseline, so these instructions always exist; each
        // load reads the 16 bytes at `i..i + 16`, which the loop condition keeps inside `b`, and
        // `_mm_loadu_si128` has no alignment requirement.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let control = _mm_set1_epi8(0x1f);
            let del = _mm_set1_epi8(0x7f);
            while i + 16 <= b.len() {
                let v = _mm_loadu_si128(b.as_ptr().add(i).cast::<__m128i>());
                // min(v, 0x1f) == v exactly for the bytes below 0x20 (an unsigned compare).
                let hits = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                    _mm_cmpeq_epi8(_mm_min_epu8(v, control), v),
                );
                let m = _mm_movemask_epi8(hits) as u32;
                let h = _mm_movemask_epi8(v) as u32
                    | (_mm_movemask_epi8(_mm_cmpeq_epi8(v, del)) as u32) << 16;
                if m != 0 {
                    let below = (1u32 << m.trailing_zeros()) - 1;
                    seen |= h & (below | below << 16);
                    return Some(run(i + m.trailing_zeros() as usize, seen));
                }
                seen |= h;
                i += 16;
            }
        }
        for (k, &c) in b.get(i..)?.iter().enumerate() {
            if super::is_special(c) {
                return Some(run(i + k, seen));
            }
            seen |= u32::from(c >> 7) | u32::from(c == 0x7f) << 16;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    fn naive(b: &[u8], from: usize) -> Option<Run> {
        let end = from + b.get(from..)?.iter().position(|&c| is_special(c))?;
        Some(run_of(b, from, end))
    }

    #[test]
    fn every_byte_value_at_every_position_and_start() {
        for len in 0..40 {
            for at in 0..len {
                for c in 0..=255u8 {
                    let mut b = vec![b'a'; len];
                    b[at] = c;
                    for from in 0..=len + 1 {
                        assert_eq!(
                            string_run(&b, from),
                            naive(&b, from),
                            "{len} {at} {c} {from}"
                        );
                        assert_eq!(
                            swar_find_special(&b, from),
                            naive(&b, from).map(|r| r.end),
                            "swar {len} {at} {c} {from}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn is_clean_agrees_with_the_byte_by_byte_check() {
        let reference = |b: &[u8]| !b.iter().any(|&x| is_unclean(x));
        for len in 1..=40 {
            for pos in 0..len {
                for v in 0..=255u8 {
                    let mut line = vec![b'a'; len];
                    line[pos] = v;
                    assert_eq!(
                        is_clean(&line),
                        reference(&line),
                        "{v:#x} at {pos} of {len}"
                    );
                }
            }
        }
        assert!(is_clean(b""));
        let mut rng = Rng(42);
        for _ in 0..20_000 {
            let n = rng.below(60);
            let line: Vec<u8> = (0..n)
                .map(|_| match rng.below(4) {
                    0 => rng.next_u64() as u8,
                    1 => b'\t',
                    _ => b'a' + rng.below(26) as u8,
                })
                .collect();
            assert_eq!(is_clean(&line), reference(&line));
        }
    }

    #[test]
    fn skip_escaped_agrees_with_the_byte_by_byte_scan() {
        // Escapes at every offset of a 16-byte block and across block edges, chunk ends
        // inside an escape, escaped quotes and backslashes, `\u` and invalid escapes.
        let mut rng = Rng(0x5c1b);
        let pick = |rng: &mut Rng| match rng.below(16) {
            0 | 1 => b'\\',
            2 => b'"',
            3 => b'n',
            4 => b'u',
            5 => b'x',
            _ => b'a' + rng.below(26) as u8,
        };
        for _ in 0..50_000 {
            let len = rng.below(300);
            let b: Vec<u8> = (0..len).map(|_| pick(&mut rng)).collect();
            let from = rng.below(len + 1);
            assert_eq!(
                skip_escaped(&b, from),
                skip_escaped_bytes(&b, from),
                "{:?} from {from}",
                String::from_utf8_lossy(&b)
            );
        }
        // `\"`, `\\` and `\n` escapes whose letters land on every block edge, then a quote.
        for shift in 0..64 {
            let mut b = vec![b'a'; shift];
            for _ in 0..40 {
                b.extend_from_slice(br#"\"\\\n"#);
            }
            b.push(b'"');
            assert_eq!(skip_escaped(&b, 0), Some(b.len() - 1), "shift {shift}");
        }
    }

    #[test]
    fn random_text_with_high_bytes_and_specials() {
        let mut rng = Rng(0x5ca9);
        // Bytes drawn so that runs are long, high bytes common and specials rare.
        let pick = |rng: &mut Rng| match rng.below(100) {
            0 => b'"',
            1 => b'\\',
            2 => rng.below(0x20) as u8,
            3 => 0x7f,
            4..=12 => 0x80 | rng.below(0x80) as u8,
            _ => 0x20 + rng.below(0x5f) as u8,
        };
        for _ in 0..20_000 {
            let len = rng.below(200);
            let b: Vec<u8> = (0..len).map(|_| pick(&mut rng)).collect();
            let from = rng.below(len + 2);
            assert_eq!(string_run(&b, from), naive(&b, from), "{b:?} from {from}");
            assert_eq!(swar_find_special(&b, from), naive(&b, from).map(|r| r.end));
        }
    }
}
