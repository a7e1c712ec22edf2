"""store: the SQLite journal, in-process with a real file: restore, counters, export, prune."""

from __future__ import annotations

import csv
import io
import json
import pickle
import sqlite3
import time
from pathlib import Path

import pytest

from guidist.core.backends.memory.broker import Broker
from guidist.core.backends.memory.journal import (
    iter_ledger,
    open_journaled_broker,
    prune_journal,
)
from guidist.core.export import write_export
from guidist.core.payload import pack, submission_args
from guidist.core.protocol import TaskState


def ids_of(groups: list) -> list[int]:
    return [tid for _fn, _kw, ids, _args in groups for tid in ids]


def reopen(b: Broker, path: Path, **options: object) -> Broker:
    b.close()
    return open_journaled_broker(path, **options)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


def test_journal_is_sqlite_in_wal_mode(path: Path) -> None:
    b = open_journaled_broker(path)
    b.submit("square", [(1,)])
    b.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_restart_restores_queued_running_and_finished(path: Path) -> None:
    b = open_journaled_broker(path, lease_timeout=30)
    b.submit("square", [(i,) for i in range(10)])  # 1..10
    b.submit("echo", [("a",), ("b",)], kwargs=None)  # 11, 12
    w = b.register_worker("w", "h", 1)["id"]
    running = ids_of(b.claim(w, 5))  # 1..5
    b.complete(w, [(1, True, 1), (2, False, "Traceback\nValueError: x")])
    b.cancel([11])
    before = b.snapshot()
    b = reopen(b, path, lease_timeout=30)
    snap = b.snapshot()
    # Counters continue.
    assert snap.submitted == before.submitted == 12
    assert (snap.count("done"), snap.count("failed"), snap.count("cancelled")) == (1, 1, 1)
    # Leased (claimed or running) at the "crash": queued again with the attempt counted.
    assert snap.leased == 0
    assert snap.count("queued") == 12 - 3
    for tid in running[2:]:
        t = b.get_task(tid)
        assert (t.state, t.attempts) == (TaskState.QUEUED, 1)
    assert b.get_task(6).attempts == 0
    # Finished tasks are back in the listings, with results and errors.
    assert b.get_task(1).result == 1 and b.get_task(1).state is TaskState.DONE
    assert b.get_task(2).error.endswith("ValueError: x")
    assert b.get_task(11).state is TaskState.CANCELLED
    assert [t.id for t in b.list_tasks("done").tasks] == [1]
    # New ids continue after the old ones, and everything can be run to the end.
    assert b.submit("square", [(99,)]) == (13, 1)
    w = b.register_worker("w2", "h", 2)["id"]
    # The requeued ones first, one per claim (their worker died holding them), then a batch.
    got = [*ids_of(b.claim(w, 100)), *ids_of(b.claim(w, 100)), *ids_of(b.claim(w, 100))]
    assert got == [3, 4, 5]
    got += ids_of(b.claim(w, 100))
    assert sorted(got) == [3, 4, 5, 6, 7, 8, 9, 10, 12, 13]
    b.complete(w, [(t, True, "ok") for t in got])
    assert b.get_task(3).attempts == 2
    b = reopen(b, path)
    snap = b.snapshot()
    assert snap.count("queued") == 0 and snap.count("done") == 11 and snap.submitted == 13
    b.close()


def test_a_second_restart_replays_only_the_checkpoint(path: Path) -> None:
    b = open_journaled_broker(path)
    b.submit("square", [(i,) for i in range(1000)])
    for _ in range(3):
        b = reopen(b, path)
        assert b.snapshot().count("queued") == 1000
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM log").fetchone()[0] == 1
    db.close()
    b.close()


