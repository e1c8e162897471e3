//! One run of a task: its start recorded (`changes`), its prompt written to the task's live CLI
//! (a warm follow-up) or to a new one spawned with its stdin FIFO, the CLI's requests watched,
//! the run over when the CLI is idle again (or gone, or cancelled: interrupted first, then the
//! signal ladder); how it ended is `run_end`'s.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::changes::Beginning;
use super::live::Cli;
use super::permissions::watch::{lock, Control};
use super::record::finish_run;
use super::{Entry, Supervisor, TaskKey};
use crate::cli::control::{self, Stdin};
use crate::cli::invoke::{self, SessionArg};
use crate::process::spawn::{new_marker, Process, SpawnConfig, SpawnError};
use crate::store::{make_fifo, Store, TaskDir};
use crate::stream_json::echo::Written;
use crate::task::{now_ms, ProcessInfo, Run, RunChanges, Status, Via};
use crate::{log_info, log_warn};

/// A run that is ready to start: its prompt is written and the run, with the marker of the CLI
/// it runs in (a new one's, or the live one's), is in the record on disk.
struct Prepared {
    n: u32,
    marker: String,
    dir: TaskDir,
    prompt_file: PathBuf,
    /// Where the run's output begins in the transcript.
    transcript_offset: u64,
    via: Via,
    cancel: watch::Receiver<bool>,
    /// How the run's changes are recorded: its start is captured before the CLI has the
    /// prompt (`beginning`), and recorded (`changes`) before the run is watched.
    changes: Option<RunChanges>,
    beginning: Option<Beginning>,
}

impl Prepared {
    /// Waits for the run's start to be recorded (its snapshot's commit, made while the prompt
    /// went out); a second call does nothing.
    async fn start_recorded(&mut self) {
        if let Some(b) = self.beginning.take() {
            self.changes = b.recorded().await;
        }
    }
}

impl Supervisor {
    /// One run: prepared, its prompt written to the task's live CLI (a warm follow-up) or to a
    /// new one, waited for until the CLI is idle again (or gone, or cancelled), its record
    /// finished; then the CLI kept alive for the next follow-up, or closed.
    pub(super) async fn run_once(&self, key: &TaskKey, prompt: String) {
        let warm = self.take_idle(key).await;
        let via = match (
            &warm,
            self.state()
                .tasks
                .get(key)
                .map(|e| e.record.borrow().runs.len()),
        ) {
            (Some(_), _) => Via::Live,
            (None, Some(0)) => Via::New,
            (None, _) => Via::Resumed,
        };
        let marker = warm.as_ref().map(|c| c.marker.clone());
        let Some(mut run) = self.prepare(key, &prompt, via, marker).await else {
            if let Some(cli) = warm {
                // Cancelled before it began: the CLI is idle still, and goes with the task.
                self.keep_or_close(key, cli, false).await;
            }
            return;
        };
        // Captured before the CLI can touch a file, a live one too: a warm follow-up's prompt
        // waits for one `git add`, its snapshot's commit is made while the prompt goes out.
        run.beginning = Some(self.begin_changes(key, run.n).await);
        if warm.is_none() {
            // A new CLI takes ~0.5 s to start: its run is recorded whole before the spawn, as
            // the record then names its pid and its start together.
            run.start_recorded().await;
        }
        if *run.cancel.borrow() {
            run.start_recorded().await;
            self.forget_changes(key);
            self.cancel_before_spawn(key, run.n).await;
            if let Some(cli) = warm {
                self.keep_or_close(key, cli, false).await;
            }
            return;
        }
        let cli = match warm {
            Some(cli) => match self.write_follow_up(key, &mut run, &cli, &prompt).await {
                Ok(()) => Some(cli),
                Err(e) => {
                    // It died between being taken and the write: the session goes on in a new
                    // CLI, and the run says so.
                    log_info!(
                        "task #{}: its live CLI is gone ({e}); resuming the session",
                        key.1
                    );
                    cli.stop_watching().await;
                    cli.kill_leftovers();
                    run.via = Via::Resumed;
                    run.marker = new_marker();
                    let marker = run.marker.clone();
                    self.update(key, |r| {
                        if let Some(last) = r.runs.last_mut() {
                            last.via = Some(Via::Resumed);
                            last.marker = Some(marker);
                        }
                        r.live = None;
                        r.process = None;
                    })
                    .await;
                    None
                }
            },
            None => None,
        };
        let cli = match cli {
            Some(cli) => cli,
            None => {
                let Some(process) = self.spawn_cli(key, &mut run, &prompt).await else {
                    self.forget_changes(key);
                    return;
                };
                Arc::new(self.start_control(key, &run, process, &prompt).await)
            }
        };
        {
            let mut st = self.state();
            if let Some(e) = st.tasks.get_mut(key) {
                e.cli = Some(cli.clone());
                e.control = Some(cli.control.clone());
            }
        }
        let end = self.supervise(&cli, &mut run.cancel).await;
        {
            let mut st = self.state();
            if let Some(e) = st.tasks.get_mut(key) {
                e.cli = None;
                e.control = None;
            }
        }
        self.end_run(key, run.n, run.transcript_offset, &cli, end)
            .await;
    }

