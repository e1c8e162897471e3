//! Spawning one Claude Code CLI process, and stopping it with everything it started (Linux only).
//!
//! The CLI is started:
//! - **without a shell** (argv as given), after resolving `argv[0]` on `PATH` ourselves so a
//!   missing or unusable program gives one clear error instead of a generic `ENOENT`;
//! - **in its own session** (`setsid`): a terminal signal or Neovim's process group never reaches
//!   it by accident, and `killpg(pid)` reaches exactly the CLI and the helpers it forked without
//!   `setsid` (its Bash tool calls start their own sessions and need separate handling);
//! - with **regular files** as stdin/stdout/stderr: the CLI drops the tail of its output when
//!   stdout is a pipe, and waits 3 s for more input when stdin is an open pipe (DESIGN.md §3);
//! - with a **marker** `CLAUDE_TASKS_TASK=<random hex>` in its environment, inherited by every tool
//!   process, so the task's processes can be found even after `setsid` and reparenting (see
//!   `proctree`).
//!
//! Exit statuses come from the process-wide reaper (`reaper`), never from `Child::wait`.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{access, AccessFlags, Pid};
use tokio::sync::watch;

use crate::process::proctree;
use crate::process::reaper::{self, Exit};

/// Name of the environment variable that marks every process of a task.
pub const MARKER_VAR: &str = "CLAUDE_TASKS_TASK";

/// How often the task's process tree is scanned again while waiting for the CLI to react to a
/// signal: a tool can fork new processes during the grace period.
const RESCAN_INTERVAL: Duration = Duration::from_millis(50);
/// Upper bound for killing the leftovers once the CLI is gone. SIGKILL cannot be blocked, so
/// this is only reached by processes stuck in uninterruptible sleep (`D`, e.g. a hung NFS read)
/// or by a tree that forks faster than we kill it.
const SWEEP_LIMIT: Duration = Duration::from_secs(2);
/// Poll interval for processes we cannot wait on (not our children, or already killed).
const POLL: Duration = Duration::from_millis(20);

/// What to run, where, and with which files.
#[derive(Debug, Clone, Default)]
pub struct SpawnConfig {
    /// Program and arguments; `argv[0]` is looked up on `PATH` unless it contains a `/` (a
    /// relative path is taken relative to `cwd`, as a shell started in `cwd` would).
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// A regular file, opened read-only (the prompt).
    pub stdin: PathBuf,
    /// Opened `O_APPEND | O_CREAT`, mode 0600: several runs of a task append to one transcript.
    pub stdout: PathBuf,
    /// Same as `stdout`.
    pub stderr: PathBuf,
    /// Variables removed from the inherited environment (before `env` is applied).
    pub env_remove: Vec<String>,
    /// Variables set for the child.
    pub env: Vec<(String, String)>,
}

/// Why a process could not be started. `Display` is one line meant for the user.
#[derive(Debug)]
pub enum SpawnError {
    NotFound {
        program: String,
    },
    NotExecutable {
        program: String,
    },
    /// A directory on the way to it may not be searched.
    NoAccess {
        program: String,
    },
    IsDirectory {
        program: String,
    },
    BadCwd {
        cwd: String,
        reason: String,
    },
    Io {
        what: String,
        err: std::io::Error,
    },
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NotFound { program } if program.contains('/') => {
                let name = Path::new(program)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| program.clone());
                write!(
                    f,
                    "{name} not found: '{program}' does not exist (set the `cmd` option)"
                )
            }
            SpawnError::NotFound { program } => write!(
                f,
                "{program} not found: '{program}' is not on PATH (set the `cmd` option)"
            ),
            SpawnError::NotExecutable { program } => {
                write!(
                    f,
                    "cannot run '{program}': permission denied (not executable)"
                )
            }
            SpawnError::NoAccess { program } => write!(
                f,
                "cannot run '{program}': permission denied (a directory on its path is not accessible)"
            ),
            SpawnError::IsDirectory { program } => {
                write!(f, "'{program}' is a directory, not a program")
            }
            SpawnError::BadCwd { cwd, reason } => write!(f, "cwd '{cwd}' {reason}"),
            SpawnError::Io { what, err } => write!(f, "{what}: {err}"),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpawnError::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// A running (or finished) CLI process started by us.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: i32,
    /// From `/proc/<pid>/stat`, read before the process could be reaped; store it with the pid
    /// to recognise the process later (re-adoption after a backend restart).
    pub start_time: u64,
    /// `CLAUDE_TASKS_TASK=<hex>`, the exact environment entry given to the child.
    pub marker: String,
    exit: watch::Receiver<Option<Exit>>,
}

