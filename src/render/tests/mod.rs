//! The renderer's tests, by topic; this module holds only the helpers they share.

use super::*;
use crate::testutil::line;
use std::path::{Path, PathBuf};

fn apply(buf: &mut Vec<String>, u: Update) {
    assert!(
        u.start <= buf.len(),
        "update starts at {} past the end {}",
        u.start,
        buf.len()
    );
    u.apply_to(buf);
}

/// Feeds a transcript line by line, taking an update after every line (as a live buffer
/// would), and checks the result against taking a single update at the end.
fn render(jsonl: &str) -> Vec<String> {
    let mut live = Renderer::new();
    let mut once = Renderer::new();
    let mut buf = Vec::new();
    for l in jsonl.split('\n').filter(|l| !l.is_empty()) {
        live.feed_line(&line(l.as_bytes()));
        once.feed_line(&line(l.as_bytes()));
        if let Some(u) = live.take_update() {
            apply(&mut buf, u);
        }
        assert_eq!(buf.len(), live.line_count());
    }
    let mut whole = Vec::new();
    if let Some(u) = once.take_update() {
        assert_eq!(u.start, 0);
        apply(&mut whole, u);
    }
    assert_eq!(buf, whole, "live and one-shot renders differ");
    for l in &buf {
        assert!(!l.contains('\n') && !l.contains('\r'), "bad line {l:?}");
    }
    buf
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/claude-cli-2.1.197/",
            $name,
            "/stdout.jsonl"
        ))
    };
}

const INIT_DEFAULT: &str = "model: claude-opus-4-8 (1M context) · permission: default";

fn delta(index: u64, text: &str) -> String {
    serde_json::json!({"type":"stream_event","event":{"type":"content_block_delta","index":index,"delta":{"type":"text_delta","text":text}}}).to_string()
}

fn assistant_text(text: &str) -> String {
    serde_json::json!({"type":"assistant","message":{"id":"m","content":[{"type":"text","text":text}]}}).to_string()
}

const MESSAGE_START: &str =
    r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m"}}}"#;

fn feed(r: &mut Renderer, s: &str) {
    r.feed_line(&line(s.as_bytes()));
}

fn upd(start: usize, lines: &[&str]) -> Option<Update> {
    Some(Update {
        start,
        lines: lines.iter().map(|s| s.to_string()).collect(),
        folds: Vec::new(),
    })
}

/// The recordings' directory of every CLI version (`claude-cli-<version>`): the repository's
/// own (tests/fixtures) and, where it is checked out beside the repository, the shared set;
/// sorted, the repository's first.
fn fixture_versions() -> Vec<PathBuf> {
    let mut dirs = crate::testutil::version_dirs(&crate::testutil::fixtures_root());
    // Resolved from this source file, so it also works when the module is compiled into
    // another crate; CI has `shared/` beside the repository.
    let file = Path::new(file!());
    let src = if file.is_absolute() {
        file.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
    };
    // src/render/tests/mod.rs: the repository is four levels up.
    if let Some(root) = src.ancestors().nth(4) {
        dirs.extend(crate::testutil::version_dirs(
            &root.join("../shared/fixtures"),
        ));
    }
    dirs
}

fn read_stdout(dir: &Path) -> Option<Vec<u8>> {
    crate::testutil::fixture_stdout(dir)
}

// Declared after `fixture!`, which only the modules declared after it can use.
mod bad_input;
mod bounds;
mod header_footer;
mod streaming;
mod tool_calls;
mod transcripts;
