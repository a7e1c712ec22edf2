"""Figure 3: the cost of watching — throughput with the window polling, against no window.

    python -m benchmarks.window_cost [--quick] [--rounds N] [--tasks N]

Each run is figure 1's guidist run (journal off): a fresh server on 127.0.0.1, 2 local workers,
N square tasks submitted with ``Client.submit_many``, timed from just before the submit until
the server's own ``finished`` stamp of the last result. Two variants, interleaved A B / B A:

* unwatched  nothing else;
* watched    the real window (offscreen, ``build_window``) runs in a separate process, attached
             to the same server, polling at its normal rate (``POLL_INTERVAL_MS``, one snapshot
             per poll) and updating its plots, tables and status bar. It is started and has
             answered its first poll before the clock starts; it reports how many snapshots it
             handled.

The window runs in its own process as a person's window would (the tasks come from a script):
what it costs the queue is the server's work for its snapshots plus the CPU its process takes
from the 2 cores. Reported: tasks/s of each, and watched/unwatched per round (median, min–max).
Target: ratio >= 0.97.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from typing import Any

from .common import (
    AUTHKEY,
    finish,
    fmt,
    fmt_summary,
    guidist_stack,
    interleaved,
    machine_info,
    machine_line,
    parser,
    ratios,
    summary,
    table,
    verdict,
    wait_until,
)

FIGURE = "3"
REQUIRES = ("PySide6", "pyqtgraph")
NAME = "window_cost"
WORKERS = 2
FULL = {"tasks": 1_000_000, "rounds": 6}  # ~2-3 s a run: 10+ polls in each
QUICK = {"tasks": 30_000, "rounds": 1}
TARGET = 0.97
SETTLE_S = 0.5


# ---------------------------------------------------------------------- the watcher process

def watch() -> int:
    """Child mode: a window attached to BENCH_HOST:BENCH_PORT until stdin closes."""
    from PySide6.QtCore import QTimer

    from . import _window as W

    app = W.application()
    address = (os.environ["BENCH_HOST"], int(os.environ["BENCH_PORT"]))
    stop = threading.Event()

    def read_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the parent closed our stdin
        stop.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    snapshots = 0
    with W.open_window() as window:
        def count(_snap: object) -> None:
            nonlocal snapshots
            snapshots += 1

        window.controller.snapshot.connect(count)
        W.attach(window, address, os.environ["BENCH_KEY"])
        print("ready", flush=True)
        t0 = time.monotonic()
        cpu0 = time.process_time()
        timer = QTimer()
        timer.timeout.connect(lambda: app.quit() if stop.is_set() else None)
        timer.start(100)
        app.exec()
        timer.stop()
        seconds = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        poll_ms = window.controller.poll_ms
    print(json.dumps({"snapshots": snapshots, "seconds": seconds, "poll_ms": poll_ms,
                      "cpu_seconds": cpu}),
          flush=True)
    return 0


class Watcher:
    """The watching window in a child process (stopped by closing its stdin, then by pid)."""

    def __init__(self, address: tuple[str, int], key: str) -> None:
        env = dict(os.environ, BENCH_HOST=address[0], BENCH_PORT=str(address[1]), BENCH_KEY=key,
                   QT_QPA_PLATFORM="offscreen")
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.window_cost", "--watch"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     text=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if line.strip() == "ready":
                    return
                if not line:
                    raise RuntimeError(f"the watcher exited with {self.proc.wait()}")
        raise TimeoutError("the watching window did not answer its first poll")

    def stop(self) -> dict[str, Any]:
        try:
            out, _ = self.proc.communicate(timeout=60)  # closes its stdin: the stop signal
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return {}
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        return {}


# ---------------------------------------------------------------------- one run

def run(n: int, watched: bool) -> dict[str, Any]:
    """Figure 1's guidist run, with or without a watching window."""
    with guidist_stack(WORKERS) as (_server, _pool, client):
        watcher = None
        try:
            if watched:
                watcher = Watcher(client.address, AUTHKEY)
                watcher.wait_ready()
            time.sleep(SETTLE_S)  # same in both variants: the watcher's start-up is not timed

            def finished() -> int:
                snap = client.snapshot()
                return snap.count("done") + snap.count("failed") + snap.count("dead")

            t0 = time.time()
            client.submit_many("square", range(n))
            wait_until(lambda: finished() >= n, 60 + n / 5_000, f"{n} results", interval=0.02)
            t_seen = time.time()
            _cursor, last = client.results_since(n - 1, 1)
            end = last[0].finished if last and last[0].finished else t_seen
        finally:
            info = watcher.stop() if watcher is not None else {}
    elapsed = end - t0
    out = {"tasks": n, "seconds": elapsed, "tasks_per_s": n / elapsed}
    if watched:
        out["window_snapshots"] = info.get("snapshots")
        out["window_poll_ms"] = info.get("poll_ms")
        out["window_seconds"] = info.get("seconds")
        # The window's CPU over its whole watch (settle + run + stop), as a share of the cores.
        if info.get("cpu_seconds") is not None and info.get("seconds"):
            out["window_cpu_s"] = info["cpu_seconds"]
            out["window_cpu_share_of_2_cores"] = info["cpu_seconds"] / info["seconds"] / 2
    return out


def main(argv: list[str] | None = None) -> int:
    """Run figure 3 and print its table."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--watch"]:
        return watch()
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=None)
    args = p.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.tasks:
        sizes["tasks"] = args.tasks
    rounds = args.rounds or sizes["rounds"]
    info = machine_info()
    n = sizes["tasks"]
    print(f"Figure 3 — cost of watching: {n:,} square tasks, {WORKERS} workers, with and "
          f"without the window polling ({rounds} interleaved round{'s' * (rounds != 1)}"
          f"{', quick' if args.quick else ''})")
    print(machine_line(info))
    res = interleaved([("unwatched", lambda: run(n, False)),
                       ("watched (window polling)", lambda: run(n, True))], rounds)
    rows, per = [], {}
    for name, rs in res.items():
        tps = summary([r["tasks_per_s"] for r in rs])
        per[name] = {"tasks_per_s": tps, "runs": rs}
        rows.append([name, fmt(n), *fmt_summary(tps)])
    print()
    print(table(["variant", "tasks", "tasks/s median", "min – max"], rows))
    ratio = ratios(res["watched (window polling)"], res["unwatched"], "tasks_per_s")
    polls = [r.get("window_snapshots") for r in res["watched (window polling)"]]
    print()
    print(table(["ratio", "median", "min – max", "target"],
                [["watched / unwatched", *fmt_summary(ratio),
                  f">= {TARGET:g}: {verdict(ratio['median'], TARGET)}"]]))
    shares = [r.get("window_cpu_share_of_2_cores") for r in res["watched (window polling)"]]
    print(f"\nsnapshots the window handled per watched run: {polls}")
    print("window process CPU, share of the 2 cores while watching: "
          + ", ".join(f"{100 * x:.1f} %" for x in shares if x is not None))
    payload = {"name": NAME, "figure": FIGURE, "quick": args.quick, "machine": info,
               "sizes": sizes, "rounds": rounds, "variants": per, "ratio": ratio,
               "target": {"ratio": TARGET, "met": verdict(ratio["median"], TARGET)},
               "method": __doc__}
    return finish(NAME, payload, args.no_save)


if __name__ == "__main__":
    sys.exit(main())
