//! JSON strings, ids and times, written the way the CLI writes them.

use std::fs::File;
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

/// A JSON string literal.
pub fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_js(&mut out, s);
    out
}

/// `s` as a JSON string, escaped as serde_json escapes it, appended to `out`. Runs of plain
/// bytes are found by the backend's own scanner (`scan::find_special`) and copied whole; the
/// characters escaped are all ASCII, so never inside a multibyte one.
pub fn push_js(out: &mut String, s: &str) {
    out.push('"');
    push_js_body(out, s);
    out.push('"');
}

/// The inside of a JSON string literal (escaped, without its quotes).
pub fn push_js_body(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    let b = s.as_bytes();
    let mut run = 0;
    while let Some(i) = claude_tasks::transcript::scan::find_special(b, run) {
        out.push_str(&s[run..i]);
        match b[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            c => {
                let _ = write!(out, "\\u{:04x}", c);
            }
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
}

/// Unique-looking ids for uuids and message ids: seeded once from /dev/urandom (opening it per
/// line cost a third of a flood's time), then xorshift. Only uniqueness matters here.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        let mut seed = [0u8; 8];
        let ok = File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .is_ok();
        x = if ok {
            u64::from_le_bytes(seed)
        } else {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
                ^ u64::from(std::process::id()) << 32
        } | 1;
    }
    let mut buf = [0u8; N];
    for b in &mut buf {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    STATE.store(x, Ordering::Relaxed);
    buf
}

pub fn hex(n_bytes: usize) -> String {
    let mut s = String::new();
    while s.len() < n_bytes * 2 {
        for b in random_bytes::<16>() {
            s.push_str(&format!("{b:02x}"));
        }
    }
    s.truncate(n_bytes * 2);
    s
}

pub fn uuid() -> String {
    let mut s = String::with_capacity(36);
    push_uuid(&mut s);
    s
}

/// Written digit by digit: a flood writes one per line, and formatting each byte through
/// `format!` made ids the fake's largest cost.
pub fn push_uuid(s: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[usize::from(x >> 4)] as char);
        s.push(HEX[usize::from(x & 0xf)] as char);
    }
}

/// `2026-11-20T23:52:31.971Z`, without a date crate.
pub fn now_iso() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Splits `text` into pieces of about `size` bytes on char boundaries, like streamed deltas.
pub fn chunks(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size.max(1)).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_escapes_like_serde_json() {
        let mut all_controls = String::new();
        for c in 0u8..0x20 {
            all_controls.push(char::from(c));
        }
        for s in [
            "",
            "plain",
            "quote \" backslash \\ slash / del \u{7f}",
            "é 中 😀 \u{2028}",
            "line\nline\r\n\ttab",
            &all_controls,
        ] {
            assert_eq!(js(s), serde_json::Value::from(s).to_string(), "{s:?}");
        }
    }
}
