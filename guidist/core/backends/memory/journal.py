"""Durable journal (SQLite, standard library) of every submit, state change and result.

How it stays cheap: the broker calls the journal under its lock, and the journal only keeps
references (or small copies) in a buffer. A writer thread writes the buffer in ONE transaction
(WAL mode, ``synchronous=NORMAL``): submits, claims and requeues go into an append-only ``log``
table as one pickled row per batch, successes into the ``done`` table as one row per completed
batch, and failed, dead or cancelled tasks into the ``finished`` table, one row each. ``done``
and ``finished`` are the ledger ``guidist export`` reads.

Submits use group commit: ``submitted`` hands the broker a ticket, and the broker waits
(outside its lock) until the transaction holding that ticket is committed before its tasks can
be claimed and before the submit returns. A waiting submit wakes the writer at once, and every
submit that arrives while one transaction is being written shares the next one, so the cost is
one commit per burst of submits, never one per task. Everything else (claims, results, requeues)
is written every ``flush_interval`` seconds; when the writer falls behind (the oldest unwritten
change is older than ``max_lag``) completions wait for it, which bounds what a crash can lose.

When a write fails (the disk is full, the file became read-only), SQLite has already rolled the
transaction back: the changes go back into the buffer and are retried every ``RETRY_INTERVAL``,
the submits of the failed transaction are refused (their callers get ``JournalUnavailable`` and
nothing of them is kept), and new submits are refused at once until a write succeeds again. The
reason is in ``status()``, which the snapshot carries to the window and ``guidist serve``.

On restart the log is replayed: queued tasks are queued again, running ones are requeued with
their attempt counted, finished ones come back from ``finished``, and the counters go on. The
log is then replaced by one checkpoint row, so a restart never replays more than one run.

If the server process is killed, no acknowledged submit is lost; the last ``max_lag`` (0.5 s)
of claims and results may be, so a task may run twice, never go missing. ``synchronous=NORMAL``
does not sync the WAL on every commit: an operating-system crash or power cut can also lose the
last commits before SQLite's next WAL checkpoint.
"""

from __future__ import annotations

import logging
import os
import pickle
import sqlite3
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from ...errors import JournalInUse, JournalUnavailable, JournalUnreadable
from ...packed_values import PackedValues
from ...payload import Pieces, double_array, is_pieces, read_piece_window
from ...protocol import Job, Task, TaskState
from .broker import HOLE, Broker, Record, _DoneBatch

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.25  # seconds between writes
CHECKPOINT_ROWS = 2_000  # log rows after which the running server compacts the log...
CHECKPOINT_SECONDS = 30.0  # ...but not more often than this
MAX_LAG = 0.5  # producers wait when the oldest unwritten change is older: what a SIGKILL loses
RETRY_INTERVAL = 1.0  # seconds between attempts while the journal cannot be written
_NATIVE = (int, float, str, bytes, type(None))
_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS finished (
    id INTEGER PRIMARY KEY,
    function TEXT NOT NULL,
    args BLOB,
    kwargs BLOB,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    submitted REAL,
    started REAL,
    finished REAL,
    worker TEXT,
    result,
    result_pickled INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    classic INTEGER NOT NULL DEFAULT 0,
    runtime REAL,
    job INTEGER,
    exception BLOB
);
CREATE INDEX IF NOT EXISTS finished_state ON finished(state, finished);
CREATE TABLE IF NOT EXISTS done (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    n INTEGER NOT NULL,
    finished REAL NOT NULL,
    data BLOB NOT NULL,
    job INTEGER,
    min_id INTEGER,
    max_id INTEGER
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    functions TEXT NOT NULL,
    submitted REAL,
    started REAL,
    ranges BLOB
);
CREATE TABLE IF NOT EXISTS functions (name TEXT PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
"""
#: Columns added since the first release: a journal written by an older guidist gets them
#: (appended, so positional rows stay in this order) when it is opened.
_ADDED_COLUMNS = {"finished": (("runtime", "REAL"), ("job", "INTEGER"), ("exception", "BLOB")),
                  "done": (("job", "INTEGER"), ("min_id", "INTEGER"), ("max_id", "INTEGER"))}


def _connect(path: str | Path) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=30, check_same_thread=False,
                         isolation_level=None)
    # Done rows are blobs of tens to hundreds of KB: in 64 KiB pages they take a few pages
    # instead of a chain of 4 KiB overflow pages (the journal's CPU a task x0.9 in
    # benchmarks.broker_core). A journal made before keeps its pages: WAL cannot change them.
    db.execute("PRAGMA page_size=65536")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    for table, columns in _ADDED_COLUMNS.items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns:
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    # Finds the done batch holding a task id (results evicted from memory are read back).
    db.execute("CREATE INDEX IF NOT EXISTS done_ids ON done(min_id, max_id)")
    return db


def _lock_journal(path: Path) -> tuple[IO[bytes], IO[str] | None]:
    """Hold an exclusive lock on the journal file itself for this process's life (released on
    exit, even by SIGKILL), so two servers can never write one journal, whatever path (a
    symlink, a hard link, another mount of the directory) each of them was given.

    Returns the locked file and, beside it, the note naming the holder's pid for messages.
    flock on the database file does not interfere with SQLite's own (fcntl) locks; on Windows,
    where locks are mandatory and would block SQLite's reads, the note file is locked instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    note_path = f"{path.resolve()}.lock"
    target = open(note_path if sys.platform == "win32" else path, "a+b")
    try:
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            import msvcrt

            target.seek(0)
            msvcrt.locking(target.fileno(), msvcrt.LK_NBLCK, 1)
            target.truncate()
            target.write(str(os.getpid()).encode())
            target.flush()
            return target, None
        else:
            import fcntl

            fcntl.flock(target.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        target.close()
        try:
            holder = Path(note_path).read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            holder = "unknown"
        raise JournalInUse(
            f"The journal {path} is in use by another guidist server (pid {holder}): stop "
            "that server, or choose another file with --journal PATH (or --no-journal)."
        ) from None
    note: IO[str] | None = None
    try:  # only informative: a read-only directory must not stop the server
        note = open(note_path, "w", encoding="utf-8")
        note.write(str(os.getpid()))
        note.flush()
    except OSError:
        note = None
    return target, note


#: What a submit brings into the buffer: its rows, its job's and a function sent by value.
_SUBMIT_KINDS = frozenset({"submit", "job", "function"})


def _submits_first(buf: list[tuple[int, str, Any]]) -> tuple[list, list]:
    """Split a flush into what submits brought, which may be committed ahead, and the rest.

    Nothing else in the buffer can refer to a task of a pending submit (it cannot be claimed,
    cancelled or finished before its commit), so submits may go first, with the job rows and
    functions they need after a restart (both are written as a last state, in order); only a
    checkpoint must stay behind the submits before it, since it replaces their rows (what
    comes after it stays after it too).
    """
    early: list = []
    rest: list = []
    for i, entry in enumerate(buf):
        if entry[1] == "checkpoint":
            rest.extend(buf[i:])
            break
        (early if entry[1] in _SUBMIT_KINDS else rest).append(entry)
    if not any(entry[1] == "submit" for entry in early):
        return [], buf  # nobody waits: one transaction, in order
    return early, rest


def _describe_write_error(exc: BaseException) -> str:
    """A short reason for a failed write ("database or disk is full", "No space left...")."""
    if isinstance(exc, sqlite3.Error):
        return str(exc) or type(exc).__name__
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"{type(exc).__name__}: {exc}"


def _encode_result(value: Any) -> tuple[Any, int]:
    """Store plain values natively (readable with any SQLite tool); pickle the rest."""
    if type(value) in _NATIVE and not (type(value) is int and not -2**63 <= value < 2**63):
        return value, 0
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), 1
    except Exception as exc:
        return f"<unpicklable {type(value).__name__}: {exc}>", 0


