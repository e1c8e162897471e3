//! What the transcript says about how a run ended: its `result` line, read from the file's
//! tail in bounded memory.

use std::path::Path;

use crate::stream_json;
use crate::transcript::framing::MAX_LINE;

/// What the transcript says about one run: its `result` line, if it wrote one.
#[derive(Default, Debug)]
pub struct RunSummary {
    pub result: Option<stream_json::ResultInfo>,
    /// How many whole lines were examined: only the transcript's tail is read.
    pub lines: u64,
}

/// Reads a run's `result` line: the CLI's last line. The lines of the run's part of the file are
/// walked backwards from the end, a few at most, so a 200 MB transcript costs a read of its
/// last line. Each is parsed to tell what it is, whatever the order of its keys (2.1.332 writes
/// `type` after the whole answer); one too long to hold (a huge answer repeated in `result`) is
/// re-read with its long strings cut, so its cost and turns still count in bounded memory.
pub fn summarize(path: &Path, offset: u64) -> RunSummary {
    let mut out = RunSummary::default();
    let Ok(mut f) = std::fs::File::open(path) else {
        return out;
    };
    let Ok(end) = f.metadata().map(|m| m.len()) else {
        return out;
    };
    // The last line first: finding where the lines before it begin can mean walking back over
    // a huge assistant line, which only a run without a final result needs.
    let mut lines = last_lines(&mut f, offset, end, 1);
    let mut widened = false;
    let mut next = 0;
    loop {
        let Some(&(start, len)) = lines.get(next) else {
            if widened {
                break;
            }
            widened = true;
            // The same last lines again, and more: those already looked at are skipped.
            lines = last_lines(&mut f, offset, end, SUMMARY_LINES);
            continue;
        };
        next += 1;
        out.lines += 1;
        let Some(msg) = parse_at(&mut f, path, start, len) else {
            continue;
        };
        if let stream_json::Msg::Result(r) = msg {
            out.result = Some(r);
            break;
        }
    }
    out
}

/// Whether the CLI is idle as far as its output says: the last complete line after `offset` is
/// a `result` and nothing was written after it (no partial line).
pub fn ends_with_result(path: &Path, offset: u64) -> bool {
    matches!(
        last_message(path, offset),
        Some(stream_json::Msg::Result(_))
    )
}

/// The message of the last complete line after `offset`, when nothing was written after it (no
/// partial line: else the CLI is writing again, and None). Reads the last line only, in bounded
/// memory, and parses it (whatever its key order) to tell what it is.
pub fn last_message(path: &Path, offset: u64) -> Option<stream_json::Msg> {
    let mut f = std::fs::File::open(path).ok()?;
    let end = f.metadata().ok()?.len();
    if end <= offset || read_at(&mut f, end - 1, 1) != b"\n" {
        return None;
    }
    let &(start, len) = last_lines(&mut f, offset, end, 1).first()?;
    parse_at(&mut f, path, start, len)
}

/// How much of a transcript's beginning `started_a_session` reads: the session's first line
/// comes after the answer to `initialize` (~10 KB).
const SESSION_HEAD: u64 = 1024 * 1024;

/// Whether the CLI started a session in this transcript: a `system/init` line among the lines
/// of its first `SESSION_HEAD` bytes (each parsed, whatever its key order; a line cut by the
/// limit is not read).
pub fn started_a_session(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(SESSION_HEAD).read_to_end(&mut head));
    if read.is_err() {
        return false;
    }
    head.split(|&b| b == b'\n')
        .take(head.iter().filter(|&&b| b == b'\n').count())
        .any(|line| matches!(stream_json::parse_bytes(line), stream_json::Msg::Init(_)))
}

