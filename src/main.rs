//! `claude-tasks`: started by Neovim with `jobstart({bin}, {rpc = true})`; speaks msgpack-RPC on
//! stdin/stdout until Neovim closes the channel, then applies `on_exit` and exits 0.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use claude_tasks::nvim::outgoing::{Outgoing, Payloads};
use claude_tasks::rpc::{Rpc, VERSION};
use claude_tasks::store::Store;
use claude_tasks::tasks::watchdog::WatchdogSpec;
use claude_tasks::{log_error, log_info};
use nvim_rs::Neovim;

/// How long after the channel closes we look whether Neovim itself is still there.
const EDITOR_GONE_CHECK: std::time::Duration = std::time::Duration::from_millis(150);

struct Cli {
    state_dir: PathBuf,
    log_file: Option<PathBuf>,
    nice: Option<i32>,
    /// `--watchdog --owner PID:START`: not a backend but the watchdog of the backend with that
    /// pid and start time (`tasks/watchdog`), started by it.
    watchdog: Option<(i32, u64)>,
}

const USAGE: &str =
    "usage: claude-tasks [--state-dir DIR] [--log-file FILE] [--nice 0-19] | --version
Started by claude-tasks.nvim; speaks msgpack-RPC on stdin/stdout.
(--watchdog --owner PID:START is how the backend starts its watchdog.)";

fn default_state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("nvim").join("claude-tasks")
}

enum Parsed {
    Run(Cli),
    Print(String),
}

fn parse_args() -> Result<Parsed, String> {
    let mut cli = Cli {
        state_dir: default_state_dir(),
        log_file: None,
        nice: None,
        watchdog: None,
    };
    let mut watchdog = false;
    let mut owner: Option<(i32, u64)> = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy().into_owned();
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<PathBuf, String> {
            match inline.clone() {
                Some(v) => Ok(PathBuf::from(v)),
                None => args
                    .next()
                    .map(PathBuf::from)
                    .ok_or_else(|| format!("{name} needs a value\n{USAGE}")),
            }
        };
        match flag.as_str() {
            "--version" | "-V" => return Ok(Parsed::Print(format!("claude-tasks {VERSION}"))),
            "--help" | "-h" => return Ok(Parsed::Print(USAGE.to_owned())),
            "--state-dir" => cli.state_dir = value("--state-dir")?,
            "--log-file" => cli.log_file = Some(value("--log-file")?),
            "--watchdog" => watchdog = true,
            "--owner" => {
                let v = value("--owner")?;
                owner = Some(parse_owner(&v.to_string_lossy()).ok_or_else(|| {
                    format!("--owner needs PID:START_TIME, not '{}'", v.display())
                })?);
            }
            "--nice" => {
                let v = value("--nice")?;
                let n = v
                    .to_str()
                    .and_then(|v| v.parse::<i32>().ok())
                    .filter(|n| (0..=19).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "--nice needs an integer from 0 to 19, not '{}'",
                            v.display()
                        )
                    })?;
                cli.nice = Some(n);
            }
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    match (watchdog, owner) {
        (true, Some(o)) => cli.watchdog = Some(o),
        (true, None) => return Err(format!("--watchdog needs --owner\n{USAGE}")),
        (false, Some(_)) => return Err(format!("--owner is for --watchdog only\n{USAGE}")),
        (false, None) => {}
    }
    Ok(Parsed::Run(cli))
}

/// `PID:START_TIME`, both positive.
fn parse_owner(v: &str) -> Option<(i32, u64)> {
    let (pid, start) = v.split_once(':')?;
    let pid = pid.parse::<i32>().ok().filter(|p| *p > 0)?;
    Some((pid, start.parse().ok()?))
}

