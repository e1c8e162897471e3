//! `DeltaParser`'s memory of the last line's tail: reused when only a free string changed,
//! never changing a result.

use super::*;
use crate::stream_json::delta::common_prefix;
use crate::testutil::delta_line;

#[test]
fn common_prefix_finds_the_first_difference() {
    let mut rng = crate::testutil::Rng(0x51ed_2701);
    for _ in 0..20_000 {
        let n = rng.below(40);
        let a = rng.bytes(n);
        let mut b = a.clone();
        b.truncate(rng.below(a.len() + 1));
        if !b.is_empty() && rng.below(2) == 0 {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        let more = rng.below(5);
        b.extend(rng.bytes(more));
        let naive = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        assert_eq!(common_prefix(&a, &b), naive, "{a:?} {b:?}");
    }
}

/// `DeltaParser` parses `b` as `text_delta` does alone, and as the general path does (the
/// fast path's own reference); returns whether it reused its memory for it.
fn check(p: &mut DeltaParser, b: &[u8]) -> bool {
    let before = p.reused();
    assert_eq!(p.parse(b), text_delta(b), "{}", String::from_utf8_lossy(b));
    same_as_general(b);
    p.reused() > before
}

/// The lines of one message from either CLI, the uuid new on every line: all but the first
/// take the short check.
#[test]
fn delta_parser_reuses_the_tail_of_both_clis_lines() {
    for sample in [SAMPLE_DELTA, SAMPLE_DELTA_332] {
        let mut p = DeltaParser::default();
        let uuid = sample.find(r#""uuid":""#).unwrap() + r#""uuid":""#.len();
        for i in 0..100u64 {
            let mut line = sample.to_string();
            line.replace_range(uuid..uuid + 36, &format!("{:036x}", i * 7919));
            assert!(text_delta(line.as_bytes()).is_some(), "{line}");
            assert_eq!(check(&mut p, line.as_bytes()), i > 0, "{line}");
        }
    }
}

/// Tails of five fields in every order, the changing string in every position: the memory
/// is reused for a changed free string wherever it sits, and for nothing else (the parent's
/// string, two changed strings, a changed key, a string that became null, an escape, a
/// number), and every line parses as it parses alone.
#[test]
fn delta_parser_reuses_the_tail_whatever_the_changing_values_position() {
    const SESSION: &str = r#""3c51411a-8ca3-48d4-9bc6-8982346afca4""#;
    for parent in ["null", r#""toolu_01""#] {
        let fields = [
            ("session_id", SESSION),
            ("parent_tool_use_id", parent),
            ("uuid", r#""dbce6dee-3144-486a-a1b2-f2542b89e525""#),
            ("api_message_id", r#""msg_mock_2793bd3ce77144d7b637eedf""#),
            ("note", r#""""#),
        ];
        let n = fields.len();
        let orders = (0..n.pow(n as u32)).filter_map(|mut code| {
            let order: Vec<usize> = (0..n)
                .map(|_| {
                    let i = code % n;
                    code /= n;
                    i
                })
                .collect();
            let distinct = (0..n).all(|i| order.contains(&i));
            distinct.then_some(order)
        });
        let mut orders_seen = 0;
        for order in orders {
            orders_seen += 1;
            let line = |changed: &[(usize, &str)], key_of: Option<usize>| {
                let mut tail = String::new();
                for &i in &order {
                    let (key, value) = fields[i];
                    let value = changed
                        .iter()
                        .find(|(c, _)| *c == i)
                        .map_or(value, |(_, v)| *v);
                    let key = if key_of == Some(i) { "other_key" } else { key };
                    tail.push_str(&format!(r#","{key}":{value}"#));
                }
                tail.push('}');
                delta_line("0", r"a line\n", &tail)
            };
            let base = line(&[], None);
            // Whether the line right after the base line reuses the base's memory.
            let after_base = |b: &str| {
                let mut p = DeltaParser::default();
                assert!(!check(&mut p, base.as_bytes()), "{base}");
                check(&mut p, b.as_bytes())
            };
            for (i, (key, _)) in fields.iter().enumerate() {
                let is_free = *key != "parent_tool_use_id";
                // Another string, of any length, in the free field: reused.
                for v in [r#""x""#, r#""a longer value é 漢""#, r#""""#] {
                    let b = line(&[(i, v)], None);
                    let same = b == base;
                    assert_eq!(after_base(&b), is_free || same, "{b}");
                }
                // Changes the short check must not take: each checked whole.
                let others = [
                    line(&[(i, r#""a\nb""#)], None),
                    line(&[(i, "null")], None),
                    line(&[(i, "1")], None),
                    line(&[(i, r#""x"#)], None),
                    line(&[], Some(i)),
                    line(&[(i, r#""x""#), ((i + 1) % n, r#""z""#)], None),
                ];
                for b in others.iter().filter(|b| **b != base) {
                    assert!(!after_base(b), "{b}");
                }
            }
            // The parent's string changed: a different result, never the remembered one.
            if parent != "null" {
                let b = line(&[(1, r#""toolu_02""#)], None);
                assert!(!after_base(&b), "{b}");
                let mut p = DeltaParser::default();
                p.parse(base.as_bytes());
                let d = p.parse(b.as_bytes()).expect("a delta");
                assert_eq!(d.parent_tool_use_id, Some("toolu_02"));
            }
            // A message's lines, each with a new uuid, whatever the order.
            let mut p = DeltaParser::default();
            for k in 0..20 {
                let uuid = format!(r#""u-{k}""#);
                assert_eq!(check(&mut p, line(&[(2, &uuid)], None).as_bytes()), k > 0);
            }
            // The changed string in turn in each free field, against the same memory (the
            // first of those lines).
            for k in 0..30 {
                let field = [0, 2, 3, 4][k % 4];
                let value = format!(r#""v-{k}""#);
                let mut changed = vec![(2, r#""u-0""#), (field, value.as_str())];
                changed.retain(|&(f, v)| f != field || v == value);
                assert!(check(&mut p, line(&changed, None).as_bytes()), "{k}");
            }
        }
        assert_eq!(orders_seen, 120);
    }
}

/// The memory of `DeltaParser` never changes a result: every line, in any order, parses as
/// `text_delta` parses it alone.
#[test]
fn delta_parser_with_memory_matches_text_delta() {
    let mut p = DeltaParser::default();
    // The fixtures, in order.
    for (_, data) in crate::testutil::fixtures() {
        for l in data.split(|&c| c == b'\n') {
            check(&mut p, l);
        }
    }
    // Lines that share the remembered tail but for one value, or part of it.
    let with_parent = delta_line(
        "1",
        "x",
        r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u1"}"#,
    );
    let variants = [
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2"}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2","x":1}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"\n"}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":null}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"é"}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u"} "#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u""#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2","api_message_id":"m"}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u1","api_message_id":"m"}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2","api_message_id":"m2"}"#,
        ),
        delta_line(
            "0",
            "y",
            r#","session_id":"s","parent_tool_use_id":"toolu_1","uuid":"u2","api_message_id":null}"#,
        ),
    ];
    for v in &variants {
        check(&mut p, with_parent.as_bytes());
        check(&mut p, v.as_bytes());
        check(&mut p, v.as_bytes());
    }
    check(&mut p, SAMPLE_DELTA.as_bytes());
    assert!(!p.memory.tail.is_empty(), "the CLI's line is remembered");
    // The mutations of the fast path's own test, each after a line that sets the memory (the
    // unchanged line, or the mutation before it).
    let mut rng = crate::testutil::Rng(0x9e37_79b9_7f4a_7c15);
    let interesting = b"\"\\{}:,0123456789unlx \x00\x1f\x7f\x80\xc3\xa9\xed";
    let mut previous = Vec::new();
    for round in 0..40_000 {
        let base = [SAMPLE_DELTA, SAMPLE_DELTA_332][round % 2].as_bytes();
        let mut b = base.to_vec();
        // Mostly in the tail, where the memory is used.
        let tail_from = b.len() - 200;
        for _ in 0..rng.below(3) + 1 {
            let pos = tail_from + rng.below(b.len() - tail_from + 1);
            let byte = interesting[rng.below(interesting.len())];
            match rng.below(3) {
                0 if pos < b.len() => b[pos] = byte,
                1 if pos < b.len() => {
                    b.remove(pos);
                }
                _ => b.insert(pos, byte),
            }
        }
        if rng.below(2) == 0 {
            check(&mut p, base);
        } else {
            check(&mut p, &previous);
        }
        check(&mut p, &b);
        previous = b;
    }
}
