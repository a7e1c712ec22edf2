"""The task ledger and dispatcher that lives inside the server process.

Design notes (why it looks the way it does):

* Queued tasks are kept as the batches the client sent (``_Batch``: a first id plus the list of
  argument tuples), not as one object per task. That keeps a million queued tasks to roughly a
  hundred bytes each and lets ``claim`` hand out a slice per round trip. A client's submit
  comes in pieces of a few thousand tasks (``payload.pack_pieces``), and each piece is a batch
  that keeps the client's bytes (``PackedArgs``): a claim that covers a whole untouched piece
  hands those bytes to the worker, which decodes them; anything that needs one of its tasks
  (a smaller claim, a cancel, a lookup, a listing, a checkpoint) decodes the piece once, in
  ``_Batch.items``, and goes on as with any batch.
* A claim leases a slice of a batch as one object (``_Slice``, kept in ``_Leases``): nothing is
  stored per id. The slice leasing an id is found by bisect over the slices' first ids, and a
  report that is exactly the front of a slice drops it whole. A task gets a ``Record`` of its
  own only when something happens to it alone (it starts, fails, is released or given back, its
  lease expires). Successes are kept as the batches they were reported in (``_DoneBatch``: one
  object holding the ids, results and timings), so the hot path makes no object per task; a
  slice without holes holds its ids as a ``range``, and so does its done batch.
* Finished tasks are kept capped per state (failed, dead and cancelled records in
  insertion-ordered dicts, successes in ``_DoneStore``), so memory stays bounded when millions
  of tasks pass.
* Leases are per worker: one heartbeat renews every lease a worker holds, and the reaper
  requeues all of a silent worker's tasks at once. Constant work per task, no timers per task.
  A worker's tasks also come back the moment every connection it made to the server closes
  (the process died, or TCP gave up on its host): the lease is only the fallback for a worker
  that hangs while connected.
* A leased task is claimed (waiting in its worker's batch) until the worker says it started
  it: the worker reports what it runs with each exchange and heartbeat (a few ids, never a
  call per task), and the first tasks of a claim, up to the worker's free slots, start as
  they are delivered. A worker that waits for work with nothing to claim makes the broker ask
  a busy one to give back what it has not started (``CMD_GIVE_BACK``).
* Cancelling or finishing a task that sits in a queue lane is lazy: it is marked and skipped when
  the lane reaches it, so nothing is ever removed from the middle of a deque.
* Every public method takes the one lock; ``claim`` long-polls on a condition of that lock.
* Every task belongs to a job (``_Job``), and each batch and record points at its job, so a
  state change moves the job's counters too: reading a job is constant-time.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import operator
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import repeat
from typing import Any, Protocol, cast

from ...packed_values import PackedValues
from ...payload import (
    PIECES,
    PackedArgs,
    Pieces,
    ResultColumns,
    pack,
    piece_window,
    unpack,
    unpack_submission,
)
from ...protocol import (
    CMD_GIVE_BACK,
    CMD_OK,
    CMD_STOP,
    CMD_UNKNOWN,
    PLAIN_BELOW,
    SNAPSHOT_JOBS,
    TASK_ORDERS,
    THROUGHPUT_WINDOW,
    BareArgs,
    ClaimGroup,
    ClaimIds,
    Event,
    Job,
    ResultItem,
    Snapshot,
    Task,
    TaskPage,
    TaskState,
    WorkerInfo,
    WorkerState,
    auto_job_name,
    check_job_name,
    check_timeout,
    claim_group,
    classic_result_text,
    parse_order,
    running_ids,
    throughput,
)
from ...remote import is_by_value
from ...runstats import FunctionTable, Report
from ...spans import SpanWindow
from ..base import DEFAULTS

log = logging.getLogger(__name__)

QUEUED, CLAIMED, RUNNING, DONE, FAILED, DEAD, CANCELLED = (
    TaskState.QUEUED,
    TaskState.CLAIMED,
    TaskState.RUNNING,
    TaskState.DONE,
    TaskState.FAILED,
    TaskState.DEAD,
    TaskState.CANCELLED,
)
_FINISHED_STATES = (DONE, FAILED, DEAD, CANCELLED)
HOLE = object()  # placeholder for a cancelled or finished item inside a queued batch
_first = operator.itemgetter(0)
# In the recent-results log: tasks were cancelled in bulk there without records of their own
# (a purge, a job's cancel), so a result waiter must look its ids up instead.
_BULK_CANCEL = object()
_MAX_WAIT = 60.0  # seconds one wait_results call may block the server thread serving it
_MAX_PURGED_RUNS = 10_000  # runs of ids cancelled in bulk that get_task still answers for
_SERIES_SECONDS = 3600
_MAX_SERIES_REPLY = 900
_MAX_EVENTS_REPLY = 500
_SEARCH_SCAN_LIMIT = 200_000
#: Pages this deep into the finished tasks (newest first) are cut from one merged list built at
#: most once a second, not merged lazily for every page.
_LAZY_MERGE_DEPTH = 5_000
_LISTING_CACHE_S = 1.0
_ERROR_TEXT_LIMIT = 16_000


class Journal(Protocol):
    """What the broker tells a durable store; called under the broker lock, so it only buffers."""

    def submitted(self, first_id: int, function: str, args_list: list, kwargs: dict | None,
                  when: float, classic: bool, job: int,
                  timeout: float | None = None) -> int | None: ...
    def wait_durable(self, ticket: int) -> None: ...
    def job(self, job: _Job) -> None: ...
    def claimed(self, ids: Sequence[int], attempts: int) -> None: ...
    def requeued(self, records: list[Record]) -> None: ...
    def done(self, batches: list[_DoneBatch]) -> None: ...
    def finished(self, records: list[Record]) -> None: ...
    def throttle(self) -> None: ...
    def checkpoint(self, state: dict[str, Any]) -> None: ...
    def cancelled_ids(self, ids: Iterable[int], when: float, by_job: dict[int, int]) -> None: ...
    def defined(self, name: str, blob: bytes) -> None: ...
    def lookup(self, ids: list[int]) -> dict[int, Task]:
        """Tasks no longer in memory, read back (called outside the broker lock)."""
        ...
    def attach(self, checkpoint: Callable[[], None]) -> None:
        """Take the broker's checkpoint function, which the journal calls to compact itself."""


class NullJournal:
    """A journal that forgets everything: the in-memory-only mode."""

    def submitted(self, *args: Any) -> None:
        """Ignore a submission (no ticket: its tasks are claimable at once)."""

    claimed = requeued = done = finished = cancelled_ids = checkpoint = job = submitted
    defined = submitted

    def wait_durable(self, ticket: int) -> None:
        """Nothing to wait for."""

    def lookup(self, ids: list[int]) -> dict[int, Task]:
        """Nothing is kept beyond memory."""
        return {}

    def throttle(self) -> None:
        """Never hold anyone back."""

    def attach(self, checkpoint: Callable[[], None]) -> None:
        """Nothing to compact."""


class _Batch:
    """A run of queued tasks with consecutive ids, exactly as one submit call delivered them
    (or one piece of it: a submit in pieces makes a batch of each, kept as its bytes)."""

    __slots__ = ("first_id", "function", "kwargs", "_items", "n", "packed", "pos", "holes",
                 "submitted", "classic", "job", "bare", "task_bytes", "timeout")

    def __init__(self, first_id: int, function: str, kwargs: dict | None,
                 items: list | PackedArgs, submitted: float, classic: bool, job: _Job,
                 task_bytes: int = 1, timeout: float | None = None) -> None:
        self.first_id = first_id
        self.function = function
        self.kwargs = kwargs
        # A piece as the client pickled it: a claim of all of it hands these bytes to the
        # worker; anything that needs a task of it decodes it once (items).
        self.packed: PackedArgs | None = None
        self._items: list | None
        # Tasks of one argument (the usual case) keep the bare values, not a 1-tuple each:
        # about 45 bytes a queued task less (10 million queued fit in well under 1 GiB).
        # The tuples are made back, at C speed, for the slice a claim hands out.
        if isinstance(items, PackedArgs):
            self.packed, self._items, self.bare, self.n = items, None, items.bare, items.n
        elif type(items) is BareArgs:  # the client sent them bare: keep its list of values
            self.bare = len(items) > 0
            self.items = list.copy(items)  # a plain list: indexing gives the value
        else:
            self.bare = len(items) > 0 and set(map(len, items)) == {1}
            self.items = list(map(_first, items)) if self.bare else items
        self.pos = 0  # index of the next item to hand out
        self.holes = 0  # cancelled/finished items at or after pos
        self.submitted = submitted
        self.classic = classic
        self.job = job
        self.task_bytes = max(1, task_bytes)  # pickled size of one task's arguments (average)
        self.timeout = timeout  # seconds each task may run (None: the server's default)

    @property
    def items(self) -> list:
        """The queued arguments (values when bare), HOLEs in place. A piece still packed is
        decoded here, once; one the server cannot read keeps its bytes for the workers (who
        may), and reads here as a placeholder text a task."""
        items = self._items
        if items is None:
            assert self.packed is not None
            items = self._items = self.packed.readable()
            if self.packed.error is None:
                self.packed = None  # decoded: the bytes are no longer needed
        return items

    @items.setter
    def items(self, items: list) -> None:
        self._items, self.n, self.packed = items, len(items), None

    def whole(self) -> PackedArgs | None:
        """The piece, when it is still untouched bytes (a claim may hand it out whole)."""
        return self.packed if self._items is None else None

    def unreadable(self) -> PackedArgs | None:
        """The piece, when the server could not decode it (its tasks go out as its bytes)."""
        return self.packed if self._items is not None else None

    def queued_ids(self) -> Iterable[int]:
        """Ids of the items still waiting (not HOLEs), without decoding a packed piece."""
        first = self.first_id
        if self._items is None:
            return range(first + self.pos, first + self.n)
        items = self._items
        return [first + i for i in range(self.pos, self.n) if items[i] is not HOLE]

    def exhaust(self) -> None:
        """Drop every waiting item in place: the lane skips the batch when it reaches it."""
        self.items = [] if self._items is None else self._items[:self.pos]
        self.holes = 0

    @property
    def alive(self) -> int:
        """Items still waiting in this batch."""
        return self.n - self.pos - self.holes

    def args(self, i: int) -> tuple:
        """The argument tuple of item i (not a HOLE)."""
        return (self.items[i],) if self.bare else self.items[i]

    def tuples(self, start: int) -> list | tuple:
        """Items from start as argument tuples, HOLEs kept in place, for a checkpoint: a
        piece still packed goes in a journal row's form (payload.Pieces.row), not decoded."""
        if self._items is None and self.packed is not None:
            return (PIECES, self.bare, (self.n,), (self.packed.blob,))
        rest = self.items[start:]
        return [a if a is HOLE else (a,) for a in rest] if self.bare else rest


class Record:
    """A task that has been claimed at least once (or retried, or cancelled by id)."""

    __slots__ = ("id", "function", "_args", "kwargs", "state", "attempts", "submitted",
                 "started", "finished", "worker", "result", "error", "classic", "retry_base",
                 "runtime", "job", "exception", "timeout")

    def __init__(self, id: int, function: str, args: tuple | _ArgOf, kwargs: dict | None,
                 attempts: int, submitted: float, classic: bool, job: _Job,
                 state: TaskState = QUEUED, worker: str | None = None,
                 started: float | None = None, timeout: float | None = None) -> None:
        self.id = id
        self.function = function
        self._args: tuple | _ArgOf = args
        self.kwargs = kwargs
        self.state = state
        self.attempts = attempts
        self.submitted = submitted
        self.started = started
        self.finished: float | None = None
        self.worker = worker
        self.result: Any = None
        self.error: str | None = None
        self.classic = classic
        self.runtime: float | None = None
        self.job = job
        self.exception: bytes | None = None
        # attempts at the last retry by hand: the lease rules count hand-outs after it
        self.retry_base = 0
        self.timeout = timeout  # seconds it may run (None: the server's default)

    @property
    def args(self) -> tuple:
        """The task's argument tuple; one in a piece still packed is read from it on first
        need (the first task of every claim gets a Record as it starts: no decode for it)."""
        args = self._args
        if isinstance(args, _ArgOf):
            args = self._args = args.piece[args.i]
        return args

    @args.setter
    def args(self, args: tuple | _ArgOf) -> None:
        self._args = args

    def to_task(self) -> Task:
        """Freeze into the public dataclass."""
        return Task(self.id, self.function, self.args, self.kwargs, self.state, self.attempts,
                    self.submitted, self.started, self.finished, self.worker, self.result,
                    self.error, self.runtime, self.job.id, self.exception)


class _ArgOf:
    """The i-th task's arguments in a piece still packed, for a Record to read on need."""

    __slots__ = ("piece", "i")

    def __init__(self, piece: PackedArgs, i: int) -> None:
        self.piece, self.i = piece, i


class _RecordArgs(Sequence):
    """A one-record slice's argument list, read from the record on need (a task of a piece
    still packed is not decoded for the done batch its result makes)."""

    __slots__ = ("rec",)

    def __init__(self, rec: Record) -> None:
        self.rec = rec

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: Any) -> Any:
        return [self.rec.args][i]


