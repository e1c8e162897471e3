//! Text streamed in deltas: shown as it grows, replaced by the authoritative assistant line,
//! dropped by a new message or a retry, the same however the deltas are split.

use super::*;
use crate::render::doc::LineHasher;
use crate::stream_json::parse_bytes;

#[test]
fn authoritative_text_replaces_the_streamed_one() {
    let mut r = Renderer::new();
    feed(&mut r, MESSAGE_START);
    feed(&mut r, &delta(0, "Helo wrld\nsecond"));
    assert_eq!(r.take_update(), upd(0, &["Helo wrld", "second"]));
    // The streamed text was wrong from its first (already handed out) line: all re-sent.
    feed(&mut r, &assistant_text("Hello world\nsecond line"));
    assert_eq!(r.take_update(), upd(0, &["Hello world", "second line"]));
    assert_eq!(r.take_update(), None);
    assert_eq!(r.line_count(), 2);
}

#[test]
fn take_update_sends_only_what_changed() {
    let mut r = Renderer::new();
    assert_eq!(r.take_update(), None);
    feed(&mut r, &assistant_text("one"));
    assert_eq!(r.take_update(), upd(0, &["one"]));
    feed(&mut r, MESSAGE_START);
    assert_eq!(r.take_update(), None);
    feed(&mut r, &delta(0, "a\nb"));
    assert_eq!(r.pending_bytes(), 2);
    assert_eq!(r.take_update(), upd(1, &["", "a", "b"]));
    feed(&mut r, &delta(0, "c"));
    // Only the growing line is re-sent.
    assert_eq!(r.take_update(), upd(3, &["bc"]));
    feed(&mut r, &delta(0, "\nd\n"));
    assert_eq!(r.take_update(), upd(3, &["bc", "d"]));
    assert_eq!(r.take_update(), None);
    // The authoritative text differs from a finished line: the block is re-sent whole
    // (only a hash of finished lines is kept, so the first difference is not known).
    feed(&mut r, &assistant_text("a\nbc\nD"));
    assert_eq!(r.take_update(), upd(2, &["a", "bc", "D"]));
    assert_eq!(r.line_count(), 5);
    assert_eq!(r.pending_bytes(), 0);
    // The same text again (already confirmed, not streamed) is a new block.
    feed(&mut r, &assistant_text("x"));
    assert_eq!(r.take_update(), upd(5, &["", "x"]));
}

#[test]
fn message_start_drops_unconfirmed_text_even_when_taken() {
    let mut r = Renderer::new();
    feed(&mut r, &assistant_text("intro"));
    feed(&mut r, MESSAGE_START);
    feed(&mut r, &delta(0, "partial\nlin"));
    assert_eq!(r.take_update(), upd(0, &["intro", "", "partial", "lin"]));
    // The stream broke and the CLI retried with a new stream.
    feed(&mut r, MESSAGE_START);
    assert_eq!(r.take_update(), upd(1, &[]));
    assert_eq!(r.line_count(), 1);
    feed(&mut r, &delta(0, "whole answer"));
    feed(&mut r, &assistant_text("whole answer"));
    assert_eq!(r.take_update(), upd(1, &["", "whole answer"]));
}

#[test]
fn retry_drops_unconfirmed_text() {
    let mut r = Renderer::new();
    feed(&mut r, MESSAGE_START);
    feed(&mut r, &delta(0, "half an ans"));
    assert_eq!(r.take_update(), upd(0, &["half an ans"]));
    feed(
        &mut r,
        r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":600,"error_status":529,"error":"overloaded"}"#,
    );
    feed(&mut r, &assistant_text("half an answer, whole"));
    assert_eq!(
        r.take_update(),
        upd(
            0,
            &[
                "↻ API error 529, retry 1/10 in 0.6s",
                "",
                "half an answer, whole"
            ]
        )
    );
}

#[test]
fn empty_assistant_text_removes_the_streamed_block() {
    let mut r = Renderer::new();
    feed(&mut r, &assistant_text("before"));
    feed(&mut r, &delta(0, "  \n"));
    assert_eq!(r.take_update(), upd(0, &["before", "", "  "]));
    feed(&mut r, &assistant_text("\n \n"));
    assert_eq!(r.take_update(), upd(1, &[]));
    feed(&mut r, &assistant_text(""));
    assert_eq!(r.take_update(), None);
    // Leading newlines of a streamed block are not shown.
    feed(&mut r, &delta(1, "\n\n"));
    assert_eq!(r.take_update(), None);
    feed(&mut r, &delta(1, "\nx"));
    assert_eq!(r.take_update(), upd(1, &["", "x"]));
}

#[test]
fn delta_splits_do_not_matter() {
    // Re-split every text delta of the streamed fixtures at pseudo-random char boundaries.
    let mut seed: u64 = 42;
    let mut next = move |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % n.max(1)
    };
    for fixture in [
        fixture!("hello-stream-json-partial"),
        fixture!("bash-stream-json-partial"),
        fixture!("thinking-stream-json-partial"),
        fixture!("write-stream-json-partial-acceptEdits"),
        fixture!("signal-slow-INT-pid"),
    ] {
        let want = render(fixture);
        for _ in 0..20 {
            let mut text = String::new();
            let mut out = Vec::new();
            let flush =
                |text: &mut String, out: &mut Vec<String>, next: &mut dyn FnMut(usize) -> usize| {
                    let chars: Vec<char> = text.chars().collect();
                    let mut i = 0;
                    while i < chars.len() {
                        let n = 1 + next(chars.len() - i);
                        out.push(delta(0, &chars[i..i + n].iter().collect::<String>()));
                        i += n;
                    }
                    text.clear();
                };
            for l in fixture.lines() {
                match parse_bytes(l.as_bytes()) {
                    Msg::Stream(stream_json::Stream {
                        event: Event::TextDelta { index: 0, text: t },
                        ..
                    }) => text.push_str(&t),
                    _ => {
                        flush(&mut text, &mut out, &mut next);
                        out.push(l.to_string());
                    }
                }
            }
            // Take updates at random points too.
            let mut r = Renderer::new();
            let mut buf = Vec::new();
            for l in &out {
                feed(&mut r, l);
                if next(3) == 0 {
                    if let Some(u) = r.take_update() {
                        apply(&mut buf, u);
                    }
                }
            }
            if let Some(u) = r.take_update() {
                apply(&mut buf, u);
            }
            assert_eq!(buf, want);
        }
    }
}

#[test]
fn line_hash_is_the_same_whatever_the_pieces() {
    let mut rng = crate::testutil::Rng(7);
    for _ in 0..5_000 {
        let n = rng.below(70);
        let line = rng.bytes(n);
        let whole = {
            let mut x = LineHasher::new(HASH_START);
            x.write(&line);
            x.finish()
        };
        let mut x = LineHasher::new(HASH_START);
        let mut rest = &line[..];
        while !rest.is_empty() {
            let (a, b) = rest.split_at(rng.below(rest.len() + 1));
            x.write(a);
            rest = b;
        }
        assert_eq!(x.finish(), whole);
    }
    let h = |s: &str| hash_line(HASH_START, s);
    assert_ne!(h("ab"), h("ab\0"));
    assert_ne!(h(""), h("\0"));
    assert_ne!(h("12345678"), h("12345678\0\0\0\0\0\0\0\0"));
    // Chained: the same lines in another order hash differently.
    assert_ne!(hash_line(h("a"), "b"), hash_line(h("b"), "a"));
}
