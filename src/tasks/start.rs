//! `start`: a new task's checks, its record (a session id of its own, its context) and its
//! place in the queue.

use std::path::Path;

use super::adopt::try_lock;
use super::config::Concurrency;
use super::{Entry, StartRequest, Supervisor};
use crate::process::spawn;
use crate::store::Store;
use crate::task::{now_ms, TaskRecord};
use crate::text::title_of;

/// Most context entries a record keeps, and the longest one in characters.
const MAX_CONTEXT: usize = 20;
const MAX_CONTEXT_CHARS: usize = 300;

impl Supervisor {
    /// A new task: its record made and queued (with its worktree for a worktree task).
    pub async fn start(&self, req: StartRequest) -> Result<TaskRecord, String> {
        if req.prompt.trim().is_empty() {
            return Err("start: the prompt is empty".into());
        }
        check_cwd(&req.cwd)?;
        let planned = self
            .plan_worktree(&req.cwd, &req.isolation)
            .await
            .map_err(|e| format!("start: {e}"))?;
        {
            let st = self.state();
            if st.shutting_down {
                return Err("start: the backend is shutting down".into());
            }
            // Worktree tasks are counted apart: they never wait for, nor hold up, the tasks
            // that run in the project's own files.
            if st.config.concurrency == Concurrency::Reject && planned.is_none() {
                if let Some((_, id)) = st
                    .tasks
                    .iter()
                    .find(|(k, e)| {
                        k.0 == req.cwd && e.active && e.record.borrow().worktree.is_none()
                    })
                    .map(|(k, _)| k.clone())
                {
                    return Err(format!(
                        "start: task #{id} is already running in {} (concurrency = 'reject')",
                        req.cwd
                    ));
                }
            }
        }
        let store = self.shared.store.clone();
        let cwd = req.cwd.clone();
        let (id, _dir) = tokio::task::spawn_blocking(move || store.allocate(&cwd))
            .await
            .map_err(|e| format!("start: {e}"))?
            .map_err(|e| format!("start: {e}"))?;
        let name = req
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| title_of(&req.prompt, 60));
        let mut rec = TaskRecord::queued(
            id,
            name,
            req.cwd.clone(),
            uuid_v4(),
            req.options.clone(),
            now_ms(),
        );
        if let Some(plan) = planned {
            match self.worktree_record(&req.cwd, id, plan).await {
                Ok(wt) => rec.worktree = Some(wt),
                Err(e) => {
                    let (store, cwd) = (self.shared.store.clone(), req.cwd.clone());
                    let _ = tokio::task::spawn_blocking(move || store.remove(&cwd, id)).await;
                    return Err(format!("start: {e}"));
                }
            }
        }
        rec.context = req
            .context
            .iter()
            .map(|c| crate::text::one_line(c, MAX_CONTEXT_CHARS))
            .filter(|c| !c.is_empty())
            .take(MAX_CONTEXT)
            .collect();
        let store = self.shared.store.clone();
        let r2 = rec.clone();
        tokio::task::spawn_blocking(move || {
            let dir = store.task_dir(&r2.cwd, r2.id);
            let made = [dir.transcript(), dir.stderr()]
                .iter()
                .try_for_each(|path| Store::open_append_private(path).map(drop))
                .and_then(|()| store.write_record(&r2));
            if made.is_err() {
                // E.g. a full disk: leave no half-made task dir behind (it would be listed as
                // an abandoned start forever). Its id stays taken.
                let _ = store.remove(&r2.cwd, r2.id);
            }
            made
        })
        .await
        .map_err(|e| format!("start: {e}"))?
        .map_err(|e| format!("start: {e}"))?;
        let key = (rec.cwd.clone(), rec.id);
        let lock = try_lock(&self.shared.store.task_dir(&rec.cwd, rec.id));
        {
            let mut st = self.state();
            let mut entry = Entry::new(rec.clone());
            entry.prompts.push_back(req.prompt);
            entry.active = true;
            entry.lock = lock;
            st.tasks.insert(key.clone(), entry);
            if rec.worktree.is_none() {
                st.queue.push_back(key.clone());
            }
        }
        if rec.worktree.is_some() {
            // It waits for its worktree, made from what the user sees now; then it queues.
            self.emit("queued", &rec);
            self.make_worktree(key);
            return Ok(rec);
        }
        self.schedule();
        self.emit_if_waiting(&key);
        Ok(rec)
    }
}

fn uuid_v4() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !filled {
        // No /dev/urandom: mix time and pid; unique enough for a session id on one machine.
        let seed = (now_ms() as u128) << 32 | u128::from(std::process::id());
        b = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)).to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn check_cwd(cwd: &str) -> Result<(), String> {
    if cwd.is_empty() {
        return Err("start: 'cwd' is empty".into());
    }
    let p = Path::new(cwd);
    if !p.is_absolute() {
        return Err(format!("start: cwd '{cwd}' is not an absolute path"));
    }
    spawn::check_cwd(p).map_err(|why| format!("start: cwd '{cwd}' {why}"))
}
