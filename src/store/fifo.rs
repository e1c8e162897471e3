//! A task's stdin FIFO (doc/protocol.md, "Who owns the CLI's stdin"): made 0600 in the task's
//! 0700 directory for each run, and checked before every open, on the path and on the opened
//! file, so that a FIFO someone else made or widened is refused, never written or read.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::sys::stat::Mode;

use super::{io_err, StoreError, FILE_MODE};

/// How a FIFO is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FifoAccess {
    /// The CLI's side: read and write, so the CLI itself holds a writer and never sees EOF.
    ReadWrite,
    /// A backend's side: write only; fails with `ENXIO` when nobody reads (the CLI is gone).
    /// The file is blocking once open.
    Write,
}

/// Why an existing FIFO is not ours to use, or None when it is.
fn refusal(meta: &std::fs::Metadata) -> Option<String> {
    if !meta.file_type().is_fifo() {
        return Some("it is not a FIFO".into());
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Some(format!("it belongs to uid {}, not {me}", meta.uid()));
    }
    let mode = meta.mode() & 0o7777;
    if mode != FILE_MODE {
        return Some(format!("its mode is {mode:04o}, not 0600"));
    }
    None
}

fn refused(path: &Path, why: String) -> StoreError {
    StoreError::Io(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("refusing {}: {why}", path.display()),
    ))
}

/// Makes a fresh FIFO at `path` (mode 0600): an earlier one of ours is replaced; anything else
/// there (another file type, another owner, another mode) is refused and left alone.
pub fn make_fifo(path: &Path) -> Result<(), StoreError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if let Some(why) = refusal(&meta) {
                return Err(refused(path, why));
            }
            std::fs::remove_file(path).map_err(|e| io_err("cannot remove", path, e))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("cannot inspect", path, e)),
    }
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(FILE_MODE))
        .map_err(|e| io_err("cannot make the FIFO", path, io::Error::from(e)))?;
    // The umask may have taken bits away; never added any.
    super::files::set_mode(path, FILE_MODE)
}

/// Opens the FIFO at `path` after checking it: a FIFO, ours, mode 0600, and (no symlink
/// followed) the very file that was checked.
pub fn open_fifo(path: &Path, access: FifoAccess) -> Result<File, StoreError> {
    let before = std::fs::symlink_metadata(path).map_err(|e| io_err("cannot open", path, e))?;
    if let Some(why) = refusal(&before) {
        return Err(refused(path, why));
    }
    let mut opts = OpenOptions::new();
    match access {
        FifoAccess::ReadWrite => opts.read(true).write(true),
        FifoAccess::Write => opts.write(true),
    };
    let flags = match access {
        // Without a reader, opening for writing would block: fail at once instead.
        FifoAccess::Write => libc_flags::O_NONBLOCK,
        FifoAccess::ReadWrite => 0,
    };
    let file = opts
        .custom_flags(flags | libc_flags::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(n) if n == nix::errno::Errno::ENXIO as i32 => io_err(
                "nobody reads (the CLI is gone)",
                path,
                io::Error::from(io::ErrorKind::BrokenPipe),
            ),
            _ => io_err("cannot open", path, e),
        })?;
    let after = file
        .metadata()
        .map_err(|e| io_err("cannot inspect", path, e))?;
    if after.dev() != before.dev() || after.ino() != before.ino() {
        return Err(refused(path, "it was replaced while being opened".into()));
    }
    if let Some(why) = refusal(&after) {
        return Err(refused(path, why));
    }
    if access == FifoAccess::Write {
        // Blocking from now on: a long line is written whole, waiting for the CLI to read.
        let fl = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|e| io_err("cannot set up", path, io::Error::from(e)))?;
        let fl = nix::fcntl::OFlag::from_bits_truncate(fl) & !nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(fl))
            .map_err(|e| io_err("cannot set up", path, io::Error::from(e)))?;
    }
    Ok(file)
}

/// The open(2) flags std does not name.
mod libc_flags {
    pub const O_NONBLOCK: i32 = nix::fcntl::OFlag::O_NONBLOCK.bits();
    pub const O_NOFOLLOW: i32 = nix::fcntl::OFlag::O_NOFOLLOW.bits();
}

/// Takes the exclusive lock on `path` (a 0600 file made if needed), waiting for it: every
/// backend writing a task's stdin holds it for one whole line, so lines never interleave.
pub fn lock_exclusive(path: &Path) -> Result<nix::fcntl::Flock<File>, StoreError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .custom_flags(libc_flags::O_NOFOLLOW)
        .open(path)
        .map_err(|e| io_err("cannot open", path, e))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io_err("cannot lock", path, io::Error::from(e)))
}
