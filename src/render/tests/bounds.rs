//! Bounds: memory stays bounded on huge streams and growing lines, and a line too long to show
//! is cut, with its size.

use super::*;
use crate::stream_json::parse_bytes;
use crate::text::MAX_SHOWN_LINE;

#[test]
fn memory_stays_bounded_on_a_huge_stream() {
    let mut r = Renderer::new();
    let mut lines_seen = 0usize;
    let mut max_retained = 0usize;
    let mut take = |r: &mut Renderer, lines_seen: &mut usize| {
        if let Some(u) = r.take_update() {
            *lines_seen = u.start + u.lines.len();
        }
        max_retained = max_retained.max(r.retained_bytes());
    };
    // One text block of 1M lines streamed in deltas of 10 lines, then confirmed.
    feed(&mut r, MESSAGE_START);
    let mut full = String::new();
    let mut chunk = String::new();
    for i in 0..1_000_000u32 {
        chunk.push_str(&format!("line {i}\n"));
        if i % 10 == 9 {
            r.feed(&Msg::Stream(stream_json::Stream {
                parent_tool_use_id: None,
                event: Event::TextDelta {
                    index: 0,
                    text: chunk.clone(),
                },
            }));
            full.push_str(&chunk);
            chunk.clear();
            if i % 1000 == 999 {
                take(&mut r, &mut lines_seen);
            }
        }
    }
    r.feed(&Msg::Assistant(stream_json::Assistant {
        content: vec![Block::Text(full)],
        ..Default::default()
    }));
    let u = r.take_update();
    // Identical to what was streamed: nothing to re-send.
    assert_eq!(u, None);
    assert_eq!(r.line_count(), 1_000_000);
    assert_eq!(lines_seen, 1_000_000);
    // Many small confirmed messages, each streamed first.
    for i in 0..100_000u32 {
        r.feed(&parse_bytes(MESSAGE_START.as_bytes()));
        r.feed(&parse_bytes(delta(0, &format!("msg {i}")).as_bytes()));
        r.feed(&parse_bytes(assistant_text(&format!("msg {i}")).as_bytes()));
        if i % 100 == 99 {
            take(&mut r, &mut lines_seen);
        }
    }
    take(&mut r, &mut lines_seen);
    assert_eq!(r.line_count(), 1_000_000 + 200_000);
    assert_eq!(lines_seen, r.line_count());
    assert_eq!(r.retained_bytes(), 0);
    assert!(max_retained < 64 * 1024, "retained {max_retained} bytes");
}

#[test]
fn flood_fixture_keeps_its_20000_lines() {
    // Every version's flood (the repository's 2.1.332 one is compressed; the shared 2.1.197
    // one where it is checked out), each rendered in bounded memory to all its lines.
    let mut seen = Vec::new();
    for root in fixture_versions() {
        let Some(bytes) = read_stdout(&root.join("flood-stream-json-partial")) else {
            continue;
        };
        let mut r = Renderer::new();
        let mut n = 0;
        for l in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            r.feed_line(&line(l));
            if let Some(u) = r.take_update() {
                n = u.start + u.lines.len();
            }
            assert!(r.retained_bytes() < 64 * 1024, "{}", root.display());
        }
        // Init line, blank, then every line of the answer (2.1.197: 20000, 2.1.332: 31250),
        // as its result line repeats it.
        let answer = bytes
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == "result")
            .find_map(|v| v["result"].as_str().map(|s| s.lines().count()))
            .expect("the flood's result");
        assert!(answer >= 20_000, "{}: {answer}", root.display());
        assert_eq!(n, 2 + answer, "{}", root.display());
        seen.push(root);
    }
    assert!(
        seen.iter()
            .any(|r| r.ends_with("tests/fixtures/claude-cli-2.1.332")),
        "2.1.332's flood not rendered: {seen:?}"
    );
}

fn all_lines(r: &mut Renderer) -> Vec<String> {
    let mut buf = Vec::new();
    if let Some(u) = r.take_update() {
        apply(&mut buf, u);
    }
    buf
}

