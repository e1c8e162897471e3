//! Lines that are not what they should be: unknown kinds, bad JSON, invalid UTF-8, lines cut
//! by the framer, random bytes.

use super::*;
use crate::stream_json::parse::TRUNCATED_PREFIX_CHARS;
use crate::transcript::framing::Line;

#[test]
fn unknown_and_bad_lines() {
    assert_eq!(
        p(r#"{"type":"future_thing","x":1}"#),
        Msg::Other {
            kind: "future_thing".into()
        }
    );
    assert_eq!(p(r#"{"no_type":1}"#), Msg::Other { kind: "".into() });
    assert_eq!(p("not json at all"), Msg::Text("not json at all".into()));
    assert_eq!(p("[1,2]"), Msg::Text("[1,2]".into()));
    assert_eq!(p("42"), Msg::Text("42".into()));
    assert_eq!(p(""), Msg::Text("".into()));
    assert_eq!(
        p(r#"{"type":"assistant","message":{"content":[{"type":"te"#),
        Msg::Text(r#"{"type":"assistant","message":{"content":[{"type":"te"#.into())
    );
    // Deep nesting hits serde_json's recursion limit: an error, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(p(&deep), Msg::Text(_)));
}

#[test]
fn invalid_utf8_is_read_lossily() {
    let mut bytes =
        br#"{"type":"assistant","message":{"content":[{"type":"text","text":"a"#.to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(br#"b"}]}}"#);
    let Msg::Assistant(a) = parse(&line(&bytes)) else {
        panic!("not assistant")
    };
    assert_eq!(a.content, vec![Block::Text("a\u{fffd}\u{fffd}b".into())]);
    assert_eq!(
        parse(&line(b"plain \xff text\x00")),
        Msg::Text("plain \u{fffd} text\0".into())
    );
    // Same in a delta, which goes through the fast path first.
    let mut bytes = br#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""#.to_vec();
    bytes.push(0xc3);
    bytes.extend_from_slice(br#""}}}"#);
    assert_eq!(
        parse(&line(&bytes)),
        Msg::Stream(Stream {
            parent_tool_use_id: None,
            event: Event::TextDelta {
                index: 0,
                text: "\u{fffd}".into()
            }
        })
    );
}

#[test]
fn truncated_lines_keep_a_prefix() {
    let mut bytes = vec![b'x'; 1000];
    bytes[0] = b'{';
    let l = Line {
        bytes: bytes.clone(),
        total_len: 9_000_000,
        offset: 5,
    };
    let Msg::Truncated { prefix, total_len } = parse(&l) else {
        panic!("not truncated")
    };
    assert_eq!(total_len, 9_000_000);
    assert_eq!(prefix.chars().count(), TRUNCATED_PREFIX_CHARS);
    assert!(prefix.starts_with("{xxx"));
    // A multi-byte char cut by the framer becomes a replacement char, never a panic.
    let l = Line {
        bytes: "é".repeat(10).into_bytes()[..7].to_vec(),
        total_len: 100,
        offset: 0,
    };
    let Msg::Truncated { prefix, .. } = parse(&l) else {
        panic!("not truncated")
    };
    assert_eq!(prefix, "ééé\u{fffd}");
}

#[test]
fn never_panics_on_arbitrary_bytes() {
    let mut rng = crate::testutil::Rng(0x9e37_79b9_7f4a_7c15);
    let mut next = move || rng.next_u64();
    let base = br#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}}"#;
    for _ in 0..20_000 {
        let mut b = base.to_vec();
        let edits = next() % 4 + 1;
        for _ in 0..edits {
            let pos = (next() as usize) % b.len();
            match next() % 3 {
                0 => b[pos] = next() as u8,
                1 => {
                    b.remove(pos);
                }
                _ => b.insert(pos, next() as u8),
            }
        }
        let _ = parse(&line(&b));
    }
}
