//! Files only the user can read: created with mode 0600 (directories 0700) whatever the umask,
//! replaced atomically, synced when that matters.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{io_err, Store, StoreError, DIR_MODE, FILE_MODE};

impl Store {
    /// Writes a file only the user can read (prompts can hold secrets), replacing any content.
    /// Not synced: a reader sees it at once, and `sync_file` makes it durable when that matters
    /// (a run's prompt is synced while its CLI starts, before the record that names the run).
    pub fn write_file_private(path: &Path, data: &[u8]) -> Result<(), StoreError> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|e| io_err("cannot create", path, e))?;
        // An existing file keeps its old mode and a new one gets the umask's: fix both.
        f.set_permissions(Permissions::from_mode(FILE_MODE))
            .map_err(|e| io_err("cannot set permissions of", path, e))?;
        f.write_all(data)
            .map_err(|e| io_err("cannot write", path, e))
    }

    /// Makes a file's content durable.
    pub fn sync_file(path: &Path) -> Result<(), StoreError> {
        File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err("cannot sync", path, e))
    }

    /// Opens (creating it 0600 if needed) a file for appending, e.g. `transcript.jsonl` and
    /// `stderr.log` for the CLI's stdout/stderr: every run appends after the previous ones.
    pub fn open_append_private(path: &Path) -> Result<File, StoreError> {
        let f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|e| io_err("cannot open", path, e))?;
        f.set_permissions(Permissions::from_mode(FILE_MODE))
            .map_err(|e| io_err("cannot set permissions of", path, e))?;
        Ok(f)
    }

    /// The last `max` bytes of `path` after byte `from` (all of them when fewer): a run's part
    /// of an appended file, such as the end of its stderr, in bounded memory.
    pub fn read_tail(path: &Path, from: u64, max: u64) -> Result<Vec<u8>, StoreError> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = File::open(path).map_err(|e| io_err("cannot open", path, e))?;
        let len = f
            .metadata()
            .map_err(|e| io_err("cannot read", path, e))?
            .len();
        let start = from.max(len.saturating_sub(max));
        let mut out = Vec::new();
        if start < len {
            f.seek(SeekFrom::Start(start))
                .and_then(|_| f.take(len - start).read_to_end(&mut out))
                .map_err(|e| io_err("cannot read", path, e))?;
        }
        Ok(out)
    }
}

pub(super) fn next_unique() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

pub(super) fn set_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| io_err("cannot set permissions of", path, e))
}

/// `mkdir` with mode 0700 whatever the umask. With `ok_if_exists`, an existing dir is fine
/// (and left as it is); without, `AlreadyExists` is returned so it can arbitrate.
pub(super) fn create_private_dir(path: &Path, ok_if_exists: bool) -> Result<(), StoreError> {
    match DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => set_mode(path, DIR_MODE),
        Err(e) if ok_if_exists && e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {
            Ok(())
        }
        Err(e) => Err(io_err("cannot create directory", path, e)),
    }
}

/// Replaces the file at `path` with `data`, atomically: a temp file in the same dir (so
/// `rename` is atomic), fsync, rename, fsync the dir. Readers see the old content or the new.
/// The file is 0600 whatever the umask. Other rooms' private files use it too (`changes/`).
pub(crate) fn replace_file(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (tmp, mut file) = loop {
        // pid + counter is unique among live writers; a stale file left by a crashed process
        // with a reused pid just makes us try the next name.
        let tmp = dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            next_unique()
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("cannot create", &tmp, e)),
        }
    };
    let result = (|| {
        file.set_permissions(Permissions::from_mode(FILE_MODE))
            .map_err(|e| io_err("cannot set permissions of", &tmp, e))?;
        file.write_all(data)
            .map_err(|e| io_err("cannot write", &tmp, e))?;
        file.sync_all()
            .map_err(|e| io_err("cannot sync", &tmp, e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| io_err("cannot replace", path, e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes a rename or create in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot sync directory", dir, e))
}
