//! The task supervisor: the table of this backend's tasks, the queue and its policies, one tokio
//! task per running task (it owns the child process and the task's state machine), and the views
//! attached to buffers. Requests only touch the table and records and return (the RPC layer runs
//! them on the blocking pool); spawning, waiting and the transcripts' I/O happen in the tasks.
//!
//! Every change of a record is, in this order: applied to the task's `watch` channel (views read
//! it), written to `task.json`, and sent to Lua as an event. The writes never run on a runtime
//! worker: an fsync can wait tens of ms for the journal (see `update`).

mod adopt;
mod changes;
pub mod config;
mod export;
mod follow_up;
pub mod isolation;
mod live;
pub mod permissions;
mod queue;
mod record;
mod run;
mod run_end;
mod shutdown;
mod start;
mod stderr;
pub mod watchdog;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use rmpv::Value;
use tokio::sync::{mpsc, watch, Notify};

use crate::log_warn;
use crate::nvim::editor::Editor;
use crate::nvim::encode::{json_to_msgpack, record_value};
use crate::store::Store;
use crate::task::{now_ms, Status, TaskOptions, TaskRecord};
use crate::tasks::config::Config;
use crate::view::View;
pub use changes::{status_name, Reverted, RunReview};
pub use isolation::Isolation;

pub type TaskKey = (String, u64);

/// What `start` asks for, decoded and validated by the RPC layer.
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    pub prompt: String,
    pub cwd: String,
    pub name: Option<String>,
    pub options: TaskOptions,
    pub isolation: Isolation,
    /// Where the prompt's context came from (`src/sample.lua:2-4`), for the header.
    pub context: Vec<String>,
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
    /// The files with unsaved changes in this backend's editor (canonical paths).
    unsaved: Mutex<Vec<String>>,
    /// The runs whose changes are being recorded.
    recording: changes::Recording,
    /// The process that ends our CLIs at their deadlines once we are gone.
    watchdog: Mutex<watchdog::Keeper>,
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
    /// While we own its running CLI: its stdin and what it has open (`permissions::watch`).
    control: Option<Arc<Mutex<permissions::watch::Control>>>,
    /// While a run goes on: its CLI (a message said or an interrupt reaches it through it).
    cli: Option<Arc<live::Cli>>,
    /// Between runs: its CLI, alive and idle, for the next follow-up (`live`).
    idle: Option<live::IdleCli>,
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
            control: None,
            cli: None,
            idle: None,
        }
    }

    fn rec(&self) -> TaskRecord {
        self.record.borrow().clone()
    }
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
        let owner = (pid, crate::process::proctree::start_time(pid).unwrap_or(0));
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
                unsaved: Mutex::new(Vec::new()),
                recording: changes::Recording::default(),
                watchdog: Mutex::default(),
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

    /// A request of the CLI now waits for the user: `permission`, with the request.
    fn emit_permission(&self, rec: &TaskRecord, request: &crate::task::Pending) {
        let request = serde_json::to_value(request).map_or(Value::Nil, json_to_msgpack);
        let ev = Value::Map(vec![
            (Value::from("type"), Value::from("permission")),
            (Value::from("task"), record_value(&self.shared.store, rec)),
            (Value::from("request"), request),
        ]);
        let _ = self.shared.events.send(ev);
    }

    /// Applies `f` to the task's record and writes it, from a request (on the blocking pool);
    /// None when the task is not in the table.
    fn modify(&self, key: &TaskKey, f: impl FnOnce(&mut TaskRecord)) -> Option<TaskRecord> {
        let (rev, rec) = {
            let st = self.state();
            let entry = st.tasks.get(key)?;
            entry.record.send_modify(f);
            (self.next_revision(), entry.rec())
        };
        self.persist_revision(key, rev, &rec);
        Some(rec)
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
            _ if entry.idle.is_some() => {
                // Its CLI idles, kept alive for a follow-up: cancel ends it (and its tree).
                let rec = entry.rec();
                drop(st);
                let me = self.clone();
                tokio::spawn(async move { me.close_idle(&key, "cancelled").await });
                Ok(rec)
            }
            other => Err(format!(
                "cancel: task #{id} is not running (it is {})",
                other.as_str()
            )),
        }
    }

    /// Deletes a finished task, its worktree and branch included; refused while its worktree has
    /// changes that were not applied (see `dispose_with`).
    pub fn dispose(&self, cwd: &str, id: u64) -> Result<(), String> {
        self.dispose_with(cwd, id, false)
    }

    /// `dispose`; with `force`, a worktree's unapplied changes are deleted too.
    pub fn dispose_with(&self, cwd: &str, id: u64, force: bool) -> Result<(), String> {
        let key = (cwd.to_owned(), id);
        self.ensure_loaded(&key)?;
        let _worktree_gone = self.dispose_worktree(&key, force)?;
        let mut closing = None;
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
            // Dropping the entry stops its views (their record channel closes); an idle CLI
            // goes with the task.
            if let Some(idle) = st.tasks.remove(&key).and_then(|mut e| e.idle.take()) {
                closing = Some(idle.cli);
            }
            self.shared
                .written
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(&key);
            rec
        };
        if let Some(cli) = closing {
            self.close_detached(key.clone(), cli);
        }
        self.shared
            .store
            .remove(cwd, id)
            .map_err(|e| format!("dispose: {e}"))?;
        export::remove_export(cwd, id);
        self.dispose_changes(cwd, id);
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
            transcript: self.shared.store.task_dir(cwd, id).transcript(),
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
}

pub(crate) fn no_task(cwd: &str, id: u64) -> String {
    format!("no task #{id} in {cwd}")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_path as tmp;

    /// A supervisor on a fresh store under a temporary root, and one queued task (`name`)
    /// whose record is on disk but not yet in the table: (root, supervisor, key, record).
    pub(crate) fn supervisor_with_a_task(
        root: &str,
        name: &str,
    ) -> (std::path::PathBuf, Supervisor, TaskKey, TaskRecord) {
        let root = tmp(root);
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open(&root).unwrap();
        let cwd = "/a/project".to_string();
        let (id, _) = store.allocate(&cwd).unwrap();
        let sup = Supervisor::new(store, Arc::new(crate::testutil::NoEditor));
        let rec = TaskRecord::queued(
            id,
            name.into(),
            cwd.clone(),
            "sid".into(),
            Default::default(),
            0,
        );
        sup.store().write_record(&rec).unwrap();
        (root, sup, (cwd, id), rec)
    }

    /// A record's write can take tens of ms (its fsyncs wait for the transcripts' writeback,
    /// see `update`). The runtime must go on meanwhile: the views the update woke render the
    /// change (a run's footer) while it is being written. Here the runtime has one thread and
    /// another thread holds the record writer, as a write stuck in fsync would.
    #[tokio::test(flavor = "current_thread")]
    async fn a_record_write_in_progress_does_not_hold_up_the_runtime() {
        let (root, sup, key, rec) = supervisor_with_a_task("slow-write", "before");
        let (cwd, id) = key.clone();
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
