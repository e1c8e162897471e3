//! The task record: what `task.json` holds, what `list`/`get` return and what every event carries.
//!
//! One record per task directory. It is the backend's summary of the task; the transcript file
//! next to it is the truth about what the agent did.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::text::title_of;

/// Version of the on-disk record layout; a record with another version is skipped with a warning.
pub const RECORD_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    /// The backend that ran it went away before it ended; it can be resumed.
    Interrupted,
}

impl Status {
    pub fn is_finished(self) -> bool {
        !matches!(self, Status::Queued | Status::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Interrupted => "interrupted",
        }
    }
}

/// How the task's CLI is invoked; fixed at `start`, reused by every follow-up run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskOptions {
    /// The program and its leading arguments (`cmd` option), e.g. `["claude"]`.
    pub cmd: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub permission_mode: String,
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    /// Extra CLI arguments (`args` option), placed before ours.
    #[serde(default)]
    pub args: Vec<String>,
    /// What happens to the CLI's permission requests.
    #[serde(default)]
    pub permissions: Permissions,
}

/// What happens to a permission request that no rule of the plugin allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permissions {
    /// It waits for the user's answer in the editor.
    #[default]
    Ask,
    /// It is denied at once (a run nobody watches), as `claude -p` denies it.
    Deny,
}

impl Permissions {
    pub fn as_str(self) -> &'static str {
        match self {
            Permissions::Ask => "ask",
            Permissions::Deny => "deny",
        }
    }
}

/// A request of the CLI that waits for the user (doc/protocol.md, "What is waiting").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub request_id: String,
    pub tool_name: String,
    /// As the CLI sent it, except that strings over 64 KiB are cut (`input_cut`).
    pub input: Value,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub input_cut: bool,
    #[serde(default)]
    pub suggestions: Vec<Value>,
    /// When the backend saw it, ms since the epoch.
    pub since: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    /// One line for notifications and pickers: `Bash: npm test`.
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_path: Option<String>,
    /// The file (relative to the task) with unsaved changes that made our hook ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsaved: Option<String>,
    /// The "always" rule the plugin proposes for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Where the request's line starts in the transcript (its whole input is read back from
    /// there when it was cut).
    pub offset: u64,
}

/// How a run reached the CLI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// A new CLI in a new session: the task's first run.
    #[default]
    New,
    /// A new CLI resuming the task's session (`--resume`): a cold follow-up.
    Resumed,
    /// Written to the CLI that ran the run before, kept alive and idle: a warm follow-up.
    Live,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::New => "new",
            Via::Resumed => "resumed",
            Via::Live => "live",
        }
    }
}

/// A message said to the CLI while a run was going on (`resume` of a running task): written at
/// once, taken by the CLI into the running turn or as a turn of its own after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Said {
    /// The first line, shortened (the whole text is in `said-<run>-<k>.txt`).
    pub title: String,
    /// Bytes and FNV-1a hash of the whole text: the CLI's echo of it (joined with newlines
    /// when it takes several at once) is recognised by them.
    pub len: u64,
    pub hash: u64,
    pub at_ms: u64,
}

/// A task whose CLI stays alive and idle after its run, for the next follow-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    /// When the CLI became idle, ms since the epoch.
    pub since_ms: u64,
    /// When it is closed unless a follow-up comes first (`keep_alive_ms` after `since_ms`).
    pub until_ms: u64,
}

