//! Scaffolding shared by the integration tests (`mod common;` in each): a recording editor, the
//! fake Neovim that the backend binary talks to over msgpack-RPC, the backend as a child process,
//! per-test directories, and process helpers.
//!
//! Waits are on what the editor recorded (a notification at every change) or, for process and
//! file state that nothing announces, on a bounded poll; timeouts only turn a hang into a failure.

// Every test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use claude_tasks::nvim::editor::{Editor, WriteError, Written};
use claude_tasks::nvim::outgoing::Sent;
use claude_tasks::process::proctree;
use claude_tasks::task::TaskRecord;
use nvim_rs::compat::tokio::Compat;
use nvim_rs::{Handler, Neovim};
use rmpv::Value;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Notify;

pub const BACKEND: &str = env!("CARGO_BIN_EXE_claude-tasks");
pub const FAKE: &str = env!("CARGO_BIN_EXE_fake-claude");
/// The unprivileged user some cases run the backend as.
pub const NOBODY: u32 = 65534;

pub type Json = serde_json::Value;

/// A msgpack value as JSON (maps with string keys, as Lua sees them).
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Boolean(b) => (*b).into(),
        Value::Integer(i) => i
            .as_u64()
            .map(Into::into)
            .or_else(|| i.as_i64().map(Into::into))
            .unwrap_or(Json::Null),
        Value::F64(f) => (*f).into(),
        Value::F32(f) => f64::from(*f).into(),
        Value::String(s) => s.as_str().unwrap_or_default().into(),
        Value::Array(a) => a.iter().map(to_json).collect(),
        Value::Map(m) => m
            .iter()
            .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        _ => Json::Null,
    }
}

// ------------------------------------------------------------------------------ the editor's view

/// The task an event carries, as far as matching events goes.
pub trait TaskId {
    fn task_id(&self) -> Option<u64>;
}

impl TaskId for Json {
    fn task_id(&self) -> Option<u64> {
        self["id"].as_u64()
    }
}

impl TaskId for TaskRecord {
    fn task_id(&self) -> Option<u64> {
        Some(self.id)
    }
}

/// What an editor was told: every event (its kind and task, in order) and the buffers, with a
/// notification at every change for the waits to wake on.
pub struct Screen<T> {
    events: Mutex<Vec<(String, T)>>,
    bufs: Mutex<HashMap<i64, Vec<String>>>,
    changed: Notify,
    /// How long a wait may take before it is a hang.
    guard: Duration,
}

impl<T: TaskId + Clone> Screen<T> {
    pub fn new(guard: Duration) -> Self {
        Screen {
            events: Mutex::default(),
            bufs: Mutex::default(),
            changed: Notify::new(),
            guard,
        }
    }

    pub fn push_event(&self, kind: String, task: T) {
        self.events.lock().unwrap().push((kind, task));
        self.changed.notify_waiters();
    }

    /// Replaces lines `start..` of `buf`, as Neovim would; false when there is no such buffer.
    pub fn write(&self, buf: i64, start: usize, lines: Vec<String>) -> bool {
        {
            let mut bufs = self.bufs.lock().unwrap();
            let Some(b) = bufs.get_mut(&buf) else {
                return false;
            };
            assert!(
                start <= b.len(),
                "write at {start} past the end {}",
                b.len()
            );
            for l in &lines {
                assert!(!l.contains('\n'), "a buffer line holds a newline: {l:?}");
            }
            b.truncate(start);
            b.extend(lines);
        }
        self.changed.notify_waiters();
        true
    }

    /// Whether `pred` comes to hold within the guard; it is checked at every change.
    async fn holds(&self, pred: impl Fn(&Self) -> bool) -> bool {
        self.holds_within(self.guard, pred).await
    }

    /// Whether `pred` comes to hold within `within`.
    async fn holds_within(&self, within: Duration, pred: impl Fn(&Self) -> bool) -> bool {
        comes_to_hold(&self.changed, within, || pred(self)).await
    }

