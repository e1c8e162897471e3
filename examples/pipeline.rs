//! The backend's data path without Neovim: a finished transcript read, framed, parsed and
//! rendered by one view's pipeline (`render_all`), timed. The benchmark harness runs it to tell
//! the backend's own cost apart from the editor's and the scheduling's.
//!
//! `cargo run --release --example pipeline -- TRANSCRIPT [RUNS]`
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (transcript, runs) = match args.as_slice() {
        [_, t] => (std::path::PathBuf::from(t), 1),
        [_, t, n] => (std::path::PathBuf::from(t), n.parse()?),
        _ => return Err("usage: pipeline TRANSCRIPT [RUNS]".into()),
    };
    // One completed run over the whole file.
    let rec = claude_tasks::testutil::finished_record();
    for _ in 0..runs {
        let t = Instant::now();
        let lines = claude_tasks::view::render_all(&rec, &transcript)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        println!("{} lines {} bytes {:.1} ms", lines.len(), bytes, ms);
    }
    Ok(())
}
