//! `fake-claude`: a stand-in for the Claude Code CLI, for tests and the offline demo.
//!
//! It behaves like `claude -p --output-format stream-json --verbose --include-partial-messages`:
//! reads the prompt from stdin until EOF, writes stream-json lines to stdout, exits. Every real
//! CLI flag is accepted and ignored except `--session-id`, `--resume`, `--model` and
//! `--permission-mode`, which show up in the output like the real CLI shows them.
//!
//! Its own options come first (from the task's `cmd` list) and can also be given as environment
//! variables `FAKE_CLAUDE_<NAME>` (`--fake-delay-ms=40` ≡ `FAKE_CLAUDE_DELAY_MS=40`); a flag
//! wins over the variable. An unknown `--fake-*` option is an error (exit 2), to catch typos.
//!
//! ```text
//! --fake-transcript=PATH    replay PATH's lines (session ids replaced by ours)
//! --fake-delay-ms=N         pause N ms between lines (default 0)
//! --fake-exit=N             exit code (default 0; non-zero also makes the result an error)
//! --fake-no-result          omit the result line
//! --fake-hang               stop mid-turn (built-in script: while its Bash tool "runs"; a
//!                           transcript: before its result line) and sleep until signalled
//! --fake-silent-hang        write nothing, never exit
//! --fake-ignore-signals     ignore SIGINT and SIGTERM (grandchildren too)
//! --fake-grandchildren=N    start N `sleep` processes, each in its own session (like the
//!                           Bash tool), before any output
//! --fake-pids-file=PATH     write their pids there, one per line (atomically, all at once)
//! --fake-huge-line=BYTES    one assistant text line of exactly BYTES bytes (plus newline)
//! --fake-lines=N            stream N text lines as text_delta events + one assistant line
//! --fake-line-bytes=B       size of each of those lines, newline included (default 80)
//! --fake-echo-stdin         the assistant text is the prompt, byte for byte (lossy if not UTF-8)
//! --fake-record=PATH        write PATH.argv (args, one per line), PATH.stdin (raw prompt
//!                           bytes) and PATH.cwd
//! --fake-raw=PATH           copy PATH's bytes verbatim to stdout and nothing else (no init,
//!                           no result: the file is the whole output), in chunks, pausing
//!                           --fake-delay-ms between chunks; a test can then compare the
//!                           transcript with PATH byte for byte (a SIGINT still appends the
//!                           interruption lines; --fake-exit / --fake-hang still apply)
//! --fake-raw-chunk=BYTES    size of those chunks (default 65536), each one write(2)
//! --fake-kill-self=SIG      after the output, die from signal SIG (a number, or a name such
//!                           as KILL / SIGSEGV) instead of exiting, like a crashing CLI (not
//!                           with --fake-hang, which never gets there)
//! --fake-cli-version=V      the CLI whose line shapes to write: 2.1.197 (default) or 2.1.332
//!                           (`api_message_id` after the uuid of every stream event, `status`
//!                           lines before each request, its init fields and default model
//!                           `claude-opus-5-5`, and a `result` line in its key order: `type`
//!                           late, after the whole answer, which it repeats in `result` in
//!                           every mode, as the real CLI does)
//! ```
//!
//! Signals, as the real CLI (fixtures `signal-*`): SIGINT stops the turn, kills the grandchildren,
//! writes `[Request interrupted by user]` (`... for tool use]` plus a rejected `tool_result` when
//! a tool is running) and a `result` with `subtype: error_during_execution`, exits 1. SIGTERM
//! exits 143 without a result and leaves the grandchildren orphaned. Before the first output line
//! (and with `--fake-silent-hang`) both signals kill the process, as they kill the real CLI
//! during its startup.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

/// Hidden first argument: the process is one of the grandchildren, sleeping until killed. Used
/// only when no `sleep` program can be run.
const SLEEPER_ARG: &str = "--fake-internal-sleeper";

#[derive(Debug, Default)]
struct Opts {
    transcript: Option<PathBuf>,
    delay_ms: u64,
    exit: i32,
    no_result: bool,
    hang: bool,
    silent_hang: bool,
    ignore_signals: bool,
    grandchildren: u32,
    pids_file: Option<PathBuf>,
    huge_line: Option<usize>,
    lines: Option<usize>,
    line_bytes: Option<usize>,
    echo_stdin: bool,
    record: Option<PathBuf>,
    raw: Option<PathBuf>,
    raw_chunk: Option<usize>,
    kill_self: Option<Signal>,
    cli: Cli,
    // Real CLI flags that change the output.
    session_id: Option<String>,
    resume: Option<String>,
    model: Option<String>,
    permission_mode: Option<String>,
    prompt_arg: Option<String>,
}

/// The CLI version whose line shapes are written.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Cli {
    #[default]
    V2_1_197,
    V2_1_332,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Flag,
    Value,
}