    /// Waits until `pred` holds.
    pub async fn until(&self, what: &str, pred: impl Fn(&Self) -> bool) {
        if !self.holds(pred).await {
            panic!("timed out waiting for {what}; events {:?}", self.kinds());
        }
    }

    fn kinds(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(k, t)| match t.task_id() {
                Some(id) => format!("{k}#{id}"),
                None => format!("{k}#null"),
            })
            .collect()
    }

    /// The latest event of one of `kinds` for task `id`.
    pub fn find(&self, kinds: &[&str], id: u64) -> Option<(String, T)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(k, t)| kinds.contains(&k.as_str()) && t.task_id() == Some(id))
            .cloned()
    }

    pub fn count(&self, kind: &str, id: u64) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, t)| k == kind && t.task_id() == Some(id))
            .count()
    }

    pub fn has(&self, kind: &str, id: u64) -> bool {
        self.count(kind, id) > 0
    }

    /// The task as the latest `kind` event carried it.
    pub fn last(&self, kind: &str, id: u64) -> T {
        self.find(&[kind], id).expect("event").1
    }

    pub async fn wait_event(&self, kind: &str, id: u64) -> T {
        self.until(&format!("{kind}#{id}"), |n| n.has(kind, id))
            .await;
        self.last(kind, id)
    }

    /// The task's outcome event: `completed`, `failed` or `cancelled`.
    pub async fn wait_end(&self, id: u64) -> (String, T) {
        const ENDS: &[&str] = &["completed", "failed", "cancelled"];
        self.until(&format!("the end of #{id}"), |n| n.find(ENDS, id).is_some())
            .await;
        self.find(ENDS, id).unwrap()
    }

    pub fn lines(&self, buf: i64) -> Vec<String> {
        self.bufs
            .lock()
            .unwrap()
            .get(&buf)
            .cloned()
            .unwrap_or_default()
    }

    /// How many lines `buf` has; None when the editor has no such buffer.
    pub fn line_count(&self, buf: i64) -> Option<usize> {
        self.bufs.lock().unwrap().get(&buf).map(Vec::len)
    }

    /// A buffer the editor has open (writes to any other are refused).
    pub fn new_buf(&self, buf: i64) {
        self.bufs.lock().unwrap().insert(buf, Vec::new());
    }

    /// Waits until the buffer ends with a footer line starting with `prefix`; returns it.
    pub async fn footer(&self, buf: i64, prefix: &str) -> Vec<String> {
        self.until(&format!("footer {prefix:?} in buffer {buf}"), |n| {
            n.bufs
                .lock()
                .unwrap()
                .get(&buf)
                .and_then(|b| b.last())
                .is_some_and(|l| l.starts_with(prefix))
        })
        .await;
        self.lines(buf)
    }

    /// Waits until the buffer equals `want` (the last writes may trail the end event).
    pub async fn buffer_becomes(&self, buf: i64, want: &[String]) {
        let same = |n: &Self| n.bufs.lock().unwrap().get(&buf).map(Vec::as_slice) == Some(want);
        if !self.holds(same).await {
            let got = self.lines(buf);
            let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
            panic!(
                "buffer {buf} never became the rendered transcript: {} lines vs {} wanted, \
                 first difference at {first_diff:?}: got {:?} want {:?}",
                got.len(),
                want.len(),
                first_diff.map(|i| &got[i]),
                first_diff.map(|i| &want[i]),
            );
        }
    }
}

