//! The Markdown export of a finished run's task (`export_markdown`), written next to the project.

use std::path::Path;

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
    let dir = Path::new(&rec.cwd).join(".claude-tasks");
    let mut text = format!(
        "# Task #{}: {}\n\n- status: {}\n- project: {}\n- created: {}\n- duration: {}\n- cost: ${:.4}\n\n",
        rec.id,
        rec.name,
        rec.status.as_str(),
        rec.cwd,
        crate::timefmt::utc(rec.created_at_ms),
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
        std::fs::rename(&tmp, dir.join(format!("task-{}-output.md", rec.id)))
    });
    if let Err(e) = res {
        log_warn!("export of task #{} to {}: {e}", rec.id, dir.display());
    }
}
