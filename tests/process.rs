//! Integration tests of the process layer: reaper, /proc scanning, spawning and the cancel
//! ladder, against the `fake-claude` binary.
//!
//! All tests of this binary run as threads of one process, which is the child subreaper: every
//! test's orphans come back to the same process and are reaped by the one reaper thread. Each
//! test only looks at its own processes (by pid + start time, or by its task's marker), except
//! the zombie check, which tolerates other tests' zombies as long as they are reaped promptly.
//!
//! Synchronisation is by events (exit watches) and by polling for files or process states;
//! timeouts only turn a hang into a failure.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use claude_tasks::process::proctree;
use claude_tasks::process::reaper::{self, Exit};
use claude_tasks::process::spawn::{Process, SpawnConfig, SpawnError};
use claude_tasks::process::stop;

const FAKE: &str = env!("CARGO_BIN_EXE_fake-claude");
/// Failure guard for anything we poll for; never a synchronisation delay.
const GUARD: Duration = Duration::from_secs(20);
const SESSION: &str = "11111111-2222-4333-8444-555555555555";

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "claude-tasks-runner-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            name
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("proj")).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config running the fake with `fake_args` first (as the task's `cmd` list would) and then
/// the flags the backend passes to the real CLI.
fn config(dir: &TempDir, fake_args: &[&str], prompt: &[u8]) -> SpawnConfig {
    std::fs::write(dir.path("prompt-1.txt"), prompt).expect("write prompt");
    let mut argv: Vec<String> = vec![FAKE.to_string()];
    argv.extend(fake_args.iter().map(|s| s.to_string()));
    argv.extend(
        [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--include-partial-messages",
            "--permission-mode",
            "acceptEdits",
            "--allowedTools",
            "Bash",
            "Read",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    argv.push(format!("--session-id={SESSION}"));
    SpawnConfig {
        argv,
        cwd: dir.path("proj"),
        stdin: dir.path("prompt-1.txt"),
        stdin_fifo: false,
        stdin_preload: vec![],
        stdout: dir.path("transcript.jsonl"),
        stderr: dir.path("stderr.log"),
        env_remove: vec!["CLAUDECODE".into()],
        env: vec![("FAKE_CLAUDE_TEST".into(), "1".into())],
        marker: None,
    }
}

fn init() {
    reaper::init().expect("reaper init");
}

fn spawn(cfg: &SpawnConfig) -> Process {
    init();
    Process::spawn(cfg).unwrap_or_else(|e| panic!("spawn failed: {e}"))
}

async fn wait_exit(p: &Process) -> Exit {
    tokio::time::timeout(GUARD, p.wait())
        .await
        .expect("process did not exit in time")
}

/// Polls `f` until it returns `Some` (guarded by [`GUARD`]).
async fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + GUARD;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn transcript_lines(dir: &TempDir) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.path("transcript.jsonl")).expect("read transcript");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn of_type<'a>(lines: &'a [serde_json::Value], t: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|v| v["type"] == t).collect()
}

/// Waits for the transcript to contain `needle` (the fake reached a given point).
async fn wait_transcript(dir: &TempDir, needle: &str) {
    let path = dir.path("transcript.jsonl");
    poll(&format!("{needle:?} in the transcript"), || {
        std::fs::read_to_string(&path)
            .ok()
            .filter(|t| t.contains(needle))
    })
    .await;
}

/// Waits for the fake's pids file and returns each grandchild as `(pid, start_time)`.
async fn grandchildren(dir: &TempDir, n: usize) -> Vec<(i32, u64)> {
    let path = dir.path("pids");
    let pids: Vec<i32> = poll("the pids file", || {
        let text = std::fs::read_to_string(&path).ok()?;
        let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        (pids.len() == n).then_some(pids)
    })
    .await;
    pids.into_iter()
        .map(|pid| {
            let p = proctree::read(pid).expect("grandchild is running");
            assert!(!p.is_exited(), "grandchild {pid} already exited");
            // Like the CLI's Bash tool: a session (and group) of its own.
            assert_eq!(
                (p.sid, p.pgid),
                (pid, pid),
                "grandchild not in its own session"
            );
            (pid, p.start_time)
        })
        .collect()
}

