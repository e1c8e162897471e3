//! One run of a task: its prompt written, the CLI spawned with its stdin FIFO, the prompt sent
//! as a stream-json message, the CLI's requests watched, and the CLI ended when it is idle (or
//! cancelled: interrupted first, then the signal ladder); its record finished from what the
//! transcript says.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::permissions::watch::{lock, Control, Watcher};
use super::record::{apply_result, finish_run, outcome};
use super::stderr;
use super::{wait_true, Entry, Supervisor, TaskKey};
use crate::cli::control::{self, Stdin};
use crate::cli::invoke::{self, SessionArg};
use crate::process::reaper::Exit;
use crate::process::spawn::{new_marker, Process, SpawnConfig, SpawnError};
use crate::store::{make_fifo, Store, TaskDir};
use crate::stream_json::summary::{summarize, RunSummary};
use crate::task::{now_ms, ProcessInfo, Run, RunChanges, Status};
use crate::{log_info, log_warn};

/// A run that is ready to spawn: its prompt is written and the run, with the marker its CLI
/// will carry, is in the record on disk.
struct Prepared {
    n: u32,
    marker: String,
    dir: TaskDir,
    prompt_file: PathBuf,
    /// Where the run's output begins in the transcript.
    transcript_offset: u64,
    argv: Vec<String>,
    cancel: watch::Receiver<bool>,
    /// How the run's changes are recorded (its start is, before the spawn).
    changes: Option<RunChanges>,
}

impl Supervisor {
    /// One run: prepared, its CLI spawned, waited for (or cancelled), its record finished.
    pub(super) async fn run_once(&self, key: &TaskKey, prompt: String) {
        let Some(mut run) = self.prepare(key, &prompt).await else {
            return;
        };
        // Before the CLI can touch a file (it delays the spawn, never a request).
        run.changes = self.begin_changes(key, run.n).await;
        if *run.cancel.borrow() {
            self.forget_changes(key);
            self.cancel_before_spawn(key, run.n).await;
            return;
        }
        let Some(process) = self.spawn_cli(key, &run, &prompt).await else {
            self.forget_changes(key);
            return;
        };
        let watcher = self.start_control(key, &run, &process).await;
        let (exit, ended_idle) = self
            .wait_for_exit(&process, &watcher, &mut run.cancel)
            .await;
        // Everything the CLI wrote is read before the record says how the run ended.
        watcher.finish().await;
        if let Some(e) = self.state().tasks.get_mut(key) {
            e.control = None;
        }
        self.finish(key, &run, exit, ended_idle).await;
    }

