//! The durable on-disk store (DESIGN §2): `<root>/<project key>/<id>/` per task.
//!
//! Several backends (one per editor) share it without locks: `mkdir` arbitrates ids, records
//! are replaced by `rename`, and anything unreadable is skipped with a warning, never fatal,
//! so one bad directory cannot hide every other task.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::task::{TaskRecord, RECORD_SCHEMA};

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
const RECORD_FILE: &str = "task.json";
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

    pub fn task_dir(&self, cwd: &str, id: u64) -> PathBuf {
        self.project_dir(cwd).join(id.to_string())
    }

    /// Reserves the next id of the project by creating its directory. `mkdir` is the arbiter:
    /// two backends racing for the same id cannot both succeed, the loser takes the next one.
    pub fn allocate(&self, cwd: &str) -> Result<(u64, PathBuf), StoreError> {
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
                    return Ok((id, dir));
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
        let path = dir.join(RECORD_FILE);
        let data = serde_json::to_vec_pretty(rec).map_err(|e| {
            io_err(
                "cannot serialize",
                &path,
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })?;
        write_atomic(&path, &data).map_err(|e| if dir.is_dir() { e } else { not_found() })
    }

    pub fn read_record(&self, cwd: &str, id: u64) -> Result<TaskRecord, StoreError> {
        let path = self.task_dir(cwd, id).join(RECORD_FILE);
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
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn next_unique() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| io_err("cannot set permissions of", path, e))
}

/// `mkdir` with mode 0700 whatever the umask. With `ok_if_exists`, an existing dir is fine
/// (and left as it is); without, `AlreadyExists` is returned so it can arbitrate.
fn create_private_dir(path: &Path, ok_if_exists: bool) -> Result<(), StoreError> {
    match DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => set_mode(path, DIR_MODE),
        Err(e) if ok_if_exists && e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {
            Ok(())
        }
        Err(e) => Err(io_err("cannot create directory", path, e)),
    }
}