def test_purge_retry_and_requeue_survive_a_restart(path: Path) -> None:
    clock = [1000.0]
    b = open_journaled_broker(path, lease_timeout=1, clock=lambda: clock[0])
    b.submit("boom", [(1,), (2,)])
    b.submit("square", [(i,) for i in range(5)])  # 3..7
    w = b.register_worker("w", "h", 1)["id"]
    b.claim(w, 3)  # 1, 2, 3
    b.complete(w, [(1, False, "e"), (2, False, "e")])
    clock[0] += 5
    b.reap()  # 3 requeued (attempt 1)
    b.retry([1])
    assert b.purge() == 6  # 1 (retried), 3 (requeued), 4..7
    b.retry([2])
    b = reopen(b, path, lease_timeout=1, clock=lambda: clock[0])
    snap = b.snapshot()
    assert snap.count("queued") == 1 and snap.count("cancelled") == 6
    assert snap.count("failed") == 0
    assert [t.id for t in b.list_tasks("queued").tasks] == [2]
    assert snap.requeued >= 1
    b.close()


def test_late_results_and_dead_tasks_are_journaled_once(path: Path) -> None:
    clock = [1000.0]
    b = open_journaled_broker(path, lease_timeout=1, max_attempts=1, clock=lambda: clock[0])
    b.submit("crash", [(0,)])
    w = b.register_worker("w", "h", 1)["id"]
    b.claim(w, 1)
    clock[0] += 5
    b.reap()
    assert b.get_task(1).state is TaskState.DEAD
    assert b.complete(w, [(1, True, "late")]) == 0
    b = reopen(b, path)
    t = b.get_task(1)
    assert (t.state, t.result) == (TaskState.DEAD, None)
    assert b.snapshot().count("dead") == 1 and b.snapshot().count("done") == 0
    b.close()


def test_results_of_any_picklable_type_round_trip(path: Path) -> None:
    b = open_journaled_broker(path)
    values = [None, 3, 2**80, 1.5, "s", b"b", [1, 2], {"k": (1, 2)}, TaskState.DONE]
    b.submit("echo", [(v,) for v in values])
    w = b.register_worker("w", "h", 1)["id"]
    got = ids_of(b.claim(w, 100))
    b.complete(w, [(t, True, v) for t, v in zip(got, values)])
    b = reopen(b, path)
    assert [b.get_task(t).result for t in got] == values
    b.close()


def _ledger(path: Path) -> None:
    b = open_journaled_broker(path)
    b.submit("square", [(i,) for i in range(6)])
    w = b.register_worker("w", "h", 1)["id"]
    b.claim(w, 4)
    b.complete(w, [(1, True, 0), (2, True, 1, 1_700_000_000.25, 0.125),
                   (3, False, "Traceback\nValueError: 2, \"q\"", 1_700_000_001.5, 0.5)])
    b.close()


def test_iter_ledger_and_filters(path: Path) -> None:
    _ledger(path)
    all_tasks = list(iter_ledger(path))
    assert sorted(t.id for t in all_tasks) == [1, 2, 3, 4, 5, 6]
    states = {t.id: t.state.value for t in all_tasks}
    assert states == {1: "done", 2: "done", 3: "failed", 4: "queued", 5: "queued", 6: "queued"}
    assert [t.id for t in iter_ledger(path, ["failed"])] == [3]
    assert sorted(t.id for t in iter_ledger(path, ["done", "queued"])) == [1, 2, 4, 5, 6]
    with pytest.raises(ValueError):
        list(iter_ledger(path, ["bogus"]))


def test_export_csv_and_jsonl(path: Path) -> None:
    _ledger(path)
    out = io.StringIO()
    assert write_export(iter_ledger(path), out, "jsonl") == 6
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    by_id = {r["id"]: r for r in rows}
    assert by_id[2]["result"] == 1 and by_id[2]["args"] == [1] and by_id[2]["state"] == "done"
    assert by_id[3]["error"].endswith('ValueError: 2, "q"')
    # times are ISO-8601 in UTC, and the worker's measured run time has its own column
    assert by_id[2]["started"] == "2023-11-14T22:13:20.250000Z"
    assert (by_id[2]["runtime"], by_id[3]["runtime"]) == (0.125, 0.5)
    assert by_id[3]["started"] == "2023-11-14T22:13:21.500000Z"
    assert by_id[1]["runtime"] is None and by_id[1]["submitted"].endswith("Z")
    out = io.StringIO()
    assert write_export(iter_ledger(path, ["failed", "done"]), out, "csv") == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert rows[2]["error"].endswith('ValueError: 2, "q"')  # quoting survives the round trip
    assert json.loads(rows[1]["args"]) == [1]
    assert (rows[1]["runtime"], rows[2]["runtime"]) == ("0.125", "0.5")
    with pytest.raises(ValueError, match="unknown export format"):
        write_export([], io.StringIO(), "xml")


