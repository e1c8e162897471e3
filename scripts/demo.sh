#!/usr/bin/env bash
# demo.sh — a headless Neovim session that runs one task with the offline demo agent (our fake
# `claude`, replaying a realistic session with a tool call) and prints what a user would see:
# the statusline before/while/after, the events received and the rendered output buffer.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

nvim_ok() {  # $1: a nvim binary; true when it is >= 0.10
  "$1" --headless -u NONE -i NONE -n --cmd 'if has("nvim-0.10") | qa! | else | cq | endif' </dev/null >/dev/null 2>&1
}
# DEMO_NVIM: a Neovim to use (not $NVIM: inside Neovim's :terminal that is the editor's socket).
NVIM_BIN="${DEMO_NVIM:-}"
if [ -z "$NVIM_BIN" ] && command -v nvim >/dev/null 2>&1 && nvim_ok "$(command -v nvim)"; then
  NVIM_BIN="$(command -v nvim)"
fi
if [ -z "$NVIM_BIN" ]; then
  echo "demo: no Neovim >= 0.10 on PATH; installing 0.10.4 into .deps/nvim-0.10.4" >&2
  scripts/install-nvim.sh "$ROOT/.deps/nvim-0.10.4"
  NVIM_BIN="$ROOT/.deps/nvim-0.10.4/bin/nvim"
fi
# CLAUDE_TASKS_BIN_DIR: another build's binaries (the tests run the demo with the debug build).
[ -n "${CLAUDE_TASKS_BIN_DIR:-}" ] || [ -x target/release/claude-tasks ] || cargo build --release

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/project/src" "$WORK/state"
printf 'fn main() {}\n' > "$WORK/project/src/main.rs"
printf '# demo project\n' > "$WORK/project/README.md"

cd "$WORK/project"
XDG_STATE_HOME="$WORK/state" XDG_CONFIG_HOME="$WORK/config" XDG_DATA_HOME="$WORK/data" \
  CLAUDE_TASKS_ROOT="$ROOT" \
  "$NVIM_BIN" --headless -u NONE -i NONE -n --cmd "set rtp^=$ROOT" -l "$ROOT/scripts/demo.lua"
