//! One attached buffer: the task's transcript replayed from disk and then followed live,
//! framed, parsed, rendered and written to Neovim through the sink. The file is the truth and the
//! buffer a view of it, so a view can start at any time (even for a task finished long ago, or
//! one another editor runs) and any number of views can watch one task.
//!
//! Memory stays bounded: we stop reading while more than `READ_AHEAD` bytes of rendered lines
//! wait for Neovim, and the renderer keeps only lines that can still change.

mod pipeline;
pub mod sink;
mod write;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::nvim::editor::Editor;
use crate::task::TaskRecord;
use crate::transcript::follow::Follower;
use crate::view::sink::Sink;
use pipeline::Pipeline;
use write::{link, write, write_done, Link, Target, Write};

pub use pipeline::render_all;
pub use write::WriteGate;

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

pub struct View {
    pub editor: Arc<dyn Editor>,
    pub gate: Arc<WriteGate>,
    pub generation: u64,
    pub buf: i64,
    pub transcript: PathBuf,
    pub record: watch::Receiver<TaskRecord>,
    pub stop: watch::Receiver<bool>,
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
                    // The snapshot may predate the run that wrote these bytes; the record of
                    // now has it (a run is published before its CLI starts), and the header of
                    // a task that waited must get its start before any output follows it.
                    pipe.started(&self.record.borrow());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvim::editor::{WriteError, Written};
    use crate::testutil::{finished_record, fixture_dir};

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
            sent: crate::nvim::outgoing::Sent,
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
}
