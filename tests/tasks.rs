//! The supervisor with the fake `claude` and a recording editor in place of Neovim: policies,
//! cancel, bad input and buffer views, end to end through real processes and files.
//!
//! Deterministic: every wait is on an event the editor recorded; the timeouts only turn a hang
//! into a failure.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use claude_tasks::nvim::editor::{Editor, WriteError, Written};
use claude_tasks::nvim::outgoing::Sent;
use claude_tasks::store::Store;
use claude_tasks::task::{Status, TaskOptions, TaskRecord};
use claude_tasks::tasks::{StartRequest, Supervisor};
use common::{living, read_pids, wait_file, Scratch, Screen, FAKE};
use rmpv::Value;

const GUARD: Duration = Duration::from_secs(30);

/// One runtime for the whole binary: the supervisor's tasks outlive a single test's block_on.
fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        claude_tasks::process::reaper::init().expect("reaper");
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// The editor: it records what the supervisor tells it.
type Recorder = Screen<TaskRecord>;

struct Env {
    _dir: Scratch,
    project: PathBuf,
    sup: Supervisor,
    ed: Arc<Recorder>,
}

/// The end of a test is the editor's exit: every CLI the test left (idle ones kept for
/// follow-ups included) is closed, as `on_exit = "cancel"` does, instead of outliving the test
/// binary. On a thread of its own, so that a drop inside the runtime cannot block it.
impl Drop for Env {
    fn drop(&mut self) {
        let sup = self.sup.clone();
        let _ = std::thread::spawn(move || rt().block_on(sup.shutdown())).join();
    }
}

fn env(name: &str) -> Env {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = Scratch::new("sup", &format!("{name}-{n}"));
    let store = Store::open(&dir.root.join("state")).unwrap();
    let ed = Arc::new(Recorder::new(GUARD));
    let sup = rt().block_on(async { Supervisor::new(store, ed.clone()) });
    sup.configure(|c| c.cancel_grace = Duration::from_millis(300));
    Env {
        project: dir.project.clone(),
        _dir: dir,
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
        request(prompt, &self.cwd(), cmd)
    }

    async fn start(&self, prompt: &str, fake_args: &[&str]) -> TaskRecord {
        self.sup
            .start(self.req(prompt, fake_args))
            .await
            .expect("start")
    }

    fn attach(&self, id: u64, buf: i64) {
        self.ed.new_buf(buf);
        self.sup.attach(&self.cwd(), id, buf).expect("attach");
    }
}

/// `start` of `prompt` in `cwd`, run by `cmd`.
fn request(prompt: &str, cwd: &str, cmd: Vec<String>) -> StartRequest {
    StartRequest {
        prompt: prompt.to_owned(),
        cwd: cwd.to_owned(),
        name: None,
        options: TaskOptions {
            cmd,
            model: None,
            permission_mode: "acceptEdits".into(),
            allowed_tools: vec![],
            args: vec![],
            ..Default::default()
        },
        isolation: Default::default(),
        context: vec![],
    }
}

fn zombie_children() -> Vec<i32> {
    let me = std::process::id() as i32;
    claude_tasks::process::proctree::list()
        .into_iter()
        .filter(|p| p.ppid == me && p.state == 'Z')
        .map(|p| p.pid)
        .collect()
}

