//! claude-tasks: the backend of claude-tasks.nvim. See doc/protocol.md for the RPC surface and
//! ../shared/DESIGN.md for the architecture. Data flows one way: the CLI writes its transcript
//! file -> `follow` -> `framing` -> `claude` (stream-json) -> `render` -> `sink` -> `editor`
//! (through `outgoing`) -> Neovim.

pub mod log;

pub mod args;
pub mod changes;
pub mod claude;
pub mod config;
pub mod editor;
pub mod follow;
pub mod framing;
pub mod git;
pub mod longline;
pub mod outgoing;
pub mod priority;
pub mod proctree;
pub mod reaper;
pub mod render;
pub mod rpc;
pub mod runner;
pub mod scan;
pub mod sink;
pub mod store;
pub mod supervisor;
pub mod task;
#[doc(hidden)]
pub mod testutil;
pub mod timefmt;
pub mod view;
pub mod worktree;
