//! Stream-json input: a thread reads stdin (user messages, control requests, the answers to our
//! requests) and hands it to the turn being written; `initialize`, `set_permission_mode` and an
//! `interrupt` while idle are answered from here at once, as the real CLI answers them.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::json::{js, uuid};
use crate::opts::{Cli, Opts};
use crate::out::{lock, Out};

/// A `PreToolUse` hook callback registered by `initialize`.
#[derive(Clone, Debug)]
pub struct Hook {
    /// `Write|Edit`: tool names separated by `|`; empty or `*` matches every tool.
    pub matcher: String,
    pub callback_id: String,
}

impl Hook {
    pub fn matches(&self, tool: &str) -> bool {
        let m = self.matcher.trim();
        m.is_empty() || m == "*" || m.split('|').any(|n| n.trim() == tool)
    }
}

#[derive(Default)]
struct State {
    /// User messages not yet taken by a turn.
    messages: VecDeque<String>,
    /// Answers to our requests: request id -> the `response` object of the control_response.
    answers: HashMap<String, Value>,
    /// The request id of an `interrupt` the running turn has not handled yet.
    interrupt: Option<String>,
    eof: bool,
    /// A turn that asks nothing is running: an interrupt is handled by the reader itself.
    legacy: bool,
    /// A control turn is running: it handles an interrupt itself.
    turn: bool,
    hooks: Vec<Hook>,
    /// Set by `set_permission_mode`.
    mode: Option<String>,
}

/// What a turn waiting for answers was woken by.
pub enum Wake {
    Answer(String, Value),
    Interrupt,
    Eof,
}

struct Inner {
    state: Mutex<State>,
    cv: Condvar,
    out: Arc<Mutex<Out>>,
    log: Option<Mutex<File>>,
    replay: bool,
    /// `--fake-raw` (the raw file is the whole output) and `--fake-silent-hang` (nothing at
    /// all): nothing is answered or echoed.
    quiet: bool,
    cli: Cli,
    t0: Instant,
}

#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

