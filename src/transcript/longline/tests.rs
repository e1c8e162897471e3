use super::*;
use serde_json::Value;

/// Hands out the data in reads of the given sizes, cycling.
struct Chunky<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    i: usize,
}

impl Read for Chunky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.i % self.sizes.len()];
        self.i += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn chunked(data: &[u8], sizes: &[usize], max_string: usize, max_out: usize) -> Option<Shortened> {
    let r = Chunky { data, sizes, i: 0 };
    cut_long_strings(r, data.len() as u64, max_string, max_out).unwrap()
}

const READ_SIZES: [&[usize]; 6] = [&[1], &[2], &[3], &[7], &[4096], &[1, 2, 3, 7, 4096, 5]];

fn marker(n: usize) -> String {
    format!("… ({n} bytes)")
}

/// Raw (escaped) length of a string's content as serde_json writes it.
fn raw_len(s: &str) -> usize {
    serde_json::to_string(s).unwrap().len() - 2
}

/// Checks one string of the output against the original, whose content was `orig_raw` bytes
/// long in the input: equal, or a prefix of it plus the marker. Returns the kept part.
fn check_raw_string<'a>(orig: &str, orig_raw: usize, got: &'a str, max_string: usize) -> &'a str {
    if orig_raw <= max_string {
        assert_eq!(got, orig);
        return got;
    }
    let m = marker(orig_raw);
    let kept = got
        .strip_suffix(m.as_str())
        .unwrap_or_else(|| panic!("{got:?} lacks {m:?}"));
    assert!(
        orig.starts_with(kept),
        "{kept:?} is not a prefix of {orig:?}"
    );
    kept
}

/// The same for input that serde_json wrote, so that raw lengths can be recomputed.
fn check_string(orig: &str, got: &str, max_string: usize) {
    let kept = check_raw_string(orig, raw_len(orig), got, max_string);
    assert!(raw_len(kept) <= max_string);
}

#[test]
fn small_line_is_copied_byte_identical() {
    let line = br#" {"type":"system","n":[1, 2.5e3, true, null, {"k":"v\n\u00e9"}], "s":""} "#;
    let s = cut_long_strings_in_bytes(line, 64, 1 << 20).unwrap();
    assert_eq!(s.cut, 0);
    assert_eq!(s.json, line);
    let s = chunked(line, &[1], 64, 1 << 20).unwrap();
    assert_eq!(s.json, line);
}

fn huge_text(len: usize) -> String {
    let piece = "Some text,\nwith \"quotes\", é, 😀, 中文 and a \\ backslash.\t";
    let mut t = String::with_capacity(len + piece.len());
    while t.len() < len {
        t.push_str(piece);
    }
    t
}

#[test]
fn huge_assistant_text_is_cut_and_the_rest_kept() {
    let text = huge_text(3 << 20);
    let v = serde_json::json!({
        "type": "assistant",
        "message": {"id": "m", "content": [{"type": "text", "text": text}]},
        "parent_tool_use_id": null,
    });
    let line = serde_json::to_vec(&v).unwrap();
    let max_string = 64 * 1024;
    let s = cut_long_strings_in_bytes(&line, max_string, 1 << 20).unwrap();
    assert_eq!(s.cut, 1);
    assert!(s.json.len() < max_string + 200);
    let got: Value = serde_json::from_slice(&s.json).unwrap();
    let got_text = got["message"]["content"][0]["text"].as_str().unwrap();
    check_string(&text, got_text, max_string);
    assert!(got_text.len() > max_string / 2);
    assert_eq!(got["type"], "assistant");
    assert_eq!(got["message"]["id"], "m");
    assert_eq!(got["message"]["content"][0]["type"], "text");
    assert_eq!(got["message"]["content"].as_array().unwrap().len(), 1);
    assert_eq!(got["parent_tool_use_id"], Value::Null);
    assert_eq!(got.as_object().unwrap().len(), 3);
    assert_eq!(chunked(&line, &[4096, 7, 1], max_string, 1 << 20), Some(s));
}

