//! Worktree tasks: a git worktree per task on a branch of its own, based on what the user sees
//! (HEAD plus uncommitted and untracked changes), its changes against that base, and
//! discarding it; bringing the changes back is `apply`.
//!
//! The base is a snapshot commit of the user's work tree (`changes::snapshot`, with HEAD as
//! its parent, none in a repository without commits), so the task starts from exactly the files
//! the user has, staged or not. The worktree is created under a directory of ours (the state
//! directory), **locked** (`git worktree lock`): a `git worktree prune` or `remove` by
//! the user leaves it alone, and if its directory is lost anyway, the branch still holds the
//! task's commits and [`state`] says what is missing.
//!
//! Invariants: creating, diffing and discarding never touch the user's index, HEAD, branches
//! (but the task's own), stash or files. Written to the user's repository: objects, the task's
//! branch, the worktree's administrative entry (`.git/worktrees/<name>`), and refs under the
//! task's `refs/claude-tasks/…/<id>/`. No hook runs (`git` runs none).

pub mod apply;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::changes::private::create_private_dir;
use crate::changes::snapshot::{PrivateIndex, Take};
use crate::changes::{diff, Changes, Method, Refs, Snapshot};
use crate::git::objects::{delete_refs_under, update_refs, RefChange};
use crate::git::{io_error, Error, Git, Repo, Result};

pub use apply::{apply, Applied, ApplyMode};

/// The default prefix of a worktree task's branch: `claude-tasks/<id>`.
pub const DEFAULT_BRANCH_PREFIX: &str = "claude-tasks/";
/// How many `-2`, `-3`, … suffixes are tried when a task's branch name is taken (another
/// project of the same repository has a task with the same id).
const MAX_SUFFIX: u32 = 99;

/// A task's worktree, as the task record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worktree {
    /// The worktree's directory (canonical).
    pub path: PathBuf,
    /// The branch, without `refs/heads/`.
    pub branch: String,
    /// The base commit: the user's files when the task started.
    pub base: String,
    /// The user's HEAD commit then (`None` in a repository without commits).
    pub head: Option<String>,
}

/// What to create.
pub struct Spec<'a> {
    pub git: &'a Git,
    /// The user's directory (the task's project).
    pub cwd: &'a Path,
    /// Where the worktree goes: a path in the state directory that does not exist yet. Its
    /// last component names the worktree in `git worktree list` (`claude-tasks-<id>`).
    pub path: &'a Path,
    /// The branch wanted: `<prefix><id>`. If it exists, `-2`, `-3`, … are tried.
    pub branch: &'a str,
    /// The project's private index (as for run snapshots): it makes the base.
    pub index_dir: &'a Path,
    pub refs: &'a Refs,
    pub id: u64,
}

/// Creates the worktree. Errors: not a git work tree, a bare repository (no work tree to base
/// on), an invalid branch name, an existing path. A failure leaves no branch, worktree or ref.
pub fn create(spec: &Spec<'_>) -> Result<Worktree> {
    let repo = Repo::discover(spec.git, spec.cwd).map_err(|e| match e {
        Error::NotAWorkTree { .. } | Error::Bare { .. } => {
            Error::Refused(format!("cannot run a task in a worktree: {e}"))
        }
        other => other,
    })?;
    if fs::symlink_metadata(spec.path).is_ok() {
        return Err(Error::Refused(format!(
            "cannot create a worktree at {}: it already exists",
            spec.path.display()
        )));
    }
    let branch = free_branch(&repo, spec.branch)?;
    let head = repo.resolve("HEAD")?;
    let base_ref = spec.refs.named(spec.id, "base");
    let base = PrivateIndex::new(spec.index_dir).snapshot(
        &repo,
        &Take {
            ref_name: &base_ref,
            keep_ref: &spec.refs.keep_alive(),
            parent: None,
            message: &format!("claude-tasks: base of task #{}", spec.id),
        },
    )?;
    if let Some(parent) = spec.path.parent() {
        create_private_dir(parent)?;
    }
    let added = spec
        .git
        .cmd(&repo.top)
        .args(["worktree", "add", "--quiet", "-b", &branch])
        .arg(spec.path)
        .arg(&base.commit)
        .run();
    if let Err(e) = added {
        let _ = update_refs(&repo, &[RefChange::Delete { name: &base_ref }]);
        return Err(e);
    }
    let path = fs::canonicalize(spec.path).map_err(|e| io_error("resolve", spec.path, e))?;
    // Locked apart from `add` (`add --reason` needs git 2.35). Unlocked it still works; only a
    // user's prune after losing the directory would then forget it.
    let locked = spec
        .git
        .cmd(&repo.top)
        .args(["worktree", "lock", "--reason"])
        .arg(format!("claude-tasks task #{}", spec.id))
        .arg(&path)
        .run();
    if let Err(e) = locked {
        crate::log_warn!("worktree {}: cannot lock it: {e}", path.display());
    }
    Ok(Worktree {
        path,
        branch,
        base: base.commit,
        head,
    })
}