impl Control {
    /// Starts the stdin reader.
    pub fn start(out: Arc<Mutex<Out>>, o: &Opts) -> std::io::Result<Control> {
        let log = match &o.control_log {
            Some(p) => Some(Mutex::new(
                OpenOptions::new().create(true).append(true).open(p)?,
            )),
            None => None,
        };
        let c = Control {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                cv: Condvar::new(),
                out,
                log,
                replay: o.replay && o.raw.is_none() && !o.silent_hang,
                quiet: o.raw.is_some() || o.silent_hang,
                cli: o.cli,
                t0: Instant::now(),
            }),
        };
        let reader = c.clone();
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || reader.read_stdin())?;
        Ok(c)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>, d: Duration) -> MutexGuard<'a, State> {
        match self.inner.cv.wait_timeout(g, d) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        }
    }

    /// The next user message, waiting for it; None once stdin has ended.
    pub fn next_message(&self) -> Option<String> {
        let mut g = self.state();
        loop {
            if let Some(m) = g.messages.pop_front() {
                return Some(m);
            }
            if g.eof {
                return None;
            }
            g = self.wait(g, Duration::from_secs(3600));
        }
    }

    /// The next turn's prompt, waiting for it: every message queued by then, joined by
    /// newlines, as the real CLI takes them (`control-live-queued-two`); None once stdin has
    /// ended.
    pub fn next_turn(&self) -> Option<String> {
        let first = self.next_message()?;
        let rest = self.take_messages();
        if rest.is_empty() {
            return Some(first);
        }
        let mut all = vec![first];
        all.extend(rest);
        Some(all.join("\n"))
    }

    /// The user messages that came during the turn, now folded into it.
    pub fn take_messages(&self) -> Vec<String> {
        self.state().messages.drain(..).collect()
    }

    pub fn set_legacy(&self, on: bool) {
        self.state().legacy = on;
    }

    pub fn set_turn(&self, on: bool) {
        let mut g = self.state();
        g.turn = on;
        if !on {
            g.interrupt = None;
        }
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.state().hooks.clone()
    }

    pub fn mode(&self) -> Option<String> {
        self.state().mode.clone()
    }

    /// The interrupt that stops the running turn, if one came (taken: the turn answers it).
    pub fn take_interrupt(&self) -> Option<String> {
        self.state().interrupt.take()
    }

    pub fn interrupt_pending(&self) -> bool {
        self.state().interrupt.is_some()
    }

    /// Sleeps `d`, or less when an interrupt comes.
    pub fn pause(&self, d: Duration) {
        let deadline = Instant::now() + d;
        let mut g = self.state();
        while g.interrupt.is_none() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            g = self.wait(g, deadline - now);
        }
    }

    /// Waits up to `d` for an answer to one of `ids` (taken), an interrupt, or the end of stdin.
    /// None: nothing came in time.
    pub fn wait_answer(&self, ids: &[String], d: Duration) -> Option<Wake> {
        let deadline = Instant::now() + d;
        let mut g = self.state();
        loop {
            if g.interrupt.is_some() {
                return Some(Wake::Interrupt);
            }
            if let Some(id) = ids.iter().find(|id| g.answers.contains_key(*id)) {
                let v = g.answers.remove(id).unwrap_or(Value::Null);
                return Some(Wake::Answer(id.clone(), v));
            }
            if g.eof {
                return Some(Wake::Eof);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            g = self.wait(g, deadline - now);
        }
    }

    /// Appends a line to `--fake-control-log`.
    pub fn log(&self, event: &str, request_id: &str, subtype: &str) {
        if let Some(f) = &self.inner.log {
            let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
                .map(|t| t.tv_sec() as i128 * 1_000_000_000 + i128::from(t.tv_nsec()))
                .unwrap_or(0);
            let line = json!({
                "event": event,
                "request_id": request_id,
                "subtype": subtype,
                "t_ns": ts as i64,
            });
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(f, "{line}");
        }
    }

    /// Our answer to a control request of the driver: success with `response` (none: no
    /// `response` key, as the real CLI answers an interrupt), or an error.
    fn respond(&self, out: &mut Out, request_id: &str, result: Result<Option<Value>, String>) {
        if self.inner.quiet {
            return;
        }
        let inner = match result {
            Ok(Some(r)) => json!({"subtype": "success", "request_id": request_id, "response": r}),
            Ok(None) => json!({"subtype": "success", "request_id": request_id}),
            Err(e) => json!({"subtype": "error", "request_id": request_id, "error": e}),
        };
        out.echo(&json!({"type": "control_response", "response": inner}).to_string());
    }

    /// The answer to an `interrupt`: 2.1.332 adds `still_queued`, empty even with a message
    /// queued, which runs as the next turn all the same (`control-live-interrupt-queued`).
    pub fn answer_interrupt(&self, out: &mut Out, request_id: &str) {
        let body = match self.inner.cli {
            Cli::V2_1_197 => None,
            Cli::V2_1_332 => Some(json!({ "still_queued": [] })),
        };
        self.respond(out, request_id, Ok(body));
    }

    fn read_stdin(self) {
        let stdin = std::io::stdin();
        let mut r = BufReader::new(stdin.lock());
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&buf);
            let raw = text.trim_end_matches(['\n', '\r']);
            if raw.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(raw) {
                Ok(v) => self.handle(raw, &v),
                Err(e) => eprintln!("fake-claude: not a JSON line on stdin ({e}): {raw:.200}"),
            }
        }
        self.state().eof = true;
        self.inner.cv.notify_all();
    }

    fn handle(&self, raw: &str, v: &Value) {
        match v.get("type").and_then(Value::as_str) {
            Some("user") => {
                let text = user_text(v);
                self.state().messages.push_back(text);
            }
            Some("control_response") => {
                let resp = v.get("response").cloned().unwrap_or(Value::Null);
                let id = resp
                    .get("request_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                self.log("answer", &id, "");
                if self.inner.replay {
                    // The real CLI echoes the driver's answers verbatim, before acting on them.
                    lock(&self.inner.out).echo(raw);
                }
                self.state().answers.insert(id, resp);
            }
            Some("control_request") => self.control_request(v),
            _ => {}
        }
        self.inner.cv.notify_all();
    }

    fn control_request(&self, v: &Value) {
        let id = v
            .get("request_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let req = v.get("request").cloned().unwrap_or(Value::Null);
        let subtype = req.get("subtype").and_then(Value::as_str).unwrap_or("");
        match subtype {
            "initialize" => {
                self.state().hooks = hooks_of(&req);
                let mut out = lock(&self.inner.out);
                let body = json!({
                    "commands": [],
                    "agents": [],
                    "output_style": "default",
                    "available_output_styles": ["default"],
                    "models": [],
                    "account": {"tokenSource": "none", "apiKeySource": "ANTHROPIC_API_KEY"},
                    "pid": std::process::id(),
                });
                self.respond(&mut out, &id, Ok(Some(body)));
            }
            "interrupt" => {
                let mut g = self.state();
                if g.turn {
                    g.interrupt = Some(id);
                    return;
                }
                let legacy = g.legacy;
                drop(g);
                let mut out = lock(&self.inner.out);
                self.answer_interrupt(&mut out, &id);
                if legacy && !out.stopped {
                    // As SIGINT stops such a turn, without exiting: tools killed, the
                    // interruption written, the rest of the turn's lines dropped.
                    out.kill_grandchildren();
                    out.interrupted();
                    out.flush();
                    out.stopped = true;
                }
            }
            "set_permission_mode" => {
                let mode = req
                    .get("mode")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                self.state().mode = Some(mode.clone());
                let mut out = lock(&self.inner.out);
                self.respond(&mut out, &id, Ok(Some(json!({ "mode": mode }))));
                if self.inner.quiet {
                    return;
                }
                let sid = out.ctx.sid.clone();
                out.echo(&format!(
                    r#"{{"type":"system","subtype":"status","status":null,"permissionMode":{},"uuid":{},"session_id":{}}}"#,
                    js(&mode),
                    js(&uuid()),
                    js(&sid)
                ));
            }
            other => {
                let mut out = lock(&self.inner.out);
                self.respond(
                    &mut out,
                    &id,
                    Err(format!("Unsupported control request subtype: {other}")),
                );
            }
        }
    }

    /// Milliseconds since the reader started (for the fake's own diagnostics).
    #[allow(dead_code)]
    pub fn elapsed_ms(&self) -> u128 {
        self.inner.t0.elapsed().as_millis()
    }
}

/// A user message's text: its string content, or its text blocks joined.
fn user_text(v: &Value) -> String {
    let content = v.get("message").and_then(|m| m.get("content"));
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The `PreToolUse` callbacks of an `initialize` request's `hooks`.
fn hooks_of(req: &Value) -> Vec<Hook> {
    let mut out = Vec::new();
    let entries = req
        .get("hooks")
        .and_then(|h| h.get("PreToolUse"))
        .and_then(Value::as_array);
    for e in entries.into_iter().flatten() {
        let matcher = e
            .get("matcher")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ids = e.get("hookCallbackIds").and_then(Value::as_array);
        for id in ids.into_iter().flatten().filter_map(Value::as_str) {
            out.push(Hook {
                matcher: matcher.clone(),
                callback_id: id.to_string(),
            });
        }
    }
    out
}
