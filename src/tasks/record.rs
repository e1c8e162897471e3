//! Record transitions of a run's end: its outcome, its numbers, its end time.

use crate::process::reaper::Exit;
use crate::stream_json;
use crate::stream_json::summary::RunSummary;
use crate::task::{now_ms, Status, TaskRecord, Via, MAX_DENIED};
use crate::text::{cut_bytes, one_line};

/// Moves the end of the current run (and of the task) to `end_ms`, keeping the totals right.
pub(super) fn end_run_at(r: &mut TaskRecord, end_ms: u64) {
    if let Some(run) = r.runs.last_mut() {
        let start = run.started_at_ms.unwrap_or(end_ms);
        let end = end_ms.max(start);
        run.ended_at_ms = Some(end);
        run.duration_ms = Some(end - start);
        r.ended_at_ms = Some(end);
    }
    r.duration_ms = Some(r.runs.iter().filter_map(|x| x.duration_ms).sum());
}

/// Takes the numbers of a run's last `result` line into the run. The CLI's cost and API time
/// are running sums over every turn of its process, so a run in the CLI of the run before
/// (`via = live`) counts only what it added; `turns`: the API round trips of all the run's
/// turns (a run whose messages made two turns has two results), else the last result's.
pub(super) fn apply_result(r: &mut TaskRecord, res: &stream_json::ResultInfo, turns: Option<u64>) {
    let i = r.runs.len().saturating_sub(1);
    let (base_cost, base_api) = match (r.via_of(i), i.checked_sub(1).and_then(|p| r.runs.get(p))) {
        (Via::Live, Some(prev)) => (
            prev.cli_cost_usd.unwrap_or(0.0),
            prev.cli_api_ms.unwrap_or(0),
        ),
        _ => (0.0, 0),
    };
    if let Some(run) = r.runs.last_mut() {
        run.cost_usd = own(res.total_cost_usd, base_cost);
        run.cli_cost_usd = Some(res.total_cost_usd);
        run.api_ms = res
            .duration_api_ms
            .map(|a| own(a as f64, base_api as f64) as u64);
        run.cli_api_ms = res.duration_api_ms;
        run.num_turns = turns.unwrap_or(res.num_turns);
        run.denied = res
            .permission_denials
            .iter()
            .take(MAX_DENIED)
            .map(|d| one_line(&d.tool_name, 80))
            .collect();
    }
    if let Some(text) = &res.result {
        r.result = Some(cut_bytes(text, 4096));
    }
}

/// What a running sum added since `base`. A sum below its base is no running sum (a CLI that
/// counts per turn, or one that started over): it is taken as it is.
fn own(sum: f64, base: f64) -> f64 {
    if sum >= base {
        sum - base
    } else {
        sum
    }
}

/// Ends the current run and rolls its numbers into the task's totals.
pub(super) fn finish_run(
    r: &mut TaskRecord,
    status: Status,
    exit: Option<Exit>,
    error: Option<String>,
) {
    let now = now_ms();
    if let Some(run) = r.runs.last_mut() {
        run.status = status;
        run.ended_at_ms = Some(now);
        run.duration_ms = run.started_at_ms.map(|s| now.saturating_sub(s));
        match exit {
            Some(Exit::Code(c)) => run.exit_code = Some(c),
            Some(Exit::Signal(s)) => run.signal = Some(s),
            None => {}
        }
        run.error = error.clone();
    }
    r.status = status;
    r.ended_at_ms = Some(now);
    r.exit_code = match exit {
        Some(Exit::Code(c)) => Some(c),
        Some(Exit::Signal(s)) => Some(128 + s),
        None => None,
    };
    r.error = error;
    // The caller keeps them when the CLI stays alive and idle.
    r.process = None;
    r.live = None;
    // Nothing waits any more: the CLI that asked is gone.
    r.pending.clear();
    r.duration_ms = Some(r.runs.iter().filter_map(|x| x.duration_ms).sum());
    r.cost_usd = r.runs.iter().map(|x| x.cost_usd).sum();
    r.num_turns = r.runs.iter().map(|x| x.num_turns).sum();
}

/// The run's status: the `result` line decides, except that a cancel we asked for is a cancel
/// whatever the CLI wrote or its exit code said.
/// `exit` is None for a re-adopted process, whose exit status only its late parent could see.
pub fn outcome(s: &RunSummary, exit: Option<Exit>, cancelled: bool) -> (Status, Option<String>) {
    if cancelled {
        return (Status::Cancelled, None);
    }
    match &s.result {
        Some(r) if !r.is_error => (Status::Completed, None),
        Some(r) => (Status::Failed, r.error_message()),
        None => {
            let why = match exit {
                Some(Exit::Code(0)) | None => "the CLI exited without a result".to_owned(),
                Some(Exit::Code(c)) => format!("the CLI exited with code {c} without a result"),
                Some(Exit::Signal(sig)) => format!("the CLI was killed by signal {sig}"),
            };
            (Status::Failed, Some(why))
        }
    }
}