def test_prune_keeps_failures_longer(path: Path) -> None:
    b = open_journaled_broker(path)
    b.submit("square", [(i,) for i in range(20)])
    w = b.register_worker("w", "h", 1)["id"]
    got = ids_of(b.claim(w, 20))
    b.complete(w, [(t, t % 4 != 0, "x") for t in got])  # 5 failures, 15 successes
    b.close()
    assert prune_journal(path, keep_done=3, keep_failed=10) == 12
    states = [t.state.value for t in iter_ledger(path)]
    assert states.count("done") == 3 and states.count("failed") == 5
    time.sleep(0.01)
    assert prune_journal(path, done_older_than=0, failed_older_than=3600) == 3
    states = [t.state.value for t in iter_ledger(path)]
    assert states.count("done") == 0 and states.count("failed") == 5


def test_a_task_failed_then_retried_within_one_flush_is_only_queued_after_restart(
        path: Path) -> None:
    """Retry all right after a failure (inside one flush window): the journal must not keep
    the stale 'failed' row next to the queued task."""
    b = open_journaled_broker(path, flush_interval=3600)  # one flush, at close
    b.submit("boom", [(1,)])
    w = b.register_worker("w", "h", 1)["id"]
    b.claim(w, 1)
    b.complete(w, [(1, False, "Traceback\nValueError: boom 1")])
    assert b.retry_all() == 1
    b = reopen(b, path)
    snap = b.snapshot()
    assert (snap.count("queued"), snap.count("failed")) == (1, 0)
    assert [(t.id, t.state.value) for t in iter_ledger(path)] == [(1, "queued")]
    page = b.list_tasks(limit=10)
    assert page.total == 1 and [t.state for t in page.tasks] == [TaskState.QUEUED]
    b.close()


def test_a_journal_in_use_by_another_server_is_refused(tmp_path: Path) -> None:
    from guidist.core.errors import JournalInUse

    path = tmp_path / "j.sqlite"
    first = open_journaled_broker(path)
    try:
        with pytest.raises(JournalInUse, match="in use by another guidist server"):
            open_journaled_broker(path)
    finally:
        first.close()
    open_journaled_broker(path).close()  # free again once the first one closed


def test_a_checkpoint_while_running_compacts_the_log_and_loses_nothing(path: Path) -> None:
    b = open_journaled_broker(path)
    b.submit("square", [(i,) for i in range(10)])  # ids 1..10
    assert b.cancel([2]) == 1  # a hole inside the batch
    w = b.register_worker("w", "h", 1)["id"]
    running = ids_of(b.claim(w, 4))
    assert running == [1, 3, 4, 5]
    b.complete(w, [(1, True, 1)])
    b.journal_checkpoint()
    b.submit("echo", [("after",)])  # id 11, after the snapshot
    b.complete(w, [(3, True, 9)])  # running in the snapshot, done after it
    b._journal.flush()  # type: ignore[attr-defined]
    db = sqlite3.connect(path)
    kinds = [k for (k,) in db.execute("SELECT kind FROM log ORDER BY seq")]
    db.close()
    assert kinds[0] == "checkpoint" and kinds.count("checkpoint") == 1
    assert kinds[1:] == ["submit"]  # everything before the snapshot was dropped

    b = reopen(b, path)
    assert b.get_task(1).state is TaskState.DONE and b.get_task(3).result == 9
    assert b.get_task(2).state is TaskState.CANCELLED
    for tid in (4, 5):  # running at the snapshot: queued again, the attempt counted
        t = b.get_task(tid)
        assert (t.state, t.attempts) == (TaskState.QUEUED, 1)
    assert b.get_task(11).args == ("after",)
    snap = b.snapshot()
    assert (snap.count("queued"), snap.count("done"), snap.count("cancelled")) == (8, 2, 1)
    assert snap.submitted == 11
    assert b.submit("square", [(0,)]) == (12, 1)
    b.close()


def _job_counts(b: Broker, name: str) -> tuple[int, ...]:
    j = b.job(name)
    assert j is not None
    return (j.queued, j.claimed + j.running, j.done, j.failed, j.dead, j.cancelled)


