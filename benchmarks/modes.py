"""Figure: tasks/s of one worker in each execution mode against its concurrency (issue 7).

    python -m benchmarks.modes [--quick] [--rounds N] [--io-rounds M] [--seconds S]
                               [--out-dir DIR] [--replot]

What it measures: one ``guidist worker`` process at a time, in each mode (``process``,
``thread``, ``async``; plus ``inline``, the one-task-at-a-time batch loop, as the baseline),
at concurrency 1, 2, 4, 8, 16, 32 and 64, running

* ``primes(25_000)``: CPU-bound trial division, about 12 ms of pure Python per task here;
* ``io_wait(0.02)``: a blocking 20 ms sleep, the stand-in for a network or disk call;
* ``aio_wait(0.02)``: the ``async def`` twin, which only the async mode runs as a coroutine on
  its loop (a plain function there runs in a helper thread, at most 32 of them).

The process mode stops at 16 children: on 2 cores, 8 is already four per core and 16 is enough
to show what happens beyond the number of cores; 32 or 64 interpreters would only spend the
run being spawned.

How: one server (127.0.0.1, port 0) for the whole benchmark. For each worker configuration the
worker is launched, the benchmark polls ``Client.workers()`` until it has registered (checking
it advertises the mode and concurrency asked for), warms it up (process mode: 2 × concurrency
tasks, which spawns every child), then times from just before ``submit_many`` until the server
stored the last result: ``wait_idle`` detects the end, and the end time is the server's own
``finished`` stamp of the last task (``results_since``), so the 20 ms completion poll adds
nothing. Each run is sized (from a model in the first round, from the earlier rounds' median
afterwards) to last about ``--seconds`` (1 s; I/O-bound runs 0.6 of that). Only one worker is
alive at a time; it is stopped by its pid, and any of its process-pool children still alive
afterwards are killed by pid.

The machine is shared and noisy (other people's test suites and benchmarks use 0–2 of its 2
cores at any moment), so:

* the configurations are interleaved: every round runs each of them once, in a fresh seeded
  shuffle; the figure shows the median over rounds with min–max bars;
* CPU-bound runs get 7 rounds, I/O-bound ones 3 (their spread is a few per cent);
* a bounded "quiet gate" before each CPU-bound run waits for the other jobs to drop under
  0.4 cores (3 s at most per run, 60 s in all);
* every run records the CPU the benchmark's own processes used (``cores_used``) and what the
  rest of the machine used meanwhile (``other_cores``), so a bad round can be told apart.

``--quick`` is a small smoke run (one round, a few configurations, short runs) for CI; it
writes its JSON and PNG to a temporary directory, never over the committed ones. No number
ever fails the benchmark; only a crash does (exit code 1).

Outputs: a table on stdout, ``benchmarks/results/modes.json`` (every run's numbers and the
machine) and ``docs/modes.png``. Self-contained: guidist's public API, psutil, and the
project's own pyqtgraph/PySide6 (offscreen) for the figure; no other benchmark module.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import psutil

from guidist.core.client import Client
from guidist.core.pool import WorkerPool
from guidist.core.protocol import WorkerState
from guidist.core.server import ServerProcess
from guidist.core.tasks import primes

ROOT = Path(__file__).resolve().parent.parent
RESULTS_JSON = ROOT / "benchmarks" / "results" / "modes.json"
FIGURE_PNG = ROOT / "docs" / "modes.png"

AUTHKEY = "bench-modes-" + secrets.token_urlsafe(18)  # loopback only, never printed

CONCURRENCY = (1, 2, 4, 8, 16, 32, 64)
PROCESS_CAP = 16  # children in one process-mode worker; see the module docstring
PRIMES_LIMIT = 25_000  # about 12 ms of pure Python on this machine when it is quiet
IO_SECONDS = 0.02
KINDS: dict[str, tuple[str, Any]] = {  # kind -> (task function, its one argument)
    "primes": ("primes", PRIMES_LIMIT),
    "io_wait": ("io_wait", IO_SECONDS),
    "aio_wait": ("aio_wait", IO_SECONDS),
}
MODES = ("inline", "process", "thread", "async")
ASYNC_SYNC_THREADS = 32  # the async mode runs plain functions in min(concurrency, 32) threads
MAX_TASKS_PER_RUN = 15_000  # the server keeps the newest 20 000 results for results_since

# CPU-bound runs suffer most from the neighbours, so they get more rounds than the I/O-bound
# ones (whose spread is a few per cent): the first io_rounds rounds measure every kind, the
# remaining ones primes only.
FULL = {"rounds": 7, "io_rounds": 3, "seconds": 1.0, "concurrency": CONCURRENCY,
        "gate_budget_s": 60.0}
FAILURES_TO_ABORT = 3  # consecutive worker failures: something is broken, stop early
QUICK = {"rounds": 1, "io_rounds": 1, "seconds": 0.2, "concurrency": (1, 4),
         "gate_budget_s": 3.0}
IO_RUN_FRACTION = 0.6  # I/O-bound runs vary little; they get 0.6 of the target length

# The quiet gate: the machine is shared, and a CPU-bound run that overlaps another job's burst
# measures that job. Before each primes run, wait (0.25 s samples) until the rest of the machine
# uses under GATE_CORES cores, at most GATE_MAX_S per run and gate_budget_s in all; what was
# seen is recorded with every run either way ("other_cores" = the neighbours during the run).
GATE_CORES = 0.4
GATE_MAX_S = 3.0
GATE_SAMPLE_S = 0.25


# ---------------------------------------------------------------------------- configurations

def worker_configs(concurrency: tuple[int, ...]) -> list[tuple[str, int, tuple[str, ...]]]:
    """(mode, concurrency, kinds measured on that worker) for every worker to launch."""
    out: list[tuple[str, int, tuple[str, ...]]] = [("inline", 1, ("primes", "io_wait"))]
    out += [("process", c, ("primes", "io_wait")) for c in concurrency if c <= PROCESS_CAP]
    out += [("thread", c, ("primes", "io_wait")) for c in concurrency]
    out += [("async", c, ("primes", "io_wait", "aio_wait")) for c in concurrency]
    return out


def key(mode: str, c: int, kind: str) -> str:
    """The name of one measured configuration."""
    return f"{kind}/{mode}/{c}"


def model_rate(mode: str, c: int, kind: str, primes_s: float, cores: int) -> float:
    """A rough tasks/s guess, only to size the first round's runs."""
    if kind == "primes":
        return (min(c, cores) if mode == "process" else 1) / primes_s
    if mode == "inline":
        return 1 / IO_SECONDS
    eff = min(c, ASYNC_SYNC_THREADS) if (mode == "async" and kind == "io_wait") else c
    return min(eff / IO_SECONDS, 2000.0)


