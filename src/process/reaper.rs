//! The backend reaps every child process itself (Linux only).
//!
//! The backend is a *child subreaper* (`prctl(PR_SET_CHILD_SUBREAPER)`): when a process below it
//! dies, its orphaned children are reparented to the backend instead of init. The CLI runs every
//! Bash tool call in a new session, and a cancelled or crashed CLI leaves those tool processes
//! behind; as subreaper we get them back, can still find and kill them, and must reap them so no
//! zombie stays behind.
//!
//! Reaping is done by one loop calling `waitpid(-1, WNOHANG)` on every `SIGCHLD`. That is also why
//! `tokio::process` (and `std::process::Child::wait`) must not be used anywhere in the backend:
//! both wait for specific pids, and whichever of the two waits first gets the status, the other
//! one gets `ECHILD`. Start children with [`spawn`] (or `spawn::Process::spawn`) and learn their
//! exit through [`watch`] / [`wait`].
//!
//! Registration cannot miss an exit: [`spawn`] forks while holding the lock the reaping loop
//! takes, and registers the new pid before releasing it. Exits of pids nobody registered
//! (adopted orphans, or a pid watched only later) are kept in a bounded "recent" table so a
//! [`watch`] that comes late still sees the status.
//!
//! The loop runs on a dedicated thread with its own small tokio runtime rather than as a task on
//! the caller's runtime: a task dies with the runtime it was spawned on, and a process can have
//! several runtimes over its life (tests create one per test). `tokio::signal` keeps its signal
//! handler and the notification state process-global, so the listener works from any runtime.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::watch;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It called `exit(code)`.
    Code(i32),
    /// A signal killed it (the signal number, e.g. 9 for SIGKILL).
    Signal(i32),
}

impl Exit {
    /// The exit code, `None` when a signal killed the process.
    pub fn code(self) -> Option<i32> {
        match self {
            Exit::Code(c) => Some(c),
            Exit::Signal(_) => None,
        }
    }

    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }

    /// The shell convention: `128 + signal` for a signal death, so one integer can be stored.
    pub fn as_shell_code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => match Signal::try_from(s) {
                Ok(sig) => write!(f, "killed by signal {s} ({})", sig.as_str()),
                Err(_) => write!(f, "killed by signal {s}"),
            },
        }
    }
}

/// How many exit statuses of unwatched pids are remembered. Adopted orphans land here too and
/// are never claimed, so the table must be bounded; a pid spawned by us is registered before it
/// can exit, so eviction never loses a status someone waits for.
const RECENT_CAP: usize = 4096;

/// A fallback sweep in case a `SIGCHLD` is ever lost. Signals of one kind coalesce while
/// pending, which the drain loop already handles; this only guards against the unforeseen
/// (e.g. a library briefly resetting the disposition) and costs one syscall per second.
const FALLBACK_SWEEP: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    /// Pids someone waits for, with the channel their exit goes to.
    watchers: HashMap<i32, watch::Sender<Option<Exit>>>,
    /// Pids started through [`spawn`] and not reaped yet: signalling them is safe (an unreaped
    /// pid, even a zombie, cannot be reused).
    children: HashSet<i32>,
    /// Recently reaped statuses, `pid -> (exit, seq)`, bounded by [`RECENT_CAP`].
    recent: HashMap<i32, (Exit, u64)>,
    recent_order: VecDeque<(i32, u64)>,
    seq: u64,
}

impl State {
    fn remember(&mut self, pid: i32, exit: Exit) {
        self.seq += 1;
        self.recent.insert(pid, (exit, self.seq));
        self.recent_order.push_back((pid, self.seq));
        while self.recent_order.len() > RECENT_CAP {
            if let Some((old, seq)) = self.recent_order.pop_front() {
                // The pid may have been reaped again since (reused): only drop the entry this
                // queue slot stands for.
                if matches!(self.recent.get(&old), Some(&(_, s)) if s == seq) {
                    self.recent.remove(&old);
                }
            }
        }
    }

