//! Bringing a change into the user's files, file by file: the change from commit `base` to
//! commit `theirs`, merged three-way with each file as it is now (`git merge-file` on temporary
//! copies), so edits made in the meantime are kept. Revert uses it with a run's end as base and
//! its start as theirs; applying a worktree with the worktree's base and result.
//!
//! Invariants:
//! - Only the paths that differ between `base` and `theirs` are written; nothing else.
//! - A file is replaced only when it is exactly as in `base` (then `theirs` is written), merged
//!   when both sides changed text, and otherwise left as it is and reported: binary files
//!   changed on both sides, changed here but deleted there (a created file edited since is
//!   never removed), a directory in the way. Text conflicts leave markers and are reported with
//!   their line. Nothing is lost silently.
//! - Everything is decided before the first write; a file is replaced by renaming a complete
//!   copy over it.
//! - Never touched: the index, HEAD, refs, stash.

use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::diff::{self, FileChange};
use super::private::Scratch;
use super::write::{write_paths, Write};
use crate::git::objects::{
    read_blob, read_blob_as_file, tree_entry, write_blob, Mode, MAX_BLOB, MODE_EXEC, MODE_FILE,
    MODE_GITLINK, MODE_LINK,
};
use crate::git::{io_error, Repo, Result};

/// The names conflict markers give the three sides.
#[derive(Debug, Clone)]
pub struct Labels {
    /// The file as it is now (`<<<<<<< yours`).
    pub ours: String,
    pub base: String,
    /// What is being brought in (`>>>>>>> task #3`).
    pub theirs: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Did not exist, written.
    Created,
    /// Was as in base, replaced.
    Updated,
    /// Changed on both sides, merged without conflict.
    Merged,
    /// Was as in base, removed.
    Deleted,
    /// Moved to its new name (its content merged if it was edited here).
    Renamed,
    /// Already as in theirs.
    Unchanged,
    /// Merged, with conflict markers in it.
    Conflicted,
    /// Left as it is because it cannot be merged (`note` says why); a conflict at line 1.
    Left,
    /// Not handled here (a submodule).
    Skipped,
    /// Writing it failed (`note` says why); it is as it was.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOutcome {
    /// Relative to the work tree's top level; for a rename, the new name.
    pub path: String,
    /// The old name of a renamed file (its buffer needs reloading too).
    pub old_path: Option<String>,
    pub action: Action,
    pub note: Option<String>,
}

/// One conflict for a quickfix list: a marker's line, or line 1 for a file left as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub path: String,
    pub line: u32,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub files: Vec<FileOutcome>,
    pub conflicts: Vec<Conflict>,
}

impl Report {
    /// Files whose content or existence changed.
    pub fn written(&self) -> impl Iterator<Item = &FileOutcome> {
        self.files.iter().filter(|f| {
            matches!(
                f.action,
                Action::Created
                    | Action::Updated
                    | Action::Merged
                    | Action::Deleted
                    | Action::Renamed
                    | Action::Conflicted
            )
        })
    }

    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty() && !self.files.iter().any(|f| f.action == Action::Failed)
    }
}

/// A file's state on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Side {
    Absent,
    File {
        bytes: Vec<u8>,
        exec: bool,
    },
    Link(Vec<u8>),
    /// Something we do not merge (a directory, a submodule, a special file).
    Other(&'static str),
}

/// The decision for one change, before anything is written.
pub(crate) struct Step {
    pub writes: Vec<(PathBuf, Write)>,
    pub outcome: FileOutcome,
    pub conflicts: Vec<Conflict>,
}

