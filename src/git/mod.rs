//! Running git honestly: one git command in a given directory, with an environment and settings
//! of our own, its exit reaped by `reaper`, and errors that name the command and carry git's
//! stderr.
//!
//! Invariants:
//! - **The user's environment cannot redirect a command.** Every `GIT_*` variable is removed
//!   (`GIT_DIR`, `GIT_INDEX_FILE`, `GIT_WORK_TREE`, `GIT_CONFIG_PARAMETERS`, … as a `git rebase
//!   -i` editor or a hook would carry them) except the few in [`KEPT_ENV`] that only say where
//!   git and the user's own configuration are; a private index is only ever given explicitly
//!   (`Cmd::index`).
//! - **Nothing interactive, nothing that fires.** No pager, no terminal or askpass prompt, no
//!   editor, no hooks (`core.hooksPath=/dev/null`), no fsmonitor process, no automatic gc.
//! - **Output does not depend on the user's presentation settings**: `LC_ALL=C`, no colour, no
//!   quoting of non-ASCII paths, no replace objects, literal pathspecs (a file named `*.rs` or
//!   `:x` is that file). Commands that print diffs add their own flags (`--no-ext-diff`, …).
//! - **Bounded memory**: stdout is read up to a limit (`Cmd::max_stdout`, the rest is drained
//!   and flagged), stderr up to [`STDERR_KEEP`].
//! - Children are started through `reaper::spawn` and never waited on directly (the backend's
//!   reaping loop would race a `wait`). The calls block: run them off the async runtime
//!   (`spawn_blocking`), as the store's calls are.
//!
//! `repo` finds a work tree and its git directories; `objects` reads and writes blobs and refs.

pub mod objects;
pub mod repo;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::process::reaper::{self, Exit};

pub use repo::{Head, Repo};

/// `GIT_*` variables passed through: where git's programs and the user's configuration live, and
/// how far discovery may look. Everything else named `GIT_*` is removed.
pub const KEPT_ENV: &[&str] = &[
    "GIT_EXEC_PATH",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
];

/// Settings given with `-c` to every command. `core.hooksPath=/dev/null` is the one way to
/// silence every hook (post-checkout from `worktree add`, post-index-change, …) whatever the
/// repository configures.
const CONFIG: &[&str] = &[
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.quotePath=false",
    "core.pager=cat",
    "color.ui=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "advice.addEmbeddedRepo=false",
    "advice.detachedHead=false",
];

/// Environment set on every command (after the `GIT_*` clean-up).
pub const SET_ENV: &[(&str, &str)] = &[
    ("LC_ALL", "C"),
    ("GIT_PAGER", "cat"),
    ("PAGER", "cat"),
    ("GIT_EDITOR", ":"),
    ("GIT_MERGE_AUTOEDIT", "no"),
    ("GIT_TERMINAL_PROMPT", "0"),
    // Reading must never write: `status`-like commands refresh the index when they can lock it.
    ("GIT_OPTIONAL_LOCKS", "0"),
    // `refs/replace/` would make an object read differently from what is stored.
    ("GIT_NO_REPLACE_OBJECTS", "1"),
    ("GIT_LITERAL_PATHSPECS", "1"),
    ("GIT_ADVICE", "0"),
];

/// How much of a command's stderr is kept for its error message.
pub const STDERR_KEEP: usize = 64 * 1024;
/// Default bound on a command's stdout.
pub const STDOUT_DEFAULT_MAX: usize = 64 * 1024 * 1024;

