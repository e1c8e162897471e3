//! Tasks this backend did not start: taken in from the store at start-up or on demand, settled
//! from their transcript when nobody runs them any more, adopted when their process still runs,
//! mirrored while another live backend owns them. The owner lock decides which.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::export::export_markdown;
use super::live::interrupt_wait;
use super::live::Cli;
use super::permissions::watch::Control;
use super::record::{apply_result, end_run_at, finish_run, outcome};
use super::run_end::set_changes;
use super::{Entry, Supervisor, TaskKey};
use crate::cli::control::{self, Stdin};
use crate::process::stop;
use crate::store::{Store, TaskDir};
use crate::stream_json::echo::Written;
use crate::stream_json::summary::{summarize, RunSummary};
use crate::task::{now_ms, ProcessInfo, Status, TaskRecord};
use crate::{log_info, log_warn};

impl Supervisor {
    /// Puts a record read from disk into the table, deciding who owns it.
    pub(super) fn take_in(&self, rec: TaskRecord) {
        let _claim = self.claim();
        let key = (rec.cwd.clone(), rec.id);
        if self.state().tasks.contains_key(&key) {
            return;
        }
        if rec.status.is_finished() {
            if let Some(live) = rec.live.clone() {
                return self.take_in_idle(rec, live);
            }
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
                let mut rec = rec;
                if rec.status == Status::Running && rec.process.is_none() {
                    rec.process = self.unrecorded_cli(&rec);
                }
                let alive = rec
                    .process
                    .as_ref()
                    .is_some_and(|p| crate::process::proctree::is_alive(p.pid, p.start_time));
                if rec.status == Status::Running && alive {
                    self.adopt(rec, lock);
                } else {
                    self.settle_orphan(rec);
                }
            }
        }
    }

    /// The CLI of a running task whose record never got its pid (its backend died between the
    /// spawn and that record): the oldest process carrying the marker its run recorded.
    fn unrecorded_cli(&self, rec: &TaskRecord) -> Option<ProcessInfo> {
        let marker = rec.current_run()?.marker.clone()?;
        let (pid, start_time) = crate::process::proctree::oldest_marked(&marker)?;
        log_info!(
            "task #{} in {}: found its CLI (pid {pid}) by its marker",
            rec.id,
            rec.cwd
        );
        Some(ProcessInfo {
            pid,
            start_time,
            // Its owner is unknown and gone: `adopt` makes us the owner.
            owner_pid: 0,
            owner_start_time: 0,
            marker,
        })
    }

    /// A finished task whose record says its CLI idles, kept alive for a follow-up: re-adopted
    /// still warm when no live backend owns it and the CLI is there; else its record is told
    /// the CLI is gone (the next follow-up resumes the session in a new one).
    fn take_in_idle(&self, mut rec: TaskRecord, live: crate::task::Live) {
        let key = (rec.cwd.clone(), rec.id);
        let dir = self.shared.store.task_dir(&rec.cwd, rec.id);
        let Some(lock) = try_lock(&dir) else {
            // Another editor's backend keeps it.
            let mut entry = Entry::new(rec);
            entry.foreign = true;
            self.state().tasks.entry(key).or_insert(entry);
            return;
        };
        let alive = rec
            .process
            .clone()
            .filter(|p| crate::process::proctree::is_alive(p.pid, p.start_time));
        match alive {
            Some(info) if live.until_ms > now_ms() => self.adopt_idle(rec, lock, info, live),
            found => {
                if let Some(info) = found {
                    // Its keep-alive time went by while nobody owned it.
                    let grace = self.state().config.cancel_grace;
                    tokio::spawn(async move {
                        stop::end_idle_foreign(info.pid, info.start_time, &info.marker, grace)
                            .await;
                        stop::kill_leftovers_of(info.pid, info.start_time, &info.marker);
                    });
                }
                log_info!(
                    "task #{} in {}: its idle CLI is gone (or its time is over)",
                    rec.id,
                    rec.cwd
                );
                rec.live = None;
                rec.process = None;
                self.persist(&rec);
                drop(lock);
                self.state()
                    .tasks
                    .entry(key)
                    .or_insert_with(|| Entry::new(rec));
            }
        }
    }

    /// A task whose backend went away and whose process is gone: its transcript says how the
    /// run ended; without a `result` line it was interrupted (and can be resumed).
    fn settle_orphan(&self, mut rec: TaskRecord) {
        let key = (rec.cwd.clone(), rec.id);
        let transcript = self.shared.store.task_dir(&rec.cwd, rec.id).transcript();
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
                .cancel_request()
                .exists();
        // What it changed, until now: its backend is not here to say when it ended.
        let changed = if ran {
            rec.current_run()
                .and_then(|run| self.end_changes_now(&key, run))
        } else {
            None
        };
        set_changes(&mut rec, changed);
        // Settled before it enters the table, so no request ever sees the stale "running".
        match &summary.result {
            Some(res) => {
                apply_result(&mut rec, res, None);
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
        self.ensure_watchdog();
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
        self.adopt_changes(&key, rec.current_run());
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
        // Its stdin is ours now: its open requests are still open, and answerable from here.
        let dir = self.shared.store.task_dir(&key.0, key.1);
        let run = self
            .state()
            .tasks
            .get(&key)
            .and_then(|e| e.record.borrow().current_run().cloned());
        let offset = run.as_ref().map_or(0, |r| r.transcript_offset);
        let n = run.as_ref().map_or(1, |r| r.n);
        let d = dir.clone();
        let opened = tokio::task::spawn_blocking(move || Stdin::open(&d, true))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(e) = &opened {
            log_warn!("task #{}: cannot open its stdin again: {e}", key.1);
        }
        let mut control = Control::new(opened);
        // What was written to it in this run: its prompt and what was said meanwhile (the
        // watcher reads their echoes from the run's start).
        if let Some(run) = &run {
            control.expect(Written {
                len: run.prompt_len.unwrap_or(0),
                hash: run.prompt_hash.unwrap_or(0),
            });
            for s in &run.said {
                control.expect(Written {
                    len: s.len,
                    hash: s.hash,
                });
            }
        }
        let control = Arc::new(Mutex::new(control));
        let watcher = self.watch_control(&key, &dir, offset, control);
        let cli = Arc::new(Cli::new(
            info.pid,
            info.start_time,
            info.marker.clone(),
            None,
            watcher,
        ));
        {
            let mut st = self.state();
            if let Some(e) = st.tasks.get_mut(&key) {
                e.cli = Some(cli.clone());
                e.control = Some(cli.control.clone());
            }
        }
        let end = self.supervise(&cli, &mut cancel).await;
        {
            let mut st = self.state();
            if let Some(e) = st.tasks.get_mut(&key) {
                e.cli = None;
                e.control = None;
            }
        }
        self.end_run(&key, n, offset, &cli, end).await;
        let cancelled = self
            .state()
            .tasks
            .get(&key)
            .is_some_and(|e| e.record.borrow().cancel_requested);
        // A follow-up asked for while it ran adopted: our driver takes the task (and its slot)
        // from here, like any task of ours.
        let follow_up = {
            let mut st = self.state();
            match st.tasks.get_mut(&key) {
                Some(e) if !e.prompts.is_empty() && !cancelled => true,
                Some(e) => {
                    e.active = false;
                    e.cancel = None;
                    if e.idle.is_none() {
                        e.lock = None;
                    }
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
        self.prune(&key.0);
        self.shared.idle.notify_waiters();
        self.schedule();
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
                // Its backend died while we watched: settle or adopt it ourselves (settling
                // reads its transcript and records its changes: not on a runtime worker).
                self.state().tasks.remove(&key);
                let me = self.clone();
                let _ = tokio::task::spawn_blocking(move || me.take_in(rec)).await;
                return;
            }
        }
    }

    pub(super) fn cancel_foreign(&self, rec: TaskRecord) -> Result<TaskRecord, String> {
        let dir = self.shared.store.task_dir(&rec.cwd, rec.id);
        Store::write_file_private(&dir.cancel_request(), b"")
            .map_err(|e| format!("cancel: {e}"))?;
        let Some(info) = rec.process.clone() else {
            return Err(format!("cancel: task #{} has no process yet", rec.id));
        };
        let grace = self.state().config.cancel_grace;
        tokio::spawn(async move {
            // The protocol's interrupt first: the owner then ends the idle CLI itself.
            let d = dir.clone();
            let interrupted = tokio::time::timeout(
                interrupt_wait(grace),
                tokio::task::spawn_blocking(move || {
                    Stdin::open(&d, false)
                        .and_then(|mut s| s.write_line(&control::interrupt("ct-int-foreign")))
                }),
            )
            .await;
            if matches!(interrupted, Ok(Ok(Ok(())))) {
                let deadline = tokio::time::Instant::now() + interrupt_wait(grace);
                while crate::process::proctree::is_alive(info.pid, info.start_time)
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
            stop::cancel_foreign(info.pid, info.start_time, &info.marker, grace).await;
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
        // The tasks an editor left running are this backend's now (or another live one's):
        // the hint for the next editor's statusline has served.
        if let Err(e) = self.shared.store.clear_detached() {
            log_warn!("{e}");
        }
        // Mirrored foreign tasks are loaded on demand only.
        let mut st = self.state();
        st.tasks.retain(|_, e| !e.foreign);
    }
}

/// Takes ownership of a task directory; None when another live backend holds it.
pub(super) fn try_lock(dir: &TaskDir) -> Option<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.owner_lock())
        .ok()?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).ok()
}

fn modified_ms(path: &Path) -> Option<u64> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}
