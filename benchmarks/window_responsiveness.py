"""Figure 4: the window's responsiveness while tasks flow at full speed.

    python -m benchmarks.window_responsiveness [--quick] [--rounds N] [--tasks N]

One process holds the real window (offscreen), built by ``build_window`` and driven through its
widgets: Start in the server bar (the embedded server), 2 local workers from the workers panel.
A 10 ms precise ``QTimer`` on the GUI thread records the gap between its ticks; a gap longer
than 10 ms is time the event loop was busy (or starved of the GIL) and could not react to a
person. Two phases per round, in rotating order, each on the same window:

* idle       2 workers, no tasks, for a few seconds: the floor of the timer on this machine;
* full load  a separate process submits N square tasks with ``Client.submit_many`` (so the
             window's process does only what the window does), and the phase lasts from just
             before that submit until the window's own snapshot shows every task done, while
             the plots, the tables and the status bar update at the normal poll rate.

Reported per phase: p50, p99 and max of the gaps (pooled over rounds, and per round), the ms
the loop was blocked beyond the 10 ms tick, and the throughput of the load (server finish
stamp of the last task, as figure 1). Target: p99 <= 10 ms and max <= 30 ms under full load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from guidist.gui.state import LOCAL_WORKER_NICE

from .common import (
    finish,
    fmt,
    machine_info,
    machine_line,
    parser,
    summary,
    table,
    verdict,
)

FIGURE = "4"
REQUIRES = ("PySide6", "pyqtgraph")
NAME = "window_responsiveness"
WORKERS = 2
FULL = {"tasks": 1_000_000, "idle_s": 4.0, "rounds": 3}
QUICK = {"tasks": 30_000, "idle_s": 1.0, "rounds": 1}
TARGET_P99_MS, TARGET_MAX_MS = 10.0, 30.0

_SUBMITTER = """
import os, sys
from guidist.core.client import Client
host, port, n = os.environ["BENCH_HOST"], int(os.environ["BENCH_PORT"]), int(sys.argv[1])
c = Client((host, port), os.environ["BENCH_KEY"]).connect()
c.submit_many("square", range(n))
c.close()
"""


def external_submit(address: tuple[str, int], key: str, n: int) -> subprocess.Popen:
    """Submit n squares from another process (the key goes by environment, never argv)."""
    env = dict(os.environ, BENCH_HOST=address[0], BENCH_PORT=str(address[1]), BENCH_KEY=key)
    return subprocess.Popen([sys.executable, "-c", _SUBMITTER, str(n)], env=env)


def last_finished(address: tuple[str, int], key: str, n: int) -> float | None:
    """The server's finish stamp of the n-th stored result (called after the measurement)."""
    from guidist.core.client import Client

    c = Client(address, key).connect()
    try:
        _cursor, last = c.results_since(n - 1, 1)
        return last[0].finished if last and last[0].finished else None
    finally:
        c.close()


def _renice(pids: Any, nice: int) -> None:
    """Set the nice value of the window's local workers (a variant, not a guidist change)."""
    import psutil

    for pid in pids:
        try:
            psutil.Process(pid).nice(nice)
        except (psutil.Error, OSError):
            pass


POLICIES = {"other": os.SCHED_OTHER, "batch": os.SCHED_BATCH, "idle": os.SCHED_IDLE}


def _set_policy(pids: Any, policy: str) -> None:
    """Set the scheduling policy of every thread of the window's local workers (their nice
    stays; leaving SCHED_IDLE needs privilege or RLIMIT_NICE, so variants restore as root)."""
    import psutil

    for pid in pids:
        try:
            for t in psutil.Process(pid).threads():
                os.sched_setscheduler(t.id, POLICIES[policy], os.sched_param(0))
        except (psutil.Error, OSError):
            pass


def _gui_slice(ms: float) -> int:
    """Give the GUI thread another time slice for a variant phase; the slice it had (ns)."""
    from guidist.gui.scheduling import request_thread_slice, thread_slice_ns

    before = thread_slice_ns() or 0
    if request_thread_slice(int(ms * 1e6)) is None:
        raise RuntimeError(f"could not set the GUI thread's time slice to {ms} ms")
    return before