#[test]
fn a_shortened_assistant_line_leaves_the_streamed_text_standing() {
    let mut r = Renderer::new();
    feed(&mut r, MESSAGE_START);
    feed(&mut r, &delta(0, "first line\nsecond "));
    // The growing line was shown, then the shortened confirmation comes.
    assert_eq!(all_lines(&mut r), vec!["first line", "second "]);
    feed(&mut r, &delta(0, "half"));
    let cut = assistant_text("first line\nsec… (99999999 bytes)");
    r.feed_shortened(&stream_json::parse_bytes(cut.as_bytes()));
    let mut buf = vec!["first line".to_string(), "second ".to_string()];
    while let Some(u) = r.take_update() {
        apply(&mut buf, u);
    }
    assert_eq!(buf, vec!["first line", "second half"]);
    // What follows goes on as usual.
    feed(&mut r, &delta(1, "next block"));
    feed(&mut r, &assistant_text("next block"));
    if let Some(u) = r.take_update() {
        apply(&mut buf, u);
    }
    assert_eq!(buf.last().map(String::as_str), Some("next block"));
}

#[test]
fn a_shortened_assistant_line_without_streaming_shows_the_cut_text() {
    let mut r = Renderer::new();
    let cut = assistant_text("only line one\nline tw… (5000000 bytes)");
    r.feed_shortened(&stream_json::parse_bytes(cut.as_bytes()));
    assert_eq!(
        all_lines(&mut r),
        vec!["only line one", "line tw… (5000000 bytes)"]
    );
}

#[test]
fn a_long_streamed_line_is_shown_cut_and_still_confirmed_whole() {
    let long: String = "é".repeat(MAX_SHOWN_LINE) + "z\r";
    let text = format!("{long}\nshort\n");
    let mut r = Renderer::new();
    feed(&mut r, MESSAGE_START);
    let mut buf = Vec::new();
    // Split inside characters' byte ranges is impossible in UTF-8 strings; split anywhere
    // else, and look at the growing line on the way.
    let chars: Vec<char> = text.chars().collect();
    for piece in chars.chunks(997) {
        let piece: String = piece.iter().collect();
        feed(&mut r, &delta(0, &piece));
        if let Some(u) = r.take_update() {
            apply(&mut buf, u);
        }
        assert!(buf.iter().all(|l| l.len() <= MAX_SHOWN_LINE + 32));
    }
    let body = long.trim_end_matches('\r');
    let want_first = format!(
        "{}… ({} bytes)",
        &body[..body.floor_char_boundary(MAX_SHOWN_LINE)],
        body.len()
    );
    assert_eq!(buf, vec![want_first.clone(), "short".to_string()]);
    // The authoritative text matches what was streamed: nothing changes.
    feed(&mut r, &assistant_text(&text));
    if let Some(u) = r.take_update() {
        apply(&mut buf, u);
    }
    assert_eq!(buf, vec![want_first.clone(), "short".to_string()]);
    // The same text arriving without streaming is cut the same way.
    let mut once = Renderer::new();
    feed(&mut once, &assistant_text(&text));
    assert_eq!(all_lines(&mut once), vec![want_first, "short".to_string()]);
}

#[test]
fn a_growing_line_keeps_bounded_memory_and_shows_its_size() {
    let mut r = Renderer::new();
    feed(&mut r, MESSAGE_START);
    let piece = "x".repeat(10_000);
    for _ in 0..100 {
        feed(&mut r, &delta(0, &piece));
    }
    assert!(
        r.retained_bytes() < 4 * MAX_SHOWN_LINE,
        "{}",
        r.retained_bytes()
    );
    let lines = all_lines(&mut r);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].ends_with("… (1000000 bytes)"),
        "{}",
        &lines[0][lines[0].len() - 40..]
    );
    // A different authoritative text replaces it.
    feed(&mut r, &assistant_text("other"));
    let mut buf = lines;
    if let Some(u) = r.take_update() {
        apply(&mut buf, u);
    }
    assert_eq!(buf, vec!["other"]);
}
