//! The msgpack-RPC surface: decodes each request's arguments, calls the supervisor and encodes
//! the answer. Errors are strings that say what was wrong; nothing a caller sends can crash the
//! backend or leave a request unanswered.

use std::sync::{Arc, OnceLock};

pub mod args;
mod changes;
mod permissions;
mod worktree;

use async_trait::async_trait;
use nvim_rs::{Handler, Neovim};
use rmpv::Value;

use crate::nvim::editor::{NvimEditor, ParentWriter};
use crate::nvim::encode::record_value;
use crate::nvim::outgoing::Payloads;
use crate::rpc::args::Args;
use crate::store::Store;
use crate::task::{Permissions, TaskOptions, TaskRecord};
use crate::tasks::config::{Concurrency, OnExit};
use crate::tasks::permissions::rules;
use crate::tasks::{StartRequest, Supervisor};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub const METHODS: &[&str] = &[
    "version",
    "configure",
    "start",
    "cancel",
    "resume",
    "dispose",
    "get",
    "list",
    "attach",
    "detach",
    "worktree",
    "worktree_diff",
    "worktree_file",
    "apply",
    "discard",
    "allow",
    "deny",
    "answer",
    "rules",
    "add_rule",
    "remove_rule",
    "unsaved",
    "changes",
    "original",
    "revert",
    "saved",
    "interrupt",
    "tui",
];