/// `wanted`, or the first of `wanted-2`, `wanted-3`, … that is not a branch yet; an error
/// naming the branch prefix option when `wanted` is not a valid branch name.
pub fn free_branch(repo: &Repo, wanted: &str) -> Result<String> {
    let valid = repo
        .cmd()
        .args(["check-ref-format", "--branch", wanted])
        .output()?;
    if !valid.success() {
        return Err(Error::Refused(format!(
            "{wanted:?} is not a valid branch name (check the branch prefix option)"
        )));
    }
    for n in 1..=MAX_SUFFIX {
        let name = if n == 1 {
            wanted.to_string()
        } else {
            format!("{wanted}-{n}")
        };
        if repo.resolve(&format!("refs/heads/{name}"))?.is_none() {
            return Ok(name);
        }
    }
    Err(Error::Refused(format!(
        "branches {wanted} to {wanted}-{MAX_SUFFIX} all exist: delete some"
    )))
}

/// What is left of a worktree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Its directory is there.
    pub dir: bool,
    /// git knows it (`git worktree list`).
    pub registered: bool,
    pub locked: bool,
    /// Its branch is there.
    pub branch: bool,
    /// The branch's commit.
    pub branch_commit: Option<String>,
}

impl State {
    /// Everything in place.
    pub fn ok(&self) -> bool {
        self.dir && self.registered && self.branch
    }

    /// What is missing, in words for the user; `None` when nothing is.
    pub fn problem(&self, wt: &Worktree) -> Option<String> {
        let mut missing = Vec::new();
        if !self.dir {
            missing.push(format!("its directory {}", wt.path.display()));
        }
        if !self.registered {
            missing.push("its entry in git (pruned?)".to_string());
        }
        if !self.branch {
            missing.push(format!("its branch {}", wt.branch));
        }
        if missing.is_empty() {
            return None;
        }
        let left = if self.branch && !self.dir {
            "; the branch still has the task's commits, not its uncommitted changes"
        } else {
            ""
        };
        Some(format!(
            "the worktree is missing {}{left}",
            missing.join(", ")
        ))
    }
}

/// What is left of `wt` in the repository of `cwd`.
pub fn state(git: &Git, cwd: &Path, wt: &Worktree) -> Result<State> {
    let repo = Repo::discover(git, cwd)?;
    // Lines, not `-z` (git 2.36): a worktree path with a newline is not ours.
    let out = git
        .cmd(&repo.top)
        .args(["worktree", "list", "--porcelain"])
        .run()?;
    let mut registered = false;
    let mut locked = false;
    let mut current: Option<PathBuf> = None;
    for rec in out.split(|&b| b == b'\n') {
        if let Some(p) = rec.strip_prefix(b"worktree ") {
            let p = PathBuf::from(std::ffi::OsStr::from_bytes(p));
            current = Some(fs::canonicalize(&p).unwrap_or(p));
        }
        let here = current.as_deref() == Some(wt.path.as_path());
        if here && rec.starts_with(b"worktree ") {
            registered = true;
        }
        if here && (rec == b"locked" || rec.starts_with(b"locked ")) {
            locked = true;
        }
    }
    let branch_commit = repo.resolve(&format!("refs/heads/{}", wt.branch))?;
    Ok(State {
        dir: wt.path.join(".git").exists(),
        registered,
        locked,
        branch: branch_commit.is_some(),
        branch_commit,
    })
}

