//! A task's live CLI: the process its runs are written to while it lives (ours, or re-adopted
//! from a backend that went away), kept alive and idle between runs for `keep_alive_ms` so that
//! a follow-up is one line on its stdin instead of a new process; closed at that deadline, or
//! the oldest first when more than `max_idle` are idle (each costs ~300 MB), or on a cancel, a
//! dispose, the editor's exit. What requests write to it is in `follow_up`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::permissions::watch::{lock, Control, Watcher};
use super::{wait_true, Supervisor, TaskKey};
use crate::cli::control::Stdin;
use crate::process::reaper::Exit;
use crate::process::spawn::Process;
use crate::process::{proctree, stop};
use crate::task::{now_ms, Live, ProcessInfo, TaskRecord};
use crate::{log_info, log_warn};

/// How long an interrupt is given to end the turn before the ladder: the CLI does it in
/// 6-40 ms, and the ladder after it must still fit in the grace Neovim gives on quitting.
pub(super) fn interrupt_wait(grace: std::time::Duration) -> std::time::Duration {
    (grace / 2).min(std::time::Duration::from_secs(1))
}

/// How often a CLI that is not our child is looked for in `/proc` (its exit cannot be waited
/// for).
const POLL: Duration = Duration::from_millis(50);

/// A task's CLI process while this backend owns it.
pub(crate) struct Cli {
    pub(crate) pid: i32,
    pub(crate) start_time: u64,
    pub(crate) marker: String,
    /// Our child, whose exit the reaper reports; None for a CLI another backend started.
    child: Option<Process>,
    pub(crate) control: Arc<Mutex<Control>>,
    watcher: Mutex<Option<Watcher>>,
}

/// How a run's wait for its CLI ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunEnd {
    /// The CLI is idle: its turns are over and it took every message written to it.
    Idle,
    /// It exited by itself (crashed, or a CLI that ends after its turn); its exit when ours.
    Exited(Option<Exit>),
    /// It was cancelled (interrupt, then the ladder) and is gone.
    Cancelled(Option<Exit>),
}

impl Cli {
    pub(crate) fn new(
        pid: i32,
        start_time: u64,
        marker: String,
        child: Option<Process>,
        watcher: Watcher,
    ) -> Cli {
        Cli {
            pid,
            start_time,
            marker,
            child,
            control: watcher.control.clone(),
            watcher: Mutex::new(Some(watcher)),
        }
    }

    /// Still running (not a zombie, not a reused pid).
    pub(crate) fn alive(&self) -> bool {
        match &self.child {
            Some(p) => p.try_exit().is_none(),
            None => proctree::is_alive(self.pid, self.start_time),
        }
    }

    /// Waits for the CLI's end: its exit status when it is our child.
    pub(crate) async fn exited(&self) -> Option<Exit> {
        match &self.child {
            Some(p) => Some(p.wait().await),
            None => {
                while proctree::is_alive(self.pid, self.start_time) {
                    tokio::time::sleep(POLL).await;
                }
                None
            }
        }
    }

    /// Ends a CLI that is idle: SIGTERM (it exits in ~30 ms and writes nothing), then the
    /// ladder after `grace`; then nothing of its tree is left.
    pub(crate) async fn close(&self, grace: Duration) -> Option<Exit> {
        let exit = match &self.child {
            Some(p) => Some(p.end_idle(grace).await),
            None => {
                stop::end_idle_foreign(self.pid, self.start_time, &self.marker, grace).await;
                None
            }
        };
        self.kill_leftovers();
        exit
    }

