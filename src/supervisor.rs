//! The task supervisor: the table of this backend's tasks, the queue and its policies, one tokio
//! task per running task (it owns the child process and the task's state machine), and the views
//! attached to buffers. Requests only touch the table and records and return (the RPC layer runs
//! them on the blocking pool); spawning, waiting and the transcripts' I/O happen in the tasks.
//!
//! Every change of a record is, in this order: applied to the task's `watch` channel (views read
//! it), written to `task.json`, and sent to Lua as an event. The writes never run on a runtime
//! worker: an fsync can wait tens of ms for the journal (see `update`).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rmpv::Value;
use tokio::sync::{mpsc, watch, Notify};

use crate::claude::{self, SessionArg};
use crate::config::{Concurrency, Config, OnExit};
use crate::editor::Editor;
use crate::framing::MAX_LINE;
use crate::reaper::Exit;
use crate::runner::{Process, SpawnConfig};
use crate::store::Store;
use crate::task::{now_ms, title_of, ProcessInfo, Run, Status, TaskOptions, TaskRecord};
use crate::view::View;
use crate::{log_info, log_warn};

pub type TaskKey = (String, u64);

/// What `start` asks for, decoded and validated by the RPC layer.
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    pub prompt: String,
    pub cwd: String,
    pub name: Option<String>,
    pub options: TaskOptions,
}

#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    events: mpsc::UnboundedSender<Value>,
    editor: Arc<dyn Editor>,
    state: Mutex<State>,
    /// Woken whenever a task's process ends, for `shutdown`.
    idle: Notify,
    /// Serialises taking ownership of task directories within this process: two requests (or
    /// a request and the start-up recovery) must not both try the same task's flock, or one of
    /// them would see our own lock and mistake the task for another editor's. Taken before
    /// `state` when both are needed.
    claim: Mutex<()>,
    /// Record snapshots are numbered under the state lock, and a snapshot older than the last
    /// one written for its task is never written: two writers racing (a cancel and the end of
    /// the run) cannot leave an older record on disk.
    revision: std::sync::atomic::AtomicU64,
    written: Mutex<HashMap<TaskKey, u64>>,
    owner: (i32, u64),
}

struct State {
    config: Config,
    tasks: HashMap<TaskKey, Entry>,
    queue: VecDeque<TaskKey>,
    running: usize,
    shutting_down: bool,
    /// One per attached buffer, shared by its successive views.
    gates: HashMap<i64, Arc<crate::view::WriteGate>>,
}

struct Entry {
    record: watch::Sender<TaskRecord>,
    /// Prompts waiting for their run: the first prompt of a queued task, or follow-ups.
    prompts: VecDeque<String>,
    cancel: Option<watch::Sender<bool>>,
    views: HashMap<i64, watch::Sender<bool>>,
    /// True while a driver task owns the task (queued for it, or running).
    active: bool,
    /// Held while this backend owns the task (queued, running or adopted): an exclusive flock
    /// on `owner.lock` in the task's directory. The kernel drops it when we die, so "the lock
    /// is free" means "no live backend owns this task" without trusting pids.
    lock: Option<nix::fcntl::Flock<std::fs::File>>,
    /// Another live backend runs this task; we only watch its record and transcript.
    foreign: bool,
}

impl Entry {
    fn new(rec: TaskRecord) -> Entry {
        Entry {
            record: watch::Sender::new(rec),
            prompts: VecDeque::new(),
            cancel: None,
            views: HashMap::new(),
            active: false,
            lock: None,
            foreign: false,
        }
    }

    fn rec(&self) -> TaskRecord {
        self.record.borrow().clone()
    }
}

/// A record as Lua sees it: the stored fields plus the task's file paths.
pub fn record_value(store: &Store, rec: &TaskRecord) -> Value {
    // Through JSON: rmpv's serializer would encode structs as arrays, Lua wants maps.
    let mut v = serde_json::to_value(rec).map_or(Value::Nil, json_to_msgpack);
    let dir = store.task_dir(&rec.cwd, rec.id);
    if let Value::Map(m) = &mut v {
        let path = |p: PathBuf| Value::from(p.to_string_lossy().into_owned());
        m.push((
            Value::from("transcript"),
            path(dir.join("transcript.jsonl")),
        ));
        m.push((Value::from("stderr"), path(dir.join("stderr.log"))));
        m.push((Value::from("dir"), path(dir)));
    }
    v
}

pub fn json_to_msgpack(v: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Boolean(b),
        J::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::from(u),
            (None, Some(i)) => Value::from(i),
            _ => Value::from(n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => Value::from(s),
        J::Array(a) => Value::Array(a.into_iter().map(json_to_msgpack).collect()),
        J::Object(o) => Value::Map(
            o.into_iter()
                .map(|(k, v)| (Value::from(k), json_to_msgpack(v)))
                .collect(),
        ),
    }
}

