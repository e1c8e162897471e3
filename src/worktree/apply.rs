//! Bringing a worktree task's changes back into the user's work tree: the change from its base
//! to its result, merged file by file with the user's files (`changes::merge`), optionally as a
//! commit on the user's current branch (`apply = "commit"`).
//!
//! The commit holds exactly the task's changes: they are merged onto HEAD's version of each
//! file (not onto the work tree's, which may hold edits of the user that are not theirs to
//! commit), in a temporary index, so other staged changes stay staged and out of the commit.
//! It is refused, before anything is written, when a changed path has staged changes of the
//! user's or when either merge (onto HEAD, onto the files) would conflict.
//!
//! Invariants: files mode touches only the changed files (never the index, HEAD, branches,
//! stash). Commit mode also moves the current branch (or a detached HEAD) by one commit, with
//! its old value checked, and sets the index entries of exactly the committed paths to what
//! was committed, so that `git status` shows the user's own edits in those files as unstaged
//! and nothing of the commit as staged. No hook runs.

use std::path::Path;

use super::Outcome;
use crate::changes::merge::{self, conflicts_of, index_info, write_all, Labels, Onto, Report};
use crate::changes::private::Scratch;
use crate::git::{Error, Git, Repo, Result};

/// How to bring the changes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyMode {
    /// Into the files only (the user commits, or not).
    Files,
    /// Into the files and as a commit on the current branch with this message.
    Commit { message: String },
}

/// What `apply` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub report: Report,
    /// The commit made (commit mode).
    pub commit: Option<String>,
    /// Commit mode, files written, but no commit: why (the index was locked, the branch moved
    /// meanwhile, nothing to commit).
    pub not_committed: Option<String>,
}

/// Brings the changes `outcome.base` → `outcome.result` into the work tree of `cwd`.
pub fn apply(
    git: &Git,
    cwd: &Path,
    outcome: &Outcome,
    mode: &ApplyMode,
    labels: &Labels,
) -> Result<Applied> {
    let user = Repo::discover(git, cwd)?;
    let (base, result) = (&outcome.base.commit, &outcome.result.commit);
    let message = match mode {
        ApplyMode::Files => {
            let report = merge::apply(&user, &user.top, base, result, labels)?;
            return Ok(Applied {
                report,
                commit: None,
                not_committed: None,
            });
        }
        ApplyMode::Commit { message } => message,
    };
    let head = user.head()?;
    let onto_head = merge::plan(
        &user,
        &Onto::Commit(head.commit.as_deref()),
        base,
        result,
        labels,
    )?;
    refuse_conflicts(&onto_head, "HEAD")?;
    let onto_files = merge::plan(&user, &Onto::Files(&user.top), base, result, labels)?;
    refuse_conflicts(&onto_files, "your uncommitted changes")?;
    let paths: Vec<&Path> = onto_head
        .iter()
        .flat_map(|s| s.writes.iter().map(|(p, _)| p.as_path()))
        .collect();
    if paths.is_empty() {
        return Ok(Applied {
            report: write_all(&user.top, onto_files),
            commit: None,
            not_committed: Some("nothing to commit: HEAD already has these changes".into()),
        });
    }
    refuse_staged(&user, head.commit.as_deref(), &paths)?;
    let info = index_info(&user, onto_head, base.len())?;
    // The commit object first: if it cannot be made (no identity, signing fails), nothing is
    // written anywhere.
    let commit = make_commit(&user, head.commit.as_deref(), &info, message)?;
    let report = write_all(&user.top, onto_files);
    if !report.is_clean() {
        return Ok(Applied {
            report,
            commit: None,
            not_committed: Some("not every file could be written: nothing was committed".into()),
        });
    }
    if let Err(e) = user
        .cmd()
        .args(["update-index", "-z", "--index-info"])
        .stdin(info)
        .run()
    {
        return Ok(Applied {
            report,
            commit: None,
            not_committed: Some(format!(
                "the files were applied, but the index could not be updated, so nothing was \
                 committed: {e}"
            )),
        });
    }
    let zero = "0".repeat(base.len());
    let old = head.commit.as_deref().unwrap_or(&zero);
    let mut update = user
        .cmd()
        .args(["update-ref", "-m"])
        .arg(format!("claude-tasks: {message}"));
    update = match &head.branch {
        Some(branch) => update.args([branch.as_str(), &commit, old]),
        None => update.args(["--no-deref", "HEAD", &commit, old]),
    };
    if let Err(e) = update.run() {
        return Ok(Applied {
            report,
            commit: None,
            not_committed: Some(format!(
                "the files were applied and staged, but HEAD moved meanwhile, so nothing was \
                 committed: {e}"
            )),
        });
    }
    Ok(Applied {
        report,
        commit: Some(commit),
        not_committed: None,
    })
}

fn refuse_conflicts(steps: &[merge::Step], with: &str) -> Result<()> {
    let conflicts = conflicts_of(steps);
    if conflicts.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = conflicts.iter().map(|c| c.path.as_str()).collect();
    Err(Error::Refused(format!(
        "cannot apply as a commit: the task's changes conflict with {with} in {}; nothing was \
         changed (apply without a commit to get conflict markers)",
        names.join(", ")
    )))
}

/// Refuses when the user has staged changes on any of `paths` (they would be lost from the
/// index, or committed with the task's).
fn refuse_staged(user: &Repo, head: Option<&str>, paths: &[&Path]) -> Result<()> {
    let against = match head {
        Some(h) => h.to_string(),
        None => empty_tree(user)?,
    };
    let out = user
        .cmd()
        .args([
            "diff-index",
            "--cached",
            "-z",
            "--name-only",
            &against,
            "--",
        ])
        .args(paths)
        .run()?;
    let staged: Vec<String> = crate::git::split_nul(&out)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if staged.is_empty() {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "cannot apply as a commit: you have staged changes in {}; nothing was changed \
         (commit or unstage them, or apply without a commit)",
        staged.join(", ")
    )))
}

fn empty_tree(repo: &Repo) -> Result<String> {
    repo.cmd()
        .args(["hash-object", "-t", "tree", "--stdin"])
        .stdin(Vec::new())
        .run_line()
}

/// HEAD's tree with `info` applied, in a temporary index, committed on top of HEAD as the user
/// (their identity; signed if they sign their commits).
fn make_commit(user: &Repo, head: Option<&str>, info: &[u8], message: &str) -> Result<String> {
    let scratch = Scratch::new()?;
    let index = scratch.path("index");
    let mut read = user.cmd().arg("read-tree").index(&index);
    read = match head {
        Some(h) => read.arg(h),
        None => read.arg("--empty"),
    };
    read.run()?;
    user.cmd()
        .args(["update-index", "-z", "--index-info"])
        .index(&index)
        .stdin(info.to_vec())
        .run()?;
    let tree = user.cmd().arg("write-tree").index(&index).run_line()?;
    let sign = user
        .cmd()
        .args(["config", "--type=bool", "--get", "commit.gpgSign"])
        .output()?;
    let mut cmd = user.cmd().arg("commit-tree");
    if sign.success() && sign.stdout.starts_with(b"true") {
        cmd = cmd.arg("-S");
    }
    if let Some(h) = head {
        cmd = cmd.args(["-p", h]);
    }
    cmd.args(["-m", message]).arg(tree).run_line()
}
