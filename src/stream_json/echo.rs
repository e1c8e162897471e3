//! Which of the user messages we wrote an echo stands for. With `--replay-user-messages` the CLI
//! echoes a message when it takes it (shared fixtures' CONTROL.md §4); several messages waiting
//! for the next turn are taken together, echoed once with their texts joined by a newline
//! (`control-live-queued-two`, both pinned versions). Messages are known by their length and
//! FNV-1a hash, so neither the record nor a view keeps their whole texts.

use crate::hash::fnv1a64;

/// A message we wrote: its text's length in bytes and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub len: u64,
    pub hash: u64,
}

impl Written {
    pub fn of(text: &str) -> Written {
        Written {
            len: text.len() as u64,
            hash: fnv1a64(text.as_bytes()),
        }
    }
}

/// How many of `waiting` (oldest first) the echo `text` takes: the largest `k` such that `text`
/// is the first `k` texts joined by newlines. An echo that matches no such join (a CLI that
/// changed the text, an echo cut because it was too long) takes one message, so a count of
/// echoes never falls behind: each echo stands for at least one message. None waiting: 0.
pub fn taken(text: Option<&str>, waiting: &[Written]) -> usize {
    if waiting.is_empty() {
        return 0;
    }
    let Some(text) = text else {
        return 1;
    };
    let bytes = text.as_bytes();
    let mut pos = 0usize;
    let mut best = 0;
    for (k, w) in waiting.iter().enumerate() {
        if k > 0 {
            if bytes.get(pos) != Some(&b'\n') {
                break;
            }
            pos += 1;
        }
        let Some(end) = usize::try_from(w.len).ok().and_then(|l| pos.checked_add(l)) else {
            break;
        };
        let Some(part) = bytes.get(pos..end) else {
            break;
        };
        if fnv1a64(part) != w.hash {
            break;
        }
        pos = end;
        if pos == bytes.len() {
            best = k + 1;
        }
    }
    best.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(texts: &[&str]) -> Vec<Written> {
        texts.iter().map(|t| Written::of(t)).collect()
    }

    #[test]
    fn one_echo_per_message_takes_one() {
        let waiting = w(&["first", "second"]);
        assert_eq!(taken(Some("first"), &waiting), 1);
        assert_eq!(taken(Some("second"), &waiting[1..]), 1);
    }

    #[test]
    fn messages_taken_together_are_one_echo_joined_by_newlines() {
        // As both pinned CLIs echo two messages queued during a streamed answer.
        let waiting = w(&[
            "SCENARIO:hello queued one",
            "SCENARIO:remember queued two",
            "third",
        ]);
        let echo = "SCENARIO:hello queued one\nSCENARIO:remember queued two";
        assert_eq!(taken(Some(echo), &waiting), 2);
        // A message with newlines of its own is still one message.
        let waiting = w(&["a\nb", "c"]);
        assert_eq!(taken(Some("a\nb"), &waiting), 1);
        assert_eq!(taken(Some("a\nb\nc"), &waiting), 2);
    }

    #[test]
    fn an_echo_that_matches_nothing_takes_one() {
        let waiting = w(&["one", "two"]);
        assert_eq!(taken(Some("something else"), &waiting), 1);
        assert_eq!(taken(Some("one\ntw"), &waiting), 1);
        assert_eq!(taken(None, &waiting), 1);
        assert_eq!(taken(Some("one"), &[]), 0);
        // Empty texts, a prefix and a longer echo.
        assert_eq!(taken(Some(""), &w(&["", "x"])), 1);
        assert_eq!(taken(Some("one\ntwo\n"), &waiting), 1);
    }
}
