//! What the fake writes: the output lock shared by the script, the stdin reader and the signal
//! thread, and the shapes of the CLI's lines in each version.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::Child;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::json::{chunks, hex, js, now_iso, push_js, push_uuid, uuid};
use crate::opts::Cli;

/// Output state shared between the main thread (the script) and the signal thread (which writes
/// the interruption and exits). Lines are written whole under the lock, so an interruption never
/// lands in the middle of a line.
pub struct Out {
    pub w: BufWriter<File>,
    pub flush_each: bool,
    /// Whether the first line was written: before it, a signal kills us like it kills the real
    /// CLI during startup.
    pub started: bool,
    pub ctx: Ctx,
    /// `tool_use` id of the Bash call "running" now (the built-in script's hang point).
    pub pending_tool: Option<String>,
    /// Assistant turns so far, for `num_turns`.
    pub turns: u32,
    pub grandchildren: Vec<Child>,
    /// A turn that asks nothing was interrupted: its remaining lines are not written.
    pub stopped: bool,
    /// `total_cost_usd` so far: the real CLI's sum over the process's turns.
    pub total_cost: f64,
    /// Whether the last result was an error (the exit code when stdin ends).
    pub last_is_error: bool,
    /// Process group of the Bash tool running now (a control turn's), killed by SIGINT.
    pub tool_pgid: Option<i32>,
    /// The user message of the turn being written, echoed after its init line
    /// (`--replay-user-messages`).
    pub replay: Option<String>,
}

impl Out {
    /// Part of a line: the caller holds the lock until it has written the line's end.
    pub fn part(&mut self, s: &str) {
        self.started = true;
        let _ = self.w.write_all(s.as_bytes());
    }

    pub fn line(&mut self, s: &str) {
        if self.stopped {
            return;
        }
        self.started = true;
        // Write errors (stdout closed) are ignored: nobody reads the output anyway, and the
        // exit code should stay the one the test asked for.
        let _ = self.w.write_all(s.as_bytes());
        let _ = self.w.write_all(b"\n");
        if self.flush_each {
            let _ = self.w.flush();
        }
    }

    pub fn flush(&mut self) {
        let _ = self.w.flush();
    }

    pub fn kill_grandchildren(&mut self) {
        for c in &mut self.grandchildren {
            let pid = Pid::from_raw(c.id() as i32);
            // Each leads its own process group (setsid), which also holds anything it forked.
            let _ = signal::killpg(pid, Signal::SIGKILL);
            let _ = signal::kill(pid, Signal::SIGKILL);
            let _ = c.wait();
        }
        self.grandchildren.clear();
    }

    pub fn kill_tool(&mut self) {
        if let Some(pg) = self.tool_pgid.take() {
            let _ = signal::killpg(Pid::from_raw(pg), Signal::SIGKILL);
        }
    }

    /// A raw line as it came (an echo), flushed at once.
    pub fn echo(&mut self, raw: &str) {
        self.line(raw);
        self.flush();
    }

    /// What the real CLI writes when SIGINT (or, with stream-json input, an `interrupt`) stops a
    /// turn.
    pub fn interrupted(&mut self) {
        let c = self.ctx.clone();
        let (text, terminal, stop) = match self.pending_tool.take() {
            Some(id) => {
                self.line(&format!(
                    r#"{{"type":"user","message":{{"role":"user","content":[{{"type":"tool_result","content":"The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, the new_string was NOT written to the file). STOP what you are doing and wait for the user to tell you how to proceed.","is_error":true,"tool_use_id":{}}}]}},"parent_tool_use_id":null,"session_id":{},"uuid":{},"timestamp":{},"tool_use_result":"User rejected tool use"}}"#,
                    js(&id),
                    js(&c.sid),
                    js(&uuid()),
                    js(&now_iso())
                ));
                (
                    "[Request interrupted by user for tool use]",
                    "aborted_tools",
                    r#""tool_use""#,
                )
            }
            None => ("[Request interrupted by user]", "aborted_streaming", "null"),
        };
        self.line(&format!(
            r#"{{"type":"user","message":{{"role":"user","content":[{{"type":"text","text":{}}}]}},"parent_tool_use_id":null,"session_id":{},"uuid":{},"timestamp":{}}}"#,
            js(text),
            js(&c.sid),
            js(&uuid()),
            js(&now_iso())
        ));
        let turns = self.turns + 1;
        self.line(&c.error_result(turns, stop, terminal, &[]));
        self.last_is_error = true;
    }
}

pub fn lock(m: &Mutex<Out>) -> MutexGuard<'_, Out> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone)]
pub struct Ctx {
    pub sid: String,
    pub cwd: String,
    pub model: String,
    pub permission_mode: String,
    pub cli: Cli,
    pub t0: Instant,
    /// Stream-json input with `--permission-prompt-tool stdio`: the tools that ask the user
    /// (AskUserQuestion, the plan mode's) are offered.
    pub stdio_prompts: bool,
}

