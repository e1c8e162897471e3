//! Permission requests and questions of a task's CLI (doc/protocol.md): the user's answers
//! (allow, with an edited input or an "always" rule; deny; the answers to questions), written to
//! the CLI's stdin whichever backend owns the task, and the plugin's rules per task and per
//! project. What the CLI has open, and what the plugin answers itself, is `watch`'s.

mod channel;
pub mod rules;
mod unsaved;
pub(crate) mod watch;

use serde_json::{Map, Value};

use crate::cli::control::{self, Answer, Decider, Stdin};
use crate::task::{Pending, Status, TaskRecord};
use crate::tasks::{no_task, Supervisor};
use rules::Rule;
use watch::{full_input, lock};

/// What the user answered.
#[derive(Debug, Clone, PartialEq)]
pub enum UserAnswer {
    /// `input`: the edited input (the request's own when None). `always`: also add a rule.
    Allow {
        input: Option<Value>,
        always: Option<Always>,
    },
    Deny {
        message: Option<String>,
        interrupt: bool,
    },
    /// The answers to the questions of an `AskUserQuestion` request: question -> answer.
    Answers(Map<String, Value>),
}

/// An "always" that comes with an allow.
#[derive(Debug, Clone, PartialEq)]
pub struct Always {
    /// None: the rule the plugin proposed for the request.
    pub rule: Option<String>,
    pub project: bool,
}

/// A rule as `rules` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleEntry {
    pub rule: String,
    /// `task` or `project`.
    pub scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

/// The default message of a denial, told to Claude.
const DENIED: &str = "The user denied this in Neovim.";

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