def run_size(rate: float, c: int, seconds: float) -> int:
    """Tasks for one run: about `seconds` of work, and at least 2 waves of `c` tasks."""
    return int(min(MAX_TASKS_PER_RUN, max(rate * seconds, 2 * c, 10)))


# ---------------------------------------------------------------------------- the bench

class Bench:
    """One server and one client for the whole benchmark; one worker at a time."""

    def __init__(self) -> None:
        self.server = ServerProcess("127.0.0.1", 0, AUTHKEY)
        self.address = self.server.start()
        self.client = Client(self.address, AUTHKEY).connect()
        self.pool = WorkerPool(self.address, AUTHKEY, give_up_after=20.0)
        self.cursor = 0
        self._stopping: threading.Thread | None = None
        self.gate_budget = 0.0

    def close(self) -> None:
        """Stop every worker and the server, each by its own pid."""
        self._join_stopping()
        with contextlib.suppress(Exception):
            self.client.close()
        with contextlib.suppress(Exception):
            self.pool.stop_all(timeout=10)
        self.server.stop()

    # -- one worker -----------------------------------------------------------

    def run_worker(self, mode: str, c: int, kinds: tuple[str, ...], sizes: dict[str, int],
                   ) -> dict[str, dict[str, Any]]:
        """Launch one worker, measure each kind on it, stop it; kind -> measurement."""
        t_launch = time.monotonic()
        w = self.pool.launch(1, prefix=f"{mode}{c}", mode=mode, concurrency=c)[0]
        descendants: set[int] = set()
        try:
            info = self._wait_registered(w, timeout=60)
            self._join_stopping()  # the previous worker is gone before any task is queued
            if info.mode != mode or int(info.concurrency) != c:
                raise RuntimeError(f"worker advertises mode={info.mode} concurrency="
                                   f"{info.concurrency}, asked for {mode}/{c}")
            ready_s = time.monotonic() - t_launch
            out = {}
            for kind in kinds:
                fn, arg = KINDS[kind]
                # Process mode: 2 waves so every child is spawned and has imported the task.
                # Threads start in microseconds, so a long CPU-bound warm-up would only cost time.
                n_warm = 2 * c if (mode == "process" or kind != "primes") else min(2 * c, 8)
                warm = self._warm_up(fn, arg, max(n_warm, 4))
                descendants |= _descendants(w.pid)
                gate = self._quiet_gate() if kind == "primes" else {}
                res = self._measure(fn, arg, sizes[kind], w.pid)
                res.update(gate)
                res.update(mode=mode, concurrency=c, kind=kind, warmup_s=warm,
                           worker_ready_s=ready_s, worker_children=len(_descendants(w.pid)))
                out[kind] = res
            return out
        finally:
            descendants |= _descendants(w.pid)
            # Stopping takes a second or so (the worker may sit in a 1 s claim on the server);
            # it overlaps with the next worker's start-up, which is not timed.
            self._stopping = threading.Thread(target=self._stop_worker, args=(w.pid, descendants),
                                              name=f"stop-{w.pid}")
            self._stopping.start()

    def _quiet_gate(self) -> dict[str, Any]:
        """Wait (bounded) for the other jobs on this machine to leave the CPUs mostly idle."""
        t0 = time.monotonic()
        busy = None
        while self.gate_budget > 0:
            b0 = _system_busy()
            time.sleep(GATE_SAMPLE_S)
            busy = (_system_busy() - b0) / GATE_SAMPLE_S
            waited = time.monotonic() - t0
            if busy < GATE_CORES or waited >= GATE_MAX_S or waited >= self.gate_budget:
                break
        waited = time.monotonic() - t0
        self.gate_budget -= waited
        return {"gate_wait_s": waited, "gate_busy_cores": busy}

    def _stop_worker(self, pid: int, descendants: set[int]) -> None:
        self.pool.stop([pid], timeout=10)
        _kill_by_pid(descendants)

    def _join_stopping(self) -> None:
        if self._stopping is not None:
            self._stopping.join()
            self._stopping = None

    def _wait_registered(self, w: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for info in self.client.workers():
                if info.pid == w.pid and info.state is not WorkerState.OFFLINE:
                    return info
            if not w.alive:
                raise RuntimeError(f"worker exited with {w.returncode} before registering:\n"
                                   + "\n".join(list(w.log)[-20:]))
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {w.name} did not register in {timeout:.0f} s")
            time.sleep(0.02)

    def _warm_up(self, fn: str, arg: Any, n: int) -> float:
        t0 = time.monotonic()
        self.client.submit_many(fn, [(arg,)] * n)
        self.client.wait_idle(timeout=120, poll=0.02)
        return time.monotonic() - t0

    def _drain(self) -> list[Any]:
        """Every result stored since the cursor (oldest first); moves the cursor."""
        tasks: list[Any] = []
        while True:
            cur, batch = self.client.results_since(self.cursor, 1000)
            if not batch:
                return tasks
            tasks.extend(batch)
            self.cursor = cur

    def _measure(self, fn: str, arg: Any, n: int, worker_pid: int) -> dict[str, Any]:
        """Submit n tasks at once; time until the server stored the last result."""
        self._drain()
        args = [(arg,)] * n
        procs = _processes([os.getpid(), self.server.pid or 0, worker_pid,
                            *_descendants(worker_pid)])
        cpu0, sys0 = _cpu_seconds(procs), _system_busy()
        t0 = time.time()
        ids = self.client.submit_many(fn, args)
        submitted_s = time.time() - t0
        self.client.wait_idle(timeout=max(120.0, n * 0.1), poll=0.02)
        idle_s = time.time() - t0
        ours = _cpu_seconds(procs) - cpu0
        everyone = _system_busy() - sys0
        cpu = ours / idle_s  # cores busy in this benchmark's processes
        other = max(0.0, everyone - ours) / idle_s  # cores the rest of the machine used
        first, last = ids[0], ids[len(ids) - 1]
        mine = [t for t in self._drain() if first <= t.id <= last]
        done = sum(1 for t in mine if t.state.value == "done")
        end = max((t.finished for t in mine if t.finished is not None), default=t0 + idle_s)
        seconds = max(end - t0, 1e-9)
        return {"n": n, "done": done, "accounted": len(mine), "seconds": seconds,
                "tasks_per_s": done / seconds, "submit_s": submitted_s,
                "wait_idle_s": idle_s, "cores_used": cpu, "other_cores": other}


def _processes(pids: list[int]) -> list[psutil.Process]:
    out = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if pid:
                out.append(psutil.Process(pid))
    return out


def _system_busy() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs, since boot)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _cpu_seconds(procs: list[psutil.Process]) -> float:
    """User + system CPU seconds of these processes (ones that exited count as 0)."""
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _descendants(pid: int) -> set[int]:
    with contextlib.suppress(psutil.Error):
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    return set()