/// What the change is merged with.
pub(crate) enum Onto<'a> {
    /// The files under this top level, as they are now.
    Files(&'a Path),
    /// The tree of a commit of the store (`None`: an empty tree, no commit yet), in the form git
    /// stores files (no filters): for making a commit.
    Commit(Option<&'a str>),
}

/// Brings the change `base` → `theirs` (commits of `store`) into the files under `top`.
pub fn apply(
    store: &Repo,
    top: &Path,
    base: &str,
    theirs: &str,
    labels: &Labels,
) -> Result<Report> {
    let steps = plan(store, &Onto::Files(top), base, theirs, labels)?;
    Ok(write_all(top, steps))
}

/// Decides every file of the change (reads only).
pub(crate) fn plan(
    store: &Repo,
    onto: &Onto<'_>,
    base: &str,
    theirs: &str,
    labels: &Labels,
) -> Result<Vec<Step>> {
    let files = diff::files(store, base, theirs)?;
    let scratch = Scratch::new()?;
    let mut steps = Vec::new();
    for f in &files {
        steps.push(plan_file(store, onto, f, labels, &scratch)?);
    }
    Ok(steps)
}

/// The conflicts a plan would leave.
pub(crate) fn conflicts_of(steps: &[Step]) -> Vec<Conflict> {
    steps
        .iter()
        .flat_map(|s| s.conflicts.iter().cloned())
        .collect()
}

/// A plan made `Onto::Commit` as `git update-index -z --index-info` input: blobs written for
/// the new contents, a zero mode and id to remove an entry. `oid_len` is the repository's
/// object id length (40, or 64 with SHA-256).
pub(crate) fn index_info(store: &Repo, steps: Vec<Step>, oid_len: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let zero = "0".repeat(oid_len);
    for step in steps {
        for (path, w) in step.writes {
            let (mode, oid) = match w {
                Write::Remove => (0, zero.clone()),
                Write::File { bytes, exec } => {
                    let mode = if exec { MODE_EXEC } else { MODE_FILE };
                    (mode, write_blob(store, bytes)?)
                }
                Write::Link(target) => (MODE_LINK, write_blob(store, target)?),
            };
            out.extend_from_slice(format!("{mode:o} {oid}\t").as_bytes());
            out.extend_from_slice(path.as_os_str().as_bytes());
            out.push(0);
        }
    }
    Ok(out)
}

fn plan_file(
    store: &Repo,
    onto: &Onto<'_>,
    f: &FileChange,
    labels: &Labels,
    scratch: &Scratch,
) -> Result<Step> {
    let dst = f.raw_path.clone();
    let src = f.raw_old_path.clone().unwrap_or_else(|| dst.clone());
    let mut step = Step {
        writes: Vec::new(),
        outcome: FileOutcome {
            path: f.path.clone(),
            old_path: f.old_path.clone(),
            action: Action::Unchanged,
            note: None,
        },
        conflicts: Vec::new(),
    };
    if f.is_submodule() {
        step.outcome.action = Action::Skipped;
        step.outcome.note = Some("a submodule: the commit it is at is not changed here".into());
        return Ok(step);
    }
    let as_file = matches!(onto, Onto::Files(_));
    let base = stored_side(store, f.old_mode, &f.old_oid, &src, as_file)?;
    let theirs = stored_side(store, f.new_mode, &f.new_oid, &dst, as_file)?;
    let ours = ours_side(store, onto, &src)?;
    let renamed = src != dst;
    let ours_dst = if renamed {
        ours_side(store, onto, &dst)?
    } else {
        ours.clone()
    };
    if renamed && ours == Side::Absent && same(&ours_dst, &theirs) {
        return Ok(step);
    }
    let (write, action, lines) = match decide(store, &base, &theirs, &ours, labels, scratch)? {
        // The content is already right, under the old name: move it.
        Decision::Keep if renamed => (write_of(&ours), Action::Renamed, Vec::new()),
        Decision::Keep => return Ok(step),
        Decision::Write(_, w) if renamed => (w, Action::Renamed, Vec::new()),
        Decision::Refuse(reason) => {
            step.left(&f.path, reason);
            return Ok(step);
        }
        Decision::Write(action, w) => (w, action, Vec::new()),
        Decision::Conflicted(w, lines) => (w, Action::Conflicted, lines),
    };
    if renamed && ours_dst != Side::Absent && !same(&ours_dst, &side_of(&write)) {
        step.left(
            &f.path,
            format!("renamed from {}, but {} exists here", lossy(&src), f.path),
        );
        return Ok(step);
    }
    // The new name first: if writing it fails, the old one is still there.
    step.writes.push((dst, write));
    if renamed && ours != Side::Absent {
        step.writes.push((src, Write::Remove));
    }
    step.outcome.action = action;
    for line in lines {
        step.conflicts.push(Conflict {
            path: f.path.clone(),
            line,
            reason: format!("conflict between {} and {}", labels.ours, labels.theirs),
        });
    }
    Ok(step)
}

impl Step {
    /// The file stays as it is; the reason is reported as a conflict at line 1.
    fn left(&mut self, path: &str, reason: String) {
        self.outcome.action = Action::Left;
        self.outcome.note = Some(reason.clone());
        self.conflicts.push(Conflict {
            path: path.to_string(),
            line: 1,
            reason,
        });
    }
}

enum Decision {
    /// The file already holds what it should (theirs, or theirs merged in).
    Keep,
    Write(Action, Write),
    /// Merged with markers at these lines.
    Conflicted(Write, Vec<u32>),
    Refuse(String),
}

/// The three-way decision for one file (see the module's invariants).
fn decide(
    store: &Repo,
    base: &Side,
    theirs: &Side,
    ours: &Side,
    labels: &Labels,
    scratch: &Scratch,
) -> Result<Decision> {
    if same(ours, theirs) {
        return Ok(Decision::Keep);
    }
    if same(ours, base) {
        let action = match (ours, theirs) {
            (Side::Absent, _) => Action::Created,
            (_, Side::Absent) => Action::Deleted,
            _ => Action::Updated,
        };
        let w = match theirs {
            Side::Absent => Write::Remove,
            Side::File { bytes, exec } => Write::File {
                bytes: bytes.clone(),
                exec: *exec,
            },
            Side::Link(t) => Write::Link(t.clone()),
            Side::Other(what) => return Ok(Decision::Refuse(format!("cannot write {what}"))),
        };
        return Ok(Decision::Write(action, w));
    }
    let theirs_name = &labels.theirs;
    match (base, theirs, ours) {
        (_, _, Side::Other(what)) => Ok(Decision::Refuse(format!("{what} is in the way"))),
        (_, Side::Absent, _) => Ok(Decision::Refuse(format!(
            "changed since {}, deleted by {theirs_name}: kept",
            labels.base
        ))),
        (_, _, Side::Absent) => Ok(Decision::Refuse(format!(
            "deleted since {}, changed by {theirs_name}: left deleted",
            labels.base
        ))),
        (
            Side::File { .. } | Side::Absent,
            Side::File {
                bytes: t,
                exec: t_exec,
            },
            Side::File {
                bytes: o,
                exec: o_exec,
            },
        ) => {
            let (b, b_exec) = match base {
                Side::File { bytes, exec } => (bytes.as_slice(), Some(*exec)),
                _ => (&[][..], None),
            };
            if is_binary(b) || is_binary(t) || is_binary(o) {
                return Ok(Decision::Refuse(format!(
                    "a binary file changed both here and by {theirs_name}: kept as it is"
                )));
            }
            // The executable bit follows theirs unless it was changed here.
            let exec = if b_exec.is_none_or(|b| b == *o_exec) {
                *t_exec
            } else {
                *o_exec
            };
            match merge_text(store, scratch, o, b, t, labels)? {
                // Their change is in the file already (applied twice, or made here too).
                Merged::Clean(bytes) if bytes == *o && exec == *o_exec => Ok(Decision::Keep),
                Merged::Clean(bytes) => {
                    Ok(Decision::Write(Action::Merged, Write::File { bytes, exec }))
                }
                Merged::Conflicts(bytes, lines) => {
                    Ok(Decision::Conflicted(Write::File { bytes, exec }, lines))
                }
                Merged::Refused(why) => Ok(Decision::Refuse(why)),
            }
        }
        _ => Ok(Decision::Refuse(format!(
            "a symbolic link or a change of type, changed both here and by {theirs_name}: kept \
             as it is"
        ))),
    }
}

/// Same content and kind (and executable bit for files).
fn same(a: &Side, b: &Side) -> bool {
    a == b
}

/// The write that leaves `side` behind.
fn write_of(side: &Side) -> Write {
    match side {
        Side::File { bytes, exec } => Write::File {
            bytes: bytes.clone(),
            exec: *exec,
        },
        Side::Link(t) => Write::Link(t.clone()),
        Side::Absent | Side::Other(_) => Write::Remove,
    }
}

/// The side a write leaves behind.
fn side_of(w: &Write) -> Side {
    match w {
        Write::File { bytes, exec } => Side::File {
            bytes: bytes.clone(),
            exec: *exec,
        },
        Write::Link(t) => Side::Link(t.clone()),
        Write::Remove => Side::Absent,
    }
}

/// git's test: a NUL in the first 8000 bytes.
fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8000)].contains(&0)
}

