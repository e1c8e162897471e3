//! The unsaved-file hook in the modes that write without asking (issue 21 item 4), as every
//! pinned CLI was recorded doing it (tests/e2e/control_recipes.py `unsaved_any_mode`): our
//! PreToolUse hook answers `ask`, and the CLI asks for the Write instead of writing, in
//! `bypassPermissions` and in `auto` as in `acceptEdits`. A CLI that ignored the hook's `ask`
//! there would be recorded with no request and a written file, and fail here by name.

use crate::stream_json::control::{Control, ControlRequest, RequestKind};
use crate::stream_json::{parse_bytes, Msg};
use crate::testutil::{fixture_stdout, fixtures_root, version_dirs};

#[test]
fn the_hook_s_ask_makes_every_pinned_cli_ask_in_every_mode() {
    let mut seen = Vec::new();
    for version in version_dirs(&fixtures_root()) {
        for mode in ["acceptEdits", "bypassPermissions", "auto"] {
            let scenario = match mode {
                "acceptEdits" => "control-permission-unsaved-hook".to_string(),
                m => format!("control-permission-unsaved-hook-{m}"),
            };
            let dir = version.join(&scenario);
            let name = format!("{}/{scenario}", version.display());
            let Some(out) = fixture_stdout(&dir) else {
                panic!("{name}: not recorded");
            };
            let msgs: Vec<Msg> = out
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(parse_bytes)
                .collect();
            // The mode was really in force.
            let text = String::from_utf8_lossy(&out);
            assert!(
                text.contains(&format!(r#""permissionMode":"{mode}""#)),
                "{name}: not run in {mode}"
            );
            let hook = msgs.iter().position(|m| {
                matches!(m, Msg::Control(Control::Request(ControlRequest {
                    kind: RequestKind::HookCallback(h), ..
                })) if h.callback_id == "claude_tasks_unsaved" && h.tool_name == "Write")
            });
            let ask = msgs.iter().position(|m| {
                matches!(m, Msg::Control(Control::Request(ControlRequest {
                    kind: RequestKind::CanUseTool(r), ..
                })) if r.tool_name == "Write"
                    && r.decision_reason_type.as_deref() == Some("hook")
                    && r.decision_reason.as_deref()
                        == Some("you have unsaved changes in hello.txt"))
            });
            let (Some(hook), Some(ask)) = (hook, ask) else {
                panic!("{name}: the CLI did not ask after the hook's ask (hook {hook:?}, request {ask:?})");
            };
            assert!(hook < ask, "{name}");
            // Denied: nothing written.
            let files = std::fs::read_to_string(dir.join("cwd_files.txt")).unwrap_or_default();
            assert!(!files.contains("hello.txt"), "{name}: {files}");
            assert!(text.contains("The user denied this in Neovim."), "{name}");
            seen.push(name);
        }
    }
    assert!(seen.len() >= 6, "{seen:#?}");
}
