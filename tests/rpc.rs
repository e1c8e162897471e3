//! The backend binary as Neovim runs it: a child process speaking msgpack-RPC on its stdio. The
//! test plays Neovim (it answers the backend's calls for events and buffer writes) so that it
//! can crash, restart and duplicate backends at will: RPC hardening, history across restarts,
//! re-adoption after SIGKILL, detach on exit, two backends on one project, both write paths.
//!
//! Waits are on recorded events or on process state; timeouts only turn a hang into a failure.

mod common;

use std::time::Duration;

use common::{
    alive, ids_of, living, map, nice_of, poll, read_pids, rendered, s, threads_of, wait_file,
    wait_gone, World,
};
use rmpv::Value;

const GUARD: Duration = Duration::from_secs(30);

fn world(name: &str) -> World {
    World::new("proc", name, GUARD)
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
        ("resume", vec![w.resume_args(99, "x")], "no task #99"),
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
        b.alive_and_answering().await;
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_a_restart_and_reopens_whole() {
    let w = world("history");
    let b = w.backend().await;
    let id = b.start(w.start_args("first task", &[])).await;
    b.req("attach", w.attach_args(id, 1)).await;
    w.fake.wait_event("completed", id).await;
    w.fake.footer(1, "✓ done").await;
    b.stop().await;

    let b2 = w.backend().await;
    let list = b2.req("list", w.list_args()).await;
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
    b2.quit().await;
}

/// The usual write (one `nvim_call_atomic`, its lines spliced into the message by the backend's
/// writer) and the Lua fallback (a Neovim without `nvim_call_atomic`) show the same buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_writes_and_the_lua_fallback_show_the_same_buffer() {
    let w = world("atomic");
    let b = w.backend().await;
    // Many calls of 128 KiB, of lines in three msgpack string classes (fixstr, str8, str16).
    let args = ["--fake-lines=30000", "--fake-line-bytes=300"];
    let id = b.start(w.start_args("flood", &args)).await;
    b.req("attach", w.attach_args(id, 1)).await;
    let end = w.fake.wait_end(id).await.1;
    let want = w.buffer_shows(1, &end).await;
    assert!(want.len() > 30_000, "{} lines", want.len());
    let (atomic, lua) = w.fake.writes();
    assert!(atomic > 10 && lua == 0, "atomic {atomic}, lua {lua}");

    w.fake.without_call_atomic();
    b.req("attach", w.attach_args(id, 2)).await;
    w.fake.buffer_becomes(2, &want).await;
    let (atomic2, lua2) = w.fake.writes();
    assert!(
        atomic2 == atomic && lua2 > 10,
        "atomic {atomic2}, lua {lua2}"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_outlives_a_sigkilled_backend_and_is_readopted_whole() {
    let w = world("readopt");
    let b = w.backend().await;
    let id = b
        .start(w.start_args("stream", &["--fake-lines=300", "--fake-delay-ms=10"]))
        .await;
    b.req("attach", w.attach_args(id, 1)).await;
    let started = w.fake.wait_event("started", id).await;
    let cli = started["process"]["pid"].as_i64().unwrap() as i32;
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
    let want = rendered(&done);
    assert_eq!(
        w.fake.lines(1),
        want,
        "the buffer is the whole transcript, once"
    );
    assert!(want.len() > 300, "{} lines", want.len());
    b2.quit().await;
}

/// A backend can die between a run's spawn and the record of the CLI's pid. The run's record
/// names the marker its CLI carries before the spawn (`tasks::run`'s unit test), so the next
/// backend finds the CLI by it and adopts it, instead of settling the task as interrupted while
/// its CLI (whose stdin never closes) stays behind for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_whose_pid_never_reached_the_record_is_found_by_its_marker() {
    let w = world("marker");
    let (id, cli, go) = orphan_without_pid(&w).await;
    let b2 = w.backend().await;
    let adopted = b2.req("get", w.id_args(id)).await;
    assert_eq!(adopted["status"], "running", "{adopted:#}");
    assert_eq!(adopted["process"]["pid"], cli, "{adopted:#}");
    assert_eq!(adopted["process"]["owner_pid"], b2.pid);
    std::fs::write(&go, "").unwrap();
    let (kind, done) = w.fake.wait_end(id).await;
    assert_eq!(kind, "completed", "{}", done["error"]);
    // Adopted like a CLI of its own: it stays, idle, for a follow-up (its pid in the record),
    // and the editor's exit closes it.
    assert!(done["live"].is_object(), "{done:#}");
    assert_eq!(done["process"]["pid"], cli, "{done:#}");
    assert!(alive(cli));
    b2.quit().await;
    wait_gone(&[cli]).await;
}

/// The same CLI, whose run ended while no backend ran: it idles (its stdin never ends). The next
/// backend finds it by its marker, ends the run from the transcript's result and keeps the CLI
/// warm: the follow-up goes to that very process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_found_by_its_marker_idle_takes_the_follow_up() {
    let w = world("marker-idle");
    let (id, cli, go) = orphan_without_pid(&w).await;
    std::fs::write(&go, "").unwrap();
    let transcript = find_transcript(&w.root.join("state"), id);
    assert!(poll(3000, || tail_has_result(&transcript)).await);
    assert!(alive(cli), "an idle CLI waits for its next message");

    let b2 = w.backend().await;
    b2.req("get", w.id_args(id)).await;
    let (kind, done) = w.fake.wait_end(id).await;
    assert_eq!(kind, "completed", "{}", done["error"]);
    assert!(done["live"].is_object(), "{done:#}");
    assert_eq!(done["process"]["pid"], cli, "{done:#}");
    b2.req("resume", w.resume_args(id, "and then?")).await;
    w.fake
        .until("the follow-up's end", |f| f.count("completed", id) == 2)
        .await;
    let (_, again) = w.fake.wait_end(id).await;
    assert_eq!(again["runs"][1]["via"], "live", "{again:#}");
    assert_eq!(again["process"]["pid"], cli, "{again:#}");
    b2.quit().await;
    wait_gone(&[cli]).await;
}