def test_jobs_and_their_counts_survive_a_restart(path: Path) -> None:
    b = open_journaled_broker(path, lease_timeout=30)
    b.submit("square", [(i,) for i in range(6)], job="a")  # 1..6
    b.submit("echo", [("x",), ("y",)], job="b")  # 7, 8
    b.submit("square", [(9,), (10,)], job="a")  # 9, 10: the same job, a second run of ids
    w = b.register_worker("w", "h", 1)["id"]
    b.claim(w, 4)  # 1..4
    b.complete(w, [(1, True, 0), (2, False, "boom")])  # 3, 4 still running at the "crash"
    assert b.cancel_job("b") == 2
    b.cancel([5])
    before = {name: _job_counts(b, name) for name in ("a", "b")}
    assert before == {"a": (3, 2, 1, 1, 0, 1), "b": (0, 0, 0, 0, 0, 2)}
    started = b.job("a").started
    b = reopen(b, path, lease_timeout=30)
    # running tasks come back queued, as the tasks themselves do
    assert _job_counts(b, "a") == (5, 0, 1, 1, 0, 1)
    assert _job_counts(b, "b") == (0, 0, 0, 0, 0, 2)
    a = b.job("a")
    assert a.ranges == ((1, 6), (9, 2)) and a.functions == ("square",)
    assert a.started == started and b.get_task(9).job == a.id
    assert b.submit("square", [(1,)], job="a")[0] == 11  # the same job goes on
    assert b.job("a").queued == 6 and b.open_job("c").id == 3  # ids go on too
    # checkpointed and reopened once more: still the same
    b.journal_checkpoint()
    b = reopen(b, path, lease_timeout=30)
    assert _job_counts(b, "a") == (6, 0, 1, 1, 0, 1)
    assert b.purge() == 6
    b = reopen(b, path, lease_timeout=30)
    assert _job_counts(b, "a") == (0, 0, 1, 1, 0, 7)
    b.close()


def test_results_evicted_from_memory_are_read_back_written_or_not(path: Path) -> None:
    # A long flush interval: the first lookups find what is still only in the buffer.
    b = open_journaled_broker(path, flush_interval=30.0, keep_done=5, keep_failed=5)
    b.submit("square", [(i,) for i in range(40)], job="j")
    w = b.register_worker("w", "h", 1)["id"]
    b.claim(w, 40)
    b.complete(w, [(1, False, "tb\nValueError: one", 1.0, 0.5, b"exc")])
    b.complete(w, [(i, True, i * i, 2.0, 0.25) for i in range(2, 41)])
    t = b.get_task(2)  # evicted from memory, not written yet
    assert (t.state, t.result, t.runtime, t.job) == (TaskState.DONE, 4, 0.25, b.job("j").id)
    b._journal.flush()  # type: ignore[attr-defined]
    got = b.get_tasks([1, 2, 3, 40, 999])
    assert [x.result if x else None for x in got] == [None, 4, 9, 1600, None]
    assert (got[0].state, got[0].exception, got[0].error) == \
        (TaskState.FAILED, b"exc", "tb\nValueError: one")
    b = reopen(b, path, keep_done=5, keep_failed=5)
    assert b.get_task(2).result == 4 and b.get_task(1).exception == b"exc"


# ---------------------------------------------------------------------- group commit (issue 11)


def _rows_on_disk(path: Path) -> int:
    """Tasks in submit rows that another connection can read now (what survives a kill)."""
    import pickle

    db = sqlite3.connect(path, timeout=5)
    try:
        return sum(len(pickle.loads(blob)[3]) for (blob,) in
                   db.execute("SELECT data FROM log WHERE kind = 'submit'"))
    finally:
        db.close()


def test_a_submit_returns_once_it_is_on_disk(path: Path) -> None:
    b = open_journaled_broker(path, flush_interval=5.0)  # the batch window plays no part
    for n in (1, 2, 3):
        b.submit("square", [(i,) for i in range(1000)])
        assert _rows_on_disk(path) == 1000 * n  # read by another connection, at once
    b.close()