/// A screen is an editor for the supervisor (`tests/tasks.rs`, `tests/task_changes.rs`): it
/// records the events and applies the buffer writes.
#[async_trait]
impl Editor for Screen<TaskRecord> {
    async fn event(&self, ev: Value) {
        let map = ev.as_map().cloned().unwrap_or_default();
        let get = |k: &str| {
            map.iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        let kind = get("type").and_then(Value::as_str).unwrap_or("").to_owned();
        // The event carries the record as Lua sees it; read it back through JSON.
        if let Some(rec) = get("task").and_then(|v| serde_json::from_value(to_json(v)).ok()) {
            self.push_event(kind, rec);
        }
    }

    async fn write_lines(
        &self,
        buf: i64,
        start: usize,
        lines: &[String],
        _sent: Sent,
    ) -> Result<Written, WriteError> {
        self.write_fallback(buf, start, lines).await?;
        Ok(Written::Applied)
    }

    async fn write_fallback(
        &self,
        buf: i64,
        start: usize,
        lines: &[String],
    ) -> Result<(), WriteError> {
        if self.write(buf, start, lines.to_vec()) {
            Ok(())
        } else {
            Err(WriteError::BufferGone)
        }
    }
}

/// Whether `pred` comes to hold within `within`: checked now and at every `notify_waiters` of
/// `changed` (registered before each check, so a change between the check and the wait is not
/// missed).
pub async fn comes_to_hold(changed: &Notify, within: Duration, pred: impl Fn() -> bool) -> bool {
    let wait = async {
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred() {
                return;
            }
            notified.await;
        }
    };
    tokio::time::timeout(within, wait).await.is_ok()
}

// ------------------------------------------------------------------------------ fake Neovim

/// What a Neovim would have seen, answering the backend's calls for events (`nvim_exec_lua`)
/// and buffer writes (`nvim_call_atomic` of `before_write`, `nvim_buf_set_lines` and
/// `after_write`, or the Lua `write`); shared by every backend of a test. Like Neovim, it runs
/// one connection's requests one at a time, in the order they came (see `Clone`).
pub struct FakeNvim {
    shared: Arc<Shared>,
    /// The request order of this copy's connection (one per backend).
    order: Arc<Order>,
    /// This copy's place in that order.
    ticket: u64,
}

/// What every copy and every connection of a `FakeNvim` shares: the editor itself.
struct Shared {
    screen: Screen<Json>,
    /// Buffers whose writes take this long: a Neovim busy elsewhere (simulated latency, not a
    /// synchronisation).
    slow: Mutex<HashMap<i64, Duration>>,
    /// Refuse `nvim_call_atomic`, like a Neovim without it: writes then go through Lua.
    no_atomic: std::sync::atomic::AtomicBool,
    /// Buffer writes taken by `nvim_call_atomic` and by the Lua `write`.
    writes: Mutex<(usize, usize)>,
}

/// One connection's requests, in the order they arrived.
#[derive(Default)]
struct Order {
    /// The ticket the next copy of the handler gets.
    issued: std::sync::atomic::AtomicU64,
    /// The ticket whose request runs now (or may start).
    serving: Mutex<u64>,
    turn: Notify,
}

/// A request's turn; the next request's begins when it ends, however it ends.
struct Turn(Arc<Order>);

impl Drop for Turn {
    fn drop(&mut self) {
        *self.0.serving.lock().unwrap() += 1;
        self.0.turn.notify_waiters();
    }
}

/// nvim-rs runs each request in a task of its own, so two requests sent back to back may start
/// in either order, which Neovim never does. But its loop clones the handler once per request,
/// in the order the requests arrive, before spawning that task (nvim-rs 0.9 `handler_loop`):
/// so a clone takes the connection's next ticket, and `handle_request` waits for its ticket's
/// turn. Test code must not clone a `FakeNvim` (that would take a ticket no request holds);
/// it gives a backend `connection()`.
impl Clone for FakeNvim {
    fn clone(&self) -> Self {
        FakeNvim {
            ticket: self
                .order
                .issued
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            ..self.share(self.order.clone())
        }
    }
}

impl FakeNvim {
    pub fn new(guard: Duration) -> Self {
        let shared = Shared {
            screen: Screen::new(guard),
            slow: Mutex::default(),
            no_atomic: Default::default(),
            writes: Mutex::default(),
        };
        FakeNvim {
            shared: Arc::new(shared),
            order: Arc::default(),
            ticket: 0,
        }
    }

