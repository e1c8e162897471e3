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
/// When the line that says what went wrong (`key_line`) is further up (a usage text or a stack
/// trace after it), it comes first, then the last lines. When the read began inside a line
/// (`cut`), that line's end is dropped if others follow, and shown after `…` if it is all there
/// is.
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
    let all: Vec<String> = lines
        .iter()
        .map(|l| one_line(sanitize(l).trim(), MAX_LINE_CHARS))
        .filter(|l| !l.is_empty())
        .collect();
    let shown = all.len().saturating_sub(MAX_STDERR_LINES);
    match key_index(&all) {
        Some(key) if key < shown => {
            let mut out = vec![all[key].clone()];
            out.extend_from_slice(&all[all.len() + 1 - MAX_STDERR_LINES..]);
            out
        }
        _ => all[shown..].to_vec(),
    }
}

/// How telling a stderr line is about a failure: 2 it names an error (`error: …`, `fatal: …`,
/// a Node.js `Error: …`, a panic), 1 it says what failed (`unknown option`, `No such file`),
/// 0 plain text, -1 it is about how to call the program or where it failed, not what (`Usage:`,
/// `Try '… --help'`, a stack frame, an option of a usage text).
fn weight(line: &str) -> i8 {
    let l = line.trim_start().to_ascii_lowercase();
    let how_to = ["usage:", "try '", "try `", "try \"", "at ", "-", "[-"];
    if how_to.iter().any(|p| l.starts_with(p)) {
        return -1;
    }
    if ["error", "fatal", "panic"].iter().any(|w| l.contains(w)) {
        return 2;
    }
    if l.contains("for more information") || l.contains("--help") {
        return -1;
    }
    let failed = [
        "unknown",
        "unrecognized",
        "unrecognised",
        "invalid",
        "not found",
        "no such",
        "denied",
        "cannot",
        "can't",
        "failed",
        "not allowed",
        "missing",
    ];
    if failed.iter().any(|w| l.contains(w)) {
        return 1;
    }
    0
}

/// Where the line that says what went wrong is: the last of the most telling (`weight`) lines
/// (a Node.js stack trace ends with its frames, a rejected option with a usage text), else the
/// last line.
fn key_index(lines: &[String]) -> Option<usize> {
    let best = lines.iter().map(|l| weight(l)).max()?;
    if best < 0 {
        return lines.len().checked_sub(1);
    }
    lines.iter().rposition(|l| weight(l) == best)
}

/// `why`, followed by the line of what the CLI said on stderr that says what went wrong, when
/// it said anything.
pub(super) fn explain(why: Option<String>, lines: &[String]) -> Option<String> {
    match (why, key_index(lines).map(|i| lines[i].as_str())) {
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

    fn strings(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn a_usage_text_after_the_error_does_not_hide_it() {
        // A `cmd` that is not Claude rejects the flags it is given and prints its usage.
        let mut tail = String::from(
            "mycli: unrecognized option '--output-format=stream-json'\nUsage: mycli [OPTION]... [FILE]...\n",
        );
        for i in 0..12 {
            tail.push_str(&format!(
                "  -{i}, --option-{i}     does thing {i}, or errors out\n"
            ));
        }
        tail.push_str("Try 'mycli --help' for more information.\n");
        let lines = last_lines(tail.as_bytes(), false);
        assert_eq!(lines.len(), MAX_STDERR_LINES);
        assert_eq!(
            lines[0],
            "mycli: unrecognized option '--output-format=stream-json'"
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some("Try 'mycli --help' for more information.")
        );
        assert_eq!(
            explain(Some("exited".into()), &lines),
            Some("exited: mycli: unrecognized option '--output-format=stream-json'".into())
        );
        // The same with the lines shown: the key line is not repeated when it is among them.
        let short = "unknown option: --verbose\nusage: git [-v | --version] [-h | --help]\n";
        let lines = last_lines(short.as_bytes(), false);
        assert_eq!(
            lines,
            [
                "unknown option: --verbose",
                "usage: git [-v | --version] [-h | --help]"
            ]
        );
        assert_eq!(
            explain(Some("exited".into()), &lines),
            Some("exited: unknown option: --verbose".into())
        );
    }

    #[test]
    fn a_long_stack_trace_keeps_its_message() {
        let mut tail = String::from(
            "/x/cli.js:12\n  throw e;\n  ^\n\nError: EACCES: permission denied, open '/y'\n",
        );
        for i in 0..10 {
            tail.push_str(&format!("    at frame{i} (node:internal/fs:{i}:1)\n"));
        }
        tail.push_str("Node.js v22.3.0\n");
        let lines = last_lines(tail.as_bytes(), true);
        assert_eq!(lines[0], "Error: EACCES: permission denied, open '/y'");
        assert_eq!(lines.len(), MAX_STDERR_LINES);
        assert_eq!(
            explain(Some("why".into()), &lines),
            Some("why: Error: EACCES: permission denied, open '/y'".into())
        );
    }

    #[test]
    fn the_most_telling_line_wins_and_plain_text_falls_back_to_the_last() {
        // An error beats a failure word; the last of equals wins.
        let lines = strings(&[
            "fatal: not a git repository",
            "cannot go on",
            "Error: second",
        ]);
        assert_eq!(
            explain(Some("w".into()), &lines),
            Some("w: Error: second".into())
        );
        let lines = strings(&["file missing: /a", "done"]);
        assert_eq!(
            explain(Some("w".into()), &lines),
            Some("w: file missing: /a".into())
        );
        // Only how-to lines: still the last one, rather than nothing.
        let lines = strings(&["Usage: x [options]", "Try 'x --help' for more information."]);
        assert_eq!(
            explain(Some("w".into()), &lines),
            Some("w: Try 'x --help' for more information.".into())
        );
        // An option of a usage text that speaks of errors is not the error.
        let lines = strings(&["bad flag", "  --on-error <cmd>  what to run on error"]);
        assert_eq!(
            explain(Some("w".into()), &lines),
            Some("w: bad flag".into())
        );
    }
}