impl Supervisor {
    /// Answers a waiting request of task `id` (the oldest when `request_id` is None). `method`
    /// names the request in errors.
    pub fn answer(
        &self,
        method: &str,
        cwd: &str,
        id: u64,
        request_id: Option<&str>,
        what: UserAnswer,
    ) -> Result<TaskRecord, String> {
        let key = (cwd.to_owned(), id);
        self.ensure_loaded(&key)
            .map_err(|e| format!("{method}: {e}"))?;
        let (rec, control) = {
            let st = self.state();
            let entry = st
                .tasks
                .get(&key)
                .ok_or_else(|| format!("{method}: {}", no_task(cwd, id)))?;
            (entry.rec(), entry.control.clone())
        };
        if rec.status != Status::Running {
            return Err(format!(
                "{method}: task #{id} is {}; there is nothing to answer",
                rec.status.as_str()
            ));
        }
        // What the watcher shows, and what the record says (a re-adopting watcher may not have
        // read the transcript yet: the record a crashed backend left is what the user sees).
        let mut waiting = match &control {
            Some(c) => lock(c).waiting(),
            None => Vec::new(),
        };
        for p in &rec.pending {
            if !waiting.iter().any(|w| w.request_id == p.request_id) {
                waiting.push(p.clone());
            }
        }
        let req = find(method, id, &waiting, request_id)?;
        let question = req.tool_name == "AskUserQuestion";
        match &what {
            UserAnswer::Answers(_) if !question => {
                return Err(format!(
                    "{method}: request {} of task #{id} is a {} request, not a question",
                    short(&req.request_id),
                    req.tool_name
                ))
            }
            UserAnswer::Allow { input: None, .. } if question => {
                return Err(format!(
                    "{method}: request {} of task #{id} is a question: answer it (answer())",
                    short(&req.request_id)
                ))
            }
            _ => {}
        }
        let dir = self.shared.store.task_dir(cwd, id);
        let mut new_rule: Option<(String, bool)> = None;
        let (answer, who) = match what {
            UserAnswer::Allow { input, always } => {
                let full = full_input(&dir, &req).map_err(|e| format!("{method}: {e}"))?;
                if input.as_ref().is_some_and(|i| !i.is_object()) {
                    return Err(format!("{method}: 'input' must be a map"));
                }
                let edited = input.as_ref().is_some_and(|i| *i != full);
                let mut who = Decider {
                    edited,
                    ..Decider::user()
                };
                if let Some(a) = always {
                    let rule = a.rule.or_else(|| req.rule.clone()).ok_or_else(|| {
                        format!(
                            "{method}: no rule is proposed for {}; give one (always = \"{}\")",
                            req.tool_name, req.tool_name
                        )
                    })?;
                    let rule = Rule::parse(&rule)
                        .map_err(|e| format!("{method}: {e}"))?
                        .to_string();
                    if !a.project && control.is_none() {
                        return Err(format!(
                            "{method}: task #{id} runs in another editor: its own rules are kept there (scope = \"project\" works here)"
                        ));
                    }
                    who.rule = Some(rule.clone());
                    who.scope = Some(if a.project { "project" } else { "task" });
                    new_rule = Some((rule, a.project));
                }
                (
                    Answer::Allow {
                        input: input.unwrap_or(full),
                    },
                    who,
                )
            }
            UserAnswer::Deny { message, interrupt } => (
                Answer::Deny {
                    message: message
                        .filter(|m| !m.trim().is_empty())
                        .unwrap_or_else(|| DENIED.into()),
                    interrupt,
                },
                Decider::user(),
            ),
            UserAnswer::Answers(answers) => {
                let mut input = full_input(&dir, &req).map_err(|e| format!("{method}: {e}"))?;
                match input.as_object_mut() {
                    Some(m) => {
                        m.insert("answers".into(), Value::Object(answers));
                    }
                    None => return Err(format!("{method}: the question has no input to answer")),
                }
                (Answer::Allow { input }, Decider::user())
            }
        };
        if let Some((rule, true)) = &new_rule {
            self.add_project_rule(cwd, rule)
                .map_err(|e| format!("{method}: {e}"))?;
        }
        let line = control::answer(&req.request_id, &answer, &who);
        match &control {
            Some(c) => {
                let mut g = lock(c);
                g.write(&line)
                    .map_err(|e| format!("{method}: cannot write to the CLI of task #{id}: {e}"))?;
                match g
                    .open
                    .iter_mut()
                    .find(|r| r.pending.request_id == req.request_id)
                {
                    Some(r) => r.answered = true,
                    None => g.answered_early.push(req.request_id.clone()),
                }
            }
            None => {
                // Another backend owns the task: its watcher sees the answer's echo.
                Stdin::open(&dir, false)
                    .and_then(|mut s| s.write_line(&line))
                    .map_err(|e| format!("{method}: cannot write to the CLI of task #{id}: {e}"))?;
                return Ok(rec);
            }
        }
        let task_rule = new_rule.filter(|(_, project)| !project).map(|(r, _)| r);
        let c = control.clone();
        let rec = self
            .modify(&key, |r| {
                if let Some(c) = &c {
                    r.pending = lock(c).waiting();
                }
                if let Some(rule) = task_rule {
                    if !r.rules.contains(&rule) {
                        r.rules.push(rule);
                    }
                }
            })
            .unwrap_or(rec);
        // The event with the list as it is now (the watcher may have changed it meanwhile).
        match &control {
            Some(c) => self.publish_pending(&key, c, None),
            None => self.emit("updated", &rec),
        }
        Ok(rec)
    }