    /// The same editor, for one more connection, with a request order of its own.
    pub fn connection(&self) -> FakeNvim {
        self.share(Arc::default())
    }

    fn share(&self, order: Arc<Order>) -> FakeNvim {
        FakeNvim {
            shared: self.shared.clone(),
            order,
            ticket: 0,
        }
    }

    /// Waits until every request that arrived before this copy's has run.
    async fn turn(&self) -> Turn {
        let now = || *self.order.serving.lock().unwrap() == self.ticket;
        if !comes_to_hold(&self.order.turn, self.shared.screen.guard, now).await {
            panic!(
                "fake nvim: request {} never got its turn (serving {}): did nvim-rs change how \
                 it clones the handler?",
                self.ticket,
                self.order.serving.lock().unwrap()
            );
        }
        Turn(self.order.clone())
    }

    /// Every write to `buf` from now on takes `lag`.
    pub fn slow_down(&self, buf: i64, lag: Duration) {
        self.shared.slow.lock().unwrap().insert(buf, lag);
    }

    /// From now on, answer `nvim_call_atomic` as a Neovim that does not know it.
    pub fn without_call_atomic(&self) {
        self.shared
            .no_atomic
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many writes came through `nvim_call_atomic`, and how many through the Lua `write`.
    pub fn writes(&self) -> (usize, usize) {
        *self.shared.writes.lock().unwrap()
    }

    async fn lag(&self, buf: i64) {
        let lag = self.shared.slow.lock().unwrap().get(&buf).copied();
        if let Some(lag) = lag {
            tokio::time::sleep(lag).await;
        }
    }

    /// `nvim_call_atomic` as Neovim runs it: the calls in order, up to the first error, which
    /// is returned as `[index, type, message]` beside the results so far.
    async fn call_atomic(&self, args: &[Value]) -> Result<Value, Value> {
        let calls = args
            .first()
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut results = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            let name = call[0].as_str().unwrap_or_default();
            let params = call[1].as_array().cloned().unwrap_or_default();
            let res = match name {
                "nvim_exec_lua" => {
                    let code = params[0].as_str().unwrap_or_default();
                    let lua = params[1].as_array().cloned().unwrap_or_default();
                    let buf = lua[0].as_i64().unwrap_or(0);
                    if code.contains("before_write") {
                        let start = lua[1].as_u64().unwrap_or(0) as usize;
                        match self.line_count(buf) {
                            None => Err("claude-tasks: buffer gone"),
                            Some(n) if start > n => Err("claude-tasks: use write()"),
                            Some(_) => Ok(Value::Nil),
                        }
                    } else if code.contains("after_write") {
                        Ok(Value::Nil)
                    } else {
                        Err("fake nvim: unexpected lua in nvim_call_atomic")
                    }
                }
                "nvim_buf_set_lines" => {
                    let buf = params[0].as_i64().unwrap_or(0);
                    self.lag(buf).await;
                    let start = params[1].as_u64().unwrap_or(0) as usize;
                    if self.write(buf, start, strings(&params[4])?) {
                        self.shared.writes.lock().unwrap().0 += 1;
                        Ok(Value::Nil)
                    } else {
                        Err("Invalid buffer id")
                    }
                }
                _ => Err("fake nvim: unexpected call in nvim_call_atomic"),
            };
            match res {
                Ok(v) => results.push(v),
                Err(msg) => {
                    let err = vec![Value::from(i), Value::from(0), Value::from(msg)];
                    return Ok(Value::Array(vec![Value::Array(results), Value::Array(err)]));
                }
            }
        }
        Ok(Value::Array(vec![Value::Array(results), Value::Nil]))
    }
}

