//! Our own files: private directories, locks, whole-file replacement and temporary directories
//! (they hold copies of the user's files and their names, so only the user can read them).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::git::{io_error, Result};
use crate::store::StoreError;

/// A directory only we can read (it holds copies of the user's files' contents and names).
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_error("create directory", dir, e))
}

/// An exclusive lock held until the value is dropped.
pub(crate) fn lock(path: &Path) -> Result<Flock<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error("open", path, e))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| io_error("lock", path, io::Error::from(errno)))
}

/// Replaces `path`'s content at once (the store's atomic replacement: a crash leaves the old
/// content or the new, never a part; the file is 0600).
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::store::replace_file(path, bytes).map_err(|e| {
        let source = match e {
            StoreError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        };
        io_error("replace", path, source)
    })
}

/// A private temporary directory, removed when dropped.
pub(crate) struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub fn new() -> Result<Scratch> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("claude-tasks-merge-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io_error("create directory", &dir, e))?;
        Ok(Scratch { dir })
    }

    /// A path in the directory (nothing is created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.dir.join(name);
        fs::write(&path, bytes).map_err(|e| io_error("write", &path, e))?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
