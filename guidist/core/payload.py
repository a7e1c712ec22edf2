"""Pickling batches once on the sending side, so their size can be checked for free.

A submit's arguments may travel as pieces (``pack_pieces``): each piece a pickled list of a
few thousand tasks' arguments, which the memory broker keeps as those bytes and hands to a
worker whole. ``decode_piece`` is the one place a piece is decoded, wherever that happens (a
worker reading its claim, the server when it must see a task, a journal read back).

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
from functools import partial
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
                 started: Sequence[float] | bytes, runtimes: Sequence[float] | bytes) -> bytes:
    """Results given as columns, pickled as pack_results pickles them (oks None: all
    succeeded); unpack returns them as a ResultColumns. Ids given as a range travel as it;
    the values are pickled on their own, as one tuple, so the server can keep their bytes;
    times given as bytes are raw doubles already (``doubles``). Raises like pack."""
    return pack((_RESULT_COLUMNS, ids if type(ids) is range else tuple(ids),
                 None if oks is None else tuple(oks), pack(tuple(values)),
                 started if type(started) is bytes else doubles(started),
                 runtimes if type(runtimes) is bytes else doubles(runtimes)))


def doubles(numbers: Sequence[float]) -> bytes:
    """Numbers as raw doubles, as array("d").tobytes() has them (struct reads a list of
    floats two to three times faster than array does)."""
    return struct.pack(f"{len(numbers)}d", *numbers)


def double_array(raw: bytes | bytearray) -> array:
    """The inverse of doubles, as an array("d") (C speed, no float object a number)."""
    out = array("d")
    out.frombytes(raw)
    return out


def floats(numbers: Sequence[float] | bytes | bytearray) -> Sequence[float]:
    """The inverse of doubles, as a list (numbers not in bytes are returned as they are)."""
    if not isinstance(numbers, (bytes, bytearray)):
        return numbers
    return double_array(numbers).tolist()


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
        self.started, self.runtimes = double_array(started), double_array(runtimes)

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
                      max_payload: int = MAX_PAYLOAD,
                      keep_pieces: bool = False) -> tuple[Any, int]:
    """Check a submit call's arguments (either backend): returns its list of arg tuples and
    their pickled size in bytes. A bare submission (submission_args) comes back as the
    BareArgs it is: it reads as the list of 1-tuples, and the memory broker keeps its values.
    A submit in pieces (pack_pieces) is checked without decoding a task: its size is its
    pieces' bytes; it comes back as Pieces with keep_pieces (the memory broker keeps them
    packed), else decoded into one list (a piece that does not decode refuses the submit).

    The size limit is enforced here too, not only by the bundled client: a batch within the
    limit cannot hold an argument over it, and a batch over it is refused whole (the client
    splits its batches below the limit), so a foreign client cannot make the server hold a
    task no worker may report on.
    """
    if not isinstance(function, str) or not function:
        raise ValueError("a task needs a function name such as 'square' or 'pkg.mod:func'")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ValueError("kwargs must be a dict")
    if type(args_list) is Pieces:  # pieces of bytes: checked and measured without decoding
        pieces = args_list.check()
        _check_batch_size(pieces.size, max_payload)
        if kwargs:
            _check_batch_size(pieces.size + len(pack(kwargs)), max_payload)
        return (pieces if keep_pieces else pieces.decode()), pieces.size
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


# ---------------------------------------------------------------- a submit's arguments in pieces

#: Marks a submit whose arguments travel as pieces (see pack_pieces); anything else is one blob
#: or a list, as before.
PIECES = "guidist-pieces-1"
#: Tasks per piece: well below a worker's default claim (claims.DEFAULT_PREFETCH, 10,000), so
#: that two workers each take whole pieces, and large enough that a claim carries few of them.
PIECE_TASKS = 2_000


class UnreadableArguments(ValueError):
    """A piece of a submit's arguments that does not decode (unpicklable here, or not the
    list of its count of tasks that the client sent)."""


def decode_piece(blob: bytes, bare: bool, n: int) -> list:
    """The one decoder of a submit's pieces (server, journal replay and workers alike): the
    list of n values (bare) or argument tuples pickled in blob; raises UnreadableArguments."""
    try:
        items = pickle.loads(blob)
    except Exception as exc:  # a class the reader cannot import, a truncated blob...
        raise UnreadableArguments(
            f"the arguments of {n} task(s) could not be read here: "
            f"{type(exc).__name__}: {exc}") from None
    if type(items) is not list or len(items) != n:
        raise UnreadableArguments(f"the arguments of {n} task(s) were not the list of {n} "
                                  "that a client sends")
    if not bare and items and set(map(type, items)) != {tuple}:  # C speed: one check a task
        items = [a if type(a) is tuple else tuple(a) if isinstance(a, list) else (a,)
                 for a in items]
    return items


class PackedArgs(Sequence):
    """One piece of a submit's arguments as the client pickled it: the memory broker keeps
    it and hands it to a worker as these bytes when a claim takes the piece whole; the worker
    decodes it (args). picks, when given, are the positions in the piece a claim took (a
    piece the server could not read, handed out in parts). Read as a sequence (what the
    server's listings, records and journal rows do) it is the list of argument tuples,
    decoded once and cached, with a placeholder text for each task if it cannot be read."""

    __slots__ = ("blob", "bare", "n", "picks", "_items", "error")

    def __init__(self, blob: bytes, bare: bool, n: int,
                 picks: Sequence[int] | None = None) -> None:
        self.blob, self.bare, self.n, self.picks = blob, bare, n, picks
        self._items: list | None = None  # the decoded values or tuples (all n of them)
        self.error: str | None = None  # why the piece could not be read here

    def __reduce__(self) -> tuple:
        return PackedArgs, (self.blob, self.bare, self.n, self.picks)  # never the decoded

    def decoded(self) -> list:
        """All n values (bare) or tuples, decoded once; raises UnreadableArguments."""
        if self._items is None:
            self._items = decode_piece(self.blob, self.bare, self.n)
        return self._items

    def readable(self) -> list:
        """decoded(), or a placeholder text for each task when the piece cannot be read."""
        if self._items is None and self.error is None:
            try:
                self.decoded()
            except UnreadableArguments as exc:
                self.error = str(exc)
        if self._items is None:
            return [f"<unreadable: {self.error}>"] * self.n if self.bare \
                else [(f"<unreadable: {self.error}>",)] * self.n
        return self._items

    def args(self) -> list:
        """The claimed tasks' arguments as a ClaimGroup has them (a BareArgs when they are
        bare); raises UnreadableArguments. This is where a worker decodes a claimed piece."""
        items = self.decoded()
        if self.picks is not None:
            items = [items[i] for i in self.picks]
        return BareArgs(items) if self.bare else items

    def _tuples(self) -> list:
        items = self.readable()
        if self.picks is not None:
            items = [items[i] for i in self.picks]
        return [(a,) for a in items] if self.bare else items

    def __len__(self) -> int:
        return self.n if self.picks is None else len(self.picks)

    @overload
    def __getitem__(self, i: int) -> tuple: ...
    @overload
    def __getitem__(self, i: slice) -> list[tuple]: ...

    def __getitem__(self, i: int | slice) -> tuple | list[tuple]:
        if self.picks is None and not isinstance(i, slice):
            a = self.readable()[i]
            return (a,) if self.bare else a
        return self._tuples()[i]

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._tuples())

    def __eq__(self, other: object) -> bool:
        return self._tuples() == list(other) if isinstance(other, (list, PackedArgs)) \
            else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PackedArgs({self.n} tasks, {len(self.blob)} bytes)"


class Pieces:
    """A submit's arguments as the client sends them in pieces: whether each task's argument
    is bare, each piece's count of tasks, and each piece's bytes (see pack_pieces).

    It travels as this class (a reference of a few bytes a call), not as a plain tuple: a
    server from before pieces cannot unpickle it and refuses the call, where it would have
    queued a tuple's four fields as four tasks."""

    __slots__ = ("bare", "counts", "blobs", "n", "size")

    def __init__(self, bare: bool, counts: Sequence[int], blobs: Sequence[bytes]) -> None:
        # Unpickling runs this with whatever a peer sent: keep it, check() judges it.
        self.bare, self.counts, self.blobs = bare, counts, blobs
        self.n = self.size = 0

    def __reduce__(self) -> tuple:
        return Pieces, (self.bare, self.counts, self.blobs)

    def check(self) -> Pieces:
        """Itself, its count and size known; raises ValueError (one line) when it is not what
        a client sends."""
        bare, counts, blobs = self.bare, self.counts, self.blobs
        if (type(bare) is not bool or type(counts) is not tuple or type(blobs) is not tuple
                or len(counts) != len(blobs) or not counts
                or set(map(type, counts)) != {int} or min(counts) < 1
                or set(map(type, blobs)) != {bytes}):
            raise ValueError("a submit in pieces needs (bare, counts, blobs): a flag, and one "
                             "positive count for each bytes piece")
        self.n, self.size = sum(counts), sum(map(len, blobs))
        return self

    @classmethod
    def of_row(cls, row: tuple) -> Pieces:
        """The pieces a journal row holds (row's form; see is_pieces)."""
        return cls(*row[1:]).check()

    def __len__(self) -> int:
        return self.n

    def packed(self) -> list[PackedArgs]:
        """Each piece as the PackedArgs the memory broker keeps."""
        return [PackedArgs(b, self.bare, k) for b, k in zip(self.blobs, self.counts)]

    def decode(self) -> list:
        """Every task's arguments in one list (a BareArgs when bare): what a backend that does
        not keep pieces takes; raises UnreadableArguments."""
        items: list = []
        for blob, k in zip(self.blobs, self.counts):
            items.extend(decode_piece(blob, self.bare, k))
        return BareArgs(items) if self.bare else items

    def row(self) -> tuple:
        """The form a journal row stores: the bytes as they came, behind a marker and not
        this class, so a journal reads back whatever this module becomes (see of_row)."""
        return (PIECES, self.bare, self.counts, self.blobs)

    def readable(self) -> list[tuple]:
        """Every task's argument tuple, a placeholder text where a piece cannot be read."""
        return [t for p in self.packed() for t in p]


