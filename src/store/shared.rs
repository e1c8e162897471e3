//! Files the backends share beside the tasks: each editor's list of files with unsaved changes
//! (`<root>/editors/<pid>.json`) and each project's "always" rules
//! (`<root>/<project key>/rules.json`). Both are small JSON documents replaced whole.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::{create_private_dir, replace_file};
use super::{io_err, Store, StoreError};

const EDITORS_DIR: &str = "editors";
const RULES_FILE: &str = "rules.json";

/// One editor's unsaved files, as its backend last wrote them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditorFiles {
    /// The backend that wrote it (with its start time, to tell a reused pid).
    pub pid: i32,
    pub start_time: u64,
    pub files: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Rules {
    rules: Vec<String>,
}

impl Store {
    fn editors_dir(&self) -> PathBuf {
        self.root().join(EDITORS_DIR)
    }

    /// Replaces this backend's list of unsaved files (an empty list removes the file).
    pub fn write_editor_files(&self, ed: &EditorFiles) -> Result<(), StoreError> {
        let dir = self.editors_dir();
        let path = dir.join(format!("{}.json", ed.pid));
        if ed.files.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(io_err("cannot remove", &path, e))
                }
                _ => Ok(()),
            };
        }
        create_private_dir(&dir, true)?;
        let data = serde_json::to_vec(ed).map_err(|e| io_err("cannot encode", &path, e.into()))?;
        replace_file(&path, &data)
    }

    /// Every editor's list, each with its file (unreadable ones are skipped).
    pub fn editor_files(&self) -> Vec<(PathBuf, EditorFiles)> {
        let Ok(entries) = std::fs::read_dir(self.editors_dir()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| {
                let data = std::fs::read(&p).ok()?;
                let ed = serde_json::from_slice::<EditorFiles>(&data).ok()?;
                Some((p, ed))
            })
            .collect()
    }

    /// Removes the list of a backend that is gone.
    pub fn remove_editor_files(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
    }

    fn rules_file(&self, cwd: &str) -> PathBuf {
        self.project_dir(cwd).join(RULES_FILE)
    }

    /// The project's rules (none when it has no file yet).
    pub fn project_rules(&self, cwd: &str) -> Result<Vec<String>, StoreError> {
        let path = self.rules_file(cwd);
        match std::fs::read(&path) {
            Ok(data) => serde_json::from_slice::<Rules>(&data)
                .map(|r| r.rules)
                .map_err(|e| StoreError::Corrupt {
                    path,
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err("cannot read", &path, e)),
        }
    }

    /// Replaces the project's rules.
    pub fn write_project_rules(&self, cwd: &str, rules: &[String]) -> Result<(), StoreError> {
        let dir = self.project_dir(cwd);
        create_private_dir(&dir, true)?;
        let path = self.rules_file(cwd);
        let data = serde_json::to_vec_pretty(&Rules {
            rules: rules.to_vec(),
        })
        .map_err(|e| io_err("cannot encode", &path, e.into()))?;
        replace_file(&path, &data)
    }
}
