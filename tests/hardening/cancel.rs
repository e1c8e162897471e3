//! Cancel at any moment, and every way the CLI can end, reported exactly.

use super::*;

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
            // A run ends at its result (its CLI may stay, idle): a death right after it is the
            // run's exit only when the backend sees it before the result line. Either way the
            // result decides the outcome, and a signal recorded is the right one.
            if *status == "completed" {
                assert!(
                    run["signal"].is_null() || run["signal"] == n,
                    "{args:?}: {run:#}"
                );
                continue;
            }
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
