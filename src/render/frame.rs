//! The lines the renderer draws around a run's output: the header, follow-up separators and
//! the footer of each run. Each of their lines is a list of segments joined by ` · `, so that
//! what one feature adds is one segment of its own.

use std::borrow::Cow;

use super::{Kind, Renderer};
use crate::stream_json::echo::Written;
use crate::task::{Permissions, Status, Via};
use crate::text::one_line;
use crate::timefmt;

/// Between the segments of a header or footer line.
const SEP: &str = " · ";
/// A task that started within this long of being queued did not wait: one time is shown.
const NO_WAIT_MS: u64 = 1000;
/// Most stderr lines under a failed run's footer.
pub const MAX_STDERR_LINES: usize = 5;

pub struct Header<'a> {
    pub id: u64,
    pub name: &'a str,
    pub cwd: &'a str,
    /// When the task was queued (its record was made).
    pub queued_at_ms: u64,
    /// When its first run started; None while it waits.
    pub started_at_ms: Option<u64>,
    /// The model asked for (`model` option); the CLI's own choice shows in each run's init line.
    pub model: Option<&'a str>,
    /// Where the prompt's context came from (`src/sample.lua:2-4`).
    pub context: &'a [String],
    /// A worktree task's branch and worktree directory.
    pub worktree: Option<(&'a str, &'a str)>,
    /// What happens to the CLI's permission requests (`ask` / `deny`).
    pub permissions: Option<&'a str>,
}

pub struct Footer<'a> {
    pub status: Status,
    pub duration_ms: Option<u64>,
    pub num_turns: u64,
    /// The run's own cost.
    pub cost_usd: f64,
    pub error: Option<&'a str>,
    /// The CLI's last stderr lines, for a run that failed without saying why on stdout.
    pub stderr: &'a [String],
    /// The tools the CLI denied during the run, one entry per denied call.
    pub denied: &'a [String],
    /// What happened to the task's permission requests: what allows a denied tool next time.
    pub permissions: Permissions,
    /// What the run changed, when that was recorded.
    pub changes: Option<FooterChanges>,
    /// The user interrupted the run's turn (the task stays for the next message).
    pub interrupted: bool,
    /// The task's cost over all its runs, shown after the run's own when the task has more
    /// than one run.
    pub task_cost_usd: Option<f64>,
}

/// The footer's `3 files +12 −4` segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FooterChanges {
    pub files: u64,
    pub added: u64,
    pub removed: u64,
    /// Files the editor saved while the run ran.
    pub by_you: u64,
    /// Outside git: only the files the edit tools named were seen.
    pub edits_only: bool,
}

impl Renderer {
    /// `# #3 fix the test`, `cwd: … · started … · permissions: ask`, `worktree: … · branch …` for a worktree task,
    /// the model and context when known, blank.
    pub fn header(&mut self, h: &Header) {
        self.close(false);
        self.blank_line();
        for line in header_lines(h) {
            self.doc.push_owned(line);
        }
        self.doc.push("");
        self.last_kind = Kind::Header;
    }

    /// Draws the header again in place of the one drawn while the task waited, now that its
    /// first run has started; only while nothing follows the header.
    pub fn redraw_header(&mut self, h: &Header, drawn_lines: usize) -> bool {
        if self.line_count() != drawn_lines || !matches!(self.open, super::Open::None) {
            return false;
        }
        self.doc.truncate(0, true);
        self.last_kind = Kind::Start;
        self.header(h);
        true
    }

    /// Start of a follow-up run: blank, `── ↻ follow-up #2 (live): <prompt> ──` (`resumed`
    /// when a new CLI resumed the session), blank.
    pub fn separator(&mut self, run_n: u32, prompt_title: &str, via: Via) {
        self.close(false);
        self.blank_line();
        let how = match via {
            Via::Live => " (live)",
            Via::Resumed => " (resumed)",
            Via::New => "",
        };
        self.doc.push_owned(format!(
            "── ↻ follow-up #{run_n}{how}: {} ──",
            one_line(prompt_title, 80)
        ));
        self.doc.push("");
        self.last_kind = Kind::Separator;
        self.new_run();
    }