def _server_pids(window: Any) -> list[int]:
    """The window's embedded server: its child that is neither a worker, the network
    process nor multiprocessing's resource tracker."""
    import psutil

    skip = set(window.controller.local_pids) | {window.controller.network_pid}
    out = []
    for child in psutil.Process().children():
        try:
            if child.pid not in skip and "resource_tracker" not in " ".join(child.cmdline()):
                out.append(child.pid)
        except psutil.Error:
            pass
    return out


def run_round(sizes: dict[str, Any], order: list[str], profiler: Any = None) -> dict[str, Any]:
    """One window, both phases in the given order (cProfile on the GUI thread if given)."""
    from . import _window as W

    out: dict[str, Any] = {}
    with W.open_window() as window:
        address = W.start_server(window)
        key = window.controller.key
        W.launch_workers(window, WORKERS)
        W.run_for(1.0)  # let the first plots and tables settle (not measured)
        rec = W.TickRecorder()
        done_before = 0
        for phase in order:
            rec.mark(phase)
            if profiler is not None:
                profiler.enable()
            if phase == "idle":
                rec.start()
                W.run_for(sizes["idle_s"])
                rec.stop()
                if profiler is not None:
                    profiler.disable()
                out[phase] = rec.stats(phase)
                out[phase]["gui_slice_ms"] = W.gui_slice_ms()
                continue
            n = sizes["tasks"]
            # The plain phase runs the workers as the window launches them (nice 10, as a
            # person gets them); until issue 17 it reset them to nice 0 here, a stricter
            # load than the window's own. A variant phase sets another niceness.
            nice = LOCAL_WORKER_NICE
            if phase.startswith("full load, workers nice"):
                nice = int(phase.rsplit(" ", 1)[1])
            _renice(window.controller.local_pids, nice)
            server_nice = int(phase.rsplit(" ", 1)[1]) \
                if phase.startswith("full load, server nice") else 0
            _renice(_server_pids(window), server_nice)
            slice_ms = float(phase.rsplit(" ", 2)[1]) \
                if phase.startswith("full load, GUI slice") else None
            restore = _gui_slice(slice_ms) if slice_ms is not None else None
            policy = phase.rsplit(" ", 1)[1] \
                if phase.startswith("full load, workers policy") else None
            if policy:
                _set_policy(window.controller.local_pids, policy)
            snap = window.last_snapshot
            done_before = snap.count("done") + snap.count("failed") + snap.count("dead")
            sampler = W.SessionCpu() if sizes.get("who_ran") else None
            rec.start()
            t0 = time.time()
            proc = external_submit(address, key, n)
            try:
                W.wait_for(lambda: (s := window.last_snapshot) is not None and
                           s.count("done") + s.count("failed") + s.count("dead")
                           >= done_before + n, 120 + n / 5_000, f"{n} tasks done", 50)
            finally:
                rec.stop()
                if profiler is not None:
                    profiler.disable()
                proc.wait(timeout=60)
                if restore is not None:
                    _gui_slice(restore / 1e6)
                if policy:
                    _set_policy(window.controller.local_pids, "other")
            end = last_finished(address, key, done_before + n) or time.time()
            stats = rec.stats(phase)
            if sampler is not None:
                stats.update(W.who_ran(rec.gaps.get(phase, []), rec.ends.get(phase, []),
                                       rec.cpu.get(phase, []), sampler.stop(),
                                       os.cpu_count() or 1))
            stats["gui_slice_ms"] = slice_ms if slice_ms is not None else W.gui_slice_ms()
            stats.update(tasks=n, seconds=end - t0, tasks_per_s=n / (end - t0))
            out[phase] = stats
    return out


