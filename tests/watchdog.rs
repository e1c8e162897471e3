//! The watchdog: no CLI outlives its keep-alive time when its backend dies and none comes back.
//! The backend binary over msgpack-RPC (the test plays Neovim), fake-claude as the CLI, the
//! backend SIGKILLed; the watchdog is found by its command line.
//!
//! Waits are on recorded events or on processes (nothing announces those); timeouts only turn a
//! hang into a failure. The only clock assertions are the deadline's bounds.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use claude_tasks::task::now_ms;
use common::{alive, poll, s, wait_gone, Backend, Json, World};
use rmpv::Value;
use serde_json::json;

const GUARD: Duration = Duration::from_secs(30);
/// The idle ladder: SIGTERM, then the cancel ladder after the default grace (2 s).
const LADDER_MS: u64 = 2_000;
/// How late the watchdog may see a deadline (it sleeps at most 1 s) and a loaded machine adds.
const MARGIN_MS: u64 = 3_000;

fn world(name: &str) -> World {
    World::new("watchdog", name, GUARD)
}

/// Waits until `pid` is gone and checks that it went at `deadline` (ms since the epoch) at the
/// earliest, and within the ladder and the watchdog's lateness after it.
async fn assert_gone_at(pid: i32, deadline: u64) {
    let at = gone_at(pid).await;
    assert!(
        at >= deadline,
        "closed {} ms before its deadline",
        deadline - at
    );
    assert!(
        at <= deadline + LADDER_MS + MARGIN_MS,
        "closed {} ms after its deadline",
        at - deadline
    );
}

