"""Issue 6: the Redis backend beside the embedded one, trivial square tasks, 2 and 4 workers.

    python -m benchmarks.redis_backend [--quick] [--rounds N]

Variants, in interleaved rounds (each run starts fresh processes and an empty Redis database):

embedded        ServerProcess (journal off) + WorkerPool workers through the manager
redis facade    ServerProcess(backend=redis://...) + the same workers through the manager
redis direct    workers started with ``guidist worker --redis`` (no server process at all),
                tasks submitted with Client.redis

Each is timed from just before the first submit until the backend stored the last result
(its own ``finished`` stamp, read back with results_since), with 2 and with 4 workers. The
figure is tasks/s and the ratio embedded / redis per round. Needs /usr/bin/redis-server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    wait_until,
)

FIGURE = "6"
NAME = "redis_backend"
REQUIRES = ("redis",)
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
FULL = {"embedded": 500_000, "redis": 60_000, "rounds": 3}
QUICK = {"embedded": 20_000, "redis": 3_000, "rounds": 1}


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port, no persistence; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="guidist-bench-redis-")
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", tmp],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        r = redis.Redis.from_url(url)
        wait_until(lambda: _pings(r), 10, "redis-server to answer", interval=0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def _pings(r: Any) -> bool:
    try:
        return bool(r.ping())
    except Exception:
        return False


def _timed(client: Any, n: int) -> dict[str, Any]:
    """Submit n squares and time until the backend stored the last one."""
    t0 = time.time()
    client.submit_many("square", range(n))
    wait_until(lambda: client.snapshot().count("done") >= n, 120 + n / 1_000, f"{n} results",
               interval=0.02)
    _cursor, last = client.results_since(n - 1, 1)
    end = last[0].finished if last and last[0].finished else time.time()
    return {"tasks": n, "seconds": end - t0, "tasks_per_s": n / (end - t0)}


def run_embedded(n: int, workers: int) -> dict[str, Any]:
    """The manager server with its in-memory broker."""
    with guidist_stack(workers) as (_server, _pool, client):
        return _timed(client, n)


def run_facade(url: str, n: int, workers: int) -> dict[str, Any]:
    """A guidist server whose state is in Redis; workers connect to the server."""
    _flush(url)
    with guidist_stack(workers, backend=url) as (_server, _pool, client):
        return _timed(client, n)


def run_direct(url: str, n: int, workers: int) -> dict[str, Any]:
    """Workers straight on Redis (worker --redis) and Client.redis: no server process."""
    from guidist.core.client import Client
    from guidist.core.pool import WorkerPool

    _flush(url)
    client = Client.redis(url).connect()
    pool = WorkerPool(("", 0), AUTHKEY, redis_url=url, give_up_after=10.0)
    try:
        pool.launch(workers)
        wait_until(lambda: client.snapshot().connected_workers >= workers, 60,
                   f"{workers} direct workers to register")
        return _timed(client, n)
    finally:
        pool.stop_all(timeout=10)
        client.close()


def _flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushall()


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print its table."""
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or sizes["rounds"]
    info = machine_info()
    print(f"Redis backend beside the embedded one, square tasks ({rounds} interleaved "
          f"round{'s' * (rounds != 1)}{', quick' if args.quick else ''})")
    print(machine_line(info))
    if not os.path.exists(REDIS_SERVER):
        print(f"skipped: {REDIS_SERVER} is not installed (apt-get install redis-server)")
        return 0
    with redis_server() as url:
        variants: list[tuple[str, Callable[[], dict[str, Any]]]] = []
        for w in (2, 4):
            variants += [
                (f"embedded, {w} workers", lambda w=w: run_embedded(sizes["embedded"], w)),
                (f"redis facade, {w} workers", lambda w=w: run_facade(url, sizes["redis"], w)),
                (f"redis direct, {w} workers", lambda w=w: run_direct(url, sizes["redis"], w)),
            ]
        res = interleaved(variants, rounds)

    rows, per_variant = [], {}
    for name, runs in res.items():
        tps = summary([r["tasks_per_s"] for r in runs])
        rows.append([name, fmt(runs[0]["tasks"]), *fmt_summary(tps)])
        per_variant[name] = {"tasks_per_s": tps, "runs": runs}
    print()
    print(table(["variant", "tasks", "tasks/s median", "min – max"], rows))
    ratio_rows, ratio_out = [], {}
    for w in (2, 4):
        for kind in ("facade", "direct"):
            r = ratios(res[f"embedded, {w} workers"], res[f"redis {kind}, {w} workers"],
                       "tasks_per_s")
            ratio_out[f"embedded / redis {kind}, {w} workers"] = r
            ratio_rows.append([f"embedded / redis {kind}, {w} workers", *fmt_summary(r)])
    print()
    print(table(["ratio (per round)", "median", "min – max"], ratio_rows))
    payload = {"name": NAME, "quick": args.quick, "rounds": rounds, "machine": info,
               "variants": per_variant, "ratios": ratio_out,
               "method": "time.time() before the first submit until the backend's finished "
                         "stamp of the last result (results_since); fresh processes and an "
                         "empty Redis database per run; redis-server without persistence"}
    return finish(NAME, payload, args.no_save)


if __name__ == "__main__":
    sys.exit(main())