impl Ctx {
    pub fn elapsed_ms(&self) -> u128 {
        self.t0.elapsed().as_millis()
    }

    pub fn error_result(
        &self,
        turns: u32,
        stop_reason: &str,
        terminal: &str,
        errors: &[String],
    ) -> String {
        let errors: Vec<String> = errors.iter().map(|e| js(e)).collect();
        if self.cli == Cli::V2_1_332 {
            return format!(
                r#"{{"duration_api_ms":0,"stop_reason":{},"session_id":{},"total_cost_usd":0,"usage":{},"modelUsage":{{}},"permission_denials":[],"terminal_reason":{},"fast_mode_state":"off","fast_mode_disabled_reason":"sdk_opt_in_required","subagent_stats":{},"safety_stops":0,"is_error":true,"num_turns":{},"subtype":"error_during_execution","errors":[{}],"type":"result","duration_ms":{},"uuid":{},"begun_message_ids":[],"queued_turn_count":0,"result_index":0,"model_usage_since_last_result":{{}}}}"#,
                stop_reason,
                js(&self.sid),
                result_usage(0, 0),
                js(terminal),
                SUBAGENT_STATS,
                turns,
                errors.join(","),
                self.elapsed_ms(),
                js(&uuid()),
            );
        }
        format!(
            r#"{{"type":"result","subtype":"error_during_execution","duration_ms":{},"duration_api_ms":0,"is_error":true,"num_turns":{},"stop_reason":{},"session_id":{},"total_cost_usd":0,"usage":{},"modelUsage":{{}},"permission_denials":[],"terminal_reason":{},"fast_mode_state":"off","uuid":{},"errors":[{}]}}"#,
            self.elapsed_ms(),
            turns,
            stop_reason,
            js(&self.sid),
            result_usage(0, 0),
            js(terminal),
            js(&uuid()),
            errors.join(",")
        )
    }

    pub fn success_result(&self, turns: u32, text: &str, cost: f64) -> String {
        let ms = self.elapsed_ms();
        if self.cli == Cli::V2_1_332 {
            return format!(
                r#"{{"duration_api_ms":{},"stop_reason":"end_turn","session_id":{},"total_cost_usd":{},"usage":{},"modelUsage":{},"permission_denials":[],"terminal_reason":"completed","fast_mode_state":"off","fast_mode_disabled_reason":"sdk_opt_in_required","subagent_stats":{},"safety_stops":0,"is_error":false,"num_turns":{},"subtype":"success","api_error_status":null,"result":{},"ttft_ms":{},"type":"result","duration_ms":{},"uuid":{},"begun_message_ids":[],"ttft_stream_ms":{},"time_to_request_ms":1,"first_content_frame_ms":{},"queued_turn_count":0,"result_index":0,"model_usage_since_last_result":{}}}"#,
                ms / 2,
                js(&self.sid),
                cost,
                result_usage(2400, 60),
                self.model_usage(cost),
                SUBAGENT_STATS,
                turns,
                js(text),
                ms / 4,
                ms,
                js(&uuid()),
                ms / 4,
                ms / 4,
                self.model_usage(cost),
            );
        }
        format!(
            r#"{{"type":"result","subtype":"success","is_error":false,"api_error_status":null,"duration_ms":{},"duration_api_ms":{},"num_turns":{},"result":{},"stop_reason":"end_turn","session_id":{},"total_cost_usd":{},"usage":{},"modelUsage":{{{}:{{"inputTokens":2400,"outputTokens":60,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"webSearchRequests":0,"costUSD":{},"contextWindow":200000,"maxOutputTokens":64000}}}},"permission_denials":[],"terminal_reason":"completed","fast_mode_state":"off","uuid":{}}}"#,
            ms,
            ms / 2,
            turns,
            js(text),
            js(&self.sid),
            cost,
            result_usage(2400, 60),
            js(&self.model),
            cost,
            js(&uuid())
        )
    }

    pub fn init(&self) -> String {
        let line = self.init_line();
        if !self.stdio_prompts {
            return line;
        }
        // `--permission-prompt-tool stdio` adds the tools that ask the user (CONTROL.md §0.10).
        line.replacen(
            r#""tools":["Task","#,
            r#""tools":["Task","AskUserQuestion","EnterPlanMode","ExitPlanMode","#,
            1,
        )
    }