/// Temp file in the same dir (so `rename` is atomic), fsync, rename, fsync the dir.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
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
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot sync directory", dir, e))
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
    write_atomic(&path, &data)
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
        let dir = entry.path();
        let path = dir.join(RECORD_FILE);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Run, Status, TaskOptions};
    use std::collections::BTreeSet;
    use std::os::unix::fs::MetadataExt;
    use std::process::{Command, Stdio};

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "ct-store-{}-{}-{name}",
                std::process::id(),
                next_unique()
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o777
    }

    fn record(cwd: &str, id: u64, created: u64) -> TaskRecord {
        TaskRecord {
            schema: RECORD_SCHEMA,
            id,
            name: format!("task {id}"),
            cwd: cwd.to_string(),
            status: Status::Completed,
            session_id: "0b6c2a3e-5d4f-4b1a-9c8e-7f6a5b4c3d2e".to_string(),
            created_at_ms: created,
            started_at_ms: Some(created + 1),
            ended_at_ms: Some(created + 2),
            duration_ms: Some(1),
            exit_code: Some(0),
            cost_usd: 0.01,
            num_turns: 2,
            result: Some("done".to_string()),
            error: None,
            options: TaskOptions {
                cmd: vec!["claude".to_string()],
                model: None,
                permission_mode: "acceptEdits".to_string(),
                allowed_tools: vec![],
                args: vec![],
            },
            runs: vec![Run {
                n: 1,
                prompt_title: "do it".to_string(),
                transcript_offset: 0,
                stderr_offset: 0,
                started_at_ms: Some(created + 1),
                ended_at_ms: Some(created + 2),
                status: Status::Completed,
                exit_code: Some(0),
                signal: None,
                duration_ms: Some(1),
                cost_usd: 0.01,
                num_turns: 2,
                error: None,
            }],
            process: None,
            cancel_requested: false,
        }
    }

    fn new_task(store: &Store, cwd: &str, created: u64) -> TaskRecord {
        let (id, _) = store.allocate(cwd).unwrap();
        let rec = record(cwd, id, created);
        store.write_record(&rec).unwrap();
        rec
    }

    fn names_in(dir: &Path) -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn open_creates_private_root_and_parents() {
        let tmp = TempDir::new("open");
        let root = tmp.0.join("a/b/state");
        let store = Store::open(&root).unwrap();
        assert_eq!(store.root(), root);
        assert_eq!(mode(&root), 0o700);
        // Opening again is fine.
        Store::open(&root).unwrap();
        // A file where the root should be is an error naming it.
        let file = tmp.0.join("file");
        fs::write(&file, b"").unwrap();
        let err = Store::open(&file).unwrap_err().to_string();
        assert!(err.contains(&*file.to_string_lossy()), "{err}");
    }

    #[test]
    fn project_key_is_sanitized_and_distinct() {
        let key = Store::project_key("/home/me/proj");
        let (readable, hash) = key.rsplit_once('-').unwrap();
        assert_eq!(readable, "home-me-proj");
        assert_eq!(hash.len(), 8);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));

        let weird = Store::project_key("/tmp/a b/ü:x/.hidden");
        assert!(weird.starts_with("tmp-a-b---x-.hidden-"), "{weird}");
        assert!(weird
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));

        let long = format!("/{}/the-project", "x".repeat(300));
        let long_key = Store::project_key(&long);
        assert!(long_key.len() <= KEY_PREFIX_MAX + 9, "{long_key}");
        assert!(long_key.contains("the-project-"), "{long_key}");

        // Sanitize alike, differ in the hash.
        let pairs = [
            ("/a/b", "/a-b"),
            ("/a/b c", "/a/b_c"),
            ("/p/ü", "/p/é"),
            (
                &format!("/{}/x", "y".repeat(100)),
                &format!("/{}/x", "z".repeat(100)),
            ),
        ];
        for (a, b) in pairs {
            assert_ne!(Store::project_key(a), Store::project_key(b), "{a} vs {b}");
        }
        assert_eq!(Store::project_key("/a/b/"), Store::project_key("/a/b"));
        assert!(Store::project_key("/").starts_with("root-"));
        for odd in ["/..", "/.", "/-x", "/.git"] {
            let k = Store::project_key(odd);
            assert!(!k.starts_with('.') && !k.starts_with('-'), "{odd} -> {k}");
        }
        // Stable across runs and versions: the key is where existing tasks live.
        assert_eq!(Store::project_key("/home/me/proj"), key);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn allocate_counts_from_one_with_private_dirs() {
        let tmp = TempDir::new("alloc");
        let store = Store::open(&tmp.0).unwrap();
        let cwd = "/home/me/proj";
        for want in 1..=3 {
            let (id, dir) = store.allocate(cwd).unwrap();
            assert_eq!(id, want);
            assert_eq!(dir, store.task_dir(cwd, id));
            assert_eq!(mode(&dir), 0o700);
        }
        let project = store.project_dir(cwd);
        assert_eq!(mode(&project), 0o700);
        let info: ProjectInfo =
            serde_json::from_slice(&fs::read(project.join(PROJECT_FILE)).unwrap()).unwrap();
        assert_eq!(info.cwd, cwd);
        assert_eq!(mode(&project.join(PROJECT_FILE)), 0o600);
        // Another project counts on its own.
        assert_eq!(store.allocate("/other").unwrap().0, 1);
        assert_eq!(
            store.projects(),
            (
                vec!["/home/me/proj".to_string(), "/other".to_string()],
                vec![]
            )
        );
    }

    #[test]
    fn ids_are_never_reused_after_remove() {
        let tmp = TempDir::new("reuse");
        let store = Store::open(&tmp.0).unwrap();
        let cwd = "/p";
        for _ in 0..3 {
            new_task(&store, cwd, 1);
        }
        store.remove(cwd, 3).unwrap();
        assert!(!store.task_dir(cwd, 3).exists());
        assert_eq!(store.allocate(cwd).unwrap().0, 4);
        for id in [4, 2, 1] {
            store.remove(cwd, id).unwrap();
        }
        assert_eq!(store.allocate(cwd).unwrap().0, 5);
        store.remove(cwd, 5).unwrap();
        // A new backend (a new Store) agrees.
        let again = Store::open(&tmp.0).unwrap();
        assert_eq!(again.allocate(cwd).unwrap().0, 6);
        // Only one mark is left, and nothing being deleted.
        let names = names_in(&store.project_dir(cwd));
        assert_eq!(
            names,
            ["6", "last-id-6", PROJECT_FILE]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
        // Removing what is not there.
        assert!(matches!(
            store.remove(cwd, 5),
            Err(StoreError::NotFound { id: 5, .. })
        ));
        assert!(matches!(
            store.remove("/nowhere", 1),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn high_water_mark_survives_a_lost_mark() {
        // allocate's mark is best effort; remove must still raise it before deleting.
        let tmp = TempDir::new("mark");
        let store = Store::open(&tmp.0).unwrap();
        new_task(&store, "/p", 1);
        new_task(&store, "/p", 1);
        let project = store.project_dir("/p");
        fs::remove_file(project.join("last-id-2")).unwrap();
        store.remove("/p", 2).unwrap();
        assert_eq!(store.allocate("/p").unwrap().0, 3);
    }

    #[test]
    fn record_round_trip_private_and_no_temp_left() {
        let tmp = TempDir::new("roundtrip");
        let store = Store::open(&tmp.0).unwrap();
        let mut rec = new_task(&store, "/p", 10);
        assert_eq!(store.read_record("/p", rec.id).unwrap(), rec);
        let path = store.task_dir("/p", rec.id).join(RECORD_FILE);
        assert_eq!(mode(&path), 0o600);
        let ino = fs::metadata(&path).unwrap().ino();
        rec.status = Status::Failed;
        rec.error = Some("boom".to_string());
        store.write_record(&rec).unwrap();
        assert_eq!(store.read_record("/p", rec.id).unwrap(), rec);
        // Replaced by rename, not rewritten in place.
        assert_ne!(fs::metadata(&path).unwrap().ino(), ino);
        assert_eq!(
            names_in(&store.task_dir("/p", rec.id)),
            BTreeSet::from([RECORD_FILE.to_string()])
        );
    }

    #[test]
    fn readers_never_see_a_partial_record() {
        let tmp = TempDir::new("atomic");
        let store = Store::open(&tmp.0).unwrap();
        let rec = new_task(&store, "/p", 1);
        let dir = store.task_dir("/p", rec.id);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let stop = stop.clone();
            let root = tmp.0.clone();
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let got = store.read_record("/p", 1).unwrap();
                    assert_eq!(got.id, 1);
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..300 {
            let mut r = rec.clone();
            // Sizes vary so a torn read would show as truncated or trailing garbage.
            r.result = Some("r".repeat((i * 37) % 5000));
            store.write_record(&r).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        assert_eq!(names_in(&dir), BTreeSet::from([RECORD_FILE.to_string()]));
    }

    #[test]
    fn write_record_does_not_resurrect_a_removed_task() {
        let tmp = TempDir::new("resurrect");
        let store = Store::open(&tmp.0).unwrap();
        let rec = new_task(&store, "/p", 1);
        store.remove("/p", rec.id).unwrap();
        assert!(matches!(
            store.write_record(&rec),
            Err(StoreError::NotFound { id: 1, .. })
        ));
        assert!(!store.task_dir("/p", 1).exists());
        assert!(matches!(
            store.read_record("/p", 1),
            Err(StoreError::NotFound { id: 1, .. })
        ));
    }

    #[test]
    fn corrupt_records_are_skipped_with_warnings() {
        let tmp = TempDir::new("corrupt");
        let store = Store::open(&tmp.0).unwrap();
        let cwd = "/p";
        let good = new_task(&store, cwd, 5);
        let valid = serde_json::to_string(&record(cwd, 0, 0)).unwrap();
        let mut wrong_schema = serde_json::to_value(record(cwd, 0, 0)).unwrap();
        wrong_schema["schema"] = serde_json::json!(RECORD_SCHEMA + 1);
        let mut no_schema = serde_json::to_value(record(cwd, 0, 0)).unwrap();
        no_schema.as_object_mut().unwrap().remove("schema");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty file", vec![]),
            (
                "truncated JSON",
                valid.as_bytes()[..valid.len() / 2].to_vec(),
            ),
            ("not JSON", b"hello, world".to_vec()),
            ("schema 2", wrong_schema.to_string().into_bytes()),
            ("no \"schema\"", no_schema.to_string().into_bytes()),
            ("invalid record", br#"{"schema": 1, "id": 3}"#.to_vec()),
        ];
        let mut bad_ids = Vec::new();
        for (_, content) in &cases {
            let (id, dir) = store.allocate(cwd).unwrap();
            fs::write(dir.join(RECORD_FILE), content).unwrap();
            bad_ids.push(id);
        }
        // A record in the wrong dir (copied by hand) must not be taken for another task.
        let (misplaced, dir) = store.allocate(cwd).unwrap();
        fs::write(
            dir.join(RECORD_FILE),
            serde_json::to_vec(&record(cwd, 1, 0)).unwrap(),
        )
        .unwrap();
        // Unreadable: a directory where task.json should be (chmod 000 means nothing to root).
        let (unreadable, dir) = store.allocate(cwd).unwrap();
        fs::create_dir(dir.join(RECORD_FILE)).unwrap();
        // Allocated a moment ago, record not yet written: silently skipped.
        let (_young, _) = store.allocate(cwd).unwrap();
        // Allocated long ago and never written: a gentle warning.
        let (old, dir) = store.allocate(cwd).unwrap();
        File::open(&dir)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        let later = new_task(&store, cwd, 6);

        let (records, warnings) = store.list(Some(cwd));
        assert_eq!(records, vec![later, good]);
        assert_eq!(warnings.len(), cases.len() + 3, "{warnings:#?}");
        for ((what, _), id) in cases.iter().zip(&bad_ids) {
            let path = store.task_dir(cwd, *id).join(RECORD_FILE);
            let w = warnings
                .iter()
                .find(|w| w.contains(&*path.to_string_lossy()))
                .unwrap_or_else(|| panic!("no warning for {what}: {warnings:#?}"));
            assert!(w.contains(what), "{what}: {w}");
            assert!(!w.contains('\n'), "{w}");
            let err = store.read_record(cwd, *id).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        }
        for id in [misplaced, unreadable, old] {
            let dir = store.task_dir(cwd, id).to_string_lossy().into_owned();
            assert!(
                warnings.iter().any(|w| w.contains(&dir)),
                "no warning for {id}: {warnings:#?}"
            );
        }
        // Every project at once sees the same.
        let (all, all_warnings) = store.list(None);
        assert_eq!(all.len(), 2);
        assert_eq!(all_warnings.len(), warnings.len());
    }

    #[test]
    fn list_is_newest_first_and_per_project() {
        let tmp = TempDir::new("order");
        let store = Store::open(&tmp.0).unwrap();
        let a1 = new_task(&store, "/a", 300);
        let a2 = new_task(&store, "/a", 100);
        let a3 = new_task(&store, "/a", 300);
        let b1 = new_task(&store, "/b", 200);
        let b2 = new_task(&store, "/b", 400);
        let ids = |v: &[TaskRecord]| v.iter().map(|r| (r.cwd.clone(), r.id)).collect::<Vec<_>>();
        let (a, w) = store.list(Some("/a"));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(ids(&a), ids(&[a3.clone(), a1.clone(), a2.clone()]));
        let (all, w) = store.list(None);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(ids(&all), ids(&[b2, a3, a1, b1, a2]));
        let (none, w) = store.list(Some("/never-used"));
        assert!(none.is_empty() && w.is_empty());
        // Stray entries in the root or a project dir are not tasks and not worth a warning.
        fs::write(tmp.0.join("backend.log"), b"").unwrap();
        fs::create_dir(store.project_dir("/a").join("notes")).unwrap();
        fs::create_dir(store.project_dir("/a").join("007")).unwrap();
        assert_eq!(store.list(None).0.len(), 5);
        assert!(store.list(None).1.is_empty());
    }

    #[test]
    fn private_files_are_0600_and_truncated() {
        let tmp = TempDir::new("private");
        let store = Store::open(&tmp.0).unwrap();
        let (_, dir) = store.allocate("/p").unwrap();
        let prompt = dir.join("prompt-1.txt");
        Store::write_file_private(&prompt, b"a long first prompt").unwrap();
        assert_eq!(mode(&prompt), 0o600);
        fs::set_permissions(&prompt, Permissions::from_mode(0o644)).unwrap();
        Store::write_file_private(&prompt, b"short").unwrap();
        assert_eq!(fs::read(&prompt).unwrap(), b"short");
        assert_eq!(mode(&prompt), 0o600);

        let log = dir.join("stderr.log");
        Store::open_append_private(&log)
            .unwrap()
            .write_all(b"one\n")
            .unwrap();
        Store::open_append_private(&log)
            .unwrap()
            .write_all(b"two\n")
            .unwrap();
        assert_eq!(fs::read(&log).unwrap(), b"one\ntwo\n");
        assert_eq!(mode(&log), 0o600);

        let err = Store::write_file_private(&tmp.0.join("no/such/dir/f"), b"")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot create ") && err.contains("no/such/dir/f"),
            "{err}"
        );
    }

    #[test]
    fn errors_are_one_clear_line() {
        let e = StoreError::NotFound {
            cwd: "/p".to_string(),
            id: 3,
        };
        assert_eq!(e.to_string(), "no task #3 in /p");
        let e = StoreError::Corrupt {
            path: PathBuf::from("/s/k/3/task.json"),
            reason: "not JSON: x".to_string(),
        };
        assert_eq!(
            e.to_string(),
            "corrupt task record /s/k/3/task.json: not JSON: x"
        );
    }

    const CHILD_ROOT: &str = "CLAUDE_TASKS_TEST_ALLOC_ROOT";
    const CHILD_OUT: &str = "CLAUDE_TASKS_TEST_ALLOC_OUT";
    const CHILD_GO: &str = "CLAUDE_TASKS_TEST_ALLOC_GO";
    const CHILD_UMASK: &str = "CLAUDE_TASKS_TEST_ALLOC_UMASK";
    const CHILD_COUNT: &str = "CLAUDE_TASKS_TEST_ALLOC_COUNT";
    const CHILD_CWD: &str = "/work/two-editors";

    /// Not a test by itself: the body of the child processes started by the tests below;
    /// does nothing unless one of them started it.
    #[test]
    fn alloc_child() {
        let Some(root) = std::env::var_os(CHILD_ROOT) else {
            return;
        };
        let var = |name| std::env::var(name).unwrap();
        let umask: u32 = var(CHILD_UMASK).parse().unwrap();
        let count: usize = var(CHILD_COUNT).parse().unwrap();
        let go = PathBuf::from(var(CHILD_GO));
        // The process-wide umask is safe to change here: this process runs only this test.
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
        let store = Store::open(Path::new(&root)).unwrap();
        // Start together, to maximize the overlap; polling is fine, the overlap only makes
        // the test stronger and is not needed for it to pass.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !go.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut ids = Vec::new();
        for _ in 0..count {
            let (id, dir) = store.allocate(CHILD_CWD).unwrap();
            Store::write_file_private(&dir.join("prompt-1.txt"), b"p").unwrap();
            Store::open_append_private(&dir.join("transcript.jsonl")).unwrap();
            store.write_record(&record(CHILD_CWD, id, id)).unwrap();
            ids.push(id.to_string());
        }
        fs::write(var(CHILD_OUT), ids.join("\n")).unwrap();
    }

    /// Runs `alloc_child` in one child process per umask, all at once; returns each one's ids.
    fn run_children(tmp: &TempDir, root: &Path, umasks: &[u32], count: usize) -> Vec<Vec<u64>> {
        let go = tmp.0.join("go");
        let exe = std::env::current_exe().unwrap();
        // The harness names tests without the crate name.
        let module = module_path!();
        let module = module.split_once("::").map_or(module, |(_, rest)| rest);
        let name = format!("{module}::alloc_child");
        let children: Vec<_> = umasks
            .iter()
            .enumerate()
            .map(|(i, umask)| {
                let out = tmp.0.join(format!("ids-{i}"));
                let child = Command::new(&exe)
                    .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
                    .env(CHILD_ROOT, root)
                    .env(CHILD_OUT, &out)
                    .env(CHILD_GO, &go)
                    .env(CHILD_UMASK, umask.to_string())
                    .env(CHILD_COUNT, count.to_string())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (child, out)
            })
            .collect();
        fs::write(&go, b"").unwrap();
        children
            .into_iter()
            .map(|(child, out)| {
                let output = child.wait_with_output().unwrap();
                assert!(
                    output.status.success(),
                    "child failed: {}\n{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
                let ids = fs::read_to_string(&out).unwrap();
                let ids: Vec<u64> = ids.lines().map(|l| l.parse().unwrap()).collect();
                assert_eq!(ids.len(), count);
                ids
            })
            .collect()
    }

    #[test]
    fn two_processes_allocate_distinct_ids() {
        const PER_CHILD: usize = 100;
        let tmp = TempDir::new("twoproc");
        let root = tmp.0.join("state");
        let mut all = BTreeSet::new();
        for ids in run_children(&tmp, &root, &[0o022, 0o077], PER_CHILD) {
            // Each child sees its own ids increase.
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
            all.extend(ids);
        }
        let n = 2 * PER_CHILD as u64;
        assert_eq!(all, (1..=n).collect());

        let store = Store::open(&root).unwrap();
        let (records, warnings) = store.list(Some(CHILD_CWD));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(records.len(), 2 * PER_CHILD);
        assert_eq!(store.allocate(CHILD_CWD).unwrap().0, n + 1);
        // Concurrent mark updates leave the mark at the top.
        let scan = scan_project(&store.project_dir(CHILD_CWD)).unwrap();
        assert_eq!(scan.high_water, n + 1);
    }

    #[test]
    fn modes_do_not_depend_on_the_umask() {
        // A umask that strips the owner's own bits: only explicit chmods give 0700/0600. It
        // runs alone (one child), since a dir is briefly 0500 between mkdir and chmod.
        let tmp = TempDir::new("umask");
        let root = tmp.0.join("state");
        let ids = run_children(&tmp, &root, &[0o277], 3).remove(0);
        assert_eq!(ids, vec![1, 2, 3]);
        let store = Store::open(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        let project = store.project_dir(CHILD_CWD);
        assert_eq!(mode(&project), 0o700);
        assert_eq!(mode(&project.join(PROJECT_FILE)), 0o600);
        for id in ids {
            let dir = store.task_dir(CHILD_CWD, id);
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
            for file in [RECORD_FILE, "prompt-1.txt", "transcript.jsonl"] {
                assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
            }
        }
    }
}
