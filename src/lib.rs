//! claude-tasks: the backend of claude-tasks.nvim; doc/protocol.md is its RPC surface. Two
//! paths run through it, one way each (ARCHITECTURE.md describes them and every room):
//!
//! - data: the CLI appends to `transcript.jsonl` -> `transcript` (follow, framing) ->
//!   `stream_json` (parse) -> `render` -> `view` (sink) -> `nvim` (editor) -> a Neovim buffer;
//! - control: Neovim's requests -> `rpc` -> `tasks` -> `process` (spawn, stop) and `store`;
//!   beside it the git layer, `worktree` -> `changes` -> `git`, which `tasks` uses for what
//!   each run changed and for worktree tasks.
//!
//! A room imports only rooms below it on these paths, never one above (`tests/layering.rs`
//! checks it).

// First: its macros are used everywhere.
pub mod log;

pub mod changes;
pub mod cli;
pub mod git;
pub mod nvim;
pub mod process;
pub mod render;
pub mod rpc;
pub mod store;
pub mod stream_json;
pub mod tasks;
pub mod transcript;
pub mod view;
pub mod worktree;

pub mod hash;
pub mod task;
pub mod text;
pub mod timefmt;

#[doc(hidden)]
pub mod testutil;
