"""Pickling batches once on the sending side, so their size can be checked for free.

A batch travels as one pickled ``bytes`` blob inside the proxy call: pickling a bytes object is
a copy, so the sender pays for pickling once (as before) and learns the size before anything
goes on the wire. Items over the limit are refused with a clear error instead of exhausting the
server's memory; the server also drops connections whose messages exceed a hard backstop.
"""

from __future__ import annotations

import operator
import pickle
import struct
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from .errors import PayloadTooLarge
from .packed_values import PackedValues
from .protocol import PLAIN_BELOW, BareArgs

_first = operator.itemgetter(0)

MAX_PAYLOAD = 16 * 2**20  # bytes: the largest task argument or result accepted by default
PROTOCOL = pickle.HIGHEST_PROTOCOL


def backstop(max_payload: int = MAX_PAYLOAD) -> int:
    """Largest message the server reads at all: room for a batch of items near the limit."""
    return 4 * max_payload + 2**20


def pack(obj: Any) -> bytes:
    """Pickle obj (raises like pickle.dumps for unpicklable contents)."""
    return pickle.dumps(obj, protocol=PROTOCOL)


def unpack(obj: Any) -> Any:
    """The inverse of pack and of pack_results; anything not bytes was sent unpacked and is
    returned as is. Both backends decode a worker's results here, and only here: results
    packed as columns come back as a ResultColumns, a sequence of the usual tuples."""
    if type(obj) is not bytes:
        return obj
    data = pickle.loads(obj)
    if type(data) is tuple and len(data) == 6 and data[0] in _COLUMN_MARKS:
        return ResultColumns(*data[1:])
    return data


#: Marks a results blob packed as columns (pack_results); any other blob is a list of tuples.
#: In this format the values column is itself pickled (once, by the worker), so the server
#: keeps its bytes until something reads a value (``packed_values``).
_RESULT_COLUMNS = "guidist-result-columns-2"
#: Column formats read: the first carried the values as a tuple (workers before packed values).
_COLUMN_MARKS = frozenset((_RESULT_COLUMNS, "guidist-result-columns-1"))


def pack_results(items: list) -> bytes:
    """A worker's results, (id, ok, value, started, runtime) each, pickled as columns: no
    tuple per result and the times as raw doubles, so the server unpickles a third as much
    and keeps the columns as they are. Anything else (a failure carrying its exception, a
    time that is None) is pickled as the list it is. Raises like pack for unpicklable ones."""
    if not items or set(map(len, items)) != {5}:
        return pack(items)
    ids, oks, values, started, runtimes = zip(*items)
    if None in started or None in runtimes:
        return pack(items)
    return pack_columns(ids, None if all(oks) else oks, values, started, runtimes)


def pack_columns(ids: Sequence[int], oks: Sequence[bool] | None, values: Sequence,
                 started: Sequence[float], runtimes: Sequence[float]) -> bytes:
    """Results given as columns, pickled as pack_results pickles them (oks None: all
    succeeded); unpack returns them as a ResultColumns. Ids given as a range travel as it;
    the values are pickled on their own, as one tuple, so the server can keep their bytes.
    Raises like pack."""
    return pack((_RESULT_COLUMNS, ids if type(ids) is range else tuple(ids),
                 None if oks is None else tuple(oks),
                 pack(tuple(values)), _doubles(started), _doubles(runtimes)))


def _doubles(numbers: Sequence[float]) -> bytes:
    """Numbers as raw doubles, as array("d").tobytes() has them (struct reads a list of
    floats two to three times faster than array does)."""
    return struct.pack(f"{len(numbers)}d", *numbers)


class ResultColumns(Sequence):
    """Results decoded from pack_results: columns, and a sequence of the usual 5-tuples for
    readers that go result by result. The values are a PackedValues, decoded on first read
    (a tuple when an older worker sent them decoded)."""

    __slots__ = ("ids", "oks", "all_ok", "values", "started", "runtimes")

    def __init__(self, ids: tuple | range, oks: tuple | None, values: bytes | Sequence,
                 started: bytes, runtimes: bytes) -> None:
        self.ids = ids
        self.values = PackedValues.of(values, len(ids)) if type(values) is bytes else values
        self.oks = (True,) * len(ids) if oks is None else oks
        self.all_ok = oks is None  # sent without the column: no failure to look for
        self.started, self.runtimes = array("d"), array("d")
        self.started.frombytes(started)
        self.runtimes.frombytes(runtimes)

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> tuple: ...
    @overload
    def __getitem__(self, i: slice) -> list[tuple]: ...

    def __getitem__(self, i: int | slice) -> tuple | list[tuple]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return (self.ids[i], self.oks[i], self.values[i], self.started[i], self.runtimes[i])

    def __iter__(self) -> Iterator[tuple]:
        return zip(self.ids, self.oks, self.values, self.started, self.runtimes)


