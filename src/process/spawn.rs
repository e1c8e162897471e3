//! Spawning one Claude Code CLI process (Linux only).
//!
//! The CLI is started:
//! - **without a shell** (argv as given), after resolving `argv[0]` on `PATH` ourselves so a
//!   missing or unusable program gives one clear error instead of a generic `ENOENT`;
//! - **in its own session** (`setsid`): a terminal signal or Neovim's process group never reaches
//!   it by accident, and `killpg(pid)` reaches exactly the CLI and the helpers it forked without
//!   `setsid` (its Bash tool calls start their own sessions and need separate handling);
//! - with **regular files** as stdout/stderr (the CLI drops the tail of its output when stdout
//!   is a pipe), and as stdin either a regular file or the task's **FIFO**, opened read-write so
//!   that the CLI itself holds a writer and never sees EOF, whoever else writes to it;
//! - with a **marker** `CLAUDE_TASKS_TASK=<random hex>` in its environment, inherited by every tool
//!   process, so the task's processes can be found even after `setsid` and reparenting (see
//!   `proctree`).
//!
//! Exit statuses come from the process-wide reaper (`reaper`), never from `Child::wait`.

use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{access, AccessFlags};
use tokio::sync::watch;

use crate::process::proctree;
use crate::process::reaper::{self, Exit};
use crate::store::{open_fifo, FifoAccess};

/// Name of the environment variable that marks every process of a task.
pub const MARKER_VAR: &str = "CLAUDE_TASKS_TASK";

/// What to run, where, and with which files.
#[derive(Debug, Clone, Default)]
pub struct SpawnConfig {
    /// Program and arguments; `argv[0]` is looked up on `PATH` unless it contains a `/` (a
    /// relative path is taken relative to `cwd`, as a shell started in `cwd` would).
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// A regular file, opened read-only (the prompt); or, with `stdin_fifo`, the task's FIFO.
    pub stdin: PathBuf,
    /// `stdin` is a FIFO (checked by `store::open_fifo`), opened read-write for the child.
    pub stdin_fifo: bool,
    /// With `stdin_fifo`: bytes put in the FIFO before the child starts, the first it reads
    /// (the FIFO's buffer is grown to hold them where the system allows). Once the child runs
    /// they are its, so a backend that dies right after the spawn loses nothing; what did not
    /// fit is in `Process::stdin_rest`, for the caller to write.
    pub stdin_preload: Vec<u8>,
    /// Opened `O_APPEND | O_CREAT`, mode 0600: several runs of a task append to one transcript.
    pub stdout: PathBuf,
    /// Same as `stdout`.
    pub stderr: PathBuf,
    /// Variables removed from the inherited environment (before `env` is applied).
    pub env_remove: Vec<String>,
    /// Variables set for the child.
    pub env: Vec<(String, String)>,
    /// The marker entry (`CLAUDE_TASKS_TASK=<hex>`, from [`new_marker`]) the child carries;
    /// None: a new one. A caller that records the marker before the spawn can find the child
    /// again even if it dies before it has recorded the child's pid.
    pub marker: Option<String>,
}

/// Why a process could not be started. `Display` is one line meant for the user.
#[derive(Debug)]
pub enum SpawnError {
    NotFound {
        program: String,
    },
    NotExecutable {
        program: String,
    },
    /// A directory on the way to it may not be searched.
    NoAccess {
        program: String,
    },
    IsDirectory {
        program: String,
    },
    BadCwd {
        cwd: String,
        reason: BadCwd,
    },
    Io {
        what: String,
        err: std::io::Error,
    },
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NotFound { program } if program.contains('/') => {
                let name = Path::new(program)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| program.clone());
                write!(
                    f,
                    "{name} not found: '{program}' does not exist (set the `cmd` option)"
                )
            }
            SpawnError::NotFound { program } => write!(
                f,
                "{program} not found: '{program}' is not on PATH (set the `cmd` option)"
            ),
            SpawnError::NotExecutable { program } => {
                write!(
                    f,
                    "cannot run '{program}': permission denied (not executable)"
                )
            }
            SpawnError::NoAccess { program } => write!(
                f,
                "cannot run '{program}': permission denied (a directory on its path is not accessible)"
            ),
            SpawnError::IsDirectory { program } => {
                write!(f, "'{program}' is a directory, not a program")
            }
            SpawnError::BadCwd { cwd, reason } => write!(f, "cwd '{cwd}' {reason}"),
            SpawnError::Io { what, err } => write!(f, "{what}: {err}"),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpawnError::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// A running (or finished) CLI process started by us.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: i32,
    /// From `/proc/<pid>/stat`, read before the process could be reaped; store it with the pid
    /// to recognise the process later (re-adoption after a backend restart).
    pub start_time: u64,
    /// `CLAUDE_TASKS_TASK=<hex>`, the exact environment entry given to the child.
    pub marker: String,
    /// What of `SpawnConfig::stdin_preload` did not fit in the FIFO before the spawn.
    pub stdin_rest: Vec<u8>,
    pub(super) exit: watch::Receiver<Option<Exit>>,
}

