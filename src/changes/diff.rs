//! The difference between two snapshots: the changed files with their line counts and status,
//! the hunks of each (with the line in the new file, for a quickfix list), and the unified diff
//! text, from one `git diff-tree` whose output is parsed here.
//!
//! File names come from the NUL-separated `--raw` records, never from the patch's quoted
//! headers: spaces, non-ASCII and newlines in names are taken as they are.

use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::git::objects::{parse_mode, Mode, MODE_GITLINK};
use crate::git::{Error, Repo, Result};

/// Default bound on the unified diff kept in memory; files past it keep their counts but lose
/// their hunks (`Changes::truncated`).
pub const MAX_PATCH: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Added,
    Modified,
    Deleted,
    Renamed,
}

/// One changed file. Paths are relative to the work tree's top level, `/`-separated; `raw_path`
/// keeps the exact bytes (a name that is not UTF-8 shows lossily in `path`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    /// The name before a rename.
    pub old_path: Option<String>,
    pub status: Status,
    pub added: u64,
    pub removed: u64,
    pub binary: bool,
    /// Modes on each side (`0` where the file is absent): `0o100755` is executable,
    /// `0o120000` a symbolic link, `0o160000` a submodule.
    pub old_mode: Mode,
    pub new_mode: Mode,
    /// Object ids on each side (all zeros where the file is absent).
    #[serde(skip)]
    pub old_oid: String,
    #[serde(skip)]
    pub new_oid: String,
    #[serde(skip)]
    pub raw_path: PathBuf,
    #[serde(skip)]
    pub raw_old_path: Option<PathBuf>,
    pub hunks: Vec<Hunk>,
    /// This file's part of `Changes::patch` (absent past the truncation point).
    #[serde(skip)]
    pub patch_range: Option<Range<usize>>,
}

impl FileChange {
    pub fn is_submodule(&self) -> bool {
        self.old_mode == MODE_GITLINK || self.new_mode == MODE_GITLINK
    }
}

/// One hunk of a file's unified diff (three lines of context).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hunk {
    /// Where to jump in the new file: its first changed line (for a pure deletion, the line
    /// after it, within the file). At least 1.
    pub line: u32,
    pub added: u32,
    pub removed: u32,
    pub old_start: u32,
    pub old_lines: u32,
    pub new_start: u32,
    pub new_lines: u32,
    /// Line of the `@@` header in `Changes::patch`, counted from 0.
    pub patch_line: usize,
}

/// What changed between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub files: Vec<FileChange>,
    /// The unified diff (`diff --git a/… b/…`), as bytes: file contents need not be UTF-8.
    pub patch: Vec<u8>,
    /// The patch was cut at `MAX_PATCH`: later files have no hunks and no patch range.
    pub truncated: bool,
}

/// One entry of a quickfix list: `path:line: +n −m`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuickfixEntry {
    pub path: String,
    pub line: u32,
    pub text: String,
}

impl Changes {
    /// Files, lines added, lines removed: the footer's `· 3 files +12 −4`.
    pub fn totals(&self) -> (usize, u64, u64) {
        let added = self.files.iter().map(|f| f.added).sum();
        let removed = self.files.iter().map(|f| f.removed).sum();
        (self.files.len(), added, removed)
    }

    /// One entry per hunk; a file without hunks (binary, deleted past truncation, mode only,
    /// submodule) gets one entry at line 1 saying what happened to it.
    pub fn quickfix(&self) -> Vec<QuickfixEntry> {
        let mut out = Vec::new();
        for f in &self.files {
            if f.hunks.is_empty() || f.status == Status::Deleted {
                let what = match (f.status, f.binary, f.is_submodule()) {
                    (_, _, true) => "submodule".to_string(),
                    (Status::Deleted, _, _) => format!("deleted −{}", f.removed),
                    (_, true, _) => "binary".to_string(),
                    (Status::Renamed, _, _) => {
                        format!("renamed from {}", f.old_path.as_deref().unwrap_or("?"))
                    }
                    _ => "mode changed".to_string(),
                };
                out.push(QuickfixEntry {
                    path: f.path.clone(),
                    line: 1,
                    text: what,
                });
                continue;
            }
            for h in &f.hunks {
                out.push(QuickfixEntry {
                    path: f.path.clone(),
                    line: h.line,
                    text: format!("+{} −{}", h.added, h.removed),
                });
            }
        }
        out
    }

