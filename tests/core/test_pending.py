"""pending: a worker's results kept as columns until a server accepts them."""

from __future__ import annotations

import pickle

from guidist.core.payload import ResultColumns, pack_results, unpack
from guidist.core.pending import PendingResults


def test_runs_and_single_results_read_back_as_the_tuples_in_order() -> None:
    p = PendingResults()
    p.add_run([1, 2, 3], [1, 4, 9], [10.0, 10.5, 11.0], [0.5, 0.5, 0.25])
    p.add((4, False, "Traceback: timed out", 11.25, 2.0))  # a failure without an exception
    p.add_run([5, 6], ["Traceback: boom", 36], [13.0, 13.5], [0.5, 0.1], {0: (b"exc",)})
    p.add((7, False, "TaskNotFound: x", None, None, b"exc2"))
    assert len(p) == 7
    assert p.items() == [(1, True, 1, 10.0, 0.5), (2, True, 4, 10.5, 0.5),
                         (3, True, 9, 11.0, 0.25), (4, False, "Traceback: timed out", 11.25, 2.0),
                         (5, False, "Traceback: boom", 13.0, 0.5, b"exc"),
                         (6, True, 36, 13.5, 0.1), (7, False, "TaskNotFound: x", None, None,
                                                    b"exc2")]
    assert PendingResults.of(p.items()).items() == p.items()


def test_extend_keeps_each_failure_and_missing_time_at_its_result() -> None:
    a = PendingResults.of([(1, True, 1, 1.0, 0.1), (2, False, "err", 2.0, 0.1, b"e")])
    b = PendingResults.of([(3, True, None, None, None), (4, False, "late", 4.0, 0.1)])
    a.extend(b)
    assert a.items() == [(1, True, 1, 1.0, 0.1), (2, False, "err", 2.0, 0.1, b"e"),
                         (3, True, None, None, None), (4, False, "late", 4.0, 0.1)]


def test_packed_as_pack_results_packs_the_same_tuples() -> None:
    p = PendingResults()
    p.add_run([7, 9], ["seven", "Traceback: x"], [100.5, 101.0], [0.001, 0.002], {1: ()})
    got = unpack(p.pack())
    assert isinstance(got, ResultColumns) and got.oks == (True, False)
    assert list(got) == p.items() == list(unpack(pack_results(p.items())))
    ok = PendingResults()
    ok.add_run([1], [1], [1.0], [0.1])
    assert pickle.loads(ok.pack())[2] is None  # all successes travel without the ok column


def test_what_columns_cannot_carry_travels_as_the_list_of_tuples() -> None:
    with_exception = PendingResults.of([(1, False, "Traceback", 1.0, 0.1, b"pickled")])
    untimed = PendingResults.of([(2, True, 4, None, None)])
    for p in (with_exception, untimed, PendingResults()):
        assert unpack(p.pack()) == pickle.loads(p.pack()) == p.items()


def test_ids_that_follow_each_other_in_ranges_travel_as_one_range() -> None:
    p = PendingResults()
    p.add_run(range(10, 13), [1, 2, 3], [1.0, 1.1, 1.2], [0.1, 0.1, 0.1])
    p.add_run(range(13, 15), [4, 5], [1.3, 1.4], [0.1, 0.1])
    later = PendingResults()
    later.add_run(range(15, 16), [6], [1.5], [0.1])
    p.extend(later)
    got = unpack(p.pack())
    assert isinstance(got, ResultColumns) and got.ids == range(10, 16)
    assert list(got) == p.items() and [r[0] for r in got] == list(range(10, 16))


def test_ids_out_of_order_or_from_lists_travel_as_they_are() -> None:
    gap = PendingResults()
    gap.add_run(range(10, 12), [1, 2], [1.0, 1.1], [0.1, 0.1])
    gap.add_run(range(20, 21), [3], [1.2], [0.1])  # not the next id: no range
    mixed = PendingResults()
    mixed.add_run(range(10, 12), [1, 2], [1.0, 1.1], [0.1, 0.1])
    mixed.add((12, True, 3, 1.2, 0.1))  # a single result: no range from then on
    listed = PendingResults()
    listed.add_run([10, 11], [1, 2], [1.0, 1.1], [0.1, 0.1])
    for p, ids in ((gap, (10, 11, 20)), (mixed, (10, 11, 12)), (listed, (10, 11))):
        got = unpack(p.pack())
        assert isinstance(got, ResultColumns) and got.ids == ids
        assert list(got) == p.items()
