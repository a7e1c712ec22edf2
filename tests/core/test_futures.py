"""futures: the results thread ends cleanly when its client closes or its server dies.

Real servers, real worker processes and a real redis-server: a client is closed (or shut
down) while its results thread waits, many times over, and no thread may die of an exception
on the way; every future must end, with its result or an error that says why.
"""

from __future__ import annotations

import concurrent.futures as cf
import operator
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guidist.core import futures
from guidist.core.client import Client
from guidist.core.futures import TaskFailed
from guidist.core.pool import WorkerPool
from guidist.core.server import ServerProcess
from tests.conftest import TEST_KEY, wait_for
from tests.redis_fixtures import RedisServer, needs_redis

ROUNDS = 80  # each round: connect, submit, close while results flow (well under a minute)


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Exceptions that ended any thread during the test (threading.excepthook's record)."""
    seen: list[str] = []

    def hook(args: threading.ExceptHookArgs) -> None:
        seen.append(f"{args.thread.name if args.thread else '?'}: "
                    f"{args.exc_type.__name__}: {args.exc_value}")

    monkeypatch.setattr(threading, "excepthook", hook)
    return seen


def _results_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "guidist-results" and t.is_alive()]


def _close_while_results_flow(connect: Callable[[], Client], rounds: int) -> None:
    """Submit short tasks, close (odd rounds: shut down) at a random moment, check the ends."""
    rng = random.Random(17)
    for i in range(rounds):
        c = connect()
        futs = [c.submit("tests.jobs:slow_square", n, rng.choice((0.0, 0.0, 0.002, 0.05)))
                for n in range(8)]
        stream = c.map("tests.jobs:slow_square", range(40))
        if rng.random() < 0.7:
            futs[0].exception(timeout=30)  # the results thread is in (or between) waits
        (c.shutdown if i % 2 else c.close)()
        for n, f in enumerate(futs):
            assert f.done(), f"round {i}: future {n} still pending after close"
            err = f.exception(timeout=0)
            if err is None:
                assert f.result() == n * n
            else:
                assert isinstance(err, TaskFailed) and "the client was closed" in str(err), err
        try:
            assert list(stream) == [n * n for n in range(40)]
        except TaskFailed as exc:
            assert "the client was closed" in str(exc)
    wait_for(lambda: not _results_threads(), timeout=30, message="the results threads to end")


def test_closing_clients_while_results_flow_leaves_no_thread_exception(
        server: ServerProcess, pool_factory: Callable[..., WorkerPool],
        thread_errors: list[str]) -> None:
    assert server.address is not None
    address = server.address
    pool_factory(server).launch(2)
    _close_while_results_flow(lambda: Client(address, TEST_KEY).connect(), ROUNDS)
    assert thread_errors == []


@pytest.fixture
def redis_with_worker(tmp_path: Path) -> Iterator[str]:
    """A fresh redis-server and one direct worker on it; yields the URL."""
    redis = RedisServer(tmp_path).start()
    pool = WorkerPool(("127.0.0.1", redis.port), "", redis_url=redis.url, give_up_after=10)
    try:
        pool.launch(1)
        yield redis.url
    finally:
        pool.stop_all(timeout=5)
        redis.stop()


@needs_redis
def test_shutting_redis_clients_down_while_results_flow_leaves_no_thread_exception(
        redis_with_worker: str, thread_errors: list[str]) -> None:
    # The wait runs in this process on a Redis connection: shutting that down under the
    # results thread used to kill it with redis-py's errors (closed file, NoneType...).
    _close_while_results_flow(lambda: Client.redis(redis_with_worker), ROUNDS)
    assert thread_errors == []


