//! Permission requests end to end: the backend binary over msgpack-RPC (the test plays Neovim),
//! fake-claude speaking the control protocol with scripted tool calls. Allow, deny, an edited
//! input, "always" rules, the `deny` policy, parallel requests answered out of order, cancel
//! while waiting, a backend killed while a task waits, unsaved files, the stdin FIFO's modes,
//! and bad answers.
//!
//! Waits are on recorded events or on files; timeouts only turn a hang into a failure.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

use common::{map, rendered, s, transcript_of, Json, World, FAKE};
use rmpv::Value;
use serde_json::json;

const GUARD: Duration = Duration::from_secs(30);

fn world(name: &str) -> World {
    World::new("perm", name, GUARD)
}

/// A prompt whose turn makes these tool calls (fake-claude reads its `fake-tools:` line).
fn prompt(title: &str, steps: Json) -> String {
    format!("{title}\nfake-tools: {steps}")
}

fn bash(cmd: &str) -> Json {
    json!({"name": "Bash", "input": {"command": cmd, "description": "a step"}})
}

fn args(w: &World, id: u64, extra: Vec<(&str, Value)>) -> Value {
    let mut pairs = vec![("id", Value::from(id)), ("cwd", s(&w.cwd()))];
    pairs.extend(extra);
    map(pairs)
}

