//! What the user said to a run while it went on: the messages the record says were written to
//! the CLI, drawn where the transcript shows the CLI took them (its echo: folded into the running
//! turn, or answered as a turn of its own), and those not taken yet at the buffer's end
//! (`› text · waiting`), which the next update replaces. The transcript tells when a message
//! was taken; only what is still waiting comes from the record.

use super::doc::Kind;
use super::Renderer;
use crate::stream_json::echo::{taken, Written};
use crate::text::one_line;

/// A message said during a run, as the view gives it from the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaidLine {
    pub title: String,
    pub written: Written,
}

/// The current run's messages and how far the CLI took them.
#[derive(Debug, Default)]
pub(super) struct Said {
    /// The run's prompt (its first echo takes it).
    prompt: Option<Written>,
    /// What was said during the run, in the order it was written.
    lines: Vec<SaidLine>,
    /// Echoes seen in this run.
    echoes: usize,
    /// Of `lines`: taken by the CLI (their echo seen), and drawn (when a turn of their own
    /// began before their echo came).
    taken: usize,
    drawn: usize,
    /// A `result` came: what the CLI starts next is a turn of its own for what waits.
    after_result: bool,
    /// The user interrupted a turn of this run: what waits still runs after it.
    interrupted: bool,
}

/// How a message said during a run reached the CLI.
#[derive(Clone, Copy)]
enum How {
    Folded,
    OwnTurn,
}

impl Said {
    fn waiting(&self) -> &[SaidLine] {
        &self.lines[self.taken.max(self.drawn).min(self.lines.len())..]
    }
}

impl Renderer {
    /// A run begins (its header or separator is drawn): what is said to it starts anew.
    pub(super) fn said_new_run(&mut self, prompt: Option<Written>) {
        self.said = Said {
            prompt,
            ..Said::default()
        };
        self.trailer_changed();
    }

    /// The messages the record says were said to the current run (more come as they are said).
    pub fn set_said(&mut self, lines: &[SaidLine]) {
        if self.said.lines.as_slice() == lines {
            return;
        }
        self.said.lines = lines.to_vec();
        self.trailer_changed();
    }

    /// How many said lines the renderer knows for the current run.
    pub fn said_known(&self) -> usize {
        self.said.lines.len()
    }

    /// The echo of a message we wrote: the CLI took it (and any taken with it).
    pub(super) fn said_echo(&mut self, text: Option<&str>) {
        let first = self.said.echoes == 0;
        self.said.echoes += 1;
        let mut waiting: Vec<Written> = Vec::with_capacity(self.said.lines.len() + 1);
        if first {
            waiting.extend(self.said.prompt);
        }
        let from = self.said.taken;
        let known = self.said.lines.get(from..).unwrap_or_default();
        waiting.extend(known.iter().map(|l| l.written));
        // Each echo stands for at least one message, known to the record yet or not.
        let mut k = taken(text, &waiting).max(1);
        if first && self.said.prompt.is_some() {
            // The prompt is shown by the run's header.
            k -= 1;
        } else if first && self.said.prompt.is_none() {
            // A record from before prompts were hashed: the first echo is the prompt alone.
            return;
        }
        let how = if self.said.after_result {
            How::OwnTurn
        } else {
            How::Folded
        };
        for i in from..from + k {
            if i < self.said.drawn {
                continue;
            }
            let title = match self.said.lines.get(i) {
                Some(l) => l.title.clone(),
                None => text.map(|t| one_line(t, 80)).unwrap_or_default(),
            };
            self.said_line(&title, how);
        }
        // Past the known lines when the record has not caught up: those are drawn already.
        self.said.taken = from + k;
        self.said.drawn = self.said.drawn.max(self.said.taken);
        self.said.after_result = false;
        self.trailer_changed();
    }

    /// A turn begins (`system/init`). After a result in the same run it is a turn the CLI
    /// started for what waited: those messages are drawn now (their echo may come only with
    /// the turn's answer, after its streamed text).
    pub(super) fn said_turn_begins(&mut self) {
        if !self.said.after_result {
            return;
        }
        let waiting: Vec<String> = self
            .said
            .waiting()
            .iter()
            .map(|l| l.title.clone())
            .collect();
        for title in &waiting {
            self.said_line(title, How::OwnTurn);
        }
        self.said.drawn = self.said.lines.len();
        self.said.after_result = false;
        self.trailer_changed();
    }

    pub(super) fn said_result(&mut self) {
        self.said.after_result = true;
    }

    pub(super) fn said_interrupted(&mut self) {
        self.said.interrupted = true;
        self.trailer_changed();
    }

    /// The run is over (its footer comes next): what the CLI never took stays in the buffer,
    /// said to be undelivered.
    pub(super) fn said_run_ends(&mut self) {
        let left: Vec<String> = self
            .said
            .waiting()
            .iter()
            .map(|l| l.title.clone())
            .collect();
        if !left.is_empty() {
            self.begin(Kind::Said);
            for title in left {
                self.doc.push_owned(format!(
                    "› {} · not delivered: the CLI ended before taking it",
                    one_line(&title, 200)
                ));
            }
        }
        self.said = Said::default();
        self.trailer_changed();
    }

    fn said_line(&mut self, title: &str, how: How) {
        self.begin(Kind::Said);
        let mark = match how {
            How::Folded => "folded into the running turn",
            How::OwnTurn => "a turn of its own",
        };
        self.doc
            .push_owned(format!("› {} · {mark}", one_line(title, 200)));
    }

    /// The lines at the buffer's end for the messages still waiting.
    pub(super) fn said_trailer(&self) -> Vec<String> {
        let waiting = self.said.waiting();
        if waiting.is_empty() {
            return Vec::new();
        }
        let mark = if self.said.interrupted {
            "still queued: runs after the interrupt"
        } else {
            "waiting"
        };
        let mut out = vec![String::new()];
        out.extend(
            waiting
                .iter()
                .map(|l| format!("› {} · {mark}", one_line(&l.title, 200))),
        );
        out
    }
}