#[test]
fn result_line_keeps_what_follows_the_huge_result() {
    let text = huge_text(1 << 20);
    let v = serde_json::json!({
        "type": "result",
        "subtype": "success",
        "is_error": false,
        "result": text,
        "total_cost_usd": 0.25,
        "usage": {"input_tokens": 3, "output_tokens": 9},
    });
    let line = serde_json::to_vec(&v).unwrap();
    // Keys sorted: `type` comes after the huge text, as 2.1.332 writes it.
    let at = |k: &str| line.windows(k.len()).position(|w| w == k.as_bytes());
    assert!(at(r#""type":"result""#) > at(r#""result":""#));
    let s = cut_long_strings_in_bytes(&line, 1000, 1 << 20).unwrap();
    assert_eq!(s.cut, 1);
    let got: Value = serde_json::from_slice(&s.json).unwrap();
    assert_eq!(got["type"], "result");
    assert_eq!(got["total_cost_usd"], 0.25);
    assert_eq!(got["usage"]["output_tokens"], 9);
    assert_eq!(got["subtype"], "success");
    check_string(&text, got["result"].as_str().unwrap(), 1000);
}

/// Every kind of escape and multibyte character, back to back.
const HEAVY: &str =
    r#"ab\n\"\\\/\b\f\r\t\u00e9\u4e2d\ud83d\ude00é中😀\ud83d\ude00\ud83d\ude00x\u0041"#;

#[test]
fn reads_of_any_size_give_the_same_output_at_every_cut_position() {
    let content = HEAVY.repeat(3);
    let line = format!(r#"{{"k":"{content}","after":[1,"{HEAVY}"]}}"#);
    let orig: Value = serde_json::from_str(&line).unwrap();
    let orig_k = orig["k"].as_str().unwrap();
    let orig_after = orig["after"][1].as_str().unwrap();
    // From 5 on, so that the keys ("after") stay whole and can be looked up.
    for max_string in 5..=content.len() + 2 {
        let s = cut_long_strings_in_bytes(line.as_bytes(), max_string, 1 << 20).unwrap();
        for sizes in READ_SIZES {
            assert_eq!(
                chunked(line.as_bytes(), sizes, max_string, 1 << 20).as_ref(),
                Some(&s),
                "max_string {max_string}, reads {sizes:?}"
            );
        }
        let got: Value = serde_json::from_slice(&s.json).unwrap_or_else(|e| {
            panic!(
                "max_string {max_string}: {e}: {}",
                String::from_utf8_lossy(&s.json)
            )
        });
        check_raw_string(
            orig_k,
            content.len(),
            got["k"].as_str().unwrap(),
            max_string,
        );
        check_raw_string(
            orig_after,
            HEAVY.len(),
            got["after"][1].as_str().unwrap(),
            max_string,
        );
        if max_string < content.len() {
            let kept_raw =
                s.json.windows(3).position(|w| w == "…".as_bytes()).unwrap() - br#"{"k":""#.len();
            assert!(kept_raw <= max_string);
            // Nothing safe was given up: one more unit would not have fitted.
            assert!(kept_raw + 12 > max_string);
        }
        if max_string >= content.len() {
            assert_eq!(s.json, line.as_bytes());
        }
    }
}

#[test]
fn the_kept_part_is_as_long_as_it_safely_can_be() {
    let line = |content: &str| format!(r#"["{content}"]"#);
    let kept = |content: &str, max_string: usize| {
        let s = cut_long_strings_in_bytes(line(content).as_bytes(), max_string, 1 << 20).unwrap();
        let v: Value = serde_json::from_slice(&s.json).unwrap();
        let got = v[0].as_str().unwrap().to_string();
        got[..got.rfind('…').unwrap()].to_string()
    };
    assert_eq!(kept("abcdef", 3), "abc");
    assert_eq!(kept(r"ab\ncd", 3), "ab");
    assert_eq!(kept(r"ab\ncd", 4), "ab\n");
    assert_eq!(kept(r"a\u00e9b", 6), "a");
    assert_eq!(kept(r"a\u00e9b", 7), "aé");
    assert_eq!(kept("aé中b", 2), "a");
    assert_eq!(kept("aé中b", 3), "aé");
    assert_eq!(kept("aé中b", 5), "aé");
    assert_eq!(kept("aé中b", 6), "aé中");
    assert_eq!(kept(r"a\ud83d\ude00b", 12), "a");
    assert_eq!(kept(r"a\ud83d\ude00b", 13), "a😀");
    assert_eq!(kept(r"a\ud83d\ude00\u0041b", 18), "a😀");
    assert_eq!(kept(r"a\ud83d\ude00\u0041b", 19), "a😀A");
}

#[test]
fn lone_surrogates_and_broken_utf8_are_cut_like_anything_else() {
    // Invalid content, copied as it is: the cut must still be chunk-independent, keep a
    // prefix of the raw bytes and never split an escape.
    let content: &[u8] =
        b"a\\ud83d\\nb\\udc00\\ud83d\\ud83d\\ude00\xc3x\x80\x80\xe4\xb8\xad\xf0\x9f\x98";
    let mut line = b"[\"".to_vec();
    line.extend_from_slice(content);
    line.extend_from_slice(b"\",1]");
    for max_string in 0..=content.len() + 1 {
        let s = cut_long_strings_in_bytes(&line, max_string, 1 << 20).unwrap();
        for sizes in READ_SIZES {
            assert_eq!(
                chunked(&line, sizes, max_string, 1 << 20).as_ref(),
                Some(&s)
            );
        }
        if max_string >= content.len() {
            assert_eq!(s.json, line);
            continue;
        }
        let m = marker(content.len());
        let tail = format!("{m}\",1]");
        let kept = &s.json[2..s.json.len() - tail.len()];
        assert_eq!(&s.json[s.json.len() - tail.len()..], tail.as_bytes());
        assert!(content.starts_with(kept) && kept.len() <= max_string);
        assert!(
            kept.len() + 12 > max_string,
            "max_string {max_string}: kept {kept:?}"
        );
        let mut i = 0;
        while i < kept.len() {
            i += match kept[i..] {
                [b'\\', b'u', ..] => 6,
                [b'\\', ..] => 2,
                _ => 1,
            };
        }
        assert_eq!(i, kept.len(), "max_string {max_string}: kept {kept:?}");
        let high_then_low =
            kept.ends_with(b"\\ud83d") && content[kept.len()..].starts_with(b"\\ude00");
        assert!(!high_then_low, "max_string {max_string}: kept {kept:?}");
        let next = content[kept.len()];
        assert!(next & 0xC0 != 0x80 || !matches!(kept.last(), Some(0xC0..=0xFF)));
    }
}

#[test]
fn deep_nesting_is_fine() {
    for depth in [1, 63, 64, 65, 200, 100_000] {
        let line = format!("{}{}", "[{\"a\":".repeat(depth), "}]".repeat(depth));
        let line = line.replace(":}", ":1}");
        assert_eq!(
            cut_long_strings_in_bytes(line.as_bytes(), 8, 1 << 24).map(|s| s.json),
            Some(line.clone().into_bytes())
        );
        let mismatched = format!("{}}}", &line[..line.len() - 1]);
        assert_eq!(
            cut_long_strings_in_bytes(mismatched.as_bytes(), 8, 1 << 24),
            None
        );
    }
}

#[test]
fn keys_are_cut_too() {
    let s = cut_long_strings_in_bytes(br#"{"abcdefgh":1,"ab":2}"#, 4, 1 << 20).unwrap();
    assert_eq!(s.cut, 1);
    assert_eq!(s.json, r#"{"abcd… (8 bytes)":1,"ab":2}"#.as_bytes());
}

use crate::testutil::Rng;

fn random_string(rng: &mut Rng, max_len: usize) -> String {
    const CHARS: &[char] = &[
        'a', 'b', 'z', ' ', '"', '\\', '/', '\n', '\t', '\r', '\u{1}', '\u{1f}', '\u{7f}', 'é',
        '中', '😀', '\u{2028}', '\u{ffff}',
    ];
    let len = rng.below(max_len + 1);
    (0..len).map(|_| CHARS[rng.below(CHARS.len())]).collect()
}

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    let pick = if depth == 0 {
        rng.below(4)
    } else {
        rng.below(6)
    };
    match pick {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 1),
        2 => serde_json::json!(rng.next_u64() as i64 as f64 / 1e6),
        3 => Value::String(random_string(rng, 60)),
        4 => (0..rng.below(5))
            .map(|_| random_value(rng, depth - 1))
            .collect(),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(5) {
                // Short ASCII keys, so that a large enough max_string never cuts them.
                let key: String = (0..rng.below(5))
                    .map(|_| (b'a' + rng.below(3) as u8) as char)
                    .collect();
                m.insert(key, random_value(rng, depth - 1));
            }
            Value::Object(m)
        }
    }
}

fn same_shape(orig: &Value, got: &Value, max_string: usize) {
    match (orig, got) {
        (Value::String(o), Value::String(g)) => check_string(o, g, max_string),
        (Value::Array(o), Value::Array(g)) => {
            assert_eq!(o.len(), g.len());
            for (o, g) in o.iter().zip(g) {
                same_shape(o, g, max_string);
            }
        }
        (Value::Object(o), Value::Object(g)) => {
            assert_eq!(o.len(), g.len());
            for (k, o) in o {
                same_shape(o, &g[k], max_string);
            }
        }
        (o, g) => assert_eq!(o, g),
    }
}

#[test]
fn random_json_stays_valid() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut rounds_with_cuts = 0;
    for round in 0..3000 {
        let mut v = random_value(&mut rng, 4);
        if !v.is_object() && !v.is_array() {
            v = Value::Array(vec![v]);
        }
        let line = if round % 3 == 0 {
            serde_json::to_vec_pretty(&v).unwrap()
        } else {
            serde_json::to_vec(&v).unwrap()
        };
        let max_string = rng.below(48);
        let s = cut_long_strings_in_bytes(&line, max_string, 1 << 20).unwrap();
        let got: Value = serde_json::from_slice(&s.json)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&s.json)));
        if s.cut == 0 {
            assert_eq!(s.json, line);
        } else {
            rounds_with_cuts += 1;
        }
        if max_string >= 4 {
            // Compared with the input as parsed, not with `v`: float parsing is not exact.
            let orig: Value = serde_json::from_slice(&line).unwrap();
            same_shape(&orig, &got, max_string);
        }
        let sizes = [1 + rng.below(9), 1 + rng.below(9), 1 + rng.below(200)];
        assert_eq!(chunked(&line, &sizes, max_string, 1 << 20), Some(s));
    }
    assert!(rounds_with_cuts > 500, "{rounds_with_cuts}");
}

