"""Where the time goes in the core under full load: py-spy on the server and on one worker.

    python -m benchmarks.profile_core [--duration 8] [--journal] [--quick]

The set-up is figure 1's guidist variant (a ServerProcess, WorkerPool.launch(2)), with a feeder
thread that keeps at least 300,000 tasks queued so the load stays steady. Two windows of the same
length run back to back: one without the profiler (the reference tasks/s), then one with py-spy
attached to the server and to one worker (``--nonblocking``, so the processes are not paused), to
show how much the profiler itself costs.

* server: ``--gil``: only samples of the thread holding the GIL. One server process tops out near
  one core, so the GIL holder's stack is where the server's capacity goes.
* worker: ``--idle`` on its main thread: its whole wall time, including waiting for replies, so the
  split between waiting on the server, pickling and running tasks is visible.

The raw collapsed stacks go to benchmarks/results/profiles/ (not committed); the summary tables
to results/profile_core.json. py-spy must be installed (``pip install py-spy``) and allowed to
ptrace the processes (root, or CAP_SYS_PTRACE, or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from guidist.core.client import Client

from .common import (
    AUTHKEY,
    RESULTS,
    finish,
    guidist_stack,
    journal_available,
    machine_info,
    machine_line,
    parser,
    table,
)

NAME = "profile_core"
KEEP_QUEUED = 300_000
FEED_CHUNK = 100_000
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*?)(?::(?P<line>\d+))?\)$")


class Feeder(threading.Thread):
    """Keeps the queue at least KEEP_QUEUED deep, from its own connection."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(name="feeder", daemon=True)
        self.client = Client(address, AUTHKEY)
        self.stop = threading.Event()
        self.next = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.client.snapshot().count("queued") < KEEP_QUEUED:
                    self.client.submit_many("square", range(self.next, self.next + FEED_CHUNK))
                    self.next += FEED_CHUNK
                else:
                    self.stop.wait(0.02)
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self.client.close()


def done_count(client: Client) -> int:
    """Tasks finished so far."""
    snap = client.snapshot()
    return snap.count("done") + snap.count("failed")


def window(client: Client, seconds: float, pids: dict[str, int],
           gc_path: Path | None = None) -> tuple[float, dict[str, float], dict[str, Any] | None]:
    """Tasks/s finished over the next `seconds`, each process's CPU use (% of one core), and
    the server's garbage collections during the window (from the _hooks stats file)."""
    procs = {name: psutil.Process(pid) for name, pid in pids.items()}
    cpu0 = {name: sum(p.cpu_times()[:2]) for name, p in procs.items()}
    gc0 = _read_gc(gc_path)
    d0, t0 = done_count(client), time.perf_counter()
    time.sleep(seconds)
    d1, t1 = done_count(client), time.perf_counter()
    time.sleep(0.25)  # the server rewrites its GC stats every 0.2 s
    gc1 = _read_gc(gc_path)
    cpu = {name: 100.0 * (sum(p.cpu_times()[:2]) - cpu0[name]) / (t1 - t0)
           for name, p in procs.items()}
    gcw = None
    if gc0 and gc1:
        wall = gc1["wall_s"] - gc0["wall_s"]
        n = [b - a for a, b in zip(gc0["collections"], gc1["collections"])]
        sec = [b - a for a, b in zip(gc0["seconds"], gc1["seconds"])]
        gcw = {"collections_per_s": [x / wall for x in n],
               "ms_per_collection": [1e3 * s / c if c else 0.0 for s, c in zip(sec, n)],
               "percent_of_wall": [100 * s / wall for s in sec],
               "percent_of_wall_total": 100 * sum(sec) / wall,
               "max_ms": gc1["max_ms"], "threshold": gc1["threshold"]}
    return (d1 - d0) / (t1 - t0), cpu, gcw


