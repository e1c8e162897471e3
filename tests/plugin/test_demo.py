"""`make demo`, the first command of the README, keeps working: scripts/demo.sh on each Neovim
with the debug build, one task with the offline demo agent, from start to its footer."""

import os
import subprocess

from conftest import ROOT, real_backend_paths


def test_the_demo_runs_a_task_to_its_footer(nvim_bin):
    bin_, _ = real_backend_paths()
    env = dict(os.environ, DEMO_NVIM=nvim_bin, CLAUDE_TASKS_BIN_DIR=os.path.dirname(bin_))
    r = subprocess.run([os.path.join(ROOT, "scripts/demo.sh")], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert 'statusline running:  "✻ 1"' in out, out
    assert "ClaudeTaskDone       id=1 status=completed" in out, out
    assert "● Bash(ls)" in out, out
    assert "\n✓ done in " in out, out
    assert 'statusline after:    ""' in out, out