    /// The file and new-file line that line `patch_line` (from 0) of `patch` stands for: `<CR>`
    /// in the diff buffer. A removed line maps to the line now in its place; a file header to
    /// the file's first hunk.
    pub fn locate(&self, patch_line: usize) -> Option<(&FileChange, u32)> {
        let file = self
            .files
            .iter()
            .filter(|f| f.patch_range.is_some())
            .take_while(|f| {
                f.patch_range
                    .as_ref()
                    .is_some_and(|r| line_of(&self.patch, r.start) <= patch_line)
            })
            .last()?;
        let hunk = file
            .hunks
            .iter()
            .take_while(|h| h.patch_line <= patch_line)
            .last();
        let Some(hunk) = hunk else {
            return Some((file, file.hunks.first().map_or(1, |h| h.line)));
        };
        let mut new_line = hunk.new_start;
        let mut last_new = hunk.new_start.max(1);
        let body = self.patch.split(|&b| b == b'\n').skip(hunk.patch_line + 1);
        for (i, l) in body.enumerate() {
            let at = hunk.patch_line + 1 + i;
            let c = l.first().copied();
            if at == patch_line {
                return Some((
                    file,
                    if c == Some(b'-') {
                        new_line
                    } else {
                        new_line.max(1)
                    }
                    .max(1),
                ));
            }
            match c {
                Some(b'+') | Some(b' ') => {
                    last_new = new_line;
                    new_line += 1;
                }
                Some(b'-') | Some(b'\\') => {}
                _ => break,
            }
        }
        Some((file, last_new.max(1)))
    }
}

