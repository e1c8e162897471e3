//! The Claude Code CLI as a program we run: its command line.

pub mod invoke;
