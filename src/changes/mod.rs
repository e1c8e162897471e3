//! What a task changed: the work tree recorded at a run's start and end, the diff between the
//! two, a file's content at either, and a revert of the run by three-way merge.
//!
//! A run is recorded one of two ways ([`Method`]): in a git work tree, as snapshot commits made
//! through a private index (`snapshot`), untracked files included and ignored ones excluded;
//! elsewhere, as the files the run named, kept before their first edit (`fallback`). Both end as
//! commits (of the user's repository, or of a private one), so `diff`, [`content`] and `merge`
//! serve both alike.
//!
//! Invariants, for everything below this module:
//! - **The user's index, HEAD, branches, stash and files are never touched** by recording or
//!   diffing. The index is only read (copied once to seed the private one); commands run with
//!   `GIT_OPTIONAL_LOCKS=0` and an explicit private `GIT_INDEX_FILE`.
//! - What is written to the user's repository: objects, and refs under
//!   `refs/claude-tasks/<project>/` ([`Refs`]), removed by [`dispose`] (but the project's
//!   keep-alive ref).
//! - [`revert`] writes exactly the files the run changed, and only by the rules of `merge`:
//!   a file edited since is merged, never overwritten; what cannot be merged is left and listed.
//! - The calls block (they run git): call them off the async runtime.

pub mod diff;
pub mod fallback;
pub mod merge;
pub mod private;
pub mod snapshot;
pub mod write;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use diff::{Changes, FileChange, Hunk, QuickfixEntry, Status};
pub use fallback::Kept;
pub use merge::{Action, Conflict, FileOutcome, Labels, Report};

use crate::git::objects::{
    delete_refs_under, read_blob, read_blob_as_file, ref_component, tree_entry, MODE_GITLINK,
    MODE_LINK,
};
use crate::git::{Error, Git, Repo, Result};
use fallback::FileBackup;
use snapshot::{PrivateIndex, Take};

/// How a run was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Snapshots of the whole git work tree.
    Git,
    /// The files the run named, outside git.
    Files,
}

/// A recorded state: a commit of the repository at `git_dir`, describing the files under
/// `work_tree`. Kept in the task record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub method: Method,
    pub commit: String,
    pub git_dir: PathBuf,
    pub work_tree: PathBuf,
}

impl Snapshot {
    pub fn repo(&self, git: &Git) -> Repo {
        Repo::at(git, &self.git_dir, &self.work_tree)
    }

    /// Where a path of a `FileChange` (relative to the work tree) is on disk.
    pub fn absolute(&self, rel: &Path) -> PathBuf {
        self.work_tree.join(rel)
    }
}

/// The names of a project's refs, all under `refs/claude-tasks/<project key>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refs {
    base: String,
}

/// Which end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Start,
    End,
}

impl Refs {
    /// `project_key` is the store's key of the project (`Store::project_key`); characters a
    /// ref name cannot hold are replaced.
    pub fn new(project_key: &str) -> Refs {
        Refs {
            base: format!("refs/claude-tasks/{}", ref_component(project_key)),
        }
    }

    /// Keeps the objects of the project's private index alive (see `snapshot`).
    pub fn keep_alive(&self) -> String {
        format!("{}/index", self.base)
    }

    /// The directory of one task's refs (ends with `/`).
    pub fn task(&self, id: u64) -> String {
        format!("{}/{id}/", self.base)
    }

    /// A run's start or end snapshot.
    pub fn run(&self, id: u64, run: u32, end: End) -> String {
        let which = match end {
            End::Start => "start",
            End::End => "end",
        };
        format!("{}/{id}/{run}/{which}", self.base)
    }

    /// Another ref of a task (`base`, `result` of a worktree task).
    pub fn named(&self, id: u64, name: &str) -> String {
        format!("{}/{id}/{}", self.base, ref_component(name))
    }
}

/// Where one run's records go.
pub struct Place<'a> {
    pub git: &'a Git,
    /// The task's directory (its cwd).
    pub cwd: &'a Path,
    /// The project's private index: a directory of the state dir, shared by the project's
    /// tasks and kept between them (`<state>/<project key>/git-index`).
    pub index_dir: &'a Path,
    /// The run's own directory (the fallback's files): `<task dir>/changes-<run>`.
    pub run_dir: &'a Path,
    pub refs: &'a Refs,
    pub id: u64,
    pub run: u32,
}

impl Place<'_> {
    fn message(&self, end: End) -> String {
        let which = match end {
            End::Start => "start",
            End::End => "end",
        };
        format!("claude-tasks: task #{} run {} {which}", self.id, self.run)
    }
}

