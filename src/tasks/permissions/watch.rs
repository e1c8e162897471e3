//! The control side of a running task: a tokio task that follows the run's part of the
//! transcript and keeps what the CLI has open (its permission requests, our hook's callbacks),
//! answers what the plugin answers itself (the unsaved-buffers hook, the "always" rules, the
//! `deny` policy) within a few ms, shows the rest to the user (the record's `pending` and the
//! `permission` event), and says when the CLI is idle (its `result` written, every message we
//! wrote taken). The transcript is the truth: a backend that re-adopts a task rebuilds all of
//! this by reading the run again from its start. What it shares with the requests that answer
//! is `channel`'s.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::watch;

use super::rules::{self, Rule};
use crate::cli::control::{self, Answer, Decider, UNSAVED_HOOK};
use crate::render::{sanitize, tool_summary};
use crate::store::TaskDir;
use crate::stream_json::control::{CanUseTool, Control as Line, RequestKind};
use crate::stream_json::echo::{self, Written};
use crate::stream_json::reader::{Consumer, LineFeed};
use crate::stream_json::{Msg, TextDelta};
use crate::task::{now_ms, Pending, Permissions};
use crate::tasks::{Supervisor, TaskKey};
use crate::text::cut_chars;
use crate::transcript::follow::Follower;
use crate::transcript::framing::{Framer, Piece};
use crate::{log_info, log_warn};

/// Strings of a request's input longer than this are cut in the record (the transcript keeps
/// them whole).
const MAX_INPUT_STRING: usize = 64 * 1024;
/// Largest request line read back from the transcript to answer with its whole input.
const MAX_REQUEST_LINE: u64 = 256 * 1024 * 1024;

use super::channel::HookCall;
pub(crate) use super::channel::{lock, Control, OpenRequest};

/// A running watcher.
pub(crate) struct Watcher {
    pub(crate) control: Arc<Mutex<Control>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The stored part of a line for the watcher's framer. The view reads the same transcript with
/// its own framer (`framing::MAX_LINE`, 4 MiB): a flood's `assistant` line, tens of MB, filled
/// both, and the backend's peak memory grew by 4 MiB. The lines the watcher needs are small, and
/// a longer one is still understood whole (its long strings cut as it is read, a request's
/// input read back from the transcript when it is answered), only by the slower path.
const WATCH_MAX_LINE: usize = 256 * 1024;

impl Watcher {
    /// Stops it after it has read everything the transcript holds now.
    pub(crate) async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Lines that matter to the control side, as a reader hands them over.
#[derive(Default)]
struct Seen {
    offset: u64,
    items: Vec<(u64, bool, Msg)>,
}

impl Consumer for Seen {
    fn feed(&mut self, msg: &Msg) {
        self.keep(msg, false);
    }
    fn feed_shortened(&mut self, msg: &Msg) {
        self.keep(msg, true);
    }
    fn feed_text_delta(&mut self, _d: &TextDelta) {}
}

impl Seen {
    fn keep(&mut self, msg: &Msg, cut: bool) {
        let keep = match msg {
            Msg::Control(_) | Msg::Result(_) => true,
            Msg::User(u) => u.replay,
            _ => false,
        };
        if keep {
            self.items.push((self.offset, cut, msg.clone()));
        }
    }
}

impl Supervisor {
    /// Starts following the control side of the run of `key` whose output begins at `offset`.
    pub(crate) fn watch_control(
        &self,
        key: &TaskKey,
        dir: &TaskDir,
        offset: u64,
        control: Arc<Mutex<Control>>,
    ) -> Watcher {
        let (stop, stop_rx) = watch::channel(false);
        let me = self.clone();
        let (k, d, c) = (key.clone(), dir.clone(), control.clone());
        let task = tokio::spawn(async move { me.watch_loop(k, d, offset, c, stop_rx).await });
        Watcher {
            control,
            stop,
            task,
        }
    }

    async fn watch_loop(
        self,
        key: TaskKey,
        dir: TaskDir,
        offset: u64,
        control: Arc<Mutex<Control>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let path = dir.transcript();
        let mut follower = match Follower::open(&path, offset) {
            Ok(f) => f,
            Err(e) => {
                log_warn!("task #{}: cannot follow its transcript: {e}", key.1);
                return;
            }
        };
        let mut framer = Framer::new(WATCH_MAX_LINE, offset);
        let mut feed = LineFeed::new(&path);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let stopping = *stop.borrow_and_update();
            let mut seen = Seen::default();
            loop {
                let n = match follower.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        log_warn!("task #{}: reading its transcript: {e}", key.1);
                        0
                    }
                };
                if n == 0 {
                    break;
                }
                framer.push_pieces(&buf[..n], |piece| match piece {
                    Piece::Long(_) => feed.piece(&mut seen, piece),
                    Piece::Line(l) => {
                        if l.truncated() || crate::stream_json::control::may_matter(l.bytes) {
                            seen.offset = l.offset;
                            feed.line(&mut seen, l);
                        }
                    }
                });
            }
            if !seen.items.is_empty() {
                self.take_lines(&key, &control, seen.items);
            }
            if !stopping {
                self.answer_what_we_can(&key, &dir, &control).await;
            }
            lock(&control).publish_idle();
            if stopping {
                return;
            }
            tokio::select! {
                r = follower.changed() => {
                    if let Err(e) = r {
                        log_warn!("task #{}: watching its transcript: {e}", key.1);
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
                _ = stop.changed() => {}
            }
        }
    }