    /// The rules of project `cwd`, and task `id`'s own.
    pub fn rules(&self, cwd: &str, id: Option<u64>) -> Result<Vec<RuleEntry>, String> {
        let mut out = Vec::new();
        if let Some(id) = id {
            let key = (cwd.to_owned(), id);
            self.ensure_loaded(&key)?;
            let rec = self
                .state()
                .tasks
                .get(&key)
                .map(|e| e.rec())
                .ok_or_else(|| no_task(cwd, id))?;
            out.extend(rec.rules.into_iter().map(|rule| RuleEntry {
                rule,
                scope: "task",
                id: Some(id),
            }));
        } else {
            // Every task of the project that this backend knows and that has rules of its own.
            let st = self.state();
            let mut tasks: Vec<_> = st
                .tasks
                .iter()
                .filter(|(k, _)| k.0 == cwd)
                .map(|(k, e)| (k.1, e.record.borrow().rules.clone()))
                .collect();
            tasks.sort_by_key(|(id, _)| *id);
            for (id, rules) in tasks {
                out.extend(rules.into_iter().map(|rule| RuleEntry {
                    rule,
                    scope: "task",
                    id: Some(id),
                }));
            }
        }
        let project = self
            .shared
            .store
            .project_rules(cwd)
            .map_err(|e| e.to_string())?;
        out.extend(project.into_iter().map(|rule| RuleEntry {
            rule,
            scope: "project",
            id: None,
        }));
        Ok(out)
    }

    /// Adds a rule (checked) to the project, or to task `id`.
    pub fn add_rule(
        &self,
        cwd: &str,
        rule: &str,
        id: Option<u64>,
    ) -> Result<Vec<RuleEntry>, String> {
        let rule = Rule::parse(rule)?.to_string();
        match id {
            None => self.add_project_rule(cwd, &rule)?,
            Some(id) => {
                let key = (cwd.to_owned(), id);
                self.ensure_loaded(&key)?;
                self.modify(&key, |r| {
                    if !r.rules.contains(&rule) {
                        r.rules.push(rule.clone());
                    }
                })
                .ok_or_else(|| no_task(cwd, id))?;
            }
        }
        self.rules(cwd, id)
    }

    /// Removes a rule from the project, or from task `id`; removing a rule that is not there
    /// is an error that lists the rules that are.
    pub fn remove_rule(
        &self,
        cwd: &str,
        rule: &str,
        id: Option<u64>,
    ) -> Result<Vec<RuleEntry>, String> {
        let rule = rule.trim();
        let before = self.rules(cwd, id)?;
        let scope = if id.is_some() { "task" } else { "project" };
        if !before.iter().any(|r| r.rule == rule && r.scope == scope) {
            let have: Vec<&str> = before
                .iter()
                .filter(|r| r.scope == scope)
                .map(|r| r.rule.as_str())
                .collect();
            return Err(format!(
                "no {scope} rule {rule:?} (there are: {})",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ));
        }
        match id {
            None => {
                let mut rules = self
                    .shared
                    .store
                    .project_rules(cwd)
                    .map_err(|e| e.to_string())?;
                rules.retain(|r| r != rule);
                self.shared
                    .store
                    .write_project_rules(cwd, &rules)
                    .map_err(|e| e.to_string())?;
            }
            Some(id) => {
                let key = (cwd.to_owned(), id);
                self.modify(&key, |r| r.rules.retain(|x| x != rule))
                    .ok_or_else(|| no_task(cwd, id))?;
            }
        }
        self.rules(cwd, id)
    }

    fn add_project_rule(&self, cwd: &str, rule: &str) -> Result<(), String> {
        let mut rules = self
            .shared
            .store
            .project_rules(cwd)
            .map_err(|e| e.to_string())?;
        if !rules.iter().any(|r| r == rule) {
            rules.push(rule.to_string());
            self.shared
                .store
                .write_project_rules(cwd, &rules)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The request `request_id` (an id or its unique beginning) among `waiting`, or the oldest.
fn find(
    method: &str,
    id: u64,
    waiting: &[Pending],
    request_id: Option<&str>,
) -> Result<Pending, String> {
    if waiting.is_empty() {
        return Err(format!("{method}: task #{id} has no pending request"));
    }
    let Some(want) = request_id.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(waiting[0].clone());
    };
    let found: Vec<&Pending> = waiting
        .iter()
        .filter(|p| p.request_id == want || p.request_id.starts_with(want))
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(format!(
            "{method}: task #{id} has no pending request '{want}' (pending: {})",
            waiting
                .iter()
                .map(|p| short(&p.request_id))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
