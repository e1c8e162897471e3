//! Starting a helper of the backend itself (the watchdog): in its own session, its stdin a pipe
//! whose write end only the backend holds, so that the end of its input means the backend is
//! gone, however it went.

use std::ffi::OsString;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};

use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use tokio::sync::watch;

use crate::process::reaper::{self, Exit};
use crate::process::spawn::MARKER_VAR;

/// A helper that runs: its pid, the write end of its stdin, its exit as the reaper reports it.
pub struct Helper {
    pub pid: i32,
    /// Dropping it (or the backend's death) is the helper's EOF.
    pub stdin: ChildStdin,
    pub exit: watch::Receiver<Option<Exit>>,
}

/// Starts `program args` in `cwd`, `name` its argv[0] (what `ps` shows: `program` may be
/// `/proc/self/exe`):
/// - in a **new session**, so that the editor's terminal or process group going away does not
///   take it along;
/// - with its **stdin a pipe** whose write end stays in this process only: std makes both ends
///   close-on-exec, so no CLI or git started later inherits it (a CLI that held it would keep the
///   helper from ever seeing the backend's end);
/// - stdout and stderr to `/dev/null` (the backend's stdout is Neovim's channel: a helper holding
///   it would keep the channel open after the backend died);
/// - without a task's marker in its environment, so that no task's sweep counts it in.
///
/// Its exit is reaped by the reaper like any child's.
pub fn spawn_helper(
    program: &Path,
    name: &str,
    args: &[OsString],
    cwd: &Path,
) -> std::io::Result<Helper> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    cmd.arg0(name)
        .args(args)
        .current_dir(cwd)
        .env_remove(MARKER_VAR)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: runs in the forked child before exec; setsid(2), sigaction(2) and sigprocmask(2)
    // are async-signal-safe and nothing here allocates or takes locks.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            // As for a CLI (see `spawn`): a signal ignored or blocked by the backend's starter
            // must not make the helper unstoppable.
            signal::signal(Signal::SIGTERM, SigHandler::SigDfl).map_err(std::io::Error::from)?;
            signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let (mut child, exit) = reaper::spawn(&mut cmd)?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("the helper has no stdin pipe"))?;
    Ok(Helper {
        pid: child.id() as i32,
        stdin,
        exit,
    })
}
