"""protocol: plain data that pickles, a str Enum of states, and the status dict."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest

from guidist.core.protocol import (
    DEFAULT_TASK,
    SERIES_FIELDS,
    BareArgs,
    Event,
    Snapshot,
    Task,
    TaskPage,
    TaskState,
    WorkerInfo,
    WorkerState,
    running_ids,
)


def test_task_state_is_a_str_enum_with_the_documented_values() -> None:
    assert [s.value for s in TaskState] == ["queued", "claimed", "running", "done", "failed",
                                            "dead", "cancelled"]
    assert TaskState.DONE == "done"
    assert TaskState("failed") is TaskState.FAILED
    assert json.dumps(TaskState.DEAD) == '"dead"'


def test_finished_states() -> None:
    assert {s for s in TaskState if s.finished} == {
        TaskState.DONE, TaskState.FAILED, TaskState.DEAD, TaskState.CANCELLED}


@pytest.mark.parametrize("obj", [
    Task(1, "square", (3,), None, TaskState.DONE, 1, 1.0, 2.0, 3.0, "w#1", 9, None),
    TaskPage(1, 0, (Task(2, "echo"),)),
    WorkerInfo("w#1", "w", "host", 123, state=WorkerState.BUSY),
    Event(1, 2.0, "requeued", "1 task(s) requeued"),
    Snapshot(time=1.0, counts={"done": 1}, submitted=1, requeued=0, paused=False,
             throughput=0.5, workers=(WorkerInfo("w#1", "w", "h", 1),),
             series=((1, 0, 0, 0, 0, 0, 0, 0),), events=(Event(1, 1.0, "control", "x"),)),
])
def test_records_are_frozen_and_pickle_round_trip(obj: object) -> None:
    assert pickle.loads(pickle.dumps(obj)) == obj
    field = dataclasses.fields(obj)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, field, None)


def test_snapshot_count_and_connected_workers() -> None:
    snap = Snapshot(time=0.0, counts={"queued": 4, "done": 2}, submitted=6, requeued=1,
                    paused=True, throughput=12.345,
                    workers=(WorkerInfo("a#1", "a", "h", 1),
                             WorkerInfo("b#2", "b", "h", 2, state=WorkerState.OFFLINE),
                             WorkerInfo("c#3", "c", "h", 3, state=WorkerState.BUSY)))
    assert snap.count("queued") == 4
    assert snap.count(TaskState.DONE) == 2
    assert snap.count("dead") == 0
    assert snap.connected_workers == 2
    with pytest.raises(ValueError):
        snap.count("bogus")


def test_leased_counts_claimed_and_running() -> None:
    snap = Snapshot(time=0.0, counts={"queued": 4, "claimed": 3, "running": 2}, submitted=9,
                    requeued=0, paused=False, throughput=0.0)
    assert snap.leased == 5
    w = WorkerInfo("a#1", "a", "h", 1, running=2, claimed=3)
    assert w.held == 5


def test_running_ids_takes_what_old_and_new_workers_send() -> None:
    assert running_ids(None) == []
    assert running_ids(7) == [7]
    assert running_ids([3, 4]) == [3, 4]
    assert running_ids((5,)) == [5]


def test_to_status_has_every_field_issue_2_requires() -> None:
    snap = Snapshot(time=0.0, counts={s.value: i for i, s in enumerate(TaskState)},
                    submitted=15, requeued=3, paused=False, throughput=7.26,
                    workers=(WorkerInfo("a#1", "a", "h", 1),))
    status = snap.to_status()
    for key in ("queued", "claimed", "running", "done", "failed", "dead", "cancelled",
                "workers", "throughput"):
        assert key in status
    assert status["queued"] == 0 and status["cancelled"] == 6
    assert status["workers"] == 1
    assert status["throughput"] == 7.3
    json.dumps(status)  # the CLI prints it as JSON


def test_series_fields_and_default_task() -> None:
    assert SERIES_FIELDS[0] == "t"
    assert set(SERIES_FIELDS[1:]) == {"submitted", "done", "failed", "requeued", "queued",
                                      "running", "workers", "claimed"}
    assert DEFAULT_TASK == "square"


def test_bare_args_read_as_one_tuples_and_pickle_as_the_values() -> None:
    args = BareArgs([3, "x", None])
    tuples = [(3,), ("x",), (None,)]
    assert args == tuples and tuples == args and not args != tuples
    assert list(args) == tuples and list(reversed(args)) == tuples[::-1]
    assert args[1] == ("x",) and args[-1] == (None,)
    assert type(args[1:]) is BareArgs and args[1:] == tuples[1:]
    assert ("x",) in args and "x" not in args and len(args) == 3
    assert repr(args) == repr(tuples) and args.copy() == tuples
    assert list(zip([1, 2, 3], args)) == list(zip([1, 2, 3], tuples))
    blob = pickle.dumps(args, protocol=5)
    back = pickle.loads(blob)
    assert type(back) is BareArgs and back == tuples and back.values() == [3, "x", None]
    # The values travel bare: a thousand of them pickle smaller than a thousand 1-tuples.
    many = list(range(1000))
    assert len(pickle.dumps(BareArgs(many), 5)) < len(pickle.dumps(list(zip(many)), 5))


def test_claim_ids_without_holes_read_as_a_list_and_travel_as_a_range() -> None:
    """What a claim without holes hands out: held as a range, read as the list of its ids."""
    import pickle

    from guidist.core.protocol import ClaimIds

    ids = ClaimIds(range(7, 12))
    assert ids == [7, 8, 9, 10, 11] and ids[1:3] == [8, 9]
    sent = pickle.loads(pickle.dumps(ids))
    assert sent == range(7, 12)
    many = ClaimIds(range(100_000, 101_000))
    assert len(pickle.dumps(many)) < len(pickle.dumps(list(many))) / 50
    assert (ids[1], len(ids), list(reversed(ids))[0], 9 in ids, ids.index(9)) == (8, 5, 11, True, 2)
    assert ids == (7, 8, 9, 10, 11) and ids != [7, 8] and repr(ids) == "[7, 8, 9, 10, 11]"
    assert ("f", None, ids, []) == ("f", None, [7, 8, 9, 10, 11], [])  # inside a group too
