//! claude-tasks: the backend of claude-tasks.nvim. See doc/protocol.md for the RPC surface and
//! ../shared/DESIGN.md for the architecture. Data flows one way: the CLI writes its transcript
//! file -> `follow` -> `framing` -> `stream_json` -> `render` -> `sink` -> `editor`
//! (through `outgoing`) -> Neovim.

pub mod log;

pub mod hash;

pub mod cli;
pub mod nvim;
pub mod process;
pub mod render;
pub mod rpc;
pub mod store;
pub mod stream_json;
pub mod task;
pub mod tasks;
#[doc(hidden)]
pub mod testutil;
pub mod text;
pub mod timefmt;
pub mod transcript;
pub mod view;