    fn init_line(&self) -> String {
        if self.cli == Cli::V2_1_332 {
            return format!(
                r#"{{"type":"system","subtype":"init","cwd":{},"session_id":{},"tools":["Task","Bash","CronCreate","CronDelete","CronList","Edit","EnterWorktree","ExitWorktree","ListAgents","Monitor","NotebookEdit","Read","ScheduleWakeup","SendMessage","Skill","TaskStop","ToolSearch","WebFetch","WebSearch","Workflow","Write"],"mcp_servers":[],"model":{},"permissionMode":{},"slash_commands":[],"terminal_slash_commands":[],"apiKeySource":"none","claude_code_version":"2.1.332-fake","output_style":"default","agents":[],"skills":[],"plugins":[],"capabilities":["interrupt_receipt_v1"],"analytics_disabled":true,"product_feedback_disabled":true,"served_by_anthropic":false,"uuid":{},"sandbox_enabled":false,"memory_paths":{{}},"original_cwd":{},"additional_directories":[],"fast_mode_state":"off","fast_mode_disabled_reason":"sdk_opt_in_required","per_turn_effort_active":true,"ultrathink_available":false,"ultrathink_typed_raises":false,"view_mode":"default"}}"#,
                js(&self.cwd),
                js(&self.sid),
                js(&self.model),
                js(&self.permission_mode),
                js(&uuid()),
                js(&self.cwd),
            );
        }
        format!(
            r#"{{"type":"system","subtype":"init","cwd":{},"session_id":{},"tools":["Task","Bash","Edit","Glob","Grep","Read","WebFetch","WebSearch","Write"],"mcp_servers":[],"model":{},"permissionMode":{},"slash_commands":[],"apiKeySource":"none","claude_code_version":"2.1.197-fake","output_style":"default","agents":[],"skills":[],"plugins":[],"uuid":{}}}"#,
            js(&self.cwd),
            js(&self.sid),
            js(&self.model),
            js(&self.permission_mode),
            js(&uuid())
        )
    }

    pub fn status_requesting(&self) -> String {
        if self.cli == Cli::V2_1_332 {
            return format!(
                r#"{{"type":"system","subtype":"status","status":"requesting","session_id":{},"uuid":{}}}"#,
                js(&self.sid),
                js(&uuid())
            );
        }
        format!(
            r#"{{"type":"system","subtype":"status","status":"requesting","uuid":{},"session_id":{}}}"#,
            js(&uuid()),
            js(&self.sid)
        )
    }

    /// What 2.1.332 writes before each API request (2.1.197: nothing in these modes).
    pub fn status_before_request(&self) -> Option<String> {
        (self.cli == Cli::V2_1_332).then(|| self.status_requesting())
    }

    /// The `modelUsage` of a result line.
    pub fn model_usage(&self, cost: f64) -> String {
        format!(
            r#"{{{}:{{"inputTokens":2400,"outputTokens":60,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"webSearchRequests":0,"costUSD":{},"contextWindow":200000,"maxOutputTokens":64000}}}}"#,
            js(&self.model),
            cost
        )
    }

    /// A `stream_event` line of the message `msg_id`.
    pub fn stream_event(&self, msg_id: &str, event: &str) -> String {
        let mut s = String::with_capacity(event.len() + 200);
        self.push_stream_event(&mut s, msg_id, "", |s| s.push_str(event));
        s
    }

