//! The tasks a backend left running when its editor went away (`on_exit = 'detach'`, or the
//! editor died): `<root>/detached.json`. The next editor's plugin reads this one small file in
//! `setup()` so its statusline shows them from the first redraw, before any backend starts and
//! without reading every record. Only a hint: the plugin checks that each process still lives,
//! and the next backend adopts the tasks from their records and removes the file.

use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::files::replace_file;
use super::{io_err, Store, StoreError};

const DETACHED_FILE: &str = "detached.json";
/// Entries kept at most, so a file nobody clears stays small.
const MAX_DETACHED: usize = 256;

/// A task left running: enough for a statusline and a liveness check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetachedTask {
    pub cwd: String,
    pub id: u64,
    pub name: String,
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// The CLI's process and its start time (`/proc/<pid>/stat` field 22), to tell it from a
    /// reused pid.
    pub pid: i32,
    pub start_time: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct DetachedFile {
    #[serde(default)]
    tasks: Vec<DetachedTask>,
}

impl Store {
    pub fn detached_path(&self) -> PathBuf {
        self.root.join(DETACHED_FILE)
    }

    /// The tasks named in the file (none when it is missing or unreadable).
    pub fn detached(&self) -> Vec<DetachedTask> {
        fs::read(self.detached_path())
            .ok()
            .and_then(|b| serde_json::from_slice::<DetachedFile>(&b).ok())
            .map(|f| f.tasks)
            .unwrap_or_default()
    }

    /// Adds `tasks` to the file, in place of earlier entries of the same tasks (other
    /// backends' entries stay).
    pub fn add_detached(&self, tasks: &[DetachedTask]) -> Result<(), StoreError> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut all: Vec<DetachedTask> = self
            .detached()
            .into_iter()
            .filter(|old| !tasks.iter().any(|t| t.cwd == old.cwd && t.id == old.id))
            .collect();
        all.extend(tasks.iter().cloned());
        let drop = all.len().saturating_sub(MAX_DETACHED);
        all.drain(..drop);
        let data = serde_json::to_vec(&DetachedFile { tasks: all })
            .map_err(|e| StoreError::Io(io::Error::other(e)))?;
        replace_file(&self.detached_path(), &data)
    }

    /// Removes the file: its tasks were adopted (or have ended).
    pub fn clear_detached(&self) -> Result<(), StoreError> {
        let path = self.detached_path();
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("cannot remove", &path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory, removed when dropped.
    struct Dir(PathBuf);
    impl Dir {
        fn new(name: &str) -> Dir {
            let p = std::env::temp_dir().join(format!(
                "ct-detached-{}-{}-{name}",
                std::process::id(),
                super::super::files::next_unique()
            ));
            let _ = fs::remove_dir_all(&p);
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn task(cwd: &str, id: u64) -> DetachedTask {
        DetachedTask {
            cwd: cwd.into(),
            id,
            name: format!("task {id}"),
            created_at_ms: 1,
            started_at_ms: Some(2),
            pid: 42,
            start_time: 7,
        }
    }

    #[test]
    fn entries_are_added_replaced_and_cleared() {
        let dir = Dir::new("t");
        let store = Store::open(&dir.0).unwrap();
        assert!(store.detached().is_empty());
        store.add_detached(&[task("/a", 1), task("/b", 1)]).unwrap();
        let mut again = task("/a", 1);
        again.pid = 43;
        store.add_detached(&[again.clone(), task("/a", 2)]).unwrap();
        assert_eq!(store.detached(), vec![task("/b", 1), again, task("/a", 2)]);
        store.clear_detached().unwrap();
        assert!(store.detached().is_empty());
        store.clear_detached().unwrap();
    }

    #[test]
    fn a_bad_file_reads_as_none_and_is_replaced() {
        let dir = Dir::new("t");
        let store = Store::open(&dir.0).unwrap();
        fs::write(store.detached_path(), b"{not json").unwrap();
        assert!(store.detached().is_empty());
        store.add_detached(&[task("/a", 1)]).unwrap();
        assert_eq!(store.detached(), vec![task("/a", 1)]);
    }

    #[test]
    fn the_file_stays_bounded() {
        let dir = Dir::new("t");
        let store = Store::open(&dir.0).unwrap();
        let many: Vec<_> = (0..MAX_DETACHED as u64 + 10)
            .map(|i| task("/a", i))
            .collect();
        store.add_detached(&many).unwrap();
        let kept = store.detached();
        assert_eq!(kept.len(), MAX_DETACHED);
        assert_eq!(kept[0].id, 10);
    }
}
