//! What the backend asks of Neovim: deliver an event to Lua, and write lines into a buffer.
//! A trait so the supervisor and the views can be tested without a Neovim.

use async_trait::async_trait;
use nvim_rs::Neovim;
use rmpv::Value;

#[derive(Debug)]
pub enum WriteError {
    /// The buffer was wiped: stop writing to it, silently.
    BufferGone,
    /// Another view of the buffer replaced this one (the buffer was attached again).
    Superseded,
    /// The channel is closed (Neovim is going away) or Lua raised an error.
    Failed(String),
}

#[async_trait]
pub trait Editor: Send + Sync + 'static {
    /// `require("claude-tasks.events").dispatch(ev)`.
    async fn event(&self, ev: Value);
    /// Replace lines `start..` of `buf` with `lines` (see doc/protocol.md).
    async fn write_lines(
        &self,
        buf: i64,
        start: usize,
        lines: Vec<String>,
    ) -> Result<(), WriteError>;
}

/// The writer of a backend started by Neovim with `jobstart(..., {rpc = true})`: our stdout.
pub type ParentWriter = nvim_rs::compat::tokio::Compat<tokio::fs::File>;

pub struct NvimEditor {
    nvim: Neovim<ParentWriter>,
    /// Set once a call failed because Neovim is gone: later failures are expected, not news.
    gone: std::sync::atomic::AtomicBool,
}

impl NvimEditor {
    pub fn new(nvim: Neovim<ParentWriter>) -> Self {
        NvimEditor {
            nvim,
            gone: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

const DISPATCH: &str = "return require('claude-tasks.events').dispatch(...)";
const WRITE: &str = "return require('claude-tasks.buffer').write(...)";

#[async_trait]
impl Editor for NvimEditor {
    async fn event(&self, ev: Value) {
        if let Err(e) = self.nvim.exec_lua(DISPATCH, vec![ev]).await {
            let closed =
                e.is_channel_closed() || matches!(*e, nvim_rs::error::CallError::SendError(..));
            let first = !self.gone.swap(closed, std::sync::atomic::Ordering::SeqCst);
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
        lines: Vec<String>,
    ) -> Result<(), WriteError> {
        let lines = Value::Array(lines.into_iter().map(Value::from).collect());
        match self
            .nvim
            .exec_lua(
                WRITE,
                vec![Value::from(buf), Value::from(start as u64), lines],
            )
            .await
        {
            Ok(Value::Boolean(false)) => Err(WriteError::BufferGone),
            Ok(_) => Ok(()),
            Err(e) => Err(WriteError::Failed(e.to_string())),
        }
    }
}
