"""The classic tutorial design (task_master.py, task_worker.py), as faithful as a benchmark allows.

Differences from the tutorial, each needed to measure it fairly: the queues are returned by
module-level callables instead of lambdas (so the manager also starts under ``spawn``); the
worker's ``time.sleep(1)`` is removed; it catches ``queue.Empty`` (not ``Queue.Empty``) and keeps
waiting rather than exiting, and leaves on a ``None`` sentinel; it signals once it is connected so
timing starts with both workers ready, as guidist's do. Everything else — one proxy call per item
for ``put`` and ``get`` on both sides, no ``TCP_NODELAY`` — is the tutorial's.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from multiprocessing.managers import BaseManager
from typing import Any

task_queue: queue.Queue = queue.Queue()
result_queue: queue.Queue = queue.Queue()


def get_task_queue() -> queue.Queue:
    """The master's task queue (module-level, so it pickles under spawn)."""
    return task_queue


def get_result_queue() -> queue.Queue:
    """The master's result queue."""
    return result_queue


class MasterManager(BaseManager):
    """task_master.py's QueueManager."""


MasterManager.register("get_task_queue", callable=get_task_queue)
MasterManager.register("get_result_queue", callable=get_result_queue)


class WorkerManager(BaseManager):
    """task_worker.py's QueueManager: registers the names only."""


WorkerManager.register("get_task_queue")
WorkerManager.register("get_result_queue")


def worker_main(address: tuple[str, int], authkey: bytes, ready: Any) -> None:
    """task_worker.py with the sleep removed."""
    m = WorkerManager(address=address, authkey=authkey)
    m.connect()
    task = m.get_task_queue()
    result = m.get_result_queue()
    ready.set()
    while True:
        try:
            n = task.get(timeout=1)
        except queue.Empty:
            continue
        if n is None:
            return
        r = "%d * %d = %d" % (n, n, n * n)
        result.put(r)


def run(n_tasks: int, n_workers: int, authkey: bytes) -> dict[str, Any]:
    """One end-to-end run: start the master's manager and the workers, time n_tasks through it."""
    ctx = multiprocessing.get_context("spawn")
    manager = MasterManager(address=("127.0.0.1", 0), authkey=authkey, ctx=ctx)
    manager.start()
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        address = manager.address
        events = [ctx.Event() for _ in range(n_workers)]
        for ev in events:
            p = ctx.Process(target=worker_main, args=(address, authkey, ev), daemon=True)
            p.start()
            procs.append(p)
        for ev in events:
            if not ev.wait(60):
                raise TimeoutError("a classic worker did not connect within 60 s")
        task = manager.get_task_queue()
        result = manager.get_result_queue()
        t0 = time.perf_counter()
        for i in range(n_tasks):
            task.put(i)
        t_put = time.perf_counter()
        for _ in range(n_tasks):
            result.get(timeout=10)
        elapsed = time.perf_counter() - t0
        for _ in procs:
            task.put(None)
        for p in procs:
            p.join(10)
        return {"tasks": n_tasks, "seconds": elapsed, "tasks_per_s": n_tasks / elapsed,
                "put_seconds": t_put - t0}
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
        manager.shutdown()
