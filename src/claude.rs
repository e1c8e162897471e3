//! The Claude Code CLI: how we invoke it, and what one line of its `stream-json` output means.
//!
//! Parsing never fails: a line we cannot understand is still a [`Msg`] (plain text, a truncated
//! line, or an unknown kind), because the transcript is shown to the user as it is, and a newer
//! CLI may add kinds and fields at any time.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::framing::{Line, LineRef};
use crate::scan::string_run;
use crate::task::TaskOptions;

/// Which Claude session a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionArg<'a> {
    /// First run of a task: the session id we chose, so the task is resumable from its start.
    New(&'a str),
    /// A follow-up run in the session of an earlier one.
    Resume(&'a str),
}

/// The full argv of one run, program first. The prompt is not in it: it goes on stdin, so a
/// prompt starting with `-` is never read as a flag and its size is not limited by argv.
///
/// Values are attached with `=` so that a value starting with `-` cannot be taken for a flag.
/// Allowed tools are passed comma-joined in one value, as the Agent SDK does: the CLI splits that
/// value itself and keeps patterns such as `Bash(git commit:*)` whole.
pub fn argv(opts: &TaskOptions, session: SessionArg) -> Vec<String> {
    let mut v: Vec<String> = Vec::with_capacity(opts.cmd.len() + opts.args.len() + 10);
    match opts.cmd.split_first() {
        Some((program, rest)) => {
            v.push(program.clone());
            v.extend(rest.iter().cloned());
        }
        None => v.push("claude".to_string()),
    }
    v.extend(opts.args.iter().cloned());
    for a in [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    ] {
        v.push(a.to_string());
    }
    if !opts.permission_mode.is_empty() {
        v.push(format!("--permission-mode={}", opts.permission_mode));
    }
    if let Some(model) = opts.model.as_deref().filter(|m| !m.is_empty()) {
        v.push(format!("--model={model}"));
    }
    let tools: Vec<&str> = opts
        .allowed_tools
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect();
    if !tools.is_empty() {
        v.push(format!("--allowedTools={}", tools.join(",")));
    }
    match session {
        SessionArg::New(id) => v.push(format!("--session-id={id}")),
        SessionArg::Resume(id) => v.push(format!("--resume={id}")),
    }
    v
}

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// `system/init`: the first line of every run.
    Init(Init),
    /// `system/api_retry`: the CLI is about to retry a failed API request.
    ApiRetry(ApiRetry),
    /// Any other `system` line (`status`, `task_started`, `task_notification`, ...).
    System {
        subtype: String,
    },
    Assistant(Assistant),
    User(User),
    /// A raw API streaming event (only with `--include-partial-messages`).
    Stream(Stream),
    /// The last line of a run.
    Result(ResultInfo),
    /// A line that is not a JSON object: shown as it is.
    Text(String),
    /// A line longer than the framer keeps: only its beginning is known.
    Truncated {
        prefix: String,
        total_len: usize,
    },
    /// A JSON object of a kind we do not know (`kind` is its `type`, possibly empty).
    Other {
        kind: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Init {
    pub session_id: String,
    pub model: String,
    pub cwd: String,
    pub permission_mode: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiRetry {
    pub attempt: u64,
    pub max_retries: u64,
    pub retry_delay_ms: f64,
    /// HTTP status; absent when the request did not get an answer (connection refused...).
    pub error_status: Option<u64>,
    /// The CLI's error category (`server_error`, `rate_limit`, `overloaded`, `unknown`...).
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assistant {
    pub message_id: String,
    /// Set for the messages of a subagent (the `Task` tool call that runs it).
    pub parent_tool_use_id: Option<String>,
    pub content: Vec<Block>,
    /// Set on the synthetic message the CLI writes when the API failed; its text is the error.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// Thinking text; empty for redacted thinking.
    Thinking(String),
    /// A block of another type (its `type`).
    Other(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub parent_tool_use_id: Option<String>,
    pub content: Vec<UserBlock>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserBlock {
    ToolResult(ToolResult),
    /// Text the CLI adds on the user's side, e.g. `[Request interrupted by user]`.
    Text(String),
    Other(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolResult {
    pub tool_use_id: String,
    /// The result as text (text parts of an array joined by newlines, `[image]` for images).
    pub content: String,
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub parent_tool_use_id: Option<String>,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    MessageStart {
        id: String,
    },
    BlockStart {
        index: u64,
        block: BlockKind,
    },
    TextDelta {
        index: u64,
        text: String,
    },
    InputJsonDelta {
        index: u64,
        partial_json: String,
    },
    ThinkingDelta {
        index: u64,
        thinking: String,
    },
    /// Another delta type (`signature_delta`, ...).
    OtherDelta {
        index: u64,
        kind: String,
    },
    BlockStop {
        index: u64,
    },
    MessageDelta,
    MessageStop,
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum BlockKind {
    Text,
    ToolUse { id: String, name: String },
    Thinking,
    Other(String),
}

/// The `result` line: how a run ended. Owned, so the supervisor can keep it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResultInfo {
    /// `success`, `error_during_execution`, `error_max_turns`...
    pub subtype: String,
    pub is_error: bool,
    pub duration_ms: Option<u64>,
    pub num_turns: u64,
    pub total_cost_usd: f64,
    /// The final assistant text, or the error text of an API failure.
    pub result: Option<String>,
    pub session_id: Option<String>,
    pub api_error_status: Option<u64>,
    pub permission_denials: Vec<Denial>,
    pub errors: Vec<String>,
    pub terminal_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Denial {
    pub tool_name: String,
    pub tool_input: Value,
}

impl Denial {
    /// `Write(/path)`, as in the tool call line.
    pub fn summary(&self) -> String {
        tool_summary(&self.tool_name, &self.tool_input)
    }
}

/// The CLI's internal diagnostics in `errors` say nothing to a user.
fn is_diagnostic(error: &str) -> bool {
    error.starts_with("[ede_diagnostic]")
}

impl ResultInfo {
    /// Errors worth showing to a user, in order.
    pub fn user_errors(&self) -> impl Iterator<Item = &str> {
        self.errors
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty() && !is_diagnostic(e))
    }

    /// Why the run failed, in one line; `None` when it did not fail.
    pub fn error_message(&self) -> Option<String> {
        if !self.is_error {
            return None;
        }
        if let Some(e) = self.user_errors().next() {
            return Some(first_line(e).to_string());
        }
        if let Some(r) = self
            .result
            .as_deref()
            .map(first_line)
            .filter(|r| !r.is_empty())
        {
            return Some(r.to_string());
        }
        if let Some(status) = self.api_error_status {
            return Some(format!("API error {status}"));
        }
        Some(
            match self.terminal_reason.as_deref().filter(|r| !r.is_empty()) {
                Some(reason) if !self.subtype.is_empty() => format!("{} ({reason})", self.subtype),
                Some(reason) => reason.to_string(),
                None if !self.subtype.is_empty() => self.subtype.clone(),
                None => "error".to_string(),
            },
        )
    }
}

fn first_line(s: &str) -> &str {
    s.trim().lines().next().unwrap_or("").trim()
}

/// How many characters of a truncated line we keep to show it.
const TRUNCATED_PREFIX_CHARS: usize = 200;

/// Parses one line of the transcript. Never panics, whatever the bytes.
pub fn parse(line: &Line) -> Msg {
    parse_ref(line.as_ref())
}

/// `parse` of a lent line.
pub fn parse_ref(line: LineRef) -> Msg {
    if line.truncated() {
        // A UTF-8 char is at most 4 bytes, so this many bytes hold the prefix we show.
        let head = &line.bytes[..line.bytes.len().min(TRUNCATED_PREFIX_CHARS * 4)];
        let prefix: String = String::from_utf8_lossy(head)
            .chars()
            .take(TRUNCATED_PREFIX_CHARS)
            .collect();
        return Msg::Truncated {
            prefix,
            total_len: line.total_len,
        };
    }
    parse_bytes(line.bytes)
}

/// Parses the bytes of one complete line (without its newline).
pub fn parse_bytes(bytes: &[u8]) -> Msg {
    // Text deltas are most of the lines of a long answer, and serde costs ~8k instructions each.
    if let Some(stream) = text_delta_line(bytes) {
        return Msg::Stream(stream);
    }
    parse_bytes_general(bytes)
}

fn parse_bytes_general(bytes: &[u8]) -> Msg {
    // Deltas are most of the lines of a long answer, so they get a parse into borrowed structs
    // that skips every field we do not need; anything unusual takes the general path.
    if bytes.starts_with(br#"{"type":"stream_event""#) {
        if let Ok(fast) = serde_json::from_slice::<FastStream>(bytes) {
            if fast.ty == "stream_event" {
                return Msg::Stream(Stream {
                    parent_tool_use_id: fast.parent_tool_use_id,
                    event: fast.event.into_event(),
                });
            }
        }
    }
    let value = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => v,
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            match text {
                // Valid UTF-8 that is not JSON: nothing more to try.
                Cow::Borrowed(s) => return Msg::Text(s.to_string()),
                Cow::Owned(s) => match serde_json::from_str::<Value>(&s) {
                    Ok(v) => v,
                    Err(_) => return Msg::Text(s),
                },
            }
        }
    };
    if !value.is_object() {
        return Msg::Text(String::from_utf8_lossy(bytes).into_owned());
    }
    from_value(&value)
}

const DELTA_HEAD: &[u8] =
    br#"{"type":"stream_event","event":{"type":"content_block_delta","index":"#;
const TEXT_HEAD: &[u8] = br#","delta":{"type":"text_delta","text":""#;

/// A text delta in exactly the shape the CLI writes it, parsed by hand. `None` for anything else,
/// so the general path decides: this accepts only lines that serde reads the same way.
fn text_delta_line(b: &[u8]) -> Option<Stream> {
    let d = text_delta(b)?;
    Some(Stream {
        parent_tool_use_id: d.parent_tool_use_id.map(str::to_owned),
        event: Event::TextDelta {
            index: d.index,
            text: d.text.into_owned(),
        },
    })
}

/// A `text_delta` stream event, borrowed from its line where it has no escapes.
#[derive(Debug, PartialEq)]
pub struct TextDelta<'a> {
    pub index: u64,
    pub text: Cow<'a, str>,
    /// The text has no control character but newlines and tabs: its lines need no sanitizing.
    pub clean: bool,
    pub parent_tool_use_id: Option<&'a str>,
}

/// The hand-written parse of a `text_delta` line (see `text_delta_line`), without copying the
/// text: the view renders most lines of a long answer straight from the bytes it read.
pub fn text_delta(b: &[u8]) -> Option<TextDelta<'_>> {
    let mut decoded = String::new();
    let (index, text) = delta_head(b, &mut decoded)?;
    let parent = delta_tail(text.rest, |_, _| {})?;
    Some(TextDelta {
        index,
        text: text.raw.map_or(Cow::Owned(decoded), Cow::Borrowed),
        clean: text.clean,
        parent_tool_use_id: parent,
    })
}

/// `text_delta` with a memory of the last tail it checked in full. The CLI writes the same keys
/// and values after the event on every line of a message but one string, which changes on every
/// line: the uuid, last in 2.1.197, followed by `api_message_id` in 2.1.332. So a tail that is
/// the remembered one with one string under a key that does not matter changed, wherever it
/// is, needs only that string checked; anything else takes the whole check (and becomes the new
/// memory). Same results as `text_delta`, line for line.
#[derive(Default)]
pub struct DeltaParser {
    memory: TailMemory,
    /// Lines whose tail took the short check (what the benchmarks report).
    reused: u64,
    /// The text of a delta with escapes (nearly every one: a line ends in `\n`), decoded here
    /// rather than into a new `String` per line.
    decoded: String,
}

/// A longer tail is checked whole every time rather than kept (the CLI's are ~150 bytes).
const MAX_REMEMBERED_TAIL: usize = 4096;

impl DeltaParser {
    pub fn parse<'a>(&'a mut self, b: &'a [u8]) -> Option<TextDelta<'a>> {
        let (index, JsonStr { raw, clean, rest }) = delta_head(b, &mut self.decoded)?;
        let text = Cow::Borrowed(raw.unwrap_or(self.decoded.as_str()));
        let parent = match self.memory.reuse(rest) {
            Some(parent) => {
                self.reused += 1;
                match parent {
                    Some((from, to)) => Some(std::str::from_utf8(&rest[from..to]).ok()?),
                    None => None,
                }
            }
            None => {
                let m = &mut self.memory;
                m.free.clear();
                let parent = delta_tail(rest, |from, to| m.free.push((from, to)));
                m.tail.clear();
                if parent.is_some() && rest.len() <= MAX_REMEMBERED_TAIL {
                    m.tail.extend_from_slice(rest);
                }
                let parent = parent?;
                m.parent = parent.map(|p| {
                    let from = p.as_ptr() as usize - rest.as_ptr() as usize;
                    (from, from + p.len())
                });
                parent
            }
        };
        Some(TextDelta {
            index,
            text,
            clean,
            parent_tool_use_id: parent,
        })
    }

    /// How many lines' tails were found to be the remembered one but for one free string.
    pub fn reused(&self) -> u64 {
        self.reused
    }

    /// Drops the remembered tail: the next line takes the whole check, as every line would if
    /// its tail changed in more than one place (the benchmarks' reference).
    pub fn forget_tail(&mut self) {
        self.memory.tail.clear();
    }
}

/// The last tail `DeltaParser` checked whole, and where its free strings are.
#[derive(Default)]
struct TailMemory {
    /// The last tail that passed the whole check; empty when there is none to reuse.
    tail: Vec<u8>,
    /// The contents of the string values under keys that do not matter in `tail`, as the index
    /// of their first byte and of their closing quote, in order.
    free: Vec<(usize, usize)>,
    /// Where `parent_tool_use_id`'s string is within `tail`, if it is one.
    parent: Option<(usize, usize)>,
    /// Which of `free` was the one changed in the last tail reused: likely the one changed in
    /// the next, so it is tried first.
    changed: usize,
}

impl TailMemory {
    /// Whether `rest` is the remembered tail with at most one of its free strings replaced by
    /// another string without escapes: then it passes `delta_tail` as the remembered one did
    /// (the same keys, in the same order, with values of the same kinds). Returns where the
    /// `parent_tool_use_id` string is in `rest`.
    fn reuse(&mut self, rest: &[u8]) -> Option<Option<(usize, usize)>> {
        if self.tail.is_empty() {
            return None;
        }
        // Two comparisons (before and after the string) when the same string changed again.
        if let Some(&(from, to)) = self.free.get(self.changed) {
            if let Some(end) = self.only_changed(rest, from, to) {
                return Some(self.parent_in(end, to));
            }
        }
        let same = common_prefix(rest, &self.tail);
        if same == rest.len() && same == self.tail.len() {
            return Some(self.parent);
        }
        // The first difference is inside a free string's content or at its closing quote.
        let k = self
            .free
            .iter()
            .position(|&(f, t)| f <= same && same <= t)?;
        let (from, to) = self.free[k];
        let end = self.only_changed(rest, from, to)?;
        self.changed = k;
        Some(self.parent_in(end, to))
    }

    /// Where the closing quote of the string at `from` is in `rest`, when `rest` is the
    /// remembered tail but for that string (whose closing quote was at `to`), which has no
    /// escapes.
    fn only_changed(&self, rest: &[u8], from: usize, to: usize) -> Option<usize> {
        if rest.get(..from)? != &self.tail[..from] {
            return None;
        }
        // From its opening quote, the same in both.
        let (value, after) = plain_string(&rest[from - 1..])?;
        (after == &self.tail[to + 1..]).then_some(from + value.len())
    }

    /// The parent's string in a tail whose changed string closes at `end` instead of `to`.
    fn parent_in(&self, end: usize, to: usize) -> Option<(usize, usize)> {
        self.parent.map(|(a, b)| {
            if a > to {
                (a + end - to, b + end - to)
            } else {
                (a, b)
            }
        })
    }
}

/// How many bytes `a` and `b` have in common from their starts.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    // Eight bytes at a time: the first differing byte is the lowest set byte of the xor.
    while i + 8 <= n {
        let word = |s: &[u8]| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or([0; 8]));
        let x = word(a) ^ word(b);
        if x != 0 {
            return i + x.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// A delta line up to its text: the index, and the text as `json_string` gives it, with what
/// follows the `}}` after it as its `rest`.
fn delta_head<'a>(b: &'a [u8], decoded: &mut String) -> Option<(u64, JsonStr<'a>)> {
    let rest = b.strip_prefix(DELTA_HEAD)?;
    let (index, rest) = json_u64(rest)?;
    let rest = rest.strip_prefix(TEXT_HEAD)?;
    let mut text = json_string(rest, decoded)?;
    text.rest = text.rest.strip_prefix(b"}}")?;
    Some((index, text))
}

/// The `parent_tool_use_id` of the rest of the top-level object after the event, when it is
/// only strings without escapes and nulls. `free` is told where each string value under a key
/// that does not matter here is (its content's first byte and its closing quote): a later line's
/// tail that differs from this one only inside one of them passes as this one does
/// (`DeltaParser`).
fn delta_tail(all: &[u8], mut free: impl FnMut(usize, usize)) -> Option<Option<&str>> {
    let mut rest = all;
    let mut parent = None;
    let mut seen_parent = false;
    loop {
        match rest {
            [b'}'] => break,
            [b',', tail @ ..] => {
                let (key, tail) = plain_string(tail)?;
                let tail = tail.strip_prefix(b":")?;
                let (value, tail) = match tail.strip_prefix(b"null") {
                    Some(tail) => (None, tail),
                    None => {
                        let (v, tail) = plain_string(tail)?;
                        (Some(v), tail)
                    }
                };
                match key {
                    b"parent_tool_use_id" if !seen_parent => {
                        seen_parent = true;
                        parent = match value {
                            Some(v) => Some(std::str::from_utf8(v).ok()?),
                            None => None,
                        };
                    }
                    // serde rejects a repeated known field (unknown ones it skips).
                    b"parent_tool_use_id" | b"type" | b"event" => return None,
                    _ => {
                        if let Some(v) = value {
                            let from = v.as_ptr() as usize - all.as_ptr() as usize;
                            free(from, from + v.len());
                        }
                    }
                }
                rest = tail;
            }
            _ => return None,
        }
    }
    Some(parent)
}

/// A plain JSON u64. Leading zeros are invalid JSON, and serde reads an overflow as a float.
fn json_u64(b: &[u8]) -> Option<(u64, &[u8])> {
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && b[0] == b'0') {
        return None;
    }
    let mut n: u64 = 0;
    for &c in &b[..digits] {
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some((n, &b[digits..]))
}

/// A JSON string as `json_string` reads it.
struct JsonStr<'a> {
    /// Its text, borrowed from the line when it has no escapes (else it is in the caller's
    /// `decoded`).
    raw: Option<&'a str>,
    /// The text has no control character but newlines and tabs, raw or escaped: its lines go
    /// into a buffer as they are (`render::sanitize` would return them unchanged).
    clean: bool,
    /// What follows its closing quote.
    rest: &'a [u8],
}

/// The JSON string that `b` starts inside of (just after its opening quote): its text, borrowed
/// from `b` when it has no escapes, else decoded into `decoded`. `None` where serde_json would
/// fail: raw control characters, bad escapes, lone surrogates, invalid UTF-8.
fn json_string<'a>(b: &'a [u8], decoded: &mut String) -> Option<JsonStr<'a>> {
    let run = string_run(b, 0)?;
    if b[run.end] == b'"' {
        return Some(JsonStr {
            raw: Some(utf8(&b[..run.end], run.ascii)?),
            clean: run.no_del,
            rest: &b[run.end + 1..],
        });
    }
    // Escaped: decoded in the same pass, run by run. Escapes are ASCII, so validating the runs
    // between them validates the whole.
    decoded.clear();
    let (mut from, mut run, mut clean) = (0, run, true);
    loop {
        decoded.push_str(utf8(&b[from..run.end], run.ascii)?);
        clean &= run.no_del;
        match b[run.end] {
            b'"' => {
                return Some(JsonStr {
                    raw: None,
                    clean,
                    rest: &b[run.end + 1..],
                })
            }
            b'\\' => {
                from = unescape(b, run.end + 1, decoded)?;
                // The escape's character is the last one decoded; one of several bytes is not
                // a control character. A newline is fine: lines are split at it.
                clean &= decoded
                    .as_bytes()
                    .last()
                    .is_some_and(|&c| c == b'\n' || !crate::scan::is_unclean(c));
                run = string_run(b, from)?;
            }
            // A raw control character.
            _ => return None,
        }
    }
}

/// `b` as text; `ascii` says the scan that found `b` saw only ASCII bytes in it.
fn utf8(b: &[u8], ascii: bool) -> Option<&str> {
    if ascii {
        debug_assert!(b.is_ascii());
        // SAFETY: every byte of `b` is ASCII (the caller's scan saw no high bit), and ASCII is
        // valid UTF-8. Validating again was ~5 % of the backend's CPU in a flood.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        std::str::from_utf8(b).ok()
    }
}

/// Decodes the escape whose letter is at `b[i]` into `out`; returns the index after it.
fn unescape(b: &[u8], i: usize, out: &mut String) -> Option<usize> {
    let c = match *b.get(i)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hi = hex4(b.get(i + 1..i + 5)?)?;
            if !(0xD800..0xDC00).contains(&hi) {
                // char::from_u32 refuses a lone trailing surrogate, as serde_json does.
                out.push(char::from_u32(hi)?);
                return Some(i + 5);
            }
            if b.get(i + 5..i + 7)? != b"\\u" {
                return None;
            }
            let lo = hex4(b.get(i + 7..i + 11)?)?;
            if !(0xDC00..0xE000).contains(&lo) {
                return None;
            }
            out.push(char::from_u32(
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00),
            )?);
            return Some(i + 11);
        }
        _ => return None,
    };
    out.push(c);
    Some(i + 1)
}

