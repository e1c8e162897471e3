//! A view's data path from transcript bytes to rendered lines: framing, the separators and
//! footers of the record's runs, parsing, rendering.

use super::CHUNK;
use crate::render::{FileText, Footer, FooterChanges, Header, Renderer, SaidLine};
use crate::stream_json::echo::Written;
use crate::stream_json::reader::LineFeed;
use crate::task::{Status, TaskRecord};
use crate::transcript::framing::{Framer, LineRef, Piece, MAX_LINE};

/// Where the view is in the task's list of runs: separators and footers are drawn from the
/// record, at the transcript offsets where each run began.
struct RunCursor {
    /// Runs whose output has begun in the buffer (the header begins the first).
    begun: usize,
    /// Runs whose footer is in the buffer.
    footed: usize,
    /// A task that ended without any run (cancelled while queued) got its footer.
    footed_runless: bool,
    /// Revert notes drawn (in the order of `notes`).
    noted: usize,
    /// Runs whose messages (prompt, what was said) the renderer was given.
    said_for: usize,
}

impl RunCursor {
    /// Called before a line is rendered: a line at or past the offset where a later run began
    /// means the earlier runs have ended.
    fn before_line(&mut self, line: LineRef, rec: &TaskRecord, r: &mut Renderer) {
        while self.begun < rec.runs.len() && line.offset >= rec.runs[self.begun].transcript_offset {
            self.foot_through(self.begun, rec, r);
            let run = &rec.runs[self.begun];
            r.separator(run.n, &run.prompt_title, rec.via_of(self.begun));
            self.begun += 1;
        }
        self.sync_said(rec, r);
    }

    /// Gives the renderer the current run's messages: its prompt when it begins, then what
    /// is said to it as the record lists it.
    fn sync_said(&mut self, rec: &TaskRecord, r: &mut Renderer) {
        // A run whose footer is drawn takes nothing more (what it never took was drawn then).
        if self.footed >= self.begun {
            return;
        }
        let Some(run) = rec.runs.get(self.begun.wrapping_sub(1)) else {
            return;
        };
        if self.said_for < self.begun {
            let prompt = run
                .prompt_len
                .zip(run.prompt_hash)
                .map(|(len, hash)| Written { len, hash });
            r.run_begins(prompt);
            self.said_for = self.begun;
        }
        if r.said_known() != run.said.len() {
            let lines: Vec<SaidLine> = run
                .said
                .iter()
                .map(|s| SaidLine {
                    title: s.title.clone(),
                    written: Written {
                        len: s.len,
                        hash: s.hash,
                    },
                })
                .collect();
            r.set_said(&lines);
        }
    }

    /// Footers (and separators for runs that wrote nothing) for every run that has finished,
    /// once the transcript has been read to its end.
    fn at_eof(&mut self, rec: &TaskRecord, r: &mut Renderer) {
        // Only a task that never ran (cancelled or interrupted while queued) ends without runs.
        let never_ran = rec.runs.is_empty()
            && matches!(
                rec.status,
                Status::Cancelled | Status::Interrupted | Status::Failed
            );
        if never_ran && !self.footed_runless {
            r.footer(&Footer {
                status: rec.status,
                duration_ms: None,
                num_turns: 0,
                cost_usd: 0.0,
                error: rec.error.as_deref(),
                stderr: &[],
                denied: &[],
                permissions: rec.options.permissions,
                changes: None,
                interrupted: false,
                task_cost_usd: None,
            });
            self.footed_runless = true;
        }
        self.sync_said(rec, r);
        while self.footed < rec.runs.len() && rec.runs[self.footed].status.is_finished() {
            if self.begun <= self.footed {
                let run = &rec.runs[self.footed];
                r.separator(run.n, &run.prompt_title, rec.via_of(self.footed));
                self.begun = self.footed + 1;
                self.sync_said(rec, r);
            }
            self.foot_through(self.footed + 1, rec, r);
        }
        self.notes_through(rec, r);
    }

    fn foot_through(&mut self, end: usize, rec: &TaskRecord, r: &mut Renderer) {
        while self.footed < end {
            let run = &rec.runs[self.footed];
            // The task's total so far, beside a run's own cost once there are several runs.
            let task_cost = (rec.runs.len() > 1)
                .then(|| rec.runs[..=self.footed].iter().map(|x| x.cost_usd).sum());
            r.footer(&Footer {
                status: run.status,
                duration_ms: run.duration_ms,
                num_turns: run.num_turns,
                cost_usd: run.cost_usd,
                error: run.error.as_deref(),
                stderr: &run.stderr,
                denied: &run.denied,
                permissions: rec.options.permissions,
                changes: footer_changes(run),
                interrupted: run.interrupted && run.status == Status::Cancelled,
                task_cost_usd: task_cost,
            });
            self.footed += 1;
            self.notes_through(rec, r);
        }
    }

