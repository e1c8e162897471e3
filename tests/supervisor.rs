//! The supervisor with the fake `claude` and a recording editor in place of Neovim: policies,
//! cancel, bad input and buffer views, end to end through real processes and files.
//!
//! Deterministic: every wait is on an event the editor recorded; the timeouts only turn a hang
//! into a failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use claude_tasks::editor::{Editor, WriteError};
use claude_tasks::store::Store;
use claude_tasks::supervisor::{StartRequest, Supervisor};
use claude_tasks::task::{Status, TaskOptions, TaskRecord};
use rmpv::Value;
use tokio::sync::Notify;

const FAKE: &str = env!("CARGO_BIN_EXE_fake-claude");
const GUARD: Duration = Duration::from_secs(30);

/// One runtime for the whole binary: the supervisor's tasks outlive a single test's block_on.
fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        claude_tasks::reaper::init().expect("reaper");
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(String, TaskRecord)>>,
    bufs: Mutex<HashMap<i64, Vec<String>>>,
    changed: Notify,
}

fn record_of(v: &Value) -> Option<TaskRecord> {
    // The event carries the record as Lua sees it; read it back through JSON.
    fn to_json(v: &Value) -> serde_json::Value {
        match v {
            Value::Nil => serde_json::Value::Null,
            Value::Boolean(b) => (*b).into(),
            Value::Integer(i) => i
                .as_u64()
                .map(Into::into)
                .or_else(|| i.as_i64().map(Into::into))
                .unwrap_or(serde_json::Value::Null),
            Value::F64(f) => (*f).into(),
            Value::F32(f) => f64::from(*f).into(),
            Value::String(s) => s.as_str().unwrap_or_default().into(),
            Value::Array(a) => a.iter().map(to_json).collect(),
            Value::Map(m) => m
                .iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), to_json(v)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            _ => serde_json::Value::Null,
        }
    }
    serde_json::from_value(to_json(v)).ok()
}

#[async_trait]
impl Editor for Recorder {
    async fn event(&self, ev: Value) {
        let map = ev.as_map().cloned().unwrap_or_default();
        let get = |k: &str| {
            map.iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        let kind = get("type").and_then(Value::as_str).unwrap_or("").to_owned();
        if let Some(rec) = get("task").and_then(record_of) {
            self.events.lock().unwrap().push((kind, rec));
        }
        self.changed.notify_waiters();
    }

    async fn write_lines(
        &self,
        buf: i64,
        start: usize,
        lines: Vec<String>,
    ) -> Result<(), WriteError> {
        {
            let mut bufs = self.bufs.lock().unwrap();
            let Some(b) = bufs.get_mut(&buf) else {
                return Err(WriteError::BufferGone);
            };
            assert!(
                start <= b.len(),
                "write at {start} past the end ({})",
                b.len()
            );
            b.truncate(start);
            b.extend(lines);
        }
        self.changed.notify_waiters();
        Ok(())
    }
}

impl Recorder {
    /// Waits until `pred` holds over the recorder's state.
    async fn until(&self, what: &str, pred: impl Fn(&Recorder) -> bool) {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if pred(self) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(GUARD, wait).await.is_err() {
            panic!("timed out waiting for {what}; events: {:?}", self.kinds());
        }
    }

    fn kinds(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(k, r)| format!("{k}#{}", r.id))
            .collect()
    }

    fn has(&self, kind: &str, id: u64) -> bool {
        self.events
            .lock()
            .unwrap()
            .iter()
            .any(|(k, r)| k == kind && r.id == id)
    }

    fn last(&self, kind: &str, id: u64) -> TaskRecord {
        self.events
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(k, r)| k == kind && r.id == id)
            .map(|(_, r)| r.clone())
            .expect("event")
    }

    async fn wait_event(&self, kind: &str, id: u64) -> TaskRecord {
        self.until(&format!("{kind} of #{id}"), |r| r.has(kind, id))
            .await;
        self.last(kind, id)
    }

    fn lines(&self, buf: i64) -> Vec<String> {
        self.bufs
            .lock()
            .unwrap()
            .get(&buf)
            .cloned()
            .unwrap_or_default()
    }
}