/// One run of the task: its prompt and what the CLI did with it, up to the moment the CLI was
/// idle again (or gone). The first prompt, or a follow-up: `--resume` in a new CLI, or written to
/// the live one (`via`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// 1-based; the prompt is in `prompt-<n>.txt`.
    pub n: u32,
    /// The first line of the prompt, shortened, for separators and pickers.
    pub prompt_title: String,
    /// How the prompt reached the CLI. Absent in older records: `new` for the first run,
    /// `resumed` for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    /// Bytes and FNV-1a hash of the prompt (see `Said`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_len: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_hash: Option<u64>,
    /// Messages said while the run went on, in the order they were written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub said: Vec<Said>,
    /// The user interrupted the run's turn (the task stays, for the next message).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// Byte offset in `transcript.jsonl` where this run's output begins.
    pub transcript_offset: u64,
    /// Byte offset in `stderr.log` where this run's stderr begins.
    #[serde(default)]
    pub stderr_offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
    /// `queued` until spawned, then the run's own outcome.
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// This run's own cost (the CLI's `total_cost_usd` sums every turn of its process: see
    /// `cli_cost_usd`).
    #[serde(default)]
    pub cost_usd: f64,
    /// API round trips of this run's turns.
    #[serde(default)]
    pub num_turns: u64,
    /// This run's own time waiting for the API (the CLI's `duration_api_ms`, less that of the
    /// process's earlier runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_ms: Option<u64>,
    /// The CLI's running sums at the run's last `result`: `total_cost_usd` and
    /// `duration_api_ms` over every turn of its process, the base of the next live run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli_cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli_api_ms: Option<u64>,
    /// Why the run failed, in one line (missing binary, API error, no result line...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The marker its CLI carries (`CLAUDE_TASKS_TASK=<hex>`), on disk before the spawn: a
    /// backend that dies between the spawn and the record of the CLI's pid leaves a CLI the next
    /// backend can still find and adopt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    /// How long its CLI stays idle after the run's `result` (`keep_alive_ms` as the run
    /// started; 0: closed with the run), on disk before the spawn: a backend that dies mid-run
    /// leaves the deadline to its watchdog (`tasks/watchdog`). Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_ms: Option<u64>,
    /// The CLI's last stderr lines when the run failed without a result (trimmed, sanitized,
    /// at most a few short lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stderr: Vec<String>,
    /// The tools the CLI denied during the run (its result's `permission_denials`), one name
    /// per denied call, at most `MAX_DENIED`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<String>,
    /// The files the run changed (from its start to its end), once it ended; at most
    /// `MAX_FILES_CHANGED` of them (`changes` has the totals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_changed: Option<Vec<FileChanged>>,
    /// How the run's changes were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<RunChanges>,
}

/// The most files a run's `files_changed` lists: every event carries the record, and a run
/// that writes thousands of files (a dependency install) must not make each one megabytes.
pub const MAX_FILES_CHANGED: usize = 500;

/// One file a run changed. Paths are relative to `RunChanges::root`, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChanged {
    pub path: String,
    /// The name before a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// `added`, `modified`, `deleted` or `renamed`.
    pub status: String,
    pub added: u64,
    pub removed: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary: bool,
    /// Saved from the editor while the run ran: the change may be the user's as well.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub edited_by_you: bool,
}

/// How a run's changes were recorded (issue 22), and what became of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunChanges {
    /// `git`: snapshots of the whole work tree; `files`: outside git, the files the run's edit
    /// tools named; `none`: not recorded (`error` says why).
    pub method: String,
    /// Where the paths of `files_changed` are: the work tree's top level, or the task's
    /// directory for `files`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root: String,
    /// Why not git, for `files`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Why the changes were not recorded, or not read at the run's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Totals over every changed file, once the run ended.
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub added: u64,
    #[serde(default)]
    pub removed: u64,
    /// The snapshots as `changes/` keeps them (the run's start while it runs, both ends once it
    /// ended); opaque here.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub snapshots: serde_json::Value,
    /// Each time the run was reverted, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverts: Vec<Revert>,
}

/// A revert of a run's changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revert {
    pub at_ms: u64,
    /// How many runs the task had then: the output buffer says so after that run's footer.
    pub after_runs: u32,
    /// Files written back.
    pub files: u64,
    /// Conflicts left (markers, or files left as they were).
    pub conflicts: u64,
}

/// Most denied calls a run's record lists.
pub const MAX_DENIED: usize = 100;

/// The process that runs (or ran) the current run, and the backend that owns it; used to
/// re-adopt a task after a backend crash and to tell a reused pid from ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot).
    pub start_time: u64,
    pub owner_pid: i32,
    pub owner_start_time: u64,
    /// `CLAUDE_TASKS_TASK=<hex>`: the environment entry every process of the task's tree
    /// inherits, so a later backend can find the tree (setsid tools included) to cancel it.
    #[serde(default)]
    pub marker: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub schema: u32,
    pub id: u64,
    pub name: String,
    /// Absolute working directory of the task (the project).
    pub cwd: String,
    pub status: Status,
    /// Chosen by us at spawn (`--session-id=`), so even a task killed before its first line
    /// can be resumed.
    pub session_id: String,
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
    /// Sum over runs of the time each run ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Sum over runs.
    #[serde(default)]
    pub cost_usd: f64,
    /// Sum over runs.
    #[serde(default)]
    pub num_turns: u64,
    /// The `result` text of the last run that wrote one (shortened to a few KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Why the last run failed, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub options: TaskOptions,
    pub runs: Vec<Run>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessInfo>,
    /// Set when the user asked to cancel; a cancelled run is `cancelled` whatever its exit code.
    #[serde(default)]
    pub cancel_requested: bool,
    /// The CLI's requests waiting for the user, oldest first.
    #[serde(default)]
    pub pending: Vec<Pending>,
    /// This task's own "always" rules (`Bash(npm test:*)`).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Where the prompt's context came from, as the editor names it (`src/sample.lua:2-4`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
    /// A worktree task's worktree (`isolation = "worktree"`); none for a task run in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<TaskWorktree>,
    /// Its CLI (`process`) is alive and idle, waiting for the next follow-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Live>,
    /// Claude's own TUI was last opened on the task's session then (`:ClaudeTasks tui`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tui_at_ms: Option<u64>,
}