/// Tests run in parallel in this one process (the subreaper): another test's child may be a
/// zombie for the instant before the reaper collects it, so wait for the count to reach zero.
async fn assert_no_zombies() {
    if !common::poll(500, || zombie_children().is_empty()).await {
        panic!("zombie children: {:?}", zombie_children());
    }
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
        let lines = e.ed.footer(7, "✓ done in").await;
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

/// A long answer from CLI 2.1.332, whose result line repeats it before `type`: the task
/// completes with its cost counted and the buffer shows it, whatever its size (8 KB; 4.8 MB, a
/// result line over the framer's cap; 60 MiB in one assistant line).
#[test]
fn a_long_answer_of_cli_2_1_332_completes_with_its_cost() {
    let e = env("long-332");
    rt().block_on(async {
        let cases: [(&str, &str); 3] = [
            ("--fake-lines=100", "line 000100 "),
            ("--fake-lines=60000", "line 060000 "),
            ("--fake-huge-line=62914560", "lorem ipsum dolor sit amet "),
        ];
        for (buf, (size, last)) in (1..).zip(cases) {
            let rec = e
                .start("a long answer", &["--fake-cli-version=2.1.332", size])
                .await;
            e.attach(rec.id, buf);
            let (kind, done) = e.ed.wait_end(rec.id).await;
            assert_eq!(
                (kind.as_str(), done.error.as_deref()),
                ("completed", None),
                "{size}"
            );
            assert_eq!(done.num_turns, 1);
            assert!(
                (done.cost_usd - 0.0042).abs() < 1e-9,
                "{size}: {}",
                done.cost_usd
            );
            let kept = done.result.as_deref().unwrap_or("");
            assert!(kept.starts_with(&last[..5]), "{size}: {kept:?}");
            let lines = e.ed.footer(buf, "✓ done in").await;
            assert!(lines.iter().any(|l| l.starts_with(last)), "{size}");
            assert_eq!(lines[3], "model: claude-opus-5-5 · permission: acceptEdits");
        }
    });
}

#[test]
fn a_buffer_attached_after_the_end_gets_the_same_lines() {
    let e = env("replay");
    rt().block_on(async {
        let rec = e.start("hello", &[]).await;
        e.attach(rec.id, 1);
        e.ed.wait_event("completed", rec.id).await;
        e.ed.footer(1, "✓").await;
        e.attach(rec.id, 2);
        e.ed.footer(2, "✓").await;
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
        assert_eq!(living(&pids).len(), 4);
        let r = e.sup.cancel(&e.cwd(), rec.id).unwrap();
        assert!(r.cancel_requested);
        let done = e.ed.wait_event("cancelled", rec.id).await;
        assert_eq!(done.status, Status::Cancelled);
        assert!(done.process.is_none());
        assert_eq!(living(&pids), Vec::<i32>::new());
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
        assert_eq!(living(&pids), Vec::<i32>::new());
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
        .configure(|c| c.concurrency = claude_tasks::tasks::config::Concurrency::Reject);
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
        c.concurrency = claude_tasks::tasks::config::Concurrency::Parallel;
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
        let lines = e.ed.footer(3, "✗ failed").await;
        assert!(lines.last().unwrap().contains("not found"));
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
    // The CLI ends with its run: the follow-up resumes the session in a new one (a cold
    // follow-up; tests/live.rs has the warm ones).
    e.sup.configure(|c| c.keep_alive = Duration::ZERO);
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
        e.ed.until("second completion", |r| r.count("completed", rec.id) == 2)
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

// ------------------------------------------------------------------ issue 23: everyday use

/// Item 1: a CLI that rejects its flags ends without a result line; the reason it printed on
/// stderr is the run's error (event and record), and its last lines are under the footer.
#[test]
fn issue23_1_a_cli_that_fails_on_stderr_says_why() {
    let e = env("stderr");
    rt().block_on(async {
        // It names its session first (a follow-up needs one to resume), then fails.
        let cli = e.project.join("rejecting-cli");
        std::fs::write(
            &cli,
            "#!/bin/sh\necho '{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"s\"}'\necho 'noise before'\nprintf 'a warning\\n\\033[31merror:\\033[0m option '\\''--permission-mode <mode>'\\'' argument '\\''bogus'\\'' is invalid.\\n\\n' >&2\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut req = e.req("hello", &[]);
        req.options.cmd = vec![cli.to_string_lossy().into_owned()];
        let rec = e.sup.start(req).await.unwrap();
        e.attach(rec.id, 4);
        let done = e.ed.wait_event("failed", rec.id).await;
        let want = "the CLI exited with code 1 without a result: error: option \
                    '--permission-mode <mode>' argument 'bogus' is invalid.";
        assert_eq!(done.error.as_deref(), Some(want));
        assert_eq!(
            done.runs[0].stderr,
            [
                "a warning",
                "error: option '--permission-mode <mode>' argument 'bogus' is invalid."
            ]
        );
        let lines = e.ed.footer(4, "  │ error").await;
        let n = lines.len();
        assert!(lines[n - 3].starts_with(&format!("✗ failed: {want} · ")), "{lines:#?}");
        assert_eq!(lines[n - 2], "  │ a warning");
        // A follow-up that fails reads only its own part of stderr.
        e.sup
            .resume(&e.cwd(), rec.id, "again".into())
            .expect("resume");
        e.ed.until("the follow-up's failure", |n| n.count("failed", rec.id) == 2)
            .await;
        let again = e.ed.last("failed", rec.id);
        assert_eq!(again.runs.len(), 2);
        assert_eq!(again.runs[1].stderr, done.runs[0].stderr);
    });
}

/// Item 3: the tools the CLI denied are in the run's record and its footer, with what allows
/// them (the 2.1.197 fixture where Write was denied in the default mode).
#[test]
fn issue23_3_denied_tools_are_counted_in_the_record_and_the_footer() {
    let e = env("denied");
    rt().block_on(async {
        let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/claude-cli-2.1.197/write-stream-json-default/stdout.jsonl");
        let arg = format!("--fake-transcript={}", fixture.display());
        let rec = e.start("write hello.txt", &[&arg]).await;
        e.attach(rec.id, 5);
        let done = e.ed.wait_event("completed", rec.id).await;
        assert_eq!(done.runs[0].denied, ["Write"]);
        let lines = e.ed.footer(5, "  ⚠ to allow").await;
        let n = lines.len();
        assert!(
            lines[n - 2].starts_with("✓ done in ")
                && lines[n - 2].ends_with(" · 1 tool denied (Write)"),
            "{lines:#?}"
        );
        assert_eq!(
            lines[n - 1],
            "  ⚠ to allow: A (always) on the next request, or allowed_tools = { \"Write\" } \
             (:help claude-tasks-permissions)"
        );
        // The record on disk carries them too.
        assert_eq!(
            e.sup.get(&e.cwd(), rec.id).unwrap().runs[0].denied,
            ["Write"]
        );
    });
}

/// Item 12: the context a start names is in the record and the header.
#[test]
fn issue23_12_the_context_is_in_the_record_and_the_header() {
    let e = env("context");
    rt().block_on(async {
        let mut req = e.req("explain", &[]);
        req.context = vec!["src/sample.lua:2-4".into(), "a\nb".into(), "".into()];
        let rec = e.sup.start(req).await.unwrap();
        assert_eq!(rec.context, ["src/sample.lua:2-4", "a…"]);
        e.attach(rec.id, 6);
        let lines = e.ed.footer(6, "✓ done").await;
        assert_eq!(lines[2], "context: src/sample.lua:2-4, a…");
        assert_eq!(
            e.sup.store().read_record(&e.cwd(), rec.id).unwrap().context,
            rec.context
        );
    });
}

/// Item 26: dispose (and retention) removes the task's Markdown export, and `.claude-tasks/`
/// once it is empty; a folder that still holds something stays.
#[test]
fn issue23_26_dispose_removes_the_export_and_its_empty_folder() {
    let e = env("export-dispose");
    // Retention waits for a task whose CLI idles: none here.
    e.sup.configure(|c| {
        c.export_markdown = true;
        c.keep_alive = Duration::ZERO;
    });
    rt().block_on(async {
        let dir = e.project.join(".claude-tasks");
        let a = e.start("one", &[]).await;
        e.ed.wait_event("completed", a.id).await;
        let b = e.start("two", &[]).await;
        e.ed.wait_event("completed", b.id).await;
        let export = |id: u64| dir.join(format!("task-{id}-output.md"));
        assert!(export(a.id).is_file() && export(b.id).is_file());
        e.sup.dispose(&e.cwd(), a.id).unwrap();
        assert!(!export(a.id).exists());
        assert!(dir.is_dir(), "task b's export is still there");
        e.sup.dispose(&e.cwd(), b.id).unwrap();
        assert!(!dir.exists(), "the empty folder stays behind");
        // Someone else's file keeps the folder.
        let c = e.start("three", &[]).await;
        e.ed.wait_event("completed", c.id).await;
        std::fs::write(dir.join("notes.md"), "mine").unwrap();
        // Retention disposes it: keep = 0 prunes every finished task after the next run.
        e.sup.configure(|cfg| cfg.keep = 0);
        let d = e.start("four", &[]).await;
        e.ed.wait_event("disposed", c.id).await;
        e.ed.wait_event("disposed", d.id).await;
        assert!(!export(c.id).exists() && !export(d.id).exists());
        assert_eq!(
            std::fs::read_to_string(dir.join("notes.md")).unwrap(),
            "mine"
        );
    });
}

// ------------------------------------------------------------------------------ pipelined writes

enum Via {
    Atomic,
    Lua,
}

struct Req {
    via: Via,
    buf: i64,
    start: usize,
    lines: Vec<String>,
    answer: tokio::sync::oneshot::Sender<Written>,
}

type Requests = tokio::sync::mpsc::UnboundedReceiver<Req>;

/// The backend's side of a scripted Neovim: every write is put on a channel, in the order the
/// backend sends it, and answered by whatever serves the other end (`serve_wire`,
/// `serve_script`): that is the Neovim.
struct Queued {
    screen: Arc<Recorder>,
    tx: tokio::sync::mpsc::UnboundedSender<Req>,
    /// Writes sent and not answered yet, and the most seen at once.
    in_flight: std::sync::Mutex<(usize, usize)>,
    /// Requests that came through Lua.
    lua: std::sync::atomic::AtomicUsize,
}

impl Queued {
    fn new<F>(screen: Arc<Recorder>, serve: impl FnOnce(Arc<Recorder>, Requests) -> F) -> Queued
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        rt().spawn(serve(screen.clone(), rx));
        Queued {
            screen,
            tx,
            in_flight: Default::default(),
            lua: Default::default(),
        }
    }

    /// Puts the request on the channel, ahead of any later one (then fires `sent`, as our writer
    /// thread does once a message is on its way), and waits for its answer.
    async fn request(
        &self,
        via: Via,
        buf: i64,
        start: usize,
        lines: &[String],
        sent: Option<Sent>,
    ) -> Written {
        let (answer, rx) = tokio::sync::oneshot::channel();
        {
            let mut c = self.in_flight.lock().unwrap();
            c.0 += 1;
            c.1 = c.1.max(c.0);
        }
        let req = Req {
            via,
            buf,
            start,
            lines: lines.to_vec(),
            answer,
        };
        self.tx.send(req).expect("the scripted Neovim");
        if let Some(sent) = sent {
            let _ = sent.send(());
        }
        let written = rx.await.expect("an answer");
        self.in_flight.lock().unwrap().0 -= 1;
        written
    }
}

#[async_trait]
impl Editor for Queued {
    async fn event(&self, ev: Value) {
        self.screen.event(ev).await;
    }

    async fn write_lines(
        &self,
        buf: i64,
        start: usize,
        lines: &[String],
        sent: Sent,
    ) -> Result<Written, WriteError> {
        Ok(self
            .request(Via::Atomic, buf, start, lines, Some(sent))
            .await)
    }

    async fn write_fallback(
        &self,
        buf: i64,
        start: usize,
        lines: &[String],
    ) -> Result<(), WriteError> {
        self.lua.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.request(Via::Lua, buf, start, lines, None).await;
        Ok(())
    }
}

/// Neovim's side of the channel as far as writes go: requests run one at a time in the order
/// they were sent, with a text lock on some of them, during which the atomic write is refused
/// and the Lua `write` holds its lines back until the lock is gone (as `output.write` does).
/// The backend keeps two writes in flight; the buffer must still end up exactly right.
/// Each call is answered when the next request comes, or after `busy`.
async fn serve_wire(busy: Duration, s: Arc<Recorder>, mut rx: Requests) {
    let mut n = 0u64;
    let mut held: Vec<(i64, usize, Vec<String>)> = Vec::new();
    let flush = |held: &mut Vec<(i64, usize, Vec<String>)>| {
        for (buf, start, lines) in held.drain(..) {
            assert!(s.write(buf, start, lines));
        }
    };
    let mut next: Option<Req> = None;
    loop {
        // When no request comes for a while, the lock is gone and the held lines go in
        // (`output.write`'s scheduled flush).
        let req = match next.take() {
            Some(r) => r,
            None => match tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(_) => {
                    flush(&mut held);
                    continue;
                }
            },
        };
        n += 1;
        // Runs of one and two locked requests, at no regular distance.
        let locked = n % 7 == 3 || n % 11 == 4 || n % 11 == 5;
        if !locked {
            flush(&mut held);
        }
        let len = s.lines(req.buf).len();
        let res = match req.via {
            Via::Atomic if locked || !held.is_empty() || req.start > len => Written::Fallback,
            Via::Lua if locked => {
                held.push((req.buf, req.start, req.lines));
                Written::Applied
            }
            // `Screen::write` asserts that a write starts within the buffer.
            _ => {
                assert!(s.write(req.buf, req.start, req.lines));
                Written::Applied
            }
        };
        // This Neovim answers once the next request is there (or after `busy`): the
        // backend always has the chance to send a second write, so that two in flight
        // is what happens, not what timing may give.
        if let Ok(r) = tokio::time::timeout(busy, rx.recv()).await {
            next = r;
        }
        let _ = req.answer.send(res);
    }
}

/// A supervisor whose editor is a `Queued`, served by `serve`.
struct WireEnv {
    _dir: Scratch,
    cwd: String,
    screen: Arc<Recorder>,
    ed: Arc<Queued>,
    sup: Supervisor,
}

impl Drop for WireEnv {
    fn drop(&mut self) {
        let sup = self.sup.clone();
        let _ = std::thread::spawn(move || rt().block_on(sup.shutdown())).join();
    }
}

impl WireEnv {
    fn new<F>(name: &str, serve: impl FnOnce(Arc<Recorder>, Requests) -> F) -> WireEnv
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let dir = Scratch::new("sup", name);
        let store = Store::open(&dir.root.join("state")).unwrap();
        let screen = Arc::new(Recorder::new(GUARD));
        let ed = Arc::new(Queued::new(screen.clone(), serve));
        let sup = rt().block_on(async { Supervisor::new(store, ed.clone()) });
        WireEnv {
            cwd: dir.project.to_string_lossy().into_owned(),
            _dir: dir,
            screen,
            ed,
            sup,
        }
    }

    fn transcript(&self, id: u64) -> PathBuf {
        self.sup
            .store()
            .task_dir(&self.cwd, id)
            .join("transcript.jsonl")
    }

    /// What the task's whole transcript renders to now, computed offline.
    fn rendered(&self, id: u64) -> Vec<String> {
        let rec = self.sup.get(&self.cwd, id).unwrap();
        claude_tasks::view::render_all(&rec, &self.transcript(id)).unwrap()
    }

    /// Starts a task running `cmd` and attaches a new buffer 5 to it.
    async fn stream_to_buffer(&self, prompt: &str, cmd: Vec<String>) -> TaskRecord {
        let rec = self
            .sup
            .start(request(prompt, &self.cwd, cmd))
            .await
            .expect("start");
        self.screen.new_buf(5);
        self.sup.attach(&self.cwd, rec.id, 5).expect("attach");
        // A test that writes the transcript itself must not write before the run exists, as
        // no CLI can: the header says when the run started.
        self.screen.wait_event("started", rec.id).await;
        rec
    }
}

/// Streams `cmd` into a buffer of a wire (see `serve_wire` for `busy`); checks that the buffer
/// ends up as the rendered transcript, and that writes did overlap and did fall back.
fn through_the_wire(name: &str, cmd: Vec<String>, busy: Duration) {
    let e = WireEnv::new(name, |s, rx| serve_wire(busy, s, rx));
    let (screen, wire) = (&e.screen, &e.ed);
    rt().block_on(async {
        let rec = e.stream_to_buffer("a long answer", cmd).await;
        screen.wait_event("completed", rec.id).await;
        // The end state, which later writes (a redo after a fallback) may still be reaching.
        screen.buffer_becomes(5, &e.rendered(rec.id)).await;
        // The case this is about did happen: two writes at once, and writes redone through Lua.
        assert!(wire.in_flight.lock().unwrap().1 >= 2);
        assert!(wire.lua.load(std::sync::atomic::Ordering::SeqCst) > 0);
    });
}

/// A flood: full calls back to back, each appending.
#[test]
fn pipelined_writes_of_a_flood_land_in_order_through_text_locks() {
    let cmd = vec![
        FAKE.to_owned(),
        "--fake-lines=30000".into(),
        "--fake-line-bytes=60".into(),
    ];
    through_the_wire("wire-flood", cmd, Duration::from_millis(50));
}

/// A trickle of deltas that end mid-line: every write rewrites the last line, so the write after
/// one that falls back may start inside the buffer and be taken, then be undone by that
/// fallback, and must be redone after it. Calls slower than a frame make two of them overlap.
#[test]
fn pipelined_rewrites_of_a_growing_line_land_in_order_through_text_locks() {
    let dir = Scratch::new("sup", "wire-trickle-transcript");
    let fixture =
        claude_tasks::testutil::fixture_dir().join("hello-stream-json-partial/stdout.jsonl");
    let mut out = Vec::new();
    let mut text = String::new();
    for line in std::fs::read_to_string(fixture).unwrap().lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["event"]["delta"]["type"] == "text_delta" {
            if !text.is_empty() {
                continue;
            }
            // Pieces of 1 to 9 bytes; a line ends every ~40.
            for i in 0..400 {
                let piece = if i % 7 == 6 {
                    "end\n".to_owned()
                } else {
                    "ab cdefg"[..(i % 8) + 1].to_owned()
                };
                v["event"]["delta"]["text"] = piece.clone().into();
                text.push_str(&piece);
                out.push(v.to_string());
            }
        } else {
            if v["type"] == "assistant" {
                v["message"]["content"][0]["text"] = text.clone().into();
            }
            out.push(v.to_string());
        }
    }
    let path = dir.root.join("trickle.jsonl");
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
    let cmd = vec![
        FAKE.to_owned(),
        format!("--fake-transcript={}", path.display()),
        "--fake-delay-ms=1".into(),
    ];
    through_the_wire("wire-trickle", cmd, Duration::from_millis(25));
}

/// Attaching the buffer again in the middle of a flood starts a new view from line 0 while the
/// old one has writes in flight and waiting, some of them falling back: once everything is
/// answered, the buffer is exactly the rendered transcript. (An old write landing right after
/// the new view's first one would be overwritten by the new view's later writes; this checks
/// that nothing is left over at the end, not the order in between.)
#[test]
fn attaching_again_mid_flood_ends_with_the_rendered_transcript() {
    let e = WireEnv::new("wire-reattach", |s, rx| {
        serve_wire(Duration::from_millis(50), s, rx)
    });
    let (screen, sup, cwd) = (&e.screen, &e.sup, e.cwd.as_str());
    rt().block_on(async {
        let cmd = vec![
            FAKE.to_owned(),
            "--fake-lines=40000".into(),
            "--fake-line-bytes=60".into(),
        ];
        let rec = e.stream_to_buffer("a long answer", cmd).await;
        screen
            .until("the first 5,000 lines", |s| s.lines(5).len() > 5_000)
            .await;
        sup.attach(cwd, rec.id, 5).expect("attach again");
        screen.wait_event("completed", rec.id).await;
        // The end state, which later writes (a redo after a fallback) may still be reaching.
        screen.buffer_becomes(5, &e.rendered(rec.id)).await;
    });
}

/// A request as the scripted Neovim ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    lua: bool,
    start: usize,
    lines: Vec<String>,
}