const FAKE_OPTS: &[(&str, Kind)] = &[
    ("transcript", Kind::Value),
    ("delay-ms", Kind::Value),
    ("exit", Kind::Value),
    ("no-result", Kind::Flag),
    ("hang", Kind::Flag),
    ("silent-hang", Kind::Flag),
    ("ignore-signals", Kind::Flag),
    ("grandchildren", Kind::Value),
    ("pids-file", Kind::Value),
    ("huge-line", Kind::Value),
    ("lines", Kind::Value),
    ("line-bytes", Kind::Value),
    ("echo-stdin", Kind::Flag),
    ("record", Kind::Value),
    ("raw", Kind::Value),
    ("raw-chunk", Kind::Value),
    ("kill-self", Kind::Value),
    ("cli-version", Kind::Value),
];

/// Real CLI options that take a value (`--name value` or `--name=value`).
const REAL_VALUE_OPTS: &[&str] = &[
    "output-format",
    "input-format",
    "permission-mode",
    "model",
    "fallback-model",
    "session-id",
    "resume",
    "max-turns",
    "max-budget-usd",
    "system-prompt",
    "system-prompt-file",
    "append-system-prompt",
    "append-system-prompt-file",
    "settings",
    "setting-sources",
    "agents",
    "permission-prompt-tool",
    "debug-file",
];

/// Real CLI options that take one or more values (until the next `-` argument).
const REAL_LIST_OPTS: &[&str] = &[
    "allowedTools",
    "allowed-tools",
    "disallowedTools",
    "disallowed-tools",
    "add-dir",
    "mcp-config",
    "betas",
    "tools",
    "plugin-dir",
];

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("not a boolean: {v:?}")),
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("--fake-{name}: not a number: {v:?}"))
}

/// `9`, `KILL` or `SIGKILL` (any case).
fn parse_signal(v: &str) -> Result<Signal, String> {
    let v = v.trim();
    if let Ok(n) = v.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("--fake-kill-self: no signal {n}"));
    }
    let up = v.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map_err(|_| format!("--fake-kill-self: unknown signal {v:?}"))
}

fn set_fake(o: &mut Opts, name: &str, v: &str) -> Result<(), String> {
    let flag = |v: &str| parse_bool(v).map_err(|e| format!("--fake-{name}: {e}"));
    match name {
        "transcript" => o.transcript = Some(PathBuf::from(v)),
        "delay-ms" => o.delay_ms = parse_num(name, v)?,
        "exit" => o.exit = parse_num(name, v)?,
        "no-result" => o.no_result = flag(v)?,
        "hang" => o.hang = flag(v)?,
        "silent-hang" => o.silent_hang = flag(v)?,
        "ignore-signals" => o.ignore_signals = flag(v)?,
        "grandchildren" => o.grandchildren = parse_num(name, v)?,
        "pids-file" => o.pids_file = Some(PathBuf::from(v)),
        "huge-line" => o.huge_line = Some(parse_num(name, v)?),
        "lines" => o.lines = Some(parse_num(name, v)?),
        "line-bytes" => o.line_bytes = Some(parse_num(name, v)?),
        "echo-stdin" => o.echo_stdin = flag(v)?,
        "record" => o.record = Some(PathBuf::from(v)),
        "raw" => o.raw = Some(PathBuf::from(v)),
        "raw-chunk" => o.raw_chunk = Some(parse_num::<usize>(name, v)?.max(1)),
        "kill-self" => o.kill_self = Some(parse_signal(v)?),
        "cli-version" => {
            o.cli = match v.trim() {
                "2.1.197" => Cli::V2_1_197,
                "2.1.332" => Cli::V2_1_332,
                _ => return Err(format!("--fake-cli-version: not 2.1.197 or 2.1.332: {v:?}")),
            }
        }
        _ => return Err(format!("unknown option --fake-{name}")),
    }
    Ok(())
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts::default();
    // Environment first, so that flags override it.
    for &(name, _) in FAKE_OPTS {
        let var = format!(
            "FAKE_CLAUDE_{}",
            name.to_ascii_uppercase().replace('-', "_")
        );
        if let Ok(v) = std::env::var(&var) {
            if v.is_empty() {
                continue;
            }
            set_fake(&mut o, name, &v).map_err(|e| format!("{var}: {e}"))?;
        }
    }

    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if let Some(rest) = a.strip_prefix("--fake-") {
            let (name, inline) = match rest.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (rest, None),
            };
            let kind = FAKE_OPTS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|&(_, k)| k)
                .ok_or_else(|| format!("unknown option --fake-{name}"))?;
            let value = match (kind, inline) {
                (_, Some(v)) => v,
                (Kind::Flag, None) => String::new(),
                (Kind::Value, None) => {
                    let v = args
                        .get(i)
                        .cloned()
                        .ok_or_else(|| format!("--fake-{name} needs a value"))?;
                    i += 1;
                    v
                }
            };
            set_fake(&mut o, name, &value)?;
        } else if a == "--" {
            // Everything after `--` is positional.
            if let Some(p) = args.get(i) {
                o.prompt_arg = Some(p.clone());
            }
            break;
        } else if let Some(rest) = a.strip_prefix("--") {
            let (name, inline) = match rest.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (rest, None),
            };
            let value = if REAL_VALUE_OPTS.contains(&name) {
                match inline {
                    Some(v) => Some(v),
                    // `--resume` alone (no id) opens a picker in the real CLI; accept it.
                    None if name == "resume" && args.get(i).is_none_or(|n| n.starts_with('-')) => {
                        None
                    }
                    None => {
                        let v = args.get(i).cloned();
                        i += 1;
                        v
                    }
                }
            } else if REAL_LIST_OPTS.contains(&name) {
                if inline.is_none() {
                    while args.get(i).is_some_and(|n| !n.starts_with('-')) {
                        i += 1;
                    }
                }
                None
            } else {
                None
            };
            match (name, value) {
                ("session-id", Some(v)) => o.session_id = Some(v),
                ("resume", Some(v)) => o.resume = Some(v),
                ("model", Some(v)) => o.model = Some(v),
                ("permission-mode", Some(v)) => o.permission_mode = Some(v),
                _ => {}
            }
        } else if a == "-r" {
            if args.get(i).is_some_and(|n| !n.starts_with('-')) {
                o.resume = args.get(i).cloned();
                i += 1;
            }
        } else if a.starts_with('-') && a.len() > 1 {
            // -p, -c, -d, ...: accepted, meaningless here.
        } else {
            o.prompt_arg = Some(a.clone());
        }
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.first().map(String::as_str) == Some(SLEEPER_ARG) {
        sleep_forever();
    }
    let opts = match parse_opts(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fake-claude: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&opts, &args) {
        eprintln!("fake-claude: {e}");
        std::process::exit(2);
    }
}