    /// Takes the lines that matter into the shared state.
    fn take_lines(&self, key: &TaskKey, control: &Mutex<Control>, items: Vec<(u64, bool, Msg)>) {
        // Paths are relative to where the CLI runs (a worktree task's worktree); the record
        // first, then the control state (the lock order).
        let cwd = self.run_dir(key);
        let cwd = cwd.as_str();
        let mut c = lock(control);
        for (offset, cut, msg) in items {
            match msg {
                Msg::Control(Line::Request(r)) => {
                    c.after_result = false;
                    match r.kind {
                        RequestKind::CanUseTool(req) => {
                            let unsaved = req
                                .tool_use_id
                                .as_ref()
                                .and_then(|t| c.unsaved_by_tool.get(t).cloned())
                                .filter(|_| req.decision_reason_type.as_deref() == Some("hook"));
                            let pending =
                                pending_of(&r.request_id, &req, offset, cut, cwd, unsaved);
                            c.open.push(OpenRequest {
                                pending,
                                shown: false,
                                answered: false,
                            });
                        }
                        RequestKind::HookCallback(h) if h.callback_id == UNSAVED_HOOK => {
                            c.hooks.push(HookCall {
                                request_id: r.request_id,
                                tool_name: h.tool_name,
                                tool_input: h.tool_input,
                                tool_use_id: h.tool_use_id,
                                answered: false,
                            });
                        }
                        _ => {}
                    }
                }
                Msg::Control(Line::Cancel { request_id }) => {
                    c.open.retain(|r| r.pending.request_id != request_id);
                    c.hooks.retain(|h| h.request_id != request_id);
                }
                Msg::Control(Line::Response(resp)) if resp.request_id.starts_with("ct-int-") => {
                    // The answer to our interrupt; 2.1.332 says what it still has queued.
                    if let Some(n) = resp.still_queued() {
                        c.tally.still_queued = Some(n);
                        if n > 0 {
                            log_info!(
                                "task #{}: {n} message(s) still queued after the interrupt",
                                key.1
                            );
                        }
                    }
                }
                Msg::Control(Line::Response(resp)) => {
                    // The echo of the user's deny with `interrupt`: the CLI ends the turn as
                    // for our interrupt (an error result), so the run ends as interrupted, not
                    // failed. From the echo, so a backend that re-adopted the task knows too.
                    if resp.decided.is_some() && resp.interrupts() {
                        c.tally.interrupted = true;
                        c.tally.interrupt_pending = true;
                    }
                    let id = resp.request_id;
                    c.open.retain(|r| r.pending.request_id != id);
                    if let Some(i) = c.hooks.iter().position(|h| h.request_id == id) {
                        let h = c.hooks.remove(i);
                        if let (Some(t), Some(u)) =
                            (h.tool_use_id, resp.decided.and_then(|d| d.unsaved))
                        {
                            c.unsaved_by_tool.insert(t, u);
                        }
                    }
                }
                Msg::Result(r) => {
                    c.after_result = true;
                    let t = &mut c.tally;
                    t.results += 1;
                    t.turns += r.num_turns;
                    t.cli_cost_usd = Some(r.total_cost_usd);
                    t.cli_api_ms = r.duration_api_ms.or(t.cli_api_ms);
                    t.last_error = r.is_error;
                    t.ended_by_interrupt = t.interrupt_pending && r.is_error;
                    t.interrupt_pending = false;
                }
                Msg::User(u) => {
                    let waiting: Vec<Written> = c.waiting_echo.iter().copied().collect();
                    let text = if cut { None } else { u.text() };
                    for _ in 0..echo::taken(text, &waiting) {
                        c.waiting_echo.pop_front();
                    }
                    c.after_result = false;
                    // A message taken after the interrupt: what ends next is its turn.
                    c.tally.interrupt_pending = false;
                }
                _ => {}
            }
        }
    }

