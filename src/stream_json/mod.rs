//! What one line of the Claude Code CLI's `stream-json` output means: the messages, and the
//! parsers that read them (`parse`, and `delta` for the text deltas that are most of a long
//! answer).
//!
//! Parsing never fails: a line we cannot understand is still a [`Msg`] (plain text, a truncated
//! line, or an unknown kind), because the transcript is shown to the user as it is, and a newer
//! CLI may add kinds and fields at any time.

pub mod control;
mod delta;
pub mod echo;
mod fields;
mod parse;
pub mod reader;
pub mod summary;
#[cfg(test)]
mod tests;

use serde::Serialize;
use serde_json::Value;

use crate::text::first_line;

pub use delta::{text_delta, DeltaParser, TextDelta};
pub use parse::{parse, parse_bytes, parse_ref};

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// `system/init`: the first line of every run.
    Init(Init),
    /// `system/api_retry`: the CLI is about to retry a failed API request.
    ApiRetry(ApiRetry),
    /// Any other `system` line (`status`, `task_started`, `task_notification`, ...).
    System {
        subtype: String,
    },
    Assistant(Assistant),
    User(User),
    /// A raw API streaming event (only with `--include-partial-messages`).
    Stream(Stream),
    /// The last line of a run.
    Result(ResultInfo),
    /// A line of the control protocol (requests, withdrawals, answers and their echoes).
    Control(control::Control),
    /// A line that is not a JSON object: shown as it is.
    Text(String),
    /// A line longer than the framer keeps: only its beginning is known.
    Truncated {
        prefix: String,
        total_len: usize,
    },
    /// A JSON object of a kind we do not know (`kind` is its `type`, possibly empty).
    Other {
        kind: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Init {
    pub session_id: String,
    pub model: String,
    pub cwd: String,
    pub permission_mode: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiRetry {
    pub attempt: u64,
    pub max_retries: u64,
    pub retry_delay_ms: f64,
    /// HTTP status; absent when the request did not get an answer (connection refused...).
    pub error_status: Option<u64>,
    /// The CLI's error category (`server_error`, `rate_limit`, `overloaded`, `unknown`...).
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assistant {
    pub message_id: String,
    /// Set for the messages of a subagent (the `Task` tool call that runs it).
    pub parent_tool_use_id: Option<String>,
    pub content: Vec<Block>,
    /// Set on the synthetic message the CLI writes when the API failed; its text is the error.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// Thinking text; empty for redacted thinking.
    Thinking(String),
    /// A block of another type (its `type`).
    Other(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub parent_tool_use_id: Option<String>,
    /// The echo of a user message we wrote (`--replay-user-messages`): the CLI took it.
    pub replay: bool,
    pub content: Vec<UserBlock>,
}

impl User {
    /// The message's text when it is one text (how our messages are written and echoed).
    pub fn text(&self) -> Option<&str> {
        match self.content.as_slice() {
            [one] => one.text(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserBlock {
    ToolResult(ToolResult),
    /// Text the CLI adds on the user's side, e.g. `[Request interrupted by user]`.
    Text(String),
    Other(String),
}

impl UserBlock {
    /// The text of a plain text block.
    pub fn text(&self) -> Option<&str> {
        match self {
            UserBlock::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The note the CLI adds when the user interrupted the run (`[Request interrupted by
    /// user]`, or `... by user for tool use]`).
    pub fn is_interruption(&self) -> bool {
        matches!(self, UserBlock::Text(t) if t.trim_start().starts_with("[Request interrupted by user"))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolResult {
    pub tool_use_id: String,
    /// The result as text (text parts of an array joined by newlines, `[image]` for images).
    pub content: String,
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub parent_tool_use_id: Option<String>,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    MessageStart {
        id: String,
    },
    BlockStart {
        index: u64,
        block: BlockKind,
    },
    TextDelta {
        index: u64,
        text: String,
    },
    InputJsonDelta {
        index: u64,
        partial_json: String,
    },
    ThinkingDelta {
        index: u64,
        thinking: String,
    },
    /// Another delta type (`signature_delta`, ...).
    OtherDelta {
        index: u64,
        kind: String,
    },
    BlockStop {
        index: u64,
    },
    MessageDelta,
    MessageStop,
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum BlockKind {
    Text,
    ToolUse { id: String, name: String },
    Thinking,
    Other(String),
}

/// The `result` line: how a run ended. Owned, so the supervisor can keep it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResultInfo {
    /// `success`, `error_during_execution`, `error_max_turns`...
    pub subtype: String,
    pub is_error: bool,
    pub duration_ms: Option<u64>,
    /// Time waiting for the API: like `total_cost_usd`, a running sum over every turn of the
    /// CLI's process.
    pub duration_api_ms: Option<u64>,
    pub num_turns: u64,
    /// A running sum over every turn of the CLI's process (0.11 then 0.22 for two equal turns),
    /// not this turn's cost.
    pub total_cost_usd: f64,
    /// The final assistant text, or the error text of an API failure.
    pub result: Option<String>,
    pub session_id: Option<String>,
    pub api_error_status: Option<u64>,
    pub permission_denials: Vec<Denial>,
    pub errors: Vec<String>,
    pub terminal_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Denial {
    pub tool_name: String,
    pub tool_input: Value,
}

/// The CLI's internal diagnostics in `errors` say nothing to a user.
fn is_diagnostic(error: &str) -> bool {
    error.starts_with("[ede_diagnostic]")
}

impl ResultInfo {
    /// Errors worth showing to a user, in order.
    pub fn user_errors(&self) -> impl Iterator<Item = &str> {
        self.errors
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty() && !is_diagnostic(e))
    }

    /// Why the run failed, in one line; `None` when it did not fail.
    pub fn error_message(&self) -> Option<String> {
        if !self.is_error {
            return None;
        }
        if let Some(e) = self.user_errors().next() {
            return Some(first_line(e).to_string());
        }
        if let Some(r) = self
            .result
            .as_deref()
            .map(first_line)
            .filter(|r| !r.is_empty())
        {
            return Some(r.to_string());
        }
        if let Some(status) = self.api_error_status {
            return Some(format!("API error {status}"));
        }
        Some(
            match self.terminal_reason.as_deref().filter(|r| !r.is_empty()) {
                Some(reason) if !self.subtype.is_empty() => format!("{} ({reason})", self.subtype),
                Some(reason) => reason.to_string(),
                None if !self.subtype.is_empty() => self.subtype.clone(),
                None => "error".to_string(),
            },
        )
    }
}