/// The lines of a write: Neovim refuses a line that is not a string; so does this fake.
fn strings(v: &Value) -> Result<Vec<String>, Value> {
    let raw = v.as_array().cloned().unwrap_or_default();
    let mut lines = Vec::with_capacity(raw.len());
    for l in raw {
        match l.as_str() {
            Some(s) => lines.push(s.to_owned()),
            None => return Err(Value::from(format!("not a UTF-8 string: {l:?}"))),
        }
    }
    Ok(lines)
}

impl Deref for FakeNvim {
    type Target = Screen<Json>;

    fn deref(&self) -> &Screen<Json> {
        &self.shared.screen
    }
}

#[async_trait]
impl Handler for FakeNvim {
    type Writer = Compat<ChildStdin>;

    async fn handle_request(
        &self,
        name: String,
        args: Vec<Value>,
        _nvim: Neovim<Compat<ChildStdin>>,
    ) -> Result<Value, Value> {
        let _turn = self.turn().await;
        if name == "nvim_call_atomic"
            && !self
                .shared
                .no_atomic
                .load(std::sync::atomic::Ordering::SeqCst)
        {
            return self.call_atomic(&args).await;
        }
        if name != "nvim_exec_lua" {
            return Err(Value::from(format!("fake nvim: no {name}")));
        }
        let code = args.first().and_then(Value::as_str).unwrap_or_default();
        let params = args
            .get(1)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if code.contains("claude-tasks.events") {
            let ev = to_json(params.first().unwrap_or(&Value::Nil));
            let kind = ev["type"].as_str().unwrap_or_default().to_owned();
            self.push_event(kind, ev["task"].clone());
            Ok(Value::Boolean(true))
        } else if code.contains("claude-tasks.output") {
            let buf = params[0].as_i64().unwrap_or(0);
            self.lag(buf).await;
            let start = params[1].as_u64().unwrap_or(0) as usize;
            let lines = strings(&params[2])?;
            let written = self.write(buf, start, lines);
            if written {
                self.shared.writes.lock().unwrap().1 += 1;
            }
            Ok(Value::Boolean(written))
        } else {
            Err(Value::from("fake nvim: unexpected lua"))
        }
    }
}

// ------------------------------------------------------------------------------ RPC arguments

pub fn s(v: &str) -> Value {
    Value::from(v)
}

pub fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(pairs.into_iter().map(|(k, v)| (s(k), v)).collect())
}

/// The fake CLI with `args`, as a `cmd` option.
pub fn cmd(args: &[&str]) -> Value {
    let mut v = vec![s(FAKE)];
    v.extend(args.iter().map(|a| s(a)));
    Value::Array(v)
}

/// `start` arguments: `prompt` in `cwd`, run by `cmd`.
pub fn start_in(prompt: &str, cwd: &str, cmd: Value) -> Value {
    map(vec![("prompt", s(prompt)), ("cwd", s(cwd)), ("cmd", cmd)])
}

/// The `id` of a task record.
pub fn id_of(rec: &Json) -> u64 {
    rec["id"].as_u64().unwrap()
}

/// The ids of a `list` answer, in its order.
pub fn ids_of(list: &Json) -> Vec<u64> {
    list.as_array().unwrap().iter().map(id_of).collect()
}

// ------------------------------------------------------------------------------ directories

/// `<tmp>/ct-<kind>-<pid>-<name>`, fresh, with a `project` directory in it; removed on drop.
pub struct Scratch {
    pub root: PathBuf,
    pub project: PathBuf,
}

