//! The Markdown export of a finished run's task (`export_markdown`), written next to the project.

use std::path::{Path, PathBuf};

use super::Supervisor;
use crate::log_warn;
use crate::task::TaskRecord;

impl Supervisor {
    /// What follows the end of every run, ours or adopted: the Markdown export.
    pub(super) async fn run_finished(&self, rec: &TaskRecord) {
        if self.config().export_markdown {
            let r2 = rec.clone();
            let transcript = self.shared.store.task_dir(&rec.cwd, rec.id).transcript();
            let _ = tokio::task::spawn_blocking(move || export_markdown(&r2, &transcript)).await;
        }
    }
}

pub(super) fn export_markdown(rec: &TaskRecord, transcript: &Path) {
    let lines = match crate::view::render_all(rec, transcript) {
        Ok(l) => l,
        Err(e) => {
            log_warn!("export of task #{}: {e}", rec.id);
            return;
        }
    };
    let dir = export_dir(&rec.cwd);
    let mut text = format!(
        "# Task #{}: {}\n\n- status: {}\n- project: {}\n- created: {}\n- duration: {}\n- cost: ${:.4}\n\n",
        rec.id,
        rec.name,
        rec.status.as_str(),
        rec.cwd,
        crate::timefmt::local(rec.created_at_ms),
        crate::timefmt::duration(rec.duration_ms.unwrap_or(0)),
        rec.cost_usd
    );
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    let res = std::fs::create_dir_all(&dir).and_then(|()| {
        let tmp = dir.join(format!(".task-{}-output.md.tmp", rec.id));
        std::fs::write(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, export_path(&rec.cwd, rec.id))
    });
    if let Err(e) = res {
        log_warn!("export of task #{} to {}: {e}", rec.id, dir.display());
    }
}

/// `<cwd>/.claude-tasks/`, the project's folder of exports.
fn export_dir(cwd: &str) -> PathBuf {
    Path::new(cwd).join(".claude-tasks")
}

/// Where task `id`'s output is exported.
fn export_path(cwd: &str, id: u64) -> PathBuf {
    export_dir(cwd).join(format!("task-{id}-output.md"))
}

/// A disposed task leaves nothing in the project: its export goes, and the folder with it when
/// that leaves it empty (`remove_dir` removes only an empty folder, so a file someone else put
/// there, or another task's export written meanwhile, keeps it).
pub(super) fn remove_export(cwd: &str, id: u64) {
    let path = export_path(cwd, id);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            log_warn!(
                "dispose of task #{id}: cannot remove {}: {e}",
                path.display()
            );
            return;
        }
    }
    let _ = std::fs::remove_dir(export_dir(cwd));
}