impl Process {
    /// Starts `cfg.argv` (see the module docs for how). Also initialises the reaper.
    pub fn spawn(cfg: &SpawnConfig) -> Result<Process, SpawnError> {
        check_cwd(&cfg.cwd).map_err(|reason| SpawnError::BadCwd {
            cwd: cfg.cwd.display().to_string(),
            reason,
        })?;
        let program = match cfg.argv.first() {
            Some(p) if !p.is_empty() => p,
            _ => {
                return Err(SpawnError::Io {
                    what: "no program to run (the `cmd` option is empty)".into(),
                    err: std::io::Error::from(std::io::ErrorKind::InvalidInput),
                })
            }
        };
        let resolved = resolve_program(program, &cfg.cwd, effective_path(cfg).as_deref())?;

        let mut stdin_rest = Vec::new();
        let stdin = if cfg.stdin_fifo {
            let f = open_fifo(&cfg.stdin, FifoAccess::ReadWrite).map_err(|e| SpawnError::Io {
                what: "cannot open the CLI's stdin".into(),
                err: std::io::Error::other(e.to_string()),
            })?;
            let put = preload(&f, &cfg.stdin_preload).map_err(|err| SpawnError::Io {
                what: "cannot write the CLI's first input".into(),
                err,
            })?;
            stdin_rest = cfg.stdin_preload[put..].to_vec();
            f
        } else {
            File::open(&cfg.stdin).map_err(|err| SpawnError::Io {
                what: format!("cannot open the prompt file '{}'", cfg.stdin.display()),
                err,
            })?
        };
        let stdout = open_output(&cfg.stdout)?;
        let stderr = open_output(&cfg.stderr)?;

        let marker = cfg.marker.clone().unwrap_or_else(new_marker);
        let marker_value = marker
            .strip_prefix(MARKER_VAR)
            .and_then(|v| v.strip_prefix('='))
            .unwrap_or(&marker)
            .to_owned();

        let mut cmd = Command::new(&resolved);
        cmd.args(&cfg.argv[1..])
            .current_dir(&cfg.cwd)
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        for k in &cfg.env_remove {
            cmd.env_remove(k);
        }
        for (k, v) in &cfg.env {
            cmd.env(k, v);
        }
        cmd.env(MARKER_VAR, &marker_value);
        // SAFETY: runs in the forked child before exec, where only async-signal-safe calls are
        // allowed; setsid(2), open/write/close(2), getpriority(2), sigaction(2) and
        // sigprocmask(2) are, and nothing here allocates or takes locks.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                // A new session is a new autogroup, which would compete with Neovim as an
                // equal whatever the process's own nice value (see `priority`).
                crate::process::priority::autogroup_inherits_nice();
                // Ignored dispositions and the signal mask survive exec, and std resets
                // neither (only SIGPIPE). The backend may have been started with SIGINT ignored
                // (a non-interactive shell does that to background jobs) or spawn from a thread
                // that blocks signals, and the cancel ladder relies on the CLI handling SIGINT
                // and SIGTERM.
                signal::signal(Signal::SIGINT, SigHandler::SigDfl).map_err(std::io::Error::from)?;
                signal::signal(Signal::SIGTERM, SigHandler::SigDfl)
                    .map_err(std::io::Error::from)?;
                signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                    .map_err(std::io::Error::from)?;
                Ok(())
            });
        }

        let (child, exit, start_time) = reaper::spawn_with(&mut cmd, proctree::start_time)
            .map_err(|err| spawn_io_error(program, err))?;
        let pid = child.id() as i32;
        // The Child handle is not needed (the reaper waits); dropping it leaves the process be.
        drop(child);
        Ok(Process {
            pid,
            // Only missing if /proc is not mounted: then nothing else here works either, and 0
            // never matches a real start time, so nothing is mistaken for this process.
            start_time: start_time.unwrap_or(0),
            marker,
            stdin_rest,
            exit,
        })
    }

    /// The exit status, `None` while running.
    pub fn watch(&self) -> watch::Receiver<Option<Exit>> {
        self.exit.clone()
    }

    /// The exit, if it already happened.
    pub fn try_exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Waits for the CLI to exit (and be reaped). Leftover tool processes are not waited for.
    pub async fn wait(&self) -> Exit {
        reaper::wait_on(self.exit.clone()).await
    }
}

