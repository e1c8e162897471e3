//! What the backend asks of Neovim: deliver an event to Lua, and write lines into a buffer.
//! A trait so the supervisor and the views can be tested without a Neovim.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use nvim_rs::error::CallError;
use nvim_rs::Neovim;
use rmpv::Value;

use crate::nvim::outgoing::{Payloads, Sent};

/// Lines `first..=last` (0-based) of a write that the buffer shows folded.
pub type FoldRange = (usize, usize);

#[derive(Debug)]
pub enum WriteError {
    /// The buffer was wiped: stop writing to it, silently.
    BufferGone,
    /// Another view of the buffer replaced this one (the buffer was attached again).
    Superseded,
    /// The channel is closed (Neovim is going away) or Lua raised an error.
    Failed(String),
}

/// How a write went when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The lines are in the buffer.
    Applied,
    /// Nothing was written: do it again with `write_fallback` (a text lock, writes already
    /// waiting in Lua, a start past the end of the buffer).
    Fallback,
}

#[async_trait]
pub trait Editor: Send + Sync + 'static {
    /// `require("claude-tasks.events").dispatch(ev)`.
    async fn event(&self, ev: Value);
    /// Replace lines `start..` of `buf` with `lines` (see doc/protocol.md), the fast way.
    /// Borrowed: the caller reuses the strings afterwards. `sent` fires once the request is on
    /// its way, ahead of any later one (it is dropped unfired if the request never goes), so a
    /// caller may send its next write before this one is answered.
    async fn write_lines(
        &self,
        buf: i64,
        start: usize,
        lines: &[String],
        sent: Sent,
    ) -> Result<Written, WriteError>;
    /// The same through Lua's `output.write`, which waits out a text lock and keeps order with
    /// the writes it holds back.
    async fn write_fallback(
        &self,
        buf: i64,
        start: usize,
        lines: &[String],
    ) -> Result<(), WriteError>;
    /// `write_lines`, with the folds that begin in `lines` (closed at first). An editor that
    /// shows no folds need not know them.
    async fn write_folded(
        &self,
        buf: i64,
        start: usize,
        lines: &[String],
        folds: &[FoldRange],
        sent: Sent,
    ) -> Result<Written, WriteError> {
        let _ = folds;
        self.write_lines(buf, start, lines, sent).await
    }
    /// `write_fallback`, with the folds that begin in `lines`.
    async fn write_fallback_folded(
        &self,
        buf: i64,
        start: usize,
        lines: &[String],
        folds: &[FoldRange],
    ) -> Result<(), WriteError> {
        let _ = folds;
        self.write_fallback(buf, start, lines).await
    }
}

/// Folds as Lua takes them: a flat list of 0-based first and last lines.
fn encode_folds(folds: &[FoldRange]) -> Value {
    Value::Array(
        folds
            .iter()
            .flat_map(|&(first, last)| [Value::from(first as u64), Value::from(last as u64)])
            .collect(),
    )
}

/// The writer of a backend started by Neovim with `jobstart(..., {rpc = true})`: our stdout.
pub type ParentWriter = crate::nvim::outgoing::Outgoing;

pub struct NvimEditor {
    nvim: Neovim<ParentWriter>,
    /// Where a write's lines go, encoded, until its message is written (see `outgoing`).
    payloads: Arc<Payloads>,
    /// Set once a call failed because Neovim is gone: later failures are expected, not news.
    gone: AtomicBool,
    /// Set when this Neovim has no `nvim_call_atomic` (deprecated since 0.10): every write then
    /// goes through Lua.
    no_atomic: AtomicBool,
}

impl NvimEditor {
    pub fn new(nvim: Neovim<ParentWriter>, payloads: Arc<Payloads>) -> Self {
        NvimEditor {
            nvim,
            payloads,
            gone: AtomicBool::new(false),
            no_atomic: AtomicBool::new(false),
        }
    }