fn uuid_v4() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !filled {
        // No /dev/urandom: mix time and pid; unique enough for a session id on one machine.
        let seed = (now_ms() as u128) << 32 | u128::from(std::process::id());
        b = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)).to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Supervisor {
    pub fn new(store: Store, editor: Arc<dyn Editor>) -> Supervisor {
        let (events, mut rx) = mpsc::unbounded_channel::<Value>();
        // One dispatcher keeps events in order and off the request path.
        let ed = editor.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                ed.event(ev).await;
            }
        });
        let pid = std::process::id() as i32;
        let owner = (pid, crate::proctree::start_time(pid).unwrap_or(0));
        Supervisor {
            shared: Arc::new(Shared {
                store,
                events,
                editor,
                state: Mutex::new(State {
                    config: Config::default(),
                    tasks: HashMap::new(),
                    queue: VecDeque::new(),
                    running: 0,
                    shutting_down: false,
                    gates: HashMap::new(),
                }),
                idle: Notify::new(),
                claim: Mutex::new(()),
                revision: std::sync::atomic::AtomicU64::new(0),
                written: Mutex::new(HashMap::new()),
                owner,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the table consistent enough to go on with.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn configure(&self, f: impl FnOnce(&mut Config)) {
        let mut st = self.state();
        f(&mut st.config);
        drop(st);
        self.schedule();
    }

    pub fn config(&self) -> Config {
        self.state().config.clone()
    }

    fn emit(&self, kind: &str, rec: &TaskRecord) {
        // Lua knows the outcomes completed / failed / cancelled; an interrupted task is a
        // failure whose record says why.
        let kind = if kind == "interrupted" {
            "failed"
        } else {
            kind
        };
        let ev = Value::Map(vec![
            (Value::from("type"), Value::from(kind)),
            (Value::from("task"), record_value(&self.shared.store, rec)),
        ]);
        let _ = self.shared.events.send(ev);
    }

    fn persist(&self, rec: &TaskRecord) {
        if let Err(e) = self.shared.store.write_record(rec) {
            log_warn!("cannot write the record of task #{}: {e}", rec.id);
        }
    }

    /// Applies `f` to the task's record, publishes it to views, persists it and returns it.
    ///
    /// The write runs on the blocking pool. Its fsyncs wait for the journal, and on ext4 the
    /// journal waits for the writeback of the files being written, the transcripts included:
    /// 4–40 ms while a CLI floods its transcript. On a runtime worker that held up every task
    /// queued behind it, and first of all the views this very update woke (the footer of a run
    /// waited for its own record's fsync).
    async fn update(&self, key: &TaskKey, f: impl FnOnce(&mut TaskRecord)) -> Option<TaskRecord> {
        let (rev, rec) = {
            let st = self.state();
            let entry = st.tasks.get(key)?;
            entry.record.send_modify(f);
            (self.next_revision(), entry.rec())
        };
        let (this, k, r) = (self.clone(), key.clone(), rec.clone());
        let written = tokio::task::spawn_blocking(move || this.persist_revision(&k, rev, &r));
        if let Err(e) = written.await {
            log_warn!("cannot write the record of task #{}: {e}", rec.id);
        }
        Some(rec)
    }

    /// Must be called with the state lock held, together with taking the snapshot.
    fn next_revision(&self) -> u64 {
        self.shared
            .revision
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    fn persist_revision(&self, key: &TaskKey, rev: u64, rec: &TaskRecord) {
        let mut written = self
            .shared
            .written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let last = written.entry(key.clone()).or_insert(0);
        if rev > *last {
            self.persist(rec);
            *last = rev;
        }
    }

    /// Holds the record writer from another thread, as a write stuck in fsync would, until
    /// `release` fires or 10 s have passed; returns once it is held. The thread's result says
    /// whether it was released (a runtime held up by the write cannot release it in time).
    #[cfg(test)]
    pub(crate) fn hold_record_writes(
        &self,
        release: std::sync::mpsc::Receiver<()>,
    ) -> std::thread::JoinHandle<bool> {
        let shared = self.shared.clone();
        let (held_tx, held) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let _writing = shared
                .written
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = held_tx.send(());
            release
                .recv_timeout(std::time::Duration::from_secs(10))
                .is_ok()
        });
        let _ = held.recv();
        holder
    }

    // ----------------------------------------------------------------------------- requests

    pub async fn start(&self, req: StartRequest) -> Result<TaskRecord, String> {
        if req.prompt.trim().is_empty() {
            return Err("start: the prompt is empty".into());
        }
        check_cwd(&req.cwd)?;
        {
            let st = self.state();
            if st.shutting_down {
                return Err("start: the backend is shutting down".into());
            }
            if st.config.concurrency == Concurrency::Reject {
                if let Some((_, id)) = st
                    .tasks
                    .iter()
                    .find(|(k, e)| k.0 == req.cwd && e.active)
                    .map(|(k, _)| k.clone())
                {
                    return Err(format!(
                        "start: task #{id} is already running in {} (concurrency = 'reject')",
                        req.cwd
                    ));
                }
            }
        }
        let store = self.shared.store.clone();
        let cwd = req.cwd.clone();
        let (id, _dir) = tokio::task::spawn_blocking(move || store.allocate(&cwd))
            .await
            .map_err(|e| format!("start: {e}"))?
            .map_err(|e| format!("start: {e}"))?;
        let name = req
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| title_of(&req.prompt, 60));
        let rec = TaskRecord::queued(
            id,
            name,
            req.cwd.clone(),
            uuid_v4(),
            req.options.clone(),
            now_ms(),
        );
        let store = self.shared.store.clone();
        let r2 = rec.clone();
        tokio::task::spawn_blocking(move || {
            let dir = store.task_dir(&r2.cwd, r2.id);
            let made = ["transcript.jsonl", "stderr.log"]
                .iter()
                .try_for_each(|name| Store::open_append_private(&dir.join(name)).map(drop))
                .and_then(|()| store.write_record(&r2));
            if made.is_err() {
                // E.g. a full disk: leave no half-made task dir behind (it would be listed as
                // an abandoned start forever). Its id stays taken.
                let _ = store.remove(&r2.cwd, r2.id);
            }
            made
        })
        .await
        .map_err(|e| format!("start: {e}"))?
        .map_err(|e| format!("start: {e}"))?;
        let key = (rec.cwd.clone(), rec.id);
        let lock = try_lock(&self.shared.store.task_dir(&rec.cwd, rec.id));
        {
            let mut st = self.state();
            let mut entry = Entry::new(rec.clone());
            entry.prompts.push_back(req.prompt);
            entry.active = true;
            entry.lock = lock;
            st.tasks.insert(key.clone(), entry);
            st.queue.push_back(key.clone());
        }
        self.schedule();
        self.emit_if_waiting(&key);
        Ok(rec)
    }

    /// `queued` is news only for a task that waits; one that started at once says `started`.
    fn emit_if_waiting(&self, key: &TaskKey) {
        let rec = {
            let st = self.state();
            if !st.queue.contains(key) {
                return;
            }
            st.tasks.get(key).map(Entry::rec)
        };
        if let Some(rec) = rec {
            self.emit("queued", &rec);
        }
    }

    pub fn cancel(&self, cwd: &str, id: u64) -> Result<TaskRecord, String> {
        let key = (cwd.to_owned(), id);
        self.ensure_loaded(&key)?;
        let mut st = self.state();
        let entry = st.tasks.get_mut(&key).ok_or_else(|| no_task(cwd, id))?;
        let status = entry.record.borrow().status;
        if entry.foreign && status == Status::Running {
            // Another live backend owns the process: tell it the cancel was asked for, then run
            // the ladder on the process ourselves (same user, so we may signal it).
            let rec = entry.rec();
            drop(st);
            return self.cancel_foreign(rec);
        }
        // A task a driver has already taken off the queue is still `queued` while its run is
        // being prepared (prompt file written, before the spawn). Finishing it here as if it
        // were waiting would let the driver spawn the CLI anyway, unwatched and uncancellable
        // (a hanging CLI then outlives everything). It is cancelled like a running task
        // instead: `run_once` sees `cancel_requested` before spawning.
        let preparing = status == Status::Queued && entry.active && !st.queue.contains(&key);
        let entry = st.tasks.get_mut(&key).ok_or_else(|| no_task(cwd, id))?;
        match status {
            _ if status == Status::Running || preparing => {
                // While preparing, the driver may not have taken the prompt yet: it must, to
                // end the run (as cancelled); it drops any others when the run ends.
                if !preparing {
                    entry.prompts.clear();
                }
                if entry.record.borrow().cancel_requested {
                    // Already on its way down (shutdown asks again as tasks settle).
                    return Ok(entry.rec());
                }
                entry.record.send_modify(|r| r.cancel_requested = true);
                if let Some(c) = &entry.cancel {
                    let _ = c.send(true);
                }
                let (rev, rec) = (self.next_revision(), entry.rec());
                drop(st);
                self.persist_revision(&key, rev, &rec);
                self.emit("updated", &rec);
                Ok(rec)
            }
            Status::Queued if entry.foreign => Err(format!(
                "cancel: task #{id} is queued in another editor; cancel it there"
            )),
            Status::Queued => {
                entry.prompts.clear();
                entry.active = false;
                entry.lock = None;
                entry.record.send_modify(|r| {
                    r.cancel_requested = true;
                    r.status = Status::Cancelled;
                    r.ended_at_ms = Some(now_ms());
                });
                let (rev, rec) = (self.next_revision(), entry.rec());
                st.queue.retain(|k| k != &key);
                drop(st);
                self.persist_revision(&key, rev, &rec);
                self.emit("cancelled", &rec);
                Ok(rec)
            }
            other => Err(format!(
                "cancel: task #{id} is not running (it is {})",
                other.as_str()
            )),
        }
    }

    pub fn resume(&self, cwd: &str, id: u64, prompt: String) -> Result<TaskRecord, String> {
        if prompt.trim().is_empty() {
            return Err("resume: the prompt is empty".into());
        }
        let key = (cwd.to_owned(), id);
        self.ensure_loaded(&key)?;
        let _claim = self.claim();
        let mut st = self.state();
        if st.shutting_down {
            return Err("resume: the backend is shutting down".into());
        }
        let entry = st.tasks.get_mut(&key).ok_or_else(|| no_task(cwd, id))?;
        if entry.foreign && !entry.record.borrow().status.is_finished() {
            return Err(format!(
                "resume: task #{id} is running in another editor; follow up when it has ended"
            ));
        }
        if !entry.active {
            match try_lock(&self.shared.store.task_dir(cwd, id)) {
                Some(lock) => {
                    entry.lock = Some(lock);
                    entry.foreign = false;
                }
                None => {
                    return Err(format!(
                        "resume: task #{id} is busy in another editor; try again when it has ended"
                    ))
                }
            }
        }
        entry.prompts.push_back(prompt);
        if entry.active {
            // Running or queued: the follow-up runs when the current run ends.
            let rec = entry.rec();
            return Ok(rec);
        }
        entry.active = true;
        entry.record.send_modify(|r| {
            r.status = Status::Queued;
            r.cancel_requested = false;
            r.error = None;
        });
        let (rev, rec) = (self.next_revision(), entry.rec());
        st.queue.push_back(key.clone());
        drop(st);
        self.persist_revision(&key, rev, &rec);
        self.schedule();
        self.emit_if_waiting(&key);
        Ok(rec)
    }

    pub fn dispose(&self, cwd: &str, id: u64) -> Result<(), String> {
        let key = (cwd.to_owned(), id);
        self.ensure_loaded(&key)?;
        let rec = {
            let mut st = self.state();
            let entry = st.tasks.get(&key).ok_or_else(|| no_task(cwd, id))?;
            if entry.active || !entry.record.borrow().status.is_finished() {
                return Err(format!(
                    "dispose: task #{id} is {}; cancel it first",
                    entry.record.borrow().status.as_str()
                ));
            }
            let rec = entry.rec();
            // Dropping the entry stops its views (their record channel closes).
            st.tasks.remove(&key);
            self.shared
                .written
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(&key);
            rec
        };
        self.shared
            .store
            .remove(cwd, id)
            .map_err(|e| format!("dispose: {e}"))?;
        self.emit("disposed", &rec);
        Ok(())
    }

    pub fn get(&self, cwd: &str, id: u64) -> Result<TaskRecord, String> {
        let key = (cwd.to_owned(), id);
        // Through the table: a record that says running may belong to nobody any more, and
        // must be settled (or adopted) before anyone is told it runs.
        self.ensure_loaded(&key).map_err(|e| format!("get: {e}"))?;
        self.state()
            .tasks
            .get(&key)
            .map(Entry::rec)
            .ok_or_else(|| format!("get: {}", no_task(cwd, id)))
    }

    /// Records newest first: this backend's live view of its tasks, the store for the rest.
    pub fn list(&self, cwd: Option<&str>) -> Vec<TaskRecord> {
        let (mut recs, warnings) = self.shared.store.list(cwd);
        for w in warnings {
            log_warn!("{w}");
        }
        for r in &recs {
            if !r.status.is_finished() {
                self.take_in(r.clone());
            }
        }
        let st = self.state();
        for r in recs.iter_mut() {
            if let Some(e) = st.tasks.get(&(r.cwd.clone(), r.id)) {
                *r = e.rec();
            }
        }
        recs
    }

    pub fn attach(&self, cwd: &str, id: u64, buf: i64) -> Result<(), String> {
        let key = (cwd.to_owned(), id);
        self.ensure_loaded(&key)?;
        let mut st = self.state();
        let gate = st.gates.entry(buf).or_default().clone();
        // From here on, writes of any earlier view of this buffer are refused.
        let generation = gate.next();
        let entry = st.tasks.get_mut(&key).ok_or_else(|| no_task(cwd, id))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(old) = entry.views.insert(buf, stop_tx) {
            let _ = old.send(true);
        }
        let view = View {
            editor: self.shared.editor.clone(),
            gate,
            generation,
            buf,
            transcript: self.shared.store.task_dir(cwd, id).join("transcript.jsonl"),
            record: entry.record.subscribe(),
            stop: stop_rx,
        };
        // A buffer shows one task: stop views of it on other tasks.
        for (k, e) in st.tasks.iter_mut() {
            if k != &key {
                if let Some(old) = e.views.remove(&buf) {
                    let _ = old.send(true);
                }
            }
        }
        tokio::spawn(view.run());
        Ok(())
    }

    pub fn detach(&self, cwd: &str, id: u64, buf: i64) -> Result<(), String> {
        let mut st = self.state();
        if let Some(gate) = st.gates.remove(&buf) {
            gate.next();
        }
        let entry = st
            .tasks
            .get_mut(&(cwd.to_owned(), id))
            .ok_or_else(|| no_task(cwd, id))?;
        if let Some(stop) = entry.views.remove(&buf) {
            let _ = stop.send(true);
        }
        Ok(())
    }

    /// Brings a task from the store into the table (to attach a view to a finished task, or to a
    /// task another editor runs). A record that says queued or running but that no live backend
    /// owns is settled first: adopted if its process still runs, else finished from its
    /// transcript.
    fn ensure_loaded(&self, key: &TaskKey) -> Result<(), String> {
        if self.state().tasks.contains_key(key) {
            return Ok(());
        }
        let rec = self
            .shared
            .store
            .read_record(&key.0, key.1)
            .map_err(|e| e.to_string())?;
        self.take_in(rec);
        Ok(())
    }

    fn claim(&self) -> MutexGuard<'_, ()> {
        self.shared
            .claim
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts a record read from disk into the table, deciding who owns it.
    fn take_in(&self, rec: TaskRecord) {
        let _claim = self.claim();
        let key = (rec.cwd.clone(), rec.id);
        if self.state().tasks.contains_key(&key) {
            return;
        }
        if rec.status.is_finished() {
            self.state()
                .tasks
                .entry(key)
                .or_insert_with(|| Entry::new(rec));
            return;
        }
        let dir = self.shared.store.task_dir(&rec.cwd, rec.id);
        match try_lock(&dir) {
            None => {
                // Another live backend owns it: mirror its record while it runs.
                let mut entry = Entry::new(rec);
                entry.foreign = true;
                let mut st = self.state();
                if st.tasks.contains_key(&key) {
                    return;
                }
                st.tasks.insert(key.clone(), entry);
                drop(st);
                let me = self.clone();
                tokio::spawn(async move { me.mirror(key).await });
            }
            Some(lock) => {
                let alive = rec
                    .process
                    .as_ref()
                    .is_some_and(|p| crate::proctree::is_alive(p.pid, p.start_time));
                if rec.status == Status::Running && alive {
                    self.adopt(rec, lock);
                } else {
                    self.settle_orphan(rec);
                }
            }
        }
    }

    /// A task whose backend went away and whose process is gone: its transcript says how the
    /// run ended; without a `result` line it was interrupted (and can be resumed).
    fn settle_orphan(&self, mut rec: TaskRecord) {
        let key = (rec.cwd.clone(), rec.id);
        let transcript = self
            .shared
            .store
            .task_dir(&rec.cwd, rec.id)
            .join("transcript.jsonl");
        let ran = rec.status == Status::Running;
        let offset = rec.current_run().map_or(0, |r| r.transcript_offset);
        let summary = if ran {
            summarize(&transcript, offset)
        } else {
            RunSummary::default()
        };
        // A cancel asked for before the backend went away still counts as a cancel.
        let cancelled = rec.cancel_requested
            || self
                .shared
                .store
                .task_dir(&rec.cwd, rec.id)
                .join(CANCEL_REQUEST)
                .exists();
        // Settled before it enters the table, so no request ever sees the stale "running".
        match &summary.result {
            Some(res) => {
                apply_result(&mut rec, res);
                let (status, error) = outcome(&summary, None, cancelled);
                finish_run(&mut rec, status, None, error);
            }
            None if ran && cancelled => finish_run(&mut rec, Status::Cancelled, None, None),
            None if ran => finish_run(
                &mut rec,
                Status::Interrupted,
                None,
                Some("the editor that ran it went away before it ended".into()),
            ),
            None => {
                // Queued when its editor went away: it never ran.
                rec.status = Status::Interrupted;
                rec.ended_at_ms = Some(now_ms());
                rec.error = Some("the editor that queued it went away before it started".into());
            }
        }
        if ran {
            // It ended while nobody watched: when it wrote its last line, not when we noticed.
            let started = rec.current_run().and_then(|r| r.started_at_ms);
            let end = summary
                .result
                .as_ref()
                .and_then(|r| r.duration_ms)
                .zip(started)
                .map(|(d, s)| s + d)
                .or_else(|| modified_ms(&transcript));
            if let Some(end) = end {
                end_run_at(&mut rec, end);
            }
        }
        self.persist(&rec);
        self.state()
            .tasks
            .entry(key)
            .or_insert_with(|| Entry::new(rec.clone()));
        if ran && self.config().export_markdown {
            export_markdown(&rec, &transcript);
        }
        log_info!(
            "task #{} in {} settled as {}",
            rec.id,
            rec.cwd,
            rec.status.as_str()
        );
        self.emit(rec.status.as_str(), &rec);
    }

    /// Takes over a running task whose backend died (crash, or `on_exit = 'detach'`): we are not
    /// its parent, so its exit is seen by polling `/proc`; its output is in the transcript.
    fn adopt(&self, mut rec: TaskRecord, lock: nix::fcntl::Flock<std::fs::File>) {
        let key = (rec.cwd.clone(), rec.id);
        let Some(mut info) = rec.process.clone() else {
            return;
        };
        info.owner_pid = self.shared.owner.0;
        info.owner_start_time = self.shared.owner.1;
        rec.process = Some(info.clone());
        self.persist(&rec);
        let (cancel_tx, cancel_rx) = watch::channel(false);
        {
            let mut st = self.state();
            let mut entry = Entry::new(rec.clone());
            entry.active = true;
            entry.lock = Some(lock);
            entry.cancel = Some(cancel_tx);
            st.tasks.insert(key.clone(), entry);
            st.running += 1;
        }
        log_info!("task #{} in {}: adopted pid {}", rec.id, rec.cwd, info.pid);
        self.emit("updated", &rec);
        let me = self.clone();
        tokio::spawn(async move { me.watch_adopted(key, info, cancel_rx).await });
    }

    async fn watch_adopted(
        self,
        key: TaskKey,
        info: ProcessInfo,
        mut cancel: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
        loop {
            if !crate::proctree::is_alive(info.pid, info.start_time) {
                break;
            }
            tokio::select! {
                _ = tick.tick() => {}
                _ = wait_true(&mut cancel) => {
                    let grace = self.state().config.cancel_grace;
                    crate::runner::cancel_foreign(info.pid, info.start_time, &info.marker, grace).await;
                    break;
                }
            }
        }
        // Tool processes it left behind are ours to clean up, as after a run of our own.
        crate::runner::kill_leftovers_of(info.pid, info.start_time, &info.marker);
        let dir = self.shared.store.task_dir(&key.0, key.1);
        let offset = self
            .state()
            .tasks
            .get(&key)
            .and_then(|e| e.record.borrow().current_run().map(|r| r.transcript_offset))
            .unwrap_or(0);
        let (summary, cancelled) = self.run_ended(&key, &dir, offset).await;
        let (status, error) = outcome(&summary, None, cancelled);
        let rec = self
            .update(&key, |r| {
                if let Some(res) = &summary.result {
                    apply_result(r, res);
                }
                finish_run(r, status, None, error);
            })
            .await;
        if let Some(rec) = &rec {
            self.run_finished(rec).await;
            self.emit(status.as_str(), rec);
        }
        // A follow-up asked for while it ran adopted: our driver takes the task (and its slot)
        // from here, like any task of ours.
        let follow_up = {
            let mut st = self.state();
            match st.tasks.get_mut(&key) {
                Some(e) if !e.prompts.is_empty() && !cancelled => true,
                Some(e) => {
                    e.active = false;
                    e.cancel = None;
                    e.lock = None;
                    st.running = st.running.saturating_sub(1);
                    false
                }
                None => {
                    st.running = st.running.saturating_sub(1);
                    false
                }
            }
        };
        if follow_up {
            self.drive(key).await;
            return;
        }
        if let Some(rec) = rec {
            self.prune(&rec.cwd);
        }
        self.shared.idle.notify_waiters();
        self.schedule();
    }

    /// What follows the end of every run, ours or adopted: the Markdown export.
    async fn run_finished(&self, rec: &TaskRecord) {
        if self.config().export_markdown {
            let r2 = rec.clone();
            let transcript = self
                .shared
                .store
                .task_dir(&rec.cwd, rec.id)
                .join("transcript.jsonl");
            let _ = tokio::task::spawn_blocking(move || export_markdown(&r2, &transcript)).await;
        }
    }

    /// Follows the record of a task another backend runs, so views and `get` see its progress,
    /// until it ends (or its backend dies, and we settle it).
    async fn mirror(self, key: TaskKey) {
        let dir = self.shared.store.task_dir(&key.0, key.1);
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let Ok(rec) = self.shared.store.read_record(&key.0, key.1) else {
                return;
            };
            let finished = rec.status.is_finished();
            {
                let st = self.state();
                let Some(entry) = st.tasks.get(&key) else {
                    return;
                };
                if !entry.foreign {
                    return;
                }
                entry.record.send_if_modified(|r| {
                    if *r == rec {
                        return false;
                    }
                    *r = rec.clone();
                    true
                });
            }
            if finished {
                if let Some(e) = self.state().tasks.get_mut(&key) {
                    e.foreign = false;
                }
                // Its outcome is the other editor's news (autocmds, notification); here it
                // only refreshes what is shown.
                self.emit("updated", &rec);
                return;
            }
            let owner_gone = {
                let _claim = self.claim();
                try_lock(&dir).is_some()
            };
            if owner_gone {
                // Its backend died while we watched: settle or adopt it ourselves.
                self.state().tasks.remove(&key);
                self.take_in(rec);
                return;
            }
        }
    }

    fn cancel_foreign(&self, rec: TaskRecord) -> Result<TaskRecord, String> {
        let dir = self.shared.store.task_dir(&rec.cwd, rec.id);
        Store::write_file_private(&dir.join(CANCEL_REQUEST), b"")
            .map_err(|e| format!("cancel: {e}"))?;
        let Some(info) = rec.process.clone() else {
            return Err(format!("cancel: task #{} has no process yet", rec.id));
        };
        let grace = self.state().config.cancel_grace;
        tokio::spawn(async move {
            crate::runner::cancel_foreign(info.pid, info.start_time, &info.marker, grace).await;
        });
        Ok(rec)
    }

    /// At start-up: settle every task that says queued or running but that no live backend
    /// owns (the backend crashed, or detached on exit). Tasks of live backends are left alone.
    pub fn recover(&self) {
        let (recs, warnings) = self.shared.store.list(None);
        for w in warnings {
            log_warn!("{w}");
        }
        for rec in recs {
            if !rec.status.is_finished() {
                self.take_in(rec);
            }
        }
        // Mirrored foreign tasks are loaded on demand only.
        let mut st = self.state();
        st.tasks.retain(|_, e| !e.foreign);
    }

    // ----------------------------------------------------------------------------- scheduling

    /// Starts queued tasks while the policies allow, in FIFO order.
    fn schedule(&self) {
        let mut launch = Vec::new();
        {
            let mut st = self.state();
            if st.shutting_down {
                return;
            }
            let mut i = 0;
            while i < st.queue.len() && st.running < st.config.max_running {
                let key = st.queue[i].clone();
                let busy_dir = st.config.concurrency != Concurrency::Parallel
                    && st.tasks.iter().any(|(k, e)| {
                        k.0 == key.0
                            && k != &key
                            && e.active
                            && e.record.borrow().status == Status::Running
                    });
                if busy_dir {
                    i += 1;
                    continue;
                }
                st.queue.remove(i);
                st.running += 1;
                launch.push(key);
            }
        }
        for key in launch {
            let me = self.clone();
            tokio::spawn(async move { me.drive(key).await });
        }
    }

    /// Owns a task while it runs: one run per waiting prompt, then frees its slot.
    async fn drive(self, key: TaskKey) {
        loop {
            let next = {
                let mut st = self.state();
                match st.tasks.get_mut(&key) {
                    Some(e) => e.prompts.pop_front(),
                    None => None,
                }
            };
            let Some(prompt) = next else { break };
            self.run_once(&key, prompt).await;
            let cancelled = self
                .state()
                .tasks
                .get(&key)
                .is_some_and(|e| e.record.borrow().cancel_requested);
            if cancelled {
                break;
            }
        }
        let rec = {
            let mut st = self.state();
            st.running = st.running.saturating_sub(1);
            st.tasks.get_mut(&key).map(|e| {
                e.active = false;
                e.cancel = None;
                e.prompts.clear();
                e.lock = None;
                e.rec()
            })
        };
        if let Some(rec) = rec {
            self.prune(&rec.cwd);
        }
        self.shared.idle.notify_waiters();
        self.schedule();
    }

    async fn run_once(&self, key: &TaskKey, prompt: String) {
        let dir = self.shared.store.task_dir(&key.0, key.1);
        let transcript = dir.join("transcript.jsonl");
        let stderr = dir.join("stderr.log");
        let Some(rec) = self.state().tasks.get(key).map(Entry::rec) else {
            return;
        };
        let n = rec.runs.len() as u32 + 1;
        let prompt_file = dir.join(format!("prompt-{n}.txt"));
        let pf = prompt_file.clone();
        let bytes = prompt.clone().into_bytes();
        let stale_cancel = dir.join(CANCEL_REQUEST);
        let (t_len, e_len) = match tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_file(&stale_cancel);
            Store::write_file_private(&pf, &bytes).map_err(|e| e.to_string())?;
            let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            Ok::<_, String>((len(&transcript), len(&stderr)))
        })
        .await
        {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                self.fail_unstarted(key, n, &prompt, &format!("cannot write the prompt: {e}"))
                    .await;
                return;
            }
            Err(e) => {
                self.fail_unstarted(key, n, &prompt, &format!("cannot write the prompt: {e}"))
                    .await;
                return;
            }
        };
        let session = if n == 1 {
            SessionArg::New(&rec.session_id)
        } else {
            SessionArg::Resume(&rec.session_id)
        };
        let argv = claude::argv(&rec.options, session);
        // The run is published before the spawn so that a view reading the run's first bytes
        // already knows where the run began.
        let (cancel_tx, mut cancel_rx) = watch::channel(false);
        let cancelled_early;
        {
            let mut st = self.state();
            let Some(entry) = st.tasks.get_mut(key) else {
                return;
            };
            entry.cancel = Some(cancel_tx);
            cancelled_early = entry.record.borrow().cancel_requested;
            entry.record.send_modify(|r| {
                r.runs.push(Run::starting(n, &prompt, t_len, e_len));
                r.status = Status::Running;
                r.started_at_ms.get_or_insert(now_ms());
                r.ended_at_ms = None;
                r.error = None;
                r.exit_code = None;
            });
        }
        if cancelled_early {
            // Cancelled while the run was being prepared (see `cancel`): it ends before it
            // starts, without a process.
            if let Some(rec) = self
                .update(key, |r| finish_run(r, Status::Cancelled, None, None))
                .await
            {
                log_info!("task #{} run {n} cancelled before its start", key.1);
                self.emit("cancelled", &rec);
            }
            return;
        }
        let cfg = SpawnConfig {
            argv,
            cwd: PathBuf::from(&key.0),
            stdin: prompt_file,
            stdout: dir.join("transcript.jsonl"),
            stderr: dir.join("stderr.log"),
            env_remove: vec!["CLAUDECODE".into()],
            env: vec![],
        };
        let spawned = Process::spawn(&cfg);
        // The prompt was only written, not synced: the CLI reads it from the page cache, and an
        // fsync here took 0.3-1.8 ms before every spawn. It is made durable while the CLI starts,
        // before the record that says the run started (the record has only its title).
        let synced = tokio::task::spawn_blocking(move || Store::sync_file(&cfg.stdin)).await;
        if let Ok(Err(e)) = synced {
            log_warn!("task #{}: {e}", key.1);
        }
        let process = match spawned {
            Ok(p) => p,
            Err(e) => {
                let msg = e.to_string();
                log_warn!("task #{}: {msg}", key.1);
                let _ = append(&dir.join("stderr.log"), format!("{msg}\n").as_bytes());
                let rec = self
                    .update(key, |r| finish_run(r, Status::Failed, None, Some(msg)))
                    .await;
                if let Some(rec) = rec {
                    self.emit("failed", &rec);
                }
                return;
            }
        };
        let info = ProcessInfo {
            pid: process.pid,
            start_time: process.start_time,
            owner_pid: self.shared.owner.0,
            owner_start_time: self.shared.owner.1,
            marker: process.marker.clone(),
        };
        if let Some(rec) = self.update(key, |r| r.process = Some(info)).await {
            log_info!(
                "task #{} run {n} started: pid {} in {}",
                key.1,
                process.pid,
                key.0
            );
            self.emit("started", &rec);
        }
        let exit = tokio::select! {
            exit = process.wait() => exit,
            _ = wait_true(&mut cancel_rx) => {
                // Read now, not at spawn: shutdown shortens it.
                let grace = self.state().config.cancel_grace;
                process.cancel(grace).await
            }
        };
        process.kill_leftovers();
        let (summary, cancelled) = self.run_ended(key, &dir, t_len).await;
        let (status, error) = outcome(&summary, Some(exit), cancelled);
        let rec = self
            .update(key, |r| {
                if let Some(res) = &summary.result {
                    apply_result(r, res);
                }
                if status == Status::Cancelled {
                    r.cancel_requested = true;
                }
                finish_run(r, status, Some(exit), error);
            })
            .await;
        if let Some(rec) = rec {
            log_info!("task #{} run {n} ended: {}", key.1, rec.status.as_str());
            self.run_finished(&rec).await;
            self.emit(status.as_str(), &rec);
        }
    }

    /// After a run's process is gone: what its part of the transcript says, and whether a
    /// cancel was asked for (here, or by another backend through the cancel-request file).
    async fn run_ended(&self, key: &TaskKey, dir: &Path, offset: u64) -> (RunSummary, bool) {
        let path = dir.join("transcript.jsonl");
        let summary = tokio::task::spawn_blocking(move || summarize(&path, offset))
            .await
            .unwrap_or_default();
        let cancelled = self
            .state()
            .tasks
            .get(key)
            .is_some_and(|e| e.record.borrow().cancel_requested)
            || dir.join(CANCEL_REQUEST).exists();
        (summary, cancelled)
    }

    /// A run that could not even be prepared (its prompt could not be written).
    async fn fail_unstarted(&self, key: &TaskKey, n: u32, prompt: &str, msg: &str) {
        let rec = self
            .update(key, |r| {
                r.runs.push(Run::starting(n, prompt, 0, 0));
                finish_run(r, Status::Failed, None, Some(msg.to_owned()));
            })
            .await;
        if let Some(rec) = rec {
            self.emit("failed", &rec);
        }
    }

    /// Keeps at most `keep` finished tasks of a project; the oldest go first, running and queued
    /// ones never.
    fn prune(&self, cwd: &str) {
        let keep = self.state().config.keep;
        let (recs, _) = self.shared.store.list(Some(cwd));
        let finished: Vec<&TaskRecord> = recs.iter().filter(|r| r.status.is_finished()).collect();
        for old in finished.iter().skip(keep) {
            let key = (old.cwd.clone(), old.id);
            let busy = self.state().tasks.get(&key).is_some_and(|e| e.active);
            if busy {
                continue;
            }
            self.state().tasks.remove(&key);
            match self.shared.store.remove(&old.cwd, old.id) {
                Ok(()) => self.emit("disposed", old),
                Err(e) => log_warn!("retention: {e}"),
            }
        }
    }

    // ----------------------------------------------------------------------------- shutdown

    /// Neovim died without closing the channel cleanly (killed, crashed): leave every task
    /// running, as with `on_exit = 'detach'`, so the next editor re-adopts them and nothing is
    /// lost.
    pub fn abandon(&self) {
        let mut st = self.state();
        st.shutting_down = true;
        crate::log_info!(
            "the editor went away: leaving {} task(s) running",
            st.running
        );
    }

    /// Neovim closed the channel: apply `on_exit` and wait until every task this backend runs is
    /// settled (cancelled and reaped, or left running when detaching).
    pub async fn shutdown(&self) {
        let (policy, queued) = {
            let mut st = self.state();
            st.shutting_down = true;
            // Neovim sends its jobs SIGTERM 1 s and SIGKILL 2 s after closing their channels;
            // the whole ladder must be over by then, or the backend dies mid-ladder and a
            // stubborn CLI survives it. SIGINT still comes first and usually suffices.
            st.config.cancel_grace = st.config.cancel_grace.min(SHUTDOWN_GRACE);
            let queued: Vec<TaskKey> = st.queue.drain(..).collect();
            (st.config.on_exit, queued)
        };
        for key in queued {
            let rec = {
                let mut st = self.state();
                st.tasks.get_mut(&key).map(|e| {
                    e.active = false;
                    e.prompts.clear();
                })
            };
            if rec.is_some() {
                let status = if policy == OnExit::Cancel {
                    Status::Cancelled
                } else {
                    Status::Interrupted
                };
                self.update(&key, |r| {
                    r.status = status;
                    r.ended_at_ms = Some(now_ms());
                })
                .await;
            }
        }
        if policy == OnExit::Detach {
            log_info!("shutdown: leaving running tasks running (on_exit = 'detach')");
            return;
        }
        loop {
            let notified = self.shared.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let running: Vec<TaskKey> = {
                let st = self.state();
                st.tasks
                    .iter()
                    .filter(|(_, e)| e.active)
                    .map(|(k, _)| k.clone())
                    .collect()
            };
            if running.is_empty() {
                break;
            }
            for key in &running {
                let _ = self.cancel(&key.0, key.1);
            }
            notified.await;
        }
        log_info!("shutdown: every task settled");
    }
}

