//! What each run changed (issue 22), for the supervisor: a run's start and end recorded through
//! `changes` on the blocking pool, the record's `changes` and `files_changed`, the files the
//! editor saved while the run ran ("also edited by you"), outside git each file kept before the
//! run's edit of it (from the edit tools' `PreToolUse` hook, which the edit waits for), and the
//! review's requests: a run's diff, a file before the run, revert, and the refs that go with a
//! disposed task.
//!
//! A run's start is captured before its CLI has the prompt (a warm follow-up's commit is made
//! while the prompt goes out) and recorded before the run is watched; its end before its record says it ended,
//! so the footer and the `completed` event already carry `files_changed`. Nothing here ever
//! runs git on a runtime worker: every call into `changes` goes through `spawn_blocking`, or is
//! made by a request, which the RPC layer runs on the blocking pool.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::{Supervisor, TaskKey};
use crate::changes::diff::{self, FileChange};
use crate::changes::{self, Changes, Labels, Place, Refs, Report, RunSnapshots, RunStart};
use crate::git::{Git, Repo};
use crate::log_warn;
use crate::store::Store;
use crate::task::{now_ms, FileChanged, Revert, Run, RunChanges, TaskRecord, MAX_FILES_CHANGED};

/// Files saved from the editor that one run remembers: enough for any real session; past it
/// the attribution is lost for the rest, never the memory.
const MAX_SAVED: usize = 10_000;

/// The runs of this backend whose changes are being recorded, by task.
#[derive(Default)]
pub(super) struct Recording {
    runs: Mutex<HashMap<TaskKey, Live>>,
    /// The repository each task's directory was last found in: a follow-up's start skips the
    /// discovery (two git processes on the way of its prompt).
    repos: Mutex<HashMap<TaskKey, Repo>>,
}

