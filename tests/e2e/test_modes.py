"""Worker execution modes (process, thread, async) with real worker processes."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from guidist.core.client import Client
from guidist.core.protocol import TaskState

from ..conftest import wait_for

MODES = ["inline", "process", "thread", "async"]


def _wait_workers(client: Client, n: int) -> None:
    wait_for(lambda: sum(1 for w in client.workers() if w.state.value != "offline") >= n,
             timeout=30, message=f"{n} worker(s) to register")


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_runs_a_batch_and_stores_failures(server, client, pool_factory, mode):
    pool = pool_factory(server)
    pool.launch(1, mode=mode, concurrency=4)
    _wait_workers(client, 1)
    info = client.workers()[0]
    assert info.mode == mode
    assert info.concurrency == (1 if mode == "inline" else 4)

    ids = client.submit_many("square", range(200))
    bad = client.submit_many("tests.jobs:boom", [7])
    client.wait_idle(timeout=60)

    snap = client.snapshot()
    assert snap.count("done") == 200
    assert snap.count("failed") == 1
    assert [client.get_task(i).result for i in (ids[0], ids[-1])] == [0, 199 * 199]
    failed = client.get_task(bad[0])
    assert failed.state is TaskState.FAILED
    assert "Traceback" in failed.error and "ValueError: boom 7" in failed.error


def test_async_mode_overlaps_waits(server, client, pool_factory):
    n, seconds = 50, 0.2
    pool = pool_factory(server)
    pool.launch(1, mode="async", concurrency=n)
    _wait_workers(client, 1)
    client.submit("aio_wait", 0.0)  # warm up: imports and the event loop
    client.wait_idle(timeout=30)

    started = time.perf_counter()
    client.submit_many("aio_wait", [seconds] * n)
    client.wait_idle(timeout=60, poll=0.01)
    elapsed = time.perf_counter() - started

    serial = n * seconds
    assert client.snapshot().count("done") == n + 1
    # Overlapped, the batch takes about one wait; serially it would take n of them.
    assert elapsed < serial / 5, f"{elapsed:.2f} s is not much faster than serial {serial:.1f} s"


def test_killing_a_process_mode_worker_requeues_and_leaves_no_children(
        server, client, pool_factory, tmp_path):
    pool = pool_factory(server)
    victim = pool.launch(1, prefix="victim", mode="process", concurrency=2)[0]
    _wait_workers(client, 1)
    marker = tmp_path / "started"
    ids = client.submit_many("tests.jobs:touch_and_sleep", [(str(marker), 1.0)] * 2)
    wait_for(marker.exists, timeout=30, message="a task to start in a pool child")
    wait_for(lambda: len(psutil.Process(victim.pid).children()) >= 1, timeout=30,
             message="the worker's pool children")
    children = psutil.Process(victim.pid).children(recursive=True)

    os.kill(victim.pid, signal.SIGKILL)
    victim.process.wait(10)
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"pool children outlived their worker: {[p.pid for p in alive]}"

    pool.launch(1, prefix="rescuer", mode="process", concurrency=2)
    client.wait_idle(timeout=60)
    for tid in ids:
        task = client.get_task(tid)
        assert task.state is TaskState.DONE
        assert task.worker.startswith("rescuer")
        assert task.attempts == 2


def test_a_worker_limited_to_some_functions_leaves_the_others(server, client, pool_factory):
    pool = pool_factory(server)
    pool.launch(1, functions=("square",))
    _wait_workers(client, 1)
    assert client.workers()[0].functions == ("square",)
    squares = client.submit_many("square", range(50))
    echo = client.submit("echo", "not for it").id
    wait_for(lambda: client.snapshot().count("done") == 50, timeout=30,
             message="the squares to be done")
    assert client.get_task(squares[-1]).result == 49 * 49
    assert client.get_task(echo).state is TaskState.QUEUED