/// The task's result: a snapshot of the worktree (its commits and its uncommitted and
/// untracked files), made through a private index of the task's (`index_dir`). When the
/// directory is gone, the branch's commit stands in (`Result.missing` says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub base: Snapshot,
    pub result: Snapshot,
    /// The worktree's directory was missing: `result` is only the branch's last commit.
    pub missing: Option<String>,
}

/// Records the worktree's present state as the task's result (ref `…/<id>/result`).
pub fn result(
    git: &Git,
    cwd: &Path,
    wt: &Worktree,
    index_dir: &Path,
    refs: &Refs,
    id: u64,
) -> Result<Outcome> {
    let user = Repo::discover(git, cwd)?;
    let snap = |commit: String| Snapshot {
        method: Method::Git,
        commit,
        git_dir: user.git_dir.clone(),
        work_tree: user.top.clone(),
    };
    let st = state(git, cwd, wt)?;
    let result_ref = refs.named(id, "result");
    if st.dir {
        let repo = Repo::discover(git, &wt.path)?;
        if repo.common_dir != user.common_dir {
            return Err(Error::Refused(format!(
                "{} is not a worktree of the repository of {}",
                wt.path.display(),
                cwd.display()
            )));
        }
        let taken = PrivateIndex::new(index_dir).snapshot(
            &repo,
            &Take {
                ref_name: &result_ref,
                keep_ref: &result_ref,
                parent: None,
                message: &format!("claude-tasks: result of task #{id}"),
            },
        )?;
        return Ok(Outcome {
            base: snap(wt.base.clone()),
            result: snap(taken.commit),
            missing: None,
        });
    }
    let Some(tip) = st.branch_commit.clone() else {
        return Err(Error::Refused(
            st.problem(wt)
                .unwrap_or_else(|| "the worktree is gone".into()),
        ));
    };
    Ok(Outcome {
        base: snap(wt.base.clone()),
        result: snap(tip),
        missing: st.problem(wt),
    })
}

/// The worktree's changes against its base.
pub fn changes(git: &Git, outcome: &Outcome) -> Result<Changes> {
    diff::diff(
        &outcome.result.repo(git),
        &outcome.base.commit,
        &outcome.result.commit,
    )
}

/// Removes the worktree (its directory, even with changes in it), its branch and its refs.
/// Parts already gone are skipped; a branch checked out elsewhere is an error (git's).
pub fn discard(git: &Git, cwd: &Path, wt: &Worktree, refs: &Refs, id: u64) -> Result<()> {
    let repo = Repo::discover(git, cwd)?;
    let st = state(git, cwd, wt)?;
    if st.registered {
        // Twice forced: the worktree is locked, and may hold changes.
        git.cmd(&repo.top)
            .args(["worktree", "remove", "-f", "-f"])
            .arg(&wt.path)
            .run()?;
    } else if wt.path.join(".git").is_file() {
        // git forgot it (its entry was removed by hand): the directory is ours alone.
        fs::remove_dir_all(&wt.path).map_err(|e| io_error("remove", &wt.path, e))?;
    }
    if st.branch {
        git.cmd(&repo.top)
            .args(["branch", "-D", &wt.branch])
            .run()?;
    }
    for name in ["base", "result"] {
        delete_refs_under(&repo, &refs.named(id, name))?;
    }
    Ok(())
}
