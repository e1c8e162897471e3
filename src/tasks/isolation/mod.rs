//! Worktree tasks in the supervisor (`isolation = "worktree"`): the worktree planned at `start`
//! and made right after it, off the request, from what the user sees at that moment; the
//! directory every run's CLI starts in; what `resume`, the queue, retention and `dispose` do
//! differently for them. The requests on a task's worktree (state, diff, apply, discard) are in
//! `review`. The git work is `worktree/`'s and always runs on the blocking pool.
//!
//! Invariants: a worktree task's worktree and branch stay until `discard` or `dispose`
//! (retention never removes such a task); while `apply`, `discard` or `dispose` works on a
//! worktree, no run of its task can start (`Busy`, checked by `resume` under the state lock).

mod review;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

pub use review::{Applied, Diff, FileAt, Status as WorktreeStatus};

use super::record::finish_run;
use super::{Entry, Supervisor, TaskKey};
use crate::changes::Refs;
use crate::git::{Error, Git, Repo};
use crate::store::Store;
use crate::task::{Run, Status, TaskRecord, TaskWorktree};
use crate::worktree::{self, Spec, Worktree};
use crate::{log_info, log_warn};

/// How a task runs, as `start` asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Isolation {
    /// In the project's own files.
    #[default]
    None,
    /// In a git worktree of its own, on the branch `<branch_prefix><id>`.
    Worktree { branch_prefix: String },
}

/// The repository a worktree task will be made from, found before any id is allocated so that
/// a directory outside git is refused with nothing left behind.
pub(super) struct Planned {
    repo: Repo,
    branch_prefix: String,
}

/// Tasks whose worktree an `apply`, `discard` or `dispose` is working on (process-wide: keys
/// name a project directory, so supervisors of one process never share one).
fn busy_set() -> MutexGuard<'static, HashSet<TaskKey>> {
    static BUSY: OnceLock<Mutex<HashSet<TaskKey>>> = OnceLock::new();
    BUSY.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A task marked busy until dropped.
pub(super) struct Busy(TaskKey);

impl Busy {
    /// Marks `key`; `None` when another request works on it.
    fn mark(key: &TaskKey) -> Option<Busy> {
        busy_set().insert(key.clone()).then(|| Busy(key.clone()))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        busy_set().remove(&self.0);
    }
}

/// Whether a request works on the task's worktree now. `resume` checks it under the state lock,
/// and `Busy` is marked under the state lock only after checking the task is not active.
pub(super) fn worktree_busy(key: &TaskKey) -> bool {
    busy_set().contains(key)
}

pub(super) fn git() -> Git {
    Git::new()
}

pub(super) fn refs(cwd: &str) -> Refs {
    Refs::new(&Store::project_key(cwd))
}

fn user_error(e: Error) -> String {
    match e {
        Error::NotAWorkTree { .. } | Error::Bare { .. } => {
            format!("cannot run a task in a worktree: {e}")
        }
        other => other.to_string(),
    }
}

/// The library's view of a record's worktree; an error while it is not made.
pub(super) fn made(rec: &TaskRecord) -> Result<(&TaskWorktree, Worktree), String> {
    let id = rec.id;
    let wt = rec
        .worktree
        .as_ref()
        .ok_or_else(|| format!("task #{id} did not run in a worktree"))?;
    if wt.discarded_at_ms.is_some() {
        return Err(format!(
            "task #{id}'s worktree was discarded (branch {})",
            wt.branch
        ));
    }
    let base = wt.base.clone().ok_or_else(|| match rec.status {
        Status::Queued => format!("task #{id}'s worktree is still being made"),
        _ => format!("task #{id}'s worktree was never made"),
    })?;
    Ok((
        wt,
        Worktree {
            path: PathBuf::from(&wt.path),
            branch: wt.branch.clone(),
            base,
            head: wt.head.clone(),
        },
    ))
}

