"""Results back in Python: futures, map, the Executor, exceptions, and results that outlive
memory. Real servers, real worker processes (some started with the ``guidist`` command)."""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import operator
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import guidist
from guidist.core.client import Client
from guidist.core.pool import WorkerPool
from guidist.core.protocol import TaskState
from guidist.core.server import ServerProcess
from guidist.core.tasks import TaskNotFound
from tests.conftest import TEST_KEY, wait_for
from tests.e2e.conftest import connect_arg, output_of, script_argv, worker_argv

Procs = Callable[..., subprocess.Popen]


def _workers_up(c: Client, n: int) -> None:
    wait_for(lambda: sum(1 for w in c.workers() if w.state.value != "offline") >= n,
             message=f"{n} worker(s) to register")


def test_submit_gives_a_future_and_map_streams_results_in_order(server, client, pool_factory):
    pool_factory(server).launch(1)
    fut = client.submit(math.factorial, 20)
    assert isinstance(fut, cf.Future) and fut.id > 0
    assert fut.result(timeout=30) == math.factorial(20)
    assert list(client.map(operator.mul, range(300), range(300), job="squares")) == \
        [i * i for i in range(300)]
    job = client.job("squares")
    assert (job.total, job.done, job.state) == (300, 300, "done")
    assert list(client.map(operator.add, range(100), [1] * 100, chunksize=7)) == \
        list(range(1, 101))
    # The futures module's own helpers work on these futures.
    futs = [client.submit(operator.add, i, i) for i in range(20)]
    done, not_done = cf.wait(futs, timeout=30)
    assert not not_done and sorted(f.result() for f in done) == [2 * i for i in range(20)]
    assert sorted(f.result() for f in cf.as_completed(
        [client.submit(operator.neg, i) for i in range(10)], timeout=30)) == \
        sorted(-i for i in range(10))


def test_exceptions_come_back_as_raised(server, client, pool_factory, tmp_path):
    pool_factory(server).launch(1, mode="process", concurrency=1)
    with pytest.raises(ZeroDivisionError) as info:
        client.submit(operator.truediv, 1, 0).result(timeout=60)
    assert "Traceback" in str(info.value.__cause__)  # the worker's traceback rides along
    # An exception that cannot be pickled: TaskFailed, with the remote traceback.
    with pytest.raises(guidist.TaskFailed) as failed:
        client.submit("tests.jobs:raise_unpicklable").result(timeout=60)
    assert failed.value.state == "failed" and "cannot cross" in failed.value.traceback
    with pytest.raises(TaskNotFound, match="cannot import 'no_such_module_xyz'"):
        client.submit("no_such_module_xyz:f").result(timeout=60)
    # map raises where the failing item is, after yielding the ones before it
    got = []
    with pytest.raises(ZeroDivisionError):
        for x in client.map(operator.truediv, [1, 2, 3], [1, 1, 0]):
            got.append(x)
    assert got == [1.0, 2.0]


def test_a_dead_task_raises_task_failed(server_factory, pool_factory, tmp_path):
    srv = server_factory(lease_timeout=1.0, max_attempts=1)
    c = Client(srv.address, TEST_KEY).connect()
    try:
        pool_factory(srv).launch(1)
        with pytest.raises(guidist.TaskFailed) as info:
            c.submit("tests.jobs:crash").result(timeout=60)
        assert info.value.state == "dead" and "lease expired" in info.value.traceback
    finally:
        c.close()


def test_cancel_a_queued_future(server, client):
    # no worker: the task stays queued, so it can be cancelled
    fut = client.submit(operator.add, 1, 2)
    other = client.submit(operator.add, 3, 4)
    assert fut.cancel() and fut.cancelled()
    with pytest.raises(cf.CancelledError):
        fut.result(timeout=1)
    done, pending = cf.wait([fut, other], timeout=2)
    assert done == {fut} and pending == {other}
    assert client.get_task(fut.id).state is TaskState.CANCELLED
    # cancelled from elsewhere (the job's cancel): the future learns it too
    assert client.cancel_job(client.get_task(other.id).job) == 1
    with pytest.raises(cf.CancelledError):
        other.result(timeout=30)


def test_waiting_adds_no_calls_per_task(server, client, pool_factory):
    calls: list[str] = []
    real = client.connection.call

    def counting(method: str, *args: object) -> object:
        calls.append(method)
        return real(method, *args)

    client.connection.call = counting  # type: ignore[method-assign]
    pool_factory(server).launch(1)
    results = list(client.map("tests.jobs:slow_square", range(2000), [0.0005] * 2000))
    assert results == [n * n for n in range(2000)]
    waits = calls.count("wait_results")
    assert calls.count("submit") == 1 and calls.count("get_task") == 0
    assert waits < 200, f"{waits} wait calls for 2000 tasks"  # many results per round trip


