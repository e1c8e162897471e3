//! One task's directory, and the name of every file in it.

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// The record's file name; the store's listings look for it in every task directory.
pub(super) const RECORD_FILE: &str = "task.json";

/// `<root>/<project key>/<id>/`: a task's record, the CLI's output and the files through which
/// backends coordinate. Every file name of a task directory is spelled here. It derefs to its
/// path for what is not a file of its own (listing it, removing it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDir(PathBuf);

impl TaskDir {
    pub(super) fn new(path: PathBuf) -> TaskDir {
        TaskDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `task.json`, the task's record (`Store::write_record`).
    pub fn record(&self) -> PathBuf {
        self.0.join(RECORD_FILE)
    }

    /// The CLI's stdout, every run appended: the truth about what the agent did.
    pub fn transcript(&self) -> PathBuf {
        self.0.join("transcript.jsonl")
    }

    /// The CLI's stderr, every run appended.
    pub fn stderr(&self) -> PathBuf {
        self.0.join("stderr.log")
    }

    /// The prompt of run `n` (1-based), the CLI's stdin.
    pub fn prompt(&self, n: u32) -> PathBuf {
        self.0.join(format!("prompt-{n}.txt"))
    }

    /// The `k`-th message (1-based) said while run `n` went on.
    pub fn said(&self, n: u32, k: usize) -> PathBuf {
        self.0.join(format!("said-{n}-{k}.txt"))
    }

    /// Locked (`flock`) by the backend that owns the task while it does.
    pub fn owner_lock(&self) -> PathBuf {
        self.0.join("owner.lock")
    }

    /// A worktree task's git worktree, `claude-tasks-<id>` (git names the worktree after it).
    pub fn worktree(&self) -> PathBuf {
        let id = self.0.file_name().unwrap_or_default().to_string_lossy();
        self.0.join(format!("claude-tasks-{id}"))
    }

    /// The private index through which a worktree task's worktree is snapshotted (its result).
    pub fn worktree_index(&self) -> PathBuf {
        self.0.join("worktree-index")
    }

    /// The CLI's stdin, a FIFO (0600) made for each run; the CLI holds it open for reading and
    /// writing, every backend that writes to it opens it again (`store::open_fifo`).
    pub fn stdin_fifo(&self) -> PathBuf {
        self.0.join("stdin.fifo")
    }

    /// Locked (`flock`) by a backend while it writes one line to `stdin.fifo`.
    pub fn stdin_lock(&self) -> PathBuf {
        self.0.join("stdin.lock")
    }

    /// Run `n`'s record of its changes outside git (`changes::fallback`): the files its edit
    /// tools named, kept before their first edit.
    pub fn changes(&self, n: u32) -> PathBuf {
        self.0.join(format!("changes-{n}"))
    }

    /// Created by a backend that cancels a task another backend runs, so that the owner reports
    /// the run as cancelled rather than failed.
    pub fn cancel_request(&self) -> PathBuf {
        self.0.join("cancel-request")
    }
}

impl Deref for TaskDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TaskDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}
