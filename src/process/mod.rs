//! The CLI's processes: spawning, stopping, reaping, the process table and CPU priority; and
//! the backend's own helper (the watchdog), started in its own session.

pub mod helper;
pub mod priority;
pub mod proctree;
pub mod reaper;
pub mod spawn;
pub mod stop;