/// What `serve_script` ran, in order, and a bell rung after each.
#[derive(Default)]
struct ScriptLog {
    seen: std::sync::Mutex<Vec<Seen>>,
    ran: tokio::sync::Notify,
}

impl ScriptLog {
    /// Waits until a request whose last line is `last` has run, through Lua if `lua`.
    async fn saw(&self, lua: bool, last: &str) {
        let came = || {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.lua == lua && r.lines.last().map(String::as_str) == Some(last))
        };
        if !common::comes_to_hold(&self.ran, GUARD, came).await {
            panic!(
                "no request (lua: {lua}) ending in {last:?}: {:?}",
                self.seen.lock().unwrap()
            );
        }
    }
}

/// Neovim's side for one exact interleaving: requests run in the order they were sent, and are
/// answered at once, except the first atomic write whose last line is `refuse`: it is refused as
/// under a text lock, and its answer waits until the request after it has run. So the write
/// sent after the refused one is always taken before the refused one is redone through Lua,
/// whose replace-to-the-end then undoes it; nothing else may have repaired it by then.
async fn serve_script(refuse: String, log: Arc<ScriptLog>, s: Arc<Recorder>, mut rx: Requests) {
    let mut refused = false;
    let mut next: Option<Req> = None;
    loop {
        let req = match next.take() {
            Some(r) => r,
            None => match rx.recv().await {
                Some(r) => r,
                None => return,
            },
        };
        let lua = matches!(req.via, Via::Lua);
        let refuse_it = !lua && !refused && req.lines.last() == Some(&refuse);
        let seen = Seen {
            lua,
            start: req.start,
            lines: req.lines.clone(),
        };
        if !refuse_it {
            assert!(s.write(req.buf, req.start, req.lines));
        }
        // Logged once it has run, so a test that saw it sees its effect.
        log.seen.lock().unwrap().push(seen);
        log.ran.notify_waiters();
        if refuse_it {
            refused = true;
            next = rx.recv().await;
            let _ = req.answer.send(Written::Fallback);
        } else {
            let _ = req.answer.send(Written::Applied);
        }
    }
}

