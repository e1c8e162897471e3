//! A tiny file logger. The backend's stdout is the RPC channel, so nothing may ever be printed
//! there; log lines go to the file Lua names (`--log-file`), or to stderr, which Lua also keeps.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

static SINK: Mutex<Option<File>> = Mutex::new(None);

/// Sends later log lines to `path` (appended). Failing to open it is not fatal: stderr remains.
pub fn to_file(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Private like the state dir: the log names projects and tasks, and under an open umask
    // a default-mode file would be world-readable (even writable).
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    if let Ok(mut sink) = SINK.lock() {
        *sink = Some(file);
    }
    Ok(())
}

pub fn write(level: &str, msg: std::fmt::Arguments) {
    let line = format!(
        "{} {} [{}] {}\n",
        crate::timefmt::utc(crate::task::now_ms()),
        level,
        std::process::id(),
        msg
    );
    let mut wrote = false;
    if let Ok(mut sink) = SINK.lock() {
        if let Some(file) = sink.as_mut() {
            wrote = file.write_all(line.as_bytes()).is_ok();
        }
    }
    if !wrote {
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

#[macro_export]
macro_rules! log_info {
    ($($arg:tt)*) => { $crate::log::write("INFO", format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)*) => { $crate::log::write("WARN", format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! log_error {
    ($($arg:tt)*) => { $crate::log::write("ERROR", format_args!($($arg)*)) };
}
