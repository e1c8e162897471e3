//! The backend's data path without Neovim: a finished transcript read, framed, parsed and
//! rendered by one view's pipeline (`render_all`), timed; and its parsing alone, as a view parses
//! (text deltas in place, with and without the tail memory, anything else parsed whole; lines
//! over the framer's cap cut and parsed, apart), in this thread's CPU time. The benchmark harness runs it to tell the
//! backend's own cost apart from the editor's and the scheduling's, and one CLI's line shapes
//! from another's.
//!
//! `cargo run --release --example pipeline -- TRANSCRIPT [RUNS]`
use std::hint::black_box;
use std::time::Instant;

use claude_tasks::stream_json::reader::{LONG_OUT, LONG_STRING};
use claude_tasks::stream_json::{self, DeltaParser};
use claude_tasks::transcript::framing::MAX_LINE;
use claude_tasks::transcript::longline::Cutter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (transcript, runs) = match args.as_slice() {
        [_, t] => (std::path::PathBuf::from(t), 1),
        [_, t, n] => (std::path::PathBuf::from(t), n.parse()?),
        _ => return Err("usage: pipeline TRANSCRIPT [RUNS]".into()),
    };
    // One completed run over the whole file.
    let rec = claude_tasks::testutil::finished_record();
    let data = std::fs::read(&transcript)?;
    for _ in 0..runs {
        let t = Instant::now();
        let lines = claude_tasks::view::render_all(&rec, &transcript)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        println!(
            "render_all: {} lines {} bytes {:.1} ms",
            lines.len(),
            bytes,
            ms
        );
        drop(lines);
        let (lines, long) = split_lines(&data);
        for remember in [true, false] {
            let p = parse_lines(&lines, remember);
            let label = if remember {
                "parse"
            } else {
                "parse without the tail memory"
            };
            println!(
                "{label}: {} lines {} deltas {} reused {:.1} ms",
                lines.len(),
                p.deltas,
                p.reused,
                p.ms
            );
        }
        let t = Clock::start();
        for line in &long {
            let mut c = Cutter::new(LONG_STRING, LONG_OUT);
            c.feed(line);
            if let Some(short) = c.finish() {
                black_box(stream_json::parse_bytes(&short.json));
            }
        }
        let ms = t.ms();
        let bytes: usize = long.iter().map(|l| l.len()).sum();
        println!(
            "cut and parse: {} lines {bytes} bytes {ms:.1} ms",
            long.len()
        );
    }
    Ok(())
}

struct Parsed {
    deltas: usize,
    reused: u64,
    ms: f64,
}

/// The lines of `data`: those the framer holds, and those longer than its cap, which a view
/// copies with their long strings cut.
fn split_lines(data: &[u8]) -> (Vec<&[u8]>, Vec<&[u8]>) {
    let (mut lines, mut long) = (Vec::new(), Vec::new());
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', data).chain([data.len()]) {
        let line = &data[start..end];
        start = end + 1;
        if line.len() > MAX_LINE {
            long.push(line);
        } else if !line.is_empty() {
            lines.push(line);
        }
    }
    (lines, long)
}

/// The lines parsed as a view parses them: text deltas in place (with the tail memory, or
/// without: every tail checked whole), anything else whole.
fn parse_lines(lines: &[&[u8]], remember: bool) -> Parsed {
    let mut deltas = DeltaParser::default();
    let mut n = 0;
    let t = Clock::start();
    for line in lines {
        if !remember {
            deltas.forget_tail();
        }
        match deltas.parse(line) {
            Some(d) => {
                n += 1;
                black_box(d);
            }
            None => {
                black_box(stream_json::parse_bytes(line));
            }
        }
    }
    Parsed {
        deltas: n,
        reused: deltas.reused(),
        ms: t.ms(),
    }
}

/// The CPU time of this thread (`/proc/thread-self/schedstat`, in ns), which other processes on
/// a busy machine change far less than the time on the clock; the clock's where it is missing.
struct Clock {
    wall: Instant,
    cpu: Option<u64>,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: thread_cpu_ns(),
        }
    }

    fn ms(&self) -> f64 {
        match (self.cpu, thread_cpu_ns()) {
            (Some(a), Some(b)) => (b - a) as f64 / 1e6,
            _ => self.wall.elapsed().as_secs_f64() * 1e3,
        }
    }
}

fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