    /// A run begins, its prompt written to the CLI as `prompt` says (`None` in records from
    /// before prompts were hashed): what is said to it starts anew.
    pub fn run_begins(&mut self, prompt: Option<Written>) {
        self.said_new_run(prompt);
    }

    /// The status line of a finished (or abandoned) run, after what it never took, and what
    /// explains it.
    pub fn footer(&mut self, f: &Footer) {
        self.said_run_ends();
        self.begin(Kind::Footer);
        self.doc.push_owned(footer_line(f));
        if f.status == Status::Failed {
            for l in f.stderr.iter().take(MAX_STDERR_LINES) {
                self.doc.push_owned(format!("  │ {}", one_line(l, 300)));
            }
        }
        if !f.denied.is_empty() {
            self.doc
                .push_owned(format!("  {}", denied_hint(f.denied, f.permissions)));
        }
        self.new_run();
    }

    /// `↶ run 1 reverted: 3 files, 1 conflict`, under the footer of the task's last run then.
    pub fn reverted(&mut self, run_n: u32, files: u64, conflicts: u64) {
        // A notice: several reverts in a row stay together.
        self.begin(Kind::Notice);
        let mut s = format!("↶ run {run_n} reverted: {}", count(files, "file", "files"));
        if conflicts > 0 {
            s.push_str(&format!(
                ", {} (:ClaudeTasks changes)",
                count(conflicts, "conflict", "conflicts")
            ));
        }
        self.doc.push_owned(s);
        self.new_run();
    }
}

fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `3 files +12 −4`, or nothing for a run that changed nothing.
fn changes_segment(c: &Option<FooterChanges>) -> Option<String> {
    let c = c.filter(|c| c.files > 0)?;
    let mut s = format!(
        "{} +{} −{}",
        count(c.files, "file", "files"),
        c.added,
        c.removed
    );
    if c.by_you > 0 {
        s.push_str(&format!(" ({} also edited by you)", c.by_you));
    }
    if c.edits_only {
        s.push_str(" (edit tools only: not a git work tree)");
    }
    Some(s)
}

pub(super) fn header_lines(h: &Header) -> Vec<String> {
    let name = one_line(h.name, 200);
    let mut lines = vec![format!("# #{} {name}", h.id).trim_end().to_string()];
    let mut when = vec![format!("cwd: {}", h.cwd)];
    match h.started_at_ms {
        Some(s) if s.saturating_sub(h.queued_at_ms) < NO_WAIT_MS => {
            when.push(format!("started {}", timefmt::local(s)));
        }
        Some(s) => {
            when.push(format!("queued {}", timefmt::local(h.queued_at_ms)));
            let (time, same_day) = timefmt::local_time_since(s, h.queued_at_ms);
            when.push(if same_day {
                format!("started {time}")
            } else {
                format!("started {}", timefmt::local(s))
            });
        }
        None => when.push(format!("queued {}", timefmt::local(h.queued_at_ms))),
    }
    if let Some(p) = h.permissions {
        when.push(format!("permissions: {p}"));
    }
    lines.push(when.join(SEP));
    if let Some((branch, path)) = h.worktree {
        lines.push(format!(
            "worktree: {path} · branch {}",
            one_line(branch, 200)
        ));
    }
    let mut about = Vec::new();
    if let Some(m) = h.model.filter(|m| !m.is_empty()) {
        about.push(format!("model: {}", model_name(&one_line(m, 100))));
    }
    if !h.context.is_empty() {
        let shown: Vec<String> = h.context.iter().map(|c| one_line(c, 200)).collect();
        about.push(format!("context: {}", shown.join(", ")));
    }
    if !about.is_empty() {
        lines.push(about.join(SEP));
    }
    lines
}

/// A model as the CLI names it for people: `claude-opus-4-8[1m]` (its id for the 1M-token
/// context window) is `claude-opus-4-8 (1M context)`; any other name is left as it is.
pub fn model_name(model: &str) -> Cow<'_, str> {
    let Some(inner) = model
        .strip_suffix(']')
        .and_then(|m| m.rsplit_once('['))
        .filter(|(base, _)| !base.is_empty())
    else {
        return Cow::Borrowed(model);
    };
    let (base, size) = inner;
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    let unit = match unit.to_ascii_lowercase().as_str() {
        "k" => "K",
        "m" => "M",
        _ => return Cow::Borrowed(model),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Cow::Borrowed(model);
    }
    Cow::Owned(format!("{base} ({digits}{unit} context)"))
}

