//! The queue and its policies: which waiting task starts when, the driver that owns a task
//! while its runs go one after the other, and the retention of finished tasks.

use super::{Supervisor, TaskKey};
use crate::log_warn;
use crate::task::{Status, TaskRecord};
use crate::tasks::config::Concurrency;

impl Supervisor {
    /// Starts queued tasks while the policies allow, in FIFO order.
    pub(super) fn schedule(&self) {
        let mut launch = Vec::new();
        {
            let mut st = self.state();
            if st.shutting_down {
                return;
            }
            let mut i = 0;
            while i < st.queue.len() && st.running < st.config.max_running {
                let key = st.queue[i].clone();
                // Worktree tasks are counted apart (they share no files with anyone).
                let isolated = |e: &super::Entry| e.record.borrow().worktree.is_some();
                let busy_dir = st.config.concurrency != Concurrency::Parallel
                    && !st.tasks.get(&key).is_some_and(isolated)
                    && st.tasks.iter().any(|(k, e)| {
                        k.0 == key.0
                            && k != &key
                            && e.active
                            && !isolated(e)
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
    pub(super) async fn drive(self, key: TaskKey) {
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
                // A task whose CLI idles stays ours, for the follow-up that takes it.
                if e.idle.is_none() {
                    e.lock = None;
                }
                e.rec()
            })
        };
        if let Some(rec) = rec {
            self.prune(&rec.cwd);
        }
        self.shared.idle.notify_waiters();
        self.schedule();
    }

    /// Keeps at most `keep` finished tasks of a project; the oldest go first, running and queued
    /// ones never.
    pub(super) fn prune(&self, cwd: &str) {
        let keep = self.state().config.keep;
        let (recs, _) = self.shared.store.list(Some(cwd));
        let finished: Vec<&TaskRecord> = recs.iter().filter(|r| r.status.is_finished()).collect();
        // A task whose CLI is kept alive is in use: its CLI closes first.
        // A task whose worktree is still there is kept whatever its age: only apply, discard
        // or dispose end a worktree.
        for old in finished.iter().skip(keep) {
            let key = (old.cwd.clone(), old.id);
            let busy = old.live.is_some()
                || self
                    .state()
                    .tasks
                    .get(&key)
                    .is_some_and(|e| e.active || e.idle.is_some());
            if busy || !super::isolation::prunable(old) {
                continue;
            }
            self.state().tasks.remove(&key);
            match self.shared.store.remove(&old.cwd, old.id) {
                Ok(()) => {
                    super::export::remove_export(&old.cwd, old.id);
                    let (me, cwd, id) = (self.clone(), old.cwd.clone(), old.id);
                    tokio::task::spawn_blocking(move || me.dispose_changes(&cwd, id));
                    self.emit("disposed", old);
                }
                Err(e) => log_warn!("retention: {e}"),
            }
        }
    }
}
