"""The worker: claim → run → report, one batch per round trip, with a heartbeat beside it.

Like huey's consumer, the loop does one step at a time and the signal handlers only set a flag.
The batch size adapts to the duration of each task function (about a tenth of a second of work
of that function per claim, capped by ``prefetch``; see ``claims``), so trivial tasks move in
big batches while slow ones, and ones not run yet, are claimed one at a time. The worker tells
the server which tasks it is running with each exchange and heartbeat (a few ids, never a call
per task), and when the server says another worker waits for work (``give-back``) it releases
the tasks it has not started, unless they would be done before another worker could start them.
A short batch runs while the exchange that reports the one before and claims the next is on
its way (``ahead``); what was claimed ahead goes back if the batch at hand turns out slow.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
import inspect
import logging
import os
import pickle
import queue
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import remote
from .ahead import AheadExchange
from .backends.base import DEFAULTS
from .claims import DEFAULT_PREFETCH, ClaimSizer
from .client import Client
from .errors import AuthenticationFailed, ExitCode, GuidistError, RemoteError, ServerUnavailable
from .executors import Executor, default_concurrency, make_executor, timeout_text
from .netinfo import address_towards
from .payload import (
    MAX_PAYLOAD,
    PackedArgs,
    UnreadableArguments,
    floats,
    mib,
    pack,
    pack_results,
    split_by_size,
)
from .pending import PendingResults
from .protocol import (
    CMD_GIVE_BACK,
    CMD_STOP,
    CMD_UNKNOWN,
    DEFAULT_TASK,
    BareArgs,
    classic_result_text,
)
from .resources import ResourceSampler
from .runstats import REPORT_SECONDS, RunStats
from .taskloop import FAST_SECONDS, StopFlag, TaskRun, run_in_runs, run_tasks
from .tasks import TaskNotFound, resolve

log = logging.getLogger(__name__)

# The codes every guidist command uses for the same failures (errors.ExitCode).
EXIT_OK, EXIT_GAVE_UP, EXIT_AUTH = ExitCode.OK, ExitCode.UNAVAILABLE, ExitCode.AUTH
EXIT_STUCK = ExitCode.STUCK
_BATCH_SECONDS = 0.1  # aim for this much work per claim
_REPORT_SECONDS = 0.2  # a batch that runs longer (a slow task in it) reports what is done
#: Inline mode: a batch expected to take at most this long is run while the exchange that
#: reports the one before and claims the next is in flight. Longer batches are not claimed
#: ahead: their round trip is a small share of their time, and idle workers must get them.
_AHEAD_SECONDS = 0.02
_FAILURE_LINES = 20  # failed tasks logged one per line per statistics report, at most
#: Seconds an inline task may overrun its time limit in code no signal interrupts (a long C
#: call) before the worker reports it failed and exits, so its supervisor can restart it.
STUCK_GRACE = 5.0


class TaskTimedOut(BaseException):
    """Raised inside an inline task at its time limit (a BaseException, so that a task's own
    ``except Exception`` cannot swallow it)."""


@dataclass
class WorkerConfig:
    """How a worker connects and behaves."""

    address: tuple[str, int]
    authkey: bytes
    name: str = ""
    prefetch: int = DEFAULT_PREFETCH  # the most tasks one claim may lease
    wait_s: float = 1.0  # how long a claim waits on the server when the queue is empty
    heartbeat_s: float = 5.0  # capped to a quarter of the server's lease timeout
    give_up_after: float = 60.0  # seconds without a server before exiting non-zero
    exit_with_parent: bool = False  # local workers: leave as soon as the launcher is gone
    max_tasks: int | None = None  # exit after this many tasks (tests, recycling)
    mode: str = "inline"  # inline | process | thread | async (see executors.py)
    concurrency: int | None = None  # tasks at once in the concurrent modes (default per mode)
    functions: tuple[str, ...] = ()  # claim only tasks of these functions (empty: all)
    redis_url: str | None = None  # talk to a Redis backend directly (address/authkey unused)


class Worker:
    """A guidist worker process's main object; ``run()`` returns the exit code."""

    def __init__(self, config: WorkerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.name = config.name or f"{socket.gethostname()}-{os.getpid()}"
        self._clock = clock
        self._stop = StopFlag()
        self._client = self._new_client()
        self._id: str | None = None
        # Inline: (ids, k, values) while a run of a group's tasks goes; the task running is
        # ids[k + len(values)], so the loop does not write it down per task.
        self._cursor: tuple[list[int], int, list] | None = None
        self._pending = PendingResults()  # results not yet accepted by a server
        self._functions: dict[str, Callable[..., Any]] = {}
        self._sizer = ClaimSizer(_BATCH_SECONDS, config.prefetch)
        self._give_back = False  # the server asked for the tasks not started (any thread sets)
        self._unreleased: list[int] = []  # given up, not yet known to the server as released
        self._heartbeat_s = config.heartbeat_s
        # The launcher's pid from the pool: getppid() is already 1 if it died during our start.
        self._parent = int(os.environ.get("GUIDIST_PARENT_PID") or os.getppid())
        self._max_payload = MAX_PAYLOAD
        self.mode = config.mode
        self.concurrency = (1 if config.mode == "inline"
                            else config.concurrency or default_concurrency(config.mode))
        self._executor: Executor | None = None
        self._inflight: dict[cf.Future, int] = {}
        self._trouble_since: float | None = None
        self._task_timeout: float | None = None  # the server's default limit per task
        self._deadline: tuple[int, float, float] | None = None  # inline: (id, until, limit)
        self._alarm_armed = False
        self._alarms = False  # SIGALRM usable for inline limits (set by _install_alarm)
        self.processed = 0
        self._stats = RunStats(self.concurrency)
        self._stats_due = 0.0  # monotonic time the next statistics report is due
        self._inflight_fn: dict[cf.Future, str] = {}  # the function of each task in flight
        self.summary = [0, 0, 0.0]  # done, failed, seconds of run time: the exit summary
        self._failures_logged = 0  # since the last report (the rest are only counted)
        self._ahead: AheadExchange | None = None  # inline: the exchange sent, not yet read

    # ------------------------------------------------------------------ lifecycle

    def request_stop(self, *_: Any) -> None:
        """Finish the task at hand, hand back the rest, and exit 0 (safe in a signal handler)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT ask for a graceful stop."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self) -> int:
        """Connect (with back-off), then loop until stopped; returns the process exit code."""
        code = self._connect_or_exit_code()
        if code is not None:
            return code
        if self._stop.is_set():
            return EXIT_OK
        if self._client.kind == "classic":
            return self._run_classic()
        self._install_alarm()
        beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        beat.start()
        self._executor = make_executor(self.mode, self.concurrency)
        try:
            return self._loop()
        finally:
            self._stop.set()
            if self._executor is not None:
                self._executor.shutdown(wait=False)
            beat.join(timeout=2)
            done, failed, seconds = self.summary
            log.info("worker %s stops: %d task(s) done, %d failed, %.1f s of run time",
                     self.name, done, failed, seconds)

    def _loop(self) -> int:
        while not self._stop.is_set():
            if self.config.max_tasks is not None and self.processed >= self.config.max_tasks:
                break
            try:
                if self._ahead is not None:
                    cmd, groups = self._await_ahead()
                else:
                    if self._id is None:
                        self._register()
                        self._unreleased = []  # a new id: the old one's leases are gone anyway
                    elif self._unreleased:
                        self._release_unreleased()
                    # With tasks in flight the claim must not wait on the server: their
                    # results are due back as soon as they finish.
                    cmd, groups = self._call_with_results(
                        "exchange", self._claim_size(),
                        0.0 if self._inflight else self.config.wait_s, self._running_now(),
                        None if self._executor is not None else self._sizer.limits())
            except ServerUnavailable as exc:
                code = self._reconnect(exc)
                if code is not None:
                    return code
                continue
            except AuthenticationFailed as exc:
                log.error("%s", exc)
                return EXIT_AUTH
            except RemoteError as exc:
                # The server is up but failing (e.g. its Redis is away): keep our results,
                # back off, and give up only after give_up_after, like a lost connection.
                code = self._server_trouble(exc)
                if code is not None:
                    return code
                continue
            self._trouble_since = None
            if cmd == CMD_UNKNOWN:
                log.info("the server does not know this worker (it restarted, or lost touch "
                         "with this worker for longer than the lease); registering again")
                self._id = None
                continue
            if groups:
                groups = self._readable(groups)
                self._fetch_definitions(groups)
            if self._executor is None:
                if groups:
                    self._give_back = False  # it was about an earlier batch
                    if cmd != CMD_STOP and self._ahead_wanted(groups):
                        self._exchange_ahead(groups)
                    elif self._pending:
                        # The batch before came ahead: its results go out before this one
                        # runs, as they always did (a task that kills the worker must not
                        # take finished results with it).
                        self._report_partial(groups[0][2][0] if groups[0][2] else None)
                    self._run_groups(groups)
            else:
                if cmd == CMD_GIVE_BACK:
                    self._give_back = True
                self._start_groups(groups)
                if self._give_back:
                    self._give_back_queued()
                self._collect(self.config.wait_s)
            if cmd == CMD_STOP:
                log.info("the server asked this worker to stop")
                break
        if self._inflight:
            self._collect(None, drain=True)  # finish what runs; the server gets it all back
        self._settle_ahead()
        self._leave()
        return EXIT_OK

    def _leave(self) -> None:
        """Report what is done, give back what is not, and unregister."""
        if self._id is None:
            return
        try:
            if self._pending or self._stats.report() is not None:
                self._send_results()  # with the last statistics
            self._call("unregister_worker", self._id)  # releases anything still leased
        except GuidistError as exc:
            log.warning("could not say goodbye to the server: %s", exc)
        self._id = None

    # ------------------------------------------------------------------ claiming ahead

    def _ahead_wanted(self, groups: list) -> bool:
        """Whether to claim the next batch while running these (inline mode): only when the
        claim came back full and its tasks are short by measure, so no long tasks are hoarded
        from idle workers; not when the statistics are due (they ride on a call of the loop's
        own, kept until accepted), nor when the batch reaches max_tasks."""
        if self._stop.is_set() or self._unreleased or time.monotonic() >= self._stats_due:
            return False
        if not hasattr(self._client.connection, "send"):
            return False  # a direct Redis connection: every call is a round trip of its own
        count = sum(len(g[2]) for g in groups)
        if count < self._claim_size():
            # Fewer than asked: the queue had no more for us, so a claim ahead would most
            # likely come back empty and hold these results for a round trip (an idle
            # submit().result() paid ~0.25 ms for it). Short batches are cut by the count,
            # never by the per-function limits, which aim at _BATCH_SECONDS > _AHEAD_SECONDS.
            return False
        limit = self.config.max_tasks
        if limit is not None and self.processed + count >= limit:
            return False
        seconds = sum(self._sizer.seconds(g[0], len(g[2])) for g in groups)
        return seconds <= _AHEAD_SECONDS

    def _exchange_ahead(self, groups: list) -> None:
        """Send the pending results and the claim of the next batch now, and read the reply
        after running groups; their first task is about to run, so the server hears it as
        running. A send that fails keeps the results for the loop's next call."""
        results = self._packed_results()
        args = (self._claim_size(), 0.0, list(groups[0][2][:1]), self._sizer.limits())
        try:
            # Manager connections only (_ahead_wanted checks): the reply is read later.
            reply = self._client.connection.send(  # type: ignore[attr-defined]
                "exchange", self._id, results, *args)
        except GuidistError as exc:
            log.info("could not send the next exchange ahead: %s", exc)
            return
        self._ahead = AheadExchange(reply, self._pending, time.monotonic())
        self._pending = PendingResults()

    def _await_ahead(self) -> tuple[str, list]:
        """The reply of the exchange in flight; if it failed, the results it carried are
        pending again (ahead of the newer ones) and its error is raised."""
        ahead, self._ahead = self._ahead, None
        assert ahead is not None
        try:
            return ahead.take()
        except BaseException:
            ahead.sent.extend(self._pending)
            self._pending = ahead.sent
            raise

    def _drain_ahead(self) -> None:
        """Before any other call on the worker's socket: read the reply waiting there."""
        if self._ahead is not None:
            self._ahead.drain()

    def _give_back_ahead(self, client: Client) -> None:
        """Heartbeat thread: a batch claimed ahead was claimed on the premise that the batch
        at hand is short; if that batch still runs a report interval later (a slow task),
        the claim goes back to the queue for other workers."""
        ahead, wid = self._ahead, self._id
        if ahead is None or wid is None or time.monotonic() - ahead.since < _REPORT_SECONDS:
            return
        if ahead.give_back(lambda ids: client.call("release", wid, ids)):
            log.debug("the batch at hand overran; gave the batch claimed ahead back")

    def _settle_ahead(self) -> None:
        """Leaving: wait for the exchange in flight, and give back what it claimed ahead."""
        if self._ahead is None:
            return
        try:
            _cmd, groups = self._await_ahead()
            ids = [tid for g in groups for tid in g[2]]
            if ids:
                self._call("release", self._id, ids)
        except GuidistError as exc:
            log.info("the last exchange failed (its results are sent again): %s", exc)

    # ------------------------------------------------------------------ connecting

    def _connect(self) -> None:
        """Connect, retrying with back-off until give_up_after; authentication errors are final."""
        start = self._clock()
        delay = 0.1
        while True:
            try:
                self._client.connect()
                return
            except ServerUnavailable as exc:
                # A local worker whose launcher died while it was still connecting must not
                # linger for give_up_after: the heartbeat thread that checks is not running yet.
                orphaned = self.config.exit_with_parent and os.getppid() != self._parent
                if (self._stop.is_set() or orphaned
                        or self._clock() - start > self.config.give_up_after):
                    raise ServerUnavailable(f"{exc} Gave up after "
                                            f"{self.config.give_up_after:.0f} s.") from None
                log.info("%s Retrying in %.1f s.", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 2.0)

    def _reconnect(self, exc: Exception) -> int | None:
        """After a lost connection: None to go on, or an exit code when giving up."""
        log.warning("%s", exc)
        self._client.close()
        return self._connect_or_exit_code()

    def _server_trouble(self, exc: Exception) -> int | None:
        """Back off after a server-side failure; an exit code once it lasted too long."""
        now = self._clock()
        if self._trouble_since is None:
            self._trouble_since = now
        if now - self._trouble_since > self.config.give_up_after:
            log.error("%s Gave up after %.0f s.", exc, self.config.give_up_after)
            return EXIT_GAVE_UP
        log.warning("%s Retrying.", exc)
        self._stop.wait(min(2.0, 0.1 + now - self._trouble_since))
        return None

    def _connect_or_exit_code(self) -> int | None:
        """Connect with back-off; None on success, else the exit code (the error is logged)."""
        try:
            self._connect()
        except ServerUnavailable as exc:
            if self._stop.is_set():  # asked to stop (SIGTERM) while connecting: a clean exit
                log.info("stopped while connecting: %s", exc)
                return EXIT_OK
            log.error("%s", exc)
            return EXIT_GAVE_UP
        except AuthenticationFailed as exc:
            log.error("%s", exc)
            return EXIT_AUTH
        return None

    def _new_client(self) -> Client:
        """A connection to the server, or straight to Redis when redis_url is set."""
        if self.config.redis_url:
            return Client.redis(self.config.redis_url)
        return Client(self.config.address, self.config.authkey)

    def _register(self) -> None:
        reply = self._call("register_worker", self.name, socket.gethostname(),
                                  os.getpid(), self.mode, self.concurrency, "guidist",
                                  list(self.config.functions) or None, self._address())
        self._id = reply["id"]
        self._max_payload = int(reply.get("max_payload", MAX_PAYLOAD))
        limit = reply.get("task_timeout")
        self._task_timeout = float(limit) if limit else None
        lease = float(reply.get("lease_timeout", DEFAULTS.lease_timeout))
        self._heartbeat_s = max(0.05, min(self.config.heartbeat_s, lease / 4))
        log.info("registered as %s (lease %.1f s, heartbeat %.2f s)", self._id, lease,
                 self._heartbeat_s)

    def _address(self) -> str:
        """The IP address the server sees this worker at (its route towards the server)."""
        if self.config.redis_url:
            url = urlsplit(self.config.redis_url)
            return address_towards(url.hostname, url.port or 6379) if url.hostname else ""
        return address_towards(*self.config.address)

    def _heartbeat_loop(self) -> None:
        """Renew leases from a second connection (proxies are not shared between threads);
        each heartbeat carries this worker's CPU % and memory, its task processes included.

        The period is read afresh on every step: registering shortens it to a quarter of the
        server's lease, and the first beat must come within the lease too (it used to wait
        the default 5 s first, so with a shorter lease healthy workers' first tasks ran twice).
        Each step also looks for an inline task stuck past its time limit.
        """
        client = self._new_client()
        sampler = ResourceSampler()
        last = self._clock()
        while not self._stop.wait(min(self._heartbeat_s, 0.25) if self._id is not None
                                  else 0.05):
            if self.config.exit_with_parent and os.getppid() != self._parent:
                log.warning("the process that launched this worker is gone; stopping")
                self._stop.set()
                return
            self._check_stuck(client)
            self._give_back_ahead(client)
            wid = self._id
            if wid is None or self._clock() - last < self._heartbeat_s:
                continue
            last = self._clock()
            try:
                cmd = client.call("heartbeat", wid, self._running_now(), sampler.sample())
                if cmd == CMD_STOP:
                    self._stop.set()
                elif cmd == CMD_GIVE_BACK:
                    self._give_back = True  # the batch loop acts on it between two tasks
            except GuidistError:
                client.close()  # the main loop does the reconnecting and the giving up

    def _check_stuck(self, client: Client) -> None:
        """An inline task far past its limit is stuck where no signal reaches (a long C call):
        report it failed, give the rest back, and exit so a supervisor restarts the worker."""
        deadline = self._deadline
        if deadline is None or time.monotonic() < deadline[1] + STUCK_GRACE:
            return
        tid, _until, limit = deadline
        log.error("task %d is still running %.0f s past its %g s limit in code that cannot be "
                  "interrupted; reporting it failed and exiting (code %d) so this worker can "
                  "be restarted", tid, STUCK_GRACE, limit, EXIT_STUCK)
        try:
            client.call("complete", self._id, pack([(tid, False, timeout_text(
                limit, "it could not be interrupted, so its worker exited"))]))
            client.call("unregister_worker", self._id)  # the rest of the batch goes back
        except GuidistError as exc:
            log.warning("could not tell the server: %s", exc)
        logging.shutdown()
        os._exit(EXIT_STUCK)

    # ------------------------------------------------------------------ inline time limits

    def _install_alarm(self) -> None:
        """Inline tasks are interrupted at their limit by SIGALRM (main thread, POSIX only)."""
        self._alarms = (hasattr(signal, "setitimer")
                        and threading.current_thread() is threading.main_thread())
        if self._alarms:
            signal.signal(signal.SIGALRM, self._on_alarm)

    def _on_alarm(self, *_: Any) -> None:
        if self._alarm_armed:
            self._alarm_armed = False
            raise TaskTimedOut

    def _run_limited(self, fn: Callable[..., Any], args: tuple, kw: dict, tid: int,
                     limit: float, started: float) -> tuple:
        """Run one inline task with a time limit; a timeout becomes its failure. Returns the
        result item, timed like the others (started: its wall-clock start)."""
        self._deadline = (tid, time.monotonic() + limit, limit)
        alarms = self._alarms
        t0 = time.perf_counter()
        try:
            try:
                if alarms:
                    self._alarm_armed = True
                    signal.setitimer(signal.ITIMER_REAL, limit)  # one shot
                value = fn(*args, **kw) if kw else fn(*args)
            finally:
                # From here on a late alarm is ignored; if it fires before this line, it
                # raises here and is caught below like one inside the task.
                self._alarm_armed = False
                if alarms:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                self._deadline = None
            return (tid, True, value, started, time.perf_counter() - t0)
        except TaskTimedOut:
            return (tid, False, timeout_text(limit, "it was interrupted"), started,
                    time.perf_counter() - t0)
        except Exception as exc:
            return (tid, False, traceback.format_exc(), started, time.perf_counter() - t0,
                    remote.dump_exception(exc))

    # ------------------------------------------------------------------ running

    def _claim_size(self) -> int:
        """The most tasks the next claim may take; the inline mode sends per-function limits
        beside it (``ClaimSizer``), so this is only the cap there."""
        if self._executor is not None:
            # The prefetch follows the concurrency, plus a quarter so a freed slot finds its
            # next task already here instead of waiting a round trip to the server.
            room = self.concurrency + max(1, self.concurrency // 4)
            return max(0, room - len(self._inflight))
        return max(1, self.config.prefetch)

    def _running_now(self) -> list[int]:
        """The tasks this worker runs at this moment, as the server should hear it (called
        from the heartbeat thread too, so it copies before it slices)."""
        if self._executor is not None:
            # Executors start tasks in the order they were handed over: the oldest in flight,
            # up to the concurrency, are the ones running.
            return list(self._inflight.values())[:self.concurrency]
        cursor = self._cursor
        if cursor is None:
            return []
        ids, first, values = cursor
        i = first + len(values)
        return [ids[i]] if i < len(ids) else []

    def _give_back_queued(self) -> None:
        """Release the tasks handed to the executor that have not started (concurrent modes)."""
        self._give_back = False
        ex = self._executor
        assert ex is not None
        cancelled = [(fut, tid) for fut, tid in list(self._inflight.items()) if ex.cancel(fut)]
        for fut, _ in cancelled:
            del self._inflight[fut]
            self._inflight_fn.pop(fut, None)
        if cancelled:
            self._unreleased.extend(tid for _, tid in cancelled)
            self._release_unreleased()

    def _release_unreleased(self) -> bool:
        """Give the tasks in _unreleased back to the queue, uncounted; on failure they stay
        there for the next try (the worker no longer runs them, so they must not stay leased)."""
        ids, self._unreleased = self._unreleased, []
        try:
            self._call("release", self._id, ids)
        except GuidistError as exc:
            log.info("could not give %d task(s) back yet: %s", len(ids), exc)
            self._unreleased = ids + self._unreleased
            return False
        log.info("gave %d task(s) not started back for a worker that waits", len(ids))
        return True

    def _readable(self, groups: list) -> list:
        """The claimed groups with pieces the server handed over as bytes decoded (here, and
        only here: payload.PackedArgs.args) into what the task loop reads; the tasks of a
        piece that cannot be read fail with the reason, and their group is dropped."""
        out = []
        for group in groups:
            args = group[3]
            if type(args) is PackedArgs:
                try:
                    args = args.args()
                except UnreadableArguments as exc:
                    self._fail_group(group[0], group[2], exc)
                    continue
                group = (*group[:3], args, *group[4:])
            out.append(group)
        return out

    def _fail_group(self, function: str, ids: Sequence[int], exc: Exception) -> None:
        """Fail every task of a claimed group that cannot run, with exc as the reason."""
        blob = remote.dump_exception(exc)
        lost = [(tid, False, f"{type(exc).__name__}: {exc}", None, None, blob) for tid in ids]
        for item in lost:
            self._pending.add(item)
        self._observe(function, lost, 0)

    def _limit_of(self, group: tuple) -> float | None:
        """A claimed group's time limit: its own (a 5th element), else the server's default."""
        return group[4] if len(group) > 4 and group[4] else self._task_timeout

    def _start_groups(self, groups: list) -> None:
        """Hand claimed tasks to the executor."""
        assert self._executor is not None
        for group in groups:
            function, kwargs, ids, args_list = group[:4]
            limit = self._limit_of(group)
            for tid, args in zip(ids, args_list):
                fut = self._executor.submit(function, args, kwargs, limit)
                self._inflight[fut] = tid
                self._inflight_fn[fut] = function

    def _collect(self, timeout: float | None, drain: bool = False) -> None:
        """Move finished tasks' outcomes to the pending results; wait up to timeout for one."""
        if not self._inflight:
            return
        done, _ = cf.wait(list(self._inflight), timeout=timeout,
                          return_when=cf.ALL_COMPLETED if drain else cf.FIRST_COMPLETED)
        for fut in done:
            tid = self._inflight.pop(fut)
            function = self._inflight_fn.pop(fut, "")
            if fut.cancelled():
                continue  # never started: unregister gives it back to the queue
            item = (tid, *fut.result())  # (ok, value, started, runtime)
            self._pending.add(item)
            self._observe(function, (item,), None)
            self.processed += 1

    def _run_groups(self, groups: list) -> None:
        """Run every claimed task, timing each; stop early (handing the rest back) when asked
        to stop, or when the server wants the unstarted ones for another worker."""
        now = time.perf_counter()
        wall = time.time() - now  # + a perf_counter reading = that moment's wall clock
        until = now + _REPORT_SECONDS  # when the next partial report is due
        ran = 0
        stop = self._stop
        for gi, group in enumerate(groups):
            if gi and time.perf_counter() > until:
                # The groups before ran past a report interval: their results go out before
                # this group starts, as they do between two runs of a group.
                if self._report_due(groups, gi, 0, 0.0):
                    break
                until = time.perf_counter() + _REPORT_SECONDS
            if stop.raised:
                break
            function = group[0]
            try:
                fn = self._function(function)
            except TaskNotFound as exc:
                self._fail_group(function, group[2], exc)
                continue
            n, until, gave_back = self._run_group(groups, gi, fn, wall, until)
            ran += n
            if gave_back:
                break
        self._cursor = None
        self.processed += ran
        if stop.raised:
            try:
                self._send_results()
                self._call("release", self._id, None)
            except GuidistError as exc:
                log.warning("could not hand tasks back while stopping: %s", exc)

    def _run_group(self, groups: list, gi: int, fn: Callable[..., Any], wall: float,
                   until: float) -> tuple[int, float, bool]:
        """Run the tasks of groups[gi], in runs between partial reports; returns how many ran,
        when the next report is due, and whether the server got the rest back."""
        group = groups[gi]
        function, kwargs, ids, args_list = group[:4]  # a 5th element: the time limit
        limit = self._limit_of(group)
        total = min(len(ids), len(args_list))
        clock = time.perf_counter
        stop = self._stop
        bare = type(args_list) is BareArgs
        call = functools.partial(fn, **kwargs) if kwargs else fn
        # The bare values as they are, not the 1-tuples a BareArgs reads as (nor a copy).
        tasks = list.__iter__(args_list) if bare else iter(args_list)
        done = 0
        # Each task is timed on the monotonic clock: its start and run time travel with its
        # result, so a task that waited behind others in this batch is not reported as having
        # run all that while. A task starts when the one before it ended (its run time
        # includes the loop's few steps). A function measured as fast is timed in runs of
        # tasks, one clock read a run (``taskloop``), until a run turns out slow.
        estimate = self._sizer.estimate(function)
        in_runs = limit is None and estimate is not None and estimate < FAST_SECONDS
        group_start = t0 = clock()
        while True:
            run = TaskRun(t0)
            self._cursor = (ids, done, run.values)  # the task running: ids[done + len(values)]
            if limit is not None:
                t0 = self._run_limited_tasks(fn, kwargs or {}, ids, args_list, done, total,
                                             limit, t0, wall, until, run)
            elif in_runs:
                t0, slow = run_in_runs(call, tasks, bare, t0, until, stop, run, FAST_SECONDS)
                in_runs = not slow
            else:
                t0 = run_tasks(call, tasks, bare, t0, wall, until, stop, run)
            n = len(run.values)
            self._keep(function, ids[done:done + n], run, wall)
            done += n
            if done >= total or stop.raised:
                break
            if t0 <= until:
                continue  # a slow run of fast tasks: the rest go on per task at once
            # The report interval passed: a slow task in a big batch must not hold back the
            # fast ones' results.
            self._sizer.record(function, done, t0 - group_start)
            if self._report_due(groups, gi, done, t0 - group_start):
                return done, until, True
            if stop.raised:  # asked to stop meanwhile (the reply said so, or a signal)
                break
            after = clock()
            until = after + _REPORT_SECONDS
            group_start += after - t0  # the round trip is not the tasks' time
            t0 = after
        if done:
            self._sizer.record(function, done, clock() - group_start)
        return done, until, False

    def _report_due(self, groups: list, gi: int, n: int, group_seconds: float) -> bool:
        """A report interval passed: send the results so far and the task about to start (the
        n-th of groups[gi]), and give the tasks not started back if the server asks for them;
        True when they went back. Give-back is looked at only here, so the task loop costs no
        more: a batch shorter than a report interval is done before it would matter."""
        self._report_partial(_task_after(groups, gi, n))
        return self._give_back and self._gave_back(groups, gi, n, group_seconds)

    def _run_limited_tasks(self, fn: Callable[..., Any], kw: dict, ids: list, args_list: list,
                           first: int, total: int, limit: float, t0: float, wall: float,
                           until: float, run: TaskRun) -> float:
        """Tasks with a time limit, from the first-th: each armed and timed on its own, until
        the group ends, the clock passes until, or a stop is asked; returns the clock then."""
        clock = time.perf_counter
        stop = self._stop
        for k in range(first, total):
            run.add(self._run_limited(fn, args_list[k], kw, ids[k], limit, wall + t0))
            t0 = clock()
            if t0 > until or stop.raised:
                break
        return t0

    def _keep(self, function: str, ids: list[int], run: TaskRun, wall: float) -> None:
        """A run's results join the pending ones and are counted into the statistics (once
        per run, over its columns; tasks timed in runs, once per run of them); each failure
        is logged in one line."""
        if not ids:
            return
        started, runtimes = run.times(wall)
        counted = None
        if run.ends and not run.failures:  # fast successes timed in runs: a bisect a run
            counted = self._stats.add_runs(function, wall + run.first, *run.run_means())
        if counted is None:
            oks = None
            if run.failures:
                oks = [True] * len(ids)
                for i in run.failures:
                    oks[i] = False
            counted = self._stats.add_columns(function, floats(started), floats(runtimes),
                                              oks, 0)
        self._pending.add_run(ids, run.values, started, runtimes, run.failures)
        done, failed, seconds = counted
        summary = self.summary
        summary[0] += done
        summary[1] += failed
        summary[2] += seconds
        for i in run.failures:
            self._log_failure(function, (ids[i], False, run.values[i]))

    def _gave_back(self, groups: list, gi: int, n: int, group_seconds: float) -> bool:
        """The server wants the tasks not started yet (groups[gi] from its n-th on, and the
        groups after it): release them, unless they will be done within a claim's worth of
        work (another worker could not start them sooner). True when they were released."""
        self._give_back = False
        measured = group_seconds / n if n else None
        rest = [(function, ids[n:] if k == gi else ids)
                for k, (function, _kw, ids, *_rest) in enumerate(groups) if k >= gi]
        seconds = sum(self._sizer.seconds(function, len(ids), measured if k == 0 else None)
                      for k, (function, ids) in enumerate(rest) if ids)
        if seconds <= _BATCH_SECONDS:
            return False
        self._unreleased = [tid for _, ids in rest for tid in ids]  # inline: none before
        if self._release_unreleased():
            return True
        self._unreleased = []  # not released: better run them than leave them leased
        return False

    def _observe(self, function: str, items: list | tuple, slot: int | None) -> None:
        """Count results of one function into the statistics (once per group, not per task)
        and log each failure in one line; slot None: the concurrent modes pick a lane."""
        if not items:
            return
        if slot is None:
            done, failed, seconds = self._stats.add_one(function, items[0])
        else:
            done, failed, seconds = self._stats.add_batch(function, items, slot)
        summary = self.summary
        summary[0] += done
        summary[1] += failed
        summary[2] += seconds
        if failed:
            for item in items:
                if not item[1]:
                    self._log_failure(function, item)

    def _log_failure(self, function: str, item: tuple) -> None:
        """One line per failed task: its id, its function and what it raised."""
        if self._failures_logged >= _FAILURE_LINES:
            if self._failures_logged == _FAILURE_LINES:
                log.warning("more tasks failed; the rest of this burst is only counted")
            self._failures_logged += 1
            return
        self._failures_logged += 1
        lines = [ln for ln in str(item[2]).strip().splitlines() if ln.strip()]
        log.warning("task %s (%s) failed: %s", item[0], function,
                    lines[-1].strip() if lines else "(no message)")

    def _report_partial(self, next_task: int | None) -> None:
        """Send the results so far and the task about to start; on failure keep the results
        for the next exchange."""
        try:
            cmd, _ = self._call_with_results(
                "exchange", 0, 0.0, [] if next_task is None else [next_task], None)
        except GuidistError as exc:
            log.info("could not report part of a batch yet: %s", exc)
            return
        if cmd == CMD_GIVE_BACK:
            self._give_back = True
        elif cmd == CMD_STOP:
            self._stop.set()

    def _fetch_definitions(self, groups: list) -> None:
        """Fetch, once, the bytes of claimed functions that were sent by value."""
        for function, *_ in groups:
            if remote.is_by_value(function) and remote.blob_of(function) is None:
                try:
                    blob = self._call("get_function", function)
                except GuidistError as exc:
                    log.warning("could not fetch %s: %s", function, exc)
                    continue  # its tasks fail with TaskNotFound, saying so
                if blob is not None:
                    remote.define(function, blob)

    def _function(self, name: str) -> Callable[..., Any]:
        fn = self._functions.get(name)
        if fn is None:
            fn = resolve(name)
            if inspect.iscoroutinefunction(fn):
                fn = _run_coroutine(fn)  # an async def in the inline mode: one loop per call
            self._functions[name] = fn
        return fn

    def _send_results(self) -> None:
        """Report pending results now (used when stopping)."""
        self._call_with_results("complete")

    def _call_with_results(self, method: str, *args: Any) -> Any:
        """Call method(worker_id, results, *args) with the pending results, and the run
        statistics when they are due.

        Over a manager the batch is pickled once here: that costs nothing extra (the proxy
        then copies bytes) and tells us before sending whether a result cannot be pickled or
        is too large; those become failures that say why, and the rest are sent. A broker in
        this process (a direct Redis connection) takes the list as it is and pickles each
        result once itself: packing it here as well would pickle every result twice. Either
        way results go in calls of at most about max_payload (sized by bytes, not by count:
        64 results of 2 MiB were over the server's cap), the last with the call itself; what
        was accepted is dropped from the pending list as it goes, so a lost connection
        midway resends only the rest.
        """
        if getattr(self._client.connection, "in_process", False):
            results: Any = self._direct_results()
        else:
            results = self._packed_results()
        report = None
        now = time.monotonic()
        if now >= self._stats_due or method == "complete":
            report = self._stats.report()
        if report is None:
            reply = self._call_carrying(method, results, args)
        else:
            # exchange(id, results, max_n, wait_s, running, limits, report) and
            # complete(id, results, report): the statistics ride on the results' call.
            pad = [None] * (4 - len(args)) if method == "exchange" else []
            reply = self._call_carrying(method, results, (*args, *pad, report))
            self._stats.reset()
            self._stats_due = now + REPORT_SECONDS
            self._failures_logged = 0
        self._pending = PendingResults()
        return reply

    def _packed_results(self) -> bytes:
        """The pending results pickled for the manager; when they are over max_payload the
        ones ahead are sent first in messages of at most max_payload, and this is the last."""
        try:
            blob = self._pending.pack()
        except Exception:
            self._pending = PendingResults.of(results_are_picklable(self._pending.items()))
            blob = self._pending.pack()
        limit = self._max_payload
        if len(blob) > limit:
            items = results_within(self._pending.items(), limit)
            self._pending = PendingResults.of(items)
            chunks = split_by_size(items, limit, _never_too_big, pack_results)
            for chunk, part in chunks[:-1]:
                self._call("complete", self._id, part)
                del items[:len(chunk)]
                self._pending = PendingResults.of(items)
            blob = chunks[-1][1]
        return blob

    def _direct_results(self) -> list:
        """The pending results for a broker in this process, as result tuples, checked; when
        they are bigger than max_payload the ones ahead are sent first (one Lua call carries
        all of its results), and this is the last run."""
        limit = self._max_payload
        items = self._pending.items()
        try:  # measuring a result's size pickles it: an unpicklable one says so here
            results = results_within(items, limit, sized=True)
        except (pickle.PicklingError, TypeError, AttributeError):
            results = results_within(results_are_picklable(items), limit, sized=True)
        chunks = _direct_chunks(results, limit)
        for chunk in chunks[:-1]:
            self._call_carrying("complete", chunk, ())
            del results[:len(chunk)]
            self._pending = PendingResults.of(results)
        return chunks[-1]

    def _call(self, method: str, *args: Any) -> Any:
        """A call on the worker's own connection, once a reply waiting there was read."""
        self._drain_ahead()
        return self._client.call(method, *args)

    def _call_carrying(self, method: str, results: Any, args: tuple) -> Any:
        """One call carrying results; a direct broker that cannot pickle one gets the rest."""
        try:
            return self._call(method, self._id, results, *args)
        except (pickle.PicklingError, TypeError, AttributeError):
            if isinstance(results, bytes):
                raise
            # The broker pickles before it changes anything: send what can be pickled.
            results = results_within(results_are_picklable(results), self._max_payload,
                                     sized=True)
            return self._call(method, self._id, results, *args)

    # ------------------------------------------------------------------ classic fallback

    def _run_classic(self) -> int:
        """Serve an unmodified tutorial master: bare payloads in, formatted strings out."""
        log.info("the server has no guidist broker; working its two classic queues")
        fn = resolve(DEFAULT_TASK)
        conn = self._client.connection
        tasks, results = conn.task_queue(), conn.result_queue()
        while not self._stop.is_set():
            if self.config.max_tasks is not None and self.processed >= self.config.max_tasks:
                break
            try:
                n = tasks.get(timeout=self.config.wait_s)
            except queue.Empty:
                continue
            except (EOFError, OSError) as exc:
                log.info("%s", _master_gone(exc, self.processed))
                return EXIT_GAVE_UP
            try:
                value: Any = classic_result_text(DEFAULT_TASK, (n,), fn(n))
            except Exception as exc:
                value = f"task {n!r} failed: {exc!r}"
            try:
                results.put(value)
            except (EOFError, OSError) as exc:  # the master left between get and put
                log.info("%s", _master_gone(exc, self.processed))
                return EXIT_GAVE_UP
            self.processed += 1
        return EXIT_OK


def _master_gone(exc: BaseException, processed: int) -> str:
    """What a classic worker says when the tutorial master's queues go away: most often the
    master simply finished and exited, which is no error."""
    why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return (f"the tutorial master has gone (it finished, or the connection broke: {why}); "
            f"stopping after {processed} task(s)")


def _task_after(groups: list, gi: int, n: int) -> int | None:
    """The id of the task run after the n-th of groups[gi], if any."""
    for _function, _kwargs, ids, *_rest in groups[gi:]:
        if n < len(ids):
            return ids[n]
        n = 0
    return None


def _run_coroutine(fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return run


def _never_too_big(index: int, size: int) -> str:
    raise AssertionError("results_within() left a result over the limit")  # pragma: no cover


def results_within(results: list, limit: int, sized: bool = False) -> list:
    """Replace results whose pickled size is over limit by failures that say so.

    With sized, only results that might be that big are pickled to measure them: ints,
    floats, None and short strings and bytes cannot be (a direct connection's fast path)."""
    out = []
    for item in results:
        value = item[2]
        if sized and _surely_within(value, limit):
            out.append(item)
            continue
        size = len(pack([item]))  # as a report of one: what must fit a message
        if size > limit:
            out.append((item[0], False, f"PayloadTooLarge: the result is {mib(size)}, over the "
                        f"{mib(limit)} limit; write it to a file and return the path", *item[3:5]))
        else:
            out.append(item)
    return out


def _direct_chunks(results: list, limit: int) -> list[list]:
    """results in runs of about limit bytes at most (one run when they fit), sized without
    pickling where the size is plain (numbers, strings, bytes); other values are measured."""
    chunks: list[list] = [[]]
    size = 0
    for item in results:
        value = item[2]
        t = type(value)
        if t is str or t is bytes:
            n = len(value)
        elif t is int:
            n = value.bit_length() // 8 + 16
        elif t is float or t is bool or value is None:
            n = 16
        else:
            try:
                n = len(pack(value))
            except Exception:  # unpicklable: the broker says so when it tries
                n = 0
        if chunks[-1] and size + n > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += n
    return chunks


def _surely_within(value: Any, limit: int) -> bool:
    """True for values whose pickle is certainly under limit bytes, known without pickling."""
    t = type(value)
    if t is float or t is bool or value is None:
        return True
    if t is int:
        return value.bit_length() < limit  # a pickled int takes about bits / 8 bytes
    if t is str or t is bytes:
        return len(value) * 4 < limit  # UTF-8 takes at most 4 bytes a character
    return False


def results_are_picklable(results: list) -> list:
    """Replace results that cannot be pickled by failures that say so."""
    out = []
    for item in results:
        try:
            pickle.dumps(item)
            out.append(item)
        except Exception as exc:
            out.append((item[0], False, f"the result could not be sent: {type(exc).__name__}: "
                        f"{exc}", *item[3:5]))
    return out