    /// Cancel: the protocol's `interrupt` first (the CLI stops its tools and withdraws its
    /// requests within ms, then it is idle and is closed), the signal ladder when that does not
    /// bring it to an end within the grace time. Nothing of its tree is left.
    pub(crate) async fn cancel(&self, grace: Duration) -> Option<Exit> {
        let c = self.control.clone();
        let wrote = tokio::time::timeout(
            interrupt_wait(grace),
            tokio::task::spawn_blocking(move || lock(&c).interrupt()),
        )
        .await;
        if let Ok(Ok(Ok(()))) = wrote {
            let mut idle = lock(&self.control).idle_watch();
            let ended = tokio::select! {
                exit = self.exited() => Some(exit),
                _ = wait_true(&mut idle) => None,
                _ = tokio::time::sleep(interrupt_wait(grace)) => Some(None),
            };
            match ended {
                Some(Some(exit)) => {
                    self.kill_leftovers();
                    return Some(exit);
                }
                None => return self.close(grace).await,
                Some(None) => {}
            }
        }
        let exit = match &self.child {
            Some(p) => Some(p.cancel(grace).await),
            None => {
                stop::cancel_foreign(self.pid, self.start_time, &self.marker, grace).await;
                None
            }
        };
        self.kill_leftovers();
        exit
    }

    /// After the CLI exited: what of its tree is left goes too.
    pub(crate) fn kill_leftovers(&self) {
        match &self.child {
            Some(p) => {
                p.kill_leftovers();
            }
            None => {
                stop::kill_leftovers_of(self.pid, self.start_time, &self.marker);
            }
        }
    }

    /// Stops following its transcript, after reading what it holds now.
    pub(crate) async fn stop_watching(&self) {
        let w = self
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(w) = w {
            w.finish().await;
        }
    }

    /// The record's `process` for it, owned by `owner`.
    pub(crate) fn info(&self, owner: (i32, u64)) -> ProcessInfo {
        ProcessInfo {
            pid: self.pid,
            start_time: self.start_time,
            owner_pid: owner.0,
            owner_start_time: owner.1,
            marker: self.marker.clone(),
        }
    }
}

/// A task's CLI between runs.
pub(super) struct IdleCli {
    pub(super) cli: Arc<Cli>,
    /// When it became idle (the oldest idle CLIs are closed first).
    since_ms: u64,
    /// Dropped when the CLI is taken: its keeper then stops.
    _keeper: watch::Sender<()>,
}

impl Supervisor {
    /// Waits for the run's end: the CLI idle (then it takes no more messages said to this run),
    /// its exit, or a cancel.
    pub(super) async fn supervise(&self, cli: &Cli, cancel: &mut watch::Receiver<bool>) -> RunEnd {
        let mut idle = lock(&cli.control).idle_watch();
        loop {
            tokio::select! {
                exit = cli.exited() => return RunEnd::Exited(exit),
                _ = wait_true(cancel) => {
                    // Read now, not at the start: shutdown shortens it.
                    let grace = self.state().config.cancel_grace;
                    return RunEnd::Cancelled(cli.cancel(grace).await);
                }
                _ = wait_true(&mut idle) => {
                    if lock(&cli.control).close_run() {
                        return RunEnd::Idle;
                    }
                    // A message said meanwhile: the run goes on until the CLI took it too.
                    idle.borrow_and_update();
                }
            }
        }
    }

    /// Takes the task's idle CLI for its next run, if it is still alive; one that died while
    /// idle is cleaned up (the run then resumes the session in a new CLI).
    pub(super) async fn take_idle(&self, key: &TaskKey) -> Option<Arc<Cli>> {
        let idle = self.state().tasks.get_mut(key)?.idle.take()?;
        let cli = idle.cli;
        if cli.alive() {
            log_info!(
                "task #{}: its live CLI (pid {}) takes the run",
                key.1,
                cli.pid
            );
            return Some(cli);
        }
        log_info!(
            "task #{}: its CLI (pid {}) died while idle; the follow-up resumes the session",
            key.1,
            cli.pid
        );
        cli.stop_watching().await;
        cli.kill_leftovers();
        self.update(key, |r| {
            r.live = None;
            r.process = None;
        })
        .await;
        None
    }