def test_concurrent_submits_share_commits(path: Path) -> None:
    import threading

    b = open_journaled_broker(path)
    journal = b._journal
    commits = 0
    write_all = journal._write_all

    def counting(buf: list) -> int:
        nonlocal commits
        commits += 1
        return write_all(buf)

    journal._write_all = counting  # type: ignore[method-assign]
    threads = [threading.Thread(target=lambda: [b.submit("square", [(i,)]) for i in range(25)])
               for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert b.snapshot().count("queued") == 400
    assert 0 < commits < 400  # a commit per burst, not per submit
    b.close()
    assert _rows_on_disk(path) == 400


def test_a_full_journal_refuses_submits_keeps_the_rest_and_recovers(path: Path) -> None:
    from guidist.core.errors import JournalUnavailable

    b = open_journaled_broker(path, lease_timeout=30)
    acked = [b.submit("echo", [("x" * 100,)] * 100)[0]]
    db = b._journal._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 8}")  # about 32 KiB more, then "full"
    with pytest.raises(JournalUnavailable, match=r"be written \(database or disk is full"):
        for _ in range(100):
            first, _n = b.submit("echo", [(f"{i:05d}" * 40,) for i in range(500)])
            acked.append(first)
    refused_at = b.snapshot().count("queued")
    with pytest.raises(JournalUnavailable, match="nothing was queued"):
        b.submit("square", [(1,)])  # refused at once while the journal cannot be written
    assert b.snapshot().count("queued") == refused_at
    assert "full" in b.snapshot().extra["journal"]["error"]
    # Workers go on meanwhile: completing is not held back by the stuck writer.
    w = b.register_worker("w", "h", 1)["id"]
    groups = b.claim(w, 50)
    start = time.monotonic()
    b.complete(w, [(tid, True, "ok") for tid in ids_of(groups)])
    assert time.monotonic() - start < 2
    db.execute("PRAGMA max_page_count = 1073741823")  # space is back
    deadline = time.monotonic() + 10
    while b.snapshot().extra["journal"]["error"] is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.snapshot().extra["journal"]["error"] is None
    b.submit("square", [(2,)])
    b = reopen(b, path)
    snap = b.snapshot()
    assert snap.count("queued") + snap.count("done") == refused_at + 1
    assert snap.count("done") == len(ids_of(groups))  # the results kept in memory were written
    assert all(b.get_task(first) is not None for first in acked)
    b.close()


def test_done_rows_written_by_an_older_guidist_still_read_back(path: Path) -> None:
    """Done rows used to be a pickled list of per-task tuples; they are columns now. A
    journal with both kinds replays, looks up, exports and prunes the same."""
    b = open_journaled_broker(path, keep_done=2)
    b.submit("square", [(i,) for i in range(8)])  # 1..8
    w = b.register_worker("w", "h", 1)["id"]
    assert ids_of(b.claim(w, 6)) == [1, 2, 3, 4, 5, 6]
    b.complete(w, [(t, True, t * t, 100.0 + t, 0.5) for t in (1, 2, 3)])
    b._journal.flush()  # type: ignore[attr-defined]
    b.complete(w, [(t, True, t * t, 100.0 + t, 0.5) for t in (4, 5, 6)])
    b.close()
    db = sqlite3.connect(path)
    seq, job = db.execute("SELECT seq, job FROM done WHERE min_id = 1").fetchone()
    old = [(t, "square", (t - 1,), None, 1, 1.0, 100.0 + t, 200.0, w, t * t, 0.5, job)
           for t in (1, 2, 3)]  # as an older guidist wrote them
    db.execute("UPDATE done SET data = ? WHERE seq = ?", (pickle.dumps(old), seq))
    db.commit()
    db.close()
    b = open_journaled_broker(path, keep_done=2)
    assert b.snapshot().count("queued") == 2  # the replay took 1..6 out of either kind of row
    assert [t.id for t in b.list_tasks("done").tasks] == [6, 5]  # the newest, in memory
    t1, t4 = b.get_task(1), b.get_task(4)  # evicted: read back from each kind of row
    assert (t1.state, t1.args, t1.result, t1.started, t1.runtime, t1.job) == (
        TaskState.DONE, (0,), 1, 101.0, 0.5, job)
    assert (t4.state, t4.args, t4.result, t4.started, t4.worker, t4.job) == (
        TaskState.DONE, (3,), 16, 104.0, w, job)
    b.close()
    assert sorted(t.id for t in iter_ledger(path, ["done"])) == [1, 2, 3, 4, 5, 6]
    assert prune_journal(path, keep_done=4) == 2  # cuts into the old row, keeps its newest
    assert sorted(t.id for t in iter_ledger(path, ["done"])) == [3, 4, 5, 6]