def submission_args(items: list) -> list:
    """A submit's arguments as they travel: a BareArgs of the values when every task has one
    argument (a value that is not a tuple, or a 1-tuple), else a list of argument tuples.

    The bare form pickles a value per task instead of a 1-tuple each: the client pickles
    and the server unpickles half the objects, and the broker keeps the list as it comes."""
    if len(items) >= PLAIN_BELOW:
        types = set(map(type, items))  # C speed: one check a task
        if tuple not in types:
            return BareArgs(items)
        if types == {tuple} and set(map(len, items)) == {1}:
            return BareArgs(map(_first, items))
    return [a if type(a) is tuple else (a,) for a in items]


def unpack_submission(function: Any, args_list: Any, kwargs: Any,
                      max_payload: int = MAX_PAYLOAD) -> tuple[list[tuple], int]:
    """Check a submit call's arguments (either backend): returns its list of arg tuples and
    their pickled size in bytes. A bare submission (submission_args) comes back as the
    BareArgs it is: it reads as the list of 1-tuples, and the memory broker keeps its values.

    The size limit is enforced here too, not only by the bundled client: a batch within the
    limit cannot hold an argument over it, and a batch over it is refused whole (the client
    splits its batches below the limit), so a foreign client cannot make the server hold a
    task no worker may report on.
    """
    if not isinstance(function, str) or not function:
        raise ValueError("a task needs a function name such as 'square' or 'pkg.mod:func'")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ValueError("kwargs must be a dict")
    if type(args_list) is bytes:  # clients send batches pre-pickled: the size is known
        size = len(args_list)
        _check_batch_size(size, max_payload)
        args_list = pickle.loads(args_list)
    else:  # sent unpacked (a classic put, an in-process caller): measure it
        if not isinstance(args_list, list):
            args_list = list(args_list)
        size = len(pack(args_list))
        _check_batch_size(size, max_payload)
    if kwargs:
        _check_batch_size(size + len(pack(kwargs)), max_payload)
    if type(args_list) is BareArgs:  # one argument each by construction: nothing to check
        return args_list, size
    if not isinstance(args_list, list):
        args_list = list(args_list)
    if args_list and set(map(type, args_list)) != {tuple}:  # C speed: one check a task
        args_list = [a if type(a) is tuple else tuple(a) if isinstance(a, list) else (a,)
                     for a in args_list]
    return args_list, size


def _check_batch_size(size: int, max_payload: int) -> None:
    if size > max_payload:
        raise PayloadTooLarge(
            f"A submit of {mib(size)} is over the server's {mib(max_payload)} limit: send "
            f"batches of at most {mib(max_payload)}, each argument below it (pass a file path "
            "or URL instead of the data). Nothing of this batch was queued.")


def mib(n: int) -> str:
    """Bytes as MiB for messages."""
    return f"{n / 2**20:.1f} MiB"


def split_by_size(items: list, limit: int, describe: Callable[[int, int], str],
                  packer: Callable[[list], bytes] = pack) -> list[tuple[list, bytes]]:
    """Pack items into (chunk, blob) pairs, each blob at most limit bytes, in order; raises
    PayloadTooLarge for a single item over the limit, with describe(index, size) as the message.

    Pickles the whole list once (with packer) and halves only what is too big, so the common
    case (all of it fits) costs one pickle.
    """
    blob = packer(items)
    if len(blob) <= limit:
        return [(items, blob)]
    if len(items) == 1:
        raise PayloadTooLarge(describe(0, len(blob)))
    half = len(items) // 2
    left = split_by_size(items[:half], limit, describe, packer)
    right = split_by_size(items[half:], limit, lambda i, n: describe(i + half, n), packer)
    return left + right


def pack_batches(items: list, limit: int, describe: Callable[[int, int], str]) -> list[bytes]:
    """Pack items into blobs of at most limit bytes; raises PayloadTooLarge for a single item
    over the limit, with describe(index, size) as the message."""
    return [blob for _chunk, blob in split_by_size(items, limit, describe)]
