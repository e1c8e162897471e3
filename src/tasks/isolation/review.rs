//! The requests on a worktree task's worktree: what is left of it and what it changed
//! (`status`), the diff against its base with a quickfix list (`diff`), a file at its base or
//! result (`file_at`), bringing the changes back (`apply`), and removing it (`discard`). They
//! block (git): the RPC layer runs them on the blocking pool.
//!
//! A later `apply` brings only what changed since the last one (the applied result is kept
//! under the task's ref `applied`), so following up on a task and applying again never
//! conflicts with the task's own earlier changes.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;

use super::{claim_worktree_error, git, made, refs};
use crate::changes::{self, Action, FileOutcome, Labels, Snapshot, Status as FileStatus};
use crate::git::objects::{update_refs, RefChange};
use crate::git::Repo;
use crate::task::{now_ms, TaskRecord, WorktreeApplied};
use crate::tasks::{Entry, Supervisor, TaskKey};
use crate::worktree::{self, ApplyMode, Outcome, Worktree};

/// One changed file, as the answers list it.
#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    pub status: FileStatus,
    pub added: u64,
    pub removed: u64,
    pub binary: bool,
}

/// A quickfix entry with an absolute file name.
#[derive(Debug, Clone, Serialize)]
pub struct QfEntry {
    pub filename: String,
    /// Relative to the repository's top level.
    pub path: String,
    pub lnum: u32,
    pub text: String,
}

/// What is left of a task's worktree and what it changed.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub id: u64,
    pub path: String,
    pub branch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    pub discarded: bool,
    /// Its directory, its entry in git, its lock, its branch.
    pub dir: bool,
    pub registered: bool,
    pub locked: bool,
    pub branch_exists: bool,
    /// What is missing, in words (a user's `git worktree prune`, a lost directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Changed since the base.
    pub files: Vec<FileSummary>,
    /// Changed since the last apply (everything when never applied).
    pub unapplied: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<WorktreeApplied>,
}

/// The worktree's changes against its base.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub id: u64,
    pub branch: String,
    pub base: String,
    pub result: String,
    /// The unified diff (a file that is not UTF-8 shows lossily).
    pub patch: String,
    pub truncated: bool,
    pub files: Vec<FileSummary>,
    /// One entry per hunk, in the worktree's files (the user's when the worktree is gone).
    pub quickfix: Vec<QfEntry>,
    /// Where the quickfix entries point: the worktree, or the user's top level.
    pub root: String,
    /// The user's top level.
    pub top: String,
    /// The worktree's directory is gone: only the branch's commits are shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// Which side of a worktree's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAt {
    Base,
    Result,
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub id: u64,
    pub files: Vec<FileOutcome>,
    pub conflicts: Vec<QfEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_committed: Option<String>,
    pub clean: bool,
    pub top: String,
    /// Only what changed since the last apply was brought.
    pub since_last_apply: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// Applies run one at a time: two merges into one file at once would lose one of them.
fn apply_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn summary(f: &changes::FileChange) -> FileSummary {
    FileSummary {
        path: f.path.clone(),
        old_path: f.old_path.clone(),
        status: f.status,
        added: f.added,
        removed: f.removed,
        binary: f.binary,
    }
}

