//! Hardening: every bad situation the backend must survive, with the exact outcome asserted.
//!
//! The backend binary runs as a child process and the test plays Neovim over msgpack-RPC (the
//! `common` module's `FakeNvim`, as in `backend_process.rs`): it answers `nvim_exec_lua` for
//! events and buffer writes, so a buffer here is exactly what Neovim would show. The CLI is
//! `fake-claude`.
//!
//! - "no survivors": no process of the task's tree is alive (the CLI, the grandchildren it
//!   reported, anything carrying the task's marker in its environment) and the backend has no
//!   zombie child, read from `/proc`.
//! - "nothing lost": the transcript on disk is byte-identical to what the child wrote, and the
//!   buffer equals `view::render_all` of that transcript (plus case-specific content).
//!
//! Waits are on recorded events or on process state; timeouts only turn a hang into a failure.
//! Memory high-water marks of the backend are printed (`--nocapture` shows them).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use claude_tasks::proctree;
use claude_tasks::task::TaskRecord;
use common::{
    cmd, id_of, ids_of, map, read_pids, s, start_in, to_json, transcript_of, Backend, Json, Launch,
    World, FAKE, NOBODY,
};
use rmpv::Value;
use serde_json::json;

const GUARD: Duration = Duration::from_secs(40);
/// Bound for the backend's peak resident memory while it digests huge outputs.
const MEMORY_CAP_KB: u64 = 64 * 1024;

fn world(name: &str) -> World {
    World::new("hard", name, GUARD)
}

// ------------------------------------------------------------------------------ processes

/// The processes of one task: known pids (with start times) and its environment marker.
#[derive(Default, Debug)]
struct Tree {
    procs: Vec<(i32, u64)>,
    marker: String,
}