    /// Answers the hook callbacks and the requests a rule or the `deny` policy decides; shows the
    /// others to the user; publishes the record's `pending` when it changed.
    async fn answer_what_we_can(
        &self,
        key: &TaskKey,
        dir: &TaskDir,
        control: &Arc<Mutex<Control>>,
    ) {
        // The record first, then the control state: never the other way round (the state
        // lock is taken before a control lock wherever both are held).
        let Some(rec) = self.state().tasks.get(key).map(|e| e.rec()) else {
            return;
        };
        {
            let c = lock(control);
            let undecided = c.hooks.iter().any(|h| !h.answered)
                || c.open.iter().any(|r| !r.shown && !r.answered);
            if !undecided && c.waiting() == rec.pending {
                return;
            }
        }
        let (me, k, d, c) = (self.clone(), key.clone(), dir.clone(), control.clone());
        let task_rules = rec.rules.clone();
        let permissions = rec.options.permissions;
        // One trip to the blocking pool: each one costs a wakeup, and the CLI waits meanwhile.
        let shown = tokio::task::spawn_blocking(move || {
            me.decide_open(&k, &d, &c, &task_rules, permissions)
        })
        .await
        .unwrap_or_default();
        // A new request is news at once: its `permission` event does not wait for the
        // record's fsyncs (tens of ms while transcripts are written). The pending list is no
        // truth of its own: any backend rebuilds it from the transcript. Every other change
        // of the record is written before its event, as always.
        for p in &shown {
            self.publish_pending(key, control, Some(p));
        }
        let c = control.clone();
        let written = self.update(key, |r| r.pending = lock(&c).waiting()).await;
        if written.is_some() && shown.is_empty() {
            self.publish_pending(key, control, None);
        }
    }

    /// Where the task's CLI runs: the project, or a worktree task's worktree.
    fn run_dir(&self, key: &TaskKey) -> String {
        self.state()
            .tasks
            .get(key)
            .map_or_else(|| key.0.clone(), |e| e.record.borrow().run_cwd().to_owned())
    }

    /// Sets the record's `pending` from what is open now and sends its event (`permission`
    /// for a new request, else `updated`), both under the state lock: whoever changes the
    /// list (the watcher, an answer), the events reach Lua in the order of the changes, the
    /// last one with the latest list.
    pub(crate) fn publish_pending(
        &self,
        key: &TaskKey,
        control: &Mutex<Control>,
        new: Option<&Pending>,
    ) {
        let st = self.state();
        let Some(e) = st.tasks.get(key) else {
            return;
        };
        let waiting = lock(control).waiting();
        e.record.send_modify(|r| r.pending = waiting);
        let rec = e.rec();
        match new {
            Some(p) => self.emit_permission(&rec, p),
            None => self.emit("updated", &rec),
        }
    }

