//! The durable on-disk store (DESIGN §2): `<root>/<project key>/<id>/` per task.
//!
//! Several backends (one per editor) share it without locks: `mkdir` arbitrates ids, records
//! are replaced by `rename`, and anything unreadable is skipped with a warning, never fatal,
//! so one bad directory cannot hide every other task.

mod detached;
mod fifo;
mod files;
mod shared;
mod task_dir;
#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::hash::fnv1a64;
use crate::task::{TaskRecord, RECORD_SCHEMA};
pub use detached::DetachedTask;
pub use fifo::{lock_exclusive, make_fifo, open_fifo, FifoAccess};
pub(crate) use files::replace_file;
use files::{create_private_dir, next_unique, set_mode, sync_dir};
pub use shared::EditorFiles;
pub use task_dir::TaskDir;
use task_dir::RECORD_FILE;

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
const PROJECT_FILE: &str = "project.json";
/// High-water mark of ids: an empty file `last-id-<n>`. The value lives in the name, not the
/// content, so raising it is a single atomic create and concurrent writers can never lower it
/// (see `raise_high_water`).
const HIGH_WATER_PREFIX: &str = "last-id-";
/// A disposed task dir is renamed to this first, so no listing ever sees it half-deleted.
const TRASH_PREFIX: &str = ".removed-";
const KEY_PREFIX_MAX: usize = 60;
/// A task dir without `task.json` younger than this is probably being started by another
/// backend right now; older ones are leftovers worth a warning.
const UNWRITTEN_GRACE: Duration = Duration::from_secs(60);
/// Bound on `mkdir` retries, so a file system that always says "exists" is an error, not a hang.
const MAX_ALLOC_ATTEMPTS: u64 = 10_000;

#[derive(Debug)]
pub enum StoreError {
    /// The message names the operation and the path.
    Io(io::Error),
    Corrupt {
        path: PathBuf,
        reason: String,
    },
    NotFound {
        cwd: String,
        id: u64,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(e) => write!(f, "{e}"),
            StoreError::Corrupt { path, reason } => {
                write!(f, "corrupt task record {}: {reason}", path.display())
            }
            StoreError::NotFound { cwd, id } => write!(f, "no task #{id} in {cwd}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io(e) => e.source(),
            _ => None,
        }
    }
}

fn io_err(op: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Io(io::Error::new(
        e.kind(),
        format!("{op} {}: {e}", path.display()),
    ))
}