/// Line number (from 0) of byte `offset` in `text`.
fn line_of(text: &[u8], offset: usize) -> usize {
    text[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// The changes from commit `from` to commit `to` of `repo`, with renames found (50 %
/// similarity, git's default).
pub fn diff(repo: &Repo, from: &str, to: &str) -> Result<Changes> {
    diff_limited(repo, from, to, MAX_PATCH)
}

/// `diff` with another bound on the patch's size.
pub fn diff_limited(repo: &Repo, from: &str, to: &str, max_patch: usize) -> Result<Changes> {
    // The raw and numstat records come first; the bound is on what follows them.
    let (out, command) = diff_tree(repo, from, to, true, max_patch.saturating_add(MAX_PATCH))?;
    parse(&out.stdout, out.truncated, max_patch).map_err(|reason| Error::Parse { command, reason })
}

/// The changed files from `from` to `to`, without the patch (what a merge needs).
pub fn files(repo: &Repo, from: &str, to: &str) -> Result<Vec<FileChange>> {
    let (out, command) = diff_tree(repo, from, to, false, crate::git::STDOUT_DEFAULT_MAX)?;
    if out.truncated {
        return Err(Error::Refused(format!(
            "{command}: too many changed files to handle"
        )));
    }
    parse(&out.stdout, false, 0)
        .map(|c| c.files)
        .map_err(|reason| Error::Parse { command, reason })
}

/// `git diff-tree` of two commits with renames, as `parse` reads it; with the patch or not.
/// Every option that the user's configuration could change is given.
fn diff_tree(
    repo: &Repo,
    from: &str,
    to: &str,
    patch: bool,
    max_stdout: usize,
) -> Result<(crate::git::Output, String)> {
    let mut cmd = repo.cmd().args([
        "diff-tree",
        "-r",
        "-z",
        "--raw",
        "--numstat",
        "-M",
        "--no-abbrev",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--submodule=short",
    ]);
    if patch {
        cmd = cmd.args([
            "-p",
            "-U3",
            "--inter-hunk-context=0",
            "--src-prefix=a/",
            "--dst-prefix=b/",
        ]);
    }
    let cmd = cmd.args([from, to, "--"]).max_stdout(max_stdout);
    let command = cmd.display();
    let out = cmd.output()?;
    if !out.success() {
        return Err(crate::git::failed(command, repo.top.clone(), &out));
    }
    Ok((out, command))
}

/// Parses `diff-tree -z --raw --numstat [-p]` output.
pub fn parse(out: &[u8], cut: bool, max_patch: usize) -> std::result::Result<Changes, String> {
    let mut changes = Changes::default();
    if out.is_empty() {
        return Ok(changes);
    }
    let mut pos = 0usize;
    let next = |pos: &mut usize| -> Option<&[u8]> {
        let rest = out.get(*pos..)?;
        if rest.is_empty() {
            return None;
        }
        let end = rest.iter().position(|&b| b == 0)?;
        *pos += end + 1;
        Some(&rest[..end])
    };
    // Raw records: ":<old mode> <new mode> <old oid> <new oid> <status>" NUL path [NUL path2].
    let mut typechanges = Vec::new();
    loop {
        let save = pos;
        let Some(rec) = next(&mut pos) else { break };
        if !rec.starts_with(b":") {
            pos = save;
            break;
        }
        let fields: Vec<&[u8]> = rec[1..].split(|&b| b == b' ').collect();
        if fields.len() != 5 {
            return Err(format!("bad raw record {:?}", String::from_utf8_lossy(rec)));
        }
        let old_mode = parse_mode(fields[0]).ok_or("bad mode")?;
        let new_mode = parse_mode(fields[1]).ok_or("bad mode")?;
        let status_char = fields[4].first().copied().ok_or("empty status")?;
        let first = next(&mut pos).ok_or("raw record without a path")?.to_vec();
        let (status, old, path) = match status_char {
            b'A' => (Status::Added, None, first),
            b'D' => (Status::Deleted, None, first),
            b'M' => (Status::Modified, None, first),
            b'T' => {
                typechanges.push(changes.files.len());
                (Status::Modified, None, first)
            }
            b'R' | b'C' => {
                let second = next(&mut pos).ok_or("rename without a new path")?.to_vec();
                (Status::Renamed, Some(first), second)
            }
            other => return Err(format!("unexpected status {:?}", other as char)),
        };
        let raw_path = PathBuf::from(std::ffi::OsStr::from_bytes(&path));
        let raw_old_path = old
            .as_ref()
            .map(|o| PathBuf::from(std::ffi::OsStr::from_bytes(o)));
        changes.files.push(FileChange {
            old_oid: String::from_utf8_lossy(fields[2]).into_owned(),
            new_oid: String::from_utf8_lossy(fields[3]).into_owned(),
            path: String::from_utf8_lossy(&path).into_owned(),
            old_path: old.map(|o| String::from_utf8_lossy(&o).into_owned()),
            status,
            added: 0,
            removed: 0,
            binary: false,
            old_mode,
            new_mode,
            raw_path,
            raw_old_path,
            hunks: Vec::new(),
            patch_range: None,
        });
    }
    // Numstat records, same order: "<added>\t<removed>\t<path>" or, for a rename,
    // "<added>\t<removed>\t" NUL old NUL new.
    for f in changes.files.iter_mut() {
        let rec = next(&mut pos).ok_or("missing numstat record")?;
        let mut parts = rec.splitn(3, |&b| b == b'\t');
        let (Some(a), Some(r), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "bad numstat record {:?}",
                String::from_utf8_lossy(rec)
            ));
        };
        if a == b"-" && r == b"-" {
            f.binary = !f.is_submodule();
        } else {
            f.added = number(a)?;
            f.removed = number(r)?;
        }
        if rest.is_empty() {
            next(&mut pos).ok_or("numstat rename without old path")?;
            next(&mut pos).ok_or("numstat rename without new path")?;
        }
    }
    // An empty record separates the records from the patch.
    if !changes.files.is_empty() {
        match next(&mut pos) {
            Some([]) => {}
            Some(_) => return Err("no separator before the patch".into()),
            None if cut => {
                changes.truncated = true;
                return Ok(changes);
            }
            None => return Ok(changes),
        }
    }
    let mut patch = out.get(pos..).unwrap_or_default();
    let mut truncated = cut;
    if patch.len() > max_patch {
        patch = &patch[..max_patch];
        truncated = true;
    }
    // Sections start at "diff --git " lines; a type change prints two.
    let mut starts: Vec<usize> = Vec::new();
    let mut off = 0;
    for line in patch.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"diff --git ") {
            starts.push(off);
        }
        off += line.len();
    }
    let mut bounds: Vec<Range<usize>> = Vec::new();
    for (i, &s) in starts.iter().enumerate() {
        let e = starts.get(i + 1).copied().unwrap_or(patch.len());
        bounds.push(s..e);
    }
    let mut section = 0;
    let mut kept_end = 0;
    for (idx, f) in changes.files.iter_mut().enumerate() {
        let parts = if typechanges.contains(&idx) { 2 } else { 1 };
        if section + parts > bounds.len() {
            truncated = true;
            break;
        }
        let range = bounds[section].start..bounds[section + parts - 1].end;
        section += parts;
        // The last section of a cut patch may be incomplete: drop it.
        let complete = !truncated || section < bounds.len();
        if !complete {
            break;
        }
        let first_line = line_of(patch, range.start);
        f.hunks = hunks(&patch[range.clone()], first_line)?;
        kept_end = range.end;
        f.patch_range = Some(range);
    }
    changes.patch = patch[..kept_end].to_vec();
    changes.truncated = truncated;
    Ok(changes)
}