    fn deliver(&mut self, pid: i32, exit: Exit) {
        self.children.remove(&pid);
        self.remember(pid, exit);
        if let Some(tx) = self.watchers.remove(&pid) {
            // Receivers keep the last value after the sender is dropped.
            tx.send_replace(Some(exit));
        }
    }

    /// Reaps every child that has exited. Called with the lock held, so that a concurrent
    /// [`spawn`] (which forks under the same lock) registers its pid before we can reap it.
    fn reap_all(&mut self) {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => self.deliver(pid.as_raw(), Exit::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _core)) => {
                    self.deliver(pid.as_raw(), Exit::Signal(sig as i32))
                }
                Ok(WaitStatus::StillAlive) => break,
                // Stop/continue/ptrace events are not requested; nothing to record.
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                // ECHILD: no children at all. Anything else cannot be fixed by retrying.
                Err(_) => break,
            }
        }
    }
}

static STATE: LazyLock<Mutex<State>> = LazyLock::new(|| Mutex::new(State::default()));
static STARTED: Mutex<bool> = Mutex::new(false);

/// The state lock. A panic while holding it cannot leave the tables half-updated in a way that
/// matters (each update is a few map operations), so poisoning is ignored rather than spread.
fn lock() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes this process a child subreaper and starts the reaping loop. Idempotent and cheap after
/// the first call; safe from any thread, inside or outside a tokio runtime.
///
/// Errors when the kernel refuses the subreaper flag (not Linux ≥ 3.4) or the `SIGCHLD` listener
/// cannot be installed.
pub fn init() -> std::io::Result<()> {
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    if *started {
        return Ok(());
    }
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)?;

    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    std::thread::Builder::new()
        .name("claude-tasks-reaper".into())
        .spawn(move || run(ready_tx))?;
    // Wait until the SIGCHLD handler is installed: a child spawned after `init` returns must
    // not be able to exit unnoticed.
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(std::io::Error::other(
                "the reaper thread died while starting",
            ))
        }
    }
    *started = true;
    Ok(())
}

fn run(ready: std::sync::mpsc::Sender<std::io::Result<()>>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sigchld = match signal(SignalKind::child()) {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let mut tick = tokio::time::interval(FALLBACK_SWEEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Children that exited before the handler was installed produced no signal we can
            // see: the first iteration sweeps them (the interval's first tick is immediate).
            tokio::select! {
                _ = sigchld.recv() => {}
                _ = tick.tick() => {}
            }
            lock().reap_all();
        }
    });
}

/// Registers interest in `pid`'s exit. The receiver holds `Some(exit)` once the reaper has
/// reaped it (immediately, if that already happened and is still remembered). Any number of
/// watchers per pid is fine.
///
/// Only children of this process (ours, or orphans adopted as subreaper) are ever reaped here:
/// watching any other pid never completes.
pub fn watch(pid: i32) -> watch::Receiver<Option<Exit>> {
    let mut st = lock();
    if let Some(tx) = st.watchers.get(&pid) {
        return tx.subscribe();
    }
    if let Some(&(exit, _)) = st.recent.get(&pid) {
        // The remembered status may belong to an earlier process with this pid. If the pid is
        // now an unreaped child of ours (an adopted orphan that reused it), it is stale; with
        // the lock held the reaper cannot reap it while we look.
        let me = std::process::id() as i32;
        let reused = matches!(crate::process::proctree::read(pid), Some(p) if p.ppid == me);
        if !reused {
            return watch::channel(Some(exit)).1;
        }
        st.recent.remove(&pid);
    }
    let (tx, rx) = watch::channel(None);
    st.watchers.insert(pid, tx);
    rx
}

/// Waits until `pid` has exited and been reaped; see [`watch`] for which pids complete.
pub async fn wait(pid: i32) -> Exit {
    wait_on(watch(pid)).await
}

