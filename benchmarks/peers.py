"""Peers: guidist beside rq, huey, dramatiq, celery and dask distributed, on the same workload.

    python -m benchmarks.peers [--quick] [--rounds N] [--only NAME,...] [--budget MINUTES]

The workload is the tutorial's: N tasks that each square an int, 2 worker processes, on one
machine. Every variant runs once per round, in interleaved rounds (the order rotates), each run
on fresh processes and, where it uses Redis, on a fresh redis-server (no persistence, loopback,
port 0). Start-up is never timed: the workers are running, and for the peers a warm-up of 20
tasks has gone through, before the clock starts. Each run is timed from just before the first
submit until the system has stored the last result, detected as said in COMPLETION below; the
peers submit one task per call, as their documentation shows, except celery's ``chunks(1000)``.
Ratios are per round against guidist with its journal off and against guidist on Redis.

Each run is bounded: a completion deadline per run (recorded as an error, never a hang) and a
budget for the whole benchmark after which the remaining runs are skipped. Install the peers
with ``pip install -e ".[bench]"``; needs /usr/bin/redis-server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from guidist.core.tasks import square

from . import _bare, _classic, throughput
from . import redis_backend as guidist_redis
from ._peer_env import ENV, RESULTS_DB
from .common import (
    AUTHKEY,
    ROOT,
    finish,
    fmt,
    fmt_summary,
    interleaved,
    journal_available,
    machine_info,
    machine_line,
    parser,
    ratios,
    summary,
    table,
    verdict,
    wait_until,
)

FIGURE = "peers"
NAME = "peers"
REQUIRES = ("redis", "rq", "huey", "dramatiq", "celery", "distributed")
WORKERS = 2
WARM = 20
#: Peers are polled this often for completion (a cheap O(1) count); guidist needs no poll.
POLL_S = 0.005
CHUNK = 1000
DRAMATIQ_PREFETCH = 100
START_TIMEOUT = 60.0
RUN_TIMEOUT = 90.0
BIN = Path(sys.executable).parent

GUIDIST_OFF = "guidist, journal off"
GUIDIST_ON = "guidist, journal on"
GUIDIST_REDIS = "guidist, Redis, workers on Redis"
GUIDIST_FACADE = "guidist, Redis, through the server"
BARE = "bare batched manager"
CLASSIC = "classic tutorial"
CELERY_CHUNKS = f"celery, chunks({CHUNK})"


@dataclass(frozen=True)
class Variant:
    """One system in the comparison: how to run it, how big a run is, how its end is seen."""

    name: str
    run: Callable[[int], dict[str, Any]]
    full: int
    quick: int
    completion: str
    fairness: str


# ---------------------------------------------------------------------------- processes

def stop_tree(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a launched worker and everything it forked, by pid: SIGTERM, then SIGKILL."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _gone, alive = psutil.wait_procs(family, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _children(proc: subprocess.Popen) -> int:
    try:
        return len(psutil.Process(proc.pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return 0


@contextlib.contextmanager
def launched(cmds: Sequence[Sequence[str]], base: str, env: dict[str, str] | None = None,
             children: int = 0) -> Iterator[list[subprocess.Popen]]:
    """Start worker commands (from the repository root, told the Redis URL); stop them after.

    ``children`` is how many processes the commands fork between them (a prefork pool's
    workers), awaited before yielding. A command that exits early raises with its log's tail.
    """
    logdir = Path(tempfile.mkdtemp(prefix="guidist-bench-peer-"))
    full_env = {**os.environ, ENV: base, **(env or {})}
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []
    try:
        for i, cmd in enumerate(cmds):
            log = logdir / f"worker-{i}.log"
            logs.append(log)
            with log.open("wb") as out:
                procs.append(subprocess.Popen(list(cmd), cwd=ROOT, env=full_env,
                                              stdin=subprocess.DEVNULL, stdout=out,
                                              stderr=subprocess.STDOUT))

        def ready() -> bool:
            for p, log in zip(procs, logs):
                if p.poll() is not None:
                    raise RuntimeError(f"{' '.join(cmds[0][:3])}… exited with {p.returncode}: "
                                       f"{log.read_text(errors='replace')[-1500:]}")
            return sum(_children(p) for p in procs) >= children

        wait_until(ready, START_TIMEOUT, f"{children} worker processes", interval=0.05)
        yield procs
    finally:
        for p in procs:
            stop_tree(p)
        shutil.rmtree(logdir, ignore_errors=True)


@contextlib.contextmanager
def fresh_redis() -> Iterator[str]:
    """A new redis-server for one run (no persistence); yields redis://127.0.0.1:PORT."""
    with guidist_redis.redis_server() as url:
        yield url.rsplit("/", 1)[0]