impl Tree {
    fn of(started: &Json) -> Tree {
        let p = &started["process"];
        Tree {
            procs: vec![(
                p["pid"].as_i64().unwrap() as i32,
                p["start_time"].as_u64().unwrap(),
            )],
            marker: p["marker"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// Adds the grandchildren listed in a `--fake-pids-file`, if it was written.
    fn add_pids_file(&mut self, path: &Path) {
        for pid in read_pids(path) {
            if let Some(st) = proctree::start_time(pid) {
                self.procs.push((pid, st));
            }
        }
    }
}

/// Whatever of the task's tree still lives, and the backend's zombie children; empty is good.
fn survivors(tree: &Tree, backend: i32) -> Vec<String> {
    let mut out = Vec::new();
    for &(pid, st) in &tree.procs {
        if proctree::is_alive(pid, st) {
            out.push(format!("pid {pid} alive"));
        }
    }
    for p in proctree::list() {
        if !tree.marker.is_empty()
            && !p.is_exited()
            && proctree::has_env_entry(p.pid, &tree.marker)
            && !tree.procs.iter().any(|&(q, _)| q == p.pid)
        {
            out.push(format!("pid {} carries the marker", p.pid));
        }
        if p.ppid == backend && p.is_exited() {
            out.push(format!("zombie child {} of the backend", p.pid));
        }
    }
    out
}

// ------------------------------------------------------------------------------ transcripts

/// Every complete line of a transcript, parsed as JSON where it is JSON.
fn json_lines(path: &Path) -> Vec<Json> {
    let data = std::fs::read(path).unwrap();
    data.split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// Compares two files chunk by chunk (they can be 50 MB).
fn same_bytes(a: &Path, b: &Path) -> Result<(), String> {
    let (ma, mb) = (std::fs::metadata(a).unwrap(), std::fs::metadata(b).unwrap());
    if ma.len() != mb.len() {
        return Err(format!("{} bytes vs {} bytes", ma.len(), mb.len()));
    }
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut off = 0usize;
    loop {
        let n = read_full(&mut fa, &mut ba);
        let m = read_full(&mut fb, &mut bb);
        if n != m || ba[..n] != bb[..m] {
            return Err(format!("differ in the MiB at offset {off}"));
        }
        if n == 0 {
            return Ok(());
        }
        off += n;
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

const SID: &str = "5c1d0a6e-9b8f-4e3d-a2c1-0f9e8d7c6b5a";

/// A JSON string literal.
fn js(text: &str) -> String {
    Json::from(text).to_string()
}

// The lines below are written the way CLI 2.1.197 writes them: compact, keys in its order,
// `type` first (2.1.332 writes its result's `type` after the answer; the backend parses either).

fn init_line() -> String {
    format!(
        r#"{{"type":"system","subtype":"init","cwd":"/p","session_id":"{SID}","tools":["Bash"],"model":"claude-test","permissionMode":"acceptEdits"}}"#
    )
}

fn assistant_text(text: &str) -> String {
    format!(
        r#"{{"type":"assistant","message":{{"id":"msg_1","type":"message","role":"assistant","content":[{{"type":"text","text":{}}}]}},"parent_tool_use_id":null,"session_id":"{SID}"}}"#,
        js(text)
    )
}

fn stream_event(event: &str) -> String {
    format!(
        r#"{{"type":"stream_event","event":{event},"session_id":"{SID}","parent_tool_use_id":null}}"#
    )
}

fn delta(text: &str) -> String {
    stream_event(&format!(
        r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#,
        js(text)
    ))
}

fn result_ok(text: &str) -> String {
    format!(
        r#"{{"type":"result","subtype":"success","is_error":false,"duration_ms":1200,"num_turns":1,"result":{},"session_id":"{SID}","total_cost_usd":0.25,"permission_denials":[],"terminal_reason":"completed"}}"#,
        js(text)
    )
}

/// Starts a task whose CLI writes `raw` verbatim, attaches buffer `buf`, and waits for its end
/// and its footer. Returns the end event's record and the buffer.
async fn run_raw(
    w: &World,
    b: &Backend,
    name: &str,
    raw: &[u8],
    chunk: usize,
    delay_ms: u64,
    buf: i64,
) -> (Json, Vec<String>) {
    let path = w.root.join(format!("{name}.raw"));
    std::fs::write(&path, raw).unwrap();
    run_raw_file(w, b, &path, chunk, delay_ms, buf, &[]).await
}

async fn run_raw_file(
    w: &World,
    b: &Backend,
    path: &Path,
    chunk: usize,
    delay_ms: u64,
    buf: i64,
    extra: &[&str],
) -> (Json, Vec<String>) {
    let raw = format!("--fake-raw={}", path.display());
    let chunk = format!("--fake-raw-chunk={chunk}");
    let delay = format!("--fake-delay-ms={delay_ms}");
    let mut args = vec![raw.as_str(), &chunk, &delay];
    args.extend_from_slice(extra);
    let id = b.start(w.start_args("raw output", &args)).await;
    b.req("attach", w.attach_args(id, buf)).await;
    let (_, end) = w.fake.wait_end(id).await;
    // Nothing lost on disk: the transcript is exactly what the child wrote.
    if let Err(e) = same_bytes(&transcript_of(&end), path) {
        panic!(
            "transcript of {} is not what the CLI wrote: {e}",
            path.display()
        );
    }
    // And the buffer shows all of it, as the offline rendering does.
    let want = w.buffer_shows(buf, &end).await;
    (end, want)
}

fn has_line(lines: &[String], pred: impl Fn(&str) -> bool) -> bool {
    lines.iter().any(|l| pred(l))
}

/// Writes a transcript as the CLI would: its init line, `body`, and a successful result.
fn write_transcript(path: &Path, body: impl FnOnce(&mut std::io::BufWriter<std::fs::File>)) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "{}", init_line()).unwrap();
    body(&mut f);
    writeln!(f, "{}", result_ok("ok")).unwrap();
}

/// Prints the backend's peak memory after `what`, and holds it to the cap.
fn assert_memory_bounded(b: &Backend, what: &str) {
    let hwm = b.vm_hwm_kb();
    println!("memory: {what}: backend VmHWM {hwm} kB");
    assert!(hwm < MEMORY_CAP_KB, "VmHWM {hwm} kB");
}

/// Starts a task run by the fake CLI with `fake`, shows it in buffer `buf`, and waits for its
/// process: the task's id and its process tree.
async fn start_watched(
    w: &World,
    b: &Backend,
    prompt: &str,
    fake: &[&str],
    buf: i64,
) -> (u64, Tree) {
    let id = b.start(w.start_args(prompt, fake)).await;
    b.req("attach", w.attach_args(id, buf)).await;
    let started = w.fake.wait_event("started", id).await;
    (id, Tree::of(&started))
}

/// Waits for the end of task `id`, which must be a cancel that leaves nothing of `tree` alive.
async fn wait_cancelled(w: &World, b: &Backend, id: u64, tree: &Tree) -> Json {
    let (kind, end) = w.fake.wait_end(id).await;
    assert_eq!(kind, "cancelled");
    assert_eq!(survivors(tree, b.pid), Vec::<String>::new());
    end
}

/// The error `start` answers for a task in `cwd`.
async fn start_error(b: &Backend, cwd: &Path) -> String {
    b.err("start", start_in("hi", &cwd.to_string_lossy(), cmd(&[])))
        .await
}

async fn assert_no_task_created(b: &Backend) {
    let all = b
        .req("list", map(vec![("all", Value::Boolean(true))]))
        .await;
    assert_eq!(all, json!([]), "nothing was created");
}

/// The `cmd` option naming one program.
fn cmd_of(program: &Path) -> Value {
    Value::Array(vec![s(&program.to_string_lossy())])
}

fn give_to_nobody(p: &Path) {
    std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
}

// ==================================================================== 1. cancel at any moment

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_text_streams() {
    let w = world("cancel-stream");
    let b = w.backend().await;
    let (id, tree) = start_watched(
        &w,
        &b,
        "stream",
        &["--fake-lines=5000", "--fake-delay-ms=2"],
        1,
    )
    .await;
    w.fake
        .until("streamed lines", |n| {
            has_line(&n.lines(1), |l| l.starts_with("line 000020 "))
        })
        .await;
    let c = b.req("cancel", w.id_args(id)).await;
    assert_eq!(c["status"], "running");
    assert_eq!(c["cancel_requested"], true);
    let end = wait_cancelled(&w, &b, id, &tree).await;
    assert_eq!(end["status"], "cancelled");
    assert_eq!(end["error"], Json::Null);

    // The CLI honoured SIGINT: its result line is the transcript's last.
    let lines = json_lines(&transcript_of(&end));
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "result");
    assert_eq!(last["subtype"], "error_during_execution");
    // Every streamed line is on disk, in order, and in the buffer.
    let streamed: Vec<String> = lines
        .iter()
        .filter_map(|l| l["event"]["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert!(
        streamed.len() >= 20 && streamed.len() < 5000,
        "{}",
        streamed.len()
    );
    for (i, piece) in streamed.iter().enumerate() {
        assert!(piece.starts_with(&format!("line {:06} ", i + 1)), "{piece}");
    }
    let want = w.buffer_shows(1, &end).await;
    for piece in &streamed {
        let line = piece.trim_end_matches('\n');
        assert!(want.iter().any(|l| l == line), "{line} missing");
    }
    assert!(
        has_line(&want, |l| l == "■ interrupted by user"),
        "{want:#?}"
    );
    assert!(want.last().unwrap().starts_with("■ cancelled"), "{want:#?}");
    b.alive_and_answering().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_a_tool_runs() {
    let w = world("cancel-tool");
    let b = w.backend().await;
    let pf = w.root.join("pids");
    let pflag = format!("--fake-pids-file={}", pf.display());
    let (id, mut tree) = start_watched(
        &w,
        &b,
        "tool",
        &["--fake-hang", "--fake-grandchildren=3", &pflag],
        1,
    )
    .await;
    w.fake
        .until("the running tool call", |n| {
            has_line(&n.lines(1), |l| l == "● Bash(ls)")
        })
        .await;
    // The fake writes its pid file before its first line, so it is there by now.
    tree.add_pids_file(&pf);
    assert_eq!(tree.procs.len(), 4);
    b.req("cancel", w.id_args(id)).await;
    let end = wait_cancelled(&w, &b, id, &tree).await;

    let lines = json_lines(&transcript_of(&end));
    let n = lines.len();
    assert_eq!(lines[n - 1]["subtype"], "error_during_execution");
    assert_eq!(lines[n - 1]["terminal_reason"], "aborted_tools");
    assert_eq!(
        lines[n - 2]["message"]["content"][0]["text"],
        "[Request interrupted by user for tool use]"
    );
    let want = w.buffer_shows(1, &end).await;
    let call = want.iter().position(|l| l == "● Bash(ls)").unwrap();
    assert!(
        want[call + 1].starts_with("  ✗ The user doesn't want to proceed with this tool use."),
        "{want:#?}"
    );
    assert!(has_line(&want, |l| l == "■ interrupted by user"));
    assert!(want.last().unwrap().starts_with("■ cancelled"));
    b.stop().await;
}

/// Cancels at the earliest moments: right after `start` answers (the task may be queued, being
/// prepared, or just spawned), right after `started`, during the fake's start-up (grandchildren
/// spawned, no line yet), and a CLI that never writes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_within_moments_of_spawn() {
    let w = world("cancel-early");
    let b = w.backend().await;
    b.configure_parallel_quick_cancel().await;
    // Which moment each cancel hit: (no run at all, run ended before its spawn, a process
    // without a result line, a process that wrote its result line).
    let mut hits = [0usize; 4];
    let mut buf = 0;
    for round in 0..24 {
        let pf = w.root.join(format!("pids-{round}"));
        let pflag = format!("--fake-pids-file={}", pf.display());
        let args: Vec<&str> = match round % 4 {
            0 => vec!["--fake-delay-ms=30", "--fake-grandchildren=1", &pflag],
            1 => vec!["--fake-silent-hang", "--fake-grandchildren=2", &pflag],
            2 => vec!["--fake-lines=200", "--fake-delay-ms=5"],
            _ => vec!["--fake-silent-hang", "--fake-ignore-signals"],
        };
        let after_started = round % 8 >= 4;
        let id = b.start(w.start_args("early", &args)).await;
        let mut tree = Tree::default();
        if after_started {
            let started = w.fake.wait_event("started", id).await;
            tree = Tree::of(&started);
        }
        // At once: no wait for the process, its first line or its pid file.
        let c = b.call("cancel", vec![w.id_args(id)]).await;
        assert!(c.is_ok(), "round {round}: cancel: {c:?}");
        let (kind, end) = w.fake.wait_end(id).await;
        assert_eq!(kind, "cancelled", "round {round}: {end:#}");
        assert_eq!(end["status"], "cancelled", "round {round}");
        if let Some((_, started)) = w.fake.find(&["started"], id) {
            let t = Tree::of(&started);
            tree.procs.extend(t.procs);
            tree.marker = t.marker;
        }
        tree.add_pids_file(&pf);
        assert_eq!(
            survivors(&tree, b.pid),
            Vec::<String>::new(),
            "round {round} ({args:?})"
        );
        // Exactly one outcome, and nothing runs any more.
        assert_eq!(w.fake.count("cancelled", id), 1, "round {round}");
        assert_eq!(w.fake.count("completed", id), 0, "round {round}");
        let got = b.req("get", w.id_args(id)).await;
        assert_eq!(got["status"], "cancelled", "round {round}");
        assert_eq!(got["process"], Json::Null, "round {round}");

        // The buffer shows the transcript, with the result line when the CLI wrote one.
        buf += 1;
        b.req("attach", w.attach_args(id, buf)).await;
        let want = w.buffer_shows(buf, &got).await;
        let wrote_result = json_lines(&transcript_of(&got))
            .iter()
            .any(|l| l["type"] == "result");
        let runs = got["runs"].as_array().unwrap();
        hits[match (runs.is_empty(), got["exit_code"].is_null(), wrote_result) {
            (true, _, _) => 0,
            (false, true, _) => 1,
            (false, false, false) => 2,
            (false, false, true) => 3,
        }] += 1;
        if wrote_result {
            assert!(
                has_line(&want, |l| l == "■ interrupted by user"),
                "{want:#?}"
            );
        }
        if !got["runs"].as_array().unwrap().is_empty() {
            assert!(want.last().unwrap().starts_with("■ cancelled"), "{want:#?}");
        }
    }
    println!(
        "early cancels: {} while queued, {} before the spawn, {} before the CLI's result, {} \
         after the CLI wrote its result",
        hits[0], hits[1], hits[2], hits[3]
    );
    b.alive_and_answering().await;
    b.stop().await;
}

// ==================================================================== 2. how the CLI ends

/// (fake args, outcome, error, a line the buffer must show besides the footer)
type Ending<'a> = (Vec<&'a str>, &'a str, Option<&'a str>, Option<&'a str>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_the_cli_can_end_is_reported_exactly() {
    let w = world("endings");
    let b = w.backend().await;
    b.configure_parallel_quick_cancel().await;
    // (fake args, outcome, error, a line the buffer must show besides the footer)
    let cases: Vec<Ending> = vec![
        (
            vec!["--fake-no-result"],
            "failed",
            Some("the CLI exited without a result"),
            None,
        ),
        (
            vec!["--fake-exit=3", "--fake-no-result"],
            "failed",
            Some("the CLI exited with code 3 without a result"),
            None,
        ),
        (
            vec!["--fake-exit=3"],
            "failed",
            Some("fake-claude: --fake-exit=3"),
            Some("✗ fake-claude: --fake-exit=3"),
        ),
        (
            vec!["--fake-kill-self=KILL", "--fake-no-result"],
            "failed",
            Some("the CLI was killed by signal 9"),
            None,
        ),
        (
            vec!["--fake-kill-self=SEGV", "--fake-no-result"],
            "failed",
            Some("the CLI was killed by signal 11"),
            None,
        ),
        // A crash after a successful result: the result line decides.
        (vec!["--fake-kill-self=9"], "completed", None, None),
    ];
    let mut ids = Vec::new();
    for (i, (args, _, _, _)) in cases.iter().enumerate() {
        let id = b.start(w.start_args("ending", args)).await;
        b.req("attach", w.attach_args(id, i as i64 + 1)).await;
        ids.push(id);
    }
    for (i, (args, status, error, shown)) in cases.iter().enumerate() {
        let id = ids[i];
        let buf = i as i64 + 1;
        let (kind, end) = w.fake.wait_end(id).await;
        assert_eq!(kind, *status, "{args:?}: {end:#}");
        assert_eq!(end["status"], *status, "{args:?}");
        assert_eq!(end["error"].as_str(), *error, "{args:?}");
        let want = w.buffer_shows(buf, &end).await;
        let footer = want.last().unwrap();
        match error {
            Some(e) => assert!(
                footer.starts_with(&format!("✗ failed: {e} · ")),
                "{args:?}: footer {footer:?}"
            ),
            None => assert!(footer.starts_with("✓ done in"), "{args:?}: {footer:?}"),
        }
        if let Some(line) = shown {
            assert!(has_line(&want, |l| l == *line), "{args:?}: {want:#?}");
        }
        let run = &end["runs"][0];
        if let Some(sig) = args
            .iter()
            .find_map(|a| a.strip_prefix("--fake-kill-self="))
        {
            let n = match sig {
                "KILL" | "9" => 9,
                _ => 11,
            };
            assert_eq!(run["signal"], n, "{args:?}");
            assert_eq!(end["exit_code"], 128 + n, "{args:?}");
        }
    }
    // Once every run has ended (they ran side by side), nothing of theirs is left.
    for &id in &ids {
        let started = w.fake.find(&["started"], id).unwrap().1;
        assert_eq!(survivors(&Tree::of(&started), b.pid), Vec::<String>::new());
    }

    // Never writes, never exits: only a cancel ends it, and it is a cancel.
    let (id, tree) = start_watched(&w, &b, "silent", &["--fake-silent-hang"], 100).await;
    b.req("cancel", w.id_args(id)).await;
    let end = wait_cancelled(&w, &b, id, &tree).await;
    assert_eq!(end["error"], Json::Null);
    assert_eq!(std::fs::metadata(transcript_of(&end)).unwrap().len(), 0);
    let want = w.buffer_shows(100, &end).await;
    assert!(want.last().unwrap().starts_with("■ cancelled"), "{want:#?}");
    b.stop().await;
}

// ==================================================================== 3. output matrix

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_and_a_half_megabyte_answer_arrives_whole() {
    let w = world("answer");
    let b = w.backend().await;
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 2_500_000 {
        i += 1;
        text.push_str(&format!(
            "answer line {i:06}: the quick brown fox jumps over the lazy dog\n"
        ));
    }
    text.push_str("THE END of the long answer");
    let raw = [
        init_line(),
        assistant_text(&text),
        result_ok(&text),
        String::new(),
    ]
    .join("\n");
    assert!(raw.len() > 5_000_000);
    let (end, want) = run_raw(&w, &b, "answer", raw.as_bytes(), 64 * 1024, 1, 1).await;
    assert_eq!(end["status"], "completed");
    assert_eq!(end["cost_usd"], 0.25);
    // The record keeps a bounded part of the result.
    let kept = end["result"].as_str().unwrap();
    assert!(kept.len() <= 4096 + '…'.len_utf8(), "{}", kept.len());
    assert!(kept.starts_with("answer line 000001: "));
    // Every line of the answer is in the buffer, the last one included.
    let body_start = want
        .iter()
        .position(|l| l.starts_with("answer line 000001:"))
        .unwrap();
    for (k, l) in text.split('\n').enumerate() {
        assert_eq!(want[body_start + k], l);
    }
    assert!(has_line(&want, |l| l == "THE END of the long answer"));
    assert!(want.last().unwrap().starts_with("✓ done in"));
    assert_memory_bounded(&b, "2.5 MB answer");
    b.alive_and_answering().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifty_megabyte_line_is_truncated_with_bounded_memory() {
    let w = world("huge");
    let b = w.backend().await;
    let path = w.root.join("huge.raw");
    let huge_len = 50 * 1024 * 1024;
    let head = r#"{"type":"assistant","message":{"id":"msg_huge","type":"message","role":"assistant","content":[{"type":"text","text":""#;
    let tail = r#""}]},"parent_tool_use_id":null,"session_id":"s"}"#;
    write_transcript(&path, |f| {
        let fill = "lorem ipsum dolor sit amet ".repeat(2000);
        let mut n = head.len() + tail.len();
        f.write_all(head.as_bytes()).unwrap();
        while n + fill.len() <= huge_len {
            f.write_all(fill.as_bytes()).unwrap();
            n += fill.len();
        }
        let pad = "x".repeat(huge_len - n);
        f.write_all(pad.as_bytes()).unwrap();
        f.write_all(tail.as_bytes()).unwrap();
        writeln!(f).unwrap();
        writeln!(f, "{}", assistant_text("after the huge line")).unwrap();
    });
    let (end, want) = run_raw_file(&w, &b, &path, 256 * 1024, 0, 1, &[]).await;
    assert_eq!(end["status"], "completed");
    // The line is re-read from the file with its text cut: its text shows, cut, with the
    // length of the whole text.
    let text_len = huge_len - head.len() - tail.len();
    let marker = format!("… ({text_len} bytes)");
    let cut = want
        .iter()
        .find(|l| l.ends_with(&marker))
        .unwrap_or_else(|| {
            panic!(
                "no truncation marker {marker:?} in {:#?}",
                want.iter()
                    .map(|l| l.chars().take(80).collect::<String>())
                    .take(20)
                    .collect::<Vec<_>>()
            )
        });
    assert!(cut.starts_with("lorem ipsum dolor sit amet"), "{cut}");
    assert!(
        cut.len() <= claude_tasks::render::MAX_SHOWN_LINE,
        "{}",
        cut.len()
    );
    assert!(has_line(&want, |l| l == "after the huge line"));
    assert!(want.last().unwrap().starts_with("✓ done in"));
    b.alive_and_answering().await;
    assert_memory_bounded(&b, "50 MB line");
    b.stop().await;
}

/// 60 MB of plain lines into a buffer whose every write takes 40 ms: the backend reads ahead
/// of the editor by a bounded amount, it does not hold the output in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_editor_does_not_make_the_backend_hold_the_output() {
    let w = world("slow");
    let b = w.backend().await;
    let path = w.root.join("slow.raw");
    const LINES: usize = 120_000;
    write_transcript(&path, |f| {
        let fill = "z".repeat(480);
        for i in 1..=LINES {
            writeln!(f, "plain {i:07} {fill}").unwrap();
        }
    });
    w.fake.slow_down(1, Duration::from_millis(40));
    let (end, want) = run_raw_file(&w, &b, &path, 1 << 20, 0, 1, &[]).await;
    assert_eq!(end["status"], "completed");
    assert!(has_line(&want, |l| l.starts_with(&format!("plain {LINES:07} "))));
    let mb = std::fs::metadata(&path).unwrap().len() >> 20;
    assert_memory_bounded(&b, &format!("{mb} MB of output into a slow buffer"));
    b.alive_and_answering().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_100k_lines_in_about_a_second() {
    let w = world("flood");
    let b = w.backend().await;
    const N: usize = 100_000;
    let mut raw = String::with_capacity(N * 200);
    let mut text = String::with_capacity(N * 16);
    raw.push_str(&init_line());
    raw.push('\n');
    raw.push_str(&stream_event(
        r#"{"type":"message_start","message":{"id":"msg_flood","content":[]}}"#,
    ));
    raw.push('\n');
    raw.push_str(&stream_event(
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    ));
    raw.push('\n');
    for i in 1..=N {
        let piece = format!("flood {i:06}\n");
        raw.push_str(&delta(&piece));
        raw.push('\n');
        text.push_str(&piece);
    }
    raw.push_str(&assistant_text(&text));
    raw.push('\n');
    raw.push_str(&result_ok("flooded"));
    raw.push('\n');
    // ~335 chunks of 64 KiB, ~3 ms apart: the 100k lines arrive over about one second.
    let chunk = 64 * 1024;
    let chunks = raw.len().div_ceil(chunk);
    let t0 = std::time::Instant::now();
    let (end, want) = run_raw(
        &w,
        &b,
        "flood",
        raw.as_bytes(),
        chunk,
        (1000 / chunks as u64).max(1),
        1,
    )
    .await;
    let took = t0.elapsed();
    assert_eq!(end["status"], "completed");
    let first = want.iter().position(|l| l == "flood 000001").unwrap();
    for i in 1..=N {
        assert_eq!(want[first + i - 1], format!("flood {i:06}"));
    }
    assert!(want.last().unwrap().starts_with("✓ done in"));
    b.alive_and_answering().await;
    assert_memory_bounded(
        &b,
        &format!(
            "flood of {N} lines ({} bytes in {chunks} chunks; the CLI ran {} ms, the buffer \
             was whole {took:?} after the start)",
            raw.len(),
            end["duration_ms"]
        ),
    );
    b.stop().await;
}

/// Bytes a terminal or a JSON parser would choke on, each case its own task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_are_kept_on_disk_and_shown_safely() {
    let w = world("bytes");
    let b = w.backend().await;
    b.configure(vec![("concurrency", s("parallel"))]).await;
    let init = init_line();
    let ok = result_ok("done");
    let mk = |middle: &[&[u8]]| -> Vec<u8> {
        let mut v = init.clone().into_bytes();
        v.push(b'\n');
        for m in middle {
            v.extend_from_slice(m);
            v.push(b'\n');
        }
        v.extend_from_slice(ok.as_bytes());
        v.push(b'\n');
        v
    };
    // Invalid UTF-8 inside a JSON string, and as a plain line.
    let bad_json: &[u8] = b"{\"type\":\"assistant\",\"message\":{\"id\":\"m\",\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"bad \xff\xfe bytes\"}]},\"session_id\":\"s\"}";
    let invalid = mk(&[bad_json, b"plain \xc3\x28 line \xe2\x82"]);
    // NUL: escaped inside JSON, raw inside JSON (then it is not JSON), raw in a plain line.
    let nul = mk(&[
        assistant_text("nul \u{0} inside").as_bytes(),
        b"{\"type\":\"assistant\",\"raw\":\"a\x00b\"}",
        b"plain\x00nul",
    ]);
    // ANSI colours, a title-setting OSC, cursor movement, a bell.
    let ansi_text = "\u{1b}[31mred\u{1b}[0m and \u{1b}]0;pwned\u{7} \u{1b}[2Jclear\u{7}";
    let ansi = mk(&[
        assistant_text(ansi_text).as_bytes(),
        b"\x1b[1;32mgreen plain line\x1b[0m",
    ]);
    // Non-JSON lines (a warning, a stack trace, a blank line, a CRLF line) between JSON lines.
    let mixed = mk(&[
        b"(node:123) Warning: something odd",
        assistant_text("between the noise").as_bytes(),
        b"    at Object.<anonymous> (/x/cli.js:1:1)",
        b"",
        b"[1, 2, 3]",
        b"\"just a string\"",
        b"{\"type\":\"unknown_kind\",\"x\":1}",
        b"{not json at all",
        b"windows line\r",
    ]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("invalid", invalid),
        ("nul", nul),
        ("ansi", ansi),
        ("mixed", mixed),
    ];
    let mut outs = HashMap::new();
    for (i, (name, raw)) in cases.iter().enumerate() {
        // Odd chunk sizes split lines, and UTF-8 sequences, anywhere.
        let (end, want) = run_raw(&w, &b, name, raw, 7 + i * 13, 0, i as i64 + 1).await;
        assert_eq!(end["status"], "completed", "{name}");
        for l in &want {
            assert!(
                !l.chars().any(|c| (c as u32) < 0x20 && c != '\t'),
                "{name}: control character in {l:?}"
            );
        }
        outs.insert(*name, want);
    }
    // A CLI killed in the middle of a line: the part it wrote is kept and shown.
    let cut = format!(
        "{}\n{}\n{{\"type\":\"assistant\",\"message\":{{\"content\":[{{\"type\":\"text\",\"text\":\"cut mid-li",
        init_line(),
        assistant_text("before the cut")
    );
    let path = w.root.join("cut.raw");
    std::fs::write(&path, &cut).unwrap();
    let (end, want) = run_raw_file(&w, &b, &path, 100, 0, 10, &["--fake-kill-self=KILL"]).await;
    assert_eq!(end["status"], "failed");
    assert_eq!(end["error"], "the CLI was killed by signal 9");
    assert!(has_line(&want, |l| l == "before the cut"), "{want:#?}");
    let partial = cut.lines().last().unwrap();
    assert!(has_line(&want, |l| l == partial), "{want:#?}");
    assert!(want
        .last()
        .unwrap()
        .starts_with("✗ failed: the CLI was killed by signal 9"));

    let inv = &outs["invalid"];
    assert!(
        has_line(inv, |l| l == "bad \u{fffd}\u{fffd} bytes"),
        "{inv:#?}"
    );
    assert!(
        has_line(inv, |l| l == "plain \u{fffd}( line \u{fffd}"),
        "{inv:#?}"
    );
    let nul = &outs["nul"];
    assert!(has_line(nul, |l| l == "nul ␀ inside"), "{nul:#?}");
    assert!(
        has_line(nul, |l| l == "{\"type\":\"assistant\",\"raw\":\"a␀b\"}"),
        "{nul:#?}"
    );
    assert!(has_line(nul, |l| l == "plain␀nul"), "{nul:#?}");
    let ansi = &outs["ansi"];
    assert!(has_line(ansi, |l| l == "red and  clear␇"), "{ansi:#?}");
    assert!(has_line(ansi, |l| l == "green plain line"), "{ansi:#?}");
    assert!(!has_line(ansi, |l| l.contains("pwned")), "{ansi:#?}");
    let mixed = &outs["mixed"];
    for want in [
        "(node:123) Warning: something odd",
        "between the noise",
        "    at Object.<anonymous> (/x/cli.js:1:1)",
        "[1, 2, 3]",
        "\"just a string\"",
        "{not json at all",
        "windows line",
    ] {
        assert!(
            has_line(mixed, |l| l == want),
            "{want:?} missing: {mixed:#?}"
        );
    }
    b.alive_and_answering().await;
    b.stop().await;
}

// ==================================================================== 4. prompts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_arrive_verbatim_and_never_run_anything() {
    let w = world("prompts");
    let b = w.backend().await;
    b.configure(vec![("concurrency", s("parallel"))]).await;
    let tag = format!("INJECTED-{}", std::process::id());
    let places: Vec<PathBuf> = [
        Some(w.project.clone()),
        std::env::var_os("HOME").map(PathBuf::from),
        Some(PathBuf::from("/tmp")),
        Some(w.root.clone()),
        Some(std::env::current_dir().unwrap()),
    ]
    .into_iter()
    .flatten()
    .map(|d| d.join(&tag))
    .collect();
    for p in &places {
        assert!(!p.exists(), "{} exists before the test", p.display());
    }
    let big: String = (0..)
        .map(|i| format!("{i} lorem ipsum dolor sit amet\n"))
        .take_while({
            let mut n = 0;
            move |l: &String| {
                n += l.len();
                n <= 1024 * 1024
            }
        })
        .collect();
    let prompts = vec![
        "--help".to_owned(),
        "-c".to_owned(),
        format!("$(touch {tag})"),
        format!("; touch {tag}"),
        format!("`touch {tag}` && touch {tag} | touch {tag}\n--dangerously-skip-permissions"),
        big,
    ];
    let mut started = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let record = w.root.join(format!("rec{i}"));
        let flag = format!("--fake-record={}", record.display());
        let rec = b
            .req("start", w.start_args(p, &["--fake-echo-stdin", &flag]))
            .await;
        started.push((rec["id"].as_u64().unwrap(), record));
    }
    for ((id, record), p) in started.iter().zip(&prompts) {
        let (kind, end) = w.fake.wait_end(*id).await;
        assert_eq!(kind, "completed", "{}", &p[..p.len().min(40)]);
        let got = std::fs::read(record.with_extension("stdin")).unwrap();
        assert!(
            got == p.as_bytes(),
            "prompt {:?} arrived altered",
            &p[..p.len().min(40)]
        );
        let argv = std::fs::read_to_string(record.with_extension("argv")).unwrap();
        for a in argv.lines() {
            assert!(
                !p.lines().any(|pl| !pl.is_empty() && a == pl),
                "prompt in argv: {a}"
            );
        }
        assert!(argv.lines().any(|a| a == "-p"), "{argv}");
        // The prompt file holds the prompt byte for byte, private to the user.
        let pf = Path::new(end["dir"].as_str().unwrap()).join("prompt-1.txt");
        assert!(std::fs::read(&pf).unwrap() == p.as_bytes());
    }
    for p in &places {
        assert!(
            !p.exists(),
            "{} was created: a prompt ran as a command",
            p.display()
        );
    }
    // Empty and blank prompts are refused with one message, and create nothing.
    for blank in ["", " ", "\n\t  \r\n", "\u{a0}\u{2003}"] {
        let e = b
            .err(
                "start",
                map(vec![("prompt", s(blank)), ("cwd", s(&w.cwd()))]),
            )
            .await;
        assert_eq!(e, "start: the prompt is empty", "{blank:?}");
        let e = b.err("resume", w.resume_args(started[0].0, blank)).await;
        assert_eq!(e, "resume: the prompt is empty", "{blank:?}");
    }
    let list = b.req("list", w.list_args()).await;
    assert_eq!(list.as_array().unwrap().len(), prompts.len());
    b.alive_and_answering().await;
    b.stop().await;
}

// ==================================================================== 5. bad cwd, bad cmd

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cwd_is_refused_with_a_clear_error() {
    let w = world("cwd");
    let b = w.backend().await;
    println!("memory: idle backend VmHWM {} kB", b.vm_hwm_kb());
    let missing = w.root.join("no-such-dir");
    let file = w.root.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let cases = [
        (
            missing.clone(),
            format!("start: cwd '{}' does not exist", missing.display()),
        ),
        (
            file.clone(),
            format!("start: cwd '{}' is not a directory", file.display()),
        ),
        (
            file.join("below"),
            format!(
                "start: cwd '{}' does not exist (a parent is not a directory)",
                file.join("below").display()
            ),
        ),
    ];
    for (cwd, want) in &cases {
        assert_eq!(&start_error(&b, cwd).await, want);
    }
    assert_no_task_created(&b).await;
    b.alive_and_answering().await;
    b.stop().await;
}

/// As root, permissions do not stop reads, so the unreadable cases run the backend as `nobody`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_cwd_is_refused_for_an_unprivileged_user() {
    let w = world("cwd-nobody");
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: cannot switch to nobody; the unreadable cwd case is skipped");
        return;
    }
    let home = w.root.join("nobody");
    std::fs::create_dir_all(home.join("work")).unwrap();
    give_to_nobody(&home);
    give_to_nobody(&home.join("work"));
    // A project nobody may not list, one it may list but not enter, and one inside a
    // directory it may not search.
    let closed = w.root.join("closed");
    let no_x = w.root.join("no-x");
    let locked = w.root.join("locked");
    for (d, mode) in [(&closed, 0o700), (&no_x, 0o744), (&locked, 0o700)] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let inner = locked.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    let b = w
        .backend_with(&Launch::nobody(&home, home.join("work")))
        .await;
    let cases = [
        (
            &closed,
            format!(
                "start: cwd '{}' is not readable: Permission denied (os error 13)",
                closed.display()
            ),
        ),
        (
            &no_x,
            format!(
                "start: cwd '{}' is not accessible (permission denied)",
                no_x.display()
            ),
        ),
        (
            &inner,
            format!(
                "start: cwd '{}' is not accessible (permission denied)",
                inner.display()
            ),
        ),
    ];
    for (cwd, want) in &cases {
        assert_eq!(&start_error(&b, cwd).await, want);
        b.alive_and_answering().await;
    }
    assert_no_task_created(&b).await;
    // The same backend runs a task where it may, with a CLI it can reach: a copy in its home,
    // as the build's own may sit under a directory only root may search (a `mktemp -d` clone).
    let work = home.join("work");
    let fake = home.join("fake-claude");
    std::fs::copy(FAKE, &fake).unwrap();
    give_to_nobody(&fake);
    let id = b
        .start(start_in("hi", &work.to_string_lossy(), cmd_of(&fake)))
        .await;
    let (kind, end) = w.fake.wait_end(id).await;
    assert_eq!(kind, "completed", "{end:#}");
    // A CLI behind a directory it may not search: failed, and the error says why.
    let hidden = closed.join("fake-claude");
    std::fs::copy(FAKE, &hidden).unwrap();
    let id = b
        .start(start_in("hi", &work.to_string_lossy(), cmd_of(&hidden)))
        .await;
    let (kind, end) = w.fake.wait_end(id).await;
    assert_eq!(kind, "failed", "{end:#}");
    assert_eq!(
        end["error"],
        format!(
            "cannot run '{}': permission denied (a directory on its path is not accessible)",
            hidden.display()
        )
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cmd_fails_the_task_with_a_clear_error() {
    let w = world("cmd");
    let b = w.backend().await;
    b.configure(vec![("concurrency", s("parallel"))]).await;
    let not_exec = w.root.join("claude-not-executable");
    std::fs::write(&not_exec, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&not_exec, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = w.root.join("claude-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let missing = w.root.join("bin/claude");
    let no_interp = w.root.join("claude-bad-interpreter");
    std::fs::write(&no_interp, "#!/no/such/interpreter\n").unwrap();
    std::fs::set_permissions(&no_interp, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = |x: &Path| x.to_string_lossy().into_owned();
    let cases: Vec<(Value, String)> = vec![
        (
            s(&p(&missing)),
            format!("claude not found: '{}' does not exist (set the `cmd` option)", p(&missing)),
        ),
        (
            s("no-such-claude-xyz"),
            "no-such-claude-xyz not found: 'no-such-claude-xyz' is not on PATH (set the `cmd` option)"
                .to_owned(),
        ),
        (
            Value::Array(vec![s(&p(&not_exec)), s("--flag")]),
            format!("cannot run '{}': permission denied (not executable)", p(&not_exec)),
        ),
        (s(&p(&dir)), format!("'{}' is a directory, not a program", p(&dir))),
        (
            s(&p(&no_interp)),
            format!(
                "cannot run '{}' (missing file or script interpreter): No such file or directory (os error 2)",
                p(&no_interp)
            ),
        ),
    ];
    for (i, (c, want)) in cases.iter().enumerate() {
        let id = b.start(start_in("hi", &w.cwd(), c.clone())).await;
        b.req("attach", w.attach_args(id, i as i64 + 1)).await;
        let (kind, end) = w.fake.wait_end(id).await;
        assert_eq!(kind, "failed", "{c:?}");
        assert_eq!(end["error"].as_str(), Some(want.as_str()), "{c:?}");
        assert_eq!(end["process"], Json::Null);
        let footer = w.fake.footer(i as i64 + 1, "✗ failed").await;
        assert!(
            footer
                .last()
                .unwrap()
                .starts_with(&format!("✗ failed: {want}")),
            "{footer:#?}"
        );
        // The reason is in the task's stderr.log too.
        let stderr = std::fs::read_to_string(end["stderr"].as_str().unwrap()).unwrap();
        assert!(stderr.contains(want.as_str()), "{stderr}");
    }
    let list = b.req("list", w.list_args()).await;
    let statuses: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["failed"; cases.len()]);
    b.alive_and_answering().await;
    b.stop().await;
}

// ==================================================================== 6. the state directory

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_records_are_skipped_and_the_rest_stays_usable() {
    let w = world("corrupt");
    let b = w.backend().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let id = b.start(w.start_args(&format!("task {i}"), &[])).await;
        w.fake.wait_event("completed", id).await;
        ids.push(id);
    }
    let dir_of = |id: u64| {
        PathBuf::from(
            w.fake.find(&["completed"], id).unwrap().1["dir"]
                .as_str()
                .unwrap(),
        )
    };
    b.stop().await;

    let good = ids[5];
    let full = std::fs::read(dir_of(ids[0]).join("task.json")).unwrap();
    let corruptions: Vec<(u64, Vec<u8>, &str)> = vec![
        (
            ids[0],
            full[..full.len() / 2].to_vec(),
            "truncated JSON (half-written?)",
        ),
        (ids[1], b"\x00\x01garbage{".to_vec(), "not JSON"),
        (
            ids[2],
            b"{\"schema\":99,\"id\":3}".to_vec(),
            "schema 99, this version reads schema 1",
        ),
        (
            ids[3],
            b"{\"schema\":1,\"id\":\"four\"}".to_vec(),
            "invalid record",
        ),
        (ids[4], b"".to_vec(), "empty file (half-written?)"),
    ];
    for (id, bytes, _) in &corruptions {
        std::fs::write(dir_of(*id).join("task.json"), bytes).unwrap();
    }

    let b = w.backend().await;
    let list = b.req("list", w.list_args()).await;
    assert_eq!(ids_of(&list), vec![good]);
    let log = w.log();
    for (id, _, reason) in &corruptions {
        let want = format!(
            "skipping {}: {reason}",
            dir_of(*id).join("task.json").display()
        );
        assert!(
            log.lines()
                .any(|l| l.contains(" WARN ") && l.contains(&want)),
            "no warning {want:?} in the log:\n{log}"
        );
    }
    // A corrupt task gives clear errors; the good one works: get, attach, resume.
    let e = b.err("get", w.id_args(ids[1])).await;
    assert!(e.starts_with("get: corrupt task record "), "{e}");
    let e = b.err("attach", w.attach_args(ids[1], 9)).await;
    assert!(e.starts_with("corrupt task record "), "{e}");
    let got = b.req("get", w.id_args(good)).await;
    assert_eq!(got["status"], "completed");
    b.req("attach", w.attach_args(good, 1)).await;
    w.buffer_shows(1, &got).await;
    let r = b.req("resume", w.resume_args(good, "again")).await;
    assert_eq!(r["status"], "queued");
    w.fake
        .until("the follow-up's end", |n| n.count("completed", good) >= 2)
        .await;
    w.fake.footer(1, "✓ done").await;
    // New ids do not reuse the corrupt tasks' ids.
    assert_eq!(b.start(w.start_args("new", &[])).await, good + 1);
    let (kind, _) = w.fake.wait_end(good + 1).await;
    assert_eq!(kind, "completed");
    b.alive_and_answering().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_state_dir_gives_clear_errors_and_the_backend_keeps_running() {
    let mut w = world("readonly");
    // 1. A file where the state dir should be.
    let l = Launch {
        state: w.root.join("state-is-a-file"),
        ..w.launch()
    };
    std::fs::write(&l.state, "not a dir").unwrap();
    let b = w.backend_with(&l).await;
    let e = b.err("start", w.start_args("x", &[])).await;
    let key = claude_tasks::store::Store::project_key(&w.cwd());
    assert_eq!(
        e,
        format!(
            "start: cannot create directory {}: Not a directory (os error 20)",
            l.state.join(&key).display()
        )
    );
    b.alive_and_answering().await;
    assert_eq!(b.req("list", map(vec![])).await, json!([]));
    b.stop().await;

    // 2. A read-only file system (bind mount), with a finished task already in it.
    let b = w.backend().await;
    let old = b.start(w.start_args("before", &[])).await;
    w.fake.wait_event("completed", old).await;
    b.stop().await;
    let state = w.root.join("state");
    if w.mount_read_only(&state) {
        let b = w.backend().await;
        let e = b.err("start", w.start_args("x", &[])).await;
        println!("read-only state dir: start answers {e:?}");
        let project = state.join(&key);
        assert!(
            e.starts_with("start: cannot ")
                && e.contains(&*project.to_string_lossy())
                && e.ends_with("Read-only file system (os error 30)"),
            "{e}"
        );
        b.alive_and_answering().await;
        let list = b.req("list", w.list_args()).await;
        assert_eq!(list[0]["id"], old);
        b.req("attach", w.attach_args(old, 1)).await;
        w.fake.footer(1, "✓ done").await;
        b.stop().await;
    } else {
        eprintln!("cannot bind-mount read-only here: that case is skipped");
    }

    // 3. As an unprivileged user, a state dir owned by someone else.
    if nix::unistd::geteuid().is_root() {
        let home = w.root.join("nobody");
        std::fs::create_dir_all(home.join("state")).unwrap();
        give_to_nobody(&home);
        let project = w.root.join("nobody-project");
        std::fs::create_dir_all(&project).unwrap();
        give_to_nobody(&project);
        let l = Launch::nobody(&home, project.clone());
        let b = w.backend_with(&l).await;
        let e = b
            .err(
                "start",
                map(vec![
                    ("prompt", s("x")),
                    ("cwd", s(&project.to_string_lossy())),
                ]),
            )
            .await;
        let key = claude_tasks::store::Store::project_key(&project.to_string_lossy());
        assert_eq!(
            e,
            format!(
                "start: cannot create directory {}: Permission denied (os error 13)",
                l.state.join(key).display()
            )
        );
        b.alive_and_answering().await;
        b.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_a_clear_error_and_spares_other_tasks() {
    let mut w = world("full");
    let state = w.root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    if !w.mount_tmpfs(&state, "256k") {
        eprintln!("cannot mount a tmpfs here: the full-disk case is skipped");
        return;
    }
    let b = w.backend().await;
    let old = b.start(w.start_args("before", &[])).await;
    w.fake.wait_event("completed", old).await;
    // Fill the file system.
    let filler = state.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![b'x'; 4096];
        loop {
            if let Err(e) = f.write_all(&block) {
                assert_eq!(e.raw_os_error(), Some(28), "{e}");
                break;
            }
        }
        let _ = f.sync_all();
    }
    let e = b.err("start", w.start_args("x", &[])).await;
    println!("full disk: start answers {e:?}");
    assert!(
        e.starts_with("start: cannot ") && e.ends_with("No space left on device (os error 28)"),
        "{e}"
    );
    b.alive_and_answering().await;
    // The finished task is still listed and shown whole; no half-made task is listed.
    let list = b.req("list", w.list_args()).await;
    assert_eq!(ids_of(&list), vec![old]);
    b.req("attach", w.attach_args(old, 1)).await;
    let got = b.req("get", w.id_args(old)).await;
    w.buffer_shows(1, &got).await;
    // The failed start left no task dir behind (its id stays taken).
    let project = state.join(claude_tasks::store::Store::project_key(&w.cwd()));
    assert!(!project.join((old + 1).to_string()).exists());
    // Space again: starting works again.
    std::fs::remove_file(&filler).unwrap();
    let id = b.start(w.start_args("after", &[])).await;
    assert_eq!(id, old + 2);
    let (kind, _) = w.fake.wait_end(id).await;
    assert_eq!(kind, "completed");
    b.stop().await;
}

// ==================================================================== 7. two backends at once

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backends_start_a_hundred_tasks_each_at_the_same_instant() {
    let w = world("race");
    let a = w.backend().await;
    let b = w.backend().await;
    for x in [&a, &b] {
        x.configure(vec![
            ("concurrency", s("parallel")),
            ("max_running", Value::from(8)),
            ("keep", Value::from(1000)),
        ])
        .await;
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let mut set = tokio::task::JoinSet::new();
    for (who, x) in [("a", &a), ("b", &b)] {
        for i in 0..100 {
            let nvim = x.nvim.clone();
            let barrier = barrier.clone();
            let args = w.start_args(&format!("{who} {i}"), &[]);
            set.spawn(async move {
                barrier.wait().await;
                match nvim.call("start", vec![args]).await {
                    Ok(Ok(v)) => Ok(v),
                    other => Err(format!("{other:?}")),
                }
            });
        }
    }
    let mut ids = Vec::new();
    while let Some(r) = set.join_next().await {
        ids.push(id_of(&to_json(&r.unwrap().expect("start"))));
    }
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!((n, ids.len()), (200, 200), "ids collided");
    assert_eq!(ids, (1..=200).collect::<Vec<u64>>());
    for &id in &ids {
        let (kind, end) = w.fake.wait_end(id).await;
        assert_eq!(kind, "completed", "{end:#}");
    }
    // Every record on disk is whole and valid.
    let project = w
        .root
        .join("state")
        .join(claude_tasks::store::Store::project_key(&w.cwd()));
    let mut seen = 0;
    for entry in std::fs::read_dir(&project).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(id) = name.parse::<u64>() else {
            continue;
        };
        let bytes = std::fs::read(entry.path().join("task.json")).unwrap();
        let rec: TaskRecord = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("task {id}: {e}: {}", String::from_utf8_lossy(&bytes)));
        assert_eq!(rec.id, id);
        assert_eq!(rec.status, claude_tasks::task::Status::Completed);
        assert_eq!(rec.runs.len(), 1);
        assert_eq!(rec.cwd, w.cwd());
        seen += 1;
    }
    assert_eq!(seen, 200);
    let list = a.req("list", w.list_args()).await;
    assert_eq!(list.as_array().unwrap().len(), 200);
    for x in [a, b] {
        x.stop().await;
    }
}

// ==================================================================== 8. permissions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_files_are_private_even_with_an_open_umask() {
    let w = world("perms");
    let l = Launch {
        state: w.root.join("deep/er/state"),
        open_umask: true,
        ..w.launch()
    };
    let b = w.backend_with(&l).await;
    let id = b.start(w.start_args("secret prompt", &[])).await;
    w.fake.wait_event("completed", id).await;
    b.req("resume", w.resume_args(id, "another secret")).await;
    w.fake
        .until("the follow-up's end", |n| n.count("completed", id) >= 2)
        .await;
    // A running task, so its lock and files exist while it runs, too.
    let run_id = b.start(w.start_args("running", &["--fake-hang"])).await;
    w.fake.wait_event("started", run_id).await;

    let check = |root: &Path| {
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            let mode = std::fs::metadata(&d).unwrap().mode() & 0o7777;
            assert_eq!(mode, 0o700, "dir {}", d.display());
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                if m.is_dir() {
                    stack.push(e.path());
                } else {
                    assert_eq!(m.mode() & 0o7777, 0o600, "file {}", e.path().display());
                    files.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        files
    };
    let files = check(&l.state);
    for name in [
        "task.json",
        "prompt-1.txt",
        "prompt-2.txt",
        "transcript.jsonl",
        "stderr.log",
        "owner.lock",
        "project.json",
    ] {
        assert!(
            files.iter().any(|f| f == name),
            "{name} not found in {files:?}"
        );
    }
    // The parents the backend created for the state dir are the user's business, but the log
    // it creates holds task details: private too.
    let log_mode = std::fs::metadata(&l.log).unwrap().mode() & 0o777;
    assert_eq!(log_mode, 0o600, "log file mode");
    b.req("cancel", w.id_args(run_id)).await;
    w.fake.wait_event("cancelled", run_id).await;
    check(&l.state);
    b.stop().await;
}

// ==================================================================== 9. fuzzing

use claude_tasks::testutil::{fixtures, Rng};

fn frame(data: &[u8], cuts: &[usize], max_line: usize) -> Vec<claude_tasks::framing::Line> {
    claude_tasks::testutil::frame_chunked(data, cuts, max_line, 0)
}

/// The `render_all` pipeline with the reads cut at `cuts`, taking an update after every read
/// as a live view does.
fn render_chunked(data: &[u8], cuts: &[usize], max_line: usize) -> Vec<String> {
    use claude_tasks::render::{Header, Renderer};
    let mut r = Renderer::new();
    r.header(&Header {
        id: 1,
        name: "fuzz",
        cwd: "/p",
        started_at_ms: 0,
    });
    let mut f = claude_tasks::framing::Framer::new(max_line, 0);
    let mut lines = Vec::new();
    let mut out: Vec<String> = Vec::new();
    let apply = |r: &mut Renderer, out: &mut Vec<String>| {
        if let Some(u) = r.take_update() {
            assert!(u.start <= out.len(), "update past the end");
            u.apply_to(out);
        }
    };
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&data.len())) {
        f.push(&data[prev..c], &mut lines);
        for l in lines.drain(..) {
            r.feed_line(&l);
        }
        apply(&mut r, &mut out);
        prev = c;
    }
    f.finish(&mut lines);
    for l in lines.drain(..) {
        r.feed_line(&l);
    }
    apply(&mut r, &mut out);
    out
}

fn random_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = match rng.below(4) {
        // A few cuts anywhere.
        0 => (0..rng.below(30)).map(|_| rng.below(len + 1)).collect(),
        // Many small reads.
        1 => {
            let step = 1 + rng.below(64);
            (0..len).step_by(step).collect()
        }
        // Reads of a random fixed size, as a read(2) loop would do.
        2 => {
            let step = 1 + rng.below(4096);
            (0..len).step_by(step).collect()
        }
        // Random sizes.
        _ => {
            let mut v = Vec::new();
            let mut at = 0;
            while at < len {
                at += 1 + rng.below(512);
                v.push(at.min(len));
            }
            v
        }
    };
    cuts.sort_unstable();
    cuts
}

