//! `fake-claude`: a stand-in for the Claude Code CLI, for tests and the offline demo.
//!
//! It behaves like `claude -p --output-format stream-json --verbose --include-partial-messages`:
//! reads the prompt from stdin until EOF, writes stream-json lines to stdout, exits. Every real
//! CLI flag is accepted and ignored except `--session-id`, `--resume`, `--model`,
//! `--permission-mode`, `--input-format`, `--permission-prompt-tool`, `--replay-user-messages`
//! and `--allowedTools`, which change what it does as they change the real CLI.
//!
//! With `--input-format stream-json` it speaks the CLI's control protocol on stdin and stdout
//! (the verified behaviour is in the shared fixtures' CONTROL.md): stdin holds `user` messages
//! and `control_request`s (`initialize` with hooks, `interrupt`, `set_permission_mode`) and the
//! answers (`control_response`) to what it asks; each user message is a turn (`system/init` …
//! `result`), and the process stays alive and idle after a result until stdin ends (exit code:
//! the last result's `is_error`) or a signal comes. A message written during a turn is folded
//! into it when the turn still calls a tool after it, and runs as the next turn otherwise (the
//! messages waiting then taken together, joined by newlines, as one prompt echoed once).
//! `--fake-exit`, `--fake-no-result` and `--fake-kill-self` still end the process after the
//! first turn's output, like a crashing CLI.
//!
//! Its own options come first (from the task's `cmd` list) and can also be given as environment
//! variables `FAKE_CLAUDE_<NAME>` (`--fake-delay-ms=40` ≡ `FAKE_CLAUDE_DELAY_MS=40`); a flag
//! wins over the variable. An unknown `--fake-*` option is an error (exit 2), to catch typos.
//!
//! ```text
//! --fake-transcript=PATH    replay PATH's lines (session ids replaced by ours)
//! --fake-delay-ms=N         pause N ms between lines (default 0)
//! --fake-exit=N             exit code (default 0; non-zero also makes the result an error)
//! --fake-no-result          omit the result line
//! --fake-hang               stop mid-turn (built-in script: while its Bash tool "runs"; a
//!                           transcript: before its result line) and sleep until signalled
//!                           (or, with stream-json input, until an `interrupt` ends the turn)
//! --fake-silent-hang        write nothing, never exit
//! --fake-ignore-signals     ignore SIGINT and SIGTERM (grandchildren too)
//! --fake-grandchildren=N    start N `sleep` processes, each in its own session (like the
//!                           Bash tool), before any output
//! --fake-pids-file=PATH     write their pids there, one per line (atomically, all at once)
//! --fake-huge-line=BYTES    one assistant text line of exactly BYTES bytes (plus newline)
//! --fake-lines=N            stream N text lines as text_delta events + one assistant line
//! --fake-line-bytes=B       size of each of those lines, newline included (default 80)
//! --fake-echo-stdin         the assistant text is the prompt, byte for byte (lossy if not UTF-8)
//! --fake-record=PATH        write PATH.argv (args, one per line), PATH.stdin (the prompt: the
//!                           raw bytes on stdin, or the first user message's text with
//!                           stream-json input) and PATH.cwd
//! --fake-raw=PATH           copy PATH's bytes verbatim to stdout and nothing else (no init,
//!                           no result: the file is the whole output), in chunks, pausing
//!                           --fake-delay-ms between chunks; a test can then compare the
//!                           transcript with PATH byte for byte (a SIGINT still appends the
//!                           interruption lines; --fake-exit / --fake-hang still apply)
//! --fake-raw-chunk=BYTES    size of those chunks (default 65536), each one write(2)
//! --fake-kill-self=SIG      after the output, die from signal SIG (a number, or a name such
//!                           as KILL / SIGSEGV) instead of exiting, like a crashing CLI (not
//!                           with --fake-hang, which never gets there)
//! --fake-cli-version=V      the CLI whose line shapes to write: 2.1.197 (default) or 2.1.332
//!                           (`api_message_id` after the uuid of every stream event, `status`
//!                           lines before each request, its init fields and default model
//!                           `claude-opus-5-5`, and a `result` line in its key order: `type`
//!                           late, after the whole answer, which it repeats in `result` in
//!                           every mode, as the real CLI does)
//! --fake-tools=JSON|@PATH   with stream-json input: the tool calls of each turn, a JSON list
//!                           of steps (below); a line `fake-tools: <JSON>` in a user message
//!                           sets that turn's steps instead
//! --fake-control-log=PATH   append a JSON line per control exchange: {"event": "request" |
//!                           "answer", "request_id", "subtype", "t_ns"} (CLOCK_MONOTONIC, so
//!                           comparable with other processes' clocks), for the benchmarks
//! ```
//!
//! A tool step is `{"name": "Bash", "input": {"command": "npm test"}}` (one API round trip with
//! that tool call), or a list of such objects (several calls in one assistant message, their
//! permission requests written together: the real CLI asks one at a time, this lets a test
//! prove that nothing assumes it). Each call goes through the CLI's permission steps: the
//! `PreToolUse` hook callbacks registered by `initialize` (`{}` goes on, `permissionDecision`
//! `allow` / `deny` / `ask`), the `--allowedTools` rules, the permission mode (`bypassPermissions`
//! allows all, `dontAsk` denies what is not allowed, `acceptEdits` allows edits inside the cwd,
//! read-only tools and commands such as `ls` need nothing), then a `can_use_tool` request
//! (without `--permission-prompt-tool stdio`: a denial). Allowed calls really run: Bash through
//! `sh -c` in its own session (killed by an interrupt), Write / Edit / MultiEdit on the file
//! with the input as answered (an edited `updatedInput` is what runs), AskUserQuestion with the
//! answers given; an allow without `updatedInput` is a denial, as in the real CLI. The final
//! text names each call and what became of it.
//!
//! Signals, as the real CLI (fixtures `signal-*`): SIGINT stops the turn, kills the grandchildren,
//! writes `[Request interrupted by user]` (`... for tool use]` plus a rejected `tool_result` when
//! a tool is running) and a `result` with `subtype: error_during_execution`, exits 1. SIGTERM
//! exits 143 without a result and leaves the grandchildren orphaned. Before the first output line
//! (and with `--fake-silent-hang`) both signals kill the process, as they kill the real CLI
//! during its startup.

