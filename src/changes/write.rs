//! Writing a merge's decisions into the user's files: each file replaced by renaming a complete
//! copy over it (made beside it, so the rename stays on one file system), its permissions kept
//! but for the executable bit, directories made as needed and removed when a deletion empties
//! them, as git does. A failure is reported for its file; the others go on.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::git::{io_error, Result};

/// What to do to one path.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    File { bytes: Vec<u8>, exec: bool },
    Link(Vec<u8>),
    Remove,
}

/// Performs the writes of one file's change (a rename has two), in order, stopping at the
/// first failure.
pub(crate) fn write_paths(top: &Path, writes: &[(PathBuf, Write)]) -> Result<()> {
    for (path, w) in writes {
        write_one(top, path, w)?;
    }
    Ok(())
}

fn write_one(top: &Path, rel: &Path, w: &Write) -> Result<()> {
    let full = top.join(rel);
    match w {
        Write::Remove => {
            match fs::remove_file(&full) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove", &full, e)),
            }
            remove_empty_parents(top, &full);
            Ok(())
        }
        Write::Link(target) => {
            make_parents(&full)?;
            let tmp = temp_name(&full);
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &tmp)
                .map_err(|e| io_error("create link", &tmp, e))?;
            fs::rename(&tmp, &full).map_err(|e| {
                let _ = fs::remove_file(&tmp);
                io_error("replace", &full, e)
            })
        }
        Write::File { bytes, exec } => {
            make_parents(&full)?;
            // An existing file keeps its permissions but for the executable bits.
            let mode = match fs::symlink_metadata(&full) {
                Ok(m) if m.is_file() => {
                    let p = m.permissions().mode() & 0o7777;
                    Some(if *exec {
                        p | ((p & 0o444) >> 2)
                    } else {
                        p & !0o111
                    })
                }
                _ => None,
            };
            let tmp = temp_name(&full);
            let written = OpenOptions::new()
                .write(true)
                .create_new(true)
                // The umask applies to a new file, as for any program creating one.
                .mode(if *exec { 0o777 } else { 0o666 })
                .open(&tmp)
                .and_then(|mut f| {
                    f.write_all(bytes)?;
                    if let Some(m) = mode {
                        f.set_permissions(fs::Permissions::from_mode(m))?;
                    }
                    Ok(())
                });
            if let Err(e) = written {
                let _ = fs::remove_file(&tmp);
                return Err(io_error("write", &tmp, e));
            }
            fs::rename(&tmp, &full).map_err(|e| {
                let _ = fs::remove_file(&tmp);
                io_error("replace", &full, e)
            })
        }
    }
}

/// A temporary name beside `path`, so that the rename stays on one file system.
fn temp_name(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".claude-tasks-{}.tmp", std::process::id()));
    path.with_file_name(name)
}

fn make_parents(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) => fs::create_dir_all(p).map_err(|e| io_error("create directory", p, e)),
        None => Ok(()),
    }
}

/// Removes the directories a deletion left empty, up to (not including) `top`, as git does.
fn remove_empty_parents(top: &Path, path: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == top || !d.starts_with(top) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}
