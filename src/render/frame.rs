//! The lines the renderer draws around a run's output: the header, follow-up separators and
//! the footer of each run.

use super::{Kind, Renderer};
use crate::task::Status;
use crate::text::one_line;
use crate::timefmt;

pub struct Header<'a> {
    pub id: u64,
    pub name: &'a str,
    pub cwd: &'a str,
    pub started_at_ms: u64,
    /// A worktree task's branch and worktree directory.
    pub worktree: Option<(&'a str, &'a str)>,
    /// What happens to the CLI's permission requests (`ask` / `deny`).
    pub permissions: Option<&'a str>,
}

pub struct Footer<'a> {
    pub status: Status,
    pub duration_ms: Option<u64>,
    pub num_turns: u64,
    pub cost_usd: f64,
    pub error: Option<&'a str>,
}

impl Renderer {
    /// `# #3 fix the test`, `cwd: … · started … · permissions: ask`, `worktree: … · branch …`
    /// for a worktree task, blank.
    pub fn header(&mut self, h: &Header) {
        self.close(false);
        self.blank_line();
        let name = one_line(h.name, 200);
        self.doc
            .push_owned(format!("# #{} {name}", h.id).trim_end().to_string());
        let permissions = h
            .permissions
            .map(|p| format!(" · permissions: {p}"))
            .unwrap_or_default();
        self.doc.push_owned(format!(
            "cwd: {} · started {}{permissions}",
            h.cwd,
            timefmt::utc(h.started_at_ms)
        ));
        if let Some((branch, path)) = h.worktree {
            self.doc.push_owned(format!(
                "worktree: {path} · branch {}",
                one_line(branch, 200)
            ));
        }
        self.doc.push("");
        self.last_kind = Kind::Header;
    }

    /// Start of a follow-up run: blank, `── follow-up #2: <prompt> ──`, blank.
    pub fn separator(&mut self, run_n: u32, prompt_title: &str) {
        self.close(false);
        self.blank_line();
        self.doc.push_owned(format!(
            "── follow-up #{run_n}: {} ──",
            one_line(prompt_title, 80)
        ));
        self.doc.push("");
        self.last_kind = Kind::Separator;
        self.new_run();
    }

    /// The status line of a finished (or abandoned) run.
    pub fn footer(&mut self, f: &Footer) {
        self.begin(Kind::Footer);
        self.doc.push_owned(footer_line(f));
        self.new_run();
    }
}

pub(super) fn footer_line(f: &Footer) -> String {
    let duration = f.duration_ms.map(timefmt::duration);
    match f.status {
        Status::Completed => {
            let mut parts = vec![match &duration {
                Some(d) => format!("✓ done in {d}"),
                None => "✓ done".to_string(),
            }];
            if f.num_turns > 0 {
                let unit = if f.num_turns == 1 { "turn" } else { "turns" };
                parts.push(format!("{} {unit}", f.num_turns));
            }
            if f.cost_usd > 0.0 {
                parts.push(format!("${:.4}", f.cost_usd));
            }
            parts.join(" · ")
        }
        Status::Failed => {
            let mut s = "✗ failed".to_string();
            if let Some(e) = f.error.map(|e| one_line(e, 200)).filter(|e| !e.is_empty()) {
                s.push_str(": ");
                s.push_str(&e);
            }
            if let Some(d) = duration {
                s.push_str(" · ");
                s.push_str(&d);
            }
            s
        }
        Status::Cancelled => match duration {
            Some(d) => format!("■ cancelled after {d}"),
            None => "■ cancelled".to_string(),
        },
        Status::Interrupted => "⚠ interrupted".to_string(),
        Status::Running => "… running".to_string(),
        Status::Queued => "… queued".to_string(),
    }
}