/// The message of the line at `start..start + len`; one longer than the framer keeps is
/// re-read with its long strings cut. None when it cannot be read back.
fn parse_at(f: &mut std::fs::File, path: &Path, start: u64, len: u64) -> Option<stream_json::Msg> {
    if len <= MAX_LINE as u64 {
        return Some(stream_json::parse_bytes(&read_at(f, start, len)));
    }
    match crate::transcript::longline::cut_long_strings_in_file(
        path,
        start,
        len,
        LONG_STRING,
        LONG_OUT,
    ) {
        Ok(Some(short)) => Some(stream_json::parse_bytes(&short.json)),
        _ => None,
    }
}

/// How many of a run's last lines `summarize` looks at: the result is the last, but a line the
/// CLI wrote after it (or a blank one) must not hide it.
const SUMMARY_LINES: usize = 8;
/// Long strings of a re-read over-long line are cut to this (the text is not needed here)...
const LONG_STRING: usize = 64 * 1024;
/// ... and a re-read line that still needs more than this is given up.
const LONG_OUT: usize = 1024 * 1024;

/// `len` bytes of `f` from `start` (fewer at EOF or on an error).
fn read_at(f: &mut std::fs::File, start: u64, len: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_ok() {
        let _ = f.take(len).read_to_end(&mut buf);
    }
    buf
}

