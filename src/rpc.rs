//! The msgpack-RPC surface: decodes each request's arguments, calls the supervisor and encodes
//! the answer. Errors are strings that say what was wrong; nothing a caller sends can crash the
//! backend or leave a request unanswered.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use nvim_rs::{Handler, Neovim};
use rmpv::Value;

use crate::args::Args;
use crate::config::{Concurrency, OnExit};
use crate::editor::{NvimEditor, ParentWriter};
use crate::outgoing::Payloads;
use crate::store::Store;
use crate::supervisor::{record_value, StartRequest, Supervisor};
use crate::task::TaskOptions;

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
];

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
        let rec = |r| record_value(&self.store, &r);
        match method {
            "version" => Ok(Value::from(VERSION)),
            "configure" => {
                let on_exit = a.opt_choice("on_exit", &["cancel", "detach"])?;
                let concurrency = a.opt_choice("concurrency", &["queue", "reject", "parallel"])?;
                let max_running = a.opt_u64("max_running")?;
                if max_running == Some(0) {
                    return Err("configure: 'max_running' must be at least 1".into());
                }
                let grace = a.opt_u64("cancel_grace_ms")?;
                let keep = a.opt_u64("keep")?;
                let export = a.opt_bool("export_markdown")?;
                sup.configure(|c| {
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
                });
                Ok(Value::Boolean(true))
            }
            "start" => {
                let prompt = a.str("prompt")?;
                let cwd = self.cwd(&a)?;
                let mut cmd = a.opt_str_list("cmd", true)?.unwrap_or_default();
                if cmd.is_empty() {
                    cmd.push("claude".into());
                }
                if cmd[0].is_empty() {
                    return Err("start: 'cmd' names an empty program".into());
                }
                let options = TaskOptions {
                    cmd,
                    model: a.opt_str("model")?.filter(|m| !m.is_empty()),
                    permission_mode: a
                        .opt_str("permission_mode")?
                        .unwrap_or_else(|| "acceptEdits".into()),
                    allowed_tools: a.opt_str_list("allowed_tools", false)?.unwrap_or_default(),
                    args: a.opt_str_list("args", false)?.unwrap_or_default(),
                };
                let req = StartRequest {
                    prompt,
                    cwd,
                    name: a.opt_str("name")?,
                    options,
                };
                sup.start(req).await.map(rec)
            }
            "cancel" => sup.cancel(&self.cwd(&a)?, a.u64("id")?).map(rec),
            "resume" => {
                let (cwd, id, prompt) = (self.cwd(&a)?, a.u64("id")?, a.str("prompt")?);
                sup.resume(&cwd, id, prompt).map(rec)
            }
            "dispose" => sup
                .dispose(&self.cwd(&a)?, a.u64("id")?)
                .map(|()| Value::Boolean(true)),
            "get" => sup.get(&self.cwd(&a)?, a.u64("id")?).map(rec),
            "list" => {
                let all = a.opt_bool("all")?.unwrap_or(false);
                let cwd = self.cwd(&a)?;
                let recs = sup.list(if all { None } else { Some(&cwd) });
                Ok(Value::Array(recs.into_iter().map(rec).collect()))
            }
            "attach" | "detach" => {
                let (cwd, id) = (self.cwd(&a)?, a.u64("id")?);
                let buf = a
                    .opt_i64("buf")?
                    .ok_or_else(|| a.missing("buf", "a buffer number"))?;
                if buf <= 0 {
                    return Err(format!(
                        "{method}: 'buf' must be a buffer number, got {buf}"
                    ));
                }
                if method == "attach" {
                    sup.attach(&cwd, id, buf)?;
                } else {
                    sup.detach(&cwd, id, buf)?;
                }
                Ok(Value::Boolean(true))
            }
            _ => Err(format!("unknown method '{method}'")),
        }
    }
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

    async fn handle_notify(&self, name: String, _args: Vec<Value>, _neovim: Neovim<ParentWriter>) {
        crate::log_warn!("ignored notification '{name}': every method is a request");
    }
}
