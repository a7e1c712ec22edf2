"""What a time slice buys a GUI-like thread: its wait for a core after each wakeup.

    python -m benchmarks.window_wakeup [--quick] [--rounds N] [--slices 0.1,1,1.4] [--hogs 0,3]

No window: one thread wakes every 10 ms (an absolute deadline, as a precise timer) and does
1 ms of CPU, as the GUI thread does between paints, while H busy processes (nice 0, in the
same session, like the window's server and a load generator) and the machine's other jobs
compete for the cores. Per wakeup it reads the thread's run-queue wait from
/proc/thread-self/schedstat (runnable, no core). The slices (``sched_runtime`` through
``guidist.gui.scheduling``; 1.4 ms is this kernel's default on 2 CPUs) alternate within each
round, so they see the same machine. Linux 6.12+ only. Saved as
``benchmarks/results/window_wakeup.json``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from .common import finish, fmt, machine_info, machine_line, parser, percentile, summary, table

NAME = "window_wakeup"  # no FIGURE: a mechanism behind figure 4, not one of the figures
PERIOD_S, WORK_S = 0.010, 0.001
FULL = {"seconds": 3.0, "rounds": 4}
QUICK = {"seconds": 0.5, "rounds": 1}
HOG = "while True:\n    pass\n"


def _runq_ms() -> float:
    """This thread's total run-queue wait so far (ms)."""
    with open("/proc/thread-self/schedstat") as f:
        return float(f.read().split()[1]) / 1e6


def one(slice_ms: float, hogs: int, seconds: float) -> dict[str, Any]:
    """Run the periodic thread for a while at a slice; its per-wakeup waits and lateness."""
    from guidist.gui.scheduling import request_thread_slice

    if request_thread_slice(int(slice_ms * 1e6)) is None:
        raise SystemExit("this kernel takes no time slice request (Linux 6.12+ needed)")
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    try:
        time.sleep(0.3)  # the hogs are running
        waits, late = [], []
        due = time.perf_counter()
        end = due + seconds
        while due < end:
            due += PERIOD_S
            before = _runq_ms()
            ahead = due - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            woke = time.perf_counter()
            waits.append(_runq_ms() - before)
            late.append((woke - due) * 1000.0)
            spin = time.thread_time() + WORK_S
            while time.thread_time() < spin:
                pass
            if woke > due + PERIOD_S:
                due = woke  # a missed period is not made up in a burst
    finally:
        for p in procs:
            p.kill()
            p.wait()
    waits.sort()
    late.sort()
    return {"slice_ms": slice_ms, "hogs": hogs, "wakeups": len(waits),
            "runq_p50_ms": percentile(waits, 50), "runq_p99_ms": percentile(waits, 99),
            "runq_max_ms": waits[-1], "late_p99_ms": percentile(late, 99),
            "late_max_ms": late[-1]}


def main(argv: list[str] | None = None) -> int:
    """Measure the wakeup waits at each slice and number of hogs, alternating."""
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--slices", default="0.1,1,1.4", help="slices to compare, in ms")
    p.add_argument("--hogs", default="0,3", help="busy processes to run alongside, per set")
    args = p.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    rounds = int(args.rounds or sizes["rounds"])
    slices = [float(x) for x in args.slices.split(",")]
    hog_counts = [int(x) for x in args.hogs.split(",")]
    info = machine_info()
    print(f"A GUI-like thread's wait for a core (10 ms period, 1 ms of work), slices "
          f"{', '.join(f'{s:g}' for s in slices)} ms alternating, {rounds} rounds of "
          f"{sizes['seconds']:g} s")
    print(machine_line(info))
    runs: dict[str, list[dict[str, Any]]] = {}
    for hogs in hog_counts:
        for r in range(rounds):
            for s in slices[r % len(slices):] + slices[:r % len(slices)]:
                runs.setdefault(f"{hogs} {s:g}", []).append(one(s, hogs, sizes["seconds"]))
    rows, out = [], {}
    for key, rs in runs.items():
        hog_text, slice_text = key.split()
        summ = {k: summary([x[k] for x in rs])
                for k in ("runq_p99_ms", "runq_max_ms", "late_p99_ms", "late_max_ms")}
        out[key] = {"runs": rs, "summary": summ}
        rows.append([hog_text, slice_text, fmt(summ["runq_p99_ms"]["median"]),
                     " ".join(fmt(x["runq_p99_ms"]) for x in rs),
                     fmt(summ["runq_max_ms"]["median"]), fmt(summ["late_p99_ms"]["median"])])
    print()
    print(table(["hogs", "slice ms", "run-queue p99 ms (median)", "per round",
                 "run-queue max ms (median)", "late p99 ms (median)"], rows))
    payload = {"name": NAME, "quick": args.quick, "machine": info, "sizes": sizes,
               "rounds": rounds, "results": out, "method": __doc__}
    return finish(NAME, payload, args.no_save)


if __name__ == "__main__":
    sys.exit(main())
