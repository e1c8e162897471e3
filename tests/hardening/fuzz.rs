//! Fuzzing: framing and rendering do not depend on read sizes; the parser and renderer never
//! panic.

use super::*;

// ==================================================================== 9. fuzzing

use claude_tasks::testutil::{fixtures, Rng};

fn frame(
    data: &[u8],
    cuts: &[usize],
    max_line: usize,
) -> Vec<claude_tasks::transcript::framing::Line> {
    claude_tasks::testutil::frame_chunked(data, cuts, max_line, 0)
}

/// The `render_all` pipeline with the reads cut at `cuts`, taking an update after every read
/// as a live view does.
fn render_chunked(data: &[u8], cuts: &[usize], max_line: usize) -> Vec<String> {
    use claude_tasks::render::{Header, Renderer};
    let mut r = Renderer::new();
    r.header(&Header {
        id: 1,
        name: "fuzz",
        cwd: "/p",
        queued_at_ms: 0,
        // As the record below: a task without runs.
        started_at_ms: None,
        model: None,
        context: &[],
        worktree: None,
        permissions: Some("ask"),
    });
    let mut f = claude_tasks::transcript::framing::Framer::new(max_line, 0);
    let mut lines = Vec::new();
    let mut out: Vec<String> = Vec::new();
    let apply = |r: &mut Renderer, out: &mut Vec<String>| {
        if let Some(u) = r.take_update() {
            assert!(u.start <= out.len(), "update past the end");
            u.apply_to(out);
        }
    };
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&data.len())) {
        f.push(&data[prev..c], &mut lines);
        for l in lines.drain(..) {
            r.feed_line(&l);
        }
        apply(&mut r, &mut out);
        prev = c;
    }
    f.finish(&mut lines);
    for l in lines.drain(..) {
        r.feed_line(&l);
    }
    apply(&mut r, &mut out);
    out
}

fn random_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = match rng.below(4) {
        // A few cuts anywhere.
        0 => (0..rng.below(30)).map(|_| rng.below(len + 1)).collect(),
        // Many small reads.
        1 => {
            let step = 1 + rng.below(64);
            (0..len).step_by(step).collect()
        }
        // Reads of a random fixed size, as a read(2) loop would do.
        2 => {
            let step = 1 + rng.below(4096);
            (0..len).step_by(step).collect()
        }
        // Random sizes.
        _ => {
            let mut v = Vec::new();
            let mut at = 0;
            while at < len {
                at += 1 + rng.below(512);
                v.push(at.min(len));
            }
            v
        }
    };
    cuts.sort_unstable();
    cuts
}

