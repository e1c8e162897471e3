//! One attached buffer: the task's transcript replayed from disk and then followed live,
//! framed, parsed, rendered and written to Neovim through the sink. The file is the truth and the
//! buffer a view of it, so a view can start at any time (even for a task finished long ago, or
//! one another editor runs) and any number of views can watch one task.
//!
//! Memory stays bounded: we stop reading while more than `READ_AHEAD` bytes of rendered lines
//! wait for Neovim, and the renderer keeps only lines that can still change.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{oneshot, watch};

use crate::claude::DeltaParser;
use crate::editor::{Editor, WriteError, Written};
use crate::follow::Follower;
use crate::framing::{Framer, LineRef, Piece, MAX_LINE};
use crate::longline::Cutter;
use crate::render::{Footer, Header, Renderer, Update};
use crate::sink::Sink;
use crate::task::{Status, TaskRecord};

/// Rendered bytes allowed to wait for Neovim before we stop reading the transcript.
pub const READ_AHEAD: usize = 2 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
/// Writes in flight at once. With one, Neovim sat idle between two writes for the whole turn
/// (its answer to us, our next batch, the request back to it): 0.1–0.3 ms a write, a third of
/// a flood's time. With two, the next request already waits in Neovim's input while it applies
/// the current one. Neovim runs one channel's requests in order, and its own events (keys,
/// timers) still get their turn between two of them: a call is capped at ~1 ms of its time.
const PIPELINE: usize = 2;
/// How long a view reads flat out before it lets other tasks run: ~5 reads.
const YIELD_EVERY: std::time::Duration = std::time::Duration::from_micros(250);

/// Orders the writes of successive views of one buffer. Re-attaching a buffer starts a new view
/// whose first write replaces the buffer from line 0; a write of the view it replaces must never
/// land after that. Each attach takes a new generation; a view writes only while its generation
/// is current, holding the lock while it sends: Neovim runs one channel's requests in the order
/// they came, so an older write already sent lands first, and one not yet sent sees the newer
/// generation and is dropped.
#[derive(Default)]
pub struct WriteGate {
    generation: std::sync::atomic::AtomicU64,
    lock: tokio::sync::Mutex<()>,
}

impl WriteGate {
    /// A new generation; views of older ones stop writing.
    pub fn next(&self) -> u64 {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    fn current(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub struct View {
    pub editor: Arc<dyn Editor>,
    pub gate: Arc<WriteGate>,
    pub generation: u64,
    pub buf: i64,
    pub transcript: PathBuf,
    pub record: watch::Receiver<TaskRecord>,
    pub stop: watch::Receiver<bool>,
}

/// Where the view is in the task's list of runs: separators and footers are drawn from the
/// record, at the transcript offsets where each run began.
struct RunCursor {
    /// Runs whose output has begun in the buffer (the header begins the first).
    begun: usize,
    /// Runs whose footer is in the buffer.
    footed: usize,
    /// A task that ended without any run (cancelled while queued) got its footer.
    footed_runless: bool,
}

impl RunCursor {
    /// Called before a line is rendered: a line at or past the offset where a later run began
    /// means the earlier runs have ended.
    fn before_line(&mut self, line: LineRef, rec: &TaskRecord, r: &mut Renderer) {
        while self.begun < rec.runs.len() && line.offset >= rec.runs[self.begun].transcript_offset {
            self.foot_through(self.begun, rec, r);
            let run = &rec.runs[self.begun];
            r.separator(run.n, &run.prompt_title);
            self.begun += 1;
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
            });
            self.footed_runless = true;
        }
        while self.footed < rec.runs.len() && rec.runs[self.footed].status.is_finished() {
            if self.begun <= self.footed {
                let run = &rec.runs[self.footed];
                r.separator(run.n, &run.prompt_title);
                self.begun = self.footed + 1;
            }
            self.foot_through(self.footed + 1, rec, r);
        }
    }

    fn foot_through(&mut self, end: usize, rec: &TaskRecord, r: &mut Renderer) {
        while self.footed < end {
            let run = &rec.runs[self.footed];
            r.footer(&Footer {
                status: run.status,
                duration_ms: run.duration_ms,
                num_turns: run.num_turns,
                cost_usd: run.cost_usd,
                error: run.error.as_deref(),
            });
            self.footed += 1;
        }
    }
}

/// A write in flight. Spawned, never dropped: nvim-rs ends its whole RPC loop when the answer
/// to a request whose future was dropped arrives. A view that stops (detach, re-attach, dispose)
/// lets its last writes finish on their own. It gives its lines back, for the renderer to reuse.
type Write = tokio::task::JoinHandle<(Result<(), WriteError>, Vec<String>)>;

/// How a write ended, as the write after it needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Applied,
    /// Redone through Lua after later writes may have been sent.
    Redone,
    /// Failed or dropped: the view stops.
    Stopped,
}

