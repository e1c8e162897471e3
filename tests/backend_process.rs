//! The backend binary as Neovim runs it: a child process speaking msgpack-RPC on its stdio. The
//! test plays Neovim (it answers the backend's `nvim_exec_lua` calls for events and buffer
//! writes) so that it can crash, restart and duplicate backends at will: RPC hardening, history
//! across restarts, re-adoption after SIGKILL, detach on exit, two backends on one project.
//!
//! Waits are on recorded events or on process state; timeouts only turn a hang into a failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use nvim_rs::compat::tokio::Compat;
use nvim_rs::{Handler, Neovim};
use rmpv::Value;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Notify;

const BACKEND: &str = env!("CARGO_BIN_EXE_claude-tasks");
const FAKE: &str = env!("CARGO_BIN_EXE_fake-claude");
const GUARD: Duration = Duration::from_secs(30);

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

/// What a Neovim would have seen: events and buffers, shared by every backend of a test.
#[derive(Clone, Default)]
struct FakeNvim {
    events: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    bufs: Arc<Mutex<HashMap<i64, Vec<String>>>>,
    changed: Arc<Notify>,
}

#[async_trait]
impl Handler for FakeNvim {
    type Writer = Compat<ChildStdin>;

    async fn handle_request(
        &self,
        name: String,
        args: Vec<Value>,
        _nvim: Neovim<Compat<ChildStdin>>,
    ) -> Result<Value, Value> {
        if name != "nvim_exec_lua" {
            return Err(Value::from(format!("fake nvim: no {name}")));
        }
        let code = args.first().and_then(Value::as_str).unwrap_or_default();
        let params = args
            .get(1)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if code.contains("claude-tasks.events") {
            let ev = to_json(params.first().unwrap_or(&Value::Nil));
            let kind = ev["type"].as_str().unwrap_or_default().to_owned();
            self.events.lock().unwrap().push((kind, ev["task"].clone()));
        } else if code.contains("claude-tasks.buffer") {
            let buf = params[0].as_i64().unwrap_or(0);
            let start = params[1].as_u64().unwrap_or(0) as usize;
            let lines: Vec<String> = params[2]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|l| l.as_str().unwrap_or("").to_owned())
                        .collect()
                })
                .unwrap_or_default();
            let mut bufs = self.bufs.lock().unwrap();
            let Some(b) = bufs.get_mut(&buf) else {
                return Ok(Value::Boolean(false));
            };
            assert!(
                start <= b.len(),
                "write at {start} past the end {}",
                b.len()
            );
            b.truncate(start);
            b.extend(lines);
        } else {
            return Err(Value::from("fake nvim: unexpected lua"));
        }
        self.changed.notify_waiters();
        Ok(Value::Boolean(true))
    }
}

impl FakeNvim {
    async fn until(&self, what: &str, pred: impl Fn(&FakeNvim) -> bool) {
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
            let kinds: Vec<String> = self
                .events
                .lock()
                .unwrap()
                .iter()
                .map(|(k, t)| format!("{k}#{}", t["id"]))
                .collect();
            panic!("timed out waiting for {what}; events {kinds:?}");
        }
    }

    fn count(&self, kind: &str, id: u64) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, t)| k == kind && t["id"] == id)
            .count()
    }

    async fn wait_event(&self, kind: &str, id: u64) -> serde_json::Value {
        self.until(&format!("{kind}#{id}"), |n| n.count(kind, id) > 0)
            .await;
        self.events
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(k, t)| k == kind && t["id"] == id)
            .map(|(_, t)| t.clone())
            .unwrap()
    }

    fn lines(&self, buf: i64) -> Vec<String> {
        self.bufs
            .lock()
            .unwrap()
            .get(&buf)
            .cloned()
            .unwrap_or_default()
    }

    fn new_buf(&self, buf: i64) {
        self.bufs.lock().unwrap().insert(buf, Vec::new());
    }

    async fn footer(&self, buf: i64, prefix: &str) {
        self.until(&format!("footer {prefix} in buffer {buf}"), |n| {
            n.lines(buf).last().is_some_and(|l| l.starts_with(prefix))
        })
        .await;
    }
}

struct Backend {
    nvim: Neovim<Compat<ChildStdin>>,
    child: Child,
    pid: i32,
}

