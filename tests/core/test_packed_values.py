"""packed_values: a worker's values kept as the bytes it pickled them to, decoded once."""

from __future__ import annotations

import pickle

import pytest

from guidist.core.packed_values import PackedValues
from guidist.core.payload import ResultColumns, pack_results, unpack

UNPICKLED: list[int] = []


def _remade(x: int) -> Counted:
    UNPICKLED.append(x)
    return Counted(x)


class Counted:
    """A value that notes each time it is unpickled."""

    def __init__(self, x: int) -> None:
        self.x = x

    def __reduce__(self) -> tuple:
        return _remade, (self.x,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counted) and other.x == self.x


@pytest.fixture(autouse=True)
def _fresh() -> None:
    UNPICKLED.clear()


def test_a_workers_values_arrive_packed_and_decode_once_for_every_slice() -> None:
    blob = pack_results([(t, True, Counted(t), 1.0, 0.5) for t in range(1, 11)])
    got = unpack(blob)
    assert isinstance(got, ResultColumns) and type(got.values) is PackedValues and got.all_ok
    assert not unpack(pack_results([(1, False, "Traceback", 1.0, 0.5)] * 2)).all_ok
    front, rest = got.values[:1], got.values[1:]
    assert len(got.values) == 10 and len(front) == 1 and len(rest) == 9 and UNPICKLED == []
    assert rest[0] == Counted(2) and rest[-1] == Counted(10)  # the first read decodes all
    assert UNPICKLED == list(range(1, 11)) and front.decoded
    assert list(front) == [Counted(1)] and list(rest[2:4]) == [Counted(4), Counted(5)]
    assert got[4] == (5, True, Counted(5), 1.0, 0.5) and list(got.values[::3])[1] == Counted(4)
    assert UNPICKLED == list(range(1, 11))  # never again
    with pytest.raises(IndexError):
        rest[9]


def test_packed_values_pickle_as_their_bytes_and_unpickle_as_a_plain_tuple() -> None:
    values = unpack(pack_results([(t, True, t * 10**12, 1.0, 0.5) for t in range(6)])).values
    first, last = values[:2], values[2:]
    again = pickle.dumps([first, last])
    assert again.count(values.packed.blob) == 1  # the shared bytes once, not re-encoded
    assert not values.decoded
    assert pickle.loads(again) == [(0, 10**12), (2 * 10**12, 3 * 10**12, 4 * 10**12,
                                                5 * 10**12)]
    assert b"guidist" not in again  # read back with the standard library alone


def test_values_the_server_cannot_unpickle_read_as_a_note_and_nothing_else_breaks() -> None:
    blob = pickle.dumps((1, 2, 3))[:-3]  # damaged: it ends too soon
    bad = PackedValues.of(blob, 3)
    assert len(bad) == 3
    assert all(v.startswith("<result that cannot be unpickled on the server: ") for v in bad)
    short = PackedValues.of(pickle.dumps((1, 2)), 3)  # not the count the ids say
    assert "expected 3 values" in short[0]


def test_an_older_workers_values_as_a_tuple_are_taken_as_they_are() -> None:
    times = bytes(16)
    got = unpack(pickle.dumps(("guidist-result-columns-1", (1, 2), None, ("a", "b"), times,
                               times)))
    assert isinstance(got, ResultColumns) and got.values == ("a", "b")
    assert list(got) == [(1, True, "a", 0.0, 0.0), (2, True, "b", 0.0, 0.0)]