/// The last `max` non-empty lines in `from..end` of `f`, newest first, as (start, length)
/// without the newline or a `\r` before it. Reads backwards in blocks: memory stays at one
/// block whatever the lines' lengths.
fn last_lines(f: &mut std::fs::File, from: u64, end: u64, max: usize) -> Vec<(u64, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    const BLOCK: u64 = 64 * 1024;
    let mut out = Vec::new();
    let mut buf = vec![0u8; BLOCK as usize];
    // The end of the line being looked for (exclusive), and where the next block read ends.
    let mut line_end = end;
    let mut pos = end;
    let push = |start: u64, stop: u64, f: &mut std::fs::File, out: &mut Vec<(u64, u64)>| {
        let mut stop = stop;
        if stop > start && read_at(f, stop - 1, 1) == b"\r" {
            stop -= 1;
        }
        if stop > start {
            out.push((start, stop - start));
        }
    };
    while pos > from && out.len() < max {
        let begin = pos.saturating_sub(BLOCK).max(from);
        let n = (pos - begin) as usize;
        if f.seek(SeekFrom::Start(begin)).is_err() || f.read_exact(&mut buf[..n]).is_err() {
            return out;
        }
        for i in (0..n).rev() {
            if buf[i] == b'\n' {
                let nl = begin + i as u64;
                push(nl + 1, line_end, f, &mut out);
                line_end = nl;
                if out.len() == max {
                    return out;
                }
            }
        }
        pos = begin;
    }
    if out.len() < max {
        push(from, line_end, f, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_path as tmp;

    const RESULT: &str = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":3,"total_cost_usd":0.5,"result":"ok"}"#;

    #[test]
    fn a_session_is_started_by_its_init_line_not_by_words_in_other_lines() {
        let p = tmp("session-head");
        // The answer to `initialize` names a slash command "init" and carries a session id
        // field: no session yet.
        let answer = r#"{"type":"control_response","response":{"subtype":"success","request_id":"ct-init-1","response":{"commands":[{"name":"init"}],"session_id":"x"}}}"#;
        std::fs::write(&p, format!("{answer}\n")).unwrap();
        assert!(!started_a_session(&p));
        // The session's first line, its keys in another order; then one cut short.
        let init = r#"{"session_id":"s1","cwd":"/p","model":"m","tools":[],"subtype":"init","type":"system"}"#;
        std::fs::write(&p, format!("{answer}\n{}", &init[..40])).unwrap();
        assert!(!started_a_session(&p), "a partial line is not read");
        std::fs::write(&p, format!("{answer}\n{init}\n")).unwrap();
        assert!(started_a_session(&p));
        assert!(!started_a_session(&p.with_extension("missing")));
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn summarize_finds_the_result_at_the_end_of_a_large_transcript() {
        let p = tmp("large");
        let filler = format!("{}\n", "x".repeat(999));
        let mut data = String::new();
        // Far more than a block: only the last few lines are read.
        while data.len() < 2 * MAX_LINE {
            data.push_str(&filler);
        }
        data.push_str(RESULT);
        data.push('\n');
        std::fs::write(&p, &data).unwrap();
        let s = summarize(&p, 0);
        let r = s.result.expect("result");
        assert_eq!((r.num_turns, r.is_error), (3, false));
        assert_eq!(s.lines, 1);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn summarize_reads_a_result_line_longer_than_max_line() {
        let p = tmp("huge-result");
        let text = "answer line\n".repeat(MAX_LINE / 10);
        // The CLI's key order: the huge text comes before the cost.
        let huge = format!(
            r#"{{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":{},"session_id":"s","total_cost_usd":0.25}}"#,
            serde_json::Value::from(text)
        );
        let data = format!("{{\"type\":\"assistant\"}}\n{huge}\n");
        assert!(data.len() > MAX_LINE + 1024);
        std::fs::write(&p, &data).unwrap();
        let r = summarize(&p, 0).result.expect("result");
        assert_eq!((r.num_turns, r.total_cost_usd), (2, 0.25));
        let _ = std::fs::remove_file(&p);
    }

    /// 2.1.332 writes the result's `type` after its whole answer. The result is found whatever
    /// the answer's size: read whole under the framer's cap, and over it re-read with its long
    /// strings cut (bounded memory: the kept answer is cut, with its size).
    #[test]
    fn summarize_finds_a_result_whose_type_comes_after_a_huge_answer() {
        use crate::testutil::result_line_2_1_332;
        const PIECE: &str = r#"an answer line, \u00e9 \ud83d\ude00 \"quoted\"\n"#;
        for size in [8 * 1024, 4_000_000, 4 * 1024 * 1024, 60 * 1024 * 1024] {
            let p = tmp(&format!("type-last-{size}"));
            let answer = format!("\"{}\"", PIECE.repeat(size / PIECE.len() + 1));
            let line = result_line_2_1_332(&answer, 0.25, 2);
            assert!(line.find(r#""type":"result""#) > line.find(&answer));
            std::fs::write(&p, format!("{{\"type\":\"assistant\"}}\n{line}\n")).unwrap();
            let r = summarize(&p, 0).result.expect("the result");
            assert_eq!(
                (r.num_turns, r.total_cost_usd, r.is_error),
                (2, 0.25, false)
            );
            let text = r.result.expect("the answer");
            assert!(
                text.starts_with("an answer line, é 😀 \"quoted\"\n"),
                "{size}"
            );
            if line.len() > MAX_LINE {
                assert!(text.len() < LONG_STRING + 64, "{size}: {}", text.len());
                assert!(text.ends_with(&format!("… ({} bytes)", answer.len() - 2)));
            } else {
                assert_eq!(text, serde_json::from_str::<String>(&answer).unwrap());
            }
            let _ = std::fs::remove_file(&p);
        }
    }

    /// The lines after a result (a CLI may write some) are told apart by parsing too, each kind
    /// with `type` last after a long string, one of them longer than the framer's cap.
    #[test]
    fn summarize_skips_other_kinds_whose_type_comes_last() {
        use crate::testutil::{result_line_2_1_332, type_last};
        let p = tmp("kinds-type-last");
        let mut data = result_line_2_1_332(r#""done""#, 0.5, 3);
        for (line, pad) in [
            (
                r#"{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"hi"}]},"parent_tool_use_id":null}"#,
                8 * 1024,
            ),
            (
                r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"x"}]}}"#,
                5 * 1024 * 1024,
            ),
            (
                r#"{"type":"system","subtype":"status","status":"requesting"}"#,
                100,
            ),
            (
                r#"{"type":"stream_event","event":{"type":"message_stop"},"parent_tool_use_id":null}"#,
                4096,
            ),
        ] {
            data.push('\n');
            data.push_str(&type_last(line, pad).expect("a line that begins with its type"));
        }
        data.push('\n');
        std::fs::write(&p, &data).unwrap();
        let s = summarize(&p, 0);
        let r = s.result.expect("the result");
        assert_eq!(
            (r.num_turns, r.total_cost_usd, r.result.as_deref()),
            (3, 0.5, Some("done"))
        );
        assert_eq!(s.lines, 5);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn last_lines_walks_back_over_blocks_crs_and_blank_lines() {
        let p = tmp("last-lines");
        let long = "y".repeat(150 * 1024);
        let data = format!("a\r\n{long}\n\nlast-no-newline");
        std::fs::write(&p, &data).unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        let end = data.len() as u64;
        let got = last_lines(&mut f, 0, end, 8);
        let text: Vec<String> = got
            .iter()
            .map(|&(s, l)| String::from_utf8(read_at(&mut f, s, l)).unwrap())
            .collect();
        assert_eq!(
            text,
            vec!["last-no-newline".to_string(), long.clone(), "a".into()]
        );
        // From an offset inside the file: nothing before it.
        assert_eq!(last_lines(&mut f, 3, end, 8).len(), 2);
        assert_eq!(last_lines(&mut f, 0, end, 1).len(), 1);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn summarize_finds_a_result_followed_by_other_lines() {
        let p = tmp("after");
        let data = format!("{{\"type\":\"assistant\"}}\n{RESULT}\n\n{{\"type\":\"system\"}}\n");
        std::fs::write(&p, &data).unwrap();
        let s = summarize(&p, 0);
        assert!(s.result.is_some());
        // The last line, then (widened) the result: the last line is not looked at twice.
        assert_eq!(s.lines, 2);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn summarize_ignores_earlier_runs() {
        let p = tmp("partial");
        // A result before the run's offset belongs to an earlier run.
        let earlier = format!("{RESULT}\n");
        let mut data = earlier.clone();
        let offset = data.len() as u64;
        data.push_str("{\"type\":\"assistant\"}\n");
        std::fs::write(&p, &data).unwrap();
        assert!(summarize(&p, offset).result.is_none());
        assert!(summarize(&p, 0).result.is_some());
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn ends_with_result_only_when_the_last_complete_line_is_the_run_s_result() {
        let p = tmp("ends-with-result");
        let check = |data: &str, offset: u64| {
            std::fs::write(&p, data).unwrap();
            ends_with_result(&p, offset)
        };
        let assistant = "{\"type\":\"assistant\"}\n";
        assert!(check(&format!("{assistant}{RESULT}\n"), 0));
        // Blank lines after it do not hide it.
        assert!(check(&format!("{assistant}{RESULT}\n\n"), 0));
        // Key order is not assumed: `type` last (2.1.332).
        let type_last = r#"{"subtype":"success","is_error":false,"result":"ok","type":"result"}"#;
        assert!(check(&format!("{assistant}{type_last}\n"), 0));
        // Not idle: a line after the result, a partial line, no line of the run yet, or a
        // result that belongs to an earlier run.
        assert!(!check(&format!("{RESULT}\n{assistant}"), 0));
        assert!(!check(&format!("{RESULT}\n{{\"type\":\"assis"), 0));
        assert!(!check(&format!("{assistant}{RESULT}"), 0));
        let earlier = format!("{RESULT}\n");
        assert!(!check(&earlier, earlier.len() as u64));
        // A string that only looks like a result.
        assert!(!check(
            "{\"type\":\"assistant\",\"x\":\"{\\\"type\\\":\\\"result\\\"}\"}\n",
            0
        ));
        std::fs::remove_file(&p).unwrap();
        assert!(!ends_with_result(&p, 0), "no file");
    }
}
