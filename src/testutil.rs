//! Helpers shared by the tests of this crate and of `tests/` (and `examples/pipeline`): a
//! deterministic random generator (no extra crate, and a failure reproduces from its seed), whole
//! lines, chunked framing, the recorded CLI transcripts, a text delta in the CLI's shape, lines
//! in other key orders (2.1.332's result, `type` last), a finished task's record, an editor that
//! takes every write.

use std::path::PathBuf;

use crate::framing::{Framer, Line};
use crate::task::TaskRecord;

/// Where the real CLI's recorded runs are: one directory per CLI version
/// (`claude-cli-<version>`), each with one directory per scenario holding its `stdout.jsonl`.
pub fn fixtures_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The runs recorded from CLI 2.1.197, for tests of one exact scenario.
pub fn fixture_dir() -> PathBuf {
    fixtures_root().join("claude-cli-2.1.197")
}

/// Every recorded transcript of every CLI version, as (`claude-cli-<version>/<scenario>`, its
/// `stdout.jsonl`), sorted by name: a version recorded later is covered without a change here.
/// `fixtures_root().join(name)` is the scenario's directory.
pub fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut versions = 0;
    for v in std::fs::read_dir(fixtures_root()).expect("the fixtures directory") {
        let version = v.expect("a fixture version").path();
        let Some(vname) = version
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            continue;
        };
        if !vname.starts_with("claude-cli-") || !version.is_dir() {
            continue;
        }
        versions += 1;
        let before = out.len();
        for e in std::fs::read_dir(&version).expect("a fixture version's directory") {
            let dir = e.expect("a fixture").path();
            if let Ok(b) = std::fs::read(dir.join("stdout.jsonl")) {
                let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
                out.push((format!("{vname}/{}", name.unwrap_or_default()), b));
            }
        }
        // A version whose scenarios hold no `stdout.jsonl` (renamed, compressed) would
        // otherwise go untested without anyone noticing.
        assert!(
            out.len() > before,
            "no stdout.jsonl under {}",
            version.display()
        );
    }
    out.sort();
    assert!(versions >= 1 && out.len() >= 10, "fixtures: {}", out.len());
    out
}

/// A `text_delta` line in exactly the CLI's shape (which the in-place parser takes), with
/// `text` as it stands between the JSON string's quotes and `tail` after the event.
pub fn delta_line(index: &str, text: &str, tail: &str) -> String {
    format!(
        r#"{{"type":"stream_event","event":{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":"{text}"}}}}{tail}"#
    )
}

/// A successful `result` line in 2.1.332's key order: `type` late, after the whole answer.
/// `answer_json` is the answer as a JSON string literal (quotes included), so a test can build
/// a huge one without escaping it again.
pub fn result_line_2_1_332(answer_json: &str, cost: f64, turns: u64) -> String {
    format!(
        r#"{{"duration_api_ms":160,"stop_reason":"end_turn","session_id":"3c51411a-8ca3-48d4-9bc6-8982346afca4","total_cost_usd":{cost},"usage":{{"input_tokens":12305,"output_tokens":34,"service_tier":"standard","iterations":[],"speed":"standard","fallback_credit":null}},"modelUsage":{{"claude-opus-5-5":{{"inputTokens":12305,"outputTokens":34,"costUSD":{cost}}}}},"permission_denials":[],"terminal_reason":"completed","fast_mode_state":"off","fast_mode_disabled_reason":"sdk_opt_in_required","subagent_stats":{{"spawned":0,"killed":{{"parent":0,"user":0,"system":0}},"by_type":{{}}}},"safety_stops":0,"is_error":false,"num_turns":{turns},"subtype":"success","api_error_status":null,"result":{answer_json},"ttft_ms":289,"type":"result","duration_ms":485,"uuid":"dd0e3518-ea31-4515-b9f1-fac6a08b97e6","begun_message_ids":["msg_1"],"ttft_stream_ms":266,"time_to_request_ms":222,"first_content_frame_ms":267,"queued_turn_count":0,"result_index":0,"model_usage_since_last_result":{{}}}}"#
    )
}

/// `line`, a JSON object whose first member is `type` (as every line of 2.1.197 and most of
/// 2.1.332 begin), with that member moved to the end after `pad` bytes of a string under the
/// key `padding` (none when 0): the same message with its kind known only at its end, after a
/// long string. `None` for a line that does not begin with `{"type":"…",`. Works on the text,
/// so every other byte stays as it was.
pub fn type_last(line: &str, pad: usize) -> Option<String> {
    let rest = line.strip_prefix(r#"{"type":""#)?;
    let end = rest.find('"')?;
    let (kind, rest) = rest.split_at(end);
    let body = rest.strip_prefix("\",")?.strip_suffix('}')?;
    let padding = if pad > 0 {
        format!(r#","padding":"{}""#, "p".repeat(pad))
    } else {
        String::new()
    };
    Some(format!(r#"{{{body}{padding},"type":"{kind}"}}"#))
}

/// The keys of a JSON object's top level, in the order the line has them (`serde_json::Value`
/// sorts them); empty for anything else.
pub fn top_level_keys(line: &[u8]) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(k) = m.next_key::<String>()? {
                        m.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_slice::<Keys>(line).map_or_else(|_| Vec::new(), |k| k.0)
}

/// The record of a task with one completed run whose output starts at offset 0: what renders
/// a whole transcript as one run.
pub fn finished_record() -> TaskRecord {
    serde_json::from_str(
        r#"{"schema":1,"id":1,"name":"t","cwd":"/","status":"completed","session_id":"s",
        "created_at_ms":0,"options":{"cmd":["claude"],"permission_mode":"default"},
        "runs":[{"n":1,"prompt_title":"t","transcript_offset":0,"status":"completed",
        "started_at_ms":0,"ended_at_ms":1000,"exit_code":0}]}"#,
    )
    .expect("a record")
}

/// A complete line at offset 0.
pub fn line(bytes: &[u8]) -> Line {
    Line {
        bytes: bytes.to_vec(),
        total_len: bytes.len(),
        offset: 0,
    }
}

/// Frames `data` as read in pieces ending at `cuts` (increasing offsets), then the rest, checking
/// on the way that the framer never holds more than `max_line`.
pub fn frame_chunked(data: &[u8], cuts: &[usize], max_line: usize, start: u64) -> Vec<Line> {
    let mut f = Framer::new(max_line, start);
    let mut out = Vec::new();
    let mut prev = 0;
    for &c in cuts {
        f.push(&data[prev..c], &mut out);
        assert!(f.buffered() <= max_line);
        prev = c;
    }
    f.push(&data[prev..], &mut out);
    f.finish(&mut out);
    assert_eq!(f.buffered(), 0);
    assert_eq!(f.offset(), start + data.len() as u64);
    out
}

/// xorshift64*.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// An editor for tests that need none: events go nowhere, every write is taken.
pub struct NoEditor;

#[async_trait::async_trait]
impl crate::editor::Editor for NoEditor {
    async fn event(&self, _ev: rmpv::Value) {}

    async fn write_lines(
        &self,
        _buf: i64,
        _start: usize,
        _lines: &[String],
        _sent: crate::outgoing::Sent,
    ) -> Result<crate::editor::Written, crate::editor::WriteError> {
        Ok(crate::editor::Written::Applied)
    }

    async fn write_fallback(
        &self,
        _buf: i64,
        _start: usize,
        _lines: &[String],
    ) -> Result<(), crate::editor::WriteError> {
        Ok(())
    }
}