#[derive(Serialize, Deserialize)]
struct ProjectInfo {
    cwd: String,
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store at `root`, creating it (and its parents) private to the user.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let existed = fs::symlink_metadata(root).is_ok();
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(root)
            .map_err(|e| io_err("cannot create state directory", root, e))?;
        if !existed {
            // The mode given to mkdir is filtered by the umask; set it for real. A root that
            // already existed is the user's choice and is left alone.
            set_mode(root, DIR_MODE)?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// The store at `root` when [`Store::open`] failed (a file in the way, no permission, a
    /// read-only file system): every operation then fails with its own error, naming the path,
    /// instead of the backend refusing to start.
    pub fn unopened(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory name for a project: the readable tail of the absolute cwd plus a hash of all
    /// of it, so distinct cwds that sanitize alike still get distinct keys. A trailing `/` is
    /// ignored (`/a/b/` and `/a/b` are one project).
    pub fn project_key(cwd: &str) -> String {
        let cwd = match cwd.trim_end_matches('/') {
            "" => cwd,
            trimmed => trimmed,
        };
        let sanitized: Vec<char> = cwd
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        // The tail names the project; the head is usually just /home/<user>.
        let tail = &sanitized[sanitized.len().saturating_sub(KEY_PREFIX_MAX)..];
        // No leading '.' (hidden, or "..") nor '-' (reads as an option in a shell).
        let readable: String = tail
            .iter()
            .collect::<String>()
            .trim_start_matches(['-', '.'])
            .to_string();
        let readable = if readable.is_empty() {
            "root".to_string()
        } else {
            readable
        };
        let h = fnv1a64(cwd.as_bytes());
        format!("{readable}-{:08x}", (h ^ (h >> 32)) as u32)
    }

    pub fn project_dir(&self, cwd: &str) -> PathBuf {
        self.root.join(Self::project_key(cwd))
    }

    /// The project's private git index (`changes::snapshot`): kept between its tasks' snapshots
    /// so that each hashes only what changed since the last.
    pub fn git_index(&self, cwd: &str) -> PathBuf {
        self.project_dir(cwd).join("git-index")
    }

    pub fn task_dir(&self, cwd: &str, id: u64) -> TaskDir {
        TaskDir::new(self.project_dir(cwd).join(id.to_string()))
    }

    /// Reserves the next id of the project by creating its directory. `mkdir` is the arbiter:
    /// two backends racing for the same id cannot both succeed, the loser takes the next one.
    pub fn allocate(&self, cwd: &str) -> Result<(u64, TaskDir), StoreError> {
        let project = self.project_dir(cwd);
        create_private_dir(&project, true)?;
        ensure_project_file(&project, cwd)?;
        let scan = scan_project(&project)?;
        let mut id = scan.max_task.max(scan.high_water) + 1;
        for _ in 0..MAX_ALLOC_ATTEMPTS {
            let dir = project.join(id.to_string());
            match create_private_dir(&dir, false) {
                Ok(()) => {
                    // Best effort: if this fails the dir itself still holds the id, and
                    // `remove` raises the mark before deleting anything.
                    let _ = raise_high_water(&project, id, &scan.markers, false);
                    return Ok((id, TaskDir::new(dir)));
                }
                Err(StoreError::Io(e)) if e.kind() == io::ErrorKind::AlreadyExists => id += 1,
                Err(e) => return Err(e),
            }
        }
        Err(io_err(
            "cannot allocate a task id in",
            &project,
            io::Error::other("too many ids already taken"),
        ))
    }

    /// Replaces `task.json` atomically: readers see the old record or the new one, never a
    /// mix, and after a crash the file is one of the two.
    pub fn write_record(&self, rec: &TaskRecord) -> Result<(), StoreError> {
        let dir = self.task_dir(&rec.cwd, rec.id);
        let not_found = || StoreError::NotFound {
            cwd: rec.cwd.clone(),
            id: rec.id,
        };
        // Never recreate the dir: a record written after a dispose must not resurrect it.
        if !dir.is_dir() {
            return Err(not_found());
        }
        let path = dir.record();
        let data = serde_json::to_vec_pretty(rec).map_err(|e| {
            io_err(
                "cannot serialize",
                &path,
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })?;
        replace_file(&path, &data).map_err(|e| if dir.is_dir() { e } else { not_found() })
    }

    pub fn read_record(&self, cwd: &str, id: u64) -> Result<TaskRecord, StoreError> {
        let path = self.task_dir(cwd, id).record();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    cwd: cwd.to_string(),
                    id,
                })
            }
            Err(e) => return Err(io_err("cannot read", &path, e)),
        };
        parse_record(&bytes, id, &Self::project_key(cwd))
            .map_err(|reason| StoreError::Corrupt { path, reason })
    }

    /// Every readable record of one project (`Some(cwd)`) or of all of them (`None`), newest
    /// first, plus one warning per directory skipped.
    pub fn list(&self, cwd: Option<&str>) -> (Vec<TaskRecord>, Vec<String>) {
        let mut records = Vec::new();
        let mut warnings = Vec::new();
        match cwd {
            Some(cwd) => list_project(
                &self.project_dir(cwd),
                &Self::project_key(cwd),
                &mut records,
                &mut warnings,
            ),
            None => match fs::read_dir(&self.root) {
                Ok(entries) => {
                    for entry in entries.flatten() {
                        let name = entry.file_name();
                        let Some(key) = name.to_str() else { continue };
                        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                        if is_dir && !key.starts_with('.') {
                            list_project(&entry.path(), key, &mut records, &mut warnings);
                        }
                    }
                }
                Err(e) => warnings.push(format!(
                    "cannot list state directory {}: {e}",
                    self.root.display()
                )),
            },
        }
        records.sort_by(|a, b| {
            b.created_at_ms
                .cmp(&a.created_at_ms)
                .then(b.id.cmp(&a.id))
                .then_with(|| a.cwd.cmp(&b.cwd))
        });
        (records, warnings)
    }

    /// The cwd of every project that has a readable `project.json`, plus warnings.
    pub fn projects(&self) -> (Vec<String>, Vec<String>) {
        let mut cwds = Vec::new();
        let mut warnings = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) => {
                warnings.push(format!(
                    "cannot list state directory {}: {e}",
                    self.root.display()
                ));
                return (cwds, warnings);
            }
        };
        for entry in entries.flatten() {
            if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let path = entry.path().join(PROJECT_FILE);
            match fs::read(&path) {
                Ok(bytes) => match serde_json::from_slice::<ProjectInfo>(&bytes) {
                    Ok(info) => cwds.push(info.cwd),
                    Err(e) => warnings.push(format!("skipping {}: {e}", path.display())),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => warnings.push(format!("skipping {}: {e}", path.display())),
            }
        }
        cwds.sort();
        (cwds, warnings)
    }

    /// Deletes a task's directory; its id stays taken.
    pub fn remove(&self, cwd: &str, id: u64) -> Result<(), StoreError> {
        let project = self.project_dir(cwd);
        let dir = project.join(id.to_string());
        let not_found = || StoreError::NotFound {
            cwd: cwd.to_string(),
            id,
        };
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(not_found()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(io_err("cannot inspect", &dir, e)),
        }
        // The mark must be durable before the dir goes, or the id could be handed out again.
        let scan = scan_project(&project)?;
        if scan.high_water < id {
            raise_high_water(&project, id, &scan.markers, true)?;
        }
        let trash = project.join(format!(
            "{TRASH_PREFIX}{id}-{}-{}",
            std::process::id(),
            next_unique()
        ));
        match fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(io_err("cannot remove", &dir, e)),
        }
        fs::remove_dir_all(&trash).map_err(|e| io_err("cannot delete", &trash, e))
    }
}