class _Slice:
    """Tasks leased together: a slice of one batch as one claim took it, or one record claimed
    alone. It is the lease of every id in its window (ids[a:b], less the few in gone) for its
    holder: those are CLAIMED by worker at attempts, except the few that started or were
    looked at alone, which have a Record of their own in recs (same place in the order)."""

    __slots__ = ("function", "kwargs", "submitted", "classic", "job", "timeout", "attempts",
                 "worker", "ids", "args", "bare", "_base", "_pos", "a", "b", "recs", "gone",
                 "n", "holder")

    def __init__(self, function: str, kwargs: dict | None, submitted: float, classic: bool,
                 job: _Job, timeout: float | None, attempts: int, worker: str | None,
                 ids: Sequence[int], args: Sequence, bare: list | None = None) -> None:
        self.function, self.kwargs, self.submitted = function, kwargs, submitted
        self.classic, self.job, self.timeout = classic, job, timeout
        self.attempts, self.worker = attempts, worker
        self.ids, self.args = ids, args
        self.bare = bare  # the values themselves when every task has one argument
        # A claim takes ids in order: without holes, an id's index is arithmetic.
        self._base = ids[0] if ids else 0
        self._pos: dict[int, int] | None = None
        # The lease (see _Leases): ids[a] and ids[b - 1] are always still leased.
        self.a, self.b = 0, len(ids)
        self.recs: dict[int, Record] | None = None  # leased tasks with a Record of their own
        self.gone: set[int] | None = None  # ids inside the window that left it alone
        self.n = len(ids)  # tasks leased through this slice
        self.holder: _Worker | None = None

    @classmethod
    def of_record(cls, rec: Record) -> _Slice:
        """A slice of one record's task (what a done batch of one refers to)."""
        return cls(rec.function, rec.kwargs, rec.submitted, rec.classic, rec.job, rec.timeout,
                   rec.attempts, rec.worker, [rec.id], _RecordArgs(rec))

    def index(self, tid: int) -> int:
        """Position of tid among ids (-1: not one of them)."""
        i = tid - self._base
        ids = self.ids
        if 0 <= i < len(ids) and ids[i] == tid:
            return i
        if type(ids) is range:  # no holes: arithmetic says it all
            return -1
        if self._pos is None:  # holes in the claimed run: built once, on first need
            self._pos = {t: i for i, t in enumerate(ids)}
        return self._pos.get(tid, -1)

    def args_of(self, tid: int) -> tuple:
        """The argument tuple of task tid (one of ids)."""
        return self.args[self.index(tid)]

    def record(self, tid: int) -> Record:
        """A Record of task tid, claimed by the slice's worker (for a lease of its own)."""
        args: Any = self.args
        args = _ArgOf(args, self.index(tid)) if type(args) is PackedArgs and args._items is None \
            else args[self.index(tid)]
        return Record(tid, self.function, args, self.kwargs, self.attempts,
                      self.submitted, self.classic, self.job, CLAIMED, self.worker, None,
                      self.timeout)

    def holds(self, tid: int) -> bool:
        """Whether tid is leased through this slice."""
        i = self.index(tid)
        return self.a <= i < self.b and not (self.gone and tid in self.gone)

    def leased(self, reverse: bool = False) -> Iterator[tuple[int, Record | None]]:
        """(id, its own Record or None) of every task leased through this slice, in order."""
        ids, recs, gone = self.ids, self.recs, self.gone
        span = range(self.b - 1, self.a - 1, -1) if reverse else range(self.a, self.b)
        for i in span:
            tid = ids[i]
            if gone and tid in gone:
                continue
            yield tid, (recs.get(tid) if recs else None)

    def view(self, tid: int, rec: Record | None) -> Record:
        """Task tid as a Record: its own, or one made for reading (not kept)."""
        return rec if rec is not None else self.record(tid)

    def has_claimed(self) -> bool:
        """Whether any task leased through this slice has not started."""
        recs = self.recs
        return not recs or self.n > len(recs) or any(r.state is CLAIMED for r in recs.values())


class _Leases:
    """Every claimed or running task, held as the slices they were claimed in (``_Slice``),
    so a claim and a complete of a whole slice cost a few operations, not a few per task.

    The slices of batches are indexed by their first id: their spans never overlap (a batch
    hands each id out once), so the slice leasing an id is found by bisect. Tasks with a
    Record of their own (started, or claimed alone) are also found by id in _own. Each
    worker keeps its slices in claim order (``_Worker.leases``), and so does ``order``."""

    def __init__(self) -> None:
        self.order: dict[_Slice, None] = {}  # every slice, in claim order
        self._starts: list[int] = []  # first ids of the batch slices, sorted
        self._at: dict[int, _Slice] = {}  # first id -> batch slice
        self._own: dict[int, _Slice] = {}  # id of a leased task with a Record -> its slice
        self.n = 0  # tasks leased

    def __len__(self) -> int:
        return self.n

    def add(self, s: _Slice, w: _Worker) -> None:
        """Lease slice s (a claim's tasks from one batch) to w."""
        self._hold(s, w)
        lo = s.ids[0]
        if self._starts and lo < self._starts[-1]:  # claims across lanes come in any order
            bisect.insort(self._starts, lo)
        else:
            self._starts.append(lo)
        self._at[lo] = s

    def add_record(self, rec: Record, w: _Worker) -> None:
        """Lease one record (a task queued again) to w, alone."""
        s = _Slice.of_record(rec)
        s.recs = {rec.id: rec}
        self._own[rec.id] = s
        self._hold(s, w)

    def _hold(self, s: _Slice, w: _Worker) -> None:
        s.holder = w
        self.order[s] = None
        w.leases[s] = None
        w.n_leased += s.n
        self.n += s.n

    def slice_of(self, tid: int) -> _Slice | None:
        """The slice tid is leased through (None: it is not leased)."""
        s = self._own.get(tid)
        if s is not None:
            return s
        starts = self._starts
        i = bisect.bisect_right(starts, tid) - 1
        if i >= 0:
            s = self._at[starts[i]]
            if s.holds(tid):
                return s
        return None

    def get(self, tid: int) -> Record | _Slice | None:
        """What leases tid: its own Record, or the slice holding it (None: not leased)."""
        s = self.slice_of(tid)
        if s is None:
            return None
        rec = s.recs.get(tid) if s.recs else None
        return rec if rec is not None else s

    def own(self, s: _Slice, tid: int) -> Record:
        """The Record of task tid (leased through s), made and kept if it had none."""
        recs = s.recs
        if recs is None:
            recs = s.recs = {}
        rec = recs.get(tid)
        if rec is None:
            rec = recs[tid] = s.record(tid)
            self._own[tid] = s
        return rec

    def remove(self, s: _Slice, tid: int) -> Record:
        """Task tid (leased through s) leaves its lease; returns its Record (made if none)."""
        rec = s.recs.pop(tid, None) if s.recs else None
        if rec is None:
            rec = s.record(tid)
        else:
            del self._own[tid]
        i = s.index(tid)
        if i == s.a:
            s.a += 1
            self._close_up(s)
        elif i == s.b - 1:
            s.b -= 1
            self._close_up(s)
        else:
            if s.gone is None:
                s.gone = set()
            s.gone.add(tid)
        self._shrink(s, 1)
        return rec

    def drop_front(self, s: _Slice, k: int) -> None:
        """The first k tasks of s's window leave it (none in gone, none with a Record)."""
        s.a += k
        self._shrink(s, k)

    def front_run(self, s: _Slice, tids: Sequence[int], pos: int) -> int:
        """How many of tids from pos are exactly the first tasks s leases, in order (0 when
        tids[pos] does not start s's window, or when some left s from its middle)."""
        a, ids = s.a, s.ids
        if s.gone or a >= s.b or ids[a] != tids[pos]:
            return 0
        m = min(s.b - a, len(tids) - pos)
        if ids[a + m - 1] != tids[pos + m - 1]:
            return 0
        # First and last agree; so must every id between (a C compare, a few µs a 1,000).
        if type(tids) is range:
            same = ids[a + m - 1] - ids[a] == m - 1  # ids only rise: a run without holes
        else:
            run = tids if pos == 0 and m == len(tids) else tids[pos:pos + m]
            mine = ids[a:a + m]
            same = (tuple(mine) == run) if type(run) is tuple else list(mine) == list(run)
        return m if same else 0

    def pop_all(self, w: _Worker) -> list[Record]:
        """Every task w leases leaves its lease; their Records, in claim order."""
        out: list[Record] = []
        for s in list(w.leases):
            out.extend(s.view(tid, rec) for tid, rec in s.leased())
            if s.recs:
                for tid in s.recs:
                    del self._own[tid]
                s.recs = None
            s.gone = None
            self._shrink(s, s.n)
        return out

    def ids_of(self, w: _Worker) -> list[int]:
        """The ids w leases, in claim order."""
        return [tid for s in w.leases for tid, _rec in s.leased()]

    def newest(self) -> Iterator[Record]:
        """Every leased task, the latest claimed first (Records made for reading if none)."""
        for s in reversed(self.order):
            for tid, rec in s.leased(reverse=True):
                yield s.view(tid, rec)

    def oldest(self) -> Iterator[Record]:
        """Every leased task, in claim order (Records made for reading if none)."""
        for s in self.order:
            for tid, rec in s.leased():
                yield s.view(tid, rec)

    @staticmethod
    def _close_up(s: _Slice) -> None:
        """Move the window's ends past ids that left from its middle earlier."""
        gone, ids = s.gone, s.ids
        if not gone:
            return
        while s.a < s.b and ids[s.a] in gone:
            gone.discard(ids[s.a])
            s.a += 1
        while s.a < s.b and ids[s.b - 1] in gone:
            gone.discard(ids[s.b - 1])
            s.b -= 1

    def _shrink(self, s: _Slice, k: int) -> None:
        s.n -= k
        self.n -= k
        holder = s.holder
        assert holder is not None
        holder.n_leased -= k
        if s.n > 0:
            return
        del self.order[s]
        holder.leases.pop(s, None)
        lo = s.ids[0]
        if self._at.get(lo) is s:
            del self._at[lo]
            del self._starts[bisect.bisect_left(self._starts, lo)]


class _DoneBatch:
    """Successes of one slice reported in one call: ids, results and timings as columns."""

    __slots__ = ("src", "ids", "results", "started", "runtimes", "finished", "worker")

    def __init__(self, src: _Slice, ids: Sequence[int], results: Sequence,
                 started: Sequence, runtimes: Sequence, finished: float,
                 worker: str | None) -> None:
        # results is usually a slice of the worker's PackedValues: its values stay the bytes
        # they came as until something reads one (packed_values decodes them, once).
        self.src, self.ids, self.results = src, ids, results
        self.started, self.runtimes = started, runtimes
        self.finished, self.worker = finished, worker

    def index(self, tid: int) -> int:
        """Position of task tid among ids (usually arithmetic: results come in claim order)."""
        ids = self.ids
        i = tid - ids[0]
        return i if 0 <= i < len(ids) and ids[i] == tid else ids.index(tid)

    def arg_column(self) -> tuple[Any, bool]:
        """The arguments in the order of ids, and whether they are bare values (one each)
        rather than tuples. When the ids are one run of the slice's (the usual case: all of
        it, or all but the first, which started at once and has a record of its own), that
        run of the slice's own lists is cut at C speed; from a piece handed out whole, it is
        the piece's bytes and the run's place in them (payload.piece_window)."""
        s, ids = self.src, self.ids
        n = len(ids)
        i = ids[0] - s._base
        if type(ids) is range:  # the slice's ids only rise: its ends tell a run of them
            run = 0 <= i and i + n <= len(s.ids) and s.ids[i] == ids[0] \
                and s.ids[i + n - 1] == ids[-1]
        else:
            run = 0 <= i and list(s.ids[i:i + n]) == list(ids)
        if run:
            if s.bare is not None:
                return s.bare[i:i + n], True
            if type(s.args) is PackedArgs:  # a piece handed out whole: its bytes as they came
                return piece_window(s.args, i, i + n), False
            return cast(list, s.args)[i:i + n], False
        return list(map(s.args_of, ids)), False

    def view(self, i: int) -> _DoneView:
        """The i-th task, read like a Record."""
        return _DoneView(self, i)

    def task(self, i: int) -> Task:
        """The i-th task as the public dataclass."""
        s, tid = self.src, self.ids[i]
        return Task(tid, s.function, s.args_of(tid), s.kwargs, DONE, s.attempts, s.submitted,
                    self.started[i], self.finished, self.worker, self.results[i], None,
                    self.runtimes[i], s.job.id)


class _DoneView:
    """One task of a done batch with the attributes of a Record, read on demand: listings
    and lookups go through many of these, so making one costs two slots, not a Record."""

    __slots__ = ("batch", "i")
    state = DONE
    error = exception = None

    def __init__(self, batch: _DoneBatch, i: int) -> None:
        self.batch, self.i = batch, i

    id = property(lambda self: self.batch.ids[self.i])
    function = property(lambda self: self.batch.src.function)
    args = property(lambda self: self.batch.src.args_of(self.batch.ids[self.i]))
    kwargs = property(lambda self: self.batch.src.kwargs)
    attempts = property(lambda self: self.batch.src.attempts)
    submitted = property(lambda self: self.batch.src.submitted)
    classic = property(lambda self: self.batch.src.classic)
    job = property(lambda self: self.batch.src.job)
    timeout = property(lambda self: self.batch.src.timeout)
    started = property(lambda self: self.batch.started[self.i])
    finished = property(lambda self: self.batch.finished)
    worker = property(lambda self: self.batch.worker)
    result = property(lambda self: self.batch.results[self.i])
    runtime = property(lambda self: self.batch.runtimes[self.i])

    def to_task(self) -> Task:
        """Freeze into the public dataclass."""
        return self.batch.task(self.i)


#: A finished task as the listings read it: a record, or a success inside its done batch.
_Finished = Record | _DoneView


def _run_size(entry: Any) -> int:
    """Tasks in a results-log entry (a done batch, a record, a bulk-cancel mark)."""
    return len(entry.ids) if type(entry) is _DoneBatch else 1


