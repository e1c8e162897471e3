//! The backend's end: `on_exit` applied when Neovim closes the channel, everything left running
//! when the editor simply went away.

use super::{Supervisor, TaskKey};
use crate::log_info;
use crate::store::DetachedTask;
use crate::task::{now_ms, Status};
use crate::tasks::config::OnExit;

impl Supervisor {
    /// Neovim died without closing the channel cleanly (killed, crashed): leave every task
    /// running, as with `on_exit = 'detach'`, so the next editor re-adopts them and nothing is
    /// lost.
    pub fn abandon(&self) {
        self.forget_unsaved();
        let mut st = self.state();
        st.shutting_down = true;
        crate::log_info!(
            "the editor went away: leaving {} task(s) running",
            st.running
        );
        drop(st);
        self.note_detached();
    }

    /// Names the tasks left running in the store's `detached.json`, for the next editor's
    /// statusline (store/detached.rs).
    fn note_detached(&self) {
        let left: Vec<DetachedTask> = {
            let st = self.state();
            st.tasks
                .values()
                .filter(|e| e.active && !e.foreign)
                .filter_map(|e| {
                    let rec = e.record.borrow();
                    let p = rec.process.as_ref()?;
                    (rec.status == Status::Running).then(|| DetachedTask {
                        cwd: rec.cwd.clone(),
                        id: rec.id,
                        name: rec.name.clone(),
                        created_at_ms: rec.created_at_ms,
                        started_at_ms: rec.started_at_ms,
                        pid: p.pid,
                        start_time: p.start_time,
                    })
                })
                .collect()
        };
        if let Err(e) = self.shared.store.add_detached(&left) {
            crate::log_warn!("cannot note the tasks left running: {e}");
        }
    }

    /// Neovim closed the channel: apply `on_exit` and wait until every task this backend runs is
    /// settled (cancelled and reaped, or left running when detaching).
    pub async fn shutdown(&self) {
        // This editor's unsaved files no longer protect anything.
        self.forget_unsaved();
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
            log_info!(
                "shutdown: leaving running tasks running and idle CLIs alive (on_exit = 'detach')"
            );
            self.note_detached();
            return;
        }
        // Idle CLIs end cleanly (nothing runs in them); running tasks are cancelled below, and
        // their CLIs are not kept once they end.
        self.close_all_idle("the editor quits (on_exit = 'cancel')")
            .await;
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

/// The longest grace period of the cancel ladder while the editor quits (see `shutdown`).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(500);