impl Process {
    /// Starts `cfg.argv` (see the module docs for how). Also initialises the reaper.
    pub fn spawn(cfg: &SpawnConfig) -> Result<Process, SpawnError> {
        check_cwd(&cfg.cwd)?;
        let program = match cfg.argv.first() {
            Some(p) if !p.is_empty() => p,
            _ => {
                return Err(SpawnError::Io {
                    what: "no program to run (the `cmd` option is empty)".into(),
                    err: std::io::Error::from(std::io::ErrorKind::InvalidInput),
                })
            }
        };
        let resolved = resolve_program(program, &cfg.cwd, effective_path(cfg).as_deref())?;

        let stdin = File::open(&cfg.stdin).map_err(|err| SpawnError::Io {
            what: format!("cannot open the prompt file '{}'", cfg.stdin.display()),
            err,
        })?;
        let stdout = open_output(&cfg.stdout)?;
        let stderr = open_output(&cfg.stderr)?;

        let marker_value = random_hex();
        let marker = format!("{MARKER_VAR}={marker_value}");

        let mut cmd = Command::new(&resolved);
        cmd.args(&cfg.argv[1..])
            .current_dir(&cfg.cwd)
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        for k in &cfg.env_remove {
            cmd.env_remove(k);
        }
        for (k, v) in &cfg.env {
            cmd.env(k, v);
        }
        cmd.env(MARKER_VAR, &marker_value);
        // SAFETY: runs in the forked child before exec, where only async-signal-safe calls are
        // allowed; setsid(2), open/write/close(2), getpriority(2), sigaction(2) and
        // sigprocmask(2) are, and nothing here allocates or takes locks.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                // A new session is a new autogroup, which would compete with Neovim as an
                // equal whatever the process's own nice value (see `priority`).
                crate::process::priority::autogroup_inherits_nice();
                // Ignored dispositions and the signal mask survive exec, and std resets
                // neither (only SIGPIPE). The backend may have been started with SIGINT ignored
                // (a non-interactive shell does that to background jobs) or spawn from a thread
                // that blocks signals, and the cancel ladder relies on the CLI handling SIGINT
                // and SIGTERM.
                signal::signal(Signal::SIGINT, SigHandler::SigDfl).map_err(std::io::Error::from)?;
                signal::signal(Signal::SIGTERM, SigHandler::SigDfl)
                    .map_err(std::io::Error::from)?;
                signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                    .map_err(std::io::Error::from)?;
                Ok(())
            });
        }

        let (child, exit, start_time) = reaper::spawn_with(&mut cmd, proctree::start_time)
            .map_err(|err| spawn_io_error(program, err))?;
        let pid = child.id() as i32;
        // The Child handle is not needed (the reaper waits); dropping it leaves the process be.
        drop(child);
        Ok(Process {
            pid,
            // Only missing if /proc is not mounted: then nothing else here works either, and 0
            // never matches a real start time, so nothing is mistaken for this process.
            start_time: start_time.unwrap_or(0),
            marker,
            exit,
        })
    }

    /// The exit status, `None` while running.
    pub fn watch(&self) -> watch::Receiver<Option<Exit>> {
        self.exit.clone()
    }

    /// The exit, if it already happened.
    pub fn try_exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Waits for the CLI to exit (and be reaped). Leftover tool processes are not waited for.
    pub async fn wait(&self) -> Exit {
        reaper::wait_on(self.exit.clone()).await
    }

    /// Stops the CLI and every process of its task, and returns the CLI's exit:
    ///
    /// 1. collect the task's processes (parent links + marker) *before* signalling, since a
    ///    killed CLI orphans its tools and the parent links are lost;
    /// 2. SIGINT to the CLI: it stops its running tool, writes a `result` line, keeps the session
    ///    resumable, and exits within ~150 ms; wait up to `grace`;
    /// 3. SIGTERM, wait up to `grace` again;
    /// 4. SIGSTOP the CLI, scan once more, SIGKILL its process group;
    /// 5. SIGSTOP every remaining process of the task and rescan until the frozen tree yields
    ///    nothing new, then SIGKILL each with its process group (tool processes lead their own
    ///    groups); repeat until nothing is alive, bounded by ~2 s.
    ///
    /// While waiting, the tree is scanned again every 50 ms, so processes forked meanwhile are
    /// killed too. Every process is checked by `(pid, start time)` right before it is signalled,
    /// so a reused pid is never hit. Children of ours (the CLI, and tools adopted as subreaper)
    /// are reaped before this returns. After a clean sweep, one confirming pass follows 20 ms
    /// later, so a cancel costs at least that.
    ///
    /// Calling it after the CLI exited only kills the leftovers.
    pub async fn cancel(&self, grace: Duration) -> Exit {
        let mut rx = self.exit.clone();
        let mut tracked = Tracked::default();
        tracked.add(proctree::collect(
            &[(self.pid, self.start_time)],
            Some(&self.marker),
        ));

        let mut exit = *rx.borrow();
        for sig in [Signal::SIGINT, Signal::SIGTERM] {
            if exit.is_some() {
                break;
            }
            reaper::signal_child(self.pid, sig);
            exit = self.wait_tracking(&mut rx, grace, &mut tracked).await;
        }
        let exit = match exit {
            Some(e) => e,
            None => {
                // Stopped first: a stopped process cannot fork, so the scan below sees every
                // child it will ever have. A child forked after the last periodic scan and
                // started with a cleared environment would otherwise be orphaned by the
                // SIGKILL with nothing left linking it to the task.
                reaper::signal_child(self.pid, Signal::SIGSTOP);
                tracked.add(proctree::collect(
                    &[(self.pid, self.start_time)],
                    Some(&self.marker),
                ));
                // The CLI is a session leader, so its group id is its pid; the group holds the
                // helpers it started without setsid. SIGKILL also ends a stopped process.
                reaper::signal_child_group(self.pid, Signal::SIGKILL);
                loop {
                    // SIGKILL cannot be caught: this completes as soon as the kernel has torn
                    // the process down, unless it is stuck in uninterruptible sleep.
                    if let Some(e) = self
                        .wait_tracking(&mut rx, Duration::from_secs(1), &mut tracked)
                        .await
                    {
                        break e;
                    }
                }
            }
        };
        sweep(&mut tracked, &self.marker, None).await;
        exit
    }

    /// After the CLI exited: SIGKILLs every process still carrying the task's marker (and their
    /// descendants), each together with its process group, so a task never leaves background
    /// processes behind. Returns how many processes were signalled.
    ///
    /// Does not wait for them to die (they are reaped by the reaper when they were adopted by
    /// us); use [`Process::cancel`] for the full, waiting ladder. Meant for after the exit: if
    /// the CLI is still running, it and its own process group are left alone.
    pub fn kill_leftovers(&self) -> usize {
        kill_leftovers_of(self.pid, self.start_time, &self.marker)
    }

    /// Waits up to `dur` for the CLI's exit while adding newcomers of the tree to `tracked`.
    async fn wait_tracking(
        &self,
        rx: &mut watch::Receiver<Option<Exit>>,
        dur: Duration,
        tracked: &mut Tracked,
    ) -> Option<Exit> {
        let deadline = tokio::time::Instant::now() + dur;
        loop {
            let next = (tokio::time::Instant::now() + RESCAN_INTERVAL).min(deadline);
            // `wait_for`'s guard must not live across an await (the future must stay Send), so
            // the select only yields the value.
            let exited = tokio::select! {
                r = rx.wait_for(Option::is_some) => r.ok().and_then(|v| *v),
                _ = tokio::time::sleep_until(next) => None,
            };
            if exited.is_some() {
                return exited;
            }
            // Err from `wait_for` only if the sender was dropped, which happens only after
            // delivery; should it ever not, wait out the tick instead of spinning.
            tokio::time::sleep_until(next).await;
            // The root is given with its start time: once the CLI is reaped its pid may be
            // reused, and an unrelated process's children must not be adopted into the set.
            tracked.add(proctree::collect(
                &[(self.pid, self.start_time)],
                Some(&self.marker),
            ));
            if tokio::time::Instant::now() >= deadline {
                return *rx.borrow();
            }
        }
    }
}

