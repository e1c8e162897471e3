//! The RPC methods of permission requests (doc/protocol.md): `allow`, `deny`, `answer`, the
//! rules, and the editor's list of unsaved files.

use rmpv::Value;

use super::args::Args;
use super::{off_runtime, Rpc};
use crate::nvim::encode::json_to_msgpack;
use crate::tasks::permissions::{Always, RuleEntry, UserAnswer};
use crate::tasks::Supervisor;

impl Rpc {
    /// `allow`, `deny` and `answer`.
    pub(super) async fn answer(
        &self,
        sup: &Supervisor,
        a: &Args<'_>,
        method: &'static str,
    ) -> Result<Value, String> {
        let (cwd, id) = (self.cwd(a)?, a.u64("id")?);
        let request_id = a.opt_str("request_id")?;
        let what = match method {
            "allow" => {
                let always = match a.opt_bool_or_str("always")? {
                    None | Some(Ok(false)) => None,
                    Some(Ok(true)) => Some(None),
                    Some(Err(rule)) => Some(Some(rule)),
                };
                let project =
                    a.opt_choice("scope", &["task", "project"])?.as_deref() == Some("project");
                UserAnswer::Allow {
                    input: a.opt_json_map("input")?,
                    always: always.map(|rule| Always { rule, project }),
                }
            }
            "deny" => UserAnswer::Deny {
                message: a.opt_str("message")?,
                interrupt: a.opt_bool("interrupt")?.unwrap_or(false),
            },
            _ => {
                let answers = a
                    .opt_json_map("answers")?
                    .ok_or_else(|| a.missing("answers", "a map {question = answer}"))?;
                let map = match answers {
                    serde_json::Value::Object(m) if !m.is_empty() => m,
                    _ => return Err(format!("{method}: 'answers' is empty")),
                };
                // A multi-select question's labels may come as a list.
                let map = map
                    .into_iter()
                    .map(|(q, v)| {
                        let v = match v {
                            serde_json::Value::Array(items) => serde_json::Value::from(
                                items
                                    .iter()
                                    .map(|i| {
                                        i.as_str().map_or_else(|| i.to_string(), str::to_string)
                                    })
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            ),
                            serde_json::Value::String(s) => serde_json::Value::String(s),
                            other => serde_json::Value::String(other.to_string()),
                        };
                        (q, v)
                    })
                    .collect();
                UserAnswer::Answers(map)
            }
        };
        off_runtime(sup, move |s| {
            s.answer(method, &cwd, id, request_id.as_deref(), what)
        })
        .await
        .map(|r| self.rec(r))
    }

    /// `rules`, `add_rule`, `remove_rule`.
    pub(super) async fn rules(
        &self,
        sup: &Supervisor,
        a: &Args<'_>,
        method: &'static str,
    ) -> Result<Value, String> {
        let cwd = self.cwd(a)?;
        let id = a.opt_u64("id")?;
        let rule = if method == "rules" {
            None
        } else {
            Some(a.str("rule")?)
        };
        // A task's rules with an id; the project's otherwise (`scope` only says which).
        let scope = a.opt_choice("scope", &["task", "project"])?;
        let id = match scope.as_deref() {
            Some("project") if method != "rules" => None,
            Some("task") if id.is_none() => {
                return Err(format!("{method}: scope \"task\" needs the task's 'id'"))
            }
            _ => id,
        };
        let list = off_runtime(sup, move |s| {
            let r = match rule {
                None => s.rules(&cwd, id),
                Some(rule) if method == "add_rule" => s.add_rule(&cwd, &rule, id),
                Some(rule) => s.remove_rule(&cwd, &rule, id),
            };
            r.map_err(|e| {
                if e.starts_with(method) {
                    e
                } else {
                    format!("{method}: {e}")
                }
            })
        })
        .await?;
        Ok(rules_value(&list))
    }

    /// `unsaved` (a request or a notification).
    pub(super) fn unsaved(&self, sup: &Supervisor, a: &Args<'_>) -> Result<Value, String> {
        let files = a.opt_str_list("files", false)?.unwrap_or_default();
        sup.set_unsaved(files)?;
        Ok(Value::Boolean(true))
    }
}

fn rules_value(list: &[RuleEntry]) -> Value {
    Value::Array(
        list.iter()
            .map(|r| serde_json::to_value(r).map_or(Value::Nil, json_to_msgpack))
            .collect(),
    )
}