    /// The notes of reverts made when the task had no more runs than are footed: each goes
    /// under the footer of the last run the task had then, so a buffer rendered later shows
    /// them where a live one did.
    fn notes_through(&mut self, rec: &TaskRecord, r: &mut Renderer) {
        let notes = notes(rec);
        while let Some(&(after, _, run_n, files, conflicts)) = notes.get(self.noted) {
            if after as usize > self.footed {
                break;
            }
            r.reverted(run_n, files, conflicts);
            self.noted += 1;
        }
    }
}

/// Every revert of the task's runs as (after how many runs, when, run, files, conflicts), in
/// the order they were made.
fn notes(rec: &TaskRecord) -> Vec<(u32, u64, u32, u64, u64)> {
    let mut out: Vec<_> = rec
        .runs
        .iter()
        .filter_map(|run| run.changes.as_ref().map(|c| (run.n, c)))
        .flat_map(|(n, c)| {
            c.reverts
                .iter()
                .map(move |v| (v.after_runs, v.at_ms, n, v.files, v.conflicts))
        })
        .collect();
    out.sort();
    out
}

/// The footer's part about the run's changes.
fn footer_changes(run: &crate::task::Run) -> Option<FooterChanges> {
    let ch = run.changes.as_ref()?;
    let files = run.files_changed.as_ref()?;
    Some(FooterChanges {
        files: ch.files,
        added: ch.added,
        removed: ch.removed,
        by_you: files.iter().filter(|f| f.edited_by_you).count() as u64,
        edits_only: ch.method == "files",
    })
}

/// The data path of a view from transcript bytes to rendered lines: framing, the separators and
/// footers of the record's runs, parsing, rendering. `View::run` pushes the file as it grows;
/// `render_all` pushes a finished one.
pub(super) struct Pipeline {
    pub(super) renderer: Renderer,
    cursor: RunCursor,
    framer: Framer,
    lines: LineFeed,
    /// The header was drawn while the task waited, in this many lines: it is drawn again with
    /// its start time when the first run starts, if nothing follows it yet.
    header_waiting: Option<usize>,
}

/// The header of `rec`'s buffer.
fn header(rec: &TaskRecord) -> Header<'_> {
    Header {
        id: rec.id,
        name: &rec.name,
        cwd: &rec.cwd,
        queued_at_ms: rec.created_at_ms,
        started_at_ms: rec.runs.first().and_then(|r| r.started_at_ms),
        model: rec.options.model.as_deref(),
        context: &rec.context,
        worktree: rec
            .worktree
            .as_ref()
            .map(|w| (w.branch.as_str(), w.path.as_str())),
        permissions: Some(rec.options.permissions.as_str()),
    }
}

impl Pipeline {
    pub(super) fn new(rec: &TaskRecord, transcript: &std::path::Path) -> Pipeline {
        let mut renderer = Renderer::new();
        let head = header(rec);
        renderer.header(&head);
        let header_waiting = head.started_at_ms.is_none().then(|| renderer.line_count());
        // A waiting Write request is shown as a diff against the file it would replace.
        renderer.set_file_reader(Box::new(read_for_diff));
        Pipeline {
            renderer,
            cursor: RunCursor {
                begun: 1,
                footed: 0,
                footed_runless: false,
                noted: 0,
                said_for: 0,
            },
            framer: Framer::new(MAX_LINE, 0),
            lines: LineFeed::new(transcript),
            header_waiting,
        }
    }

    /// A task that waited has started: its header gets the start time.
    pub(super) fn started(&mut self, rec: &TaskRecord) {
        let Some(drawn) = self.header_waiting else {
            return;
        };
        let head = header(rec);
        if head.started_at_ms.is_some() {
            self.renderer.redraw_header(&head, drawn);
            self.header_waiting = None;
        }
    }

    /// The next bytes of the transcript; `rec` is at least as new as the read that got them.
    pub(super) fn push(&mut self, chunk: &[u8], rec: &TaskRecord) {
        self.started(rec);
        self.cursor.sync_said(rec, &mut self.renderer);
        self.framer.push_pieces(chunk, |piece| {
            if let Piece::Line(line) = piece {
                self.cursor.before_line(line, rec, &mut self.renderer);
            }
            self.lines.piece(&mut self.renderer, piece);
        });
    }