fn hex4(h: &[u8]) -> Option<u32> {
    h.iter()
        .try_fold(0u32, |n, &c| Some(n * 16 + char::from(c).to_digit(16)?))
}

/// A JSON string without escapes at the start of `b` (its bytes, valid UTF-8), and what follows.
fn plain_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let b = b.strip_prefix(b"\"")?;
    let run = string_run(b, 0)?;
    let s = &b[..run.end];
    if b[run.end] != b'"' || !(run.ascii || std::str::from_utf8(s).is_ok()) {
        return None;
    }
    Some((s, &b[run.end + 1..]))
}

#[derive(Deserialize)]
struct FastStream<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(default)]
    parent_tool_use_id: Option<String>,
    #[serde(borrow)]
    event: FastEvent<'a>,
}

#[derive(Deserialize)]
struct FastEvent<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<FastDelta<'a>>,
    #[serde(default, borrow)]
    content_block: Option<FastBlock<'a>>,
    #[serde(default)]
    message: Option<FastMessage>,
}

// Borrowed where the JSON has no escapes, to save an allocation per field on the hot path.
#[derive(Deserialize)]
struct FastDelta<'a> {
    #[serde(rename = "type", default, borrow)]
    ty: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct FastBlock<'a> {
    #[serde(rename = "type", default, borrow)]
    ty: Cow<'a, str>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct FastMessage {
    #[serde(default)]
    id: Option<String>,
}

