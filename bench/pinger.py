#!/usr/bin/env python3
"""A second RPC client: connects to `nvim --listen <sock>` and calls nvim_eval("1") in a loop
(one call every ~2 ms) until <stop-file> exists, then writes [send time, round-trip time] pairs
(ns; the send time on CLOCK_MONOTONIC, the clock of vim.uv.hrtime()) as JSON.

    pinger.py <sock> <ready-file> <stop-file> <out.json>
"""
import json
import os
import sys
import time

import pynvim


def main():
    sock, ready, stop, out = sys.argv[1:5]
    nvim = pynvim.attach("socket", path=sock)
    nvim.eval("1")
    with open(ready, "w") as f:
        f.write("ready\n")
    samples = []
    clock = time.monotonic_ns
    while not os.path.exists(stop):
        t0 = clock()
        nvim.eval("1")
        samples.append((t0, clock() - t0))
        time.sleep(0.002)
    with open(out, "w") as f:
        json.dump(samples, f)
    nvim.close()


if __name__ == "__main__":
    main()