impl Scratch {
    pub fn new(kind: &str, name: &str) -> Scratch {
        let root = std::env::temp_dir().join(format!("ct-{kind}-{}-{name}", std::process::id()));
        if root.exists() {
            // A previous run of this test with the same pid left a mount behind: unlikely, but
            // never delete through one.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(root.join("state"))
                .status();
        }
        let _ = std::fs::remove_dir_all(&root);
        let project = root.join("project");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(project.join("README.md"), "hi\n").unwrap();
        Scratch { root, project }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

// ------------------------------------------------------------------------------ backends

/// How to start a backend.
#[derive(Clone)]
pub struct Launch {
    pub state: PathBuf,
    pub log: PathBuf,
    pub cwd: PathBuf,
    /// Run as the unprivileged user `nobody` (setpriv).
    pub nobody: bool,
    /// Run with umask 000.
    pub open_umask: bool,
    /// `--nice N`.
    pub nice: Option<i32>,
}

impl Launch {
    /// As `nobody`, with its state and log in `home`.
    pub fn nobody(home: &Path, cwd: PathBuf) -> Launch {
        Launch {
            state: home.join("state"),
            log: home.join("backend.log"),
            cwd,
            nobody: true,
            open_umask: false,
            nice: None,
        }
    }
}

/// The backend binary as Neovim runs it, a child speaking msgpack-RPC on its stdio.
pub struct Backend {
    pub nvim: Neovim<Compat<ChildStdin>>,
    child: Child,
    pub pid: i32,
    guard: Duration,
}

/// One test's directories and editor; on drop, whatever of the test still runs in them is
/// killed and its mounts are undone before the directories go.
pub struct World {
    pub root: PathBuf,
    pub project: PathBuf,
    pub fake: FakeNvim,
    mounts: Vec<PathBuf>,
    guard: Duration,
    _dir: Scratch,
}

impl Drop for World {
    fn drop(&mut self) {
        // After a failed assertion, processes of this test may be left (a hanging fake CLI, its
        // `sleep`s): they all run in a directory under `root`, which is unique to the test.
        for p in proctree::list() {
            let in_root = std::fs::read_link(format!("/proc/{}/cwd", p.pid))
                .is_ok_and(|cwd| cwd.starts_with(&self.root));
            if in_root && p.pid != std::process::id() as i32 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for m in self.mounts.iter().rev() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(m)
                .status();
        }
        // `_dir` goes next, once nothing is mounted in it.
    }
}

impl World {
    /// A world in `<tmp>/ct-<kind>-<pid>-<name>`; waits on its editor time out after `guard`.
    pub fn new(kind: &str, name: &str, guard: Duration) -> World {
        let dir = Scratch::new(kind, name);
        World {
            root: dir.root.clone(),
            project: dir.project.clone(),
            fake: FakeNvim::new(guard),
            mounts: Vec::new(),
            guard,
            _dir: dir,
        }
    }

    pub fn cwd(&self) -> String {
        self.project.to_string_lossy().into_owned()
    }

    /// `start` in the project with the fake CLI; `extra` adds options.
    pub fn start_with(&self, prompt: &str, extra: Vec<(&str, Value)>) -> Value {
        let mut pairs = vec![
            ("prompt", s(prompt)),
            ("cwd", s(&self.cwd())),
            ("cmd", cmd(&[])),
        ];
        pairs.extend(extra);
        map(pairs)
    }

    pub fn launch(&self) -> Launch {
        Launch {
            state: self.root.join("state"),
            log: self.root.join("backend.log"),
            cwd: self.project.clone(),
            nobody: false,
            open_umask: false,
            nice: None,
        }
    }

    pub async fn backend(&self) -> Backend {
        self.backend_with(&self.launch()).await
    }

    /// Spawns a backend and checks that it answers.
    pub async fn backend_with(&self, l: &Launch) -> Backend {
        self.backend_from(Path::new(BACKEND), l).await
    }

    /// Spawns the backend binary at `program` (a copy of it, say) and checks that it answers.
    pub async fn backend_from(&self, program: &Path, l: &Launch) -> Backend {
        let mut c = if l.nobody {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={NOBODY}"))
                .arg(format!("--regid={NOBODY}"))
                .arg("--clear-groups")
                .arg(program);
            c
        } else {
            Command::new(program)
        };
        c.arg("--state-dir")
            .arg(&l.state)
            .arg("--log-file")
            .arg(&l.log)
            .current_dir(&l.cwd)
            .kill_on_drop(true);
        if let Some(n) = l.nice {
            c.arg("--nice").arg(n.to_string());
        }
        if l.open_umask {
            // SAFETY: umask(2) is async-signal-safe and this closure does nothing else.
            unsafe {
                c.pre_exec(|| {
                    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
                    Ok(())
                });
            }
        }
        let (nvim, _io, child) =
            nvim_rs::create::tokio::new_child_cmd(&mut c, self.fake.connection())
                .await
                .expect("spawn backend");
        let pid = child.id().expect("pid") as i32;
        let b = Backend {
            nvim,
            child,
            pid,
            guard: self.guard,
        };
        b.alive_and_answering().await;
        b
    }

    /// `start` arguments: `prompt` in the project, run by the fake CLI with `fake`.
    pub fn start_args(&self, prompt: &str, fake: &[&str]) -> Value {
        start_in(prompt, &self.cwd(), cmd(fake))
    }

    pub fn id_args(&self, id: u64) -> Value {
        map(vec![("id", Value::from(id)), ("cwd", s(&self.cwd()))])
    }

    /// `attach` arguments; the buffer is opened in the editor first.
    pub fn attach_args(&self, id: u64, buf: i64) -> Value {
        self.fake.new_buf(buf);
        map(vec![
            ("id", Value::from(id)),
            ("cwd", s(&self.cwd())),
            ("buf", Value::from(buf)),
        ])
    }

    pub fn resume_args(&self, id: u64, prompt: &str) -> Value {
        map(vec![
            ("id", Value::from(id)),
            ("prompt", s(prompt)),
            ("cwd", s(&self.cwd())),
        ])
    }

    /// `list` arguments: the project's tasks.
    pub fn list_args(&self) -> Value {
        map(vec![("cwd", s(&self.cwd()))])
    }

    /// Waits until buffer `buf` shows the whole transcript of `rec`, and returns that.
    pub async fn buffer_shows(&self, buf: i64, rec: &Json) -> Vec<String> {
        let want = rendered(rec);
        self.fake.buffer_becomes(buf, &want).await;
        want
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("backend.log")).unwrap_or_default()
    }

    /// Bind-mounts `dir` onto itself, read-only. False when mounting is not permitted.
    pub fn mount_read_only(&mut self, dir: &Path) -> bool {
        let ok = std::process::Command::new("mount")
            .arg("--bind")
            .arg(dir)
            .arg(dir)
            .status()
            .is_ok_and(|st| st.success());
        if !ok {
            return false;
        }
        self.mounts.push(dir.to_path_buf());
        std::process::Command::new("mount")
            .args(["-o", "remount,ro,bind"])
            .arg(dir)
            .status()
            .is_ok_and(|st| st.success())
    }

    /// Mounts a small tmpfs on `dir`. False when mounting is not permitted.
    pub fn mount_tmpfs(&mut self, dir: &Path, size: &str) -> bool {
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|st| st.success());
        if ok {
            self.mounts.push(dir.to_path_buf());
        }
        ok
    }
}

