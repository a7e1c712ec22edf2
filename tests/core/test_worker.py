"""worker: the loop in-process against a real server, result checks, and the classic fallback."""

from __future__ import annotations

import queue
import threading

from guidist.core.client import Client
from guidist.core.server import ServerProcess
from guidist.core.worker import (
    EXIT_GAVE_UP,
    EXIT_OK,
    Worker,
    WorkerConfig,
    results_are_picklable,
    results_within,
)
from tests.conftest import TEST_KEY, wait_for


def test_results_are_picklable_replaces_only_the_bad_ones() -> None:
    out = results_are_picklable([(1, True, 5), (2, True, threading.Lock()), (3, False, "err")])
    assert out[0] == (1, True, 5) and out[2] == (3, False, "err")
    tid, ok, text = out[1]
    assert (tid, ok) == (2, False) and "could not be sent" in text and "lock" in text


def test_results_within_replaces_oversized_ones() -> None:
    out = results_within([(1, True, b"x" * 100), (2, True, b"x" * 5000)], 1000)
    assert out[0] == (1, True, b"x" * 100)
    assert out[1][:2] == (2, False) and "PayloadTooLarge" in out[1][2]


def test_worker_loop_in_process_with_max_tasks(server: ServerProcess, client: Client) -> None:
    assert server.address is not None
    ids = client.submit_many("square", range(30))
    worker = Worker(WorkerConfig(server.address, TEST_KEY.encode(), name="inproc",
                                 prefetch=10, max_tasks=30, give_up_after=5))
    assert worker.run() == EXIT_OK
    assert worker.processed == 30
    assert all(client.get_task(i).result == n * n for n, i in enumerate(ids))
    assert client.workers() == ()  # it said goodbye


def test_request_stop_ends_an_idle_worker(server: ServerProcess, client: Client) -> None:
    assert server.address is not None
    worker = Worker(WorkerConfig(server.address, TEST_KEY.encode(), wait_s=0.2,
                                 give_up_after=5))
    codes: list[int] = []
    t = threading.Thread(target=lambda: codes.append(worker.run()))
    t.start()
    wait_for(lambda: len(client.workers()) == 1, timeout=10, message="the worker to register")
    assert client.request_stop([client.workers()[0].id]) == 1  # from the window, say
    t.join(10)
    assert not t.is_alive() and codes == [EXIT_OK]


class _FakeQueue:
    def __init__(self, items: list, put_error: BaseException | None = None) -> None:
        self.items, self.put_error, self.got = items, put_error, []

    def get(self, timeout: float | None = None) -> object:
        if not self.items:
            raise queue.Empty
        return self.items.pop(0)

    def put(self, value: object) -> None:
        if self.put_error is not None:
            raise self.put_error
        self.got.append(value)


class _FakeConnection:
    """Stands in for a tutorial master's manager connection: just its two queues."""

    def __init__(self, tasks: _FakeQueue, results: _FakeQueue) -> None:
        self.tasks, self.results = tasks, results

    def task_queue(self) -> _FakeQueue:
        return self.tasks

    def result_queue(self) -> _FakeQueue:
        return self.results


def _classic_worker(tasks: _FakeQueue, results: _FakeQueue, **config: object) -> Worker:
    w = Worker(WorkerConfig(("127.0.0.1", 1), b"k" * 10, wait_s=0.01, **config))  # type: ignore
    w._client.connection = _FakeConnection(tasks, results)  # type: ignore[assignment]
    return w


def test_classic_fallback_formats_like_the_tutorial() -> None:
    results = _FakeQueue([])
    w = _classic_worker(_FakeQueue([3, 4]), results, max_tasks=2)
    assert w._run_classic() == EXIT_OK
    assert results.got == ["3 * 3 = 9", "4 * 4 = 16"]


def test_classic_fallback_losing_the_master_while_reporting_exits_cleanly() -> None:
    """The master shuts down between the worker's get and put: exit 3 like a lost get."""
    w = _classic_worker(_FakeQueue([3]), _FakeQueue([], put_error=EOFError()), max_tasks=5)
    assert w._run_classic() == EXIT_GAVE_UP
    w = _classic_worker(_FakeQueue([3]), _FakeQueue([], put_error=BrokenPipeError()))
    assert w._run_classic() == EXIT_GAVE_UP
