//! A conversation with a live task, end to end: the backend binary over msgpack-RPC (the test
//! plays Neovim) and fake-claude speaking the control protocol, its process kept alive between
//! runs. Warm follow-ups in the same process, the keep-alive's end, `max_idle`, messages said
//! during a run (folded into it, or a turn of their own), interrupt then a follow-up, a backend
//! killed while a CLI idles, a CLI that died while idle, the editor's exit, `tui` (also of a
//! worktree task), a message still queued at an interrupt, each run's own figures, the
//! concurrency policies beside idle CLIs, and the bad input of each.
//!
//! Waits are on recorded events, on the buffer, or on processes (nothing announces those);
//! timeouts only turn a hang into a failure.

mod common;

use std::time::Duration;

use common::{alive, map, s, wait_gone, Backend, Json, World, FAKE};
use rmpv::Value;
use serde_json::json;

const GUARD: Duration = Duration::from_secs(30);

fn world(name: &str) -> World {
    World::new("live", name, GUARD)
}

/// `start` in the project with fake-claude and `fake` options; `extra` adds start options.
fn start_args(w: &World, prompt: &str, fake: &[&str], extra: Vec<(&str, Value)>) -> Value {
    let mut cmd = vec![s(FAKE)];
    cmd.extend(fake.iter().map(|a| s(a)));
    let mut pairs = vec![
        ("prompt", s(prompt)),
        ("cwd", s(&w.cwd())),
        ("cmd", Value::Array(cmd)),
    ];
    pairs.extend(extra);
    map(pairs)
}

/// A prompt whose turn runs these tool calls (fake-claude reads its `fake-tools:` line).
fn with_tools(title: &str, steps: Json) -> String {
    format!("{title}\nfake-tools: {steps}")
}

fn bash(cmd: &str) -> Json {
    json!({"name": "Bash", "input": {"command": cmd, "description": "a step"}})
}

fn pid_of(rec: &Json) -> i32 {
    rec["process"]["pid"].as_i64().expect("a process") as i32
}

/// The `n`-th (1-based) end event of task `id`: `completed`, `failed` or `cancelled`.
async fn nth_end(w: &World, id: u64, n: usize) -> (String, Json) {
    const ENDS: [&str; 3] = ["completed", "failed", "cancelled"];
    w.fake
        .until(&format!("end {n} of #{id}"), |f| {
            ENDS.iter().map(|k| f.count(k, id)).sum::<usize>() >= n
        })
        .await;
    let (kind, rec) = w.fake.find(&ENDS, id).unwrap();
    assert_eq!(rec["runs"].as_array().unwrap().len(), n, "{rec:#}");
    (kind, rec)
}

/// Waits until buffer `buf` has a line for which `pred` holds.
async fn shows(w: &World, buf: i64, what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
    w.fake
        .until(&format!("{what} in buffer {buf}"), |f| {
            f.lines(buf).iter().any(|l| pred(l))
        })
        .await;
    w.fake.lines(buf)
}

/// Starts a task whose turn runs `cmd` in its shell (without asking), shown in buffer `buf`;
/// returns its id once the call is drawn.
async fn start_a_shell_step(w: &World, b: &Backend, title: &str, cmd: &str, buf: i64) -> u64 {
    let prompt = with_tools(title, json!([bash(cmd)]));
    let id = b
        .start(start_args(
            w,
            &prompt,
            &[],
            vec![("permission_mode", s("bypassPermissions"))],
        ))
        .await;
    b.req("attach", w.attach_args(id, buf)).await;
    let call = format!("● Bash({cmd})");
    shows(w, buf, "the tool call", |l| l.starts_with(&call)).await;
    id
}

/// The live processes of this test whose command line is exactly `argv`.
fn processes(w: &World, argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    claude_tasks::process::proctree::list()
        .into_iter()
        .filter(|p| !p.is_exited())
        .filter(|p| std::fs::read(format!("/proc/{}/cmdline", p.pid)).is_ok_and(|c| c == want))
        .filter(|p| {
            std::fs::read_link(format!("/proc/{}/cwd", p.pid)).is_ok_and(|c| c.starts_with(&w.root))
        })
        .map(|p| p.pid)
        .collect()
}

