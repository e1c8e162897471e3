//! Coalescing of buffer writes. The renderer says "replace from line N to the end"; the sink
//! merges those updates while a call is in flight or the frame has not elapsed, cuts them into
//! calls of at most `MAX_LINES_PER_CALL` lines and `MAX_BYTES_PER_CALL` bytes, and decides when
//! the next call may start: at once after a quiet period (low latency for a trickle), then at most
//! once per frame (few calls for a trickle that goes on), call after call for a backlog, and at
//! once for the end of a burst and for a footer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::render::{Fold, Update};

pub const FRAME: Duration = Duration::from_millis(16);
pub const MAX_LINES_PER_CALL: usize = 10_000;
/// Neovim's main thread is busy for the whole of a call (about 1 ms per 100 KiB of lines), so
/// a call is kept well under a frame: the editor stays responsive during a flood, and the
/// read-ahead keeps the pipeline full anyway.
pub const MAX_BYTES_PER_CALL: usize = 128 * 1024;

/// What waits to be sent: the document's lines from `start` on. A deque, because calls take
/// their lines from its front while the renderer adds at its back: with a `Vec`, every call
/// moved the whole rest of a backlog (up to `READ_AHEAD`, ~26k lines) to a new allocation.
struct Carry {
    start: usize,
    lines: VecDeque<String>,
    /// Folds of those lines (a fold may reach past the lines a call takes).
    folds: Vec<Fold>,
}

#[derive(Default)]
pub struct Sink {
    carry: Option<Carry>,
    carry_bytes: usize,
    last_send: Option<Instant>,
    /// The last call was a full one: a burst is being sent.
    last_full: bool,
    /// The next call goes out as soon as the view may send one.
    urgent: bool,
}

/// What `lines` take in a call: each line and its newline.
fn bytes_of<'a>(lines: impl IntoIterator<Item = &'a String>) -> usize {
    lines.into_iter().map(|l| l.len() + 1).sum()
}

impl Sink {
    pub fn new() -> Sink {
        Sink::default()
    }

    /// Merges `u` into what waits to be sent. `u` covers `u.start..` of the document, so it
    /// supersedes everything pending from `u.start` on.
    pub fn offer(&mut self, u: Update) {
        let added = bytes_of(&u.lines);
        match self.carry.as_mut() {
            Some(c) if u.start > c.start => {
                // Lines between c.start and u.start did not change since `c` was taken.
                let keep = (u.start - c.start).min(c.lines.len());
                // A running count: recounting the whole carry at every offer would be quadratic.
                self.carry_bytes -= bytes_of(c.lines.range(keep..));
                c.lines.truncate(keep);
                c.lines.extend(u.lines);
                let end = c.start + keep;
                c.folds.retain_mut(|f| {
                    f.last = f.last.min(end.saturating_sub(1));
                    f.first < end && f.last > f.first
                });
                c.folds.extend(u.folds);
                self.carry_bytes += added;
            }
            _ => {
                self.carry = Some(Carry {
                    start: u.start,
                    lines: u.lines.into(),
                    folds: u.folds,
                });
                self.carry_bytes = added;
            }
        }
    }

    pub fn has_pending(&self) -> bool {
        self.carry.is_some()
    }

    pub fn pending_bytes(&self) -> usize {
        self.carry_bytes
    }

    /// Whether a call may start at `now`: at once after a quiet frame, when a full call is
    /// waiting, or when hurried; else one frame after the previous call. The frame only gathers
    /// a trickle into fewer calls. A backlog is sent call after call, paced by the calls in
    /// flight (the view keeps at most two), so a flood is not slowed to one call per frame.
    pub fn ready(&self, now: Instant) -> bool {
        self.immediate() || self.last_send.is_none_or(|t| now >= t + FRAME)
    }

    /// When the next call may start (meaningful when `ready` is false).
    pub fn due(&self) -> Instant {
        match self.last_send {
            Some(t) if !self.immediate() => t + FRAME,
            _ => Instant::now(),
        }
    }

    fn immediate(&self) -> bool {
        self.urgent || self.backlog()
    }

    /// The source has nothing more for now. After a full call this is the end of a burst: its
    /// rest goes out at once rather than a frame later (a flood's last lines used to wait up to
    /// 16 ms), as nothing more is coming to be gathered with it.
    pub fn caught_up(&mut self) {
        if self.last_full {
            self.urgent = true;
        }
    }

    /// What waits goes out as soon as it can: a run's footer, which the user waits for.
    pub fn hurry(&mut self) {
        self.urgent = true;
    }

