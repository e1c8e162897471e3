//! Stopping a CLI process with everything it started: the cancel ladder, and the sweep of its
//! leftovers once it has exited (Linux only). Every process is checked by `(pid, start time)`
//! right before it is signalled, so a reused pid is never hit.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tokio::sync::watch;

use crate::process::proctree;
use crate::process::reaper::{self, Exit};
use crate::process::spawn::Process;

/// How often the task's process tree is scanned again while waiting for the CLI to react to a
/// signal: a tool can fork new processes during the grace period.
const RESCAN_INTERVAL: Duration = Duration::from_millis(50);
/// Upper bound for killing the leftovers once the CLI is gone. SIGKILL cannot be blocked, so
/// this is only reached by processes stuck in uninterruptible sleep (`D`, e.g. a hung NFS read)
/// or by a tree that forks faster than we kill it.
const SWEEP_LIMIT: Duration = Duration::from_secs(2);
/// Poll interval for processes we cannot wait on (not our children, or already killed).
const POLL: Duration = Duration::from_millis(20);

impl Process {
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

    /// Ends a CLI that is idle (its last turn over, nothing queued): SIGTERM, to which an idle
    /// CLI answers by exiting within ~30 ms and writing nothing; then, if it is still there
    /// after `grace`, the whole ladder. Returns its exit.
    pub async fn end_idle(&self, grace: Duration) -> Exit {
        let mut rx = self.exit.clone();
        if let Some(e) = *rx.borrow() {
            return e;
        }
        let mut tracked = Tracked::default();
        reaper::signal_child(self.pid, Signal::SIGTERM);
        match self.wait_tracking(&mut rx, grace, &mut tracked).await {
            Some(e) => e,
            None => self.cancel(grace).await,
        }
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

/// [`Process::end_idle`] for a CLI that is not our child: SIGTERM, then the ladder after
/// `grace`. Returns true when it and its tree are gone.
pub async fn end_idle_foreign(pid: i32, start_time: u64, marker: &str, grace: Duration) -> bool {
    let mut tracked = Tracked::default();
    if !proctree::is_alive(pid, start_time) {
        return true;
    }
    signal_verified(pid, start_time, Signal::SIGTERM, false);
    if poll_gone(pid, start_time, grace, marker, &mut tracked).await {
        return true;
    }
    cancel_foreign(pid, start_time, marker, grace).await
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
