//! The CLI's processes: spawning, stopping, reaping, the process table and CPU priority.

pub mod priority;
pub mod proctree;
pub mod reaper;
pub mod spawn;
pub mod stop;