/// Waits for the exit carried by a receiver from [`watch`].
pub async fn wait_on(mut rx: watch::Receiver<Option<Exit>>) -> Exit {
    // `wait_for` checks the current value first, so an exit delivered before this call (and a
    // sender already dropped after delivering) still completes at once.
    if let Ok(v) = rx.wait_for(Option::is_some).await {
        if let Some(exit) = *v {
            return exit;
        }
    }
    // A sender is only dropped after it delivered `Some` (see `State::deliver`), so this is
    // unreachable; hanging is the honest answer for "no status will ever come".
    std::future::pending().await
}

/// Spawns `cmd` so that its exit is delivered through [`watch`]. Calls [`init`] first.
///
/// The returned `Child` must not be waited on (`wait`, `try_wait`, `output` would race the
/// reaper and fail with `ECHILD`); its pipes, if any, can be used normally. Dropping it does not
/// affect the process.
pub fn spawn(
    cmd: &mut std::process::Command,
) -> std::io::Result<(std::process::Child, watch::Receiver<Option<Exit>>)> {
    let (child, rx, ()) = spawn_with(cmd, |_| ())?;
    Ok((child, rx))
}

/// [`spawn`], running `f(pid)` while the child cannot have been reaped yet (so `/proc/<pid>`
/// still exists, as a zombie at worst): used to read its start time race-free.
pub(crate) fn spawn_with<R>(
    cmd: &mut std::process::Command,
    f: impl FnOnce(i32) -> R,
) -> std::io::Result<(std::process::Child, watch::Receiver<Option<Exit>>, R)> {
    init()?;
    // Holding the lock across fork+exec: the reaping loop cannot run `waitpid(-1)` until the
    // pid is registered, so even an immediate exit is delivered to our watcher. (When exec
    // fails, std reaps the failed child itself with `waitpid(pid)`; the lock keeps us from
    // stealing that status too.) The forked child never touches this lock.
    let mut st = lock();
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    // Any remembered status for this pid belongs to an earlier process that had the same pid.
    st.recent.remove(&pid);
    st.children.insert(pid);
    // Someone may already watch this pid number (a late `watch` of a foreign pid): they asked
    // for "pid N", so they share this process's exit rather than wait forever.
    let rx = match st.watchers.get(&pid) {
        Some(tx) => {
            tx.send_replace(None);
            tx.subscribe()
        }
        None => {
            let (tx, rx) = watch::channel(None);
            st.watchers.insert(pid, tx);
            rx
        }
    };
    let r = f(pid);
    Ok((child, rx, r))
}

/// True when `pid` was started by [`spawn`] and has not been reaped yet (as opposed to an
/// orphan adopted as subreaper, or a process that is not our child at all).
pub fn is_spawned_child(pid: i32) -> bool {
    lock().children.contains(&pid)
}

/// Sends `sig` to `pid` only if it is a child started by [`spawn`] that has not been reaped.
/// Between the check and the `kill` the reaper cannot reap it (same lock), so the pid cannot
/// have been reused by an unrelated process. Returns whether the signal was sent.
pub fn signal_child(pid: i32, sig: Signal) -> bool {
    let st = lock();
    st.children.contains(&pid) && signal::kill(Pid::from_raw(pid), sig).is_ok()
}

/// Sends `sig` to the process group `pid` leads, and to `pid` itself, if `pid` is an unreaped
/// child started by [`spawn`] (a process started in its own session leads a group with its own
/// pid). Returns whether `pid` itself was signalled.
pub fn signal_child_group(pid: i32, sig: Signal) -> bool {
    let st = lock();
    if !st.children.contains(&pid) {
        return false;
    }
    let _ = signal::killpg(Pid::from_raw(pid), sig);
    signal::kill(Pid::from_raw(pid), sig).is_ok()
}

/// Runs `f` while no child can be reaped. A process that is our child (started by us or adopted
/// as subreaper) and is found alive or as a zombie inside `f` keeps its pid until `f` returns,
/// so "check start time, then kill" is race-free for it.
pub(crate) fn with_reaping_paused<R>(f: impl FnOnce() -> R) -> R {
    let _st = lock();
    f()
}
