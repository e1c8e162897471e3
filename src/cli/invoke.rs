//! How we invoke the Claude Code CLI: the argv of one run.

use crate::task::TaskOptions;

/// Which Claude session a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionArg<'a> {
    /// First run of a task: the session id we chose, so the task is resumable from its start.
    New(&'a str),
    /// A follow-up run in the session of an earlier one.
    Resume(&'a str),
}

/// The full argv of one run, program first. The prompt is not in it: it goes on stdin as a
/// stream-json message (`control::user_message`), so a prompt starting with `-` is never read as
/// a flag and its size is not limited by argv. The CLI speaks its control protocol on stdin and
/// stdout: it asks for permissions there, and echoes what we write (doc/protocol.md).
///
/// Values are attached with `=` so that a value starting with `-` cannot be taken for a flag.
/// Allowed tools are passed comma-joined in one value, as the Agent SDK does: the CLI splits that
/// value itself and keeps patterns such as `Bash(git commit:*)` whole.
pub fn argv(opts: &TaskOptions, session: SessionArg) -> Vec<String> {
    let mut v: Vec<String> = Vec::with_capacity(opts.cmd.len() + opts.args.len() + 10);
    push_program(&mut v, opts);
    for a in [
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--permission-prompt-tool",
        "stdio",
        "--replay-user-messages",
    ] {
        v.push(a.to_string());
    }
    push_options(&mut v, opts);
    match session {
        SessionArg::New(id) => v.push(format!("--session-id={id}")),
        SessionArg::Resume(id) => v.push(format!("--resume={id}")),
    }
    v
}

/// The argv of Claude's own TUI on a task's session (`:ClaudeTasks tui`): the task's program
/// and options, interactive, resuming the session.
pub fn tui_argv(opts: &TaskOptions, session_id: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::with_capacity(opts.cmd.len() + opts.args.len() + 4);
    push_program(&mut v, opts);
    push_options(&mut v, opts);
    v.push(format!("--resume={session_id}"));
    v
}

/// The task's program (`claude` unless `cmd` names another, with its own arguments) and the
/// user's extra `args`.
fn push_program(v: &mut Vec<String>, opts: &TaskOptions) {
    match opts.cmd.split_first() {
        Some((program, rest)) => {
            v.push(program.clone());
            v.extend(rest.iter().cloned());
        }
        None => v.push("claude".to_string()),
    }
    v.extend(opts.args.iter().cloned());
}

/// The task's options a run and the TUI share: permission mode, model, allowed tools.
fn push_options(v: &mut Vec<String>, opts: &TaskOptions) {
    if !opts.permission_mode.is_empty() {
        v.push(format!("--permission-mode={}", opts.permission_mode));
    }
    if let Some(model) = opts.model.as_deref().filter(|m| !m.is_empty()) {
        v.push(format!("--model={model}"));
    }
    let tools: Vec<&str> = opts
        .allowed_tools
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect();
    if !tools.is_empty() {
        v.push(format!("--allowedTools={}", tools.join(",")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> TaskOptions {
        TaskOptions {
            cmd: vec!["claude".into()],
            model: None,
            permission_mode: "acceptEdits".into(),
            allowed_tools: vec![],
            args: vec![],
            ..Default::default()
        }
    }

    #[test]
    fn argv_for_a_new_session() {
        let a = argv(&opts(), SessionArg::New("1234"));
        assert_eq!(
            a,
            [
                "claude",
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--include-partial-messages",
                "--permission-prompt-tool",
                "stdio",
                "--replay-user-messages",
                "--permission-mode=acceptEdits",
                "--session-id=1234"
            ]
        );
    }

    #[test]
    fn argv_with_everything() {
        let o = TaskOptions {
            cmd: vec!["npx".into(), "claude".into()],
            model: Some("sonnet".into()),
            permission_mode: "default".into(),
            allowed_tools: vec!["Bash(git commit:*)".into(), " Read ".into(), "".into()],
            args: vec!["--add-dir".into(), "/x".into()],
            ..Default::default()
        };
        let a = argv(&o, SessionArg::Resume("abc"));
        assert_eq!(
            a,
            [
                "npx",
                "claude",
                "--add-dir",
                "/x",
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--include-partial-messages",
                "--permission-prompt-tool",
                "stdio",
                "--replay-user-messages",
                "--permission-mode=default",
                "--model=sonnet",
                "--allowedTools=Bash(git commit:*),Read",
                "--resume=abc"
            ]
        );
    }

    #[test]
    fn tui_argv_resumes_the_session_interactively() {
        let o = TaskOptions {
            cmd: vec!["npx".into(), "claude".into()],
            model: Some("sonnet".into()),
            permission_mode: "default".into(),
            allowed_tools: vec!["Read".into()],
            args: vec!["--add-dir".into(), "/x".into()],
            ..Default::default()
        };
        assert_eq!(
            tui_argv(&o, "abc"),
            [
                "npx",
                "claude",
                "--add-dir",
                "/x",
                "--permission-mode=default",
                "--model=sonnet",
                "--allowedTools=Read",
                "--resume=abc"
            ]
        );
        assert_eq!(
            tui_argv(&TaskOptions::default(), "s"),
            ["claude", "--resume=s"]
        );
    }

    #[test]
    fn argv_defaults_the_program_and_skips_empty_values() {
        let o = TaskOptions {
            cmd: vec![],
            model: Some(String::new()),
            permission_mode: String::new(),
            ..Default::default()
        };
        let a = argv(&o, SessionArg::New("s"));
        assert_eq!(a[0], "claude");
        assert!(!a.iter().any(|x| x.starts_with("--model")
            || x.starts_with("--permission-mode")
            || x.starts_with("--allowedTools")));
        assert_eq!(a.last().map(String::as_str), Some("--session-id=s"));
    }
}