    /// A full call's worth of lines is waiting.
    fn backlog(&self) -> bool {
        self.carry_bytes >= MAX_BYTES_PER_CALL
            || self
                .carry
                .as_ref()
                .is_some_and(|c| c.lines.len() >= MAX_LINES_PER_CALL)
    }

    /// The next call's lines: at most `MAX_LINES_PER_CALL` lines and `MAX_BYTES_PER_CALL` bytes
    /// (but at least one line); the rest stays for the next call.
    pub fn next_batch(&mut self, now: Instant) -> Option<Update> {
        let full = self.backlog();
        let c = self.carry.as_mut()?;
        let mut n = 0;
        let mut bytes = 0;
        for l in c.lines.iter().take(MAX_LINES_PER_CALL) {
            if n > 0 && bytes + l.len() + 1 > MAX_BYTES_PER_CALL {
                break;
            }
            bytes += l.len() + 1;
            n += 1;
        }
        // The folds that begin in these lines go with them; Lua closes one once its last line
        // is in the buffer too.
        let end = c.start + n;
        let split = c.folds.partition_point(|f| f.first < end);
        let batch = Update {
            start: c.start,
            lines: c.lines.drain(..n).collect(),
            folds: c.folds.drain(..split).collect(),
        };
        c.start += n;
        if c.lines.is_empty() {
            self.carry = None;
            self.carry_bytes = 0;
        } else {
            self.carry_bytes -= bytes;
        }
        self.last_send = Some(now);
        self.last_full = full;
        self.urgent = false;
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(start: usize, lines: &[&str]) -> Update {
        Update {
            start,
            lines: lines.iter().map(|s| s.to_string()).collect(),
            folds: Vec::new(),
        }
    }

    #[test]
    fn later_update_supersedes_from_its_start() {
        let mut s = Sink::new();
        s.offer(up(0, &["a", "b", "par"]));
        s.offer(up(2, &["partial", "c"]));
        let b = s.next_batch(Instant::now()).unwrap();
        assert_eq!(b.start, 0);
        assert_eq!(b.lines, vec!["a", "b", "partial", "c"]);
        assert!(!s.has_pending());
    }

    fn fold(first: usize, last: usize) -> Fold {
        Fold { first, last }
    }

    #[test]
    fn folds_go_with_the_call_of_their_first_line_and_go_when_replaced() {
        let mut s = Sink::new();
        let lines: Vec<String> = (0..MAX_LINES_PER_CALL + 20)
            .map(|i| i.to_string())
            .collect();
        s.offer(Update {
            start: 0,
            lines,
            folds: vec![
                fold(5, 9),
                fold(MAX_LINES_PER_CALL - 2, MAX_LINES_PER_CALL + 3),
            ],
        });
        // A later update from line 40 takes no fold before it, and brings its own.
        s.offer(Update {
            start: 40,
            lines: vec!["x".into(); MAX_LINES_PER_CALL],
            folds: vec![fold(41, 45)],
        });
        let now = Instant::now();
        let a = s.next_batch(now).unwrap();
        assert_eq!(a.folds, vec![fold(5, 9), fold(41, 45)]);
        // An update from inside a fold keeps the lines before it.
        let mut s = Sink::new();
        s.offer(Update {
            start: 0,
            lines: vec!["y".into(); 20],
            folds: vec![fold(2, 10), fold(12, 15)],
        });
        s.offer(up(8, &["z"]));
        let b = s.next_batch(now).unwrap();
        assert_eq!((b.lines.len(), b.folds), (9, vec![fold(2, 7)]));
        // A fold that reaches past a call's lines goes with the call it begins in.
        let mut s = Sink::new();
        s.offer(Update {
            start: 0,
            lines: (0..MAX_LINES_PER_CALL + 5).map(|i| i.to_string()).collect(),
            folds: vec![fold(MAX_LINES_PER_CALL - 1, MAX_LINES_PER_CALL + 2)],
        });
        let c = s.next_batch(now).unwrap();
        let d = s.next_batch(now).unwrap();
        assert_eq!(c.folds.len(), 1);
        assert!(d.folds.is_empty());
    }

    #[test]
    fn earlier_update_replaces_everything() {
        let mut s = Sink::new();
        s.offer(up(5, &["x", "y"]));
        s.offer(up(3, &["p", "q", "r"]));
        let b = s.next_batch(Instant::now()).unwrap();
        assert_eq!((b.start, b.lines.len()), (3, 3));
    }

    #[test]
    fn large_updates_are_cut_into_calls() {
        let mut s = Sink::new();
        let lines: Vec<String> = (0..25_000).map(|i| i.to_string()).collect();
        s.offer(Update {
            start: 7,
            lines,
            ..Update::default()
        });
        let now = Instant::now();
        let a = s.next_batch(now).unwrap();
        let b = s.next_batch(now).unwrap();
        let c = s.next_batch(now).unwrap();
        assert_eq!((a.start, a.lines.len()), (7, 10_000));
        assert_eq!((b.start, b.lines.len()), (10_007, 10_000));
        assert_eq!((c.start, c.lines.len()), (20_007, 5_000));
        assert_eq!(c.lines.last().map(String::as_str), Some("24999"));
        assert!(s.next_batch(now).is_none());
    }

    #[test]
    fn calls_are_cut_by_bytes_too_and_a_huge_line_goes_alone() {
        let mut s = Sink::new();
        let big = "x".repeat(MAX_BYTES_PER_CALL * 2);
        let line = "y".repeat(999);
        let mut lines = vec![big.clone()];
        lines.extend((0..600).map(|_| line.clone()));
        let total = bytes_of(&lines);
        s.offer(Update {
            start: 0,
            lines,
            ..Update::default()
        });
        assert_eq!(s.pending_bytes(), total);
        let now = Instant::now();
        let a = s.next_batch(now).unwrap();
        assert_eq!(a.lines, vec![big]);
        let b = s.next_batch(now).unwrap();
        assert_eq!((b.start, b.lines.len()), (1, MAX_BYTES_PER_CALL / 1000));
        assert!(bytes_of(&b.lines) <= MAX_BYTES_PER_CALL);
        let mut sent = 1 + b.lines.len();
        while let Some(c) = s.next_batch(now) {
            assert_eq!(c.start, sent);
            sent += c.lines.len();
        }
        assert_eq!((sent, s.pending_bytes()), (601, 0));
    }

    #[test]
    fn pending_bytes_follow_merges_and_batches() {
        let mut s = Sink::new();
        s.offer(up(0, &["aa", "bb", "cc"]));
        assert_eq!(s.pending_bytes(), 9);
        s.offer(up(1, &["b"]));
        assert_eq!(s.pending_bytes(), 5);
        s.offer(up(2, &["z"]));
        assert_eq!(s.pending_bytes(), 7);
        s.offer(up(0, &["q"]));
        assert_eq!(s.pending_bytes(), 2);
        s.next_batch(Instant::now());
        assert_eq!(s.pending_bytes(), 0);
    }

    #[test]
    fn an_update_arriving_between_chunks_merges_with_the_rest() {
        let mut s = Sink::new();
        let lines: Vec<String> = (0..10_002).map(|i| i.to_string()).collect();
        s.offer(Update {
            start: 0,
            lines,
            ..Update::default()
        });
        let now = Instant::now();
        s.next_batch(now).unwrap();
        // The last line grew and a new one came.
        s.offer(up(10_001, &["10001+", "new"]));
        let b = s.next_batch(now).unwrap();
        assert_eq!(b.start, 10_000);
        assert_eq!(b.lines, vec!["10000", "10001+", "new"]);
    }

    #[test]
    fn a_backlog_is_due_at_once() {
        let mut s = Sink::new();
        let lines: Vec<String> = (0..3 * MAX_LINES_PER_CALL).map(|i| i.to_string()).collect();
        s.offer(Update {
            start: 0,
            lines,
            ..Update::default()
        });
        let t = Instant::now();
        s.next_batch(t);
        // Two full calls wait: no frame to wait for.
        assert!(s.ready(t));
        s.next_batch(t);
        assert!(s.ready(t));
        s.next_batch(t);
        // More lines may still come with the rest of the burst...
        s.offer(up(3 * MAX_LINES_PER_CALL, &["a"]));
        assert!(!s.ready(t));
        // ... until the source has caught up: then the rest goes at once...
        s.caught_up();
        assert!(s.ready(t));
        assert!(s.due() <= Instant::now());
        s.next_batch(t);
        // ... and a trickle after it waits for the frame again.
        s.offer(up(3 * MAX_LINES_PER_CALL + 1, &["b"]));
        s.caught_up();
        assert!(!s.ready(t));
        assert_eq!(s.due(), t + FRAME);
        // A footer does not wait.
        s.hurry();
        assert!(s.ready(t));
        s.next_batch(t);
        assert!(!s.ready(t));
    }

    #[test]
    fn first_send_is_due_at_once_then_once_per_frame() {
        let mut s = Sink::new();
        assert!(s.ready(Instant::now()));
        s.offer(up(0, &["a"]));
        let t = Instant::now();
        s.next_batch(t);
        assert_eq!(s.due(), t + FRAME);
        assert!(!s.ready(t + FRAME / 2));
        assert!(s.ready(t + FRAME));
        assert_eq!(s.pending_bytes(), 0);
    }
}