impl Supervisor {
    /// Before a worktree task gets an id: its directory must be in a git work tree (not a bare
    /// repository) and the branch prefix must make valid branch names. Quick (two git commands).
    pub(super) async fn plan_worktree(
        &self,
        cwd: &str,
        isolation: &Isolation,
    ) -> Result<Option<Planned>, String> {
        let Isolation::Worktree { branch_prefix } = isolation else {
            return Ok(None);
        };
        let (cwd, prefix) = (PathBuf::from(cwd), branch_prefix.clone());
        tokio::task::spawn_blocking(move || {
            let repo = Repo::discover(&git(), &cwd).map_err(user_error)?;
            // A prefix is valid or not whatever the id after it (digits).
            worktree::free_branch(&repo, &format!("{prefix}1")).map_err(|e| e.to_string())?;
            Ok(Some(Planned {
                repo,
                branch_prefix: prefix,
            }))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The worktree of task `id`, as its record says before it is made: the directory (in the
    /// task's directory), the branch, and where the CLI will run (the project's place in it).
    pub(super) async fn worktree_record(
        &self,
        cwd: &str,
        id: u64,
        plan: Planned,
    ) -> Result<TaskWorktree, String> {
        let store = self.shared.store.clone();
        let cwd = cwd.to_owned();
        tokio::task::spawn_blocking(move || {
            let dir = store.task_dir(&cwd, id);
            let dir = std::fs::canonicalize(dir.path())
                .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
            let path = dir.join(format!("claude-tasks-{id}"));
            let branch = worktree::free_branch(&plan.repo, &format!("{}{id}", plan.branch_prefix))
                .map_err(|e| e.to_string())?;
            let rel = inside(&cwd, &plan.repo.top);
            // `join("")` would end the path with a slash.
            let run_dir = if rel.as_os_str().is_empty() {
                path.clone()
            } else {
                path.join(rel)
            };
            Ok(TaskWorktree {
                cwd: run_dir.to_string_lossy().into_owned(),
                path: path.to_string_lossy().into_owned(),
                branch,
                base: None,
                head: None,
                applied: None,
                discarded_at_ms: None,
            })
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Makes the worktree of a task just started, then queues the task; the task fails (with
    /// the reason in its record) when the worktree cannot be made.
    pub(super) fn make_worktree(&self, key: TaskKey) {
        let me = self.clone();
        tokio::spawn(async move { me.make_then_queue(key).await });
    }

    async fn make_then_queue(self, key: TaskKey) {
        let Some(rec) = self.state().tasks.get(&key).map(Entry::rec) else {
            return;
        };
        let Some(plan) = rec.worktree.clone() else {
            return;
        };
        let store = self.shared.store.clone();
        let (cwd, id) = key.clone();
        let made = tokio::task::spawn_blocking(move || {
            let refs = refs(&cwd);
            let wt = worktree::create(&Spec {
                git: &git(),
                cwd: Path::new(&cwd),
                path: Path::new(&plan.path),
                branch: &plan.branch,
                index_dir: &store.git_index(&cwd),
                refs: &refs,
                id,
            })
            .map_err(user_error)?;
            // The project's directory may hold only ignored files (not in the base): the CLI
            // still starts at the same place in the worktree.
            let run_dir = Path::new(&plan.cwd);
            if !run_dir.is_dir() {
                std::fs::create_dir_all(run_dir)
                    .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
            }
            Ok::<_, String>(wt)
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match made {
            Ok(wt) => {
                log_info!(
                    "task #{id} in {}: worktree {} on branch {}",
                    key.0,
                    wt.path.display(),
                    wt.branch
                );
                let rec = self
                    .update(&key, |r| {
                        if let Some(w) = r.worktree.as_mut() {
                            w.path = wt.path.to_string_lossy().into_owned();
                            w.branch = wt.branch.clone();
                            w.base = Some(wt.base.clone());
                            w.head = wt.head.clone();
                        }
                    })
                    .await;
                if let Some(rec) = rec {
                    self.emit("updated", &rec);
                }
                let queued = {
                    let mut st = self.state();
                    if !st.shutting_down {
                        st.queue.push_back(key.clone());
                    }
                    !st.shutting_down
                };
                if queued {
                    self.schedule();
                } else {
                    self.end_unqueued(&key, None).await;
                }
            }
            Err(e) => {
                log_warn!("task #{id} in {}: {e}", key.0);
                self.end_unqueued(&key, Some(e)).await;
            }
        }
    }

    /// A worktree task that never reached the queue: failed (its worktree could not be made),
    /// or cancelled / interrupted (the backend is quitting).
    async fn end_unqueued(&self, key: &TaskKey, error: Option<String>) {
        let prompt = self
            .state()
            .tasks
            .get(key)
            .and_then(|e| e.prompts.front().cloned())
            .unwrap_or_default();
        let rec = self
            .update(key, |r| {
                let status = match (&error, r.cancel_requested) {
                    (Some(_), _) => Status::Failed,
                    (None, true) => Status::Cancelled,
                    (None, false) => Status::Interrupted,
                };
                let why = error.clone().or_else(|| {
                    (status == Status::Interrupted)
                        .then(|| "the editor quit before it started".to_string())
                });
                // A run, so that the buffer's footer says why.
                r.runs.push(Run::starting(1, &prompt, 0, 0));
                finish_run(r, status, None, why);
            })
            .await;
        {
            let mut st = self.state();
            if let Some(e) = st.tasks.get_mut(key) {
                e.active = false;
                e.cancel = None;
                e.prompts.clear();
                e.lock = None;
            }
        }
        if let Some(rec) = rec {
            self.emit(rec.status.as_str(), &rec);
        }
        self.shared.idle.notify_waiters();
    }

    /// Where the CLI of `key`'s next run starts: its worktree's directory, or the project.
    pub(super) fn run_cwd(&self, key: &TaskKey) -> PathBuf {
        let st = self.state();
        let rec = st
            .tasks
            .get(key)
            .map(|e| e.record.borrow().run_cwd().to_owned());
        PathBuf::from(rec.unwrap_or_else(|| key.0.clone()))
    }

    /// A follow-up runs in the worktree (Claude's sessions are keyed by the directory): refused
    /// when it is gone, with what can still be done.
    pub(super) fn check_follow_up(&self, key: &TaskKey) -> Result<(), String> {
        let Some(rec) = self.state().tasks.get(key).map(Entry::rec) else {
            return Ok(());
        };
        if rec.worktree.is_none() || rec.status == Status::Queued {
            return Ok(());
        }
        let (wt, _) = made(&rec).map_err(|e| format!("resume: {e}: start a new task"))?;
        if !Path::new(&wt.cwd).is_dir() {
            return Err(format!(
                "resume: task #{}'s worktree is gone ({}): its branch {} can still be applied or \
                 discarded, not followed up",
                rec.id, wt.path, wt.branch
            ));
        }
        Ok(())
    }

    /// Marks the task's worktree busy if the task is finished; the error says why not.
    pub(super) fn claim_worktree(
        &self,
        key: &TaskKey,
        what: &str,
    ) -> Result<(TaskRecord, Busy), String> {
        let st = self.state();
        let (cwd, id) = (&key.0, key.1);
        let entry = st.tasks.get(key).ok_or_else(|| super::no_task(cwd, id))?;
        let rec = entry.rec();
        if entry.active || !rec.status.is_finished() {
            return Err(format!(
                "{what}: task #{id} is {}; cancel it first, or wait until it has ended",
                rec.status.as_str()
            ));
        }
        let busy = Busy::mark(key).ok_or_else(|| {
            format!("{what}: task #{id}'s worktree is busy (an apply or a discard); try again")
        })?;
        Ok((rec, busy))
    }

    /// For `dispose`: the task's worktree and branch go first. Refused while its changes are
    /// not all applied, unless `force`; with `force` a worktree that cannot be removed is only
    /// logged. Returns the mark that keeps follow-ups out until the task is gone.
    pub(super) fn dispose_worktree(
        &self,
        key: &TaskKey,
        force: bool,
    ) -> Result<Option<Busy>, String> {
        {
            let st = self.state();
            let live = st
                .tasks
                .get(key)
                .is_some_and(|e| e.record.borrow().has_live_worktree());
            if !live {
                return Ok(None);
            }
        }
        let (rec, busy) = self.claim_worktree(key, "dispose")?;
        let id = rec.id;
        if rec.worktree.as_ref().is_some_and(|w| w.base.is_none()) {
            // Never made (its creation failed): nothing of it can be left but a stray branch.
            self.discard_now(&rec).ok();
            return Ok(Some(busy));
        }
        if !force {
            let pending = self.unapplied(&rec).map_err(|e| {
                format!("dispose: cannot check task #{id}'s worktree ({e}); dispose with force to delete the task anyway")
            })?;
            if !pending.is_empty() {
                return Err(format!(
                    "dispose: task #{id}'s worktree has changes that were not applied ({}); apply \
                     or discard them first, or dispose with force",
                    review::name_files(&pending)
                ));
            }
        }
        match self.discard_now(&rec) {
            Ok(()) => {}
            Err(e) if force => log_warn!("dispose of task #{id}: its worktree: {e}"),
            Err(e) => {
                return Err(format!(
                    "dispose: cannot remove task #{id}'s worktree: {e}; dispose with force to \
                     delete the task anyway"
                ))
            }
        }
        Ok(Some(busy))
    }
}

/// `cwd`'s place under `top` (both may be spelled through symbolic links).
fn inside(cwd: &str, top: &Path) -> PathBuf {
    let cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| PathBuf::from(cwd));
    let top = std::fs::canonicalize(top).unwrap_or_else(|_| top.to_path_buf());
    cwd.strip_prefix(&top)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Why `what` cannot work on `rec`'s worktree: there is none, or it was discarded.
pub(super) fn claim_worktree_error(rec: &TaskRecord, what: &str) -> String {
    match &rec.worktree {
        Some(w) => format!(
            "{what}: task #{}'s worktree was already discarded (branch {})",
            rec.id, w.branch
        ),
        None => format!("{what}: task #{} did not run in a worktree", rec.id),
    }
}

/// Whether retention may dispose of `rec`: never a task whose worktree is still there.
pub(super) fn prunable(rec: &TaskRecord) -> bool {
    !rec.has_live_worktree()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_s_place_in_its_repository() {
        let root = crate::testutil::temp_path("isolation-inside");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("repo/sub dir/x")).unwrap();
        std::os::unix::fs::symlink(root.join("repo"), root.join("link")).unwrap();
        let top = root.join("repo");
        let sub = root.join("link/sub dir/x");
        assert_eq!(
            inside(sub.to_str().unwrap(), &top),
            PathBuf::from("sub dir/x")
        );
        assert_eq!(inside(top.to_str().unwrap(), &top), PathBuf::new());
        // Outside (it cannot be, but a record may say anything): the worktree's top.
        assert_eq!(inside("/", &top), PathBuf::new());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_worktree_task_is_kept_by_retention_until_discarded() {
        let mut rec = crate::testutil::finished_record();
        assert!(prunable(&rec));
        rec.worktree = Some(TaskWorktree {
            path: "/s/1/claude-tasks-1".into(),
            branch: "claude-tasks/1".into(),
            base: Some("b".into()),
            head: None,
            cwd: "/s/1/claude-tasks-1".into(),
            applied: None,
            discarded_at_ms: None,
        });
        assert!(!prunable(&rec));
        assert_eq!(rec.run_cwd(), "/s/1/claude-tasks-1");
        rec.worktree.as_mut().unwrap().discarded_at_ms = Some(1);
        assert!(prunable(&rec));
    }
}