struct Env {
    _tmp: TempDir,
    project: PathBuf,
    sup: Supervisor,
    ed: Arc<Recorder>,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env(name: &str) -> Env {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let root = std::env::temp_dir().join(format!("ct-sup-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let project = root.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("README.md"), "hi\n").unwrap();
    let store = Store::open(&root.join("state")).unwrap();
    let ed = Arc::new(Recorder::default());
    let sup = rt().block_on(async { Supervisor::new(store, ed.clone()) });
    sup.configure(|c| c.cancel_grace = Duration::from_millis(300));
    Env {
        _tmp: TempDir(root),
        project,
        sup,
        ed,
    }
}

impl Env {
    fn cwd(&self) -> String {
        self.project.to_string_lossy().into_owned()
    }

    fn req(&self, prompt: &str, fake_args: &[&str]) -> StartRequest {
        let mut cmd = vec![FAKE.to_owned()];
        cmd.extend(fake_args.iter().map(|s| s.to_string()));
        StartRequest {
            prompt: prompt.to_owned(),
            cwd: self.cwd(),
            name: None,
            options: TaskOptions {
                cmd,
                model: None,
                permission_mode: "acceptEdits".into(),
                allowed_tools: vec![],
                args: vec![],
            },
        }
    }

    async fn start(&self, prompt: &str, fake_args: &[&str]) -> TaskRecord {
        self.sup
            .start(self.req(prompt, fake_args))
            .await
            .expect("start")
    }

    fn attach(&self, id: u64, buf: i64) {
        self.ed.bufs.lock().unwrap().insert(buf, Vec::new());
        self.sup.attach(&self.cwd(), id, buf).expect("attach");
    }
}

/// Every process whose environment carries the task's marker or whose pid was recorded.
fn alive(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|&p| claude_tasks::proctree::read(p).is_some_and(|proc_| proc_.state != 'Z'))
        .collect()
}

fn zombie_children() -> Vec<i32> {
    let me = std::process::id() as i32;
    claude_tasks::proctree::list()
        .into_iter()
        .filter(|p| p.ppid == me && p.state == 'Z')
        .map(|p| p.pid)
        .collect()
}

/// Tests run in parallel in this one process (the subreaper): another test's child may be a
/// zombie for the instant before the reaper collects it, so wait for the count to reach zero.
async fn assert_no_zombies() {
    for _ in 0..500 {
        if zombie_children().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("zombie children: {:?}", zombie_children());
}

fn read_pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

async fn wait_file(path: &Path) {
    // The fake writes its pid file atomically before its first line; its appearance is the event.
    for _ in 0..3000 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never appeared", path.display());
}

#[test]
fn start_runs_to_completion_and_renders_into_an_attached_buffer() {
    let e = env("complete");
    rt().block_on(async {
        let rec = e.start("list the files", &[]).await;
        assert_eq!(rec.status, Status::Queued);
        assert_eq!(rec.name, "list the files");
        e.attach(rec.id, 7);
        let done = e.ed.wait_event("completed", rec.id).await;
        assert_eq!(done.status, Status::Completed);
        assert_eq!(done.num_turns, 2);
        assert!((done.cost_usd - 0.0123).abs() < 1e-9);
        assert_eq!(done.runs.len(), 1);
        assert_eq!(done.runs[0].exit_code, Some(0));
        assert!(done.result.as_deref().unwrap_or("").contains("Done."));
        assert!(e.ed.has("started", rec.id));
        e.ed.until("the footer in the buffer", |r| {
            r.lines(7)
                .last()
                .is_some_and(|l| l.starts_with("✓ done in"))
        })
        .await;
        let lines = e.ed.lines(7);
        assert_eq!(lines[0], format!("# #{} list the files", rec.id));
        assert!(lines.iter().any(|l| l == "● Bash(ls)"), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("README.md")), "{lines:#?}");
        assert!(
            lines.last().unwrap().ends_with("2 turns · $0.0123"),
            "{lines:#?}"
        );
        // The record on disk says the same.
        let stored = e.sup.get(&e.cwd(), rec.id).unwrap();
        assert_eq!(stored.status, Status::Completed);
    });
}

#[test]
fn a_buffer_attached_after_the_end_gets_the_same_lines() {
    let e = env("replay");
    rt().block_on(async {
        let rec = e.start("hello", &[]).await;
        e.attach(rec.id, 1);
        e.ed.wait_event("completed", rec.id).await;
        e.ed.until("footer in buffer 1", |r| {
            r.lines(1).last().is_some_and(|l| l.starts_with("✓"))
        })
        .await;
        e.attach(rec.id, 2);
        e.ed.until("footer in buffer 2", |r| {
            r.lines(2).last().is_some_and(|l| l.starts_with("✓"))
        })
        .await;
        assert_eq!(e.ed.lines(1), e.ed.lines(2));
    });
}

#[test]
fn cancel_kills_every_descendant_and_leaves_no_zombie() {
    let e = env("cancel");
    let pids_file = e.project.join("pids");
    rt().block_on(async {
        let pf = format!("--fake-pids-file={}", pids_file.display());
        let rec = e
            .start("hang", &["--fake-hang", "--fake-grandchildren=3", &pf])
            .await;
        let started = e.ed.wait_event("started", rec.id).await;
        let cli = started.process.as_ref().expect("process info").pid;
        wait_file(&pids_file).await;
        let mut pids = read_pids(&pids_file);
        assert_eq!(pids.len(), 3);
        pids.push(cli);
        assert_eq!(alive(&pids).len(), 4);
        let r = e.sup.cancel(&e.cwd(), rec.id).unwrap();
        assert!(r.cancel_requested);
        let done = e.ed.wait_event("cancelled", rec.id).await;
        assert_eq!(done.status, Status::Cancelled);
        assert!(done.process.is_none());
        assert_eq!(alive(&pids), Vec::<i32>::new());
        assert_no_zombies().await;
        // The fake honoured SIGINT like the real CLI: it wrote its result line.
        let t = std::fs::read_to_string(
            e.sup
                .store()
                .task_dir(&e.cwd(), rec.id)
                .join("transcript.jsonl"),
        )
        .unwrap();
        assert!(t.contains("error_during_execution"));
        assert!(e
            .sup
            .cancel(&e.cwd(), rec.id)
            .unwrap_err()
            .contains("not running"));
    });
}

#[test]
fn cancel_of_a_child_ignoring_sigint_and_sigterm_escalates_to_sigkill() {
    let e = env("stubborn");
    let pids_file = e.project.join("pids");
    rt().block_on(async {
        let pf = format!("--fake-pids-file={}", pids_file.display());
        let rec = e
            .start(
                "hang",
                &[
                    "--fake-hang",
                    "--fake-ignore-signals",
                    "--fake-grandchildren=2",
                    &pf,
                ],
            )
            .await;
        let started = e.ed.wait_event("started", rec.id).await;
        wait_file(&pids_file).await;
        let mut pids = read_pids(&pids_file);
        pids.push(started.process.unwrap().pid);
        e.sup.cancel(&e.cwd(), rec.id).unwrap();
        let done = e.ed.wait_event("cancelled", rec.id).await;
        assert_eq!(done.status, Status::Cancelled);
        assert_eq!(done.runs[0].signal, Some(9), "{:?}", done.runs[0]);
        assert_eq!(alive(&pids), Vec::<i32>::new());
        assert_no_zombies().await;
    });
}

#[test]
fn queue_policy_runs_one_task_per_directory_in_order() {
    let e = env("queue");
    rt().block_on(async {
        let a = e.start("first", &["--fake-hang"]).await;
        e.ed.wait_event("started", a.id).await;
        let b = e.start("second", &[]).await;
        assert_eq!(b.id, a.id + 1);
        // b waits while a runs.
        assert_eq!(e.sup.get(&e.cwd(), b.id).unwrap().status, Status::Queued);
        assert!(!e.ed.has("started", b.id));
        e.sup.cancel(&e.cwd(), a.id).unwrap();
        e.ed.wait_event("cancelled", a.id).await;
        let done = e.ed.wait_event("completed", b.id).await;
        assert_eq!(done.status, Status::Completed);
    });
}

#[test]
fn reject_policy_refuses_a_second_task_in_the_directory() {
    let e = env("reject");
    e.sup
        .configure(|c| c.concurrency = claude_tasks::config::Concurrency::Reject);
    rt().block_on(async {
        let a = e.start("first", &["--fake-hang"]).await;
        e.ed.wait_event("started", a.id).await;
        let err = e.sup.start(e.req("second", &[])).await.unwrap_err();
        assert!(err.contains("already running"), "{err}");
        assert!(err.contains("reject"), "{err}");
        e.sup.cancel(&e.cwd(), a.id).unwrap();
        e.ed.wait_event("cancelled", a.id).await;
    });
}

#[test]
fn max_running_caps_parallel_tasks_and_a_queued_task_can_be_cancelled() {
    let e = env("maxrun");
    e.sup.configure(|c| {
        c.concurrency = claude_tasks::config::Concurrency::Parallel;
        c.max_running = 2;
    });
    rt().block_on(async {
        let a = e.start("a", &["--fake-hang"]).await;
        let b = e.start("b", &["--fake-hang"]).await;
        let c = e.start("c", &[]).await;
        e.ed.wait_event("started", a.id).await;
        e.ed.wait_event("started", b.id).await;
        assert_eq!(e.sup.get(&e.cwd(), c.id).unwrap().status, Status::Queued);
        let d = e.start("d", &[]).await;
        // Cancelling a queued task never spawns it.
        let cd = e.sup.cancel(&e.cwd(), d.id).unwrap();
        assert_eq!(cd.status, Status::Cancelled);
        e.sup.cancel(&e.cwd(), a.id).unwrap();
        e.ed.wait_event("completed", c.id).await;
        e.sup.cancel(&e.cwd(), b.id).unwrap();
        e.ed.wait_event("cancelled", b.id).await;
        assert!(!e.ed.has("started", d.id));
    });
}

#[test]
fn a_missing_binary_makes_a_failed_task_that_says_so() {
    let e = env("missing");
    rt().block_on(async {
        let mut req = e.req("hello", &[]);
        req.options.cmd = vec!["claude-does-not-exist-here".into()];
        let rec = e.sup.start(req).await.unwrap();
        e.attach(rec.id, 3);
        let done = e.ed.wait_event("failed", rec.id).await;
        let err = done.error.clone().unwrap_or_default();
        assert!(err.contains("not found"), "{err}");
        assert!(err.contains("claude-does-not-exist-here"), "{err}");
        e.ed.until("failure footer", |r| {
            r.lines(3).last().is_some_and(|l| l.starts_with("✗ failed"))
        })
        .await;
        assert!(e.ed.lines(3).last().unwrap().contains("not found"));
    });
}

#[test]
fn bad_cwd_and_empty_prompts_are_refused_without_a_task() {
    let e = env("badcwd");
    rt().block_on(async {
        let mut req = e.req("hello", &[]);
        req.cwd = "/nonexistent/dir".into();
        let err = e.sup.start(req).await.unwrap_err();
        assert_eq!(err, "start: cwd '/nonexistent/dir' does not exist");
        let mut req = e.req("hello", &[]);
        req.cwd = e.project.join("README.md").to_string_lossy().into_owned();
        assert!(e
            .sup
            .start(req)
            .await
            .unwrap_err()
            .contains("not a directory"));
        for p in ["", "  \n\t "] {
            let err = e.sup.start(e.req(p, &[])).await.unwrap_err();
            assert_eq!(err, "start: the prompt is empty");
        }
        assert!(e.sup.list(Some(&e.cwd())).is_empty());
    });
}

#[test]
fn prompts_arrive_intact_on_stdin_and_never_as_flags() {
    let e = env("prompts");
    rt().block_on(async {
        let big: String = "0123456789abcdef\n".repeat(1024 * 1024 / 17 + 1);
        for (i, prompt) in ["--help", "-c", "$(touch INJECTED); touch INJECTED", &big]
            .into_iter()
            .enumerate()
        {
            let record = e.project.join(format!("rec{i}"));
            let flag = format!("--fake-record={}", record.display());
            let rec = e.start(prompt, &["--fake-echo-stdin", &flag]).await;
            e.ed.wait_event("completed", rec.id).await;
            let got = std::fs::read(record.with_extension("stdin")).unwrap();
            assert_eq!(got.len(), prompt.len());
            assert!(got == prompt.as_bytes(), "prompt {i} changed on the way");
            let argv = std::fs::read_to_string(record.with_extension("argv")).unwrap();
            assert!(!argv.lines().any(|a| a == prompt), "prompt {i} in argv");
            assert!(
                argv.contains(&format!("--session-id={}", rec.session_id)),
                "{argv}"
            );
        }
        assert!(!e.project.join("INJECTED").exists());
    });
}

#[test]
fn resume_runs_a_follow_up_in_the_same_session_and_adds_up() {
    let e = env("resume");
    rt().block_on(async {
        // Every run of the task uses the task's command, so the record file shows the last run.
        let record = e.project.join("rec");
        let flag = format!("--fake-record={}", record.display());
        let rec = e.start("first", &[&flag]).await;
        e.ed.wait_event("completed", rec.id).await;
        let argv = std::fs::read_to_string(record.with_extension("argv")).unwrap();
        assert!(
            argv.contains(&format!("--session-id={}", rec.session_id)),
            "{argv}"
        );
        let r = e
            .sup
            .resume(&e.cwd(), rec.id, "and now the tests".into())
            .unwrap();
        assert_eq!(r.status, Status::Queued);
        e.attach(rec.id, 9);
        e.ed.until("second completion", |r| {
            r.events
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, x)| k == "completed" && x.id == rec.id)
                .count()
                == 2
        })
        .await;
        let done = e.ed.last("completed", rec.id);
        assert_eq!(done.runs.len(), 2);
        assert_eq!(done.num_turns, 4);
        assert!((done.cost_usd - 0.0246).abs() < 1e-9);
        assert!(done.runs[1].transcript_offset > 0);
        let argv = std::fs::read_to_string(record.with_extension("argv")).unwrap();
        assert!(
            argv.contains(&format!("--resume={}", rec.session_id)),
            "{argv}"
        );
        assert!(!argv.contains("--session-id"), "{argv}");
        let stdin = std::fs::read_to_string(record.with_extension("stdin")).unwrap();
        assert_eq!(stdin, "and now the tests");
        e.ed.until("two footers", |r| {
            r.lines(9)
                .iter()
                .filter(|l| l.starts_with("✓ done"))
                .count()
                == 2
        })
        .await;
        let lines = e.ed.lines(9);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("follow-up") && l.contains("and now the tests")),
            "{lines:#?}"
        );
    });
}

#[test]
fn dispose_refuses_a_running_task_and_removes_a_finished_one() {
    let e = env("dispose");
    rt().block_on(async {
        let rec = e.start("x", &["--fake-hang"]).await;
        e.ed.wait_event("started", rec.id).await;
        let err = e.sup.dispose(&e.cwd(), rec.id).unwrap_err();
        assert!(err.contains("cancel it first"), "{err}");
        e.sup.cancel(&e.cwd(), rec.id).unwrap();
        e.ed.wait_event("cancelled", rec.id).await;
        let dir = e.sup.store().task_dir(&e.cwd(), rec.id);
        assert!(dir.exists());
        e.sup.dispose(&e.cwd(), rec.id).unwrap();
        assert!(!dir.exists());
        assert!(e.sup.get(&e.cwd(), rec.id).is_err());
        // Ids are never reused.
        let next = e.start("y", &[]).await;
        assert_eq!(next.id, rec.id + 1);
        e.ed.wait_event("completed", next.id).await;
    });
}
