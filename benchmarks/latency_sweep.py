"""Figure 7: throughput as the network's round-trip time grows, 2 workers, trivial tasks.

    python -m benchmarks.latency_sweep [--quick] [--rounds N] [--no-save] [--png PATH]
                                       [--replot RESULTS.json]

What it measures: tasks/s of 'square' end to end for (a) the classic tutorial design and (b)
guidist, with 2 workers whose every connection to the server goes through a delaying TCP proxy
that adds 0, 1, 5 or 20 ms of round-trip time (RTT); the submitting side talks to the server
directly, as a master runs next to its server. A "direct" point (no proxy) shows what the proxy
itself costs.

The proxy (``delay_proxy_main``) is a small asyncio program in its own process, since the
kernel's netem is not available here: for each connection it holds every chunk going from the
worker to the server for the added RTT, then forwards it in order, and passes replies straight
back. The whole RTT is added on one side because asyncio's timers have a 1 ms resolution, so
half a millisecond each way would round up to one. TCP_NODELAY is set on the proxy's sockets,
so it adds its delay and nothing else. The RTT a worker really sees is measured at every
setting as a no-op guidist call through the proxy (median of 30), and reported.

Why it matters: the classic worker pays two round trips per task (``get``, then ``put``;
with the master's own two calls, four per task, but those stay local), so at RTT r each worker
does at most 1/(2r) tasks/s: 25/s at 20 ms. guidist's worker reports its results and claims the
next batch (up to ``--prefetch``, 10,000 by default) in one round trip, so a round trip is paid
per batch, not per task. A third series, guidist with ``--prefetch 100000``, shows what a
larger batch still buys back on a slow link.

How: every variant starts fresh processes (server, proxy, workers; untimed) and is timed like
figure 1 — classic from the first ``put`` until the master has read the last result; guidist
from just before ``submit_many`` until the server's own ``finished`` stamp of the last result.
Runs are sized for about RUN_S seconds from a model of the expected rate and capped at
DEADLINE_S: a run that hits the cap reports the tasks it finished in that time. Variants are
interleaved in rounds with a rotating order (common.interleaved); the figure is the median with
min–max bars. The machine is shared with other jobs, so only side-by-side ratios are compared.

Outputs: a table, ``benchmarks/results/latency_sweep.json`` and ``docs/latency_sweep.png``
(matplotlib, from the ``bench`` extra; without it the figure is skipped, not the numbers).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import queue
import socket
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from guidist.core.claims import DEFAULT_PREFETCH

from . import _classic
from .common import (
    AUTHKEY,
    ROOT,
    finish,
    fmt,
    fmt_summary,
    interleaved,
    machine_info,
    machine_line,
    parser,
    ratios,
    summary,
    table,
    wait_until,
)

FIGURE = "7"
NAME = "latency_sweep"
WORKERS = 2
RTTS_MS = (0, 1, 5, 20)
FIGURE_PNG = ROOT / "docs" / "latency_sweep.png"

RUN_S = 2.0  # each run is sized to last about this long
DEADLINE_S = 20.0  # and never lasts longer than this
QUICK_RUN_S, QUICK_DEADLINE_S = 0.5, 5.0
# Rough costs on this machine, only used to size the runs (never in a figure).
CLASSIC_CALL_S = 0.00025  # one tutorial proxy call on loopback, plus the proxy hop
GUIDIST_TPS = 250_000.0  # guidist on loopback with 2 workers
BATCH = DEFAULT_PREFETCH  # guidist's default --prefetch: the most tasks one round trip carries
BIG_PREFETCH = 100_000  # the third series: what a larger batch buys on a slow link


# ---------------------------------------------------------------------------- the proxy

async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   delay: float) -> None:
    """Copy reader to writer, each chunk delay seconds after it arrived, in order."""
    loop = asyncio.get_running_loop()
    line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await line.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(1 << 16)
            line.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
    finally:
        writer.close()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _serve_proxy(target: tuple[str, int], delay: float, ready: Any) -> None:
    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            s_reader, s_writer = await asyncio.open_connection(*target)
        except OSError:
            c_writer.close()
            return
        _nodelay(c_writer)
        _nodelay(s_writer)
        await asyncio.gather(_forward(c_reader, s_writer, delay),
                             _forward(s_reader, c_writer, 0.0))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    ready.send(server.sockets[0].getsockname()[:2])
    ready.close()
    async with server:
        await server.serve_forever()


def delay_proxy_main(target: tuple[str, int], delay: float, ready: Any) -> None:
    """Entry point of the proxy process: listen on 127.0.0.1:0, send the address to ready."""
    asyncio.run(_serve_proxy(target, delay, ready))


@contextmanager
def delay_proxy(target: tuple[str, int], rtt_ms: float) -> Iterator[tuple[str, int]]:
    """A proxy process in front of target adding rtt_ms; yields its address; stopped by pid."""
    ctx = multiprocessing.get_context("spawn")
    ready_r, ready_w = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=delay_proxy_main, args=(target, rtt_ms / 1000.0, ready_w),
                       name="delay-proxy", daemon=True)
    proc.start()
    ready_w.close()
    try:
        if not ready_r.poll(30):
            raise TimeoutError("the delay proxy did not start within 30 s")
        address = tuple(ready_r.recv())
        yield address  # type: ignore[misc]
    finally:
        ready_r.close()
        proc.kill()
        proc.join(5)


@contextmanager
def maybe_proxy(target: tuple[str, int], rtt_ms: float | None) -> Iterator[tuple[str, int]]:
    """The proxy for rtt_ms, or target itself when rtt_ms is None (the direct reference)."""
    if rtt_ms is None:
        yield target
    else:
        with delay_proxy(target, rtt_ms) as address:
            yield address


def measured_rtt_ms(address: tuple[str, int]) -> float:
    """Median time of a no-op guidist call (get_task(0)) to address, in ms."""
    from guidist.core.client import Client

    with Client(address, AUTHKEY) as c:
        c.get_task(0)
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            c.get_task(0)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


# ---------------------------------------------------------------------------- the variants

def classic_tasks(rtt_ms: float, run_s: float) -> int:
    """Enough tasks for about run_s at the expected classic rate (2 calls per task per worker)."""
    per_task = 2 * (rtt_ms / 1000.0 + CLASSIC_CALL_S)
    return int(min(20_000, max(60, WORKERS / per_task * run_s)))


def guidist_tasks(rtt_ms: float, run_s: float, batch: int = BATCH) -> int:
    """Enough tasks for about run_s: the loopback rate, or one batch per round trip."""
    rate = GUIDIST_TPS if rtt_ms <= 0 else min(GUIDIST_TPS, WORKERS * batch / (rtt_ms / 1e3))
    return int(min(1_000_000, max(5_000, rate * run_s)))


def run_classic(rtt_ms: float | None, run_s: float, deadline_s: float) -> dict[str, Any]:
    """(a) the tutorial's master and 2 stdlib workers, the workers behind the proxy."""
    n = classic_tasks(rtt_ms or 0.0, run_s)
    key = AUTHKEY.encode()
    ctx = multiprocessing.get_context("spawn")
    manager = _classic.MasterManager(address=("127.0.0.1", 0), authkey=key, ctx=ctx)
    manager.start()
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        with maybe_proxy(manager.address, rtt_ms) as address:
            events = [ctx.Event() for _ in range(WORKERS)]
            for ev in events:
                p = ctx.Process(target=_classic.worker_main, args=(address, key, ev),
                                daemon=True)
                p.start()
                procs.append(p)
            for ev in events:
                if not ev.wait(60):
                    raise TimeoutError("a classic worker did not connect within 60 s")
            task, result = manager.get_task_queue(), manager.get_result_queue()
            t0 = time.perf_counter()
            for i in range(n):
                task.put(i)
            got = 0
            end = t0 + deadline_s
            while got < n:
                try:
                    result.get(timeout=max(0.01, end - time.perf_counter()))
                except queue.Empty:  # the deadline passed
                    break
                got += 1
            elapsed = time.perf_counter() - t0
            for _ in procs:
                task.put(None)
            for p in procs:
                p.join(5)
            return {"tasks": got, "asked": n, "seconds": elapsed, "tasks_per_s": got / elapsed,
                    "hit_deadline": got < n}
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
        manager.shutdown()