/// Whether `mode` can be a `--permission-mode`: one word (a letter, then letters, digits, `_`
/// or `-`), never a flag. Which modes exist is the CLI's to say: it refuses one it does not
/// know (its message is the run's error), and Lua warns about one the tested CLIs do not
/// document, so that a newer CLI's mode can be passed on purpose.
fn is_permission_mode(mode: &str) -> bool {
    let mut chars = mode.chars();
    mode.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[derive(Clone)]
pub struct Rpc {
    store: Store,
    default_cwd: String,
    sup: Arc<OnceLock<Supervisor>>,
    payloads: Arc<Payloads>,
}

impl Rpc {
    /// `payloads`: those of the writer nvim-rs writes to (see `outgoing`).
    pub fn new(store: Store, default_cwd: String, payloads: Arc<Payloads>) -> Rpc {
        Rpc {
            store,
            default_cwd,
            sup: Arc::new(OnceLock::new()),
            payloads,
        }
    }

    /// The supervisor, created on the first request: it needs the Neovim handle to call back.
    pub fn supervisor(&self, nvim: Option<Neovim<ParentWriter>>) -> Option<&Supervisor> {
        if self.sup.get().is_none() {
            let nvim = nvim?;
            let _ = self.sup.set(Supervisor::new(
                self.store.clone(),
                Arc::new(NvimEditor::new(nvim, self.payloads.clone())),
            ));
        }
        self.sup.get()
    }

    fn cwd(&self, a: &Args) -> Result<String, String> {
        Ok(a.opt_str("cwd")?
            .unwrap_or_else(|| self.default_cwd.clone()))
    }

    /// Answers one request: its arguments decoded, one method of the supervisor called.
    pub async fn dispatch(
        &self,
        sup: &Supervisor,
        method: &str,
        params: &[Value],
    ) -> Result<Value, String> {
        if !METHODS.contains(&method) {
            return Err(format!(
                "unknown method '{method}' (known: {})",
                METHODS.join(", ")
            ));
        }
        let a = Args::new(method, params)?;
        match method {
            "version" => Ok(Value::from(VERSION)),
            "configure" => configure(sup, &a),
            "start" => self.start(sup, &a).await,
            "cancel" => self.cancel(sup, &a).await,
            "resume" => self.resume(sup, &a).await,
            "dispose" => self.dispose(sup, &a).await,
            "get" => self.get(sup, &a).await,
            "list" => self.list(sup, &a).await,
            "attach" | "detach" => self.attach(sup, &a, method == "attach").await,
            "worktree" | "worktree_diff" | "worktree_file" | "apply" | "discard" => {
                self.worktree(sup, method, &a).await
            }
            "allow" => self.answer(sup, &a, "allow").await,
            "deny" => self.answer(sup, &a, "deny").await,
            "answer" => self.answer(sup, &a, "answer").await,
            "rules" => self.rules(sup, &a, "rules").await,
            "add_rule" => self.rules(sup, &a, "add_rule").await,
            "remove_rule" => self.rules(sup, &a, "remove_rule").await,
            "unsaved" => self.unsaved(sup, &a),
            "changes" => self.changes(sup, &a).await,
            "original" => self.original(sup, &a).await,
            "revert" => self.revert(sup, &a).await,
            "saved" => changes::saved(sup, params).map(|()| Value::Boolean(true)),
            "interrupt" => self.interrupt(sup, &a).await,
            "tui" => self.tui(sup, &a).await,
            _ => Err(format!("unknown method '{method}'")),
        }
    }

    /// A record as the answer to a request.
    fn rec(&self, r: TaskRecord) -> Value {
        record_value(&self.store, &r)
    }

    async fn start(&self, sup: &Supervisor, a: &Args<'_>) -> Result<Value, String> {
        let prompt = a.str("prompt")?;
        let cwd = self.cwd(a)?;
        let mut cmd = a.opt_str_list("cmd", true)?.unwrap_or_default();
        if cmd.is_empty() {
            cmd.push("claude".into());
        }
        if cmd[0].is_empty() {
            return Err("start: 'cmd' names an empty program".into());
        }
        let permission_mode = a
            .opt_str("permission_mode")?
            .unwrap_or_else(|| "acceptEdits".into());
        if !is_permission_mode(&permission_mode) {
            return Err(format!(
                "start: 'permission_mode' must be a mode such as \"acceptEdits\" (one word); \
                 got {permission_mode:?}"
            ));
        }
        let permissions = match a.opt_str("permissions")?.as_deref() {
            None | Some("ask") => Permissions::Ask,
            Some("deny") => Permissions::Deny,
            Some(other) => {
                return Err(format!(
                    "start: 'permissions' must be \"ask\" or \"deny\"; got {other:?}"
                ))
            }
        };
        let allowed_tools = a.opt_str_list("allowed_tools", false)?.unwrap_or_default();
        for t in &allowed_tools {
            if let Err(why) = rules::Rule::parse(t) {
                return Err(format!("start: 'allowed_tools': {why}"));
            }
        }
        let options = TaskOptions {
            cmd,
            model: a.opt_str("model")?.filter(|m| !m.is_empty()),
            permission_mode,
            allowed_tools,
            args: a.opt_str_list("args", false)?.unwrap_or_default(),
            permissions,
        };
        let req = StartRequest {
            prompt,
            cwd,
            name: a.opt_str("name")?,
            options,
            isolation: worktree::isolation(a)?,
            context: a.opt_str_list("context", false)?.unwrap_or_default(),
        };
        sup.start(req).await.map(|r| self.rec(r))
    }

    async fn cancel(&self, sup: &Supervisor, a: &Args<'_>) -> Result<Value, String> {
        let (cwd, id) = (self.cwd(a)?, a.u64("id")?);
        off_runtime(sup, move |s| s.cancel(&cwd, id))
            .await
            .map(|r| self.rec(r))
    }

    async fn resume(&self, sup: &Supervisor, a: &Args<'_>) -> Result<Value, String> {
        let (cwd, id, prompt) = (self.cwd(a)?, a.u64("id")?, a.str("prompt")?);
        off_runtime(sup, move |s| s.resume(&cwd, id, prompt))
            .await
            .map(|r| self.rec(r))
    }

    async fn interrupt(&self, sup: &Supervisor, a: &Args<'_>) -> Result<Value, String> {
        let (cwd, id) = (self.cwd(a)?, a.u64("id")?);
        off_runtime(sup, move |s| s.interrupt(&cwd, id))
            .await
            .map(|r| self.rec(r))
    }

    /// `{task, argv, cwd}`: how to open Claude's TUI on the task's session.
    async fn tui(&self, sup: &Supervisor, a: &Args<'_>) -> Result<Value, String> {
        let (cwd, id) = (self.cwd(a)?, a.u64("id")?);
        let (rec, argv, dir) = sup.tui(&cwd, id).await?;
        Ok(Value::Map(vec![
            (Value::from("task"), self.rec(rec)),
            (
                Value::from("argv"),
                Value::Array(argv.into_iter().map(Value::from).collect()),
            ),
            (Value::from("cwd"), Value::from(dir)),
        ]))
    }

    async fn dispose(&self, sup: &Supervisor, a: &Args<'_>) -> Result<Value, String> {
        let (cwd, id) = (self.cwd(a)?, a.u64("id")?);
        let force = a.opt_bool("force")?.unwrap_or(false);
        off_runtime(sup, move |s| s.dispose_with(&cwd, id, force))
            .await
            .map(|()| Value::Boolean(true))
    }

    async fn get(&self, sup: &Supervisor, a: &Args<'_>) -> Result<Value, String> {
        let (cwd, id) = (self.cwd(a)?, a.u64("id")?);
        off_runtime(sup, move |s| s.get(&cwd, id))
            .await
            .map(|r| self.rec(r))
    }

    async fn list(&self, sup: &Supervisor, a: &Args<'_>) -> Result<Value, String> {
        let all = a.opt_bool("all")?.unwrap_or(false);
        let cwd = self.cwd(a)?;
        let recs = off_runtime(sup, move |s| {
            Ok(s.list(if all { None } else { Some(&cwd) }))
        })
        .await?;
        Ok(Value::Array(
            recs.into_iter().map(|r| self.rec(r)).collect(),
        ))
    }

    /// `attach` and `detach`, which take the same arguments.
    async fn attach(&self, sup: &Supervisor, a: &Args<'_>, attach: bool) -> Result<Value, String> {
        let (cwd, id) = (self.cwd(a)?, a.u64("id")?);
        let buf = a
            .opt_i64("buf")?
            .ok_or_else(|| a.missing("buf", "a buffer number"))?;
        if buf <= 0 {
            let method = if attach { "attach" } else { "detach" };
            return Err(format!(
                "{method}: 'buf' must be a buffer number, got {buf}"
            ));
        }
        off_runtime(sup, move |s| {
            if attach {
                s.attach(&cwd, id, buf)
            } else {
                s.detach(&cwd, id, buf)
            }
        })
        .await?;
        Ok(Value::Boolean(true))
    }
}

fn configure(sup: &Supervisor, a: &Args) -> Result<Value, String> {
    let on_exit = a.opt_choice("on_exit", &["cancel", "detach"])?;
    let concurrency = a.opt_choice("concurrency", &["queue", "reject", "parallel"])?;
    let max_running = a.opt_u64("max_running")?;
    if max_running == Some(0) {
        return Err("configure: 'max_running' must be at least 1".into());
    }
    let grace = a.opt_u64("cancel_grace_ms")?;
    let keep = a.opt_u64("keep")?;
    let export = a.opt_bool("export_markdown")?;
    let track_changes = a.opt_bool("track_changes")?;
    let keep_alive = a.opt_u64("keep_alive_ms")?;
    let max_idle = a.opt_u64("max_idle")?;
    sup.configure(|c| {
        if let Some(v) = keep_alive {
            c.keep_alive = std::time::Duration::from_millis(v);
        }
        if let Some(v) = max_idle {
            c.max_idle = v as usize;
        }
        if let Some(v) = on_exit.as_deref().and_then(OnExit::parse) {
            c.on_exit = v;
        }
        if let Some(v) = concurrency.as_deref().and_then(Concurrency::parse) {
            c.concurrency = v;
        }
        if let Some(v) = max_running {
            c.max_running = v as usize;
        }
        if let Some(v) = grace {
            c.cancel_grace = std::time::Duration::from_millis(v);
        }
        if let Some(v) = keep {
            c.keep = v as usize;
        }
        if let Some(v) = export {
            c.export_markdown = v;
        }
        if let Some(v) = track_changes {
            c.track_changes = v;
        }
    });
    Ok(Value::Boolean(true))
}

/// Runs a request on the blocking pool: requests read and write records, and a record's write
/// waits for its fsyncs, which wait for the journal (tens of ms while a CLI floods its
/// transcript, see `Supervisor::update`). On a runtime worker that would hold up the views
/// queued there.
async fn off_runtime<T: Send + 'static>(
    sup: &Supervisor,
    f: impl FnOnce(&Supervisor) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let sup = sup.clone();
    tokio::task::spawn_blocking(move || f(&sup))
        .await
        .map_err(|e| format!("the request failed: {e}"))?
}

