//! Helpers shared by the tests of this crate and of `tests/` (and `examples/pipeline`): a
//! deterministic random generator (no extra crate, and a failure reproduces from its seed), whole
//! lines, chunked framing, the recorded CLI transcripts, a text delta in the CLI's shape, lines
//! in other key orders (2.1.332's result, `type` last), a finished task's record, an editor that
//! takes every write.

use std::path::PathBuf;

use crate::task::TaskRecord;
use crate::transcript::framing::{Framer, Line};

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
/// `fixtures_root().join(name)` is the scenario's directory. The runs kept compressed
/// (`stdout.jsonl.gz`, past 256 KiB: the floods) are not among them, as every test here feeds
/// each run whole many times; the crate's own tests read those with [`fixture_stdout`].
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

/// The `claude-cli-<version>` directories under `root`, sorted (none if it does not exist).
pub fn version_dirs(root: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("claude-cli-"))
        })
        .collect();
    dirs.sort();
    dirs
}

/// What the CLI wrote in the recorded run `dir`: its `stdout.jsonl`, or its `stdout.jsonl.gz`
/// decompressed (flate2 is a dev-dependency, so only the crate's own tests have this); `None`
/// when the directory holds neither. A compressed file that does not decompress is a broken
/// fixture: a panic naming it.
#[cfg(test)]
pub fn fixture_stdout(dir: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    if let Ok(b) = std::fs::read(dir.join("stdout.jsonl")) {
        return Some(b);
    }
    let gz = dir.join("stdout.jsonl.gz");
    let file = std::fs::File::open(&gz).ok()?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", gz.display()));
    Some(out)
}

/// A `text_delta` line in exactly the CLI's shape (which the in-place parser takes), with
/// `text` as it stands between the JSON string's quotes and `tail` after the event.
pub fn delta_line(index: &str, text: &str, tail: &str) -> String {
    format!(
        r#"{{"type":"stream_event","event":{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":"{text}"}}}}{tail}"#
    )
}

