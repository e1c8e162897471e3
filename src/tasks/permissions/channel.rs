//! What a task's watcher and the requests that answer share about one CLI: its stdin, the
//! requests and hook calls it has open, the user messages written to it and not taken yet, the
//! tally of the current run's turns, and whether it is idle (its last turn over, every message
//! we wrote taken).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::watch;

use crate::cli::control::{self, Stdin};
use crate::stream_json::echo::Written;
use crate::task::Pending;

/// A `can_use_tool` request the CLI has open.
pub(crate) struct OpenRequest {
    pub(crate) pending: Pending,
    /// In the record's `pending` (waiting for the user).
    pub(crate) shown: bool,
    /// We wrote an answer; its echo has not come yet.
    pub(crate) answered: bool,
}

pub(super) struct HookCall {
    pub(super) request_id: String,
    pub(super) tool_name: String,
    pub(super) tool_input: Value,
    pub(super) tool_use_id: Option<String>,
    pub(super) answered: bool,
}

/// What a task's watcher and the requests that answer share.
pub(crate) struct Control {
    pub(super) stdin: Option<Stdin>,
    pub(super) stdin_error: Option<String>,
    pub(crate) open: Vec<OpenRequest>,
    pub(super) hooks: Vec<HookCall>,
    /// tool_use_id -> the file (relative to the task) our hook made the CLI ask about.
    pub(super) unsaved_by_tool: HashMap<String, String>,
    /// Requests answered (from the record a crashed backend left) before this watcher read
    /// them: they are neither shown nor answered again.
    pub(crate) answered_early: Vec<String>,
    /// User messages written to this CLI and not taken yet (their echo not seen), oldest first.
    pub(super) waiting_echo: VecDeque<Written>,
    /// The last line that matters was a `result`.
    pub(super) after_result: bool,
    pub(super) interrupts: u64,
    /// The current run still takes messages said to it; false once it is being finished (a
    /// message said after that is the next run's prompt).
    pub(super) taking: bool,
    /// What the current run's turns came to, since `begin_run`.
    pub(crate) tally: Tally,
    /// True while the CLI is idle: its last turn over and every message we wrote taken.
    pub(super) idle: watch::Sender<bool>,
}

/// A run's turns, as the watcher saw their `result` lines and our interrupts.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    /// `result` lines, and the API round trips they count.
    pub(crate) results: u32,
    pub(crate) turns: u64,
    /// The last result's running sums (`total_cost_usd`, `duration_api_ms`) of the process.
    pub(crate) cli_cost_usd: Option<f64>,
    pub(crate) cli_api_ms: Option<u64>,
    /// The last result was an error.
    pub(crate) last_error: bool,
    /// We interrupted a turn of this run.
    pub(crate) interrupted: bool,
    /// An interrupt was written and no message was taken since: the next error result is the
    /// interrupted turn's.
    pub(super) interrupt_pending: bool,
    /// The last result came after our interrupt, before any later message was taken: the turn
    /// that ended was the interrupted one.
    pub(crate) ended_by_interrupt: bool,
    /// What the CLI said it still has queued when it answered our interrupt (2.1.332's
    /// `still_queued`), when it said.
    pub(crate) still_queued: Option<usize>,
}

impl Control {
    pub(crate) fn new(stdin: Result<Stdin, String>) -> Control {
        let (stdin, stdin_error) = match stdin {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        Control {
            stdin,
            stdin_error,
            open: Vec::new(),
            hooks: Vec::new(),
            unsaved_by_tool: HashMap::new(),
            answered_early: Vec::new(),
            waiting_echo: VecDeque::new(),
            after_result: false,
            interrupts: 0,
            taking: true,
            tally: Tally::default(),
            idle: watch::Sender::new(false),
        }
    }

    /// A CLI found idle (re-adopted between runs): nothing in flight, a result last.
    pub(crate) fn new_idle(stdin: Result<Stdin, String>) -> Control {
        let mut c = Control::new(stdin);
        c.after_result = true;
        c.taking = false;
        c.publish_idle();
        c
    }

    /// Writes one line to the CLI.
    pub(crate) fn write(&mut self, line: &str) -> Result<(), String> {
        match self.stdin.as_mut() {
            Some(s) => s.write_line(line),
            None => Err(self
                .stdin_error
                .clone()
                .unwrap_or_else(|| "the CLI's stdin is not open".into())),
        }
    }

    /// Writes bytes that end a line already begun (the rest of a prompt).
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self.stdin.as_mut() {
            Some(s) => s.write_bytes(bytes),
            None => Err(self
                .stdin_error
                .clone()
                .unwrap_or_else(|| "the CLI's stdin is not open".into())),
        }
    }

    /// Writes the protocol's `interrupt`.
    pub(crate) fn interrupt(&mut self) -> Result<(), String> {
        self.interrupts += 1;
        let id = format!("ct-int-{}", self.interrupts);
        self.write(&control::interrupt(&id))?;
        self.tally.interrupted = true;
        self.tally.interrupt_pending = true;
        Ok(())
    }

    /// A message that was written to the CLI (the prompt put in its FIFO before it started, or
    /// a run found running): its echo is waiting.
    pub(crate) fn expect(&mut self, w: Written) {
        self.waiting_echo.push_back(w);
        self.publish_idle();
    }

    /// A new run begins in this CLI (its prompt comes next): its tally starts from nothing and
    /// it takes messages said to it.
    pub(crate) fn begin_run(&mut self) {
        self.tally = Tally::default();
        self.taking = true;
    }

    /// Writes a user message (a run's prompt, or one said during a run) and waits for its echo.
    pub(crate) fn send_user(&mut self, text: &str) -> Result<(), String> {
        self.write(&control::user_message(text))?;
        self.expect(Written::of(text));
        Ok(())
    }

    /// Writes a message said during the run, unless the run is being finished (then false:
    /// the message is the next run's prompt).
    pub(crate) fn say(&mut self, text: &str) -> Result<bool, String> {
        if !self.taking {
            return Ok(false);
        }
        self.send_user(text).map(|()| true)
    }

    /// The run's end, when the CLI is still idle: it takes no more messages. False when a
    /// message came meanwhile (the run goes on).
    pub(crate) fn close_run(&mut self) -> bool {
        if !self.idle() {
            return false;
        }
        self.taking = false;
        true
    }

    pub(crate) fn idle(&self) -> bool {
        self.after_result && self.waiting_echo.is_empty()
    }

    /// Whether the CLI is idle, as the watch channel says it.
    pub(crate) fn idle_watch(&self) -> watch::Receiver<bool> {
        self.idle.subscribe()
    }

    pub(super) fn publish_idle(&self) {
        let now = self.idle();
        self.idle.send_if_modified(|v| {
            let changed = *v != now;
            *v = now;
            changed
        });
    }

    /// The requests the user is asked, oldest first.
    pub(crate) fn waiting(&self) -> Vec<Pending> {
        self.open
            .iter()
            .filter(|r| r.shown && !r.answered)
            .map(|r| r.pending.clone())
            .collect()
    }
}

pub(crate) fn lock(c: &Mutex<Control>) -> MutexGuard<'_, Control> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}