    /// Keeps a run's CLI alive and idle for the next follow-up (its record already says
    /// `live`): a keeper closes it at the deadline, or when it dies meanwhile. Then at most
    /// `max_idle` stay, the oldest closed first.
    pub(super) fn keep_idle(&self, key: &TaskKey, cli: Arc<Cli>, live: &Live) -> bool {
        let (stop_tx, stop_rx) = watch::channel(());
        {
            let mut st = self.state();
            // Decided under the lock `shutdown` sets `shutting_down` under before it closes
            // every idle CLI: a CLI is either among those or not kept at all.
            if st.shutting_down {
                return false;
            }
            let Some(e) = st.tasks.get_mut(key) else {
                drop(st);
                self.close_detached(key.clone(), cli);
                return true;
            };
            e.idle = Some(IdleCli {
                cli: cli.clone(),
                since_ms: live.since_ms,
                _keeper: stop_tx,
            });
        }
        let wait = Duration::from_millis(live.until_ms.saturating_sub(now_ms()));
        let (me, k) = (self.clone(), key.clone());
        tokio::spawn(async move { me.keeper(k, cli, wait, stop_rx).await });
        self.evict();
        true
    }

    /// Closes the idle CLI at its deadline or cleans up after it when it dies first; stops
    /// when a run takes it.
    async fn keeper(
        self,
        key: TaskKey,
        cli: Arc<Cli>,
        wait: Duration,
        mut taken: watch::Receiver<()>,
    ) {
        let why = tokio::select! {
            _ = tokio::time::sleep(wait) => "its keep-alive time is over",
            _ = cli.exited() => "it died while idle",
            _ = taken.changed() => return,
        };
        self.close_idle_if(&key, &cli, why).await;
    }

    /// Closes the task's idle CLI, if `cli` is still the one idle there.
    async fn close_idle_if(&self, key: &TaskKey, cli: &Arc<Cli>, why: &str) {
        let ours = {
            let mut st = self.state();
            match st.tasks.get_mut(key) {
                Some(e) if e.idle.as_ref().is_some_and(|i| Arc::ptr_eq(&i.cli, cli)) => {
                    e.idle.take()
                }
                _ => None,
            }
        };
        if let Some(idle) = ours {
            self.close_cli(key, idle.cli, why).await;
        }
    }

    /// Closes the task's idle CLI (for a TUI, a dispose, a cancel, the editor's exit); false
    /// when it had none.
    pub(super) async fn close_idle(&self, key: &TaskKey, why: &str) -> bool {
        let idle = self.state().tasks.get_mut(key).and_then(|e| e.idle.take());
        match idle {
            Some(idle) => {
                self.close_cli(key, idle.cli, why).await;
                true
            }
            None => false,
        }
    }