#[async_trait]
impl Handler for Rpc {
    type Writer = ParentWriter;

    async fn handle_request(
        &self,
        name: String,
        args: Vec<Value>,
        neovim: Neovim<ParentWriter>,
    ) -> Result<Value, Value> {
        let Some(sup) = self.supervisor(Some(neovim)) else {
            return Err(Value::from("the backend is not initialised"));
        };
        self.dispatch(sup, &name, &args).await.map_err(|e| {
            crate::log_info!("request {name} failed: {e}");
            Value::from(e)
        })
    }

    async fn handle_notify(&self, name: String, args: Vec<Value>, neovim: Neovim<ParentWriter>) {
        // `unsaved` and `saved` come as notifications: an editor must never wait for them
        // mid-edit or inside `:write`.
        let Some(sup) = self.supervisor(Some(neovim)) else {
            return;
        };
        let handled = match name.as_str() {
            "unsaved" => Args::new("unsaved", &args)
                .and_then(|a| self.unsaved(sup, &a))
                .map(drop),
            "saved" => changes::saved(sup, &args),
            _ => Err(format!(
                "ignored notification '{name}': every method but 'unsaved' and 'saved' is a \
                 request"
            )),
        };
        if let Err(e) = handled {
            crate::log_warn!("notification {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{finished_record, NoEditor};

    /// Issue 23 item 2: a newer CLI's mode passes (Lua warns), a flag or words never do.
    #[test]
    fn issue23_2_a_permission_mode_is_one_word() {
        for ok in [
            "acceptEdits",
            "default",
            "manual",
            "auto",
            "someNewMode",
            "a-b_2",
        ] {
            assert!(is_permission_mode(ok), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "--yolo",
            "-p",
            "accept edits",
            "2fast",
            "plan;rm",
            "é",
            long.as_str(),
        ] {
            assert!(!is_permission_mode(bad), "{bad}");
        }
    }

    /// Requests run off the runtime's threads: the write of the record a request changes can
    /// take tens of ms (see `off_runtime`), and the views streaming meanwhile run there. Here
    /// the runtime has one thread, and the record writer is held as a write stuck in fsync
    /// would hold it while a resume waits to write its record.
    #[tokio::test(flavor = "current_thread")]
    async fn a_request_waiting_for_a_record_write_does_not_hold_up_the_runtime() {
        let root = std::env::temp_dir().join(format!("ct-rpc-{}-held-write", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let project = root.join("project");
        std::fs::create_dir_all(&project).unwrap();
        let cwd = project.to_string_lossy().into_owned();
        let store = Store::open(&root.join("state")).unwrap();
        let (id, _) = store.allocate(&cwd).unwrap();
        let mut rec = finished_record();
        rec.id = id;
        rec.cwd = cwd.clone();
        // The follow-up's run fails at once; only the request's answer matters here.
        rec.options.cmd = vec![root.join("no-such-cli").to_string_lossy().into_owned()];
        store.write_record(&rec).unwrap();
        let rpc = Rpc::new(store.clone(), cwd.clone(), Arc::new(Payloads::default()));
        let sup = Supervisor::new(store.clone(), Arc::new(NoEditor));
        // No snapshot either: git would start the process-wide reaper in this test binary,
        // whose other tests wait for children of their own.
        sup.configure(|c| c.track_changes = false);
        let (release, held_until) = std::sync::mpsc::channel();
        let holder = sup.hold_record_writes(held_until);
        let params = vec![Value::Map(vec![
            (Value::from("cwd"), Value::from(cwd.as_str())),
            (Value::from("id"), Value::from(id)),
            (Value::from("prompt"), Value::from("and then?")),
        ])];
        let resuming = tokio::spawn({
            let sup = sup.clone();
            async move { rpc.dispatch(&sup, "resume", &params).await }
        });
        // The request runs before this task does again: on the runtime's thread it would
        // block it there until the holder gives up.
        tokio::task::yield_now().await;
        let _ = release.send(());
        assert!(
            holder.join().unwrap(),
            "the runtime waited for the request's record write"
        );
        let answer = resuming.await.unwrap().unwrap();
        let status = answer
            .as_map()
            .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some("status")))
            .and_then(|(_, v)| v.as_str().map(str::to_owned));
        assert_eq!(status.as_deref(), Some("queued"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