def _kill_by_pid(pids: set[int], grace: float = 3.0) -> list[int]:
    """Wait for these processes to exit; SIGKILL (by pid) any still running after grace."""
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    if not procs:
        return []
    _, alive = psutil.wait_procs(procs, timeout=grace)
    killed = []
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
            killed.append(p.pid)
    if killed:
        print(f"  warning: killed leftover process-pool children {killed}", file=sys.stderr)
    return killed


# ---------------------------------------------------------------------------- statistics

def summarise(values: list[float]) -> dict[str, Any]:
    """Median and min–max over rounds."""
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": values}


def calibrate_primes(repeat: int = 7) -> float:
    """Seconds of one primes(PRIMES_LIMIT) in this process (the fastest of a few: the cost
    without the neighbours; it only sizes the first round's runs)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        primes(PRIMES_LIMIT)
        times.append(time.perf_counter() - t)
    return min(times)


def fmt(v: float | None) -> str:
    """Numbers for the table."""
    if v is None:
        return "—"
    if abs(v) < 10:
        return f"{v:.2f}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def render_table(summary: dict[str, dict[str, Any]], conc: tuple[int, ...],
                 kinds: tuple[str, ...] = tuple(KINDS), what: str = "tasks/s") -> str:
    """One block per task kind: rows = modes, columns = concurrency, 'median [min–max]'."""
    lines = []
    for kind in kinds:
        modes = [m for m in MODES if any(k.startswith(f"{kind}/{m}/") for k in summary)]
        if not modes:
            continue
        lines.append(f"\n{kind} — {what}, median [min–max] over rounds")
        header = ["mode"] + [f"c={c}" for c in conc]
        rows = []
        for m in modes:
            row = [m]
            for c in conc:
                s = summary.get(key(m, c, kind))
                if s is None or s["median"] is None:
                    row.append("·")
                else:
                    row.append(f"{fmt(s['median'])} [{fmt(s['min'])}–{fmt(s['max'])}]")
            rows.append(row)
        widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
        lines.append("  ".join(h.ljust(widths[i]) if i == 0 else h.rjust(widths[i])
                               for i, h in enumerate(header)))
        lines.append("  ".join("-" * w for w in widths))
        for r in rows:
            lines.append("  ".join(str(x).ljust(widths[i]) if i == 0 else str(x).rjust(widths[i])
                                   for i, x in enumerate(r)))
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    """Where and on what it ran."""
    cpu_model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break

    def git(*a: str) -> str | None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=10)
            return r.stdout.strip() if r.returncode == 0 else None
        return None

    load = None
    with contextlib.suppress(OSError):
        load = [round(x, 2) for x in os.getloadavg()]
    return {
        "cores_logical": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": load,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty_guidist": bool(git("status", "--porcelain", "--", "guidist")),
        # What the worker and server run: guidist/ but the window, committed plus uncommitted.
        "guidist_fingerprint": hashlib.sha1(
            ((git("ls-tree", "-r", "HEAD", "--", "guidist", ":!guidist/gui") or "")
             + (git("diff", "HEAD", "--", "guidist", ":!guidist/gui") or "")).encode()
        ).hexdigest()[:12],
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------------------- figure

def draw(summary: dict[str, dict[str, Any]], meta: dict[str, Any], path: Path,
         width: int = 1000, height: int = 450) -> None:
    """Two panels (CPU-bound, I/O-bound), x = concurrency (log2), y = tasks/s, one line a mode.

    The axes are drawn in transformed coordinates (x = log2 c; y = log10 tasks/s on the I/O
    panel) with hand-made tick labels, so that min–max bars can be drawn with ErrorBarItem.
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import math

    import numpy as np
    import pyqtgraph as pg
    import pyqtgraph.exporters
    from PySide6 import QtCore, QtGui, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    pg.setConfigOptions(antialias=True, background="w", foreground="k")
    win = pg.GraphicsLayoutWidget()
    win.resize(width, height)
    win.ci.setContentsMargins(6, 4, 12, 2)
    win.ci.setSpacing(4)

    colors = {"process": (31, 119, 180), "thread": (230, 120, 20), "async": (44, 160, 44),
              "inline": (90, 90, 90), "ideal": (165, 165, 165)}
    tick_font = QtGui.QFont()
    tick_font.setPointSize(9)
    conc = list(CONCURRENCY)
    cores = int(meta["cores"])

    def panel(col: int, title: str, ylabel: str) -> Any:
        p = win.addPlot(row=0, col=col,
                        title=f"<span style='font-size:11pt'><b>{title}</b></span>")
        for side in ("left", "bottom"):
            ax = p.getAxis(side)
            ax.setTickFont(tick_font)
            ax.setPen(pg.mkPen(60, 60, 60))
            ax.setTextPen(pg.mkPen(30, 30, 30))
        p.getAxis("bottom").setTicks([[(float(i), str(2 ** i)) for i in range(len(conc))]])
        p.setLabel("bottom", "concurrency: tasks at once in one worker (log₂ scale)",
                   **{"font-size": "10pt"})
        p.setLabel("left", ylabel, **{"font-size": "10pt"})
        p.showGrid(x=True, y=True, alpha=0.18)
        p.setXRange(-0.25, len(conc) - 0.75, padding=0)
        p.setMouseEnabled(False, False)
        p.hideButtons()
        return p

    def series(mode: str, kind: str, f: Any) -> tuple[list[float], ...]:
        xs, med, lo, hi = [], [], [], []
        nudge = {"process": -0.07, "thread": 0.0, "async": 0.07}.get(mode, 0.0)  # bars apart
        for i, c in enumerate(conc):
            s = summary.get(key(mode, c, kind))
            if s and s["median"]:
                xs.append(i + nudge)
                med.append(f(s["median"]))
                lo.append(f(s["median"]) - f(s["min"]))
                hi.append(f(s["max"]) - f(s["median"]))
        return xs, med, lo, hi

    def line(p: Any, legend: Any, mode: str, kind: str, label: str, f: Any,
             symbol: str = "o", dash: bool = False) -> list[float]:
        xs, med, lo, hi = series(mode, kind, f)
        if not xs:
            return []
        color = colors[mode]
        style = QtCore.Qt.PenStyle.DashLine if dash else QtCore.Qt.PenStyle.SolidLine
        item = p.plot(xs, med, pen=pg.mkPen(color, width=2.2, style=style), symbol=symbol,
                      symbolSize=8, symbolBrush=color, symbolPen=pg.mkPen(color))
        p.addItem(pg.ErrorBarItem(x=np.array(xs), y=np.array(med), top=np.array(hi),
                                  bottom=np.array(lo), beam=0.1,
                                  pen=pg.mkPen(color, width=1.3)))
        legend.addItem(item, label)
        return [m + h for m, h in zip(med, hi)] + [m - l for m, l in zip(med, lo)]

    def baseline(p: Any, legend: Any, kind: str, label: str, f: Any) -> list[float]:
        s = summary.get(key("inline", 1, kind))
        if not s or not s["median"]:
            return []
        y = f(s["median"])
        style = QtCore.Qt.PenStyle.DotLine
        item = p.plot([0.0, len(conc) - 1.0], [y, y],
                      pen=pg.mkPen(colors["inline"], width=2.0, style=style))
        p.plot([0.0], [y], pen=None, symbol="s", symbolSize=8, symbolBrush=colors["inline"],
               symbolPen=pg.mkPen(colors["inline"]))
        legend.addItem(item, label)
        return [f(s["min"]), f(s["max"])]

    def ideal(p: Any, legend: Any, ys: list[float], label: str) -> None:
        style = QtCore.Qt.PenStyle.DashLine
        item = p.plot([float(i) for i in range(len(conc))], ys,
                      pen=pg.mkPen(colors["ideal"], width=1.5, style=style))
        legend.addItem(item, label)

    def legend_at(p: Any, offset: tuple[int, int]) -> Any:
        return p.addLegend(offset=offset, labelTextSize="9pt", verSpacing=-5,
                           brush=pg.mkBrush(255, 255, 255, 235), pen=pg.mkPen(205, 205, 205))

    ident = float
    inline_cpu = summary.get(key("inline", 1, "primes")) or {}
    per_core = inline_cpu.get("median") or 1000.0 / meta["primes_ms"]

    # ---- CPU-bound panel: linear y
    p1 = panel(0, f"CPU-bound: primes({PRIMES_LIMIT:,}), ≈{1000 / per_core:.0f} ms a task",
               "tasks / s")
    lg1 = legend_at(p1, (-6, 4))
    ys: list[float] = []
    ys += line(p1, lg1, "process", "primes", f"process (≤ {PROCESS_CAP} children)", ident)
    ys += line(p1, lg1, "thread", "primes", "thread", ident)
    ys += line(p1, lg1, "async", "primes", "async (plain fn in threads)", ident, "t")
    ys += baseline(p1, lg1, "primes", "inline (one at a time)", ident)
    ideal_cpu = [min(c, cores) * per_core for c in conc]
    ideal(p1, lg1, ideal_cpu, f"min(c, {cores} cores) × inline rate")
    p1.setYRange(0, max(ys + ideal_cpu) * 1.6, padding=0)

    # ---- I/O-bound panel: log10 y, labelled in tasks/s
    lg = math.log10
    p2 = panel(1, f"I/O-bound: io_wait / aio_wait({IO_SECONDS * 1000:.0f} ms)",
               "tasks / s (log scale)")
    lg2 = legend_at(p2, (6, 4))
    ys = []
    ys += line(p2, lg2, "async", "aio_wait", "async, aio_wait (coroutines)", lg)
    ys += line(p2, lg2, "async", "io_wait", "async, io_wait (≤ 32 threads)", lg, "t",
               dash=True)
    ys += line(p2, lg2, "thread", "io_wait", "thread, io_wait", lg)
    ys += line(p2, lg2, "process", "io_wait", f"process, io_wait (≤ {PROCESS_CAP})", lg)
    ys += baseline(p2, lg2, "io_wait", "inline, io_wait", lg)
    ideal_io = [lg(c / IO_SECONDS) for c in conc]
    ideal(p2, lg2, ideal_io, f"c / {IO_SECONDS * 1000:.0f} ms")
    lo_y, hi_y = min(ys + ideal_io), max(ys + ideal_io)
    p2.setYRange(lo_y - 0.12, hi_y + 0.12, padding=0)
    majors = [v * 10 ** e for e in range(0, 7) for v in (1, 2, 5)]
    p2.getAxis("left").setTicks([[(lg(v), f"{v:,}") for v in majors]])

    io_r = meta.get("io_rounds", meta["rounds"])
    rounds_txt = (f"{meta['rounds']} (CPU) / {io_r} (I/O)" if io_r != meta["rounds"]
                  else str(meta["rounds"]))
    foot = (f"One worker process per point; median of {rounds_txt} interleaved rounds, "
            f"bars min–max; process mode measured up to {PROCESS_CAP} children. "
            f"<br>{cores} cores ({meta['cpu']}), Python {meta['python']}, "
            f"guidist {meta.get('commit', '?')[:7]}.")
    win.addLabel(f"<span style='font-size:9pt; color:#444'>{foot}</span>", row=1, col=0,
                 colspan=2)

    win.show()
    for _ in range(5):
        app.processEvents()
    exporter = pg.exporters.ImageExporter(win.scene())
    exporter.parameters()["width"] = width
    exporter.parameters()["antialias"] = True
    path.parent.mkdir(parents=True, exist_ok=True)
    exporter.export(str(path))
    win.close()


