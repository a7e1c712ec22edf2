"""futures: the results thread ends cleanly when its client closes or its server dies.

Real servers, real worker processes and a real redis-server: a client is closed (or shut
down) while its results thread waits, many times over, and no thread may die of an exception
on the way; every future must end, with its result or an error that says why.
"""

from __future__ import annotations

import os
import random
import signal
import threading
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
        wait_for(_results_threads, timeout=10, message="the results thread to wait")
        os.kill(srv.pid, signal.SIGKILL)
        for f in futs:
            with pytest.raises(TaskFailed, match="no answer from the server for 2 s"):
                f.result(timeout=30)
        wait_for(lambda: not _results_threads(), timeout=10, message="the thread to end")
    finally:
        c.close()
    assert thread_errors == []
