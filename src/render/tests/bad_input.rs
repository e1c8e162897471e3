//! Bad input: lines that are not JSON or not UTF-8, control and escape characters, sanitized
//! the same whichever path a line takes.

use super::*;
use std::borrow::Cow;

#[test]
fn bad_input_lines() {
    let mut r = Renderer::new();
    feed(&mut r, "plain text from somewhere");
    r.feed_line(&line(
        b"bad \xff utf8 \x00 nul \x1b[1;32mgreen\x1b[0m \x1b]0;title\x07end",
    ));
    feed(&mut r, "   ");
    r.feed_line(&Line {
        bytes: br#"{"type":"assistant","message":{"content":[{"type":"text","text":"huge"#.to_vec(),
        total_len: 9_000_000,
        offset: 0,
    });
    feed(
        &mut r,
        &assistant_text("tab\there\u{7}bell\nprogress 10%\rprogress 100%\r\n"),
    );
    feed(&mut r, r#"{"type":"brand_new_kind","x":1}"#);
    feed(
        &mut r,
        r#"{"type":"system","subtype":"status","status":"requesting"}"#,
    );
    let mut buf = Vec::new();
    apply(&mut buf, r.take_update().unwrap());
    assert_eq!(
        buf,
        [
            "plain text from somewhere",
            "bad \u{fffd} utf8 ␀ nul green end",
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"huge… (9000000 bytes)"#,
            "",
            "tab\there␇bell",
            "progress 100%",
        ]
    );
}

#[test]
fn sanitize_lines() {
    assert!(matches!(sanitize("plain\ttext é"), Cow::Borrowed(_)));
    assert_eq!(sanitize("a\nb"), "a␊b");
    assert_eq!(sanitize("x\u{7f}\u{1b}"), "x␡");
    assert_eq!(
        sanitize("\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\"),
        "link"
    );
    assert_eq!(sanitize("\u{1b}(Bok"), "ok");
    assert_eq!(sanitize("a\r\r"), "a");
}

/// Deltas rendered in place (`feed_text_delta`, which skips sanitizing a text it is told is
/// clean) give exactly what parsed ones give, control characters or not, whole lines or
/// lines grown over several deltas.
#[test]
fn in_place_deltas_with_control_characters_render_like_parsed_ones() {
    let texts = [
        "plain line\nand a tab\there\n",
        "\u{1b}[31mred\u{1b}[0m\n",
        "half a li",
        "ne\u{7}, then\r\n",
        "progress 10%\rprogress 100%\n",
        "del\u{7f}\n",
        "clean tail ",
        "then dirty\u{8}\n",
        "dirty tail\u{c} ",
        "then clean\n",
        "a growing line shown before its end",
    ];
    let lines: Vec<String> = texts
        .iter()
        .map(|t| {
            let quoted = serde_json::to_string(t).expect("a string");
            let tail = r#","session_id":"s","parent_tool_use_id":null,"uuid":"u"}"#;
            crate::testutil::delta_line("0", &quoted[1..quoted.len() - 1], tail)
        })
        .collect();
    let (mut in_place, mut parsed) = (Renderer::new(), Renderer::new());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for l in &lines {
        let d = stream_json::text_delta(l.as_bytes()).expect("a text delta");
        in_place.feed_text_delta(&d);
        parsed.feed_line(&line(l.as_bytes()));
        // Each update too: the growing line is shown as it grows.
        if let Some(u) = in_place.take_update() {
            apply(&mut a, u);
        }
        if let Some(u) = parsed.take_update() {
            apply(&mut b, u);
        }
        assert_eq!(a, b, "after {l}");
        assert!(
            a.iter()
                .all(|l| crate::transcript::scan::is_clean(l.as_bytes())),
            "{a:?}"
        );
    }
    assert!(a.iter().any(|l| l == "red"), "{a:?}");
    assert!(a.iter().any(|l| l == "progress 100%"), "{a:?}");
    assert!(a.iter().any(|l| l == "del␡"), "{a:?}");
}
