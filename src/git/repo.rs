//! Finding a work tree and its repository: top level, git directory, common directory, HEAD,
//! and whether it is a submodule or a linked worktree.
//!
//! Discovery reads only (`rev-parse`, `symbolic-ref`); later commands name the git directory and
//! the work tree explicitly, so nothing in the environment or a `.git` file met on the way can
//! send them elsewhere.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{io_error, Cmd, Error, Git, Result};

/// A work tree and the repository it belongs to. `git_dir` is the work tree's own (for a linked
/// worktree `<common>/worktrees/<name>`), `common_dir` the one shared by all its worktrees
/// (objects, refs).
#[derive(Debug, Clone)]
pub struct Repo {
    pub git: Git,
    pub top: PathBuf,
    pub git_dir: PathBuf,
    pub common_dir: PathBuf,
    /// The superproject's work tree when this work tree is a submodule.
    pub superproject: Option<PathBuf>,
}

/// Where HEAD is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The commit, `None` on an unborn branch (a repository without commits).
    pub commit: Option<String>,
    /// The branch (`refs/heads/main`), `None` when detached.
    pub branch: Option<String>,
}

impl Repo {
    /// The work tree containing `dir`. Errors: `NotAWorkTree` (no repository, or git refuses
    /// it, e.g. dubious ownership: `reason` says), `Bare` (a bare repository or a git directory).
    pub fn discover(git: &Git, dir: &Path) -> Result<Repo> {
        let meta = std::fs::metadata(dir).map_err(|e| io_error("open directory", dir, e))?;
        if !meta.is_dir() {
            return Err(Error::NotAWorkTree {
                dir: dir.to_path_buf(),
                reason: "not a directory".into(),
            });
        }
        let out = git
            .cmd(dir)
            .args([
                "rev-parse",
                "--is-bare-repository",
                "--is-inside-work-tree",
                "--absolute-git-dir",
                "--git-common-dir",
            ])
            .output()?;
        if !out.success() {
            return Err(Error::NotAWorkTree {
                dir: dir.to_path_buf(),
                reason: first_line(&out.stderr),
            });
        }
        let command = "git rev-parse --is-bare-repository …";
        let lines = lines(&out.stdout, 4, command)?;
        if lines[0] == b"true" {
            return Err(Error::Bare {
                dir: dir.to_path_buf(),
            });
        }
        if lines[1] != b"true" {
            // Inside `.git` of a repository with a work tree: still no work tree here.
            return Err(Error::Bare {
                dir: dir.to_path_buf(),
            });
        }
        let git_dir = path_of(lines[2]);
        // Relative to `dir` when it is (`--path-format=absolute` needs git 2.31).
        let common_dir = dir.join(path_of(lines[3]));
        let common_dir = std::fs::canonicalize(&common_dir).unwrap_or(common_dir);
        let out = git
            .cmd(dir)
            .args([
                "rev-parse",
                "--show-toplevel",
                "--show-superproject-working-tree",
            ])
            .run()?;
        let mut top_lines = out
            .strip_suffix(b"\n")
            .unwrap_or(&out)
            .split(|&b| b == b'\n');
        let top = match top_lines.next() {
            Some(t) if !t.is_empty() => path_of(t),
            _ => {
                return Err(Error::Parse {
                    command: "git rev-parse --show-toplevel".into(),
                    reason: "no top level".into(),
                })
            }
        };
        let superproject = top_lines.next().filter(|l| !l.is_empty()).map(path_of);
        Ok(Repo {
            git: git.clone(),
            top,
            git_dir,
            common_dir,
            superproject,
        })
    }

    /// A repository known from a record (a snapshot's): `git_dir` with `work_tree`, without
    /// discovery. `common_dir` is taken to be `git_dir` (git finds the real one itself).
    pub fn at(git: &Git, git_dir: &Path, work_tree: &Path) -> Repo {
        Repo {
            git: git.clone(),
            top: work_tree.to_path_buf(),
            git_dir: git_dir.to_path_buf(),
            common_dir: git_dir.to_path_buf(),
            superproject: None,
        }
    }

    /// A command on this repository and work tree, run in the top level.
    pub fn cmd(&self) -> Cmd<'_> {
        let mut git_dir = std::ffi::OsString::from("--git-dir=");
        git_dir.push(&self.git_dir);
        let mut work_tree = std::ffi::OsString::from("--work-tree=");
        work_tree.push(&self.top);
        self.git.cmd(&self.top).arg(git_dir).arg(work_tree)
    }

    /// True for a work tree added with `git worktree add`.
    pub fn is_linked_worktree(&self) -> bool {
        self.git_dir != self.common_dir
    }

    /// HEAD's commit and branch.
    pub fn head(&self) -> Result<Head> {
        let commit = self.resolve("HEAD")?;
        let out = self.cmd().args(["symbolic-ref", "-q", "HEAD"]).output()?;
        let branch = if out.success() {
            let b = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
            (!b.is_empty()).then_some(b)
        } else if out.exit.code() == Some(1) {
            None
        } else {
            return Err(super::failed(
                "git symbolic-ref -q HEAD".into(),
                self.top.clone(),
                &out,
            ));
        };
        Ok(Head { commit, branch })
    }

    /// The commit `rev` names, `None` if it names none (an unborn HEAD, a missing ref). `rev` is
    /// ours (a ref name, an object id), never the user's text.
    pub fn resolve(&self, rev: &str) -> Result<Option<String>> {
        let out = self
            .cmd()
            .args(["rev-parse", "-q", "--verify"])
            .arg(format!("{rev}^{{commit}}"))
            .output()?;
        if out.success() {
            Ok(Some(
                String::from_utf8_lossy(&out.stdout).trim_end().to_string(),
            ))
        } else if out.exit.code() == Some(1) {
            Ok(None)
        } else {
            Err(super::failed(
                format!("git rev-parse -q --verify {rev}"),
                self.top.clone(),
                &out,
            ))
        }
    }

    /// Paths (relative to the top level) of the submodules HEAD records: their files are not
    /// part of a snapshot, only the commit each one is at.
    pub fn submodules(&self) -> Result<Vec<PathBuf>> {
        let Some(head) = self.resolve("HEAD")? else {
            return Ok(Vec::new());
        };
        let out = self
            .cmd()
            .args(["ls-tree", "-r", "-z", "--full-tree", &head])
            .run()?;
        let mut found = Vec::new();
        for rec in super::split_nul(&out) {
            // "<mode> SP <type> SP <oid> TAB <path>"
            if let Some(tab) = rec.iter().position(|&b| b == b'\t') {
                if rec.starts_with(b"160000 ") {
                    found.push(path_of(&rec[tab + 1..]));
                }
            }
        }
        Ok(found)
    }
}

fn path_of(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Exactly `n` newline-terminated lines (a path with a newline in it would make more).
fn lines<'a>(out: &'a [u8], n: usize, command: &str) -> Result<Vec<&'a [u8]>> {
    let body = out.strip_suffix(b"\n").unwrap_or(out);
    let v: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    if v.len() != n {
        return Err(Error::Parse {
            command: command.into(),
            reason: format!("expected {n} lines, got {}", v.len()),
        });
    }
    Ok(v)
}