/// `1 tool denied (Bash)`, `3 tools denied (Bash, Write)`: calls counted, tools named once.
pub(super) fn denied_summary(denied: &[String]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for d in denied {
        if !names.contains(&d.as_str()) {
            names.push(d);
        }
    }
    let unit = if denied.len() == 1 { "tool" } else { "tools" };
    let shown: Vec<String> = names.iter().take(5).map(|n| one_line(n, 60)).collect();
    let more = if names.len() > 5 { ", …" } else { "" };
    format!(
        "{} {unit} denied ({}{more})",
        denied.len(),
        shown.join(", ")
    )
}

/// What allows the denied tools next time. Where requests are denied at once
/// (`permissions = "deny"`), asking in the editor; where they were asked, the always rule of
/// the next request (`A`); and in both, the CLI's own `allowed_tools`.
pub(super) fn denied_hint(denied: &[String], permissions: Permissions) -> String {
    let mut names: Vec<String> = Vec::new();
    for d in denied {
        let n = format!("{:?}", one_line(d, 60));
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names.truncate(5);
    let option = format!("allowed_tools = {{ {} }}", names.join(", "));
    match permissions {
        Permissions::Deny => format!(
            "⚠ to allow: permissions = \"ask\" (you are asked), or {option} \
             (:help claude-tasks-permissions)"
        ),
        Permissions::Ask => format!(
            "⚠ to allow: A (always) on the next request, or {option} \
             (:help claude-tasks-permissions)"
        ),
    }
}

pub(super) fn footer_line(f: &Footer) -> String {
    let duration = f.duration_ms.map(timefmt::duration);
    let mut parts = match f.status {
        Status::Completed => {
            let mut parts = vec![match &duration {
                Some(d) => format!("✓ done in {d}"),
                None => "✓ done".to_string(),
            }];
            if f.num_turns > 0 {
                let unit = if f.num_turns == 1 { "turn" } else { "turns" };
                parts.push(format!("{} {unit}", f.num_turns));
            }
            if f.cost_usd > 0.0 {
                parts.push(format!("${:.4}", f.cost_usd));
            }
            parts.extend(task_cost(f));
            parts
        }
        Status::Failed => {
            let mut s = "✗ failed".to_string();
            if let Some(e) = f.error.map(|e| one_line(e, 300)).filter(|e| !e.is_empty()) {
                s.push_str(": ");
                s.push_str(&e);
            }
            let mut parts = vec![s];
            parts.extend(duration);
            parts
        }
        Status::Cancelled if f.interrupted => {
            let mut parts = vec![match &duration {
                Some(d) => format!("■ interrupted after {d}"),
                None => "■ interrupted".to_string(),
            }];
            if f.cost_usd > 0.0 {
                parts.push(format!("${:.4}", f.cost_usd));
            }
            parts.extend(task_cost(f));
            parts
        }
        Status::Cancelled => vec![match duration {
            Some(d) => format!("■ cancelled after {d}"),
            None => "■ cancelled".to_string(),
        }],
        Status::Interrupted => vec!["⚠ interrupted".to_string()],
        Status::Running => vec!["… running".to_string()],
        Status::Queued => vec!["… queued".to_string()],
    };
    parts.extend(changes_segment(&f.changes));
    if !f.denied.is_empty() {
        parts.push(denied_summary(f.denied));
    }
    if f.status == Status::Cancelled && f.interrupted {
        parts.push("the task waits for your next message".into());
    }
    parts.join(SEP)
}

/// `task $0.1090`: the task's total beside a run's own cost, when they differ.
fn task_cost(f: &Footer) -> Option<String> {
    f.task_cost_usd
        .filter(|t| *t > 0.0 && (*t - f.cost_usd).abs() >= 0.000_05)
        .map(|t| format!("task ${t:.4}"))
}
