//! The RPC surface of worktree tasks (doc/protocol.md, "Worktree tasks"): `start`'s `isolation`
//! and `branch_prefix`, and the methods on a task's worktree, `worktree`, `worktree_diff`,
//! `worktree_file`, `apply` and `discard`. They run git, so always on the blocking pool.

use rmpv::Value;
use serde::Serialize;

use super::args::Args;
use super::{off_runtime, Rpc};
use crate::nvim::encode::json_to_msgpack;
use crate::tasks::isolation::FileAt;
use crate::tasks::{Isolation, Supervisor};
use crate::worktree::DEFAULT_BRANCH_PREFIX;

/// `start`'s `isolation` (`"none"` or `"worktree"`) and `branch_prefix`.
pub(super) fn isolation(a: &Args) -> Result<Isolation, String> {
    let prefix = a.opt_str("branch_prefix")?;
    if prefix.as_deref().is_some_and(|p| p.trim().is_empty()) {
        return Err("start: 'branch_prefix' is empty".into());
    }
    match a.opt_choice("isolation", &["none", "worktree"])?.as_deref() {
        Some("worktree") => Ok(Isolation::Worktree {
            branch_prefix: prefix.unwrap_or_else(|| DEFAULT_BRANCH_PREFIX.into()),
        }),
        _ => Ok(Isolation::None),
    }
}

fn encode<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).map_or(Value::Nil, json_to_msgpack)
}

impl Rpc {
    /// `worktree`, `worktree_diff`, `worktree_file`, `apply` and `discard`: `{id, cwd?, …}`.
    pub(super) async fn worktree(
        &self,
        sup: &Supervisor,
        method: &str,
        a: &Args<'_>,
    ) -> Result<Value, String> {
        let (cwd, id) = (self.cwd(a)?, a.u64("id")?);
        match method {
            "worktree" => off_runtime(sup, move |s| s.worktree_status(&cwd, id))
                .await
                .map(|st| encode(&st)),
            "worktree_diff" => off_runtime(sup, move |s| s.worktree_diff(&cwd, id))
                .await
                .map(|d| encode(&d)),
            "worktree_file" => {
                let path = a.str("path")?;
                let at = match a.opt_choice("at", &["base", "result"])?.as_deref() {
                    Some("result") => FileAt::Result,
                    _ => FileAt::Base,
                };
                off_runtime(sup, move |s| s.worktree_file(&cwd, id, &path, at))
                    .await
                    .map(|bytes| bytes.map_or(Value::Nil, Value::Binary))
            }
            "apply" => {
                let mode = a.opt_choice("mode", &["files", "commit"])?;
                // Commit mode with no message: the backend writes one from the task's name.
                let message = match mode.as_deref() {
                    Some("commit") => Some(a.opt_str("message")?.unwrap_or_default()),
                    _ => None,
                };
                off_runtime(sup, move |s| s.apply_worktree(&cwd, id, message))
                    .await
                    .map(|r| encode(&r))
            }
            "discard" => off_runtime(sup, move |s| s.discard_worktree(&cwd, id))
                .await
                .map(|r| self.rec(r)),
            _ => Err(format!("unknown method '{method}'")),
        }
    }
}
