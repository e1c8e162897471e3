#!/usr/bin/env python3
"""One streaming run on a timeline, as Neovim sees it: when `start()` and `open()` returned,
when the first text line and each tenth of the lines reached the buffer, the longest pauses
between two writes, and the tail (the last text lines to the footer). Optionally the second
RPC client's round trips, each split into the time until Neovim ran it and the way back.

BENCHMARKS.md (fifth pass, 33 and 37) was found this way. The numbers are single runs: the
benchmark (bench.py) is what measures.

    bench/timeline.py [--lines N] [--live] [--runs R] [--pings] [--backend BIN] [--nvim NVIM]

Needs what bench.py needs (a release build, .deps/ or --nvim, Python with pynvim).
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

# Every change of the task's buffer, stamped on Neovim's clock (CLOCK_MONOTONIC, as the pings).
HOOK = """
local api = vim.api
B.tl = {}
local ct = require("claude-tasks")
local open = ct.open
ct.open = function(id, opts)
  local buf, err = open(id, opts)
  if buf then
    api.nvim_buf_attach(buf, false, {
      on_lines = function(_, b)
        B.tl[#B.tl + 1] = { vim.uv.hrtime(), api.nvim_buf_line_count(b) }
      end,
    })
  end
  return buf, err
end
"""

# A pinger that also returns Neovim's clock when it ran the request.
PINGER = r"""
import json, os, sys, time
import pynvim
sock, ready, stop, out = sys.argv[1:5]
nvim = pynvim.attach("socket", path=sock)
nvim.exec_lua("return 1")
open(ready, "w").close()
samples = []
while not os.path.exists(stop):
    t0 = time.monotonic_ns()
    ran = nvim.exec_lua("return vim.uv.hrtime()")
    samples.append((t0, time.monotonic_ns() - t0, ran - t0))
    time.sleep(0.002)
json.dump(samples, open(out, "w"))
"""


def ms(t, t0):
    return (t - t0) / 1e6


def one_run(b, args):
    cmd = b.fake_cmd(args.lines) if args.live else b.replay_cmd(args.lines)
    nv = B.Nvim(b.nvim, b.tmp, "timeline")
    pinger = None
    try:
        nv.setup(cmd=cmd)
        nv.lua(HOOK)
        if args.pings:
            d = nv.tmp
            files = [os.path.join(d, f) for f in ("ping.ready", "ping.stop", "ping.json")]
            pinger = subprocess.Popen([sys.executable, "-c", PINGER, nv.sock] + files)
            while not os.path.exists(files[0]):
                time.sleep(0.01)
        if not nv.lua("return B.stream_plugin(1)"):
            raise RuntimeError("the task did not start")
        r = nv.wait_done(600, poll=0.01)
        if r is None:
            raise RuntimeError("timed out")
        t0 = nv.lua("return B.state.t0")
        tl = nv.lua("return B.tl")
        pings = []
        if pinger:
            open(files[1], "w").close()
            pinger.wait(timeout=30)
            pings = [p for p in json.load(open(files[2])) if p[0] >= t0]
    finally:
        if pinger and pinger.poll() is None:
            pinger.kill()
        nv.close()

    total = tl[-1][1]
    print("run: %.1f ms to the footer; start() %.2f ms, open() returned at %.2f ms"
          % (r["ms"], r["started_ms"], r["opened_ms"]))
    # The header is 3 lines; text starts after it.
    first = next((t for t, n in tl if n > 3), None)
    if first:
        print("  first text lines in the buffer at %.1f ms" % ms(first, t0))
    marks = []
    for k in range(1, 10):
        t = next((t for t, n in tl if n >= total * k / 10), None)
        if t:
            marks.append("%d%% %.0f" % (k * 10, ms(t, t0)))
    print("  lines in the buffer by (ms): " + ", ".join(marks))
    gaps = sorted(((tl[i + 1][0] - tl[i][0], i) for i in range(len(tl) - 1)), reverse=True)
    print("  longest pauses between writes: " + ", ".join(
        "%.1f ms after %.0f ms (line %d)" % (g / 1e6, ms(tl[i][0], t0), tl[i][1])
        for g, i in gaps[:3]))
    if len(tl) >= 2:
        print("  tail: last text write at %.1f ms, footer at %.1f ms"
              % (ms(tl[-2][0], t0), ms(tl[-1][0], t0)))
    if pings:
        slow = sorted(pings, key=lambda p: -p[1])[:3]
        print("  slowest round trips (sent at: total / until Neovim ran it): " + ", ".join(
            "%.0f ms: %.2f / %.2f ms" % (ms(s, t0), rtt / 1e6, ran / 1e6) for s, rtt, ran in slow))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--live", action="store_true", help="fake-claude writes while we read")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--pings", action="store_true", help="a second RPC client, as in 'respond'")
    ap.add_argument("--backend")
    ap.add_argument("--nvim", default=next((n for n in B.NVIM_CANDIDATES if os.path.exists(n)),
                                           "nvim"))
    args = ap.parse_args()
    if args.backend:
        B.BACKEND = os.path.abspath(args.backend)
    ns = argparse.Namespace(nvim=args.nvim, runs=1, quick=False, sizes=str(args.lines),
                            peer_timeout=60)
    b = B.Bench(ns)
    try:
        for _ in range(args.runs):
            one_run(b, args)
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