def _read_gc(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def pyspy(pid: int, out: Path, seconds: float, rate: int, extra: list[str]) -> subprocess.Popen:
    """Start py-spy record on pid (raw collapsed stacks, one line per stack with its count)."""
    cmd = ["py-spy", "record", "--pid", str(pid), "--duration", str(int(round(seconds))),
           "--rate", str(rate), "--format", "raw", "--threads", "-o", str(out), *extra]
    if "--native" not in extra:  # py-spy can only read C stacks of a paused process
        cmd.append("--nonblocking")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def parse_raw(path: Path, thread_filter: str | None = None) -> list[tuple[list[str], int]]:
    """(frames root-first, count) per line; with thread_filter, only stacks containing it."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if frames and frames[0].startswith("thread ("):
            frames = frames[1:]
        if not frames:  # a thread py-spy caught with no Python frame
            continue
        if thread_filter and not any(thread_filter in f for f in frames):
            continue
        stacks.append((frames, int(count)))
    return stacks


def split_frame(frame: str) -> tuple[str, str, str]:
    """(function, file, line) of a py-spy frame, e.g. 'Broker.claim (guidist/core/broker.py:94)'."""
    m = _FRAME.match(frame)
    if not m:
        return frame, "", ""
    return m["func"], m["file"], m["line"] or ""


def category(frame: str) -> str:
    """Which kind of work a leaf frame is."""
    func, file, _ = split_frame(frame)
    base = file.rsplit("/", 1)[-1]
    if func == "_ConnectionBase.recv":
        return "unpickling (recv -> loads)"
    if func == "ForkingPickler.dumps":
        return "pickling (send -> dumps)"
    if base == "connection.py":
        return "socket send/recv"
    if base == "broker.py":
        return "broker bookkeeping"
    if base == "store.py":
        return "journal (store.py, sqlite)"
    if base == "managers.py":
        return "manager dispatch (managers.py)"
    if base == "threading.py":
        return "locks and conditions"
    if base in ("worker.py", "taskloop.py"):
        return "worker loop"
    if base == "tasks.py":
        return "task function"
    if base == "client.py":
        return "client wrapper"
    return f"other ({base or func})"


def analyse(stacks: list[tuple[list[str], int]], top: int = 15) -> dict[str, Any]:
    """Self time by category, by function and by line; inclusive time by function."""
    total = sum(n for _, n in stacks) or 1
    cat: collections.Counter = collections.Counter()
    self_fn: collections.Counter = collections.Counter()
    self_line: collections.Counter = collections.Counter()
    incl_fn: collections.Counter = collections.Counter()
    for frames, n in stacks:
        leaf = frames[-1]
        func, file, line = split_frame(leaf)
        cat[category(leaf)] += n
        self_fn[f"{func} ({file})"] += n
        self_line[leaf] += n
        for fr in {f"{split_frame(f)[0]} ({split_frame(f)[1]})" for f in frames}:
            incl_fn[fr] += n

    def pct(c: collections.Counter, k: int) -> list[tuple[str, float]]:
        return [(name, 100.0 * v / total) for name, v in c.most_common(k)]

    return {"samples": total, "categories": pct(cat, 20), "self_functions": pct(self_fn, top),
            "self_lines": pct(self_line, top),
            "inclusive_functions": [(k, v) for k, v in pct(incl_fn, 60)
                                    if "guidist/" in k or "managers.py" in k
                                    or "connection.py" in k][:top]}


def print_analysis(title: str, a: dict[str, Any]) -> None:
    """The tables for one process."""
    print(f"\n{title} — {a['samples']} samples")
    for key, head in (("categories", "self time by kind"),
                      ("self_functions", "self time by function"),
                      ("self_lines", "self time by line"),
                      ("inclusive_functions", "inclusive time (guidist and transport frames)")):
        print()
        print(table([head, "%"], [[k, f"{v:5.1f}"] for k, v in a[key]]))


def main(argv: list[str] | None = None) -> int:
    """Profile the server and a worker under figure 1's load."""
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=None, help="seconds per window (default 8)")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--journal", action="store_true", help="with the SQLite journal on")
    p.add_argument("--server-gc", default=None,
                   help="a GC tweak inside the server (benchmarks/_hooks.py), e.g. threshold:50000")
    p.add_argument("--native", action="store_true",
                   help="include C frames in the server profile (shows GC, pickling, dict work)")
    args = p.parse_args(argv)
    duration = args.duration or (2.0 if args.quick else 8.0)
    if shutil.which("py-spy") is None:
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    if args.journal and not journal_available()[0]:
        print(f"--journal: {journal_available()[1]}", file=sys.stderr)
        return 2
    info = machine_info()
    print(f"Profile — guidist server and one worker under full load (2 workers, journal "
          f"{'on' if args.journal else 'off'}, {duration:g} s windows)")
    print(machine_line(info))
    outdir = RESULTS / "profiles"
    outdir.mkdir(parents=True, exist_ok=True)
    tag = "journal" if args.journal else "nojournal"
    server_raw, worker_raw = outdir / f"server-{tag}.txt", outdir / f"worker-{tag}.txt"

    gc_path = outdir / f"server-gc-{tag}.json"
    with guidist_stack(2, journal=args.journal, server_gc=args.server_gc,
                       gc_stats_path=str(gc_path)) as (server, pool, client):
        feeder = Feeder(client.address)
        feeder.start()
        try:
            time.sleep(1.0)  # queue filled, workers at their full batch size
            wpids = sorted(pool.pids)
            wpid = wpids[0]
            pids = {"server": server.pid, "worker 1": wpids[0], "worker 2": wpids[1],
                    "feeder+client (this process)": os.getpid()}
            plain, cpu, gcw = window(client, duration, pids, gc_path)
            print(f"  without profiler: {plain:,.0f} tasks/s; CPU, % of one core: "
                  + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()))
            if gcw:
                print("  server GC in that window: "
                      + ", ".join(f"gen{g} {gcw['collections_per_s'][g]:.0f}/s x "
                                  f"{gcw['ms_per_collection'][g]:.2f} ms = "
                                  f"{gcw['percent_of_wall'][g]:.1f}%" for g in range(3))
                      + f"; total {gcw['percent_of_wall_total']:.1f}% of wall time"
                      + f" (threshold {tuple(gcw['threshold'])})")
            spies = [pyspy(server.pid, server_raw, duration, args.rate,
                           ["--gil", *(["--native"] if args.native else [])]),
                     pyspy(wpid, worker_raw, duration, args.rate, ["--idle"])]
            time.sleep(0.3)  # py-spy attached
            profiled, _, _ = window(client, duration - 0.6, {})
            print(f"  with py-spy attached: {profiled:,.0f} tasks/s")
            outputs = [s.communicate(timeout=duration + 60)[0] for s in spies]
        finally:
            feeder.stop.set()
            feeder.join(30)
        if feeder.error is not None:
            raise feeder.error
    for s, out in zip(spies, outputs):
        if s.returncode != 0:
            print(f"py-spy failed (exit {s.returncode}):\n{out}", file=sys.stderr)
            return 1

    server_a = analyse(parse_raw(server_raw))
    worker_a = analyse(parse_raw(worker_raw, thread_filter="Worker._loop"))
    print_analysis("SERVER (GIL holder)", server_a)
    print_analysis("WORKER main thread (wall time, idle included)", worker_a)
    payload = {"name": NAME, "quick": args.quick, "machine": info, "journal": args.journal,
               "duration_s": duration, "rate_hz": args.rate,
               "tasks_per_s": {"without_profiler": plain, "with_profiler": profiled},
               "cpu_percent_of_one_core": cpu, "server_gc": gcw,
               "server_gc_tweak": args.server_gc,
               "server": server_a, "worker": worker_a,
               "raw": {"server": str(server_raw.relative_to(RESULTS.parent.parent)),
                       "worker": str(worker_raw.relative_to(RESULTS.parent.parent))}}
    name = NAME + ("_journal" if args.journal else "")
    if args.server_gc and args.server_gc != "default":
        name += "_gc-" + re.sub(r"[^A-Za-z0-9]+", "-", args.server_gc).strip("-")
    return finish(name, payload, args.no_save)


if __name__ == "__main__":
    sys.exit(main())
