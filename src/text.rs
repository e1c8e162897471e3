//! Text as a buffer shows it: the longest line shown.

/// Bytes of one line shown at most; the rest is counted in a `… (N bytes)` marker. A longer line
/// (an answer without newlines, a minified file) would make every redraw slow, and a growing one
/// would be sent again and again while it streams.
pub const MAX_SHOWN_LINE: usize = 16 * 1024;
