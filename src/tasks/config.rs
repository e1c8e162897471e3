//! Policies the Lua side sets with `configure`; the rest of the user's options live in Lua.

use std::time::Duration;

use crate::git::Git;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExit {
    /// Cancel every running task (full ladder) before the backend exits.
    Cancel,
    /// Leave running tasks running; a later backend re-adopts them.
    Detach,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// One running task per directory; later ones wait in FIFO order.
    Queue,
    /// Refuse a start while a task runs in that directory.
    Reject,
    Parallel,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub on_exit: OnExit,
    pub concurrency: Concurrency,
    /// Each CLI process takes about 300 MB, so the default stays small.
    pub max_running: usize,
    pub cancel_grace: Duration,
    /// Finished tasks kept per project; older ones are disposed.
    pub keep: usize,
    pub export_markdown: bool,
    /// Record what each run changed (snapshots at its start and end, see `changes`).
    pub track_changes: bool,
    /// How git is run for the snapshots (tests point it at a configuration of their own).
    pub git: Git,
    /// How long a task's CLI stays alive and idle after a run, for the next follow-up; zero:
    /// it ends with its run.
    pub keep_alive: Duration,
    /// Most idle CLIs kept at once (each ~300 MB); the oldest are closed first.
    pub max_idle: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            on_exit: OnExit::Cancel,
            concurrency: Concurrency::Queue,
            max_running: 4,
            cancel_grace: Duration::from_millis(2000),
            keep: 100,
            export_markdown: false,
            track_changes: true,
            git: Git::default(),
            keep_alive: Duration::from_secs(600),
            max_idle: 2,
        }
    }
}

impl OnExit {
    pub fn parse(s: &str) -> Option<OnExit> {
        match s {
            "cancel" => Some(OnExit::Cancel),
            "detach" => Some(OnExit::Detach),
            _ => None,
        }
    }
}

impl Concurrency {
    pub fn parse(s: &str) -> Option<Concurrency> {
        match s {
            "queue" => Some(Concurrency::Queue),
            "reject" => Some(Concurrency::Reject),
            "parallel" => Some(Concurrency::Parallel),
            _ => None,
        }
    }
}
