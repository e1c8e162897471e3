//! The output matrix: huge answers and lines, a slow editor, a flood, hostile bytes.

use super::*;

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
        cut.len() <= claude_tasks::text::MAX_SHOWN_LINE,
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