mod control;
mod json;
mod modes;
mod opts;
mod out;
mod permission;
mod protocol;
mod tools;
mod turn;

use std::fs::File;
use std::io::{BufWriter, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};

use control::Control;
use json::uuid;
use modes::{copy_raw, legacy_turn};
use opts::{parse_opts, Cli, Opts};
use out::{lock, Ctx, Emitter, Out};

/// Hidden first argument: the process is one of the grandchildren, sleeping until killed. Used
/// only when no `sleep` program can be run.
const SLEEPER_ARG: &str = "--fake-internal-sleeper";

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.first().map(String::as_str) == Some(SLEEPER_ARG) {
        sleep_forever();
    }
    let opts = match parse_opts(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fake-claude: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&opts, &args) {
        eprintln!("fake-claude: {e}");
        std::process::exit(2);
    }
}

fn sleep_forever() -> ! {
    loop {
        // park() may return spuriously; the loop makes it "until killed".
        std::thread::park();
    }
}

fn run(o: &Opts, args: &[String]) -> Result<(), String> {
    // Signals first, before any thread exists and before the (possibly slow) stdin read: the
    // mask set here is inherited by the signal thread and decides who receives the signals.
    let handle_signals = !o.ignore_signals;
    if o.ignore_signals {
        // SIG_IGN survives fork and exec, so the grandchildren started below ignore them too,
        // like a tool that traps signals.
        // SAFETY: installing SIG_IGN has no handler code to be unsafe.
        unsafe {
            let _ = signal::signal(Signal::SIGINT, SigHandler::SigIgn);
            let _ = signal::signal(Signal::SIGTERM, SigHandler::SigIgn);
        }
    }
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGINT);
    sigs.add(Signal::SIGTERM);
    if handle_signals {
        // A signal ignored at exec time (a non-interactive shell ignores SIGINT in background
        // jobs) is discarded even while blocked, so sigwait would never see it. The real CLI
        // installs handlers, which overrides an inherited SIG_IGN; do the same.
        // SAFETY: restoring the default disposition installs no handler code.
        unsafe {
            let _ = signal::signal(Signal::SIGINT, SigHandler::SigDfl);
            let _ = signal::signal(Signal::SIGTERM, SigHandler::SigDfl);
        }
        // Blocked in every thread, taken with sigwait by the signal thread: the handling code is
        // then ordinary code, not an async-signal handler. The mask is inherited across fork
        // and exec (std does not reset it), so `spawn_sleeper` clears it in the child.
        signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&sigs), None)
            .map_err(|e| format!("sigmask: {e}"))?;
    }

    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let ctx = Ctx {
        sid: o
            .session_id
            .clone()
            .or_else(|| o.resume.clone())
            .unwrap_or_else(uuid),
        cwd: cwd.clone(),
        model: o.model.clone().unwrap_or_else(|| {
            match o.cli {
                Cli::V2_1_197 => "claude-fake",
                Cli::V2_1_332 => "claude-opus-5-5",
            }
            .into()
        }),
        permission_mode: o
            .permission_mode
            .clone()
            .unwrap_or_else(|| "default".into()),
        cli: o.cli,
        t0: Instant::now(),
        stdio_prompts: o.stream_input && o.prompt_tool_stdio,
    };
    // A private duplicate of fd 1, so the buffered writer is ours alone (std's stdout would add
    // a line buffer, i.e. a syscall per line).
    let stdout_file: File = match nix::unistd::dup(std::io::stdout()) {
        Ok(fd) => File::from(fd),
        Err(_) => File::create("/dev/null").map_err(|e| format!("no stdout: {e}"))?,
    };
    let out = Arc::new(Mutex::new(Out {
        w: BufWriter::with_capacity(64 * 1024, stdout_file),
        // A live process answers while idle: every line must reach the file at once.
        flush_each: o.delay_ms > 0 || o.stream_input,
        started: false,
        ctx: ctx.clone(),
        pending_tool: None,
        turns: 0,
        grandchildren: Vec::new(),
        stopped: false,
        total_cost: 0.0,
        last_is_error: false,
        tool_pgid: None,
        replay: None,
    }));
    if handle_signals {
        let out = out.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || signal_thread(out, sigs))
            .map_err(|e| format!("signal thread: {e}"))?;
    }

    let control = if o.stream_input {
        Some(Control::start(out.clone(), o).map_err(|e| format!("stdin reader: {e}"))?)
    } else {
        None
    };
    let prompt: Vec<u8> = match (&o.prompt_arg, &control) {
        (Some(p), _) => p.clone().into_bytes(),
        // Like the real CLI: nothing happens before the first message; stdin ending first is
        // a quiet exit.
        (None, Some(c)) => match c.next_message() {
            Some(text) => text.into_bytes(),
            None => std::process::exit(0),
        },
        (None, None) => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| format!("reading stdin: {e}"))?;
            buf
        }
    };

    if let Some(rec) = &o.record {
        let with_ext = |ext: &str| {
            let mut s = rec.clone().into_os_string();
            s.push(ext);
            PathBuf::from(s)
        };
        let mut argv = String::new();
        for a in args {
            argv.push_str(a);
            argv.push('\n');
        }
        std::fs::write(with_ext(".stdin"), &prompt).map_err(|e| format!("record: {e}"))?;
        std::fs::write(with_ext(".cwd"), &cwd).map_err(|e| format!("record: {e}"))?;
        // Last, so a test that sees .argv knows the other two are complete.
        std::fs::write(with_ext(".argv"), argv).map_err(|e| format!("record: {e}"))?;
    }

    if o.grandchildren > 0 {
        let mut kids = Vec::new();
        for _ in 0..o.grandchildren {
            kids.push(spawn_sleeper().map_err(|e| format!("starting a grandchild: {e}"))?);
        }
        if let Some(path) = &o.pids_file {
            let text: String = kids.iter().map(|c| format!("{}\n", c.id())).collect();
            // Written to a temporary name and renamed, so a reader sees all pids or none.
            let tmp = path.with_extension("tmp-fake-claude");
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| format!("pids file: {e}"))?;
        }
        lock(&out).grandchildren = kids;
    }

    if o.silent_hang {
        sleep_forever();
    }

    if let Some(path) = &o.raw {
        // An interrupt stops it as SIGINT does (the interruption appended).
        if let Some(c) = &control {
            c.set_legacy(true);
        }
        copy_raw(&out, path, o.raw_chunk.unwrap_or(64 * 1024), o.delay_ms)?;
        return finish(&out, o);
    }

    let mut em = Emitter {
        out: out.clone(),
        delay: Duration::from_millis(o.delay_ms),
        first: true,
        control: control.clone(),
    };
    let Some(control) = control else {
        legacy_turn(&mut em, &ctx, o, &prompt)?;
        return finish(&out, o);
    };
    let mut prompt = String::from_utf8_lossy(&prompt).into_owned();
    loop {
        {
            let mut out = lock(&out);
            out.replay = o.replay.then(|| prompt.clone());
            out.stopped = false;
            out.last_is_error = false;
        }
        match turn::steps_for(&prompt, o)? {
            Some(steps) => turn::control_turn(&mut em, &ctx, o, &control, &prompt, &steps),
            None => {
                control.set_legacy(true);
                legacy_turn(&mut em, &ctx, o, prompt.as_bytes())?;
                // A hanging turn is still running: an interrupt must stop it.
                if !o.hang {
                    control.set_legacy(false);
                }
            }
        }
        // A failing or crashing CLI (as the options ask) and a hanging one end here.
        if o.exit != 0 || o.no_result || o.kill_self.is_some() || o.hang {
            return finish(&out, o);
        }
        lock(&out).flush();
        match control.next_turn() {
            Some(next) => prompt = next,
            None => {
                let out = lock(&out);
                std::process::exit(i32::from(out.last_is_error));
            }
        }
    }
}

