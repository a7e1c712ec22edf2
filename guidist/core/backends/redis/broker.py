"""The Redis backend: the broker's state (queue, leases, records, counters, series) in Redis.

``RedisBroker`` has the in-memory ``Broker``'s public methods, semantics and return types, so
the manager facade (``guidist serve --backend redis://...``), the window and the workers use it
unchanged. Workers may also skip the facade and talk to Redis directly (``RedisClient``,
``guidist worker --redis URL``): then no single Python process is in the path.

Design notes:

* Every state change is one Lua script (``redis_scripts``), so it is atomic whatever the number
  of brokers, servers and workers sharing the Redis; a claim or a batch of results is one round
  trip. The key layout is documented in ``redis_scripts``.
* Tasks are stored in the hash of the batch they were submitted in, one field per task and
  fact, and a script groups the ids it touches by batch: its Redis calls follow the batches,
  not the tasks. Redis's single thread is the throughput limit of this backend, and per-task
  keys (one hash each, touched by every script) cost twice the Redis time.
* Leases are per worker, as in the in-memory broker: a sorted set holds each live worker's
  deadline, a heartbeat or claim renews it, and ``reap()`` (the server's reaper, or any claim
  at most once a second when no server runs) requeues an expired worker's tasks or buries them.
  Behind a server, a worker's tasks are also requeued the moment its last connection to that
  server closes (the server tracks connections in its own memory). A worker that talks to
  Redis directly has no such connection to watch: for it the lease is the only mechanism.
* A call whose reply is lost (Redis restarting, a dropped connection) is retried with the same
  token, and the scripts replay the previous answer: a claim is never leased twice to nobody,
  a submit never queues twice.
* Payloads are pickled into Redis: whoever can write to that Redis can run code on the workers,
  the same trust model as the manager's authkey. The password comes from the URL and is never
  logged (``redact_url``).
"""

from __future__ import annotations

import json
import logging
import pickle
import queue
import struct
import sys
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import accumulate
from typing import Any

from ... import histogram
from ...errors import AuthenticationFailed, GuidistError, ServerUnavailable
from ...payload import ResultColumns, unpack, unpack_submission
from ...protocol import (
    CMD_OK,
    JOB_STATES,
    SERIES_FIELDS,
    SNAPSHOT_JOBS,
    ClaimGroup,
    Event,
    FunctionStats,
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
    classic_prefix,
    parse_order,
    running_ids,
    throughput,
)
from ...remote import is_by_value
from ...spans import STREAM_SECONDS
from ...urls import REDIS_URL_ENV, redact_url, resolve_url
from ..base import DEFAULTS
from .scripts import SCRIPTS

log = logging.getLogger(__name__)

_ERROR_TEXT_LIMIT = 16_000
_SEARCH_SCAN_LIMIT = 50_000  # fewer than in memory: every scanned task crosses the network
_CHUNK = 5_000  # ids per script call for purge and retry_all, so Redis never blocks for long
_LEASED = (TaskState.RUNNING, TaskState.CLAIMED)  # listed by id (the others are sorted)
_FINISHED = (TaskState.DONE, TaskState.FAILED, TaskState.DEAD, TaskState.CANCELLED)
# Newest activity first: running, claimed, every finished state merged latest first, then queued.
_ORDER = (TaskState.RUNNING, TaskState.CLAIMED, *_FINISHED, TaskState.QUEUED)
#: The keys list_tasks can sort by here (finished tasks' fields live in hashes: sorting them
#: would fetch every one).
_TASK_ORDERS = ("state",)
_LAZY_MERGE_DEPTH = 5_000  # deeper pages of the merged finished tasks read one cached union
_PICKLE = pickle.HIGHEST_PROTOCOL
_SPAN_REPORTS = 500  # worker reports a snapshot reads spans from, at most
_TASKS_PER_CALL = 1_000  # tasks one "tasks" script reads (each costs a few lookups)
_NAN = float("nan")


def _s(b: bytes | str | None) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else (b or "")


def _loads(blob: bytes | None, what: str = "value") -> Any:
    if not blob:
        return None
    try:
        return pickle.loads(blob)
    except Exception as exc:  # a class this process cannot import, for instance
        return f"<{what} that cannot be unpickled here: {type(exc).__name__}: {exc}>"


def _opt_float(b: bytes | None) -> float | None:
    return float(b) if b else None


def encode_results(results: Iterable[ResultItem] | None) -> list[Any]:
    """Results as the scripts take them: one bytes element per result.

    Pickling happens here, before anything is sent, so an unpicklable result raises
    (PicklingError or TypeError) with nothing changed, as over the manager connection.
    """
    out: list[bytes] = []
    dumps = pickle.dumps
    for item in results or ():
        tid, ok, value = item[0], item[1], item[2]
        if ok:
            extra = b"%d" % value if isinstance(value, int) else b""
            body = dumps(value, _PICKLE)
        else:
            err = str(value)[:_ERROR_TEXT_LIMIT]
            extra = (err.strip().splitlines()[-1:] or [""])[0].encode("utf-8", "replace")
            body = err.encode("utf-8", "replace")
        started = item[3] if len(item) > 4 else None
        timing = b"" if started is None else b"%r,%r" % (float(started), float(item[4]))
        exc = (item[5] or b"") if len(item) > 5 and not ok else b""
        # one element per result: "<id>:<ok>:<len>:<started>,<runtime>:<exclen>:" + extra +
        # exception + payload, the times empty when not measured (see scripts)
        out.append(b"%d:%d:%d:%b:%d:%b%b%b" % (int(tid), 1 if ok else 0, len(extra), timing,
                                               len(exc), extra, exc, body))
    return out


def encode_packed(results: Iterable[ResultItem] | None) -> list[Any]:
    """Results as the exchange and complete scripts take them (see scripts.complete_all).

    Results with a failure among them go one element each (encode_results), in order; ok
    results go in one blob, "<n> "
    then their end offsets (uint32), start times and run times (doubles, NaN when not
    measured) and the pickled values end to end, with their int texts (for the tutorial's
    string) and their ids (comma-separated): Redis stores the blob as it is, once per call,
    instead of one record per task. Pickling happens here, so an unpicklable result raises first.
    """
    if results is None:
        return [0]
    ids: Sequence[Any]
    values: Sequence[Any]
    if isinstance(results, ResultColumns) and all(results.oks):
        ids, values = results.ids, results.values
        started, runtimes = results.started, results.runtimes
        failed: list[bytes] = []
    else:
        ok = list(results)
        if not all(it[1] for it in ok):
            # a failure among them: one element each, so the results keep their order
            failed = encode_results(ok)
            return [len(failed), *failed]
        failed = []
        ids = [it[0] for it in ok]
        values = [it[2] for it in ok]
        try:
            started = array("d", [it[3] for it in ok])
            runtimes = array("d", [it[4] for it in ok])
        except (TypeError, IndexError):  # a time not measured: NaN
            started = array("d", [_NAN if len(it) < 5 or it[3] is None else float(it[3])
                                  for it in ok])
            runtimes = array("d", [_NAN if len(it) < 5 or it[4] is None else float(it[4])
                                   for it in ok])
    out: list[Any] = [len(failed), *failed]
    if not ids:
        return out
    dumps = pickle.dumps
    bodies = [dumps(v, _PICKLE) for v in values]
    times = array("d", started) + array("d", runtimes)
    if sys.byteorder != "little":
        times.byteswap()
    n = len(bodies)
    blob = b"".join((b"%d " % n, struct.pack(f"<{n}I", *accumulate(map(len, bodies))),
                     times.tobytes(), *bodies))
    if all(type(v) is int for v in values):
        extras = ",".join(map(str, values)).encode()
    else:
        extras = b",".join(b"%d" % v if isinstance(v, int) else b"" for v in values)
    # the ids in one argument: redis-py spends more packing an argument than Redis a task
    out += [blob, extras, ",".join(map(str, map(int, ids))).encode()]
    return out