/// Puts what fits of `bytes` in the FIFO `f` (open for reading and writing, nobody reading yet),
/// growing its buffer first; returns how many bytes went in. Never blocks.
fn preload(f: &File, bytes: &[u8]) -> std::io::Result<usize> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::io::Write;
    if bytes.is_empty() {
        return Ok(0);
    }
    // Above the system's limit (pipe-max-size, 1 MiB by default) this fails: what does not fit
    // is written after the spawn.
    let want = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    let _ = fcntl(f, FcntlArg::F_SETPIPE_SZ(want));
    let flags = OFlag::from_bits_truncate(fcntl(f, FcntlArg::F_GETFL)?);
    fcntl(f, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    let mut put = 0;
    let mut w = f;
    let result = loop {
        match w.write(&bytes[put..]) {
            Ok(0) => break Ok(put),
            Ok(n) => {
                put += n;
                if put == bytes.len() {
                    break Ok(put);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break Ok(put),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    // The file description is the child's stdin: blocking again, as a program expects.
    fcntl(f, FcntlArg::F_SETFL(flags))?;
    result
}

/// Why a directory cannot be a task's working directory. `Display` ends the sentence that
/// begins "cwd '<dir>' ". A bare "Not a directory" would seem to be about the cwd itself, and
/// "Permission denied" would not say which.
#[derive(Debug)]
pub enum BadCwd {
    Missing,
    /// A component of its path is a file.
    ParentNotDir,
    /// It may not be entered, or a directory on its path may not be searched.
    NoAccess,
    NotDir,
    /// It may not be listed.
    Unreadable(std::io::Error),
    Other(std::io::Error),
}

impl fmt::Display for BadCwd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadCwd::Missing => write!(f, "does not exist"),
            BadCwd::ParentNotDir => write!(f, "does not exist (a parent is not a directory)"),
            BadCwd::NoAccess => write!(f, "is not accessible (permission denied)"),
            BadCwd::NotDir => write!(f, "is not a directory"),
            BadCwd::Unreadable(e) => write!(f, "is not readable: {e}"),
            BadCwd::Other(e) => write!(f, "cannot be used: {e}"),
        }
    }
}

/// Whether `cwd` can be a task's working directory: a directory the CLI may list (it reads the
/// project) and enter (its chdir). Checked when a task is started, to refuse it at once, and
/// again at every spawn, as the directory may have changed since.
pub fn check_cwd(cwd: &Path) -> Result<(), BadCwd> {
    match std::fs::metadata(cwd) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BadCwd::Missing),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(BadCwd::ParentNotDir),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(BadCwd::NoAccess),
        Err(e) => Err(BadCwd::Other(e)),
        Ok(m) if !m.is_dir() => Err(BadCwd::NotDir),
        Ok(_) => match std::fs::read_dir(cwd) {
            // Listing needs r, entering it needs x: without x a task would be accepted and
            // then fail at the spawn.
            Ok(_) if access(cwd, AccessFlags::X_OK).is_err() => Err(BadCwd::NoAccess),
            Ok(_) => Ok(()),
            Err(e) => Err(BadCwd::Unreadable(e)),
        },
    }
}

/// The `PATH` the child will see: ours, unless the config removes or overrides it.
fn effective_path(cfg: &SpawnConfig) -> Option<OsString> {
    if let Some((_, v)) = cfg.env.iter().rev().find(|(k, _)| k == "PATH") {
        return Some(OsString::from(v));
    }
    if cfg.env_remove.iter().any(|k| k == "PATH") {
        return None;
    }
    std::env::var_os("PATH")
}