/// A task whose backend was killed right after its CLI's spawn, the record on disk left with the
/// run (and its marker) but no process, as if the backend had died before it recorded the pid.
/// The CLI waits for the file `go` before it runs. Returns the task, its CLI's pid and `go`.
async fn orphan_without_pid(w: &World) -> (u64, i32, std::path::PathBuf) {
    let b = w.backend().await;
    let (ready, go) = (w.root.join("ready"), w.root.join("go"));
    let script = format!(
        ": > '{}'\nwhile [ ! -e '{}' ]; do sleep 0.01; done\nexec \"$@\"",
        ready.display(),
        go.display()
    );
    let cmd = Value::Array(vec![s("sh"), s("-c"), s(&script), s("sh"), s(common::FAKE)]);
    let id = b.start(common::start_in("marked", &w.cwd(), cmd)).await;
    let started = w.fake.wait_event("started", id).await;
    let cli = started["process"]["pid"].as_i64().unwrap() as i32;
    wait_file(&ready).await;
    b.signal(nix::sys::signal::Signal::SIGKILL);
    b.exit().await;
    assert!(alive(cli), "the CLI must outlive its backend");
    let path = find_transcript(&w.root.join("state"), id).with_file_name("task.json");
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    rec.as_object_mut().unwrap().remove("process");
    std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    (id, cli, go)
}