/// What went wrong, with enough words to act on.
#[derive(Debug)]
pub enum Error {
    /// git could not be started at all.
    Spawn {
        program: OsString,
        source: io::Error,
    },
    /// git ran and failed: the command (without our fixed `-c` settings), where, how, and what
    /// it said.
    Failed {
        command: String,
        dir: PathBuf,
        exit: String,
        stderr: String,
    },
    /// Reading or writing one of our own files or one of the user's.
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// git said something we could not understand.
    Parse { command: String, reason: String },
    /// The directory is not inside a git work tree (`reason` is git's answer).
    NotAWorkTree { dir: PathBuf, reason: String },
    /// The directory is a bare repository (or inside one's git directory): no work tree.
    Bare { dir: PathBuf },
    /// A request this layer refuses, with the reason and what to do instead.
    Refused(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spawn { program, source } if source.kind() == io::ErrorKind::NotFound => {
                write!(
                    f,
                    "cannot run {}: not found on PATH (is git installed?)",
                    program.to_string_lossy()
                )
            }
            Error::Spawn { program, source } => {
                write!(f, "cannot run {}: {source}", program.to_string_lossy())
            }
            Error::Failed {
                command,
                dir,
                exit,
                stderr,
            } => {
                write!(f, "{command} (in {}) failed with {exit}", dir.display())?;
                let said = stderr.trim();
                if said.is_empty() {
                    Ok(())
                } else {
                    write!(f, ": {said}")
                }
            }
            Error::Io { op, path, source } => write!(f, "cannot {op} {}: {source}", path.display()),
            Error::Parse { command, reason } => {
                write!(f, "cannot understand the output of {command}: {reason}")
            }
            Error::NotAWorkTree { dir, reason } => {
                write!(f, "{} is not in a git work tree", dir.display())?;
                let said = reason.trim();
                if said.is_empty() {
                    Ok(())
                } else {
                    write!(f, " ({said})")
                }
            }
            Error::Bare { dir } => write!(
                f,
                "{} is a bare git repository (or its git directory): there is no work tree",
                dir.display()
            ),
            Error::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. } | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// An `Error::Io` for `op` on `path`.
pub fn io_error(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// How git is run: the program and extra environment (tests point `GIT_CONFIG_GLOBAL` at a
/// file of their own). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Git {
    program: OsString,
    extra_env: Vec<(OsString, OsString)>,
}

impl Default for Git {
    fn default() -> Git {
        Git {
            program: "git".into(),
            extra_env: Vec::new(),
        }
    }
}

impl Git {
    pub fn new() -> Git {
        Git::default()
    }

    /// Another program than `git` from `PATH`.
    pub fn program(mut self, program: impl Into<OsString>) -> Git {
        self.program = program.into();
        self
    }

    /// Adds a variable to every command's environment, after the clean-up (so a `GIT_*` given
    /// here is kept).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Git {
        self.extra_env.push((key.into(), value.into()));
        self
    }

    /// A command run in `dir`.
    pub fn cmd(&self, dir: &Path) -> Cmd<'_> {
        Cmd {
            git: self,
            dir: dir.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            max_stdout: STDOUT_DEFAULT_MAX,
        }
    }
}

/// One git command being put together. `run` for commands that must succeed, `output` when the
/// exit code means something (`merge-file`, `rev-parse --verify`).
pub struct Cmd<'g> {
    git: &'g Git,
    dir: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    max_stdout: usize,
}

/// A finished command.
#[derive(Debug)]
pub struct Output {
    pub exit: Exit,
    pub stdout: Vec<u8>,
    /// stdout was longer than the command's `max_stdout`; the rest was read and dropped.
    pub truncated: bool,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.exit.success()
    }
}

impl<'g> Cmd<'g> {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Uses `index` instead of the repository's index: how a snapshot reads the work tree
    /// without touching the user's staging area.
    pub fn index(self, index: &Path) -> Self {
        self.env("GIT_INDEX_FILE", index)
    }

    /// Bytes written to the command's stdin (otherwise stdin is `/dev/null`).
    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    pub fn max_stdout(mut self, max: usize) -> Self {
        self.max_stdout = max;
        self
    }

