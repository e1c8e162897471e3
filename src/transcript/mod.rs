//! Reading the transcript file: following it as it grows, framing it into lines, the byte scans
//! under that, and cut copies of lines too long to hold.

pub mod follow;
pub mod framing;
pub mod longline;
pub mod scan;