/// CLI 2.1.332 writes its result's `type` after the whole answer: a task re-adopted by a new
/// backend still ends completed with its cost, whether it ends while adopted (a 24 KB answer)
/// or while no backend runs (a 60 MiB one, settled from the transcript).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_of_cli_2_1_332_outliving_its_backend_ends_with_its_cost() {
    let w = world("readopt-332");
    let b = w.backend().await;
    b.configure(vec![("concurrency", s("parallel"))]).await;
    let adopted = b
        .start(w.start_args(
            "adopted",
            &[
                "--fake-cli-version=2.1.332",
                "--fake-lines=300",
                "--fake-delay-ms=10",
            ],
        ))
        .await;
    let orphan = b
        .start(w.start_args(
            "settled",
            &[
                "--fake-cli-version=2.1.332",
                "--fake-huge-line=62914560",
                "--fake-delay-ms=200",
            ],
        ))
        .await;
    let mut pids = Vec::new();
    for id in [adopted, orphan] {
        let started = w.fake.wait_event("started", id).await;
        pids.push(started["process"]["pid"].as_i64().unwrap() as i32);
    }
    b.signal(nix::sys::signal::Signal::SIGKILL);
    b.exit().await;
    assert!(alive(pids[0]), "the CLI must outlive its backend");
    // The huge one writes its result with nobody watching, and stays idle (no EOF reaches a
    // CLI whose stdin is its FIFO); it dies before a backend comes back, to be settled from
    // its transcript.
    let transcript = w.root.join("state");
    let orphan_transcript = find_transcript(&transcript, orphan);
    assert!(
        poll(3000, || tail_has_result(&orphan_transcript)).await,
        "the orphan's result"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[1]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_gone(&pids[1..]).await;

    let b2 = w.backend().await;
    let settled = b2.req("get", w.id_args(orphan)).await;
    assert_eq!(settled["status"], "completed", "{}", settled["error"]);
    let (kind, done) = w.fake.wait_end(adopted).await;
    assert_eq!(kind, "completed", "{}", done["error"]);
    for rec in [&settled, &done] {
        assert_eq!(rec["cost_usd"], 0.0042, "{}", rec["id"]);
        assert_eq!(rec["num_turns"], 1);
    }
    assert!(settled["result"]
        .as_str()
        .unwrap()
        .starts_with("lorem ipsum"));
    assert!(done["result"].as_str().unwrap().starts_with("line 000001 "));
    b2.quit().await;
}

/// The transcript of task `id` under the state directory `state`.
fn find_transcript(state: &std::path::Path, id: u64) -> std::path::PathBuf {
    for project in std::fs::read_dir(state).unwrap().flatten() {
        let t = project.path().join(id.to_string()).join("transcript.jsonl");
        if t.exists() {
            return t;
        }
    }
    panic!("no transcript of #{id} under {}", state.display());
}