def _redis(base: str, db: int = 0) -> Any:
    import redis

    return redis.Redis.from_url(f"{base}/{db}")


# ---------------------------------------------------------------------------- timing

def timed(n: int, submit: Callable[[], Any], done: Callable[[], int], target: int | None = None,
          **extra: Any) -> dict[str, Any]:
    """Submit, then poll done() every POLL_S until it reaches target (n by default)."""
    target = n if target is None else target
    t0 = time.time()
    submit()
    t_submit = time.time()
    wait_until(lambda: done() >= target, RUN_TIMEOUT, f"{target} results stored",
               interval=POLL_S)
    elapsed = time.time() - t0
    return {"tasks": n, "seconds": elapsed, "tasks_per_s": n / elapsed,
            "submit_seconds": t_submit - t0, **extra}


def warm_up(submit: Callable[[], Any], done: Callable[[], int], target: int = WARM) -> int:
    """Run a few tasks through before timing; returns the count to subtract afterwards."""
    submit()
    wait_until(lambda: done() >= target, START_TIMEOUT, "the warm-up tasks", interval=0.02)
    return done()


# ---------------------------------------------------------------------------- peers

def run_rq(n: int) -> dict[str, Any]:
    """rq at its defaults: 2 `rq worker` processes, each forking a work horse per job."""
    import rq
    from rq.registry import FailedJobRegistry, FinishedJobRegistry

    with fresh_redis() as base:
        r = _redis(base)
        queue = rq.Queue("bench", connection=r)
        cmd = [str(BIN / "rq"), "worker", "--url", f"{base}/0", "--quiet", "bench"]
        with launched([cmd] * WORKERS, base):
            wait_until(lambda: rq.Worker.count(connection=r) >= WORKERS, START_TIMEOUT,
                       "rq workers to register")
            finished, failed = FinishedJobRegistry(queue=queue), FailedJobRegistry(queue=queue)

            def count() -> int:
                return (finished.get_job_count(cleanup=False)
                        + failed.get_job_count(cleanup=False))

            def submit(xs: range) -> None:
                for x in xs:
                    queue.enqueue(square, x)

            base_count = warm_up(lambda: submit(range(-WARM, 0)), count)
            return timed(n, lambda: submit(range(n)), lambda: count() - base_count)


def run_huey(n: int) -> dict[str, Any]:
    """huey: `huey_consumer -k process -w 2`, otherwise its defaults (blocking Redis reads)."""
    from . import _peer_huey

    with fresh_redis() as base:
        huey, task = _peer_huey.make(base)
        cmd = [str(BIN / "huey_consumer"), "benchmarks._peer_huey.huey", "-k", "process",
               "-w", str(WORKERS), "-q"]
        with launched([cmd], base, children=WORKERS):
            count = huey.storage.result_store_size

            def submit(xs: range) -> None:
                for x in xs:
                    task(x)

            base_count = warm_up(lambda: submit(range(-WARM, 0)), count)
            return timed(n, lambda: submit(range(n)), lambda: count() - base_count)


