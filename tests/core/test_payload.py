"""payload: results packed as columns by the worker and decoded in one place."""

from __future__ import annotations

import pickle

from guidist.core.payload import ResultColumns, pack_results, split_by_size, unpack


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