fn number(text: &[u8]) -> std::result::Result<u64, String> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad count {:?}", String::from_utf8_lossy(text)))
}

/// The hunks of one file's section; `first_line` is the section's first line in the patch.
fn hunks(section: &[u8], first_line: usize) -> std::result::Result<Vec<Hunk>, String> {
    let mut out: Vec<Hunk> = Vec::new();
    // (hunk index, next new-file line, first change seen)
    let mut cur: Option<(usize, u32, bool)> = None;
    for (i, line) in section.split(|&b| b == b'\n').enumerate() {
        if line.starts_with(b"@@ ") {
            let (old_start, old_lines, new_start, new_lines) = hunk_header(line)?;
            out.push(Hunk {
                line: new_start.max(1),
                added: 0,
                removed: 0,
                old_start,
                old_lines,
                new_start,
                new_lines,
                patch_line: first_line + i,
            });
            cur = Some((out.len() - 1, new_start, false));
            continue;
        }
        let Some((h, ref mut new_line, ref mut seen)) = cur else {
            continue;
        };
        let hunk = &mut out[h];
        match line.first() {
            Some(b'+') | Some(b'-') => {
                if !*seen {
                    *seen = true;
                    let last = (hunk.new_start + hunk.new_lines).saturating_sub(1).max(1);
                    // For a '+' the line is the added one; for a '-' the one now in its place.
                    hunk.line = (*new_line).clamp(1, last.max(1));
                }
                if line[0] == b'+' {
                    hunk.added += 1;
                    *new_line += 1;
                } else {
                    hunk.removed += 1;
                }
            }
            Some(b' ') => *new_line += 1,
            Some(b'\\') => {}
            _ => cur = None,
        }
    }
    Ok(out)
}

