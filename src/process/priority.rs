//! The backend and its tasks yield the CPU to Neovim: on a busy machine the editor must not
//! stutter because an agent streams, or compiles through its Bash tool, flat out.
//!
//! Two knobs, because Linux has two levels of CPU sharing. A nice value belongs to a thread (new
//! threads inherit it), so it is set before the runtime starts any. But with autogroups
//! (`CONFIG_SCHED_AUTOGROUP`, on by default in most distributions) each session first gets its
//! fair share as a whole, and a thread's nice value only counts inside its session. Neovim's
//! `jobstart` puts the backend in a session of its own, and the backend puts each task in one,
//! so each of those sessions' autogroups gets the nice value too.

use nix::libc;

/// Lowers the priority of the calling thread (and of the threads and processes it starts
/// afterwards) to nice `n`, never raising it; and of the backend's autogroup when the backend
/// leads its own session, as under Neovim. Best effort: failures are logged.
pub fn lower(n: i32) {
    // SAFETY: get/setpriority only read their arguments; `who = 0` is the calling thread.
    let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if current < n {
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) };
        if rc != 0 {
            crate::log_info!(
                "cannot set the nice value to {n}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    // Not when we share a session (a shell's, an editor's): its autogroup is theirs too.
    let me = nix::unistd::getpid();
    if nix::unistd::getsid(None).is_ok_and(|sid| sid == me) {
        set_autogroup_nice(n);
    }
}

/// For a new task between fork and exec, right after `setsid`: gives the task's new autogroup
/// the nice value the process inherited from the backend. Async-signal-safe: no allocation,
/// only raw system calls on a stack buffer.
pub fn autogroup_inherits_nice() {
    // SAFETY: getpriority only reads its arguments.
    let n = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if n > 0 {
        set_autogroup_nice(n);
    }
}

/// Writes `n` (0..=19) to /proc/self/autogroup; silently nothing where autogroups do not exist.
fn set_autogroup_nice(n: i32) {
    let Ok(n) = u8::try_from(n) else {
        return;
    };
    let mut buf = [0u8; 3];
    let len = if n >= 10 {
        buf[0] = b'0' + n / 10;
        buf[1] = b'0' + n % 10;
        2
    } else {
        buf[0] = b'0' + n;
        1
    };
    // SAFETY: a NUL-terminated path and a buffer that outlives the calls; the fd is closed.
    unsafe {
        let fd = libc::open(
            c"/proc/self/autogroup".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            let _ = libc::write(fd, buf.as_ptr().cast(), len);
            libc::close(fd);
        }
    }
}