impl FastEvent<'_> {
    fn into_event(self) -> Event {
        let index = self.index.unwrap_or(0);
        match &*self.ty {
            "content_block_delta" => {
                let d = self.delta.unwrap_or(FastDelta {
                    ty: Cow::Borrowed(""),
                    text: None,
                    partial_json: None,
                    thinking: None,
                });
                let own = |s: Option<Cow<str>>| s.map(Cow::into_owned);
                delta_event(
                    index,
                    &d.ty,
                    own(d.text),
                    own(d.partial_json),
                    own(d.thinking),
                )
            }
            "content_block_start" => {
                let b = self.content_block.unwrap_or(FastBlock {
                    ty: Cow::Borrowed(""),
                    id: None,
                    name: None,
                });
                Event::BlockStart {
                    index,
                    block: block_kind(&b.ty, b.id, b.name),
                }
            }
            "content_block_stop" => Event::BlockStop { index },
            "message_start" => Event::MessageStart {
                id: self.message.and_then(|m| m.id).unwrap_or_default(),
            },
            "message_delta" => Event::MessageDelta,
            "message_stop" => Event::MessageStop,
            other => Event::Other(other.to_string()),
        }
    }
}

fn delta_event(
    index: u64,
    ty: &str,
    text: Option<String>,
    partial_json: Option<String>,
    thinking: Option<String>,
) -> Event {
    match ty {
        "text_delta" => Event::TextDelta {
            index,
            text: text.unwrap_or_default(),
        },
        "input_json_delta" => Event::InputJsonDelta {
            index,
            partial_json: partial_json.unwrap_or_default(),
        },
        "thinking_delta" => Event::ThinkingDelta {
            index,
            thinking: thinking.unwrap_or_default(),
        },
        other => Event::OtherDelta {
            index,
            kind: other.to_string(),
        },
    }
}

fn block_kind(ty: &str, id: Option<String>, name: Option<String>) -> BlockKind {
    match ty {
        "text" => BlockKind::Text,
        "tool_use" | "server_tool_use" | "mcp_tool_use" => BlockKind::ToolUse {
            id: id.unwrap_or_default(),
            name: name.unwrap_or_default(),
        },
        "thinking" | "redacted_thinking" => BlockKind::Thinking,
        other => BlockKind::Other(other.to_string()),
    }
}

// Lenient accessors: a field of an unexpected type reads as absent instead of losing the line.

fn get_str<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

fn get_string(v: &Value, key: &str) -> String {
    get_str(v, key).unwrap_or_default().to_string()
}

fn get_u64(v: &Value, key: &str) -> Option<u64> {
    let x = v.get(key)?;
    if let Some(n) = x.as_u64() {
        return Some(n);
    }
    if let Some(f) = x.as_f64().filter(|f| f.is_finite() && *f >= 0.0) {
        return Some(f.round() as u64);
    }
    x.as_str().and_then(|s| s.trim().parse().ok())
}

fn get_f64(v: &Value, key: &str) -> Option<f64> {
    let x = v.get(key)?;
    x.as_f64()
        .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|f: &f64| f.is_finite())
}

fn get_bool(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(Value::as_bool)
}

/// A string field, or the JSON text of a non-string one (`error` is a string today).
fn get_text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn from_value(v: &Value) -> Msg {
    let kind = get_str(v, "type").unwrap_or_default();
    match kind {
        "system" => match get_str(v, "subtype").unwrap_or_default() {
            "init" => Msg::Init(Init {
                session_id: get_string(v, "session_id"),
                model: get_string(v, "model"),
                cwd: get_string(v, "cwd"),
                permission_mode: get_string(v, "permissionMode"),
            }),
            "api_retry" => Msg::ApiRetry(ApiRetry {
                attempt: get_u64(v, "attempt").unwrap_or(0),
                max_retries: get_u64(v, "max_retries").unwrap_or(0),
                retry_delay_ms: get_f64(v, "retry_delay_ms").unwrap_or(0.0),
                error_status: get_u64(v, "error_status"),
                error: get_text(v, "error").unwrap_or_default(),
            }),
            other => Msg::System {
                subtype: other.to_string(),
            },
        },
        "assistant" => {
            let message = v.get("message").unwrap_or(&Value::Null);
            Msg::Assistant(Assistant {
                message_id: get_string(message, "id"),
                parent_tool_use_id: get_str(v, "parent_tool_use_id").map(str::to_string),
                content: content_items(message)
                    .map(|items| items.iter().map(assistant_block).collect())
                    .unwrap_or_else(|| {
                        get_str(message, "content")
                            .map(|s| vec![Block::Text(s.to_string())])
                            .unwrap_or_default()
                    }),
                error: get_text(v, "error"),
            })
        }
        "user" => {
            let message = v.get("message").unwrap_or(&Value::Null);
            Msg::User(User {
                parent_tool_use_id: get_str(v, "parent_tool_use_id").map(str::to_string),
                content: content_items(message)
                    .map(|items| items.iter().map(user_block).collect())
                    .unwrap_or_else(|| {
                        get_str(message, "content")
                            .map(|s| vec![UserBlock::Text(s.to_string())])
                            .unwrap_or_default()
                    }),
            })
        }
        "stream_event" => {
            let e = v.get("event").unwrap_or(&Value::Null);
            Msg::Stream(Stream {
                parent_tool_use_id: get_str(v, "parent_tool_use_id").map(str::to_string),
                event: event_from_value(e),
            })
        }
        "result" => Msg::Result(result_from_value(v)),
        other => Msg::Other {
            kind: other.to_string(),
        },
    }
}

fn content_items(message: &Value) -> Option<&Vec<Value>> {
    message.get("content").and_then(Value::as_array)
}