/// Appends to a task's transcript by hand, as its CLI would (the task's CLI writes nothing):
/// the fixture's head up to its first text delta, then deltas of our choosing.
struct HandWritten {
    path: PathBuf,
    delta: serde_json::Value,
}

impl HandWritten {
    fn begin(path: PathBuf) -> HandWritten {
        let fixture =
            claude_tasks::testutil::fixture_dir().join("hello-stream-json-partial/stdout.jsonl");
        let text = std::fs::read_to_string(fixture).unwrap();
        let mut head = Vec::new();
        let mut delta = None;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["event"]["delta"]["type"] == "text_delta" {
                delta = Some(v);
                break;
            }
            head.push(line);
        }
        let t = HandWritten {
            path,
            delta: delta.expect("a text delta in the fixture"),
        };
        t.append(&(head.join("\n") + "\n"));
        t
    }

    fn append(&self, s: &str) {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    fn delta(&mut self, text: &str) {
        self.delta["event"]["delta"]["text"] = text.into();
        self.append(&(self.delta.to_string() + "\n"));
    }
}

/// The rule the trickle and flood tests cannot pin down (a later write repairs the buffer before
/// their end): a write taken while the write ahead of it was refused must be redone through Lua
/// after that one, because the refused write's replace-to-the-end undoes it. Here nothing comes
/// after it, so without the redo the buffer would keep the older text.
#[test]
fn a_write_taken_before_a_refused_one_is_redone_after_it() {
    let log = Arc::new(ScriptLog::default());
    let script = log.clone();
    let e = WireEnv::new("script-redo", |s, rx| {
        serve_script("abcd".into(), script, s, rx)
    });
    let (screen, sup, cwd) = (&e.screen, &e.sup, e.cwd.as_str());
    rt().block_on(async {
        let cmd = vec![FAKE.to_owned(), "--fake-silent-hang".into()];
        let rec = e.stream_to_buffer("x", cmd).await;
        let mut t = HandWritten::begin(e.transcript(rec.id));
        t.delta("abc");
        screen
            .until("the first text", |s| {
                s.lines(5).last().map(String::as_str) == Some("abc")
            })
            .await;
        // Refused, and answered only once the next write has run.
        t.delta("d");
        log.saw(false, "abcd").await;
        t.delta("e");
        // The redo; without it, the buffer would end with the refused write's "abcd".
        log.saw(true, "abcde").await;
        let want = e.rendered(rec.id);
        assert_eq!(want.last().map(String::as_str), Some("abcde"));
        assert_eq!(screen.lines(5), want);
        let seen = log.seen.lock().unwrap().clone();
        let k = seen
            .iter()
            .find(|r| r.lines.last().map(String::as_str) == Some("abcd"))
            .unwrap()
            .start;
        let at = |lua: bool, last: &str| Seen {
            lua,
            start: k,
            lines: vec![last.to_owned()],
        };
        // The interleaving this is about: taken before the refused write was redone, then redone.
        assert_eq!(
            seen[seen.len() - 4..],
            [
                at(false, "abcd"),
                at(false, "abcde"),
                at(true, "abcd"),
                at(true, "abcde")
            ],
            "{seen:?}"
        );
        sup.cancel(cwd, rec.id).expect("cancel");
        screen.wait_end(rec.id).await;
        screen.buffer_becomes(5, &e.rendered(rec.id)).await;
    });
}
