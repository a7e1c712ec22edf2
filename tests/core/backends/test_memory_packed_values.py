"""The memory broker keeps a worker's result values packed until one is read; every reader
of a done value decodes it then, once, and reads the same values as before."""

from __future__ import annotations

from pathlib import Path

from guidist.core.backends.memory.broker import Broker
from guidist.core.backends.memory.journal import open_journaled_broker
from guidist.core.packed_values import PackedValues
from guidist.core.payload import pack, pack_results, submission_args
from guidist.core.protocol import PLAIN_BELOW, TaskState, classic_result_text
from tests.core.test_packed_values import UNPICKLED, Counted

N = PLAIN_BELOW + 8  # a claim this big travels as a range, as a real one does


def _claimed(b: Broker, n: int = N, name: str = "w") -> tuple[str, int]:
    """n tasks submitted in one job and claimed by a new worker: (worker, job id)."""
    UNPICKLED.clear()
    first, _n = b.submit("square", pack(submission_args(list(range(n)))))
    wid = b.register_worker(name, "h", 1)["id"]
    groups = b.claim(wid, n)
    assert [t for g in groups for t in g[2]] == list(range(first, first + n))
    return wid, b.get_task(first).job  # type: ignore[union-attr]


def _report(ids: range) -> bytes:
    return pack_results([(t, True, Counted(t), 100.0 + t, 0.5) for t in ids])


def _kept(b: Broker) -> list:
    return [batch.results for batch in b._done.entries]  # type: ignore[attr-defined]


def test_a_packed_value_reads_the_same_through_every_reader_and_decodes_once() -> None:
    b = Broker(keep_done=1000)
    wid, job = _claimed(b)
    cursor = b.result_cursor()
    _cmd, _groups = b.exchange(wid, _report(range(1, N + 1)), 0)  # the usual report
    snap = b.snapshot()
    assert snap.count("done") == N and snap.leased == 0
    assert UNPICKLED == [] and all(type(v) is PackedValues for v in _kept(b))
    want = {t: Counted(t) for t in range(1, N + 1)}
    assert b.get_task(N).result == want[N]  # the first read decodes the report's column
    assert sorted(UNPICKLED) == list(range(1, N + 1))
    assert [t.result for t in b.get_tasks([1, 2, N])] == [want[1], want[2], want[N]]
    page = b.list_tasks("done", limit=N)
    assert {t.id: t.result for t in page.tasks} == want
    assert [t.id for t in b.list_tasks(search="square", limit=3).tasks] == [N, N - 1, N - 2]
    _cursor, tasks = b.results_since(0, limit=2 * N)
    assert {t.id: t.result for t in tasks} == want
    assert all(t.state is TaskState.DONE and t.started == 100.0 + t.id for t in tasks)
    _cursor, outcomes, gap = b.wait_results(cursor, [job], timeout=0)
    assert not gap and {o[0]: o[2] for o in outcomes} == want
    assert sorted(UNPICKLED) == list(range(1, N + 1))  # every reader: still decoded once


def test_a_report_is_stored_without_unpickling_a_value_until_one_is_read() -> None:
    """Storing a report unpickles none of its values (each unpickling is noted here); the
    first read unpickles that report's values, no other's. Classic tasks read theirs at
    once: the tutorial's result text is made when they finish."""
    b = Broker()
    wid, _job = _claimed(b)
    assert b.complete(wid, _report(range(1, 5))) == 4  # the started one and three more
    assert b.complete(wid, _report(range(5, N + 1))) == N - 4
    assert UNPICKLED == [] and b.snapshot().count("done") == N
    assert b.get_task(3).result == Counted(3) and sorted(UNPICKLED) == [1, 2, 3, 4]
    first, n = b.submit("square", [(v,) for v in range(N)], classic=True)
    w2 = b.register_worker("w2", "h", 2)["id"]
    ids = [t for g in b.claim(w2, N) for t in g[2]]
    assert ids == list(range(first, first + n))
    b.complete(w2, pack_results([(t, True, (t - first) ** 2, 1.0, 0.5) for t in ids]))
    assert [b.classic_results.get(timeout=1) for _ in ids] == [
        classic_result_text("square", (v,), v * v) for v in range(N)]


def test_a_report_mostly_failed_keeps_its_few_successes_decoded() -> None:
    """The bytes of a report stay on the server only while its successes hold at least half
    of its values: the tracebacks of a mostly failed one are not kept behind a success."""
    b = Broker()
    wid, _job = _claimed(b)
    items = [(t, t <= 3, Counted(t) if t <= 3 else f"Traceback {t}", 1.0, 0.5)
             for t in range(1, N + 1)]
    assert b.complete(wid, pack_results(items)) == N
    assert b.snapshot().count("done") == 3 and b.snapshot().count("failed") == N - 3
    assert all(type(v) is tuple for v in _kept(b))
    assert [b.get_task(t).result for t in (1, 2, 3)] == [Counted(1), Counted(2), Counted(3)]
    assert b.get_task(N).error == f"Traceback {N}"


def test_late_and_repeated_results_in_a_packed_report_read_right() -> None:
    b = Broker()
    wid, _job = _claimed(b)
    assert b.complete(wid, _report(range(1, 11))) == 10
    # 5..10 again (already done: ignored) and the rest once
    assert b.complete(wid, _report(range(5, N + 1))) == N - 10
    assert [b.get_task(t).result for t in (1, 5, 10, 11, N)] == [
        Counted(t) for t in (1, 5, 10, 11, N)]
    assert b.snapshot().extra["ignored_late"] == 6


def test_a_packed_value_reads_back_after_the_journal_restored_it(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    b = open_journaled_broker(path, keep_done=5)
    wid, _job = _claimed(b)
    assert b.complete(wid, _report(range(1, N + 1))) == N
    assert UNPICKLED == []  # journaled as the bytes it came as
    b.close()
    b = open_journaled_broker(path, keep_done=5)  # restored: replayed from the done rows
    assert b.snapshot().count("done") == N
    assert [b.get_task(t).result for t in (1, 2, N // 2, N)] == [
        Counted(t) for t in (1, 2, N // 2, N)]
    assert [t.id for t in b.list_tasks("done").tasks][:2] == [N, N - 1]
    b.journal_checkpoint()
    b.close()
    b = open_journaled_broker(path, keep_done=5)  # from the checkpoint
    assert b.get_task(N - 1).result == Counted(N - 1)
    b.close()
