//! The deadline of a backend's CLIs when the backend is gone: a small process of its own (the
//! backend binary with `--watchdog`), started by the backend the first time it has a CLI that
//! would outlive it. It reads its stdin, a pipe only the backend writes to, until the end: then
//! the backend is gone (crashed, killed, or left with `on_exit = "detach"`), and the watchdog
//! ends each of that backend's CLIs at the deadline the backend would have kept, unless a new
//! backend adopts it first. It exits when none is left to watch.

mod decide;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::time::Duration;

use decide::{decide, Facts, Watch};

use super::adopt::try_lock;
use super::{Supervisor, TaskKey};
use crate::cli::control::Stdin;
use crate::process::helper::{spawn_helper, Helper};
use crate::process::stop;
use crate::store::TaskDir;
use crate::store::{Store, StoreError};
use crate::stream_json::summary::ends_with_result;
use crate::task::{now_ms, TaskRecord};
use crate::tasks::config::Config;
use crate::{log_info, log_warn};

/// How the backend starts its watchdog. Only the backend binary has one (`main.rs`): a
/// supervisor inside another program (the tests) runs without.
#[derive(Debug, Clone)]
pub struct WatchdogSpec {
    /// The backend binary (`/proc/self/exe`: it names the running one even once replaced).
    pub program: PathBuf,
    pub state_dir: PathBuf,
    pub log_file: Option<PathBuf>,
}

/// The backend's side: what to start, and the watchdog once started.
#[derive(Default)]
pub(super) struct Keeper {
    spec: Option<WatchdogSpec>,
    running: Option<Helper>,
}

impl Supervisor {
    /// Gives this backend a watchdog, started when the first CLI that could outlive it is.
    pub fn set_watchdog(&self, spec: WatchdogSpec) {
        self.watchdog_keeper().spec = Some(spec);
    }

    /// Starts the watchdog unless it runs: before a CLI is spawned with the FIFO as its stdin
    /// (it never sees the end of its input), or adopted. A failure is logged: the CLIs then
    /// live as before, closed by a backend only.
    pub(super) fn ensure_watchdog(&self) {
        let mut k = self.watchdog_keeper();
        let Some(spec) = k.spec.clone() else {
            return;
        };
        if k.running
            .as_ref()
            .is_some_and(|h| h.exit.borrow().is_none())
        {
            return;
        }
        let owner = self.shared.owner;
        let mut args: Vec<OsString> = vec![
            "--watchdog".into(),
            "--owner".into(),
            format!("{}:{}", owner.0, owner.1).into(),
            "--state-dir".into(),
            spec.state_dir.clone().into(),
        ];
        if let Some(log) = &spec.log_file {
            args.extend(["--log-file".into(), log.clone().into()]);
        }
        // In the state directory, which it watches: it keeps no other directory busy.
        let cwd = if spec.state_dir.is_dir() {
            spec.state_dir.as_path()
        } else {
            Path::new("/")
        };
        match spawn_helper(&spec.program, "claude-tasks", &args, cwd) {
            Ok(h) => {
                log_info!("watchdog started (pid {})", h.pid);
                k.running = Some(h);
            }
            Err(e) => log_warn!("cannot start the watchdog: {e}"),
        }
    }

