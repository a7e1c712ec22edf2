"""broker: the state machine, in-process, with a fake clock (lease expiry without sleeping)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from guidist.core.backends.memory.broker import Broker
from guidist.core.protocol import (
    CMD_OK,
    CMD_STOP,
    CMD_UNKNOWN,
    PLAIN_BELOW,
    SERIES_FIELDS,
    BareArgs,
    TaskState,
    WorkerState,
    classic_result_text,
)
from tests.conftest import FakeClock

LEASE = 2.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000_000.25)  # a quarter past a whole second: buckets are whole seconds


@pytest.fixture
def broker(clock: FakeClock) -> Broker:
    return Broker(lease_timeout=LEASE, max_attempts=3, clock=clock)


def join(b: Broker, name: str = "w") -> str:
    return b.register_worker(name, "host", 1234)["id"]


def ids_of(groups: list) -> list[int]:
    return [tid for _fn, _kw, ids, _args in groups for tid in ids]


def work(b: Broker, wid: str, max_n: int = 1000,
         fn: Callable[[str, tuple], Any] = lambda f, a: a[0] * a[0]) -> list[int]:
    """Claim a batch and complete every task in it; returns the ids run."""
    groups = b.claim(wid, max_n)
    results = [(tid, True, fn(f, args)) for f, _kw, ids, al in groups
               for tid, args in zip(ids, al)]
    assert b.complete(wid, results) == len(results)
    return [r[0] for r in results]


def claim_n(b: Broker, wid: str, n: int) -> list[int]:
    """Claim until n ids are leased or nothing is left, however many claims that takes
    (tasks whose worker died may be handed out one per claim)."""
    got: list[int] = []
    while len(got) < n:
        more = ids_of(b.claim(wid, n - len(got)))
        if not more:
            break
        got += more
    return got


def counts(b: Broker) -> dict[str, int]:
    return {k: v for k, v in b.snapshot().counts.items() if v}


# ---------------------------------------------------------------------- submit and claim


def test_submit_returns_consecutive_ids(broker: Broker) -> None:
    assert broker.submit("square", [(1,), (2,), (3,)]) == (1, 3)
    assert broker.submit("echo", [5, [6, 7]]) == (4, 2)  # bare values and lists become tuples
    assert broker.submit("square", []) == (6, 0)
    assert broker.get_task(5).args == (6, 7)
    assert broker.get_task(4).args == (5,)
    assert counts(broker) == {"queued": 5}
    with pytest.raises(ValueError):
        broker.submit("", [(1,)])
    with pytest.raises(ValueError):
        broker.submit("square", [(1,)], kwargs=[1])  # type: ignore[arg-type]


def test_claim_is_fifo_across_functions(broker: Broker) -> None:
    broker.submit("a", [(1,), (2,)])
    broker.submit("b", [(3,)])
    broker.submit("a", [(4,), (5,)])
    broker.submit("c", [(6,)])
    w = join(broker)
    groups = broker.claim(w, 100)
    assert [(g[0], g[2]) for g in groups] == [("a", [1, 2]), ("b", [3]), ("a", [4, 5]),
                                              ("c", [6])]
    assert [g[3] for g in groups] == [[(1,), (2,)], [(3,)], [(4,), (5,)], [(6,)]]


def test_claim_respects_max_n_and_keeps_order_between_claims(broker: Broker) -> None:
    broker.submit("a", [(i,) for i in range(10)])
    broker.submit("b", [(i,) for i in range(5)])
    w = join(broker)
    seen = []
    for _ in range(5):
        got = ids_of(broker.claim(w, 4))
        assert 0 < len(got) <= 4
        seen += got
        if len(seen) == 15:
            break
    assert seen == list(range(1, 16))
    assert broker.claim(w, 4) == []
    assert counts(broker) == {"running": 1, "claimed": 14}  # inline: one runs, the rest wait


def test_claim_carries_kwargs(broker: Broker) -> None:
    broker.submit("f", [(1,)], kwargs={"k": 2})
    w = join(broker)
    [(fn, kw, ids, args)] = broker.claim(w, 10)
    assert (fn, kw, ids, args) == ("f", {"k": 2}, [1], [(1,)])


def test_claim_long_polls_until_a_task_arrives() -> None:
    b = Broker(lease_timeout=30)  # real clock: the wait is real
    w = join(b)
    got: list = []
    t = threading.Thread(target=lambda: got.append(b.claim(w, 10, wait_s=10.0)))
    start = time.monotonic()
    t.start()
    time.sleep(0.2)  # the claim must be blocked in the server, not returned empty
    assert not got
    b.submit("square", [(3,)])
    t.join(5)
    assert not t.is_alive()
    assert ids_of(got[0]) == [1]
    assert time.monotonic() - start < 5


def test_claim_long_poll_times_out_empty() -> None:
    b = Broker(lease_timeout=30)
    w = join(b)
    start = time.monotonic()
    assert b.claim(w, 10, wait_s=0.3) == []
    assert 0.25 <= time.monotonic() - start < 3


def test_exchange_reports_and_claims_in_one_call(broker: Broker) -> None:
    broker.submit("square", [(i,) for i in range(1, 5)])
    w = join(broker)
    cmd, groups = broker.exchange(w, None, 2)
    assert cmd == CMD_OK and ids_of(groups) == [1, 2]
    cmd, groups = broker.exchange(w, [(1, True, 1), (2, True, 4)], 10)
    assert cmd == CMD_OK and ids_of(groups) == [3, 4]
    assert counts(broker) == {"running": 1, "claimed": 1, "done": 2}
    assert broker.get_task(2).result == 4
    assert broker.get_task(2).state is TaskState.DONE


def test_exchange_from_an_unknown_worker(broker: Broker) -> None:
    assert broker.exchange("nobody#9", None, 10) == (CMD_UNKNOWN, [])
    assert broker.heartbeat("nobody#9") == CMD_UNKNOWN


def test_request_stop_is_heard_on_heartbeat_and_exchange(broker: Broker) -> None:
    broker.submit("square", [(1,)])
    w = join(broker)
    assert broker.heartbeat(w) == CMD_OK
    assert broker.request_stop([w, "nobody#9"]) == 1
    assert broker.heartbeat(w) == CMD_STOP
    assert broker.exchange(w, None, 10) == (CMD_STOP, [])  # a stopping worker gets no work
    assert broker.workers()[0].state is WorkerState.STOPPING


def test_failed_result_keeps_the_error_text(broker: Broker) -> None:
    broker.submit("boom", [(1,)])
    w = join(broker)
    broker.claim(w, 1)
    assert broker.complete(w, [(1, False, "Traceback ...\nValueError: boom 1")]) == 1
    t = broker.get_task(1)
    assert t.state is TaskState.FAILED
    assert t.error.endswith("ValueError: boom 1")
    assert t.attempts == 1 and t.worker == w
    assert counts(broker) == {"failed": 1}


def test_huge_error_text_is_truncated(broker: Broker) -> None:
    broker.submit("boom", [(1,)])
    w = join(broker)
    broker.claim(w, 1)
    broker.complete(w, [(1, False, "x" * 1_000_000)])
    assert len(broker.get_task(1).error) <= 16_000


# ---------------------------------------------------------------------- leases


def test_heartbeat_renews_the_lease(broker: Broker, clock: FakeClock) -> None:
    broker.submit("square", [(1,)])
    w = join(broker)
    broker.claim(w, 1)
    for _ in range(5):
        clock.advance(LEASE * 0.75)
        assert broker.heartbeat(w, 1) == CMD_OK
        assert broker.reap() == 0
    assert counts(broker) == {"running": 1}
    assert broker.workers()[0].current_task == 1


def test_expired_lease_is_requeued_with_its_attempt_counted(broker: Broker,
                                                            clock: FakeClock) -> None:
    broker.submit("square", [(1,), (2,)])
    w1 = join(broker, "w1")
    assert ids_of(broker.claim(w1, 10)) == [1, 2]
    clock.advance(LEASE - 0.1)
    assert broker.reap() == 0
    clock.advance(0.2)
    assert broker.reap() == 2
    assert counts(broker) == {"queued": 2}
    assert broker.get_task(1).state is TaskState.QUEUED
    assert broker.get_task(1).attempts == 1
    snap = broker.snapshot()
    assert snap.requeued == 2
    assert [w.state for w in snap.workers] == [WorkerState.OFFLINE]
    kinds = [e.kind for e in snap.events]
    assert "worker-offline" in kinds and "requeued" in kinds
    # The dead worker cannot claim any more; it is told it is unknown (it will re-register).
    assert broker.exchange(w1, None, 10) == (CMD_UNKNOWN, [])
    w2 = join(broker, "w2")
    # Tasks whose worker died are handed out one per claim, so a task that kills its worker
    # only piles up attempts on itself.
    assert ids_of(broker.claim(w2, 10)) == [1]
    assert ids_of(broker.claim(w2, 10)) == [2]
    assert broker.get_task(1).attempts == 2
    assert broker.get_task(1).worker == w2


def test_dead_after_max_attempts_and_other_tasks_go_on(broker: Broker,
                                                       clock: FakeClock) -> None:
    broker.submit("crash", [(0,)])
    broker.submit("square", [(i,) for i in range(1, 4)])
    for attempt in range(1, 4):
        w = join(broker, f"w{attempt}")
        assert ids_of(broker.claim(w, 1)) == [1]  # requeued tasks go back to the front
        assert broker.get_task(1).attempts == attempt
        clock.advance(LEASE + 0.1)
        assert broker.reap() == 1
    dead = broker.get_task(1)
    assert dead.state is TaskState.DEAD
    assert dead.attempts == 3
    assert "lease expired 3 times" in dead.error
    snap = broker.snapshot()
    assert snap.count("dead") == 1 and snap.requeued == 2
    assert any(e.kind == "dead" for e in snap.events)
    w = join(broker, "healthy")
    assert work(broker, w) == [2, 3, 4]
    assert counts(broker) == {"dead": 1, "done": 3}


def test_late_result_after_the_task_finished_elsewhere_is_ignored(broker: Broker,
                                                                  clock: FakeClock) -> None:
    broker.submit("square", [(7,)])
    slow = join(broker, "slow")
    broker.claim(slow, 1)
    clock.advance(LEASE + 0.1)
    broker.reap()
    fast = join(broker, "fast")
    broker.claim(fast, 1)
    assert broker.complete(fast, [(1, True, "from fast")]) == 1
    # The slow worker wakes up and reports: too late.
    assert broker.complete(slow, [(1, True, "from slow")]) == 0
    cmd, _ = broker.exchange(slow, [(1, False, "late failure")], 10)
    assert cmd == CMD_UNKNOWN
    t = broker.get_task(1)
    assert (t.state, t.result, t.worker, t.attempts) == (TaskState.DONE, "from fast", fast, 2)
    snap = broker.snapshot()
    assert counts(broker) == {"done": 1}
    assert snap.extra["ignored_late"] == 2
    _, finished = broker.results_since(0)
    assert [x.id for x in finished] == [1]  # exactly one result stored


def test_late_result_while_requeued_wins_and_the_queued_copy_is_skipped(
        broker: Broker, clock: FakeClock) -> None:
    broker.submit("square", [(7,), (8,)])
    slow = join(broker, "slow")
    broker.claim(slow, 1)
    clock.advance(LEASE + 0.1)
    broker.reap()
    assert counts(broker) == {"queued": 2}
    assert broker.complete(slow, [(1, True, 49)]) == 1  # first result wins
    assert counts(broker) == {"queued": 1, "done": 1}
    w = join(broker, "other")
    assert ids_of(broker.claim(w, 10)) == [2]  # task 1 is not run twice
    assert broker.list_tasks("queued").total == 0


def test_late_result_while_running_elsewhere_first_wins(broker: Broker,
                                                        clock: FakeClock) -> None:
    broker.submit("square", [(7,)])
    slow = join(broker, "slow")
    broker.claim(slow, 1)
    clock.advance(LEASE + 0.1)
    broker.reap()
    other = join(broker, "other")
    broker.claim(other, 1)
    assert broker.complete(slow, [(1, True, "slow")]) == 1
    assert broker.complete(other, [(1, True, "other")]) == 0
    assert counts(broker) == {"done": 1}
    assert broker.get_task(1).result == "slow"
    assert broker.workers()[1].running == 0  # the lease left the other worker too


def test_unregister_and_release_return_leases_without_counting_an_attempt(
        broker: Broker) -> None:
    broker.submit("square", [(i,) for i in range(4)])
    w = join(broker)
    broker.claim(w, 4)
    assert broker.release(w, [1, 2]) == 2
    assert broker.get_task(1).attempts == 0
    assert counts(broker) == {"queued": 2, "claimed": 2}  # the running one went back too
    assert broker.unregister_worker(w) == 2
    assert counts(broker) == {"queued": 4}
    assert broker.unregister_worker(w) == 0
    assert any(e.kind == "worker-left" for e in broker.events())
    w2 = join(broker)
    assert sorted(ids_of(broker.claim(w2, 10))) == [1, 2, 3, 4]
    assert broker.get_task(3).attempts == 1


# ---------------------------------------------------------------------- control


def test_cancel_queued_tasks_only(broker: Broker, clock: FakeClock) -> None:
    broker.submit("square", [(i,) for i in range(10)])
    w = join(broker)
    broker.claim(w, 2)  # 1 runs, 2 is claimed
    assert broker.cancel([1, 2, 4, 5, 99]) == 2  # leased 1 and 2, unknown 99 are left alone
    assert broker.cancel([4]) == 0
    assert broker.get_task(4).state is TaskState.CANCELLED
    assert counts(broker) == {"queued": 6, "running": 1, "claimed": 1, "cancelled": 2}
    # A requeued task can be cancelled too.
    clock.advance(LEASE + 1)
    broker.reap()
    assert broker.cancel([2]) == 1
    w2 = join(broker)
    assert claim_n(broker, w2, 100) == [1, 3, 6, 7, 8, 9, 10]
    assert counts(broker) == {"running": 1, "claimed": 6, "cancelled": 3}


def test_purge_cancels_everything_queued(broker: Broker, clock: FakeClock) -> None:
    broker.submit("a", [(i,) for i in range(5)])
    broker.submit("b", [(i,) for i in range(5)])
    w = join(broker)
    broker.claim(w, 3)
    broker.cancel([5])
    clock.advance(LEASE + 1)
    broker.reap()  # 1..3 requeued as records
    w2 = join(broker)
    broker.claim(w2, 1)  # 1 runs again
    assert broker.purge() == 8
    assert counts(broker) == {"running": 1, "cancelled": 9}
    assert broker.claim(w2, 100) == []
    assert broker.list_tasks("queued").total == 0
    broker.submit("a", [(1,)])
    assert ids_of(broker.claim(w2, 100)) == [11]


def test_pause_and_resume(broker: Broker) -> None:
    broker.submit("square", [(1,)])
    w = join(broker)
    broker.pause()
    assert broker.snapshot().paused
    assert broker.claim(w, 10) == []
    with pytest.raises(queue.Empty):
        broker.classic_get("1@h", block=False)
    broker.resume()
    assert not broker.snapshot().paused
    assert ids_of(broker.claim(w, 10)) == [1]
    assert [e.message for e in broker.events() if e.kind == "control"] == [
        "dispatch paused", "dispatch resumed"]


def test_resume_wakes_a_waiting_claim() -> None:
    b = Broker()
    b.submit("square", [(1,)])
    b.pause()
    w = join(b)
    got: list = []
    t = threading.Thread(target=lambda: got.append(b.claim(w, 1, wait_s=10)))
    t.start()
    time.sleep(0.2)
    assert not got
    b.resume()
    t.join(5)
    assert ids_of(got[0]) == [1]


def test_retry_one_and_all(broker: Broker, clock: FakeClock) -> None:
    broker.submit("boom", [(i,) for i in range(3)])
    broker.submit("square", [(9,)])
    w = join(broker)
    broker.claim(w, 3)
    broker.complete(w, [(1, False, "e1"), (2, False, "e2"), (3, True, "ok")])
    assert broker.retry([3, 99]) == 0  # done or unknown tasks are not retried
    assert broker.retry([1]) == 1
    t = broker.get_task(1)
    assert (t.state, t.attempts, t.error) == (TaskState.QUEUED, 1, None)  # attempts go on
    assert counts(broker) == {"queued": 2, "failed": 1, "done": 1}
    # make a dead one: claim 4 and let its lease expire max_attempts times
    for _ in range(3):
        wx = join(broker)
        broker.claim(wx, 1)  # 1 first (lowest id), then 4 ... take both
        broker.claim(wx, 1)
        clock.advance(LEASE + 1)
        broker.reap()
    assert counts(broker) == {"failed": 1, "done": 1, "dead": 2}
    assert broker.retry_all() == 3
    assert counts(broker) == {"queued": 3, "done": 1}
    w2 = join(broker)
    assert sorted(ids_of(broker.claim(w2, 10))) == [1, 2, 4]  # retried go to the back
    # 3 expiries, then a retry: the fourth hand-out (the lease rules count from the retry)
    assert broker.get_task(4).attempts == 4 and broker.get_task(1).attempts == 5


# ---------------------------------------------------------------------- monitoring


def test_snapshot_series_and_events(clock: FakeClock) -> None:
    clock.now = 5000.1
    b = Broker(lease_timeout=LEASE, clock=clock)
    w = join(b)
    b.submit("square", [(i,) for i in range(10)])
    b.claim(w, 10)
    b.complete(w, [(i, True, 0) for i in range(1, 7)] + [(7, False, "x")])
    clock.now = 5001.5
    b.submit("square", [(1,), (2,)])
    clock.now = 5003.2  # second 5002 had nothing; it still gets a point
    snap = b.snapshot()
    # (t, submitted, done, failed, requeued, queued, running, workers, claimed); the gauges
    # are each second's peaks: 10 queued before the claim, then 1 running and 9 claimed.
    assert snap.series[-3:] == (
        (5000, 10, 6, 1, 0, 10, 1, 1, 9),
        (5001, 2, 0, 0, 0, 2, 0, 1, 3),
        (5002, 0, 0, 0, 0, 2, 0, 1, 3),
    )
    assert snap.throughput == pytest.approx(0.7)
    assert snap.submitted == 12
    assert snap.counts["done"] == 6 and snap.counts["failed"] == 1
    assert snap.counts["claimed"] == 3 and snap.counts["queued"] == 2
    # Cursors: only what is new comes back.
    later = b.snapshot(series_since=5001, events_since=snap.events[-1].seq)
    assert [p[0] for p in later.series] == [5002]
    assert later.events == ()
    b.pause()
    assert [e.message for e in b.snapshot(events_since=snap.events[-1].seq).events] == [
        "dispatch paused"]


def test_events_are_a_bounded_ring(broker: Broker) -> None:
    for i in range(3000):
        broker.register_worker(f"w{i}", "h", i)
    evs = broker.events()
    assert len(evs) <= 1000
    assert evs[-1].seq == 3000


def test_snapshot_is_cheap_whatever_the_task_count() -> None:
    b = Broker()
    b.submit("square", [(i,) for i in range(200_000)])
    start = time.perf_counter()
    for _ in range(100):
        b.snapshot()
    per_call = (time.perf_counter() - start) / 100
    assert per_call < 0.005, f"snapshot took {per_call * 1e3:.1f} ms with 200k queued"


def _mixed_ledger(broker: Broker, clock: FakeClock) -> None:
    """1 running, 2 claimed, 2 queued, 5 done, 2 failed, 1 cancelled."""
    broker.submit("square", [(i,) for i in range(1, 9)])  # ids 1..8
    broker.submit("echo", [("x",), ("y",), ("z",)])  # ids 9..11
    broker.submit("boom", [(1,), (2,)])  # ids 12..13
    w = join(broker, "first")
    broker.claim(w, 6)  # 1..6
    broker.complete(w, [(i, True, i * i) for i in (1, 2, 3, 4)])
    clock.advance(LEASE + 1)
    broker.reap()  # 5 and 6 are requeued as records
    w2 = join(broker, "second")
    assert claim_n(broker, w2, 3) == [5, 6, 7]
    broker.complete(w2, [(7, True, 49)])
    broker.cancel([10])
    assert ids_of(broker.claim(w2, 1)) == [8]
    w3 = join(broker, "third")
    broker.claim(w3, 2)  # 9 and 11 (10 is cancelled)
    broker.complete(w3, [(9, False, "nope"), (11, False, "ValueError: boom")])
    broker.claim(w3, 0)


def test_list_tasks_pages_across_segments(broker: Broker, clock: FakeClock) -> None:
    _mixed_ledger(broker, clock)
    full = broker.list_tasks(limit=1000)
    c = broker.snapshot().counts
    assert full.total == sum(c.values()) == len(full.tasks) == 13
    states = [t.state.value for t in full.tasks]
    # Newest activity first: running, claimed (latest first), every finished task latest
    # first whatever its state (a failure is not buried under older successes), then the
    # queued ones in the order they will run.
    assert states[:3] == ["running"] + ["claimed"] * 2 and states[-2:] == ["queued"] * 2
    assert [t.id for t in full.tasks[:3]] == [5, 8, 6]
    finished = full.tasks[3:-2]
    assert [t.finished for t in finished] == sorted((t.finished for t in finished),
                                                    reverse=True)
    assert [t.id for t in finished] == [7, 11, 9, 10, 4, 3, 2, 1]
    assert [t.id for t in full.tasks if t.state is TaskState.QUEUED] == [12, 13]
    for limit in (1, 2, 3, 4, 5, 7):
        pages = []
        for offset in range(0, full.total + limit, limit):
            page = broker.list_tasks(offset=offset, limit=limit)
            assert page.total == full.total and page.offset == offset
            assert len(page.tasks) <= limit
            pages.extend(page.tasks)
        assert [t.id for t in pages] == [t.id for t in full.tasks], f"limit {limit}"


def test_list_tasks_by_state_pages_through_batches_and_holes(broker: Broker) -> None:
    broker.submit("a", [(i,) for i in range(50)])  # 1..50
    broker.submit("b", [(i,) for i in range(50)])  # 51..100
    broker.cancel(range(2, 100, 3))
    w = join(broker)
    broker.claim(w, 5)
    expected = [t for t in range(1, 101) if (t - 2) % 3 != 0][5:]
    page = broker.list_tasks("queued", limit=10_000)
    assert page.total == len(expected)
    assert [t.id for t in page.tasks] == expected
    got = []
    for offset in range(0, len(expected), 7):
        got += [t.id for t in broker.list_tasks(TaskState.QUEUED, offset, 7).tasks]
    assert got == expected
    assert broker.list_tasks("queued", offset=len(expected)).tasks == ()
    assert len(broker.list_tasks("cancelled", limit=10).tasks) == 10


def test_list_tasks_search(broker: Broker, clock: FakeClock) -> None:
    _mixed_ledger(broker, clock)
    assert {t.id for t in broker.list_tasks(search="echo").tasks} == {9, 10, 11}
    assert [t.id for t in broker.list_tasks(search="BOOM").tasks] == [11, 12, 13]
    assert [t.id for t in broker.list_tasks("failed", search="boom").tasks] == [11]
    page = broker.list_tasks(search="square", offset=2, limit=3)
    assert page.total == 8 and len(page.tasks) == 3
    assert broker.list_tasks(search="no such text").total == 0


def test_listing_stays_consistent_when_a_requeued_task_fails_late_and_is_retried(
        broker: Broker, clock: FakeClock) -> None:
    broker.submit("boom", [(1,)])
    slow = join(broker, "slow")
    broker.claim(slow, 1)
    clock.advance(LEASE + 1)
    broker.reap()  # task 1 waits in its lane as a record
    broker.complete(slow, [(1, False, "late failure")])  # ... and fails late
    assert broker.retry([1]) == 1
    page = broker.list_tasks("queued", limit=100)
    assert page.total == 1
    assert [t.id for t in page.tasks] == [1]
    w = join(broker)
    assert ids_of(broker.claim(w, 10)) == [1]
    assert broker.claim(w, 10) == []


def test_results_since_cursor(broker: Broker) -> None:
    assert broker.results_since(0) == (0, [])
    broker.submit("square", [(i,) for i in range(1, 11)])
    w = join(broker)
    broker.claim(w, 10)
    broker.complete(w, [(i, True, i * i) for i in range(1, 6)])
    cursor, got = broker.results_since(0)
    assert cursor == 5 and [t.id for t in got] == [1, 2, 3, 4, 5]
    assert broker.results_since(cursor) == (cursor, [])
    broker.complete(w, [(i, i % 2 == 0, "v") for i in range(6, 11)])
    cursor2, got = broker.results_since(cursor, limit=3)
    assert [t.id for t in got] == [6, 7, 8]
    assert [t.state.value for t in got] == ["done", "failed", "done"]
    cursor3, got = broker.results_since(cursor2)
    assert [t.id for t in got] == [9, 10]
    assert broker.results_since(cursor3) == (cursor3, [])


def test_results_since_a_cursor_that_fell_out_of_memory() -> None:
    b = Broker(keep_done=10)  # the recent ring keeps at least 1000
    b.submit("square", [(i,) for i in range(3000)])
    w = join(b)
    b.complete(w, [(t, True, 0) for t in ids_of(b.claim(w, 3000))])
    cursor, got = b.results_since(5, limit=5)
    assert [t.id for t in got] == [2001, 2002, 2003, 2004, 2005]
    assert cursor == 2005


# ---------------------------------------------------------------------- memory bounds


def test_memory_stays_bounded_when_200k_tasks_pass(clock: FakeClock) -> None:
    b = Broker(lease_timeout=LEASE, keep_done=100, keep_failed=50, keep_cancelled=20,
               clock=clock)
    w = join(b)
    for _chunk in range(200):
        first, n = b.submit("square", [(i,) for i in range(1000)])
        b.cancel([first])  # one cancelled per chunk
        results = []
        for _fn, _kw, ids, _a in b.claim(w, 1000):
            results += [(t, t % 97 != 0, 1) for t in ids]  # about 1% fail
        b.complete(w, results)
        clock.advance(0.3)
    snap = b.snapshot()
    assert snap.submitted == 200_000
    assert snap.count("cancelled") == 200
    assert snap.count("failed") == sum(1 for t in range(1, 200_001)
                                       if t % 97 == 0 and (t - 1) % 1000 != 0)
    assert snap.count("done") == 200_000 - 200 - snap.count("failed")
    assert snap.count("queued") == snap.leased == 0
    # In-memory stores are at their caps, the queue structures are empty.
    assert len(b._finished[TaskState.DONE]) == 100
    assert len(b._finished[TaskState.FAILED]) == 50
    assert len(b._finished[TaskState.CANCELLED]) == 20
    assert len(b._recent) <= 1000
    assert not b._leased and not b._lane_records
    assert len(b._batches) <= 1 and sum(len(lane) for lane in b._lanes.values()) <= 1
    assert len(b._series) <= 3600 and len(b._events) <= 1000
    assert b.get_task(1) is None  # pruned: the journal keeps those
    assert b.get_task(200_000).state is TaskState.DONE
    assert b.list_tasks("done", limit=1000).total == 100


# ---------------------------------------------------------------------- classic facade


def test_classic_round_trip(broker: Broker) -> None:
    broker.submit("square", [(3,)], classic=True)  # what get_task_queue().put(3) does
    assert broker.classic_get("1@127.0.0.1", block=False) == 3
    assert counts(broker) == {"running": 1}
    broker.classic_put_result("1@127.0.0.1", "3 * 3 = 9")
    assert counts(broker) == {"done": 1}
    assert broker.classic_results.get_nowait() == "3 * 3 = 9"
    assert broker.classic_results.empty()
    w = broker.workers()[0]
    assert (w.kind, w.host, w.done) == ("classic", "127.0.0.1", 1)


def test_classic_get_empty(broker: Broker) -> None:
    with pytest.raises(queue.Empty):
        broker.classic_get("1@h", block=False)
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        broker.classic_get("1@h", timeout=0.2)
    assert time.monotonic() - start >= 0.15


def test_classic_get_only_hands_out_the_default_task(broker: Broker) -> None:
    broker.submit("echo", [(1,)])
    broker.submit("square", [(2, 3)])
    assert broker.classic_get("1@h", block=False) == (2, 3)  # several args come as a tuple
    with pytest.raises(queue.Empty):
        broker.classic_get("1@h", block=False)
    assert counts(broker) == {"queued": 1, "running": 1}


def test_guidist_results_of_square_tasks_go_to_the_classic_result_queue_formatted(
        broker: Broker) -> None:
    broker.submit("square", [(4,)], classic=True)  # a tutorial master put 4
    w = join(broker)
    broker.complete(w, [(t, True, 16) for t in ids_of(broker.claim(w, 1))])
    assert broker.classic_results.get_nowait() == "4 * 4 = 16"
    assert classic_result_text("square", (4,), 16) == "4 * 4 = 16"
    assert classic_result_text("echo", (4,), 16) == 16
    broker.submit("boom", [(5,)], classic=True)
    broker.complete(w, [(t, False, "Traceback\nValueError: boom 5")
                        for t in ids_of(broker.claim(w, 1))])
    assert broker.classic_results.get_nowait() == "task 2 failed: ValueError: boom 5"


def test_tutorial_worker_results_for_window_tasks_do_not_pile_up_in_the_result_queue(
        broker: Broker) -> None:
    """A task submitted through the batched API and run by a tutorial worker is counted done;
    its result string is not pushed onto the classic result queue, which only carries
    results of classic submissions (nobody would ever read it: memory would grow per task)."""
    broker.submit("square", [(i,) for i in range(100)])  # from the window or guidist submit
    for _ in range(100):
        n = broker.classic_get("1@h", block=False)
        broker.classic_put_result("1@h", "%d * %d = %d" % (n, n, n * n))
    assert counts(broker) == {"done": 100}
    assert broker.get_task(5).result == "4 * 4 = 16"
    assert broker.classic_results.qsize() == 0


def test_classic_put_without_a_lease_is_a_plain_queue(broker: Broker) -> None:
    broker.classic_put_result("1@h", "hello")
    assert broker.classic_results.get_nowait() == "hello"


def test_classic_connection_closed_requeues_its_task(broker: Broker) -> None:
    broker.submit("square", [(3,)], classic=True)
    assert broker.classic_get("7@h", block=False) == 3
    broker.connection_closed("7@h")
    broker.connection_closed("8@h")  # not a classic worker: nothing happens
    t = broker.get_task(1)
    assert (t.state, t.attempts) == (TaskState.QUEUED, 1)
    assert broker.workers() == ()
    assert broker.classic_get("9@h", block=False) == 3
    assert broker.get_task(1).attempts == 2


def test_series_gauges_keep_the_peak_of_a_burst_inside_the_second(clock: FakeClock) -> None:
    """A burst that is queued, run and done within one second still shows in the plots."""
    b = Broker(lease_timeout=LEASE, clock=clock)
    w = b.register_worker("w", "h", 1, "thread", 8)["id"]
    clock.now = 5_000_000.1
    b.snapshot()  # any call opens the second the burst falls in
    b.submit("sleep", [(0.01,)] * 40)
    groups = b.claim(w, 40)
    b.complete(w, [(i, True, None, clock.now, 0.01) for i in ids_of(groups)])
    clock.advance(1.0)
    b.submit("sleep", [(0.01,)])  # the first call of the next second closes the point
    point = dict(zip(SERIES_FIELDS, b.snapshot().series[-1]))
    assert (point["t"], point["queued"], point["running"], point["claimed"]) == \
        (5_000_000, 40, 8, 32)
    assert point["done"] == 40


def test_a_claim_of_one_argument_tasks_carries_the_values_bare(broker: Broker) -> None:
    wid = join(broker)
    n = PLAIN_BELOW + 8
    broker.submit("square", list(range(1, n + 1)))  # one argument each: kept as bare values
    broker.submit("pair", [(1, 2), (3, 4)])
    groups = broker.claim(wid, 100)
    [(fn1, _, ids1, bare), (fn2, _, ids2, tuples)] = groups
    assert (fn1, ids1, fn2, ids2) == ("square", list(range(1, n + 1)), "pair", [n + 1, n + 2])
    assert type(bare) is BareArgs and bare == [(v,) for v in range(1, n + 1)]  # 1-tuples
    assert bare.values() == list(range(1, n + 1))
    assert type(tuples) is list and tuples == [(1, 2), (3, 4)]
    # A task given back is handed out again as the tuple it was.
    broker.release(wid, [2])
    [(_, _, [tid], args)] = broker.claim(wid, 1)
    assert tid == 2 and list(args) == [(2,)]


def test_a_small_claim_travels_as_plain_lists(broker: Broker) -> None:
    """Below PLAIN_BELOW tasks the bare and range forms cost more to pickle than they save."""
    wid = join(broker)
    broker.submit("square", [1, 2, 3])
    [(_, _, ids, args)] = broker.claim(wid, 10)
    assert type(ids) is list and ids == [1, 2, 3]
    assert type(args) is list and args == [(1,), (2,), (3,)]
    broker.complete(wid, [(t, True, t * t, 1.0, 0.1) for t in ids])
    assert [broker.get_task(t).result for t in ids] == [1, 4, 9]


def _states(b: Broker, ids: list[int]) -> list[str]:
    return [b.get_task(t).state.value for t in ids]


def test_a_claimed_slice_answers_per_task_through_partial_reports_starts_and_releases(
        broker: Broker) -> None:
    """A claim is leased as one slice; every task of it still starts, is reported, given
    back, looked up and listed on its own, and a report is taken whole only when it is
    exactly what the slice leases."""
    b = broker
    b.submit("square", [(i,) for i in range(10)])  # 1..10
    w = join(b)
    assert ids_of(b.claim(w, 10)) == list(range(1, 11))  # 1 starts at once
    assert b.heartbeat(w, current_task=5) == CMD_OK  # one in the middle starts
    assert b.release(w, [7]) == 1  # one from the middle goes back
    assert _states(b, [1, 2, 5, 7, 10]) == ["running", "claimed", "running", "queued", "claimed"]
    assert [t.id for t in b.list_tasks("claimed").tasks] == [10, 9, 8, 6, 4, 3, 2]
    assert [t.id for t in b.list_tasks("running").tasks] == [5, 1]
    timed = [(t, True, t * t, 1.0 + t, 0.5) for t in range(1, 11)]
    assert b.complete(w, timed[:3]) == 3  # a partial report: the front of the slice
    assert _states(b, [3, 4, 5]) == ["done", "claimed", "running"]
    assert (b.get_task(3).result, b.get_task(3).started) == (9, 4.0)
    # The rest but the released one, one of them twice: exactly one result each.
    rest = [timed[i] for i in (3, 4, 5, 7, 7, 8, 9)]
    assert b.complete(w, rest) == 6
    assert b.snapshot().extra["ignored_late"] == 1  # the second report of task 8
    assert _states(b, [4, 5, 6, 8, 9, 10]) == ["done"] * 6
    assert b.get_task(7).state is TaskState.QUEUED
    assert b.snapshot().leased == 0 and len(b._leased) == 0
    assert ids_of(b.claim(w, 10)) == [7]  # alone: it went back
    assert b.complete(w, [timed[6]]) == 1
    snap = b.snapshot()
    assert (snap.count("done"), snap.leased, snap.count("queued")) == (10, 0, 0)
    assert [t.id for t in b.list_tasks("done", limit=3).tasks] == [7, 10, 9]
    assert not b._leased.order and not b._leased._starts and not b._leased._own


def test_one_report_spanning_two_claims_and_a_failure_keeps_every_result(
        broker: Broker) -> None:
    b = broker
    b.submit("square", [(i,) for i in range(8)])  # 1..8
    w = join(b)
    assert ids_of(b.claim(w, 4)) + ids_of(b.claim(w, 4)) == list(range(1, 9))
    results = [(t, t != 6, t * t if t != 6 else "Traceback\nValueError: six", 1.0, 0.1)
               for t in range(1, 9)]
    assert b.complete(w, results) == 8
    assert _states(b, list(range(1, 9))) == ["done"] * 5 + ["failed"] + ["done"] * 2
    assert b.get_task(8).result == 64 and b.get_task(6).error.endswith("six")
    assert b.snapshot().leased == 0 and b.workers()[0].done == 7


def test_a_worker_that_goes_away_returns_what_its_slices_still_lease(
        broker: Broker, clock: FakeClock) -> None:
    b = broker
    b.submit("square", [(i,) for i in range(6)])  # 1..6
    b.cancel([3])  # a hole inside the claimed run
    w = join(b)
    assert ids_of(b.claim(w, 10)) == [1, 2, 4, 5, 6]
    assert b.complete(w, [(2, True, 1, 1.0, 0.1)]) == 1  # from the middle, alone
    clock.advance(LEASE + 1)
    assert b.reap() == 4
    assert _states(b, [1, 2, 3, 4, 5, 6]) == ["queued", "done", "cancelled", "queued", "queued",
                                              "queued"]
    assert b.get_task(4).attempts == 1 and len(b._leased) == 0
    w2 = join(b, "w2")
    assert sorted(claim_n(b, w2, 4)) == [1, 4, 5, 6]


def test_results_whose_ids_column_is_a_range_are_taken_like_a_tuple_of_them(
        broker: Broker) -> None:
    """A worker may send a contiguous run of results with its ids as a range (a few bytes
    instead of an int each): the broker takes it whole, and a range that is not exactly
    what it leases goes result by result."""
    import pickle
    from array import array

    from guidist.core.payload import _RESULT_COLUMNS

    def columns(ids: range) -> bytes:
        times = array("d", [1.0] * len(ids)).tobytes()
        return pickle.dumps((_RESULT_COLUMNS, ids, None, [t * 2 for t in ids], times, times))

    b = broker
    n = PLAIN_BELOW + 8  # a claim this big sends its ids as a range
    b.submit("square", [(i,) for i in range(n)])  # 1..n
    w = join(b)
    groups = b.claim(w, n)
    assert ids_of(groups) == list(range(1, n + 1))
    assert pickle.loads(pickle.dumps(groups))[0][2] == range(1, n + 1)  # as a worker gets it
    assert b.complete(w, columns(range(1, 5))) == 4  # the front, the started one in it
    # 4 again, and n + 1 was never claimed
    assert b.complete(w, columns(range(4, n + 2))) == n - 4
    assert _states(b, list(range(1, n + 1))) == ["done"] * n
    assert [b.get_task(t).result for t in (1, 4, n)] == [2, 8, 2 * n]
    assert b.snapshot().leased == 0 and b.snapshot().extra["ignored_late"] == 2


def test_leases_stay_exact_through_a_random_mix_of_claims_starts_reports_and_expiries(
        clock: FakeClock) -> None:
    """Slices are split by starts, releases, partial, repeated and shuffled reports and lease
    expiries in a random (seeded, bounded) order; after every step each task's state, and
    the counts of what is leased, agree with a plain model kept per task."""
    import random

    from guidist.core.payload import pack_results

    rng = random.Random(17)
    b = Broker(lease_timeout=LEASE, max_attempts=1000, clock=clock)
    workers = [join(b, f"w{i}") for i in range(3)]
    # id -> "batch", "record" (queued again), the worker leasing it, "done" or "failed"
    model: dict[int, Any] = {}
    results: dict[int, int] = {}

    def leased_by(wid: str) -> list[int]:
        return [t for t, s in model.items() if s == wid]

    for step in range(400):
        op = rng.random()
        if op < 0.1 or not model:
            first, n = b.submit("square", [(i,) for i in range(rng.randint(1, 60))])
            model.update(dict.fromkeys(range(first, first + n), "batch"))
        elif op < 0.35:
            wid = rng.choice(workers)
            if {w.id: w for w in b.workers()}[wid].state is WorkerState.OFFLINE:
                workers[workers.index(wid)] = wid = join(b, f"n{step}")
            got = ids_of(b.claim(wid, rng.randint(1, 40)))
            assert all(model[t] in ("batch", "record") for t in got)
            model.update(dict.fromkeys(got, wid))
        elif op < 0.45:
            wid = rng.choice(workers)
            mine = leased_by(wid)
            if mine:
                b.heartbeat(wid, current_task=rng.sample(mine, min(len(mine), 2)))
        elif op < 0.55:
            wid = rng.choice(workers)
            back = [t for t in leased_by(wid) if rng.random() < 0.3]
            assert b.release(wid, back) == len(back)
            model.update(dict.fromkeys(back, "record"))
        elif op < 0.9:
            wid = rng.choice(workers)
            mine = leased_by(wid)
            if not mine:
                continue
            k = rng.randint(1, len(mine))
            picked = mine[:k] if rng.random() < 0.6 else rng.sample(mine, k)  # front or any
            picked += rng.sample(picked, min(len(picked), rng.randint(0, 2)))  # twice
            report = [(t, t % 11 != 0, t * 3, 1.0, 0.5) for t in picked]
            blob = pack_results(report) if rng.random() < 0.7 else report
            want = len(set(picked))
            assert b.complete(wid, blob) == want
            for t in set(picked):
                model[t] = "done" if t % 11 else "failed"
                results[t] = t * 3
        else:  # one worker falls silent: its leases expire
            wid = rng.choice(workers)
            for other in workers:
                if other != wid:
                    b.heartbeat(other)
            clock.advance(LEASE + 1)
            for other in workers:
                if other != wid:
                    b.heartbeat(other)
            b.reap()
            model.update(dict.fromkeys(leased_by(wid), "record"))
        leased = [t for t, s in model.items() if s not in ("batch", "record", "done", "failed")]
        assert b.snapshot().leased == len(leased) == len(b._leased), step
        for info in b.workers():
            assert info.claimed + info.running == len(leased_by(info.id)), step
        for t, s in model.items():
            task = b.get_task(t)
            if s in ("batch", "record"):
                assert task.state is TaskState.QUEUED, (step, t)
            elif s == "done":
                assert (task.state, task.result) == (TaskState.DONE, results[t]), (step, t)
            elif s == "failed":
                assert task.state is TaskState.FAILED, (step, t)
            else:
                assert task.state in (TaskState.CLAIMED, TaskState.RUNNING), (step, t)
                assert task.worker == s, (step, t)