/// Waits until task `id` has `n` requests waiting (as its latest event shows); returns them.
async fn waiting(w: &World, id: u64, n: usize) -> Vec<Json> {
    let pending = |w: &World| {
        w.fake
            .find(&["permission", "updated", "started"], id)
            .map(|(_, t)| t["pending"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default()
    };
    w.fake
        .until(&format!("{n} request(s) of #{id}"), |_| {
            pending(w).len() == n
        })
        .await;
    pending(w)
}

/// Waits until the first request of task `id` is for `tool` with `key` = `value`; returns it.
async fn asked(w: &World, id: u64, tool: &str, key: &str, value: &str) -> Json {
    let first = |w: &World| {
        w.fake
            .find(&["permission", "updated", "started"], id)
            .and_then(|(_, t)| t["pending"].get(0).cloned())
            .filter(|p| p["tool_name"] == tool && p["input"][key] == value)
    };
    w.fake
        .until(&format!("#{id} asking {tool} {value}"), |_| {
            first(w).is_some()
        })
        .await;
    first(w).unwrap()
}

fn transcript_lines(rec: &Json) -> Vec<Json> {
    std::fs::read_to_string(transcript_of(rec))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The echoes of our answers in the transcript: (behavior, our key).
fn echoes(rec: &Json) -> Vec<(String, Json)> {
    transcript_lines(rec)
        .into_iter()
        .filter(|v| v["type"] == "control_response" && v["claude_tasks"].is_object())
        .filter(|v| v["claude_tasks"]["by"] != "hook")
        .map(|v| {
            (
                v["response"]["response"]["behavior"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                v["claude_tasks"].clone(),
            )
        })
        .collect()
}

fn tool_results(rec: &Json) -> Vec<String> {
    transcript_lines(rec)
        .iter()
        .filter(|v| v["type"] == "user")
        .flat_map(|v| {
            v["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|b| b["type"] == "tool_result")
        .map(|b| b["content"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_deny_and_an_edited_input_from_the_editor() {
    let w = world("answers");
    let b = w.backend().await;
    let steps = json!([
        bash("touch allowed.txt"),
        bash("touch denied.txt"),
        bash("touch asked.txt")
    ]);
    let id = b
        .start(w.start_with(&prompt("three steps", steps), vec![]))
        .await;
    b.req("attach", w.attach_args(id, 1)).await;

    let p = waiting(&w, id, 1).await;
    let first = &p[0];
    assert_eq!(first["tool_name"], "Bash");
    assert_eq!(first["title"], "Bash(touch allowed.txt)");
    assert_eq!(first["input"]["command"], "touch allowed.txt");
    assert_eq!(first["rule"], "Bash(touch:*)");
    assert!(first["suggestions"]
        .as_array()
        .is_some_and(|s| !s.is_empty()));
    assert!(first["since"].as_u64().is_some() && first["tool_use_id"].is_string());
    assert!(w.fake.has("permission", id));
    // Drawn under its call, with what to press.
    w.fake
        .until("the request in the buffer", |n| {
            n.lines(1).iter().any(|l| l == "  $ touch allowed.txt")
                && n.lines(1)
                    .iter()
                    .any(|l| l.starts_with("  a allow · A always"))
        })
        .await;
    let lines = w.fake.lines(1);
    let call = lines
        .iter()
        .position(|l| l == "● Bash(touch allowed.txt)")
        .unwrap();
    assert!(
        lines[call + 1].starts_with("? Run this command?  ["),
        "{lines:#?}"
    );
    b.req("allow", args(&w, id, vec![])).await;

    asked(&w, id, "Bash", "command", "touch denied.txt").await;
    b.req("deny", args(&w, id, vec![("message", s("not that one"))]))
        .await;

    let p = [asked(&w, id, "Bash", "command", "touch asked.txt").await];
    let edited = map(vec![
        ("command", s("touch edited.txt")),
        ("description", s("x")),
    ]);
    let rid = p[0]["request_id"].as_str().unwrap().to_string();
    b.req(
        "allow",
        args(
            &w,
            id,
            vec![("request_id", s(&rid[..8])), ("input", edited)],
        ),
    )
    .await;

    let (kind, end) = w.fake.wait_end(id).await;
    assert_eq!(kind, "completed", "{end:#}");
    assert_eq!(end["pending"], json!([]));
    assert_eq!(
        end["exit_code"], 0,
        "the idle CLI ended by us exits as its result says"
    );
    let p = &w.project;
    assert!(p.join("allowed.txt").exists());
    assert!(!p.join("denied.txt").exists());
    assert!(p.join("edited.txt").exists() && !p.join("asked.txt").exists());
    assert!(tool_results(&end).contains(&"not that one".to_string()));
    let said = echoes(&end);
    assert_eq!(said.len(), 3, "{said:?}");
    assert_eq!(said[0], ("allow".into(), json!({"by": "user"})));
    assert_eq!(said[1].0, "deny");
    assert_eq!(said[2].1, json!({"by": "user", "edited": true}));
    // The buffer says what was decided, as a pure function of the transcript.
    let want = w.buffer_shows(1, &end).await;
    for line in [
        "  ✓ allowed",
        "  ✗ denied: not that one",
        "  ✓ allowed (edited): Bash(touch edited.txt)",
    ] {
        assert!(want.iter().any(|l| l == line), "{line}: {want:#?}");
    }
    assert!(
        want.iter().all(|l| !l.starts_with("  a allow")),
        "{want:#?}"
    );
    assert!(want[1].ends_with(" · permissions: ask"), "{want:#?}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_rules_answer_the_next_requests_themselves() {
    let w = world("always");
    let b = w.backend().await;
    let steps = json!([
        bash("touch one"),
        bash("touch two"),
        bash("ls -a; touch three")
    ]);
    let id = b
        .start(w.start_with(&prompt("always", steps), vec![]))
        .await;
    b.req("attach", w.attach_args(id, 1)).await;
    waiting(&w, id, 1).await;
    let rec = b
        .req("allow", args(&w, id, vec![("always", s("Bash(touch:*)"))]))
        .await;
    assert_eq!(rec["rules"], json!(["Bash(touch:*)"]));
    // `touch two` is allowed by the rule; the compound command is not, whatever its prefix.
    asked(&w, id, "Bash", "command", "ls -a; touch three").await;
    b.req("deny", args(&w, id, vec![])).await;
    let (_, end) = w.fake.wait_end(id).await;
    assert!(w.project.join("two").exists() && !w.project.join("three").exists());
    assert_eq!(w.fake.count("permission", id), 2);
    let said = echoes(&end);
    assert_eq!(
        said[1].1,
        json!({"by": "rule", "rule": "Bash(touch:*)", "scope": "task"}),
        "{said:?}"
    );
    let want = w.buffer_shows(1, &end).await;
    assert!(
        want.iter().any(|l| l == "  ✓ always: Bash(touch:*)"),
        "{want:#?}"
    );
    assert!(
        want.iter()
            .any(|l| l == "  ✓ allowed by rule Bash(touch:*)"),
        "{want:#?}"
    );
    let rules = b.req("rules", args(&w, id, vec![])).await;
    assert_eq!(
        rules,
        json!([{"rule": "Bash(touch:*)", "scope": "task", "id": id}])
    );

    // A project rule, made before a task starts, answers its first request.
    let list = b
        .req(
            "add_rule",
            map(vec![("cwd", s(&w.cwd())), ("rule", s("Bash(make:*)"))]),
        )
        .await;
    assert_eq!(list.as_array().unwrap().last().unwrap()["scope"], "project");
    let bad = b
        .err(
            "add_rule",
            map(vec![("cwd", s(&w.cwd())), ("rule", s("Bash("))]),
        )
        .await;
    assert!(bad.contains("no closing ')'"), "{bad}");
    let id2 = b
        .start(w.start_with(&prompt("make", json!([bash("make -v || true")])), vec![]))
        .await;
    // `make -v || true` is no simple command: asked, not answered by `make:*`.
    let p = asked(&w, id2, "Bash", "command", "make -v || true").await;
    assert_eq!(p["rule"], "Bash(make -v || true)");
    b.req("deny", args(&w, id2, vec![])).await;
    assert_eq!(w.fake.wait_end(id2).await.0, "completed");
    let id3 = b
        .start(w.start_with(&prompt("make", json!([bash("make --version")])), vec![]))
        .await;
    let (_, end) = w.fake.wait_end(id3).await;
    assert!(!w.fake.has("permission", id3));
    assert_eq!(echoes(&end)[0].1["scope"], "project");
    let after = b
        .req(
            "remove_rule",
            map(vec![("cwd", s(&w.cwd())), ("rule", s("Bash(make:*)"))]),
        )
        .await;
    assert!(after
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["scope"] != "project"));
    let missing = b
        .err(
            "remove_rule",
            map(vec![("cwd", s(&w.cwd())), ("rule", s("Bash(make:*)"))]),
        )
        .await;
    assert!(missing.contains("no project rule"), "{missing}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_deny_denies_what_no_rule_allows_and_says_so() {
    let w = world("policy");
    let b = w.backend().await;
    let steps = json!([bash("touch nope"), {"name": "AskUserQuestion", "input": {"questions": [
        {"question": "Which?", "header": "Q", "multiSelect": false,
         "options": [{"label": "A", "description": "a"}]}]}}]);
    let id = b
        .start(w.start_with(
            &prompt("unwatched", steps),
            vec![("permissions", s("deny"))],
        ))
        .await;
    b.req("attach", w.attach_args(id, 1)).await;
    let (kind, end) = w.fake.wait_end(id).await;
    assert_eq!(kind, "completed");
    assert!(!w.fake.has("permission", id));
    assert!(!w.project.join("nope").exists());
    assert_eq!(end["options"]["permissions"], "deny");
    let said = echoes(&end);
    assert_eq!(said.len(), 2);
    assert!(said.iter().all(|(b, k)| b == "deny" && k["by"] == "policy"));
    let want = w.buffer_shows(1, &end).await;
    assert!(want[1].ends_with(" · permissions: deny"), "{want:#?}");
    assert_eq!(
        want.iter()
            .filter(|l| *l == "  ✗ denied (permissions = \"deny\")")
            .count(),
        2,
        "{want:#?}"
    );
    let bad = b
        .err(
            "start",
            w.start_with("x", vec![("permissions", s("maybe"))]),
        )
        .await;
    assert!(
        bad.contains("'permissions' must be \"ask\" or \"deny\""),
        "{bad}"
    );
    let bad = b
        .err(
            "start",
            w.start_with("x", vec![("permission_mode", s("--yolo"))]),
        )
        .await;
    assert!(bad.contains("'permission_mode' must be a mode"), "{bad}");
    let bad = b
        .err(
            "start",
            w.start_with("x", vec![("allowed_tools", Value::Array(vec![s("Bash(")]))]),
        )
        .await;
    assert!(bad.contains("'allowed_tools'"), "{bad}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_of_two_tasks_are_answered_in_any_order() {
    let w = world("parallel");
    let b = w.backend().await;
    b.configure_parallel_quick_cancel().await;
    // Task 1 asks two things at once (the fake can; the real CLI asks one at a time).
    let both = json!([[bash("touch a1"), bash("touch a2")]]);
    let one = b
        .start(w.start_with(&prompt("two at once", both), vec![]))
        .await;
    let two = b
        .start(w.start_with(&prompt("other", json!([bash("touch b1")])), vec![]))
        .await;
    let p1 = waiting(&w, one, 2).await;
    waiting(&w, two, 1).await;
    // The second task first, then task 1's requests newest first.
    b.req("allow", args(&w, two, vec![])).await;
    let r2 = p1[1]["request_id"].as_str().unwrap();
    let rec = b
        .req("allow", args(&w, one, vec![("request_id", s(r2))]))
        .await;
    assert_eq!(rec["pending"].as_array().unwrap().len(), 1);
    b.req("allow", args(&w, one, vec![])).await;
    assert_eq!(w.fake.wait_end(one).await.0, "completed");
    assert_eq!(w.fake.wait_end(two).await.0, "completed");
    for f in ["a1", "a2", "b1"] {
        assert!(w.project.join(f).exists(), "{f}");
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_waiting_interrupts_and_withdraws_the_request() {
    let w = world("cancel");
    let b = w.backend().await;
    let id = b
        .start(w.start_with(&prompt("cancel me", json!([bash("touch never")])), vec![]))
        .await;
    b.req("attach", w.attach_args(id, 1)).await;
    waiting(&w, id, 1).await;
    let pid = w.fake.last("started", id)["process"]["pid"]
        .as_i64()
        .unwrap() as i32;
    let t0 = std::time::Instant::now();
    b.req("cancel", w.id_args(id)).await;
    let (kind, end) = w.fake.wait_end(id).await;
    assert_eq!(kind, "cancelled");
    // The interrupt ended it, not the ladder's 300 ms steps.
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    assert!(!common::alive(pid));
    assert_eq!(end["pending"], json!([]));
    assert!(transcript_lines(&end)
        .iter()
        .any(|v| v["type"] == "control_cancel_request"));
    let want = w.buffer_shows(1, &end).await;
    assert!(
        want.iter().any(|l| l == "  ■ request withdrawn"),
        "{want:#?}"
    );
    assert!(!w.project.join("never").exists());
    let err = b.err("allow", args(&w, id, vec![])).await;
    assert!(
        err.contains("task #1 is cancelled; there is nothing to answer"),
        "{err}"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_with_interrupt_stops_the_turn_and_says_so() {
    let w = world("deny-interrupt");
    let b = w.backend().await;
    let steps = json!([bash("touch stopped.txt"), bash("touch never-asked.txt")]);
    let id = b
        .start(w.start_with(&prompt("stop here", steps), vec![]))
        .await;
    b.req("attach", w.attach_args(id, 1)).await;
    asked(&w, id, "Bash", "command", "touch stopped.txt").await;
    b.req(
        "deny",
        args(
            &w,
            id,
            vec![("message", s("stop it")), ("interrupt", Value::from(true))],
        ),
    )
    .await;
    // The CLI ends the turn at once (an error result, aborted_tools): the run ends as one the
    // user interrupted, not as a failure, and the task waits for the next message.
    let (kind, end) = w.fake.wait_end(id).await;
    assert_eq!(kind, "cancelled", "{end:#}");
    assert_eq!(end["status"], "cancelled");
    assert_eq!(end["runs"][0]["interrupted"], true, "{end:#}");
    assert_eq!(end["cancel_requested"], false, "the task goes on");
    assert!(end["error"].is_null(), "{end:#}");
    assert!(end["live"].is_object(), "its Claude waits for a follow-up");
    assert_eq!(end["pending"], json!([]));
    assert_eq!(end["runs"][0]["denied"], json!(["Bash"]));
    // What the CLI did: our deny (with interrupt) echoed, then the interrupted turn's result;
    // the second call never came.
    let lines = transcript_lines(&end);
    assert!(lines.iter().any(|v| v["type"] == "control_response"
        && v["claude_tasks"]["by"] == "user"
        && v["response"]["response"]["interrupt"] == true));
    let results: Vec<&Json> = lines.iter().filter(|v| v["type"] == "result").collect();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["subtype"], "error_during_execution");
    assert_eq!(results[0]["terminal_reason"], "aborted_tools");
    assert!(!lines
        .iter()
        .any(|v| v.to_string().contains("touch never-asked.txt") && v["type"] == "assistant"));
    assert!(!w.project.join("stopped.txt").exists());
    // The buffer says who stopped it, and that the task goes on.
    let want = w.buffer_shows(1, &end).await;
    assert!(
        want.iter().any(|l| l == "  ✗ denied and stopped: stop it"),
        "{want:#?}"
    );
    assert!(
        want.iter().any(|l| l.starts_with("■ interrupted after ")
            && l.ends_with("the task waits for your next message")),
        "{want:#?}"
    );
    assert!(want.iter().all(|l| !l.starts_with("✗ failed")), "{want:#?}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_task_survives_its_backend_and_is_answered_from_the_next() {
    let w = world("crash");
    let b = w.backend().await;
    let id = b
        .start(w.start_with(&prompt("wait for me", json!([bash("touch later")])), vec![]))
        .await;
    let p = waiting(&w, id, 1).await;
    let pid = w.fake.last("started", id)["process"]["pid"]
        .as_i64()
        .unwrap() as i32;
    b.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = b.exit().await;
    // The CLI does not notice: no EOF reaches it, its request stays open.
    assert!(common::alive(pid));
    let b2 = w.backend().await;
    // The new backend takes the task over and finds the request open in the transcript (the
    // record on disk may not list it yet: the event went out before the write), and says so.
    let rec = b2.req("get", w.id_args(id)).await;
    assert_eq!(rec["status"], "running");
    w.fake
        .until("the request, announced by the new backend", |n| {
            n.count("permission", id) == 2
        })
        .await;
    let again = w.fake.last("permission", id);
    assert_eq!(again["pending"][0]["request_id"], p[0]["request_id"]);
    assert_eq!(
        b2.req("get", w.id_args(id)).await["pending"][0]["request_id"],
        p[0]["request_id"]
    );
    b2.req("allow", args(&w, id, vec![])).await;
    let (kind, end) = w.fake.wait_end(id).await;
    assert_eq!(kind, "completed", "{end:#}");
    assert!(w.project.join("later").exists());
    // The new backend keeps the CLI it re-adopted alive and idle for a follow-up, and a cancel
    // closes it.
    assert_eq!(
        end["process"]["pid"].as_i64(),
        Some(i64::from(pid)),
        "{end:#}"
    );
    assert!(end["live"]["until_ms"].is_u64(), "{end:#}");
    assert!(common::alive(pid));
    b2.req("cancel", w.id_args(id)).await;
    common::wait_gone(&[pid]).await;
    // Nobody denied anything on the user's behalf.
    assert!(echoes(&end)
        .iter()
        .all(|(b, k)| b == "allow" && k["by"] == "user"));
    assert!(!tool_results(&end)
        .iter()
        .any(|r| r.contains("stream closed")));
    b2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_an_unsaved_file_always_asks() {
    let w = world("unsaved");
    let b = w.backend().await;
    let dirty = w.project.join("dirty.txt");
    std::fs::write(&dirty, "mine\n").unwrap();
    b.req(
        "unsaved",
        map(vec![(
            "files",
            Value::Array(vec![s(&dirty.to_string_lossy())]),
        )]),
    )
    .await;
    // A rule that would allow any Write, in acceptEdits: neither may write over unsaved work.
    b.req(
        "add_rule",
        map(vec![("cwd", s(&w.cwd())), ("rule", s("Write"))]),
    )
    .await;
    let steps = json!([
        {"name": "Write", "input": {"file_path": "clean.txt", "content": "new\n"}},
        {"name": "Write", "input": {"file_path": dirty.to_string_lossy(), "content": "theirs\n"}}
    ]);
    let id = b.start(w.start_with(&prompt("edits", steps), vec![])).await;
    b.req("attach", w.attach_args(id, 1)).await;
    let p = waiting(&w, id, 1).await;
    assert_eq!(p[0]["unsaved"], "dirty.txt");
    assert!(p[0].get("rule").is_none(), "{:#}", p[0]);
    w.fake
        .until("the warning in the buffer", |n| {
            n.lines(1)
                .iter()
                .any(|l| l == "  ⚠ you have unsaved changes in dirty.txt")
        })
        .await;
    // The request shows what would change, against the file on disk.
    let lines = w.fake.lines(1);
    assert!(
        lines.iter().any(|l| l == "  -mine") && lines.iter().any(|l| l == "  +theirs"),
        "{lines:#?}"
    );
    b.req("deny", args(&w, id, vec![])).await;
    let (_, end) = w.fake.wait_end(id).await;
    assert_eq!(std::fs::read_to_string(&dirty).unwrap(), "mine\n");
    assert_eq!(
        std::fs::read_to_string(w.project.join("clean.txt")).unwrap(),
        "new\n"
    );
    // The clean file needed nobody (acceptEdits, the default mode); the hook said so first.
    assert_eq!(w.fake.count("permission", id), 1);
    let hooks: Vec<Json> = transcript_lines(&end)
        .into_iter()
        .filter(|v| v["claude_tasks"]["by"] == "hook")
        .collect();
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[1]["claude_tasks"]["unsaved"], "dirty.txt");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdin_fifo_is_private_and_a_tampered_one_is_refused() {
    let w = world("fifo");
    let b = w.backend().await;
    // Each follow-up opens the FIFO anew (a live CLI's would be open already).
    b.configure(vec![("keep_alive_ms", Value::from(0))]).await;
    let id = b
        .start(w.start_with(&prompt("check", json!([bash("touch x")])), vec![]))
        .await;
    let rec = waiting(&w, id, 1).await;
    let _ = rec;
    let dir: PathBuf = transcript_of(&w.fake.last("started", id))
        .parent()
        .unwrap()
        .to_path_buf();
    let fifo = dir.join("stdin.fifo");
    let meta = std::fs::symlink_metadata(&fifo).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    assert_eq!(
        std::fs::metadata(dir.join("task.json")).unwrap().mode() & 0o777,
        0o600
    );
    b.req("allow", args(&w, id, vec![])).await;
    assert_eq!(w.fake.wait_end(id).await.0, "completed");

    // Widened by someone: the follow-up refuses it rather than talk through it.
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o666)).unwrap();
    b.req("resume", w.resume_args(id, "again")).await;
    let (kind, end) = w.fake.wait_end(id).await;
    let end = if end["runs"].as_array().unwrap().len() < 2 {
        w.fake
            .until("run 2's end", |n| {
                n.find(&["failed"], id)
                    .is_some_and(|(_, t)| t["runs"].as_array().unwrap().len() == 2)
            })
            .await;
        w.fake.last("failed", id)
    } else {
        assert_eq!(kind, "failed");
        end
    };
    let err = end["error"].as_str().unwrap();
    assert!(
        err.contains("refusing") && err.contains("its mode is 0666, not 0600"),
        "{err}"
    );
    // Another file in its place (a symlink to somewhere else) is refused too, and left alone.
    std::fs::remove_file(&fifo).unwrap();
    std::os::unix::fs::symlink("/dev/null", &fifo).unwrap();
    b.req("resume", w.resume_args(id, "once more")).await;
    w.fake
        .until("run 3's end", |n| {
            n.find(&["failed"], id)
                .is_some_and(|(_, t)| t["runs"].as_array().unwrap().len() == 3)
        })
        .await;
    let err = w.fake.last("failed", id)["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("it is not a FIFO"), "{err}");
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_symlink());
    // Another owner.
    std::fs::remove_file(&fifo).unwrap();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    if nix::unistd::chown(
        &fifo,
        Some(nix::unistd::Uid::from_raw(common::NOBODY)),
        None,
    )
    .is_ok()
    {
        b.req("resume", w.resume_args(id, "last")).await;
        w.fake
            .until("run 4's end", |n| {
                n.find(&["failed"], id)
                    .is_some_and(|(_, t)| t["runs"].as_array().unwrap().len() == 4)
            })
            .await;
        let err = w.fake.last("failed", id)["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(err.contains("it belongs to uid 65534"), "{err}");
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_get_clear_errors_and_nothing_hangs() {
    let w = world("bad");
    let b = w.backend().await;
    let q = json!({"name": "AskUserQuestion", "input": {"questions": [{"question": "Color?",
        "header": "Color", "multiSelect": false,
        "options": [{"label": "Red", "description": "r"}, {"label": "Blue", "description": "b"}]}]}});
    let id = b
        .start(w.start_with(&prompt("ask", json!([bash("touch z"), q])), vec![]))
        .await;
    b.req("attach", w.attach_args(id, 1)).await;
    let p = waiting(&w, id, 1).await;
    let short = &p[0]["request_id"].as_str().unwrap()[..8];
    for (method, extra, want) in [
        (
            "allow",
            vec![("request_id", s("nope"))],
            format!("allow: task #{id} has no pending request 'nope' (pending: {short})"),
        ),
        (
            "answer",
            vec![("answers", map(vec![("Color?", s("Red"))]))],
            format!("answer: request {short} of task #{id} is a Bash request, not a question"),
        ),
        (
            "allow",
            vec![("input", s("rm -rf /"))],
            "allow: 'input' must be a map, got string".to_string(),
        ),
        (
            "answer",
            vec![],
            "answer: 'answers' is required".to_string(),
        ),
        (
            "allow",
            vec![("scope", s("world"))],
            "allow: 'scope' must be one of 'task', 'project', got 'world'".to_string(),
        ),
        (
            "allow",
            vec![("always", s("Bash("))],
            "no closing ')'".to_string(),
        ),
    ] {
        let err = b.err(method, args(&w, id, extra)).await;
        assert!(err.contains(&want), "{method}: {err:?}, want {want:?}");
    }
    let err = b.err("allow", args(&w, 99, vec![])).await;
    assert!(err.contains("no task #99"), "{err}");
    b.req("allow", args(&w, id, vec![])).await;
    // The question: answered with a label.
    w.fake
        .until("the question", |n| {
            n.find(&["permission", "updated"], id)
                .is_some_and(|(_, t)| t["pending"][0]["tool_name"] == "AskUserQuestion")
        })
        .await;
    let p = w.fake.find(&["permission", "updated"], id).unwrap().1["pending"].clone();
    assert_eq!(p[0]["tool_name"], "AskUserQuestion");
    assert_eq!(p[0]["title"], "AskUserQuestion: Color?");
    assert!(p[0].get("rule").is_none());
    let err = b.err("allow", args(&w, id, vec![])).await;
    assert!(err.contains("is a question: answer it"), "{err}");
    b.req(
        "answer",
        args(
            &w,
            id,
            vec![(
                "answers",
                map(vec![("Color?", Value::Array(vec![s("Blue")]))]),
            )],
        ),
    )
    .await;
    let (_, end) = w.fake.wait_end(id).await;
    assert!(tool_results(&end)
        .iter()
        .any(|r| r.contains(r#""Color?"="Blue""#)));
    let want = w.buffer_shows(1, &end).await;
    assert!(
        want.iter().any(|l| l == "  ✓ answered: Color = Blue"),
        "{want:#?}"
    );
    let err = b.err("deny", args(&w, id, vec![])).await;
    assert!(
        err.contains("is completed; there is nothing to answer"),
        "{err}"
    );

    // A control line the backend cannot make sense of: shown or skipped, never a hang.
    let raw = w.root.join("bad-control.jsonl");
    std::fs::write(
        &raw,
        concat!(
            r#"{"type":"control_request","request_id":7,"request":"can_use_tool"}"#, "\n",
            r#"{"type":"control_request","request":{"subtype":"can_use_tool","input":"x"}}"#, "\n",
            r#"{"type":"control_response","response":null}"#, "\n",
            r#"{"type":"control_cancel_request"}"#, "\n",
            r#"{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"ok","total_cost_usd":0}"#, "\n",
        ),
    )
    .unwrap();
    let id2 = b
        .start(map(vec![
            ("prompt", s("raw")),
            ("cwd", s(&w.cwd())),
            (
                "cmd",
                Value::Array(vec![s(FAKE), s(&format!("--fake-raw={}", raw.display()))]),
            ),
        ]))
        .await;
    let (kind, end) = w.fake.wait_end(id2).await;
    assert_eq!(kind, "completed", "{end:#}");
    let _ = rendered(&end);
    b.alive_and_answering().await;
    b.stop().await;
}