/// Lines as CLI 2.1.332 writes them (from real runs against the mock API; long lists cut):
/// what it writes differently from 2.1.197, for the parser's and the renderer's tests.
pub mod cli_2_1_332 {
    /// New fields (capabilities, memory_paths, ...) and the default model `claude-opus-5-5`.
    pub const INIT: &str = r#"{"type":"system","subtype":"init","cwd":"/tmp/proj","session_id":"de382825-553f-47f3-9a37-bcf93dde753c","tools":["Task","Bash","CronCreate","CronDelete","CronList","Edit","EnterWorktree","ExitWorktree","ListAgents","Monitor","NotebookEdit","Read","ReportFindings","ScheduleWakeup","SendMessage","Skill","TaskStop","ToolSearch","WebFetch","WebSearch","Workflow","Write"],"mcp_servers":[],"model":"claude-opus-5-5","permissionMode":"default","slash_commands":["deep-research","dataviz"],"terminal_slash_commands":["doctor","color","focus","reload-plugins"],"apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":"2.1.332","output_style":"default","agents":["claude","Explore","general-purpose","Plan","statusline-setup"],"skills":["deep-research"],"plugins":[{"name":"cc-plugin-agents-md","path":"builtin","source":"cc-plugin-agents-md@builtin"}],"capabilities":["interrupt_receipt_v1","interrupt_cancel_queued_v1"],"analytics_disabled":true,"product_feedback_disabled":true,"served_by_anthropic":false,"uuid":"667bb860-40f3-4499-8888-ee67598bc4d3","sandbox_enabled":false,"memory_paths":{"auto":"/tmp/home/.claude/projects/-tmp-proj/memory/"},"original_cwd":"/tmp/proj","additional_directories":[],"messaging_socket_path":"/tmp/cc-socks/16694.sock","fast_mode_state":"off","fast_mode_disabled_reason":"sdk_opt_in_required","per_turn_effort_active":true,"ultrathink_available":false,"ultrathink_typed_raises":false,"view_mode":"default"}"#;
    /// Before every API request.
    pub const STATUS: &str = r#"{"type":"system","subtype":"status","status":"requesting","session_id":"de382825-553f-47f3-9a37-bcf93dde753c","uuid":"872fc30e-494e-410a-b48e-6f9d4ddabe98"}"#;
    /// A tool call the permission mode refused (new; the result's `permission_denials` and
    /// the call's `tool_result` say it too).
    pub const PERMISSION_DENIED: &str = r#"{"type":"system","subtype":"permission_denied","tool_name":"Write","tool_use_id":"toolu_mock_a13d993b046745d5bde69747","message":"Claude requested permissions to write to /tmp/proj/hello.txt, but you haven't granted it yet.","uuid":"af81661a-41e8-4040-9d8c-5f71197ccea6","session_id":"de382825-553f-47f3-9a37-bcf93dde753c"}"#;
    /// `ttft_ms`, `thinking_display` and `api_message_id` after the uuid.
    pub const MESSAGE_START: &str = r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"msg_mock_2793bd3ce77144d7b637eedf","type":"message","role":"assistant","model":"claude-opus-5-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12305,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}},"session_id":"3c51411a-8ca3-48d4-9bc6-8982346afca4","parent_tool_use_id":null,"uuid":"db1f1080-1357-40a3-8314-60fda7c408b6","ttft_ms":49,"thinking_display":"updates","api_message_id":"msg_mock_2793bd3ce77144d7b637eedf"}"#;
    /// `api_message_id` after the uuid, which changes on every line.
    pub const DELTA: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello from the mock Anthrop"}},"session_id":"3c51411a-8ca3-48d4-9bc6-8982346afca4","parent_tool_use_id":null,"uuid":"dbce6dee-3144-486a-a1b2-f2542b89e525","api_message_id":"msg_mock_2793bd3ce77144d7b637eedf"}"#;
    /// The end of a message whose stream broke: its blocks are abandoned, and a retry follows.
    pub const MESSAGE_STOP_ABANDONED: &str = r#"{"type":"stream_event","event":{"type":"message_stop"},"session_id":"75a24168-a139-4ce3-abd6-32e6e4772c6b","parent_tool_use_id":null,"uuid":"b714ba06-0911-4b0e-a855-1c8ec85db2ca","api_message_id":"msg_mock_2793bd3ce77144d7b637eedf","abandoned_blocks":{"api_message_id":"msg_mock_2793bd3ce77144d7b637eedf","from_block_index":0}}"#;
    /// A retry after a broken stream: no HTTP status.
    pub const API_RETRY: &str = r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":570,"error_status":null,"error":"unknown","session_id":"75a24168-a139-4ce3-abd6-32e6e4772c6b","uuid":"4e65c165-a94a-4a9d-a39b-511a9234dc5e"}"#;
    pub const ASSISTANT_WRITE: &str = r#"{"type":"assistant","message":{"id":"msg_mock_f81536cc5b5c43d4b90beadc","type":"message","role":"assistant","model":"claude-opus-5-5","content":[{"type":"tool_use","id":"toolu_mock_a13d993b046745d5bde69747","name":"Write","input":{"file_path":"/tmp/proj/hello.txt","content":"hello from the mock\n"}}],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12308,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"},"context_management":null},"parent_tool_use_id":null,"session_id":"de382825-553f-47f3-9a37-bcf93dde753c","uuid":"e23d09ee-51ce-4bb7-8628-f7c61e17a853","timestamp":"2026-12-06T10:14:05.827Z","request_id":"req_mock_3bed9cad3d2b44eca3dd5540"}"#;
    /// `tool_result_meta` (new) after the result.
    pub const USER_DENIED: &str = r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","content":"Claude requested permissions to write to /tmp/proj/hello.txt, but you haven't granted it yet.","is_error":true,"tool_use_id":"toolu_mock_a13d993b046745d5bde69747"}]},"parent_tool_use_id":null,"session_id":"de382825-553f-47f3-9a37-bcf93dde753c","uuid":"63d45166-51ab-4697-8053-22b03299f103","timestamp":"2026-12-06T10:14:05.908Z","tool_use_result":"Error: Claude requested permissions to write to /tmp/proj/hello.txt, but you haven't granted it yet.","tool_result_meta":[{"id":"toolu_mock_a13d993b046745d5bde69747","non_execution_kind":"user-rejected","permission_decision":{"decision":"reject","source":"config"}}]}"#;
    /// The synthetic message of an API failure: keys in another order inside `message`, and
    /// `is_api_error_message`, `api_error_status`, `api_error_type` (new).
    pub const ASSISTANT_API_ERROR: &str = r#"{"type":"assistant","message":{"diagnostics":null,"id":"03da446d-43ef-4506-b3b5-e709bdefc14f","container":null,"model":"<synthetic>","role":"assistant","stop_details":null,"stop_reason":"stop_sequence","stop_sequence":"","type":"message","usage":{"output_tokens_details":null,"input_tokens":0,"output_tokens":0},"content":[{"type":"text","text":"API Error: 500 Mock error 500 (api_error). This is a server-side issue, usually temporary — try again in a moment."}],"context_management":null},"parent_tool_use_id":null,"session_id":"ca959dbd-5a69-44ea-a0f2-52fa239c6314","uuid":"a6783f83-0632-42b5-97f4-f0f7bb50d0fe","timestamp":"2026-12-06T10:16:21.016Z","error":"server_error","request_id":"req_mock_fca99a2b805843008c609f80","is_api_error_message":true,"api_error_status":500,"api_error_type":"api_error"}"#;
    /// The result of that failure: `type` after `result`, and the new fields.
    pub const RESULT_API_ERROR: &str = r#"{"duration_api_ms":0,"stop_reason":"stop_sequence","session_id":"ca959dbd-5a69-44ea-a0f2-52fa239c6314","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0},"modelUsage":{},"permission_denials":[],"terminal_reason":"api_error","fast_mode_state":"off","fast_mode_disabled_reason":"sdk_opt_in_required","subagent_stats":{"spawned":0,"by_type":{}},"safety_stops":0,"is_error":true,"num_turns":1,"subtype":"success","api_error_status":500,"api_error_type":"api_error","result":"API Error: 500 Mock error 500 (api_error). This is a server-side issue, usually temporary — try again in a moment.","type":"result","duration_ms":1871,"uuid":"46327bb8-5391-42e1-a021-9f64e26de5ce","begun_message_ids":[],"queued_turn_count":0,"result_index":0,"model_usage_since_last_result":{}}"#;
    /// A run whose Write was refused: the denial in `permission_denials`, `type` late.
    pub const RESULT_DENIED: &str = r#"{"duration_api_ms":183,"stop_reason":"end_turn","session_id":"de382825-553f-47f3-9a37-bcf93dde753c","total_cost_usd":0.10068,"usage":{"input_tokens":24730,"output_tokens":88},"modelUsage":{},"permission_denials":[{"tool_name":"Write","tool_use_id":"toolu_mock_a13d993b046745d5bde69747","tool_input":{"file_path":"/tmp/proj/hello.txt","content":"hello from the mock\n"}}],"terminal_reason":"completed","fast_mode_state":"off","fast_mode_disabled_reason":"sdk_opt_in_required","subagent_stats":{"spawned":0,"by_type":{}},"safety_stops":0,"is_error":false,"num_turns":2,"subtype":"success","api_error_status":null,"result":"Write step finished.","ttft_ms":12,"type":"result","duration_ms":640,"uuid":"0f3c1b6a-7d2e-4f59-9a1b-2c3d4e5f6a7b","begun_message_ids":["msg_mock_f81536cc5b5c43d4b90beadc"],"ttft_stream_ms":10,"time_to_request_ms":5,"first_content_frame_ms":11,"queued_turn_count":0,"result_index":0,"model_usage_since_last_result":{}}"#;
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

/// A path in the temporary directory for this process and `name`, with no file there.
pub fn temp_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ct-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
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
impl crate::nvim::editor::Editor for NoEditor {
    async fn event(&self, _ev: rmpv::Value) {}

    async fn write_lines(
        &self,
        _buf: i64,
        _start: usize,
        _lines: &[String],
        _sent: crate::nvim::outgoing::Sent,
    ) -> Result<crate::nvim::editor::Written, crate::nvim::editor::WriteError> {
        Ok(crate::nvim::editor::Written::Applied)
    }

    async fn write_fallback(
        &self,
        _buf: i64,
        _start: usize,
        _lines: &[String],
    ) -> Result<(), crate::nvim::editor::WriteError> {
        Ok(())
    }
}
