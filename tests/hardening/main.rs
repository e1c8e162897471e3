//! Hardening: every bad situation the backend must survive, with the exact outcome asserted.
//!
//! The backend binary runs as a child process and the test plays Neovim over msgpack-RPC (the
//! `common` module's `FakeNvim`, as in `rpc.rs`): it answers `nvim_exec_lua` for
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

#[path = "../common/mod.rs"]
mod common;

mod cancel;
mod fuzz;
mod input;
mod output;
mod state;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use claude_tasks::process::proctree;
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