/// [`Process::kill_leftovers`] for a CLI known only by its pid, start time and marker (a
/// re-adopted task): after it exits, nothing of its tree may stay behind.
pub fn kill_leftovers_of(pid: i32, start_time: u64, marker: &str) -> usize {
    let mut tracked = Tracked::default();
    let cli_alive = proctree::is_alive(pid, start_time);
    let spare: &[i32] = if cli_alive { &[pid] } else { &[] };
    freeze_and_kill(&mut tracked, marker, Some((pid, start_time)), spare)
}

/// The cancel ladder for a CLI that is not our child (started by another backend, or re-adopted
/// after a restart): its exit cannot be waited for, so it is detected by polling `/proc` every
/// 20 ms. Returns true when the CLI and every process of its tree are gone.
pub async fn cancel_foreign(pid: i32, start_time: u64, marker: &str, grace: Duration) -> bool {
    let mut tracked = Tracked::default();
    tracked.add(proctree::collect(&[(pid, start_time)], Some(marker)));
    let exclude = Some((pid, start_time));

    let mut gone = !proctree::is_alive(pid, start_time);
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        if gone {
            break;
        }
        signal_verified(pid, start_time, sig, false);
        gone = poll_gone(pid, start_time, grace, marker, &mut tracked).await;
    }
    if !gone {
        // Stop, rescan, kill: see `Process::cancel` for why.
        signal_verified(pid, start_time, Signal::SIGSTOP, false);
        let mut found = proctree::collect(&[(pid, start_time)], Some(marker));
        found.retain(|p| p.pid != pid);
        tracked.add(found);
        signal_verified(pid, start_time, Signal::SIGKILL, true);
        gone = poll_gone(pid, start_time, SWEEP_LIMIT, marker, &mut tracked).await;
    }
    tracked.0.remove(&pid);
    let swept = sweep(&mut tracked, marker, exclude).await;
    gone && swept
}