#[test]
fn not_json_is_none() {
    let cases: &[&[u8]] = &[
        b"",
        b"   ",
        b"plain text",
        br#""string""#,
        b"42",
        b"null",
        br#"{"a":[}"#,
        br#"{"a":1"#,
        br#"{"a":1}}"#,
        b"]",
        br#"{"a":"unterminated}"#,
        br#"{"a":"x\"}"#,
        br#"{} x"#,
        br#"{}{}"#,
        br#"[] "s""#,
        br#"["bad \x escape"]"#,
        br#"["bad \u12g4 escape"]"#,
        br#"["cut \u12"]"#,
    ];
    for &case in cases {
        for max_string in [0, 1, 2, 100] {
            assert_eq!(
                cut_long_strings_in_bytes(case, max_string, 1 << 20),
                None,
                "{:?}",
                String::from_utf8_lossy(case)
            );
            for sizes in READ_SIZES {
                assert_eq!(chunked(case, sizes, max_string, 1 << 20), None);
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    const ALPHABET: &[u8] = b"{}[]\":,\\unbt0123456789abcdefABCDEF \n\xc3\xa9\xf0\x9f\x98\x80\xff";
    let mut rng = Rng(12345);
    for _ in 0..20_000 {
        let len = rng.below(40);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(8) == 0 {
                    rng.next_u64() as u8
                } else {
                    ALPHABET[rng.below(ALPHABET.len())]
                }
            })
            .collect();
        let max_string = rng.below(10);
        let s = cut_long_strings_in_bytes(&bytes, max_string, 64);
        assert_eq!(chunked(&bytes, &[1 + rng.below(5)], max_string, 64), s);
    }
}

#[test]
fn too_much_output_is_none() {
    let many: String = format!("[{}1]", "\"ab\",".repeat(10_000));
    assert_eq!(
        cut_long_strings_in_bytes(many.as_bytes(), 64, many.len()).map(|s| s.json),
        Some(many.clone().into_bytes())
    );
    assert_eq!(
        cut_long_strings_in_bytes(many.as_bytes(), 64, many.len() - 1),
        None
    );
    assert_eq!(chunked(many.as_bytes(), &[4096], 64, 1000), None);
    // Cut strings count with their marker.
    let line = format!(r#"["{}"]"#, "x".repeat(100));
    let s = cut_long_strings_in_bytes(line.as_bytes(), 10, 1 << 20).unwrap();
    assert_eq!(
        cut_long_strings_in_bytes(line.as_bytes(), 10, s.json.len()),
        Some(s.clone())
    );
    assert_eq!(
        cut_long_strings_in_bytes(line.as_bytes(), 10, s.json.len() - 1),
        None
    );
}

#[test]
fn early_eof_is_an_error() {
    let line = br#"{"a":"b"}"#;
    let r = Chunky {
        data: line,
        sizes: &[3],
        i: 0,
    };
    let e = cut_long_strings(r, line.len() as u64 + 5, 64, 1 << 20).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn reads_exactly_len_bytes() {
    // The next line must not leak in: a reader positioned on a line reads only that line.
    let data = b"{\"a\":1}\n{\"b\":2}\n";
    let r = Chunky {
        data,
        sizes: &[4096],
        i: 0,
    };
    let s = cut_long_strings(r, 7, 64, 1 << 20).unwrap().unwrap();
    assert_eq!(s.json, b"{\"a\":1}");
}

#[test]
fn shortens_a_line_in_a_file() {
    let text = huge_text(200_000);
    let first = b"{\"type\":\"system\"}\n";
    let second = serde_json::to_vec(
        &serde_json::json!({"type": "result", "result": text, "total_cost_usd": 1.5}),
    )
    .unwrap();
    let path = std::env::temp_dir().join(format!(
        "claude-tasks-longline-{}.jsonl",
        std::process::id()
    ));
    let mut data = first.to_vec();
    data.extend_from_slice(&second);
    data.extend_from_slice(b"\n{\"type\":\"user\"}\n");
    std::fs::write(&path, &data).unwrap();
    let got = cut_long_strings_in_file(
        &path,
        first.len() as u64,
        second.len() as u64,
        4096,
        1 << 20,
    );
    std::fs::remove_file(&path).unwrap();
    let s = got.unwrap().unwrap();
    assert_eq!(s.cut, 1);
    let v: Value = serde_json::from_slice(&s.json).unwrap();
    assert_eq!(v["total_cost_usd"], 1.5);
    check_string(&text, v["result"].as_str().unwrap(), 4096);
}
