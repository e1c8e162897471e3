#!/usr/bin/env python3
"""Prints a results JSON of bench/bench.py (default bench/results/latest.json) as Markdown: the
machine and the table, ready to paste into BENCHMARKS.md.

    python3 bench/report.py [results.json]
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def num(m, v):
    if v is None:
        return "n/a"
    if isinstance(v, dict):
        return ">" + (m["fmt"] % v["gt"])
    return m["fmt"] % v


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results/latest.json")
    with open(path) as f:
        data = json.load(f)
    meta, metrics = data["meta"], data["metrics"]
    mc = meta["machine"]
    runs = meta.get("group_runs") or {}
    dates = sorted({r["date"] for r in runs.values()}) or [meta["date"]]
    print("- Date: %s" % (dates[0] if len(dates) == 1 else "%s to %s (groups re-measured with "
                          "--update, see below)" % (dates[0], dates[-1])))
    print("- Machine: %s, `nproc` = %s, %s RAM, Linux %s" % (mc["cpu"], mc["nproc"], mc["mem"],
                                                          mc["kernel"]))
    print("- Neovim measured: %s; installed: %s" % (
        meta["nvim"]["version"], ", ".join(sorted(set(meta["nvim_versions"].values())))))
    print("- Source: %s; %d runs per metric%s" % (meta.get("git", "?"), meta["runs"],
                                                  " (--quick)" if meta.get("quick") else ""))
    if runs:
        print("- Groups (when measured; share of the CPU other processes used meanwhile): " +
              ", ".join("%s %s (%s)" % (g, r["date"],
                                        "?" if r.get("cpu_others") is None
                                        else "%.0f%%" % (100 * r["cpu_others"]))
                        for g, r in runs.items()))
    print()
    print("| metric | median | min–max | target | |")
    print("|---|---:|---:|---|---|")
    for m in metrics:
        target = ""
        if m.get("target") is not None:
            target = ("≤ " if m["cmp"] == "le" else "≥ ") + (m["fmt"] % m["target"]) + " " + m["unit"]
        verdict = ""
        if "pass" in m:
            verdict = "pass" if m["pass"] else "**miss**"
        rng = ""
        if m["n"] > 1:
            rng = "%s–%s" % (num(m, m["min"]), num(m, m["max"]))
        name = m["name"].strip()
        if m["name"].startswith("  "):
            name = "&nbsp;&nbsp;" + name
        print("| %s | %s %s | %s | %s | %s |" % (name, num(m, m["median"]), m["unit"], rng, target,
                                               verdict))


if __name__ == "__main__":
    main()