def run_guidist(rtt_ms: float | None, run_s: float, deadline_s: float,
                prefetch: int | None = None) -> dict[str, Any]:
    """(b) a guidist server and 2 ``guidist worker`` processes behind the proxy."""
    from guidist.core.client import Client
    from guidist.core.pool import WorkerPool
    from guidist.core.server import ServerProcess

    n = guidist_tasks(rtt_ms or 0.0, run_s, prefetch or BATCH)
    server = ServerProcess("127.0.0.1", 0, AUTHKEY)
    address = server.start()
    pool = None
    client = Client(address, AUTHKEY).connect()
    try:
        with maybe_proxy(address, rtt_ms) as via:
            rtt = measured_rtt_ms(via)
            pool = WorkerPool(via, AUTHKEY, give_up_after=10.0, prefetch=prefetch)
            pool.launch(WORKERS)
            wait_until(lambda: client.snapshot().connected_workers >= WORKERS, 60,
                       f"{WORKERS} workers to register")
            t0 = time.time()
            client.submit_many("square", range(n))

            def finished() -> int:
                snap = client.snapshot()
                return snap.count("done") + snap.count("failed") + snap.count("dead")

            deadline = time.monotonic() + deadline_s
            while finished() < n and time.monotonic() < deadline:
                time.sleep(0.02)
            got = finished()
            # The got-th result stored has sequence number got on a fresh server: its
            # server-side stamp ends the run, free of the poll interval.
            _cursor, last = client.results_since(got - 1, 1) if got else (0, [])
            end = last[0].finished if last and last[0].finished else time.time()
            elapsed = end - t0
            return {"tasks": got, "asked": n, "seconds": elapsed, "tasks_per_s": got / elapsed,
                    "hit_deadline": got < n, "rtt_ms": rtt}
    finally:
        client.close()
        if pool is not None:
            pool.stop_all(timeout=10)
        server.stop()


