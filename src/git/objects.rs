//! Reading and writing single objects and refs: a blob as stored or as checked out, hashing
//! bytes into a blob, a tree entry, and atomic updates and deletions of refs.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{split_nul, Error, Repo, Result};

/// The largest blob read into memory for a merge or a diff view.
pub const MAX_BLOB: usize = 64 * 1024 * 1024;

/// Mode of a tree entry, as git writes it (`100644`, `100755`, `120000`, `160000`, `040000`).
pub type Mode = u32;
pub const MODE_FILE: Mode = 0o100644;
pub const MODE_EXEC: Mode = 0o100755;
pub const MODE_LINK: Mode = 0o120000;
pub const MODE_GITLINK: Mode = 0o160000;

/// One entry of a tree: mode and object id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub mode: Mode,
    pub oid: String,
}

/// A blob's bytes as stored (no filters, no end-of-line conversion).
pub fn read_blob(repo: &Repo, oid: &str) -> Result<Vec<u8>> {
    let cmd = repo.cmd().args(["cat-file", "blob", oid]);
    read_capped(repo, cmd, oid)
}

/// A blob's bytes as `git checkout` would write them at `path` (smudge filters, `eol`,
/// `working-tree-encoding`): what the file in the work tree is compared with.
pub fn read_blob_as_file(repo: &Repo, oid: &str, path: &Path) -> Result<Vec<u8>> {
    let mut path_arg = std::ffi::OsString::from("--path=");
    path_arg.push(path);
    let cmd = repo
        .cmd()
        .args(["cat-file", "--filters"])
        .arg(path_arg)
        .arg(oid);
    read_capped(repo, cmd, oid)
}

fn read_capped(repo: &Repo, cmd: super::Cmd<'_>, oid: &str) -> Result<Vec<u8>> {
    let command = cmd.display();
    let out = cmd.max_stdout(MAX_BLOB).output()?;
    if !out.success() {
        return Err(super::failed(command, repo.top.clone(), &out));
    }
    if out.truncated {
        return Err(Error::Refused(format!(
            "object {oid} is larger than {} MiB: too large to read for a merge or a diff view",
            MAX_BLOB >> 20
        )));
    }
    Ok(out.stdout)
}

/// Stores `bytes` as a blob (as is, no filters) and returns its id.
pub fn write_blob(repo: &Repo, bytes: Vec<u8>) -> Result<String> {
    repo.cmd()
        .args(["hash-object", "-w", "--no-filters", "--stdin"])
        .stdin(bytes)
        .run_line()
}

/// The entry at `path` (relative to the top level) in `commit`'s tree, `None` if absent.
pub fn tree_entry(repo: &Repo, commit: &str, path: &Path) -> Result<Option<Entry>> {
    let out = repo
        .cmd()
        .args(["ls-tree", "-z", "--full-tree", commit, "--"])
        .arg(path)
        .run()?;
    let want = path.as_os_str().as_bytes();
    for rec in split_nul(&out) {
        let Some(tab) = rec.iter().position(|&b| b == b'\t') else {
            continue;
        };
        if &rec[tab + 1..] != want {
            continue;
        }
        let mut head = rec[..tab].split(|&b| b == b' ');
        let (Some(mode), Some(_kind), Some(oid)) = (head.next(), head.next(), head.next()) else {
            continue;
        };
        return Ok(Some(Entry {
            mode: parse_mode(mode).ok_or_else(|| Error::Parse {
                command: "git ls-tree".into(),
                reason: format!("bad mode {}", String::from_utf8_lossy(mode)),
            })?,
            oid: String::from_utf8_lossy(oid).into_owned(),
        }));
    }
    Ok(None)
}

/// An octal mode as git prints it.
pub fn parse_mode(text: &[u8]) -> Option<Mode> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| Mode::from_str_radix(s, 8).ok())
}

/// One change of a ref transaction.
pub enum RefChange<'a> {
    /// Set `name` to `new`, whatever it was.
    Set {
        name: &'a str,
        new: &'a str,
    },
    Delete {
        name: &'a str,
    },
}

/// Applies all changes or none (`git update-ref --stdin` makes one transaction of its input).
pub fn update_refs(repo: &Repo, changes: &[RefChange<'_>]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut input = String::new();
    for c in changes {
        match c {
            RefChange::Set { name, new } => input.push_str(&format!("update {name} {new}\n")),
            RefChange::Delete { name } => input.push_str(&format!("delete {name}\n")),
        }
    }
    repo.cmd()
        .args(["update-ref", "--stdin"])
        .stdin(input.into_bytes())
        .run()
        .map(drop)
}

/// Every ref whose full name starts with `prefix` (a directory of refs: `refs/x/y/`).
pub fn refs_under(repo: &Repo, prefix: &str) -> Result<Vec<String>> {
    let out = repo
        .cmd()
        .args(["for-each-ref", "--format=%(refname)", prefix])
        .run()?;
    // Ref names cannot contain a newline.
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Deletes every ref under `prefix` in one transaction; returns how many there were.
pub fn delete_refs_under(repo: &Repo, prefix: &str) -> Result<usize> {
    let refs = refs_under(repo, prefix)?;
    let changes: Vec<RefChange<'_>> = refs.iter().map(|name| RefChange::Delete { name }).collect();
    update_refs(repo, &changes)?;
    Ok(refs.len())
}

/// A ref component made of what every ref format accepts (letters, digits, `-`, `_`), so that
/// a project key with `.` runs, `..` or a `.lock` tail cannot make an invalid name.
pub fn ref_component(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode(b"100644"), Some(MODE_FILE));
        assert_eq!(parse_mode(b"160000"), Some(MODE_GITLINK));
        assert_eq!(parse_mode(b"12x"), None);
    }

    #[test]
    fn ref_components_are_always_valid() {
        assert_eq!(ref_component("proj.a..b-1a2b3c4d"), "proj-a--b-1a2b3c4d");
        assert_eq!(ref_component("x.lock"), "x-lock");
        assert_eq!(ref_component(""), "-");
        assert_eq!(ref_component("ünï"), "-n-");
    }
}
