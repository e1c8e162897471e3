//! The text-delta fast path takes exactly the lines of its shape, and reads them as the general
//! parser does: the CLIs' lines, generated ones, cut and mutated ones.

use super::*;
use crate::stream_json::delta::DELTA_HEAD;
use crate::testutil::delta_line;

#[test]
fn text_delta_fast_path_reads_the_cli_line() {
    assert_eq!(
        text_delta_line(SAMPLE_DELTA.as_bytes()),
        Some(Stream {
            parent_tool_use_id: None,
            event: Event::TextDelta {
                index: 0,
                text: "Runnin".into()
            }
        })
    );
    let b = delta_line(
        "3",
        r"a\n\u00e9\ud83d\ude00",
        r#","parent_tool_use_id":"toolu_1"}"#,
    );
    assert_eq!(
        text_delta_line(b.as_bytes()),
        Some(Stream {
            parent_tool_use_id: Some("toolu_1".into()),
            event: Event::TextDelta {
                index: 3,
                text: "a\né😀".into()
            }
        })
    );
}

#[test]
fn text_delta_fast_path_matches_the_fixtures() {
    let (mut lines, mut fast) = (0, 0);
    for (_, data) in crate::testutil::fixtures() {
        for l in data.split(|&c| c == b'\n') {
            lines += 1;
            let took = same_as_general(l);
            // Every text delta the CLI wrote has the shape the fast path expects.
            let is_text_delta =
                l.starts_with(DELTA_HEAD) && l.windows(12).any(|w| w == br#""text_delta""#);
            assert_eq!(took, is_text_delta, "{}", String::from_utf8_lossy(l));
            fast += usize::from(took);
        }
    }
    assert!(lines > 100 && fast > 10, "{lines} lines, {fast} fast");
}

#[test]
fn text_delta_fast_path_matches_generated_lines() {
    // (text as written in the JSON, whether the fast path takes it)
    let texts = [
        ("", true),
        ("Runnin", true),
        ("a long enough text to cross several eight-byte words", true),
        (r"\n", true),
        (r"\t\b\f\r", true),
        (r#"\""#, true),
        (r"\\", true),
        (r"\/", true),
        (r"x\\\\\\y", true),
        (r"\u00e9", true),
        (r"\u00E9x", true),
        (r"\u0000", true),
        (r"\ud83d\ude00", true),
        (r"\uD83D\uDE00tail", true),
        ("é漢😀 and more multibyte ✓", true),
        (r"é\u00e9é", true),
        (r"\ud800", false),
        (r"\ud800x", false),
        (r"\ud800\u0041", false),
        (r"\ud800\ud800", false),
        (r"\udc00", false),
        (r"\x", false),
        (r"\u12", false),
        (r"\u12g4", false),
        (r"\U00e9", false),
        ("\u{1}", false),
        ("tab\there", false),
        ("\u{7f}", true),
        ("x\u{7f}y and more text to cross a sixteen-byte block", true),
        (r"\u001b[31mred\u001b[0m", true),
        (r"\u0009\u000a\u001f\u007f\u0080", true),
        (r"bell\u0007", true),
    ];
    let indexes = [
        ("0", true),
        ("7", true),
        ("18446744073709551615", true),
        ("18446744073709551616", false),
        ("99999999999999999999999", false),
        ("00", false),
        ("01", false),
        ("-1", false),
        ("-0", false),
        ("1.0", false),
        ("1e2", false),
        (" 1", false),
        ("\"1\"", false),
        ("null", false),
    ];
    let tails = [
        ("}", true),
        (
            r#","session_id":"s","parent_tool_use_id":null,"uuid":"u"}"#,
            true,
        ),
        (r#","parent_tool_use_id":"toolu_1"}"#, true),
        (
            r#","session_id":"s","parent_tool_use_id":null,"uuid":"u","api_message_id":"msg_1"}"#,
            true,
        ),
        (
            r#","uuid":"u","parent_tool_use_id":"p","session_id":"s"}"#,
            true,
        ),
        (r#","parent_tool_use_id":"é"}"#, true),
        (r#","extra":"x","extra":null}"#, true),
        (r#","":""}"#, true),
        (r#","extra":1}"#, false),
        (r#","extra":{}}"#, false),
        (
            r#","parent_tool_use_id":null,"parent_tool_use_id":"p"}"#,
            false,
        ),
        (r#","parent_tool_use_id":"a\"b"}"#, false),
        (r#","parent_tool_use_id":"\u0070"}"#, false),
        (r#","parent\u005ftool_use_id":"p"}"#, false),
        (r#","parent_tool_use_id":1}"#, false),
        (r#","parent_tool_use_id":true}"#, false),
        (r#","parent_tool_use_id":nul}"#, false),
        (r#","type":"stream_event"}"#, false),
        (r#","event":null}"#, false),
        (r#","type":"assistant"}"#, false),
        (r#", "uuid":"u"}"#, false),
        (r#","uuid" :"u"}"#, false),
        (r#","uuid":"u",}"#, false),
        ("} ", false),
        ("}\r", false),
        ("}x", false),
        ("}}", false),
        (",", false),
        ("", false),
    ];
    for (text, text_ok) in texts {
        for (index, index_ok) in indexes {
            for (tail, tail_ok) in tails {
                let b = delta_line(index, text, tail);
                let took = same_as_general(b.as_bytes());
                assert_eq!(took, text_ok && index_ok && tail_ok, "{b}");
            }
        }
    }
    // Random texts from pieces that meet at every boundary: escapes next to runs, surrogate
    // halves in any order, stray quotes, backslashes and control characters.
    let pieces = [
        "a",
        "é",
        "漢",
        "😀",
        " ",
        r"\n",
        r#"\""#,
        r"\\",
        r"\/",
        r"\b",
        r"\u00e9",
        r"\u0000",
        r"\uD83D",
        r"\uDE00",
        r"\ud83d\ude00",
        r"\x",
        "\\",
        "\"",
        "\u{1}",
        "\t",
        "}",
    ];
    let mut seed: u64 = 0x1234_5678_9abc_def1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as usize
    };
    let mut fast = 0;
    for _ in 0..5_000 {
        let text: String = (0..next() % 12)
            .map(|_| pieces[next() % pieces.len()])
            .collect();
        let tail = tails[next() % 5].0;
        fast += usize::from(same_as_general(delta_line("1", &text, tail).as_bytes()));
    }
    assert!(fast > 500, "{fast}");
    // Other shapes all go to the general path.
    for b in [
        r#"{"event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}},"type":"stream_event"}"#,
        r#"{"type": "stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"},"index":0}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"text":"x","type":"text_delta"}}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","text":"y"}}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"},"index":1}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"x"}}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}},"parent_tool_use_id":"p","event":{}}"#,
    ] {
        assert!(!same_as_general(b.as_bytes()), "{b}");
    }
    // Invalid UTF-8 anywhere: the general path reads it lossily.
    for (text, tail) in [
        (&b"a\xc3"[..], &b"}"[..]),
        (b"\xff", b"}"),
        (b"\xed\xa0\x80", b"}"),
        (b"ok", b",\"uuid\":\"\xff\"}"),
        (b"ok", b",\"parent_tool_use_id\":\"\xc3\"}"),
        (b"\\n\xc3", b"}"),
    ] {
        let mut b = delta_line("0", "", "").into_bytes();
        b.truncate(b.len() - 3);
        b.extend_from_slice(text);
        b.extend_from_slice(b"\"}}");
        b.extend_from_slice(tail);
        assert!(!same_as_general(&b), "{}", String::from_utf8_lossy(&b));
    }
}

#[test]
fn text_delta_fast_path_matches_cut_and_mutated_lines() {
    let samples = [
        SAMPLE_DELTA.to_string(),
        SAMPLE_DELTA_332.to_string(),
        delta_line(
            "12",
            r#"a\"\\\/\n\u00e9\ud83d\ude00é"#,
            r#","parent_tool_use_id":"toolu_01","uuid":"u"}"#,
        ),
    ];
    for s in &samples {
        assert!(same_as_general(s.as_bytes()));
        for cut in 0..s.len() {
            assert!(!same_as_general(&s.as_bytes()[..cut]));
        }
    }
    let mut rng = crate::testutil::Rng(0x2545_f491_4f6c_dd1d);
    let mut next = move || rng.next_u64();
    // Bytes that matter to the grammar are far likelier than random ones.
    let interesting = b"\"\\{}:,0123456789unlx \x00\x1f\x7f\x80\xc3\xa9\xed";
    let mut fast = 0;
    for _ in 0..20_000 {
        let mut b = samples[(next() % 3) as usize].as_bytes().to_vec();
        for _ in 0..next() % 3 + 1 {
            let pos = (next() as usize) % (b.len() + 1);
            let byte = if next() % 4 == 0 {
                next() as u8
            } else {
                interesting[(next() as usize) % interesting.len()]
            };
            match next() % 3 {
                0 if pos < b.len() => b[pos] = byte,
                1 if pos < b.len() => {
                    b.remove(pos);
                }
                _ => b.insert(pos, byte),
            }
        }
        fast += usize::from(same_as_general(&b));
    }
    // Some mutations keep the shape (inside the text or the ids), so both sides get tested.
    assert!(fast > 1000, "{fast}");
}