    /// Writes the prompt and publishes the run; None when the run ended already (the prompt
    /// could not be written, or a cancel came while it was being prepared).
    async fn prepare(&self, key: &TaskKey, prompt: &str) -> Option<Prepared> {
        let dir = self.shared.store.task_dir(&key.0, key.1);
        let transcript = dir.transcript();
        let stderr = dir.stderr();
        let rec = self.state().tasks.get(key).map(Entry::rec)?;
        let n = rec.runs.len() as u32 + 1;
        let prompt_file = dir.prompt(n);
        let pf = prompt_file.clone();
        let bytes = prompt.as_bytes().to_vec();
        let stale_cancel = dir.cancel_request();
        let (t_len, e_len) = match tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_file(&stale_cancel);
            Store::write_file_private(&pf, &bytes).map_err(|e| e.to_string())?;
            let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            Ok::<_, String>((len(&transcript), len(&stderr)))
        })
        .await
        {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                self.fail_unstarted(key, n, prompt, &format!("cannot write the prompt: {e}"))
                    .await;
                return None;
            }
            Err(e) => {
                self.fail_unstarted(key, n, prompt, &format!("cannot write the prompt: {e}"))
                    .await;
                return None;
            }
        };
        let session = if n == 1 {
            SessionArg::New(&rec.session_id)
        } else {
            SessionArg::Resume(&rec.session_id)
        };
        let argv = invoke::argv(&rec.options, session);
        // The run is published before the spawn so that a view reading the run's first bytes
        // already knows where the run began.
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let marker = new_marker();
        let cancelled_early;
        {
            let mut st = self.state();
            let entry = st.tasks.get_mut(key)?;
            entry.cancel = Some(cancel_tx);
            cancelled_early = entry.record.borrow().cancel_requested;
            entry.record.send_modify(|r| {
                let mut run = Run::starting(n, prompt, t_len, e_len);
                run.marker = Some(marker.clone());
                r.runs.push(run);
                r.status = Status::Running;
                r.started_at_ms.get_or_insert(now_ms());
                r.ended_at_ms = None;
                r.error = None;
                r.exit_code = None;
            });
        }
        if cancelled_early {
            self.cancel_before_spawn(key, n).await;
            return None;
        }
        // On disk before the spawn: the record then names the marker of every CLI that may be
        // running, so a backend that dies before it records the CLI's pid leaves a CLI the next
        // one finds (`adopt`) instead of an orphan nobody ends (its stdin never closes).
        self.update(key, |_| {}).await;
        Some(Prepared {
            n,
            marker,
            dir,
            prompt_file,
            transcript_offset: t_len,
            argv,
            cancel: cancel_rx,
            changes: None,
        })
    }

    /// Cancelled while the run was being prepared (see `cancel`): it ends before it starts,
    /// without a process.
    async fn cancel_before_spawn(&self, key: &TaskKey, n: u32) {
        if let Some(rec) = self
            .update(key, |r| finish_run(r, Status::Cancelled, None, None))
            .await
        {
            log_info!("task #{} run {n} cancelled before its start", key.1);
            self.emit("cancelled", &rec);
        }
    }

    /// Starts the run's CLI and records its process; None when it could not start (the run
    /// then failed, with the reason in the record and in `stderr.log`).
    async fn spawn_cli(&self, key: &TaskKey, run: &Prepared, prompt: &str) -> Option<Process> {
        let n = run.n;
        let fifo = run.dir.stdin_fifo();
        let made = {
            let fifo = fifo.clone();
            tokio::task::spawn_blocking(move || make_fifo(&fifo))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        };
        let cfg = SpawnConfig {
            argv: run.argv.clone(),
            cwd: self.run_cwd(key),
            stdin: fifo,
            stdin_fifo: true,
            // The handshake and the prompt are in the FIFO before the CLI starts: a backend
            // that dies right after the spawn cannot lose them.
            stdin_preload: format!(
                "{}\n{}\n",
                control::initialize(&format!("ct-init-{n}")),
                control::user_message(prompt)
            )
            .into_bytes(),
            stdout: run.dir.transcript(),
            stderr: run.dir.stderr(),
            env_remove: vec!["CLAUDECODE".into()],
            env: vec![],
            marker: Some(run.marker.clone()),
        };
        let spawned = match made {
            Ok(()) => Process::spawn(&cfg),
            Err(e) => Err(SpawnError::Io {
                what: "cannot make the CLI's stdin".into(),
                err: std::io::Error::other(e),
            }),
        };
        // The prompt's record was only written, not synced: it is made durable while the CLI
        // starts, before the record that says the run started (the record has only its title).
        let prompt_file = run.prompt_file.clone();
        let synced = tokio::task::spawn_blocking(move || Store::sync_file(&prompt_file)).await;
        if let Ok(Err(e)) = synced {
            log_warn!("task #{}: {e}", key.1);
        }
        let process = match spawned {
            Ok(p) => p,
            Err(e) => {
                let msg = e.to_string();
                log_warn!("task #{}: {msg}", key.1);
                let _ = append(&run.dir.stderr(), format!("{msg}\n").as_bytes());
                let rec = self
                    .update(key, |r| finish_run(r, Status::Failed, None, Some(msg)))
                    .await;
                if let Some(rec) = rec {
                    self.emit("failed", &rec);
                }
                return None;
            }
        };
        let info = ProcessInfo {
            pid: process.pid,
            start_time: process.start_time,
            owner_pid: self.shared.owner.0,
            owner_start_time: self.shared.owner.1,
            marker: process.marker.clone(),
        };
        let changes = run.changes.clone();
        let started = self
            .update(key, |r| {
                r.process = Some(info);
                if let Some(run) = r.current_run_mut() {
                    run.changes = changes;
                }
            })
            .await;
        if let Some(rec) = started {
            log_info!(
                "task #{} run {n} started: pid {} in {}",
                key.1,
                process.pid,
                key.0
            );
            self.emit("started", &rec);
        }
        Some(process)
    }

    /// Opens the CLI's stdin, writes what of the handshake and the prompt did not fit in the
    /// FIFO before the spawn (on the blocking pool, not waited for: a long prompt waits there
    /// until the CLI reads it), and starts watching the CLI's requests.
    async fn start_control(&self, key: &TaskKey, run: &Prepared, process: &Process) -> Watcher {
        let dir = run.dir.clone();
        let opened = tokio::task::spawn_blocking(move || Stdin::open(&dir, false))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let control = Arc::new(Mutex::new(Control::new(opened)));
        if let Some(e) = self.state().tasks.get_mut(key) {
            e.control = Some(control.clone());
        }
        lock(&control).sent = 1;
        if !process.stdin_rest.is_empty() {
            let (c, id, rest) = (control.clone(), key.1, process.stdin_rest.clone());
            tokio::task::spawn_blocking(move || {
                if let Err(e) = lock(&c).write_raw(&rest) {
                    log_warn!("task #{id}: cannot send the prompt: {e}");
                }
            });
        }
        self.watch_control(key, &run.dir, run.transcript_offset, control)
    }

    /// The CLI's exit: by itself, ended by us once it is idle (then the flag is true), or
    /// cancelled. Then no process of its tree is left.
    async fn wait_for_exit(
        &self,
        process: &Process,
        watcher: &Watcher,
        cancel: &mut watch::Receiver<bool>,
    ) -> (Exit, bool) {
        let mut idle = watcher.idle.clone();
        let exit = tokio::select! {
            exit = process.wait() => (exit, false),
            _ = wait_true(cancel) => (self.cancel_live(process, watcher).await, false),
            _ = wait_true(&mut idle) => {
                let grace = self.state().config.cancel_grace;
                (process.end_idle(grace).await, true)
            }
        };
        process.kill_leftovers();
        exit
    }

    /// Cancel: the protocol's `interrupt` first (the CLI stops its tools and withdraws its
    /// requests within ms, then it is idle and ends), the signal ladder when that does not
    /// bring it to an end within the grace time.
    async fn cancel_live(&self, process: &Process, watcher: &Watcher) -> Exit {
        // Read now, not at spawn: shutdown shortens it.
        let grace = self.state().config.cancel_grace;
        let c = watcher.control.clone();
        let wrote = tokio::time::timeout(
            interrupt_wait(grace),
            tokio::task::spawn_blocking(move || lock(&c).interrupt()),
        )
        .await;
        if let Ok(Ok(Ok(()))) = wrote {
            let mut idle = watcher.idle.clone();
            tokio::select! {
                exit = process.wait() => return exit,
                _ = wait_true(&mut idle) => return process.end_idle(grace).await,
                _ = tokio::time::sleep(interrupt_wait(grace)) => {}
            }
        }
        process.cancel(grace).await
    }

    /// Finishes the run's record from what its part of the transcript says. A CLI that our
    /// SIGTERM ended because it was idle exits as its last result says (as it does when its
    /// stdin ends); any other end (it crashed first) stays as it was.
    async fn finish(&self, key: &TaskKey, run: &Prepared, exit: Exit, ended_idle: bool) {
        let (summary, cancelled) = self.run_ended(key, &run.dir, run.transcript_offset).await;
        let by_our_term = matches!(exit, Exit::Signal(15) | Exit::Code(143));
        let exit = match (&summary.result, ended_idle && by_our_term) {
            (Some(r), true) => Exit::Code(i32::from(r.is_error)),
            _ => exit,
        };
        let (status, error) = outcome(&summary, Some(exit), cancelled);
        // Without a result line, the CLI's stderr is the only word on why it failed.
        let stderr = if status == Status::Failed && summary.result.is_none() {
            self.stderr_tail(key, &run.dir).await
        } else {
            Vec::new()
        };
        let error = stderr::explain(error, &stderr);
        let changed = self.end_changes(key, None).await;
        let rec = self
            .update(key, |r| {
                if let Some(res) = &summary.result {
                    apply_result(r, res);
                }
                set_changes(r, changed);
                if status == Status::Cancelled {
                    r.cancel_requested = true;
                }
                finish_run(r, status, Some(exit), error);
                if let Some(run) = r.current_run_mut() {
                    run.stderr = stderr;
                }
            })
            .await;
        if let Some(rec) = rec {
            log_info!(
                "task #{} run {} ended: {}",
                key.1,
                run.n,
                rec.status.as_str()
            );
            self.run_finished(&rec).await;
            self.emit(status.as_str(), &rec);
        }
    }

    /// After a run's process is gone: what its part of the transcript says, and whether a
    /// cancel was asked for (here, or by another backend through the cancel-request file).
    pub(super) async fn run_ended(
        &self,
        key: &TaskKey,
        dir: &TaskDir,
        offset: u64,
    ) -> (RunSummary, bool) {
        let path = dir.transcript();
        let summary = tokio::task::spawn_blocking(move || summarize(&path, offset))
            .await
            .unwrap_or_default();
        let cancelled = self
            .state()
            .tasks
            .get(key)
            .is_some_and(|e| e.record.borrow().cancel_requested)
            || dir.cancel_request().exists();
        (summary, cancelled)
    }

    /// The last lines of what the current run wrote on stderr.
    async fn stderr_tail(&self, key: &TaskKey, dir: &TaskDir) -> Vec<String> {
        let from = self
            .state()
            .tasks
            .get(key)
            .and_then(|e| e.record.borrow().current_run().map(|r| r.stderr_offset))
            .unwrap_or(0);
        let path = dir.stderr();
        let read = tokio::task::spawn_blocking(move || {
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let cut = len.saturating_sub(from) > stderr::TAIL_BYTES;
            Store::read_tail(&path, from, stderr::TAIL_BYTES).map(|b| (b, cut))
        })
        .await;
        match read {
            Ok(Ok((bytes, cut))) => stderr::last_lines(&bytes, cut),
            Ok(Err(e)) => {
                log_warn!("task #{}: {e}", key.1);
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }

    /// A run that could not even be prepared (its prompt could not be written).
    async fn fail_unstarted(&self, key: &TaskKey, n: u32, prompt: &str, msg: &str) {
        let rec = self
            .update(key, |r| {
                r.runs.push(Run::starting(n, prompt, 0, 0));
                finish_run(r, Status::Failed, None, Some(msg.to_owned()));
            })
            .await;
        if let Some(rec) = rec {
            self.emit("failed", &rec);
        }
    }
}

/// How long an interrupt is given to end the turn before the ladder: the CLI does it in
/// 6-40 ms, and the ladder after it must still fit in the grace Neovim gives on quitting.
pub(super) fn interrupt_wait(grace: std::time::Duration) -> std::time::Duration {
    (grace / 2).min(std::time::Duration::from_secs(1))
}

/// The current run's changes, as `end_changes` found them.
pub(super) fn set_changes(
    r: &mut crate::task::TaskRecord,
    changed: Option<(RunChanges, Option<Vec<crate::task::FileChanged>>)>,
) {
    if let (Some((ch, files)), Some(run)) = (changed, r.current_run_mut()) {
        run.changes = Some(ch);
        run.files_changed = files;
    }
}

fn append(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?
        .write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskRecord;
    use crate::testutil::temp_path as tmp;

    /// The run, with the marker its CLI will carry, is on disk before the spawn: a backend that
    /// dies between the spawn and the record of the CLI's pid leaves a CLI the next backend can
    /// find (`adopt`), not one that nobody ends.
    #[tokio::test(flavor = "current_thread")]
    async fn a_run_and_its_marker_are_on_disk_before_the_spawn() {
        let root = tmp("marker-on-disk");
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open(&root).unwrap();
        let cwd = "/a/project".to_string();
        let (id, _) = store.allocate(&cwd).unwrap();
        let sup = Supervisor::new(store, Arc::new(crate::testutil::NoEditor));
        let key = (cwd.clone(), id);
        let rec = TaskRecord::queued(
            id,
            "t".into(),
            cwd.clone(),
            "sid".into(),
            Default::default(),
            0,
        );
        sup.store().write_record(&rec).unwrap();
        sup.state().tasks.insert(key.clone(), Entry::new(rec));

        let prepared = sup.prepare(&key, "do it").await.expect("prepared");
        let on_disk = sup.store().read_record(&cwd, id).unwrap();
        let run = on_disk.current_run().expect("the run is on disk");
        assert_eq!(run.n, 1);
        assert_eq!(run.marker.as_deref(), Some(prepared.marker.as_str()));
        assert!(prepared.marker.starts_with("CLAUDE_TASKS_TASK="));
        let _ = std::fs::remove_dir_all(&root);
    }
}