    /// Every idle CLI of this backend, closed (the editor quits with `on_exit = "cancel"`).
    pub(super) async fn close_all_idle(&self, why: &str) {
        let keys: Vec<TaskKey> = self
            .state()
            .tasks
            .iter()
            .filter(|(_, e)| e.idle.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        // At once, not one after the other: the editor's exit waits for them all.
        let closing: Vec<_> = keys
            .into_iter()
            .map(|k| {
                let (me, why) = (self.clone(), why.to_owned());
                tokio::spawn(async move { me.close_idle(&k, &why).await })
            })
            .collect();
        for c in closing {
            let _ = c.await;
        }
    }

    async fn close_cli(&self, key: &TaskKey, cli: Arc<Cli>, why: &str) {
        let grace = self.state().config.cancel_grace;
        log_info!(
            "task #{}: closing its idle CLI (pid {}): {why}",
            key.1,
            cli.pid
        );
        cli.close(grace).await;
        cli.stop_watching().await;
        let rec = self
            .update(key, |r| {
                r.live = None;
                r.process = None;
            })
            .await;
        {
            // Not running and not idle any more: another backend may take the task now.
            let mut st = self.state();
            if let Some(e) = st.tasks.get_mut(key) {
                if !e.active && e.idle.is_none() {
                    e.lock = None;
                }
            }
        }
        if let Some(rec) = rec {
            self.emit("updated", &rec);
        }
        // Retention waited for the task while its CLI lived.
        self.prune(&key.0);
    }

    /// Takes the task's idle CLI away and closes it in the background, its record no longer
    /// saying it is live: for a discard, which removes the directory it runs in. False when it
    /// had none.
    pub(super) fn drop_idle(&self, key: &TaskKey) -> bool {
        let idle = {
            let mut st = self.state();
            let Some(e) = st.tasks.get_mut(key) else {
                return false;
            };
            e.idle.take()
        };
        let Some(idle) = idle else {
            return false;
        };
        self.close_detached(key.clone(), idle.cli);
        self.modify(key, |r| {
            r.live = None;
            r.process = None;
        });
        true
    }

    /// A CLI whose task left the table meanwhile (disposed): closed all the same.
    pub(super) fn close_detached(&self, key: TaskKey, cli: Arc<Cli>) {
        let grace = self.state().config.cancel_grace;
        tokio::spawn(async move {
            log_info!("task #{}: closing the CLI of a task that is gone", key.1);
            cli.close(grace).await;
            cli.stop_watching().await;
        });
    }

    /// At most `max_idle` idle CLIs: the oldest are closed first.
    fn evict(&self) {
        let over: Vec<(TaskKey, Arc<Cli>)> = {
            let st = self.state();
            let mut idle: Vec<(u64, TaskKey, Arc<Cli>)> = st
                .tasks
                .iter()
                .filter_map(|(k, e)| {
                    e.idle
                        .as_ref()
                        .map(|i| (i.since_ms, k.clone(), i.cli.clone()))
                })
                .collect();
            let max = st.config.max_idle;
            if idle.len() <= max {
                return;
            }
            idle.sort_by_key(|(since, k, _)| (*since, k.1));
            let n = idle.len() - max;
            idle.into_iter().take(n).map(|(_, k, c)| (k, c)).collect()
        };
        for (key, cli) in over {
            let me = self.clone();
            tokio::spawn(async move {
                me.close_idle_if(
                    &key,
                    &cli,
                    "more than max_idle CLIs were idle (the oldest goes first)",
                )
                .await;
            });
        }
    }

    /// Re-adopts a task whose CLI a backend that went away left idle: still warm for the next
    /// follow-up, and closed at the deadline its record says. Done before the task is in the
    /// table, so a follow-up that brought it in finds the CLI.
    pub(super) fn adopt_idle(
        &self,
        mut rec: TaskRecord,
        lock: nix::fcntl::Flock<std::fs::File>,
        info: ProcessInfo,
        live: Live,
    ) {
        let key = (rec.cwd.clone(), rec.id);
        let dir = self.shared.store.task_dir(&key.0, key.1);
        let opened = Stdin::open(&dir, true);
        if let Err(e) = &opened {
            log_warn!(
                "task #{}: cannot open its idle CLI's stdin again: {e}",
                key.1
            );
        }
        let usable = opened.is_ok();
        let control = Arc::new(Mutex::new(Control::new_idle(opened)));
        // Idle: nothing it wrote is waited for; only what it writes from now on matters.
        let offset = std::fs::metadata(dir.transcript()).map_or(0, |m| m.len());
        let watcher = self.watch_control(&key, &dir, offset, control);
        let cli = Arc::new(Cli::new(
            info.pid,
            info.start_time,
            info.marker.clone(),
            None,
            watcher,
        ));
        self.ensure_watchdog();
        rec.process = Some(cli.info(self.shared.owner));
        self.persist(&rec);
        {
            let mut st = self.state();
            let mut entry = super::Entry::new(rec.clone());
            entry.lock = Some(lock);
            st.tasks.insert(key.clone(), entry);
        }
        if !self.keep_idle(&key, cli.clone(), &live) {
            // The backend quits while it adopts: closed as the others are.
            self.close_detached(key, cli);
            return;
        }
        if !usable {
            let me = self.clone();
            tokio::spawn(async move {
                me.close_idle_if(&key, &cli, "its stdin cannot be written")
                    .await;
            });
            return;
        }
        log_info!(
            "task #{} in {}: adopted its idle CLI (pid {})",
            rec.id,
            rec.cwd,
            info.pid
        );
        self.emit("updated", &rec);
    }
}