def test_submits_sent_bare_restore_from_the_log_and_from_a_checkpoint(path: Path) -> None:
    """A client sends one-argument tasks as bare values; the journal's submit rows and its
    checkpoints keep them, and a restart queues them with the same 1-tuple arguments."""
    b = open_journaled_broker(path)
    assert b.submit("square", pack(submission_args([10, 11, 12, 13]))) == (1, 4)
    assert b.submit("echo", pack(submission_args([[1, 2], None]))) == (5, 2)  # a list is one
    w = b.register_worker("w", "h", 1)["id"]
    groups = b.claim(w, 3)
    assert [list(g[3]) for g in groups] == [[(10,), (11,), (12,)]]
    b.complete(w, [(1, True, 100, 1.0, 0.1)])
    b = reopen(b, path)  # from the log
    assert [b.get_task(t).args for t in (2, 4, 5, 6)] == [(11,), (13,), ([1, 2],), (None,)]
    b.journal_checkpoint()
    assert b.submit("square", pack(submission_args([(20,), (21,)]))) == (7, 2)
    b = reopen(b, path)  # from the checkpoint, then the log after it
    assert b.get_task(1).result == 100
    assert [b.get_task(t).args for t in (3, 6, 7, 8)] == [(12,), (None,), (20,), (21,)]
    w = b.register_worker("w2", "h", 2)["id"]
    got: list = []
    while len(got) < 7:
        groups = b.claim(w, 10)
        assert groups
        got += [(tid, a) for g in groups for tid, a in zip(g[2], g[3])]
    assert sorted(got, key=lambda p: p[0]) == [
        (2, (11,)), (3, (12,)), (4, (13,)), (5, ([1, 2],)), (6, (None,)), (7, (20,)),
        (8, (21,))]
    b.close()


def _square_report(b: Broker, n: int) -> tuple[str, list[tuple]]:
    """n square tasks claimed by a new worker (the first starts at once: a record of its own)
    and the results it reports, (id, ok, value, started, runtime) each."""
    b.submit("square", pack(submission_args(list(range(n)))))
    w = b.register_worker("w", "h", 1)["id"]
    assert ids_of(b.claim(w, n)) == list(range(1, n + 1))
    return w, [(t, True, t * t * 10**9, 100.0 + t, 0.25 * t) for t in range(1, n + 1)]


def _check_read_back(b: Broker, path: Path, n: int) -> None:
    """Every task of _square_report's, evicted from memory, reads back from the journal: by
    lookup, in the replay, in the ledger, and after a prune that cuts into the report."""
    assert b.snapshot().count("queued") == 0 and b.snapshot().count("done") == n
    for t in (1, 2, 5, n):
        got = b.get_task(t)
        assert (got.state, got.args, got.result, got.started, got.runtime) == (
            TaskState.DONE, (t - 1,), t * t * 10**9, 100.0 + t, 0.25 * t)
    b.close()
    assert sorted(t.id for t in iter_ledger(path, ["done"])) == list(range(1, n + 1))
    assert prune_journal(path, keep_done=4) == n - 4  # cuts into the report
    assert sorted(t.id for t in iter_ledger(path, ["done"])) == list(range(n - 3, n + 1))
    assert {t.id: t.result for t in iter_ledger(path, ["done"])}[n - 2] == (n - 2) ** 2 * 10**9