/// A run in progress: how its start was recorded. Kept in the task record, so that a backend
/// adopting the run after a crash can still finish it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum RunStart {
    Git {
        start: Snapshot,
    },
    Files {
        root: PathBuf,
        dir: PathBuf,
        /// Why not git (git's answer for the directory).
        why: String,
    },
}

impl RunStart {
    pub fn method(&self) -> Method {
        match self {
            RunStart::Git { .. } => Method::Git,
            RunStart::Files { .. } => Method::Files,
        }
    }
}

/// A finished run's two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSnapshots {
    pub start: Snapshot,
    pub end: Snapshot,
}

impl RunSnapshots {
    pub fn method(&self) -> Method {
        self.start.method
    }
}

/// Records the start of a run: a snapshot if the task's directory is in a git work tree, else
/// (or if the snapshot fails) an empty fallback that [`before_edit`] fills. An error (git
/// missing, the directory gone) means no record at all: the caller runs the task without one.
pub fn begin(place: &Place<'_>) -> Result<RunStart> {
    match begin_capture(place)? {
        Begun::Recorded(start) => Ok(start),
        Begun::Captured(c) => c.finish(),
    }
}

/// [`begin`] in two steps: what the run's CLI must not get ahead of (the work tree read into
/// the private index, or the fallback made), then, for git, [`StartCapture::finish`], which
/// makes the snapshot's commit and refs and may run while the CLI already works.
pub enum Begun {
    Recorded(RunStart),
    Captured(StartCapture),
}

/// A git start whose files are recorded; its commit is not made yet.
pub struct StartCapture {
    captured: snapshot::Captured,
    ref_name: String,
    keep_ref: String,
    message: String,
}

impl StartCapture {
    fn new(place: &Place<'_>, captured: snapshot::Captured) -> StartCapture {
        StartCapture {
            captured,
            ref_name: place.refs.run(place.id, place.run, End::Start),
            keep_ref: place.refs.keep_alive(),
            message: place.message(End::Start),
        }
    }

    /// The repository the work tree was captured in (for the task's next run).
    pub fn repo(&self) -> &Repo {
        self.captured.repo()
    }

    pub fn finish(self) -> Result<RunStart> {
        let start = self.captured.commit(&Take {
            ref_name: &self.ref_name,
            keep_ref: &self.keep_ref,
            parent: None,
            message: &self.message,
        })?;
        Ok(RunStart::Git { start })
    }
}

/// See [`Begun`].
pub fn begin_capture(place: &Place<'_>) -> Result<Begun> {
    begin_capture_in(place, None)
}

/// [`begin_capture`] in `known`, the repository an earlier run of the task found for its
/// directory, when it is still there: a follow-up's start then runs one git process, not three
/// (`Repo::discover` runs two). A capture that fails in it is tried again after a discovery.
pub fn begin_capture_in(place: &Place<'_>, known: Option<&Repo>) -> Result<Begun> {
    if let Some(r) = known.filter(|r| r.git_dir.is_dir() && place.cwd.starts_with(&r.top)) {
        // git as configured now.
        let repo = Repo {
            git: place.git.clone(),
            ..r.clone()
        };
        if let Ok(captured) = PrivateIndex::new(place.index_dir).capture(&repo) {
            return Ok(Begun::Captured(StartCapture::new(place, captured)));
        }
    }
    let why = match Repo::discover(place.git, place.cwd) {
        Ok(repo) => match PrivateIndex::new(place.index_dir).capture(&repo) {
            Ok(captured) => return Ok(Begun::Captured(StartCapture::new(place, captured))),
            // An unreadable file, a broken repository: the named files are still worth
            // keeping, and `why` says why the whole tree is not.
            Err(e) => format!("git snapshot failed: {e}"),
        },
        Err(e @ (Error::NotAWorkTree { .. } | Error::Bare { .. })) => e.to_string(),
        Err(e) => return Err(e),
    };
    FileBackup::create(place.git, place.cwd, place.run_dir)?;
    Ok(Begun::Recorded(RunStart::Files {
        root: place.cwd.to_path_buf(),
        dir: place.run_dir.to_path_buf(),
        why,
    }))
}

/// For the fallback: keeps `paths` (absolute, or relative to the task's directory) as they are
/// before an edit. Call it for the paths of every Write/Edit/MultiEdit/NotebookEdit call before
/// the call runs; repeated paths are kept once. Does nothing for a git run.
pub fn before_edit(git: &Git, start: &RunStart, paths: &[PathBuf]) -> Result<Kept> {
    match start {
        RunStart::Git { .. } => Ok(Kept::default()),
        RunStart::Files { root, dir, .. } => FileBackup::open(root, dir).keep(git, paths),
    }
}