    /// `git <args>` as an error message shows it (without the fixed `-c` settings).
    pub fn display(&self) -> String {
        let mut s = self.git.program.to_string_lossy().into_owned();
        for a in &self.args {
            s.push(' ');
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                s.push('\'');
                s.push_str(&a.replace('\'', "'\\''"));
                s.push('\'');
            } else {
                s.push_str(&a);
            }
        }
        s
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.git.program);
        cmd.env_clear();
        for (k, v) in std::env::vars_os() {
            let name = k.to_string_lossy();
            if name.starts_with("GIT_") && !KEPT_ENV.contains(&name.as_ref()) {
                continue;
            }
            cmd.env(k, v);
        }
        for (k, v) in SET_ENV {
            cmd.env(k, v);
        }
        for (k, v) in self.git.extra_env.iter().chain(&self.env) {
            cmd.env(k, v);
        }
        for c in CONFIG {
            cmd.arg("-c").arg(c);
        }
        cmd.args(&self.args)
            .current_dir(&self.dir)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs the command to its end, whatever its exit code.
    pub fn output(self) -> Result<Output> {
        let mut command = self.command();
        let (mut child, exited) = reaper::spawn(&mut command).map_err(|source| Error::Spawn {
            program: self.git.program.clone(),
            source,
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let input = self.stdin;
        let max = self.max_stdout;
        let (out, err) = std::thread::scope(|s| {
            // A writer of its own: git may fill its stdout before it has read all its input.
            if let (Some(mut pipe), Some(bytes)) = (stdin, input) {
                s.spawn(move || {
                    // EPIPE: git stopped reading (it failed, and says why on stderr).
                    let _ = pipe.write_all(&bytes);
                });
            }
            let err = s.spawn(move || read_bounded(stderr, STDERR_KEEP));
            let out = read_bounded(stdout, max);
            (out, err.join())
        });
        let exit = block_on(reaper::wait_on(exited));
        let (stdout, truncated) = out.map_err(|e| io_error("read the output of", &self.dir, e))?;
        let stderr = match err {
            Ok(Ok((bytes, _))) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => String::new(),
        };
        Ok(Output {
            exit,
            stdout,
            truncated,
            stderr,
        })
    }

    /// Runs the command; anything but exit code 0 is an error carrying git's stderr.
    pub fn run(self) -> Result<Vec<u8>> {
        let (command, dir) = (self.display(), self.dir.clone());
        let out = self.output()?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(failed(command, dir, &out))
        }
    }

    /// `run`, with stdout as one trimmed line of text (an object id, a path).
    pub fn run_line(self) -> Result<String> {
        let command = self.display();
        let out = self.run()?;
        let text = String::from_utf8(out).map_err(|_| Error::Parse {
            command,
            reason: "not UTF-8".into(),
        })?;
        Ok(text.trim_end_matches('\n').to_string())
    }
}

/// The error for a command that ran and failed.
pub fn failed(command: String, dir: PathBuf, out: &Output) -> Error {
    Error::Failed {
        command,
        dir,
        exit: out.exit.to_string(),
        stderr: out.stderr.clone(),
    }
}

/// Reads `pipe` to its end, keeping at most `max` bytes. Returns whether anything was dropped.
fn read_bounded(pipe: Option<impl Read>, max: usize) -> io::Result<(Vec<u8>, bool)> {
    let Some(mut pipe) = pipe else {
        return Ok((Vec::new(), false));
    };
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut truncated = false;
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => return Ok((kept, truncated)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let room = max.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        truncated |= n > room;
    }
}

/// Drives `fut` to completion on this thread. Only used for the reaper's exit channel, which
/// needs no runtime (tokio's `watch` wakes any waker).
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Splits NUL-terminated output into its records (a missing last terminator is tolerated).
pub fn split_nul(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let none = bytes.is_empty();
    let body = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    body.split(|&b| b == 0).filter(move |_| !none)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_read_keeps_the_head_and_flags_the_rest() {
        let data = vec![7u8; 200_000];
        let (kept, truncated) = read_bounded(Some(&data[..]), 1000).unwrap();
        assert_eq!(kept.len(), 1000);
        assert!(truncated);
        let (kept, truncated) = read_bounded(Some(&data[..]), 200_000).unwrap();
        assert_eq!(kept.len(), 200_000);
        assert!(!truncated);
    }

    #[test]
    fn nul_records() {
        assert_eq!(
            split_nul(b"a\0b c\0").collect::<Vec<_>>(),
            [&b"a"[..], b"b c"]
        );
        assert_eq!(split_nul(b"a\0b").collect::<Vec<_>>(), [&b"a"[..], b"b"]);
        assert_eq!(split_nul(b"").count(), 0);
        assert_eq!(split_nul(b"\0").collect::<Vec<_>>(), [&b""[..]]);
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let git = Git::new();
        let cmd = git
            .cmd(Path::new("/"))
            .args(["add", "-A", "--", "a b", "it's", ""]);
        assert_eq!(cmd.display(), "git add -A -- 'a b' 'it'\\''s' ''");
    }
}