def _who(s: dict[str, Any]) -> str:
    """Who had the cores in the long gaps, when --who-ran sampled it."""
    if "long_gaps_window_processes_share" not in s:
        return ""
    return (f"; cores in gaps>20: window's other processes "
            f"{100 * s['long_gaps_window_processes_share']:.0f} %, GUI thread "
            f"{100 * s['long_gaps_gui_share']:.0f} %, the rest "
            f"{100 * s['long_gaps_rest_share']:.0f} %")


def _share(rs: list[dict[str, Any]]) -> str:
    """Share of the time in gaps over 20 ms that the GUI thread itself spent on the CPU."""
    late = sum(x.get("long_gaps_ms") or 0 for x in rs)
    busy = sum(x.get("long_gaps_gui_cpu_ms") or 0 for x in rs)
    queued = sum(x.get("long_gaps_runq_ms") or 0 for x in rs)
    return f"{100 * busy / late:.0f} % / {100 * queued / late:.0f} %" if late else "—"


def profile(sizes: dict[str, Any]) -> int:
    """Where the GUI thread spends its time over an idle and a full-load phase."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    res = run_round(sizes, ["idle", "full load"], prof)
    for ph, s in res.items():
        print(f"{ph}: p50={fmt(s['p50_ms'])} p99={fmt(s['p99_ms'])} max={fmt(s['max_ms'])} ms; "
              f"long gaps (>20 ms) {fmt(s.get('long_gaps_ms'))} ms, of which GUI-thread CPU "
              f"{fmt(s.get('long_gaps_gui_cpu_ms'))} ms, run-queue {fmt(s.get('long_gaps_runq_ms'))} ms;"
              f" worst [gap, cpu, runq] {s.get('worst10_gap_cpu_runq_ms')}")
    st = pstats.Stats(prof)
    st.sort_stats("tottime").print_stats(25)
    st.sort_stats("cumulative").print_stats(40)
    finish(NAME + ".profile", {"quick": True}, True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run figure 4 and print its table."""
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=None, help="square tasks in the load phase")
    p.add_argument("--nice-workers", type=int, default=None, metavar="N",
                   help="add a full-load phase with the local workers at nice N (the plain "
                        f"phase runs them at the window's nice {LOCAL_WORKER_NICE}; 0 is the "
                        "stricter load measured before issue 17)")
    p.add_argument("--nice-server", type=int, default=None, metavar="N",
                   help="add a full-load phase with the window's embedded server at nice N "
                        "(a proposal measured side by side; the window runs it at nice 0)")
    p.add_argument("--gui-slice", type=float, action="append", default=None, metavar="MS",
                   help="add a full-load phase (once per option given) with the GUI thread's scheduler time slice at "
                        "MS ms (Linux 6.12+; the window asks for "
                        "guidist.gui.scheduling.GUI_THREAD_SLICE_NS)")
    p.add_argument("--worker-policy", choices=sorted(POLICIES), action="append", default=None,
                   help="add a full-load phase (once per option given) with the local workers "
                        "under that scheduling policy (the window runs them SCHED_OTHER, "
                        f"nice {LOCAL_WORKER_NICE})")
    p.add_argument("--who-ran", action="store_true",
                   help="sample the CPU of the window's processes under full load, to split "
                        "the core time in long gaps between them and the machine's other jobs")
    p.add_argument("--json-out", default=None, metavar="PATH",
                   help="also write the figures to PATH (benchmarks.window_ab reads them)")
    p.add_argument("--profile", action="store_true",
                   help="one round with cProfile on the GUI thread; print where it spends time "
                        "(the gaps are then inflated by the profiler; nothing is saved)")
    args = p.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.tasks:
        sizes["tasks"] = args.tasks
    sizes["who_ran"] = args.who_ran
    if args.profile:
        return profile(sizes)
    rounds = args.rounds or sizes["rounds"]
    info = machine_info()
    print(f"Figure 4 — window responsiveness (10 ms QTimer gaps), {WORKERS} workers, "
          f"{sizes['tasks']:,} square tasks, {rounds} round{'s' * (rounds != 1)}"
          f"{', quick' if args.quick else ''}")
    print(machine_line(info))

    phases = ["idle", "full load"]
    if args.nice_workers is not None:
        phases.append(f"full load, workers nice {args.nice_workers}")
    if args.nice_server is not None:
        phases.append(f"full load, server nice {args.nice_server}")
    for ms in args.gui_slice or []:
        phases.append(f"full load, GUI slice {ms:g} ms")
    for pol in args.worker_policy or []:
        phases.append(f"full load, workers policy {pol}")
    runs: dict[str, list[dict[str, Any]]] = {ph: [] for ph in phases}
    for r in range(rounds):
        order = phases[r % len(phases):] + phases[:r % len(phases)]
        res = run_round(sizes, order)
        for ph in phases:
            res[ph]["round"] = r
            runs[ph].append(res[ph])
            s = res[ph]
            extra = f"  {s['tasks_per_s']:,.0f} tasks/s" if "tasks_per_s" in s else ""
            print(f"  round {r + 1}/{rounds}  {ph:<24} p50={fmt(s['p50_ms'])} "
                  f"p99={fmt(s['p99_ms'])} max={fmt(s['max_ms'])} ms  "
                  f"blocked={fmt(s['blocked_ms'])} ms over {s['span_s']:.1f} s{extra}; "
                  f"worst [gap, GUI cpu, run-queue] ms {s.get('worst10_gap_cpu_runq_ms', [])[:4]}"
                  f"{_who(s)}")

    rows, per_phase = [], {}
    for ph in phases:
        rs = runs[ph]
        pooled = {k: summary([x[k] for x in rs]) for k in ("p50_ms", "p99_ms", "max_ms")}
        blocked = sum(x["blocked_ms"] or 0 for x in rs)
        span = sum(x["span_s"] for x in rs)
        tps = summary([x["tasks_per_s"] for x in rs if "tasks_per_s" in x])
        per_phase[ph] = {"per_round": rs, "summary": pooled, "blocked_ms_total": blocked,
                         "span_s_total": span, "tasks_per_s": tps}
        rows.append([ph, fmt(pooled["p50_ms"]["median"]), fmt(pooled["p99_ms"]["median"]),
                     f"{fmt(pooled['p99_ms']['min'])} – {fmt(pooled['p99_ms']['max'])}",
                     fmt(pooled["max_ms"]["max"]),
                     f"{fmt(blocked)} / {span:.1f} s",
                     sum(x["over_20ms"] for x in rs), sum(x["over_50ms"] for x in rs),
                     _share(rs), fmt(tps["median"]) if tps["n"] else "—"])
    print()
    print(table(["phase", "p50 ms", "p99 ms (median)", "p99 min – max", "max ms (worst)",
                 "blocked >10ms", "gaps>20", "gaps>50", "in gaps>20: GUI cpu / run-queue",
                 "tasks/s"], rows))
    load = per_phase["full load"]["summary"]
    p99, mx = load["p99_ms"]["max"], load["max_ms"]["max"]
    print(f"\ntarget under full load (worst round): p99 <= {TARGET_P99_MS:g} ms: "
          f"{verdict(p99, TARGET_P99_MS, False)};  max <= {TARGET_MAX_MS:g} ms: "
          f"{verdict(mx, TARGET_MAX_MS, False)}")
    payload = {"name": NAME, "figure": FIGURE, "quick": args.quick, "machine": info,
               "sizes": sizes, "rounds": rounds, "phases": per_phase,
               "targets": {"p99_ms": TARGET_P99_MS, "max_ms": TARGET_MAX_MS,
                           "p99_met": verdict(p99, TARGET_P99_MS, False),
                           "max_met": verdict(mx, TARGET_MAX_MS, False)},
               "method": __doc__}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(payload, default=str))
    name = NAME if args.nice_workers is None else f"{NAME}.nice{args.nice_workers}"
    if args.nice_server is not None:
        name += f".server-nice{args.nice_server}"
    for ms in args.gui_slice or []:
        name += f".gui-slice{ms:g}"
    for pol in args.worker_policy or []:
        name += f".workers-{pol}"
    return finish(name, payload, args.no_save)


if __name__ == "__main__":
    sys.exit(main())