async fn started(w: &World, b: &Backend, prompt: &str, fake: &[&str]) -> (u64, Json) {
    let id = b.start(start_args(w, prompt, fake, vec![])).await;
    let (kind, rec) = w.fake.wait_end(id).await;
    assert_eq!(kind, "completed", "{rec:#}");
    (id, rec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_goes_to_the_live_cli_and_each_run_has_its_own_cost() {
    let w = world("warm");
    let b = w.backend().await;
    let record = w.root.join("rec");
    let flag = format!("--fake-record={}", record.display());
    // A few ms between lines: the first result's API time (half the fake's age) is not 0.
    let (id, first) = started(&w, &b, "first", &[&flag, "--fake-delay-ms=5"]).await;
    let pid = pid_of(&first);
    assert!(alive(pid), "the CLI stays alive and idle");
    assert!(
        first["live"]["until_ms"].as_u64().unwrap() > first["live"]["since_ms"].as_u64().unwrap()
    );
    let list = b.req("list", w.list_args()).await;
    assert!(list[0]["live"].is_object(), "{list:#}");
    std::fs::remove_file(record.with_extension("argv")).unwrap();
    b.req("attach", w.attach_args(id, 3)).await;

    let queued = b
        .req("resume", w.resume_args(id, "and now the tests"))
        .await;
    assert_eq!(queued["status"], "queued");
    let (kind, second) = nth_end(&w, id, 2).await;
    assert_eq!(kind, "completed", "{second:#}");
    // The same process took it: no new CLI started (fake-claude records its argv at start).
    assert_eq!(pid_of(&second), pid);
    assert!(!record.with_extension("argv").exists(), "a CLI was spawned");
    assert_eq!(second["runs"][1]["via"], "live");
    // The CLI's total_cost_usd sums its turns (0.0123, then 0.0246): each run shows its own,
    // the task their sum.
    let (c1, c2) = (
        second["runs"][0]["cost_usd"].as_f64().unwrap(),
        second["runs"][1]["cost_usd"].as_f64().unwrap(),
    );
    assert!(
        (c1 - 0.0123).abs() < 1e-9 && (c2 - 0.0123).abs() < 1e-9,
        "{c1} {c2}"
    );
    assert!((second["cost_usd"].as_f64().unwrap() - 0.0246).abs() < 1e-9);
    assert!((second["runs"][1]["cli_cost_usd"].as_f64().unwrap() - 0.0246).abs() < 1e-9);
    // The event carries the task with its runs: what Lua reports as the event's `run_cost_usd`
    // is the last run's own cost, never the CLI's running sum.
    let last = second["runs"].as_array().unwrap().last().unwrap();
    assert!((last["cost_usd"].as_f64().unwrap() - 0.0123).abs() < 1e-9);
    // So is the API time (`duration_api_ms`, the fake's half of its age at each result): each
    // run has what it added, the CLI's sum is kept beside it as the next live run's base.
    let api = |i: usize, k: &str| second["runs"][i][k].as_u64().expect(k);
    assert_eq!(api(0, "api_ms"), api(0, "cli_api_ms"));
    assert!(api(0, "cli_api_ms") > 0, "{second:#}");
    assert!(api(1, "cli_api_ms") >= api(0, "cli_api_ms"), "{second:#}");
    assert_eq!(
        api(1, "api_ms"),
        api(1, "cli_api_ms") - api(0, "cli_api_ms"),
        "{second:#}"
    );
    assert!(api(1, "api_ms") < api(1, "cli_api_ms"), "{second:#}");
    let lines = w.fake.footer(3, "✓ done").await;
    assert!(
        lines
            .iter()
            .any(|l| l == "── ↻ follow-up #2 (live): and now the tests ──"),
        "{lines:#?}"
    );
    assert!(
        lines.last().unwrap().ends_with("· $0.0123 · task $0.0246"),
        "{lines:#?}"
    );
    // The buffer is what the transcript and the record render to.
    w.buffer_shows(3, &second).await;
    b.stop().await;
    wait_gone(&[pid]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keep_alive_ends_then_a_follow_up_resumes_the_session_in_a_new_cli() {
    let w = world("expiry");
    let b = w.backend().await;
    b.configure(vec![("keep_alive_ms", Value::from(300))]).await;
    let (id, first) = started(&w, &b, "first", &[]).await;
    let pid = pid_of(&first);
    // Closed at the deadline, and the record says so.
    wait_gone(&[pid]).await;
    w.fake
        .until("the record without its CLI", |f| {
            f.find(&["updated"], id)
                .is_some_and(|(_, r)| r["live"].is_null() && r["process"].is_null())
        })
        .await;
    b.req("attach", w.attach_args(id, 4)).await;
    b.req("resume", w.resume_args(id, "again")).await;
    let (kind, second) = nth_end(&w, id, 2).await;
    assert_eq!(kind, "completed");
    assert_eq!(second["runs"][1]["via"], "resumed");
    assert_ne!(pid_of(&second), pid);
    let lines = w.fake.footer(4, "✓ done").await;
    assert!(
        lines
            .iter()
            .any(|l| l == "── ↻ follow-up #2 (resumed): again ──"),
        "{lines:#?}"
    );
    // A cold resume starts a new sum: the second run's cost is the new CLI's total.
    assert!((second["runs"][1]["cost_usd"].as_f64().unwrap() - 0.0123).abs() < 1e-9);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_zero_ends_the_cli_with_its_run() {
    let w = world("zero");
    let b = w.backend().await;
    b.configure(vec![("keep_alive_ms", Value::from(0))]).await;
    let (_, first) = started(&w, &b, "first", &[]).await;
    assert!(
        first["live"].is_null() && first["process"].is_null(),
        "{first:#}"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_idle_clis_stay_and_the_oldest_goes_first() {
    let w = world("max-idle");
    let b = w.backend().await;
    b.configure(vec![("concurrency", s("parallel"))]).await;
    let mut pids = Vec::new();
    let mut ids = Vec::new();
    for n in 0..3 {
        let (id, rec) = started(&w, &b, &format!("task {n}"), &[]).await;
        pids.push(pid_of(&rec));
        ids.push(id);
    }
    // max_idle = 2: the first task's CLI, idle the longest, is closed.
    wait_gone(&pids[..1]).await;
    w.fake
        .until("the first task's record without its CLI", |f| {
            f.find(&["updated"], ids[0])
                .is_some_and(|(_, r)| r["live"].is_null())
        })
        .await;
    assert!(alive(pids[1]) && alive(pids[2]));
    let list = b.req("list", w.list_args()).await;
    let live: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["live"].is_object())
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(live, vec![ids[2], ids[1]]);
    // Idle CLIs are not running: the statusline's count (Lua) and the policies see none.
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "completed"));
    b.stop().await;
    wait_gone(&pids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_said_during_a_tool_is_folded_into_the_turn() {
    let w = world("fold");
    let b = w.backend().await;
    let id = start_a_shell_step(&w, &b, "sleep a little", "sleep 1.5", 5).await;
    // Said once the run's record names its CLI (`started` follows the record's fsyncs, which
    // can come after the tool call is drawn); before that it would be the next run's prompt.
    w.fake.wait_event("started", id).await;
    let said = b
        .req("resume", w.resume_args(id, "also check the docs"))
        .await;
    assert_eq!(said["status"], "running");
    assert_eq!(said["runs"][0]["said"][0]["title"], "also check the docs");
    // Pending until the CLI takes it (after the tool, into the turn's next API call).
    shows(&w, 5, "the pending mark", |l| {
        l == "› also check the docs · waiting"
    })
    .await;
    let (kind, rec) = nth_end(&w, id, 1).await;
    assert_eq!(kind, "completed", "{rec:#}");
    assert_eq!(
        rec["runs"].as_array().unwrap().len(),
        1,
        "one run, one result"
    );
    let lines = w.fake.footer(5, "✓ done").await;
    assert!(
        lines.contains(&"› also check the docs · folded into the running turn".to_string()),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.ends_with("· waiting")),
        "{lines:#?}"
    );
    assert!(rec["result"]
        .as_str()
        .unwrap()
        .contains("also check the docs"));
    // The whole text is kept, as a prompt is.
    let dir = std::path::PathBuf::from(rec["dir"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(dir.join("said-1-1.txt")).unwrap(),
        "also check the docs"
    );
    w.buffer_shows(5, &rec).await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_said_while_text_streams_are_a_turn_of_their_own() {
    let w = world("own-turn");
    let b = w.backend().await;
    let id = b
        .start(start_args(
            &w,
            "stream",
            &["--fake-lines=30", "--fake-delay-ms=40"],
            vec![],
        ))
        .await;
    b.req("attach", w.attach_args(id, 6)).await;
    shows(&w, 6, "the streamed text", |l| l.starts_with("line 000002")).await;
    w.fake.wait_event("started", id).await;
    b.req("resume", w.resume_args(id, "one")).await;
    b.req("resume", w.resume_args(id, "two")).await;
    let lines = shows(&w, 6, "both pending", |l| l == "› two · waiting").await;
    assert!(lines.contains(&"› one · waiting".to_string()), "{lines:#?}");
    let (kind, rec) = nth_end(&w, id, 1).await;
    assert_eq!(kind, "completed", "{rec:#}");
    // Both taken together as the next turn: one run, two results, the turns added up.
    assert_eq!(rec["runs"][0]["said"].as_array().unwrap().len(), 2);
    assert_eq!(rec["runs"][0]["num_turns"], 2);
    assert!((rec["runs"][0]["cost_usd"].as_f64().unwrap() - 0.0084).abs() < 1e-9);
    let lines = w.fake.footer(6, "✓ done").await;
    let one = lines.iter().position(|l| l == "› one · a turn of its own");
    let two = lines.iter().position(|l| l == "› two · a turn of its own");
    assert!(one.is_some() && two == one.map(|i| i + 1), "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.ends_with("· waiting")),
        "{lines:#?}"
    );
    w.buffer_shows(6, &rec).await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_the_turn_and_its_tool_and_the_task_takes_the_next_message() {
    let w = world("interrupt");
    let b = w.backend().await;
    let id = start_a_shell_step(&w, &b, "wait long", "sleep 31", 7).await;
    assert!(
        common::poll(500, || !processes(&w, &["sleep", "31"]).is_empty()).await,
        "the tool runs"
    );
    // The event follows the record's fsyncs, which can come after the tool started.
    let pid = pid_of(&w.fake.wait_event("started", id).await);
    b.req("interrupt", w.id_args(id)).await;
    let (kind, rec) = nth_end(&w, id, 1).await;
    assert_eq!(kind, "cancelled", "{rec:#}");
    assert_eq!(rec["runs"][0]["interrupted"], true);
    assert_eq!(rec["cancel_requested"], false);
    assert!(
        processes(&w, &["sleep", "31"]).is_empty(),
        "the tool was killed"
    );
    assert!(alive(pid), "the CLI stays");
    assert!(rec["live"].is_object(), "{rec:#}");
    let lines = w.fake.footer(7, "■ interrupted").await;
    assert!(
        lines
            .last()
            .unwrap()
            .ends_with("the task waits for your next message"),
        "{lines:#?}"
    );
    // Interrupt again: nothing runs.
    let err = b.err("interrupt", w.id_args(id)).await;
    assert!(err.contains("is not running (its CLI is idle"), "{err}");
    b.req("resume", w.resume_args(id, "go on")).await;
    let (kind, rec) = nth_end(&w, id, 2).await;
    assert_eq!(kind, "completed", "{rec:#}");
    assert_eq!(pid_of(&rec), pid);
    assert_eq!(rec["runs"][1]["via"], "live");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_idle_when_its_backend_is_killed_is_adopted_still_warm() {
    let w = world("crash-idle");
    let b = w.backend().await;
    let (id, first) = started(&w, &b, "first", &[]).await;
    let pid = pid_of(&first);
    b.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = b.exit().await;
    assert!(alive(pid), "no EOF reaches an idle CLI");
    let b2 = w.backend().await;
    let rec = b2.req("get", w.id_args(id)).await;
    assert_eq!(rec["status"], "completed");
    assert!(rec["live"].is_object(), "{rec:#}");
    b2.req("attach", w.attach_args(id, 8)).await;
    b2.req("resume", w.resume_args(id, "still there?")).await;
    let (kind, rec) = nth_end(&w, id, 2).await;
    assert_eq!(kind, "completed", "{rec:#}");
    assert_eq!(pid_of(&rec), pid, "the same CLI answered");
    assert_eq!(rec["runs"][1]["via"], "live");
    assert!((rec["runs"][1]["cost_usd"].as_f64().unwrap() - 0.0123).abs() < 1e-9);
    w.fake.footer(8, "✓ done").await;
    b2.stop().await;
    wait_gone(&[pid]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_that_died_while_idle_is_resumed_cold_and_the_buffer_says_so() {
    let w = world("died-idle");
    let b = w.backend().await;
    let (id, first) = started(&w, &b, "first", &[]).await;
    let pid = pid_of(&first);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_gone(&[pid]).await;
    b.req("attach", w.attach_args(id, 9)).await;
    b.req("resume", w.resume_args(id, "are you there?")).await;
    let (kind, rec) = nth_end(&w, id, 2).await;
    assert_eq!(kind, "completed", "{rec:#}");
    assert_eq!(rec["runs"][1]["via"], "resumed");
    let lines = w.fake.footer(9, "✓ done").await;
    assert!(
        lines
            .iter()
            .any(|l| l == "── ↻ follow-up #2 (resumed): are you there? ──"),
        "{lines:#?}"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_editor_s_exit_closes_idle_clis_or_leaves_them_to_the_next_editor() {
    let w = world("exit");
    let b = w.backend().await;
    let (_, first) = started(&w, &b, "first", &[]).await;
    let pid = pid_of(&first);
    // on_exit = "cancel" (the default): closed cleanly with the backend.
    b.stop().await;
    assert!(!alive(pid), "closed before the backend exits");

    let b = w.backend().await;
    b.configure(vec![("on_exit", s("detach"))]).await;
    let (id, rec) = started(&w, &b, "second", &[]).await;
    let pid = pid_of(&rec);
    b.stop().await;
    assert!(alive(pid), "left for the next editor");
    let b = w.backend().await;
    b.req("resume", w.resume_args(id, "and more")).await;
    let (_, rec) = nth_end(&w, id, 2).await;
    assert_eq!(pid_of(&rec), pid);
    b.stop().await;
    wait_gone(&[pid]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_closes_an_idle_cli_and_refuses_a_running_task() {
    let w = world("tui");
    let b = w.backend().await;
    let (id, first) = started(&w, &b, "first", &["--fake-delay-ms=1"]).await;
    let pid = pid_of(&first);
    let t = b.req("tui", w.id_args(id)).await;
    wait_gone(&[pid]).await;
    assert_eq!(t["cwd"], w.cwd());
    let argv: Vec<&str> = t["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv[0], FAKE);
    assert_eq!(
        argv.last().copied(),
        Some(format!("--resume={}", first["session_id"].as_str().unwrap()).as_str())
    );
    assert!(t["task"]["tui_at_ms"].is_u64());
    assert!(t["task"]["live"].is_null());
    // A follow-up after it resumes the session (with whatever was said in the TUI).
    let id2 = b
        .start(start_args(&w, "hang", &["--fake-hang"], vec![]))
        .await;
    w.fake.wait_event("started", id2).await;
    let err = b.err("tui", w.id_args(id2)).await;
    assert!(
        err.contains("is running; interrupt or cancel it first"),
        "{err}"
    );
    b.req("cancel", w.id_args(id2)).await;
    b.req("resume", w.resume_args(id, "after the tui")).await;
    let (_, rec) = nth_end(&w, id, 2).await;
    assert_eq!(rec["runs"][1]["via"], "resumed");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_follow_ups_and_interrupts_get_clear_errors() {
    let w = world("bad");
    let b = w.backend().await;
    let (id, first) = started(&w, &b, "first", &[]).await;
    let err = b.err("resume", w.resume_args(id, "  \n")).await;
    assert!(err.contains("the prompt is empty"), "{err}");
    let err = b.err("resume", w.resume_args(id + 100, "hello")).await;
    assert!(err.contains(&format!("no task #{}", id + 100)), "{err}");
    let err = b.err("interrupt", w.id_args(id + 100)).await;
    assert!(err.contains(&format!("no task #{}", id + 100)), "{err}");
    // Nothing was lost: the live CLI is still there for the next one.
    assert!(alive(pid_of(&first)));
    // A task whose CLI could not start has no session to follow up.
    let broken = b
        .start(map(vec![
            ("prompt", s("never runs")),
            ("cwd", s(&w.cwd())),
            ("cmd", Value::Array(vec![s("/nonexistent/claude")])),
        ]))
        .await;
    let (kind, rec) = w.fake.wait_end(broken).await;
    assert_eq!(kind, "failed", "{rec:#}");
    let err = b.err("resume", w.resume_args(broken, "again")).await;
    assert!(
        err.contains("failed before Claude started its session") && err.contains("not found"),
        "{err}"
    );
    let err = b.err("tui", w.id_args(broken)).await;
    assert!(err.starts_with("tui: task"), "{err}");
    // Disposed: the idle CLI goes with it.
    let pid = pid_of(&first);
    b.req("dispose", w.id_args(id)).await;
    wait_gone(&[pid]).await;
    let err = b.err("resume", w.resume_args(id, "hello")).await;
    assert!(err.contains("no task"), "{err}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_still_queued_at_an_interrupt_runs_after_it_as_a_turn_of_its_own() {
    // 2.1.332 answers the interrupt with `still_queued: []` even then; 2.1.197 says nothing.
    for (version, buf) in [("2.1.197", 10), ("2.1.332", 11)] {
        still_queued_at_an_interrupt(version, buf).await;
    }
}

async fn still_queued_at_an_interrupt(version: &str, buf: i64) {
    let w = world(&format!("queued-interrupt-{version}"));
    let b = w.backend().await;
    let flag = format!("--fake-cli-version={version}");
    let id = b
        .start(start_args(
            &w,
            "stream",
            &[&flag, "--fake-lines=60", "--fake-delay-ms=40"],
            vec![],
        ))
        .await;
    b.req("attach", w.attach_args(id, buf)).await;
    shows(&w, buf, "the streamed text", |l| {
        l.starts_with("line 000002")
    })
    .await;
    let pid = pid_of(&w.fake.wait_event("started", id).await);
    b.req("resume", w.resume_args(id, "queued before the interrupt"))
        .await;
    shows(&w, buf, "the pending mark", |l| {
        l == "› queued before the interrupt · waiting"
    })
    .await;
    b.req("interrupt", w.id_args(id)).await;
    // The interrupt ends the streaming turn; the message outlives it, and the buffer says so
    // until the CLI takes it.
    let lines = shows(&w, buf, "the still-queued mark", |l| {
        l == "› queued before the interrupt · still queued: runs after the interrupt"
    })
    .await;
    assert!(
        lines.iter().any(|l| l == "■ interrupted by user"),
        "{lines:#?}"
    );
    // Then the CLI takes it as a turn of its own, in the same run and process: the interrupted
    // turn's error result does not end the run, the queued turn's answer does.
    let (kind, rec) = nth_end(&w, id, 1).await;
    assert_eq!(kind, "completed", "{rec:#}");
    let run = &rec["runs"][0];
    assert_eq!(run["num_turns"], 2, "{rec:#}");
    assert_eq!(run["said"].as_array().unwrap().len(), 1, "{rec:#}");
    // The run was interrupted (its first turn), yet it ended well: no "interrupted" task.
    assert_eq!(run["interrupted"], true, "{rec:#}");
    assert_eq!(rec["cancel_requested"], false);
    assert_eq!(pid_of(&rec), pid);
    assert!(rec["live"].is_object(), "{rec:#}");
    let results: Vec<Json> = std::fs::read_to_string(common::transcript_of(&rec))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|v| v["type"] == "result")
        .collect();
    let subtypes: Vec<&str> = results
        .iter()
        .map(|r| r["subtype"].as_str().unwrap())
        .collect();
    assert_eq!(subtypes, ["error_during_execution", "success"]);
    let lines = w.fake.footer(buf, "✓ done").await;
    let stopped = lines.iter().position(|l| l == "■ interrupted by user");
    let own = lines
        .iter()
        .position(|l| l == "› queued before the interrupt · a turn of its own");
    assert!(
        stopped.is_some() && own.is_some() && stopped < own,
        "{lines:#?}"
    );
    // Its answer follows the mark; the pending mark is gone.
    assert!(
        lines[own.unwrap()..]
            .iter()
            .any(|l| l.starts_with("line 0")),
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.ends_with("· waiting") || l.contains("still queued")),
        "{lines:#?}"
    );
    w.buffer_shows(buf, &rec).await;
    b.stop().await;
    wait_gone(&[pid]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_cli_neither_queues_nor_refuses_a_new_task_under_any_policy() {
    let w = world("policy");
    let b = w.backend().await;
    let (_, rec) = started(&w, &b, "first", &[]).await;
    let mut idle = pid_of(&rec);
    for policy in ["queue", "reject", "parallel"] {
        b.configure(vec![
            ("concurrency", s(policy)),
            ("max_running", Value::from(1)),
        ])
        .await;
        // The task before this one idles in its CLI: not running, so this one starts at once.
        assert!(alive(idle));
        // (Refused, `start` fails; queued behind it, it would never start: nothing else runs.)
        let id = b
            .start(start_args(&w, &format!("under {policy}"), &[], vec![]))
            .await;
        w.fake.wait_event("started", id).await;
        assert!(alive(idle), "{policy}: the idle CLI was closed for it");
        let (kind, rec) = w.fake.wait_end(id).await;
        assert_eq!(kind, "completed", "{policy}: {rec:#}");
        assert!(rec["live"].is_object(), "{policy}: {rec:#}");
        idle = pid_of(&rec);
    }
    // A running task still counts: the same start is refused beside it.
    b.configure(vec![("concurrency", s("reject"))]).await;
    let hang = b
        .start(start_args(&w, "hang", &["--fake-hang"], vec![]))
        .await;
    w.fake.wait_event("started", hang).await;
    let err = b.err("start", start_args(&w, "refused", &[], vec![])).await;
    assert!(err.contains("already running"), "{err}");
    b.configure(vec![("concurrency", s("queue"))]).await;
    let queued = b.start(start_args(&w, "queued", &[], vec![])).await;
    b.req("cancel", w.id_args(hang)).await;
    let (kind, rec) = w.fake.wait_end(queued).await;
    assert_eq!(kind, "completed");
    // It waited for the running task, not for any idle one.
    let (_, stopped) = w.fake.wait_end(hang).await;
    let (ended, began) = (
        stopped["ended_at_ms"].as_u64().unwrap(),
        rec["runs"][0]["started_at_ms"].as_u64().unwrap(),
    );
    assert!(began >= ended, "started {} ms before", ended - began);
    b.stop().await;
}

/// Makes the project a git repository with one commit (a worktree task needs one).
fn git_init(w: &World) {
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "one",
        ],
    ] {
        let st = std::process::Command::new("git")
            .args(args)
            .current_dir(&w.project)
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_of_a_worktree_task_runs_in_its_worktree_and_is_refused_once_it_is_gone() {
    let w = world("tui-worktree");
    git_init(&w);
    let b = w.backend().await;
    let id = b
        .start(start_args(
            &w,
            "isolated",
            &[],
            vec![("isolation", s("worktree"))],
        ))
        .await;
    let (kind, rec) = w.fake.wait_end(id).await;
    assert_eq!(kind, "completed", "{rec:#}");
    let wt = rec["worktree"]["cwd"]
        .as_str()
        .expect("a worktree")
        .to_owned();
    assert_ne!(wt, w.cwd());
    let t = b.req("tui", w.id_args(id)).await;
    assert_eq!(t["cwd"], wt.as_str(), "{t:#}");
    // A discarded worktree: its session cannot be resumed there.
    let other = b
        .start(start_args(
            &w,
            "discarded",
            &[],
            vec![("isolation", s("worktree"))],
        ))
        .await;
    let (kind, _) = w.fake.wait_end(other).await;
    assert_eq!(kind, "completed");
    b.req("discard", w.id_args(other)).await;
    let err = b.err("tui", w.id_args(other)).await;
    assert!(
        err.contains(&format!("tui: task #{other}'s worktree is gone")),
        "{err}"
    );
    // The user removes the worktree's directory: the same.
    std::fs::remove_dir_all(&wt).unwrap();
    let err = b.err("tui", w.id_args(id)).await;
    assert!(
        err.contains(&format!("tui: task #{id}'s worktree is gone")),
        "{err}"
    );
    b.stop().await;
}