def _decode_result(value: Any, pickled: int) -> Any:
    return pickle.loads(value) if pickled else value


class SqliteJournal:
    """The broker's journal: buffers under the broker lock, writes from its own thread."""

    def __init__(self, path: str | Path, flush_interval: float = FLUSH_INTERVAL,
                 max_lag: float = MAX_LAG) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.max_lag = max(max_lag, flush_interval)
        self._lock_file, self._lock_note = _lock_journal(self.path)
        try:
            self._db = _connect(self.path)
        except BaseException:
            self._release_lock()
            raise
        self._buf: list[tuple[int, str, Any]] = []  # (ticket, kind, data)
        self._writing: list[tuple[int, str, Any]] = []  # the entries of the flush under way
        self._reader: sqlite3.Connection | None = None  # lookups, beside the writer's
        self._reader_lock = threading.Lock()
        self._buf_lock = threading.Lock()
        self._saved = threading.Condition(self._buf_lock)  # notified after every write attempt
        self._ticket = 0  # the last ticket handed out (one per change)
        self._durable = 0  # every change up to this ticket is committed
        self._early: set[int] = set()  # submit tickets above _durable, committed ahead
        self._refused: dict[int, str] = {}  # submit tickets a failed write dropped -> why
        self._dropped: set[int] = set()  # every submit ticket ever refused (for checkpoints)
        self._failure: str | None = None  # why the last write failed; None while all is well
        self._failing_since: float | None = None
        self._closed = False
        self._wake = threading.Event()  # a submit waits for its commit: write now
        self._oldest: float | None = None  # when the oldest buffered change arrived
        self._writing_since: float | None = None  # the oldest change of the flush under way
        self._checkpoint_fn: Callable[[], None] | None = None  # the broker's, via attach()
        self._rows_since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._purged = 0  # tasks purged so far (never got a record), for checkpoints
        self._purged_by_job: dict[int, int] = {}  # the same per job
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, checkpoint: Callable[[], None]) -> None:
        """The broker hands over its checkpoint function; the writer thread calls it to compact."""
        self._checkpoint_fn = checkpoint

    # -------------------------------------------------------------- broker hooks (under lock)

    def submitted(self, first_id: int, function: str, args_list: list, kwargs: dict | None,
                  when: float, classic: bool, job: int, timeout: float | None = None) -> int:
        """Record a submitted batch; returns the ticket to pass to ``wait_durable``.

        Raises JournalUnavailable, before anything is buffered, while writes are failing.
        The list is not copied: the broker keeps the batch out of its lanes (so nothing can
        punch holes into it) until this change is committed.
        """
        with self._buf_lock:
            if self._failure is not None or self._closed:
                raise JournalUnavailable(self._refusal_locked())
            if type(args_list) is Pieces:  # the client's bytes as they came (see _row_args)
                args_list = args_list.row()
            row = (first_id, function, kwargs, args_list, when, classic, job)
            # A time limit, when there is one, is an 8th element: older rows have 6 or 7.
            return self._add_locked("submit", row if timeout is None else (*row, timeout))

    def defined(self, name: str, blob: bytes) -> None:
        """Record a task function sent by value (queued tasks name it across restarts)."""
        self._add("function", (name, blob))

    def job(self, job: Any) -> None:
        """Record a job's name, functions, times and id ranges (copied: they change)."""
        self._add("job", (job.id, job.name, ",".join(job.functions), job.submitted, job.started,
                          [tuple(r) for r in job.ranges]))

    def claimed(self, ids: Sequence[int], attempts: int) -> None:
        """Record leases (ids all at the same attempt), so a restart counts the attempt."""
        self._add("claim", (ids, attempts))

    def requeued(self, records: list[Record]) -> None:
        """Record tasks going back to the queue (lease expiry, release, retry), in full.

        Requeues are rare, and a retried task's submit row may be gone after a checkpoint,
        so the row carries everything needed to queue the task again.
        """
        self._add("requeue", [(r.id, r.attempts, r.function, r.args, r.kwargs, r.submitted,
                               r.classic, r.job.id, r.timeout) for r in records])

    def done(self, batches: list[_DoneBatch]) -> None:
        """Record successes: O(1) under the broker lock (done batches never change), written
        later as one row per run of one job."""
        self._add("done", batches)

    def finished(self, records: list[Record]) -> None:
        """Record failed, dead or cancelled tasks (copied: a retry changes the record)."""
        self._add("finish", [(r.id, r.function, r.args, r.kwargs, r.state.value, r.attempts,
                              r.submitted, r.started, r.finished, r.worker, r.result, r.error,
                              r.classic, r.runtime, r.job.id, r.exception) for r in records])

    def cancelled_ids(self, ids: Iterable[int], when: float, by_job: dict[int, int]) -> None:
        """Record a purge: tasks that never got a record (and how many per job)."""
        self._add("cancel", (list(ids), when, dict(by_job)))

    def checkpoint(self, state: dict[str, Any]) -> None:
        """Record a snapshot of the live tasks; older log rows are dropped when it is written."""
        self._add("checkpoint", state)

    def _add(self, kind: str, data: Any) -> int:
        with self._buf_lock:
            return self._add_locked(kind, data)

    def _add_locked(self, kind: str, data: Any) -> int:
        if self._oldest is None:
            self._oldest = time.monotonic()
        self._ticket += 1
        self._buf.append((self._ticket, kind, data))
        return self._ticket

    # -------------------------------------------------------------- waiting for the disk

    def wait_durable(self, ticket: int) -> None:
        """Block until the change with this ticket is committed (group commit: the writer is
        woken at once, and every submit waiting meanwhile shares its transaction).

        Raises JournalUnavailable when the write failed: the change was dropped, so the
        caller must treat its submit as never made. Called by the broker outside its lock.
        """
        if self._thread is None:  # no writer (a journal used without start()): write here
            try:
                self.flush()
            except Exception:
                pass  # the refusal below says why
        self._wake.set()
        with self._saved:
            while ((self._durable < ticket and ticket not in self._early)
                   or ticket in self._refused):
                why = self._refused.pop(ticket, None)
                if why is not None:
                    raise JournalUnavailable(why)
                if self._closed and self._durable < ticket:
                    raise JournalUnavailable(self._refusal_locked())
                self._saved.wait(0.5)

    def _refusal_locked(self) -> str:
        """The sentence a refused submit gets."""
        if self._closed:
            return "The server is stopping: nothing was queued. Submit again once it is back."
        return (f"The journal {self.path} cannot be written ({self._failure}): nothing was "
                "queued. Free space on that disk (or fix the file's permissions); submits are "
                "accepted again as soon as the journal can be written.")

    def status(self) -> dict[str, Any]:
        """The journal's health for the snapshot: path, error (None when fine), lag, backlog."""
        with self._buf_lock:
            now = time.monotonic()
            return {"path": str(self.path), "error": self._failure,
                    "failing_for": (now - self._failing_since
                                    if self._failing_since is not None else 0.0),
                    "lag": self._lag_locked(now), "unwritten": len(self._buf)}

    def lag(self) -> float:
        """Age in seconds of the oldest change not yet committed (0 when all are)."""
        with self._buf_lock:
            return self._lag_locked(time.monotonic())

    def _lag_locked(self, now: float) -> float:
        marks = [t for t in (self._oldest, self._writing_since) if t is not None]
        return now - min(marks) if marks else 0.0

    def throttle(self) -> None:
        """Block the caller while unwritten changes are older than max_lag.

        This is the back-pressure that keeps the promise "a crash loses at most max_lag
        seconds of results": without it the writer fell behind under full load and the
        backlog grew without bound. While writes fail it does not hold anyone back: waiting
        would wedge every worker until the disk is freed, and what is buffered meanwhile is
        results of tasks that are durable already (the worst a crash then does is rerun them).
        Called by the broker outside its lock.
        """
        with self._buf_lock:
            while (not self._stop.is_set() and self._thread is not None
                   and self._failure is None
                   and self._lag_locked(time.monotonic()) > self.max_lag):
                self._saved.wait(0.05)

    # -------------------------------------------------------------- writer

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = self.flush_interval
        while not self._stop.is_set():
            self._wake.wait(wait)
            # Cleared before the buffer is taken: a submit added after this point sets it
            # again and gets the next transaction.
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.flush()
            except Exception:
                wait = RETRY_INTERVAL  # logged by flush; the changes are kept for the retry
                continue
            # Behind (changes piled up while writing)? Write again at once.
            wait = 0.0 if self.lag() >= self.flush_interval else self.flush_interval
            if (self._checkpoint_fn is not None and self._rows_since_checkpoint > CHECKPOINT_ROWS
                    and time.monotonic() - self._last_checkpoint > CHECKPOINT_SECONDS):
                # Compact while running, so the log (and a restart's replay) stays small.
                self._last_checkpoint = time.monotonic()
                self._rows_since_checkpoint = 0
                try:
                    self._checkpoint_fn()
                except Exception:
                    log.exception("journal checkpoint failed")

    def flush(self) -> int:
        """Write everything buffered; returns the number of entries.

        Submits go first, in a transaction of their own when other changes are buffered
        beside them (see ``_submits_first``). On failure the changes are put back for the
        next try, except the submits, which are refused (their callers are still waiting and
        hear why), and checkpoints, which are redone later; then the error is raised.
        """
        with self._buf_lock:
            buf, self._buf = self._buf, []
            self._writing = buf  # lookups still find these until they are committed
            self._writing_since, self._oldest = self._oldest, None
            failing = self._failure is not None
        if not buf and not failing:
            with self._saved:
                self._writing_since = None
                self._saved.notify_all()
            return 0
        last = buf[-1][0] if buf else 0  # every ticket up to it is durable after this flush
        early, rest = _submits_first(buf)
        if early and rest:
            # Under load most of a flush is pickling the results that piled up meanwhile, and
            # a submit must not wait for that.
            try:
                self._write_all(early)
            except BaseException as exc:
                self._write_failed(buf, exc)
                raise
            with self._saved:
                self._early.update(entry[0] for entry in early)
                self._saved.notify_all()
            buf = rest
        try:
            # While failing with nothing to write, a tiny write tells when the disk is back:
            # otherwise submits would stay refused for ever on an idle server.
            if buf:
                self._purged, self._purged_by_job = self._write_all(buf)
            else:
                self._probe()
        except BaseException as exc:
            self._write_failed(buf, exc)
            raise
        with self._saved:
            if last:
                self._durable = max(self._durable, last)
                self._early = {t for t in self._early if t > self._durable}
            self._writing_since = None
            self._writing = []
            if self._failure is not None:
                log.warning("the journal %s can be written again", self.path)
            self._failure = self._failing_since = None
            self._saved.notify_all()
        return len(buf)

    def _write_all(self, buf: list[tuple[int, str, Any]]) -> tuple[int, dict[int, int]]:
        """Write buffered changes in one transaction (raises with nothing committed); returns
        the purge counts (in all, and per job) as of the last change."""
        rows: list[tuple[str, bytes]] = []
        done_rows: list[tuple] = []
        jobs: dict[int, tuple] = {}  # the last state of each job changed in this window
        # Apply finishes and requeues in buffer order: a task that failed and was retried in
        # the same window must not keep its 'failed' row (the last change per id wins).
        finished: dict[int, tuple] = {}
        requeued: list[tuple[int]] = []
        purged = self._purged
        purged_by_job = dict(self._purged_by_job)  # kept only if the write succeeds
        db = self._db
        db.execute("BEGIN")
        for _ticket, kind, data in buf:
            if kind == "checkpoint":
                # Everything before it in the buffer is part of the snapshot: write that,
                # then the snapshot, then drop the log rows it replaces.
                self._write(rows, requeued, finished, done_rows, jobs)
                rows, requeued, finished, done_rows, jobs = [], [], {}, [], {}
                self._write_checkpoint(data, purged, purged_by_job)
            elif kind == "done":
                done_rows.extend(_done_rows(data))
            elif kind == "job":
                jobs[data[0]] = data
            elif kind == "function":
                db.execute("INSERT OR IGNORE INTO functions(name, blob) VALUES (?, ?)", data)
            elif kind == "finish":
                for (tid, fn, args, kwargs, state, attempts, sub, st, fin, worker, result,
                     error, classic, runtime, job, exc) in data:
                    value, pickled = _encode_result(result)
                    finished[tid] = (tid, fn, pickle.dumps(args),
                                     None if kwargs is None else pickle.dumps(kwargs),
                                     state, attempts, sub, st, fin, worker, value, pickled,
                                     error, int(bool(classic)), runtime, job, exc)
                rows.append(("finish", pickle.dumps([(d[0], d[4]) for d in data])))
            else:
                if kind == "requeue":
                    for d in data:
                        finished.pop(d[0], None)
                        requeued.append((d[0],))
                elif kind == "cancel":
                    purged += len(data[0])
                    _add_counts(purged_by_job, data[2])
                rows.append((kind, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)))
        self._write(rows, requeued, finished, done_rows, jobs)
        db.execute("COMMIT")
        return purged, purged_by_job

    def _probe(self) -> None:
        """Write one small row: is the journal writable again?"""
        db = self._db
        db.execute("BEGIN")
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('written', ?)", (time.time(),))
        db.execute("COMMIT")

    def _write_failed(self, buf: list[tuple[int, str, Any]], exc: BaseException) -> None:
        """Undo a failed write: roll back if SQLite has not, keep the changes, refuse submits."""
        try:
            # SQLite rolls back by itself on "database or disk is full": a second ROLLBACK
            # would raise "no transaction is active" and skip the bookkeeping below.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        why = _describe_write_error(exc)
        keep = []
        refused = 0
        with self._saved:
            for entry in buf:
                if entry[1] == "submit":
                    self._refused[entry[0]] = (
                        f"The journal {self.path} could not be written ({why}): nothing was "
                        "queued. Free space on that disk (or fix the file's permissions), "
                        "then submit again.")
                    self._dropped.add(entry[0])
                    refused += 1
                elif entry[1] != "checkpoint":
                    keep.append(entry)
            # A checkpoint taken meanwhile may hold a refused batch: drop those too.
            self._buf[:0] = keep
            self._buf = [e for e in self._buf if e[1] != "checkpoint"]
            self._writing = []
            self._oldest, self._writing_since = self._writing_since, None
            first = self._failure is None or self._failure != why
            self._failure = why
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            self._saved.notify_all()
        if first:
            log.error("cannot write the journal %s (%s): %d submit(s) refused, %d change(s) "
                      "kept for a retry every %.0f s", self.path, why, refused, len(keep),
                      RETRY_INTERVAL)

    # -------------------------------------------------------------- lookups

    def lookup(self, ids: list[int]) -> dict[int, Task]:
        """Finished tasks no longer in the broker's memory, by id: from the changes not yet
        written, else from the file. Called outside the broker lock, from any thread."""
        want = set(ids)
        found: dict[int, Task] = {}
        with self._buf_lock:
            pending = self._writing + self._buf
        for _ticket, kind, data in reversed(pending):  # the newest change of a task wins
            if kind == "done":
                for batch in data:
                    for i, tid in enumerate(batch.ids):
                        if tid in want and tid not in found:
                            found[tid] = batch.task(i)
            elif kind == "finish":
                for row in data:
                    if row[0] in want and row[0] not in found:
                        found[row[0]] = _finish_row_to_task(row)
        rest = sorted(want - found.keys())
        if rest:
            with self._reader_lock:
                found.update(self._read(rest))
        return found

    def _read(self, ids: list[int]) -> dict[int, Task]:
        """Tasks from the ledger tables; a done batch is found by the span of its ids."""
        if self._reader is None:
            self._reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                           check_same_thread=False, timeout=30)
        db = self._reader
        found: dict[int, Task] = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            marks = ",".join("?" * len(part))
            for row in db.execute(f"SELECT {_FINISHED_COLUMNS} FROM finished WHERE id IN "
                                  f"({marks})", part):
                found[row[0]] = _row_to_task(row)
        blobs: dict[int, list] = {}  # one batch is unpickled once however many ids it holds
        for tid in ids:
            if tid in found:
                continue
            for seq, blob in db.execute("SELECT seq, data FROM done WHERE min_id <= ? AND "
                                        "max_id >= ?", (tid, tid)):
                rows = blobs.get(seq)
                if rows is None:
                    rows = blobs[seq] = _done_blob_rows(blob)
                hit = next((d for d in rows if d[0] == tid), None)
                if hit is not None:
                    found[tid] = _done_to_task(hit)
                    break
        return found

    def _write(self, rows: list, requeued: list, finished: dict, done_rows: list,
               jobs: dict[int, tuple]) -> None:
        """Insert one segment of a flush (inside the flush's transaction)."""
        db = self._db
        if jobs:  # first: a job's row is never missing for tasks written beside it
            db.executemany("INSERT OR REPLACE INTO jobs(id, name, functions, submitted, started, "
                           "ranges) VALUES (?, ?, ?, ?, ?, ?)",
                           [(*j[:5], pickle.dumps(j[5])) for j in jobs.values()])
        db.executemany("INSERT INTO log(kind, data) VALUES (?, ?)", rows)
        if requeued:  # a retried task is not finished any more
            db.executemany("DELETE FROM finished WHERE id = ?", requeued)
        if finished:
            db.executemany(f"INSERT OR REPLACE INTO finished({_FINISHED_COLUMNS}) VALUES "
                           f"({_FINISHED_MARKS})", finished.values())
        if done_rows:
            db.executemany("INSERT INTO done(n, finished, data, job, min_id, max_id) "
                           "VALUES (?, ?, ?, ?, ?, ?)", done_rows)
        self._rows_since_checkpoint += len(rows) + len(done_rows)

    def _write_checkpoint(self, state: dict[str, Any], purged: int,
                          purged_by_job: dict[int, int]) -> None:
        """Write a running server's snapshot and drop the log rows before it."""
        db = self._db
        done_seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM done").fetchone()[0]
        # Batches still waiting for their commit are live too, unless that commit failed
        # (then their submit was refused and they must not come back on a restart).
        pending = [b for ticket, b in state.get("pending", ()) if ticket not in self._dropped]
        submitted = state["submitted"] + sum(len(_row_args(b[3])) for b in pending)
        # (first, function, kwargs, items, submitted, classic, job[, timeout]); a piece still
        # packed keeps its row form (no HOLE can be in it)
        batches = [(first, fn, kw, items if is_pieces(items)
                    else [None if a is HOLE else a for a in items], *rest)
                   for first, fn, kw, items, *rest in [*state["batches"], *pending]]
        blob = pickle.dumps({"batches": batches, "records": state["records"],
                             "next_id": state["next_id"], "submitted": submitted,
                             "requeued": state["requeued"], "purged": purged,
                             "purged_by_job": purged_by_job, "done_seq": done_seq},
                            protocol=pickle.HIGHEST_PROTOCOL)
        seq = db.execute("INSERT INTO log(kind, data) VALUES ('checkpoint', ?)",
                         (blob,)).lastrowid
        db.execute("DELETE FROM log WHERE seq < ?", (seq,))

    def functions(self) -> dict[str, bytes]:
        """Every task function sent by value and journaled, for a restore."""
        return dict(self._db.execute("SELECT name, blob FROM functions"))

    def close(self) -> None:
        """Stop the writer, write what is left, and close the file (a write that fails now is
        logged: what is lost is results and claims, never an acknowledged submit)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.flush()
        except Exception as exc:
            log.error("the journal %s could not be written on the way out (%s): the last "
                      "results will be run again after a restart", self.path,
                      _describe_write_error(exc))
        finally:
            with self._saved:
                self._closed = True
                self._saved.notify_all()  # submits still waiting are refused
            self._db.close()
            with self._reader_lock:
                if self._reader is not None:
                    self._reader.close()
            self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_note is not None:
            self._lock_note.close()
        self._lock_file.close()  # releases the lock (after SQLite closed its own handles)

    # -------------------------------------------------------------- restore

    def restore_into(self, broker: Broker) -> dict[str, int]:
        """Replay the journal into a fresh broker, then compact the log to one checkpoint."""
        state = _replay(self._db)
        self._purged = state.purged
        self._purged_by_job = dict(state.purged_by_job)
        broker.restore(queued=state.queued_tasks(), finished=self._finished_tasks(broker),
                       counts=state.counts(self._db), submitted=state.submitted,
                       requeued=state.requeued, next_id=state.next_id,
                       jobs=state.jobs(self._db), functions=self.functions())
        self._checkpoint(state)
        return {"queued": len(state.live), "next_id": state.next_id}

    def _finished_tasks(self, broker: Broker) -> list[Task]:
        """The newest finished tasks per state, as many as the broker keeps in memory."""
        out: list[Task] = []
        keep = broker.keep_limit(TaskState.DONE)
        newest: list[Task] = []
        for (blob,) in self._db.execute("SELECT data FROM done ORDER BY seq DESC"):
            newest.extend(reversed([_done_to_task(d) for d in _done_blob_rows(blob)]))
            if len(newest) >= keep:
                break
        out.extend(reversed(newest[:keep]))
        for st in (TaskState.FAILED, TaskState.DEAD, TaskState.CANCELLED):
            rows = self._db.execute(
                f"SELECT {_FINISHED_COLUMNS} FROM finished WHERE state=? "
                "ORDER BY finished DESC, id DESC LIMIT ?",
                (st.value, broker.keep_limit(st))).fetchall()
            out.extend(_row_to_task(r) for r in reversed(rows))
        return out

    def _checkpoint(self, state: _ReplayState) -> None:
        """Replace the log by one row holding the live (queued) tasks and the counters."""
        done_seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM done").fetchone()[0]
        data = pickle.dumps({"live": state.live_rows(), "next_id": state.next_id,
                             "submitted": state.submitted, "requeued": state.requeued,
                             "purged": state.purged, "purged_by_job": state.purged_by_job,
                             "done_seq": done_seq}, protocol=pickle.HIGHEST_PROTOCOL)
        db = self._db
        db.execute("BEGIN")
        db.execute("DELETE FROM log")
        db.execute("INSERT INTO log(kind, data) VALUES ('checkpoint', ?)", (data,))
        db.execute("COMMIT")


class _ReplayState:
    """Per-task state rebuilt from the log: the live tasks (with args) and the counters."""

    def __init__(self) -> None:
        # id -> [function, args, kwargs, attempts, submitted, classic, job, timeout]
        self.live: dict[int, list] = {}
        self.next_id = 1
        self.submitted = 0
        self.requeued = 0
        self.purged = 0
        self.purged_by_job: dict[int, int] = {}

    def queued_tasks(self) -> list[tuple]:
        """(id, function, args, kwargs, attempts, submitted, classic, job, timeout) in id
        order."""
        return [(tid, *v) for tid, v in sorted(self.live.items())]

    def jobs(self, db: sqlite3.Connection) -> list[Job]:
        """Every job in the journal with its counts: queued from the live tasks, finished from
        the ledger tables (SQL aggregates: no task row is read), purges from the log."""
        counts: dict[int, dict[str, int]] = {}
        last: dict[int, float] = {}

        def add(jid: int | None, state: str, n: int, when: float | None = None) -> None:
            c = counts.setdefault(jid or 0, {})
            c[state] = c.get(state, 0) + int(n)
            if when is not None:
                last[jid or 0] = max(last.get(jid or 0, 0.0), when)

        for row in self.live.values():
            add(row[6], "queued", 1)
        for jid, n, when in db.execute("SELECT job, SUM(n), MAX(finished) FROM done GROUP BY job"):
            add(jid, "done", n, when)
        for jid, state, n, when in db.execute(
                "SELECT job, state, COUNT(*), MAX(finished) FROM finished GROUP BY job, state"):
            add(jid, state, n, when)
        for jid, n in self.purged_by_job.items():
            add(jid, "cancelled", n)
        out = []
        known = set()
        for jid, name, functions, submitted, started, ranges in db.execute(
                "SELECT id, name, functions, submitted, started, ranges FROM jobs"):
            known.add(jid)
            c = counts.get(jid, {})
            out.append(_restored_job(jid, name, tuple(f for f in functions.split(",") if f), c,
                                     submitted or 0.0, started, last.get(jid),
                                     tuple(pickle.loads(ranges)) if ranges else ()))
        for jid, c in counts.items():  # tasks journaled before jobs existed
            if jid not in known:
                out.append(_restored_job(jid, f"restored-{jid}", (), c, 0.0, None, last.get(jid),
                                         ()))
        return out

    def live_rows(self) -> list[tuple]:
        """The same rows, for the checkpoint."""
        return self.queued_tasks()

    def counts(self, db: sqlite3.Connection) -> dict[str, int]:
        """Finished counts from the ledger, cancelled purges included."""
        counts = {s.value: 0 for s in TaskState}
        for state, n in db.execute("SELECT state, COUNT(*) FROM finished GROUP BY state"):
            counts[state] = n
        counts[TaskState.DONE.value] += db.execute(
            "SELECT COALESCE(SUM(n), 0) FROM done").fetchone()[0]
        counts[TaskState.CANCELLED.value] += self.purged
        counts[TaskState.QUEUED.value] = len(self.live)
        return counts


def _replay(db: sqlite3.Connection) -> _ReplayState:
    """Rebuild live tasks from the log; everything running at the crash is queued again."""
    st = _ReplayState()
    done_seq = 0
    for kind, blob in db.execute("SELECT kind, data FROM log ORDER BY seq"):
        data = pickle.loads(blob)
        if kind == "checkpoint":
            done_seq = data.get("done_seq", 0)
            st.live = {}
            # Rows written before jobs (or time limits) existed lack them at the end: None.
            for row in data.get("live", ()):
                st.live[row[0]] = [*row[1:7], _at(row, 7), _at(row, 8)]
            for first, fn, kwargs, items, sub, classic, *more in data.get("batches", ()):
                job, timeout = _at(more, 0), _at(more, 1)
                for i, args in enumerate(_row_args(items)):
                    if args is not None:  # None marks a task cancelled inside its batch
                        st.live[first + i] = [fn, args, kwargs, 0, sub, classic, job, timeout]
            for row in data.get("records", ()):
                st.live[row[0]] = [*row[1:7], _at(row, 7), _at(row, 8)]
            st.next_id = data["next_id"]
            st.submitted, st.requeued = data["submitted"], data["requeued"]
            st.purged = data["purged"]
            st.purged_by_job = dict(data.get("purged_by_job", {}))
        elif kind == "submit":
            first, fn, kwargs, args_list, when, classic = data[:6]
            job, timeout = _at(data, 6), _at(data, 7)
            args_list = _row_args(args_list)
            for i, args in enumerate(args_list):
                st.live[first + i] = [fn, args, kwargs, 0, when, classic, job, timeout]
            st.next_id = max(st.next_id, first + len(args_list))
            st.submitted += len(args_list)
        elif kind == "claim":
            ids, attempts = data
            for tid in ids:
                row = st.live.get(tid)
                if row is not None:
                    row[3] = attempts  # running at the crash: requeued, attempt counted
        elif kind == "requeue":
            for tid, attempts, fn, args, kwargs, sub, classic, *more in data:
                st.live[tid] = [fn, args, kwargs, attempts, sub, classic, _at(more, 0),
                                _at(more, 1)]
            st.requeued += sum(1 for d in data if d[1] > 0)
        elif kind == "finish":
            for tid, _state in data:
                st.live.pop(tid, None)
        elif kind == "cancel":
            ids = data[0]
            for tid in ids:
                st.live.pop(tid, None)
            st.purged += len(ids)
            _add_counts(st.purged_by_job, data[2] if len(data) > 2 else {None: len(ids)})
    # Successes live in their own table, one row per batch; a done task is never requeued
    # again, so removing them after the log is right whatever the order. Rows from before
    # the checkpoint were already taken out of its live set.
    for (blob,) in db.execute("SELECT data FROM done WHERE seq > ?", (done_seq,)):
        for tid in _done_blob_ids(blob):
            st.live.pop(tid, None)
    return st


def _row_args(items: Any) -> Any:
    """A submit row's (or a checkpointed batch's) arguments as argument tuples: rows written
    in pieces (payload.Pieces.row) are decoded here, placeholders for a piece that cannot be
    read; rows of older forms (a list, a BareArgs) are as they were written."""
    if is_pieces(items):
        return Pieces.of_row(items).readable()
    return items


def _at(row: Any, i: int) -> Any:
    """Element i of a journal row, or None when the row predates it."""
    return row[i] if len(row) > i else None


def _restored_job(jid: int, name: str, functions: tuple[str, ...], c: dict[str, int],
                  submitted: float, started: float | None, last: float | None,
                  ranges: tuple) -> Job:
    """A job as the journal restores it: nothing is running after a restart."""
    return Job(jid, name, functions, queued=c.get("queued", 0), running=0,
               done=c.get("done", 0), failed=c.get("failed", 0), dead=c.get("dead", 0),
               cancelled=c.get("cancelled", 0), submitted=submitted, started=started,
               last_finished=last, ranges=ranges)


def _add_counts(into: dict, more: dict) -> None:
    for k, n in more.items():
        into[k] = into.get(k, 0) + n


def _done_rows(batches: list[_DoneBatch]) -> Iterator[tuple]:
    """Done batches as done rows, one per run of one job (so counts per job are one SQL
    aggregate), with the id span that lookups of evicted results search by. A row holds its
    batches as columns (``_done_columns``), pickled without a tuple per task; values still
    packed as the worker sent them are copied as their bytes, not pickled again."""
    start = 0
    n = len(batches)
    while start < n:
        job = batches[start].src.job
        end = start + 1
        while end < n and batches[end].src.job is job:
            end += 1
        run = batches[start:end]
        whole = _packed_in_row(run)
        yield (sum(len(b.ids) for b in run), run[-1].finished or 0.0,
               pickle.dumps((_COLUMNS, [_done_columns(b, whole) for b in run]),
                            protocol=pickle.HIGHEST_PROTOCOL),
               job.id, min(map(_lowest, run)), max(map(_highest, run)))
        start = end


def _packed_in_row(run: list[_DoneBatch]) -> set[int]:
    """The packed value columns (by the id of the column its batches slice) a row may hold as
    bytes: those it holds at least half the values of. A row pickles each such blob once
    however many of its batches slice it; a blob mostly elsewhere (a report across several
    jobs' rows) would be written once a row, so those few values are written decoded."""
    held: dict[int, int] = {}
    whole: dict[int, int] = {}
    for b in run:
        v = b.results
        if type(v) is PackedValues:
            key = id(v.packed)
            held[key] = held.get(key, 0) + len(v)
            whole[key] = v.whole
    return {key for key, k in held.items() if 2 * k >= whole[key]}


def _lowest(b: _DoneBatch) -> int:
    return b.ids[0] if type(b.ids) is range else min(b.ids)  # a range: no scan


def _highest(b: _DoneBatch) -> int:
    return b.ids[-1] if type(b.ids) is range else max(b.ids)


#: The first element of a done row's data in the column format; older rows are a list of
#: per-task tuples (see ``_done_blob_rows``, the one place that reads either).
_COLUMNS = "columns"


def _done_columns(b: _DoneBatch, whole: set[int]) -> tuple:
    """One done batch as the columns a done row stores (the arguments as bare values when
    each task has one, flagged by the 13th column). Values still packed go in a 15th column
    as the bytes the worker sent (a pickled tuple of a report's values) and where the batch
    lies in them, the results column None: bytes are copied, not pickled, and a read of the
    row's ids decodes no value. (Rows of the version before held a worker's whole results
    blob in the 14th column instead, which ``_raw_results`` reads.)"""
    s = b.src
    args, bare = b.arg_column()
    values: Any = b.results
    packed = None
    if type(values) is PackedValues:
        if id(values.packed) in whole:
            packed, values = (values.packed.blob, values.lo, values.hi), None
        else:
            values = tuple(values)
    return (s.function, s.kwargs, s.attempts, s.submitted, b.finished, b.worker, s.job.id,
            b.ids, args, values, b.started, b.runtimes, bare, None, packed)


#: The results format of the worker blobs that done rows written before packed values held
#: (a 14th column): pack_results's first columns format.
RAW_RESULTS = "guidist-result-columns-1"


def _raw_results(blob: bytes, lo: int, hi: int) -> tuple[Any, array, array]:
    """Results, start times and run times [lo:hi] of a worker's results blob: a pickled
    (RAW_RESULTS, ids, oks, values, start times as doubles, run times as doubles), as done
    rows of the version before packed values hold it. Read here, not by payload.unpack, so
    a journal reads back whatever the wire format becomes."""
    mark, _ids, _oks, values, started, runtimes = pickle.loads(blob)
    if mark != RAW_RESULTS:
        raise ValueError(f"a done row holds results in an unknown format {mark!r}")
    return values[lo:hi], double_array(started)[lo:hi], double_array(runtimes)[lo:hi]


def _done_blob_rows(blob: bytes) -> list[tuple]:
    """A done row's data as per-task tuples (id, function, args, kwargs, attempts,
    submitted, started, finished, worker, result, runtime, job), whichever format it has."""
    data = pickle.loads(blob)
    if type(data) is not tuple or not data or data[0] != _COLUMNS:
        return data
    rows: list[tuple] = []
    decoded: dict[int, tuple] = {}  # batches of one row share a report's bytes: decode once
    for cols in data[1]:
        (fn, kw, attempts, sub, fin, worker, job, ids, args_col, results, starts, runtimes,
         bare) = cols[:13]
        if len(cols) > 13 and cols[13] is not None:
            results, starts, runtimes = _raw_results(*cols[13])
        if len(cols) > 14 and cols[14] is not None:
            blob, lo, hi = cols[14]
            values = decoded.get(id(blob))
            if values is None:
                values = decoded[id(blob)] = pickle.loads(blob)
            results = values[lo:hi]
        if not bare:  # arguments kept as the client's piece, or as they were
            args_col, bare = read_piece_window(args_col)
        args_list = zip(args_col) if bare else args_col
        rows.extend((tid, fn, args, kw, attempts, sub, started, fin, worker, result, runtime,
                     job) for tid, args, result, started, runtime in zip(
                         ids, args_list, results, starts, runtimes))
    return rows


def _done_blob_ids(blob: bytes) -> Iterator[int]:
    """The task ids of a done row, without making its tuples when it is in columns."""
    data = pickle.loads(blob)
    if type(data) is tuple and data and data[0] == _COLUMNS:
        for cols in data[1]:
            yield from cols[7]
    else:
        for d in data:
            yield d[0]


def _done_to_task(d: tuple) -> Task:
    tid, fn, args, kwargs, attempts, sub, started, fin, worker, result = d[:10]
    # rows from before runtimes were measured and jobs existed lack the last two fields
    runtime = d[10] if len(d) > 10 else None
    job = d[11] if len(d) > 11 else None
    return Task(tid, fn, args, kwargs, TaskState.DONE, attempts, sub, started, fin, worker,
                result, None, runtime, job)


#: The finished table's columns in the order rows are written and read (SELECT of these).
_FINISHED_COLUMNS = ("id, function, args, kwargs, state, attempts, submitted, started, "
                     "finished, worker, result, result_pickled, error, classic, runtime, job, "
                     "exception")
_FINISHED_MARKS = ",".join("?" * (_FINISHED_COLUMNS.count(",") + 1))


def _row_to_task(row: tuple) -> Task:
    (tid, fn, args, kwargs, state, attempts, sub, st, fin, worker, result, pickled, error,
     _classic, runtime, job, exc) = row
    return Task(tid, fn, pickle.loads(args) if args is not None else (),
                pickle.loads(kwargs) if kwargs is not None else None, TaskState(state),
                attempts, sub or 0.0, st, fin, worker, _decode_result(result, pickled), error,
                runtime, job, exc)


def _finish_row_to_task(d: tuple) -> Task:
    """A buffered 'finish' entry (SqliteJournal.finished) as a Task."""
    (tid, fn, args, kwargs, state, attempts, sub, st, fin, worker, result, error, _classic,
     runtime, job, exc) = d
    return Task(tid, fn, args, kwargs, TaskState(state), attempts, sub or 0.0, st, fin, worker,
                result, error, runtime, job, exc)


def open_journaled_broker(path: str | Path, flush_interval: float = FLUSH_INTERVAL,
                          **broker_options: Any) -> Broker:
    """A broker restored from the journal at path (created if missing), journaling from now on.

    Raises JournalInUse, or JournalUnreadable (naming the file) when it is damaged, not a
    journal, or cannot be opened for writing.
    """
    try:
        journal = SqliteJournal(path, flush_interval)
    except (sqlite3.Error, OSError) as exc:
        raise JournalUnreadable(_unreadable(path, exc, "opened")) from None
    broker = Broker(journal=journal, **broker_options)
    try:
        info = journal.restore_into(broker)
    except Exception as exc:  # damaged rows: sqlite3.DatabaseError, unpickling errors...
        journal.close()
        raise JournalUnreadable(_unreadable(path, exc, "read")) from None
    if info["queued"]:
        log.info("restored %d queued task(s) from %s", info["queued"], path)
    journal.start()
    return broker


# ---------------------------------------------------------------------- reading and pruning

def _unreadable(path: str | Path, exc: BaseException, what: str) -> str:
    """The one-line error for a journal that cannot be used, naming the file."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    return (f"The journal {path} cannot be {what} ({reason}): if it is damaged, move it aside "
            "and start with a fresh one (--journal PATH), or use --no-journal.")


def _connect_readonly(path: str | Path) -> sqlite3.Connection:
    """Open a journal for reading only (export): never writes, so a read-only file works."""
    from urllib.parse import quote

    uri = f"file:{quote(str(Path(path).resolve()))}"
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30)
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        # A WAL journal on a read-only disk cannot make its shared-memory file: read the
        # main file as is (what a clean stop left there).
        db = sqlite3.connect(f"{uri}?immutable=1", uri=True)
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db


def iter_ledger(path: str | Path, states: Iterable[str] | None = None) -> Iterator[Task]:
    """Every task in a journal file: finished ones from the ledger, then the live ones.

    Raises JournalUnreadable (naming the file) when it is damaged or not a journal. A journal
    that cannot be written (a read-only disk) is read as it is.
    """
    wanted = {TaskState(s).value for s in states} if states else None  # ValueError: bad state
    try:
        try:
            db = _connect(path)  # brings an older journal's tables up to date
        except sqlite3.OperationalError:
            db = _connect_readonly(path)
    except sqlite3.Error as exc:
        raise JournalUnreadable(_unreadable(path, exc, "read")) from None
    try:
        yield from _ledger_rows(db, wanted)
    except JournalUnreadable:
        raise
    except (sqlite3.Error, pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, ImportError, IndexError, KeyError) as exc:
        raise JournalUnreadable(_unreadable(path, exc, "read")) from None
    finally:
        db.close()


def _ledger_rows(db: sqlite3.Connection, wanted: set[str] | None) -> Iterator[Task]:
    if wanted is None or TaskState.DONE.value in wanted:
        for (blob,) in db.execute("SELECT data FROM done ORDER BY seq"):
            for d in _done_blob_rows(blob):
                yield _done_to_task(d)
    for row in db.execute(f"SELECT {_FINISHED_COLUMNS} FROM finished ORDER BY id"):
        if wanted is None or row[4] in wanted:
            yield _row_to_task(row)
    if wanted is None or TaskState.QUEUED.value in wanted:
        st = _replay(db)
        for tid, fn, args, kwargs, attempts, sub, _classic, job, _to in st.queued_tasks():
            yield Task(tid, fn, args, kwargs, TaskState.QUEUED, attempts, sub, job=job)


def _deleted_tasks(db: sqlite3.Connection, where: str, params: tuple) -> int:
    n = db.execute(f"SELECT COALESCE(SUM(n), 0) FROM done WHERE {where}", params).fetchone()[0]
    db.execute(f"DELETE FROM done WHERE {where}", params)
    return int(n)


def prune_journal(path: str | Path, done_older_than: float | None = None,
                  failed_older_than: float | None = None, keep_done: int | None = None,
                  keep_failed: int | None = None) -> int:
    """Delete finished tasks from the ledger by age (seconds) or count; returns rows deleted.

    Raises JournalUnreadable (naming the file) when it is damaged or cannot be written.
    """
    try:
        return _prune(path, done_older_than, failed_older_than, keep_done, keep_failed)
    except (sqlite3.Error, pickle.UnpicklingError, OSError) as exc:
        raise JournalUnreadable(_unreadable(path, exc, "pruned")) from None


def _prune(path: str | Path, done_older_than: float | None, failed_older_than: float | None,
           keep_done: int | None, keep_failed: int | None) -> int:
    db = _connect(path)
    now = time.time()
    deleted = 0
    try:
        db.execute("BEGIN")
        # Successes are stored a batch per row: prune whole rows, by age and by count.
        if done_older_than is not None:
            deleted += _deleted_tasks(db, "finished < ?", (now - done_older_than,))
        if keep_done is not None:
            kept = 0
            for seq, n in db.execute("SELECT seq, n FROM done ORDER BY seq DESC").fetchall():
                if kept + n > keep_done:
                    room = keep_done - kept  # keep the newest `room` tasks of this batch
                    if room > 0:
                        (blob,) = db.execute("SELECT data FROM done WHERE seq = ?",
                                             (seq,)).fetchone()
                        db.execute("UPDATE done SET n = ?, data = ? WHERE seq = ?",
                                   (room, pickle.dumps(_done_blob_rows(blob)[-room:]), seq))
                        deleted += n - room
                    deleted += _deleted_tasks(db, "seq < ?" if room > 0 else "seq <= ?",
                                              (seq,))
                    break
                kept += n
        for states, age, keep in (((TaskState.DONE.value, TaskState.CANCELLED.value),
                                   done_older_than, keep_done),
                                  ((TaskState.FAILED.value, TaskState.DEAD.value),
                                   failed_older_than, keep_failed)):
            marks = ",".join("?" * len(states))
            if age is not None:
                deleted += db.execute(f"DELETE FROM finished WHERE state IN ({marks}) AND "
                                      "finished < ?", (*states, now - age)).rowcount
            if keep is not None:
                deleted += db.execute(
                    f"DELETE FROM finished WHERE state IN ({marks}) AND id NOT IN (SELECT id "
                    f"FROM finished WHERE state IN ({marks}) ORDER BY finished DESC LIMIT ?)",
                    (*states, *states, keep)).rowcount
        db.execute("COMMIT")
    finally:
        db.close()
    return deleted