/// Right after cancel/kill: none of `procs` is alive and nothing carries the marker.
fn assert_no_survivors(procs: &[(i32, u64)], marker: &str) {
    for &(pid, start) in procs {
        assert!(!proctree::is_alive(pid, start), "process {pid} survived");
    }
    let left = proctree::collect(&[], Some(marker));
    assert!(
        left.is_empty(),
        "processes with the marker survived: {left:?}"
    );
}

/// No zombie among `procs` (each is gone from /proc, or its pid now belongs to another process),
/// and no zombie child of this process lingers. Zombies of tests running in parallel may exist
/// for an instant before the reaper thread collects them, hence the polling.
async fn assert_reaped(procs: &[(i32, u64)]) {
    let me = std::process::id() as i32;
    poll("our processes to be reaped", || {
        procs
            .iter()
            .all(|&(pid, start)| !matches!(proctree::read(pid), Some(p) if p.start_time == start))
            .then_some(())
    })
    .await;
    let zombies: Vec<(i32, u64)> = proctree::list()
        .into_iter()
        .filter(|p| p.ppid == me && p.is_exited())
        .map(|p| (p.pid, p.start_time))
        .collect();
    poll("zombie children to be reaped", || {
        zombies
            .iter()
            .all(|&(pid, start)| {
                !matches!(proctree::read(pid), Some(p) if p.start_time == start && p.is_exited())
            })
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn spawn_runs_the_session_to_completion() {
    let dir = TempDir::new("complete");
    std::fs::write(dir.path("proj/README.md"), "hi").unwrap();
    std::fs::create_dir(dir.path("proj/src")).unwrap();
    let p = spawn(&config(&dir, &[], b"look at the project"));
    assert!(p.marker.starts_with("CLAUDE_TASKS_TASK="));
    assert_eq!(wait_exit(&p).await, Exit::Code(0));
    // A watcher registered after the exit still gets it.
    assert_eq!(*reaper::watch(p.pid).borrow(), Some(Exit::Code(0)));
    assert_eq!(p.try_exit(), Some(Exit::Code(0)));

    let lines = transcript_lines(&dir);
    let init = &lines[0];
    assert_eq!(
        (&init["type"], &init["subtype"]),
        (&"system".into(), &"init".into())
    );
    assert_eq!(init["session_id"], SESSION);
    assert_eq!(init["permissionMode"], "acceptEdits");
    let cwd = std::fs::canonicalize(dir.path("proj")).unwrap();
    assert_eq!(init["cwd"], cwd.display().to_string());
    let tool = of_type(&lines, "assistant")
        .into_iter()
        .find(|v| v["message"]["content"][0]["type"] == "tool_use")
        .expect("a tool_use line");
    assert_eq!(tool["message"]["content"][0]["input"]["command"], "ls");
    let tool_result = &of_type(&lines, "user")[0]["message"]["content"][0];
    assert_eq!(tool_result["content"], "README.md\nsrc");
    let result = lines.last().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["num_turns"], 2);
    assert_eq!(result["result"], "The project has 2 entries. Done.");
    assert!(lines.iter().all(|v| v["session_id"] == SESSION));
    // Every line starts with its type, as the CLI writes them.
    let raw = std::fs::read_to_string(dir.path("transcript.jsonl")).unwrap();
    assert!(raw.lines().all(|l| l.starts_with(r#"{"type":""#)));
    assert_reaped(&[(p.pid, p.start_time)]).await;
}

#[tokio::test]
async fn exit_code_no_result_and_append() {
    let dir = TempDir::new("exit");
    let p = spawn(&config(&dir, &["--fake-exit=3", "--fake-no-result"], b"x"));
    assert_eq!(wait_exit(&p).await, Exit::Code(3));
    let n = transcript_lines(&dir).len();
    assert!(of_type(&transcript_lines(&dir), "result").is_empty());
    // A second run of the task appends to the same transcript.
    let p = spawn(&config(&dir, &["--fake-exit=4"], b"x"));
    assert_eq!(wait_exit(&p).await, Exit::Code(4));
    let lines = transcript_lines(&dir);
    assert!(lines.len() > n);
    assert_eq!(lines[n]["subtype"], "init");
    let last = lines.last().unwrap();
    assert_eq!(
        (&last["type"], &last["is_error"]),
        (&"result".into(), &true.into())
    );
}

#[tokio::test]
async fn prompt_and_argv_arrive_intact() {
    let dir = TempDir::new("dash");
    let rec = dir.path("rec");
    let record = format!("--fake-record={}", rec.display());
    let prompt = "--help\n-p --model evil\n$(rm -rf /) `x` 'q' \"d\" ünïcødé\n";
    let mut cfg = config(&dir, &["--fake-echo-stdin", &record], prompt.as_bytes());
    // Passed without a shell: spaces, `$` and quotes reach the program as they are.
    cfg.argv.push("--append-system-prompt".into());
    cfg.argv.push("a b  c $HOME 'q' \"d\" ;ls".into());
    let p = spawn(&cfg);
    assert_eq!(wait_exit(&p).await, Exit::Code(0));
    assert_eq!(
        std::fs::read(dir.path("rec.stdin")).unwrap(),
        prompt.as_bytes()
    );
    let argv = std::fs::read_to_string(dir.path("rec.argv")).unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    assert_eq!(argv.len(), cfg.argv.len() - 1);
    assert_eq!(
        argv[..],
        cfg.argv[1..].iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    let lines = transcript_lines(&dir);
    let text = &of_type(&lines, "assistant")[0]["message"]["content"][0]["text"];
    assert_eq!(text, prompt);
    assert_eq!(lines.last().unwrap()["result"], prompt);
}

#[tokio::test]
async fn one_megabyte_prompt_arrives_intact() {
    let dir = TempDir::new("mb");
    let rec = dir.path("rec");
    let record = format!("--fake-record={}", rec.display());
    // 1 MiB of varied text: ASCII, multi-byte characters, newlines, quotes and backslashes.
    let mut prompt = String::new();
    let mut i = 0u64;
    while prompt.len() < 1 << 20 {
        i += 1;
        prompt.push_str(&format!(
            "{i} ä→\"\\ line {}\n",
            i.wrapping_mul(2654435761) % 1000
        ));
    }
    let p = spawn(&config(
        &dir,
        &["--fake-echo-stdin", &record],
        prompt.as_bytes(),
    ));
    assert_eq!(wait_exit(&p).await, Exit::Code(0));
    assert!(std::fs::read(dir.path("rec.stdin")).unwrap() == prompt.as_bytes());
    let lines = transcript_lines(&dir);
    let text = of_type(&lines, "assistant")[0]["message"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text == prompt, "echoed prompt differs");
    // The partial deltas add up to the same text.
    let streamed: String = of_type(&lines, "stream_event")
        .iter()
        .filter_map(|v| v["event"]["delta"]["text"].as_str())
        .collect();
    assert!(streamed == prompt, "streamed deltas differ");
}

#[tokio::test]
async fn fake_output_modes() {
    // Flood: N text deltas plus one assistant line with all of them.
    let dir = TempDir::new("flood");
    let p = spawn(&config(
        &dir,
        &["--fake-lines=2000", "--fake-line-bytes=50"],
        b"x",
    ));
    assert_eq!(wait_exit(&p).await, Exit::Code(0));
    let lines = transcript_lines(&dir);
    let deltas: Vec<&str> = of_type(&lines, "stream_event")
        .iter()
        .filter(|v| v["event"]["delta"]["type"] == "text_delta")
        .filter_map(|v| v["event"]["delta"]["text"].as_str())
        .collect();
    assert_eq!(deltas.len(), 2000);
    assert_eq!(
        deltas[1999],
        format!(
            "line 002000 {}\n",
            &"abcdefghijklmnopqrstuvwxyz".repeat(2)[..37]
        )
    );
    // The assistant line's text is generated a second time as it is written: the same text.
    let all = of_type(&lines, "assistant")[0]["message"]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert_eq!(all.len(), 2000 * 50);
    assert!(
        all == deltas.concat(),
        "the assistant text differs from the deltas"
    );

    // One huge line of an exact size.
    let dir = TempDir::new("huge");
    let p = spawn(&config(&dir, &["--fake-huge-line=3000000"], b"x"));
    assert_eq!(wait_exit(&p).await, Exit::Code(0));
    let raw = std::fs::read_to_string(dir.path("transcript.jsonl")).unwrap();
    let huge = raw.lines().max_by_key(|l| l.len()).unwrap();
    assert_eq!(huge.len(), 3_000_000);
    assert!(serde_json::from_str::<serde_json::Value>(huge).is_ok());

    // Transcript replay, with our session id substituted.
    let dir = TempDir::new("replay");
    let src = dir.path("src.jsonl");
    std::fs::write(
        &src,
        "{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"old\"}\nnot json\n{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"session_id\":\"old\"}\n",
    )
    .unwrap();
    let arg = format!("--fake-transcript={}", src.display());
    let p = spawn(&config(&dir, &[&arg, "--fake-delay-ms=1"], b"x"));
    assert_eq!(wait_exit(&p).await, Exit::Code(0));
    let raw = std::fs::read_to_string(dir.path("transcript.jsonl")).unwrap();
    assert_eq!(
        raw,
        format!(
            "{{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"{SESSION}\"}}\nnot json\n{{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"session_id\":\"{SESSION}\"}}\n"
        )
    );
}

/// `--fake-cli-version=2.1.332` writes that CLI's shapes, as a recording of the real one has
/// them: the keys of each kind of line in its order (`api_message_id` after every stream
/// event's uuid, `type` late in the result, after the whole answer), `status` before the
/// request, its init fields and default model.
#[tokio::test]
async fn fake_writes_the_shapes_of_2_1_332() {
    use claude_tasks::testutil::top_level_keys;
    // From real 2.1.332 transcripts (hello, and a cancelled Bash call for the error).
    const RESULT: &[&str] = &[
        "duration_api_ms",
        "stop_reason",
        "session_id",
        "total_cost_usd",
        "usage",
        "modelUsage",
        "permission_denials",
        "terminal_reason",
        "fast_mode_state",
        "fast_mode_disabled_reason",
        "subagent_stats",
        "safety_stops",
        "is_error",
        "num_turns",
        "subtype",
        "api_error_status",
        "result",
        "ttft_ms",
        "type",
        "duration_ms",
        "uuid",
        "begun_message_ids",
        "ttft_stream_ms",
        "time_to_request_ms",
        "first_content_frame_ms",
        "queued_turn_count",
        "result_index",
        "model_usage_since_last_result",
    ];
    const ERROR_RESULT: &[&str] = &[
        "duration_api_ms",
        "stop_reason",
        "session_id",
        "total_cost_usd",
        "usage",
        "modelUsage",
        "permission_denials",
        "terminal_reason",
        "fast_mode_state",
        "fast_mode_disabled_reason",
        "subagent_stats",
        "safety_stops",
        "is_error",
        "num_turns",
        "subtype",
        "errors",
        "type",
        "duration_ms",
        "uuid",
        "begun_message_ids",
        "queued_turn_count",
        "result_index",
        "model_usage_since_last_result",
    ];
    const EVENT: &[&str] = &[
        "type",
        "event",
        "session_id",
        "parent_tool_use_id",
        "uuid",
        "api_message_id",
    ];
    const MESSAGE_START: &[&str] = &[
        "type",
        "event",
        "session_id",
        "parent_tool_use_id",
        "uuid",
        "ttft_ms",
        "thinking_display",
        "api_message_id",
    ];
    const ASSISTANT: &[&str] = &[
        "type",
        "message",
        "parent_tool_use_id",
        "session_id",
        "uuid",
        "timestamp",
        "request_id",
    ];
    const STATUS: &[&str] = &["type", "subtype", "status", "session_id", "uuid"];
    let modes: [&[&str]; 5] = [
        &["--fake-lines=50"],
        &["--fake-echo-stdin"],
        &[],
        &["--fake-huge-line=5000"],
        &["--fake-lines=5", "--fake-exit=3"],
    ];
    for mode in modes {
        let dir = TempDir::new("shapes-332");
        let mut args = vec!["--fake-cli-version=2.1.332"];
        args.extend_from_slice(mode);
        let p = spawn(&config(&dir, &args, b"an echoed prompt"));
        wait_exit(&p).await;
        let raw = std::fs::read_to_string(dir.path("transcript.jsonl")).unwrap();
        let lines = transcript_lines(&dir);
        let keys: Vec<Vec<String>> = raw.lines().map(|l| top_level_keys(l.as_bytes())).collect();
        let init = &lines[0];
        assert_eq!(init["subtype"], "init", "{mode:?}");
        assert_eq!(init["claude_code_version"], "2.1.332-fake");
        assert_eq!(init["model"], "claude-opus-5-5");
        assert!(init["tools"]
            .as_array()
            .unwrap()
            .contains(&"Monitor".into()));
        assert!(init["capabilities"].is_array() && init["original_cwd"].is_string());
        assert_eq!(
            (&lines[1]["type"], &lines[1]["subtype"]),
            (&"system".into(), &"status".into())
        );
        let mut message = None;
        for (v, k) in lines.iter().zip(&keys) {
            let want: &[&str] = match (v["type"].as_str(), v["event"]["type"].as_str()) {
                (Some("stream_event"), Some("message_start")) => {
                    message = v["event"]["message"]["id"].as_str();
                    MESSAGE_START
                }
                (Some("stream_event"), _) => {
                    assert_eq!(v["api_message_id"].as_str(), message, "{v}");
                    EVENT
                }
                (Some("assistant"), _) => ASSISTANT,
                (Some("result"), _) if v["is_error"] == true => ERROR_RESULT,
                (Some("result"), _) => RESULT,
                (Some("system"), _) if v["subtype"] == "status" => STATUS,
                _ => continue,
            };
            assert_eq!(k, want, "{mode:?}: {v}");
        }
        let result = lines.last().unwrap();
        assert_eq!(result["type"], "result", "{mode:?}");
        if result["is_error"] == false {
            // The whole answer again, as the real CLI repeats it.
            let answer = lines
                .iter()
                .rev()
                .filter(|v| v["type"] == "assistant")
                .find_map(|v| v["message"]["content"][0]["text"].as_str())
                .unwrap();
            assert_eq!(result["result"].as_str(), Some(answer), "{mode:?}");
        }
    }
}

#[tokio::test]
async fn spawn_errors_are_clear() {
    init();
    let dir = TempDir::new("errors");
    let base = config(&dir, &[], b"x");
    let with_argv0 = |p: &str| {
        let mut c = base.clone();
        c.argv[0] = p.to_string();
        c
    };
    let err = |c: &SpawnConfig| Process::spawn(c).expect_err("spawn should fail");

    let e = err(&with_argv0("claude-tasks-no-such-program"));
    assert!(matches!(e, SpawnError::NotFound { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "claude-tasks-no-such-program not found: 'claude-tasks-no-such-program' is not on PATH (set the `cmd` option)"
    );

    let missing = dir.path("nope/claude");
    let e = err(&with_argv0(missing.to_str().unwrap()));
    assert!(matches!(e, SpawnError::NotFound { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "claude not found: '{}' does not exist (set the `cmd` option)",
            missing.display()
        )
    );

    let plain = dir.path("not-executable");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    let e = err(&with_argv0(plain.to_str().unwrap()));
    assert!(matches!(e, SpawnError::NotExecutable { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "cannot run '{}': permission denied (not executable)",
            plain.display()
        )
    );

    let e = err(&with_argv0(dir.path("proj").to_str().unwrap()));
    assert!(matches!(e, SpawnError::IsDirectory { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "'{}' is a directory, not a program",
            dir.path("proj").display()
        )
    );

    // A PATH lookup that only finds a non-executable file says so.
    let bin = dir.path("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("fakeclaude"), "").unwrap();
    let mut c = with_argv0("fakeclaude");
    c.env.push(("PATH".into(), bin.display().to_string()));
    let e = err(&c);
    assert!(matches!(e, SpawnError::NotExecutable { .. }), "{e:?}");

    let mut c = base.clone();
    c.cwd = dir.path("no-such-dir");
    let e = err(&c);
    assert!(matches!(e, SpawnError::BadCwd { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("cwd '{}' does not exist", c.cwd.display())
    );

    let mut c = base.clone();
    c.cwd = plain.clone();
    let e = err(&c);
    assert_eq!(
        e.to_string(),
        format!("cwd '{}' is not a directory", plain.display())
    );

    let mut c = base.clone();
    c.stdin = dir.path("no-prompt.txt");
    let e = err(&c);
    assert!(matches!(e, SpawnError::Io { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with("cannot open the prompt file"),
        "{e}"
    );

    let mut c = base.clone();
    c.argv.clear();
    assert!(matches!(err(&c), SpawnError::Io { .. }));
}

#[tokio::test]
async fn cancel_with_sigint_honoured_kills_the_setsid_grandchildren() {
    let dir = TempDir::new("sigint");
    let pids = format!("--fake-pids-file={}", dir.path("pids").display());
    let p = spawn(&config(
        &dir,
        &["--fake-hang", "--fake-grandchildren=3", &pids],
        b"x",
    ));
    let kids = grandchildren(&dir, 3).await;
    // The hang point: the Bash tool_use has been written and the tool "runs".
    wait_transcript(&dir, r#"{"type":"message_stop"}"#).await;
    // The marker reaches the grandchildren although they are in other sessions.
    let mut found: Vec<i32> = proctree::tree(p.pid, Some(&p.marker))
        .iter()
        .map(|q| q.pid)
        .collect();
    found.sort();
    let mut expected: Vec<i32> = kids.iter().map(|k| k.0).collect();
    expected.sort();
    assert_eq!(found, expected);
    assert!(proctree::has_env_entry(p.pid, &p.marker));
    let cli = proctree::read(p.pid).unwrap();
    assert_eq!(
        (cli.sid, cli.pgid),
        (p.pid, p.pid),
        "CLI not in its own session"
    );

    // A grace far longer than the guard: the test ends only if SIGINT alone ends the CLI.
    let exit = tokio::time::timeout(GUARD, p.cancel(Duration::from_secs(3600)))
        .await
        .expect("SIGINT alone did not end the CLI");
    assert_eq!(exit, Exit::Code(1));

    let lines = transcript_lines(&dir);
    let result = lines.last().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["subtype"], "error_during_execution");
    assert_eq!(result["is_error"], true);
    assert!(of_type(&lines, "user")
        .iter()
        .any(|v| v["message"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("[Request interrupted by user"))));

    let mut all = kids.clone();
    all.push((p.pid, p.start_time));
    assert_no_survivors(&all, &p.marker);
    assert_reaped(&all).await;
}

#[tokio::test]
async fn cancel_of_a_cli_ignoring_signals_escalates_to_sigkill() {
    let dir = TempDir::new("ignore");
    let pids = format!("--fake-pids-file={}", dir.path("pids").display());
    let p = spawn(&config(
        &dir,
        &[
            "--fake-ignore-signals",
            "--fake-hang",
            "--fake-grandchildren=3",
            &pids,
        ],
        b"x",
    ));
    let kids = grandchildren(&dir, 3).await;
    // The grandchildren ignore SIGINT and SIGTERM too (SigIgn bits 1 and 14).
    for &(pid, _) in &kids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let ign = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .unwrap();
        assert_eq!(
            ign & 0x4002,
            0x4002,
            "grandchild {pid} does not ignore INT/TERM"
        );
    }
    wait_transcript(&dir, r#"{"type":"message_stop"}"#).await;

    let grace = Duration::from_millis(200);
    let t0 = Instant::now();
    let exit = p.cancel(grace).await;
    let took = t0.elapsed();
    assert_eq!(exit, Exit::Signal(9));
    // Ordering, not speed: the ladder waits out both grace periods before SIGKILL.
    assert!(
        took >= grace * 2,
        "SIGKILL came before both grace periods: {took:?}"
    );
    // No result line: it was killed.
    assert!(of_type(&transcript_lines(&dir), "result").is_empty());

    let mut all = kids.clone();
    all.push((p.pid, p.start_time));
    assert_no_survivors(&all, &p.marker);
    assert_reaped(&all).await;
}

#[tokio::test]
async fn cancel_before_the_first_line_and_after_the_exit() {
    // Silent hang: like the real CLI during startup, SIGINT kills it.
    let dir = TempDir::new("silent");
    let rec = format!("--fake-record={}", dir.path("rec").display());
    let p = spawn(&config(&dir, &["--fake-silent-hang", &rec], b"x"));
    // The fake has read its stdin (and installed its signal handling) once it recorded.
    poll("the record", || {
        std::fs::metadata(dir.path("rec.argv")).ok()
    })
    .await;
    let exit = p.cancel(Duration::from_secs(10)).await;
    assert_eq!(exit, Exit::Signal(2));
    assert_eq!(std::fs::read(dir.path("transcript.jsonl")).unwrap(), b"");
    assert_reaped(&[(p.pid, p.start_time)]).await;

    // Cancel after a natural exit returns that exit and signals nothing.
    let dir = TempDir::new("after");
    let p = spawn(&config(&dir, &[], b"x"));
    assert_eq!(wait_exit(&p).await, Exit::Code(0));
    assert_eq!(p.cancel(Duration::from_secs(10)).await, Exit::Code(0));
}

/// A "CLI" that ignores SIGINT and SIGTERM and keeps forking tool processes during the grace
/// periods, each in a new session and with a cleared environment (no marker): only the parent
/// links found by the periodic rescans, and the stop-before-kill, tie them to the task.
#[tokio::test]
async fn cancel_catches_processes_forked_during_the_grace_periods() {
    let dir = TempDir::new("forker");
    let script = dir.path("forker.sh");
    std::fs::write(
        &script,
        "trap '' INT TERM\n\
         while :; do\n\
           env -i setsid sleep 1000 </dev/null >/dev/null 2>&1 &\n\
           echo $! >> \"$PIDS\"\n\
           sleep 0.01\n\
         done\n",
    )
    .unwrap();
    let pids_path = dir.path("pids");
    let mut cfg = config(&dir, &[], b"x");
    cfg.argv = vec!["sh".into(), script.display().to_string()];
    cfg.env
        .push(("PIDS".into(), pids_path.display().to_string()));
    let p = spawn(&cfg);

    let read_pids = || -> Vec<i32> {
        std::fs::read_to_string(&pids_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    // Wait for a forked tool that has exec'd `sleep` (so its environment is the cleared one).
    let first = poll("a forked tool", || {
        read_pids().into_iter().find(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == b"sleep\x001000\x00")
        })
    })
    .await;
    assert!(
        !proctree::has_env_entry(first, &p.marker),
        "the tool should not carry the marker"
    );

    let exit = p.cancel(Duration::from_millis(200)).await;
    assert_eq!(exit, Exit::Signal(9));

    let pids = read_pids();
    assert!(
        pids.len() >= 5,
        "the script should have forked during the grace periods"
    );
    let me = std::process::id() as i32;
    for pid in pids {
        // A pid of a killed tool may already have been reused by an unrelated process, which
        // is not a `sleep 1000` (the other tests' sleepers run `sleep 100000`).
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let alive = proctree::read(pid).is_some_and(|q| !q.is_exited());
        assert!(
            !(alive && cmdline == b"sleep\x001000\x00"),
            "forked tool {pid} survived the cancel"
        );
        let zombie_of_ours = proctree::read(pid).is_some_and(|q| q.is_exited() && q.ppid == me);
        if zombie_of_ours {
            // Reaping is asynchronous for processes that were not part of the tracked set's
            // final wait; it must still happen.
            assert_reaped(&[(pid, proctree::start_time(pid).unwrap_or(0))]).await;
        }
    }
    assert_reaped(&[(p.pid, p.start_time)]).await;
}

/// Cancel at once, while the fake may still be starting, reading its prompt or forking its
/// grandchildren: whatever the moment, nothing of the task survives.
#[tokio::test]
async fn cancel_right_after_spawn_leaves_nothing() {
    let dir = TempDir::new("early");
    for round in 0..12 {
        let pids = format!(
            "--fake-pids-file={}",
            dir.path(&format!("pids-{round}")).display()
        );
        let mut args = vec!["--fake-grandchildren=2", pids.as_str()];
        match round % 3 {
            0 => args.push("--fake-silent-hang"),
            1 => args.push("--fake-hang"),
            _ => args.extend(["--fake-hang", "--fake-ignore-signals"]),
        }
        let p = spawn(&config(&dir, &args, b"x"));
        // Yield a varying number of times so the signal lands at different points of startup.
        for _ in 0..round * 3 {
            tokio::task::yield_now().await;
        }
        let exit = p.cancel(Duration::from_millis(100)).await;
        assert!(
            matches!(exit, Exit::Code(1) | Exit::Signal(2) | Exit::Signal(9)),
            "round {round}: {exit:?}"
        );
        let left = proctree::collect(&[], Some(&p.marker));
        assert!(left.is_empty(), "round {round}: survivors {left:?}");
        let mut all = vec![(p.pid, p.start_time)];
        if let Ok(text) = std::fs::read_to_string(dir.path(&format!("pids-{round}"))) {
            for pid in text.lines().filter_map(|l| l.parse::<i32>().ok()) {
                let alive = proctree::read(pid).is_some_and(|q| !q.is_exited());
                let is_sleeper = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.starts_with(b"sleep\x00100000"));
                assert!(
                    !(alive && is_sleeper),
                    "round {round}: grandchild {pid} survived"
                );
            }
        }
        all.retain(|&(pid, _)| pid > 0);
        assert_reaped(&all).await;
    }
}

#[tokio::test]
async fn kill_leftovers_after_a_natural_exit() {
    let dir = TempDir::new("leftovers");
    let pids = format!("--fake-pids-file={}", dir.path("pids").display());
    let p = spawn(&config(&dir, &["--fake-grandchildren=2", &pids], b"x"));
    let kids = grandchildren(&dir, 2).await;
    assert_eq!(wait_exit(&p).await, Exit::Code(0));
    // The CLI is gone; its grandchildren were orphaned and adopted by us (the subreaper).
    let me = std::process::id() as i32;
    for &(pid, start) in &kids {
        assert!(proctree::is_alive(pid, start));
        assert_eq!(proctree::read(pid).unwrap().ppid, me);
    }
    assert_eq!(p.kill_leftovers(), 2);
    poll("leftovers to die", || {
        kids.iter()
            .all(|&(pid, start)| !proctree::is_alive(pid, start))
            .then_some(())
    })
    .await;
    assert_no_survivors(&kids, &p.marker);
    assert_reaped(&kids).await;
    assert_eq!(p.kill_leftovers(), 0);
}

#[tokio::test]
async fn cancel_foreign_polls_a_process_it_cannot_wait_for() {
    let dir = TempDir::new("foreign");
    let pids = format!("--fake-pids-file={}", dir.path("pids").display());
    let p = spawn(&config(
        &dir,
        &[
            "--fake-ignore-signals",
            "--fake-hang",
            "--fake-grandchildren=2",
            &pids,
        ],
        b"x",
    ));
    let kids = grandchildren(&dir, 2).await;
    wait_transcript(&dir, r#"{"type":"message_stop"}"#).await;
    let gone =
        stop::cancel_foreign(p.pid, p.start_time, &p.marker, Duration::from_millis(100)).await;
    assert!(gone);
    // It was our child after all: the reaper saw the SIGKILL.
    assert_eq!(wait_exit(&p).await, Exit::Signal(9));
    let mut all = kids.clone();
    all.push((p.pid, p.start_time));
    assert_no_survivors(&all, &p.marker);
    assert_reaped(&all).await;
}

#[tokio::test]
async fn reaper_reaps_orphans_and_remembers_early_exits() {
    init();
    // A grandchild adopted after its parent exits is reaped when it dies.
    let dir = TempDir::new("orphan");
    let pids = format!("--fake-pids-file={}", dir.path("pids").display());
    let p = spawn(&config(&dir, &["--fake-grandchildren=1", &pids], b"x"));
    let kids = grandchildren(&dir, 1).await;
    assert_eq!(wait_exit(&p).await, Exit::Code(0));
    let (pid, _) = kids[0];
    // The adopted orphan is our child now, so its status reaches a watcher too.
    let rx = reaper::watch(pid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exit = tokio::time::timeout(GUARD, reaper::wait_on(rx))
        .await
        .unwrap();
    assert_eq!(exit, Exit::Signal(15));
    assert_reaped(&kids).await;

    // Several watchers of one pid, one of them registered late.
    let dir = TempDir::new("watchers");
    let p = spawn(&config(&dir, &[], b"x"));
    let a = reaper::watch(p.pid);
    let b = p.watch();
    assert_eq!(
        tokio::time::timeout(GUARD, reaper::wait(p.pid))
            .await
            .unwrap(),
        Exit::Code(0)
    );
    assert_eq!(*a.borrow(), Some(Exit::Code(0)));
    assert_eq!(*b.borrow(), Some(Exit::Code(0)));
    assert_eq!(reaper::wait(p.pid).await, Exit::Code(0));
}

#[test]
fn exit_display() {
    assert_eq!(Exit::Code(1).to_string(), "exit code 1");
    assert_eq!(Exit::Signal(9).to_string(), "killed by signal 9 (SIGKILL)");
    assert_eq!(Exit::Signal(15).as_shell_code(), 143);
}