    /// On the blocking pool (it writes to the CLI): decides what needs nobody; returns the
    /// requests newly shown to the user.
    fn decide_open(
        &self,
        key: &TaskKey,
        dir: &TaskDir,
        control: &Mutex<Control>,
        task_rules: &[String],
        permissions: Permissions,
    ) -> Vec<Pending> {
        let run_dir = self.run_dir(key);
        let cwd = run_dir.as_str();
        let mut c = lock(control);
        // The project's rules only when a request is to be decided (not for a hook).
        let undecided = c.open.iter().any(|r| !r.shown && !r.answered);
        let project_rules = if undecided {
            self.shared
                .store
                .project_rules(&key.0)
                .map_err(|e| log_warn!("{e}"))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let rules: Vec<(String, &'static str)> = task_rules
            .iter()
            .map(|r| (r.clone(), "task"))
            .chain(project_rules.into_iter().map(|r| (r, "project")))
            .collect();
        let mut shown = Vec::new();
        // Our hook first: every edit of a file with unsaved changes must become a request.
        for i in 0..c.hooks.len() {
            if c.hooks[i].answered {
                continue;
            }
            let h = &c.hooks[i];
            let path = rules::tool_path(&h.tool_name, &h.tool_input, cwd);
            // Outside git, the file as it is before the edit, which waits for this answer.
            if let Some(p) = path.as_deref() {
                self.keep_before_edit(key, p);
            }
            let unsaved = path
                .filter(|p| self.is_unsaved(p))
                .map(|p| relative(&p, cwd));
            let reason = unsaved
                .as_ref()
                .map(|u| format!("you have unsaved changes in {u}"));
            let who = Decider {
                by: "hook",
                unsaved: unsaved.clone(),
                ..Decider::default()
            };
            let line = control::hook_answer(&h.request_id, reason.as_deref(), &who);
            let tool_use_id = h.tool_use_id.clone();
            match c.write(&line) {
                Ok(()) => {
                    c.hooks[i].answered = true;
                    if let (Some(t), Some(u)) = (tool_use_id, unsaved) {
                        c.unsaved_by_tool.insert(t, u);
                    }
                }
                Err(e) => log_warn!("task #{}: cannot answer a hook: {e}", key.1),
            }
        }
        for i in 0..c.open.len() {
            if c.open[i].shown || c.open[i].answered {
                continue;
            }
            let p = c.open[i].pending.clone();
            let rule = if p.unsaved.is_some() {
                None
            } else {
                // What a rule looks at (a command, a path) is never a cut string.
                rules.iter().find(|(r, _)| {
                    Rule::parse(r).is_ok_and(|r| r.matches(&p.tool_name, &p.input, cwd))
                })
            };
            let answer = match (rule, permissions) {
                (Some((rule, scope)), _) => full_input(dir, &p).map(|input| {
                    (
                        Answer::Allow { input },
                        Decider {
                            by: "rule",
                            rule: Some(rule.clone()),
                            scope: Some(scope),
                            ..Decider::default()
                        },
                    )
                }),
                (None, Permissions::Deny) => Ok((
                    Answer::Deny {
                        message: policy_message(&p),
                        interrupt: false,
                    },
                    Decider {
                        by: "policy",
                        unsaved: p.unsaved.clone(),
                        ..Decider::default()
                    },
                )),
                (None, Permissions::Ask) => {
                    c.open[i].shown = true;
                    shown.push(p);
                    continue;
                }
            };
            let written =
                answer.and_then(|(a, who)| c.write(&control::answer(&p.request_id, &a, &who)));
            match written {
                Ok(()) => {
                    c.open[i].answered = true;
                    log_info!("task #{}: {} answered by the plugin", key.1, p.title);
                }
                Err(e) => {
                    // Nothing is decided for the user: it waits for them instead.
                    log_warn!("task #{}: cannot answer {}: {e}", key.1, p.title);
                    c.open[i].shown = true;
                    shown.push(p);
                }
            }
        }
        shown
    }
}

/// The request's input, whole: read back from the transcript when the record's copy was cut.
pub(crate) fn full_input(dir: &TaskDir, p: &Pending) -> Result<Value, String> {
    if !p.input_cut {
        return Ok(p.input.clone());
    }
    crate::stream_json::control::request_input_at(&dir.transcript(), p.offset, MAX_REQUEST_LINE)
}

fn policy_message(p: &Pending) -> String {
    match &p.unsaved {
        Some(u) => format!(
            "Denied: {u} has unsaved changes in the user's editor, and this task runs with permissions = \"deny\" (nobody is asked)."
        ),
        None => "Denied: this task runs with permissions = \"deny\" (nobody is asked). Go on without it.".into(),
    }
}

fn relative(p: &Path, cwd: &str) -> String {
    match p.strip_prefix(cwd) {
        Ok(r) if !r.as_os_str().is_empty() => r.display().to_string(),
        _ => p.display().to_string(),
    }
}

/// A `can_use_tool` request as the record keeps it.
fn pending_of(
    request_id: &str,
    req: &CanUseTool,
    offset: u64,
    cut: bool,
    cwd: &str,
    unsaved: Option<String>,
) -> Pending {
    let (input, input_cut) = cut_long_strings(&req.input);
    let title = match req.tool_name.as_str() {
        "AskUserQuestion" => {
            let q = req
                .input
                .get("questions")
                .and_then(|q| q.get(0))
                .and_then(|q| q.get("question"))
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("AskUserQuestion: {q}")
        }
        _ => tool_summary(&req.tool_name, &req.input),
    };
    Pending {
        request_id: request_id.to_string(),
        tool_name: req.tool_name.clone(),
        input,
        input_cut: cut || input_cut,
        suggestions: req.suggestions.clone(),
        since: now_ms(),
        tool_use_id: req.tool_use_id.clone(),
        title: sanitize(&cut_chars(&title, 200)).into_owned(),
        description: req.description.clone(),
        reason: req.decision_reason.clone(),
        blocked_path: req.blocked_path.clone(),
        rule: if unsaved.is_some() {
            None
        } else {
            rules::propose(&req.tool_name, &req.input, cwd)
        },
        unsaved,
        offset,
    }
}

/// `v` with every string longer than `MAX_INPUT_STRING` cut; whether any was.
fn cut_long_strings(v: &Value) -> (Value, bool) {
    match v {
        Value::String(s) if s.len() > MAX_INPUT_STRING => (
            Value::String(cut_chars(s, MAX_INPUT_STRING / 4).into_owned()),
            true,
        ),
        Value::Array(a) => {
            let mut any = false;
            let out = a
                .iter()
                .map(|x| {
                    let (y, c) = cut_long_strings(x);
                    any |= c;
                    y
                })
                .collect();
            (Value::Array(out), any)
        }
        Value::Object(m) => {
            let mut any = false;
            let out = m
                .iter()
                .map(|(k, x)| {
                    let (y, c) = cut_long_strings(x);
                    any |= c;
                    (k.clone(), y)
                })
                .collect();
            (Value::Object(out), any)
        }
        other => (other.clone(), false),
    }
}
