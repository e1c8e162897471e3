//! What the watchdog does with one task of its dead backend: which CLI is still its to end, and
//! when. A pure function of the record and what the process table and the transcript say.

use crate::store::TaskDir;
use crate::task::{Status, TaskRecord};

/// `keep_alive_ms` of a run whose record predates `Run::keep_alive_ms`: the default.
pub(super) const DEFAULT_KEEP_ALIVE_MS: u64 = 600_000;

/// How long a request waits for a backend to come back and answer it: the run's keep-alive
/// time, or the default one where that is 0 (idle CLIs are not kept then, but a question to
/// the user is not an idle CLI: `on_exit = "detach"` promises it to the next editor).
fn asking_time(keep: u64) -> u64 {
    if keep == 0 {
        DEFAULT_KEEP_ALIVE_MS
    } else {
        keep
    }
}

const NOBODY_ANSWERED: &str =
    "nobody answered its request for its keep-alive time (no editor came back)";

/// What is true of a task's CLI outside its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Facts {
    /// The record's CLI is still that process (pid, start time and marker), not a zombie.
    pub cli_alive: bool,
    /// The last complete line of the current run's part of the transcript is a `result`, and
    /// nothing was written after it: the CLI's turns are over.
    pub ends_with_result: bool,
    /// ... is a request of the CLI's (a permission, a question, a hook call), and nothing was
    /// written after it: it waits for an answer only a backend can give.
    pub asking: bool,
    /// When the transcript was last written, ms since the epoch (0: no transcript).
    pub modified_ms: u64,
}

impl Facts {
    /// Reads them for `rec` from `/proc` and its transcript.
    pub(super) fn read(rec: &TaskRecord, dir: &TaskDir) -> Facts {
        use crate::process::proctree;
        let cli_alive = rec.process.as_ref().is_some_and(|p| {
            proctree::is_alive(p.pid, p.start_time)
                && (p.marker.is_empty() || proctree::has_env_entry(p.pid, &p.marker))
        });
        let transcript = dir.transcript();
        let offset = rec.current_run().map_or(0, |r| r.transcript_offset);
        let modified_ms = std::fs::metadata(&transcript)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        use crate::stream_json::{control::Control, summary::last_message, Msg};
        let last = last_message(&transcript, offset);
        Facts {
            cli_alive,
            ends_with_result: matches!(last, Some(Msg::Result(_))),
            asking: matches!(last, Some(Msg::Control(Control::Request(_)))),
            modified_ms,
        }
    }
}

/// The watchdog's decision for one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Watch {
    /// Not the watchdog's (any more): no CLI, another backend's, or gone.
    Leave(&'static str),
    /// Its CLI works (a turn goes on): look again later.
    Wait,
    /// Close its idle CLI at this time (ms since the epoch), for this reason.
    CloseAt(u64, &'static str),
    /// Its CLI has waited for an answer to its request since its last line, and nobody has
    /// answered by this time: interrupt the turn (the request is withdrawn, the turn ends with
    /// a `result`), then close it.
    InterruptAt(u64, &'static str),
}

/// What to do with `rec`'s CLI, `owner` being the watchdog's backend `(pid, start time)`.
///
/// An idle CLI (the record's `live`) is closed at `until_ms`, unless its transcript grew since
/// it became idle (a follow-up reached it just before its backend died): then it is idle again
/// only once its last line is a `result`, and is kept the same time after that. A running one
/// (its backend died mid-run) is closed its run's `keep_alive_ms` after its `result` line, as
/// its backend would have. One whose last line is a request (a permission, a question) that no
/// backend came back to answer is given the same time from that request, then interrupted and
/// closed: no CLI outlives its keep-alive time without a backend.
pub(super) fn decide(rec: &TaskRecord, owner: (i32, u64), facts: &Facts) -> Watch {
    let Some(p) = &rec.process else {
        return Watch::Leave("its record names no CLI");
    };
    if (p.owner_pid, p.owner_start_time) != owner {
        return Watch::Leave("another backend owns it now");
    }
    if !facts.cli_alive {
        return Watch::Leave("its CLI is gone");
    }
    if let Some(live) = &rec.live {
        if facts.modified_ms <= live.since_ms {
            return Watch::CloseAt(live.until_ms, "its keep-alive time is over");
        }
        let keep = live.until_ms.saturating_sub(live.since_ms);
        if facts.asking {
            return Watch::InterruptAt(
                live.until_ms
                    .max(facts.modified_ms.saturating_add(asking_time(keep))),
                NOBODY_ANSWERED,
            );
        }
        if !facts.ends_with_result {
            return Watch::Wait;
        }
        return Watch::CloseAt(
            live.until_ms.max(facts.modified_ms.saturating_add(keep)),
            "its keep-alive time after its last turn is over",
        );
    }
    if rec.status != Status::Running {
        // Its backend ended the run and did not keep the CLI: it is closing it, or did.
        return Watch::Leave("its record says it neither runs nor idles");
    }
    let keep = rec
        .current_run()
        .and_then(|r| r.keep_alive_ms)
        .unwrap_or(DEFAULT_KEEP_ALIVE_MS);
    if facts.asking {
        return Watch::InterruptAt(
            facts.modified_ms.saturating_add(asking_time(keep)),
            NOBODY_ANSWERED,
        );
    }
    if !facts.ends_with_result {
        return Watch::Wait;
    }
    Watch::CloseAt(
        facts.modified_ms.saturating_add(keep),
        "its keep-alive time after the run its backend did not see end is over",
    )
}