fn lossy(p: &Path) -> String {
    String::from_utf8_lossy(p.as_os_str().as_bytes()).into_owned()
}

/// A file of `store`: as the work tree holds it (`as_file`: filters and end-of-line conversion
/// applied for `path`), or as stored.
fn stored_side(store: &Repo, mode: Mode, oid: &str, path: &Path, as_file: bool) -> Result<Side> {
    Ok(match mode {
        0 => Side::Absent,
        MODE_LINK => Side::Link(read_blob(store, oid)?),
        MODE_GITLINK => Side::Other("a submodule"),
        m => Side::File {
            bytes: if as_file {
                read_blob_as_file(store, oid, path)?
            } else {
                read_blob(store, oid)?
            },
            exec: m == MODE_EXEC,
        },
    })
}

/// What the change meets at `path`.
fn ours_side(store: &Repo, onto: &Onto<'_>, path: &Path) -> Result<Side> {
    match onto {
        Onto::Files(top) => current_side(top, path),
        Onto::Commit(None) => Ok(Side::Absent),
        Onto::Commit(Some(commit)) => match tree_entry(store, commit, path)? {
            Some(e) => stored_side(store, e.mode, &e.oid, path, false),
            None => Ok(Side::Absent),
        },
    }
}

/// The file at `top/path` now.
fn current_side(top: &Path, path: &Path) -> Result<Side> {
    let full = top.join(path);
    let meta = match fs::symlink_metadata(&full) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Side::Absent),
        // A file where a directory is expected (`a` is a file, `a/b` is asked for).
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => {
            return Ok(Side::Other("a file where a directory should be"))
        }
        Err(e) => return Err(io_error("read", &full, e)),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(&full).map_err(|e| io_error("read link", &full, e))?;
        return Ok(Side::Link(target.into_os_string().into_vec()));
    }
    if ft.is_dir() {
        return Ok(Side::Other("a directory"));
    }
    if !ft.is_file() {
        return Ok(Side::Other("a special file"));
    }
    if meta.len() > MAX_BLOB as u64 {
        return Ok(Side::Other("a file too large to merge"));
    }
    let bytes = fs::read(&full).map_err(|e| io_error("read", &full, e))?;
    Ok(Side::File {
        bytes,
        exec: meta.permissions().mode() & 0o111 != 0,
    })
}