/// When `path` was last written, ms since the epoch.
fn modified_ms(path: &std::path::Path) -> u64 {
    std::fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The backend's log says the watchdog closed task `id`'s CLI `pid`.
fn assert_closed_by_the_watchdog(w: &World, id: u64, pid: i32) {
    let log = w.log();
    assert!(
        log.contains(&format!(
            "watchdog: task #{id} in {}: closing its CLI (pid {pid})",
            w.cwd()
        )),
        "{log}"
    );
}
fn pid_of(rec: &Json) -> i32 {
    rec["process"]["pid"].as_i64().expect("a process") as i32
}

/// The watchdogs of this test's backends: the backend binary with `--watchdog` and this
/// test's state directory.
fn watchdogs(w: &World) -> Vec<i32> {
    let state = w.root.join("state");
    claude_tasks::process::proctree::list()
        .into_iter()
        .filter(|p| alive(p.pid))
        .filter(|p| {
            let Ok(cmd) = std::fs::read(format!("/proc/{}/cmdline", p.pid)) else {
                return false;
            };
            let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
            args.contains(&b"--watchdog".as_slice())
                && args.contains(&state.as_os_str().as_encoded_bytes())
        })
        .map(|p| p.pid)
        .collect()
}

/// The backend pid each of `dogs` watches (its `--owner PID:START`).
fn owners(dogs: &[i32]) -> Vec<i32> {
    dogs.iter()
        .filter_map(|d| {
            let cmd = std::fs::read(format!("/proc/{d}/cmdline")).ok()?;
            let args: Vec<String> = cmd
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let i = args.iter().position(|a| a == "--owner")?;
            args.get(i + 1)?.split_once(':')?.0.parse().ok()
        })
        .collect()
}

/// A started task that completed; its CLI stays idle.
async fn idle_task(w: &World, b: &Backend) -> (u64, Json) {
    let id = b.start(w.start_with("first", vec![])).await;
    let (kind, rec) = w.fake.wait_end(id).await;
    assert_eq!(kind, "completed", "{rec:#}");
    assert!(rec["live"].is_object(), "{rec:#}");
    (id, rec)
}

async fn kill(b: Backend) {
    b.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = b.exit().await;
}

/// Waits until `pid` is gone; when that was seen, ms since the epoch.
async fn gone_at(pid: i32) -> u64 {
    wait_gone(&[pid]).await;
    now_ms()
}

fn record_on_disk(rec: &Json) -> Json {
    let dir = PathBuf::from(rec["dir"].as_str().unwrap());
    serde_json::from_slice(&std::fs::read(dir.join("task.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_cli_whose_backend_died_is_closed_at_its_deadline_then_the_watchdog_exits() {
    let w = world("idle");
    let b = w.backend().await;
    b.configure(vec![("keep_alive_ms", Value::from(800))]).await;
    let (id, rec) = idle_task(&w, &b).await;
    let pid = pid_of(&rec);
    let until = rec["live"]["until_ms"].as_u64().unwrap();
    let dogs = watchdogs(&w);
    assert_eq!(dogs.len(), 1, "one watchdog per backend");
    // Not the backend's child in its process group, nor a task's process: its own session.
    let dog = claude_tasks::process::proctree::read(dogs[0]).unwrap();
    assert_eq!(dog.sid, dogs[0]);
    let env = std::fs::read(format!("/proc/{}/environ", dogs[0])).unwrap();
    assert!(!env
        .split(|&b| b == 0)
        .any(|e| e.starts_with(b"CLAUDE_TASKS_TASK=")));
    kill(b).await;
    assert!(alive(pid), "the CLI outlives its backend");
    assert_gone_at(pid, until).await;
    wait_gone(&dogs).await;
    // Its record says so, as its backend would have written it.
    let disk = record_on_disk(&rec);
    assert!(
        disk["live"].is_null() && disk["process"].is_null(),
        "{disk:#}"
    );
    assert_closed_by_the_watchdog(&w, id, pid);
    // The next backend resumes it cold.
    let b = w.backend().await;
    let got = b.req("get", w.id_args(id)).await;
    assert!(got["live"].is_null(), "{got:#}");
    b.req("resume", w.resume_args(id, "again")).await;
    w.fake
        .until("the second run's end", |f| f.count("completed", id) >= 2)
        .await;
    let (_, rec) = w.fake.find(&["completed"], id).unwrap();
    assert_eq!(rec["runs"][1]["via"], "resumed", "{rec:#}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_adopts_the_idle_cli_in_time_keeps_it_warm() {
    let w = world("adopted");
    let b = w.backend().await;
    b.configure(vec![("keep_alive_ms", Value::from(1500))])
        .await;
    let (id, rec) = idle_task(&w, &b).await;
    let pid = pid_of(&rec);
    let dogs = watchdogs(&w);
    assert_eq!(dogs.len(), 1);
    kill(b).await;
    let b2 = w.backend().await;
    let got = b2.req("get", w.id_args(id)).await;
    assert!(got["live"].is_object(), "adopted while idle: {got:#}");
    assert_eq!(got["process"]["owner_pid"], b2.pid);
    // The first watchdog leaves it to the new backend: nothing of its own is left.
    wait_gone(&dogs).await;
    assert!(alive(pid));
    // The new backend started its own, for when it goes too.
    assert_eq!(owners(&watchdogs(&w)), vec![b2.pid], "{}", w.log());
    b2.req("resume", w.resume_args(id, "still warm?")).await;
    w.fake
        .until("the second run's end", |f| f.count("completed", id) >= 2)
        .await;
    let (_, rec) = w.fake.find(&["completed"], id).unwrap();
    assert_eq!(pid_of(&rec), pid, "the same CLI answered");
    assert_eq!(rec["runs"][1]["via"], "live");
    assert!(alive(pid), "kept idle by the new backend");
    b2.stop().await;
    wait_gone(&[pid]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_whose_backend_died_mid_run_is_closed_keep_alive_after_its_result() {
    let w = world("mid-run");
    let b = w.backend().await;
    b.configure(vec![("keep_alive_ms", Value::from(600))]).await;
    let release = w.root.join("release");
    let step = json!({"name": "Bash", "input": {
        "command": format!("while [ ! -e '{}' ]; do sleep 0.02; done", release.display()),
        "description": "wait for the test"
    }});
    let prompt = format!("held\nfake-tools: {}", json!([step]));
    let id = b
        .start(w.start_with(&prompt, vec![("permission_mode", s("bypassPermissions"))]))
        .await;
    let rec = w.fake.wait_event("started", id).await;
    let pid = pid_of(&rec);
    assert_eq!(rec["runs"][0]["keep_alive_ms"], 600, "{rec:#}");
    let dogs = watchdogs(&w);
    assert_eq!(dogs.len(), 1);
    kill(b).await;
    let transcript = PathBuf::from(rec["transcript"].as_str().unwrap());
    let offset = rec["runs"][0]["transcript_offset"].as_u64().unwrap();
    assert!(!claude_tasks::stream_json::summary::ends_with_result(
        &transcript,
        offset
    ));
    std::fs::write(&release, "").unwrap();
    // The turn ends on its own: its result is the transcript's last line.
    assert!(
        poll(3000, || {
            claude_tasks::stream_json::summary::ends_with_result(&transcript, offset)
        })
        .await,
        "the turn never ended"
    );
    let result_at = modified_ms(&transcript);
    assert_gone_at(pid, result_at + 600).await;
    wait_gone(&dogs).await;
    assert_closed_by_the_watchdog(&w, id, pid);
    // The next backend settles the run from its transcript.
    let b = w.backend().await;
    let got = b.req("get", w.id_args(id)).await;
    assert_eq!(got["status"], "completed", "{got:#}");
    assert!(got["live"].is_null() && got["process"].is_null(), "{got:#}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_exits_with_a_backend_that_closed_its_clis() {
    let w = world("cancel");
    let b = w.backend().await;
    let (_, rec) = idle_task(&w, &b).await;
    let pid = pid_of(&rec);
    let dogs = watchdogs(&w);
    assert_eq!(dogs.len(), 1);
    // on_exit = "cancel" (the default): the backend closes its idle CLI, then exits.
    b.stop().await;
    assert!(!alive(pid));
    wait_gone(&dogs).await;
    assert!(w.log().contains("0 of its CLIs to watch"), "{}", w.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_no_backend_comes_back_to_answer_is_interrupted_and_its_cli_closed() {
    let w = world("asking");
    let b = w.backend().await;
    b.configure(vec![("keep_alive_ms", Value::from(600))]).await;
    // acceptEdits (the default): the Bash call asks.
    let step = json!({"name": "Bash", "input": {"command": "touch asked.txt"}});
    let id = b
        .start(w.start_with(&format!("ask\nfake-tools: {}", json!([step])), vec![]))
        .await;
    let rec = w.fake.wait_event("started", id).await;
    let pid = pid_of(&rec);
    w.fake
        .until("the request", |n| {
            n.find(&["permission", "updated"], id)
                .is_some_and(|(_, t)| t["pending"].as_array().is_some_and(|p| p.len() == 1))
        })
        .await;
    let dogs = watchdogs(&w);
    kill(b).await;
    let transcript = PathBuf::from(rec["transcript"].as_str().unwrap());
    let offset = rec["runs"][0]["transcript_offset"].as_u64().unwrap();
    let asked_at = modified_ms(&transcript);
    assert_gone_at(pid, asked_at + 600).await;
    wait_gone(&dogs).await;
    assert_closed_by_the_watchdog(&w, id, pid);
    // The turn was interrupted, not cut: its result ends the transcript; the tool never ran.
    assert!(claude_tasks::stream_json::summary::ends_with_result(
        &transcript,
        offset
    ));
    assert!(!w.project.join("asked.txt").exists());
    // The next backend settles the run from it: over, nothing waiting, no CLI.
    let b = w.backend().await;
    let got = b.req("get", w.id_args(id)).await;
    assert_ne!(got["status"], "running", "{got:#}");
    assert!(got["process"].is_null() && got["live"].is_null(), "{got:#}");
    assert!(
        got["pending"].as_array().is_none_or(|p| p.is_empty()),
        "{got:#}"
    );
    b.stop().await;
}

/// Waits until `program` can be executed: a file just written may be busy (ETXTBSY) for as long
/// as a process forked meanwhile by another test still holds its write descriptor.
async fn executable(program: &std::path::Path) {
    let runs = || {
        std::process::Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(poll(500, runs).await, "{} never ran", program.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_whose_binary_was_replaced_still_starts_its_watchdog() {
    let w = world("rebuilt");
    // A rebuild replaces the binary under a running backend: here its copy is deleted.
    let copy = w.root.join("claude-tasks-copy");
    std::fs::copy(common::BACKEND, &copy).unwrap();
    executable(&copy).await;
    let b = w.backend_from(&copy, &w.launch()).await;
    std::fs::remove_file(&copy).unwrap();
    b.configure(vec![("keep_alive_ms", Value::from(800))]).await;
    let (id, rec) = idle_task(&w, &b).await;
    let pid = pid_of(&rec);
    let until = rec["live"]["until_ms"].as_u64().unwrap();
    let dogs = watchdogs(&w);
    assert_eq!(owners(&dogs), vec![b.pid], "{}", w.log());
    // It runs the deleted file its backend runs, under the backend's name.
    let exe = std::fs::read_link(format!("/proc/{}/exe", dogs[0])).unwrap();
    assert_eq!(
        exe.to_string_lossy(),
        format!("{} (deleted)", copy.display())
    );
    let cmd = std::fs::read(format!("/proc/{}/cmdline", dogs[0])).unwrap();
    assert!(cmd.starts_with(b"claude-tasks\0--watchdog\0"), "{cmd:?}");
    kill(b).await;
    assert_gone_at(pid, until).await;
    wait_gone(&dogs).await;
    assert_closed_by_the_watchdog(&w, id, pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_cli_left_by_a_detaching_editor_nobody_comes_back_to_is_closed_at_its_deadline() {
    let w = world("detached");
    let b = w.backend().await;
    b.configure(vec![
        ("keep_alive_ms", Value::from(1000)),
        ("on_exit", common::s("detach")),
    ])
    .await;
    let (id, rec) = idle_task(&w, &b).await;
    let pid = pid_of(&rec);
    let until = rec["live"]["until_ms"].as_u64().unwrap();
    let dogs = watchdogs(&w);
    assert_eq!(dogs.len(), 1);
    // A clean exit: the editor quits, the backend leaves its idle CLI alive (on_exit).
    b.stop().await;
    assert!(w.log().contains("on_exit = 'detach'"), "{}", w.log());
    assert_gone_at(pid, until).await;
    wait_gone(&dogs).await;
    assert_closed_by_the_watchdog(&w, id, pid);
    let disk = record_on_disk(&rec);
    assert!(
        disk["live"].is_null() && disk["process"].is_null(),
        "{disk:#}"
    );
}
