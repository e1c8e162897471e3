//! A turn that calls tools and asks for them as the real CLI does (CONTROL.md §2-§4): hook
//! callbacks, `can_use_tool` requests, the answers obeyed, interrupts, and user messages folded
//! in before the next API call.

use std::time::Duration;

use serde_json::{json, Value};

use crate::control::{Control, Wake};
use crate::json::{chunks, hex, js, now_iso, uuid};
use crate::opts::Opts;
use crate::out::{Ctx, Emitter};
use crate::permission::{needs_permission, rule_allows, summary, verdict_of, Verdict};
use crate::tools::{run_tool, Ran};

/// One tool call of a step.
#[derive(Clone, Debug)]
pub struct Call {
    pub name: String,
    pub input: Value,
}

/// The standard text of a rejected call (interrupt, or a denial that stops the turn).
const REJECTED: &str = "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, the new_string was NOT written to the file). STOP what you are doing and wait for the user to tell you how to proceed.";

/// The steps of the turn for `prompt`: its `fake-tools:` line, else `--fake-tools`; None: a turn
/// that asks nothing.
pub fn steps_for(prompt: &str, o: &Opts) -> Result<Option<Vec<Vec<Call>>>, String> {
    let inline = prompt
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("fake-tools:"))
        .map(|rest| {
            serde_json::from_str::<Value>(rest.trim())
                .map_err(|e| format!("fake-tools: line is not JSON: {e}"))
        })
        .transpose()?;
    let Some(list) = inline.or_else(|| o.tools.clone()) else {
        return Ok(None);
    };
    let Some(list) = list.as_array() else {
        return Err("fake-tools: expected a JSON list of steps".into());
    };
    let call = |v: &Value| -> Result<Call, String> {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("fake-tools: a call without a name: {v}"))?;
        Ok(Call {
            name: name.to_string(),
            input: v.get("input").cloned().unwrap_or_else(|| json!({})),
        })
    };
    list.iter()
        .map(|step| match step {
            Value::Array(calls) => calls.iter().map(call).collect(),
            v => Ok(vec![call(v)?]),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

struct Turn<'a> {
    em: &'a mut Emitter,
    ctx: &'a Ctx,
    o: &'a Opts,
    control: &'a Control,
    api_calls: u32,
    denials: Vec<Value>,
    /// One line per call: what became of it (the final text).
    outcomes: Vec<String>,
    folded: Vec<String>,
}

/// Writes one turn of `steps` for `prompt` (already taken from the queue).
pub fn control_turn(
    em: &mut Emitter,
    ctx: &Ctx,
    o: &Opts,
    control: &Control,
    _prompt: &str,
    steps: &[Vec<Call>],
) {
    control.set_turn(true);
    em.with(|out| {
        out.stopped = false;
        out.turns = 0;
    });
    let mut t = Turn {
        em,
        ctx,
        o,
        control,
        api_calls: 0,
        denials: Vec::new(),
        outcomes: Vec::new(),
        folded: Vec::new(),
    };
    t.em.init(ctx);
    t.run(steps);
    control.set_turn(false);
}

impl Turn<'_> {
    fn run(&mut self, steps: &[Vec<Call>]) {
        for (i, step) in steps.iter().enumerate() {
            if i > 0 {
                self.fold();
            }
            if self.stop_streaming() {
                return;
            }
            self.api_calls += 1;
            let msg = format!("msg_fake_{}", hex(12));
            self.em.lines(self.ctx.status_before_request());
            self.em.line(&self.ctx.message_start(&msg));
            let mut index = 0;
            if i == 0 {
                self.em
                    .text_block(self.ctx, &msg, 0, "I'll use the tools now.", 8);
                index = 1;
            }
            let ids: Vec<String> = step
                .iter()
                .enumerate()
                .map(|(k, call)| self.tool_use(&msg, index + k, call))
                .collect();
            self.em
                .lines(self.ctx.message_end(&msg, "tool_use", 20 * step.len()));
            let api_calls = self.api_calls;
            let first = ids.first().cloned();
            self.em.with(|out| {
                out.turns = api_calls;
                out.pending_tool = first;
            });
            let Some(verdicts) = self.decide(step, &ids) else {
                return self.interrupted(&ids, true);
            };
            for ((call, id), verdict) in step.iter().zip(&ids).zip(verdicts) {
                match verdict {
                    Verdict::Deny {
                        interrupt: true, ..
                    } => {
                        // The message is not passed on: the model gets the standard rejection.
                        self.deny_listed(call, id);
                        return self.interrupted(std::slice::from_ref(id), false);
                    }
                    Verdict::Deny { message, .. } => {
                        self.deny_listed(call, id);
                        self.tool_result(id, &message, true, Some(false));
                        self.outcomes
                            .push(format!("{}: denied: {message}", summary(call)));
                    }
                    Verdict::Allow(input) => {
                        let ran = run_tool(
                            &call.name,
                            &input,
                            &self.ctx.cwd,
                            self.control,
                            &self.em.out,
                            self.o.hang,
                        );
                        match ran {
                            Ran::Interrupted => {
                                return self.interrupted(std::slice::from_ref(id), true)
                            }
                            Ran::Done { content, is_error } => {
                                self.tool_result(id, &content, is_error, Some(true));
                                let shown = Call {
                                    name: call.name.clone(),
                                    input: input.clone(),
                                };
                                let first = content.lines().next().unwrap_or("").to_string();
                                let what = if is_error { "failed" } else { "ran" };
                                self.outcomes
                                    .push(format!("{}: {what}: {first}", summary(&shown)));
                            }
                        }
                    }
                }
            }
            self.em.with(|out| out.pending_tool = None);
        }
        if !steps.is_empty() {
            self.fold();
        }
        if self.stop_streaming() {
            return;
        }
        self.api_calls += 1;
        let msg = format!("msg_fake_{}", hex(12));
        let mut text = String::from("Done.");
        for o in &self.outcomes {
            text.push('\n');
            text.push_str(o);
        }
        for f in &self.folded {
            text.push_str("\nYou also said: ");
            text.push_str(f);
        }
        self.em.lines(self.ctx.status_before_request());
        self.em.line(&self.ctx.message_start(&msg));
        self.em.text_block(self.ctx, &msg, 0, &text, 16);
        if self.stop_streaming() {
            return;
        }
        self.em.lines(self.ctx.message_end(&msg, "end_turn", 30));
        let api_calls = self.api_calls;
        self.em.with(|out| out.turns = api_calls);
        if self.o.no_result {
            return;
        }
        let line = if self.o.exit == 0 {
            let cost = self.em.cost(0.0123);
            self.ctx.success_result(api_calls, &text, cost)
        } else {
            self.ctx.error_result(
                api_calls,
                r#""end_turn""#,
                "completed",
                &[format!("fake-claude: --fake-exit={}", self.o.exit)],
            )
        };
        let line = with_denials(&line, &self.denials);
        let is_error = self.o.exit != 0;
        self.em.line(&line);
        self.em.with(|out| out.last_is_error = is_error);
    }

    /// The user messages that came meanwhile go into the next API call: echoed (with
    /// `--replay-user-messages`) and answered in the final text.
    fn fold(&mut self) {
        for m in self.control.take_messages() {
            if self.o.replay {
                let line = self.ctx.user_replay(&m);
                self.em.line(&line);
            }
            self.folded.push(m);
        }
    }

    /// An interrupt while text streams: the turn ends as "aborted_streaming".
    fn stop_streaming(&mut self) -> bool {
        if !self.control.interrupt_pending() {
            return false;
        }
        self.interrupted(&[], false);
        true
    }

    /// The turn ends: the interrupt (if one came) answered, the open requests cancelled before,
    /// `ids`' calls rejected, the marker and the error result.
    fn interrupted(&mut self, ids: &[String], for_tool: bool) {
        let int = self.control.take_interrupt();
        let ctx = self.ctx.clone();
        let control = self.control.clone();
        let api_calls = self.api_calls;
        let denials = std::mem::take(&mut self.denials);
        self.em.with(|out| {
            if let Some(id) = &int {
                control.answer_interrupt(out, id);
            }
            out.kill_tool();
            for id in ids {
                out.line(&ctx.tool_result_line(id, REJECTED, true, None, "User rejected tool use"));
            }
            let (text, terminal, stop) = if for_tool || !ids.is_empty() {
                (
                    "[Request interrupted by user for tool use]",
                    "aborted_tools",
                    r#""tool_use""#,
                )
            } else {
                ("[Request interrupted by user]", "aborted_streaming", "null")
            };
            out.line(&format!(
                r#"{{"type":"user","message":{{"role":"user","content":[{{"type":"text","text":{}}}]}},"parent_tool_use_id":null,"session_id":{},"uuid":{},"timestamp":{}}}"#,
                js(text),
                js(&ctx.sid),
                js(&uuid()),
                js(&now_iso())
            ));
            let line = ctx.error_result(api_calls.max(1) + 1, stop, terminal, &[]);
            out.line(&with_denials(&line, &denials));
            out.pending_tool = None;
            out.last_is_error = true;
            out.flush();
        });
    }

    fn deny_listed(&mut self, call: &Call, id: &str) {
        self.denials.push(json!({
            "tool_name": call.name,
            "tool_use_id": id,
            "tool_input": call.input,
        }));
    }

    /// The streamed tool_use block `index` of message `msg`; returns its id.
    fn tool_use(&mut self, msg: &str, index: usize, call: &Call) -> String {
        let id = format!("toolu_fake_{}", hex(12));
        self.em.line(&self.ctx.stream_event(
            msg,
            &format!(
                r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"tool_use","id":{},"name":{},"input":{{}}}}}}"#,
                js(&id),
                js(&call.name)
            ),
        ));
        let input = call.input.to_string();
        for piece in chunks(&input, 32) {
            self.em.line(&self.ctx.stream_event(
                msg,
                &format!(
                    r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"input_json_delta","partial_json":{}}}}}"#,
                    js(piece)
                ),
            ));
        }
        self.em.line(&self.ctx.assistant(
            msg,
            &format!(
                r#"{{"type":"tool_use","id":{},"name":{},"input":{}}}"#,
                js(&id),
                js(&call.name),
                input
            ),
        ));
        self.em.line(&self.ctx.stream_event(
            msg,
            &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
        ));
        id
    }

    fn tool_result(&mut self, id: &str, content: &str, is_error: bool, accepted: Option<bool>) {
        let meta = if is_error && accepted == Some(false) {
            format!("Error: {content}")
        } else {
            content.to_string()
        };
        let line = self
            .ctx
            .tool_result_line(id, content, is_error, accepted, &meta);
        self.em.line(&line);
    }

    /// The permission steps of every call of a step; None: an interrupt ended the turn (the open
    /// requests were cancelled).
    fn decide(&mut self, calls: &[Call], ids: &[String]) -> Option<Vec<Verdict>> {
        let mut verdicts: Vec<Option<Verdict>> = Vec::new();
        let mut asks: Vec<(usize, Option<String>)> = Vec::new();
        for (k, call) in calls.iter().enumerate() {
            match self.precheck(call, &ids[k])? {
                Pre::Done(v) => verdicts.push(Some(v)),
                Pre::Ask(reason) => {
                    verdicts.push(None);
                    asks.push((k, reason));
                }
            }
        }
        // Every request of the step at once, then their answers in any order.
        let mut open: Vec<(String, usize)> = Vec::new();
        for (k, reason) in asks {
            let rid = uuid();
            let line = self
                .ctx
                .can_use_tool(&rid, &calls[k], &ids[k], reason.as_deref());
            self.em.line(&line);
            self.em.with(|out| out.flush());
            self.control.log("request", &rid, "can_use_tool");
            open.push((rid, k));
        }
        while !open.is_empty() {
            let wanted: Vec<String> = open.iter().map(|(r, _)| r.clone()).collect();
            match self.control.wait_answer(&wanted, Duration::from_secs(3600)) {
                None => continue,
                Some(Wake::Interrupt) => {
                    self.em.with(|out| {
                        for (rid, _) in &open {
                            out.line(&format!(
                                r#"{{"type":"control_cancel_request","request_id":{}}}"#,
                                js(rid)
                            ));
                        }
                        out.flush();
                    });
                    return None;
                }
                Some(Wake::Eof) => {
                    for (_, k) in open.drain(..) {
                        verdicts[k] = Some(Verdict::Deny {
                            message: "Tool permission request failed: Error: Tool permission stream closed before response received".into(),
                            interrupt: false,
                        });
                    }
                }
                Some(Wake::Answer(rid, resp)) => {
                    if let Some(pos) = open.iter().position(|(r, _)| *r == rid) {
                        let (_, k) = open.remove(pos);
                        verdicts[k] = Some(verdict_of(&resp));
                    }
                }
            }
        }
        Some(
            verdicts
                .into_iter()
                .map(|v| {
                    v.unwrap_or(Verdict::Deny {
                        message: "no answer".into(),
                        interrupt: false,
                    })
                })
                .collect(),
        )
    }

    /// Hooks, rules and the mode; `Ask` when the call must be put to the user. None: an interrupt
    /// came while a hook was asked.
    fn precheck(&mut self, call: &Call, tool_use_id: &str) -> Option<Pre> {
        let mut forced: Option<String> = None;
        for hook in self
            .control
            .hooks()
            .iter()
            .filter(|h| h.matches(&call.name))
        {
            let rid = uuid();
            self.em.line(&self.ctx.hook_callback(
                &rid,
                &hook.callback_id,
                call,
                tool_use_id,
                &self.mode(),
            ));
            self.em.with(|out| out.flush());
            self.control.log("request", &rid, "hook_callback");
            let resp = loop {
                match self
                    .control
                    .wait_answer(std::slice::from_ref(&rid), Duration::from_secs(3600))
                {
                    None => continue,
                    Some(Wake::Interrupt) => {
                        let line = format!(
                            r#"{{"type":"control_cancel_request","request_id":{}}}"#,
                            js(&rid)
                        );
                        self.em.line(&line);
                        return None;
                    }
                    Some(Wake::Eof) => break Value::Null,
                    Some(Wake::Answer(_, r)) => break r,
                }
            };
            let out = resp
                .get("response")
                .and_then(|r| r.get("hookSpecificOutput"))
                .cloned()
                .unwrap_or(Value::Null);
            let reason = out
                .get("permissionDecisionReason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            match out.get("permissionDecision").and_then(Value::as_str) {
                Some("allow") => return Some(Pre::Done(Verdict::Allow(call.input.clone()))),
                Some("deny") => {
                    return Some(Pre::Done(Verdict::Deny {
                        message: reason,
                        interrupt: false,
                    }))
                }
                Some("ask") => forced = Some(reason),
                _ => {}
            }
        }
        if forced.is_none() {
            if self.o.allowed_tools.iter().any(|r| rule_allows(r, call)) {
                return Some(Pre::Done(Verdict::Allow(call.input.clone())));
            }
            let mode = self.mode();
            let asks_always = matches!(call.name.as_str(), "AskUserQuestion" | "ExitPlanMode");
            if mode == "dontAsk" || (!asks_always && !needs_permission(call, &mode, &self.ctx.cwd))
            {
                if mode == "dontAsk"
                    && (asks_always || needs_permission(call, &mode, &self.ctx.cwd))
                {
                    let line = self.ctx.permission_denied(call, tool_use_id);
                    self.em.line(&line);
                    return Some(Pre::Done(Verdict::Deny {
                        message: format!("Permission to use {} has been denied because Claude Code is running in don't ask mode.", call.name),
                        interrupt: false,
                    }));
                }
                return Some(Pre::Done(Verdict::Allow(call.input.clone())));
            }
            if mode == "bypassPermissions" && !asks_always {
                return Some(Pre::Done(Verdict::Allow(call.input.clone())));
            }
        }
        if !self.ctx.stdio_prompts {
            return Some(Pre::Done(Verdict::Deny {
                message: format!(
                    "Claude requested permissions to use {}, but you haven't granted it yet.",
                    call.name
                ),
                interrupt: false,
            }));
        }
        Some(Pre::Ask(forced))
    }

    fn mode(&self) -> String {
        self.control
            .mode()
            .unwrap_or_else(|| self.ctx.permission_mode.clone())
    }
}

enum Pre {
    Done(Verdict),
    /// A `can_use_tool` request; `Some(reason)` when a hook asked for it.
    Ask(Option<String>),
}

/// A result line with its `permission_denials` filled in.
fn with_denials(line: &str, denials: &[Value]) -> String {
    if denials.is_empty() {
        return line.to_string();
    }
    line.replacen(
        r#""permission_denials":[]"#,
        &format!(r#""permission_denials":{}"#, Value::from(denials.to_vec())),
        1,
    )
}