#[test]
fn fuzz_framing_and_rendering_are_independent_of_read_sizes() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let root = std::env::temp_dir().join(format!("ct-hard-{}-fuzz", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let mut cases = 0;
    for (name, data) in fixtures() {
        let whole_lines = frame(&data, &[], claude_tasks::framing::MAX_LINE);
        let whole = render_chunked(&data, &[], claude_tasks::framing::MAX_LINE);
        // The reference: render_all on the same bytes in a file.
        // The name holds the CLI version's directory: one file per fixture, flat.
        let path = root.join(format!("{}.jsonl", name.replace('/', "_")));
        std::fs::write(&path, &data).unwrap();
        let mut rec = TaskRecord::queued(
            1,
            "fuzz".into(),
            "/p".into(),
            SID.into(),
            Default::default(),
            0,
        );
        rec.status = claude_tasks::task::Status::Completed;
        assert_eq!(
            claude_tasks::view::render_all(&rec, &path).unwrap(),
            whole,
            "{name}: render_all differs from the chunked pipeline"
        );
        for round in 0..60 {
            let cuts = random_cuts(&mut rng, data.len());
            assert_eq!(
                frame(&data, &cuts, claude_tasks::framing::MAX_LINE),
                whole_lines,
                "{name} round {round}: framing depends on the reads"
            );
            assert_eq!(
                render_chunked(&data, &cuts, claude_tasks::framing::MAX_LINE),
                whole,
                "{name} round {round}: rendering depends on the reads"
            );
            cases += 1;
        }
        // A small line cap, so truncation happens across reads too.
        let cap = 1 + rng.below(300);
        let capped = render_chunked(&data, &[], cap);
        for _ in 0..10 {
            let cuts = random_cuts(&mut rng, data.len());
            assert_eq!(
                frame(&data, &cuts, cap),
                frame(&data, &[], cap),
                "{name} cap {cap}"
            );
            assert_eq!(
                render_chunked(&data, &cuts, cap),
                capped,
                "{name} cap {cap}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    assert!(cases > 500);
}

/// Replaces random parts of a JSON value with values of other types.
fn mutate(rng: &mut Rng, v: &mut Json, depth: usize) {
    let pick = |rng: &mut Rng| -> Json {
        match rng.below(9) {
            0 => Json::Null,
            1 => json!(rng.next_u64().is_multiple_of(2)),
            2 => json!(rng.next_u64() as i64),
            3 => json!(-1.5e300),
            4 => {
                let n = rng.below(12);
                Json::String(String::from_utf8_lossy(&rng.bytes(n)).into_owned())
            }
            5 => json!([]),
            6 => json!({}),
            7 => json!("\u{1b}[2J\u{0}\n\r\t"),
            _ => json!({"type": "text", "text": 7}),
        }
    };
    match v {
        Json::Object(m) if !m.is_empty() && depth < 8 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for _ in 0..1 + rng.below(3) {
                let k = &keys[rng.below(keys.len())];
                if rng.below(3) == 0 {
                    m.insert(k.clone(), pick(rng));
                } else if rng.below(5) == 0 {
                    m.remove(k);
                } else if let Some(child) = m.get_mut(k) {
                    mutate(rng, child, depth + 1);
                }
            }
        }
        Json::Array(a) if !a.is_empty() && depth < 8 => {
            let i = rng.below(a.len());
            if rng.below(3) == 0 {
                a[i] = pick(rng);
            } else {
                mutate(rng, &mut a[i], depth + 1);
            }
        }
        _ => *v = pick(rng),
    }
}

#[test]
fn fuzz_the_parser_and_renderer_never_panic() {
    use claude_tasks::framing::Line;
    use claude_tasks::render::Renderer;
    let mut rng = Rng(0xF00D_FACE_0BAD_C0DE);
    let line = |b: Vec<u8>| Line {
        total_len: b.len(),
        bytes: b,
        offset: 0,
    };
    let fx = fixtures();
    let fixture_lines: Vec<Vec<u8>> = fx
        .iter()
        .flat_map(|(_, d)| d.split(|&b| b == b'\n').map(<[u8]>::to_vec))
        .filter(|l| !l.is_empty())
        .collect();
    let mut r = Renderer::new();
    let mut fed = 0usize;
    let mut feed = |r: &mut Renderer, bytes: Vec<u8>| {
        let l = line(bytes);
        let _ = claude_tasks::claude::parse(&l);
        r.feed_line(&l);
        if rng_tick(&mut fed) {
            let _ = r.take_update();
        }
    };
    fn rng_tick(n: &mut usize) -> bool {
        *n += 1;
        n.is_multiple_of(7)
    }
    // Random bytes, biased towards JSON-looking ones.
    for _ in 0..20_000 {
        let n = rng.below(200);
        let alphabet: &[u8] = b"{}[]\":,\\ntrufalse0123456789.-eE \x00\xff\x1b\r\n";
        let bytes: Vec<u8> = if rng.below(2) == 0 {
            rng.bytes(n)
        } else {
            (0..n)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect()
        };
        feed(&mut r, bytes);
    }
    // Fixture lines with bytes flipped, cut, or spliced together.
    for _ in 0..20_000 {
        let mut l = fixture_lines[rng.below(fixture_lines.len())].clone();
        match rng.below(4) {
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(l.len());
                    l[i] = rng.next_u64() as u8;
                }
            }
            1 => l.truncate(rng.below(l.len())),
            2 => {
                let other = &fixture_lines[rng.below(fixture_lines.len())];
                let cut = rng.below(other.len());
                l.extend_from_slice(&other[cut..]);
            }
            _ => {
                let at = rng.below(l.len());
                let n = rng.below(8);
                let junk = rng.bytes(n);
                l.splice(at..at, junk);
            }
        }
        feed(&mut r, l);
    }
    // Fixture lines with values of the wrong types in random places.
    let values: Vec<Json> = fixture_lines
        .iter()
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    for _ in 0..20_000 {
        let mut v = values[rng.below(values.len())].clone();
        mutate(&mut rng, &mut v, 0);
        feed(&mut r, v.to_string().into_bytes());
    }
    // Pathological shapes.
    for bytes in [
        "[".repeat(100_000).into_bytes(),
        "{\"a\":".repeat(50_000).into_bytes(),
        format!("{{\"type\":\"assistant\",\"message\":{{\"content\":[{}]}}}}", "{},".repeat(10_000) + "{}").into_bytes(),
        b"{\"type\":\"result\",\"num_turns\":1e999,\"total_cost_usd\":\"NaN\"}".to_vec(),
        b"{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"index\":18446744073709551615,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}}".to_vec(),
        b"{\"type\":\"stream_event\"".to_vec(),
        vec![0u8; 10_000],
        vec![b'\r'; 1000],
    ] {
        feed(&mut r, bytes);
    }
    let u = r.take_update();
    assert!(u.is_none_or(|u| u.lines.iter().all(|l| !l.contains('\n'))));
}