fn ensure_project_file(project: &Path, cwd: &str) -> Result<(), StoreError> {
    let path = project.join(PROJECT_FILE);
    let current = fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<ProjectInfo>(&b).ok());
    if current.is_some_and(|info| info.cwd == cwd) {
        return Ok(());
    }
    let data = serde_json::to_vec(&ProjectInfo {
        cwd: cwd.to_string(),
    })
    .map_err(|e| {
        io_err(
            "cannot serialize",
            &path,
            io::Error::new(io::ErrorKind::InvalidData, e),
        )
    })?;
    replace_file(&path, &data)
}

/// What a project dir says about ids in use.
struct Scan {
    /// Largest id among task dirs (and dirs being deleted).
    max_task: u64,
    /// Largest `last-id-<n>` mark.
    high_water: u64,
    markers: Vec<u64>,
}

fn parse_id(s: &str) -> Option<u64> {
    // Canonical decimal only: "007" would name a dir that `task_dir(7)` never finds.
    let id: u64 = s.parse().ok()?;
    (id > 0 && id.to_string() == s).then_some(id)
}

fn scan_project(project: &Path) -> Result<Scan, StoreError> {
    let mut scan = Scan {
        max_task: 0,
        high_water: 0,
        markers: Vec::new(),
    };
    let entries = fs::read_dir(project).map_err(|e| io_err("cannot list", project, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_err("cannot list", project, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = parse_id(name) {
            scan.max_task = scan.max_task.max(id);
        } else if let Some(id) = name.strip_prefix(HIGH_WATER_PREFIX).and_then(parse_id) {
            scan.high_water = scan.high_water.max(id);
            scan.markers.push(id);
        } else if let Some(id) = name
            .strip_prefix(TRASH_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(parse_id)
        {
            scan.max_task = scan.max_task.max(id);
        }
    }
    Ok(scan)
}

/// Creates the mark `last-id-<id>`, then deletes the smaller marks seen earlier. A writer only
/// ever deletes marks below one it has just created, so the largest mark ever created is never
/// deleted: the high-water mark cannot go down, whatever the interleaving of backends.
fn raise_high_water(
    project: &Path,
    id: u64,
    known: &[u64],
    durable: bool,
) -> Result<(), StoreError> {
    let path = project.join(format!("{HIGH_WATER_PREFIX}{id}"));
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&path)
    {
        Ok(f) => f
            .set_permissions(Permissions::from_mode(FILE_MODE))
            .map_err(|e| io_err("cannot set permissions of", &path, e))?,
        // Someone else raised it to the same id: just as good.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("cannot create", &path, e)),
    }
    if durable {
        sync_dir(project)?;
    }
    for &old in known.iter().filter(|&&old| old < id) {
        let _ = fs::remove_file(project.join(format!("{HIGH_WATER_PREFIX}{old}")));
    }
    Ok(())
}

/// Checks a record read from `<key>/<id>/task.json`; the error is the reason to show.
fn parse_record(bytes: &[u8], id: u64, key: &str) -> Result<TaskRecord, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("empty file (half-written?)".to_string());
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_eof() {
            format!("truncated JSON (half-written?): {e}")
        } else {
            format!("not JSON: {e}")
        }
    })?;
    match value.get("schema") {
        None => return Err("no \"schema\" field".to_string()),
        Some(s) if s.as_u64() != Some(u64::from(RECORD_SCHEMA)) => {
            return Err(format!(
                "schema {s}, this version reads schema {RECORD_SCHEMA}"
            ))
        }
        Some(_) => {}
    }
    let rec = TaskRecord::deserialize(value).map_err(|e| format!("invalid record: {e}"))?;
    if rec.id != id {
        return Err(format!("record of task {} found in dir {id}", rec.id));
    }
    if Store::project_key(&rec.cwd) != key {
        return Err(format!(
            "record of project {} found in another project's directory",
            rec.cwd
        ));
    }
    Ok(rec)
}

fn list_project(
    project: &Path,
    key: &str,
    records: &mut Vec<TaskRecord>,
    warnings: &mut Vec<String>,
) {
    let entries = match fs::read_dir(project) {
        Ok(entries) => entries,
        // No task was ever started there.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            warnings.push(format!("cannot list {}: {e}", project.display()));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                warnings.push(format!("cannot list {}: {e}", project.display()));
                break;
            }
        };
        let name = entry.file_name();
        // Not a task dir: project.json, marks, temp files, dirs being deleted.
        let Some(id) = name.to_str().and_then(parse_id) else {
            continue;
        };
        let dir = TaskDir::new(entry.path());
        let path = dir.record();
        match fs::read(&path) {
            Ok(bytes) => match parse_record(&bytes, id, key) {
                Ok(rec) => records.push(rec),
                Err(reason) => warnings.push(format!("skipping {}: {reason}", path.display())),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let age = fs::metadata(&dir)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok());
                if age.is_some_and(|age| age > UNWRITTEN_GRACE) {
                    warnings.push(format!(
                        "skipping {}: no {RECORD_FILE} (the backend starting it probably died)",
                        dir.display()
                    ));
                }
            }
            Err(e) => warnings.push(format!("skipping {}: {e}", path.display())),
        }
    }
}
