"""Command line: ``guidist [gui] | serve | worker | submit | status | export``.

Every command that takes --authkey also reads GUIDIST_AUTHKEY, so keys need not appear in
process lists. Errors are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .core.backends.base import DEFAULTS
from .core.client import Client, iter_tasks
from .core.errors import GuidistError
from .core.paths import default_journal_path, journal_dir
from .core.protocol import Snapshot, TaskState
from .core.rows import RowError, iter_file_rows
from .core.security import generate_key, is_loopback, parse_address, to_bytes
from .core.tasks import as_args, check_task_name, parse_range, parse_value
from .core.urls import REDIS_URL_ENV, redact_url, resolve_url

KEY_ENV = "GUIDIST_AUTHKEY"
REDIS_ENV = REDIS_URL_ENV  # the Redis URL (and password) stays out of process lists
EXIT_USAGE = 2


class CliError(Exception):
    """Bad input on the command line: printed as one line, exit 2."""


# ---------------------------------------------------------------------- helpers


def _key_from(args: argparse.Namespace, required: bool) -> str | None:
    key = args.authkey if args.authkey is not None else os.environ.get(KEY_ENV)
    if key is None and required:
        raise CliError(f"no key: pass --authkey KEY or set {KEY_ENV} (the server printed it)")
    return key


def _address(text: str) -> tuple[str, int]:
    try:
        host, port = parse_address(text)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if port == 0:
        raise CliError(f"{text!r} has no port: write HOST:PORT, e.g. 127.0.0.1:5000")
    return host, port


def _client(args: argparse.Namespace) -> Client:
    return Client(_address(args.connect), _key_from(args, required=True) or "").connect()


def status_line(snap: Snapshot) -> str:
    """One line for people: the counts, the workers and the throughput."""
    if snap.kind == "classic":
        return (f"classic master: {snap.count('queued')} queued, "
                f"{snap.extra.get('results_waiting', 0)} results waiting")
    c = snap.count
    paused = " (paused)" if snap.paused else ""
    return (f"{c('queued')} queued, {c('running')} running, {c('done')} done, "
            f"{c('failed')} failed, {c('dead')} dead, {c('cancelled')} cancelled | "
            f"{snap.connected_workers} workers | {snap.throughput:,.0f} tasks/s{paused}")


# ---------------------------------------------------------------------- commands


def _redis_url(value: str | None) -> str:
    """A Redis URL from the option, else from $GUIDIST_REDIS_URL; CliError if there is none."""
    try:
        return resolve_url(value or None)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _backend_from(args: argparse.Namespace) -> str | None:
    """None for the embedded (in-memory + journal) backend, else the Redis URL."""
    choice = (getattr(args, "backend", None) or "memory").strip()
    if choice == "memory":
        return None
    return _redis_url(None if choice == "redis" else choice)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run a headless server until Ctrl-C."""
    from .core.server import ServerProcess

    key = _key_from(args, required=False)
    generated = key is None
    key = key or generate_key()
    backend = _backend_from(args)
    journal = None if args.no_journal or backend else (
        args.journal or str(default_journal_path(f"serve-{args.port}")))
    server = ServerProcess(args.host, args.port, key, insist_weak_key=args.insecure,
                           lease_timeout=args.lease_timeout, max_attempts=args.max_attempts,
                           journal=journal, backend=backend)
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
    if is_loopback(host):
        print("only this machine can connect; use --host 0.0.0.0 to accept other machines")
    sys.stdout.flush()
    client = Client((host if host != "0.0.0.0" else "127.0.0.1", port), key)
    try:
        while not stop.wait(args.interval):
            try:
                print(time.strftime("%H:%M:%S ") + status_line(client.snapshot()), flush=True)
            except GuidistError as exc:
                print(f"status unavailable: {exc}", flush=True)
    finally:
        client.close()
        server.stop()
        print("server stopped", flush=True)
    return 0


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

    redis_url = None
    if args.redis is not None or (args.connect is None and os.environ.get(REDIS_ENV)):
        redis_url = _redis_url(args.redis)  # straight to Redis: no server, no authkey
    elif args.connect is None:
        raise CliError(f"pass --connect HOST:PORT (a guidist server) or --redis URL (a Redis "
                       f"backend, also from {REDIS_ENV})")
    config = WorkerConfig(address=_address(args.connect) if redis_url is None else ("", 0),
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
    if redis_url is not None:
        target = redact_url(redis_url)
    else:
        target = args.connect
    logging.getLogger("guidist").info("worker %s connecting to %s", worker.name, target)
    return worker.run()


def cmd_submit(args: argparse.Namespace) -> int:
    """Queue tasks and say how many."""
    try:
        task = check_task_name(args.task)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.range:
        try:
            payloads: list[tuple] = [(n,) for n in parse_range(args.range)]
        except ValueError as exc:
            raise CliError(str(exc)) from None
        groups: dict[Any, list[tuple]] = {None: payloads}
    elif args.count is not None:
        if args.count < 0:
            raise CliError("--count must be 0 or more")
        try:
            arg = as_args(parse_value(args.arg)) if args.arg is not None else ()
        except ValueError as exc:
            raise CliError(f"--arg: {exc}") from None
        groups = {None: [arg] * args.count}
    else:
        groups = {}
        try:
            for a, kw in iter_file_rows(args.file):
                groups.setdefault(json.dumps(kw, sort_keys=True) if kw else None, []).append(a)
        except RowError as exc:
            raise CliError(str(exc)) from None
    client = _client(args)
    total = 0
    for kw_key, arg_list in groups.items():
        kwargs = json.loads(kw_key) if kw_key else None
        ids = client.submit_many(task, arg_list, kwargs)
        total += len(arg_list)
        if client.kind == "guidist" and len(ids):
            first, last = ids[0], ids[-1]
            print(f"queued {len(ids)} {task} task(s), ids {first}..{last}")
    if client.kind == "classic":
        print(f"queued {total} payload(s) on the classic task queue")
    elif total == 0:
        print("queued 0 tasks")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print the server's counts once."""
    snap = _client(args).snapshot()
    if args.json:
        print(json.dumps(snap.to_status(), sort_keys=True))
    else:
        print(status_line(snap))
        for w in snap.workers:
            print(f"  {w.id:<24} {w.host:<16} pid {w.pid:<7} {w.state.value:<8} "
                  f"done {w.done} failed {w.failed}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the ledger (or part of it) as CSV or JSON lines, from a journal or a live server."""
    from .core.backends.memory.journal import iter_ledger, write_export

    fmt = args.format or ("csv" if (args.output or "").lower().endswith(".csv") else "jsonl")
    states = args.state or None
    if args.connect:
        client = _client(args)
        tasks = (t for state in (states or [None]) for t in iter_tasks(client, state))
    else:
        tasks = iter_ledger(_journal_arg(args), states)
    if args.output and args.output != "-":
        try:
            out = open(args.output, "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise CliError(f"cannot write {args.output}: {exc.strerror}") from None
        with out:
            n = write_export(tasks, out, fmt)
        print(f"exported {n} task(s) to {args.output}", file=sys.stderr)
    else:
        n = write_export(tasks, sys.stdout, fmt)
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
    """Open the window."""
    try:
        from .gui.app import main as gui_main
    except ImportError as exc:
        raise CliError(f"the window is not available here ({exc}); the commands serve, worker, "
                       "submit and status work without it") from None
    return gui_main(args)


# ---------------------------------------------------------------------- parser


def _add_key(p: argparse.ArgumentParser) -> None:
    p.add_argument("--authkey", help=f"the server's key (default: ${KEY_ENV})")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for every command."""
    parser = argparse.ArgumentParser(prog="guidist", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command")

    def add_gui_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", default="127.0.0.1", help="address to listen on")
        p.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
        p.add_argument("--demo", action="store_true",
                       help="start the server, 2 workers and a steady mixed load")
        p.add_argument("--no-journal", action="store_true", help="keep state in memory only")
        p.add_argument("--journal", help="SQLite journal file")

    gui = sub.add_parser("gui", help="open the window (the default)")
    add_gui_options(gui)
    _add_key(gui)

    serve = sub.add_parser("serve", help="run a headless server")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=5000, help="port (0: any free port)")
    _add_key(serve)
    serve.add_argument("--insecure", action="store_true",
                       help="accept a weak key on a non-loopback address")
    serve.add_argument("--lease-timeout", type=float, default=DEFAULTS.lease_timeout,
                       help="seconds without a heartbeat before a worker's tasks are requeued")
    serve.add_argument("--max-attempts", type=int, default=DEFAULTS.max_attempts,
                       help="lease expiries before a task is dead")
    serve.add_argument("--journal", help="SQLite journal file (default: per-user data dir)")
    serve.add_argument("--no-journal", action="store_true", help="keep state in memory only")
    serve.add_argument("--backend", metavar="memory|redis://HOST:PORT/DB",
                       help="where the queue's state lives: memory (default, with the journal) "
                            f"or a Redis URL ('redis' alone reads ${REDIS_ENV})")
    serve.add_argument("--interval", type=float, default=5.0, help="seconds between status lines")

    worker = sub.add_parser("worker", help="run a worker")
    worker.add_argument("--connect", metavar="HOST:PORT", help="the guidist server")
    worker.add_argument("--redis", nargs="?", const="", metavar="URL",
                        help=f"work straight from a Redis backend (URL default: ${REDIS_ENV})")
    _add_key(worker)
    worker.add_argument("--name", help="shown in the window (default: host-pid)")
    worker.add_argument("--prefetch", type=int, default=1000,
                        help="most tasks leased per claim (the batch adapts below it)")
    worker.add_argument("--give-up-after", type=float, default=60.0,
                        help="seconds without a server before exiting non-zero")
    worker.add_argument("--heartbeat", type=float, default=5.0, help="heartbeat period (s)")
    worker.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--max-tasks", type=int, help="exit after this many tasks")
    worker.add_argument("--mode", choices=["inline", "process", "thread", "async"],
                        default="inline",
                        help="inline: one task at a time, fastest for tiny tasks; process: N "
                             "processes for CPU-bound work; thread: N threads for blocking I/O;"
                             " async: an event loop for async def / I/O-bound tasks")
    worker.add_argument("--tasks", metavar="NAME[,NAME...]",
                        help="claim only tasks of these functions (default: all)")
    worker.add_argument("--concurrency", type=int,
                        help="tasks at once (default: cores for process, 32 thread, 64 async)")

    submit = sub.add_parser("submit", help="queue tasks")
    submit.add_argument("--connect", required=True, metavar="HOST:PORT")
    _add_key(submit)
    submit.add_argument("--task", default="square",
                        help="square, sleep, primes, fail, echo, io_wait, aio_wait or "
                             "package.module:function")
    how = submit.add_mutually_exclusive_group(required=True)
    how.add_argument("--range", metavar="A..B", help="one task per integer from A to B")
    how.add_argument("--count", type=int, help="N tasks with the same --arg")
    how.add_argument("--file", help="JSON lines (.jsonl) or CSV: one task per line")
    submit.add_argument("--arg", help="the argument for --count, a Python literal")

    status = sub.add_parser("status", help="print the server's counts")
    status.add_argument("--connect", required=True, metavar="HOST:PORT")
    _add_key(status)
    status.add_argument("--json", action="store_true", help="one JSON object")

    export = sub.add_parser("export", help="write the task ledger as CSV or JSON lines")
    where = export.add_mutually_exclusive_group()
    where.add_argument("--journal", help="journal file (default: the per-user one)")
    where.add_argument("--connect", metavar="HOST:PORT", help="a live server instead")
    _add_key(export)
    export.add_argument("--state", action="append",
                        choices=[s.value for s in TaskState], help="only these states")
    export.add_argument("--format", choices=["csv", "jsonl"], help="default: from -o's suffix")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")

    prune = sub.add_parser("prune", help="delete old finished tasks from a journal")
    prune.add_argument("--journal", help="journal file (default: the per-user one)")
    prune.add_argument("--done-days", type=float, default=7.0,
                       help="delete successes older than this")
    prune.add_argument("--failed-days", type=float, default=30.0,
                       help="delete failures older than this (kept longer)")
    prune.add_argument("--keep-done", type=int, help="keep at most this many successes")
    prune.add_argument("--keep-failed", type=int, help="keep at most this many failures")
    return parser


COMMANDS = {"gui": cmd_gui, "serve": cmd_serve, "worker": cmd_worker, "submit": cmd_submit,
            "status": cmd_status, "export": cmd_export, "prune": cmd_prune}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``guidist`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "-v",
                                                               "--verbose"):
        argv = ["gui", *argv]  # `guidist --demo` opens the window
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["gui", *argv])
    level = logging.WARNING - 10 * min(args.verbose, 2)
    if args.command == "worker":
        level = min(level, logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        return COMMANDS[args.command](args)
    except CliError as exc:
        print(f"guidist {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GuidistError as exc:
        print(f"guidist {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `guidist export | head`: the reader is done, so are we
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
