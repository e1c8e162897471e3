//! Reading the process table from `/proc` (Linux only).
//!
//! A task's processes are found two ways, because each one alone misses some:
//!
//! - **Parent links** (`ppid`): every process the CLI forked, transitively. This survives a tool
//!   clearing its environment (`env -i ...`), but not reparenting: once a process in the middle of
//!   the chain dies, its children are reparented to the nearest subreaper (us) or to init and the
//!   link to the task is lost.
//! - **The marker** (`CLAUDE_TASKS_TASK=<hex>` in the environment we give the CLI): inherited by
//!   everything the CLI starts, and unaffected by `setsid` and by reparenting. It is read from
//!   `/proc/<pid>/environ`, which is the environment as it was at `execve` time: a process that
//!   changes its own environment later still shows the marker, one started with a cleared
//!   environment does not (the parent links cover that case).
//!
//! Every function here tolerates processes vanishing mid-scan: a process whose files cannot be
//! read is simply not part of the result. The process table is not a snapshot the kernel can give
//! atomically, so callers that signal a process must check its start time again right before
//! signalling (see [`is_alive`]): a pid is reused after the process is reaped, the pair
//! `(pid, start_time)` is not.

use std::collections::{HashMap, HashSet, VecDeque};

/// One process, as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// Process group id: `killpg(pgid)` reaches every member of the group.
    pub pgid: i32,
    /// Session id. The CLI runs every Bash tool call in a new session, so a tool's `sid` (and its
    /// `pgid`) differ from the CLI's.
    pub sid: i32,
    /// Start time in clock ticks since boot (field 22 of `stat`). Together with the pid it
    /// identifies a process for its whole life, across pid reuse.
    pub start_time: u64,
    /// `R`, `S`, `D`, `Z` (zombie: exited, not yet reaped), `T`, `t`, `X`, `I`, ...
    pub state: char,
}

impl Proc {
    /// A zombie (or a process being torn down) has exited: signalling it has no effect, only
    /// reaping it (by its parent) makes it go away.
    pub fn is_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Reads `/proc/<pid>/stat`. `None` when the process does not exist (or vanished while reading).
pub fn read(pid: i32) -> Option<Proc> {
    if pid <= 0 {
        return None;
    }
    let bytes = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&bytes)
}

/// The start time of `pid` (clock ticks since boot), for recognising the same process later.
pub fn start_time(pid: i32) -> Option<u64> {
    read(pid).map(|p| p.start_time)
}

/// True when `pid` exists, is the process that had `start_time` (not a reused pid), and has not
/// exited (a zombie counts as dead: it can no longer do anything, it only awaits reaping).
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    matches!(read(pid), Some(p) if p.start_time == start_time && !p.is_exited())
}

/// Every live process readable in `/proc`, zombies included (callers filter with
/// [`Proc::is_exited`]). Order is unspecified.
pub fn list() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let entry = entry.ok()?;
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        read(pid)
    })
    .collect()
}

/// Every live descendant of `root` (through parent links, transitively) plus every live process
/// whose environment contains the entry `marker` (and the descendants of those). `root` itself
/// and the calling process are never part of the result; zombies are not either.
///
/// `root` is taken as given: if it may have exited and been reaped (so its pid may be reused),
/// use [`collect`] with its start time instead.
pub fn tree(root: i32, marker: Option<&str>) -> Vec<Proc> {
    scan(&[(root, None)], marker)
}

/// Like [`tree`] for several roots, each identified by `(pid, start_time)`: a root whose pid now
/// belongs to another process (different start time), or that is gone, contributes no
/// descendants. Roots themselves are excluded from the result.
pub fn collect(roots: &[(i32, u64)], marker: Option<&str>) -> Vec<Proc> {
    let roots: Vec<(i32, Option<u64>)> = roots.iter().map(|&(p, s)| (p, Some(s))).collect();
    scan(&roots, marker)
}

/// The oldest live process whose environment holds the entry `marker`, as `(pid, start_time)`:
/// the CLI a task's run started, when its pid was never recorded (every process of the run
/// inherits the marker, and the CLI started before any of them). None when none is left.
pub fn oldest_marked(marker: &str) -> Option<(i32, u64)> {
    let me = std::process::id() as i32;
    list()
        .into_iter()
        .filter(|p| p.pid != me && !p.is_exited() && has_env_entry(p.pid, marker))
        .min_by_key(|p| (p.start_time, p.pid))
        .map(|p| (p.pid, p.start_time))
}

