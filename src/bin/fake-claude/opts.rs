//! The command line: our `--fake-*` options (or `FAKE_CLAUDE_*` variables) and the real CLI's
//! flags that change what the fake writes.

use std::path::PathBuf;

use nix::sys::signal::Signal;

#[derive(Debug, Default)]
pub struct Opts {
    pub transcript: Option<PathBuf>,
    pub delay_ms: u64,
    pub exit: i32,
    pub no_result: bool,
    pub hang: bool,
    pub silent_hang: bool,
    pub ignore_signals: bool,
    pub grandchildren: u32,
    pub pids_file: Option<PathBuf>,
    pub huge_line: Option<usize>,
    pub lines: Option<usize>,
    pub line_bytes: Option<usize>,
    pub echo_stdin: bool,
    pub record: Option<PathBuf>,
    pub raw: Option<PathBuf>,
    pub raw_chunk: Option<usize>,
    pub kill_self: Option<Signal>,
    pub cli: Cli,
    /// `--fake-tools`: the tool calls of every turn (a prompt's `fake-tools:` line wins).
    pub tools: Option<serde_json::Value>,
    pub control_log: Option<PathBuf>,
    // Real CLI flags that change the output.
    pub session_id: Option<String>,
    pub resume: Option<String>,
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub prompt_arg: Option<String>,
    /// `--input-format stream-json`: stdin holds stream-json messages, not the prompt.
    pub stream_input: bool,
    /// `--permission-prompt-tool stdio`: permission prompts go to stdout as `can_use_tool`.
    pub prompt_tool_stdio: bool,
    /// `--replay-user-messages`.
    pub replay: bool,
    /// `--allowedTools` / `--allowed-tools` (rules such as `Bash(npm test:*)`).
    pub allowed_tools: Vec<String>,
}

/// The CLI version whose line shapes are written.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub enum Cli {
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
    ("tools", Kind::Value),
    ("control-log", Kind::Value),
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
        "tools" => o.tools = Some(parse_tools(v)?),
        "control-log" => o.control_log = Some(PathBuf::from(v)),
        _ => return Err(format!("unknown option --fake-{name}")),
    }
    Ok(())
}

pub fn parse_opts(args: &[String]) -> Result<Opts, String> {
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
                let mut values: Vec<String> = inline.into_iter().collect();
                if values.is_empty() {
                    while let Some(n) = args.get(i).filter(|n| !n.starts_with('-')) {
                        values.push(n.clone());
                        i += 1;
                    }
                }
                if matches!(name, "allowedTools" | "allowed-tools") {
                    // Comma- or space-separated, as the real CLI accepts them.
                    o.allowed_tools.extend(
                        values
                            .iter()
                            .flat_map(|v| split_rules(v))
                            .filter(|r| !r.is_empty()),
                    );
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
                ("input-format", Some(v)) => o.stream_input = v == "stream-json",
                ("permission-prompt-tool", Some(v)) => o.prompt_tool_stdio = v == "stdio",
                ("replay-user-messages", _) => o.replay = true,
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

/// `--fake-tools`: inline JSON, or `@PATH` of a JSON file; a list of tool steps (see main.rs).
fn parse_tools(v: &str) -> Result<serde_json::Value, String> {
    let text = match v.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("--fake-tools: {path}: {e}"))?
        }
        None => v.to_string(),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("--fake-tools: not JSON: {e}"))?;
    if !value.is_array() {
        return Err("--fake-tools: expected a JSON list of tool steps".into());
    }
    Ok(value)
}

/// Splits `Bash(npm test:*),Read Write` into rules; a comma or space inside parentheses stays.
fn split_rules(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in v.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            ',' | ' ' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}
