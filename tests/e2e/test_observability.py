"""Where the time goes, with real processes on both backends: worker resources, per-function
run times, the metrics endpoint and the worker's log of failed tasks (issue 15's test list).

Each test runs against a memory server and against a server whose state is in a real
redis-server (its workers then talk to Redis directly, as ``guidist worker --redis`` does).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guidist.core.client import Client
from guidist.core.pool import WorkerPool
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, connected_client, wait_for
from tests.e2e.conftest import connect_arg, run_cli
from tests.redis_fixtures import RedisServer, redis_available

LEASE = 1.0  # heartbeats every 0.25 s


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None for the in-memory broker, or the URL of a private redis-server."""
    if request.param == "memory":
        yield None
        return
    if not redis_available():
        pytest.skip("redis-server is not installed")
    d = tmp_path / "redis"
    d.mkdir()
    server = RedisServer(d).start()
    yield server.url
    server.stop()


@pytest.fixture
def srv(server_factory: Callable[..., ServerProcess], backend: str | None) -> ServerProcess:
    return server_factory(lease_timeout=LEASE, backend=backend, metrics_port=0)


@pytest.fixture
def cli(srv: ServerProcess) -> Iterator[Client]:
    yield from connected_client(srv)


@pytest.fixture
def pool(srv: ServerProcess, backend: str | None) -> Iterator[WorkerPool]:
    assert srv.address is not None
    p = WorkerPool(srv.address, TEST_KEY, give_up_after=5.0, redis_url=backend)
    yield p
    p.stop_all(timeout=5)


def status_json(srv: ServerProcess) -> dict:
    assert srv.address is not None
    out = run_cli("status", "--json", "--connect", connect_arg(srv.address))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def workers_json(srv: ServerProcess) -> list[dict]:
    assert srv.address is not None
    out = run_cli("workers", "--json", "--connect", connect_arg(srv.address))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_busy_worker_reports_its_cpu_and_memory(srv: ServerProcess, cli: Client,
                                                 pool: WorkerPool) -> None:
    cli.submit_many("primes", [400_000] * 20)  # a second or more of pure CPU each
    pool.launch(1)
    wait_for(lambda: any((w.get("cpu_percent") or 0) > 20 for w in workers_json(srv)),
             timeout=60, interval=0.3, message="a heartbeat with the busy worker's CPU")
    [w] = workers_json(srv)
    required = {"name", "host", "pid", "state", "mode", "done", "failed", "cpu_percent",
                "rss_bytes", "last_heartbeat_s"}
    assert required <= set(w)
    assert w["rss_bytes"] > 10 * 2**20
    assert w["pid"] == pool.workers[0].pid


def test_forty_sleeps_of_a_tenth_have_a_median_of_a_tenth(srv: ServerProcess, cli: Client,
                                                          pool: WorkerPool) -> None:
    cli.submit_many("sleep", [0.1] * 40)
    pool.launch(2)

    def sleep_stats() -> dict | None:
        return next((f for f in status_json(srv)["functions"]
                     if f["function"] == "sleep" and f["done"] == 40), None)

    wait_for(sleep_stats, timeout=60, interval=0.3, message="40 sleeps counted")
    stats = sleep_stats()
    assert stats is not None
    assert stats["failed"] == 0
    assert stats["runtime_p50"] == pytest.approx(0.1, abs=0.05)
    assert 0.1 <= stats["runtime_max"] < 1.0
    assert stats["runtime_p50"] <= stats["runtime_p95"] <= stats["runtime_max"]


def metric(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert m, f"{name}{labels} not in the metrics"
    return float(m.group(1))


def test_the_metrics_endpoint_counts_what_guidist_status_counts(
        srv: ServerProcess, cli: Client, pool: WorkerPool) -> None:
    cli.submit_many("square", range(300))
    cli.submit_many("tests.jobs:boom", range(2))
    pool.launch(1)
    wait_for(lambda: cli.snapshot().count("done") + cli.snapshot().count("failed") == 302,
             timeout=60, message="every task finished")
    assert srv.address is not None and srv.metrics_port
    url = f"http://{srv.address[0]}:{srv.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    status = status_json(srv)
    assert metric(text, "guidist_tasks_total", '{state="done"}') == status["done"] == 300
    assert metric(text, "guidist_tasks_total", '{state="failed"}') == status["failed"] == 2
    assert metric(text, "guidist_queue_depth") == status["queued"] == 0
    assert metric(text, "guidist_workers") == status["workers"] == 1
    # The histogram counts runs as the workers report them (twice a second at most).
    wait_for(lambda: any(f["function"] == "square" and f["done"] == 300
                         for f in status_json(srv)["functions"]), timeout=30, interval=0.3)
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    assert metric(text, "guidist_task_runtime_seconds_count", '{function="square"}') == 300
    assert 'guidist_task_runtime_seconds_bucket{function="square",le="+Inf"} 300.0' in text


def test_a_failed_task_is_one_line_of_the_worker_log(srv: ServerProcess, cli: Client,
                                                    pool: WorkerPool) -> None:
    [tid] = cli.submit_many("tests.jobs:boom", [7])
    [missing] = cli.submit_many("no_such_module_xyz:f", [1])
    [w] = pool.launch(1)
    line = re.compile(rf"task {tid} \(tests\.jobs:boom\) failed: ValueError: boom 7$")
    wait_for(lambda: any(line.search(ln) for ln in w.log), timeout=30,
             message="the failure in the worker's log")
    wait_for(lambda: any(f"task {missing} (no_such_module_xyz:f) failed: TaskNotFound" in ln
                         for ln in w.log), timeout=30, message="TaskNotFound in the log")
    pool.stop_all(timeout=10)
    wait_for(lambda: any("task(s) done, 2 failed" in ln for ln in w.log), timeout=10,
             message="the exit summary")