/// Performs the planned writes; a failure is reported for its file and the others go on.
pub(crate) fn write_all(top: &Path, steps: Vec<Step>) -> Report {
    let mut report = Report::default();
    for mut step in steps {
        if let Err(e) = write_paths(top, &step.writes) {
            step.outcome.action = Action::Failed;
            step.outcome.note = Some(e.to_string());
        }
        report.conflicts.append(&mut step.conflicts);
        report.files.push(step.outcome);
    }
    report
}

enum Merged {
    Clean(Vec<u8>),
    /// With markers; the lines (from 1) where each conflict starts.
    Conflicts(Vec<u8>, Vec<u32>),
    Refused(String),
}

/// `git merge-file` on temporary copies of the three versions.
fn merge_text(
    store: &Repo,
    scratch: &Scratch,
    ours: &[u8],
    base: &[u8],
    theirs: &[u8],
    labels: &Labels,
) -> Result<Merged> {
    let ours_path = scratch.write("ours", ours)?;
    let base_path = scratch.write("base", base)?;
    let theirs_path = scratch.write("theirs", theirs)?;
    let cmd = store
        .cmd()
        .args([
            "merge-file",
            "-p",
            "-L",
            &labels.ours,
            "-L",
            &labels.base,
            "-L",
            &labels.theirs,
        ])
        .arg(&ours_path)
        .arg(&base_path)
        .arg(&theirs_path)
        .max_stdout(MAX_BLOB * 2);
    let command = cmd.display();
    let out = cmd.output()?;
    match out.exit.code() {
        Some(0) => Ok(Merged::Clean(out.stdout)),
        Some(n) if (1..128).contains(&n) => {
            let lines = marker_lines(&out.stdout);
            Ok(Merged::Conflicts(out.stdout, lines))
        }
        _ if out.stderr.contains("binary") => Ok(Merged::Refused(
            "git considers it binary: kept as it is".into(),
        )),
        _ => Err(crate::git::failed(command, store.top.clone(), &out)),
    }
}

/// Lines (from 1) that open a conflict (`<<<<<<< `).
fn marker_lines(text: &[u8]) -> Vec<u32> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| l.starts_with(b"<<<<<<< ") || *l == b"<<<<<<<")
        .map(|(i, _)| i as u32 + 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_by_line() {
        let text = b"a\n<<<<<<< yours\nx\n=======\ny\n>>>>>>> task\nb\n<<<<<<< yours\n";
        assert_eq!(marker_lines(text), [2, 8]);
    }

    #[test]
    fn binary_is_a_nul_early_on() {
        assert!(is_binary(b"a\0b"));
        assert!(!is_binary(b"plain text"));
        let mut late = vec![b'a'; 9000];
        late.push(0);
        assert!(!is_binary(&late));
    }
}