/// What a write waits for from the one before it: its request on its way (requests go out in
/// order), and its end (answers are acted on in order).
struct Link {
    sent: oneshot::Receiver<()>,
    done: oneshot::Receiver<Outcome>,
}

struct LinkTx {
    sent: oneshot::Sender<()>,
    done: oneshot::Sender<Outcome>,
}

fn link() -> (LinkTx, Link) {
    let (sent, sent_rx) = oneshot::channel();
    let (done, done_rx) = oneshot::channel();
    (
        LinkTx { sent, done },
        Link {
            sent: sent_rx,
            done: done_rx,
        },
    )
}

/// Where a view's writes go.
#[derive(Clone)]
struct Target {
    editor: Arc<dyn Editor>,
    gate: Arc<WriteGate>,
    generation: u64,
    buf: i64,
}

impl Target {
    /// The gate, while this view's generation is current.
    async fn turn(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, WriteError> {
        let turn = self.gate.lock.lock().await;
        if self.gate.current() != self.generation {
            return Err(WriteError::Superseded);
        }
        Ok(turn)
    }
}

/// One write of a pipeline (see `PIPELINE`), in order with the write before it (`prev`) and
/// the one after it (`next`).
async fn write(
    to: Target,
    batch: Update,
    prev: Option<Link>,
    next: LinkTx,
) -> (Result<(), WriteError>, Vec<String>) {
    let LinkTx { sent, done } = next;
    let res = write_in_order(&to, &batch, prev, sent).await;
    let _ = done.send(*res.as_ref().unwrap_or(&Outcome::Stopped));
    (res.map(|_| ()), batch.lines)
}

async fn write_in_order(
    to: &Target,
    batch: &Update,
    prev: Option<Link>,
    next_sent: oneshot::Sender<()>,
) -> Result<Outcome, WriteError> {
    let (prev_sent, prev_done) = prev.map(|l| (l.sent, l.done)).unzip();
    if let Some(s) = prev_sent {
        // Fired or dropped: either way the request before this one is out or never will be.
        let _ = s.await;
    }
    let turn = to.turn().await?;
    let (sent, mut on_its_way) = oneshot::channel();
    let call = to
        .editor
        .write_lines(to.buf, batch.start, &batch.lines, sent);
    tokio::pin!(call);
    // Held until the request is on its way: the gate, and the next write's go-ahead.
    let mut handoff = Some((turn, next_sent));
    let written = loop {
        tokio::select! {
            res = &mut call => break res,
            _ = &mut on_its_way, if handoff.is_some() => {
                // The next write, and another view's, may send theirs now.
                if let Some((_turn, next)) = handoff.take() {
                    let _ = next.send(());
                }
            }
        }
    };
    // Never sent (a failed call): dropping the go-ahead lets the next write try.
    drop(handoff);
    let before = match prev_done {
        Some(d) => d.await.unwrap_or(Outcome::Stopped),
        None => Outcome::Applied,
    };
    if before == Outcome::Stopped {
        return Err(WriteError::Superseded);
    }
    if written? == Written::Applied && before == Outcome::Applied {
        return Ok(Outcome::Applied);
    }
    // Not written (a text lock...), or written before the write ahead of it was redone through
    // Lua, whose replace-to-the-end may have removed these lines: redo it, after that one.
    let _turn = to.turn().await?;
    to.editor
        .write_fallback(to.buf, batch.start, &batch.lines)
        .await?;
    Ok(Outcome::Redone)
}

/// What a finished write means for the view: go on, or stop.
fn write_done(
    res: Result<(Result<(), WriteError>, Vec<String>), tokio::task::JoinError>,
    buf: i64,
    renderer: &mut Renderer,
) -> bool {
    let res = match res {
        Ok((res, lines)) => {
            renderer.recycle(lines);
            res
        }
        Err(e) => Err(WriteError::Failed(e.to_string())),
    };
    match res {
        Ok(()) => true,
        Err(WriteError::BufferGone | WriteError::Superseded) => false,
        Err(WriteError::Failed(e)) => {
            crate::log_warn!("view: write to buffer {buf} failed: {e}");
            false
        }
    }
}

impl View {
    pub async fn run(mut self) {
        let mut snapshot = self.record.borrow().clone();
        let mut pipe = Pipeline::new(&snapshot, &self.transcript);
        let mut follower = match Follower::open(&self.transcript, 0) {
            Ok(f) => Some(f),
            Err(e) => {
                crate::log_warn!("view: cannot open {}: {e}", self.transcript.display());
                None
            }
        };
        let mut chunk = vec![0u8; CHUNK];
        let mut sink = Sink::new();
        let mut inflight: VecDeque<Write> = VecDeque::new();
        // The last write's signals, for the next write to keep its order.
        let mut last: Option<Link> = None;
        let target = Target {
            editor: self.editor.clone(),
            gate: self.gate.clone(),
            generation: self.generation,
            buf: self.buf,
        };
        let mut at_eof = false;
        let mut last_yield = Instant::now();

        loop {
            // While reading flat out, a finished write is noticed here, so the next batch goes
            // out at once instead of when the read-ahead is used up.
            while inflight.front().is_some_and(|w| w.is_finished()) {
                if let Some(w) = inflight.pop_front() {
                    if !write_done(w.await, self.buf, &mut pipe.renderer) {
                        return;
                    }
                }
            }
            let room = sink.pending_bytes() + pipe.renderer.pending_bytes() < READ_AHEAD;
            if room && !at_eof {
                // The snapshot is taken before the read: if it says a run has ended, all of that
                // run's output is already in the file, so an empty read means we have all of it.
                snapshot = self.record.borrow().clone();
                let n = match follower.as_mut() {
                    Some(f) => f.read(&mut chunk).unwrap_or_else(|e| {
                        crate::log_warn!("view: read {}: {e}", self.transcript.display());
                        0
                    }),
                    None => 0,
                };
                if n > 0 {
                    pipe.push(&chunk[..n], &snapshot);
                } else {
                    if pipe.caught_up(&snapshot) {
                        sink.hurry();
                    }
                    at_eof = true;
                }
            }
            if let Some(u) = pipe.renderer.take_update() {
                sink.offer(u);
            }
            if at_eof {
                sink.caught_up();
            }
            let now = Instant::now();
            if inflight.len() < PIPELINE && sink.has_pending() && sink.ready(now) {
                if let Some(batch) = sink.next_batch(now) {
                    let (tx, rx) = link();
                    let prev = last.replace(rx);
                    inflight.push_back(tokio::spawn(write(target.clone(), batch, prev, tx)));
                }
            }
            if room && !at_eof {
                // More to read right now. Other tasks (the RPC loop, other views) get their turn
                // every `YIELD_EVERY`: a yield after every 64 KiB read had the runtime wake its
                // other worker each time, ~10 % of the backend's CPU in a flood.
                if last_yield.elapsed() >= YIELD_EVERY {
                    tokio::task::yield_now().await;
                    last_yield = Instant::now();
                }
                continue;
            }
            let due = tokio::time::Instant::from_std(sink.due());
            let can_send = inflight.len() < PIPELINE && sink.has_pending();
            let can_read = at_eof && follower.is_some();
            tokio::select! {
                res = async { inflight.front_mut().expect("guarded by the select condition").await }, if !inflight.is_empty() => {
                    inflight.pop_front();
                    if !write_done(res, self.buf, &mut pipe.renderer) {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(due), if can_send => {}
                res = async { follower.as_mut().expect("guarded by the select condition").changed().await }, if can_read => {
                    if let Err(e) = res {
                        crate::log_warn!("view: watching {}: {e}", self.transcript.display());
                        follower = None;
                    }
                    at_eof = false;
                }
                res = self.record.changed(), if at_eof => {
                    if res.is_err() {
                        // The task was disposed.
                        return;
                    }
                    at_eof = false;
                }
                _ = self.stop.changed() => return,
            }
        }
    }
}

/// Long strings of a line too long to hold are cut to this in its copy: what one shown
/// line holds, with room for the marker. Such a line's text was nearly always streamed (and the
/// streamed text stands); a tool result shows only a few lines anyway...
pub const LONG_STRING: usize = crate::render::MAX_SHOWN_LINE - 64;
/// ... and a copy that would still be larger than this is shown as a truncated line.
pub const LONG_OUT: usize = 2 * 1024 * 1024;

/// From framed lines to the renderer: text deltas parsed in place, a line longer than the framer
/// holds read with its long strings cut (so it is still understood: its tool calls, its result's
/// cost, a streamed text it confirms), anything else parsed whole.
struct LineFeed {
    deltas: DeltaParser,
    /// The line longer than the framer holds that is being read, cut on the way.
    long: Option<Cutter>,
    transcript: PathBuf,
}

impl LineFeed {
    fn new(transcript: &std::path::Path) -> LineFeed {
        LineFeed {
            deltas: DeltaParser::default(),
            long: None,
            transcript: transcript.to_path_buf(),
        }
    }

    /// What `Framer::push_pieces` hands over.
    fn piece(&mut self, renderer: &mut Renderer, piece: Piece) {
        match piece {
            Piece::Long(bytes) => self
                .long
                .get_or_insert_with(|| Cutter::new(LONG_STRING, LONG_OUT))
                .feed(bytes),
            Piece::Line(line) => self.line(renderer, line),
        }
    }

    /// One line. A long one was cut on the way if its bytes came as pieces; else it is re-read
    /// from the file (the truth). Only a line that is not JSON shows as a prefix.
    fn line(&mut self, renderer: &mut Renderer, line: LineRef) {
        let long = self.long.take();
        if line.truncated() {
            let len = line.total_len as u64;
            let short = match long {
                Some(cutter) => Ok(cutter.finish()),
                None => crate::longline::shorten_file(
                    &self.transcript,
                    line.offset,
                    len,
                    LONG_STRING,
                    LONG_OUT,
                ),
            };
            match short {
                Ok(Some(short)) => {
                    renderer.feed_shortened(&crate::claude::parse_bytes(&short.json));
                    return;
                }
                Ok(None) => {}
                Err(e) => crate::log_warn!(
                    "view: re-reading a {len}-byte line of {}: {e}",
                    self.transcript.display()
                ),
            }
        }
        // Most lines of a long answer: rendered from the bytes read, without building a message.
        if let Some(delta) = self.deltas.parse(line.bytes) {
            renderer.feed_text_delta(&delta);
            return;
        }
        renderer.feed(&crate::claude::parse_ref(line));
    }
}

/// The data path of a view from transcript bytes to rendered lines: framing, the separators and
/// footers of the record's runs, parsing, rendering. `View::run` pushes the file as it grows;
/// `render_all` pushes a finished one.
struct Pipeline {
    renderer: Renderer,
    cursor: RunCursor,
    framer: Framer,
    lines: LineFeed,
}

impl Pipeline {
    fn new(rec: &TaskRecord, transcript: &std::path::Path) -> Pipeline {
        let mut renderer = Renderer::new();
        renderer.header(&Header {
            id: rec.id,
            name: &rec.name,
            cwd: &rec.cwd,
            started_at_ms: rec.created_at_ms,
        });
        Pipeline {
            renderer,
            cursor: RunCursor {
                begun: 1,
                footed: 0,
                footed_runless: false,
            },
            framer: Framer::new(MAX_LINE, 0),
            lines: LineFeed::new(transcript),
        }
    }

    /// The next bytes of the transcript; `rec` is at least as new as the read that got them.
    fn push(&mut self, chunk: &[u8], rec: &TaskRecord) {
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
    fn caught_up(&mut self, rec: &TaskRecord) -> bool {
        if rec
            .runs
            .get(self.cursor.footed)
            .is_some_and(|r| r.status.is_finished())
        {
            // The run's process is gone: a last line without '\n' is complete.
            self.framer
                .finish_with(|line| self.lines.line(&mut self.renderer, line));
        }
        let footed = (self.cursor.footed, self.cursor.footed_runless);
        self.cursor.at_eof(rec, &mut self.renderer);
        footed != (self.cursor.footed, self.cursor.footed_runless)
    }
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
    use crate::framing::Line;
    use crate::testutil::{finished_record, fixture_dir, fixtures, fixtures_root};

    /// A Neovim buffer as far as writes go: every write applied in the order it came.
    #[derive(Default)]
    struct Buffer {
        state: std::sync::Mutex<(usize, Vec<String>)>,
        changed: tokio::sync::Notify,
    }

    impl Buffer {
        fn apply(&self, start: usize, lines: &[String]) {
            let mut st = self.state.lock().unwrap();
            st.0 += 1;
            st.1.truncate(start);
            st.1.extend_from_slice(lines);
            drop(st);
            self.changed.notify_waiters();
        }

        fn writes(&self) -> usize {
            self.state.lock().unwrap().0
        }

        /// Waits (bounded) until the buffer holds exactly `want`.
        async fn becomes(&self, want: &[String]) {
            let wait = async {
                loop {
                    let changed = self.changed.notified();
                    if self.state.lock().unwrap().1 == want {
                        return;
                    }
                    changed.await;
                }
            };
            if tokio::time::timeout(std::time::Duration::from_secs(10), wait)
                .await
                .is_err()
            {
                panic!("the buffer never became {want:?}");
            }
        }
    }

    #[async_trait::async_trait]
    impl Editor for Buffer {
        async fn event(&self, _: rmpv::Value) {}

        async fn write_lines(
            &self,
            _buf: i64,
            start: usize,
            lines: &[String],
            sent: crate::outgoing::Sent,
        ) -> Result<Written, WriteError> {
            let _ = sent.send(());
            self.apply(start, lines);
            Ok(Written::Applied)
        }

        async fn write_fallback(
            &self,
            _buf: i64,
            start: usize,
            lines: &[String],
        ) -> Result<(), WriteError> {
            self.apply(start, lines);
            Ok(())
        }
    }

    /// A buffer attached again while its first view had not sent a write yet: that view's
    /// writes must never land (the new view's first write replaces the buffer from line 0, and a
    /// late one of the old view would undo it), and the old view stops on its own. Each view
    /// writes through its own editor here, so whose write landed is plain; ending is the sync
    /// point: with the generation check gone, the old view writes and never stops.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_earlier_views_writes_are_dropped_once_the_buffer_is_attached_again() {
        let transcript = fixture_dir()
            .join("bash-stream-json-partial")
            .join("stdout.jsonl");
        let rec = finished_record();
        let want = render_all(&rec, &transcript).expect("rendered");
        let gate = Arc::new(WriteGate::default());
        let (old, new) = (Arc::new(Buffer::default()), Arc::new(Buffer::default()));
        let (_record, record) = watch::channel(rec);
        let (stop, stopped) = watch::channel(false);
        let view = |editor: Arc<Buffer>, generation| View {
            editor,
            gate: gate.clone(),
            generation,
            buf: 1,
            transcript: transcript.clone(),
            record: record.clone(),
            stop: stopped.clone(),
        };
        let first = view(old.clone(), gate.next());
        // The gate is busy (another view's write on its way) while the first view starts and
        // the buffer is attached again: whenever the first view's write gets its turn, it is
        // after the new generation began.
        let busy = gate.lock.lock().await;
        let first = tokio::spawn(first.run());
        let second = view(new.clone(), gate.next());
        drop(busy);
        let second = tokio::spawn(second.run());
        tokio::time::timeout(std::time::Duration::from_secs(10), first)
            .await
            .expect("the first view stops on its own")
            .expect("the first view did not panic");
        assert_eq!(old.writes(), 0);
        new.becomes(&want).await;
        let _ = stop.send(true);
        second.await.expect("the second view did not panic");
    }

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
                let kind = format!("{:?}", crate::claude::parse_bytes(l));
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
}