    /// Everything written has been pushed, and `rec` was taken before the read that found no
    /// more: a finished run's last line and the footers of the finished runs go in. Returns
    /// whether a footer went in.
    pub(super) fn caught_up(&mut self, rec: &TaskRecord) -> bool {
        self.started(rec);
        if rec
            .runs
            .get(self.cursor.footed)
            .is_some_and(|r| r.status.is_finished())
        {
            // The run's process is gone: a last line without '\n' is complete.
            self.framer
                .finish_with(|line| self.lines.line(&mut self.renderer, line));
        }
        let footed = (
            self.cursor.footed,
            self.cursor.footed_runless,
            self.cursor.noted,
        );
        self.cursor.at_eof(rec, &mut self.renderer);
        footed
            != (
                self.cursor.footed,
                self.cursor.footed_runless,
                self.cursor.noted,
            )
    }
}

/// A file's text for a request's diff.
fn read_for_diff(path: &std::path::Path) -> FileText {
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileText::Missing,
        Err(e) => return FileText::Unshown(format!("unreadable: {e}")),
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return FileText::Unshown("not a regular file".into());
    }
    let mut buf = Vec::new();
    let max = crate::render::MAX_DIFF_FILE;
    if let Err(e) = f.take(max + 1).read_to_end(&mut buf) {
        return FileText::Unshown(format!("unreadable: {e}"));
    }
    if buf.len() as u64 > max {
        return FileText::Unshown(format!("over {} KiB", max / 1024));
    }
    String::from_utf8(buf).map_or_else(|_| FileText::Unshown("not text".into()), FileText::Text)
}