/// Polls until `(pid, start_time)` is no longer alive, up to `dur`, adding newcomers of its tree.
async fn poll_gone(
    pid: i32,
    start_time: u64,
    dur: Duration,
    marker: &str,
    tracked: &mut Tracked,
) -> bool {
    let deadline = Instant::now() + dur;
    let mut last_scan = Instant::now();
    loop {
        if !proctree::is_alive(pid, start_time) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        if last_scan.elapsed() >= RESCAN_INTERVAL {
            let mut found = proctree::collect(&[(pid, start_time)], Some(marker));
            found.retain(|p| p.pid != pid);
            tracked.add(found);
            last_scan = Instant::now();
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Signals a process that may not be our child, after checking it is still the same process.
/// The check and the signal are not atomic for a non-child (its parent may reap it in between,
/// and the pid be reused); pid reuse within that window needs the whole pid space to wrap in
/// microseconds, which is the accepted risk. With `group`, its process group is signalled too
/// when it leads one.
fn signal_verified(pid: i32, start_time: u64, sig: Signal, group: bool) {
    reaper::with_reaping_paused(|| {
        if let Some(p) = proctree::read(pid) {
            if p.start_time == start_time && !p.is_exited() {
                if group && p.pgid == pid {
                    let _ = signal::killpg(Pid::from_raw(pid), sig);
                }
                let _ = signal::kill(Pid::from_raw(pid), sig);
            }
        }
    });
}

/// `pid -> start_time` of every process known to belong to the task.
#[derive(Default)]
struct Tracked(HashMap<i32, u64>);

impl Tracked {
    fn add(&mut self, procs: Vec<proctree::Proc>) {
        for p in procs {
            // A pid already tracked with another start time was reused by a newer member of
            // the tree (it was found by marker or parent link): the newer one is what counts.
            self.0.insert(p.pid, p.start_time);
        }
    }
}

/// SIGKILLs every tracked process (re-collected: marker, and descendants of the tracked ones)
/// until nothing of the tree is alive, bounded by [`SWEEP_LIMIT`]; then waits (bounded) until
/// those that were our children have been reaped. Returns true when nothing survived.
async fn sweep(tracked: &mut Tracked, marker: &str, exclude: Option<(i32, u64)>) -> bool {
    let deadline = Instant::now() + SWEEP_LIMIT;
    // Clean passes in a row. One clean pass is not proof: a tool forked by the CLI just before
    // it died may be inside execve at that moment, its marker unreadable (see
    // `proctree::has_env_entry`) and its parent link to the CLI already replaced by one to us.
    // So a clean pass is confirmed by another one after a pause, and more are made (bounded)
    // while an orphan we adopted cannot be identified yet.
    let mut settled = 0;
    let clean = loop {
        if freeze_and_kill(tracked, marker, exclude, &[]) > 0 {
            settled = 0;
        } else {
            settled += 1;
            if settled >= 2 && (settled >= SETTLE_MAX || !unidentified_orphan()) {
                break true;
            }
        }
        if Instant::now() >= deadline {
            break settled > 0;
        }
        // SIGKILL is delivered asynchronously; look again once the kernel had time to act.
        tokio::time::sleep(POLL).await;
    };

    // A killed process is a zombie until its parent reaps it. Those reparented to us are reaped
    // by the reaper thread within moments; waiting for that here means the caller sees no
    // zombie of the task once cancel returns. Others belong to their parent (or init).
    let me = std::process::id() as i32;
    let deadline = Instant::now() + SWEEP_LIMIT;
    while Instant::now() < deadline {
        let pending = tracked.0.iter().any(|(&p, &s)| {
            matches!(proctree::read(p), Some(q) if q.start_time == s && q.is_exited() && q.ppid == me)
        });
        if !pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    clean
}

/// Upper bound on the clean passes [`sweep`] makes while an adopted orphan has no readable
/// environment (about `SETTLE_MAX * POLL`). Reached only when such an orphan genuinely has an
/// empty environment (`env -i`) and belongs to no task we are cancelling.
const SETTLE_MAX: usize = 10;

/// True when some child of ours that we did not spawn (an orphan adopted as subreaper) is alive
/// and its environment reads as empty or unreadable: it may be one of the task's processes
/// caught inside execve, whose marker becomes readable a moment later.
fn unidentified_orphan() -> bool {
    let me = std::process::id() as i32;
    proctree::list().into_iter().any(|p| {
        p.ppid == me
            && !p.is_exited()
            && !reaper::is_spawned_child(p.pid)
            && proctree::read_environ(p.pid).is_none_or(|e| e.is_empty())
    })
}

/// How many stop-and-rescan rounds [`freeze_and_kill`] does before killing anyway. Each round
/// can only find processes forked before the previous round's SIGSTOP landed, so a tree
/// converges in about as many rounds as it is deep.
const FREEZE_ROUNDS: usize = 16;

/// One pass of the final sweep: adds the task's processes to `tracked` (marker, and
/// descendants of every tracked process), SIGSTOPs them and scans again until no newcomer
/// appears, then SIGKILLs every one still alive, each with its process group. Returns how many
/// were alive (and signalled); 0 means nothing of the task is left.
///
/// Stopping first closes a race the kill alone has: a process forked between a scan and the
/// kill of its parent is orphaned, and if it was started with a cleared environment (no marker)
/// nothing links it to the task any more. A stopped process cannot fork, and SIGSTOP cannot be
/// caught or ignored, so once a scan of the stopped tree finds nothing new, it is complete.
///
/// `exclude` (the CLI) is never signalled nor tracked; groups in `spare` are never signalled.
fn freeze_and_kill(
    tracked: &mut Tracked,
    marker: &str,
    exclude: Option<(i32, u64)>,
    spare: &[i32],
) -> usize {
    let mut stopped: HashSet<(i32, u64)> = HashSet::new();
    let mut alive: Vec<(i32, u64)> = Vec::new();
    for _ in 0..FREEZE_ROUNDS {
        let roots: Vec<(i32, u64)> = tracked.0.iter().map(|(&p, &s)| (p, s)).collect();
        tracked.add(proctree::collect(&roots, Some(marker)));
        if let Some((p, s)) = exclude {
            if tracked.0.get(&p) == Some(&s) {
                tracked.0.remove(&p);
            }
        }
        alive = tracked
            .0
            .iter()
            .map(|(&p, &s)| (p, s))
            .filter(|&(p, s)| proctree::is_alive(p, s))
            .collect();
        let fresh: Vec<(i32, u64)> = alive
            .iter()
            .copied()
            .filter(|k| !stopped.contains(k))
            .collect();
        if fresh.is_empty() {
            break;
        }
        signal_verified_batch(&fresh, Signal::SIGSTOP, spare);
        stopped.extend(fresh);
    }
    signal_verified_batch(&alive, Signal::SIGKILL, spare)
}

/// Sends `sig` to each `(pid, start_time)` that is still that process, and to its process
/// group. Tool processes run in their own sessions and lead their own groups, so the group
/// signal reaches their whole pipeline, including members that lost their parent link; the pid
/// signal covers a process that left its group. Our own group and the groups in `spare` are
/// never signalled. Returns how many processes were signalled.
fn signal_verified_batch(procs: &[(i32, u64)], sig: Signal, spare: &[i32]) -> usize {
    let me = std::process::id() as i32;
    let my_pgid = nix::unistd::getpgrp().as_raw();
    // While reaping is paused, a child of ours that dies cannot be reaped, so its pid cannot be
    // reused between the start-time check and the signal.
    reaper::with_reaping_paused(|| {
        let mut n = 0;
        for &(pid, start) in procs {
            if pid == me || pid <= 1 {
                continue;
            }
            let Some(p) = proctree::read(pid) else {
                continue;
            };
            if p.start_time != start || p.is_exited() {
                continue;
            }
            if p.pgid > 1 && p.pgid != my_pgid && !spare.contains(&p.pgid) {
                let _ = signal::killpg(Pid::from_raw(p.pgid), sig);
            }
            let _ = signal::kill(Pid::from_raw(pid), sig);
            n += 1;
        }
        n
    })
}

fn check_cwd(cwd: &Path) -> Result<(), SpawnError> {
    let bad = |reason: &str| SpawnError::BadCwd {
        cwd: cwd.display().to_string(),
        reason: reason.to_string(),
    };
    match std::fs::metadata(cwd) {
        Ok(m) if !m.is_dir() => return Err(bad("is not a directory")),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(bad("does not exist")),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(bad("does not exist (a parent is not a directory)"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(bad("is not accessible (permission denied)"))
        }
        Err(e) => return Err(bad(&format!("cannot be used: {e}"))),
    }
    // chdir needs search (x) permission; the CLI also lists and reads the project (r).
    if access(cwd, AccessFlags::R_OK | AccessFlags::X_OK).is_err() {
        return Err(bad("is not accessible (permission denied)"));
    }
    Ok(())
}

/// The `PATH` the child will see: ours, unless the config removes or overrides it.
fn effective_path(cfg: &SpawnConfig) -> Option<OsString> {
    if let Some((_, v)) = cfg.env.iter().rev().find(|(k, _)| k == "PATH") {
        return Some(OsString::from(v));
    }
    if cfg.env_remove.iter().any(|k| k == "PATH") {
        return None;
    }
    std::env::var_os("PATH")
}

/// Resolves `program` like `execvp` would, but reporting why it failed. Relative paths (with a
/// `/`) and empty `PATH` entries (meaning the current directory) are taken relative to `cwd`.
fn resolve_program(
    program: &str,
    cwd: &Path,
    path: Option<&std::ffi::OsStr>,
) -> Result<PathBuf, SpawnError> {
    if program.contains('/') {
        let p = cwd.join(program);
        return match check_executable(&p) {
            Candidate::Ok => Ok(p),
            Candidate::Missing => Err(SpawnError::NotFound {
                program: program.to_string(),
            }),
            Candidate::Directory => Err(SpawnError::IsDirectory {
                program: program.to_string(),
            }),
            Candidate::NotExecutable => Err(SpawnError::NotExecutable {
                program: program.to_string(),
            }),
            Candidate::NoAccess => Err(SpawnError::NoAccess {
                program: program.to_string(),
            }),
        };
    }
    // POSIX leaves an unset PATH implementation-defined; this is glibc's default.
    let default_path = OsString::from("/usr/local/bin:/usr/bin:/bin");
    let path = path.unwrap_or(&default_path);
    let mut not_executable: Option<PathBuf> = None;
    let mut directory: Option<PathBuf> = None;
    for dir in std::env::split_paths(path) {
        let dir = if dir.as_os_str().is_empty() {
            cwd.to_path_buf()
        } else {
            cwd.join(dir)
        };
        let candidate = dir.join(program);
        match check_executable(&candidate) {
            Candidate::Ok => return Ok(candidate),
            Candidate::Missing => {}
            // execvp keeps searching past these, and reports EACCES only if nothing better
            // is found later on PATH.
            Candidate::NotExecutable | Candidate::NoAccess => {
                not_executable.get_or_insert(candidate);
            }
            Candidate::Directory => {
                directory.get_or_insert(candidate);
            }
        }
    }
    if let Some(p) = not_executable {
        return Err(SpawnError::NotExecutable {
            program: p.display().to_string(),
        });
    }
    if let Some(p) = directory {
        return Err(SpawnError::IsDirectory {
            program: p.display().to_string(),
        });
    }
    Err(SpawnError::NotFound {
        program: program.to_string(),
    })
}

enum Candidate {
    Ok,
    Missing,
    Directory,
    NotExecutable,
    NoAccess,
}

fn check_executable(p: &Path) -> Candidate {
    match std::fs::metadata(p) {
        // "Does not exist" would send the user looking for a file that is there.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Candidate::NoAccess,
        Err(_) => Candidate::Missing,
        Ok(m) if m.is_dir() => Candidate::Directory,
        // access(X_OK) asks the kernel with our real credentials; for root it still requires
        // at least one execute bit. The mode check guards the rare filesystem where access
        // says yes to root regardless.
        Ok(m) if !m.is_file() || m.permissions().mode() & 0o111 == 0 => Candidate::NotExecutable,
        Ok(_) if access(p, AccessFlags::X_OK).is_err() => Candidate::NotExecutable,
        Ok(_) => Candidate::Ok,
    }
}

fn open_output(path: &Path) -> Result<File, SpawnError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| SpawnError::Io {
            what: format!("cannot open '{}' for writing", path.display()),
            err,
        })
}

/// Maps an error from fork/exec (reported by std through its CLOEXEC pipe) to a clear message.
/// The program was checked just before, so these are rarer causes: a script whose interpreter
/// is missing (ENOENT), a file that is not an executable format (ENOEXEC), a race with
/// something changing the file, or setsid failing.
fn spawn_io_error(program: &str, err: std::io::Error) -> SpawnError {
    match err.raw_os_error().map(Errno::from_raw) {
        Some(Errno::EACCES) => SpawnError::NotExecutable {
            program: program.to_string(),
        },
        Some(Errno::ENOENT) => SpawnError::Io {
            what: format!("cannot run '{program}' (missing file or script interpreter)"),
            err,
        },
        Some(Errno::ENOEXEC) => SpawnError::Io {
            what: format!("cannot run '{program}': not an executable format"),
            err,
        },
        _ => SpawnError::Io {
            what: format!("cannot start '{program}'"),
            err,
        },
    }
}

/// 64 random bits as hex, for the marker. Uniqueness is all that matters (two tasks with one
/// marker would be cancelled together), not unpredictability.
fn random_hex() -> String {
    use std::io::Read;
    let mut buf = [0u8; 8];
    let ok = File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !ok {
        // No /dev/urandom (odd container): time, pid and a counter are unique enough here.
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let x = nanos
            ^ ((std::process::id() as u64) << 32)
            ^ COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        buf = x.to_le_bytes();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
