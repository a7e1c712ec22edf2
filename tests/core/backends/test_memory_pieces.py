"""The memory broker keeps a submit's pieces as the client's bytes: handed to workers whole,
decoded once (and only then) when something needs a task of them."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest

from guidist.core import payload
from guidist.core.backends.memory.broker import Broker
from guidist.core.backends.memory.journal import open_journaled_broker
from guidist.core.payload import (
    MAX_PAYLOAD,
    PIECE_TASKS,
    PIECES,
    PackedArgs,
    Pieces,
    UnreadableArguments,
    pack_pieces,
    submission_args,
)
from guidist.core.protocol import BareArgs, TaskState
from tests.conftest import FakeClock


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The count of tasks decoded from pieces in this process (payload.decode_piece)."""
    seen: list[int] = []
    real = payload.decode_piece

    def counting(blob: bytes, bare: bool, n: int) -> list:
        seen.append(n)
        return real(blob, bare, n)

    monkeypatch.setattr(payload, "decode_piece", counting)
    return seen


def submit(b: Broker, items: list, function: str = "square",
           per_piece: int = PIECE_TASKS) -> list[int]:
    """Submit items as the client does (in pieces); returns the ids."""
    ids: list[int] = []
    for _n, call in pack_pieces(submission_args(items), MAX_PAYLOAD, str, per_piece):
        first, n = b.submit(function, call)
        ids.extend(range(first, first + n))
    return ids


def as_worker(groups: list) -> list[tuple[int, tuple]]:
    """(id, args) of claimed groups after the trip to a worker and its decoding."""
    out = []
    for _fn, _kw, ids, args, *_ in pickle.loads(pickle.dumps(groups)):
        if type(args) is PackedArgs:
            args = args.args()
        out.extend(zip(ids, args))
    return out


def square_all(b: Broker, wid: str, claimed: list[tuple[int, tuple]]) -> None:
    assert b.complete(wid, [(t, True, a[0] * a[0], 1.0, 0.1) for t, a in claimed]) \
        == len(claimed)


def test_a_claim_of_whole_pieces_hands_their_bytes_over_and_decodes_nothing(
        decodes: list[int]) -> None:
    b = Broker()
    ids = submit(b, list(range(3 * PIECE_TASKS)))
    wid = b.register_worker("w", "h", 1)["id"]
    groups = b.claim(wid, 2 * PIECE_TASKS)
    assert [type(g[3]) for g in groups] == [PackedArgs, PackedArgs]
    claimed = as_worker(groups)
    assert claimed == [(t, (t - 1,)) for t in ids[:2 * PIECE_TASKS]]
    assert len(decodes) == 2  # the "worker" above decoded both; the server none
    decodes.clear()
    square_all(b, wid, claimed)  # its first task started with a record of its own
    assert decodes == [] and b.snapshot().count("done") == 2 * PIECE_TASKS
    assert b.get_task(ids[5]).args == (5,)  # a lookup decodes the piece, once
    assert b.get_task(ids[0]).args == (0,) and b.get_task(ids[7]).result == 49
    assert decodes == [PIECE_TASKS]


def test_a_claim_of_one_from_a_packed_piece_decodes_it_and_the_rest_follows() -> None:
    b = Broker()
    ids = submit(b, [(i, i + 1) for i in range(PIECE_TASKS + 500)], "operator:add")
    wid = b.register_worker("w", "h", 1)["id"]
    [one] = b.claim(wid, 1)  # what a worker does with a function new to it
    assert one[2] == [ids[0]] and one[3] == [(0, 1)]
    rest = b.claim(wid, 10_000)
    assert [type(g[3]) for g in rest] == [list, PackedArgs]  # the decoded rest, a whole piece
    claimed = [(ids[0], (0, 1)), *as_worker(rest)]
    assert claimed == [(t, (t - 1, t)) for t in ids]
    assert b.complete(wid, [(t, True, a[0] + a[1], 1.0, 0.1) for t, a in claimed]) == len(ids)
    assert b.get_task(ids[-1]).result == 2 * len(ids) - 1