const OWNER_LOCK: &str = "owner.lock";
/// The longest grace period of the cancel ladder while the editor quits (see `shutdown`).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(500);
/// Created by a backend that cancels a task another backend runs, so that the owner reports the
/// run as cancelled rather than failed.
const CANCEL_REQUEST: &str = "cancel-request";

/// Takes ownership of a task directory; None when another live backend holds it.
fn try_lock(dir: &Path) -> Option<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(OWNER_LOCK))
        .ok()?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).ok()
}

fn no_task(cwd: &str, id: u64) -> String {
    format!("no task #{id} in {cwd}")
}

fn check_cwd(cwd: &str) -> Result<(), String> {
    if cwd.is_empty() {
        return Err("start: 'cwd' is empty".into());
    }
    let p = Path::new(cwd);
    if !p.is_absolute() {
        return Err(format!("start: cwd '{cwd}' is not an absolute path"));
    }
    match std::fs::metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("start: cwd '{cwd}' does not exist"))
        }
        // Same wording as the runner's check: a bare "Not a directory" would seem to be about
        // the cwd itself, and "Permission denied" would not say which.
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(format!(
            "start: cwd '{cwd}' does not exist (a parent is not a directory)"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(format!(
            "start: cwd '{cwd}' is not accessible (permission denied)"
        )),
        Err(e) => Err(format!("start: cwd '{cwd}': {e}")),
        Ok(m) if !m.is_dir() => Err(format!("start: cwd '{cwd}' is not a directory")),
        Ok(_) => match std::fs::read_dir(p) {
            // Listing needs r, entering it (the CLI's chdir) needs x: without x the task would
            // be accepted here and then fail at the spawn.
            Ok(_) if nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_err() => Err(
                format!("start: cwd '{cwd}' is not accessible (permission denied)"),
            ),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("start: cwd '{cwd}' is not readable: {e}")),
        },
    }
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            // The sender is gone: no cancel will ever come.
            std::future::pending::<()>().await;
        }
    }
}