class _Runs:
    """Finished tasks as the runs they finished in, oldest first, holding exactly the newest
    cap of them: the oldest run is cut from its front (by an offset) until it is gone."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.entries: deque[Any] = deque()
        self.lo = 0  # tasks of entries[0] already dropped
        self.n = 0  # tasks held

    def __len__(self) -> int:
        return self.n

    def append(self, entry: Any, size: int) -> None:
        """Add a run of size tasks as the newest, dropping the oldest beyond cap."""
        self.entries.append(entry)
        self.n += size
        over = self.n - self.cap
        while over > 0:
            first = self.entries[0]
            end = _run_size(first)
            k = min(end - self.lo, over)
            self._dropping(first, self.lo, self.lo + k)
            self.lo += k
            self.n -= k
            over -= k
            if self.lo >= end:
                self.entries.popleft()
                self.lo = 0

    def _dropping(self, entry: Any, a: int, b: int) -> None:
        """Tasks a..b of entry leave (the done store unindexes them)."""

    def spans(self, start: int, count: int) -> Iterator[tuple[Any, int, int]]:
        """(entry, a, b) covering the held tasks start..start+count, oldest first; walks from
        the nearer end, so reading the newest few costs the newest few."""
        count = min(count, self.n - start)
        if count <= 0:
            return
        lo, entries = self.lo, self.entries
        if start < self.n - start:  # from the oldest
            picked: Iterable[tuple[Any, int]] = ((e, lo if k == 0 else 0)
                                                 for k, e in enumerate(entries))
            skip = start
        else:  # from the newest: gather back to start, then go forward
            back: list[tuple[Any, int]] = []
            need = self.n - start
            got = 0
            last = len(entries) - 1
            for k in range(last, -1, -1):
                e = entries[k]
                a = lo if k == 0 else 0
                back.append((e, a))
                got += _run_size(e) - a
                if got >= need:
                    break
            back.reverse()
            picked, skip = back, got - need
        for e, a in picked:
            size = _run_size(e) - a
            if skip >= size:
                skip -= size
                continue
            a += skip
            skip = 0
            b = min(_run_size(e), a + count)
            yield e, a, b
            count -= b - a
            if count <= 0:
                return


class _DoneStore(_Runs):
    """The successes kept in memory (the newest keep_done), as done batches.

    It stands in ``Broker._finished[DONE]`` beside the record dicts of the other states, with
    the part of their interface its readers use: len, get(id) and newest(). Its id index is
    brought up to date only when get is called: the hot path never pays for it."""

    def __init__(self, cap: int) -> None:
        super().__init__(cap)
        self._index: dict[int, tuple[int, _DoneBatch]] = {}  # id -> (batch number, batch)
        self._added = 0  # batches ever added; the newest has the number _added - 1
        self._indexed = 0  # batches numbered below this are in the index

    def add(self, batch: _DoneBatch) -> None:
        """Keep a batch of successes (the oldest beyond the cap leave)."""
        self._added += 1
        self.append(batch, len(batch.ids))

    def get(self, tid: int) -> _DoneView | None:
        """Task tid, if held."""
        if self._indexed != self._added:
            self._catch_up()
        hit = self._index.get(tid)
        if hit is None:
            return None
        number, batch = hit
        oldest = self._added - len(self.entries)  # the number of entries[0]
        i = batch.index(tid)
        if number < oldest or (number == oldest and i < self.lo):
            return None  # trimmed since it was indexed
        return batch.view(i)

    def _catch_up(self) -> None:
        """Index the batches added since the last lookup (forgetting trimmed ones when the
        index has grown to twice what is held)."""
        new = min(self._added - self._indexed, len(self.entries))
        if len(self._index) + sum(map(_run_size, itertools.islice(
                reversed(self.entries), new))) > 2 * self.n + 1000:
            self._index.clear()
            new = len(self.entries)
        first = self._added - new
        for k, batch in enumerate(itertools.islice(self.entries, len(self.entries) - new,
                                                   None)):
            self._index.update(zip(batch.ids, repeat((first + k, batch))))
        self._indexed = self._added

    def newest(self) -> Iterator[_DoneView]:
        """Every held success, latest first."""
        lo = self.lo
        for k in range(len(self.entries) - 1, -1, -1):
            batch = self.entries[k]
            yield from map(_DoneView, repeat(batch, len(batch.ids) - (lo if k == 0 else 0)),
                           range(len(batch.ids) - 1, (lo if k == 0 else 0) - 1, -1))


class _Job:
    """A job's live counters; every batch and record of it points here."""

    __slots__ = ("id", "name", "functions", "submitted", "started", "last", "ranges",
                 "queued", "claimed", "running", "done", "failed", "dead", "cancelled")

    def __init__(self, id: int, name: str, submitted: float) -> None:
        self.id, self.name, self.submitted = id, name, submitted
        self.functions: list[str] = []
        self.started: float | None = None
        self.last: float | None = None
        self.ranges: list[list[int]] = []  # [first id, count], adjacent runs merged
        self.queued = self.claimed = self.running = 0
        self.done = self.failed = self.dead = self.cancelled = 0

    def add(self, state: TaskState, n: int) -> None:
        """Move n tasks into (n > 0) or out of (n < 0) a state; the rare paths use this."""
        attr = state.value
        setattr(self, attr, getattr(self, attr) + n)

    def add_range(self, first: int, n: int, function: str) -> None:
        """Record a submission's ids (merged with the previous run when they follow it)."""
        if self.ranges and self.ranges[-1][0] + self.ranges[-1][1] == first:
            self.ranges[-1][1] += n
        else:
            self.ranges.append([first, n])
        if function not in self.functions:
            self.functions.append(function)

    def remove_range(self, first: int, n: int) -> None:
        """Take a refused submission's ids out of the ranges again."""
        end = first + n
        kept: list[list[int]] = []
        for a, count in self.ranges:
            b = a + count
            if b <= first or a >= end:
                kept.append([a, count])
                continue
            if a < first:
                kept.append([a, first - a])
            if end < b:
                kept.append([end, b - end])
        self.ranges = kept

    @property
    def remaining(self) -> int:
        """Queued, claimed or running tasks."""
        return self.queued + self.claimed + self.running

    def info(self, now: float, ranges: bool = True) -> Job:
        """Freeze into the public dataclass (without its id ranges, for snapshots)."""
        return Job(self.id, self.name, tuple(self.functions), queued=self.queued,
                   claimed=self.claimed, running=self.running, done=self.done,
                   failed=self.failed, dead=self.dead, cancelled=self.cancelled,
                   submitted=self.submitted, started=self.started, last_finished=self.last,
                   time=now, ranges=tuple((a, b) for a, b in self.ranges) if ranges else ())


class _Worker:
    """Server-side bookkeeping for one connected worker (guidist or classic)."""

    __slots__ = ("id", "name", "host", "pid", "kind", "mode", "concurrency", "joined",
                 "last_seen", "current_task", "done", "failed", "leases", "n_leased", "state",
                 "stop", "functions", "address", "n_running", "conns", "give_back", "cpu", "rss")

    def __init__(self, id: str, name: str, host: str, pid: int, kind: str, mode: str,
                 concurrency: int, now: float) -> None:
        self.id, self.name, self.host, self.pid, self.kind = id, name, host, pid, kind
        self.mode, self.concurrency = mode, concurrency
        self.joined = self.last_seen = now
        self.current_task: int | None = None
        self.done = self.failed = 0
        # Its slices (see _Leases), in claim order: an inline worker runs them so.
        self.leases: dict[_Slice, None] = {}
        self.n_leased = 0  # tasks leased through them
        self.n_running = 0  # leases in the RUNNING state (the rest are CLAIMED)
        self.state = WorkerState.IDLE
        self.stop = False
        self.functions: frozenset[str] | None = None  # None: claims every function
        self.address = ""
        self.conns: set[str] = set()  # manager connections its calls arrived on
        self.give_back = False  # asked to hand back its unstarted tasks (told on next call)
        self.cpu: float | None = None  # from its heartbeats
        self.rss: int | None = None

    @property
    def n_claimed(self) -> int:
        """Leases it has not started."""
        return self.n_leased - self.n_running

    def first_leased(self) -> int:
        """The id of the task it was leased first (it leases some)."""
        s = next(iter(self.leases))
        return s.ids[s.a]

    def info(self) -> WorkerInfo:
        """Freeze into the public dataclass."""
        state = self.state
        if state is WorkerState.IDLE and self.leases:
            state = WorkerState.BUSY
        current = self.current_task
        if current is None and self.leases:
            current = self.first_leased()
        return WorkerInfo(self.id, self.name, self.host, self.pid, self.kind, self.mode,
                          self.concurrency, state, self.joined, self.last_seen, current,
                          self.n_running, self.done, self.failed,
                          tuple(sorted(self.functions)) if self.functions else (),
                          address=self.address, claimed=self.n_claimed, cpu_percent=self.cpu,
                          rss_bytes=self.rss)


def _finished_key(r: _Finished) -> float:
    """Merge key of finished records, latest first."""
    return -(r.finished or 0.0)


def _sort_value(r: _Finished, key: str) -> Any:
    """What a record sorts by for a TASK_ORDERS key (None: it has no such value yet)."""
    if key == "runtime":
        runtime = getattr(r, "runtime", None)  # measured by the worker, where it is sent
        if runtime is None and r.started and r.finished:
            runtime = r.finished - r.started
        return runtime
    if key == "state":
        return list(TaskState).index(r.state)
    return getattr(r, key)


def _live_row(r: Record) -> tuple:
    """A live task as the journal's checkpoint stores it."""
    return (r.id, r.function, r.args, r.kwargs, r.attempts, r.submitted, r.classic, r.job.id,
            r.timeout)


def _done_batches(records: list[Record]) -> Iterator[_DoneBatch]:
    """Done records (read back from a journal) as done batches, one per run of records
    that share everything but id, arguments, result and timings."""
    def shared(r: Record) -> tuple:  # compared with ==: jobs by identity, kwargs by value
        return (r.function, r.job, r.submitted, r.attempts, r.finished, r.worker, r.kwargs)

    for _key, run in itertools.groupby(records, key=shared):
        recs = list(run)
        first = recs[0]
        src = _Slice(first.function, first.kwargs, first.submitted, False, first.job, None,
                     first.attempts, first.worker, [r.id for r in recs], [r.args for r in recs])
        yield _DoneBatch(src, src.ids, [r.result for r in recs], [r.started for r in recs],
                         [r.runtime for r in recs], first.finished or 0.0, first.worker)


def _keep_packed(batches: list[_DoneBatch], values: Any, kept: int) -> None:
    """A report's values stay packed only while at least half of them are successes kept
    through it (else a few kept would hold on to the bytes of many failures or late
    results): otherwise the few are decoded now (once) and the bytes let go."""
    if batches and 2 * kept < len(values):
        for b in batches:
            b.results = tuple(b.results)


def _no_connection() -> str | None:
    """The connection key outside a server (tests, direct use): none."""
    return None


