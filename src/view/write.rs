//! A view's writes to its buffer: in order, at most `PIPELINE` in flight, and never one of a
//! view the buffer was attached again after (the `WriteGate`).

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::nvim::editor::{Editor, WriteError, Written};
use crate::render::{Renderer, Update};

/// Orders the writes of successive views of one buffer. Re-attaching a buffer starts a new view
/// whose first write replaces the buffer from line 0; a write of the view it replaces must never
/// land after that. Each attach takes a new generation; a view writes only while its generation
/// is current, holding the lock while it sends: Neovim runs one channel's requests in the order
/// they came, so an older write already sent lands first, and one not yet sent sees the newer
/// generation and is dropped.
#[derive(Default)]
pub struct WriteGate {
    generation: std::sync::atomic::AtomicU64,
    pub(super) lock: tokio::sync::Mutex<()>,
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

/// A write in flight. Spawned, never dropped: nvim-rs ends its whole RPC loop when the answer
/// to a request whose future was dropped arrives. A view that stops (detach, re-attach, dispose)
/// lets its last writes finish on their own. It gives its lines back, for the renderer to reuse.
pub(super) type Write = tokio::task::JoinHandle<(Result<(), WriteError>, Vec<String>)>;

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
pub(super) struct Link {
    sent: oneshot::Receiver<()>,
    done: oneshot::Receiver<Outcome>,
}

pub(super) struct LinkTx {
    sent: oneshot::Sender<()>,
    done: oneshot::Sender<Outcome>,
}

pub(super) fn link() -> (LinkTx, Link) {
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
pub(super) struct Target {
    pub(super) editor: Arc<dyn Editor>,
    pub(super) gate: Arc<WriteGate>,
    pub(super) generation: u64,
    pub(super) buf: i64,
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
pub(super) async fn write(
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
    let folds: Vec<_> = batch.folds.iter().map(|f| (f.first, f.last)).collect();
    let (sent, mut on_its_way) = oneshot::channel();
    let call = to
        .editor
        .write_folded(to.buf, batch.start, &batch.lines, &folds, sent);
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
        .write_fallback_folded(to.buf, batch.start, &batch.lines, &folds)
        .await?;
    Ok(Outcome::Redone)
}

/// What a finished write means for the view: go on, or stop.
pub(super) fn write_done(
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
