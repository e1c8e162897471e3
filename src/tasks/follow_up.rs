//! A follow-up to a task, and what else reaches its live CLI from a request: a follow-up to a
//! running task is said to its CLI at once, to an idle one it is a warm run written to that CLI,
//! else a run in a new CLI that resumes the session; `interrupt` stops the current turn and keeps
//! the task; `tui` hands the session to Claude's own TUI.

use super::adopt::try_lock;
use super::permissions::watch::lock;
use super::{isolation, no_task, Entry, Supervisor, TaskKey};
use crate::cli::control::Stdin;
use crate::store::Store;
use crate::stream_json::summary::started_a_session;
use crate::task::{now_ms, Said, Status, TaskRecord};
use crate::text::title_of;
use crate::{log_info, log_warn};

impl Supervisor {
    /// A follow-up. To a task that runs, it is said at once: written to its CLI, which folds it
    /// into the running turn or answers it as a turn of its own (`said` of the current run).
    /// Otherwise it is a new run, written to the task's live CLI when it has one (a warm
    /// follow-up), else run in a new CLI that resumes the session (cold).
    pub fn resume(&self, cwd: &str, id: u64, prompt: String) -> Result<TaskRecord, String> {
        if prompt.trim().is_empty() {
            return Err("resume: the prompt is empty".into());
        }
        let key = (cwd.to_owned(), id);
        self.ensure_loaded(&key)?;
        self.check_follow_up(&key)?;
        self.check_session(&key)?;
        if self.state().shutting_down {
            return Err("resume: the backend is shutting down".into());
        }
        if let Some(rec) = self.say(&key, &prompt)? {
            return Ok(rec);
        }
        let _claim = self.claim();
        let mut st = self.state();
        if st.shutting_down {
            return Err("resume: the backend is shutting down".into());
        }
        if isolation::worktree_busy(&key) {
            return Err(format!(
                "resume: task #{id}'s worktree is being applied or discarded; try again"
            ));
        }
        let entry = st.tasks.get_mut(&key).ok_or_else(|| no_task(cwd, id))?;
        if entry.foreign && !entry.record.borrow().status.is_finished() {
            return Err(format!(
                "resume: task #{id} is running in another editor; follow up when it has ended"
            ));
        }
        if !entry.active && entry.lock.is_none() {
            match try_lock(&self.shared.store.task_dir(cwd, id)) {
                Some(lock) => {
                    entry.lock = Some(lock);
                    entry.foreign = false;
                }
                None if entry.record.borrow().live.is_some() => {
                    return Err(format!(
                        "resume: task #{id}'s CLI is kept alive by another editor; follow up \
                         from there, or when it has closed"
                    ))
                }
                None => {
                    return Err(format!(
                        "resume: task #{id} is busy in another editor; try again when it has ended"
                    ))
                }
            }
        }
        entry.prompts.push_back(prompt);
        if entry.active {
            // Running or queued: the follow-up runs when the current run ends.
            let rec = entry.rec();
            return Ok(rec);
        }
        entry.active = true;
        entry.record.send_modify(|r| {
            r.status = Status::Queued;
            r.cancel_requested = false;
            r.error = None;
        });
        let warm = entry.idle.is_some();
        let (rev, rec) = (self.next_revision(), entry.rec());
        st.queue.push_back(key.clone());
        drop(st);
        if warm {
            // Its live CLI takes it at once: the fsyncs of a record that says "queued" for a few
            // ms must not stand between the user and the CLI (the run's own record follows).
            let (me, k, r) = (self.clone(), key.clone(), rec.clone());
            tokio::task::spawn_blocking(move || me.persist_revision(&k, rev, &r));
        } else {
            self.persist_revision(&key, rev, &rec);
        }
        self.schedule();
        self.emit_if_waiting(&key);
        Ok(rec)
    }

