//! A run's end: its record finished from what the transcript, the watcher and the CLI's stderr
//! say, with what the run changed (recorded now, when its last result came: a live CLI stays),
//! its own cost out of the CLI's running sums; then its CLI kept alive and idle for the next
//! follow-up, or closed.

use std::sync::Arc;

use super::live::{Cli, RunEnd};
use super::permissions::watch::lock;
use super::record::{apply_result, finish_run, outcome};
use super::{stderr, Supervisor, TaskKey};
use crate::process::reaper::Exit;
use crate::store::{Store, TaskDir};
use crate::stream_json::summary::{summarize, RunSummary};
use crate::task::{now_ms, Live, RunChanges, Status, TaskRecord};
use crate::{log_info, log_warn};

impl Supervisor {
    /// After a run's wait: its record finished from what the transcript and the watcher say,
    /// then its CLI kept for the next follow-up (idle, `keep_alive_ms` > 0) or closed. Shared by
    /// the runs we start and those we re-adopt.
    pub(super) async fn end_run(
        &self,
        key: &TaskKey,
        n: u32,
        offset: u64,
        cli: &Arc<Cli>,
        end: RunEnd,
    ) {
        if !matches!(end, RunEnd::Idle) {
            // Everything the CLI wrote is read before the record says how the run ended.
            cli.stop_watching().await;
            cli.kill_leftovers();
        }
        let keep = matches!(end, RunEnd::Idle) && self.keeps_idle(key);
        let dir = self.shared.store.task_dir(&key.0, key.1);
        let (summary, cancelled) = self.run_ended(key, &dir, offset).await;
        let tally = lock(&cli.control).tally.clone();
        let exit = match end {
            // Idle, it would exit as its last result says when its input ends.
            RunEnd::Idle => summary
                .result
                .as_ref()
                .map(|r| Exit::Code(i32::from(r.is_error))),
            RunEnd::Exited(exit) | RunEnd::Cancelled(exit) => exit,
        };
        let (mut status, mut error) = outcome(&summary, exit, cancelled);
        let interrupted = !cancelled && tally.ended_by_interrupt;
        if interrupted {
            // The user stopped the turn; the task goes on.
            (status, error) = (Status::Cancelled, None);
        }
        // Without a result line, the CLI's stderr is the only word on why it failed.
        let stderr = if status == Status::Failed && summary.result.is_none() {
            self.stderr_tail(key, &dir).await
        } else {
            Vec::new()
        };
        let error = stderr::explain(error, &stderr);
        // The run's end, when its result came (a live CLI stays, idle), not when a process
        // exits: the next run's changes are its own. The record's run, for one we adopted.
        let run = self
            .state()
            .tasks
            .get(key)
            .and_then(|e| e.record.borrow().current_run().cloned());
        let changed = self.end_changes(key, run.as_ref()).await;
        let live = keep.then(|| {
            let since = now_ms();
            let keep_alive = self.state().config.keep_alive.as_millis() as u64;
            Live {
                since_ms: since,
                until_ms: since + keep_alive,
            }
        });
        let info = cli.info(self.shared.owner);
        let rec = self
            .update(key, |r| {
                if let Some(res) = &summary.result {
                    apply_result(r, res, (tally.results > 0).then_some(tally.turns));
                }
                set_changes(r, changed);
                if status == Status::Cancelled && !interrupted {
                    r.cancel_requested = true;
                }
                if let Some(run) = r.runs.last_mut() {
                    // A cancel interrupts too, but then the task ends: no "interrupted" run.
                    run.interrupted = !cancelled && (tally.interrupted || interrupted);
                }
                finish_run(r, status, exit, error);
                if let Some(run) = r.current_run_mut() {
                    run.stderr = stderr;
                }
                if let Some(l) = &live {
                    r.live = Some(l.clone());
                    r.process = Some(info);
                }
            })
            .await;
        if let Some(rec) = &rec {
            log_info!(
                "task #{} run {n} ended: {}{}",
                key.1,
                rec.status.as_str(),
                if live.is_some() {
                    " (its CLI stays, idle)"
                } else {
                    ""
                }
            );
        }
        let mut rec = rec;
        match (&live, end) {
            // Not kept: the editor began to quit after `keep` was decided.
            (Some(l), _) if !self.keep_idle(key, cli.clone(), l) => {
                rec = self.close_kept(key, cli.clone()).await.or(rec);
            }
            (Some(_), _) => {}
            (None, RunEnd::Idle) => {
                let grace = self.state().config.cancel_grace;
                cli.close(grace).await;
                cli.stop_watching().await;
            }
            _ => {}
        }
        if let Some(rec) = rec {
            self.run_finished(&rec).await;
            self.emit(status.as_str(), &rec);
        }
    }