impl Backend {
    pub async fn call(&self, method: &str, args: Vec<Value>) -> Result<Value, String> {
        match self.nvim.call(method, args).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string())),
            Err(e) => Err(format!("transport: {e}")),
        }
    }

    /// A request that must succeed; its answer.
    pub async fn req(&self, method: &str, arg: Value) -> Json {
        to_json(
            &self
                .call(method, vec![arg])
                .await
                .unwrap_or_else(|e| panic!("{method}: {e}")),
        )
    }

    /// A request that must fail; its error.
    pub async fn err(&self, method: &str, arg: Value) -> String {
        match self.call(method, vec![arg]).await {
            Ok(v) => panic!("{method} succeeded: {v:?}"),
            Err(e) => e,
        }
    }

    /// `start`; the new task's id.
    pub async fn start(&self, args: Value) -> u64 {
        id_of(&self.req("start", args).await)
    }

    pub async fn configure(&self, pairs: Vec<(&str, Value)>) {
        self.req("configure", map(pairs)).await;
    }

    /// Tasks run side by side, and a cancel escalates to SIGKILL after 300 ms.
    pub async fn configure_parallel_quick_cancel(&self) {
        self.configure(vec![
            ("cancel_grace_ms", Value::from(300)),
            ("concurrency", s("parallel")),
        ])
        .await;
    }

    pub async fn alive_and_answering(&self) {
        assert_eq!(
            self.call("version", vec![]).await.unwrap(),
            s(env!("CARGO_PKG_VERSION")),
            "the backend must keep answering"
        );
    }

    /// Peak resident set size so far, in KiB.
    pub fn vm_hwm_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), sig).unwrap();
    }

    pub async fn exit(mut self) -> std::process::ExitStatus {
        let waited = tokio::time::timeout(self.guard, self.child.wait())
            .await
            .expect("backend exit");
        match waited {
            Ok(st) => st,
            // A test that runs git through the library starts its reaper in this process, and
            // it reaps every child: the backend's exit is then in the reaper's table.
            Err(e) if e.raw_os_error() == Some(nix::libc::ECHILD) => {
                use claude_tasks::process::reaper::{wait, Exit};
                use std::os::unix::process::ExitStatusExt;
                let exit = tokio::time::timeout(self.guard, wait(self.pid))
                    .await
                    .expect("backend exit");
                std::process::ExitStatus::from_raw(match exit {
                    Exit::Code(c) => c << 8,
                    Exit::Signal(s) => s,
                })
            }
            Err(e) => panic!("backend exit: {e}"),
        }
    }

    /// SIGTERM (what a quitting Neovim amounts to), and the exit.
    pub async fn quit(self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.exit().await
    }

    /// SIGTERM and a clean exit.
    pub async fn stop(self) {
        let st = self.quit().await;
        assert!(st.success(), "backend exit: {st:?}");
    }
}

