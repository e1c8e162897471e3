//! Text as a buffer shows it: the longest line shown, and the cuts that make text fit a line
//! (to a number of characters or bytes, to its first line).

use std::borrow::Cow;

/// Bytes of one line shown at most; the rest is counted in a `… (N bytes)` marker. A longer line
/// (an answer without newlines, a minified file) would make every redraw slow, and a growing one
/// would be sent again and again while it streams.
pub const MAX_SHOWN_LINE: usize = 16 * 1024;

/// The first non-blank line of `s`, trimmed.
pub fn first_line(s: &str) -> &str {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// The first non-blank line of `s`, trimmed, control characters as spaces, at most `max`
/// characters; `…` marks anything cut (more characters or more lines).
pub fn one_line(s: &str, max: usize) -> String {
    let mut lines = s.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    let more_lines = lines.next().is_some();
    let mut out = String::with_capacity(first.len().min(max * 4));
    let mut count = 0;
    let mut cut = more_lines;
    for c in first.chars() {
        if count == max {
            cut = true;
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
        count += 1;
    }
    if cut {
        if count == max {
            out.pop();
        }
        out.push('…');
    }
    out
}

/// A short title for a prompt: its first non-blank line, at most `max` characters, `…` after
/// them when it is longer.
pub fn title_of(prompt: &str, max: usize) -> String {
    let line = first_line(prompt);
    let mut out: String = line.chars().take(max).collect();
    if line.chars().count() > max {
        out.push('…');
    }
    out
}

/// `s` cut to at most `max` characters, the last of them `…` when it is cut.
pub fn cut_chars(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some(_) => {
            let cut: String = s.chars().take(max.saturating_sub(1)).collect();
            Cow::Owned(cut + "…")
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary, `…` after them when it is cut.
pub fn cut_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_first_nonblank_line_shortened() {
        assert_eq!(title_of("\n  fix the test \nmore", 40), "fix the test");
        assert_eq!(title_of("abcdef", 3), "abc…");
        assert_eq!(title_of("   ", 3), "");
    }
}