class Broker:
    """The state machine behind every registered queue: pending lanes, leases, results, counters."""

    def __init__(
        self,
        *,
        lease_timeout: float = DEFAULTS.lease_timeout,
        max_attempts: int = DEFAULTS.max_attempts,
        default_task: str = DEFAULTS.default_task,
        keep_done: int = DEFAULTS.keep_done,
        keep_failed: int = DEFAULTS.keep_failed,
        keep_cancelled: int = DEFAULTS.keep_cancelled,
        keep_jobs: int = DEFAULTS.keep_jobs,
        clock: Callable[[], float] = time.time,
        journal: Journal | None = None,
        first_id: int = 1,
        max_payload: int = DEFAULTS.max_payload,
        task_timeout: float | None = DEFAULTS.task_timeout,
    ) -> None:
        self.max_payload = max_payload
        self.task_timeout = task_timeout  # default limit per task run (workers enforce it)
        self.lease_timeout = lease_timeout
        self.max_attempts = max_attempts
        self.default_task = default_task
        self._keep = {DONE: keep_done, FAILED: keep_failed, DEAD: keep_failed,
                      CANCELLED: keep_cancelled}
        self._clock = clock
        self._journal: Journal = journal or NullJournal()
        self._journal.attach(self.journal_checkpoint)
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        # Result waiters sleep on their own condition of the same lock, so a batch of
        # results wakes them and not every idle worker's claim (and a submit, not them).
        self._results_cv = threading.Condition(self._lock)
        self._pokes: set[str] = set()
        self._purged_runs: deque[tuple] = deque(maxlen=_MAX_PURGED_RUNS)
        self._functions: dict[str, bytes] = {}  # by-value task functions (see remote)
        self._next_id = first_id
        self._lanes: dict[str, deque] = {}  # function -> deque of _Batch | Record
        self._batches: list[_Batch] = []  # every batch still holding items, by first_id
        self._batch_starts: list[int] = []
        self._lane_records: dict[int, Record] = {}  # queued records (requeued or retried)
        # Claimed or running, in every worker: the slices they were claimed in.
        self._leased = _Leases()
        # OrderedDict, not dict: dropping the oldest of a dict that is appended to and trimmed
        # at the front scans the dummies left by deletions (measured ~10 µs per task at 20k).
        # Successes are a _DoneStore of batches, which answers the same len/get/newest.
        self._done = _DoneStore(keep_done)
        self._finished: dict[TaskState, Any] = {
            s: OrderedDict() for s in _FINISHED_STATES}
        self._finished[DONE] = self._done
        # The results log: done batches, Records and _BULK_CANCEL marks, by task count.
        self._recent = _Runs(max(keep_done, 1000))
        self._result_seq = 0  # results ever finished; the last one in _recent has this number
        self._workers: dict[str, _Worker] = {}
        self._worker_seq = itertools.count(1)
        self._conn_workers: dict[str, str] = {}  # connection key -> guidist worker id
        #: Returns the key of the connection the current call arrived on (the server sets it).
        self.connection_key: Callable[[], str | None] = _no_connection
        self._counts = {s: 0 for s in TaskState}
        self._submitted = 0
        self._requeued_total = 0
        self._ignored_late = 0
        self._paused = False
        self._events: deque[Event] = deque(maxlen=1000)
        self._event_seq = 0
        self._series: deque[tuple] = deque(maxlen=_SERIES_SECONDS)
        self._started = clock()
        self._sec = int(self._started)
        self._bucket = [0, 0, 0, 0]  # submitted, done, failed, requeued in the current second
        # The most queued, running and claimed seen in the current second. A gauge read only
        # when the second closes is read by whichever call comes first, and that one is biased:
        # a demo's submit arrives just after the last batch drained, so bursty work plotted
        # as a flat zero. Peaks are noted once per call that raises them, never per task.
        self._peaks = [0, 0, 0]
        self.classic_results: queue.Queue = queue.Queue()
        self._pending: dict[int, list[_Batch]] = {}  # journal ticket -> its waiting batches
        self._jobs: OrderedDict[int, _Job] = OrderedDict()  # oldest first
        self._job_names: dict[str, int] = {}
        self._job_seq = 0
        self._keep_jobs = keep_jobs
        self._listing_cache: tuple | None = None  # (key, built at, records): see list_tasks
        self._function_stats = FunctionTable()  # merged from workers' reports, per batch
        self._spans = SpanWindow()  # the task stream's last minute

    # ------------------------------------------------------------------ submission

    def submit(self, function: str, args_list: list, kwargs: dict | None = None,
               classic: bool = False, job: int | str | None = None,
               timeout: float | None = None) -> tuple[int, int]:
        """Queue one task per argument tuple; returns (first_id, count), ids are consecutive.

        job is the id or the name of the job they join (a new name makes a new job); without
        one they go to a job named after the function and the time. timeout is how long each
        of these tasks may run (None: the server's --task-timeout); the worker fails a task
        that runs longer.

        With a journal, this returns once the submit is committed, and its tasks can be
        claimed only from then on: a crash after the reply never loses them, and no worker
        ever runs a task a restart would not know. The wait is outside the lock, so other
        calls go on meanwhile, and concurrent submits share one commit.
        """
        args_list, size = unpack_submission(function, args_list, kwargs, self.max_payload,
                                            keep_pieces=True)
        timeout = check_timeout(timeout)
        n = len(args_list)
        if n == 0:
            return (self._next_id, 0)
        with self._cv:
            now = self._clock()
            j = self._job_for(job, now, function)
            first = self._next_id
            kw = kwargs or None
            if type(args_list) is Pieces:  # a batch a piece, each kept as its bytes
                batches, at = [], first
                for piece in args_list.packed():
                    batches.append(_Batch(at, function, kw, piece, now, classic, j,
                                          len(piece.blob) // piece.n + 1, timeout))
                    at += piece.n
            else:
                batches = [_Batch(first, function, kw, args_list, now, classic, j,
                                  size // n + 1, timeout)]
            # May raise JournalUnavailable (the disk is full): then nothing has changed but
            # a job made just now, left empty as opening it by name would.
            ticket = self._journal.submitted(first, function, args_list, kw, now,
                                             classic, j.id, timeout)
            self._next_id += n
            j.add_range(first, n, function)
            self._journal.job(j)  # in the submit's commit: a restart finds its job whole
            if ticket is None:
                for batch in batches:
                    self._enqueue_locked(batch)
                return (first, n)
            self._pending[ticket] = batches
        try:
            self._journal.wait_durable(ticket)
        except BaseException:
            with self._cv:
                if self._pending.pop(ticket, None) is not None:  # refused: as if never made
                    j.remove_range(first, n)
                    self._journal.job(j)
            raise
        with self._cv:
            for batch in self._pending.pop(ticket, ()):
                self._enqueue_locked(batch)
        return (first, n)

    def _enqueue_locked(self, batch: _Batch) -> None:
        """Make a submitted batch claimable (and count it, in its job too)."""
        self._tick(self._clock())
        n = batch.n
        self._lanes.setdefault(batch.function, deque()).append(batch)
        # Batches become claimable in commit order, which for submits sharing one commit
        # need not be id order: keep the id index sorted for bisect.
        if self._batch_starts and batch.first_id < self._batch_starts[-1]:
            i = bisect.bisect(self._batch_starts, batch.first_id)
            self._batches.insert(i, batch)
            self._batch_starts.insert(i, batch.first_id)
        else:
            self._batches.append(batch)
            self._batch_starts.append(batch.first_id)
        self._counts[QUEUED] += n
        self._note_peaks()
        self._submitted += n
        self._bucket[0] += n
        batch.job.queued += n
        self._cv.notify_all()

    # ------------------------------------------------------------------ jobs

    def open_job(self, name: str | None = None, function: str = "") -> Job:
        """The job with this name, made if there is none (named after function and the time
        when name is empty)."""
        with self._lock:
            now = self._clock()
            return self._job_for(name or None, now, function or "job").info(now)

    def job(self, ref: int | str) -> Job | None:
        """One job by id or name (a name made of digits is tried as a name first)."""
        with self._lock:
            j = self._find_job(ref)
            return j.info(self._clock()) if j is not None else None

    def jobs(self) -> tuple[Job, ...]:
        """Every job kept (those with tasks left, and the newest finished ones), newest first."""
        with self._lock:
            now = self._clock()
            return tuple(j.info(now) for j in reversed(self._jobs.values()))

    def cancel_job(self, ref: int | str) -> int:
        """Cancel every queued task of a job; returns how many were."""
        with self._lock:
            j = self._find_job(ref)
            if j is None or not j.queued:
                return 0
            now = self._clock()
            recs: list[Record] = []
            ids: list[int] = []
            for lane in self._lanes.values():
                for item in lane:
                    if item.job is not j:
                        continue
                    if type(item) is Record:
                        if self._lane_records.pop(item.id, None) is not None:
                            recs.append(item)
                        continue
                    ids.extend(item.queued_ids())
                    self._purged_runs.append((item.first_id + item.pos,
                                              item.first_id + item.n, item.function,
                                              j, now))
                    # Exhaust the batch in place: its lane drops it when it reaches the head.
                    item.exhaust()
            for rec in recs:
                self._counts[QUEUED] -= 1
                j.queued -= 1
                self._finish(rec, CANCELLED, now)
            n = len(ids)
            self._counts[QUEUED] -= n
            self._counts[CANCELLED] += n
            j.queued -= n
            j.cancelled += n
            if n or recs:
                j.last = now
            self._prune_batches()
            if recs:
                self._journal.finished(recs)
            if ids:
                self._journal.cancelled_ids(ids, now, {j.id: n})
                self._bulk_cancelled()
            self._event("control", f"job {j.name}: {n + len(recs)} queued task(s) cancelled")
            return n + len(recs)

    def retry_job(self, ref: int | str) -> int:
        """Queue a job's failed and dead tasks again (those still held in memory)."""
        with self._lock:
            j = self._find_job(ref)
            if j is None:
                return 0
            ids = [tid for state in (FAILED, DEAD) for tid, rec in self._finished[state].items()
                   if rec.job is j]
        return self.retry(ids)

    def _find_job(self, ref: int | str) -> _Job | None:
        if isinstance(ref, int):
            return self._jobs.get(ref)
        jid = self._job_names.get(str(ref))
        if jid is None and str(ref).strip().isdigit():
            jid = int(str(ref).strip())
        return self._jobs.get(jid) if jid is not None else None

    def _job_for(self, ref: int | str | None, now: float, function: str) -> _Job:
        """The job a submission joins (made when the name is new); under the lock."""
        if isinstance(ref, int):
            j = self._jobs.get(ref)
            if j is None:
                raise ValueError(f"no job with id {ref}: open it by name first")
            return j
        name = check_job_name(ref) if ref is not None and str(ref).strip() else \
            auto_job_name(function, now)
        jid = self._job_names.get(name)
        if jid is not None:
            return self._jobs[jid]
        self._job_seq += 1
        j = _Job(self._job_seq, name, now)
        self._jobs[j.id] = j
        self._job_names[name] = j.id
        self._trim_jobs()
        self._journal.job(j)
        return j

    def _trim_jobs(self) -> None:
        """Forget the oldest finished jobs beyond keep_jobs (jobs with work left stay)."""
        over = len(self._jobs) - self._keep_jobs
        if over <= 0:
            return
        for jid in [jid for jid, j in self._jobs.items() if not j.remaining][:over]:
            del self._job_names[self._jobs.pop(jid).name]

    # ------------------------------------------------------------------ workers

    def register_worker(self, name: str, host: str, pid: int, mode: str = "inline",
                        concurrency: int = 1, kind: str = "guidist",
                        functions: list[str] | None = None,
                        address: str = "") -> dict[str, Any]:
        """Add a worker; returns its id (sent with every later call) and the lease timeout.

        With functions, the worker only ever claims tasks of those functions (a process-mode
        worker for the CPU-bound ones, a thread-mode one for I/O, say). address is the IP the
        worker connects from: host names are often alike across machines, addresses are not.
        """
        with self._lock:
            now = self._clock()
            wid = f"{name}#{next(self._worker_seq)}"
            w = _Worker(wid, name, host, int(pid), kind, mode, int(concurrency), now)
            w.functions = frozenset(functions) if functions else None
            w.address = str(address or "")
            self._workers[wid] = w
            self._bind(w)
            self._event("worker-joined", f"worker {wid} joined from {host} (pid {pid}, {mode})")
            return {"id": wid, "lease_timeout": self.lease_timeout,
                    "default_task": self.default_task, "max_payload": self.max_payload,
                    "task_timeout": self.task_timeout}

    def heartbeat(self, worker_id: str, current_task: int | list[int] | None = None,
                  resources: tuple | None = None) -> str:
        """Renew every lease the worker holds; returns 'ok', 'stop', 'give-back' or 'unknown'.

        current_task is what the worker runs now: one id, or a list of ids (concurrent
        modes); those tasks count as running from now on. resources is the worker's
        (cpu_percent, rss_bytes), children included.
        """
        with self._lock:
            w = self._workers.get(worker_id)
            if w is None or w.state is WorkerState.OFFLINE:
                return CMD_UNKNOWN
            now = self._clock()
            self._bind(w)
            w.last_seen = now
            if resources:
                w.cpu, w.rss = float(resources[0]), int(resources[1])
            running = running_ids(current_task)
            w.current_task = running[0] if running else None
            self._start_locked(w, running, now)
            self._note_peaks()
            if w.stop:
                return CMD_STOP
            return CMD_GIVE_BACK if self._give_back_due(w) else CMD_OK

    def _bind(self, w: _Worker) -> None:
        """Remember that w talks on the current connection, so its closing can requeue."""
        key = self.connection_key()
        if key is None or self._conn_workers.get(key) == w.id:
            return
        old = self._workers.get(self._conn_workers.get(key, ""))
        if old is not None:  # a worker that registered again on the same connection
            old.conns.discard(key)
        self._conn_workers[key] = w.id
        w.conns.add(key)

    def _give_back_due(self, w: _Worker) -> bool:
        """Whether to tell w now that others wait for the tasks it has not started."""
        if not w.give_back:
            return False
        w.give_back = False
        return w.n_claimed > 0

    def _start_locked(self, w: _Worker, ids: Iterable[int], now: float) -> None:
        """Mark w's claimed tasks among ids as running, from now."""
        leased = self._leased
        n = 0
        for tid in ids:
            s = leased.slice_of(tid)
            if s is None or s.holder is not w:
                continue
            rec = leased.own(s, tid)
            if rec.state is CLAIMED:
                rec.state, rec.started = RUNNING, now
                rec.job.claimed -= 1
                rec.job.running += 1
                n += 1
        if n:
            w.n_running += n
            self._counts[CLAIMED] -= n
            self._counts[RUNNING] += n

    def unregister_worker(self, worker_id: str) -> int:
        """A worker leaves cleanly: its unfinished leases go back to the queue uncounted."""
        with self._cv:
            w = self._workers.pop(worker_id, None)
            if w is None:
                return 0
            n = self._release_locked(w, self._leased.ids_of(w))
            self._unbind(w)
            self._event("worker-left", f"worker {worker_id} left"
                        + (f", returning {n} task(s) to the queue" if n else ""))
            return n

    def _unbind(self, w: _Worker) -> None:
        for key in w.conns:
            if self._conn_workers.get(key) == w.id:
                del self._conn_workers[key]
        w.conns.clear()

    def release(self, worker_id: str, ids: list[int] | None = None) -> int:
        """Give leased tasks back without counting an attempt (stopping, or giving back)."""
        with self._cv:
            w = self._workers.get(worker_id)
            if w is None:
                return 0
            return self._release_locked(w, self._leased.ids_of(w) if ids is None else ids)

    def request_stop(self, worker_ids: Iterable[str]) -> int:
        """Ask workers to finish their batch and leave; they hear it on their next heartbeat."""
        with self._lock:
            n = 0
            for wid in worker_ids:
                w = self._workers.get(wid)
                if w is not None and w.state is not WorkerState.OFFLINE:
                    w.stop = True
                    w.state = WorkerState.STOPPING
                    n += 1
            return n

    def forget_offline(self) -> int:
        """Drop offline workers from the list."""
        with self._lock:
            gone = [wid for wid, w in self._workers.items() if w.state is WorkerState.OFFLINE]
            for wid in gone:
                del self._workers[wid]
            return len(gone)

    def workers(self) -> tuple[WorkerInfo, ...]:
        """Every known worker, offline ones included."""
        with self._lock:
            return tuple(w.info() for w in self._workers.values())

    # ------------------------------------------------------------------ dispatch

    def claim(self, worker_id: str, max_n: int, wait_s: float = 0.0) -> list[ClaimGroup]:
        """Lease up to max_n tasks, waiting up to wait_s for the first one to appear."""
        return self.exchange(worker_id, None, max_n, wait_s)[1]

    def complete(self, worker_id: str, results: list[ResultItem],
                 report: Report | None = None) -> int:
        """Store a batch of results; returns how many were accepted (late duplicates are not).

        report is the worker's statistics since its last one (``runstats.RunStats``)."""
        results = unpack(results)
        with self._cv:
            if report:
                self._take_report(worker_id, report)
            accepted = self._complete_locked(worker_id, results, self._clock())
        self._journal.throttle()
        return accepted

    def exchange(self, worker_id: str, results: list[ResultItem] | None, max_n: int,
                 wait_s: float = 0.0, running: list[int] | None = None,
                 limits: dict[str, int] | None = None,
                 report: Report | None = None) -> tuple[str, list[ClaimGroup]]:
        """Report results and claim the next batch in one round trip: (command, groups).

        report carries the worker's statistics since its last one (``runstats``): a few
        times a second at most, so merging it is not per task.
        running lists the tasks the worker runs now or starts as soon as this call returns
        (they count as running from now on). limits sizes the claim per function: at most
        limits[f] tasks of f, and as a whole about one claim's worth of work (half the
        limit of one function and half of another's fill it); a function not in limits is
        claimed one task at a time. Without limits, max_n of any function.
        The command is 'give-back' (and nothing is claimed) when another worker waits for
        the tasks this one holds and has not started: it should release them.
        """
        results = unpack(results)
        if results:
            self._journal.throttle()  # before taking more work, if the journal is behind
        with self._cv:
            now = self._clock()
            if report:
                self._take_report(worker_id, report)
            w = self._workers.get(worker_id)
            if w is None or w.state is WorkerState.OFFLINE:
                if results:
                    self._complete_locked(worker_id, results, now)
                return CMD_UNKNOWN, []
            self._bind(w)
            w.last_seen = now
            if results:
                self._complete_locked(worker_id, results, now)
            if running:
                self._start_locked(w, running, now)
            if w.stop:
                return CMD_STOP, []
            if self._give_back_due(w):
                return CMD_GIVE_BACK, []
            groups = self._take(w, max_n, now, limits)
            if groups:
                self._note_peaks()
            if not groups and wait_s > 0:
                self._ask_for_give_back(w)
            # Waiting is real time, whatever clock the ledger uses (tests inject a fake one).
            deadline = time.monotonic() + wait_s
            while not groups and wait_s > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or w.stop or worker_id not in self._workers:
                    break
                self._cv.wait(remaining)
                now = self._clock()
                w.last_seen = now
                groups = self._take(w, max_n, now, limits)
            if groups:
                self._note_peaks()
            return (CMD_STOP if w.stop else CMD_OK), groups

    def _take_report(self, worker_id: str, report: Report) -> None:
        """Merge a worker's run statistics and keep its spans (under the lock)."""
        self._function_stats.merge(report.get("functions") or ())
        spans = report.get("spans")
        if spans:
            self._spans.add(worker_id, spans)

    def _ask_for_give_back(self, idle: _Worker) -> None:
        """An idle worker waits: ask the busy worker holding most unstarted tasks to give them
        back. It hears it on its next call (a heartbeat at the latest) and releases them."""
        best, most = None, 0
        for w in self._workers.values():
            n = w.n_claimed
            if (n > most and w is not idle and w.kind == "guidist"
                    and w.state is not WorkerState.OFFLINE and not w.stop
                    and self._can_run_any(idle, w)):
                best, most = w, n
        if best is not None and not best.give_back:
            best.give_back = True
            log.debug("asked %s to give back %d unstarted task(s) for %s", best.id, most,
                      idle.id)

    @staticmethod
    def _can_run_any(idle: _Worker, busy: _Worker) -> bool:
        """True when idle may claim one of the tasks busy has not started."""
        if idle.functions is None:
            return True
        return any(s.function in idle.functions and s.has_claimed() for s in busy.leases)

    def _take(self, w: _Worker, max_n: int, now: float,
              limits: dict[str, int] | None = None) -> list[ClaimGroup]:
        """Move up to max_n queued tasks into w's leases, oldest id first across lanes; the
        first of them, up to w's free slots, start at once (the rest wait as claimed).

        The claim is also bounded by bytes (about max_payload of arguments, at least one task):
        a thousand tasks of 2 MiB each must not make a 2 GB reply.
        """
        if self._paused or self._counts[QUEUED] == 0 or max_n <= 0:
            return []
        groups: list[ClaimGroup] = []
        left = max_n
        used = 0.0  # share of the claim's work taken so far (with limits)
        budget = self.max_payload
        while left > 0 and self._counts[QUEUED] > 0:
            lane_name = self._oldest_lane(w.functions)
            if lane_name is None:
                break
            head = self._lanes[lane_name][0]
            if type(head) is Record:
                per = len(pack(head.args))  # records are few (requeued or retried tasks)
                if groups and per > budget:
                    break
                if head.attempts > head.retry_base and head.state is QUEUED:
                    # Its worker died holding it. Hand it out alone: if it is the task that
                    # kills workers, only it piles up attempts, not the neighbours of its
                    # old batch.
                    if groups:
                        break
                    taken = self._take_from_lane(lane_name, 1, w, now)
                    if taken is not None:
                        groups.append(taken)
                        break
                    continue
            else:
                per = head.task_bytes
            n = left
            if limits is not None:
                limit = max(1, int(limits.get(lane_name, 1)))
                n = min(left, int((1.0 - used) * limit + 1e-9))
                if n < 1:
                    if groups:
                        break  # the claim is full: this function's tasks wait for the next
                    n = 1
            by_bytes = budget // per
            if by_bytes < 1:
                if groups:
                    break  # the claim carries max_payload of arguments already
                by_bytes = 1
            taken = self._take_from_lane(lane_name, min(n, by_bytes), w, now)
            if taken is not None:
                groups.append(taken)
                got = len(taken[2])
                left -= got
                budget -= got * per
                if limits is not None:
                    used += got / max(1, int(limits.get(lane_name, 1)))
        free = w.concurrency - w.n_running
        if groups and free > 0:
            # The worker starts these as soon as the reply arrives: they are running now.
            self._start_locked(w, itertools.islice(
                (tid for g in groups for tid in g[2]), free), now)
        return groups

    def _oldest_lane(self, only: frozenset[str] | None = None) -> str | None:
        """Name of the lane whose head has the smallest id (FIFO across functions), among
        the functions in only (all when None)."""
        best, best_id = None, None
        for name, lane in list(self._lanes.items()):
            if not lane:
                del self._lanes[name]
                continue
            if only is not None and name not in only:
                continue
            head = lane[0]
            hid = head.id if isinstance(head, Record) else head.first_id + head.pos
            if best_id is None or hid < best_id:
                best, best_id = name, hid
        return best

    def _take_from_lane(self, name: str, left: int, w: _Worker, now: float) -> ClaimGroup | None:
        """Lease from the head of one lane; returns the claimed group or None if only holes."""
        lane = self._lanes[name]
        head = lane[0]
        wid = w.id
        if type(head) is Record:
            lane.popleft()
            if head.state is not QUEUED or self._lane_records.pop(head.id, None) is None:
                return None  # finished or cancelled while it waited: a lazy deletion
            head.state, head.worker, head.started = CLAIMED, wid, None
            head.attempts += 1
            self._leased.add_record(head, w)
            self._counts[QUEUED] -= 1
            self._counts[CLAIMED] += 1
            j = head.job
            j.queued -= 1
            j.claimed += 1
            if j.started is None:
                j.started = now
                self._journal.job(j)
            self._journal.claimed([head.id], head.attempts)
            return claim_group(head.function, head.kwargs, [head.id], [head.args], head.timeout)
        whole = head.whole()
        if whole is not None and left >= whole.n:
            return self._take_piece(head, whole, w, now)
        start = head.pos
        items = head.items[start:start + left]
        head.pos = start + len(items)
        first = head.first_id + start
        # Without holes the ids are a range, in the slice and on the wire: no int a task.
        ids: Sequence[int] = range(first, first + len(items))
        if head.holes:  # filter before the exhausted batch resets its hole count below
            keep = [i for i, a in enumerate(items) if a is not HOLE]
            head.holes -= len(items) - len(keep)
            ids = [ids[i] for i in keep]
            items = [items[i] for i in keep]
        values = items if head.bare else None
        if head.bare:
            items = BareArgs(items)  # read as 1-tuples, sent as the values
        unread = head.unreadable()
        if unread is not None:  # the server cannot read them: the worker gets the bytes
            wire: Any = PackedArgs(unread.blob, unread.bare, unread.n,
                                   [i - head.first_id for i in ids])
        if head.pos >= head.n:
            lane.popleft()
            head.items = []  # free the arguments now; _prune_batches drops the shell
            head.pos = head.holes = 0
            self._prune_batches()
        fn, kw, sub, cl, j = head.function, head.kwargs, head.submitted, head.classic, head.job
        to = head.timeout
        n = len(ids)
        if not n:
            return None
        # A run without holes is journaled as a range: a few bytes, not n ints. (From its own
        # first id: holes cut off the front leave a run that starts after `first`.)
        self._lease_slice(_Slice(fn, kw, sub, cl, j, to, 1, wid, ids, items, values), w,
                          range(ids[0], ids[0] + n) if ids[-1] - ids[0] == n - 1 else ids, now)
        if unread is not None:
            return claim_group(fn, kw, list(ids), wire, to)
        if n < PLAIN_BELOW:  # the slice keeps its forms; the wire gets the cheaper lists
            return claim_group(fn, kw, list(ids), items if values is None
                               else [(v,) for v in values], to)
        return claim_group(fn, kw, ClaimIds(ids) if type(ids) is range else ids, items, to)

    def _lease_slice(self, s: _Slice, w: _Worker, journaled: Sequence[int], now: float) -> None:
        """Lease the queued tasks of s to w: one object for the whole slice (nothing per task),
        journaled as the ids given, counted out of the queue and into the claims, and its job
        started if this is its first claim."""
        n, j = len(s.ids), s.job
        self._leased.add(s, w)
        self._journal.claimed(journaled, 1)
        if j.started is None:
            j.started = now
            self._journal.job(j)
        self._counts[QUEUED] -= n
        self._counts[CLAIMED] += n
        j.queued -= n
        j.claimed += n

    def _take_piece(self, head: _Batch, piece: PackedArgs, w: _Worker,
                    now: float) -> ClaimGroup:
        """Lease a batch that is one piece still packed, whole: the reply carries its bytes
        as the client sent them, and the worker decodes them (nothing decoded here)."""
        self._lanes[head.function].popleft()
        head.items = []  # the slice holds the piece now; _prune_batches drops the shell
        head.pos = head.holes = 0
        self._prune_batches()
        ids = range(head.first_id, head.first_id + piece.n)
        self._lease_slice(_Slice(head.function, head.kwargs, head.submitted, head.classic,
                                 head.job, head.timeout, 1, w.id, ids, piece), w, ids, now)
        return claim_group(head.function, head.kwargs, ClaimIds(ids), piece,  # type: ignore[arg-type]
                           head.timeout)

    def _complete_locked(self, worker_id: str, results: list[ResultItem], now: float) -> int:
        # The hot path. Results mostly come as long runs of one slice, all successes: such a
        # run is taken whole (its leases dropped with C-speed maps, its columns kept as they
        # are in a _DoneBatch, the values still packed, its counters moved once). Everything
        # else goes task by task.
        self._tick(now)
        if not results:
            return 0
        workers = self._workers
        w = workers.get(worker_id)
        if isinstance(results, ResultColumns):  # as a guidist worker packs them
            cols: list[Any] = [results.ids, results.oks, results.values, results.started,
                               results.runtimes]
        else:  # (id, ok, value, started, runtime) tuples (or a tutorial worker's 3-tuples)
            cols = list(zip(*results))
        tids, oks = cols[0], cols[1]
        # Whole runs need every result's times: all sent them, or none did (id, ok, value);
        # a mix (zip cut it to three columns) goes result by result.
        whole = len(cols) >= 5
        if not whole and set(map(len, results)) == {3}:
            whole = True
            cols += [(None,) * len(tids)] * 2
        leased = self._leased
        counts = self._counts
        classic_put = self.classic_results.put
        done: list[_DoneBatch] = []
        failed: list[Record] = []
        n_done = 0
        values = cols[2]
        packed = type(values) is PackedValues and not values.decoded
        # Without a failure in the report, a run needs no look at its oks (a slice and a
        # scan of each run were ~18 % of the server's samples at claims of 10,000).
        all_ok = isinstance(results, ResultColumns) and results.all_ok
        viewed: list[_DoneBatch] = []  # done batches holding slices of the packed values
        pos, end = 0, len(tids)
        while pos < end:
            s = leased.slice_of(tids[pos])
            m = leased.front_run(s, tids, pos) if s is not None and whole else 0
            if m and (all_ok or all(oks[pos:pos + m])):
                # tids[pos:pos + m] are exactly the first m tasks s leases, all successes.
                # Those with a Record of their own (the first of a claim, which started at
                # once) go one by one; the rest leave the slice whole, as one done batch.
                assert s is not None
                recs, ids, a = s.recs, s.ids, s.a
                r = 0
                if recs:
                    while r < m and ids[a + r] in recs:
                        r += 1
                    if r < m and any(a + r <= s.index(t) < a + m for t in recs):
                        m = 0  # a record in the middle of the run: one by one below
                if m:
                    for i in range(pos, pos + r):
                        rec = leased.remove(s, tids[i])
                        # Its value is not read here (a classic task's text needs it): the
                        # done batch of one keeps a slice of the column, still packed.
                        item = results[i] if s.classic else (tids[i], True, None,
                                                             cols[3][i], cols[4][i])
                        self._complete_one(w, worker_id, item, rec, s.holder, now)
                        n_done += 1
                        alone = _DoneBatch(_Slice.of_record(rec), (rec.id,), values[i:i + 1],
                                           (rec.started,), (rec.runtime,), now, worker_id)
                        if packed:
                            viewed.append(alone)
                        self._keep_done(alone, done)
                    k, lo, hi = m - r, pos + r, pos + m
                    if k:
                        first, last = ids[a + r], ids[a + m - 1]
                        leased.drop_front(s, k)
                        # A run without holes is kept as a range: no id objects to hold
                        # for the 20,000 kept, nor to pickle into the journal.
                        run: Sequence[int] = range(first, last + 1) if last - first == k - 1 \
                            else tids[lo:hi]
                        batch = _DoneBatch(s, run, values[lo:hi], cols[3][lo:hi],
                                           cols[4][lo:hi], now, worker_id)
                        if packed:
                            viewed.append(batch)
                        j = s.job
                        j.claimed -= k
                        j.done += k
                        j.last = now
                        counts[CLAIMED] -= k
                        n_done += k
                        self._keep_done(batch, done)
                        if s.classic:
                            for tid, value in zip(run, batch.results):
                                classic_put(classic_result_text(s.function, s.args_of(tid),
                                                                value))
                    pos = hi
                    continue
            # One by one: a failure, a late result, a run that is not a slice's front.
            tid = tids[pos]
            held = leased.remove(s, tid) if s is not None else None
            one = self._complete_one(w, worker_id, results[pos], held,
                                     s.holder if s is not None else None, now)
            pos += 1
            if one is None:
                continue
            if one.state is DONE:
                n_done += 1
                self._keep_done(_DoneBatch(_Slice.of_record(one), (one.id,), (one.result,),
                                           (one.started,), (one.runtime,), now, worker_id),
                                done)
            else:
                failed.append(one)
        if packed:
            _keep_packed(viewed, values, sum(len(b.ids) for b in viewed))
        if n_done:
            counts[DONE] += n_done
            self._bucket[1] += n_done
        if w is not None:
            w.done += n_done
            w.failed += len(failed)
        if done:
            self._journal.done(done)  # done batches never change: no copy needed
        if failed:
            self._journal.finished(failed)
        if done or failed:
            self._results_cv.notify_all()
        return n_done + len(failed)

    def _complete_one(self, w: _Worker | None, worker_id: str, item: ResultItem,
                      leased: Record | None, holder: _Worker | None,
                      now: float) -> Record | None:
        """One result the fast path could not take (a failure, a task with a record of its
        own, a late one): returns its record, DONE or FAILED, or None if it was ignored.
        leased is its Record if it was leased (already out of the lease table), by holder."""
        try:  # (id, ok, value, started, runtime): what a guidist worker sends
            tid, ok, value, started, runtime = item
        except ValueError:  # (id, ok, value) from a tutorial worker; a failure adds its
            tid, ok, value = item[0], item[1], item[2]  # exception as a sixth
            started, runtime = (item[3], item[4]) if len(item) > 4 else (None, None)
        if leased is not None:
            rec = leased
            if rec.state is RUNNING and holder is not None:
                holder.n_running -= 1
            was = rec.state  # running, or claimed: it finished before the worker said it started
        else:
            # The lease expired and the task waits in a lane again: first result wins.
            queued = self._lane_records.pop(tid, None)
            if queued is None:
                self._ignored_late += 1
                return None
            rec, was = queued, QUEUED  # rare: a late result for a requeued task
        self._counts[was] -= 1
        rec.job.add(was, -1)
        rec.worker = worker_id
        if started is not None:
            # The worker's own measurement replaces the claim time: a task that waited in
            # the worker's buffer behind others did not start when it was claimed.
            rec.started, rec.runtime = started, runtime
        if ok:
            rec.state = DONE
            rec.finished = now
            rec.result = value
            rec.job.done += 1
            rec.job.last = now
            if rec.classic:
                self.classic_results.put(classic_result_text(rec.function, rec.args, value))
        else:
            self._finish(rec, FAILED, now, error=str(value)[:_ERROR_TEXT_LIMIT])
            if len(item) > 5:
                rec.exception = item[5]
        return rec

    def _keep_done(self, batch: _DoneBatch, done: list[_DoneBatch]) -> None:
        """Store a batch of successes and log it, in the order results came."""
        self._done.add(batch)
        self._recent_add(batch, len(batch.ids))
        done.append(batch)

    def _recent_add(self, entry: Any, size: int) -> None:
        """Append to the results log (size tasks: the newest has the number _result_seq)."""
        self._result_seq += size
        self._recent.append(entry, size)

    def _finish(self, rec: Record, state: TaskState, now: float, result: Any = None,
                error: str | None = None) -> None:
        """Move a record into a finished state; keeps only the newest N per state in memory."""
        rec.state = state
        rec.finished = now
        rec.result = result
        rec.error = error
        self._counts[state] += 1
        rec.job.add(state, 1)
        rec.job.last = now
        if state is DONE:
            self._bucket[1] += 1
        elif state is not CANCELLED:
            self._bucket[2] += 1
        store = self._finished[state]  # never DONE: successes are kept as done batches
        store[rec.id] = rec
        if len(store) > self._keep[state]:
            store.popitem(last=False)
        self._recent_add(rec, 1)
        self._results_cv.notify_all()
        if rec.classic:
            if state is DONE:
                self.classic_results.put(classic_result_text(rec.function, rec.args, result))
            elif state is not CANCELLED:
                last = (error or "").strip().splitlines()[-1:] or [""]
                self.classic_results.put(f"task {rec.id} {state.value}: {last[0]}")

    def _release_locked(self, w: _Worker, ids: list[int]) -> int:
        """Put w's leases for ids back at the head of their lanes, attempt not counted."""
        back = []
        leased = self._leased
        for tid in reversed(ids):  # appendleft: reversed keeps their order at the front
            s = leased.slice_of(tid)
            if s is None or s.holder is not w:
                continue
            rec = leased.remove(s, tid)
            if rec.state is RUNNING:
                w.n_running -= 1
            rec.attempts = max(rec.attempts - 1, 0)
            self._requeue(rec)
            back.append(rec)
        if back:
            self._journal.requeued(back)
            self._cv.notify_all()
        return len(back)

    def _requeue(self, rec: Record) -> None:
        """A leased (claimed or running) record goes back to the front of its lane."""
        self._counts[rec.state] -= 1
        rec.job.add(rec.state, -1)
        rec.state, rec.worker, rec.started, rec.runtime = QUEUED, None, None, None
        self._lanes.setdefault(rec.function, deque()).appendleft(rec)
        self._lane_records[rec.id] = rec
        self._counts[QUEUED] += 1
        rec.job.queued += 1

    # ------------------------------------------------------------------ leases

    def reap(self) -> int:
        """Requeue the leases of workers whose heartbeat stopped; returns tasks requeued."""
        with self._cv:
            now = self._clock()
            self._tick(now)
            n = 0
            for w in list(self._workers.values()):
                if w.state is not WorkerState.OFFLINE and now > w.last_seen + self.lease_timeout:
                    n += self._expire(w, now, f"no heartbeat for {now - w.last_seen:.0f} s")
            return n

    def _expire(self, w: _Worker, now: float, why: str) -> int:
        """Mark a worker offline and requeue (or bury) every task it held."""
        w.state = WorkerState.OFFLINE
        w.current_task = None
        w.give_back = False
        recs = self._leased.pop_all(w)
        w.n_running = 0
        self._unbind(w)
        back, dead = [], []
        # Every lease counts an attempt, claimed ones too: an inline worker may have started
        # tasks since it last said so, and the one that killed it must reach max_attempts.
        for rec in reversed(recs):  # appendleft: reversed keeps their order at the front
            expiries = rec.attempts - rec.retry_base
            if expiries >= self.max_attempts:
                self._counts[rec.state] -= 1
                rec.job.add(rec.state, -1)
                self._finish(rec, DEAD, now, error=(
                    f"lease expired {expiries} times (its worker died or hung each time); "
                    f"last worker {w.id}"))
                dead.append(rec)
            else:
                self._requeue(rec)
                back.append(rec)
        self._requeued_total += len(back)
        self._bucket[3] += len(back)
        self._event("worker-offline", f"worker {w.id} went offline ({why})")
        if back:
            self._event("requeued", f"{len(back)} task(s) of {w.id} requeued")
            self._journal.requeued(back)
            self._cv.notify_all()
        if dead:
            self._event("dead", f"{len(dead)} task(s) of {w.id} are dead after "
                        f"{self.max_attempts} attempts")
            self._journal.finished(dead)
        return len(back) + len(dead)

    # ------------------------------------------------------------------ control

    def pause(self) -> None:
        """Stop handing out tasks; workers keep polling."""
        with self._lock:
            if not self._paused:
                self._paused = True
                self._event("control", "dispatch paused")

    def resume(self) -> None:
        """Hand out tasks again."""
        with self._cv:
            if self._paused:
                self._paused = False
                self._event("control", "dispatch resumed")
                self._cv.notify_all()

    def cancel(self, ids: Iterable[int]) -> int:
        """Cancel queued tasks by id; running or finished ones are left alone."""
        with self._lock:
            now = self._clock()
            cancelled = []
            for tid in ids:
                rec = self._lane_records.pop(tid, None)
                if rec is None:
                    rec = self._punch_hole(tid)
                    if rec is None:
                        continue
                self._counts[QUEUED] -= 1
                rec.job.queued -= 1
                self._finish(rec, CANCELLED, now)
                cancelled.append(rec)
            if cancelled:
                self._journal.finished(cancelled)
                self._event("control", f"{len(cancelled)} queued task(s) cancelled")
            return len(cancelled)

    def purge(self) -> int:
        """Cancel everything that is queued."""
        with self._lock:
            now = self._clock()
            ids: list[int] = []
            recs: list[Record] = []
            by_job: dict[int, int] = {}
            for lane in self._lanes.values():
                for item in lane:
                    if type(item) is Record:
                        if self._lane_records.pop(item.id, None) is not None:
                            recs.append(item)
                    else:
                        before = len(ids)
                        ids.extend(item.queued_ids())
                        k = len(ids) - before
                        self._purged_runs.append((item.first_id + item.pos,
                                                  item.first_id + item.n,
                                                  item.function, item.job, now))
                        item.job.queued -= k
                        item.job.cancelled += k
                        item.job.last = now
                        by_job[item.job.id] = by_job.get(item.job.id, 0) + k
            for rec in recs:
                rec.job.queued -= 1
                self._finish(rec, CANCELLED, now)
            self._counts[CANCELLED] += len(ids)
            n = len(ids) + len(recs)
            self._counts[QUEUED] -= n
            self._lanes.clear()
            self._batches.clear()
            self._batch_starts.clear()
            if recs:
                self._journal.finished(recs)
            if ids:
                self._journal.cancelled_ids(ids, now, by_job)
                self._bulk_cancelled()
            self._event("control", f"queue purged: {n} task(s) cancelled")
            return n

    def retry(self, ids: Iterable[int]) -> int:
        """Queue failed or dead tasks again; attempts go on counting (the lease rules start
        afresh), and each retried task counts as requeued."""
        with self._cv:
            self._tick(self._clock())  # the retries land in the current second's bucket
            n = 0
            for tid in ids:
                for state in (FAILED, DEAD):
                    rec = self._finished[state].pop(tid, None)
                    if rec is not None:
                        self._requeue_finished(rec, state)
                        n += 1
                        break
            if n:
                self._requeued_total += n
                self._bucket[3] += n
                self._event("control", f"{n} task(s) queued again for retry")
                self._cv.notify_all()
            return n

    def retry_all(self) -> int:
        """Retry every failed and dead task still held in memory."""
        with self._lock:
            ids = list(self._finished[FAILED]) + list(self._finished[DEAD])
        return self.retry(ids)

    def _requeue_finished(self, rec: Record, state: TaskState) -> None:
        self._counts[state] -= 1
        rec.job.add(state, -1)
        rec.job.queued += 1
        rec.retry_base = rec.attempts
        rec.result = rec.error = rec.finished = rec.runtime = rec.exception = None
        rec.state, rec.worker, rec.started = QUEUED, None, None
        self._lanes.setdefault(rec.function, deque()).append(rec)
        self._lane_records[rec.id] = rec
        self._counts[QUEUED] += 1
        self._journal.requeued([rec])

    def _prune_batches(self) -> None:
        """Forget exhausted batches at the front of the id index (they are mostly in order)."""
        n = 0
        for b in self._batches:
            if b.n:
                break
            n += 1
        if n:
            del self._batches[:n]
            del self._batch_starts[:n]

    def _find_batch(self, tid: int) -> _Batch | None:
        i = bisect.bisect_right(self._batch_starts, tid) - 1
        if i < 0:
            return None
        b = self._batches[i]
        return b if tid < b.first_id + b.n else None

    def _punch_hole(self, tid: int) -> Record | None:
        """Take a still-queued task out of its batch; returns a record for it, or None."""
        b = self._find_batch(tid)
        if b is None:
            return None
        idx = tid - b.first_id
        if idx < b.pos or b.items[idx] is HOLE:
            return None
        rec = Record(tid, b.function, b.args(idx), b.kwargs, 0, b.submitted, b.classic, b.job,
                     timeout=b.timeout)
        b.items[idx] = HOLE
        b.holes += 1
        return rec

    # ------------------------------------------------------------------ monitoring

    def snapshot(self, series_since: int = 0, events_since: int = 0,
                 spans_since: int | None = None) -> Snapshot:
        """Counts, workers, and the series points and events after the caller's cursors;
        the task-stream spans after spans_since too, when it is not None."""
        with self._lock:
            now = self._clock()
            self._tick(now)
            series = tuple(p for p in itertools.islice(reversed(self._series), _MAX_SERIES_REPLY)
                           if p[0] > series_since)[::-1]
            events = tuple(e for e in itertools.islice(reversed(self._events), _MAX_EVENTS_REPLY)
                           if e.seq > events_since)[::-1]
            return Snapshot(
                time=now,
                counts={s.value: c for s, c in self._counts.items()},
                submitted=self._submitted,
                requeued=self._requeued_total,
                paused=self._paused,
                throughput=self._throughput(),
                workers=tuple(w.info() for w in self._workers.values()),
                series=series,
                events=events,
                default_task=self.default_task,
                started=self._started,
                extra=self._snapshot_extra(),
                jobs=tuple(j.info(now, ranges=False) for j in itertools.islice(
                    reversed(self._jobs.values()), SNAPSHOT_JOBS)),
                functions=self._function_stats.stats(),
                **self._spans_after(spans_since),
            )

    def _snapshot_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"ignored_late": self._ignored_late,
                                 "classic_results": self.classic_results.qsize()}
        status = getattr(self._journal, "status", None)
        if status is not None:
            extra["journal"] = status()  # path, error (disk full...), lag
        return extra

    def _spans_after(self, cursor: Any) -> dict[str, Any]:
        """The snapshot's spans and span cursor (none when the caller did not ask)."""
        if cursor is None:
            return {}
        try:
            since = int(cursor)
        except (TypeError, ValueError):
            since = 0  # a cursor from another backend: start afresh
        seq, spans = self._spans.since(since, time.time())
        return {"spans": tuple(spans), "spans_cursor": seq}

    def _throughput(self) -> float:
        return throughput(list(itertools.islice(reversed(self._series), THROUGHPUT_WINDOW)))

    def get_task(self, task_id: int) -> Task | None:
        """One task by id, wherever it is: in memory, else in the journal (a result evicted
        from memory is read back from there); None if unknown (or pruned from both)."""
        return self.get_tasks([task_id])[0]

    def get_tasks(self, ids: Iterable[int]) -> list[Task | None]:
        """Several tasks by id in one call (at most 10,000), None for those unknown."""
        ids = [int(i) for i in ids][:10_000]
        with self._lock:
            out = [self._task_locked(tid) for tid in ids]
        missing = [tid for tid, t in zip(ids, out) if t is None]
        if missing:
            # Outside the lock: the journal reads its file, which must not stall dispatch.
            found = self._journal.lookup(missing)
            out = [found.get(tid) if t is None else t for tid, t in zip(ids, out)]
        return out

    def _task_locked(self, task_id: int) -> Task | None:
        held = self._leased.get(task_id)
        if isinstance(held, _Slice):
            return held.record(task_id).to_task()
        rec = held or self._lane_records.get(task_id)
        if rec is None:
            for store in self._finished.values():
                rec = store.get(task_id)
                if rec is not None:
                    break
        if rec is not None:
            return rec.to_task()
        b = self._find_batch(task_id)
        if b is not None:
            idx = task_id - b.first_id
            if idx >= b.pos and b.items[idx] is not HOLE:
                return Task(task_id, b.function, b.args(idx), b.kwargs, QUEUED, 0,
                            b.submitted, job=b.job.id)
        for first, end, function, job, when in reversed(self._purged_runs):
            if first <= task_id < end:  # cancelled in bulk: no record, its args dropped
                return Task(task_id, function, (), None, CANCELLED, 0, job.submitted,
                            finished=when, job=job.id)
        return None

    def list_tasks(self, state: TaskState | str | None = None, offset: int = 0, limit: int = 100,
                   search: str | None = None, order: str | None = None,
                   job: int | str | None = None) -> TaskPage:
        """A page of tasks, newest activity first: running (latest started first), claimed,
        finished (latest first, whatever the state), then queued in the order they will run.

        order sorts by one of TASK_ORDERS ("-" for descending): "state" arranges the states;
        the others sort the running, claimed and finished tasks, and the queued ones follow in
        the order they will run (a million queued tasks are never sorted). With job, only that
        job's tasks, in the same order (a bounded scan, like a search)."""
        limit = max(0, min(int(limit), 10_000))
        offset = max(0, int(offset))
        key, desc = parse_order(order)
        states = ([TaskState(state)] if state
                  else [RUNNING, CLAIMED, *_FINISHED_STATES, QUEUED])
        if key == "state":
            states = sorted(states, key=list(TaskState).index, reverse=desc)
        with self._lock:
            if job is not None:
                j = self._find_job(job)
                if j is None:
                    return TaskPage(0, offset, ())
                return self._search_locked(self._job_segments(states, j),
                                           (search or "").strip().lower(), offset, limit)
            segments = self._segments(states, key if key != "state" else None, desc)
            if search:
                return self._search_locked(segments, search.strip().lower(), offset, limit)
            total = 0
            page: list[Task] = []
            skip = offset
            for size, tasks in segments:
                total += size
                if len(page) >= limit:
                    continue
                if skip >= size:
                    skip -= size
                    continue
                page.extend(itertools.islice(tasks(skip), limit - len(page)))
                skip = 0
            not_held = sum(max(0, self._counts[s] - len(self._finished[s]))
                           for s in states if s.finished)
            return TaskPage(total, offset, tuple(page), not_held)

    def task_orders(self) -> tuple[str, ...]:
        """The keys list_tasks can sort by."""
        return TASK_ORDERS

    def _segments(self, states: list[TaskState], key: str | None,
                  desc: bool) -> list[tuple[int, Callable[[int], Iterator[Task]]]]:
        """The listing as (size, tasks from a skip) parts, in order."""
        finished = [s for s in states if s.finished]
        out: list[tuple[int, Callable[[int], Iterator[Task]]]] = []
        if key is not None:
            held = [s for s in states if s in (RUNNING, CLAIMED) or s.finished]
            if held:
                recs = self._sorted_records(tuple(held), key, desc)
                out.append((len(recs), lambda skip: (r.to_task() for r in
                                                     itertools.islice(recs, skip, None))))
            if QUEUED in states:
                out.append((self._counts[QUEUED], self._iter_queued))
            return out
        merged = False
        for s in states:
            if s.finished and len(finished) > 1:
                if not merged:  # every finished state as one part, latest first
                    merged = True
                    out.append((sum(len(self._finished[f]) for f in finished),
                                lambda skip: self._iter_finished(tuple(finished), skip)))
                continue
            out.append((self._segment_size(s), partial(self._iter_segment, s)))
        return out

    def _iter_finished(self, states: tuple[TaskState, ...], skip: int) -> Iterator[Task]:
        """Finished tasks of several states, latest first: a lazy merge near the top, one
        list built at most once a second deeper down (a merge there costs the whole depth)."""
        if skip < _LAZY_MERGE_DEPTH:
            stores = [self._newest(s) for s in states]
            merged = heapq.merge(*stores, key=_finished_key)
            for rec in itertools.islice(merged, skip, None):
                yield rec.to_task()
            return
        for rec in itertools.islice(self._sorted_records(states, None, False), skip, None):
            yield rec.to_task()

    def _sorted_records(self, states: tuple[TaskState, ...], key: str | None,
                        desc: bool) -> list[_Finished]:
        """Running and finished records of states, latest activity first, then sorted by key
        (a stable sort keeps that as the tie-break); reused for a second, as pages of one
        screen are asked for together."""
        now = time.monotonic()
        cache_key = (states, key, desc)
        cached = self._listing_cache
        if cached is not None and cached[0] == cache_key and now - cached[1] < _LISTING_CACHE_S:
            return cached[2]
        recs: list[_Finished] = []
        for live in (RUNNING, CLAIMED):
            if live in states:
                recs.extend(r for r in self._leased_newest() if r.state is live)
        stores = [self._newest(s) for s in states if s.finished]
        recs.extend(heapq.merge(*stores, key=_finished_key))
        if key is not None:
            values = [(_sort_value(r, key), r) for r in recs]
            known = [(v, r) for v, r in values if v is not None]
            known.sort(key=lambda vr: vr[0], reverse=desc)
            # Tasks without the value (no runtime yet) go last, whichever the direction.
            recs = [r for _, r in known] + [r for v, r in values if v is None]
        self._listing_cache = (cache_key, now, recs)
        return recs

    def _segment_size(self, s: TaskState) -> int:
        if s is QUEUED:
            return self._counts[QUEUED]
        if s is RUNNING or s is CLAIMED:
            return self._counts[s]
        return len(self._finished[s])

    def _iter_segment(self, s: TaskState, skip: int = 0, job: _Job | None = None
                      ) -> Iterator[Task]:
        if s is QUEUED:
            yield from self._iter_queued(skip)
        elif s is RUNNING or s is CLAIMED:  # the latest claimed first
            # Leases are bounded by workers x their claim size: filtering them is cheap.
            of_state = (rec for rec in self._leased_newest() if rec.state is s)
            for rec in itertools.islice(of_state, skip, None):
                yield rec.to_task()
        else:
            for fin in itertools.islice(self._newest(s), skip, None):
                yield fin.to_task()

    def _newest(self, s: TaskState) -> Iterator[_Finished]:
        """The finished tasks of s held in memory, latest first."""
        if s is DONE:
            return self._done.newest()
        return reversed(self._finished[s].values())

    def _leased_newest(self) -> Iterator[Record]:
        """Every claimed or running task, the latest claimed first (slices' as views)."""
        return self._leased.newest()

    def _job_segments(self, states: list[TaskState],
                      job: _Job) -> list[tuple[int, Callable[[int], Iterator[Task]]]]:
        """The listing of one job's tasks as search segments: running, claimed, finished
        (latest first), queued; records are filtered by their job, batches skipped whole."""
        out: list[tuple[int, Callable[[int], Iterator[Task]]]] = []

        def leased_of(state: TaskState) -> Callable[[int], Iterator[Task]]:
            return lambda _skip: (r.to_task() for r in self._leased_newest()
                                  if r.state is state and r.job is job)

        for live in (RUNNING, CLAIMED):
            if live in states:
                out.append((0, leased_of(live)))
        finished = tuple(s for s in states if s.finished)
        if finished:
            stores = [self._newest(s) for s in finished]
            out.append((0, lambda _skip: (r.to_task() for r in heapq.merge(
                *stores, key=_finished_key) if r.job is job)))
        if QUEUED in states:
            out.append((0, lambda skip: self._iter_queued(skip, job)))
        return out

    def _iter_queued(self, skip: int, job: _Job | None = None) -> Iterator[Task]:
        """Queued tasks lane by lane, skipping whole batches arithmetically."""
        # A record finished late while it waited keeps a stale copy in its lane; if it is then
        # retried it is queued twice, so list each record once (records are few: no cost).
        seen: set[int] = set()
        for lane in list(self._lanes.values()):
            for item in list(lane):
                if job is not None and item.job is not job:
                    continue  # another job's: a whole batch is skipped at once
                if type(item) is Record:
                    if (item.state is not QUEUED or item.id not in self._lane_records
                            or item.id in seen):
                        continue
                    seen.add(item.id)
                    if skip:
                        skip -= 1
                        continue
                    yield item.to_task()
                    continue
                alive = item.n - item.pos - item.holes  # inline: a batch a piece, many
                if skip >= alive:
                    skip -= alive
                    continue
                start = item.pos
                if not item.holes:  # no cancelled items: jump straight to the page
                    start, skip = start + skip, 0
                for i in range(start, len(item.items)):
                    args = item.items[i]
                    if args is HOLE:
                        continue
                    if skip:
                        skip -= 1
                        continue
                    if item.bare:
                        args = (args,)
                    yield Task(item.first_id + i, item.function, args, item.kwargs, QUEUED, 0,
                               item.submitted, job=item.job.id)

    def _search_locked(self, segments: list[tuple[int, Callable[[int], Iterator[Task]]]],
                       needle: str, offset: int, limit: int) -> TaskPage:
        """Substring search over id, function, args, result and error; scans a bounded number."""
        matches: list[Task] = []
        scanned = 0
        for _, tasks in segments:
            for t in tasks(0):
                scanned += 1
                if scanned > _SEARCH_SCAN_LIMIT:
                    break
                if not needle:
                    matches.append(t)
                    continue
                hay = f"{t.id} {t.function} {t.args!r} {t.result!r} {t.error or ''}".lower()
                if needle in hay:
                    matches.append(t)
        return TaskPage(len(matches), offset, tuple(matches[offset:offset + limit]))

    # ------------------------------------------------------------------ results for callers

    def result_cursor(self) -> int:
        """The sequence number of the newest result: wait_results from here sees what follows."""
        with self._lock:
            return self._result_seq

    def wait_results(self, cursor: int, jobs: list[int], timeout: float = 30.0,
                     token: str = "", limit: int = 10_000) -> tuple[int, list[tuple], bool]:
        """Block until a task of one of these jobs finishes after cursor; one round trip
        returns every such result there is (up to limit): (new cursor, outcomes, gap).

        gap is True when results after cursor are no longer in the recent-results log (or
        tasks were cancelled in bulk): the caller then looks its tasks up with get_tasks.
        Returns early, with nothing, when poke(token) is called (the caller's set of jobs
        grew). The scan is of the results after cursor, never of the caller's task ids.
        """
        wanted = set(jobs)
        deadline = time.monotonic() + max(0.0, min(float(timeout), _MAX_WAIT))
        with self._lock:
            # A poke that came before this call is kept: it may be for this very call (its
            # caller poked while the call was on its way); a stale one ends one wait early.
            while True:
                cursor, out, gap = self._scan_results(cursor, wanted, limit)
                remaining = deadline - time.monotonic()
                if out or gap or remaining <= 0 or token in self._pokes:
                    self._pokes.discard(token)
                    return cursor, out, gap
                self._results_cv.wait(remaining)

    def _scan_results(self, cursor: int, wanted: set[int],
                      limit: int) -> tuple[int, list[tuple], bool]:
        """Results after cursor of the wanted jobs, oldest first; reads only those after it."""
        newest = self._result_seq
        fresh = newest - cursor
        if fresh < 0:  # a cursor from before a restart: this server counts from 0 again
            return newest, [], True
        if fresh == 0:
            return newest, [], False
        held = len(self._recent)
        gap = fresh > held  # some finished and left the log before this caller looked
        take = min(fresh, held)
        if take > limit:
            newest = newest - take + limit
        out: list[tuple] = []
        finished = _FINISHED_STATES
        for entry, a, b in self._recent.spans(held - take, limit):
            if type(entry) is _DoneBatch:
                if entry.src.job.id in wanted:  # another job's batch is skipped whole
                    out.extend((tid, "done", value, None, None) for tid, value in
                               zip(entry.ids[a:b], entry.results[a:b]))
            elif entry is _BULK_CANCEL:
                gap = True
            elif entry.job.id in wanted and entry.state in finished:
                out.append((entry.id, entry.state.value, entry.result, entry.error,
                            entry.exception))
        return newest, out, gap

    def poke(self, token: str) -> None:
        """Wake the wait_results call made with this token (its caller has more to wait for)."""
        with self._lock:
            self._pokes.add(token)
            if len(self._pokes) > 10_000:  # tokens nobody waited with: forget them
                self._pokes.clear()
                self._pokes.add(token)
            self._results_cv.notify_all()

    def _bulk_cancelled(self) -> None:
        """Mark the results log: tasks were cancelled without records (waiters look them up)."""
        self._recent_add(_BULK_CANCEL, 1)
        self._results_cv.notify_all()

    def define_function(self, name: str, blob: bytes) -> None:
        """Keep a task function sent by value (cloudpickled; never loaded here)."""
        if not is_by_value(name) or not isinstance(blob, bytes):
            raise ValueError("a function sent by value needs a name with '#' and its bytes")
        if len(blob) > self.max_payload:
            raise ValueError(f"the function {name} is {len(blob)} bytes, over the limit")
        with self._lock:
            if name not in self._functions:
                self._functions[name] = blob
                self._journal.defined(name, blob)

    def get_function(self, name: str) -> bytes | None:
        """The bytes of a task function sent by value, for a worker about to run it."""
        with self._lock:
            return self._functions.get(name)

    def results_since(self, cursor: int, limit: int = 1000) -> tuple[int, list[Task]]:
        """Tasks finished after cursor (a sequence number), oldest first: (cursor, tasks)."""
        with self._lock:
            held = len(self._recent)
            if not held:
                return cursor, []
            first_seq = self._result_seq - held + 1
            start = max(0, cursor + 1 - first_seq)
            out: list[Task] = []
            seen = 0
            for entry, a, b in self._recent.spans(start, max(0, limit)):
                seen += b - a
                if type(entry) is _DoneBatch:
                    out.extend(entry.task(i) for i in range(a, b))
                elif entry is not _BULK_CANCEL:
                    out.append(entry.to_task())
            return (first_seq + start + seen - 1 if seen else cursor), out

    def queued_count(self) -> int:
        """Tasks waiting to be claimed."""
        with self._lock:
            return self._counts[QUEUED]

    def events(self, since: int = 0) -> list[Event]:
        """Events after a sequence number."""
        with self._lock:
            return [e for e in self._events if e.seq > since]

    # ------------------------------------------------------------------ classic facade

    def classic_get(self, conn_key: str, block: bool = True, timeout: float | None = None) -> Any:
        """Hand one default-task payload to a tutorial-style worker, or raise queue.Empty."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        with self._cv:
            w = self._classic_worker(conn_key)
            while True:
                now = self._clock()
                w.last_seen = now
                if w.state is WorkerState.OFFLINE:
                    w.state = WorkerState.IDLE
                if not self._paused and self.default_task in self._lanes:
                    while self._lanes.get(self.default_task):
                        g = self._take_from_lane(self.default_task, 1, w, now)
                        if g is not None:
                            self._start_locked(w, g[2], now)  # the tutorial runs it at once
                            args, kwargs = g[3][0], g[1]
                            return args[0] if len(args) == 1 and not kwargs else args
                    self._lanes.pop(self.default_task, None)
                if not block:
                    raise queue.Empty
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                self._cv.wait(1.0 if remaining is None else min(remaining, 1.0))

    def classic_put_result(self, conn_key: str, value: Any) -> None:
        """A tutorial-style worker reports: it completes the oldest task its connection holds."""
        with self._cv:
            w = self._workers.get(f"classic:{conn_key}")
            if w is not None and w.leases:
                tid = w.first_leased()
                w.last_seen = self._clock()
                self._complete_locked(w.id, [(tid, True, value)], w.last_seen)
                # A classic task's result reached the master through _finish; one submitted
                # through the batched API is read from the ledger, and queueing it here too
                # would grow a queue nobody reads by one string per task.
                return
            self.classic_results.put(value)

    def connection_closed(self, conn_key: str) -> None:
        """A manager connection ended: a classic worker on it is gone, and so is a guidist
        worker whose last connection it was; either way their tasks are requeued at once."""
        with self._cv:
            wid = self._conn_workers.pop(conn_key, None)
            g = self._workers.get(wid) if wid is not None else None
            if g is not None:
                g.conns.discard(conn_key)
                if not g.conns and g.state is not WorkerState.OFFLINE:
                    now = self._clock()
                    self._tick(now)
                    self._expire(g, now, "its connection closed")
            w = self._workers.get(f"classic:{conn_key}")
            if w is None:
                return
            if w.leases:
                self._expire(w, self._clock(), "connection closed")
            self._workers.pop(w.id, None)
            self._event("worker-left", f"classic worker {w.id} disconnected")

    def _classic_worker(self, conn_key: str) -> _Worker:
        wid = f"classic:{conn_key}"
        w = self._workers.get(wid)
        if w is None:
            host = conn_key.rsplit("@", 1)[-1]
            w = _Worker(wid, "classic", host, 0, "classic", "classic", 1, self._clock())
            w.address = host  # the peer address of its connection
            self._workers[wid] = w
            self._event("worker-joined", f"classic worker connected from {host}")
        return w

    # ------------------------------------------------------------------ persistence

    def keep_limit(self, state: TaskState) -> int:
        """How many finished tasks of a state are kept in memory."""
        return self._keep[TaskState(state)]

    def restore(self, queued: list[tuple], finished: list[Task], counts: dict[str, int],
                submitted: int, requeued: int, next_id: int, jobs: Iterable[Job] = (),
                functions: dict[str, bytes] | None = None) -> None:
        """Load state replayed from a journal into this (fresh) broker.

        queued rows are (id, function, args, kwargs, attempts, submitted, classic, job
        [, timeout]) in id order; untouched runs of consecutive ids become batches again, the
        rest records.
        jobs come with their counts (the queued ones included).
        """
        with self._lock:
            self._next_id = max(self._next_id, next_id)
            self._functions.update(functions or {})
            for info in sorted(jobs, key=lambda j: j.id):
                j = _Job(info.id, info.name, info.submitted)
                j.functions = list(info.functions)
                j.started, j.last = info.started, info.last_finished
                j.ranges = [list(r) for r in info.ranges]
                for state in TaskState:
                    setattr(j, state.value, info.count(state))
                j.running = j.claimed = 0  # leased at the crash: queued again (so counted)
                self._jobs[j.id] = j
                self._job_names[j.name] = j.id
                self._job_seq = max(self._job_seq, j.id)

            made: set[int] = set()

            def job_of(jid: int | None) -> _Job:
                # Tasks journaled before jobs existed (or whose job row is gone) share a job
                # made here, which counts what is restored into it.
                j = self._jobs.get(jid or 0)
                if j is None:
                    j = self._jobs[jid or 0] = _Job(jid or 0, f"restored-{jid or 0}",
                                                    self._clock())
                    self._job_names[j.name] = j.id
                    made.add(j.id)
                return j

            run: list = []
            run_key: tuple | None = None
            run_first = run_next = 0

            def flush_run() -> None:
                if run:
                    fn, kwargs, sub, classic, jid, timeout = run_key  # type: ignore[misc]
                    b = _Batch(run_first, fn, kwargs, list(run), sub, classic, job_of(jid),
                               len(pack(run)) // len(run) + 1,  # for the claim byte budget
                               timeout)
                    if b.job.id in made:
                        b.job.queued += len(run)
                    self._lanes.setdefault(fn, deque()).append(b)
                    self._batches.append(b)
                    self._batch_starts.append(run_first)
                    run.clear()

            for tid, fn, args, kwargs, attempts, sub, classic, jid, *rest in queued:
                timeout = rest[0] if rest else None
                key = (fn, kwargs, sub, classic, jid, timeout)
                if attempts == 0:
                    if not (run and tid == run_next and key == run_key):
                        flush_run()
                        run_key, run_first = key, tid
                    run.append(args)
                    run_next = tid + 1
                    continue
                flush_run()
                rec = Record(tid, fn, args, kwargs, attempts, sub, classic, job_of(jid),
                             timeout=timeout)
                if rec.job.id in made:
                    rec.job.queued += 1
                self._lanes.setdefault(fn, deque()).append(rec)
                self._lane_records[tid] = rec
            flush_run()
            done: list[Record] = []
            for t in finished:
                rec = Record(t.id, t.function, t.args, t.kwargs, t.attempts, t.submitted, False,
                              job_of(t.job))
                if rec.job.id in made:
                    rec.job.add(t.state, 1)
                rec.state, rec.started, rec.finished = t.state, t.started, t.finished
                rec.worker, rec.result, rec.error = t.worker, t.result, t.error
                rec.runtime, rec.exception = t.runtime, t.exception
                if t.state is DONE:
                    done.append(rec)
                else:
                    self._finished[t.state][t.id] = rec
            for batch in _done_batches(done):
                self._done.add(batch)
            for s in TaskState:
                self._counts[s] = counts.get(s.value, 0)
            self._counts[QUEUED] = len(queued)
            self._counts[RUNNING] = self._counts[CLAIMED] = 0
            self._submitted = submitted
            self._requeued_total = requeued
            if queued or finished:
                self._event("control", f"restored from the journal: {len(queued)} queued, "
                            f"{sum(counts.get(s.value, 0) for s in _FINISHED_STATES)} finished")

    def journal_checkpoint(self) -> None:
        """Hand the journal a snapshot of every live task, in order with the changes around it.

        Running tasks are included as live with their attempts, as a restart would requeue
        them. Batches are sliced (C speed), so a million queued tasks cost milliseconds here;
        the journal does the rest on its own thread.
        """
        with self._lock:
            batches: list[tuple] = []
            records: list[tuple] = []
            seen: set[int] = set()
            for lane in self._lanes.values():
                for item in lane:
                    if type(item) is Record:
                        if (item.state is QUEUED and item.id in self._lane_records
                                and item.id not in seen):
                            seen.add(item.id)
                            records.append(_live_row(item))
                    elif item.pos < item.n:
                        batches.append((item.first_id + item.pos, item.function, item.kwargs,
                                        item.tuples(item.pos), item.submitted, item.classic,
                                        item.job.id, item.timeout))
            records.extend(map(_live_row, self._leased.oldest()))
            # Batches waiting for their commit: their submit row is older than this
            # checkpoint, which replaces it, so the checkpoint must carry them.
            pending = [(ticket, (b.first_id, b.function, b.kwargs, b.tuples(0), b.submitted,
                                 b.classic, b.job.id, b.timeout))
                       for ticket, bs in self._pending.items() for b in bs]
            self._journal.checkpoint({"batches": batches, "records": records,
                                      "pending": pending, "next_id": self._next_id,
                                      "submitted": self._submitted,
                                      "requeued": self._requeued_total})

    def close(self) -> None:
        """Flush and close the journal (the server calls this on its way out)."""
        close = getattr(self._journal, "close", None)
        if close is not None:
            close()

    # ------------------------------------------------------------------ time series

    def _note_peaks(self) -> None:
        """Raise the current second's peaks to the gauges now (under the lock)."""
        counts, peaks = self._counts, self._peaks
        if counts[QUEUED] > peaks[0]:
            peaks[0] = counts[QUEUED]
        if counts[RUNNING] > peaks[1]:
            peaks[1] = counts[RUNNING]
        if counts[CLAIMED] > peaks[2]:
            peaks[2] = counts[CLAIMED]

    def _tick(self, now: float) -> None:
        """Close the per-second bucket(s) that ended before now."""
        sec = int(now)
        if sec <= self._sec:
            return
        counts = self._counts
        queued, running, claimed = counts[QUEUED], counts[RUNNING], counts[CLAIMED]
        workers = sum(1 for w in self._workers.values() if w.state is not WorkerState.OFFLINE)
        pq, pr, pc = self._peaks
        b = self._bucket  # the closing second's point has its peaks; idle seconds, the gauges
        self._series.append((self._sec, b[0], b[1], b[2], b[3], max(pq, queued),
                             max(pr, running), workers, max(pc, claimed)))
        for s in range(max(self._sec + 1, sec - _SERIES_SECONDS), sec):
            self._series.append((s, 0, 0, 0, 0, queued, running, workers, claimed))
        self._sec = sec
        self._bucket = [0, 0, 0, 0]
        self._peaks = [queued, running, claimed]

    def _event(self, kind: str, message: str) -> None:
        self._event_seq += 1
        self._events.append(Event(self._event_seq, self._clock(), kind, message))
        log.info("%s", message)