// ------------------------------------------------------------------------------ transcripts

pub fn transcript_of(rec: &Json) -> PathBuf {
    PathBuf::from(rec["transcript"].as_str().unwrap())
}

/// What the whole transcript renders to, computed offline: a buffer must end up exactly so.
pub fn rendered(rec: &Json) -> Vec<String> {
    let r: TaskRecord = serde_json::from_value(rec.clone()).unwrap();
    claude_tasks::view::render_all(&r, &transcript_of(rec)).unwrap()
}

// ------------------------------------------------------------------------------ processes

/// Alive and not a zombie.
pub fn alive(pid: i32) -> bool {
    proctree::read(pid).is_some_and(|p| p.state != 'Z')
}

/// Those of `pids` that are alive.
pub fn living(pids: &[i32]) -> Vec<i32> {
    pids.iter().copied().filter(|&p| alive(p)).collect()
}

/// Checks `done` every 10 ms, `tries` times at most; whether it came to hold. For process and
/// file state, which nothing announces.
pub async fn poll(tries: usize, done: impl Fn() -> bool) -> bool {
    for _ in 0..tries {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

pub async fn wait_gone(pids: &[i32]) {
    if !poll(3000, || living(pids).is_empty()).await {
        panic!("still alive: {:?}", living(pids));
    }
}

/// The fake writes its pid file atomically before its first line; its appearance is the event.
pub async fn wait_file(path: &Path) {
    if !poll(3000, || path.exists()).await {
        panic!("{} never appeared", path.display());
    }
}

/// The nice value of a process's thread (`/proc/<pid>/task/<tid>/stat`, field 19).
pub fn nice_of(pid: i32, tid: i32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(16)?.parse().ok()
}

/// The thread ids of a process.
pub fn threads_of(pid: i32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The pids in a `--fake-pids-file`, if it was written.
pub fn read_pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}
