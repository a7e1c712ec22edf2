"""pause, resume, cancel, retry and purge: the window's task buttons as commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ..core.errors import ExitCode
from ..core.tasks import parse_range
from .connection import add_connection_options, connected, require_target
from .failures import CliError
from .help import add_command
from .jobs import find_job


def parse_ids(texts: Sequence[str]) -> list[int]:
    """Task ids as typed: integers and inclusive A..B ranges ("7 10..12" is 7, 10, 11, 12)."""
    out: list[int] = []
    for text in texts:
        for part in text.replace(",", " ").split():
            try:
                out.extend(parse_range(part) if ".." in part else [int(part)])
            except ValueError as exc:
                msg = str(exc) if ".." in part else f"{part!r} is not a task id (an integer)"
                raise CliError(msg) from None
    return out


def _ids_or_error(args: argparse.Namespace, verb: str) -> list[int]:
    ids = parse_ids(args.ids)
    if not ids:
        raise CliError(f"pass the ids of the tasks to {verb} (e.g. 7 10..12)")
    return ids


def cmd_pause(args: argparse.Namespace) -> int:
    """Stop handing out tasks; queued ones stay queued."""
    with connected(args) as client:
        client.pause()
    print(f"paused {require_target(args).describe()}: queued tasks wait until "
          "'guidist resume'; running ones finish")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """Hand out tasks again."""
    with connected(args) as client:
        client.resume()
    print(f"resumed {require_target(args).describe()}: queued tasks are handed out again")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel queued tasks by id, or every queued task of a job (--job)."""
    if args.job is not None:
        if args.ids:
            raise CliError("pass task ids or --job, not both")
        with connected(args) as client:
            job = find_job(client, args.job, require_target(args).describe())
            n = client.cancel_job(job.id)
        print(f"cancelled {n} queued task(s) of job {job.name} (id {job.id})")
        return 0
    ids = _ids_or_error(args, "cancel")
    with connected(args) as client:
        n = client.cancel(ids)
    note = "" if n == len(ids) else " (only queued tasks can be cancelled)"
    print(f"cancelled {n} of {len(ids)} task(s){note}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    """Queue failed or dead tasks again: by id, or every one with --all-failed."""
    if sum(map(bool, (args.all_failed, args.ids, args.job is not None))) > 1:
        raise CliError("pass one of task ids, --all-failed and --job, not both")
    if args.job is not None:
        with connected(args) as client:
            job = find_job(client, args.job, require_target(args).describe())
            n = client.retry_job(job.id)
        print(f"queued {n} failed or dead task(s) of job {job.name} (id {job.id}) again")
        return 0
    ids = None if args.all_failed else _ids_or_error(args, "retry")
    with connected(args) as client:
        n = client.retry_all() if ids is None else client.retry(ids)
    if ids is None:
        print(f"queued {n} failed or dead task(s) again")
    else:
        note = "" if n == len(ids) else " (only failed or dead tasks can be retried)"
        print(f"queued {n} of {len(ids)} task(s) again{note}")
    return 0


def confirm(question: str, stdin: TextIO | None = None, stderr: TextIO | None = None) -> bool:
    """Ask a yes/no question on the terminal (the question goes to stderr); default no."""
    stdin, stderr = stdin or sys.stdin, stderr or sys.stderr
    stderr.write(f"{question} [y/N] ")
    stderr.flush()
    answer = stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_purge(args: argparse.Namespace,
              is_terminal: Callable[[], bool] = lambda: sys.stdin.isatty()) -> int:
    """Cancel every queued task; asks first on a terminal, --yes skips the question."""
    if not args.yes and not is_terminal():
        raise CliError("purge cancels every queued task: pass --yes to do it without a "
                       "terminal to ask on")
    where = require_target(args).describe()
    with connected(args) as client:
        if not args.yes:
            queued = client.snapshot().count("queued")
            if not confirm(f"Cancel all {queued} queued task(s) on {where}?"):
                print("nothing purged", file=sys.stderr)
                return ExitCode.FAILED
        n = client.purge()
    print(f"cancelled {n} queued task(s) on {where}")
    return 0


def add_parsers(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """The control commands' parsers."""
    p = add_command(sub, "pause", "stop handing out tasks",
                    "Stop handing out tasks, as the window's Pause button does. Queued tasks "
                    "stay queued, running ones finish; 'guidist resume' undoes it.",
                    ["guidist pause --connect 127.0.0.1:5000"], parents)
    add_connection_options(p)
    p = add_command(sub, "resume", "hand out tasks again",
                    "Hand out queued tasks again after 'guidist pause'.",
                    ["GUIDIST_CONNECT=127.0.0.1:5000 guidist resume"], parents)
    add_connection_options(p)
    p = add_command(sub, "cancel", "cancel queued tasks",
                    "Cancel queued tasks by id; tasks already running or finished are left "
                    "as they are. Ids are integers or inclusive ranges A..B.",
                    ["guidist cancel 7 10..12 --connect 127.0.0.1:5000",
                     "guidist cancel --job nightly"], parents)
    p.add_argument("ids", nargs="*", metavar="ID", help="task ids or ranges A..B")
    p.add_argument("--job", metavar="JOB", help="every queued task of this job (name or id)")
    add_connection_options(p)
    p = add_command(sub, "retry", "queue failed or dead tasks again",
                    "Queue failed or dead tasks again, by id or all of them, as the window's "
                    "Retry and Retry all failed do. Their attempts start again.",
                    ["guidist retry 42 --connect 127.0.0.1:5000",
                     "guidist retry --all-failed --redis", "guidist retry --job nightly"],
                    parents)
    p.add_argument("ids", nargs="*", metavar="ID", help="task ids or ranges A..B")
    p.add_argument("--all-failed", action="store_true", help="every failed and dead task")
    p.add_argument("--job", metavar="JOB",
                   help="every failed and dead task of this job (name or id)")
    add_connection_options(p)
    p = add_command(sub, "purge", "cancel every queued task",
                    "Cancel every queued task. On a terminal it asks first; elsewhere (a "
                    "script, CI) it needs --yes.",
                    ["guidist purge --connect 127.0.0.1:5000",
                     "guidist purge --yes --connect 127.0.0.1:5000"], parents)
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    add_connection_options(p)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "pause": cmd_pause, "resume": cmd_resume, "cancel": cmd_cancel, "retry": cmd_retry,
    "purge": cmd_purge,
}
