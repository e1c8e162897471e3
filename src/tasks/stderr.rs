//! The CLI's stderr as the reason a run failed: when the CLI ends without a `result` line (a
//! flag it rejects, a crash), what it printed last is all the user can go by.

use std::borrow::Cow;

use crate::render::{sanitize, MAX_STDERR_LINES};
use crate::text::one_line;

/// How much of the end of a run's stderr is read.
pub(super) const TAIL_BYTES: u64 = 8 * 1024;
/// The longest stderr line kept, in characters.
const MAX_LINE_CHARS: usize = 300;

/// The last non-blank lines of `tail` (the end of a run's stderr), oldest first: trimmed,
/// without terminal escapes or control characters, each cut short, at most `MAX_STDERR_LINES`.
/// When the read began inside a line (`cut`), that line's end is dropped if others follow, and
/// shown after `…` if it is all there is.
pub(super) fn last_lines(tail: &[u8], cut: bool) -> Vec<String> {
    let text = String::from_utf8_lossy(tail);
    let mut lines: Vec<Cow<str>> = text.split('\n').map(Cow::Borrowed).collect();
    if cut {
        let others = lines.iter().skip(1).any(|l| !l.trim().is_empty());
        if others {
            lines.remove(0);
        } else if let Some(first) = lines.first_mut() {
            *first = Cow::Owned(format!("…{first}"));
        }
    }
    let mut out: Vec<String> = lines
        .iter()
        .rev()
        .map(|l| one_line(sanitize(l).trim(), MAX_LINE_CHARS))
        .filter(|l| !l.is_empty())
        .take(MAX_STDERR_LINES)
        .collect();
    out.reverse();
    out
}

/// The line that says what went wrong: the last one that speaks of an error (a Node.js stack
/// trace ends with its frames, not its message), else the last line.
fn key_line(lines: &[String]) -> Option<&str> {
    lines
        .iter()
        .rev()
        .find(|l| l.to_ascii_lowercase().contains("error"))
        .or(lines.last())
        .map(String::as_str)
}

/// `why`, followed by what the CLI said on stderr when it said anything.
pub(super) fn explain(why: Option<String>, lines: &[String]) -> Option<String> {
    match (why, key_line(lines)) {
        (Some(why), Some(line)) => Some(format!("{why}: {line}")),
        (why, _) => why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_lines_trimmed_sanitized_and_bounded() {
        let tail = b"ignored partial line\nfirst\n\n  \x1b[31merror:\x1b[0m option '--permission-mode <mode>' argument 'bogus' is invalid.\r\n\tbell\x07\n";
        let lines = last_lines(tail, true);
        assert_eq!(
            lines,
            [
                "first",
                "error: option '--permission-mode <mode>' argument 'bogus' is invalid.",
                "bell␇",
            ]
        );
        assert_eq!(last_lines(b"only\n", true), ["…only"]);
        assert_eq!(last_lines(b"whole\nline\n", false), ["whole", "line"]);
        assert!(last_lines(b"\n\n  \n", false).is_empty());
        let many: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let lines = last_lines(many.as_bytes(), false);
        assert_eq!(lines.len(), MAX_STDERR_LINES);
        assert_eq!(lines.last().map(String::as_str), Some("line 49"));
        let long = format!("{}\n", "x".repeat(10_000));
        assert!(last_lines(long.as_bytes(), false)[0].chars().count() <= MAX_LINE_CHARS + 1);
        // Not UTF-8: still lines.
        assert_eq!(last_lines(b"bad \xff byte\n", false), ["bad \u{fffd} byte"]);
    }

    #[test]
    fn the_error_line_explains_the_failure() {
        let stack: Vec<String> = [
            "file:///x/cli.js:12",
            "Error: spawn ENOENT",
            "    at Process.ChildProcess._handle.onexit (node:internal/child_process:285:19)",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            explain(
                Some("the CLI exited with code 1 without a result".into()),
                &stack
            ),
            Some("the CLI exited with code 1 without a result: Error: spawn ENOENT".into())
        );
        let plain = vec!["Killed".to_string()];
        assert_eq!(
            explain(Some("why".into()), &plain),
            Some("why: Killed".into())
        );
        assert_eq!(explain(Some("why".into()), &[]), Some("why".into()));
        assert_eq!(explain(None, &plain), None);
    }
}