def run_dramatiq(n: int, prefetch: int | None = None) -> dict[str, Any]:
    """dramatiq: `dramatiq --processes 2` (8 threads each, its default), prefetch as given."""
    from . import _peer_dramatiq

    with fresh_redis() as base:
        broker, actor = _peer_dramatiq.make(base)
        results = _redis(base, RESULTS_DB)
        cmd = [sys.executable, "-m", "dramatiq", "benchmarks._peer_dramatiq",
               "--processes", str(WORKERS), "--queues", _peer_dramatiq.QUEUE]
        env = {"dramatiq_queue_prefetch": str(prefetch)} if prefetch else {}
        try:
            with launched([cmd], base, env=env, children=WORKERS):
                count = results.dbsize

                def submit(xs: range) -> None:
                    for x in xs:
                        actor.send(x)

                base_count = warm_up(lambda: submit(range(-WARM, 0)), count)
                return timed(n, lambda: submit(range(n)), lambda: count() - base_count,
                             prefetch=prefetch or "default (2 x threads = 16)")
        finally:
            broker.close()


def run_celery(n: int, chunk: int | None = None) -> dict[str, Any]:
    """celery: `celery worker -c 2` (prefork) at its defaults; one .delay() per task or chunks."""
    from . import _peer_celery

    with fresh_redis() as base:
        app, task = _peer_celery.make(base)
        results = _redis(base, RESULTS_DB)
        cmd = [sys.executable, "-m", "celery", "-A", "benchmarks._peer_celery", "worker",
               "--concurrency", str(WORKERS), "--loglevel", "WARNING"]
        try:
            with launched([cmd], base, children=WORKERS):
                count = results.dbsize

                def submit(xs: range) -> None:
                    if chunk:
                        task.chunks(zip(xs), chunk).apply_async()
                    else:
                        for x in xs:
                            task.delay(x)

                base_count = warm_up(lambda: submit(range(-WARM, 0)), count,
                                     target=-(-WARM // chunk) if chunk else WARM)
                # With chunks, one result (a list of `chunk` squares) is stored per chunk.
                target = -(-n // chunk) if chunk else n
                return timed(n, lambda: submit(range(n)), lambda: count() - base_count,
                             target=target, chunk=chunk)
        finally:
            app.close()


def run_dask(n: int) -> dict[str, Any]:
    """dask distributed: LocalCluster(2 worker processes, 1 thread each), client.map + wait."""
    from distributed import Client, LocalCluster, wait

    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                      host="127.0.0.1", scheduler_port=0, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        client.wait_for_workers(WORKERS, timeout=START_TIMEOUT)
        wait(client.map(square, range(-WARM, 0)), timeout=START_TIMEOUT)
        t0 = time.time()
        futures = client.map(square, range(n))
        t_submit = time.time()
        wait(futures, timeout=RUN_TIMEOUT)
        elapsed = time.time() - t0
        del futures
        return {"tasks": n, "seconds": elapsed, "tasks_per_s": n / elapsed,
                "submit_seconds": t_submit - t0}


# ---------------------------------------------------------------------------- guidist & refs

def run_guidist_redis(n: int, direct: bool) -> dict[str, Any]:
    """guidist's Redis backend on its own fresh redis-server (see benchmarks.redis_backend)."""
    with guidist_redis.redis_server() as url:
        run = guidist_redis.run_direct if direct else guidist_redis.run_facade
        return run(url, n, WORKERS)


def variants(has_journal: bool) -> list[Variant]:
    """Everything compared, guidist first; sizes aim at a run of 1–3 s on this machine."""
    server_stamp = "the server's finished stamp of the last result (results_since): no poll"
    out = [
        Variant(GUIDIST_OFF, lambda n: throughput.run_guidist(n, False), 1_000_000, 20_000,
                server_stamp, "in memory; batches of 1,000 per worker round trip"),
    ]
    if has_journal:
        out.append(Variant(
            GUIDIST_ON, lambda n: throughput.run_guidist(n, True), 1_000_000, 20_000,
            server_stamp + "; the SQLite journal may still be writing then",
            "results journaled to SQLite in the background (durable figure in the JSON)"))
    out += [
        Variant(GUIDIST_REDIS, lambda n: run_guidist_redis(n, True), 80_000, 2_000,
                "the backend's finished stamp of the last result (results_since)",
                "state in Redis, a Lua script per batch; batches like the embedded server"),
        Variant(GUIDIST_FACADE, lambda n: run_guidist_redis(n, False), 80_000, 2_000,
                "the backend's finished stamp of the last result (results_since)",
                "workers talk to the server, which keeps the state in Redis"),
        Variant(BARE, lambda n: _bare.run(n, WORKERS, AUTHKEY.encode()), 4_000_000, 50_000,
                "the bare server's stamp of its last stored result batch",
                "reference: guidist's transport with no bookkeeping at all"),
        Variant(CLASSIC, lambda n: _classic.run(n, WORKERS, AUTHKEY.encode()), 10_000, 1_000,
                "the master has read every result from the result queue",
                "one proxy call per task each way, nothing kept"),
        Variant("rq", run_rq, 200, 40,
                f"rq's finished + failed job registries (ZCARD) reach N, polled every "
                f"{POLL_S * 1000:g} ms",
                "default Worker forks a work horse per job; results kept in Redis"),
        Variant("huey", run_huey, 6_000, 200,
                f"huey's result store (HLEN) reaches N, polled every {POLL_S * 1000:g} ms",
                "one message per task, results kept in Redis"),
        Variant("dramatiq", lambda n: run_dramatiq(n), 3_000, 100,
                f"the results database (Results middleware) holds N keys (DBSIZE), polled "
                f"every {POLL_S * 1000:g} ms",
                "one message per task, prefetch 16 (default), results middleware added"),
        Variant(f"dramatiq, prefetch {DRAMATIQ_PREFETCH}",
                lambda n: run_dramatiq(n, DRAMATIQ_PREFETCH), 3_000, 200,
                "as dramatiq", f"as dramatiq with dramatiq_queue_prefetch={DRAMATIQ_PREFETCH}"),
        Variant("celery", lambda n: run_celery(n), 1_000, 100,
                f"the result backend's database holds N keys (DBSIZE), polled every "
                f"{POLL_S * 1000:g} ms",
                "one message per task (.delay), prefork pool, prefetch multiplier 4, "
                "result backend added"),
        Variant(CELERY_CHUNKS, lambda n: run_celery(n, CHUNK), 150_000, 5_000,
                f"the result backend's database holds N/{CHUNK} keys (one list per chunk)",
                f"batched: one message and one result per {CHUNK} tasks"),
        Variant("dask distributed", run_dask, 1_000, 100,
                "distributed.wait on every future returns (the scheduler knows all are done)",
                "scheduler in the client process, results stay in the workers' memory"),
    ]
    return out


# ---------------------------------------------------------------------------- main

def bounded(fn: Callable[[], dict[str, Any]], deadline: float) -> Callable[[], dict[str, Any]]:
    """A run that reports its error instead of ending the benchmark, and skips past the budget."""
    def run() -> dict[str, Any]:
        if time.monotonic() > deadline:
            return {"tasks_per_s": None, "skipped": "time budget used up"}
        try:
            return fn()
        except Exception as exc:  # one broken peer must not lose the other figures
            return {"tasks_per_s": None, "error": f"{type(exc).__name__}: {exc}"[:500]}
    return run


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print its tables."""
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="comma-separated variant names (substrings)")
    p.add_argument("--budget", type=float, default=30.0,
                   help="minutes; runs that would start later are skipped (default 30)")
    args = p.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    info = machine_info()
    has_journal, journal_reason = journal_available()
    print(f"Peers — trivial square tasks, {WORKERS} worker processes each, "
          f"{rounds} interleaved round{'s' * (rounds != 1)}{', quick' if args.quick else ''}")
    print(machine_line(info))
    if not os.path.exists(guidist_redis.REDIS_SERVER):
        print(f"skipped: {guidist_redis.REDIS_SERVER} is not installed")
        return 0
    if not has_journal:
        print(f"guidist journal on: skipped ({journal_reason})")
    chosen = variants(has_journal)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        chosen = [v for v in chosen if any(w in v.name for w in wanted)]
    deadline = time.monotonic() + args.budget * 60
    size = {v.name: v.quick if args.quick else v.full for v in chosen}
    res = interleaved([(v.name, bounded(lambda v=v: v.run(size[v.name]), deadline))
                       for v in chosen], rounds)

    def vs(name: str, ref: str) -> dict[str, Any]:
        return ratios(res[name], res[ref], "tasks_per_s") if ref in res else summary([])

    rows, per_variant = [], {}
    for v in chosen:
        runs = res[v.name]
        tps = summary([r["tasks_per_s"] for r in runs])
        r_off, r_redis = vs(v.name, GUIDIST_OFF), vs(v.name, GUIDIST_REDIS)
        rows.append([v.name, fmt(size[v.name]), *fmt_summary(tps),
                     fmt_summary(r_off)[0], fmt_summary(r_redis)[0]])
        per_variant[v.name] = {"tasks": size[v.name], "tasks_per_s": tps,
                               "ratio_to_guidist_journal_off": r_off,
                               "ratio_to_guidist_redis": r_redis,
                               "completion": v.completion, "fairness": v.fairness,
                               "runs": runs}
    print()
    print(table(["variant", "tasks", "tasks/s median", "min – max", "÷ guidist off",
                 "÷ guidist Redis"], rows))
    print("\nHow each run's end is detected, and what differs:")
    for v in chosen:
        print(f"  {v.name}: {v.completion}; {v.fairness}")
    problems = [(name, r.get("error") or r.get("skipped"))
                for name, runs in res.items() for r in runs if r.get("tasks_per_s") is None]
    for name, why in problems:
        print(f"  not measured: {name}: {why}")

    targets = []
    for name, ref, goal, label in (
            (GUIDIST_ON, BARE, 0.5, "target 1: journal on ÷ bare"),
            (GUIDIST_OFF, BARE, 0.7, "target 1: journal off ÷ bare"),
            (GUIDIST_ON, CLASSIC, 50.0, "target 1: journal on ÷ classic"),
            (GUIDIST_REDIS, CELERY_CHUNKS, 2.0, f"target 3: Redis ÷ celery chunks({CHUNK})")):
        if name in res and ref in res:
            r = vs(name, ref)
            targets.append({"target": f"{label} >= {goal:g}", "value": r["median"],
                            "verdict": verdict(r["median"], goal), "per_round": r})
    if targets:
        print()
        print(table(["target (ratio per round)", "median", "verdict"],
                    [[t["target"], fmt(t["value"]), t["verdict"]] for t in targets]))

    payload = {
        "name": NAME, "quick": args.quick, "rounds": rounds, "machine": info,
        "workers": WORKERS, "journal": {"available": has_journal, "reason": journal_reason},
        "method": {
            "setup": "each run on fresh processes and, where it uses Redis, a fresh "
                     "redis-server without persistence; workers running and (peers) a warm-up "
                     f"of {WARM} tasks done before timing; variant order rotates each round",
            "timing": "time.time() just before the first submit until the last result is "
                      "stored, as each variant's 'completion' says",
            "submit": "peers: one call per task as their docs show (rq enqueue, huey task "
                      "call, dramatiq send, celery delay), except celery chunks; guidist: "
                      "submit_many",
        },
        "variants": per_variant, "targets": targets,
    }
    return finish(NAME, payload, args.no_save)


if __name__ == "__main__":
    sys.exit(main())