/// Resolves `program` like `execvp` would, but reporting why it failed. Relative paths (with a
/// `/`) and empty `PATH` entries (meaning the current directory) are taken relative to `cwd`.
fn resolve_program(
    program: &str,
    cwd: &Path,
    path: Option<&std::ffi::OsStr>,
) -> Result<PathBuf, SpawnError> {
    if program.contains('/') {
        let p = cwd.join(program);
        return match check_executable(&p) {
            Candidate::Ok => Ok(p),
            Candidate::Missing => Err(SpawnError::NotFound {
                program: program.to_string(),
            }),
            Candidate::Directory => Err(SpawnError::IsDirectory {
                program: program.to_string(),
            }),
            Candidate::NotExecutable => Err(SpawnError::NotExecutable {
                program: program.to_string(),
            }),
            Candidate::NoAccess => Err(SpawnError::NoAccess {
                program: program.to_string(),
            }),
        };
    }
    // POSIX leaves an unset PATH implementation-defined; this is glibc's default.
    let default_path = OsString::from("/usr/local/bin:/usr/bin:/bin");
    let path = path.unwrap_or(&default_path);
    let mut not_executable: Option<PathBuf> = None;
    let mut directory: Option<PathBuf> = None;
    for dir in std::env::split_paths(path) {
        let dir = if dir.as_os_str().is_empty() {
            cwd.to_path_buf()
        } else {
            cwd.join(dir)
        };
        let candidate = dir.join(program);
        match check_executable(&candidate) {
            Candidate::Ok => return Ok(candidate),
            Candidate::Missing => {}
            // execvp keeps searching past these, and reports EACCES only if nothing better
            // is found later on PATH.
            Candidate::NotExecutable | Candidate::NoAccess => {
                not_executable.get_or_insert(candidate);
            }
            Candidate::Directory => {
                directory.get_or_insert(candidate);
            }
        }
    }
    if let Some(p) = not_executable {
        return Err(SpawnError::NotExecutable {
            program: p.display().to_string(),
        });
    }
    if let Some(p) = directory {
        return Err(SpawnError::IsDirectory {
            program: p.display().to_string(),
        });
    }
    Err(SpawnError::NotFound {
        program: program.to_string(),
    })
}

enum Candidate {
    Ok,
    Missing,
    Directory,
    NotExecutable,
    NoAccess,
}

fn check_executable(p: &Path) -> Candidate {
    match std::fs::metadata(p) {
        // "Does not exist" would send the user looking for a file that is there.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Candidate::NoAccess,
        Err(_) => Candidate::Missing,
        Ok(m) if m.is_dir() => Candidate::Directory,
        // access(X_OK) asks the kernel with our real credentials; for root it still requires
        // at least one execute bit. The mode check guards the rare filesystem where access
        // says yes to root regardless.
        Ok(m) if !m.is_file() || m.permissions().mode() & 0o111 == 0 => Candidate::NotExecutable,
        Ok(_) if access(p, AccessFlags::X_OK).is_err() => Candidate::NotExecutable,
        Ok(_) => Candidate::Ok,
    }
}

fn open_output(path: &Path) -> Result<File, SpawnError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| SpawnError::Io {
            what: format!("cannot open '{}' for writing", path.display()),
            err,
        })
}

/// Maps an error from fork/exec (reported by std through its CLOEXEC pipe) to a clear message.
/// The program was checked just before, so these are rarer causes: a script whose interpreter
/// is missing (ENOENT), a file that is not an executable format (ENOEXEC), a race with
/// something changing the file, or setsid failing.
fn spawn_io_error(program: &str, err: std::io::Error) -> SpawnError {
    match err.raw_os_error().map(Errno::from_raw) {
        Some(Errno::EACCES) => SpawnError::NotExecutable {
            program: program.to_string(),
        },
        Some(Errno::ENOENT) => SpawnError::Io {
            what: format!("cannot run '{program}' (missing file or script interpreter)"),
            err,
        },
        Some(Errno::ENOEXEC) => SpawnError::Io {
            what: format!("cannot run '{program}': not an executable format"),
            err,
        },
        _ => SpawnError::Io {
            what: format!("cannot start '{program}'"),
            err,
        },
    }
}

/// A new marker entry, `CLAUDE_TASKS_TASK=<64 random bits as hex>`.
pub fn new_marker() -> String {
    format!("{MARKER_VAR}={}", random_hex())
}

/// 64 random bits as hex, for the marker. Uniqueness is all that matters (two tasks with one
/// marker would be cancelled together), not unpredictability.
fn random_hex() -> String {
    use std::io::Read;
    let mut buf = [0u8; 8];
    let ok = File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !ok {
        // No /dev/urandom (odd container): time, pid and a counter are unique enough here.
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let x = nanos
            ^ ((std::process::id() as u64) << 32)
            ^ COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        buf = x.to_le_bytes();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