    /// Whether a run's idle CLI stays for the next follow-up: `keep_alive_ms` and `max_idle`
    /// allow it, the task was not cancelled, the editor does not quit.
    fn keeps_idle(&self, key: &TaskKey) -> bool {
        let st = self.state();
        let cancelled = st
            .tasks
            .get(key)
            .is_none_or(|e| e.record.borrow().cancel_requested);
        !st.shutting_down && !cancelled && !st.config.keep_alive.is_zero() && st.config.max_idle > 0
    }

    /// An idle CLI that no run took after all: kept again, or closed.
    pub(super) async fn keep_or_close(&self, key: &TaskKey, cli: Arc<Cli>, keep: bool) {
        if keep && self.keeps_idle(key) {
            if let Some(live) = self
                .state()
                .tasks
                .get(key)
                .and_then(|e| e.record.borrow().live.clone())
            {
                if self.keep_idle(key, cli.clone(), &live) {
                    return;
                }
            }
        }
        self.close_kept(key, cli).await;
    }

    /// Closes an idle CLI that is not kept, and says so in the record.
    async fn close_kept(&self, key: &TaskKey, cli: Arc<Cli>) -> Option<TaskRecord> {
        let grace = self.state().config.cancel_grace;
        cli.close(grace).await;
        cli.stop_watching().await;
        self.update(key, |r| {
            r.live = None;
            r.process = None;
        })
        .await
    }

    /// After a run's process is gone: what its part of the transcript says, and whether a
    /// cancel was asked for (here, or by another backend through the cancel-request file).
    pub(super) async fn run_ended(
        &self,
        key: &TaskKey,
        dir: &TaskDir,
        offset: u64,
    ) -> (RunSummary, bool) {
        let path = dir.transcript();
        let summary = tokio::task::spawn_blocking(move || summarize(&path, offset))
            .await
            .unwrap_or_default();
        let cancelled = self
            .state()
            .tasks
            .get(key)
            .is_some_and(|e| e.record.borrow().cancel_requested)
            || dir.cancel_request().exists();
        (summary, cancelled)
    }

    /// The last lines of what the current run wrote on stderr.
    async fn stderr_tail(&self, key: &TaskKey, dir: &TaskDir) -> Vec<String> {
        let from = self
            .state()
            .tasks
            .get(key)
            .and_then(|e| e.record.borrow().current_run().map(|r| r.stderr_offset))
            .unwrap_or(0);
        let path = dir.stderr();
        let read = tokio::task::spawn_blocking(move || {
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let cut = len.saturating_sub(from) > stderr::TAIL_BYTES;
            Store::read_tail(&path, from, stderr::TAIL_BYTES).map(|b| (b, cut))
        })
        .await;
        match read {
            Ok(Ok((bytes, cut))) => stderr::last_lines(&bytes, cut),
            Ok(Err(e)) => {
                log_warn!("task #{}: {e}", key.1);
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }
}

/// The current run's changes, as `end_changes` found them.
pub(super) fn set_changes(
    r: &mut crate::task::TaskRecord,
    changed: Option<(RunChanges, Option<Vec<crate::task::FileChanged>>)>,
) {
    if let (Some((ch, files)), Some(run)) = (changed, r.current_run_mut()) {
        run.changes = Some(ch);
        run.files_changed = files;
    }
}