    /// A `stream_event` line appended to `s`, its event written by `event`; 2.1.332 adds `extra`
    /// (`,"key":value...`) and the message's id after the uuid. Built by pushes, not
    /// `format!`: a flood writes one per line. A uuid needs no escaping.
    pub fn push_stream_event(
        &self,
        s: &mut String,
        msg_id: &str,
        extra: &str,
        event: impl FnOnce(&mut String),
    ) {
        s.push_str(r#"{"type":"stream_event","event":"#);
        event(s);
        s.push_str(r#","session_id":"#);
        push_js(s, &self.sid);
        s.push_str(r#","parent_tool_use_id":null,"uuid":""#);
        push_uuid(s);
        s.push('"');
        if self.cli == Cli::V2_1_332 {
            s.push_str(extra);
            s.push_str(r#","api_message_id":"#);
            push_js(s, msg_id);
        }
        s.push('}');
    }

    pub fn message_start(&self, msg_id: &str) -> String {
        let mut s = String::new();
        self.push_stream_event(
            &mut s,
            msg_id,
            r#","ttft_ms":1,"thinking_display":"updates""#,
            |s| {
                s.push_str(&format!(
                    r#"{{"type":"message_start","message":{{"id":{},"type":"message","role":"assistant","model":{},"content":[],"stop_reason":null,"stop_sequence":null,"usage":{}}}}}"#,
                    js(msg_id),
                    js(&self.model),
                    message_usage(1)
                ))
            },
        );
        s
    }

    pub fn assistant(&self, msg_id: &str, content: &str) -> String {
        // 2.1.332 adds the time; the fixed-size one keeps a huge line's length exact.
        let timestamp = match self.cli {
            Cli::V2_1_197 => String::new(),
            Cli::V2_1_332 => format!(r#","timestamp":{}"#, js(&now_iso())),
        };
        format!(
            r#"{{"type":"assistant","message":{{"id":{},"type":"message","role":"assistant","model":{},"content":[{}],"stop_reason":null,"stop_sequence":null,"usage":{},"context_management":null}},"parent_tool_use_id":null,"session_id":{},"uuid":{}{},"request_id":{}}}"#,
            js(msg_id),
            js(&self.model),
            content,
            message_usage(1),
            js(&self.sid),
            js(&uuid()),
            timestamp,
            js(&format!("req_fake_{}", hex(12)))
        )
    }

    pub fn assistant_text(&self, msg_id: &str, text: &str) -> String {
        self.assistant(msg_id, &format!(r#"{{"type":"text","text":{}}}"#, js(text)))
    }

    pub fn message_end(
        &self,
        msg_id: &str,
        stop_reason: &str,
        output_tokens: usize,
    ) -> [String; 2] {
        [
            self.stream_event(
                msg_id,
                &format!(
                    r#"{{"type":"message_delta","delta":{{"stop_reason":{},"stop_sequence":null}},"usage":{{"input_tokens":1200,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{}}}}}"#,
                    js(stop_reason),
                    output_tokens
                ),
            ),
            self.stream_event(msg_id, r#"{"type":"message_stop"}"#),
        ]
    }
}

/// 2.1.332's `subagent_stats` of a result line, for a run without subagents.
pub const SUBAGENT_STATS: &str = r#"{"spawned":0,"requested":{"background":0,"foreground":0,"unset":0},"started_in_background":0,"max_depth":0,"spawned_by_subagents":0,"completed":0,"failed":0,"killed":{"parent":0,"user":0,"system":0},"refused":{"depth_limit":0,"concurrency_limit":0,"budget":0},"by_type":{}}"#;

pub fn message_usage(output_tokens: usize) -> String {
    format!(
        r#"{{"input_tokens":1200,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{output_tokens},"service_tier":"standard"}}"#
    )
}

pub fn result_usage(input: usize, output: usize) -> String {
    format!(
        r#"{{"input_tokens":{input},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{output},"server_tool_use":{{"web_search_requests":0,"web_fetch_requests":0}},"service_tier":"standard","cache_creation":{{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0}},"inference_geo":"","iterations":[],"speed":"standard"}}"#
    )
}

/// Writes lines with the configured pause between them.
pub struct Emitter {
    pub out: Arc<Mutex<Out>>,
    pub delay: Duration,
    pub first: bool,
    /// With stream-json input: the pause between lines ends early on an `interrupt`.
    pub control: Option<crate::control::Control>,
}

impl Emitter {
    /// The turn's `system/init` line, then the echo of its user message when asked for.
    pub fn init(&mut self, ctx: &Ctx) {
        self.line(&ctx.init());
        self.replay(ctx);
    }

    /// The echo of the turn's user message (`--replay-user-messages`), once.
    pub fn replay(&mut self, ctx: &Ctx) {
        let text = lock(&self.out).replay.take();
        if let Some(text) = text {
            self.line(&ctx.user_replay(&text));
        }
    }

    /// Adds a turn's cost to the process's total, which the result line reports.
    pub fn cost(&self, turn: f64) -> f64 {
        let mut out = lock(&self.out);
        out.total_cost += turn;
        out.total_cost
    }

    pub fn line(&mut self, s: &str) {
        if !self.first && !self.delay.is_zero() {
            // Not holding the lock while sleeping: the signal thread must be able to write.
            match &self.control {
                Some(c) => c.pause(self.delay),
                None => std::thread::sleep(self.delay),
            }
        }
        self.first = false;
        lock(&self.out).line(s);
    }

    pub fn lines<I: IntoIterator<Item = S>, S: AsRef<str>>(&mut self, it: I) {
        for s in it {
            self.line(s.as_ref());
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Out) -> R) -> R {
        f(&mut lock(&self.out))
    }

    /// One streamed text block (`content_block_start`, deltas, the `assistant` line, stop).
    pub fn text_block(&mut self, ctx: &Ctx, msg_id: &str, index: usize, text: &str, chunk: usize) {
        self.line(&ctx.stream_event(
            msg_id,
            &format!(
                r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"text","text":""}}}}"#
            ),
        ));
        for piece in chunks(text, chunk) {
            self.line(&ctx.stream_event(
                msg_id,
                &format!(
                    r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":{}}}}}"#,
                    js(piece)
                ),
            ));
        }
        self.line(&ctx.assistant_text(msg_id, text));
        self.line(&ctx.stream_event(
            msg_id,
            &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
        ));
    }
}