fn assistant_block(b: &Value) -> Block {
    match get_str(b, "type").unwrap_or_default() {
        "text" => Block::Text(get_string(b, "text")),
        "tool_use" | "server_tool_use" | "mcp_tool_use" => Block::ToolUse {
            id: get_string(b, "id"),
            name: get_string(b, "name"),
            input: b.get("input").cloned().unwrap_or(Value::Null),
        },
        "thinking" => Block::Thinking(get_string(b, "thinking")),
        "redacted_thinking" => Block::Thinking(String::new()),
        other => Block::Other(other.to_string()),
    }
}

fn user_block(b: &Value) -> UserBlock {
    match get_str(b, "type").unwrap_or_default() {
        "tool_result" => UserBlock::ToolResult(ToolResult {
            tool_use_id: get_string(b, "tool_use_id"),
            content: tool_result_text(b.get("content").unwrap_or(&Value::Null)),
            is_error: get_bool(b, "is_error").unwrap_or(false),
        }),
        "text" => UserBlock::Text(get_string(b, "text")),
        other => UserBlock::Other(other.to_string()),
    }
}

fn tool_result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                let piece: Cow<str> = match get_str(p, "type").unwrap_or_default() {
                    "text" => Cow::Borrowed(get_str(p, "text").unwrap_or_default()),
                    "" => match p.as_str() {
                        Some(s) => Cow::Borrowed(s),
                        None => continue,
                    },
                    other => Cow::Owned(format!("[{other}]")),
                };
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&piece);
            }
            out
        }
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn event_from_value(e: &Value) -> Event {
    let index = get_u64(e, "index").unwrap_or(0);
    match get_str(e, "type").unwrap_or_default() {
        "content_block_delta" => {
            let d = e.get("delta").unwrap_or(&Value::Null);
            let s = |k| get_str(d, k).map(str::to_string);
            delta_event(
                index,
                get_str(d, "type").unwrap_or_default(),
                s("text"),
                s("partial_json"),
                s("thinking"),
            )
        }
        "content_block_start" => {
            let b = e.get("content_block").unwrap_or(&Value::Null);
            Event::BlockStart {
                index,
                block: block_kind(
                    get_str(b, "type").unwrap_or_default(),
                    get_str(b, "id").map(str::to_string),
                    get_str(b, "name").map(str::to_string),
                ),
            }
        }
        "content_block_stop" => Event::BlockStop { index },
        "message_start" => Event::MessageStart {
            id: e
                .get("message")
                .map(|m| get_string(m, "id"))
                .unwrap_or_default(),
        },
        "message_delta" => Event::MessageDelta,
        "message_stop" => Event::MessageStop,
        other => Event::Other(other.to_string()),
    }
}

fn result_from_value(v: &Value) -> ResultInfo {
    let subtype = get_string(v, "subtype");
    let is_error = get_bool(v, "is_error").unwrap_or(subtype != "success");
    let errors = match v.get("errors") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => get_text(other, "message").unwrap_or_else(|| other.to_string()),
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let permission_denials = v
        .get("permission_denials")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|d| Denial {
                    tool_name: get_string(d, "tool_name"),
                    tool_input: d.get("tool_input").cloned().unwrap_or(Value::Null),
                })
                .collect()
        })
        .unwrap_or_default();
    ResultInfo {
        subtype,
        is_error,
        duration_ms: get_u64(v, "duration_ms"),
        num_turns: get_u64(v, "num_turns").unwrap_or(0),
        total_cost_usd: get_f64(v, "total_cost_usd").unwrap_or(0.0),
        result: get_str(v, "result").map(str::to_string),
        session_id: get_str(v, "session_id").map(str::to_string),
        api_error_status: get_u64(v, "api_error_status"),
        permission_denials,
        errors,
        terminal_reason: get_str(v, "terminal_reason").map(str::to_string),
    }
}

/// Longest argument shown in a tool call line, in characters, `…` included.
const TOOL_ARG_CHARS: usize = 80;

/// One-line description of a tool call: `Bash(npm test)`, `Write(src/lib.rs)`, `TodoWrite(3 items)`.
pub fn tool_summary(name: &str, input: &Value) -> String {
    let name = one_line(name, TOOL_ARG_CHARS);
    let key = match name.as_str() {
        "Bash" => Some("command"),
        "Write" | "Edit" | "MultiEdit" | "Read" => Some("file_path"),
        "NotebookEdit" => Some("notebook_path"),
        "Grep" | "Glob" => Some("pattern"),
        "WebFetch" => Some("url"),
        "WebSearch" => Some("query"),
        "Task" | "Agent" => Some("description"),
        "TodoWrite" => {
            let n = input
                .get("todos")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let unit = if n == 1 { "item" } else { "items" };
            return format!("TodoWrite({n} {unit})");
        }
        _ => None,
    };
    let arg = key
        .and_then(|k| get_str(input, k))
        .filter(|s| !s.trim().is_empty())
        .or_else(|| first_string_field(input));
    match arg {
        Some(a) => format!("{name}({})", one_line(a, TOOL_ARG_CHARS)),
        None => name,
    }
}