# ---------------------------------------------------------------------------- the figure

#: The three series: name -> (colour, marker, legend).
SERIES = {
    "classic": ("#c0392b", "o", "classic tutorial: 2 round trips per task per worker"),
    "guidist": ("#2471a3", "s", f"guidist: 1 round trip per batch (default --prefetch {BATCH:,})"),
    f"guidist --prefetch {BIG_PREFETCH}": ("#1e8449", "^", f"guidist with --prefetch "
                                                            f"{BIG_PREFETCH:,}"),
}


def draw(points: dict[str, dict[str, Any]], path: Path, info: dict[str, Any]) -> bool:
    """Tasks/s at each added RTT, every series, log scale; False when matplotlib is missing.

    The x axis is categorical (evenly spaced settings), so 0 and 1 ms do not overlap."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8.5, 5.2), dpi=110)
    xs = list(range(1, len(RTTS_MS) + 1))
    offsets = {"classic": (8, -4), "guidist": (8, -13), f"guidist --prefetch {BIG_PREFETCH}":
               (8, 5)}
    for series, (color, marker, label) in SERIES.items():
        med, lo, hi = [], [], []
        for rtt in RTTS_MS:
            s = points[f"{series} | {rtt} ms"]["tasks_per_s"]
            med.append(s["median"])
            lo.append(s["median"] - s["min"])
            hi.append(s["max"] - s["median"])
        ax.errorbar(xs, med, yerr=[lo, hi], color=color, marker=marker, capsize=3, label=label)
        direct = points[f"{series} | direct"]["tasks_per_s"]
        ax.errorbar([0], [direct["median"]],
                    yerr=[[direct["median"] - direct["min"]], [direct["max"] - direct["median"]]],
                    marker=marker, markerfacecolor="none", color=color, linestyle="none",
                    capsize=3, markersize=8)
        for x, y in zip([0, *xs], [direct["median"], *med]):
            ax.annotate(f"{y:,.0f}", (x, y), textcoords="offset points",
                        xytext=offsets[series], fontsize=7.5, color=color)
    ax.set_yscale("log")
    ax.set_xticks([0, *xs], ["no proxy", *(f"+{r} ms" for r in RTTS_MS)])
    ax.set_xlim(-0.5, len(RTTS_MS) + 0.8)
    ax.axvline(0.5, color="#999999", linewidth=0.8, linestyle=":")
    ax.set_xlabel("round-trip time the proxy adds between the workers and the server")
    ax.set_ylabel("tasks/s, trivial tasks, 2 workers (log scale)")
    ax.set_title("Throughput as network latency grows", fontsize=12)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    commit = (info.get("git_commit") or "?")[:10]
    fig.text(0.01, 0.01, f"median and min–max over {points['rounds']} interleaved rounds; "
             f"{info.get('cores_usable') or info.get('cores_logical')} cores shared with other "
             f"jobs; Python {info.get('python')}; guidist {commit}", fontsize=6.5,
             color="#555555")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    """Run the sweep, print the table, save the JSON and draw the figure."""
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--png", default=str(FIGURE_PNG), help="where to draw the figure")
    p.add_argument("--replot", metavar="JSON", help="only draw the figure from a saved run")
    args = p.parse_args(argv)
    if args.replot:
        saved = json.loads(Path(args.replot).read_text())
        ok = draw({**saved["points"], "rounds": saved["rounds"]}, Path(args.png),
                  saved["machine"])
        print(f"drew {args.png}" if ok else "matplotlib is missing (pip install matplotlib)")
        return 0 if ok else 1
    run_s, deadline_s = (QUICK_RUN_S, QUICK_DEADLINE_S) if args.quick else (RUN_S, DEADLINE_S)
    rounds = args.rounds or (1 if args.quick else 3)
    info = machine_info()
    settings: list[tuple[str, float | None]] = [("direct", None)] + [
        (f"{r} ms", float(r)) for r in RTTS_MS]
    runners = {
        "classic": lambda rtt: run_classic(rtt, run_s, deadline_s),
        "guidist": lambda rtt: run_guidist(rtt, run_s, deadline_s),
        f"guidist --prefetch {BIG_PREFETCH}":
            lambda rtt: run_guidist(rtt, run_s, deadline_s, prefetch=BIG_PREFETCH),
    }
    variants = [(f"{series} | {label}", lambda run=run, rtt=rtt: run(rtt))
                for label, rtt in settings for series, run in runners.items()]
    print(f"Figure 7 — throughput against added round-trip time, {WORKERS} workers "
          f"({rounds} interleaved round{'s' * (rounds != 1)}{', quick' if args.quick else ''})")
    print(machine_line(info))
    res = interleaved(variants, rounds)

    points: dict[str, Any] = {}
    rows = []
    big = f"guidist --prefetch {BIG_PREFETCH}"
    for label, _rtt in settings:
        for series in runners:
            runs = res[f"{series} | {label}"]
            entry: dict[str, Any] = {"tasks_per_s": summary([r["tasks_per_s"] for r in runs]),
                                     "runs": runs}
            if series != "classic":
                entry["measured_rtt_ms"] = summary([r["rtt_ms"] for r in runs])
            points[f"{series} | {label}"] = entry
        c_runs = res[f"classic | {label}"]
        ratio = ratios(res[f"guidist | {label}"], c_runs, "tasks_per_s")
        ratio_big = ratios(res[f"{big} | {label}"], c_runs, "tasks_per_s")
        points[f"guidist/classic | {label}"] = ratio
        points[f"{big}/classic | {label}"] = ratio_big
        rtt_seen = points[f"guidist | {label}"]["measured_rtt_ms"]["median"]
        rows.append([label, fmt(rtt_seen, 2),
                     *(fmt_summary(points[f"{s} | {label}"]["tasks_per_s"])[0] for s in runners),
                     fmt(ratio["median"]), fmt(ratio_big["median"])])
    print()
    print(table(["added RTT", "no-op call ms", "classic /s", "guidist /s",
                 f"prefetch {BIG_PREFETCH} /s", "guidist/classic", "prefetch/classic"], rows))
    hit = [f"{name} (round {r['round'] + 1})" for name, runs in res.items() for r in runs
           if r.get("hit_deadline")]
    if hit:
        print(f"runs cut at the {deadline_s:.0f} s deadline (their finished tasks counted): "
              + ", ".join(hit))
    for series in runners:
        base = points[f"{series} | 0 ms"]["tasks_per_s"]["median"]
        far = points[f"{series} | 20 ms"]["tasks_per_s"]["median"]
        if base and far:
            print(f"{series}: at 20 ms it keeps {100 * far / base:.1f}% of its 0 ms rate")

    payload = {
        "figure": FIGURE, "name": NAME, "quick": args.quick, "rounds": rounds,
        "machine": info, "workers": WORKERS, "rtts_ms": list(RTTS_MS),
        "method": {
            "proxy": "asyncio process; delays worker->server chunks by the whole added RTT, "
                     "replies pass straight back; TCP_NODELAY on its sockets",
            "classic": "perf_counter from the first put until the master read the last result "
                       "(the master talks to its manager directly; the workers via the proxy)",
            "guidist": "time.time() before submit_many until the server's finished stamp of "
                       "the last result (client direct, workers via the proxy)",
            "rtt": "median of 30 no-op get_task(0) calls through the proxy",
            "sizing": f"runs sized for about {run_s} s, cut at {deadline_s} s",
        },
        "points": points,
    }
    code = finish(NAME, payload, args.no_save)
    if args.quick and args.png == str(FIGURE_PNG):
        return code  # a smoke run never overwrites the committed figure
    if draw({**points, "rounds": rounds}, Path(args.png), info):
        print(f"drew {args.png}")
    else:
        print("figure not drawn: matplotlib is missing (pip install matplotlib)")
    return code


if __name__ == "__main__":
    sys.exit(main())