/// Whether the file's last line is a complete `result` line (2.1.332 writes `type` late).
fn tail_has_result(path: &std::path::Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut tail = String::new();
    let _ = f.read_to_string(&mut tail);
    tail.ends_with("}\n") && tail.contains(r#""type":"result""#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_on_exit_leaves_the_task_running_for_the_next_backend() {
    let w = world("detach");
    let b = w.backend().await;
    b.configure(vec![("on_exit", s("detach"))]).await;
    let id = b
        .start(w.start_args("long", &["--fake-lines=100", "--fake-delay-ms=20"]))
        .await;
    let started = w.fake.wait_event("started", id).await;
    let cli = started["process"]["pid"].as_i64().unwrap() as i32;
    b.stop().await;
    assert!(alive(cli));
    let b2 = w.backend().await;
    b2.req("attach", w.attach_args(id, 3)).await;
    let done = w.fake.wait_event("completed", id).await;
    assert_eq!(done["status"], "completed");
    w.fake.footer(3, "✓ done").await;
    b2.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_exit_leaves_no_process_behind() {
    let w = world("exitcancel");
    let b = w.backend().await;
    b.configure_parallel_quick_cancel().await;
    let mut pids = Vec::new();
    for i in 0..3 {
        let pf = w.root.join(format!("pids{i}"));
        let flag = format!("--fake-pids-file={}", pf.display());
        let ignore = if i == 2 {
            "--fake-ignore-signals"
        } else {
            "--fake-hang"
        };
        let id = b
            .start(w.start_args(
                "hang",
                &["--fake-hang", ignore, "--fake-grandchildren=2", &flag],
            ))
            .await;
        let started = w.fake.wait_event("started", id).await;
        pids.push(started["process"]["pid"].as_i64().unwrap() as i32);
        wait_file(&pf).await;
        pids.extend(read_pids(&pf));
    }
    assert!(pids.iter().all(|&p| alive(p)));
    b.stop().await;
    // The backend exits only after every tree is gone.
    assert_eq!(living(&pids), Vec::<i32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nice_applies_to_every_thread_of_the_backend_and_to_its_tasks() {
    let w = world("nice");
    let mut l = w.launch();
    l.nice = Some(7);
    let b = w.backend_with(&l).await;
    let pf = w.root.join("pids");
    let flag = format!("--fake-pids-file={}", pf.display());
    let id = b
        .start(w.start_args("hang", &["--fake-hang", "--fake-grandchildren=1", &flag]))
        .await;
    let started = w.fake.wait_event("started", id).await;
    wait_file(&pf).await;
    let mut pids = vec![b.pid, started["process"]["pid"].as_i64().unwrap() as i32];
    pids.extend(read_pids(&pf));
    for pid in pids {
        let threads = threads_of(pid);
        assert!(!threads.is_empty(), "no threads for {pid}");
        for tid in threads {
            assert_eq!(nice_of(pid, tid), Some(7), "pid {pid} thread {tid}");
        }
    }
    // The CLI leads a session of its own, so its autogroup gets the nice value too; the
    // backend (started here by a test, not as a session leader) leaves its shared one alone.
    let cli = started["process"]["pid"].as_i64().unwrap();
    if let Ok(group) = std::fs::read_to_string(format!("/proc/{cli}/autogroup")) {
        assert!(group.trim_end().ends_with("nice 7"), "{group}");
        let mine = std::fs::read_to_string("/proc/self/autogroup").unwrap();
        let backend = std::fs::read_to_string(format!("/proc/{}/autogroup", b.pid)).unwrap();
        assert_eq!(backend, mine);
    }
    b.req("cancel", w.id_args(id)).await;
    w.fake.wait_end(id).await;
    b.stop().await;
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
    pids.push(started["process"]["pid"].as_i64().unwrap() as i32);
    b.signal(nix::sys::signal::Signal::SIGKILL);
    b.exit().await;
    // The machine "reboots": the task's processes are gone too.
    for &p in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    wait_gone(&pids).await;

    let b2 = w.backend().await;
    let got = b2.req("get", w.id_args(id)).await;
    assert_eq!(got["status"], "interrupted");
    let r = b2.req("resume", w.resume_args(id, "go on")).await;
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
    b2.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backends_share_a_project_ids_views_and_cancel() {
    let w = world("two");
    let a = w.backend().await;
    let b = w.backend().await;
    for x in [&a, &b] {
        x.configure(vec![
            ("concurrency", s("parallel")),
            ("max_running", Value::from(50)),
        ])
        .await;
    }
    // Ids never collide, even when both allocate at the same instant.
    let mut ids = Vec::new();
    let (ra, rb) = tokio::join!(
        async {
            let mut v = Vec::new();
            for _ in 0..15 {
                v.push(a.start(w.start_args("a", &[])).await);
            }
            v
        },
        async {
            let mut v = Vec::new();
            for _ in 0..15 {
                v.push(b.start(w.start_args("b", &[])).await);
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
    let id = a
        .start(w.start_args("watched", &["--fake-lines=50", "--fake-delay-ms=20"]))
        .await;
    w.fake.wait_event("started", id).await;
    b.req("attach", w.attach_args(id, 5)).await;
    w.fake.footer(5, "✓ done").await;
    // b cancels a task a runs: a reports it cancelled.
    let id = a.start(w.start_args("victim", &["--fake-hang"])).await;
    w.fake.wait_event("started", id).await;
    b.req("cancel", w.id_args(id)).await;
    let c = w.fake.wait_event("cancelled", id).await;
    assert_eq!(c["status"], "cancelled");
    for x in [a, b] {
        x.quit().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_markdown_and_retention() {
    let w = world("export");
    let b = w.backend().await;
    b.configure(vec![
        ("export_markdown", Value::Boolean(true)),
        ("keep", Value::from(2)),
    ])
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = b.start(w.start_args(&format!("task {i}"), &[])).await;
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
    let list = b.req("list", w.list_args()).await;
    assert_eq!(ids_of(&list), vec![ids[2], ids[1]]);
    b.quit().await;
}

/// What a run changed is recorded whoever ends it: a new backend that re-adopts the running CLI
/// after a SIGKILL records the run's end when the CLI exits, and one that finds the CLI gone
/// too (settled from its transcript) records what changed until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_outliving_its_backend_still_records_its_changes() {
    let w = world("changes-adopt");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(&w.project)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "u")
            .env("GIT_AUTHOR_EMAIL", "u@localhost")
            .env("GIT_COMMITTER_NAME", "u")
            .env("GIT_COMMITTER_EMAIL", "u@localhost")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    std::fs::write(w.project.join(".gitignore"), "*.log\n").unwrap();
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "first"]);
    let head = git(&["rev-parse", "HEAD"]);
    let index = std::fs::read(w.project.join(".git/index")).unwrap();
    let tools = |cmd: &str| {
        format!(
            "--fake-tools={}",
            serde_json::json!([{"name": "Bash", "input": {"command": cmd}}])
        )
    };
    // Its shell commands run without asking (tests/permissions.rs asks).
    let start = |prompt: &str, cmd: &str| {
        let mut args = w.start_args(prompt, &[&tools(cmd)]);
        if let Value::Map(m) = &mut args {
            m.push((s("permission_mode"), s("bypassPermissions")));
        }
        args
    };

    // Re-adopted: the CLI goes on and ends under the new backend.
    let b = w.backend().await;
    b.configure_parallel_quick_cancel().await;
    let adopted = b
        .start(start(
            "adopted",
            "echo a >> README.md; while [ ! -e go.log ]; do sleep 0.02; done; echo b > new.txt",
        ))
        .await;
    let started = w.fake.wait_event("started", adopted).await;
    assert_eq!(started["runs"][0]["changes"]["method"], "git");
    // Settled: the CLI dies with its backend.
    let settled = b
        .start(start(
            "settled",
            "echo c > other.txt; touch ready.log; sleep 60",
        ))
        .await;
    let started2 = w.fake.wait_event("started", settled).await;
    wait_file(&w.project.join("ready.log")).await;
    b.signal(nix::sys::signal::Signal::SIGKILL);
    b.exit().await;
    let cli2 = started2["process"]["pid"].as_i64().unwrap() as i32;
    // Its whole process group: the CLI and its shell's `sleep`.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(cli2),
        nix::sys::signal::Signal::SIGKILL,
    );
    wait_gone(&[cli2]).await;

    let b2 = w.backend().await;
    let got = b2.req("get", w.id_args(settled)).await;
    assert_eq!(got["status"], "interrupted");
    let files = &got["runs"][0]["files_changed"];
    assert_eq!(files.as_array().map(Vec::len), Some(1), "{got:#}");
    assert_eq!(files[0]["path"], "other.txt");
    assert_eq!(files[0]["status"], "added");

    assert_eq!(b2.req("get", w.id_args(adopted)).await["status"], "running");
    std::fs::write(w.project.join("go.log"), "").unwrap();
    let done = w.fake.wait_event("completed", adopted).await;
    let mut got: Vec<(String, String)> = done["runs"][0]["files_changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().into(),
                f["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("README.md".to_string(), "modified".to_string()),
            ("new.txt".to_string(), "added".to_string()),
            // The other task's file, made while this run ran: a snapshot sees the work tree.
            ("other.txt".to_string(), "added".to_string()),
        ]
    );
    b2.quit().await;
    assert_eq!(git(&["rev-parse", "HEAD"]), head);
    assert_eq!(std::fs::read(w.project.join(".git/index")).unwrap(), index);
    assert_eq!(git(&["stash", "list"]), "");
}