/// The argument an unknown tool is best known by: a usual key if present, else the first
/// non-empty string field (in the map's order).
fn first_string_field(input: &Value) -> Option<&str> {
    const USUAL: [&str; 9] = [
        "command",
        "file_path",
        "path",
        "pattern",
        "url",
        "query",
        "description",
        "prompt",
        "name",
    ];
    let map = input.as_object()?;
    USUAL
        .iter()
        .filter_map(|k| map.get(*k).and_then(Value::as_str))
        .chain(map.values().filter_map(Value::as_str))
        .find(|s| !s.trim().is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::testutil::{delta_line, line};

    fn p(s: &str) -> Msg {
        parse(&line(s.as_bytes()))
    }

    fn opts() -> TaskOptions {
        TaskOptions {
            cmd: vec!["claude".into()],
            model: None,
            permission_mode: "acceptEdits".into(),
            allowed_tools: vec![],
            args: vec![],
        }
    }

    #[test]
    fn argv_for_a_new_session() {
        let a = argv(&opts(), SessionArg::New("1234"));
        assert_eq!(
            a,
            [
                "claude",
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--include-partial-messages",
                "--permission-mode=acceptEdits",
                "--session-id=1234"
            ]
        );
    }

    #[test]
    fn argv_with_everything() {
        let o = TaskOptions {
            cmd: vec!["npx".into(), "claude".into()],
            model: Some("sonnet".into()),
            permission_mode: "default".into(),
            allowed_tools: vec!["Bash(git commit:*)".into(), " Read ".into(), "".into()],
            args: vec!["--add-dir".into(), "/x".into()],
        };
        let a = argv(&o, SessionArg::Resume("abc"));
        assert_eq!(
            a,
            [
                "npx",
                "claude",
                "--add-dir",
                "/x",
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--include-partial-messages",
                "--permission-mode=default",
                "--model=sonnet",
                "--allowedTools=Bash(git commit:*),Read",
                "--resume=abc"
            ]
        );
    }

    #[test]
    fn argv_defaults_the_program_and_skips_empty_values() {
        let o = TaskOptions {
            cmd: vec![],
            model: Some(String::new()),
            permission_mode: String::new(),
            ..Default::default()
        };
        let a = argv(&o, SessionArg::New("s"));
        assert_eq!(a[0], "claude");
        assert!(!a.iter().any(|x| x.starts_with("--model")
            || x.starts_with("--permission-mode")
            || x.starts_with("--allowedTools")));
        assert_eq!(a.last().map(String::as_str), Some("--session-id=s"));
    }

    #[test]
    fn parses_init() {
        let m = p(
            r#"{"type":"system","subtype":"init","cwd":"/p","session_id":"s1","tools":["Bash"],"model":"opus","permissionMode":"default","x":{"y":[1]}}"#,
        );
        assert_eq!(
            m,
            Msg::Init(Init {
                session_id: "s1".into(),
                model: "opus".into(),
                cwd: "/p".into(),
                permission_mode: "default".into()
            })
        );
    }

    #[test]
    fn parses_api_retry() {
        let m = p(
            r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":2,"retry_delay_ms":510.8134944319151,"error_status":500,"error":"server_error","session_id":"s"}"#,
        );
        assert_eq!(
            m,
            Msg::ApiRetry(ApiRetry {
                attempt: 1,
                max_retries: 2,
                retry_delay_ms: 510.8134944319151,
                error_status: Some(500),
                error: "server_error".into()
            })
        );
        let m = p(
            r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":2,"retry_delay_ms":599,"error_status":null,"error":"unknown"}"#,
        );
        let Msg::ApiRetry(r) = m else {
            panic!("not a retry")
        };
        assert_eq!(r.error_status, None);
    }

    #[test]
    fn other_system_subtypes() {
        assert_eq!(
            p(r#"{"type":"system","subtype":"status","status":"requesting"}"#),
            Msg::System {
                subtype: "status".into()
            }
        );
        assert_eq!(
            p(r#"{"type":"system","subtype":"task_notification","status":"stopped"}"#),
            Msg::System {
                subtype: "task_notification".into()
            }
        );
    }

    #[test]
    fn parses_assistant_blocks() {
        let m = p(
            r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"text","text":"hi"},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}},{"type":"thinking","thinking":"hmm","signature":"x"},{"type":"image"}]},"parent_tool_use_id":null}"#,
        );
        assert_eq!(
            m,
            Msg::Assistant(Assistant {
                message_id: "m1".into(),
                parent_tool_use_id: None,
                content: vec![
                    Block::Text("hi".into()),
                    Block::ToolUse {
                        id: "t1".into(),
                        name: "Bash".into(),
                        input: json!({"command": "ls"})
                    },
                    Block::Thinking("hmm".into()),
                    Block::Other("image".into()),
                ],
                error: None,
            })
        );
    }

    #[test]
    fn parses_synthetic_api_error_message() {
        let m = p(
            r#"{"type":"assistant","message":{"id":"x","content":[{"type":"text","text":"API Error: 500 boom"}]},"error":"server_error"}"#,
        );
        let Msg::Assistant(a) = m else {
            panic!("not assistant")
        };
        assert_eq!(a.error.as_deref(), Some("server_error"));
    }

    #[test]
    fn parses_user_tool_results_and_text() {
        let m = p(
            r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"t1","type":"tool_result","content":"out","is_error":false},{"type":"tool_result","tool_use_id":"t2","content":[{"type":"text","text":"a"},{"type":"image","source":{}},{"type":"text","text":"b"}],"is_error":true},{"type":"text","text":"[Request interrupted by user]"}]}}"#,
        );
        assert_eq!(
            m,
            Msg::User(User {
                parent_tool_use_id: None,
                content: vec![
                    UserBlock::ToolResult(ToolResult {
                        tool_use_id: "t1".into(),
                        content: "out".into(),
                        is_error: false
                    }),
                    UserBlock::ToolResult(ToolResult {
                        tool_use_id: "t2".into(),
                        content: "a\n[image]\nb".into(),
                        is_error: true
                    }),
                    UserBlock::Text("[Request interrupted by user]".into()),
                ]
            })
        );
        // A missing is_error means success; string content of the message is text.
        let m = p(r#"{"type":"user","message":{"role":"user","content":"hello"}}"#);
        assert_eq!(
            m,
            Msg::User(User {
                parent_tool_use_id: None,
                content: vec![UserBlock::Text("hello".into())]
            })
        );
    }

    #[test]
    fn parses_stream_events_fast_and_slow() {
        let cases = [
            (
                r#"{"type":"stream_event","event":{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"a\"\n\u00e9"}},"session_id":"s","parent_tool_use_id":null,"uuid":"u"}"#,
                Event::TextDelta {
                    index: 2,
                    text: "a\"\né".into(),
                },
            ),
            (
                r#"{"type":"stream_event","event":{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"c"}}}"#,
                Event::InputJsonDelta {
                    index: 1,
                    partial_json: "{\"c".into(),
                },
            ),
            (
                r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}}"#,
                Event::ThinkingDelta {
                    index: 0,
                    thinking: "hm".into(),
                },
            ),
            (
                r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"x"}}}"#,
                Event::OtherDelta {
                    index: 0,
                    kind: "signature_delta".into(),
                },
            ),
            (
                r#"{"type":"stream_event","event":{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"Bash","input":{}}}}"#,
                Event::BlockStart {
                    index: 1,
                    block: BlockKind::ToolUse {
                        id: "t".into(),
                        name: "Bash".into(),
                    },
                },
            ),
            (
                r#"{"type":"stream_event","event":{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}}"#,
                Event::BlockStart {
                    index: 0,
                    block: BlockKind::Thinking,
                },
            ),
            (
                r#"{"type":"stream_event","event":{"type":"content_block_stop","index":0}}"#,
                Event::BlockStop { index: 0 },
            ),
            (
                r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m","content":[],"usage":{"a":1}}},"ttft_ms":3}"#,
                Event::MessageStart { id: "m".into() },
            ),
            (
                r#"{"type":"stream_event","event":{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{}}}"#,
                Event::MessageDelta,
            ),
            (
                r#"{"type":"stream_event","event":{"type":"message_stop"}}"#,
                Event::MessageStop,
            ),
            (
                r#"{"type":"stream_event","event":{"type":"ping"}}"#,
                Event::Other("ping".into()),
            ),
        ];
        for (json, want) in cases {
            let fast = p(json);
            assert_eq!(
                fast,
                Msg::Stream(Stream {
                    parent_tool_use_id: None,
                    event: want.clone()
                }),
                "{json}"
            );
            // The general path (taken when the fast one fails) gives the same answer.
            let slow = from_value(&serde_json::from_str(json).unwrap());
            assert_eq!(slow, fast, "{json}");
        }
    }

    #[test]
    fn odd_stream_events_fall_back_to_the_general_path() {
        // message_delta's `delta` has no `type`; an index as a float; duplicated keys.
        let m = p(
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":1.0,"delta":{"type":"text_delta","text":"x"}}}"#,
        );
        assert_eq!(
            m,
            Msg::Stream(Stream {
                parent_tool_use_id: None,
                event: Event::TextDelta {
                    index: 1,
                    text: "x".into()
                }
            })
        );
        let m = p(
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","text":"y"}}}"#,
        );
        assert_eq!(
            m,
            Msg::Stream(Stream {
                parent_tool_use_id: None,
                event: Event::TextDelta {
                    index: 0,
                    text: "y".into()
                }
            })
        );
        let m = p(
            r#"{"type":"stream_event","parent_tool_use_id":"toolu_1","event":{"type":"message_stop"}}"#,
        );
        assert_eq!(
            m,
            Msg::Stream(Stream {
                parent_tool_use_id: Some("toolu_1".into()),
                event: Event::MessageStop
            })
        );
    }

    #[test]
    fn parses_results() {
        let m = p(
            r#"{"type":"result","subtype":"success","is_error":false,"api_error_status":null,"duration_ms":307,"num_turns":2,"result":"done","session_id":"s","total_cost_usd":0.196635,"permission_denials":[{"tool_name":"Write","tool_use_id":"t","tool_input":{"file_path":"/p/h.txt","content":"x"}}],"terminal_reason":"completed"}"#,
        );
        let Msg::Result(r) = m else {
            panic!("not a result")
        };
        assert_eq!(
            r,
            ResultInfo {
                subtype: "success".into(),
                is_error: false,
                duration_ms: Some(307),
                num_turns: 2,
                total_cost_usd: 0.196635,
                result: Some("done".into()),
                session_id: Some("s".into()),
                api_error_status: None,
                permission_denials: vec![Denial {
                    tool_name: "Write".into(),
                    tool_input: json!({"file_path": "/p/h.txt", "content": "x"})
                }],
                errors: vec![],
                terminal_reason: Some("completed".into()),
            }
        );
        assert_eq!(r.error_message(), None);
        assert_eq!(r.permission_denials[0].summary(), "Write(/p/h.txt)");
    }

    /// What 2.1.332 writes differently, each read on purpose: its new `system` subtypes are
    /// `System` lines (the renderer shows none), its new fields are ignored, its result is read
    /// with `type` after the answer.
    #[test]
    fn parses_the_lines_of_2_1_332() {
        use crate::testutil::cli_2_1_332 as v;
        assert_eq!(
            p(v::INIT),
            Msg::Init(Init {
                session_id: "de382825-553f-47f3-9a37-bcf93dde753c".into(),
                model: "claude-opus-5-5".into(),
                cwd: "/tmp/proj".into(),
                permission_mode: "default".into(),
            })
        );
        for (line, subtype) in [
            (v::STATUS, "status"),
            (v::PERMISSION_DENIED, "permission_denied"),
        ] {
            assert_eq!(
                p(line),
                Msg::System {
                    subtype: subtype.into()
                }
            );
        }
        let stream = |event| {
            Msg::Stream(Stream {
                parent_tool_use_id: None,
                event,
            })
        };
        assert_eq!(
            p(v::MESSAGE_START),
            stream(Event::MessageStart {
                id: "msg_mock_2793bd3ce77144d7b637eedf".into()
            })
        );
        assert_eq!(
            p(v::DELTA),
            stream(Event::TextDelta {
                index: 0,
                text: "Hello from the mock Anthrop".into()
            })
        );
        assert!(
            same_as_general(v::DELTA.as_bytes()),
            "the fast path takes it"
        );
        assert_eq!(p(v::MESSAGE_STOP_ABANDONED), stream(Event::MessageStop));
        assert_eq!(
            p(v::API_RETRY),
            Msg::ApiRetry(ApiRetry {
                attempt: 1,
                max_retries: 10,
                retry_delay_ms: 570.0,
                error_status: None,
                error: "unknown".into(),
            })
        );
        let Msg::Assistant(a) = p(v::ASSISTANT_API_ERROR) else {
            panic!("not an assistant line")
        };
        assert_eq!(a.error.as_deref(), Some("server_error"));
        assert!(matches!(&a.content[..], [Block::Text(t)] if t.starts_with("API Error: 500 ")));
        let Msg::User(u) = p(v::USER_DENIED) else {
            panic!("not a user line")
        };
        assert!(
            matches!(&u.content[..], [UserBlock::ToolResult(r)] if r.is_error
            && r.tool_use_id == "toolu_mock_a13d993b046745d5bde69747")
        );
        let Msg::Result(r) = p(v::RESULT_API_ERROR) else {
            panic!("not a result")
        };
        assert_eq!(
            (r.is_error, r.api_error_status, r.terminal_reason.as_deref()),
            (true, Some(500), Some("api_error"))
        );
        assert!(r
            .error_message()
            .unwrap()
            .starts_with("API Error: 500 Mock error 500"));
        let Msg::Result(r) = p(v::RESULT_DENIED) else {
            panic!("not a result")
        };
        assert_eq!(
            (r.is_error, r.num_turns, r.total_cost_usd),
            (false, 2, 0.10068)
        );
        assert_eq!(
            r.permission_denials[0].summary(),
            "Write(/tmp/proj/hello.txt)"
        );
        assert_eq!(r.result.as_deref(), Some("Write step finished."));
    }

    /// Every line of every recording, and 2.1.332's lines, with `type` moved last after a
    /// string of up to 1 MiB: the same message. No kind is told by its first bytes.
    #[test]
    fn every_kind_parses_the_same_whatever_the_key_order() {
        use crate::testutil::{cli_2_1_332 as v, type_last};
        let mut lines: Vec<Vec<u8>> = crate::testutil::fixtures()
            .into_iter()
            .flat_map(|(_, data)| {
                data.split(|&c| c == b'\n')
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect();
        for l in [
            v::INIT,
            v::STATUS,
            v::PERMISSION_DENIED,
            v::MESSAGE_START,
            v::DELTA,
        ]
        .into_iter()
        .chain([v::MESSAGE_STOP_ABANDONED, v::API_RETRY, v::ASSISTANT_WRITE])
        .chain([v::USER_DENIED, v::ASSISTANT_API_ERROR])
        {
            lines.push(l.as_bytes().to_vec());
        }
        let mut kinds = std::collections::HashSet::new();
        for (i, l) in lines.iter().enumerate() {
            let Ok(text) = std::str::from_utf8(l) else {
                continue;
            };
            let pad = [0, 100, 8 * 1024, 64 * 1024][i % 4];
            let Some(moved) = type_last(text, pad) else {
                continue;
            };
            let want = parse_bytes(l);
            assert!(!matches!(want, Msg::Text(_) | Msg::Other { .. }), "{text}");
            assert_eq!(parse_bytes(moved.as_bytes()), want, "{moved}");
            let kind = format!("{want:?}");
            kinds.insert(kind.split(['(', ' ', '{']).next().unwrap_or("").to_owned());
        }
        // One line of each kind with a long string, in full.
        let huge = [
            v::INIT,
            v::STATUS,
            v::DELTA,
            v::ASSISTANT_WRITE,
            v::USER_DENIED,
        ];
        for l in huge {
            let moved = type_last(l, 1 << 20).unwrap();
            assert_eq!(parse_bytes(moved.as_bytes()), parse_bytes(l.as_bytes()));
        }
        for kind in [
            "Init",
            "ApiRetry",
            "System",
            "Assistant",
            "User",
            "Stream",
            "Result",
        ] {
            assert!(kinds.contains(kind), "{kind} missing from {kinds:?}");
        }
    }

    #[test]
    fn result_error_messages() {
        let r = |s: &str| match p(s) {
            Msg::Result(r) => r,
            other => panic!("{other:?}"),
        };
        let unknown = r(
            r#"{"type":"result","subtype":"error_during_execution","duration_ms":0,"is_error":true,"num_turns":0,"total_cost_usd":0,"permission_denials":[],"errors":["No conversation found with session ID: 0000"]}"#,
        );
        assert_eq!(
            unknown.error_message().as_deref(),
            Some("No conversation found with session ID: 0000")
        );
        let api = r(
            r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":500,"result":"API Error: 500 Mock error 500 (api_error). More."}"#,
        );
        assert_eq!(
            api.error_message().as_deref(),
            Some("API Error: 500 Mock error 500 (api_error). More.")
        );
        let interrupted = r(
            r#"{"type":"result","subtype":"error_during_execution","is_error":true,"terminal_reason":"aborted_streaming","errors":["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"]}"#,
        );
        assert_eq!(interrupted.user_errors().count(), 0);
        assert_eq!(
            interrupted.error_message().as_deref(),
            Some("error_during_execution (aborted_streaming)")
        );
        let status_only =
            r(r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":"529"}"#);
        assert_eq!(
            status_only.error_message().as_deref(),
            Some("API error 529")
        );
        // No is_error: anything but success is an error.
        let bare = r(r#"{"type":"result","subtype":"error_max_turns"}"#);
        assert!(bare.is_error);
        assert_eq!(bare.error_message().as_deref(), Some("error_max_turns"));
    }

    #[test]
    fn wrong_field_types_do_not_lose_the_line() {
        let m = p(
            r#"{"type":"result","subtype":7,"is_error":"yes","duration_ms":"12","num_turns":-1,"total_cost_usd":"0.5","permission_denials":{"a":1},"errors":[{"message":"bad"},3]}"#,
        );
        let Msg::Result(r) = m else {
            panic!("not a result")
        };
        assert!(r.is_error);
        assert_eq!(r.duration_ms, Some(12));
        assert_eq!(r.num_turns, 0);
        assert_eq!(r.total_cost_usd, 0.5);
        assert_eq!(r.errors, ["bad", "3"]);
        assert!(r.permission_denials.is_empty());
    }

    #[test]
    fn unknown_and_bad_lines() {
        assert_eq!(
            p(r#"{"type":"future_thing","x":1}"#),
            Msg::Other {
                kind: "future_thing".into()
            }
        );
        assert_eq!(p(r#"{"no_type":1}"#), Msg::Other { kind: "".into() });
        assert_eq!(p("not json at all"), Msg::Text("not json at all".into()));
        assert_eq!(p("[1,2]"), Msg::Text("[1,2]".into()));
        assert_eq!(p("42"), Msg::Text("42".into()));
        assert_eq!(p(""), Msg::Text("".into()));
        assert_eq!(
            p(r#"{"type":"assistant","message":{"content":[{"type":"te"#),
            Msg::Text(r#"{"type":"assistant","message":{"content":[{"type":"te"#.into())
        );
        // Deep nesting hits serde_json's recursion limit: an error, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(p(&deep), Msg::Text(_)));
    }

    #[test]
    fn invalid_utf8_is_read_lossily() {
        let mut bytes =
            br#"{"type":"assistant","message":{"content":[{"type":"text","text":"a"#.to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(br#"b"}]}}"#);
        let Msg::Assistant(a) = parse(&line(&bytes)) else {
            panic!("not assistant")
        };
        assert_eq!(a.content, vec![Block::Text("a\u{fffd}\u{fffd}b".into())]);
        assert_eq!(
            parse(&line(b"plain \xff text\x00")),
            Msg::Text("plain \u{fffd} text\0".into())
        );
        // Same in a delta, which goes through the fast path first.
        let mut bytes = br#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""#.to_vec();
        bytes.push(0xc3);
        bytes.extend_from_slice(br#""}}}"#);
        assert_eq!(
            parse(&line(&bytes)),
            Msg::Stream(Stream {
                parent_tool_use_id: None,
                event: Event::TextDelta {
                    index: 0,
                    text: "\u{fffd}".into()
                }
            })
        );
    }

    #[test]
    fn truncated_lines_keep_a_prefix() {
        let mut bytes = vec![b'x'; 1000];
        bytes[0] = b'{';
        let l = Line {
            bytes: bytes.clone(),
            total_len: 9_000_000,
            offset: 5,
        };
        let Msg::Truncated { prefix, total_len } = parse(&l) else {
            panic!("not truncated")
        };
        assert_eq!(total_len, 9_000_000);
        assert_eq!(prefix.chars().count(), TRUNCATED_PREFIX_CHARS);
        assert!(prefix.starts_with("{xxx"));
        // A multi-byte char cut by the framer becomes a replacement char, never a panic.
        let l = Line {
            bytes: "é".repeat(10).into_bytes()[..7].to_vec(),
            total_len: 100,
            offset: 0,
        };
        let Msg::Truncated { prefix, .. } = parse(&l) else {
            panic!("not truncated")
        };
        assert_eq!(prefix, "ééé\u{fffd}");
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let mut rng = crate::testutil::Rng(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.next_u64();
        let base = br#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}}"#;
        for _ in 0..20_000 {
            let mut b = base.to_vec();
            let edits = next() % 4 + 1;
            for _ in 0..edits {
                let pos = (next() as usize) % b.len();
                match next() % 3 {
                    0 => b[pos] = next() as u8,
                    1 => {
                        b.remove(pos);
                    }
                    _ => b.insert(pos, next() as u8),
                }
            }
            let _ = parse(&line(&b));
        }
    }

    #[test]
    fn tool_summaries() {
        let cases = [
            (
                "Bash",
                json!({"command": "npm test", "description": "d"}),
                "Bash(npm test)",
            ),
            (
                "Write",
                json!({"file_path": "src/lib.rs", "content": "x"}),
                "Write(src/lib.rs)",
            ),
            (
                "Edit",
                json!({"file_path": "/abs/a.rs", "old_string": "a"}),
                "Edit(/abs/a.rs)",
            ),
            ("Read", json!({"file_path": "README.md"}), "Read(README.md)"),
            (
                "Grep",
                json!({"pattern": "fn main", "path": "src"}),
                "Grep(fn main)",
            ),
            ("Glob", json!({"pattern": "**/*.rs"}), "Glob(**/*.rs)"),
            (
                "WebFetch",
                json!({"url": "https://x.y/z", "prompt": "p"}),
                "WebFetch(https://x.y/z)",
            ),
            (
                "Task",
                json!({"description": "find bugs", "prompt": "long"}),
                "Task(find bugs)",
            ),
            (
                "TodoWrite",
                json!({"todos": [{}, {}, {}]}),
                "TodoWrite(3 items)",
            ),
            ("TodoWrite", json!({"todos": [{}]}), "TodoWrite(1 item)"),
            (
                "mcp__gh__create_issue",
                json!({"title": "Bug", "n": 1}),
                "mcp__gh__create_issue(Bug)",
            ),
            ("Custom", json!({"n": 1}), "Custom"),
            ("Custom", json!(null), "Custom"),
            (
                "Bash",
                json!({"command": 5, "description": "fallback"}),
                "Bash(fallback)",
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(tool_summary(name, &input), want);
        }
    }

    #[test]
    fn tool_summary_is_one_short_line() {
        let long = "x".repeat(200);
        let s = tool_summary("Bash", &json!({ "command": long }));
        assert_eq!(s, format!("Bash({}…)", "x".repeat(79)));
        let s = tool_summary("Bash", &json!({"command": "\n  cd /tmp  \nmake\tall"}));
        assert_eq!(s, "Bash(cd /tmp…)");
        let s = tool_summary("Bash", &json!({"command": "a\u{1b}[31mb\r"}));
        assert_eq!(s, "Bash(a [31mb)");
        assert_eq!(one_line(&"é".repeat(80), 80), "é".repeat(80));
        assert_eq!(
            one_line(&"é".repeat(81), 80),
            format!("{}…", "é".repeat(79))
        );
        assert_eq!(one_line("", 80), "");
    }

    /// The fast path and the general one agree; returns whether the fast path took the line.
    fn same_as_general(b: &[u8]) -> bool {
        let general = parse_bytes_general(b);
        assert_eq!(parse_bytes(b), general, "{}", String::from_utf8_lossy(b));
        if let Some(d) = text_delta(b) {
            // `clean` exactly when sanitizing would find nothing but the newlines it splits at.
            let clean = !d
                .text
                .bytes()
                .any(|c| c != b'\n' && crate::scan::is_unclean(c));
            assert_eq!(d.clean, clean, "{}", String::from_utf8_lossy(b));
        }
        match text_delta_line(b) {
            Some(stream) => {
                assert_eq!(Msg::Stream(stream), general);
                true
            }
            None => false,
        }
    }

    const SAMPLE_DELTA: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Runnin"}},"session_id":"3de759a8-2e73-4cfa-a1bb-60dea8c48e6a","parent_tool_use_id":null,"uuid":"e7ccae0a-df20-4486-a70e-86bd8f333fad"}"#;

    #[test]
    fn text_delta_fast_path_reads_the_cli_line() {
        assert_eq!(
            text_delta_line(SAMPLE_DELTA.as_bytes()),
            Some(Stream {
                parent_tool_use_id: None,
                event: Event::TextDelta {
                    index: 0,
                    text: "Runnin".into()
                }
            })
        );
        let b = delta_line(
            "3",
            r"a\n\u00e9\ud83d\ude00",
            r#","parent_tool_use_id":"toolu_1"}"#,
        );
        assert_eq!(
            text_delta_line(b.as_bytes()),
            Some(Stream {
                parent_tool_use_id: Some("toolu_1".into()),
                event: Event::TextDelta {
                    index: 3,
                    text: "a\né😀".into()
                }
            })
        );
    }

    #[test]
    fn text_delta_fast_path_matches_the_fixtures() {
        let (mut lines, mut fast) = (0, 0);
        for (_, data) in crate::testutil::fixtures() {
            for l in data.split(|&c| c == b'\n') {
                lines += 1;
                let took = same_as_general(l);
                // Every text delta the CLI wrote has the shape the fast path expects.
                let is_text_delta =
                    l.starts_with(DELTA_HEAD) && l.windows(12).any(|w| w == br#""text_delta""#);
                assert_eq!(took, is_text_delta, "{}", String::from_utf8_lossy(l));
                fast += usize::from(took);
            }
        }
        assert!(lines > 100 && fast > 10, "{lines} lines, {fast} fast");
    }

    #[test]
    fn text_delta_fast_path_matches_generated_lines() {
        // (text as written in the JSON, whether the fast path takes it)
        let texts = [
            ("", true),
            ("Runnin", true),
            ("a long enough text to cross several eight-byte words", true),
            (r"\n", true),
            (r"\t\b\f\r", true),
            (r#"\""#, true),
            (r"\\", true),
            (r"\/", true),
            (r"x\\\\\\y", true),
            (r"\u00e9", true),
            (r"\u00E9x", true),
            (r"\u0000", true),
            (r"\ud83d\ude00", true),
            (r"\uD83D\uDE00tail", true),
            ("é漢😀 and more multibyte ✓", true),
            (r"é\u00e9é", true),
            (r"\ud800", false),
            (r"\ud800x", false),
            (r"\ud800\u0041", false),
            (r"\ud800\ud800", false),
            (r"\udc00", false),
            (r"\x", false),
            (r"\u12", false),
            (r"\u12g4", false),
            (r"\U00e9", false),
            ("\u{1}", false),
            ("tab\there", false),
            ("\u{7f}", true),
            ("x\u{7f}y and more text to cross a sixteen-byte block", true),
            (r"\u001b[31mred\u001b[0m", true),
            (r"\u0009\u000a\u001f\u007f\u0080", true),
            (r"bell\u0007", true),
        ];
        let indexes = [
            ("0", true),
            ("7", true),
            ("18446744073709551615", true),
            ("18446744073709551616", false),
            ("99999999999999999999999", false),
            ("00", false),
            ("01", false),
            ("-1", false),
            ("-0", false),
            ("1.0", false),
            ("1e2", false),
            (" 1", false),
            ("\"1\"", false),
            ("null", false),
        ];
        let tails = [
            ("}", true),
            (
                r#","session_id":"s","parent_tool_use_id":null,"uuid":"u"}"#,
                true,
            ),
            (r#","parent_tool_use_id":"toolu_1"}"#, true),
            (
                r#","session_id":"s","parent_tool_use_id":null,"uuid":"u","api_message_id":"msg_1"}"#,
                true,
            ),
            (
                r#","uuid":"u","parent_tool_use_id":"p","session_id":"s"}"#,
                true,
            ),
            (r#","parent_tool_use_id":"é"}"#, true),
            (r#","extra":"x","extra":null}"#, true),
            (r#","":""}"#, true),
            (r#","extra":1}"#, false),
            (r#","extra":{}}"#, false),
            (
                r#","parent_tool_use_id":null,"parent_tool_use_id":"p"}"#,
                false,
            ),
            (r#","parent_tool_use_id":"a\"b"}"#, false),
            (r#","parent_tool_use_id":"\u0070"}"#, false),
            (r#","parent\u005ftool_use_id":"p"}"#, false),
            (r#","parent_tool_use_id":1}"#, false),
            (r#","parent_tool_use_id":true}"#, false),
            (r#","parent_tool_use_id":nul}"#, false),
            (r#","type":"stream_event"}"#, false),
            (r#","event":null}"#, false),
            (r#","type":"assistant"}"#, false),
            (r#", "uuid":"u"}"#, false),
            (r#","uuid" :"u"}"#, false),
            (r#","uuid":"u",}"#, false),
            ("} ", false),
            ("}\r", false),
            ("}x", false),
            ("}}", false),
            (",", false),
            ("", false),
        ];
        for (text, text_ok) in texts {
            for (index, index_ok) in indexes {
                for (tail, tail_ok) in tails {
                    let b = delta_line(index, text, tail);
                    let took = same_as_general(b.as_bytes());
                    assert_eq!(took, text_ok && index_ok && tail_ok, "{b}");
                }
            }
        }
        // Random texts from pieces that meet at every boundary: escapes next to runs, surrogate
        // halves in any order, stray quotes, backslashes and control characters.
        let pieces = [
            "a",
            "é",
            "漢",
            "😀",
            " ",
            r"\n",
            r#"\""#,
            r"\\",
            r"\/",
            r"\b",
            r"\u00e9",
            r"\u0000",
            r"\uD83D",
            r"\uDE00",
            r"\ud83d\ude00",
            r"\x",
            "\\",
            "\"",
            "\u{1}",
            "\t",
            "}",
        ];
        let mut seed: u64 = 0x1234_5678_9abc_def1;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        };
        let mut fast = 0;
        for _ in 0..5_000 {
            let text: String = (0..next() % 12)
                .map(|_| pieces[next() % pieces.len()])
                .collect();
            let tail = tails[next() % 5].0;
            fast += usize::from(same_as_general(delta_line("1", &text, tail).as_bytes()));
        }
        assert!(fast > 500, "{fast}");
        // Other shapes all go to the general path.
        for b in [
            r#"{"event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}},"type":"stream_event"}"#,
            r#"{"type": "stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"},"index":0}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"text":"x","type":"text_delta"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","text":"y"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"},"index":1}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"x"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}},"parent_tool_use_id":"p","event":{}}"#,
        ] {
            assert!(!same_as_general(b.as_bytes()), "{b}");
        }
        // Invalid UTF-8 anywhere: the general path reads it lossily.
        for (text, tail) in [
            (&b"a\xc3"[..], &b"}"[..]),
            (b"\xff", b"}"),
            (b"\xed\xa0\x80", b"}"),
            (b"ok", b",\"uuid\":\"\xff\"}"),
            (b"ok", b",\"parent_tool_use_id\":\"\xc3\"}"),
            (b"\\n\xc3", b"}"),
        ] {
            let mut b = delta_line("0", "", "").into_bytes();
            b.truncate(b.len() - 3);
            b.extend_from_slice(text);
            b.extend_from_slice(b"\"}}");
            b.extend_from_slice(tail);
            assert!(!same_as_general(&b), "{}", String::from_utf8_lossy(&b));
        }
    }

    #[test]
    fn common_prefix_finds_the_first_difference() {
        let mut rng = crate::testutil::Rng(0x51ed_2701);
        for _ in 0..20_000 {
            let n = rng.below(40);
            let a = rng.bytes(n);
            let mut b = a.clone();
            b.truncate(rng.below(a.len() + 1));
            if !b.is_empty() && rng.below(2) == 0 {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            let more = rng.below(5);
            b.extend(rng.bytes(more));
            let naive = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            assert_eq!(common_prefix(&a, &b), naive, "{a:?} {b:?}");
        }
    }

    /// A text delta as 2.1.332 writes it: `api_message_id` after the uuid, which changes on every
    /// line.
    const SAMPLE_DELTA_332: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello from the mock Anthrop"}},"session_id":"3c51411a-8ca3-48d4-9bc6-8982346afca4","parent_tool_use_id":null,"uuid":"dbce6dee-3144-486a-a1b2-f2542b89e525","api_message_id":"msg_mock_2793bd3ce77144d7b637eedf"}"#;

    /// `DeltaParser` parses `b` as `text_delta` does alone, and as the general path does (the
    /// fast path's own reference); returns whether it reused its memory for it.
    fn check(p: &mut DeltaParser, b: &[u8]) -> bool {
        let before = p.reused();
        assert_eq!(p.parse(b), text_delta(b), "{}", String::from_utf8_lossy(b));
        same_as_general(b);
        p.reused() > before
    }

    /// The lines of one message from either CLI, the uuid new on every line: all but the first
    /// take the short check.
    #[test]
    fn delta_parser_reuses_the_tail_of_both_clis_lines() {
        for sample in [SAMPLE_DELTA, SAMPLE_DELTA_332] {
            let mut p = DeltaParser::default();
            let uuid = sample.find(r#""uuid":""#).unwrap() + r#""uuid":""#.len();
            for i in 0..100u64 {
                let mut line = sample.to_string();
                line.replace_range(uuid..uuid + 36, &format!("{:036x}", i * 7919));
                assert!(text_delta(line.as_bytes()).is_some(), "{line}");
                assert_eq!(check(&mut p, line.as_bytes()), i > 0, "{line}");
            }
        }
    }

    /// Tails of five fields in every order, the changing string in every position: the memory
    /// is reused for a changed free string wherever it sits, and for nothing else (the parent's
    /// string, two changed strings, a changed key, a string that became null, an escape, a
    /// number), and every line parses as it parses alone.
    #[test]
    fn delta_parser_reuses_the_tail_whatever_the_changing_values_position() {
        const SESSION: &str = r#""3c51411a-8ca3-48d4-9bc6-8982346afca4""#;
        for parent in ["null", r#""toolu_01""#] {
            let fields = [
                ("session_id", SESSION),
                ("parent_tool_use_id", parent),
                ("uuid", r#""dbce6dee-3144-486a-a1b2-f2542b89e525""#),
                ("api_message_id", r#""msg_mock_2793bd3ce77144d7b637eedf""#),
                ("note", r#""""#),
            ];
            let n = fields.len();
            let orders = (0..n.pow(n as u32)).filter_map(|mut code| {
                let order: Vec<usize> = (0..n)
                    .map(|_| {
                        let i = code % n;
                        code /= n;
                        i
                    })
                    .collect();
                let distinct = (0..n).all(|i| order.contains(&i));
                distinct.then_some(order)
            });
            let mut orders_seen = 0;
            for order in orders {
                orders_seen += 1;
                let line = |changed: &[(usize, &str)], key_of: Option<usize>| {
                    let mut tail = String::new();
                    for &i in &order {
                        let (key, value) = fields[i];
                        let value = changed
                            .iter()
                            .find(|(c, _)| *c == i)
                            .map_or(value, |(_, v)| *v);
                        let key = if key_of == Some(i) { "other_key" } else { key };
                        tail.push_str(&format!(r#","{key}":{value}"#));
                    }
                    tail.push('}');
                    delta_line("0", r"a line\n", &tail)
                };
                let base = line(&[], None);
                // Whether the line right after the base line reuses the base's memory.
                let after_base = |b: &str| {
                    let mut p = DeltaParser::default();
                    assert!(!check(&mut p, base.as_bytes()), "{base}");
                    check(&mut p, b.as_bytes())
                };
                for (i, (key, _)) in fields.iter().enumerate() {
                    let is_free = *key != "parent_tool_use_id";
                    // Another string, of any length, in the free field: reused.
                    for v in [r#""x""#, r#""a longer value é 漢""#, r#""""#] {
                        let b = line(&[(i, v)], None);
                        let same = b == base;
                        assert_eq!(after_base(&b), is_free || same, "{b}");
                    }
                    // Changes the short check must not take: each checked whole.
                    let others = [
                        line(&[(i, r#""a\nb""#)], None),
                        line(&[(i, "null")], None),
                        line(&[(i, "1")], None),
                        line(&[(i, r#""x"#)], None),
                        line(&[], Some(i)),
                        line(&[(i, r#""x""#), ((i + 1) % n, r#""z""#)], None),
                    ];
                    for b in others.iter().filter(|b| **b != base) {
                        assert!(!after_base(b), "{b}");
                    }
                }
                // The parent's string changed: a different result, never the remembered one.
                if parent != "null" {
                    let b = line(&[(1, r#""toolu_02""#)], None);
                    assert!(!after_base(&b), "{b}");
                    let mut p = DeltaParser::default();
                    p.parse(base.as_bytes());
                    let d = p.parse(b.as_bytes()).expect("a delta");
                    assert_eq!(d.parent_tool_use_id, Some("toolu_02"));
                }
                // A message's lines, each with a new uuid, whatever the order.
                let mut p = DeltaParser::default();
                for k in 0..20 {
                    let uuid = format!(r#""u-{k}""#);
                    assert_eq!(check(&mut p, line(&[(2, &uuid)], None).as_bytes()), k > 0);
                }
                // The changed string in turn in each free field, against the same memory (the
                // first of those lines).
                for k in 0..30 {
                    let field = [0, 2, 3, 4][k % 4];
                    let value = format!(r#""v-{k}""#);
                    let mut changed = vec![(2, r#""u-0""#), (field, value.as_str())];
                    changed.retain(|&(f, v)| f != field || v == value);
                    assert!(check(&mut p, line(&changed, None).as_bytes()), "{k}");
                }
            }
            assert_eq!(orders_seen, 120);
        }
    }

    /// The memory of `DeltaParser` never changes a result: every line, in any order, parses as
    /// `text_delta` parses it alone.
    #[test]
    fn delta_parser_with_memory_matches_text_delta() {
        let mut p = DeltaParser::default();
        // The fixtures, in order.
        for (_, data) in crate::testutil::fixtures() {
            for l in data.split(|&c| c == b'\n') {
                check(&mut p, l);
            }
        }
        // Lines that share the remembered tail but for one value, or part of it.
        let with_parent = delta_line(
            "1",
            "x",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u1"}"#,
        );
        let variants = [
            delta_line(
                "0",
                "y",
                r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2"}"#,
            ),
            delta_line(
                "0",
                "y",
                r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2","x":1}"#,
            ),
            delta_line(
                "0",
                "y",
                r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"\n"}"#,
            ),
            delta_line(
                "0",
                "y",
                r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":null}"#,
            ),
            delta_line(
                "0",
                "y",
                r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"é"}"#,
            ),
            delta_line(
                "0",
                "y",
                r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u"} "#,
            ),
            delta_line(
                "0",
                "y",
                r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u""#,
            ),
            delta_line(
                "0",
                "y",
                r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2","api_message_id":"m"}"#,
            ),
            delta_line(
                "0",
                "y",
                r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u1","api_message_id":"m"}"#,
            ),
            delta_line(
                "0",
                "y",
                r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2","api_message_id":"m2"}"#,
            ),
            delta_line(
                "0",
                "y",
                r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2","api_message_id":null}"#,
            ),
        ];
        for v in &variants {
            check(&mut p, with_parent.as_bytes());
            check(&mut p, v.as_bytes());
            check(&mut p, v.as_bytes());
        }
        check(&mut p, SAMPLE_DELTA.as_bytes());
        assert!(!p.memory.tail.is_empty(), "the CLI's line is remembered");
        // The mutations of the fast path's own test, each after a line that sets the memory (the
        // unchanged line, or the mutation before it).
        let mut rng = crate::testutil::Rng(0x9e37_79b9_7f4a_7c15);
        let interesting = b"\"\\{}:,0123456789unlx \x00\x1f\x7f\x80\xc3\xa9\xed";
        let mut previous = Vec::new();
        for round in 0..40_000 {
            let base = [SAMPLE_DELTA, SAMPLE_DELTA_332][round % 2].as_bytes();
            let mut b = base.to_vec();
            // Mostly in the tail, where the memory is used.
            let tail_from = b.len() - 200;
            for _ in 0..rng.below(3) + 1 {
                let pos = tail_from + rng.below(b.len() - tail_from + 1);
                let byte = interesting[rng.below(interesting.len())];
                match rng.below(3) {
                    0 if pos < b.len() => b[pos] = byte,
                    1 if pos < b.len() => {
                        b.remove(pos);
                    }
                    _ => b.insert(pos, byte),
                }
            }
            if rng.below(2) == 0 {
                check(&mut p, base);
            } else {
                check(&mut p, &previous);
            }
            check(&mut p, &b);
            previous = b;
        }
    }

    #[test]
    fn text_delta_fast_path_matches_cut_and_mutated_lines() {
        let samples = [
            SAMPLE_DELTA.to_string(),
            SAMPLE_DELTA_332.to_string(),
            delta_line(
                "12",
                r#"a\"\\\/\n\u00e9\ud83d\ude00é"#,
                r#","parent_tool_use_id":"toolu_01","uuid":"u"}"#,
            ),
        ];
        for s in &samples {
            assert!(same_as_general(s.as_bytes()));
            for cut in 0..s.len() {
                assert!(!same_as_general(&s.as_bytes()[..cut]));
            }
        }
        let mut rng = crate::testutil::Rng(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.next_u64();
        // Bytes that matter to the grammar are far likelier than random ones.
        let interesting = b"\"\\{}:,0123456789unlx \x00\x1f\x7f\x80\xc3\xa9\xed";
        let mut fast = 0;
        for _ in 0..20_000 {
            let mut b = samples[(next() % 3) as usize].as_bytes().to_vec();
            for _ in 0..next() % 3 + 1 {
                let pos = (next() as usize) % (b.len() + 1);
                let byte = if next() % 4 == 0 {
                    next() as u8
                } else {
                    interesting[(next() as usize) % interesting.len()]
                };
                match next() % 3 {
                    0 if pos < b.len() => b[pos] = byte,
                    1 if pos < b.len() => {
                        b.remove(pos);
                    }
                    _ => b.insert(pos, byte),
                }
            }
            fast += usize::from(same_as_general(&b));
        }
        // Some mutations keep the shape (inside the text or the ids), so both sides get tested.
        assert!(fast > 1000, "{fast}");
    }
}
