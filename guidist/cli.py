"""Command line: ``guidist [gui] | serve | worker | submit | status | export | prune`` and the
window's controls (``pause | resume | cancel | retry | purge | task | workers``).

Every command that connects takes --connect (or $GUIDIST_CONNECT) or --redis (or
$GUIDIST_REDIS_URL), and --authkey (or $GUIDIST_AUTHKEY), so keys need not appear in process
lists. Errors are one line on stderr and an exit code per kind of failure (errors.ExitCode),
never a traceback.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .commands import control, jobs, task_view, window, workers
from .commands.connection import (
    CONNECT_ENV,
    KEY_ENV,
    REDIS_ENV,
    add_connection_options,
    add_key_option,
    bare_redis_flags,
    explicit_target,
    key_from,
    open_client,
    parse_connect,
    redis_url,
    target_from,
)
from .commands.failures import CliError, exit_code_for
from .commands.help import HelpFormatter, add_command, verbosity, verbosity_parent
from .commands.output import output_format, write_output
from .commands.watch import watch
from .core.backends.base import DEFAULTS
from .core.claims import DEFAULT_PREFETCH
from .core.client import Client, iter_tasks
from .core.errors import ExitCode, GuidistError
from .core.histogram import run_time_text
from .core.paths import default_journal_path, journal_dir
from .core.protocol import Job, Snapshot, Task, TaskState
from .core.rows import RowError, iter_file_rows
from .core.security import generate_key, is_loopback, to_bytes
from .core.tasks import as_args, check_task_name, parse_range, parse_value
from .core.urls import redact_url

EXIT_USAGE = ExitCode.USAGE
__all__ = ["CONNECT_ENV", "KEY_ENV", "REDIS_ENV", "CliError", "build_parser", "main"]


# ---------------------------------------------------------------------- helpers

# The names the commands below were written against; the rules live in commands.connection.
_key_from = key_from
_address = parse_connect


def _client(args: argparse.Namespace) -> Client:
    """A connected client for --connect / --redis (or their environment variables)."""
    return open_client(args)


def status_line(snap: Snapshot) -> str:
    """One line for people: the counts, the workers and the throughput."""
    if snap.kind == "classic":
        return (f"classic master: {snap.count('queued')} queued, "
                f"{snap.extra.get('results_waiting', 0)} results waiting")
    c = snap.count
    paused = " (paused)" if snap.paused else ""
    return (f"{c('queued')} queued, {c('claimed')} claimed, {c('running')} running, "
            f"{c('done')} done, "
            f"{c('failed')} failed, {c('dead')} dead, {c('cancelled')} cancelled | "
            f"{snap.connected_workers} workers | {snap.throughput:,.0f} tasks/s{paused}")


# ---------------------------------------------------------------------- commands


_redis_url = redis_url


def _backend_from(args: argparse.Namespace) -> str | None:
    """None for the embedded (in-memory + journal) backend, else the Redis URL."""
    choice = (getattr(args, "backend", None) or "memory").strip()
    if choice == "memory":
        return None
    return _redis_url(None if choice == "redis" else choice)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run a headless server until Ctrl-C; exits 1 if the server process dies under it."""
    from .core.server import ServerProcess

    key = _key_from(args, required=False)
    # An empty key given on purpose (GUIDIST_AUTHKEY="") is checked like any weak key: on
    # loopback it is replaced by a random key that is shown, elsewhere it is refused.
    generated = not key and (key is None or is_loopback(args.host))
    key = generate_key() if generated else key
    backend = _backend_from(args)
    journal = None if args.no_journal or backend else (
        args.journal or str(default_journal_path(f"serve-{args.port}")))
    server = ServerProcess(args.host, args.port, key, insist_weak_key=args.insecure,
                           lease_timeout=args.lease_timeout, max_attempts=args.max_attempts,
                           keep_done=args.keep_done, keep_failed=args.keep_failed,
                           journal=journal, backend=backend, metrics_port=args.metrics_port,
                           task_timeout=args.task_timeout)
    host, port = server.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    shown_host = host if not host.startswith("0.0.0.0") else _reachable_host()
    where = ""
    if backend:
        where = f" (state in Redis at {redact_url(backend)})"
    elif journal:
        where = f" (journal {journal})"
    print(f"guidist server listening on {host}:{port}{where}")
    if generated:
        print(f"key (generated): {key}")
    print(f"connect a worker:  {KEY_ENV}=<key> guidist worker --connect {shown_host}:{port}")
    if backend:
        print(f"or straight to Redis:  {REDIS_ENV}=<redis URL> guidist worker --redis")
    if server.metrics_port is not None:
        print(f"Prometheus metrics:  http://{shown_host}:{server.metrics_port}/metrics")
    if is_loopback(host):
        print("only this machine can connect; use --host 0.0.0.0 to accept other machines")
    sys.stdout.flush()
    client = Client((host if host != "0.0.0.0" else "127.0.0.1", port), key)
    died: str | None = None
    try:
        next_status = time.monotonic() + args.interval
        # Wake often to notice a dead server process at once (SIGKILL, the OOM killer): a
        # supervisor must see this command exit, not a stream of "status unavailable".
        while not stop.wait(min(0.2, args.interval)):
            died = server.death()
            if died is not None:
                break
            if time.monotonic() < next_status:
                continue
            next_status = time.monotonic() + args.interval
            try:
                snap = client.snapshot()
            except GuidistError as exc:
                print(f"status unavailable: {exc}", flush=True)
                continue
            print(time.strftime("%H:%M:%S ") + status_line(snap), flush=True)
            trouble = journal_trouble(snap)
            if trouble:
                print(trouble, flush=True)
    finally:
        client.close()
        server.stop()
    if died is not None:
        print(f"guidist serve: error: {died}", file=sys.stderr, flush=True)
        return ExitCode.FAILED
    print("server stopped", flush=True)
    return 0