fn sleep_forever() -> ! {
    loop {
        // park() may return spuriously; the loop makes it "until killed".
        std::thread::park();
    }
}

/// Output state shared between the main thread (the script) and the signal thread (which writes
/// the interruption and exits). Lines are written whole under the lock, so an interruption never
/// lands in the middle of a line.
struct Out {
    w: BufWriter<File>,
    flush_each: bool,
    /// Whether the first line was written: before it, a signal kills us like it kills the real
    /// CLI during startup.
    started: bool,
    ctx: Ctx,
    /// `tool_use` id of the Bash call "running" now (the built-in script's hang point).
    pending_tool: Option<String>,
    /// Assistant turns so far, for `num_turns`.
    turns: u32,
    grandchildren: Vec<Child>,
}

impl Out {
    /// Part of a line: the caller holds the lock until it has written the line's end.
    fn part(&mut self, s: &str) {
        self.started = true;
        let _ = self.w.write_all(s.as_bytes());
    }

    fn line(&mut self, s: &str) {
        self.started = true;
        // Write errors (stdout closed) are ignored: nobody reads the output anyway, and the
        // exit code should stay the one the test asked for.
        let _ = self.w.write_all(s.as_bytes());
        let _ = self.w.write_all(b"\n");
        if self.flush_each {
            let _ = self.w.flush();
        }
    }

    fn flush(&mut self) {
        let _ = self.w.flush();
    }

    fn kill_grandchildren(&mut self) {
        for c in &mut self.grandchildren {
            let pid = Pid::from_raw(c.id() as i32);
            // Each leads its own process group (setsid), which also holds anything it forked.
            let _ = signal::killpg(pid, Signal::SIGKILL);
            let _ = signal::kill(pid, Signal::SIGKILL);
            let _ = c.wait();
        }
        self.grandchildren.clear();
    }

    /// What the real CLI writes when SIGINT stops a turn.
    fn interrupted(&mut self) {
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
    }
}

fn lock(m: &Mutex<Out>) -> MutexGuard<'_, Out> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone)]
struct Ctx {
    sid: String,
    cwd: String,
    model: String,
    permission_mode: String,
    cli: Cli,
    t0: Instant,
}

impl Ctx {
    fn elapsed_ms(&self) -> u128 {
        self.t0.elapsed().as_millis()
    }