# ---------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true",
                    help="one short round over a few configurations (CI smoke run)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="interleaved rounds for the CPU-bound primes (default 7)")
    ap.add_argument("--io-rounds", type=int, default=None,
                    help="how many of those rounds also measure io_wait/aio_wait (default 3)")
    ap.add_argument("--seconds", type=float, default=None, help="target length of one run")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="write modes.json and modes.png here instead of the committed paths")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw the figure from the saved JSON")
    opts = ap.parse_args(argv)

    cfg = dict(QUICK if opts.quick else FULL)
    rounds = opts.rounds or cfg["rounds"]
    io_rounds = min(rounds, opts.io_rounds or cfg["io_rounds"])
    seconds = opts.seconds or cfg["seconds"]
    conc: tuple[int, ...] = cfg["concurrency"]
    if opts.out_dir is not None:
        json_path, png_path = opts.out_dir / "modes.json", opts.out_dir / "modes.png"
    elif opts.quick:
        d = Path(tempfile.gettempdir()) / "guidist-bench-modes"
        json_path, png_path = d / "modes.quick.json", d / "modes.quick.png"
    else:
        json_path, png_path = RESULTS_JSON, FIGURE_PNG

    if opts.replot:
        payload = json.loads(json_path.read_text())
        draw(payload["summary"], payload["figure_meta"], png_path)
        print(f"drew {png_path}")
        return 0

    # A plain `kill` (SIGTERM) unwinds like Ctrl-C: workers and server are stopped by pid.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    machine = machine_info()
    cores = machine["cores_usable"] or machine["cores_logical"] or 1
    primes_s = calibrate_primes()
    configs = worker_configs(conc)
    print(f"machine: {cores} cores ({machine['cpu_model']}), Python {machine['python']}, "
          f"load {machine['load_average']}")
    print(f"primes({PRIMES_LIMIT}) takes {primes_s * 1000:.1f} ms here; io_wait/aio_wait "
          f"{IO_SECONDS * 1000:.0f} ms; {len(configs)} workers × {rounds} rounds "
          f"(I/O-bound kinds in the first {io_rounds}), "
          f"runs of ~{seconds:g} s; process mode capped at {PROCESS_CAP} children")

    runs: dict[str, list[dict[str, Any]]] = {}
    errors: list[dict[str, Any]] = []
    failed_in_a_row = 0
    started = time.monotonic()
    bench = Bench()
    bench.gate_budget = cfg["gate_budget_s"]
    try:
        for r in range(rounds):
            order = list(configs)
            random.Random(1000 + r).shuffle(order)
            for mode, c, kinds in order:
                if r >= io_rounds:
                    kinds = tuple(k for k in kinds if k == "primes")
                sizes = {}
                for kind in kinds:
                    prev = [x["tasks_per_s"] for x in runs.get(key(mode, c, kind), [])
                            if x["tasks_per_s"]]
                    rate = (statistics.median(prev) if prev
                            else model_rate(mode, c, kind, primes_s, cores))
                    length = seconds if kind == "primes" else seconds * IO_RUN_FRACTION
                    sizes[kind] = run_size(rate, c, length)
                try:
                    results = bench.run_worker(mode, c, kinds, sizes)
                except Exception as exc:
                    errors.append({"round": r, "mode": mode, "concurrency": c,
                                   "error": f"{type(exc).__name__}: {exc}",
                                   "traceback": traceback.format_exc()})
                    print(f"  round {r + 1}/{rounds}  {mode:>7} c={c:<3} FAILED: "
                          f"{type(exc).__name__}: {exc}", file=sys.stderr)
                    failed_in_a_row += 1
                    if failed_in_a_row >= FAILURES_TO_ABORT:
                        break
                    continue
                failed_in_a_row = 0
                for kind, res in results.items():
                    res["round"] = r
                    with contextlib.suppress(OSError):
                        res["load1_after"] = round(os.getloadavg()[0], 2)
                    runs.setdefault(key(mode, c, kind), []).append(res)
                    lost = "" if res["accounted"] == res["n"] == res["done"] else (
                        f"  (!) {res['done']}/{res['n']} done")
                    print(f"  round {r + 1}/{rounds}  {kind:>8} {mode:>7} c={c:<3} "
                          f"n={res['n']:<6} {res['seconds']:6.2f} s  "
                          f"{res['tasks_per_s']:8.1f} tasks/s  cores: ours "
                          f"{res['cores_used']:4.2f}, "
                          f"others {res['other_cores']:4.2f}"
                          f"{lost}", flush=True)
            if failed_in_a_row >= FAILURES_TO_ABORT:
                print(f"{FAILURES_TO_ABORT} workers in a row failed; stopping early",
                      file=sys.stderr)
                break
    finally:
        bench.close()
    elapsed = time.monotonic() - started

    summary = {k: summarise([x["tasks_per_s"] for x in v]) for k, v in runs.items()}
    print(render_table(summary, conc))
    cores_used = {k: summarise([x["cores_used"] for x in v]) for k, v in runs.items()}
    print(render_table(cores_used, conc, ("primes",),
                       "CPU cores busy in the benchmark's own processes (server, worker, client)"))
    for kind in KINDS:
        others = [x["other_cores"] for k, v in runs.items() if k.startswith(kind + "/")
                  for x in v]
        if others:
            q = statistics.quantiles(others, n=4) if len(others) > 1 else others * 3
            print(f"{kind}: other jobs on the machine used {statistics.median(others):.2f} cores "
                  f"during the runs (median; quartiles {q[0]:.2f}–{q[2]:.2f}, max "
                  f"{max(others):.2f})")
    waits = [x.get("gate_wait_s", 0.0) for v in runs.values() for x in v]
    print(f"quiet gate: waited {sum(waits):.0f} s in all "
          f"(budget {cfg['gate_budget_s']:.0f} s, threshold {GATE_CORES} cores)")
    print(f"\n{len(runs)} configurations, {rounds} rounds (I/O-bound: {io_rounds}) "
          f"in {elapsed:.0f} s"
          + (f"; {len(errors)} worker runs FAILED" if errors else ""))

    figure_meta = {"rounds": rounds, "io_rounds": io_rounds, "cores": cores,
                   "cpu": machine["cpu_model"] or "unknown CPU",
                   "python": machine["python"], "primes_ms": primes_s * 1000,
                   "commit": machine["git_commit"] or "?"}
    payload = {
        "benchmark": "modes", "quick": bool(opts.quick), "machine": machine,
        "parameters": {"rounds": rounds, "io_rounds": io_rounds, "target_seconds": seconds,
                       "concurrency": conc,
                       "io_run_fraction": IO_RUN_FRACTION, "gate_cores": GATE_CORES,
                       "gate_max_s": GATE_MAX_S, "gate_budget_s": cfg["gate_budget_s"],
                       "process_cap": PROCESS_CAP, "primes_limit": PRIMES_LIMIT,
                       "io_seconds": IO_SECONDS, "primes_seconds_calibrated": primes_s,
                       "timing": "submit_many start -> server 'finished' stamp of the last task"},
        "elapsed_s": elapsed, "summary": summary, "cores_used": cores_used, "runs": runs,
        "errors": errors,
        "figure_meta": figure_meta,
    }
    if errors:
        # A broken run must not replace the committed figure: keep it aside for inspection.
        d = Path(tempfile.gettempdir()) / "guidist-bench-modes"
        json_path, png_path = d / "modes.failed.json", d / "modes.failed.png"
        print(f"{len(errors)} worker runs failed (first: {errors[0]['error']})", file=sys.stderr)
    if machine_info()["guidist_fingerprint"] != machine["guidist_fingerprint"]:
        print("warning: guidist (outside guidist/gui) changed in the working tree during the "
              "run; the numbers may mix two versions", file=sys.stderr)
        payload["guidist_changed_during_run"] = True
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    draw(summary, figure_meta, png_path)
    print(f"saved {json_path}\ndrew  {png_path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
