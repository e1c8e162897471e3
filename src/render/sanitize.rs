//! Lines fit for a Neovim buffer: no newlines, no terminal escape sequences, control characters
//! shown as their pictures.

use std::borrow::Cow;

/// A line fit for a Neovim buffer: no newline, no terminal escape sequences, other control
/// characters shown as their Unicode pictures (tabs kept); after a carriage return only what a
/// terminal would show last.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if crate::transcript::scan::is_clean(s.as_bytes()) {
        return Cow::Borrowed(s);
    }
    let s = s.trim_end_matches('\r');
    let s = match s.rfind('\r') {
        Some(i) => &s[i + 1..],
        None => s,
    };
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                Some('[') => {
                    // CSI: parameters and intermediates up to a final byte in @..~.
                    chars.next();
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    // OSC (titles, hyperlinks): up to BEL or ESC \.
                    chars.next();
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                Some(_) => {
                    // nF escapes (charset selection...): intermediates, then one final char.
                    for c in chars.by_ref() {
                        if !('\u{20}'..='\u{2f}').contains(&c) {
                            break;
                        }
                    }
                }
                None => {}
            },
            '\t' => out.push('\t'),
            '\u{7f}' => out.push('␡'),
            c if (c as u32) < 0x20 => {
                out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}
