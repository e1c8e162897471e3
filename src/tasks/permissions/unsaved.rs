//! Which files have unsaved changes in an editor: this backend's editor's list (Lua sends it
//! with `unsaved`), and the lists every other live backend shares through the store, so the
//! backend that owns a task protects the buffers of every editor.

use std::path::{Path, PathBuf};

use crate::log_warn;
use crate::process::proctree;
use crate::store::EditorFiles;
use crate::tasks::Supervisor;

/// A path as the file system names it: symlinks resolved where they exist (the file, else its
/// directory), `.` and `..` gone.
pub(crate) fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

impl Supervisor {
    /// Lua's list of files with unsaved changes in its editor (absolute paths), replacing the
    /// last one; shared with the other backends through the store.
    pub fn set_unsaved(&self, files: Vec<String>) -> Result<(), String> {
        let mut files: Vec<String> = files
            .into_iter()
            .filter(|f| Path::new(f).is_absolute())
            .map(|f| canonical(Path::new(&f)).to_string_lossy().into_owned())
            .collect();
        files.sort();
        files.dedup();
        *self
            .shared
            .unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = files.clone();
        let (pid, start_time) = self.shared.owner;
        let store = self.shared.store.clone();
        // A notification from inside an edit: the file is written without holding anyone up.
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.write_editor_files(&EditorFiles {
                pid,
                start_time,
                files,
            }) {
                log_warn!("cannot share the unsaved files: {e}");
            }
        });
        Ok(())
    }

    /// Whether `path` (absolute) has unsaved changes in this editor or another live one.
    /// Reads the other backends' lists each time: a few small files, and the answer must be
    /// the current one.
    pub(crate) fn is_unsaved(&self, path: &Path) -> bool {
        let want = canonical(path);
        let want = want.to_string_lossy();
        let mine = self
            .shared
            .unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|f| *f == want);
        if mine {
            return true;
        }
        let me = self.shared.owner.0;
        for (file, ed) in self.shared.store.editor_files() {
            if ed.pid == me {
                continue;
            }
            if !proctree::is_alive(ed.pid, ed.start_time) {
                self.shared.store.remove_editor_files(&file);
                continue;
            }
            if ed.files.iter().any(|f| *f == want) {
                return true;
            }
        }
        false
    }

    /// This backend's list goes with it (on a clean exit).
    pub fn forget_unsaved(&self) {
        let (pid, start_time) = self.shared.owner;
        let _ = self.shared.store.write_editor_files(&EditorFiles {
            pid,
            start_time,
            files: Vec::new(),
        });
    }
}
