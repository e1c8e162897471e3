//! The Claude Code CLI as a program we run: its command line, and what we write to it.

pub mod control;
pub mod invoke;