impl Recording {
    fn lock(&self) -> MutexGuard<'_, HashMap<TaskKey, Live>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn repos(&self) -> MutexGuard<'_, HashMap<TaskKey, Repo>> {
        self.repos.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One running run's record.
struct Live {
    n: u32,
    start: RunStart,
    /// Where its files are (canonical): saved files under it are the run's business.
    root: PathBuf,
    /// Files (canonical) the editor saved while it ran.
    saved: HashSet<PathBuf>,
    /// How git is run for it (the permission watcher keeps files with it, holding a lock that
    /// must not wait for the state's).
    git: Git,
}

/// Where one run's records go (`changes::Place`, owned).
struct Where {
    git: Git,
    cwd: PathBuf,
    index_dir: PathBuf,
    run_dir: PathBuf,
    refs: Refs,
    id: u64,
    run: u32,
}

impl Where {
    fn place(&self) -> Place<'_> {
        Place {
            git: &self.git,
            cwd: &self.cwd,
            index_dir: &self.index_dir,
            run_dir: &self.run_dir,
            refs: &self.refs,
            id: self.id,
            run: self.run,
        }
    }
}

/// A run's diff, for the review (`changes` request).
pub struct RunReview {
    pub rec: TaskRecord,
    pub run: u32,
    pub meta: RunChanges,
    pub changes: Changes,
    /// Paths (relative to the root) the editor saved while the run ran.
    pub by_you: HashSet<String>,
}

/// A revert done (`revert` request).
pub struct Reverted {
    pub rec: TaskRecord,
    pub run: u32,
    pub root: String,
    pub report: Report,
}

/// The record's description of a run's start.
fn describe(start: &RunStart) -> RunChanges {
    let (method, root, why) = match start {
        RunStart::Git { start } => ("git", start.work_tree.clone(), None),
        RunStart::Files { root, why, .. } => ("files", root.clone(), Some(why.clone())),
    };
    RunChanges {
        method: method.into(),
        root: root.to_string_lossy().into_owned(),
        why,
        snapshots: serde_json::to_value(start).unwrap_or_default(),
        ..RunChanges::default()
    }
}

fn not_recorded(error: String) -> RunChanges {
    RunChanges {
        method: "none".into(),
        error: Some(error),
        ..RunChanges::default()
    }
}

/// A run's start being recorded (`begin_changes`).
pub(super) enum Beginning {
    Done(Option<RunChanges>),
    /// The work tree is captured; its snapshot's commit is being made.
    Committing {
        me: Supervisor,
        key: TaskKey,
        n: u32,
        git: Git,
        commit: tokio::task::JoinHandle<crate::git::Result<RunStart>>,
    },
}

impl Beginning {
    /// What the record says of the run's start, once it is recorded (`None`: changes are not
    /// tracked). A file the editor saves between the capture and this is not marked "also
    /// edited by you": the run's record of saves begins here, a few ms after its start.
    pub(super) async fn recorded(self) -> Option<RunChanges> {
        let (me, key, n, git, commit) = match self {
            Beginning::Done(ch) => return ch,
            Beginning::Committing {
                me,
                key,
                n,
                git,
                commit,
            } => (me, key, n, git, commit),
        };
        let start = match commit.await {
            Ok(Ok(start)) => start,
            Ok(Err(e)) => {
                log_warn!("task #{} run {n}: changes not recorded: {e}", key.1);
                return Some(not_recorded(format!("cannot record the run's start: {e}")));
            }
            Err(e) => return Some(not_recorded(format!("cannot record the run's start: {e}"))),
        };
        let ch = describe(&start);
        me.record_live(&key, n, start, git);
        Some(ch)
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

impl Supervisor {
    fn where_of(&self, key: &TaskKey, n: u32, git: Git) -> Where {
        let store = &self.shared.store;
        Where {
            git,
            // A worktree task's runs change its worktree: that is what is recorded.
            cwd: self.run_cwd(key),
            index_dir: store.git_index(&key.0),
            run_dir: store.task_dir(&key.0, key.1).changes(n),
            refs: Refs::new(&Store::project_key(&key.0)),
            id: key.1,
            run: n,
        }
    }

    /// Begins recording run `n`'s start: returns once nothing the CLI does can get into it (the
    /// work tree is read into the private index, or the fallback is made), with the snapshot's
    /// commit still being made on the blocking pool. The prompt goes to the CLI after this, and
    /// [`Beginning::recorded`] is awaited before the run is watched.
    pub(super) async fn begin_changes(&self, key: &TaskKey, n: u32) -> Beginning {
        let (track, git) = {
            let st = self.state();
            (st.config.track_changes, st.config.git.clone())
        };
        if !track {
            return Beginning::Done(None);
        }
        let w = self.where_of(key, n, git.clone());
        let known = self.shared.recording.repos().get(key).cloned();
        let begun = tokio::task::spawn_blocking(move || {
            changes::begin_capture_in(&w.place(), known.as_ref())
        })
        .await;
        let why = |e: String| {
            Beginning::Done(Some(not_recorded(format!(
                "cannot record the run's start: {e}"
            ))))
        };
        match begun {
            Ok(Ok(changes::Begun::Recorded(start))) => {
                let ch = describe(&start);
                self.record_live(key, n, start, git);
                Beginning::Done(Some(ch))
            }
            Ok(Ok(changes::Begun::Captured(c))) => {
                self.shared
                    .recording
                    .repos()
                    .insert(key.clone(), c.repo().clone());
                Beginning::Committing {
                    me: self.clone(),
                    key: key.clone(),
                    n,
                    git,
                    commit: tokio::task::spawn_blocking(move || c.finish()),
                }
            }
            Ok(Err(e)) => {
                log_warn!("task #{} run {n}: changes not recorded: {e}", key.1);
                why(e.to_string())
            }
            Err(e) => why(e.to_string()),
        }
    }

    fn record_live(&self, key: &TaskKey, n: u32, start: RunStart, git: Git) {
        let root = match &start {
            RunStart::Git { start } => canonical(&start.work_tree),
            RunStart::Files { root, .. } => canonical(root),
        };
        self.shared.recording.lock().insert(
            key.clone(),
            Live {
                n,
                root,
                start,
                saved: HashSet::new(),
                git,
            },
        );
    }

    /// A running run this backend adopts (its backend died): its start as the record keeps it,
    /// so that its edits are kept outside git and its end is recorded.
    pub(super) fn adopt_changes(&self, key: &TaskKey, run: Option<&Run>) {
        let Some((n, start)) = run.and_then(|r| Some((r.n, start_of(r)?))) else {
            return;
        };
        let git = self.config().git;
        self.record_live(key, n, start, git);
    }

    /// Records the end of the task's current run (its process is gone) and what it changed.
    /// `run` is the record's run, for a run this backend did not begin (adopted after a crash).
    /// `None`: nothing was recorded at its start.
    pub(super) async fn end_changes(
        &self,
        key: &TaskKey,
        run: Option<&Run>,
    ) -> Option<(RunChanges, Option<Vec<FileChanged>>)> {
        let live = self.shared.recording.lock().remove(key);
        let (n, start, saved) = match live {
            Some(l) => (l.n, l.start, l.saved),
            None => {
                let run = run?;
                (run.n, start_of(run)?, HashSet::new())
            }
        };
        let git = self.state().config.git.clone();
        let w = self.where_of(key, n, git);
        tokio::task::spawn_blocking(move || finish(&w, &start, &saved))
            .await
            .ok()
    }

    /// `end_changes` for a run whose backend went away (settled from the record, on the blocking
    /// pool already): what changed until now.
    pub(super) fn end_changes_now(
        &self,
        key: &TaskKey,
        run: &Run,
    ) -> Option<(RunChanges, Option<Vec<FileChanged>>)> {
        let start = start_of(run)?;
        // Its own statement: `where_of` takes the state lock too.
        let git = self.config().git;
        let w = self.where_of(key, run.n, git);
        Some(finish(&w, &start, &HashSet::new()))
    }

    /// The run has ended without a process (it could not spawn): its start's record is dropped.
    pub(super) fn forget_changes(&self, key: &TaskKey) {
        self.shared.recording.lock().remove(key);
    }

    /// Outside git: keeps `path` as it is before an edit of the task's running run (the
    /// permission watcher calls it from the edit tools' `PreToolUse` hook, which the edit waits
    /// for). Blocking; does nothing for a run recorded with git.
    pub(super) fn keep_before_edit(&self, key: &TaskKey, path: &Path) {
        let (start, git) = match self.shared.recording.lock().get(key) {
            Some(Live {
                start: start @ RunStart::Files { .. },
                git,
                ..
            }) => (start.clone(), git.clone()),
            _ => return,
        };
        if let Err(e) = changes::before_edit(&git, &start, &[path.to_path_buf()]) {
            log_warn!(
                "task #{}: cannot keep {} before its edit: {e}",
                key.1,
                path.display()
            );
        }
    }

    /// The editor saved `path`: a run recording the files under it will say so of its changes.
    pub fn saved(&self, path: &str) {
        let path = Path::new(path);
        if !path.is_absolute() {
            return;
        }
        let path = canonical(path);
        for live in self.shared.recording.lock().values_mut() {
            if path.starts_with(&live.root) && live.saved.len() < MAX_SAVED {
                live.saved.insert(path.clone());
            }
        }
    }

    // ------------------------------------------------------------------------- requests

    /// A task's record, loaded if need be; errors start with `method`.
    fn record_for(&self, method: &str, cwd: &str, id: u64) -> Result<TaskRecord, String> {
        let key = (cwd.to_owned(), id);
        self.ensure_loaded(&key)
            .map_err(|e| format!("{method}: {e}"))?;
        self.state()
            .tasks
            .get(&key)
            .map(|e| e.rec())
            .ok_or_else(|| format!("{method}: no task #{id} in {cwd}"))
    }

    /// Run `run`'s diff (default: the last run), for the quickfix list and the review.
    pub fn review(&self, cwd: &str, id: u64, run: Option<u32>) -> Result<RunReview, String> {
        let rec = self.record_for("changes", cwd, id)?;
        let (n, meta, snaps) = recorded_run("changes", &rec, run)?;
        let git = self.config().git;
        let changes = changes::run_changes(&git, &snaps).map_err(|e| format!("changes: {e}"))?;
        let by_you = rec.runs[n as usize - 1]
            .files_changed
            .iter()
            .flatten()
            .filter(|f| f.edited_by_you)
            .map(|f| f.path.clone())
            .collect();
        Ok(RunReview {
            rec,
            run: n,
            meta,
            changes,
            by_you,
        })
    }

    /// What `path` (relative to the run's root, or absolute under it) held at run `run`'s start
    /// (default: the last run); `None`: it did not exist.
    pub fn original(
        &self,
        cwd: &str,
        id: u64,
        run: Option<u32>,
        path: &str,
    ) -> Result<(u32, Option<Vec<u8>>), String> {
        let rec = self.record_for("original", cwd, id)?;
        let (n, meta, snaps) = recorded_run("original", &rec, run)?;
        let root = canonical(Path::new(&meta.root));
        let p = Path::new(path);
        let rel = if p.is_absolute() {
            canonical(p)
                .strip_prefix(&root)
                .map(Path::to_path_buf)
                .or_else(|_| p.strip_prefix(&meta.root).map(Path::to_path_buf))
                .map_err(|_| format!("original: {path} is not under {}", meta.root))?
        } else {
            p.to_path_buf()
        };
        let git = self.config().git;
        changes::content(&git, &snaps.start, &rel)
            .map(|c| (n, c))
            .map_err(|e| format!("original: {e}"))
    }

    /// Undoes run `run` (default: the last run) in the files, by three-way merge with what they
    /// hold now; the record says so. The task must not be running.
    pub fn revert(&self, cwd: &str, id: u64, run: Option<u32>) -> Result<Reverted, String> {
        let rec = self.record_for("revert", cwd, id)?;
        let key = (cwd.to_owned(), id);
        let active = self.state().tasks.get(&key).is_some_and(|e| e.active);
        if active || !rec.status.is_finished() {
            return Err(format!(
                "revert: task #{id} is {}; cancel it or let it end first",
                rec.status.as_str()
            ));
        }
        let (n, meta, snaps) = recorded_run("revert", &rec, run)?;
        let labels = Labels {
            ours: "yours".into(),
            base: format!("after task #{id} run {n}"),
            theirs: format!("before task #{id} run {n}"),
        };
        let git = self.config().git;
        let report = changes::revert(&git, &snaps, &labels).map_err(|e| format!("revert: {e}"))?;
        let note = Revert {
            at_ms: now_ms(),
            after_runs: rec.runs.len() as u32,
            files: report.written().count() as u64,
            conflicts: report.conflicts.len() as u64,
        };
        let rec = {
            let st = self.state();
            let entry = st
                .tasks
                .get(&key)
                .ok_or_else(|| format!("revert: no task #{id}"))?;
            entry.record.send_modify(|r| {
                if let Some(ch) = r
                    .runs
                    .get_mut(n as usize - 1)
                    .and_then(|run| run.changes.as_mut())
                {
                    ch.reverts.push(note);
                }
            });
            let (rev, rec) = (self.next_revision(), entry.rec());
            drop(st);
            self.persist_revision(&key, rev, &rec);
            rec
        };
        self.emit("updated", &rec);
        Ok(Reverted {
            rec,
            run: n,
            root: meta.root,
            report,
        })
    }

    /// Removes a disposed task's snapshot refs from its repository (blocking).
    pub(super) fn dispose_changes(&self, cwd: &str, id: u64) {
        self.shared.recording.repos().remove(&(cwd.to_owned(), id));
        let git = self.config().git;
        let refs = Refs::new(&Store::project_key(cwd));
        if let Err(e) = changes::dispose(&git, Path::new(cwd), &refs, id) {
            log_warn!("task #{id}: cannot remove its snapshots' refs: {e}");
        }
    }
}

/// The start a running run recorded (`RunChanges::snapshots` holds it until the run ends).
fn start_of(run: &Run) -> Option<RunStart> {
    let ch = run.changes.as_ref()?;
    serde_json::from_value(ch.snapshots.clone()).ok()
}

/// Run `run` of `rec` (default: the last one) with the snapshots of both its ends.
fn recorded_run(
    method: &str,
    rec: &TaskRecord,
    run: Option<u32>,
) -> Result<(u32, RunChanges, RunSnapshots), String> {
    let id = rec.id;
    let r = match run {
        Some(n) => rec.runs.get((n as usize).wrapping_sub(1)).ok_or_else(|| {
            format!(
                "{method}: task #{id} has no run {n} (it has {})",
                rec.runs.len()
            )
        })?,
        None => rec
            .runs
            .last()
            .ok_or_else(|| format!("{method}: task #{id} has not run yet"))?,
    };
    if !r.status.is_finished() {
        return Err(format!(
            "{method}: run {} of task #{id} is {}; what it changed is known when it ends",
            r.n,
            r.status.as_str()
        ));
    }
    let Some(ch) = r.changes.clone() else {
        return Err(format!(
            "{method}: the changes of task #{id} run {} were not recorded (track_changes off, \
             or it did not start)",
            r.n
        ));
    };
    let snaps = serde_json::from_value::<RunSnapshots>(ch.snapshots.clone()).map_err(|_| {
        format!(
            "{method}: the changes of task #{id} run {} were not recorded: {}",
            r.n,
            ch.error.as_deref().unwrap_or("no snapshot of its end")
        )
    })?;
    Ok((r.n, ch, snaps))
}

/// Records the end of a run begun as `start`: the record's `changes` and `files_changed`.
fn finish(
    w: &Where,
    start: &RunStart,
    saved: &HashSet<PathBuf>,
) -> (RunChanges, Option<Vec<FileChanged>>) {
    let mut ch = describe(start);
    let snaps = match changes::finish(&w.place(), start) {
        Ok(s) => s,
        Err(e) => {
            ch.error = Some(format!("cannot record the run's end: {e}"));
            return (ch, None);
        }
    };
    ch.snapshots = serde_json::to_value(&snaps).unwrap_or_default();
    let repo = snaps.end.repo(&w.git);
    let files = match diff::files(&repo, &snaps.start.commit, &snaps.end.commit) {
        Ok(f) => f,
        Err(e) => {
            ch.error = Some(format!("cannot read what the run changed: {e}"));
            return (ch, None);
        }
    };
    ch.files = files.len() as u64;
    ch.added = files.iter().map(|f| f.added).sum();
    ch.removed = files.iter().map(|f| f.removed).sum();
    let root = canonical(&snaps.end.work_tree);
    let list = files
        .iter()
        .take(MAX_FILES_CHANGED)
        .map(|f| file_changed(f, &root, saved))
        .collect();
    (ch, Some(list))
}

fn file_changed(f: &FileChange, root: &Path, saved: &HashSet<PathBuf>) -> FileChanged {
    let by_you = saved.contains(&root.join(&f.raw_path))
        || f.raw_old_path
            .as_ref()
            .is_some_and(|o| saved.contains(&root.join(o)));
    FileChanged {
        path: f.path.clone(),
        old_path: f.old_path.clone(),
        status: status_name(f.status).into(),
        added: f.added,
        removed: f.removed,
        binary: f.binary,
        edited_by_you: by_you,
    }
}

/// A status as the record and Lua spell it.
pub fn status_name(s: changes::Status) -> &'static str {
    match s {
        changes::Status::Added => "added",
        changes::Status::Modified => "modified",
        changes::Status::Deleted => "deleted",
        changes::Status::Renamed => "renamed",
    }
}