def test_the_executor_runs_main_and_importable_functions_on_cli_workers(
        server, client, procs: Procs):
    where = connect_arg(server.address)
    for name in ("cli-a", "cli-b"):
        procs(worker_argv(server.address, "--name", name))
    _workers_up(client, 2)
    script = procs(script_argv("executor_main.py", where), stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)
    out = json.loads(output_of(script, timeout=120).strip().splitlines()[-1])
    assert script.returncode == 0
    assert out["main"] == [x ** 3 + 1000 for x in range(200)]
    assert out["importable"] == [x * x for x in range(50)]
    assert out["closure"] == 7000
    assert out["zero"] == ["ZeroDivisionError", True]
    assert out["unlucky"] == "no luck with 3"  # the __main__ exception class, re-raised
    assert out["workers"] == ["cli-a", "cli-b"]
    job = client.job("from-main")
    assert job.done == 200 // 16 + 1 + 50 + 1 and job.failed == 2
    done_by = {t.worker.split("#")[0] for t in client.list_tasks("done", job="from-main",
                                                                  limit=1000).tasks}
    assert done_by == {"cli-a", "cli-b"}  # both workers took part


def test_a_function_that_cannot_be_sent_is_refused_at_submit(server, client):
    import threading

    lock = threading.Lock()
    with pytest.raises(ValueError, match="cannot be sent to workers"):
        client.submit(lambda: lock, )


def test_the_first_of_30000_results_outlives_memory_and_a_restart(
        server_factory: Callable[..., ServerProcess], pool_factory: Callable[..., WorkerPool],
        tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.sqlite")
    srv = server_factory(journal=journal)
    c = Client(srv.address, TEST_KEY).connect()
    first = c.submit(operator.mul, 6, 7)  # a future resolved long before it is read
    ids = c.submit_many("square", range(30_000), job="many")
    pool_factory(srv).launch(2)
    wait_for(lambda: c.job("many").done == 30_000, timeout=120, message="30,000 results")
    assert first.result(timeout=30) == 42
    # 20,000 newer results pushed it out of memory: it is read back from the journal
    assert c.get_task(ids[0]).result == 0 and c.get_task(ids[0]).state is TaskState.DONE
    assert c.future(ids[0]).result(timeout=30) == 0
    assert c.future(ids[-1]).result(timeout=30) == 29_999 ** 2
    c.close()
    srv.stop()
    again = server_factory(journal=journal)
    c = Client(again.address, TEST_KEY).connect()
    try:
        assert c.get_task(ids[0]).result == 0
        assert c.future(ids[0]).result(timeout=30) == 0
        assert c.get_task(first.id).result == 42
        assert c.job("many").done == 30_000
    finally:
        c.close()


def test_futures_over_redis(tmp_path, procs: Procs, monkeypatch: pytest.MonkeyPatch):
    from tests.redis_fixtures import RedisServer, redis_available

    if not redis_available():
        pytest.skip("needs redis-server and the redis package")
    redis = RedisServer(tmp_path).start()
    try:
        monkeypatch.setenv("GUIDIST_REDIS_URL", redis.url)
        procs([sys.executable, "-m", "guidist", "worker", "--redis", "--give-up-after", "20"],
              key=None)
        c = guidist.connect(redis.url)
        try:
            _workers_up(c, 1)
            assert c.submit(math.factorial, 10).result(timeout=30) == math.factorial(10)
            assert list(c.map(operator.add, range(50), range(50), job="r")) == \
                [2 * i for i in range(50)]
            with pytest.raises(ZeroDivisionError):
                c.submit(operator.floordiv, 1, 0).result(timeout=30)
            assert c.job("r").done == 50
        finally:
            c.shutdown()
    finally:
        redis.stop()


def test_direct_redis_worker_reports_unpicklable_and_oversized_results_as_failures(
        tmp_path, procs: Procs, monkeypatch: pytest.MonkeyPatch):
    # A worker on Redis hands its results over unpickled (the broker pickles each one once),
    # so the checks the manager path makes on its packed batch must still happen there.
    from tests.redis_fixtures import RedisServer, redis_available

    if not redis_available():
        pytest.skip("needs redis-server and the redis package")
    redis = RedisServer(tmp_path).start()
    try:
        monkeypatch.setenv("GUIDIST_REDIS_URL", redis.url)
        c = guidist.connect(redis.url)
        try:
            bad = c.submit("tests.jobs:unpicklable").id
            big = c.submit("tests.jobs:big_result", c.max_payload + 1).id
            ok = c.submit_many("square", range(20))
            procs([sys.executable, "-m", "guidist", "worker", "--redis", "--give-up-after",
                   "20"], key=None)
            wait_for(lambda: all(t is not None and t.state.finished
                                 for t in c.get_tasks([bad, big, *ok])),
                     timeout=60, message="every task to finish")
            tb, tg = c.get_task(bad), c.get_task(big)
            assert tb.state is TaskState.FAILED and "could not be sent" in tb.error
            assert tg.state is TaskState.FAILED and "limit" in tg.error
            assert [c.get_task(i).result for i in ok] == [i * i for i in range(20)]
        finally:
            c.shutdown()
    finally:
        redis.stop()