struct World {
    root: PathBuf,
    project: PathBuf,
    fake: FakeNvim,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn world(name: &str) -> World {
    let root = std::env::temp_dir().join(format!("ct-proc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let project = root.join("project");
    std::fs::create_dir_all(&project).unwrap();
    World {
        root,
        project,
        fake: FakeNvim::default(),
    }
}

fn s(v: &str) -> Value {
    Value::from(v)
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(pairs.into_iter().map(|(k, v)| (s(k), v)).collect())
}

fn cmd(args: &[&str]) -> Value {
    let mut v = vec![s(FAKE)];
    v.extend(args.iter().map(|a| s(a)));
    Value::Array(v)
}

impl World {
    fn cwd(&self) -> String {
        self.project.to_string_lossy().into_owned()
    }

    async fn backend(&self) -> Backend {
        let mut c = Command::new(BACKEND);
        c.arg("--state-dir")
            .arg(self.root.join("state"))
            .arg("--log-file")
            .arg(self.root.join("backend.log"))
            .current_dir(&self.project)
            .kill_on_drop(false);
        let (nvim, _io, child) = nvim_rs::create::tokio::new_child_cmd(&mut c, self.fake.clone())
            .await
            .expect("spawn backend");
        let pid = child.id().expect("pid") as i32;
        let b = Backend { nvim, child, pid };
        assert_eq!(
            b.call("version", vec![]).await.unwrap(),
            s(env!("CARGO_PKG_VERSION"))
        );
        b
    }

    fn start_args(&self, prompt: &str, fake: &[&str]) -> Value {
        map(vec![
            ("prompt", s(prompt)),
            ("cwd", s(&self.cwd())),
            ("cmd", cmd(fake)),
        ])
    }

    fn id_args(&self, id: u64) -> Value {
        map(vec![("id", Value::from(id)), ("cwd", s(&self.cwd()))])
    }

    fn attach_args(&self, id: u64, buf: i64) -> Value {
        self.fake.new_buf(buf);
        map(vec![
            ("id", Value::from(id)),
            ("cwd", s(&self.cwd())),
            ("buf", Value::from(buf)),
        ])
    }

    fn transcript(&self, rec: &serde_json::Value) -> PathBuf {
        PathBuf::from(rec["transcript"].as_str().unwrap())
    }
}

impl Backend {
    async fn call(&self, method: &str, args: Vec<Value>) -> Result<Value, String> {
        match self.nvim.call(method, args).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string())),
            Err(e) => Err(format!("transport: {e}")),
        }
    }

    async fn req(&self, method: &str, arg: Value) -> serde_json::Value {
        to_json(
            &self
                .call(method, vec![arg])
                .await
                .unwrap_or_else(|e| panic!("{method}: {e}")),
        )
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), sig).unwrap();
    }

    async fn exit(mut self) -> std::process::ExitStatus {
        tokio::time::timeout(GUARD, self.child.wait())
            .await
            .expect("backend exit")
            .unwrap()
    }
}

fn alive(pid: i64) -> bool {
    claude_tasks::proctree::read(pid as i32).is_some_and(|p| p.state != 'Z')
}