/// After the output: hang, die from a signal, or exit with the requested code.
fn finish(out: &Mutex<Out>, o: &Opts) -> Result<(), String> {
    lock(out).flush();
    if o.hang {
        // The signal thread (or SIGKILL) ends the process from here.
        sleep_forever();
    }
    let code = o.exit;
    // Exit while holding the lock, so the signal thread cannot write after the last line.
    let _guard = lock(out);
    if let Some(sig) = o.kill_self {
        die_by(sig);
    }
    std::process::exit(code);
}

/// Starts one grandchild: `sleep` in its own session (like the CLI's Bash tool, which runs
/// every command under `setsid`). Falls back to a copy of ourselves that sleeps.
fn spawn_sleeper() -> std::io::Result<Child> {
    let setup = |cmd: &mut Command| {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: setsid(2) and sigprocmask(2) are async-signal-safe, and nothing else runs
        // between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                // Our SIGINT/SIGTERM block would otherwise be inherited, making the grandchild
                // deaf to them (a real tool process is not).
                signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                    .map_err(std::io::Error::from)
            });
        }
    };
    let mut cmd = Command::new("sleep");
    cmd.arg("100000");
    setup(&mut cmd);
    match cmd.spawn() {
        Ok(c) => Ok(c),
        Err(_) => {
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.arg(SLEEPER_ARG);
            setup(&mut cmd);
            cmd.spawn()
        }
    }
}

fn signal_thread(out: Arc<Mutex<Out>>, sigs: SigSet) {
    loop {
        let Ok(sig) = sigs.wait() else { continue };
        let mut o = lock(&out);
        if !o.started {
            die_by(sig);
        }
        match sig {
            Signal::SIGINT => {
                o.kill_grandchildren();
                o.kill_tool();
                o.interrupted();
                o.flush();
                std::process::exit(1);
            }
            Signal::SIGTERM => {
                o.flush();
                std::process::exit(143);
            }
            _ => {}
        }
    }
}

/// Dies from `sig` (the exit status a shell reports as "killed by signal"), as the real CLI does
/// when signalled before its first line.
pub fn die_by(sig: Signal) -> ! {
    // SAFETY: restoring the default disposition installs no handler code.
    unsafe {
        let _ = signal::signal(sig, SigHandler::SigDfl);
    }
    let mut one = SigSet::empty();
    one.add(sig);
    let _ = signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&one), None);
    // raise() targets this thread, the only one not blocking `sig`.
    let _ = signal::raise(sig);
    std::process::exit(128 + sig as i32);
}