#[test]
fn fuzz_framing_and_rendering_are_independent_of_read_sizes() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let root = std::env::temp_dir().join(format!("ct-hard-{}-fuzz", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let mut cases = 0;
    for (name, data) in fixtures() {
        let whole_lines = frame(&data, &[], claude_tasks::transcript::framing::MAX_LINE);
        let whole = render_chunked(&data, &[], claude_tasks::transcript::framing::MAX_LINE);
        // The reference: render_all on the same bytes in a file.
        // The name holds the CLI version's directory: one file per fixture, flat.
        let path = root.join(format!("{}.jsonl", name.replace('/', "_")));
        std::fs::write(&path, &data).unwrap();
        let mut rec = TaskRecord::queued(
            1,
            "fuzz".into(),
            "/p".into(),
            SID.into(),
            Default::default(),
            0,
        );
        rec.status = claude_tasks::task::Status::Completed;
        assert_eq!(
            claude_tasks::view::render_all(&rec, &path).unwrap(),
            whole,
            "{name}: render_all differs from the chunked pipeline"
        );
        for round in 0..60 {
            let cuts = random_cuts(&mut rng, data.len());
            assert_eq!(
                frame(&data, &cuts, claude_tasks::transcript::framing::MAX_LINE),
                whole_lines,
                "{name} round {round}: framing depends on the reads"
            );
            assert_eq!(
                render_chunked(&data, &cuts, claude_tasks::transcript::framing::MAX_LINE),
                whole,
                "{name} round {round}: rendering depends on the reads"
            );
            cases += 1;
        }
        // A small line cap, so truncation happens across reads too.
        let cap = 1 + rng.below(300);
        let capped = render_chunked(&data, &[], cap);
        for _ in 0..10 {
            let cuts = random_cuts(&mut rng, data.len());
            assert_eq!(
                frame(&data, &cuts, cap),
                frame(&data, &[], cap),
                "{name} cap {cap}"
            );
            assert_eq!(
                render_chunked(&data, &cuts, cap),
                capped,
                "{name} cap {cap}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    assert!(cases > 500);
}

/// Replaces random parts of a JSON value with values of other types.
fn mutate(rng: &mut Rng, v: &mut Json, depth: usize) {
    let pick = |rng: &mut Rng| -> Json {
        match rng.below(9) {
            0 => Json::Null,
            1 => json!(rng.next_u64().is_multiple_of(2)),
            2 => json!(rng.next_u64() as i64),
            3 => json!(-1.5e300),
            4 => {
                let n = rng.below(12);
                Json::String(String::from_utf8_lossy(&rng.bytes(n)).into_owned())
            }
            5 => json!([]),
            6 => json!({}),
            7 => json!("\u{1b}[2J\u{0}\n\r\t"),
            _ => json!({"type": "text", "text": 7}),
        }
    };
    match v {
        Json::Object(m) if !m.is_empty() && depth < 8 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for _ in 0..1 + rng.below(3) {
                let k = &keys[rng.below(keys.len())];
                if rng.below(3) == 0 {
                    m.insert(k.clone(), pick(rng));
                } else if rng.below(5) == 0 {
                    m.remove(k);
                } else if let Some(child) = m.get_mut(k) {
                    mutate(rng, child, depth + 1);
                }
            }
        }
        Json::Array(a) if !a.is_empty() && depth < 8 => {
            let i = rng.below(a.len());
            if rng.below(3) == 0 {
                a[i] = pick(rng);
            } else {
                mutate(rng, &mut a[i], depth + 1);
            }
        }
        _ => *v = pick(rng),
    }
}

#[test]
fn fuzz_the_parser_and_renderer_never_panic() {
    use claude_tasks::render::Renderer;
    use claude_tasks::transcript::framing::Line;
    let mut rng = Rng(0xF00D_FACE_0BAD_C0DE);
    let line = |b: Vec<u8>| Line {
        total_len: b.len(),
        bytes: b,
        offset: 0,
    };
    let fx = fixtures();
    let fixture_lines: Vec<Vec<u8>> = fx
        .iter()
        .flat_map(|(_, d)| d.split(|&b| b == b'\n').map(<[u8]>::to_vec))
        .filter(|l| !l.is_empty())
        .collect();
    let mut r = Renderer::new();
    let mut fed = 0usize;
    let mut feed = |r: &mut Renderer, bytes: Vec<u8>| {
        let l = line(bytes);
        let _ = claude_tasks::stream_json::parse(&l);
        r.feed_line(&l);
        if rng_tick(&mut fed) {
            let _ = r.take_update();
        }
    };
    fn rng_tick(n: &mut usize) -> bool {
        *n += 1;
        n.is_multiple_of(7)
    }
    // Random bytes, biased towards JSON-looking ones.
    for _ in 0..20_000 {
        let n = rng.below(200);
        let alphabet: &[u8] = b"{}[]\":,\\ntrufalse0123456789.-eE \x00\xff\x1b\r\n";
        let bytes: Vec<u8> = if rng.below(2) == 0 {
            rng.bytes(n)
        } else {
            (0..n)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect()
        };
        feed(&mut r, bytes);
    }
    // Fixture lines with bytes flipped, cut, or spliced together.
    for _ in 0..20_000 {
        let mut l = fixture_lines[rng.below(fixture_lines.len())].clone();
        match rng.below(4) {
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(l.len());
                    l[i] = rng.next_u64() as u8;
                }
            }
            1 => l.truncate(rng.below(l.len())),
            2 => {
                let other = &fixture_lines[rng.below(fixture_lines.len())];
                let cut = rng.below(other.len());
                l.extend_from_slice(&other[cut..]);
            }
            _ => {
                let at = rng.below(l.len());
                let n = rng.below(8);
                let junk = rng.bytes(n);
                l.splice(at..at, junk);
            }
        }
        feed(&mut r, l);
    }
    // Fixture lines with values of the wrong types in random places.
    let values: Vec<Json> = fixture_lines
        .iter()
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    for _ in 0..20_000 {
        let mut v = values[rng.below(values.len())].clone();
        mutate(&mut rng, &mut v, 0);
        feed(&mut r, v.to_string().into_bytes());
    }
    // Pathological shapes.
    for bytes in [
        "[".repeat(100_000).into_bytes(),
        "{\"a\":".repeat(50_000).into_bytes(),
        format!("{{\"type\":\"assistant\",\"message\":{{\"content\":[{}]}}}}", "{},".repeat(10_000) + "{}").into_bytes(),
        b"{\"type\":\"result\",\"num_turns\":1e999,\"total_cost_usd\":\"NaN\"}".to_vec(),
        b"{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"index\":18446744073709551615,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}}".to_vec(),
        b"{\"type\":\"stream_event\"".to_vec(),
        vec![0u8; 10_000],
        vec![b'\r'; 1000],
    ] {
        feed(&mut r, bytes);
    }
    let u = r.take_update();
    assert!(u.is_none_or(|u| u.lines.iter().all(|l| !l.contains('\n'))));
}