fn append(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?
        .write_all(data)
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Moves the end of the current run (and of the task) to `end_ms`, keeping the totals right.
fn end_run_at(r: &mut TaskRecord, end_ms: u64) {
    if let Some(run) = r.runs.last_mut() {
        let start = run.started_at_ms.unwrap_or(end_ms);
        let end = end_ms.max(start);
        run.ended_at_ms = Some(end);
        run.duration_ms = Some(end - start);
        r.ended_at_ms = Some(end);
    }
    r.duration_ms = Some(r.runs.iter().filter_map(|x| x.duration_ms).sum());
}

fn modified_ms(path: &Path) -> Option<u64> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// Takes the numbers of a run's `result` line into the run.
fn apply_result(r: &mut TaskRecord, res: &claude::ResultInfo) {
    if let Some(run) = r.runs.last_mut() {
        run.cost_usd = res.total_cost_usd;
        run.num_turns = res.num_turns;
    }
    if let Some(text) = &res.result {
        r.result = Some(shorten(text, 4096));
    }
}

/// Ends the current run and rolls its numbers into the task's totals.
fn finish_run(r: &mut TaskRecord, status: Status, exit: Option<Exit>, error: Option<String>) {
    let now = now_ms();
    if let Some(run) = r.runs.last_mut() {
        run.status = status;
        run.ended_at_ms = Some(now);
        run.duration_ms = run.started_at_ms.map(|s| now.saturating_sub(s));
        match exit {
            Some(Exit::Code(c)) => run.exit_code = Some(c),
            Some(Exit::Signal(s)) => run.signal = Some(s),
            None => {}
        }
        run.error = error.clone();
    }
    r.status = status;
    r.ended_at_ms = Some(now);
    r.exit_code = match exit {
        Some(Exit::Code(c)) => Some(c),
        Some(Exit::Signal(s)) => Some(128 + s),
        None => None,
    };
    r.error = error;
    r.process = None;
    r.duration_ms = Some(r.runs.iter().filter_map(|x| x.duration_ms).sum());
    r.cost_usd = r.runs.iter().map(|x| x.cost_usd).sum();
    r.num_turns = r.runs.iter().map(|x| x.num_turns).sum();
}

/// What the transcript says about one run: its `result` line, if it wrote one.
#[derive(Default, Debug)]
pub struct RunSummary {
    pub result: Option<claude::ResultInfo>,
    /// How many whole lines were examined: only the transcript's tail is read.
    pub lines: u64,
}

/// Reads a run's `result` line: the CLI's last line. The lines of the run's part of the file are
/// walked backwards from the end, a few at most, so a 200 MB transcript costs a read of its
/// last line. Each is parsed to tell what it is, whatever the order of its keys (2.1.332 writes
/// `type` after the whole answer); one too long to hold (a huge answer repeated in `result`) is
/// re-read with its long strings cut, so its cost and turns still count in bounded memory.
pub fn summarize(path: &Path, offset: u64) -> RunSummary {
    let mut out = RunSummary::default();
    let Ok(mut f) = std::fs::File::open(path) else {
        return out;
    };
    let Ok(end) = f.metadata().map(|m| m.len()) else {
        return out;
    };
    // The last line first: finding where the lines before it begin can mean walking back over
    // a huge assistant line, which only a run without a final result needs.
    let mut lines = last_lines(&mut f, offset, end, 1);
    let mut widened = false;
    let mut next = 0;
    loop {
        let Some(&(start, len)) = lines.get(next) else {
            if widened {
                break;
            }
            widened = true;
            // The same last lines again, and more: those already looked at are skipped.
            lines = last_lines(&mut f, offset, end, SUMMARY_LINES);
            continue;
        };
        next += 1;
        out.lines += 1;
        let msg = if len <= MAX_LINE as u64 {
            claude::parse_bytes(&read_at(&mut f, start, len))
        } else {
            match crate::longline::shorten_file(path, start, len, LONG_STRING, LONG_OUT) {
                Ok(Some(short)) => claude::parse_bytes(&short.json),
                _ => continue,
            }
        };
        if let claude::Msg::Result(r) = msg {
            out.result = Some(r);
            break;
        }
    }
    out
}

/// How many of a run's last lines `summarize` looks at: the result is the last, but a line the
/// CLI wrote after it (or a blank one) must not hide it.
const SUMMARY_LINES: usize = 8;
/// Long strings of a re-read over-long line are cut to this (the text is not needed here)...
const LONG_STRING: usize = 64 * 1024;
/// ... and a re-read line that still needs more than this is given up.
const LONG_OUT: usize = 1024 * 1024;

/// `len` bytes of `f` from `start` (fewer at EOF or on an error).
fn read_at(f: &mut std::fs::File, start: u64, len: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_ok() {
        let _ = f.take(len).read_to_end(&mut buf);
    }
    buf
}

/// The last `max` non-empty lines in `from..end` of `f`, newest first, as (start, length)
/// without the newline or a `\r` before it. Reads backwards in blocks: memory stays at one
/// block whatever the lines' lengths.
fn last_lines(f: &mut std::fs::File, from: u64, end: u64, max: usize) -> Vec<(u64, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    const BLOCK: u64 = 64 * 1024;
    let mut out = Vec::new();
    let mut buf = vec![0u8; BLOCK as usize];
    // The end of the line being looked for (exclusive), and where the next block read ends.
    let mut line_end = end;
    let mut pos = end;
    let push = |start: u64, stop: u64, f: &mut std::fs::File, out: &mut Vec<(u64, u64)>| {
        let mut stop = stop;
        if stop > start && read_at(f, stop - 1, 1) == b"\r" {
            stop -= 1;
        }
        if stop > start {
            out.push((start, stop - start));
        }
    };
    while pos > from && out.len() < max {
        let begin = pos.saturating_sub(BLOCK).max(from);
        let n = (pos - begin) as usize;
        if f.seek(SeekFrom::Start(begin)).is_err() || f.read_exact(&mut buf[..n]).is_err() {
            return out;
        }
        for i in (0..n).rev() {
            if buf[i] == b'\n' {
                let nl = begin + i as u64;
                push(nl + 1, line_end, f, &mut out);
                line_end = nl;
                if out.len() == max {
                    return out;
                }
            }
        }
        pos = begin;
    }
    if out.len() < max {
        push(from, line_end, f, &mut out);
    }
    out
}

/// The run's status: the `result` line decides, except that a cancel we asked for is a cancel
/// whatever the CLI wrote or its exit code said.
/// `exit` is None for a re-adopted process, whose exit status only its late parent could see.
pub fn outcome(s: &RunSummary, exit: Option<Exit>, cancelled: bool) -> (Status, Option<String>) {
    if cancelled {
        return (Status::Cancelled, None);
    }
    match &s.result {
        Some(r) if !r.is_error => (Status::Completed, None),
        Some(r) => (Status::Failed, r.error_message()),
        None => {
            let why = match exit {
                Some(Exit::Code(0)) | None => "the CLI exited without a result".to_owned(),
                Some(Exit::Code(c)) => format!("the CLI exited with code {c} without a result"),
                Some(Exit::Signal(sig)) => format!("the CLI was killed by signal {sig}"),
            };
            (Status::Failed, Some(why))
        }
    }
}

fn export_markdown(rec: &TaskRecord, transcript: &Path) {
    let lines = match crate::view::render_all(rec, transcript) {
        Ok(l) => l,
        Err(e) => {
            log_warn!("export of task #{}: {e}", rec.id);
            return;
        }
    };
    let dir = Path::new(&rec.cwd).join(".claude-tasks");
    let mut text = format!(
        "# Task #{}: {}\n\n- status: {}\n- project: {}\n- created: {}\n- duration: {}\n- cost: ${:.4}\n\n",
        rec.id,
        rec.name,
        rec.status.as_str(),
        rec.cwd,
        crate::timefmt::utc(rec.created_at_ms),
        crate::timefmt::duration(rec.duration_ms.unwrap_or(0)),
        rec.cost_usd
    );
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    let res = std::fs::create_dir_all(&dir).and_then(|()| {
        let tmp = dir.join(format!(".task-{}-output.md.tmp", rec.id));
        std::fs::write(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, dir.join(format!("task-{}-output.md", rec.id)))
    });
    if let Err(e) = res {
        log_warn!("export of task #{} to {}: {e}", rec.id, dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("ct-sum-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    const RESULT: &str = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":3,"total_cost_usd":0.5,"result":"ok"}"#;

    #[test]
    fn summarize_finds_the_result_at_the_end_of_a_large_transcript() {
        let p = tmp("large");
        let filler = format!("{}\n", "x".repeat(999));
        let mut data = String::new();
        // Far more than a block: only the last few lines are read.
        while data.len() < 2 * MAX_LINE {
            data.push_str(&filler);
        }
        data.push_str(RESULT);
        data.push('\n');
        std::fs::write(&p, &data).unwrap();
        let s = summarize(&p, 0);
        let r = s.result.expect("result");
        assert_eq!((r.num_turns, r.is_error), (3, false));
        assert_eq!(s.lines, 1);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn summarize_reads_a_result_line_longer_than_max_line() {
        let p = tmp("huge-result");
        let text = "answer line\n".repeat(MAX_LINE / 10);
        // The CLI's key order: the huge text comes before the cost.
        let huge = format!(
            r#"{{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":{},"session_id":"s","total_cost_usd":0.25}}"#,
            serde_json::Value::from(text)
        );
        let data = format!("{{\"type\":\"assistant\"}}\n{huge}\n");
        assert!(data.len() > MAX_LINE + 1024);
        std::fs::write(&p, &data).unwrap();
        let r = summarize(&p, 0).result.expect("result");
        assert_eq!((r.num_turns, r.total_cost_usd), (2, 0.25));
        let _ = std::fs::remove_file(&p);
    }

    /// 2.1.332 writes the result's `type` after its whole answer. The result is found whatever
    /// the answer's size: read whole under the framer's cap, and over it re-read with its long
    /// strings cut (bounded memory: the kept answer is cut, with its size).
    #[test]
    fn summarize_finds_a_result_whose_type_comes_after_a_huge_answer() {
        use crate::testutil::result_line_2_1_332;
        const PIECE: &str = r#"an answer line, \u00e9 \ud83d\ude00 \"quoted\"\n"#;
        for size in [8 * 1024, 4_000_000, 4 * 1024 * 1024, 60 * 1024 * 1024] {
            let p = tmp(&format!("type-last-{size}"));
            let answer = format!("\"{}\"", PIECE.repeat(size / PIECE.len() + 1));
            let line = result_line_2_1_332(&answer, 0.25, 2);
            assert!(line.find(r#""type":"result""#) > line.find(&answer));
            std::fs::write(&p, format!("{{\"type\":\"assistant\"}}\n{line}\n")).unwrap();
            let r = summarize(&p, 0).result.expect("the result");
            assert_eq!(
                (r.num_turns, r.total_cost_usd, r.is_error),
                (2, 0.25, false)
            );
            let text = r.result.expect("the answer");
            assert!(
                text.starts_with("an answer line, é 😀 \"quoted\"\n"),
                "{size}"
            );
            if line.len() > MAX_LINE {
                assert!(text.len() < LONG_STRING + 64, "{size}: {}", text.len());
                assert!(text.ends_with(&format!("… ({} bytes)", answer.len() - 2)));
            } else {
                assert_eq!(text, serde_json::from_str::<String>(&answer).unwrap());
            }
            let _ = std::fs::remove_file(&p);
        }
    }

    /// The lines after a result (a CLI may write some) are told apart by parsing too, each kind
    /// with `type` last after a long string, one of them longer than the framer's cap.
    #[test]
    fn summarize_skips_other_kinds_whose_type_comes_last() {
        use crate::testutil::{result_line_2_1_332, type_last};
        let p = tmp("kinds-type-last");
        let mut data = result_line_2_1_332(r#""done""#, 0.5, 3);
        for (line, pad) in [
            (
                r#"{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"hi"}]},"parent_tool_use_id":null}"#,
                8 * 1024,
            ),
            (
                r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"x"}]}}"#,
                5 * 1024 * 1024,
            ),
            (
                r#"{"type":"system","subtype":"status","status":"requesting"}"#,
                100,
            ),
            (
                r#"{"type":"stream_event","event":{"type":"message_stop"},"parent_tool_use_id":null}"#,
                4096,
            ),
        ] {
            data.push('\n');
            data.push_str(&type_last(line, pad).expect("a line that begins with its type"));
        }
        data.push('\n');
        std::fs::write(&p, &data).unwrap();
        let s = summarize(&p, 0);
        let r = s.result.expect("the result");
        assert_eq!(
            (r.num_turns, r.total_cost_usd, r.result.as_deref()),
            (3, 0.5, Some("done"))
        );
        assert_eq!(s.lines, 5);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn last_lines_walks_back_over_blocks_crs_and_blank_lines() {
        let p = tmp("last-lines");
        let long = "y".repeat(150 * 1024);
        let data = format!("a\r\n{long}\n\nlast-no-newline");
        std::fs::write(&p, &data).unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        let end = data.len() as u64;
        let got = last_lines(&mut f, 0, end, 8);
        let text: Vec<String> = got
            .iter()
            .map(|&(s, l)| String::from_utf8(read_at(&mut f, s, l)).unwrap())
            .collect();
        assert_eq!(
            text,
            vec!["last-no-newline".to_string(), long.clone(), "a".into()]
        );
        // From an offset inside the file: nothing before it.
        assert_eq!(last_lines(&mut f, 3, end, 8).len(), 2);
        assert_eq!(last_lines(&mut f, 0, end, 1).len(), 1);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn summarize_finds_a_result_followed_by_other_lines() {
        let p = tmp("after");
        let data = format!("{{\"type\":\"assistant\"}}\n{RESULT}\n\n{{\"type\":\"system\"}}\n");
        std::fs::write(&p, &data).unwrap();
        let s = summarize(&p, 0);
        assert!(s.result.is_some());
        // The last line, then (widened) the result: the last line is not looked at twice.
        assert_eq!(s.lines, 2);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn summarize_ignores_earlier_runs() {
        let p = tmp("partial");
        // A result before the run's offset belongs to an earlier run.
        let earlier = format!("{RESULT}\n");
        let mut data = earlier.clone();
        let offset = data.len() as u64;
        data.push_str("{\"type\":\"assistant\"}\n");
        std::fs::write(&p, &data).unwrap();
        assert!(summarize(&p, offset).result.is_none());
        assert!(summarize(&p, 0).result.is_some());
        let _ = std::fs::remove_file(&p);
    }

    /// A record's write can take tens of ms (its fsyncs wait for the transcripts' writeback,
    /// see `update`). The runtime must go on meanwhile: the views the update woke render the
    /// change (a run's footer) while it is being written. Here the runtime has one thread and
    /// another thread holds the record writer, as a write stuck in fsync would.
    #[tokio::test(flavor = "current_thread")]
    async fn a_record_write_in_progress_does_not_hold_up_the_runtime() {
        let root = tmp("slow-write");
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open(&root).unwrap();
        let cwd = "/a/project".to_string();
        let (id, _) = store.allocate(&cwd).unwrap();
        let sup = Supervisor::new(store, Arc::new(crate::testutil::NoEditor));
        let key = (cwd.clone(), id);
        let rec = TaskRecord::queued(
            id,
            "before".into(),
            cwd.clone(),
            "sid".into(),
            Default::default(),
            0,
        );
        sup.store().write_record(&rec).unwrap();
        let mut seen = {
            let entry = Entry::new(rec);
            let rx = entry.record.subscribe();
            sup.state().tasks.insert(key.clone(), entry);
            rx
        };
        let (release_tx, release_rx) = std::sync::mpsc::channel();
        let holder = sup.hold_record_writes(release_rx);
        let updating = tokio::spawn({
            let (sup, key) = (sup.clone(), key.clone());
            async move { sup.update(&key, |r| r.name = "after".into()).await }
        });
        seen.changed().await.unwrap();
        assert_eq!(seen.borrow().name, "after");
        // The record is not written yet...
        assert_eq!(sup.store().read_record(&cwd, id).unwrap().name, "before");
        let _ = release_tx.send(());
        assert!(
            holder.join().unwrap(),
            "the runtime waited for the record write"
        );
        // ... and is once the writer is free, before `update` returns.
        assert_eq!(updating.await.unwrap().unwrap().name, "after");
        assert_eq!(sup.store().read_record(&cwd, id).unwrap().name, "after");
        let _ = std::fs::remove_dir_all(&root);
    }
}
