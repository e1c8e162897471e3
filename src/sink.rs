//! Coalescing of buffer writes. The renderer says "replace from line N to the end"; the sink
//! merges those updates while a call is in flight or the frame has not elapsed, cuts them into
//! calls of at most `MAX_LINES_PER_CALL` lines, and decides when the next call may start: at once
//! after a quiet period (low latency for a trickle), then at most once per frame (few calls for a
//! flood).

use std::time::{Duration, Instant};

use crate::render::Update;

pub const FRAME: Duration = Duration::from_millis(16);
pub const MAX_LINES_PER_CALL: usize = 10_000;

#[derive(Default)]
pub struct Sink {
    carry: Option<Update>,
    carry_bytes: usize,
    last_send: Option<Instant>,
}

fn bytes_of(lines: &[String]) -> usize {
    lines.iter().map(|l| l.len() + 1).sum()
}

impl Sink {
    pub fn new() -> Sink {
        Sink::default()
    }

    /// Merges `u` into what waits to be sent. `u` covers `u.start..` of the document, so it
    /// supersedes everything pending from `u.start` on.
    pub fn offer(&mut self, mut u: Update) {
        match self.carry.take() {
            Some(mut c) if u.start > c.start => {
                // Lines between c.start and u.start did not change since `c` was taken.
                c.lines.truncate(u.start - c.start);
                c.lines.append(&mut u.lines);
                self.carry = Some(c);
            }
            _ => self.carry = Some(u),
        }
        self.carry_bytes = self.carry.as_ref().map_or(0, |c| bytes_of(&c.lines));
    }

    pub fn has_pending(&self) -> bool {
        self.carry.is_some()
    }

    pub fn pending_bytes(&self) -> usize {
        self.carry_bytes
    }

    /// Whether a call may start at `now`: at once after a quiet frame, else one frame after the
    /// previous call.
    pub fn ready(&self, now: Instant) -> bool {
        self.last_send.is_none_or(|t| now >= t + FRAME)
    }

    /// When the next call may start (meaningful when `ready` is false).
    pub fn due(&self) -> Instant {
        match self.last_send {
            Some(t) => t + FRAME,
            None => Instant::now(),
        }
    }

    /// The next call's lines: at most `MAX_LINES_PER_CALL`; the rest stays for the next call.
    pub fn next_batch(&mut self, now: Instant) -> Option<Update> {
        let mut c = self.carry.take()?;
        if c.lines.len() > MAX_LINES_PER_CALL {
            let rest = c.lines.split_off(MAX_LINES_PER_CALL);
            self.carry = Some(Update {
                start: c.start + MAX_LINES_PER_CALL,
                lines: rest,
            });
        }
        self.carry_bytes = self.carry.as_ref().map_or(0, |c| bytes_of(&c.lines));
        self.last_send = Some(now);
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(start: usize, lines: &[&str]) -> Update {
        Update {
            start,
            lines: lines.iter().map(|s| s.to_string()).collect(),
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
        s.offer(Update { start: 7, lines });
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
    fn an_update_arriving_between_chunks_merges_with_the_rest() {
        let mut s = Sink::new();
        let lines: Vec<String> = (0..10_002).map(|i| i.to_string()).collect();
        s.offer(Update { start: 0, lines });
        let now = Instant::now();
        s.next_batch(now).unwrap();
        // The last line grew and a new one came.
        s.offer(up(10_001, &["10001+", "new"]));
        let b = s.next_batch(now).unwrap();
        assert_eq!(b.start, 10_000);
        assert_eq!(b.lines, vec!["10000", "10001+", "new"]);
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