/// Records the end of a run. Safe to call again for the same run (it records the present).
pub fn finish(place: &Place<'_>, start: &RunStart) -> Result<RunSnapshots> {
    match start {
        RunStart::Git { start } => {
            let repo = start.repo(place.git);
            let ref_name = place.refs.run(place.id, place.run, End::End);
            let end = PrivateIndex::new(place.index_dir).snapshot(
                &repo,
                &Take {
                    ref_name: &ref_name,
                    keep_ref: &place.refs.keep_alive(),
                    parent: Some(&start.commit),
                    message: &place.message(End::End),
                },
            )?;
            Ok(RunSnapshots {
                start: start.clone(),
                end,
            })
        }
        RunStart::Files { root, dir, .. } => {
            let message = format!("claude-tasks: task #{} run {}", place.id, place.run);
            let (start, end) = FileBackup::open(root, dir).finish(place.git, &message)?;
            Ok(RunSnapshots { start, end })
        }
    }
}

/// What changed from `from` to `to` (two snapshots of one repository).
pub fn changes(git: &Git, from: &Snapshot, to: &Snapshot) -> Result<Changes> {
    same_store(from, to)?;
    diff::diff(&to.repo(git), &from.commit, &to.commit)
}

/// What a run changed.
pub fn run_changes(git: &Git, run: &RunSnapshots) -> Result<Changes> {
    changes(git, &run.start, &run.end)
}

/// The content of `path` (relative to the work tree) at `snap`, as the file in the work tree
/// would hold it; `None` if the snapshot has no such file. A symbolic link gives its target.
pub fn content(git: &Git, snap: &Snapshot, path: &Path) -> Result<Option<Vec<u8>>> {
    let repo = snap.repo(git);
    let Some(entry) = tree_entry(&repo, &snap.commit, path)? else {
        return Ok(None);
    };
    match entry.mode {
        MODE_GITLINK => Err(Error::Refused(format!(
            "{} is a submodule: its files are not in the snapshot",
            path.display()
        ))),
        MODE_LINK => read_blob(&repo, &entry.oid).map(Some),
        _ => read_blob_as_file(&repo, &entry.oid, path).map(Some),
    }
}

/// Undoes a run in the files under its work tree: the change from its end back to its start,
/// merged with each file as it is now (see `merge`).
pub fn revert(git: &Git, run: &RunSnapshots, labels: &Labels) -> Result<Report> {
    same_store(&run.start, &run.end)?;
    let repo = run.end.repo(git);
    merge::apply(
        &repo,
        &run.end.work_tree,
        &run.end.commit,
        &run.start.commit,
        labels,
    )
}

/// Removes a task's refs from the repository of `cwd` (its git snapshots become unreachable;
/// a fallback's files go with the task's directory). Returns how many refs there were. Not a
/// work tree any more: nothing to do.
pub fn dispose(git: &Git, cwd: &Path, refs: &Refs, id: u64) -> Result<usize> {
    let repo = match Repo::discover(git, cwd) {
        Ok(repo) => repo,
        Err(Error::NotAWorkTree { .. } | Error::Bare { .. } | Error::Io { .. }) => return Ok(0),
        Err(e) => return Err(e),
    };
    delete_refs_under(&repo, &refs.task(id))
}

fn same_store(a: &Snapshot, b: &Snapshot) -> Result<()> {
    if a.git_dir != b.git_dir || a.work_tree != b.work_tree {
        return Err(Error::Refused(format!(
            "snapshots {} and {} are of different repositories",
            a.commit, b.commit
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names() {
        let refs = Refs::new("my.proj-1a2b3c4d");
        assert_eq!(
            refs.keep_alive(),
            "refs/claude-tasks/my-proj-1a2b3c4d/index"
        );
        assert_eq!(refs.task(7), "refs/claude-tasks/my-proj-1a2b3c4d/7/");
        assert_eq!(
            refs.run(7, 2, End::End),
            "refs/claude-tasks/my-proj-1a2b3c4d/7/2/end"
        );
        assert_eq!(
            refs.named(7, "base"),
            "refs/claude-tasks/my-proj-1a2b3c4d/7/base"
        );
    }

    #[test]
    fn run_start_is_kept_as_json() {
        let start = RunStart::Files {
            root: "/p".into(),
            dir: "/s/1/changes-1".into(),
            why: "not a git work tree".into(),
        };
        let json = serde_json::to_string(&start).unwrap();
        assert!(json.contains("\"method\":\"files\""), "{json}");
        assert_eq!(serde_json::from_str::<RunStart>(&json).unwrap(), start);
    }
}