class _Waker:
    """Wakes long-polling claims when a script publishes that tasks became claimable.

    One pub/sub connection and thread per broker, started on the first wait; a claim that
    misses a message still retries within a second, so a lost message costs latency only.
    """

    def __init__(self, redis: Any, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._cv = threading.Condition()
        self._gen = 0
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._subscribed = threading.Event()

    @property
    def generation(self) -> int:
        """Changes whenever a wake-up arrives; read before trying, pass to wait()."""
        with self._cv:
            return self._gen

    def nudge(self) -> None:
        """Wake the waiters in this process (as a published message would)."""
        with self._cv:
            self._gen += 1
            self._cv.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Wait until a wake-up newer than seen arrives, or timeout.

        Until the listener's subscription is confirmed, a message published now would be
        missed (and cost the caller its whole timeout): the first wait returns as soon as it
        is, so the caller tries again with every later message heard."""
        self._start()
        if not self._subscribed.is_set():
            self._subscribed.wait(max(0.0, min(timeout, 1.0)))
            return
        with self._cv:
            if self._gen == seen:
                self._cv.wait(max(0.0, timeout))

    def _start(self) -> None:
        with self._cv:
            if self._thread is None and not self._closing.is_set():
                self._thread = threading.Thread(target=self._listen, name="redis-waker",
                                                daemon=True)
                self._thread.start()

    def _listen(self) -> None:
        pubsub = None
        while not self._closing.is_set():
            try:
                if pubsub is None:
                    pubsub = self._redis.pubsub()
                    pubsub.subscribe(self._channel)
                msg = pubsub.get_message(timeout=0.5)
                kind = msg.get("type") if msg else None
                if kind == "subscribe":  # confirmed: from here on no message is missed
                    self._subscribed.set()
                if kind in ("subscribe", "message"):  # (the first: the caller tries again)
                    with self._cv:
                        self._gen += 1
                        self._cv.notify_all()
            except Exception:  # Redis away: waits fall back to their timeout
                self._subscribed.clear()
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass
                pubsub = None
                self._closing.wait(0.5)
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:
                pass

    def close(self) -> None:
        """Stop the listener thread."""
        self._closing.set()
        with self._cv:
            self._cv.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(2)


class RedisClassicResults:
    """The classic result queue (``get_result_queue``), kept in a Redis list."""

    def __init__(self, broker: RedisBroker) -> None:
        self._broker = broker

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Next result, or raise queue.Empty (BLPOP in slices, so a timeout of None works)."""
        key = self._broker._key("classic")
        if not block:
            item = self._broker._retrying(lambda: self._broker._redis.lpop(key))
            if item is None:
                raise queue.Empty
            return self._decode(item)
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while True:
            remaining = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if remaining <= 0:
                raise queue.Empty
            item = self._broker._retrying(
                partial(self._broker._redis.blpop, [key], timeout=max(remaining, 0.01)))
            if item is not None:
                return self._decode(item[1])

    def get_nowait(self) -> Any:
        """Next result without waiting."""
        return self.get(False)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Append a result as-is."""
        blob = b"p" + pickle.dumps(item, _PICKLE)
        self._broker._retrying(lambda: self._broker._redis.rpush(self._broker._key("classic"),
                                                                  blob))

    def put_nowait(self, item: Any) -> None:
        """Same as put."""
        self.put(item)

    def qsize(self) -> int:
        """Results waiting."""
        return int(self._broker._retrying(
            lambda: self._broker._redis.llen(self._broker._key("classic"))))

    def empty(self) -> bool:
        """True when no result waits."""
        return self.qsize() == 0

    @staticmethod
    def _decode(item: bytes) -> Any:
        kind, body = item[:1], item[1:]
        if kind == b"s":
            return body.decode("utf-8", "replace")
        return _loads(body, "result")


class RedisBroker:
    """The broker interface with its state in Redis; safe to share between threads.

    Settings left as None are read from the deployment (the first broker stored them), so a
    worker on another machine need not repeat the server's lease timeout; given settings are
    stored for everyone. ``clock`` (tests) replaces Redis's own TIME for deadlines and series.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        lease_timeout: float | None = None,
        max_attempts: int | None = None,
        default_task: str | None = None,
        keep_done: int | None = None,
        keep_failed: int | None = None,
        keep_cancelled: int | None = None,
        keep_jobs: int | None = None,
        max_payload: int | None = None,
        task_timeout: float | None = None,
        clock: Callable[[], float] | None = None,
        namespace: str = "guidist",
        retry_for: float = 30.0,
        auto_reap: float = 1.0,
        connect_timeout: float = 5.0,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._url = resolve_url(url)
        self.where = redact_url(self._url)
        self._clock = clock
        self._prefix = f"{namespace}:"
        self._retry_for = retry_for
        self._auto_reap_ms = int(auto_reap * 1000)
        self._errors = redis.exceptions
        self._retry_tokens: dict[str, str] = {}
        self._reap_warned = -1e9
        # Behind a server: which manager connections each worker's calls arrived on, so the
        # last one closing requeues its tasks at once (see Broker.connection_closed).
        self.connection_key: Callable[[], str | None] = lambda: None
        self._conns_lock = threading.Lock()
        self._conn_workers: dict[str, str] = {}
        self._worker_conns: dict[str, set[str]] = {}
        try:
            self._redis = redis.Redis.from_url(
                self._url, socket_connect_timeout=connect_timeout, socket_timeout=30.0,
                retry=Retry(NoBackoff(), 0), health_check_interval=0)
        except ValueError as exc:
            raise ServerUnavailable(f"The Redis URL {self.where} is not valid: {exc}.") from None
        self._scripts = {name: self._redis.register_script(src)
                         for name, src in SCRIPTS.items()}
        self._waker = _Waker(self._redis, self._key("wake"))
        self._results = _Waker(self._redis, self._key("done"))  # results arrived
        self._pokes: set[str] = set()
        self.classic_results = RedisClassicResults(self)
        given = {"lease_timeout": lease_timeout, "max_attempts": max_attempts,
                 "default_task": default_task, "keep_done": keep_done,
                 "keep_failed": keep_failed, "keep_cancelled": keep_cancelled,
                 "keep_jobs": keep_jobs, "max_payload": max_payload,
                 "task_timeout": task_timeout}
        defaults = DEFAULTS.as_kwargs()
        defaults["task_timeout"] = defaults["task_timeout"] or 0  # 0: no limit (Redis has no None)
        args: list[Any] = []
        for k, v in given.items():
            if v is not None:
                args += [k, v]
        args.append("--")
        for k, v in defaults.items():
            args += [k, v]
        try:
            self._config = self._decode_config(self._eval("init", args, retry_for=0.0))
        except self._errors.ResponseError as exc:
            if "guidist layout" not in str(exc):
                raise
            raise GuidistError(
                f"Redis at {self.where} holds guidist data in an older layout under "
                f"'{self._prefix}' (written by an earlier guidist version): finish or "
                f"drop it (redis-cli --scan --pattern '{self._prefix}*' | xargs redis-cli del), "
                f"or use another database or namespace.") from None

    # ------------------------------------------------------------------ plumbing

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _decode_config(self, flat: list) -> dict[str, str]:
        return {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}

    @property
    def lease_timeout(self) -> float:
        """Seconds without a heartbeat before a worker's leases are requeued."""
        return float(self._config.get("lease_timeout", DEFAULTS.lease_timeout))

    @property
    def max_attempts(self) -> int:
        """Lease expiries before a task is dead."""
        return int(float(self._config.get("max_attempts", DEFAULTS.max_attempts)))

    @property
    def max_payload(self) -> int:
        """Largest task argument or result, in bytes (workers learn it when registering)."""
        return int(float(self._config.get("max_payload", DEFAULTS.max_payload)))

    @property
    def task_timeout(self) -> float | None:
        """Seconds a task may run before its worker fails it (None: no limit)."""
        value = float(self._config.get("task_timeout") or 0)
        return value if value > 0 else None

    @property
    def default_task(self) -> str:
        """The task a bare (classic) payload runs with."""
        return self._config.get("default_task", DEFAULTS.default_task)

    def _now_arg(self) -> str:
        return "" if self._clock is None else repr(float(self._clock()))

    def _retrying(self, fn: Callable[[], Any], retry_for: float | None = None) -> Any:
        """Run fn, retrying connection failures (Redis restarting) for up to retry_for s."""
        errors = self._errors
        limit = self._retry_for if retry_for is None else retry_for
        start = time.monotonic()
        delay = 0.05
        while True:
            try:
                return fn()
            except errors.AuthenticationError:
                raise AuthenticationFailed(
                    f"Redis at {self.where} refused the credentials: put the password in the URL "
                    f"(redis://:PASSWORD@HOST:PORT/DB, or USER:PASSWORD@ with an ACL user) or in "
                    f"{REDIS_URL_ENV}.") from None
            except errors.ResponseError as exc:
                if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                    raise AuthenticationFailed(
                        f"Redis at {self.where} needs a password: put it in the URL "
                        f"(redis://:PASSWORD@HOST:PORT/DB) or in {REDIS_URL_ENV}.") from None
                raise
            except (errors.ConnectionError, errors.TimeoutError, OSError) as exc:
                if time.monotonic() - start >= limit:
                    raise ServerUnavailable(
                        f"Cannot reach Redis at {self.where} ({type(exc).__name__}: "
                        f"{_first_line(exc)}): start redis-server there, or check the URL "
                        f"(--backend, --redis or {REDIS_URL_ENV}).") from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _eval(self, name: str, args: list[Any], retry_for: float | None = None) -> Any:
        argv = [self._prefix, self._now_arg(), *args]
        script = self._scripts[name]
        return self._retrying(lambda: script(keys=[], args=argv), retry_for)

    def ping(self) -> None:
        """Check that Redis answers; raises ServerUnavailable or AuthenticationFailed."""
        self._retrying(self._redis.ping, retry_for=0.0)

    def close(self) -> None:
        """Stop the wake-up listeners and close the connections."""
        self._waker.close()
        self._results.close()
        try:
            self._redis.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ submission

    def submit(self, function: str, args_list: list, kwargs: dict | None = None,
               classic: bool = False, job: int | str | None = None,
               timeout: float | None = None) -> tuple[int, int]:
        """Queue one task per argument tuple; returns (first_id, count), ids are consecutive.

        job is the id or the name of the job they join (a new name makes a new job); without
        one they go to a job named after the function and the time. timeout is how long each
        may run (None: the deployment's task_timeout).
        """
        args_list, _size = unpack_submission(function, args_list, kwargs, self.max_payload)
        timeout = check_timeout(timeout)
        n = len(args_list)
        if n == 0:
            last = self._retrying(lambda: self._redis.get(self._key("seq:task")))
            return (int(last or 0) + 1, 0)
        kw = pickle.dumps(kwargs, _PICKLE) if kwargs else b""
        args: list[Any] = [uuid.uuid4().hex, self._job_ref(job, function), function, kw,
                           "1" if classic else "b", n, "" if timeout is None else repr(timeout)]
        dumps = pickle.dumps
        if classic:  # each task also carries the tutorial's "n * n = " prefix (or "")
            for a in args_list:
                args += [dumps(a, _PICKLE), classic_prefix(function, a) or ""]
        else:  # packed: the pickles end to end and where each ends (see scripts.SUBMIT)
            blobs = [dumps(a, _PICKLE) for a in args_list]
            args += [b"".join(blobs), struct.pack(f"<{n}I", *accumulate(map(len, blobs)))]
        first = int(self._job_call("submit", args))
        return (first, n)

    # ------------------------------------------------------------------ jobs

    def _job_ref(self, job: int | str | None, function: str) -> str:
        """'#id' for an id, the name for a name (checked), or a name made for nobody's job."""
        if isinstance(job, int):
            return f"#{job}"
        if job is None or not str(job).strip():
            return auto_job_name(function or "job", self._clock() if self._clock else time.time())
        return check_job_name(job)

    def _job_call(self, name: str, args: list) -> Any:
        """A script that opens a job: its "no job with id" error is a ValueError, as in memory."""
        try:
            return self._eval(name, args)
        except self._errors.ResponseError as exc:
            if "no job with id" in str(exc):
                raise ValueError(_first_line(exc).split("script: ")[-1]) from None
            raise

    def open_job(self, name: str | None = None, function: str = "") -> Job:
        """The job with this name, made if there is none (named after function and the time
        when name is empty)."""
        return _job(self._job_call("open_job", [self._job_ref(name, function)]))

    def job(self, ref: int | str) -> Job | None:
        """One job by id or name (a name made of digits is tried as a name first)."""
        info = self._eval("job", [f"#{ref}" if isinstance(ref, int) else str(ref).strip()])
        return _job(info) if info else None

    def jobs(self) -> tuple[Job, ...]:
        """Every job kept (those with tasks left, and the newest finished ones), newest first."""
        return tuple(_job(j) for j in self._eval("jobs", []))

    def _job_ids(self, ref: int | str) -> Iterator[list[int]]:
        job = self.job(ref)
        if job is None:
            return
        ids = [i for first, n in job.ranges for i in range(first, first + n)]
        for i in range(0, len(ids), _CHUNK):
            yield ids[i:i + _CHUNK]

    def cancel_job(self, ref: int | str) -> int:
        """Cancel every queued task of a job; returns how many were."""
        # The cancel script checks each id is still queued, so walking the job's id runs in
        # chunks is exact, and no script holds Redis for long.
        return sum(int(self._eval("cancel", chunk)) for chunk in self._job_ids(ref))

    def retry_job(self, ref: int | str) -> int:
        """Queue a job's failed and dead tasks again (those still kept)."""
        return sum(int(self._eval("retry", chunk)) for chunk in self._job_ids(ref))

    # ------------------------------------------------------------------ workers

    def register_worker(self, name: str, host: str, pid: int, mode: str = "inline",
                        concurrency: int = 1, kind: str = "guidist",
                        functions: list[str] | None = None,
                        address: str = "") -> dict[str, Any]:
        """Add a worker; returns its id (sent with every later call) and the lease timeout.

        With functions, the worker only ever claims tasks of those functions; address is the
        IP it connects from."""
        wid, lease, default = self._eval("register", [uuid.uuid4().hex, name, host, int(pid),
                                                      mode, int(concurrency), kind,
                                                      ",".join(functions or ()),
                                                      str(address or "")])
        self._bind(_s(wid))
        self._config["lease_timeout"] = _s(lease)
        self._config["default_task"] = _s(default)
        return {"id": _s(wid), "lease_timeout": float(lease), "default_task": _s(default),
                "max_payload": self.max_payload, "task_timeout": self.task_timeout}

    def heartbeat(self, worker_id: str, current_task: int | list[int] | None = None,
                  resources: tuple | None = None) -> str:
        """Renew every lease the worker holds; returns 'ok', 'stop', 'give-back' or 'unknown'.

        current_task is what the worker runs now (an id or a list of ids): running from now;
        resources its (cpu_percent, rss_bytes).
        """
        self._bind(worker_id)
        running = ",".join(str(i) for i in running_ids(current_task))
        extra = [] if not resources else [repr(float(resources[0])), int(resources[1])]
        return _s(self._eval("heartbeat", [worker_id, running, *extra]))

    def unregister_worker(self, worker_id: str) -> int:
        """A worker leaves cleanly: its unfinished leases go back to the queue uncounted."""
        self._retry_tokens.pop(worker_id, None)
        with self._conns_lock:
            for key in self._worker_conns.pop(worker_id, ()):
                self._conn_workers.pop(key, None)
        return int(self._eval("unregister", [worker_id]))

    def _bind(self, worker_id: str) -> None:
        """Remember that the worker talks on the current connection (behind a server only)."""
        key = self.connection_key()
        if key is None:
            return
        with self._conns_lock:
            old = self._conn_workers.get(key)
            if old == worker_id:
                return
            if old is not None:  # a worker that registered again on the same connection
                self._worker_conns.get(old, set()).discard(key)
            self._conn_workers[key] = worker_id
            self._worker_conns.setdefault(worker_id, set()).add(key)

    def release(self, worker_id: str, ids: list[int] | None = None) -> int:
        """Give leased tasks back without counting an attempt (the worker is stopping)."""
        if ids is None:
            return int(self._eval("release", [worker_id, "all"]))
        return int(self._eval("release", [worker_id, "ids", *(int(i) for i in ids)]))

    def request_stop(self, worker_ids: Iterable[str]) -> int:
        """Ask workers to finish their batch and leave; they hear it on their next heartbeat."""
        ids = list(worker_ids)
        return int(self._eval("request_stop", ids)) if ids else 0

    def forget_offline(self) -> int:
        """Drop offline workers from the list."""
        return int(self._eval("forget_offline", []))

    def workers(self) -> tuple[WorkerInfo, ...]:
        """Every known worker, offline ones included."""
        return tuple(_worker_info(w) for w in self._eval("workers", []))

    # ------------------------------------------------------------------ dispatch

    def claim(self, worker_id: str, max_n: int, wait_s: float = 0.0) -> list[ClaimGroup]:
        """Lease up to max_n tasks, waiting up to wait_s for the first one to appear."""
        return self.exchange(worker_id, None, max_n, wait_s)[1]

    def complete(self, worker_id: str, results: list[ResultItem],
                 report: dict | None = None) -> int:
        """Store a batch of results; returns how many were accepted (late duplicates are not).

        report: the worker's run statistics (``runstats``), merged by the report script."""
        if report:
            self._report(worker_id, report)
        payload = encode_packed(unpack(results))
        if len(payload) == 1:
            return 0
        return int(self._eval("complete", [worker_id, *payload]))

    def exchange(self, worker_id: str, results: list[ResultItem] | None, max_n: int,
                 wait_s: float = 0.0, running: list[int] | None = None,
                 limits: dict[str, int] | None = None,
                 report: dict | None = None) -> tuple[str, list[ClaimGroup]]:
        """Report results and claim the next batch in one round trip: (command, groups).

        running, limits and report as in the in-memory ``Broker.exchange``; so is
        'give-back'. A report (a few times a second at most) costs one more script call.
        """
        self._bind(worker_id)
        if report:
            self._report(worker_id, report)
        payload = encode_packed(unpack(results))
        started = ",".join(str(int(i)) for i in running or ())
        sizes = "" if limits is None else json.dumps({str(f): max(1, int(n))
                                                      for f, n in limits.items()})
        ask = "1" if wait_s > 0 else "0"
        # A call that failed before its reply arrived is repeated with its token, so the
        # script hands back what that call leased instead of leasing more to nobody.
        token = self._retry_tokens.pop(worker_id, None) or uuid.uuid4().hex
        deadline = time.monotonic() + max(wait_s, 0.0)
        while True:
            seen = self._waker.generation
            try:
                reply = self._eval("exchange", [worker_id, int(max_n), token,
                                                self._auto_reap_ms, started, sizes, ask,
                                                *payload])
            except ServerUnavailable:
                self._retry_tokens[worker_id] = token
                raise
            # Reported once; a long poll's later tries only claim (and ask only once).
            payload, started, ask = [0], "", "0"
            cmd = _s(reply[0])
            groups = [_group(g) for g in reply[2:]]
            if groups or cmd != CMD_OK or wait_s <= 0:
                return cmd, groups
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return cmd, groups
            self._waker.wait(seen, min(remaining, 1.0))
            token = uuid.uuid4().hex

    def _report(self, worker_id: str, report: dict) -> None:
        """Merge a worker's run statistics into P:fstats and add its spans to P:spans."""
        functions = [[str(f), int(done), int(failed),
                      [x for b, n in dict(buckets).items() for x in (int(b), int(n))],
                      float(total), float(top)]
                     for f, done, failed, buckets, total, top in report.get("functions") or ()]
        spans = [list(sp) for sp in report.get("spans") or ()]
        self._eval("report", [worker_id, json.dumps({"f": functions, "s": spans})])

    # ------------------------------------------------------------------ leases

    def reap(self) -> int:
        """Requeue the leases of workers whose heartbeat stopped; returns tasks requeued.

        Reaping is periodic, so while Redis is unreachable this returns 0 at once (with a
        warning now and then) instead of holding up the server's reaper loop.
        """
        try:
            return int(self._eval("reap", [], retry_for=0.5))
        except ServerUnavailable as exc:
            now = time.monotonic()
            if now - self._reap_warned > 30:
                self._reap_warned = now
                log.warning("reaping skipped: %s", exc)
            return 0

    # ------------------------------------------------------------------ control

    def pause(self) -> None:
        """Stop handing out tasks; workers keep polling."""
        self._eval("pause", ["1"])

    def resume(self) -> None:
        """Hand out tasks again."""
        self._eval("pause", ["0"])

    def cancel(self, ids: Iterable[int]) -> int:
        """Cancel queued tasks by id; running or finished ones are left alone."""
        ids = [int(i) for i in ids]
        return sum(int(self._eval("cancel", ids[i:i + _CHUNK]))
                   for i in range(0, len(ids), _CHUNK))

    def purge(self) -> int:
        """Cancel everything that is queued (now: tasks submitted meanwhile are kept)."""
        maxid = int(self._retrying(lambda: self._redis.get(self._key("seq:task"))) or 0)
        total = 0
        while True:
            n, finished = self._eval("purge", [maxid, _CHUNK, total])
            total += int(n)
            if int(finished):
                return total

    def retry(self, ids: Iterable[int]) -> int:
        """Queue failed or dead tasks again, with a fresh attempt count."""
        ids = [int(i) for i in ids]
        return sum(int(self._eval("retry", ids[i:i + _CHUNK]))
                   for i in range(0, len(ids), _CHUNK))

    def retry_all(self) -> int:
        """Retry every failed and dead task still kept."""
        def read() -> list:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zrange(self._key("fin:failed"), 0, -1)
            pipe.zrange(self._key("fin:dead"), 0, -1)
            return pipe.execute()

        failed, dead = self._retrying(read)
        return self.retry([int(i) for i in failed] + [int(i) for i in dead])

    # ------------------------------------------------------------------ monitoring

    def snapshot(self, series_since: int = 0, events_since: int = 0,
                 spans_since: Any = None) -> Snapshot:
        """Counts, workers, and the series points and events after the caller's cursors;
        with spans_since (0, then the last spans_cursor), the task-stream spans after it."""
        (now, counters, queued, running, paused, series, last10, events, workers, started,
         classic_len, default, claimed, jobs) = self._eval(
            "snapshot", [int(series_since), int(events_since), SNAPSHOT_JOBS])
        c = self._decode_config(counters)
        counts = {s.value: int(c.get(s.value, 0)) for s in TaskState}
        counts[TaskState.QUEUED.value] = int(queued)
        counts[TaskState.CLAIMED.value] = int(claimed)
        counts[TaskState.RUNNING.value] = int(running)
        recent = [_point(p) for p in last10]
        return Snapshot(
            time=float(now),
            counts=counts,
            submitted=int(c.get("submitted", 0)),
            requeued=int(c.get("requeued", 0)),
            paused=bool(int(paused)),
            throughput=throughput(recent),
            workers=tuple(_worker_info(w) for w in workers),
            series=tuple(_point(p) for p in reversed(series)),
            events=tuple(_event(e) for e in reversed(events)),
            default_task=_s(default),
            started=float(started),
            extra={"ignored_late": int(c.get("ignored_late", 0)),
                   "classic_results": int(classic_len), "backend": self.where},
            jobs=tuple(_job(j) for j in jobs),
            functions=self._function_stats(),
            **self._spans_after(spans_since, float(now)),
        )

    def _function_stats(self) -> tuple[FunctionStats, ...]:
        """The per-function statistics workers reported (P:fstats)."""
        flat = self._retrying(lambda: self._redis.hgetall(self._key("fstats")))
        table: dict[str, list] = {}
        for field, value in flat.items():
            name, _, part = _s(field).rpartition("|")
            e = table.setdefault(name, [0, 0, histogram.empty_counts(), 0.0, 0.0])
            v = _s(value)
            if part == "done":
                e[0] = int(v)
            elif part == "failed":
                e[1] = int(v)
            elif part == "sum":
                e[3] = float(v)
            elif part == "max":
                e[4] = float(v)
            elif part.startswith("b") and part[1:].isdigit() and int(part[1:]) < len(e[2]):
                e[2][int(part[1:])] = int(v)
        return tuple(FunctionStats(f, e[0], e[1], tuple(e[2]), e[3], e[4])
                     for f, e in sorted(table.items()))

    def _spans_after(self, cursor: Any, now: float) -> dict[str, Any]:
        """The snapshot's spans after a stream id (the newest few hundred reports at first)."""
        if cursor is None:
            return {}
        key = self._key("spans")
        start = str(cursor)
        if start in ("", "0") or "-" not in start:
            entries = list(reversed(self._retrying(
                lambda: self._redis.xrevrange(key, "+", "-", count=_SPAN_REPORTS))))
        else:
            entries = self._retrying(
                lambda: self._redis.xrange(key, "(" + start, "+", count=_SPAN_REPORTS))
        cutoff = now - STREAM_SECONDS
        spans = []
        last = start
        for entry_id, fields in entries:
            last = _s(entry_id)
            worker = _s(fields.get(b"w", b""))
            for sp in json.loads(fields.get(b"s", b"[]")):
                if len(sp) == 6 and float(sp[3]) >= cutoff:
                    spans.append((0, worker, *sp))
        return {"spans": tuple(spans), "spans_cursor": last if last not in ("", "0") else "0"}

    def get_task(self, task_id: int) -> Task | None:
        """One task by id, wherever it is; None if unknown or no longer kept (a finished
        task is kept until keep_done / keep_failed / keep_cancelled newer ones finished)."""
        return self.get_tasks([task_id])[0]

    def get_tasks(self, ids: Iterable[int]) -> list[Task | None]:
        """Several tasks by id in one round trip (at most 10,000), None for those unknown."""
        ids = [int(i) for i in ids][:10_000]
        out: list[Task | None] = []
        for i in range(0, len(ids), _TASKS_PER_CALL):
            part = ids[i:i + _TASKS_PER_CALL]
            reply = self._eval("tasks", part)
            calls = _calls(reply[len(part)])
            for tid, flat in zip(part, reply):
                h = {flat[j]: flat[j + 1] for j in range(0, len(flat), 2)}
                out.append(_task(tid, h, calls) if h else None)
        return out

    # ------------------------------------------------------------------ results for callers

    def result_cursor(self) -> int:
        """The sequence number of the newest result: wait_results from here sees what follows."""
        return int(self._retrying(lambda: self._redis.hget(self._key("c"), "result_seq")) or 0)

    def wait_results(self, cursor: int, jobs: list[int], timeout: float = 30.0,
                     token: str = "", limit: int = 10_000) -> tuple[int, list[tuple], bool]:
        """Block until a task of one of these jobs finishes after cursor; one round trip
        returns every such result there is: (new cursor, outcomes, gap). As in memory; the
        scan runs in Redis, over the finished sets after cursor (see scripts.RESULTS)."""
        deadline = time.monotonic() + max(0.0, min(float(timeout), 60.0))
        while True:  # a poke that came first is kept: it may be for this call (see memory)
            seen = self._results.generation
            new, rows, gap, blobs = self._eval("results", [int(cursor), int(limit),
                                                           *(int(j) for j in jobs)])
            cursor = int(new)
            calls = _calls(blobs)
            out = [(int(row[0]), _s(row[1]),
                    *_outcome(_record(row[2]) if len(row) < 5
                              else calls[int(row[3])].record(int(row[4]))))
                   for row in rows]
            remaining = deadline - time.monotonic()
            if out or int(gap) or remaining <= 0 or token in self._pokes:
                self._pokes.discard(token)
                return cursor, out, bool(int(gap))
            self._results.wait(seen, min(remaining, 1.0))

    def poke(self, token: str) -> None:
        """Wake the wait_results call made with this token (in this process)."""
        if len(self._pokes) > 10_000:
            self._pokes.clear()
        self._pokes.add(token)
        self._results.nudge()

    def define_function(self, name: str, blob: bytes) -> None:
        """Keep a task function sent by value (cloudpickled; never loaded here)."""
        if not is_by_value(name) or not isinstance(blob, bytes):
            raise ValueError("a function sent by value needs a name with '#' and its bytes")
        if len(blob) > self.max_payload:
            raise ValueError(f"the function {name} is {len(blob)} bytes, over the limit")
        self._retrying(lambda: self._redis.set(self._key(f"fn:{name}"), blob, nx=True))

    def get_function(self, name: str) -> bytes | None:
        """The bytes of a task function sent by value, for a worker about to run it."""
        return self._retrying(lambda: self._redis.get(self._key(f"fn:{name}")))

    def _segments(self, states: list[TaskState],
                  merge_finished: bool = True) -> list[tuple[str, tuple[str, ...], int, bool]]:
        """(what, keys, size, newest_first) per part of the listing, in order: one sorted set,
        or (with merge_finished) every finished state's set merged by result sequence."""
        def read() -> tuple[list, list]:
            lanes = sorted(_s(x) for x in self._redis.smembers(self._key("lanes")))
            keys: list[tuple[TaskState, str, bool]] = []
            for s in states:
                if s is TaskState.RUNNING or s is TaskState.CLAIMED:
                    keys.append((s, self._key(s.value), True))
                elif s is TaskState.QUEUED:
                    keys.extend((s, self._key(f"q:{f}"), False) for f in lanes)
                else:
                    keys.append((s, self._key(f"fin:{s.value}"), True))
            pipe = self._redis.pipeline(transaction=False)
            for s, key, _ in keys:
                if s is TaskState.RUNNING:
                    pipe.scard(key)  # a plain set: listed by id, newest first
                elif s is TaskState.CLAIMED:  # the leased (P:nl) less the running
                    pipe.eval("return (tonumber(redis.call('GET', KEYS[1])) or 0) - "
                              "redis.call('SCARD', KEYS[2])", 2, self._key("nl"),
                              self._key("running"))
                elif s is TaskState.DONE:
                    pipe.get(self._key("dn"))  # the tasks its list holds (P:fin:done)
                elif s is TaskState.QUEUED:  # a zset of segments: its tasks are counted
                    pipe.hget(self._key("qn"), key[len(self._key("q:")):])
                else:
                    pipe.zcard(key)
            return keys, pipe.execute()

        keys, sizes = self._retrying(read)
        sizes = [int(n or 0) for n in sizes]
        finished = [(key, int(n)) for (s, key, _), n in zip(keys, sizes) if s.finished]
        out: list[tuple[str, tuple[str, ...], int, bool]] = []
        for (s, key, rev), n in zip(keys, sizes):
            if s.finished and merge_finished and len(finished) > 1:
                if not any(what == "merged" for what, _, _, _ in out):
                    out.append(("merged", tuple(k for k, _ in finished),
                                sum(m for _, m in finished), True))
                continue
            kind = ("leased" if s in _LEASED else "done" if s is TaskState.DONE
                    else "lane" if s is TaskState.QUEUED else "set")
            out.append((kind, (key,), int(n), rev))
        return out

    def task_orders(self) -> tuple[str, ...]:
        """The keys list_tasks can sort by."""
        return _TASK_ORDERS

    def _fetch(self, ids: list[int]) -> list[Task]:
        return [t for t in self.get_tasks(ids) if t is not None]

    def _ids(self, key: str, start: int, count: int, newest_first: bool) -> list[int]:
        if count <= 0:
            return []
        end = start + count - 1
        fn = self._redis.zrevrange if newest_first else self._redis.zrange
        return [int(x) for x in self._retrying(lambda: fn(key, start, end))]

    def _leased_ids(self, key: str) -> Iterable[int]:
        """The ids running (key P:running) or claimed: every lease slice's ids (P:ls) less
        the running ones."""
        def read() -> tuple[list, set]:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zrange(self._key("ls"), 0, -1)
            pipe.smembers(self._key("running"))
            slices, running = pipe.execute()
            return slices, {int(x) for x in running}

        slices, running = self._retrying(read)
        if key == self._key("running"):
            return running
        ids: list[int] = []
        for m in slices:
            a, b, _ = m.split(b":", 2)
            ids.extend(i for i in range(int(a), int(b) + 1) if i not in running)
        return ids

    def _lane_ids(self, key: str, start: int, count: int) -> list[int]:
        """Ids start..start+count-1 of a lane in claim order (its members are segments
        "<a>:<b>", see scripts)."""
        ids: list[int] = []
        pos, skip = 0, start
        while count > 0 and len(ids) < count:
            members = self._retrying(partial(self._redis.zrange, key, pos, pos + 255))
            for m in members:
                a, _, b = m.partition(b":")
                lo, hi = int(a), int(b)
                size = hi - lo + 1
                if skip >= size:
                    skip -= size
                    continue
                lo += skip
                skip = 0
                ids.extend(range(lo, min(hi, lo + count - len(ids) - 1) + 1))
                if len(ids) >= count:
                    break
            if len(members) < 256:
                break
            pos += 256
        return ids

    def _part_ids(self, part: tuple[str, tuple[str, ...], int, bool], start: int,
                  count: int) -> list[int]:
        what, keys, _, rev = part
        if what == "set":
            return self._ids(keys[0], start, count, rev)
        if what == "lane":
            return self._lane_ids(keys[0], start, count)
        if what == "done":
            return [tid for _, tid in reversed(self._done_rows(start, count))]
        if what == "leased":
            if count <= 0:
                return []
            return sorted(self._leased_ids(keys[0]), reverse=True)[start:start + count]
        if count <= 0:
            return []
        if start + count <= _LAZY_MERGE_DEPTH:
            # Near the top: the first start+count of each set, merged by sequence (unique
            # across the finished sets), latest first.
            done = self._key(f"fin:{TaskState.DONE.value}")

            def read() -> list:
                pipe = self._redis.pipeline(transaction=False)
                for key in keys:
                    if key != done:
                        pipe.zrevrange(key, 0, start + count - 1, withscores=True)
                return pipe.execute()

            rows = [(seq, int(m)) for part_ in self._retrying(read) for m, seq in part_]
            if done in keys:
                rows.extend(self._done_rows(0, start + count))
            rows.sort(reverse=True)
            return [tid for _, tid in rows[start:start + count]]
        # Deeper: one union of the sets, kept for a second so the pages of a screen share it.
        states = [k.rsplit(":", 1)[1] for k in keys]
        return [int(x) for x in self._eval("finished_union",
                                           [start, start + count - 1, *states])]

    def _done_rows(self, start: int, count: int) -> list[tuple[float, int]]:
        """(seq, id) of the done tasks ranked start.. start+count-1 from the newest, oldest
        first (P:fin:done is a list in result order, see scripts.DONE_ROWS)."""
        if count <= 0:
            return []
        flat = self._eval("done_rows", [int(start), int(count)])
        return [(float(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    def list_tasks(self, state: TaskState | str | None = None, offset: int = 0, limit: int = 100,
                   search: str | None = None, order: str | None = None,
                   job: int | str | None = None) -> TaskPage:
        """A page of tasks, newest activity first: running, claimed, finished (latest first,
        whatever the state), then queued in the order they will run; order "state" or
        "-state" arranges the states (the only order this backend sorts by). With job, only
        that job's tasks (a bounded scan, like a search)."""
        limit = max(0, min(int(limit), 10_000))
        offset = max(0, int(offset))
        key, desc = parse_order(order)
        if key not in (None, *_TASK_ORDERS):
            raise ValueError(f"the Redis backend cannot sort tasks by {key}; it sorts by "
                             f"{', '.join(_TASK_ORDERS)}")
        states = [TaskState(state)] if state else list(_ORDER)
        if key == "state":
            states = sorted(states, key=list(TaskState).index, reverse=desc)
        segments = self._segments(states, merge_finished=key is None)
        if job is not None:
            found = self.job(job)
            if found is None:
                return TaskPage(0, offset, ())
            return self._search(segments, (search or "").strip().lower(), offset, limit,
                                found.id)
        if search:
            return self._search(segments, search.strip().lower(), offset, limit)
        total = sum(size for _, _, size, _ in segments)
        ids: list[int] = []
        skip = offset
        for part in segments:
            size = part[2]
            if len(ids) >= limit:
                break
            if skip >= size:
                skip -= size
                continue
            ids.extend(self._part_ids(part, skip, min(limit - len(ids), size - skip)))
            skip = 0
        return TaskPage(total, offset, tuple(self._fetch(ids)), self._not_held(states))

    def _not_held(self, states: list[TaskState]) -> int:
        """Finished tasks of states that are counted but no longer kept (past keep_*)."""
        finished = [s for s in states if s.finished]
        if not finished:
            return 0

        def read() -> list:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hmget(self._key("c"), [s.value for s in finished])
            for s in finished:
                key = self._key(f"fin:{s.value}")
                pipe.get(self._key("dn")) if s is TaskState.DONE else pipe.zcard(key)
            return pipe.execute()

        counted, *held = self._retrying(read)
        return sum(max(0, int(c or 0) - int(h or 0)) for c, h in zip(counted, held))

    def _iter_segment_tasks(self, segments: list) -> Iterator[Task]:
        for part in segments:
            for start in range(0, part[2], 1000):
                yield from self._fetch(self._part_ids(part, start, 1000))

    def _search(self, segments: list, needle: str, offset: int, limit: int,
                job: int | None = None) -> TaskPage:
        """Substring search over id, function, args, result and error, within one job when
        given; scans a bounded number."""
        matches: list[Task] = []
        for scanned, t in enumerate(self._iter_segment_tasks(segments), 1):
            if scanned > _SEARCH_SCAN_LIMIT:
                break
            if job is not None and t.job != job:
                continue
            hay = f"{t.id} {t.function} {t.args!r} {t.result!r} {t.error or ''}".lower()
            if needle in hay:
                matches.append(t)
        return TaskPage(len(matches), offset, tuple(matches[offset:offset + limit]))

    def results_since(self, cursor: int, limit: int = 1000) -> tuple[int, list[Task]]:
        """Tasks finished after cursor (a result sequence number), oldest first: (cursor, tasks)."""
        limit = max(int(limit), 0)

        # The finished sets merged by result sequence, oldest first, in one script
        flat = self._eval("finished_since", [int(cursor), limit])
        rows = [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]
        if not rows:
            return cursor, []
        return rows[-1][0], self._fetch([tid for _, tid in rows])

    def queued_count(self) -> int:
        """Tasks waiting to be claimed."""
        return int(self._eval("queued_count", []))

    def events(self, since: int = 0) -> list[Event]:
        """Events after a sequence number."""
        rows = self._retrying(lambda: self._redis.zrangebyscore(
            self._key("events"), f"({int(since)}", "+inf"))
        return [_event(e) for e in rows]

    # ------------------------------------------------------------------ classic facade

    def classic_get(self, conn_key: str, block: bool = True, timeout: float | None = None) -> Any:
        """Hand one default-task payload to a tutorial-style worker, or raise queue.Empty."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        wid = f"classic:{conn_key}"
        token = self._retry_tokens.pop(wid, None) or uuid.uuid4().hex
        while True:
            seen = self._waker.generation
            try:
                reply = self._eval("classic_get", [conn_key, token])
            except ServerUnavailable:
                self._retry_tokens[wid] = token
                raise
            if reply:
                args = _loads(reply[0], "argument")
                kwargs = _loads(reply[1]) if reply[1] else None
                return args[0] if len(args) == 1 and not kwargs else args
            if not block:
                raise queue.Empty
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise queue.Empty
            self._waker.wait(seen, min(remaining, 1.0))
            token = uuid.uuid4().hex

    def classic_put_result(self, conn_key: str, value: Any) -> None:
        """A tutorial-style worker reports: it completes the oldest task its connection holds."""
        self._eval("classic_put", [conn_key, *encode_results([(0, True, value)])])

    def connection_closed(self, conn_key: str) -> None:
        """A manager connection ended: a classic worker on it is gone, and so is a guidist
        worker whose last connection it was; either way their tasks are requeued at once."""
        with self._conns_lock:
            wid = self._conn_workers.pop(conn_key, None)
            conns = self._worker_conns.get(wid, set()) if wid is not None else None
            last = conns is not None and conn_key in conns and len(conns) == 1
            if conns is not None:
                conns.discard(conn_key)
                if not conns:
                    self._worker_conns.pop(wid, None)  # type: ignore[arg-type]
        if last:
            self._eval("expire_worker", [wid, "its connection closed"])
        self._eval("connection_closed", [conn_key])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _group(g: list) -> ClaimGroup:
    fn, kw, ids, args, *rest = g
    to = rest[0] if rest else None
    if len(rest) > 1 and rest[1]:  # runs of a packed batch: (pickles, their ends, base)
        values: list = []
        loads = pickle.loads
        for blob, ends, base in rest[1]:
            b0 = int(base)
            offs = [e - b0 for e in struct.unpack(f"<{len(ends) // 4}I", ends)]
            starts = [0, *offs[:-1]]
            try:
                values += [loads(blob[a:b]) for a, b in zip(starts, offs)]
            except Exception:  # one that cannot be unpickled here: each says so by itself
                values += [_loads(blob[a:b], "argument") for a, b in zip(starts, offs)]
    else:
        values = [_loads(a, "argument") for a in args]
    return claim_group(_s(fn), _loads(kw) if kw else None, [int(i) for i in ids], values,
                       float(to) if to else None)


def _point(member: bytes) -> tuple:
    values = [int(float(x)) for x in _s(member).split(",")]
    values += [0] * (len(SERIES_FIELDS) - len(values))  # points stored before a field existed
    return tuple(values)


def _event(member: bytes) -> Event:
    seq, when, kind, message = json.loads(member)
    return Event(int(seq), float(when), str(kind), str(message))


def _worker_info(w: list) -> WorkerInfo:
    (wid, name, host, pid, kind, mode, conc, state, joined, seen, cur, done, failed, held,
     first, fns, addr, nrun, cpu, rss) = w
    st = WorkerState(_s(state))
    held = int(held)
    running = min(int(nrun or 0), held)
    if st is WorkerState.IDLE and held:
        st = WorkerState.BUSY
    current = int(cur) if cur else (int(first) if first else None)
    return WorkerInfo(_s(wid), _s(name), _s(host), int(pid or 0), _s(kind), _s(mode),
                      int(conc or 1), st, float(joined or 0), float(seen or 0), current, running,
                      int(done or 0), int(failed or 0),
                      tuple(sorted(f for f in _s(fns).split(",") if f)), address=_s(addr),
                      claimed=held - running, cpu_percent=float(cpu) if cpu else None,
                      rss_bytes=int(rss) if rss else None)


def _job(info: list) -> Job:
    jid, name, fns = info[:3]
    counts = dict(zip(JOB_STATES, (int(x or 0) for x in info[3:3 + len(JOB_STATES)])))
    sub, started, last, now, runs = info[3 + len(JOB_STATES):]
    ranges = []
    for r in runs:
        first, n = _s(r).split(":")
        ranges.append((int(first), int(n)))
    return Job(int(jid), _s(name), tuple(f for f in _s(fns).split(",") if f),
               submitted=float(sub or 0), started=_opt_float(started),
               last_finished=_opt_float(last), time=float(now), ranges=tuple(ranges), **counts)


class _Record:
    """A finished task's record R<id>: when, by whom, and the result element its worker sent."""

    __slots__ = ("finished", "worker", "ok", "started", "runtime", "body", "exception")

    def __init__(self) -> None:
        self.finished: float | None = None
        self.worker: str | None = None
        self.ok = False
        self.started: float | None = None
        self.runtime: float | None = None
        self.body = b""
        self.exception: bytes | None = None


def _record(blob: bytes | None) -> _Record:
    """Parse "<finished> <len(worker)> <worker>" + the element of encode_results (or nothing)."""
    rec = _Record()
    if not blob:
        return rec
    when, wlen, rest = blob.split(b" ", 2)
    rec.finished = float(when)
    n = int(wlen)
    rec.worker = _s(rest[:n]) or None
    raw = rest[n:]
    if not raw:
        return rec
    _id, ok, elen, timing, xlen, tail = raw.split(b":", 5)
    rec.ok = ok == b"1"
    if timing:
        started, runtime = timing.split(b",")
        rec.started, rec.runtime = float(started), float(runtime)
    skip, exc_len = int(elen), int(xlen)  # the extra (for the classic queue), then the exception
    rec.exception = tail[skip:skip + exc_len] or None
    rec.body = tail[skip + exc_len:]
    return rec


def _outcome(rec: _Record) -> tuple[Any, str | None, bytes | None]:
    """(result, error, exception) of a record, as wait_results returns them."""
    if rec.ok:
        return _loads(rec.body, "result"), None, None
    return None, _s(rec.body) or None, rec.exception


class _Call:
    """One call's done results as stored packed (P:rd:<fs>): who and when, then the blob of
    encode_packed; a record is read out of it by rank."""

    __slots__ = ("finished", "worker", "n", "ends", "times", "base", "blob", "index")

    def __init__(self, blob: bytes, ranks: list | None = None) -> None:
        # ranks: the blob holds only these records of the call, in this order (a big call)
        self.index = {int(r): k for k, r in enumerate(ranks)} if ranks else None
        when, wlen, rest = blob.split(b" ", 2)
        k = int(wlen)
        self.finished = float(when)
        self.worker = _s(rest[:k]) or None
        count, _, self.blob = rest[k + 1:].partition(b" ")
        n = self.n = int(count)
        self.ends = struct.unpack_from(f"<{n}I", self.blob, 0)
        self.times = array("d")
        self.times.frombytes(self.blob[4 * n:20 * n])
        if sys.byteorder != "little":
            self.times.byteswap()
        self.base = 20 * n

    def record(self, rank: int) -> _Record:
        """The record of the call's result number rank."""
        if self.index is not None:
            rank = self.index[rank]
        rec = _Record()
        rec.finished, rec.worker, rec.ok = self.finished, self.worker, True
        started, runtime = self.times[rank], self.times[self.n + rank]
        if started == started:  # NaN: the worker did not measure
            rec.started, rec.runtime = started, runtime
        lo = self.ends[rank - 1] if rank else 0
        rec.body = self.blob[self.base + lo:self.base + self.ends[rank]]
        return rec


def _calls(flat: list) -> dict[int, _Call]:
    """{fs: _Call} from a script's {fs, blob, ranks, ...} (see scripts.call_blobs)."""
    return {int(flat[i]): _Call(flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)
            if flat[i + 1]}


def _task(tid: int, h: dict, calls: dict[int, _Call] | None = None) -> Task:
    kw = h.get(b"k")
    ref = h.get(b"P")
    if ref and calls:
        fs, _, rank = ref.partition(b":")
        rec = calls[int(fs)].record(int(rank))
    else:
        rec = _record(h.get(b"R"))
    result, error, exception = _outcome(rec)
    return Task(
        id=tid,
        function=_s(h.get(b"f")),
        args=_loads(h.get(b"a"), "argument") or (),
        kwargs=_loads(kw) if kw else None,
        state=TaskState(_s(h.get(b"st")) or "queued"),
        attempts=int(h.get(b"n") or 0),
        submitted=float(h.get(b"s") or 0),
        started=rec.started if rec.started is not None else _opt_float(h.get(b"b")),
        finished=rec.finished,
        worker=rec.worker or _s(h.get(b"w")) or None,
        result=result,
        error=error,
        runtime=rec.runtime,
        job=int(h[b"j"]) if h.get(b"j") else None,
        exception=exception,
    )