    fn error_result(
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

    fn success_result(&self, turns: u32, text: &str, cost: f64) -> String {
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

    fn init(&self) -> String {
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

    fn status_requesting(&self) -> String {
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
    fn status_before_request(&self) -> Option<String> {
        (self.cli == Cli::V2_1_332).then(|| self.status_requesting())
    }

    /// The `modelUsage` of a result line.
    fn model_usage(&self, cost: f64) -> String {
        format!(
            r#"{{{}:{{"inputTokens":2400,"outputTokens":60,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"webSearchRequests":0,"costUSD":{},"contextWindow":200000,"maxOutputTokens":64000}}}}"#,
            js(&self.model),
            cost
        )
    }

    /// A `stream_event` line of the message `msg_id`.
    fn stream_event(&self, msg_id: &str, event: &str) -> String {
        let mut s = String::with_capacity(event.len() + 200);
        self.push_stream_event(&mut s, msg_id, "", |s| s.push_str(event));
        s
    }

    /// A `stream_event` line appended to `s`, its event written by `event`; 2.1.332 adds `extra`
    /// (`,"key":value...`) and the message's id after the uuid. Built by pushes, not
    /// `format!`: a flood writes one per line. A uuid needs no escaping.
    fn push_stream_event(
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

    fn message_start(&self, msg_id: &str) -> String {
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

    fn assistant(&self, msg_id: &str, content: &str) -> String {
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

    fn assistant_text(&self, msg_id: &str, text: &str) -> String {
        self.assistant(msg_id, &format!(r#"{{"type":"text","text":{}}}"#, js(text)))
    }

    fn message_end(&self, msg_id: &str, stop_reason: &str, output_tokens: usize) -> [String; 2] {
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
const SUBAGENT_STATS: &str = r#"{"spawned":0,"requested":{"background":0,"foreground":0,"unset":0},"started_in_background":0,"max_depth":0,"spawned_by_subagents":0,"completed":0,"failed":0,"killed":{"parent":0,"user":0,"system":0},"refused":{"depth_limit":0,"concurrency_limit":0,"budget":0},"by_type":{}}"#;

fn message_usage(output_tokens: usize) -> String {
    format!(
        r#"{{"input_tokens":1200,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{output_tokens},"service_tier":"standard"}}"#
    )
}

fn result_usage(input: usize, output: usize) -> String {
    format!(
        r#"{{"input_tokens":{input},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{output},"server_tool_use":{{"web_search_requests":0,"web_fetch_requests":0}},"service_tier":"standard","cache_creation":{{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0}},"inference_geo":"","iterations":[],"speed":"standard"}}"#
    )
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_js(&mut out, s);
    out
}

/// `s` as a JSON string, escaped as serde_json escapes it, appended to `out`. Runs of plain
/// bytes are found by the backend's own scanner (`scan::find_special`) and copied whole; the
/// characters escaped are all ASCII, so never inside a multibyte one.
fn push_js(out: &mut String, s: &str) {
    out.push('"');
    push_js_body(out, s);
    out.push('"');
}

/// The inside of a JSON string literal (escaped, without its quotes).
fn push_js_body(out: &mut String, s: &str) {
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
fn random_bytes<const N: usize>() -> [u8; N] {
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

fn hex(n_bytes: usize) -> String {
    let mut s = String::new();
    while s.len() < n_bytes * 2 {
        for b in random_bytes::<16>() {
            s.push_str(&format!("{b:02x}"));
        }
    }
    s.truncate(n_bytes * 2);
    s
}

fn uuid() -> String {
    let mut s = String::with_capacity(36);
    push_uuid(&mut s);
    s
}

/// Written digit by digit: a flood writes one per line, and formatting each byte through
/// `format!` made ids the fake's largest cost.
fn push_uuid(s: &mut String) {
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
fn now_iso() -> String {
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
fn chunks(text: &str, size: usize) -> Vec<&str> {
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

/// Writes lines with the configured pause between them.
struct Emitter {
    out: Arc<Mutex<Out>>,
    delay: Duration,
    first: bool,
}

impl Emitter {
    fn line(&mut self, s: &str) {
        if !self.first && !self.delay.is_zero() {
            // Not holding the lock while sleeping: the signal thread must be able to write.
            std::thread::sleep(self.delay);
        }
        self.first = false;
        lock(&self.out).line(s);
    }

    fn lines<I: IntoIterator<Item = S>, S: AsRef<str>>(&mut self, it: I) {
        for s in it {
            self.line(s.as_ref());
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Out) -> R) -> R {
        f(&mut lock(&self.out))
    }

    /// One streamed text block (`content_block_start`, deltas, the `assistant` line, stop).
    fn text_block(&mut self, ctx: &Ctx, msg_id: &str, index: usize, text: &str, chunk: usize) {
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

fn run(o: &Opts, args: &[String]) -> Result<(), String> {
    // Signals first, before any thread exists and before the (possibly slow) stdin read: the
    // mask set here is inherited by the signal thread and decides who receives the signals.
    let handle_signals = !o.ignore_signals;
    if o.ignore_signals {
        // SIG_IGN survives fork and exec, so the grandchildren started below ignore them too,
        // like a tool that traps signals.
        // SAFETY: installing SIG_IGN has no handler code to be unsafe.
        unsafe {
            let _ = signal::signal(Signal::SIGINT, SigHandler::SigIgn);
            let _ = signal::signal(Signal::SIGTERM, SigHandler::SigIgn);
        }
    }
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGINT);
    sigs.add(Signal::SIGTERM);
    if handle_signals {
        // A signal ignored at exec time (a non-interactive shell ignores SIGINT in background
        // jobs) is discarded even while blocked, so sigwait would never see it. The real CLI
        // installs handlers, which overrides an inherited SIG_IGN; do the same.
        // SAFETY: restoring the default disposition installs no handler code.
        unsafe {
            let _ = signal::signal(Signal::SIGINT, SigHandler::SigDfl);
            let _ = signal::signal(Signal::SIGTERM, SigHandler::SigDfl);
        }
        // Blocked in every thread, taken with sigwait by the signal thread: the handling code is
        // then ordinary code, not an async-signal handler. The mask is inherited across fork
        // and exec (std does not reset it), so `spawn_sleeper` clears it in the child.
        signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&sigs), None)
            .map_err(|e| format!("sigmask: {e}"))?;
    }

    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let ctx = Ctx {
        sid: o
            .session_id
            .clone()
            .or_else(|| o.resume.clone())
            .unwrap_or_else(uuid),
        cwd: cwd.clone(),
        model: o.model.clone().unwrap_or_else(|| {
            match o.cli {
                Cli::V2_1_197 => "claude-fake",
                Cli::V2_1_332 => "claude-opus-5-5",
            }
            .into()
        }),
        permission_mode: o
            .permission_mode
            .clone()
            .unwrap_or_else(|| "default".into()),
        cli: o.cli,
        t0: Instant::now(),
    };
    // A private duplicate of fd 1, so the buffered writer is ours alone (std's stdout would add
    // a line buffer, i.e. a syscall per line).
    let stdout_file: File = match nix::unistd::dup(std::io::stdout()) {
        Ok(fd) => File::from(fd),
        Err(_) => File::create("/dev/null").map_err(|e| format!("no stdout: {e}"))?,
    };
    let out = Arc::new(Mutex::new(Out {
        w: BufWriter::with_capacity(64 * 1024, stdout_file),
        flush_each: o.delay_ms > 0,
        started: false,
        ctx: ctx.clone(),
        pending_tool: None,
        turns: 0,
        grandchildren: Vec::new(),
    }));
    if handle_signals {
        let out = out.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || signal_thread(out, sigs))
            .map_err(|e| format!("signal thread: {e}"))?;
    }

    let prompt: Vec<u8> = match &o.prompt_arg {
        Some(p) => p.clone().into_bytes(),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| format!("reading stdin: {e}"))?;
            buf
        }
    };

    if let Some(rec) = &o.record {
        let with_ext = |ext: &str| {
            let mut s = rec.clone().into_os_string();
            s.push(ext);
            PathBuf::from(s)
        };
        let mut argv = String::new();
        for a in args {
            argv.push_str(a);
            argv.push('\n');
        }
        std::fs::write(with_ext(".stdin"), &prompt).map_err(|e| format!("record: {e}"))?;
        std::fs::write(with_ext(".cwd"), &cwd).map_err(|e| format!("record: {e}"))?;
        // Last, so a test that sees .argv knows the other two are complete.
        std::fs::write(with_ext(".argv"), argv).map_err(|e| format!("record: {e}"))?;
    }

    if o.grandchildren > 0 {
        let mut kids = Vec::new();
        for _ in 0..o.grandchildren {
            kids.push(spawn_sleeper().map_err(|e| format!("starting a grandchild: {e}"))?);
        }
        if let Some(path) = &o.pids_file {
            let text: String = kids.iter().map(|c| format!("{}\n", c.id())).collect();
            // Written to a temporary name and renamed, so a reader sees all pids or none.
            let tmp = path.with_extension("tmp-fake-claude");
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| format!("pids file: {e}"))?;
        }
        lock(&out).grandchildren = kids;
    }

    if o.silent_hang {
        sleep_forever();
    }

    if let Some(path) = &o.raw {
        copy_raw(&out, path, o.raw_chunk.unwrap_or(64 * 1024), o.delay_ms)?;
        return finish(&out, o);
    }

    let mut em = Emitter {
        out: out.clone(),
        delay: Duration::from_millis(o.delay_ms),
        first: true,
    };
    let with_result = !o.no_result && !o.hang;
    let result_error = |turns: u32| {
        ctx.error_result(
            turns,
            r#""end_turn""#,
            "completed",
            &[format!("fake-claude: --fake-exit={}", o.exit)],
        )
    };

    if let Some(path) = &o.transcript {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&data);
        for raw in text.lines() {
            if raw.is_empty() {
                continue;
            }
            let is_result = serde_json::from_str::<serde_json::Value>(raw)
                .ok()
                .is_some_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("result"));
            if is_result && !with_result {
                continue;
            }
            em.line(&replace_session_id(raw, &ctx.sid));
        }
    } else if o.echo_stdin {
        let text = String::from_utf8_lossy(&prompt).into_owned();
        em.line(&ctx.init());
        em.lines(ctx.status_before_request());
        em.line(&ctx.message_start("msg_fake_echo"));
        em.text_block(&ctx, "msg_fake_echo", 0, &text, 4096);
        em.lines(ctx.message_end("msg_fake_echo", "end_turn", text.len() / 4 + 1));
        em.with(|out| out.turns = 1);
        if with_result {
            em.line(&if o.exit == 0 {
                ctx.success_result(1, &text, 0.0012)
            } else {
                result_error(1)
            });
        }
    } else if let Some(n) = o.lines {
        let b = o.line_bytes.unwrap_or(80).max(1);
        const MSG: &str = "msg_fake_lines";
        em.line(&ctx.init());
        em.lines(ctx.status_before_request());
        em.line(&ctx.message_start(MSG));
        em.line(&ctx.stream_event(
            MSG,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ));
        // One buffer for every line, and lines handed over in batches: a flood is what this
        // mode is for, and the benchmarks' live runs should measure the backend rather than
        // this producer.
        // With a delay, a line at a time as before (the delay is per line).
        let limit = if em.delay.is_zero() { 256 * 1024 } else { 0 };
        let mut batch = String::with_capacity(limit + 2 * b + 256);
        let mut piece = String::with_capacity(b + 16);
        for i in 0..n {
            piece.clear();
            push_numbered_line(&mut piece, i + 1, b);
            ctx.push_stream_event(&mut batch, MSG, "", |s| {
                s.push_str(
                    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"#,
                );
                push_js(s, &piece);
                s.push_str("}}");
            });
            if batch.len() >= limit || i + 1 == n {
                em.line(&batch);
                batch.clear();
            } else {
                batch.push('\n');
            }
        }
        drop((batch, piece));
        // The same text again, generated a second time as it is written: holding a flood's
        // whole text and its escaped copy (twice the output) cost the producer more in page
        // faults than generating it.
        with_numbered_lines(&em, &ctx.assistant_text(MSG, ""), "text", n, b);
        em.line(&ctx.stream_event(MSG, r#"{"type":"content_block_stop","index":0}"#));
        em.lines(ctx.message_end(MSG, "end_turn", n.saturating_mul(b) / 4 + 1));
        em.with(|out| out.turns = 1);
        if with_result {
            if o.exit != 0 {
                em.line(&result_error(1));
            } else if ctx.cli == Cli::V2_1_332 {
                // The whole answer again, before `type`, as 2.1.332 writes it.
                with_numbered_lines(&em, &ctx.success_result(1, "", 0.0042), "result", n, b);
            } else {
                em.line(&ctx.success_result(1, &format!("Streamed {n} lines."), 0.0042));
            }
        }
    } else if let Some(bytes) = o.huge_line {
        em.line(&ctx.init());
        em.lines(ctx.status_before_request());
        let (line, text) = huge_assistant_line(&ctx, bytes);
        em.line(&line);
        drop(line);
        em.with(|out| out.turns = 1);
        if with_result {
            em.line(&match (o.exit, ctx.cli) {
                (0, Cli::V2_1_197) => ctx.success_result(1, "Wrote one huge line.", 0.0042),
                // The whole answer again, before `type`, as 2.1.332 writes it.
                (0, Cli::V2_1_332) => ctx.success_result(1, &text, 0.0042),
                _ => result_error(1),
            });
        }
    } else {
        builtin_script(&mut em, &ctx, o, with_result, &result_error);
    }

    finish(&out, o)
}

/// After the output: hang, die from a signal, or exit with the requested code.
fn finish(out: &Mutex<Out>, o: &Opts) -> Result<(), String> {
    lock(out).flush();
    if o.hang {
        // The signal thread (or SIGKILL) ends the process from here.
        sleep_forever();
    }
    let code = o.exit;
    // Exit while holding the lock, so the signal thread cannot write after the last line.
    let _guard = lock(out);
    if let Some(sig) = o.kill_self {
        die_by(sig);
    }
    std::process::exit(code);
}

/// `--fake-raw`: the file's bytes, unchanged, one write per chunk.
fn copy_raw(out: &Mutex<Out>, path: &Path, chunk: usize, delay_ms: u64) -> Result<(), String> {
    let mut f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; chunk];
    let mut first = true;
    loop {
        let n = read_full(&mut f, &mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            return Ok(());
        }
        if !first && delay_ms > 0 {
            // Not holding the lock while sleeping: the signal thread must be able to run.
            std::thread::sleep(Duration::from_millis(delay_ms));
        }
        first = false;
        let mut o = lock(out);
        o.started = true;
        // Straight to the file (the buffer is empty: nothing else is written in raw mode).
        o.w.flush().map_err(|e| format!("stdout: {e}"))?;
        o.w.get_mut()
            .write_all(&buf[..n])
            .map_err(|e| format!("stdout: {e}"))?;
    }
}

/// Reads until `buf` is full or the file ends, so chunks have the requested size.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The demo session: look at the project with a Bash `ls`, then summarise.
fn builtin_script(
    em: &mut Emitter,
    ctx: &Ctx,
    o: &Opts,
    with_result: bool,
    result_error: &dyn Fn(u32) -> String,
) {
    let msg1 = format!("msg_fake_{}", hex(12));
    let tool_id = format!("toolu_fake_{}", hex(12));
    em.line(&ctx.init());
    em.line(&ctx.status_requesting());
    em.line(&ctx.message_start(&msg1));
    em.text_block(ctx, &msg1, 0, "I'll look at the project first.", 6);
    em.line(&ctx.stream_event(
        &msg1,
        &format!(
            r#"{{"type":"content_block_start","index":1,"content_block":{{"type":"tool_use","id":{},"name":"Bash","input":{{}}}}}}"#,
            js(&tool_id)
        ),
    ));
    for piece in chunks(r#"{"command": "ls", "description": "List files"}"#, 16) {
        em.line(&ctx.stream_event(
            &msg1,
            &format!(
                r#"{{"type":"content_block_delta","index":1,"delta":{{"type":"input_json_delta","partial_json":{}}}}}"#,
                js(piece)
            ),
        ));
    }
    em.line(&ctx.assistant(
        &msg1,
        &format!(
            r#"{{"type":"tool_use","id":{},"name":"Bash","input":{{"command":"ls","description":"List files"}}}}"#,
            js(&tool_id)
        ),
    ));
    em.line(&ctx.stream_event(&msg1, r#"{"type":"content_block_stop","index":1}"#));
    em.lines(ctx.message_end(&msg1, "tool_use", 23));
    em.with(|out| {
        out.turns = 1;
        out.pending_tool = Some(tool_id.clone());
    });
    if o.hang {
        // The tool "runs" forever; SIGINT produces the rejected tool_result.
        return;
    }

    let entries = list_dir(Path::new(&ctx.cwd));
    let listing = entries.join("\n");
    em.line(&format!(
        r#"{{"type":"user","message":{{"role":"user","content":[{{"tool_use_id":{},"type":"tool_result","content":{},"is_error":false}}]}},"parent_tool_use_id":null,"session_id":{},"uuid":{},"timestamp":{},"tool_use_result":{{"stdout":{},"stderr":"","interrupted":false,"isImage":false,"noOutputExpected":false}}}}"#,
        js(&tool_id),
        js(&listing),
        js(&ctx.sid),
        js(&uuid()),
        js(&now_iso()),
        js(&listing)
    ));
    em.with(|out| out.pending_tool = None);
    em.line(&ctx.status_requesting());
    let msg2 = format!("msg_fake_{}", hex(12));
    let summary = format!(
        "The project has {} {}. Done.",
        entries.len(),
        if entries.len() == 1 {
            "entry"
        } else {
            "entries"
        }
    );
    em.line(&ctx.message_start(&msg2));
    em.text_block(ctx, &msg2, 0, &summary, 6);
    em.lines(ctx.message_end(&msg2, "end_turn", 14));
    em.with(|out| out.turns = 2);
    if with_result {
        em.line(&if o.exit == 0 {
            ctx.success_result(2, &summary, 0.0123)
        } else {
            result_error(2)
        });
    }
}

/// What `ls` prints: visible names, sorted bytewise (as `ls` does in the C locale).
fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Appends `line 000042 abc…\n`, exactly `bytes` bytes long with its newline (the number is cut
/// when `bytes` is too small for it).
fn push_numbered_line(out: &mut String, i: usize, bytes: usize) {
    let start = out.len();
    out.push_str("line ");
    // Digits by hand, at least six: `write!` was a seventh of a flood's time.
    let mut digits = [b'0'; 20];
    let (mut n, mut at) = (i, digits.len());
    while n > 0 || digits.len() - at < 6 {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
    out.push(' ');
    if out.len() - start + 1 > bytes {
        out.truncate(start + bytes.saturating_sub(1));
    }
    const FILL: &str = "abcdefghijklmnopqrstuvwxyz";
    while out.len() - start + 1 < bytes {
        let n = (bytes - 1 - (out.len() - start)).min(FILL.len());
        out.push_str(&FILL[..n]);
    }
    out.push('\n');
}

/// Writes `frame`, a line with the empty string `"key":""`, with the `n` numbered lines of `b`
/// bytes in that string, generated as they are written. Under the output lock, so the line stays
/// whole.
fn with_numbered_lines(em: &Emitter, frame: &str, key: &str, n: usize, b: usize) {
    let empty = format!(r#""{key}":"""#);
    let open = frame
        .find(&empty)
        .expect("the frame holds an empty string for the text");
    // Between the empty string's quotes.
    let (head, tail) = frame.split_at(open + empty.len() - 1);
    let (mut batch, mut piece) = (String::new(), String::new());
    em.with(|out| {
        out.part(head);
        for i in 0..n {
            batch.clear();
            piece.clear();
            push_numbered_line(&mut piece, i + 1, b);
            push_js_body(&mut batch, &piece);
            out.part(&batch);
        }
        out.line(tail);
    });
}

/// An `assistant` text line of exactly `bytes` bytes when `bytes` exceeds the JSON framing
/// (ASCII filler without characters that need escaping, so the length is exact), and its text.
fn huge_assistant_line(ctx: &Ctx, bytes: usize) -> (String, String) {
    let frame = ctx.assistant_text("msg_fake_huge", "");
    let fill_len = bytes.saturating_sub(frame.len());
    let pattern = "lorem ipsum dolor sit amet ";
    let mut text = String::with_capacity(fill_len);
    while text.len() < fill_len {
        let take = (fill_len - text.len()).min(pattern.len());
        text.push_str(&pattern[..take]);
    }
    // The frame has the same length whatever the ids (fixed-size hex), so this is exact.
    (ctx.assistant_text("msg_fake_huge", &text), text)
}

/// Replaces every `"session_id":"…"` value with `sid` (the compact form the CLI writes).
fn replace_session_id(line: &str, sid: &str) -> String {
    const KEY: &str = r#""session_id":""#;
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = rest.find(KEY) {
        let start = pos + KEY.len();
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        // Ids are uuids, so the value has no escaped quotes: it ends at the next '"'.
        match tail.find('"') {
            Some(end) => {
                out.push_str(sid);
                rest = &tail[end..];
            }
            None => {
                rest = tail;
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Starts one grandchild: `sleep` in its own session (like the CLI's Bash tool, which runs
/// every command under `setsid`). Falls back to a copy of ourselves that sleeps.
fn spawn_sleeper() -> std::io::Result<Child> {
    let setup = |cmd: &mut Command| {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: setsid(2) and sigprocmask(2) are async-signal-safe, and nothing else runs
        // between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                // Our SIGINT/SIGTERM block would otherwise be inherited, making the grandchild
                // deaf to them (a real tool process is not).
                signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                    .map_err(std::io::Error::from)
            });
        }
    };
    let mut cmd = Command::new("sleep");
    cmd.arg("100000");
    setup(&mut cmd);
    match cmd.spawn() {
        Ok(c) => Ok(c),
        Err(_) => {
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.arg(SLEEPER_ARG);
            setup(&mut cmd);
            cmd.spawn()
        }
    }
}

fn signal_thread(out: Arc<Mutex<Out>>, sigs: SigSet) {
    loop {
        let Ok(sig) = sigs.wait() else { continue };
        let mut o = lock(&out);
        if !o.started {
            die_by(sig);
        }
        match sig {
            Signal::SIGINT => {
                o.kill_grandchildren();
                o.interrupted();
                o.flush();
                std::process::exit(1);
            }
            Signal::SIGTERM => {
                o.flush();
                std::process::exit(143);
            }
            _ => {}
        }
    }
}

/// Dies from `sig` (the exit status a shell reports as "killed by signal"), as the real CLI does
/// when signalled before its first line.
fn die_by(sig: Signal) -> ! {
    // SAFETY: restoring the default disposition installs no handler code.
    unsafe {
        let _ = signal::signal(sig, SigHandler::SigDfl);
    }
    let mut one = SigSet::empty();
    one.add(sig);
    let _ = signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&one), None);
    // raise() targets this thread, the only one not blocking `sig`.
    let _ = signal::raise(sig);
    std::process::exit(128 + sig as i32);
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

    #[test]
    fn numbered_lines_have_the_asked_length() {
        for bytes in [1, 2, 5, 12, 13, 14, 80, 200] {
            let mut s = String::from("x");
            push_numbered_line(&mut s, 42, bytes);
            assert_eq!(s.len() - 1, bytes, "{bytes}: {s:?}");
            assert!(s.ends_with('\n'));
        }
        for (i, head) in [
            (7, "line 000007 "),
            (123_456, "line 123456 "),
            (1_234_567, "line 1234567 "),
        ] {
            let mut s = String::new();
            push_numbered_line(&mut s, i, 40);
            assert!(s.starts_with(head), "{i}: {s:?}");
        }
    }
}