    fn watchdog_keeper(&self) -> std::sync::MutexGuard<'_, Keeper> {
        self.shared
            .watchdog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// How long the watchdog sleeps at most between two looks: a CLI whose turn goes on is looked
/// at this often, and no deadline is missed by more.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// The longest sleep before a deadline: the record is read again at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// The watchdog's process (`claude-tasks --watchdog`): waits for the end of stdin, then for
/// the deadlines of the tasks of `owner` (its backend's pid and start time) in `state_dir`.
pub fn run(state_dir: &Path, owner: (i32, u64)) -> Result<(), String> {
    wait_for_eof();
    let store = Store::unopened(state_dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let mut watched = mine(&store, owner);
    log_info!(
        "watchdog: backend {} is gone; {} of its CLIs to watch",
        owner.0,
        watched.len()
    );
    let grace = Config::default().cancel_grace;
    while !watched.is_empty() {
        let now = now_ms();
        let mut wake = now + MAX_SLEEP.as_millis() as u64;
        watched.retain(|key| match look(&store, key, owner, grace, &runtime) {
            Look::Done => false,
            Look::At(t) => {
                wake = wake.min(t);
                true
            }
            Look::Soon => {
                wake = wake.min(now + LOOK_EVERY.as_millis() as u64);
                true
            }
        });
        if watched.is_empty() {
            break;
        }
        let nap = wake.saturating_sub(now_ms()).max(1);
        std::thread::sleep(Duration::from_millis(nap));
    }
    log_info!("watchdog: nothing of backend {} left to watch", owner.0);
    Ok(())
}

/// Blocks until the backend's end of the pipe is closed (what it writes is ignored).
fn wait_for_eof() {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 256];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Ends the turn of a CLI that waits for an answer: the protocol's `interrupt` withdraws its
/// request and ends the turn with a `result` (in ~40 ms), so that the transcript says how the
/// run ended and the next backend settles it from there. Waits for that result at most
/// `grace`; the ladder that follows ends the CLI whatever happened.
fn interrupt_turn(rec: &TaskRecord, dir: &TaskDir, grace: Duration) {
    let sent = Stdin::open(dir, true)
        .and_then(|mut s| s.write_line(&crate::cli::control::interrupt("ct-int-watchdog")));
    if let Err(e) = sent {
        log_warn!("watchdog: task #{}: cannot interrupt its turn: {e}", rec.id);
        return;
    }
    let offset = rec.current_run().map_or(0, |r| r.transcript_offset);
    let deadline = std::time::Instant::now() + grace;
    while !ends_with_result(&dir.transcript(), offset) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The tasks whose record names a CLI of `owner`.
fn mine(store: &Store, owner: (i32, u64)) -> Vec<TaskKey> {
    let (recs, _warnings) = store.list(None);
    recs.into_iter()
        .filter(|r| {
            r.process
                .as_ref()
                .is_some_and(|p| (p.owner_pid, p.owner_start_time) == owner)
        })
        .map(|r| (r.cwd, r.id))
        .collect()
}

enum Look {
    /// Nothing more to do for it.
    Done,
    /// Look again at this time (ms since the epoch).
    At(u64),
    /// Look again soon.
    Soon,
}

/// One look at one task: its record and CLI as they are now, and the close when its time came.
fn look(
    store: &Store,
    key: &TaskKey,
    owner: (i32, u64),
    grace: Duration,
    runtime: &tokio::runtime::Runtime,
) -> Look {
    let (cwd, id) = (key.0.as_str(), key.1);
    let dir = store.task_dir(cwd, id);
    let rec = match store.read_record(cwd, id) {
        Ok(rec) => rec,
        Err(StoreError::NotFound { .. }) => return Look::Done,
        Err(e) => {
            log_warn!("watchdog: {e}");
            return Look::Soon;
        }
    };
    match decide(&rec, owner, &Facts::read(&rec, &dir)) {
        Watch::Leave(why) => {
            log_info!("watchdog: task #{id} in {cwd}: left alone ({why})");
            return Look::Done;
        }
        Watch::Wait => return Look::Soon,
        Watch::CloseAt(t, _) | Watch::InterruptAt(t, _) if t > now_ms() => return Look::At(t),
        Watch::CloseAt(..) | Watch::InterruptAt(..) => {}
    }
    // Its time came. A backend that holds the task's lock adopted it (or is about to): never
    // closed under it; its record soon names that backend, and the task is left then.
    let Some(lock) = try_lock(&dir) else {
        return Look::Soon;
    };
    // Everything again under the lock: no backend can adopt the task while it is closed.
    let mut rec = match store.read_record(cwd, id) {
        Ok(rec) => rec,
        Err(_) => return Look::Soon,
    };
    let (why, interrupt) = match decide(&rec, owner, &Facts::read(&rec, &dir)) {
        Watch::CloseAt(t, why) if t <= now_ms() => (why, false),
        Watch::InterruptAt(t, why) if t <= now_ms() => (why, true),
        Watch::Leave(_) => return Look::Done,
        Watch::CloseAt(t, _) | Watch::InterruptAt(t, _) => return Look::At(t),
        Watch::Wait => return Look::Soon,
    };
    let Some(info) = rec.process.clone() else {
        return Look::Done;
    };
    log_info!(
        "watchdog: task #{id} in {cwd}: closing its CLI (pid {}): {why}",
        info.pid
    );
    if interrupt {
        interrupt_turn(&rec, &dir, grace);
    }
    let gone = runtime.block_on(stop::end_idle_foreign(
        info.pid,
        info.start_time,
        &info.marker,
        grace,
    ));
    stop::kill_leftovers_of(info.pid, info.start_time, &info.marker);
    if !gone {
        log_warn!(
            "watchdog: task #{id}: its CLI (pid {}) or a process of it survived the ladder",
            info.pid
        );
    }
    if rec.live.is_some() {
        // As its backend would have written it, under the lock: the next backend finds the
        // task without a live CLI and resumes it cold. A running task's record is left to the
        // next backend, which settles the run from its transcript.
        rec.live = None;
        rec.process = None;
        if let Err(e) = store.write_record(&rec) {
            log_warn!("watchdog: {e}");
        }
    }
    drop(lock);
    Look::Done
}