def test_futures_fail_with_the_reason_when_the_server_dies(
        server_factory: Callable[..., ServerProcess], pool_factory: Callable[..., WorkerPool],
        thread_errors: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(futures, "GIVE_UP_AFTER", 2.0)  # the default rides out a restart
    srv = server_factory()
    assert srv.address is not None and srv.pid is not None
    c = Client(srv.address, TEST_KEY).connect()
    try:
        futs = [c.submit("tests.jobs:slow_square", n, 30.0) for n in range(3)]  # never run
        # Watched without a caller in result(): the results thread holds the wait.
        assert not any(f.done() for f in futs)
        wait_for(_results_threads, timeout=10, message="the results thread to wait")
        os.kill(srv.pid, signal.SIGKILL)
        for f in futs:
            with pytest.raises(TaskFailed, match="no answer from the server for 2 s"):
                f.result(timeout=30)
        wait_for(lambda: not _results_threads(), timeout=10, message="the thread to end")
    finally:
        c.close()
    assert thread_errors == []


# ------------------------------------------------------------------ the caller holds the wait


def _spy_waits(c: Client) -> list[tuple[int, list[int]]]:
    """(thread id, jobs) of every wait_results call the client makes from now on."""
    seen: list[tuple[int, list[int]]] = []
    real = c.connection.call

    def spying(method: str, *args: object) -> object:
        if method == "wait_results":
            seen.append((threading.get_ident(), list(args[1])))  # type: ignore[call-overload]
        return real(method, *args)

    c.connection.call = spying  # type: ignore[method-assign]
    return seen


def test_a_caller_blocked_in_result_waits_for_it_without_the_results_thread(
        server: ServerProcess, client: Client, pool_factory: Callable[..., WorkerPool],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The results thread is never started: result() and a map's iterator get their results
    # through waits they hold themselves (no hand-off through another thread).
    monkeypatch.setattr(futures.ResultWatcher, "_start_thread", lambda self: None)
    waits = _spy_waits(client)
    pool_factory(server).launch(1)
    assert client.submit("tests.jobs:slow_square", 7, 0.2).result(timeout=30) == 49
    assert client.submit("tests.jobs:boom", 3).exception(timeout=30) is not None
    assert list(client.map("tests.jobs:slow_square", range(50), [0.0] * 50)) == \
        [n * n for n in range(50)]
    assert waits and {tid for tid, _ in waits} == {threading.get_ident()}
    assert not _results_threads()


def test_a_result_reaches_its_waiting_caller_while_another_thread_adds_a_new_job(
        server: ServerProcess, client: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    waits = _spy_waits(client)
    pool_factory(server).launch(2)
    late: list[futures.TaskFuture] = []

    def submit_to_a_new_job() -> None:  # once a wait for the first job is on the server
        wait_for(lambda: waits, message="a wait for the first job")
        late.append(client.submit(operator.neg, 6))  # another function: another job, a poke

    other = threading.Thread(target=submit_to_a_new_job)
    other.start()
    first = client.submit("tests.jobs:slow_square", 5, 1.0)
    try:
        # Whichever thread holds the wait (the caller, or the results thread if it ran
        # first), the poke ends it and the next one asks for both jobs.
        assert first.result(timeout=30) == 25
    finally:
        other.join(30)
    assert late and late[0].result(timeout=30) == -6
    assert any(len(jobs) == 2 for _tid, jobs in waits), waits


def test_after_a_callers_timeout_the_results_thread_serves_the_future(
        server: ServerProcess, client: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    pool_factory(server).launch(1)
    fut = client.submit("tests.jobs:slow_square", 4, 1.0)
    with pytest.raises(cf.TimeoutError):
        fut.result(timeout=0.05)
    resolved = threading.Event()
    fut.add_done_callback(lambda _f: resolved.set())
    assert resolved.wait(30), "nobody delivered the result once the caller gave up"
    assert fut.result(timeout=0) == 16


def test_a_done_callback_may_wait_for_another_future(
        server: ServerProcess, client: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    # The callback runs on whichever thread delivered the first result, and that thread is
    # the one holding the wait: it must serve the second future itself, not wait for itself.
    pool_factory(server).launch(2)
    got: list[int] = []
    fast = client.submit("tests.jobs:slow_square", 2, 0.0)
    slow = client.submit("tests.jobs:slow_square", 3, 0.5)
    fast.add_done_callback(lambda _f: got.append(slow.result(timeout=20)))
    assert fast.result(timeout=30) == 4
    wait_for(lambda: got, message="the callback to get the second result")
    assert got == [9]


def test_closing_a_client_ends_a_callers_wait_at_once(
        server: ServerProcess, client: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    waits = _spy_waits(client)
    pool_factory(server).launch(1)
    closer = threading.Thread(target=lambda: (
        wait_for(lambda: waits, message="a wait on the server"), client.close()))
    closer.start()
    fut = client.submit("tests.jobs:slow_square", 8, 30.0)  # runs long past the test
    try:
        started = time.monotonic()
        with pytest.raises(TaskFailed, match="the client was closed"):
            fut.result(timeout=60)
        # The poke ends the wait: far sooner than its 20 s on the server.
        assert time.monotonic() - started < futures.WAIT_SECONDS / 2
    finally:
        closer.join(30)


def test_results_of_every_size_come_back_whole_through_a_waiting_caller(
        server: ServerProcess, client: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    pool_factory(server).launch(1)
    for size in (10, 200_000, 1_500_000):
        assert client.submit("tests.jobs:big_result", size).result(timeout=60) == b"x" * size
    assert [len(v) for v in client.map("tests.jobs:big_result", [300_000] * 6)] == [300_000] * 6


def test_the_results_thread_starts_only_once_a_future_is_watched(
        server: ServerProcess, client: Client, pool_factory: Callable[..., WorkerPool]) -> None:
    # A submit wakes no thread (its caller will most likely wait in result() itself); a
    # done-callback, concurrent.futures.wait or done() asked of a pending future is what
    # makes the results thread serve it.
    pool_factory(server).launch(1)
    fut = client.submit("tests.jobs:slow_square", 3, 0.3)
    watcher = client._watcher
    assert watcher is not None and watcher._thread is None
    resolved = threading.Event()
    fut.add_done_callback(lambda _f: resolved.set())
    assert resolved.wait(30) and fut.result(timeout=0) == 9
    polled = client.submit("tests.jobs:slow_square", 4, 0.3)
    wait_for(polled.done, message="a polled future to resolve")  # done() alone suffices
    assert polled.result(timeout=0) == 16
    done, _ = cf.wait([client.submit(operator.neg, 5)], timeout=30)
    assert [f.result() for f in done] == [-5]


def test_a_future_that_raised_is_freed_without_the_cyclic_collector(
        server: ServerProcess, client: Client) -> None:
    # A future left to the collector takes its Client's manager proxy with it, and that
    # proxy's finalizer closes the thread's socket wherever the collection runs (in the
    # middle of another client's call: the closing-clients test above failed so).
    import gc
    import weakref

    client.submit(operator.neg, 1)  # no worker: it stays queued; the client has a watcher
    gc.collect()
    gc.disable()
    try:
        failed = futures.TaskFuture(0, client, client._watcher)
        failed.set_exception(ValueError("raised"))
        with pytest.raises(ValueError):
            failed.result(timeout=0)
        assert isinstance(failed.exception(timeout=0), ValueError)
        ref = weakref.ref(failed)
        del failed
        assert ref() is None
    finally:
        gc.enable()