def test_cancelling_one_task_inside_a_packed_piece_leaves_its_neighbours_to_run() -> None:
    b = Broker()
    ids = submit(b, list(range(100)))
    assert b.cancel([ids[10]]) == 1
    wid = b.register_worker("w", "h", 1)["id"]
    claimed = as_worker(b.claim(wid, 1000))
    assert [t for t, _a in claimed] == ids[:10] + ids[11:]
    square_all(b, wid, claimed)
    snap = b.snapshot()
    assert snap.count("done") == 99 and snap.count("cancelled") == 1
    assert b.get_task(ids[10]).state is TaskState.CANCELLED and b.get_task(ids[10]).args == (10,)


def test_a_silent_workers_whole_piece_is_requeued_and_runs_elsewhere() -> None:
    clock = FakeClock()
    b = Broker(lease_timeout=2.0, clock=clock)
    ids = submit(b, list(range(50)))
    victim = b.register_worker("victim", "h", 1)["id"]
    [group] = b.claim(victim, 100)
    assert type(group[3]) is PackedArgs
    clock.advance(3.0)
    assert b.reap() == 50  # its lease expired: every task back, an attempt counted
    rescuer = b.register_worker("rescuer", "h", 2)["id"]
    claimed: list = []
    while len(claimed) < 50:  # a dead worker's tasks come back one claim at a time at first
        got = as_worker(b.claim(rescuer, 100))
        assert got
        square_all(b, rescuer, got)
        claimed += got
    assert sorted(claimed) == [(t, (t - 1,)) for t in ids]
    assert all(b.get_task(t).attempts == 2 for t in ids)
    assert b.snapshot().count("done") == 50


def test_a_piece_that_cannot_be_decoded_fails_where_it_is_read_and_crashes_nothing(
        ghost: type) -> None:
    b = Broker()
    ids = submit(b, [ghost() for _ in range(40)], "echo")
    del sys.modules[ghost.__module__]  # neither the server nor a worker can read them now
    wid = b.register_worker("w", "h", 1)["id"]
    [one] = b.claim(wid, 1)  # the server must read the piece: it cannot, and says so
    assert b.get_task(ids[5]).args[0].startswith("<unreadable: the arguments of 40 task(s)")
    for group in (one, *b.claim(wid, 100)):  # a part, then the rest: still the bytes
        assert type(group[3]) is PackedArgs
        with pytest.raises(UnreadableArguments) as err:
            as_worker([group])
        assert str(err.value) == ("the arguments of 40 task(s) could not be read here: "
                                  "ModuleNotFoundError: No module named 'guidist_test_ghost'")
    snap = b.snapshot()
    assert snap.count("claimed") + snap.count("running") == 40  # for the worker to fail


def test_pieces_that_are_not_what_a_client_sends_are_refused_in_one_line() -> None:
    b = Broker()
    for fields in [("yes", (1,), (b"x",)), (True, (1, 2), (b"x",)), (True, (0,), (b"x",)),
                   (True, (1,), ("x",)), (True, (), ()), (True, [1], [b"x"]),
                   (True, ("1",), (b"x",))]:
        call = pickle.loads(pickle.dumps(Pieces(*fields)))  # as a peer's call arrives
        with pytest.raises(ValueError, match=r"^a submit in pieces needs \(bare, counts, "):
            b.submit("square", call)
    b.max_payload = 1000
    with pytest.raises(payload.PayloadTooLarge, match="over the server's 0.0 MiB limit"):
        b.submit("square", Pieces(True, (1, 1), (b"x" * 600, b"y" * 600)))
    assert b.snapshot().count("queued") == 0
    # A count that does not match its piece is a failure of those tasks, where it is read.
    b.submit("square", Pieces(True, (3,), (pickle.dumps([1, 2]),)))
    with pytest.raises(UnreadableArguments, match="were not the list of 3 that a client"):
        as_worker(b.claim(b.register_worker("w", "h", 1)["id"], 10))


def test_a_journal_keeps_the_pieces_as_sent_and_a_restart_reads_them(
        tmp_path: Path, decodes: list[int]) -> None:
    path = tmp_path / "journal.sqlite"
    b = open_journaled_broker(path)
    ids = submit(b, list(range(PIECE_TASKS + 10)))
    tuples = submit(b, [(i, "x") for i in range(40)], "operator:concat")
    assert decodes == []  # the submit rows hold the bytes as they came
    b.close()
    b = open_journaled_broker(path)  # from the log's rows
    assert [b.get_task(t).args for t in (ids[0], ids[-1], tuples[3])] == \
        [(0,), (PIECE_TASKS + 9,), (3, "x")]
    b.journal_checkpoint()
    b.close()
    b = open_journaled_broker(path)  # from the checkpoint
    wid = b.register_worker("w", "h", 1)["id"]
    claimed: list = []
    while True:
        got = as_worker(b.claim(wid, 10_000))
        if not got:
            break
        claimed += got
    assert sorted(claimed) == [*[(t, (t - 1,)) for t in ids],
                               *[(t, (i, "x")) for i, t in enumerate(tuples)]]
    b.close()