async fn wait_gone(pids: &[i64]) {
    for _ in 0..3000 {
        if pids.iter().all(|&p| !alive(p)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "still alive: {:?}",
        pids.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
    );
}

async fn wait_file(path: &Path) {
    for _ in 0..3000 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never appeared", path.display());
}

fn read_pids(path: &Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// What the whole transcript renders to, computed offline: a buffer must end up exactly so.
fn rendered(rec: &serde_json::Value, transcript: &Path) -> Vec<String> {
    let rec: claude_tasks::task::TaskRecord = serde_json::from_value(rec.clone()).unwrap();
    claude_tasks::view::render_all(&rec, transcript).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_errors_that_name_the_problem() {
    let w = world("rpc");
    let b = w.backend().await;
    let huge = "x".repeat(17 * 1024 * 1024);
    let cases: Vec<(&str, Vec<Value>, &str)> = vec![
        ("frobnicate", vec![], "unknown method 'frobnicate'"),
        ("start", vec![s("just a string")], "start: expected one map of arguments, got string"),
        ("start", vec![map(vec![])], "start: 'prompt' is required (a string)"),
        ("start", vec![map(vec![("prompt", Value::from(3))])], "start: 'prompt' must be a string, got integer"),
        ("start", vec![map(vec![("prompt", s(""))])], "start: the prompt is empty"),
        ("start", vec![map(vec![("prompt", s("hi")), ("cwd", s("/no/such/dir"))])], "start: cwd '/no/such/dir' does not exist"),
        ("start", vec![map(vec![("prompt", s("hi")), ("cmd", Value::from(true))])], "start: 'cmd' must be a string or a list of strings, got boolean"),
        ("start", vec![map(vec![("prompt", s(&huge))])], "start: 'prompt' is too long"),
        ("get", vec![map(vec![("id", s("one"))])], "get: 'id' must be a non-negative integer, got string"),
        ("get", vec![map(vec![("id", Value::from(-4))])], "get: 'id' must be a non-negative integer, got integer"),
        ("get", vec![w.id_args(99)], "no task #99"),
        ("cancel", vec![w.id_args(99)], "no task #99"),
        ("resume", vec![map(vec![("id", Value::from(99)), ("prompt", s("x")), ("cwd", s(&w.cwd()))])], "no task #99"),
        ("attach", vec![map(vec![("id", Value::from(1))])], "attach: 'buf' is required"),
        ("configure", vec![map(vec![("concurrency", s("sometimes"))])], "configure: 'concurrency' must be one of 'queue', 'reject', 'parallel', got 'sometimes'"),
        ("configure", vec![map(vec![("max_running", Value::from(0))])], "configure: 'max_running' must be at least 1"),
        ("list", vec![map(vec![("all", s("yes"))])], "list: 'all' must be a boolean, got string"),
        ("version", vec![s("a"), s("b")], "version: expected one map of arguments, got 2 arguments"),
    ];
    for (method, args, want) in cases {
        let err = b.call(method, args).await.unwrap_err();
        assert!(err.contains(want), "{method}: got {err:?}, want {want:?}");
        // The backend is still there and answering.
        assert_eq!(
            b.call("version", vec![]).await.unwrap(),
            s(env!("CARGO_PKG_VERSION"))
        );
    }
    b.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(b.exit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_a_restart_and_reopens_whole() {
    let w = world("history");
    let b = w.backend().await;
    let rec = b.req("start", w.start_args("first task", &[])).await;
    let id = rec["id"].as_u64().unwrap();
    b.req("attach", w.attach_args(id, 1)).await;
    w.fake.wait_event("completed", id).await;
    w.fake.footer(1, "✓ done").await;
    b.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(b.exit().await.success());

    let b2 = w.backend().await;
    let list = b2.req("list", map(vec![("cwd", s(&w.cwd()))])).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["status"], "completed");
    assert_eq!(list[0]["cost_usd"], 0.0123);
    b2.req("attach", w.attach_args(id, 2)).await;
    w.fake.footer(2, "✓ done").await;
    assert_eq!(w.fake.lines(1), w.fake.lines(2));
    let all = b2
        .req("list", map(vec![("all", Value::Boolean(true))]))
        .await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    b2.signal(nix::sys::signal::Signal::SIGTERM);
    b2.exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_outlives_a_sigkilled_backend_and_is_readopted_whole() {
    let w = world("readopt");
    let b = w.backend().await;
    let rec = b
        .req(
            "start",
            w.start_args("stream", &["--fake-lines=300", "--fake-delay-ms=10"]),
        )
        .await;
    let id = rec["id"].as_u64().unwrap();
    b.req("attach", w.attach_args(id, 1)).await;
    let started = w.fake.wait_event("started", id).await;
    let cli = started["process"]["pid"].as_i64().unwrap();
    w.fake
        .until("some streamed lines", |n| n.lines(1).len() > 20)
        .await;
    b.signal(nix::sys::signal::Signal::SIGKILL);
    b.exit().await;
    assert!(alive(cli), "the CLI must outlive its backend");

    // A new backend (Neovim restarted it because the buffer is open) re-attaches the buffer.
    let b2 = w.backend().await;
    let adopted = b2.req("get", w.id_args(id)).await;
    assert_eq!(adopted["status"], "running");
    assert_eq!(adopted["process"]["owner_pid"], b2.pid);
    b2.req("attach", w.attach_args(id, 1)).await;
    let done = w.fake.wait_event("completed", id).await;
    assert_eq!(done["num_turns"], 1);
    w.fake.footer(1, "✓ done").await;
    let want = rendered(&done, &w.transcript(&done));
    assert_eq!(
        w.fake.lines(1),
        want,
        "the buffer is the whole transcript, once"
    );
    assert!(want.len() > 300, "{} lines", want.len());
    b2.signal(nix::sys::signal::Signal::SIGTERM);
    b2.exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_on_exit_leaves_the_task_running_for_the_next_backend() {
    let w = world("detach");
    let b = w.backend().await;
    b.req("configure", map(vec![("on_exit", s("detach"))]))
        .await;
    let rec = b
        .req(
            "start",
            w.start_args("long", &["--fake-lines=100", "--fake-delay-ms=20"]),
        )
        .await;
    let id = rec["id"].as_u64().unwrap();
    let started = w.fake.wait_event("started", id).await;
    let cli = started["process"]["pid"].as_i64().unwrap();
    b.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(b.exit().await.success());
    assert!(alive(cli));
    let b2 = w.backend().await;
    b2.req("attach", w.attach_args(id, 3)).await;
    let done = w.fake.wait_event("completed", id).await;
    assert_eq!(done["status"], "completed");
    w.fake.footer(3, "✓ done").await;
    b2.signal(nix::sys::signal::Signal::SIGTERM);
    b2.exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_exit_leaves_no_process_behind() {
    let w = world("exitcancel");
    let b = w.backend().await;
    b.req(
        "configure",
        map(vec![
            ("cancel_grace_ms", Value::from(300)),
            ("concurrency", s("parallel")),
        ]),
    )
    .await;
    let mut pids = Vec::new();
    for i in 0..3 {
        let pf = w.root.join(format!("pids{i}"));
        let flag = format!("--fake-pids-file={}", pf.display());
        let ignore = if i == 2 {
            "--fake-ignore-signals"
        } else {
            "--fake-hang"
        };
        let rec = b
            .req(
                "start",
                w.start_args(
                    "hang",
                    &["--fake-hang", ignore, "--fake-grandchildren=2", &flag],
                ),
            )
            .await;
        let started = w
            .fake
            .wait_event("started", rec["id"].as_u64().unwrap())
            .await;
        pids.push(started["process"]["pid"].as_i64().unwrap());
        wait_file(&pf).await;
        pids.extend(read_pids(&pf));
    }
    assert!(pids.iter().all(|&p| alive(p)));
    b.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(b.exit().await.success());
    // The backend exits only after every tree is gone.
    let survivors: Vec<i64> = pids.iter().copied().filter(|&p| alive(p)).collect();
    assert_eq!(survivors, Vec::<i64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_without_result_becomes_interrupted_and_can_be_resumed() {
    let w = world("interrupted");
    let record = w.root.join("rec");
    let flag = format!("--fake-record={}", record.display());
    let pf = w.root.join("pids");
    let pflag = format!("--fake-pids-file={}", pf.display());
    let b = w.backend().await;
    let rec = b
        .req(
            "start",
            w.start_args(
                "hang",
                &["--fake-hang", "--fake-grandchildren=1", &pflag, &flag],
            ),
        )
        .await;
    let id = rec["id"].as_u64().unwrap();
    let session = rec["session_id"].as_str().unwrap().to_owned();
    let started = w.fake.wait_event("started", id).await;
    wait_file(&pf).await;
    let mut pids = read_pids(&pf);
    pids.push(started["process"]["pid"].as_i64().unwrap());
    b.signal(nix::sys::signal::Signal::SIGKILL);
    b.exit().await;
    // The machine "reboots": the task's processes are gone too.
    for &p in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    wait_gone(&pids).await;

    let b2 = w.backend().await;
    let got = b2.req("get", w.id_args(id)).await;
    assert_eq!(got["status"], "interrupted");
    let r = b2
        .req(
            "resume",
            map(vec![
                ("id", Value::from(id)),
                ("prompt", s("go on")),
                ("cwd", s(&w.cwd())),
            ]),
        )
        .await;
    assert_eq!(r["status"], "queued");
    // The follow-up reuses the task's command (it hangs again): catch it running, then cancel.
    let done = tokio::time::timeout(GUARD, async {
        loop {
            let g = b2.req("get", w.id_args(id)).await;
            if g["runs"].as_array().map(Vec::len) == Some(2) && g["process"].is_object() {
                return g;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("second run started");
    assert_eq!(done["runs"][1]["n"], 2);
    let argv = std::fs::read_to_string(record.with_extension("argv")).unwrap();
    assert!(argv.contains(&format!("--resume={session}")), "{argv}");
    assert_eq!(
        std::fs::read_to_string(record.with_extension("stdin")).unwrap(),
        "go on"
    );
    b2.req("cancel", w.id_args(id)).await;
    let c = w.fake.wait_event("cancelled", id).await;
    assert_eq!(c["runs"][0]["status"], "interrupted");
    assert_eq!(c["runs"][1]["status"], "cancelled");
    b2.signal(nix::sys::signal::Signal::SIGTERM);
    b2.exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backends_share_a_project_ids_views_and_cancel() {
    let w = world("two");
    let a = w.backend().await;
    let b = w.backend().await;
    for x in [&a, &b] {
        x.req(
            "configure",
            map(vec![
                ("concurrency", s("parallel")),
                ("max_running", Value::from(50)),
            ]),
        )
        .await;
    }
    // Ids never collide, even when both allocate at the same instant.
    let mut ids = Vec::new();
    let (ra, rb) = tokio::join!(
        async {
            let mut v = Vec::new();
            for _ in 0..15 {
                v.push(
                    a.req("start", w.start_args("a", &[])).await["id"]
                        .as_u64()
                        .unwrap(),
                );
            }
            v
        },
        async {
            let mut v = Vec::new();
            for _ in 0..15 {
                v.push(
                    b.req("start", w.start_args("b", &[])).await["id"]
                        .as_u64()
                        .unwrap(),
                );
            }
            v
        }
    );
    ids.extend(ra);
    ids.extend(rb);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 30);
    for &id in &ids {
        w.fake.wait_event("completed", id).await;
    }
    // b watches a's running task live and sees it end.
    let rec = a
        .req(
            "start",
            w.start_args("watched", &["--fake-lines=50", "--fake-delay-ms=20"]),
        )
        .await;
    let id = rec["id"].as_u64().unwrap();
    w.fake.wait_event("started", id).await;
    b.req("attach", w.attach_args(id, 5)).await;
    w.fake.footer(5, "✓ done").await;
    // b cancels a task a runs: a reports it cancelled.
    let rec = a
        .req("start", w.start_args("victim", &["--fake-hang"]))
        .await;
    let id = rec["id"].as_u64().unwrap();
    w.fake.wait_event("started", id).await;
    b.req("cancel", w.id_args(id)).await;
    let c = w.fake.wait_event("cancelled", id).await;
    assert_eq!(c["status"], "cancelled");
    for x in [a, b] {
        x.signal(nix::sys::signal::Signal::SIGTERM);
        x.exit().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_markdown_and_retention() {
    let w = world("export");
    let b = w.backend().await;
    b.req(
        "configure",
        map(vec![
            ("export_markdown", Value::Boolean(true)),
            ("keep", Value::from(2)),
        ]),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let rec = b
            .req("start", w.start_args(&format!("task {i}"), &[]))
            .await;
        let id = rec["id"].as_u64().unwrap();
        w.fake.wait_event("completed", id).await;
        ids.push(id);
    }
    let md = std::fs::read_to_string(
        w.project
            .join(format!(".claude-tasks/task-{}-output.md", ids[2])),
    )
    .unwrap();
    assert!(
        md.starts_with(&format!("# Task #{}: task 2\n", ids[2])),
        "{md}"
    );
    for want in [
        "- status: completed",
        "- project: ",
        "- created: ",
        "- duration: ",
        "- cost: $0.0123",
        "● Bash(ls)",
        "✓ done in",
    ] {
        assert!(md.contains(want), "{want} missing from\n{md}");
    }
    // keep = 2: the oldest finished task was disposed.
    w.fake.wait_event("disposed", ids[0]).await;
    let list = b.req("list", map(vec![("cwd", s(&w.cwd()))])).await;
    let left: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(left, vec![ids[2], ids[1]]);
    b.signal(nix::sys::signal::Signal::SIGTERM);
    b.exit().await;
}
