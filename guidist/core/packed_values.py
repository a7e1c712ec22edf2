"""A column of result values kept as the bytes a worker pickled them to, until read.

A worker pickles its results' values once, as one tuple (``payload.pack_columns``). The
server keeps those bytes (``PackedValues``) instead of making an object per value: in the
usual case nothing on the server reads most values (a client asks for them later, or never),
and the journal writes the bytes as they are. The first read of any value decodes the whole
column, once, for every slice of it (``_Packed.values``, the one place values are decoded);
a slice is a view that decodes nothing. The journal writes a column's bytes and its place in
them itself (``journal._done_columns``); pickled anywhere else, a column copies its bytes and
unpickles, with nothing but the standard library, as the plain tuple of its values, so
whoever reads it back needs no class of this module.

Decoding happens where it always did: in the server, from an authenticated worker's message.
"""

from __future__ import annotations

import operator
import pickle
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any, overload


def _unreadable(exc: BaseException) -> str:
    """What each value of a column that does not unpickle here reads as."""
    return (f"<result that cannot be unpickled on the server: {type(exc).__name__}: "
            f"{exc}>")[:500]


class _Packed:
    """One pickled tuple of n values, shared by every slice of it; decoded on first need."""

    __slots__ = ("blob", "n", "decoded")

    def __init__(self, blob: bytes, n: int) -> None:
        self.blob, self.n = blob, n
        self.decoded: tuple | None = None

    def values(self) -> tuple:
        """The values, decoded once. A column that does not unpickle here (a class the server
        cannot import, say) reads as a note saying so for each value, like the Redis
        backend's reader, so one bad report cannot make every later read fail."""
        decoded = self.decoded
        if decoded is None:
            try:
                decoded = pickle.loads(self.blob)
                if type(decoded) is not tuple or len(decoded) != self.n:
                    raise ValueError(f"expected {self.n} values, got {type(decoded).__name__}")
            except Exception as exc:
                decoded = (_unreadable(exc),) * self.n
            self.decoded = decoded  # a race between two readers decodes twice: harmless
        return decoded

    def __reduce__(self) -> tuple:
        # Re-pickled, the bytes are copied and unpickle as the tuple (standard library only).
        return pickle.loads, (self.blob,)


class PackedValues(Sequence):
    """Values [lo:hi] of a pickled tuple, read like a tuple of them: ``len`` without
    decoding, the first index or iteration decodes the whole tuple once, a slice is another
    view of the same bytes."""

    __slots__ = ("packed", "lo", "hi")

    def __init__(self, packed: _Packed, lo: int, hi: int) -> None:
        self.packed, self.lo, self.hi = packed, lo, hi

    @classmethod
    def of(cls, blob: bytes, n: int) -> PackedValues:
        """The n values pickled (as one tuple) in blob."""
        return cls(_Packed(blob, n), 0, n)

    @property
    def decoded(self) -> bool:
        """Whether the values have been decoded (by a read of this or another slice)."""
        return self.packed.decoded is not None

    @property
    def whole(self) -> int:
        """How many values the bytes this view holds on to carry."""
        return self.packed.n

    def __len__(self) -> int:
        return self.hi - self.lo

    @overload
    def __getitem__(self, i: int) -> Any: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence: ...

    def __getitem__(self, i: int | slice) -> Any:
        n = self.hi - self.lo
        if isinstance(i, slice):
            start, stop, step = i.indices(n)
            if step != 1:
                return tuple(self)[i]
            return PackedValues(self.packed, self.lo + start, self.lo + max(start, stop))
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("PackedValues index out of range")
        return self.packed.values()[self.lo + i]

    def __iter__(self) -> Iterator:
        values = self.packed.values()
        if self.lo == 0 and self.hi == len(values):
            return iter(values)
        return islice(values, self.lo, self.hi)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedValues):
            other = tuple(other)
        return isinstance(other, tuple | list) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]  # compares like a sequence of its values

    def __repr__(self) -> str:
        return f"PackedValues({tuple(self)!r})"

    def __reduce__(self) -> tuple:
        # The shared _Packed is pickled once however many slices of it go in one pickle;
        # each slice unpickles as values[lo:hi], a tuple.
        return operator.getitem, (self.packed, slice(self.lo, self.hi))