def test_the_client_splits_pieces_by_count_and_calls_by_bytes() -> None:
    items = submission_args(list(range(5 * PIECE_TASKS + 1)))
    [(n, call)] = pack_pieces(items, MAX_PAYLOAD, str)
    assert n == len(items) and call.bare is True
    assert b"Pieces" in pickle.dumps(call)  # a class: a server from before refuses it
    assert call.counts == (PIECE_TASKS,) * 5 + (1,)
    assert pickle.loads(call.blobs[-1]) == [5 * PIECE_TASKS]
    big = submission_args([bytes([i]) * 1000 for i in range(100)])
    calls = pack_pieces(big, 30_000, str)
    assert sum(n for n, _c in calls) == 100 and len(calls) > 3
    assert all(sum(map(len, c.blobs)) <= 30_000 for _n, c in calls)
    with pytest.raises(payload.PayloadTooLarge, match="^7 "):
        pack_pieces(submission_args([1] * 7 + [b"x" * 40_000]), 30_000,
                    lambda i, size: f"{i} {size}")
    assert type(call.check().decode()) is BareArgs


def test_done_rows_keep_a_whole_pieces_bytes_and_read_its_tasks_back(
        tmp_path: Path, decodes: list[int]) -> None:
    import sqlite3

    from guidist.core.payload import pack_results

    path = tmp_path / "journal.sqlite"
    b = open_journaled_broker(path, keep_done=2)
    ids = submit(b, list(range(100)))
    wid = b.register_worker("w", "h", 1)["id"]
    claimed = as_worker(b.claim(wid, 1000))
    decodes.clear()
    report = [(t, True, a[0] * a[0], 100.0 + t, 0.25) for t, a in claimed]
    assert b.complete(wid, pack_results(report)) == 100
    b.close()
    assert decodes == [100]  # the first task's own done row read its argument; the rest none
    db = sqlite3.connect(path)
    cols = [c for (blob,) in db.execute("SELECT data FROM done")
            for c in pickle.loads(blob)[1]]
    db.close()
    assert [c[8][0] for c in cols] == [(0,), PIECES]  # the first alone, then the piece
    b = open_journaled_broker(path, keep_done=2)  # results evicted: read from the rows
    assert [(b.get_task(t).args, b.get_task(t).result) for t in (ids[0], ids[1], ids[99])] \
        == [((0,), 0), ((1,), 1), ((99,), 99 ** 2)]
    b.close()


def test_a_report_over_several_whole_pieces_is_journaled_as_the_workers_bytes_once(
        tmp_path: Path) -> None:
    import sqlite3

    from guidist.core.payload import pack_results

    path = tmp_path / "journal.sqlite"
    b = open_journaled_broker(path, keep_done=2)
    ids = submit(b, list(range(100)), per_piece=20)  # five pieces: each a fifth of a report
    wid = b.register_worker("w", "h", 1)["id"]
    claimed = as_worker(b.claim(wid, 1000))
    blob = pack_results([(t, True, a[0] * 10**30, 100.0 + t, 0.25) for t, a in claimed])
    assert b.complete(wid, blob) == 100
    b.close()
    db = sqlite3.connect(path)
    [(data,)] = db.execute("SELECT data FROM done").fetchall()
    db.close()
    cols = pickle.loads(data)[1]
    # the first went alone, its one value a slice of the same packed values as the rest
    assert [c[14] is not None for c in cols] == [True] * 6
    assert len(data) < 1.3 * len(blob)  # the five pieces' columns share one copy of it
    b = open_journaled_broker(path, keep_done=2)
    assert [b.get_task(t).result for t in (ids[1], ids[50], ids[99])] == \
        [1 * 10**30, 50 * 10**30, 99 * 10**30]
    b.close()
