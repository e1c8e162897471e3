#!/usr/bin/env bash
# Runs the benchmarks (bench/bench.py) and prints the table; the JSON goes to
# bench/results/latest.json. `make bench` builds the release binaries first and calls this.
#
#   scripts/bench.sh                 # everything, 5 runs per metric (~10 min on 2 cores)
#   scripts/bench.sh --quick         # small sizes, 3 runs: a quick try of the harness
#   scripts/bench.sh --only stream,memory --runs 7
#   BENCH_NVIM=/path/to/nvim scripts/bench.sh
#
# Needs: target/release/{claude-tasks,fake-claude} (cargo build --release), a Neovim >= 0.10
# (.deps/, see `make deps`, or $BENCH_NVIM, or nvim on PATH) and Python 3 with pynvim
# (.deps/venv, or $BENCH_PYTHON, or python3 if it can import pynvim).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

for bin in target/release/claude-tasks target/release/fake-claude; do
  if [[ ! -x "$bin" ]]; then
    echo "bench: $bin is missing: run 'cargo build --release' (or 'make bench')" >&2
    exit 1
  fi
done

PY="${BENCH_PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .deps/venv/bin/python ]]; then
    PY=.deps/venv/bin/python
  else
    PY=python3
  fi
fi
if ! "$PY" -c 'import pynvim, msgpack' 2>/dev/null; then
  echo "bench: $PY cannot import pynvim: run 'make deps' (or set BENCH_PYTHON)" >&2
  exit 1
fi

args=()
if [[ -n "${BENCH_NVIM:-}" ]]; then
  args+=(--nvim "$BENCH_NVIM")
fi

exec "$PY" bench/bench.py "${args[@]}" "$@"