    /// Writes a warm follow-up's prompt to the live CLI (its run is published already), then
    /// keeps it in the run's prompt file.
    async fn write_follow_up(
        &self,
        key: &TaskKey,
        run: &mut Prepared,
        cli: &Cli,
        prompt: &str,
    ) -> Result<(), String> {
        let c = cli.control.clone();
        let text = prompt.to_owned();
        let (file, id) = (run.prompt_file.clone(), key.1);
        let written = tokio::task::spawn_blocking(move || {
            let sent = {
                let mut c = lock(&c);
                c.begin_run();
                c.send_user(&text)
            };
            if let Err(e) = Store::write_file_private(&file, text.as_bytes()) {
                log_warn!("task #{id}: cannot keep the prompt: {e}");
            }
            sent
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        if written.is_ok() {
            run.start_recorded().await;
            // The run's record says it runs in this CLI.
            let info = cli.info(self.shared.owner);
            let changes = run.changes.clone();
            if let Some(rec) = self
                .update(key, |r| {
                    r.live = None;
                    r.process = Some(info);
                    if let Some(run) = r.current_run_mut() {
                        run.changes = changes;
                    }
                })
                .await
            {
                self.emit("started", &rec);
            }
        }
        written
    }

    /// Writes the prompt and publishes the run; None when the run ended already (the prompt
    /// could not be written, or a cancel came while it was being prepared).
    async fn prepare(
        &self,
        key: &TaskKey,
        prompt: &str,
        via: Via,
        live_marker: Option<String>,
    ) -> Option<Prepared> {
        let dir = self.shared.store.task_dir(&key.0, key.1);
        let transcript = dir.transcript();
        let stderr = dir.stderr();
        let rec = self.state().tasks.get(key).map(Entry::rec)?;
        let n = rec.runs.len() as u32 + 1;
        let prompt_file = dir.prompt(n);
        let pf = prompt_file.clone();
        // A warm run's prompt file is written after the prompt reached the CLI (the same trip
        // to the blocking pool): nothing stands between the user and the live CLI.
        let bytes = (via != Via::Live).then(|| prompt.as_bytes().to_vec());
        let stale_cancel = dir.cancel_request();
        let (t_len, e_len) = match tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_file(&stale_cancel);
            if let Some(bytes) = bytes {
                Store::write_file_private(&pf, &bytes).map_err(|e| e.to_string())?;
            }
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
        // The run is published before the spawn (or the write to the live CLI) so that a view
        // reading the run's first bytes already knows where the run began.
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let marker = live_marker.unwrap_or_else(new_marker);
        let cancelled_early;
        {
            let mut st = self.state();
            // What `run_end` will keep its CLI for, as far as is known now.
            let keep_alive = if st.config.max_idle > 0 {
                st.config.keep_alive.as_millis() as u64
            } else {
                0
            };
            let entry = st.tasks.get_mut(key)?;
            entry.cancel = Some(cancel_tx);
            cancelled_early = entry.record.borrow().cancel_requested;
            entry.record.send_modify(|r| {
                let mut run = Run::starting(n, prompt, t_len, e_len);
                run.marker = Some(marker.clone());
                run.keep_alive_ms = Some(keep_alive);
                run.via = Some(via);
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
        // one finds (`adopt`) instead of an orphan nobody ends (its stdin never closes). A live
        // CLI's pid and marker are on disk already.
        if via != Via::Live {
            self.update(key, |_| {}).await;
        }
        Some(Prepared {
            n,
            marker,
            dir,
            prompt_file,
            transcript_offset: t_len,
            via,
            cancel: cancel_rx,
            changes: None,
            beginning: None,
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
    async fn spawn_cli(&self, key: &TaskKey, run: &mut Prepared, prompt: &str) -> Option<Process> {
        let n = run.n;
        let fifo = run.dir.stdin_fifo();
        let made = {
            let fifo = fifo.clone();
            tokio::task::spawn_blocking(move || make_fifo(&fifo))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        };
        let argv = {
            let st = self.state();
            let rec = st.tasks.get(key).map(Entry::rec)?;
            let session = match run.via {
                Via::New => SessionArg::New(&rec.session_id),
                Via::Resumed | Via::Live => SessionArg::Resume(&rec.session_id),
            };
            invoke::argv(&rec.options, session)
        };
        let cfg = SpawnConfig {
            argv,
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
        // Before the CLI exists: from its spawn on, it outlives us unless someone ends it.
        self.ensure_watchdog();
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
        run.start_recorded().await;
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
    async fn start_control(
        &self,
        key: &TaskKey,
        run: &Prepared,
        process: Process,
        prompt: &str,
    ) -> Cli {
        let dir = run.dir.clone();
        let opened = tokio::task::spawn_blocking(move || Stdin::open(&dir, false))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let control = Arc::new(Mutex::new(Control::new(opened)));
        // The prompt is in the FIFO already.
        lock(&control).expect(Written::of(prompt));
        if !process.stdin_rest.is_empty() {
            let (c, id, rest) = (control.clone(), key.1, process.stdin_rest.clone());
            tokio::task::spawn_blocking(move || {
                if let Err(e) = lock(&c).write_raw(&rest) {
                    log_warn!("task #{id}: cannot send the prompt: {e}");
                }
            });
        }
        let watcher = self.watch_control(key, &run.dir, run.transcript_offset, control);
        Cli::new(
            process.pid,
            process.start_time,
            process.marker.clone(),
            Some(process),
            watcher,
        )
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
    use crate::tasks::tests::supervisor_with_a_task;

    /// The run, with the marker its CLI will carry, is on disk before the spawn: a backend that
    /// dies between the spawn and the record of the CLI's pid leaves a CLI the next backend can
    /// find (`adopt`), not one that nobody ends.
    #[tokio::test(flavor = "current_thread")]
    async fn a_run_and_its_marker_are_on_disk_before_the_spawn() {
        let (root, sup, key, rec) = supervisor_with_a_task("marker-on-disk", "t");
        let (cwd, id) = key.clone();
        sup.state().tasks.insert(key.clone(), Entry::new(rec));

        let prepared = sup
            .prepare(&key, "do it", Via::New, None)
            .await
            .expect("prepared");
        let on_disk = sup.store().read_record(&cwd, id).unwrap();
        let run = on_disk.current_run().expect("the run is on disk");
        assert_eq!(run.n, 1);
        assert_eq!(run.marker.as_deref(), Some(prepared.marker.as_str()));
        assert!(prepared.marker.starts_with("CLAUDE_TASKS_TASK="));
        let _ = std::fs::remove_dir_all(&root);
    }
}