/// `@@ -a[,b] +c[,d] @@…` → (a, b, c, d); a missing count is 1.
fn hunk_header(line: &[u8]) -> std::result::Result<(u32, u32, u32, u32), String> {
    let bad = || format!("bad hunk header {:?}", String::from_utf8_lossy(line));
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    let mut parts = text.split(' ');
    let (Some("@@"), Some(old), Some(new)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let range = |s: &str, sign: char| -> Option<(u32, u32)> {
        let s = s.strip_prefix(sign)?;
        match s.split_once(',') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => Some((s.parse().ok()?, 1)),
        }
    };
    let (a, b) = range(old, '-').ok_or_else(bad)?;
    let (c, d) = range(new, '+').ok_or_else(bad)?;
    Ok((a, b, c, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real output of `git diff-tree -r -z --raw --numstat -p -M` (git 2.47) for a binary
    /// change, a modification of "f one.txt", a rename and an added non-ASCII file.
    fn sample() -> Vec<u8> {
        let mut s = Vec::new();
        let z = 40;
        let oid = |c: char| c.to_string().repeat(z);
        s.extend(format!(":100644 100644 {} {} M\0bin\0", oid('1'), oid('2')).bytes());
        s.extend(format!(":100644 100644 {} {} M\0f one.txt\0", oid('3'), oid('4')).bytes());
        s.extend(format!(":100644 100644 {} {} R100\0old\0new\0", oid('5'), oid('5')).bytes());
        s.extend(format!(":000000 100644 {} {} A\0ünï code\0", oid('0'), oid('6')).bytes());
        s.extend("-\t-\tbin\0".bytes());
        s.extend("2\t1\tf one.txt\0".bytes());
        s.extend("0\t0\t\0old\0new\0".bytes());
        s.extend("1\t0\tünï code\0".bytes());
        s.push(0);
        s.extend(
            concat!(
                "diff --git a/bin b/bin\n",
                "index 1111111..2222222 100644\n",
                "Binary files a/bin and b/bin differ\n",
                "diff --git a/f one.txt b/f one.txt\n",
                "index 3333333..4444444 100644\n",
                "--- a/f one.txt\t\n",
                "+++ b/f one.txt\t\n",
                "@@ -1,3 +1,4 @@\n",
                " a\n",
                "-b\n",
                "+B\n",
                " c\n",
                "+d\n",
                "diff --git a/old b/new\n",
                "similarity index 100%\n",
                "rename from old\n",
                "rename to new\n",
                "diff --git a/ünï code b/ünï code\n",
                "new file mode 100644\n",
                "index 0000000..6666666\n",
                "--- /dev/null\n",
                "+++ b/ünï code\n",
                "@@ -0,0 +1 @@\n",
                "+ü\n",
            )
            .bytes(),
        );
        s
    }

    #[test]
    fn parses_every_kind_of_record() {
        let c = parse(&sample(), false, MAX_PATCH).unwrap();
        assert!(!c.truncated);
        let names: Vec<&str> = c.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["bin", "f one.txt", "new", "ünï code"]);
        assert!(c.files[0].binary);
        assert!(c.files[0].hunks.is_empty());
        let f = &c.files[1];
        assert_eq!((f.added, f.removed, f.status), (2, 1, Status::Modified));
        assert_eq!(f.hunks.len(), 1);
        let h = &f.hunks[0];
        assert_eq!((h.line, h.added, h.removed), (2, 2, 1));
        assert_eq!(c.files[2].status, Status::Renamed);
        assert_eq!(c.files[2].old_path.as_deref(), Some("old"));
        assert_eq!(c.files[3].status, Status::Added);
        assert_eq!(c.files[3].hunks[0].line, 1);
        assert_eq!(c.totals(), (4, 3, 1));
        let qf = c.quickfix();
        assert_eq!(qf[1].text, "+2 −1");
        assert_eq!((qf[1].path.as_str(), qf[1].line), ("f one.txt", 2));
        assert_eq!(qf[2].text, "renamed from old");
    }

    #[test]
    fn locate_maps_patch_lines_to_new_file_lines() {
        let c = parse(&sample(), false, MAX_PATCH).unwrap();
        let text = String::from_utf8(c.patch.clone()).unwrap();
        let line = |needle: &str| text.lines().position(|l| l == needle).unwrap();
        let (f, l) = c.locate(line("+B")).unwrap();
        assert_eq!((f.path.as_str(), l), ("f one.txt", 2));
        let (_, l) = c.locate(line("-b")).unwrap();
        assert_eq!(l, 2);
        let (_, l) = c.locate(line("+d")).unwrap();
        assert_eq!(l, 4);
        let (f, l) = c.locate(line("diff --git a/ünï code b/ünï code")).unwrap();
        assert_eq!((f.path.as_str(), l), ("ünï code", 1));
    }

    #[test]
    fn a_cut_patch_keeps_counts_and_drops_the_incomplete_file() {
        let full = sample();
        let cut_at = full.len() - 10;
        let c = parse(&full[..cut_at], true, MAX_PATCH).unwrap();
        assert!(c.truncated);
        assert_eq!(c.files.len(), 4);
        assert_eq!(c.files[3].added, 1);
        assert!(c.files[3].patch_range.is_none());
        assert!(c.files[1].patch_range.is_some());
        // A small bound cuts the same way.
        let c = parse(&full, false, 200).unwrap();
        assert!(c.truncated);
        assert!(c.patch.len() <= 200);
    }

    #[test]
    fn hunk_lines_for_deletions_stay_inside_the_file() {
        let section = b"@@ -3,3 +3,1 @@\n c\n-d\n-e\n";
        let h = hunks(section, 0).unwrap();
        assert_eq!((h[0].line, h[0].removed), (3, 2));
        let section = b"@@ -1,2 +0,0 @@\n-a\n-b\n";
        let h = hunks(section, 0).unwrap();
        assert_eq!(h[0].line, 1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b":100644 nonsense\0", false, MAX_PATCH).is_err());
        assert!(parse(b":100644 100644 a b M\0", false, MAX_PATCH).is_err());
        assert!(hunk_header(b"@@ -x +1 @@").is_err());
    }
}
