"""payload: results packed as columns by the worker and decoded in one place."""

from __future__ import annotations

import pickle

import pytest

from guidist.core.errors import PayloadTooLarge
from guidist.core.payload import (
    ResultColumns,
    pack,
    pack_batches,
    pack_results,
    split_by_size,
    submission_args,
    unpack,
    unpack_submission,
)
from guidist.core.protocol import PLAIN_BELOW, BareArgs


def test_results_as_columns_round_trip_as_tuples() -> None:
    items = [(7, True, "seven", 100.5, 0.001), (9, False, "Traceback: x", 101.0, 0.002)]
    got = unpack(pack_results(items))
    assert isinstance(got, ResultColumns)
    assert list(got) == items and got[1] == items[1] and got[:1] == items[:1]
    assert len(got) == 2 and got.ids == (7, 9) and got.oks == (True, False)
    ok = unpack(pack_results(items[:1]))
    assert ok.oks == (True,)  # all successes travel without the column


def test_what_columns_cannot_carry_travels_as_the_list_it_is() -> None:
    with_exception = [(1, False, "Traceback", 1.0, 0.1, b"pickled exception")]
    untimed = [(2, True, 4, None, None)]
    tutorial = [(3, True, 9)]
    for items in (with_exception, untimed, tutorial, []):
        blob = pack_results(items)
        assert pickle.loads(blob) == items and unpack(blob) == items


def test_split_by_size_packs_each_part_with_the_packer_given() -> None:
    items = [(i, True, f"{i:04d}" * 250, 1.0, 0.1) for i in range(40)]  # 1,000 bytes each
    parts = split_by_size(items, 12_000, lambda i, n: f"{i}: {n}", pack_results)
    assert len(parts) > 1 and all(len(blob) <= 12_000 for _chunk, blob in parts)
    assert [t for _chunk, blob in parts for t in unpack(blob)] == items


def test_one_argument_tasks_travel_as_bare_values_and_read_as_tuples() -> None:
    k = PLAIN_BELOW // 4 + 1  # enough for the bare form
    for items in ([1, "a", [2, 3], None] * k, [(1,), ("a",), ([2, 3],), (None,)] * k):
        sent = submission_args(items)
        assert type(sent) is BareArgs and list.copy(sent) == [1, "a", [2, 3], None] * k
        blob = pack(sent)
        got, size = unpack_submission("square", blob, None)
        assert type(got) is BareArgs and size == len(blob)
        assert list(got) == [(1,), ("a",), ([2, 3],), (None,)] * k
    few = submission_args([1, "a"])  # a class reference costs more than a few tuples save
    assert type(few) is list and few == [(1,), ("a",)]
    many = list(range(1000, 2000))  # a value a task, not a 1-tuple: a third smaller
    assert len(pack(submission_args(many))) < 0.7 * len(pack([(v,) for v in many]))


def test_tasks_of_other_arities_and_an_older_clients_tuples_travel_as_tuples() -> None:
    mixed = [(1, 2), 3, ()]
    assert submission_args(mixed) == [(1, 2), (3,), ()]
    assert type(submission_args(mixed)) is list
    old = pickle.dumps([(1,), (2,)])  # what clients sent before the bare form
    got, _size = unpack_submission("square", old, None)
    assert type(got) is list and got == [(1,), (2,)]
    assert unpack_submission("square", [1, [2, 3]], None)[0] == [(1,), (2, 3)]  # unpacked


def test_a_bare_submission_over_the_limit_is_refused_whole() -> None:
    values = [f"{i:03d}" * 200 for i in range(40)]  # 600 bytes each
    blobs = pack_batches(submission_args(values), 10_000, lambda i, n: f"{i}")
    assert len(blobs) > 1 and all(type(pickle.loads(b)) is BareArgs for b in blobs)
    with pytest.raises(PayloadTooLarge, match="over the server's"):
        unpack_submission("square", pack(submission_args(values)), None, 10_000)