def piece_window(piece: PackedArgs, lo: int, hi: int) -> tuple:
    """Tasks [lo:hi] of a piece as a journal's done row keeps their arguments: the bytes as
    the client sent them and where the tasks lie in them (see read_piece_window)."""
    return (PIECES, piece.bare, piece.n, piece.blob, lo, hi)


def read_piece_window(column: Any) -> tuple[Any, bool]:
    """(arguments, whether bare) of a done row's arguments column: a piece_window decoded
    (a placeholder text a task when it cannot be read), anything else as it is (not bare)."""
    if type(column) is tuple and len(column) == 6 and column[0] == PIECES:
        _mark, bare, n, blob, lo, hi = column
        return PackedArgs(blob, bare, n).readable()[lo:hi], bare
    return column, False


def is_pieces(args_list: Any) -> bool:
    """Whether a journal row's arguments are pieces: (PIECES, bare, counts, blobs)."""
    return (type(args_list) is tuple and len(args_list) > 0 and type(args_list[0]) is str
            and args_list[0] == PIECES)


def _shifted(describe: Callable[[int, int], str], by: int, index: int, size: int) -> str:
    return describe(by + index, size)


def pack_pieces(items: list, limit: int, describe: Callable[[int, int], str],
                per_piece: int = PIECE_TASKS) -> list[tuple[int, Pieces]]:
    """A submit's arguments (submission_args' form) as calls of pieces: (tasks, Pieces)
    each, the blobs of a call at most limit bytes in all. Raises
    PayloadTooLarge, with describe(index, size), for a single task over the limit."""
    bare = type(items) is BareArgs
    values: list = list.copy(items) if bare else items
    calls: list[tuple[int, Pieces]] = []
    counts: list[int] = []
    blobs: list[bytes] = []
    used = done = 0
    for i in range(0, len(values), per_piece):
        part = values[i:i + per_piece]
        for chunk, blob in split_by_size(part, limit, partial(_shifted, describe, i)):
            if blobs and used + len(blob) > limit:
                calls.append((done, Pieces(bare, tuple(counts), tuple(blobs))))
                counts, blobs, used, done = [], [], 0, 0
            counts.append(len(chunk))
            blobs.append(blob)
            used += len(blob)
            done += len(chunk)
    if blobs:
        calls.append((done, Pieces(bare, tuple(counts), tuple(blobs))))
    return calls