/// `a, b, c and 4 more`.
pub(super) fn name_files(paths: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut s = paths
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN {
        s.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    s
}

impl Supervisor {
    fn loaded(&self, cwd: &str, id: u64) -> Result<(TaskKey, TaskRecord), String> {
        let key = (cwd.to_owned(), id);
        self.ensure_loaded(&key)?;
        let rec = self
            .state()
            .tasks
            .get(&key)
            .map(Entry::rec)
            .ok_or_else(|| super::super::no_task(cwd, id))?;
        Ok((key, rec))
    }

    /// Applies `f` to the record of a task that is not running and writes it, from a request
    /// (on the blocking pool), then tells Lua.
    fn modify_record(&self, key: &TaskKey, f: impl FnOnce(&mut TaskRecord)) -> Option<TaskRecord> {
        let (rev, rec) = {
            let st = self.state();
            let entry = st.tasks.get(key)?;
            entry.record.send_modify(f);
            (self.next_revision(), entry.rec())
        };
        self.persist_revision(key, rev, &rec);
        self.emit("updated", &rec);
        Some(rec)
    }

    /// The worktree's present state as the task's result (see `worktree::result`).
    fn outcome(&self, rec: &TaskRecord, wt: &Worktree) -> Result<Outcome, String> {
        let index = self
            .shared
            .store
            .task_dir(&rec.cwd, rec.id)
            .worktree_index();
        worktree::result(
            &git(),
            Path::new(&rec.cwd),
            wt,
            &index,
            &refs(&rec.cwd),
            rec.id,
        )
        .map_err(|e| e.to_string())
    }

    /// The outcome from the last apply on (`true`), or from the base when never applied.
    fn since_last_apply(&self, rec: &TaskRecord, mut outcome: Outcome) -> (Outcome, bool) {
        let applied = rec
            .worktree
            .as_ref()
            .and_then(|w| w.applied.as_ref())
            .map(|a| a.result.clone());
        let Some(applied) = applied else {
            return (outcome, false);
        };
        let repo = outcome.base.repo(&git());
        let kept = repo
            .resolve(&refs(&rec.cwd).named(rec.id, "applied"))
            .ok()
            .flatten();
        if kept.as_deref() == Some(applied.as_str()) {
            outcome.base.commit = applied;
            (outcome, true)
        } else {
            // Its ref is gone (removed by hand): everything since the base, merged again, is
            // harmless for what is already there.
            (outcome, false)
        }
    }

    /// The files changed in the worktree since the last apply (since the base when never
    /// applied).
    pub(super) fn unapplied(&self, rec: &TaskRecord) -> Result<Vec<String>, String> {
        let (_, wt) = made(rec)?;
        let outcome = self.outcome(rec, &wt)?;
        let (outcome, _) = self.since_last_apply(rec, outcome);
        let changes = worktree::changes(&git(), &outcome).map_err(|e| e.to_string())?;
        Ok(changes.files.iter().map(|f| f.path.clone()).collect())
    }

    /// What is left of the task's worktree and what it changed.
    pub fn worktree_status(&self, cwd: &str, id: u64) -> Result<Status, String> {
        let (_, rec) = self.loaded(cwd, id)?;
        let Some(w) = rec.worktree.clone() else {
            return Err(format!("task #{id} did not run in a worktree"));
        };
        let mut status = Status {
            id,
            path: w.path.clone(),
            branch: w.branch.clone(),
            base: w.base.clone(),
            discarded: w.discarded_at_ms.is_some(),
            dir: false,
            registered: false,
            locked: false,
            branch_exists: false,
            problem: None,
            files: Vec::new(),
            unapplied: Vec::new(),
            applied: w.applied.clone(),
        };
        let Ok((_, wt)) = made(&rec) else {
            return Ok(status);
        };
        let st = worktree::state(&git(), Path::new(cwd), &wt).map_err(|e| e.to_string())?;
        status.problem = st.problem(&wt);
        (status.dir, status.registered, status.locked) = (st.dir, st.registered, st.locked);
        status.branch_exists = st.branch;
        if !st.dir && !st.branch {
            return Ok(status);
        }
        let outcome = self.outcome(&rec, &wt)?;
        let all = worktree::changes(&git(), &outcome).map_err(|e| e.to_string())?;
        status.files = all.files.iter().map(summary).collect();
        let (outcome, since) = self.since_last_apply(&rec, outcome);
        status.unapplied = if since {
            let changes = worktree::changes(&git(), &outcome).map_err(|e| e.to_string())?;
            changes.files.iter().map(|f| f.path.clone()).collect()
        } else {
            all.files.iter().map(|f| f.path.clone()).collect()
        };
        Ok(status)
    }

    /// The worktree's changes against its base, for the review.
    pub fn worktree_diff(&self, cwd: &str, id: u64) -> Result<Diff, String> {
        let (_, rec) = self.loaded(cwd, id)?;
        let (_, wt) = made(&rec).map_err(|e| format!("diff: {e}"))?;
        let outcome = self.outcome(&rec, &wt).map_err(|e| format!("diff: {e}"))?;
        let changes = worktree::changes(&git(), &outcome).map_err(|e| format!("diff: {e}"))?;
        let top = outcome.base.work_tree.clone();
        let root = if outcome.missing.is_some() {
            top.clone()
        } else {
            wt.path.clone()
        };
        let quickfix = changes
            .quickfix()
            .into_iter()
            .map(|q| QfEntry {
                filename: root.join(&q.path).to_string_lossy().into_owned(),
                path: q.path,
                lnum: q.line,
                text: q.text,
            })
            .collect();
        Ok(Diff {
            id,
            branch: wt.branch.clone(),
            base: outcome.base.commit.clone(),
            result: outcome.result.commit.clone(),
            patch: String::from_utf8_lossy(&changes.patch).into_owned(),
            truncated: changes.truncated,
            files: changes.files.iter().map(summary).collect(),
            quickfix,
            root: root.to_string_lossy().into_owned(),
            top: top.to_string_lossy().into_owned(),
            missing: outcome.missing,
        })
    }

    /// `path` (relative to the repository's top level) at the worktree's base or as the task
    /// left it; `None` when it does not exist there.
    pub fn worktree_file(
        &self,
        cwd: &str,
        id: u64,
        path: &str,
        at: FileAt,
    ) -> Result<Option<Vec<u8>>, String> {
        let (_, rec) = self.loaded(cwd, id)?;
        let (_, wt) = made(&rec).map_err(|e| format!("file: {e}"))?;
        let repo = Repo::discover(&git(), Path::new(cwd)).map_err(|e| format!("file: {e}"))?;
        let commit = match at {
            FileAt::Base => wt.base.clone(),
            FileAt::Result => {
                self.outcome(&rec, &wt)
                    .map_err(|e| format!("file: {e}"))?
                    .result
                    .commit
            }
        };
        let snap = Snapshot {
            method: changes::Method::Git,
            commit,
            git_dir: repo.git_dir,
            work_tree: repo.top,
        };
        changes::content(&git(), &snap, Path::new(path)).map_err(|e| format!("file: {e}"))
    }

    /// Brings the worktree's changes (since the last apply) into the user's files by three-way
    /// merge; with `message`, also as one commit on the user's current branch.
    pub fn apply_worktree(
        &self,
        cwd: &str,
        id: u64,
        message: Option<String>,
    ) -> Result<Applied, String> {
        let (key, _) = self.loaded(cwd, id)?;
        let (rec, _busy) = self.claim_worktree(&key, "apply")?;
        let (w, wt) = made(&rec).map_err(|e| format!("apply: {e}"))?;
        let _one_at_a_time = apply_lock();
        let outcome = self.outcome(&rec, &wt).map_err(|e| format!("apply: {e}"))?;
        let (outcome, since_last_apply) = self.since_last_apply(&rec, outcome);
        let mode = match message {
            Some(m) if m.trim().is_empty() => default_message(&rec, &w.branch),
            Some(m) => ApplyMode::Commit { message: m },
            None => ApplyMode::Files,
        };
        let labels = Labels {
            ours: "yours".into(),
            base: format!("base of task #{id}"),
            theirs: format!("task #{id}"),
        };
        let done = worktree::apply(&git(), Path::new(cwd), &outcome, &mode, &labels)
            .map_err(|e| format!("apply: {e}"))?;
        let report = &done.report;
        let top = outcome.base.work_tree.clone();
        // A file that could not be written is not applied: the next apply tries it again.
        let failed = report.files.iter().any(|f| f.action == Action::Failed);
        if !failed {
            let repo = outcome.base.repo(&git());
            let name = refs(cwd).named(id, "applied");
            let kept = update_refs(
                &repo,
                &[RefChange::Set {
                    name: &name,
                    new: &outcome.result.commit,
                }],
            );
            if let Err(e) = kept {
                crate::log_warn!("task #{id}: cannot keep the applied result: {e}");
            }
            let applied = WorktreeApplied {
                at_ms: now_ms(),
                result: outcome.result.commit.clone(),
                commit: done.commit.clone(),
                files: report.written().count() as u32,
                conflicts: report.conflicts.len() as u32,
            };
            self.modify_record(&key, |r| {
                if let Some(w) = r.worktree.as_mut() {
                    w.applied = Some(applied);
                }
            });
        }
        Ok(Applied {
            id,
            files: report.files.clone(),
            conflicts: report
                .conflicts
                .iter()
                .map(|c| QfEntry {
                    filename: top.join(&c.path).to_string_lossy().into_owned(),
                    path: c.path.clone(),
                    lnum: c.line,
                    text: c.reason.clone(),
                })
                .collect(),
            commit: done.commit.clone(),
            not_committed: done.not_committed.clone(),
            clean: report.is_clean(),
            top: top.to_string_lossy().into_owned(),
            since_last_apply,
            missing: outcome.missing,
        })
    }

    /// Removes the task's worktree and branch; the record stays, saying so.
    pub fn discard_worktree(&self, cwd: &str, id: u64) -> Result<TaskRecord, String> {
        let (key, _) = self.loaded(cwd, id)?;
        let (rec, _busy) = self.claim_worktree(&key, "discard")?;
        if !rec.has_live_worktree() {
            return Err(claim_worktree_error(&rec, "discard"));
        }
        // A CLI kept alive in the worktree would answer a follow-up from nowhere.
        self.drop_idle(&key);
        self.discard_now(&rec)
            .map_err(|e| format!("discard: {e}"))?;
        self.modify_record(&key, |r| {
            if let Some(w) = r.worktree.as_mut() {
                w.discarded_at_ms = Some(now_ms());
            }
        })
        .ok_or_else(|| super::super::no_task(cwd, id))
    }

    /// The git work of a discard: the worktree (its directory, even with changes), its branch,
    /// the task's refs.
    pub(super) fn discard_now(&self, rec: &TaskRecord) -> Result<(), String> {
        let Some(w) = rec.worktree.as_ref() else {
            return Ok(());
        };
        let wt = Worktree {
            path: PathBuf::from(&w.path),
            branch: w.branch.clone(),
            base: w.base.clone().unwrap_or_default(),
            head: w.head.clone(),
        };
        let refs = refs(&rec.cwd);
        worktree::discard(&git(), Path::new(&rec.cwd), &wt, &refs, rec.id)
            .map_err(|e| e.to_string())?;
        changes::dispose(&git(), Path::new(&rec.cwd), &refs, rec.id).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The commit message of `apply = "commit"`: the task's name, and where it came from.
fn default_message(rec: &TaskRecord, branch: &str) -> ApplyMode {
    let title = crate::text::title_of(&rec.name, 72);
    ApplyMode::Commit {
        message: format!(
            "{title}\n\nMade by claude-tasks task #{} on branch {branch}.\n",
            rec.id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_up_to_three() {
        let paths: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        assert_eq!(name_files(&paths[..1]), "a");
        assert_eq!(name_files(&paths[..3]), "a, b, c");
        assert_eq!(name_files(&paths), "a, b, c and 2 more");
    }
}
