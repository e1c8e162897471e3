//! From framed transcript lines to messages, as a view reads them: text deltas parsed in place,
//! a line longer than the framer holds read with its long strings cut, anything else parsed
//! whole. The messages go to a `Consumer` (the renderer).

use std::path::{Path, PathBuf};

use super::{DeltaParser, Msg, TextDelta};
use crate::text::MAX_SHOWN_LINE;
use crate::transcript::framing::{LineRef, Piece};
use crate::transcript::longline::Cutter;

/// What takes a reader's messages: the renderer.
pub trait Consumer {
    /// A message parsed whole.
    fn feed(&mut self, msg: &Msg);
    /// A message re-read with its long strings cut.
    fn feed_shortened(&mut self, msg: &Msg);
    /// A text delta parsed in place.
    fn feed_text_delta(&mut self, d: &TextDelta);
}

/// Long strings of a line too long to hold are cut to this in its copy: what one shown
/// line holds, with room for the marker. Such a line's text was nearly always streamed (and the
/// streamed text stands); a tool result shows only a few lines anyway...
pub const LONG_STRING: usize = MAX_SHOWN_LINE - 64;
/// ... and a copy that would still be larger than this is shown as a truncated line.
pub const LONG_OUT: usize = 2 * 1024 * 1024;

/// From framed lines to a consumer: text deltas parsed in place, a line longer than the framer
/// holds read with its long strings cut (so it is still understood: its tool calls, its result's
/// cost, a streamed text it confirms), anything else parsed whole.
pub struct LineFeed {
    deltas: DeltaParser,
    /// The line longer than the framer holds that is being read, cut on the way.
    pub(crate) long: Option<Cutter>,
    transcript: PathBuf,
}

impl LineFeed {
    pub fn new(transcript: &Path) -> LineFeed {
        LineFeed {
            deltas: DeltaParser::default(),
            long: None,
            transcript: transcript.to_path_buf(),
        }
    }

    /// What `Framer::push_pieces` hands over.
    pub fn piece(&mut self, to: &mut impl Consumer, piece: Piece) {
        match piece {
            Piece::Long(bytes) => self
                .long
                .get_or_insert_with(|| Cutter::new(LONG_STRING, LONG_OUT))
                .feed(bytes),
            Piece::Line(line) => self.line(to, line),
        }
    }

    /// One line. A long one was cut on the way if its bytes came as pieces; else it is re-read
    /// from the file (the truth). Only a line that is not JSON shows as a prefix.
    pub fn line(&mut self, to: &mut impl Consumer, line: LineRef) {
        let long = self.long.take();
        if line.truncated() {
            let len = line.total_len as u64;
            let short = match long {
                Some(cutter) => Ok(cutter.finish()),
                None => crate::transcript::longline::cut_long_strings_in_file(
                    &self.transcript,
                    line.offset,
                    len,
                    LONG_STRING,
                    LONG_OUT,
                ),
            };
            match short {
                Ok(Some(short)) => {
                    to.feed_shortened(&super::parse_bytes(&short.json));
                    return;
                }
                Ok(None) => {}
                Err(e) => crate::log_warn!(
                    "view: re-reading a {len}-byte line of {}: {e}",
                    self.transcript.display()
                ),
            }
        }
        // Most lines of a long answer: rendered from the bytes read, without building a message.
        if let Some(delta) = self.deltas.parse(line.bytes) {
            to.feed_text_delta(&delta);
            return;
        }
        to.feed(&super::parse_ref(line));
    }
}