/// True when `/proc/<pid>/environ` contains exactly the entry `marker` (e.g.
/// `CLAUDE_TASKS_TASK=ab12`). False when it cannot be read: another user's process, a kernel
/// thread, a zombie (its memory is gone), or a process that vanished.
///
/// Also false, for a moment, for a process inside `execve`: the kernel installs the new address
/// space before it records where the copied environment lives in it, and in between the file
/// reads as empty. A scan that must not miss a process cannot rely on one look at the marker.
pub fn has_env_entry(pid: i32, marker: &str) -> bool {
    match read_environ(pid) {
        Some(env) => env.split(|&b| b == 0).any(|e| e == marker.as_bytes()),
        None => false,
    }
}

/// The raw contents of `/proc/<pid>/environ` (NUL-separated `KEY=value` entries), `None` when
/// unreadable. See [`has_env_entry`] for when it is empty.
pub fn read_environ(pid: i32) -> Option<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/environ")).ok()
}

fn scan(roots: &[(i32, Option<u64>)], marker: Option<&str>) -> Vec<Proc> {
    let me = std::process::id() as i32;
    let procs = list();
    let by_pid: HashMap<i32, &Proc> = procs.iter().map(|p| (p.pid, p)).collect();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in &procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }

    let root_pids: HashSet<i32> = roots.iter().map(|&(p, _)| p).collect();
    let mut queue: VecDeque<i32> = VecDeque::new();
    for &(pid, start) in roots {
        // A root that is not the process the caller meant (pid reused) must not lend its
        // children to the result: they would be unrelated processes.
        match (by_pid.get(&pid), start) {
            (Some(p), Some(s)) if p.start_time != s => {}
            (Some(_), _) => queue.push_back(pid),
            (None, _) => {}
        }
    }
    if let Some(marker) = marker {
        for p in &procs {
            if p.pid != me && !p.is_exited() && has_env_entry(p.pid, marker) {
                queue.push_back(p.pid);
            }
        }
    }

    let mut seen: HashSet<i32> = HashSet::new();
    let mut out = Vec::new();
    while let Some(pid) = queue.pop_front() {
        if !seen.insert(pid) {
            continue;
        }
        if let Some(p) = by_pid.get(&pid) {
            if !root_pids.contains(&pid) && pid != me && !p.is_exited() {
                out.push((*p).clone());
            }
        }
        if let Some(kids) = children.get(&pid) {
            queue.extend(kids.iter().copied());
        }
    }
    out
}

/// Parses the contents of `/proc/<pid>/stat`: `pid (comm) state ppid pgrp session ...`.
///
/// `comm` is the executable name chosen by the process itself (up to 15 bytes) and may contain
/// spaces, parentheses and any other byte, so the fields are located from the LAST `)`, never by
/// splitting the whole line on spaces.
pub fn parse_stat(bytes: &[u8]) -> Option<Proc> {
    let open = bytes.iter().position(|&b| b == b'(')?;
    let close = bytes.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let pid: i32 = std::str::from_utf8(&bytes[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let rest = std::str::from_utf8(bytes.get(close + 1..)?).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // fields[0] is field 3 of stat(5) (state); field N is fields[N - 3].
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let pgid = fields.get(2)?.parse().ok()?;
    let sid = fields.get(3)?.parse().ok()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some(Proc {
        pid,
        ppid,
        pgid,
        sid,
        start_time,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comm_with_spaces_and_parens() {
        let line = b"1234 (a) b) (c ) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
        let p = parse_stat(line).expect("parses");
        assert_eq!(
            p,
            Proc {
                pid: 1234,
                ppid: 1,
                pgid: 1234,
                sid: 1234,
                start_time: 987654,
                state: 'S'
            }
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_stat(b"").is_none());
        assert!(parse_stat(b"12 (x) S 1 2").is_none());
        assert!(
            parse_stat(b"x (y) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20").is_none()
        );
    }

    #[test]
    fn reads_self() {
        let me = std::process::id() as i32;
        let p = read(me).expect("own stat");
        assert_eq!(p.pid, me);
        assert!(is_alive(me, p.start_time));
        assert!(!is_alive(me, p.start_time + 1));
        assert!(tree(me, None).iter().all(|q| q.pid != me));
    }
}