def test_done_rows_copy_a_workers_packed_values_and_read_them_back(path: Path) -> None:
    """The values a worker pickled stay those bytes on the server: nothing decodes them to
    store the report, and its done row holds the same bytes (once, though the record of
    the task that started and the rest are two batches), read back like any done row."""
    from guidist.core.payload import pack_results

    b = open_journaled_broker(path, keep_done=2)
    w, report = _square_report(b, 10)
    blob = pack_results(report)
    values_blob = pickle.loads(blob)[3]  # the values column, as the worker pickled it
    assert b.complete(w, blob) == 10
    kept = [batch.results for batch in b._done.entries]  # type: ignore[attr-defined]
    assert kept and not any(v.decoded for v in kept)  # stored, not decoded
    b = reopen(b, path, keep_done=2)
    db = sqlite3.connect(path)
    (data,), = db.execute("SELECT data FROM done").fetchall()
    db.close()
    assert data.count(values_blob) == 1  # copied as it came, for both batches
    cols = pickle.loads(data)[1]
    assert [c[14][1:] for c in cols] == [(0, 1), (1, 10)]  # the record's batch, the other 9
    assert cols[0][14][0] is cols[1][14][0] and cols[0][9] is None
    _check_read_back(b, path, 10)


def test_a_report_across_jobs_writes_its_values_decoded_where_a_row_holds_few(
        path: Path) -> None:
    """Done rows go one per job: a row holding under half of a report's values gets them
    decoded rather than the whole report's bytes, so a report spread over many jobs is
    not written once per job."""
    from guidist.core.payload import pack_results

    b = open_journaled_broker(path, keep_done=100)
    for job in ("a", "b", "c", "d"):
        b.submit("square", pack(submission_args([1, 2, 3, 4, 5, 6, 7, 8])), job=job)
    w = b.register_worker("w", "h", 1)["id"]
    assert ids_of(b.claim(w, 32)) == list(range(1, 33))
    blob = pack_results([(t, True, f"value {t}" * 20, 1.0, 0.5) for t in range(1, 33)])
    values_blob = pickle.loads(blob)[3]
    assert b.complete(w, blob) == 32
    b = reopen(b, path, keep_done=100)
    db = sqlite3.connect(path)
    rows = [data for (data,) in db.execute("SELECT data FROM done ORDER BY seq")]
    db.close()
    assert len(rows) == 4 and not any(values_blob in data for data in rows)
    assert [b.get_task(t).result for t in (1, 9, 32)] == [f"value {t}" * 20 for t in (1, 9, 32)]
    b.close()


def test_done_rows_that_kept_a_workers_whole_report_still_read_back(path: Path) -> None:
    """The version before packed values kept a batch that was most of a report as the
    worker's whole results blob and its place in it (a 14th column, the values None): such
    rows still replay, look up, export and prune."""
    from array import array

    b = open_journaled_broker(path, keep_done=2)
    w, report = _square_report(b, 10)
    assert b.complete(w, report) == 10
    b.close()
    ids, _oks, values, starts, runs = zip(*report)
    old = pickle.dumps(("guidist-result-columns-1", range(1, 11), None, values,
                        array("d", starts).tobytes(), array("d", runs).tobytes()))
    db = sqlite3.connect(path)
    (seq, data), = db.execute("SELECT seq, data FROM done").fetchall()
    mark, cols = pickle.loads(data)
    rec, rest = cols
    assert list(rest[7]) == list(range(2, 11))
    rest = (*rest[:9], None, None, None, rest[12], (old, 1, 10))  # as that version wrote it
    db.execute("UPDATE done SET data = ? WHERE seq = ?", (pickle.dumps((mark, [rec, rest])), seq))
    db.commit()
    db.close()
    b = open_journaled_broker(path, keep_done=2)
    _check_read_back(b, path, 10)


def test_a_claim_after_a_cancelled_front_task_journals_the_ids_it_leased(path: Path) -> None:
    b = open_journaled_broker(path, lease_timeout=30)
    b.submit("square", [(i,) for i in range(10)])  # 1..10
    b.cancel([1])  # a hole at the front of the batch
    w = b.register_worker("w", "h", 1)["id"]
    claimed = ids_of(b.claim(w, 5))
    assert claimed and 1 not in claimed
    after = max(claimed) + 1
    b = reopen(b, path, lease_timeout=30)
    # The restart counts an attempt for exactly the tasks that were leased.
    assert [b.get_task(t).attempts for t in claimed] == [1] * len(claimed)
    assert b.get_task(after).attempts == 0
    assert b.get_task(1).state is TaskState.CANCELLED
    b.close()
