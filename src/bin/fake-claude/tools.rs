//! Running an allowed tool call for real: Bash through `sh -c` in its own session (killed by an
//! interrupt), the edit tools on the file, AskUserQuestion with the answers it was given.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{self, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::control::Control;
use crate::out::{lock, Out};

/// What became of a call that ran.
pub enum Ran {
    Done {
        content: String,
        is_error: bool,
    },
    /// An interrupt stopped it (its process group is dead).
    Interrupted,
}

/// Longest output kept from a Bash command.
const MAX_OUTPUT: usize = 64 * 1024;

/// `path` of a tool's input, made absolute against `cwd`.
pub fn input_path(cwd: &str, input: &Value, key: &str) -> Option<PathBuf> {
    let p = input.get(key).and_then(Value::as_str)?;
    let p = Path::new(p);
    Some(if p.is_absolute() {
        p.to_path_buf()
    } else {
        Path::new(cwd).join(p)
    })
}

/// Runs `name` with `input`; `hang`: a Bash call "runs" until interrupted (`--fake-hang`).
pub fn run_tool(
    name: &str,
    input: &Value,
    cwd: &str,
    control: &Control,
    out: &Arc<Mutex<Out>>,
    hang: bool,
) -> Ran {
    let done = |content: String, is_error: bool| Ran::Done { content, is_error };
    match name {
        "Bash" if hang => {
            while !control.interrupt_pending() {
                control.pause(Duration::from_secs(3600));
            }
            Ran::Interrupted
        }
        "Bash" => {
            let cmd = input.get("command").and_then(Value::as_str).unwrap_or("");
            bash(cmd, cwd, control, out)
        }
        "Write" => {
            let Some(path) = input_path(cwd, input, "file_path") else {
                return done(
                    "<tool_use_error>file_path is missing</tool_use_error>".into(),
                    true,
                );
            };
            let content = input.get("content").and_then(Value::as_str).unwrap_or("");
            let existed = path.exists();
            let res = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&path, content));
            match (res, existed) {
                (Err(e), _) => done(format!("Error writing {}: {e}", path.display()), true),
                (Ok(()), false) => done(
                    format!("File created successfully at: {}", path.display()),
                    false,
                ),
                (Ok(()), true) => done(
                    format!("The file {} has been updated successfully.", path.display()),
                    false,
                ),
            }
        }
        "Edit" | "MultiEdit" => {
            let Some(path) = input_path(cwd, input, "file_path") else {
                return done(
                    "<tool_use_error>file_path is missing</tool_use_error>".into(),
                    true,
                );
            };
            let edits: Vec<Value> = if name == "Edit" {
                vec![input.clone()]
            } else {
                input
                    .get("edits")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            let mut text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => return done(format!("<tool_use_error>{e}</tool_use_error>"), true),
            };
            for e in &edits {
                let old = e.get("old_string").and_then(Value::as_str).unwrap_or("");
                let new = e.get("new_string").and_then(Value::as_str).unwrap_or("");
                if old.is_empty() || !text.contains(old) {
                    return done(
                        format!(
                            "<tool_use_error>String to replace not found in file.\nString: {old}</tool_use_error>"
                        ),
                        true,
                    );
                }
                text = if e.get("replace_all").and_then(Value::as_bool) == Some(true) {
                    text.replace(old, new)
                } else {
                    text.replacen(old, new, 1)
                };
            }
            match std::fs::write(&path, text) {
                Ok(()) => done(
                    format!("The file {} has been updated successfully.", path.display()),
                    false,
                ),
                Err(e) => done(format!("Error writing {}: {e}", path.display()), true),
            }
        }
        "NotebookEdit" => done("Updated the notebook (fake: not written).".into(), false),
        "Read" => match input_path(cwd, input, "file_path").map(std::fs::read) {
            Some(Ok(bytes)) => {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT)]);
                done(text.into_owned(), false)
            }
            Some(Err(e)) => done(format!("<tool_use_error>{e}</tool_use_error>"), true),
            None => done(
                "<tool_use_error>file_path is missing</tool_use_error>".into(),
                true,
            ),
        },
        "AskUserQuestion" => match input.get("answers").and_then(Value::as_object) {
            Some(answers) if !answers.is_empty() => {
                let said: Vec<String> = answers
                    .iter()
                    .map(|(q, a)| {
                        let a = a.as_str().map_or_else(|| a.to_string(), str::to_string);
                        format!("\"{q}\"=\"{a}\"")
                    })
                    .collect();
                done(
                    format!(
                        "Your questions have been answered: {}. You can now continue with these answers in mind.",
                        said.join(", ")
                    ),
                    false,
                )
            }
            _ => done("The user did not answer the questions.".into(), true),
        },
        "ExitPlanMode" => done(
            "User has approved your plan. You can now start coding.".into(),
            false,
        ),
        _ => done("ok".into(), false),
    }
}

/// `sh -c cmd` in its own session, its output collected, killed with its group on interrupt.
fn bash(cmd: &str, cwd: &str, control: &Control, out: &Arc<Mutex<Out>>) -> Ran {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid(2) and sigprocmask(2) are async-signal-safe, and nothing else runs between
    // fork and exec.
    unsafe {
        c.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            return Ran::Done {
                content: format!("Error: cannot run sh: {e}"),
                is_error: true,
            }
        }
    };
    let pid = child.id() as i32;
    lock(out).tool_pgid = Some(pid);
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut r| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf.truncate(MAX_OUTPUT);
            buf
        })
    })
    .collect();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(_) => break None,
        }
        if control.interrupt_pending() {
            let _ = signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = child.wait();
            lock(out).tool_pgid = None;
            return Ran::Interrupted;
        }
        control.pause(Duration::from_millis(5));
    };
    lock(out).tool_pgid = None;
    // Whatever the shell left running in its session goes with it, as the real tool's does.
    let _ = signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
    let mut text = String::new();
    for r in readers {
        if let Ok(bytes) = r.join() {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    let text = text.trim_end().to_string();
    match status.and_then(|s| s.code()) {
        Some(0) => Ran::Done {
            content: text,
            is_error: false,
        },
        code => Ran::Done {
            content: format!(
                "Exit code {}\n{text}",
                code.map_or_else(|| "?".into(), |c| c.to_string())
            ),
            is_error: true,
        },
    }
}