def journal_trouble(snap: Snapshot) -> str | None:
    """A line saying the journal cannot be written, and where, or None when all is well."""
    problem = snap.journal_problem()
    if problem is None:
        return None
    since = (snap.extra.get("journal") or {}).get("failing_for", 0)
    return f"JOURNAL ERROR for {since:.0f} s: {problem}"


def _reachable_host() -> str:
    from .core.netinfo import reachable_addresses

    addrs = reachable_addresses()
    return addrs[0] if addrs else "THIS-MACHINE"


def _journal_arg(args: argparse.Namespace) -> Path:
    """--journal, or the only default journal there is; a clear error otherwise."""
    if args.journal:
        path = Path(args.journal)
        if not path.exists():
            raise CliError(f"no journal at {path}")
        return path
    found = sorted(journal_dir().glob("*.sqlite"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise CliError(f"no journal in {journal_dir()}: pass --journal PATH (or --connect)")
    names = ", ".join(p.name for p in found)
    raise CliError(f"several journals in {journal_dir()} ({names}): pass --journal PATH")


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one worker until stopped."""
    from .core.worker import Worker, WorkerConfig

    target = target_from(args)
    if target is None:
        raise CliError(f"pass --connect HOST:PORT (a guidist server, also from {CONNECT_ENV}) "
                       f"or --redis URL (a Redis backend, also from {REDIS_ENV})")
    redis_url = target.redis_url  # straight to Redis: no server, no authkey
    add_import_paths([*(args.path or []), os.getcwd()])
    config = WorkerConfig(address=target.address or ("", 0),
                          authkey=(to_bytes(_key_from(args, required=True)) if redis_url is None
                                   else b""),
                          name=args.name or "", prefetch=args.prefetch,
                          give_up_after=args.give_up_after, heartbeat_s=args.heartbeat,
                          exit_with_parent=args.exit_with_parent, max_tasks=args.max_tasks,
                          mode=args.mode, concurrency=args.concurrency,
                          functions=tuple(n.strip() for n in (args.tasks or "").split(",")
                                          if n.strip()), redis_url=redis_url)
    worker = Worker(config)
    worker.install_signal_handlers()
    logging.getLogger("guidist").info("worker %s connecting to %s", worker.name,
                                      target.describe())
    return worker.run()


def add_import_paths(paths: Sequence[str]) -> None:
    """Put folders first on sys.path, so "mytasks:f" imports from the folder the worker runs in.

    Under ``python -m guidist`` Python does this for the working directory; the ``guidist``
    script puts its own bin folder there instead, and every task failed with TaskNotFound.
    Process-mode children inherit sys.path (spawn passes it on).
    """
    wanted = [os.path.abspath(p) for p in paths]
    for missing in (p for p in wanted if not os.path.isdir(p)):
        raise CliError(f"--path {missing}: no such folder")
    sys.path[:0] = [p for i, p in enumerate(wanted) if p not in wanted[:i]]


def _describe_ids(ranges: list[range]) -> str:
    """"ids 1..20000" (or a few runs, when other submitters interleaved)."""
    runs: list[range] = []
    for r in ranges:  # merge runs that follow each other
        if runs and runs[-1].stop == r.start:
            runs[-1] = range(runs[-1].start, r.stop)
        else:
            runs.append(r)
    text = ", ".join(f"{r.start}..{r.stop - 1}" for r in runs[:5])
    if len(runs) > 5:
        text += f", ... ({len(runs)} runs, the last {runs[-1].start}..{runs[-1].stop - 1})"
    return f"ids {text}"


class _Interrupt:
    """Ctrl-C during a submit: the first one stops after the chunk in flight (so exactly what
    was queued is known), a second one aborts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, *_: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after the chunk being sent (Ctrl-C again to abort at once)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _task_source(args: argparse.Namespace) -> tuple[Iterator[tuple[tuple, dict | None]],
                                                      int | None]:
    """The tasks to submit, streamed (never a list of them all), and how many if known."""
    if args.range:
        try:
            numbers = parse_range(args.range)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        return (((n,), None) for n in numbers), len(numbers)
    if args.count is not None:
        if args.count < 0:
            raise CliError("--count must be 0 or more")
        try:
            arg = as_args(parse_value(args.arg)) if args.arg is not None else ()
        except ValueError as exc:
            raise CliError(f"--arg: {exc}") from None
        return itertools.repeat((arg, None), args.count), args.count
    return _file_rows(args.file), None


def _file_rows(path: str) -> Iterator[tuple[tuple, dict | None]]:
    """A task file's rows, streamed; a bad line is a one-line CliError naming it."""
    try:
        yield from iter_file_rows(path)
    except RowError as exc:
        raise CliError(str(exc)) from None


def _job_note(job: Job | None) -> str:
    return f", job {job.name} (id {job.id})" if job is not None else ""


def _resume_hint(args: argparse.Namespace, sent: int, job: Job | None = None) -> str:
    """What to run to queue the rest without duplicates (into the same job)."""
    done = args.skip + sent  # tasks of the source that are queued (or were skipped)
    same_job = f" --job {job.name}" if job is not None else ""
    if args.range:
        numbers = parse_range(args.range)
        rest = numbers[done:]
        return (f"to queue the rest: --range {rest[0]}..{rest[-1]}{same_job}" if rest
                else "nothing is left")
    if args.count is not None:
        left = args.count - done
        return f"to queue the rest: --count {left}{same_job}" if left > 0 else "nothing is left"
    return f"to queue the rest: --file {args.file} --skip {done}{same_job}"


def cmd_submit(args: argparse.Namespace) -> int:
    """Queue tasks in chunks, with progress on a terminal; Ctrl-C stops cleanly and says
    exactly which ids were queued."""
    from .core.client import SUBMIT_CHUNK

    try:
        task = check_task_name(args.task)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.timeout is not None and not args.timeout > 0:
        raise CliError("--timeout must be more than 0 seconds")
    if args.skip < 0:
        raise CliError("--skip must be 0 or more")
    source, total = _task_source(args)
    if args.skip:
        source = itertools.islice(source, args.skip, None)
        total = None if total is None else max(0, total - args.skip)
    client = _client(args)
    ranges: list[range] = []
    sent = 0
    show = sys.stderr.isatty()
    shown_at = 0.0
    job: str | int | None = args.job
    joined: Job | None = None

    def send(batch: list[tuple], kwargs: dict | None) -> None:
        nonlocal sent, shown_at, job, joined
        try:
            ids = client.submit_many(task, batch, kwargs, chunk=SUBMIT_CHUNK, job=job,
                                     timeout=args.timeout)
        except ValueError as exc:  # a job name the server cannot tell from an id
            raise CliError(f"--job: {exc}") from None
        if ids.job is not None:
            joined, job = ids.job, ids.job.id  # the next chunks join the same job
        ranges.extend(ids.ranges)
        sent += len(batch)
        if show and time.monotonic() - shown_at > 0.1:
            shown_at = time.monotonic()
            of = f" of {total:,} ({100 * sent / total:.1f}%)" if total else ""
            print(f"\rqueued {sent:,}{of}", end="", file=sys.stderr, flush=True)

    interrupted = False
    try:
        with _Interrupt() as stop:
            batch: list[tuple] = []
            batch_kw: dict | None = None
            for a, kw in source:
                if batch and (kw != batch_kw or len(batch) >= SUBMIT_CHUNK):
                    send(batch, batch_kw)
                    batch = []
                    if stop.requested:
                        interrupted = True
                        break
                batch_kw = kw
                batch.append(a)
            else:
                if batch:
                    send(batch, batch_kw)
    except (GuidistError, KeyboardInterrupt) as exc:
        if show:
            print(file=sys.stderr)
        if sent:  # say what did get queued before the failure, so nothing is sent twice
            print(f"queued {sent} {task} task(s) before stopping, {_describe_ids(ranges)}"
                  f"{_job_note(joined)}; {_resume_hint(args, sent, joined)} (the chunk being "
                  "sent at the time may have been queued too: check with guidist status)",
                  file=sys.stderr)
        if isinstance(exc, KeyboardInterrupt):
            return ExitCode.INTERRUPTED
        raise
    if show and sent:
        print(file=sys.stderr)
    if client.kind == "classic":
        print(f"queued {sent} payload(s) on the classic task queue")
    elif sent == 0:
        print("queued 0 tasks")
    else:
        print(f"queued {sent} {task} task(s), {_describe_ids(ranges)}{_job_note(joined)}")
    if interrupted:
        print(f"guidist submit: interrupted: the rest was not queued; "
              f"{_resume_hint(args, sent, joined)}", file=sys.stderr)
        return ExitCode.INTERRUPTED
    return 0


def status_lines(snap: Snapshot, as_json: bool = False) -> list[str]:
    """What ``guidist status`` prints: the status line and one line per worker, or JSON."""
    if as_json:
        return [json.dumps(snap.to_status(), sort_keys=True)]
    lines = [status_line(snap)]
    for w in snap.workers:
        lines.append(f"  {w.id:<24} {w.host_label:<16} pid {w.pid:<7} {w.state.value:<8} "
                     f"done {w.done} failed {w.failed}")
    for f in snap.functions:
        lines.append(f"  {f.function:<24} done {f.done} failed {f.failed} run time p50 "
                     f"{run_time_text(f.runtime_p50)} p95 {run_time_text(f.runtime_p95)} max "
                     f"{run_time_text(f.runtime_max if f.measured else None)}")
    return lines


def cmd_status(args: argparse.Namespace) -> int:
    """Print the server's counts once, or again and again with --watch."""
    client = _client(args)
    if args.watch:
        if args.interval <= 0:
            raise CliError("--interval must be above 0")
        return watch(client.snapshot, lambda snap: status_lines(snap, args.json),
                     args.interval)
    print("\n".join(status_lines(client.snapshot(), args.json)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the ledger (or part of it) as CSV or JSON lines, from a journal or a live server."""
    from .core.backends.memory.journal import iter_ledger
    from .core.export import write_export

    fmt = output_format(args)
    states = args.state or None
    if args.journal and explicit_target(args):
        raise CliError("pass --journal FILE or a server (--connect, --redis), not both")
    if not args.journal and target_from(args) is not None:
        client = _client(args)
        tasks: Iterator[Task] = (t for state in (states or [None])
                                 for t in iter_tasks(client, state))
    else:
        tasks = iter_ledger(_journal_arg(args), states)
    write_output(args, lambda out: write_export(tasks, out, fmt), "task(s)")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Delete old finished tasks from a journal's ledger (failures are kept longer)."""
    from .core.backends.memory.journal import prune_journal

    path = _journal_arg(args)
    day = 86400.0
    n = prune_journal(path, done_older_than=args.done_days * day,
                      failed_older_than=args.failed_days * day, keep_done=args.keep_done,
                      keep_failed=args.keep_failed)
    print(f"pruned {n} finished task(s) from {path}")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    """Open the window, or say in one line why it cannot open here."""
    if window.missing_gui_modules():
        raise CliError(window.GUI_HINT, ExitCode.UNSUPPORTED)
    problem = window.display_problem()
    if problem:
        raise CliError(problem, ExitCode.UNSUPPORTED)
    try:
        from .gui.app import main as gui_main
    except ImportError as exc:  # a system library Qt needs is missing, for instance
        raise CliError(f"the window is not available here ({exc}); the commands serve, worker, "
                       "submit and status work without it", ExitCode.UNSUPPORTED) from None
    return gui_main(args)


# ---------------------------------------------------------------------- parser


def _add_key(p: argparse.ArgumentParser) -> None:
    add_key_option(p)


DESCRIPTION = """\
guidist: a monitor and controller for a multiprocessing.managers task queue.

With no command (or 'gui') it opens the window; every command below works without it.
Connecting commands read GUIDIST_CONNECT, GUIDIST_AUTHKEY and GUIDIST_REDIS_URL."""

EXIT_CODES = """\
exit codes (the same for every command):
  0 success       1 the server refused or failed     2 bad input on the command line
  3 no server     4 the key was rejected             5 no such task or worker
  6 not possible here (classic master, no display, gui extra missing)
  7 timed out (wait --timeout)                                          130 Ctrl-C"""


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for every command."""
    parser = argparse.ArgumentParser(prog="guidist", description=DESCRIPTION,
                                     epilog=EXIT_CODES, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"guidist {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (repeatable; also after the command)")
    parser.add_argument("-q", "--quiet", action="count", default=0,
                        help="less logging (repeatable; also after the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parents = [verbosity_parent()]

    def add_gui_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", default="127.0.0.1", metavar="HOST", help="address to listen on")
        p.add_argument("--port", type=int, metavar="PORT", default=0,
                       help="port to listen on (0: any free)")
        p.add_argument("--demo", action="store_true",
                       help="start the server, 2 workers and a steady mixed load")
        p.add_argument("--no-journal", action="store_true", help="keep state in memory only")
        p.add_argument("--journal", metavar="FILE", help="SQLite journal file")

    gui = add_command(sub, "gui", "open the window (the default)",
                      "Open the window with its embedded server. Needs the gui extra "
                      "(pip install \".[gui]\") and a display.",
                      ["guidist --demo", "guidist gui --port 5000 --authkey KEY"], parents)
    add_gui_options(gui)
    _add_key(gui)

    serve = add_command(sub, "serve", "run a headless server",
                        "Run a queue server without a window until Ctrl-C: it prints its "
                        "address and how to connect a worker, then a status line every "
                        "--interval seconds.",
                        ["guidist serve --port 5000",
                         "GUIDIST_REDIS_URL=redis://:PASSWORD@HOST:6379/0 guidist serve "
                         "--backend redis"], parents)
    serve.add_argument("--host", default="127.0.0.1", metavar="HOST",
                       help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, metavar="PORT", default=5000,
                       help="port (0: any free port)")
    _add_key(serve)
    serve.add_argument("--insecure", action="store_true",
                       help="accept a weak key on a non-loopback address")
    serve.add_argument("--lease-timeout", type=float, metavar="SECONDS",
                       default=DEFAULTS.lease_timeout,
                       help="seconds without a heartbeat before a worker's tasks are requeued")
    serve.add_argument("--max-attempts", type=int, metavar="N", default=DEFAULTS.max_attempts,
                       help="lease expiries before a task is dead")
    serve.add_argument("--keep-done", type=int, metavar="N", default=DEFAULTS.keep_done,
                       help="successes kept in memory (Redis: kept at all); the journal keeps "
                            "every one")
    serve.add_argument("--keep-failed", type=int, metavar="N", default=DEFAULTS.keep_failed,
                       help="failed and dead tasks kept in memory (Redis: kept at all)")
    serve.add_argument("--journal", metavar="FILE",
                       help="SQLite journal file (default: per-user data dir)")
    serve.add_argument("--no-journal", action="store_true", help="keep state in memory only")
    serve.add_argument("--backend", metavar="memory|redis://HOST:PORT/DB",
                       help="where the queue's state lives: memory (default, with the journal) "
                            f"or a Redis URL ('redis' alone reads ${REDIS_ENV})")
    serve.add_argument("--interval", type=float, metavar="SECONDS", default=5.0,
                       help="seconds between status lines")
    serve.add_argument("--metrics-port", type=int, metavar="PORT",
                       help="also serve Prometheus metrics at http://HOST:PORT/metrics "
                            "(HOST as --host; 0: any free port)")
    serve.add_argument("--task-timeout", type=float, metavar="SECONDS",
                       help="fail a task that runs longer than this (a process-mode worker "
                            "kills and replaces its child); submit --timeout overrides it")

    worker = add_command(sub, "worker", "run a worker",
                         "Run one worker until stopped: it claims tasks in batches, runs them "
                         "and reports the results. Task functions ('mytasks:f') are imported "
                         "from the working directory and the --path folders.",
                         ["GUIDIST_AUTHKEY=KEY guidist worker --connect 127.0.0.1:5000",
                          "guidist worker --redis --mode process --path ./src"], parents)
    add_connection_options(worker)
    worker.add_argument("--path", action="append", metavar="DIR",
                        help="also import task functions from this folder (repeatable; the "
                             "working directory is always searched)")
    worker.add_argument("--name", metavar="NAME", help="shown in the window (default: host-pid)")
    worker.add_argument("--prefetch", type=int, metavar="N", default=DEFAULT_PREFETCH,
                        help="most tasks leased per claim (the batch adapts below it)")
    worker.add_argument("--give-up-after", type=float, metavar="SECONDS", default=60.0,
                        help="seconds without a server before exiting non-zero")
    worker.add_argument("--heartbeat", type=float, metavar="SECONDS", default=5.0,
                        help="heartbeat period (s)")
    worker.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--max-tasks", type=int, metavar="N", help="exit after this many tasks")
    worker.add_argument("--mode", choices=["inline", "process", "thread", "async"],
                        default="inline",
                        help="inline: one task at a time, fastest for tiny tasks; process: N "
                             "processes for CPU-bound work; thread: N threads for blocking I/O;"
                             " async: an event loop for async def / I/O-bound tasks")
    worker.add_argument("--tasks", metavar="NAME[,NAME...]",
                        help="claim only tasks of these functions (default: all)")
    worker.add_argument("--concurrency", type=int, metavar="N",
                        help="tasks at once (default: cores for process, 32 thread, 64 async)")

    submit = add_command(sub, "submit", "queue tasks",
                         "Queue tasks: one per integer of a range, N alike, or one per line "
                         "of a JSON-lines or CSV file. Arguments are Python literals, never "
                         "evaluated code.",
                         ["guidist submit --connect 127.0.0.1:5000 --range 1..1000",
                          "guidist submit --task primes --count 200 --arg 50000",
                          "guidist submit --task mytasks:resize --file jobs.jsonl --redis"],
                         parents)
    add_connection_options(submit)
    submit.add_argument("--task", default="square", metavar="NAME",
                        help="square, sleep, primes, fail, echo, io_wait, aio_wait or "
                             "package.module:function")
    how = submit.add_mutually_exclusive_group(required=True)
    how.add_argument("--range", metavar="A..B", help="one task per integer from A to B")
    how.add_argument("--count", type=int, metavar="N", help="N tasks with the same --arg")
    how.add_argument("--file", metavar="FILE", help="JSON lines (.jsonl) or CSV: one task per line")
    submit.add_argument("--arg", metavar="VALUE", help="the argument for --count, a Python literal")
    submit.add_argument("--job", metavar="NAME",
                        help="the job they join (made when new; default: one named after the "
                             "task and the time)")
    submit.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="fail each task that runs longer than this (default: the "
                             "server's --task-timeout, if any)")
    submit.add_argument("--skip", type=int, default=0, metavar="N",
                        help="leave out the first N tasks (to resume an interrupted submit)")

    status = add_command(sub, "status", "print the server's counts",
                         "Print the counts per state, the workers and the throughput, once or "
                         "(--watch) again every --interval seconds, in place on a terminal.",
                         ["guidist status --connect 127.0.0.1:5000",
                          "guidist status --json --redis", "guidist status --watch"], parents)
    add_connection_options(status)
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.add_argument("--watch", action="store_true",
                        help="refresh until Ctrl-C (one line per refresh when not a terminal)")
    status.add_argument("--interval", type=float, metavar="SECONDS", default=1.0,
                        help="seconds between refreshes with --watch")

    export = add_command(sub, "export", "write the task ledger as CSV or JSON lines",
                         "Write the task ledger (or the tasks in some states) as CSV or JSON "
                         "lines, from a journal file or from a live server.",
                         ["guidist export -o tasks.csv",
                          "guidist export --connect 127.0.0.1:5000 --state failed -o f.jsonl"],
                         parents)
    export.add_argument("--journal", metavar="FILE",
                        help="journal file (default: the per-user one, unless a server is "
                             "named)")
    add_connection_options(export)
    export.add_argument("--state", action="append",
                        choices=[s.value for s in TaskState], help="only these states")
    export.add_argument("--format", choices=["csv", "jsonl"], help="default: from -o's suffix")
    export.add_argument("-o", "--output", metavar="FILE",
                        help="file to write (default: standard output)")

    prune = add_command(sub, "prune", "delete old finished tasks from a journal",
                        "Delete old finished tasks from a journal's ledger; failures are kept "
                        "longer than successes.",
                        ["guidist prune --done-days 1 --keep-failed 10000"], parents)
    prune.add_argument("--journal", metavar="FILE", help="journal file (default: the per-user one)")
    prune.add_argument("--done-days", type=float, metavar="DAYS", default=7.0,
                       help="delete successes older than this")
    prune.add_argument("--failed-days", type=float, metavar="DAYS", default=30.0,
                       help="delete failures older than this (kept longer)")
    prune.add_argument("--keep-done", type=int, metavar="N",
                       help="keep at most this many successes")
    prune.add_argument("--keep-failed", type=int, metavar="N",
                       help="keep at most this many failures")

    for module in (control, task_view, workers, jobs):
        module.add_parsers(sub, parents)
    return parser


COMMANDS = {"gui": cmd_gui, "serve": cmd_serve, "worker": cmd_worker, "submit": cmd_submit,
            "status": cmd_status, "export": cmd_export, "prune": cmd_prune,
            **control.COMMANDS, **task_view.COMMANDS, **workers.COMMANDS, **jobs.COMMANDS}

_GLOBAL_FLAG = re.compile(r"^(-[vq]+|--verbose|--quiet)$")


def _default_to_gui(argv: list[str]) -> list[str]:
    """Insert "gui" when no command is named: ``guidist -v --demo`` opens the window."""
    i = 0
    while i < len(argv) and _GLOBAL_FLAG.match(argv[i]):
        i += 1
    if i == len(argv) or (argv[i].startswith("-") and argv[i] not in ("-h", "--help",
                                                                        "--version")):
        return [*argv[:i], "gui", *argv[i:]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``guidist`` console script."""
    argv = bare_redis_flags(_default_to_gui(list(sys.argv[1:] if argv is None else argv)))
    args = build_parser().parse_args(argv)
    args.verbose = verbosity(args)  # -v and -q, before and after the command, added up
    base = logging.INFO if args.command == "worker" else logging.WARNING
    level = min(logging.CRITICAL, max(logging.DEBUG, base - 10 * args.verbose))
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        return int(COMMANDS[args.command](args))
    except (CliError, GuidistError) as exc:
        print(f"guidist {args.command}: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # `guidist export | head`: the reader is done, so are we
        sys.stderr.close()
        return 0


def gui_main() -> int:
    """Entry point of the ``guidist-gui`` script (a windowed program on Windows: no console)."""
    return main(["gui", *sys.argv[1:]])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