/// Renders a whole transcript to lines, for `export_markdown`: a view's pipeline.
pub fn render_all(rec: &TaskRecord, transcript: &std::path::Path) -> std::io::Result<Vec<String>> {
    use std::io::Read;
    let mut pipe = Pipeline::new(rec, transcript);
    let mut file = std::fs::File::open(transcript)?;
    let mut chunk = vec![0u8; CHUNK];
    let mut out = Vec::new();
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        pipe.push(&chunk[..n], rec);
        if let Some(u) = pipe.renderer.take_update() {
            u.apply_to(&mut out);
        }
    }
    pipe.caught_up(rec);
    if let Some(u) = pipe.renderer.take_update() {
        u.apply_to(&mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream_json::reader::LONG_STRING;
    use crate::testutil::{finished_record, fixture_dir, fixtures, fixtures_root};
    use crate::transcript::framing::Line;

    /// The view's way (lines lent by the framer, text deltas rendered in place) must render
    /// exactly what parsing every line into a message renders.
    #[test]
    fn lent_lines_and_in_place_deltas_render_like_parsed_messages() {
        for (name, data) in fixtures() {
            let path = fixtures_root().join(&name).join("stdout.jsonl");
            // Odd read sizes, so that lines also come out of the framer's partial buffer.
            let mut view = Renderer::new();
            let mut framer = Framer::new(MAX_LINE, 0);
            let mut feed = LineFeed::new(&path);
            for chunk in data.chunks(777) {
                framer.push_with(chunk, |l| feed.line(&mut view, l));
            }
            framer.finish_with(|l| feed.line(&mut view, l));
            let mut parsed = Renderer::new();
            let mut lines: Vec<Line> = Vec::new();
            let mut framer = Framer::new(MAX_LINE, 0);
            framer.push(&data, &mut lines);
            framer.finish(&mut lines);
            for l in &lines {
                parsed.feed_line(l);
            }
            let a = view.take_update().map(|u| u.lines);
            let b = parsed.take_update().map(|u| u.lines);
            assert!(a.as_ref().is_some_and(|l| !l.is_empty()), "{name}");
            assert_eq!(a, b, "{name}");
        }
    }

    /// The view gives every written line's string back to the renderer; reusing them must not
    /// change a single line.
    #[test]
    fn recycled_strings_render_the_same_lines() {
        for (name, data) in fixtures() {
            let path = fixtures_root().join(&name).join("stdout.jsonl");
            let (mut plain, mut reused) = (Vec::new(), Vec::new());
            let (mut a, mut b) = (Renderer::new(), Renderer::new());
            // Strings with old text in them, as after a write.
            b.recycle(vec!["stale text".repeat(20); 100]);
            let mut framer = Framer::new(MAX_LINE, 0);
            let (mut feed_a, mut feed_b) = (LineFeed::new(&path), LineFeed::new(&path));
            for chunk in data.chunks(333) {
                framer.push_with(chunk, |l| {
                    feed_a.line(&mut a, l);
                    feed_b.line(&mut b, l);
                });
                if let Some(u) = a.take_update() {
                    u.apply_to(&mut plain);
                }
                if let Some(u) = b.take_update() {
                    let lines = u.lines.clone();
                    u.apply_to(&mut reused);
                    b.recycle(lines);
                }
            }
            assert!(!plain.is_empty(), "{name}");
            assert_eq!(plain, reused, "{name}");
        }
    }

    /// Every line of the recordings with `type` moved last after a long string, the first line
    /// of each kind after one longer than the framer's cap (cut on the way): the view renders
    /// what it renders for the recording. Nothing is told by a line's first bytes.
    #[test]
    fn lines_whose_type_comes_last_after_a_long_string_render_the_same() {
        use crate::testutil::type_last;
        let dir = std::env::temp_dir().join(format!("ct-view-{}-type-last", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rec = finished_record();
        let mut over_cap = std::collections::HashSet::new();
        for (i, (name, data)) in fixtures().into_iter().enumerate() {
            let mut moved = Vec::with_capacity(data.len());
            for (k, l) in data.split(|&c| c == b'\n').enumerate() {
                let kind = format!("{:?}", crate::stream_json::parse_bytes(l));
                let kind = kind.split(['(', ' ', '{']).next().unwrap_or("").to_owned();
                // Only lines without long strings of their own, which the cut would change.
                let pad = if l.len() < LONG_STRING && over_cap.insert(kind) {
                    MAX_LINE + 1
                } else {
                    [0, 100, 8 * 1024, 100 * 1024][k % 4]
                };
                match std::str::from_utf8(l).ok().and_then(|t| type_last(t, pad)) {
                    Some(m) => moved.extend_from_slice(m.as_bytes()),
                    None => moved.extend_from_slice(l),
                }
                moved.push(b'\n');
            }
            moved.pop();
            let (a, b) = (
                dir.join(format!("{i}.jsonl")),
                dir.join(format!("{i}-moved.jsonl")),
            );
            std::fs::write(&a, &data).unwrap();
            std::fs::write(&b, &moved).unwrap();
            let want = render_all(&rec, &a).unwrap();
            assert!(want.len() > 3, "{name}");
            assert_eq!(render_all(&rec, &b).unwrap(), want, "{name}");
        }
        for kind in [
            "Init",
            "ApiRetry",
            "System",
            "Assistant",
            "User",
            "Stream",
            "Result",
        ] {
            assert!(over_cap.contains(kind), "{kind} missing from {over_cap:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A view wakes again after a run's footer (the record changes, the file is read to its end
    /// once more): what was said to that run was drawn before its footer and must not come back
    /// as waiting at the buffer's end (its renderer state was reset by the footer).
    #[test]
    fn a_footed_run_takes_no_more_said_messages() {
        let path = fixture_dir().join("control-live-queued-two/stdout.jsonl");
        let data = std::fs::read(&path).unwrap();
        let mut rec = finished_record();
        let prompt = Written::of("SCENARIO:slow chunks=8 delay=0.15 first turn");
        rec.runs[0].prompt_len = Some(prompt.len);
        rec.runs[0].prompt_hash = Some(prompt.hash);
        for text in ["SCENARIO:hello queued one", "SCENARIO:remember queued two"] {
            let w = Written::of(text);
            rec.runs[0].said.push(crate::task::Said {
                title: text.into(),
                len: w.len,
                hash: w.hash,
                at_ms: 0,
            });
        }
        let mut pipe = Pipeline::new(&rec, &path);
        let mut out = Vec::new();
        pipe.push(&data, &rec);
        assert!(pipe.caught_up(&rec));
        // The next wakes of the view: nothing more was written.
        for _ in 0..2 {
            pipe.push(&[], &rec);
            assert!(!pipe.caught_up(&rec));
        }
        while let Some(u) = pipe.renderer.take_update() {
            u.apply_to(&mut out);
        }
        let own: Vec<&String> = out.iter().filter(|l| l.starts_with("› ")).collect();
        assert_eq!(
            own,
            [
                "› SCENARIO:hello queued one · a turn of its own",
                "› SCENARIO:remember queued two · a turn of its own"
            ],
            "{out:#?}"
        );
        assert!(
            out.last().is_some_and(|l| l.starts_with("✓ done")),
            "{out:#?}"
        );
    }

    /// A long line cut on the way (its bytes handed over by the framer) renders exactly as one
    /// re-read from the file. With a small cap, most lines of the fixtures are "long".
    #[test]
    fn long_lines_cut_on_the_way_render_as_re_read_ones() {
        for (name, data) in fixtures() {
            let path = fixtures_root().join(&name).join("stdout.jsonl");
            for max_line in [40, 300, 2000] {
                let (mut on_the_way, mut re_read) = (Renderer::new(), Renderer::new());
                let (mut feed_a, mut feed_b) = (LineFeed::new(&path), LineFeed::new(&path));
                let (mut fa, mut fb) = (Framer::new(max_line, 0), Framer::new(max_line, 0));
                let mut truncated = 0;
                for chunk in data.chunks(777) {
                    fa.push_pieces(chunk, |p| {
                        truncated += usize::from(matches!(p, Piece::Line(l) if l.truncated()));
                        feed_a.piece(&mut on_the_way, p);
                    });
                    fb.push_with(chunk, |l| feed_b.line(&mut re_read, l));
                }
                assert!(feed_a.long.is_none(), "{name}");
                if max_line < 300 {
                    assert!(truncated > 0, "{name}");
                }
                let a = on_the_way.take_update().map(|u| u.lines);
                let b = re_read.take_update().map(|u| u.lines);
                assert_eq!(a, b, "{name} at {max_line}");
            }
        }
    }

    /// Issue 23 item 10: a task viewed while it waits says when it was queued, and once its
    /// first run starts the header says both times, drawn again in place; one that started at
    /// once says only when it started. The lines are the same whenever the view was opened.
    #[test]
    fn issue23_10_a_waiting_task_s_header_gets_its_start_time() {
        use crate::timefmt::{local, local_time_since};
        let empty = std::env::temp_dir().join("claude-tasks-no-transcript");
        let mut waiting = finished_record();
        waiting.status = Status::Queued;
        waiting.created_at_ms = 1_795_000_000_000;
        waiting.runs.clear();
        let mut pipe = Pipeline::new(&waiting, &empty);
        pipe.caught_up(&waiting);
        let mut buf = Vec::new();
        pipe.renderer.take_update().unwrap().apply_to(&mut buf);
        let queued = format!("queued {}", local(waiting.created_at_ms));
        let header = format!("cwd: / · {queued} · permissions: ask");
        assert_eq!(buf, ["# #1 t", header.as_str(), ""]);
        // Nothing changes while it waits.
        pipe.caught_up(&waiting);
        assert!(pipe.renderer.take_update().is_none());

        let mut started = finished_record();
        started.created_at_ms = waiting.created_at_ms;
        started.runs[0].started_at_ms = Some(waiting.created_at_ms + 65_000);
        started.runs[0].status = Status::Running;
        pipe.caught_up(&started);
        let u = pipe.renderer.take_update().unwrap();
        assert_eq!(u.start, 0);
        u.apply_to(&mut buf);
        let (time, _) = local_time_since(waiting.created_at_ms + 65_000, waiting.created_at_ms);
        let both = format!("cwd: / · {queued} · started {time} · permissions: ask");
        assert_eq!(buf, ["# #1 t", both.as_str(), ""]);
        // A view opened now draws the same header.
        let mut fresh = Pipeline::new(&started, &empty);
        fresh.caught_up(&started);
        assert_eq!(fresh.renderer.take_update().unwrap().lines, buf);

        // Started at once: one time, called the start.
        let mut at_once = started.clone();
        at_once.runs[0].started_at_ms = Some(waiting.created_at_ms + 20);
        let mut p = Pipeline::new(&at_once, &empty);
        p.caught_up(&at_once);
        let lines = p.renderer.take_update().unwrap().lines;
        assert_eq!(
            lines[1],
            format!(
                "cwd: / · started {} · permissions: ask",
                local(waiting.created_at_ms + 20)
            )
        );
    }

    /// Issue 23 items 11 and 12: the header names the model asked for as people read it and
    /// the prompt's context.
    #[test]
    fn issue23_11_12_the_header_names_the_model_and_the_context() {
        let empty = std::env::temp_dir().join("claude-tasks-no-transcript");
        let mut rec = finished_record();
        rec.options.model = Some("claude-opus-4-8[1m]".into());
        rec.context = vec!["src/sample.lua:2-4".into(), "README.md:10".into()];
        let mut pipe = Pipeline::new(&rec, &empty);
        pipe.caught_up(&rec);
        let lines = pipe.renderer.take_update().unwrap().lines;
        assert_eq!(
            lines[2],
            "model: claude-opus-4-8 (1M context) · context: src/sample.lua:2-4, README.md:10"
        );
        assert_eq!(lines[3], "");
        rec.options.model = None;
        let mut pipe = Pipeline::new(&rec, &empty);
        pipe.caught_up(&rec);
        let lines = pipe.renderer.take_update().unwrap().lines;
        assert_eq!(lines[2], "context: src/sample.lua:2-4, README.md:10");
    }
}