fn main() -> ExitCode {
    let cli = match parse_args() {
        Ok(Parsed::Run(cli)) => cli,
        Ok(Parsed::Print(text)) => {
            // The only output ever written to stdout outside RPC: we are not under Neovim here.
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("claude-tasks: {e}");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log_error!("{e}");
            eprintln!("claude-tasks: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    if let Some(path) = &cli.log_file {
        if let Err(e) = claude_tasks::log::to_file(path) {
            eprintln!("claude-tasks: cannot open log file {}: {e}", path.display());
        }
    }
    if let Some(owner) = cli.watchdog {
        return claude_tasks::tasks::watchdog::run(&cli.state_dir, owner);
    }
    if let Some(n) = cli.nice {
        claude_tasks::process::priority::lower(n);
    }
    tune_malloc();
    // A panic in a tokio task is otherwise silent: make it visible in the log.
    std::panic::set_hook(Box::new(|info| {
        log_error!("panic: {info}");
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(serve(cli))?;
    // Blocking reads of stdin may still sit in tokio's blocking pool; don't wait for them.
    runtime.shutdown_background();
    Ok(())
}

/// Keeps the backend's resident memory near what it uses. glibc gives each thread its own arena
/// and raises its mmap threshold after a large block is freed, so the buffers of a long line or
/// a flood would stay resident in several arenas after use. Two arenas and a fixed threshold
/// return large blocks to the kernel when they are freed. The threshold is above the size of
/// one write's message (128 KiB of lines, encoded), which is built for every call: mapped fresh
/// each time, its pages faulted in were ~6 % of a flood's CPU.
fn tune_malloc() {
    use nix::libc;
    // SAFETY: mallopt only changes allocator parameters; it runs before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// The binary this process runs, to start the watchdog from. `/proc/self/exe` names it even
/// after the file at its path was replaced or deleted (a rebuild while the backend runs), where
/// `current_exe()` names the new file or a path ending in " (deleted)". Without /proc (the
/// link cannot be read), the path is the best there is.
fn own_binary() -> std::io::Result<PathBuf> {
    let link = std::path::Path::new("/proc/self/exe");
    match std::fs::read_link(link) {
        Ok(_) => Ok(link.to_path_buf()),
        Err(_) => std::env::current_exe(),
    }
}

/// The RPC loop: it ends when the channel to Neovim does.
type IoLoop = tokio::task::JoinHandle<Result<(), Box<nvim_rs::error::LoopError>>>;

/// nvim-rs on our stdin and stdout, as `nvim_rs::create::tokio::new_parent` sets it up, but
/// writing through `Outgoing`.
fn connect(rpc: Rpc, payloads: Arc<Payloads>) -> std::io::Result<(Neovim<Outgoing>, IoLoop)> {
    use std::os::fd::AsFd;
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let stdout = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    // The writer thread is not joined: it ends with the process, or at Neovim's end of the pipe.
    let (writer, _thread) = Outgoing::spawn(stdout, payloads)?;
    let (nvim, io) = Neovim::new(tokio::io::stdin().compat(), writer, rpc);
    Ok((nvim, tokio::spawn(io)))
}

async fn serve(cli: Cli) -> Result<(), String> {
    claude_tasks::process::reaper::init()
        .map_err(|e| format!("cannot install the child reaper: {e}"))?;
    let store = match Store::open(&cli.state_dir) {
        Ok(store) => store,
        Err(e) => {
            // Not fatal: exiting here, Neovim would only see its backend die at every call.
            // Requests that need the store answer with the file system's error instead (naming
            // the path), and everything else keeps working.
            log_error!("{e}");
            Store::unopened(&cli.state_dir)
        }
    };
    let cwd = std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/".into());
    log_info!(
        "claude-tasks {VERSION} started (state dir {}, cwd {cwd})",
        cli.state_dir.display()
    );
    // Before the RPC loop answers anything: a SIGTERM that comes right after the first answers
    // (a quick quit) is then a clean shutdown, not the default action's death by signal.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| e.to_string())?;
    let payloads = Arc::new(Payloads::default());
    let rpc = Rpc::new(store, cwd, payloads.clone());
    let (nvim, io) =
        connect(rpc.clone(), payloads).map_err(|e| format!("cannot set up RPC on stdio: {e}"))?;
    let sup = rpc
        .supervisor(Some(nvim))
        .cloned()
        .ok_or("cannot create the supervisor")?;
    // Without a program to start, the CLIs live only as long as a backend closes them.
    match own_binary() {
        // Absolute: the watchdog runs in another directory.
        Ok(program) => sup.set_watchdog(WatchdogSpec {
            program,
            state_dir: std::path::absolute(&cli.state_dir).unwrap_or(cli.state_dir.clone()),
            log_file: cli
                .log_file
                .as_ref()
                .map(|f| std::path::absolute(f).unwrap_or(f.clone())),
        }),
        Err(e) => log_error!("cannot find our own binary to start the watchdog: {e}"),
    }
    // Tasks left running by a backend that crashed or detached are adopted (or settled) now, so
    // their buffers and events continue without waiting for a request.
    let recovering = sup.clone();
    tokio::task::spawn_blocking(move || {
        let handle = tokio::runtime::Handle::current();
        let _guard = handle.enter();
        recovering.recover();
    });

    let editor = nix::unistd::getppid();
    enum End {
        /// Neovim closed the channel (quitting, or killed).
        Closed,
        /// The RPC loop broke on something else: we can no longer talk to Neovim.
        Broken(String),
        Signal,
    }
    let end = tokio::select! {
        res = io => match res {
            Ok(Ok(())) => End::Closed,
            Ok(Err(e)) if e.is_channel_closed() => End::Closed,
            Ok(Err(e)) => End::Broken(e.to_string()),
            Err(e) => End::Broken(format!("RPC loop panicked: {e}")),
        },
        _ = term.recv() => { log_info!("SIGTERM"); End::Signal }
        _ = hup.recv() => { log_info!("SIGHUP"); End::Signal }
    };
    match end {
        End::Closed => {
            log_info!("Neovim closed the channel");
            // A quitting Neovim closes our channel and waits for us; a killed one is gone a
            // moment later and we are re-parented. Only the first asks for `on_exit`.
            tokio::time::sleep(EDITOR_GONE_CHECK).await;
            if nix::unistd::getppid() != editor {
                sup.abandon();
            } else {
                sup.shutdown().await;
            }
        }
        End::Broken(why) => {
            // Not the user's request to quit: leave the tasks to the backend Lua starts next,
            // which re-adopts them, and exit non-zero so that Lua says so.
            sup.abandon();
            return Err(format!("the RPC loop broke: {why}"));
        }
        End::Signal => sup.shutdown().await,
    }
    log_info!("exiting");
    Ok(())
}