    /// Writes the lines with one `nvim_call_atomic` whose middle call is `nvim_buf_set_lines`:
    /// Neovim copies the lines from the message into the buffer directly. Turning every line
    /// into a Lua string and back (the `write` path) costs Neovim twice the CPU per batch, and
    /// that time is taken from the user's typing.
    async fn write_atomic(
        &self,
        buf: i64,
        start: usize,
        lines: &[String],
        folds: &[FoldRange],
        sent: Sent,
    ) -> Atomic {
        let call = |name: &str, args: Vec<Value>| {
            Value::Array(vec![Value::from(name), Value::Array(args)])
        };
        // Encoded once, straight from the strings, which stay here for the fallback through Lua.
        let (text, token) = self
            .payloads
            .add(crate::nvim::outgoing::encode_lines(lines), Some(sent));
        let calls = vec![
            call(
                "nvim_exec_lua",
                vec![
                    BEFORE_WRITE.into(),
                    Value::Array(vec![Value::from(buf), Value::from(start as u64)]),
                ],
            ),
            call(
                "nvim_buf_set_lines",
                vec![
                    Value::from(buf),
                    Value::from(start as u64),
                    Value::from(-1),
                    Value::from(false),
                    text,
                ],
            ),
            call(
                "nvim_exec_lua",
                vec![
                    AFTER_WRITE.into(),
                    Value::Array(vec![
                        Value::from(buf),
                        Value::from(true),
                        Value::from(start as u64),
                        encode_folds(folds),
                    ]),
                ],
            ),
        ];
        let res = self.nvim.call_atomic(calls).await;
        self.payloads.discard(token);
        let res = match res {
            Ok(res) => res,
            Err(e) => {
                if e.is_channel_closed() || matches!(*e, CallError::SendError(..)) {
                    return Atomic::Failed(e.to_string());
                }
                // Not a closed channel: this Neovim does not know the method.
                crate::log_info!("nvim_call_atomic failed ({e}); writing through Lua");
                self.no_atomic.store(true, Ordering::Relaxed);
                return Atomic::Fallback;
            }
        };
        // [results, nil] or [results, [index, type, message]] for the call that failed.
        let Some(Value::Array(err)) = res.get(1) else {
            return Atomic::Done;
        };
        let index = err.first().and_then(Value::as_u64);
        let message = err.get(2).and_then(Value::as_str).unwrap_or("");
        match index {
            Some(0) if message.contains("buffer gone") => Atomic::Gone,
            Some(0) => Atomic::Fallback,
            Some(1) => {
                // The buffer was made modifiable for a write that did not happen.
                let args = vec![Value::from(buf), Value::from(false)];
                if let Err(e) = self.nvim.exec_lua(AFTER_WRITE, args).await {
                    return Atomic::Failed(e.to_string());
                }
                Atomic::Fallback
            }
            _ => {
                // The lines are in; only moving the following windows failed.
                crate::log_warn!("after_write failed for buffer {buf}: {message}");
                Atomic::Done
            }
        }
    }
}

enum Atomic {
    Done,
    Gone,
    /// Write through Lua's `write`, which knows how to wait for a text lock and split lines.
    Fallback,
    Failed(String),
}

const DISPATCH: &str = "return require('claude-tasks.events').dispatch(...)";
const WRITE: &str = "return require('claude-tasks.output').write(...)";
const BEFORE_WRITE: &str = "return require('claude-tasks.output').before_write(...)";
const AFTER_WRITE: &str = "return require('claude-tasks.output').after_write(...)";

#[async_trait]
impl Editor for NvimEditor {
    async fn event(&self, ev: Value) {
        if let Err(e) = self.nvim.exec_lua(DISPATCH, vec![ev]).await {
            let closed = e.is_channel_closed() || matches!(*e, CallError::SendError(..));
            let first = !self.gone.swap(closed, Ordering::SeqCst);
            if !closed {
                crate::log_warn!("event dispatch failed: {e}");
            } else if first {
                crate::log_info!("Neovim is gone; events are no longer delivered");
            }
        }
    }

    async fn write_lines(
        &self,
        buf: i64,
        start: usize,
        lines: &[String],
        sent: Sent,
    ) -> Result<Written, WriteError> {
        self.write_folded(buf, start, lines, &[], sent).await
    }

    async fn write_fallback(
        &self,
        buf: i64,
        start: usize,
        lines: &[String],
    ) -> Result<(), WriteError> {
        self.write_fallback_folded(buf, start, lines, &[]).await
    }

    async fn write_folded(
        &self,
        buf: i64,
        start: usize,
        lines: &[String],
        folds: &[FoldRange],
        sent: Sent,
    ) -> Result<Written, WriteError> {
        if self.no_atomic.load(Ordering::Relaxed) {
            // Held until the answer: the next write waits for this one then.
            let _sent = sent;
            return self
                .write_fallback_folded(buf, start, lines, folds)
                .await
                .map(|()| Written::Applied);
        }
        match self.write_atomic(buf, start, lines, folds, sent).await {
            Atomic::Done => Ok(Written::Applied),
            Atomic::Gone => Err(WriteError::BufferGone),
            Atomic::Failed(e) => Err(WriteError::Failed(e)),
            Atomic::Fallback => Ok(Written::Fallback),
        }
    }

    async fn write_fallback_folded(
        &self,
        buf: i64,
        start: usize,
        lines: &[String],
        folds: &[FoldRange],
    ) -> Result<(), WriteError> {
        let lines = Value::Array(lines.iter().map(|l| Value::from(l.as_str())).collect());
        match self
            .nvim
            .exec_lua(
                WRITE,
                vec![
                    Value::from(buf),
                    Value::from(start as u64),
                    lines,
                    encode_folds(folds),
                ],
            )
            .await
        {
            Ok(Value::Boolean(false)) => Err(WriteError::BufferGone),
            Ok(_) => Ok(()),
            Err(e) => Err(WriteError::Failed(e.to_string())),
        }
    }
}