/// A worktree task's git worktree: where its CLI runs and what became of it. The worktree and
/// its branch stay until `discard` (or `dispose`), whatever happens to the editor or backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskWorktree {
    /// The worktree's directory (in the task's directory of the state directory).
    pub path: String,
    /// Its branch, without `refs/heads/`.
    pub branch: String,
    /// The commit it started from: the user's files (HEAD plus uncommitted and untracked
    /// changes) when the task started. None until the worktree is made, just after `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The user's HEAD commit then (none in a repository without commits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// Where the CLI runs, every run: the project's directory inside the worktree (Claude's
    /// sessions are keyed by the directory, so a follow-up must run there too).
    pub cwd: String,
    /// The last `apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<WorktreeApplied>,
    /// Set by `discard`: the worktree and its branch are gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discarded_at_ms: Option<u64>,
}

/// What the last `apply` of a worktree task brought back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorktreeApplied {
    pub at_ms: u64,
    /// The snapshot of the worktree that was applied: the next `apply` brings only what changed
    /// since.
    pub result: String,
    /// The commit made on the user's branch (`apply = "commit"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Files written into the user's tree.
    pub files: u32,
    /// Conflicts left in them (markers, or files left as they were).
    pub conflicts: u32,
}

impl Run {
    /// A run that starts now, its output beginning at the given offsets of the task's files.
    pub fn starting(n: u32, prompt: &str, transcript_offset: u64, stderr_offset: u64) -> Run {
        Run {
            n,
            prompt_title: title_of(prompt, 80),
            via: None,
            prompt_len: Some(prompt.len() as u64),
            prompt_hash: Some(crate::hash::fnv1a64(prompt.as_bytes())),
            said: Vec::new(),
            interrupted: false,
            api_ms: None,
            cli_cost_usd: None,
            cli_api_ms: None,
            transcript_offset,
            stderr_offset,
            started_at_ms: Some(now_ms()),
            ended_at_ms: None,
            status: Status::Running,
            exit_code: None,
            signal: None,
            duration_ms: None,
            cost_usd: 0.0,
            num_turns: 0,
            error: None,
            marker: None,
            keep_alive_ms: None,
            stderr: Vec::new(),
            denied: Vec::new(),
            files_changed: None,
            changes: None,
        }
    }
}

impl TaskRecord {
    /// A task that has not run yet: no runs, no process, no outcome.
    pub fn queued(
        id: u64,
        name: String,
        cwd: String,
        session_id: String,
        options: TaskOptions,
        created_at_ms: u64,
    ) -> TaskRecord {
        TaskRecord {
            schema: RECORD_SCHEMA,
            id,
            name,
            cwd,
            status: Status::Queued,
            session_id,
            created_at_ms,
            started_at_ms: None,
            ended_at_ms: None,
            duration_ms: None,
            exit_code: None,
            cost_usd: 0.0,
            num_turns: 0,
            result: None,
            error: None,
            options,
            runs: Vec::new(),
            process: None,
            cancel_requested: false,
            context: Vec::new(),
            worktree: None,
            pending: Vec::new(),
            rules: Vec::new(),
            live: None,
            tui_at_ms: None,
        }
    }

    pub fn current_run(&self) -> Option<&Run> {
        self.runs.last()
    }

    pub fn current_run_mut(&mut self) -> Option<&mut Run> {
        self.runs.last_mut()
    }

    /// How run `i` (0-based) reached the CLI, for records written before `via`.
    pub fn via_of(&self, i: usize) -> Via {
        self.runs
            .get(i)
            .and_then(|r| r.via)
            .unwrap_or(if i == 0 { Via::New } else { Via::Resumed })
    }

    /// Where the task's CLI runs: its worktree's directory for a worktree task, else `cwd`.
    pub fn run_cwd(&self) -> &str {
        self.worktree.as_ref().map_or(&self.cwd, |w| &w.cwd)
    }

    /// A worktree task whose worktree has not been discarded.
    pub fn has_live_worktree(&self) -> bool {
        self.worktree
            .as_ref()
            .is_some_and(|w| w.discarded_at_ms.is_none())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