    /// A message said to a running task: written to its CLI at once (the CLI folds it into the
    /// running turn, or runs it as a turn of its own after it) and recorded with the run. None
    /// when the task has no run taking messages now (it is the next run's prompt then).
    pub(super) fn say(&self, key: &TaskKey, text: &str) -> Result<Option<TaskRecord>, String> {
        let cli = {
            let st = self.state();
            let e = st.tasks.get(key).ok_or_else(|| no_task(&key.0, key.1))?;
            let running = e.record.borrow().status == Status::Running;
            match &e.cli {
                Some(cli) if running => cli.clone(),
                _ => return Ok(None),
            }
        };
        let written = {
            let mut c = lock(&cli.control);
            c.say(text)
        };
        match written {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "resume: cannot write to the CLI of task #{}: {e}",
                    key.1
                ))
            }
        }
        // The whole text is kept, as a follow-up's prompt is.
        let dir = self.shared.store.task_dir(&key.0, key.1);
        let said = Said {
            title: said_title(text),
            len: text.len() as u64,
            hash: crate::hash::fnv1a64(text.as_bytes()),
            at_ms: now_ms(),
        };
        let mut file = None;
        let rec = self.modify(key, |r| {
            if let Some(run) = r.runs.last_mut() {
                run.said.push(said);
                file = Some(dir.said(run.n, run.said.len()));
            }
        });
        if let Some(path) = file {
            if let Err(e) = Store::write_file_private(&path, text.as_bytes()) {
                log_warn!("task #{}: cannot keep what was said: {e}", key.1);
            }
        }
        if let Some(rec) = &rec {
            log_info!(
                "task #{}: a message said during run {}",
                key.1,
                rec.runs.len()
            );
            self.emit("updated", rec);
        }
        Ok(rec)
    }

    /// Stops the current turn of a running task with the protocol's `interrupt`: its tools are
    /// killed, its requests withdrawn, and the task stays for the next message.
    pub fn interrupt(&self, cwd: &str, id: u64) -> Result<TaskRecord, String> {
        let key = (cwd.to_owned(), id);
        self.ensure_loaded(&key)?;
        let (cli, rec, foreign) = {
            let st = self.state();
            let e = st.tasks.get(&key).ok_or_else(|| no_task(cwd, id))?;
            (e.cli.clone(), e.rec(), e.foreign)
        };
        match (rec.status, cli) {
            (Status::Running, Some(cli)) => {
                lock(&cli.control).interrupt().map_err(|e| {
                    format!("interrupt: cannot write to the CLI of task #{id}: {e}")
                })?;
                log_info!("task #{id}: interrupted");
                Ok(rec)
            }
            (Status::Running, None) if foreign => {
                // Another editor's backend runs it: the interrupt goes through the shared FIFO,
                // and that backend sees its turn end.
                let dir = self.shared.store.task_dir(cwd, id);
                Stdin::open(&dir, false)
                    .and_then(|mut s| {
                        s.write_line(&crate::cli::control::interrupt("ct-int-foreign"))
                    })
                    .map_err(|e| {
                        format!("interrupt: cannot write to the CLI of task #{id}: {e}")
                    })?;
                Ok(rec)
            }
            (Status::Running, None) => Err(format!(
                "interrupt: task #{id} is starting; try again in a moment, or cancel it"
            )),
            (Status::Queued, _) => Err(format!(
                "interrupt: task #{id} has not started yet (cancel it to drop it)"
            )),
            _ if rec.live.is_some() => Err(format!(
                "interrupt: task #{id} is not running (its CLI is idle, waiting for a message)"
            )),
            (status, _) => Err(format!(
                "interrupt: task #{id} is not running (it is {})",
                status.as_str()
            )),
        }
    }

    /// Claude's own TUI on the task's session: refused while a run goes on (both would write
    /// the session); an idle live CLI is closed first, so the next follow-up resumes the
    /// session with what was said in the TUI. Answers the record (noting the TUI), the argv and
    /// the directory to run it in (a worktree task's worktree).
    pub async fn tui(
        &self,
        cwd: &str,
        id: u64,
    ) -> Result<(TaskRecord, Vec<String>, String), String> {
        let key = (cwd.to_owned(), id);
        let rec = {
            let me = self.clone();
            let k = key.clone();
            tokio::task::spawn_blocking(move || {
                me.ensure_loaded(&k)?;
                me.check_session(&k)
                    .map_err(|e| e.replacen("resume:", "tui:", 1))?;
                let st = me.state();
                let e = st.tasks.get(&k).ok_or_else(|| no_task(&k.0, k.1))?;
                let rec = e.rec();
                if e.active || !rec.status.is_finished() {
                    return Err(format!(
                        "tui: task #{id} is {}; interrupt or cancel it first (the TUI and the \
                         task would both write its session)",
                        rec.status.as_str()
                    ));
                }
                if e.idle.is_none() && rec.live.is_some() {
                    return Err(format!(
                        "tui: task #{id}'s CLI is kept alive by another editor; close it there \
                         first"
                    ));
                }
                Ok(rec)
            })
            .await
            .map_err(|e| format!("tui: {e}"))??
        };
        if let Some(wt) = &rec.worktree {
            if wt.discarded_at_ms.is_some() || !std::path::Path::new(&wt.cwd).is_dir() {
                return Err(format!(
                    "tui: task #{id}'s worktree is gone ({}); its session cannot be resumed there",
                    wt.path
                ));
            }
        }
        self.close_idle(&key, "Claude's TUI opens its session")
            .await;
        let rec = self
            .update(&key, |r| r.tui_at_ms = Some(now_ms()))
            .await
            .unwrap_or(rec);
        log_info!(
            "task #{id}: Claude's TUI opens its session {}",
            rec.session_id
        );
        self.emit("updated", &rec);
        let argv = crate::cli::invoke::tui_argv(&rec.options, &rec.session_id);
        let dir = rec.run_cwd().to_owned();
        Ok((rec, argv, dir))
    }

    /// A follow-up needs a session to resume: refused for a task whose CLI failed before it
    /// started one (a missing program, a bad option), which `--resume` would fail on too.
    fn check_session(&self, key: &TaskKey) -> Result<(), String> {
        let Some(rec) = self.state().tasks.get(key).map(Entry::rec) else {
            return Ok(());
        };
        let started = rec.runs.is_empty()
            || !rec.status.is_finished()
            || rec.live.is_some()
            || rec
                .runs
                .iter()
                .any(|r| r.num_turns > 0 || r.status == Status::Completed)
            || started_a_session(&self.shared.store.task_dir(&key.0, key.1).transcript());
        if started {
            return Ok(());
        }
        let why = rec
            .error
            .as_deref()
            .map(|e| format!(": {}", crate::text::first_line(e)))
            .unwrap_or_default();
        Err(format!(
            "resume: task #{} failed before Claude started its session{why}; there is nothing to \
             follow up: start a new task",
            rec.id
        ))
    }
}

/// A message's title: its first line, shortened, and how many lines follow.
fn said_title(text: &str) -> String {
    let more = text.trim_end().lines().count().saturating_sub(1);
    match more {
        0 => title_of(text, 80),
        n => format!(
            "{} (+{n} line{})",
            title_of(text, 80),
            if n == 1 { "" } else { "s" }
        ),
    }
}
