//! The review's requests (doc/protocol.md, "What a task changed"): a run's diff (`changes`), a
//! file as it was before the run (`original`), `revert`, and `saved`, the editor's word that it
//! wrote a file (a notification, so that `:write` never waits for the backend).

use rmpv::Value;

use super::args::Args;
use super::{off_runtime, Rpc};
use crate::nvim::encode::{json_to_msgpack, record_value};
use crate::tasks::{Reverted, RunReview, Supervisor};

impl Rpc {
    pub(super) async fn changes(&self, sup: &Supervisor, a: &Args<'_>) -> Result<Value, String> {
        let (cwd, id, run) = (self.cwd(a)?, a.u64("id")?, run_arg(a)?);
        let review = off_runtime(sup, move |s| s.review(&cwd, id, run)).await?;
        Ok(review_value(review))
    }

    pub(super) async fn original(&self, sup: &Supervisor, a: &Args<'_>) -> Result<Value, String> {
        let (cwd, id, run, path) = (self.cwd(a)?, a.u64("id")?, run_arg(a)?, a.str("path")?);
        let (n, content) = off_runtime(sup, move |s| s.original(&cwd, id, run, &path)).await?;
        Ok(Value::Map(vec![
            (Value::from("run"), Value::from(n)),
            (Value::from("exists"), Value::from(content.is_some())),
            (
                Value::from("content"),
                content.map_or(Value::Nil, Value::Binary),
            ),
        ]))
    }

    pub(super) async fn revert(&self, sup: &Supervisor, a: &Args<'_>) -> Result<Value, String> {
        let (cwd, id, run) = (self.cwd(a)?, a.u64("id")?, run_arg(a)?);
        let done = off_runtime(sup, move |s| s.revert(&cwd, id, run)).await?;
        Ok(self.revert_value(done))
    }

    fn revert_value(&self, r: Reverted) -> Value {
        let mut v = json(serde_json::json!({
            "run": r.run,
            "root": r.root,
            "files": r.report.files,
            "conflicts": r.report.conflicts,
        }));
        if let Value::Map(m) = &mut v {
            m.push((Value::from("task"), record_value(&self.store, &r.rec)));
        }
        v
    }
}

/// `saved {path}`: a notification, answered by nobody.
pub(super) fn saved(sup: &Supervisor, params: &[Value]) -> Result<(), String> {
    let a = Args::new("saved", params)?;
    sup.saved(&a.str("path")?);
    Ok(())
}

/// `run`: a run number (from 1), or absent for the last run.
fn run_arg(a: &Args<'_>) -> Result<Option<u32>, String> {
    match a.opt_u64("run")? {
        None => Ok(None),
        Some(n) if (1..=u64::from(u32::MAX)).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(format!("'run' must be a run number from 1, got {n}")),
    }
}

fn json(v: serde_json::Value) -> Value {
    json_to_msgpack(v)
}

/// The `changes` answer: the run's files with their hunks and where each starts in the patch,
/// one quickfix entry per hunk, the totals, and the unified diff as bytes.
fn review_value(r: RunReview) -> Value {
    let c = &r.changes;
    let mut files = Vec::with_capacity(c.files.len());
    // Line numbers of the file sections, counted once over the patch.
    let (mut at, mut line) = (0usize, 0usize);
    for f in &c.files {
        let mut v = serde_json::to_value(f).unwrap_or_default();
        if let Some(range) = &f.patch_range {
            let start = range.start.min(c.patch.len());
            if start >= at {
                line += c.patch[at..start].iter().filter(|&&b| b == b'\n').count();
                at = start;
            }
            v["patch_start"] = line.into();
        }
        v["status"] = crate::tasks::status_name(f.status).into();
        v["edited_by_you"] = r.by_you.contains(&f.path).into();
        files.push(v);
    }
    let quickfix: Vec<serde_json::Value> = c
        .quickfix()
        .into_iter()
        .map(|q| serde_json::json!({"path": q.path, "line": q.line, "text": q.text}))
        .collect();
    let (n, added, removed) = c.totals();
    let mut v = json(serde_json::json!({
        "id": r.rec.id,
        "cwd": r.rec.cwd,
        "name": r.rec.name,
        "run": r.run,
        "runs": r.rec.runs.len(),
        "method": r.meta.method,
        "root": r.meta.root,
        "why": r.meta.why,
        "truncated": c.truncated,
        "totals": {"files": n, "added": added, "removed": removed},
        "reverts": r.meta.reverts,
        "files": files,
        "quickfix": quickfix,
    }));
    if let Value::Map(m) = &mut v {
        m.push((Value::from("patch"), Value::Binary(c.patch.clone())));
    }
    v
}
