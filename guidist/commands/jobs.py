"""``guidist jobs | wait | results``: follow a batch of tasks as one unit."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ..core.client import Client
from ..core.errors import ExitCode, NotFound
from ..core.job_results import job_tasks, result_row, write_results
from ..core.protocol import Job
from .connection import add_connection_options, connected, require_target
from .failures import CliError
from .help import add_command
from .output import output_format, write_output


def fmt_eta(seconds: float | None) -> str:
    """An ETA for people: "-" when unknown, else 12 s, 4 min 05 s, 2 h 10 min."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def job_table(jobs: Sequence[Job]) -> list[str]:
    """The jobs as aligned text columns, newest first (what ``guidist jobs`` prints)."""
    rows = [("ID", "NAME", "FUNCTION", "STATE", "DONE/TOTAL", "FAILED", "RATE/S", "ETA")]
    for j in jobs:
        rows.append((str(j.id), j.name, j.function or "-", j.state, f"{j.done}/{j.total}",
                     str(j.failed + j.dead), f"{j.rate:,.1f}", fmt_eta(j.eta_s)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def find_job(client: Client, ref: str, where: str) -> Job:
    """The job by name or id, or NotFound (exit 5) saying what there is instead."""
    job = client.job(ref)
    if job is None:
        names = ", ".join(j.name for j in client.jobs()[:5])
        raise NotFound(f"no job {ref!r} on {where}" + (f" (newest: {names})" if names else ""))
    return job


def cmd_jobs(args: argparse.Namespace) -> int:
    """List the jobs: counts, rate, ETA and state."""
    with connected(args) as client:
        jobs = client.jobs()
    if args.json:
        print(json.dumps([j.to_dict() for j in jobs], sort_keys=True))
    elif not jobs:
        print("no jobs yet")
    else:
        print("\n".join(job_table(jobs)))
    return 0


def progress_line(job: Job, width: int) -> str:
    """A progress bar of a job (done, failed, remaining) and its figures, in width columns."""
    figures = (f" {job.done}/{job.total} done"
               + (f", {job.failed + job.dead} failed" if job.failed + job.dead else "")
               + (f", {job.cancelled} cancelled" if job.cancelled else "")
               + f" | {job.rate:,.0f}/s | ETA {fmt_eta(job.eta_s)}")
    bar = max(10, min(40, width - len(figures) - 3))
    total = max(job.total, 1)
    n_done = round(bar * job.done / total)
    n_left = min(round(bar * job.remaining / total), bar - n_done)
    n_bad = bar - n_done - n_left  # failed, dead, cancelled: what rounding leaves is theirs
    if not (job.failed or job.dead or job.cancelled):
        n_done, n_bad = n_done + n_bad, 0
    return f"[{'#' * n_done}{'x' * n_bad}{'.' * n_left}]{figures}"


def summary_line(job: Job) -> str:
    """How a finished job ended, in one line."""
    parts = [f"{job.done} done"]
    for label, n in (("failed", job.failed), ("dead", job.dead), ("cancelled", job.cancelled)):
        if n:
            parts.append(f"{n} {label}")
    return f"job {job.name} (id {job.id}) {job.state}: {', '.join(parts)} of {job.total}"


def wait_for_job(read: Callable[[], Job], timeout: float | None, out: TextIO, tty: bool,
                 every: float = 5.0, poll: float = 0.5,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> tuple[Job, bool]:
    """Read the job until nothing of it is left to run, showing progress: a bar redrawn in
    place on a terminal, a line every few seconds otherwise. Returns (job, timed out)."""
    start = clock()
    last_line = -1e9
    width = shutil.get_terminal_size((80, 20)).columns - 1
    while True:
        job = read()  # constant-time on the server: the job's counters, not its tasks
        now = clock()
        finished = job.remaining == 0
        late = timeout is not None and now - start >= timeout
        if tty:
            out.write("\r" + progress_line(job, width).ljust(width))
            if finished or late:
                out.write("\n")
            out.flush()
        elif finished or late or now - last_line >= every:
            out.write(progress_line(job, 120) + "\n")
            out.flush()
            last_line = now
        if finished or late:
            return job, not finished
        sleep(poll)


def cmd_wait(args: argparse.Namespace) -> int:
    """Wait until a job has nothing left to run; exit 0 only if every task is done."""
    if args.timeout is not None and args.timeout < 0:
        raise CliError("--timeout must be 0 or more")
    where = require_target(args).describe()
    with connected(args) as client:
        job = find_job(client, args.job, where)

        def read() -> Job:
            j = client.job(job.id)
            if j is None:
                raise NotFound(f"job {job.name} (id {job.id}) is no longer on {where}")
            return j

        tty = args.progress if args.progress is not None else sys.stdout.isatty()
        job, timed_out = wait_for_job(read, args.timeout, sys.stdout, tty, args.interval)
    if timed_out:
        print(f"guidist wait: {job.remaining} task(s) of job {job.name} still to run after "
              f"{args.timeout:g} s", file=sys.stderr)
        return ExitCode.TIMEOUT
    print(summary_line(job))
    return 0 if job.ok else ExitCode.FAILED


def cmd_results(args: argparse.Namespace) -> int:
    """Write a job's results in submission order."""
    fmt = output_format(args)
    where = require_target(args).describe()
    with connected(args) as client:
        job = find_job(client, args.job, where)
        rows = (result_row(tid, t) for tid, t in job_tasks(client, job))
        write_output(args, lambda out: write_results(rows, out, fmt),
                     f"result(s) of job {job.name}")
    return 0


def add_parsers(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """The job commands' parsers."""
    p = add_command(sub, "jobs", "list the jobs",
                    "List the jobs, newest first: every submission belongs to one (named with "
                    "submit --job, or after its function and the time). Counts, rate and ETA "
                    "are kept by the server as tasks move, so this is cheap for any size.",
                    ["guidist jobs --connect 127.0.0.1:5000", "guidist jobs --json --redis"],
                    parents)
    p.add_argument("--json", action="store_true",
                   help="a JSON list: id, name, function, total, queued, running, done, "
                        "failed, dead, cancelled, eta_s and more")
    add_connection_options(p)
    p = add_command(sub, "wait", "wait for a job to finish",
                    "Wait until a job has no task left to run, with a progress bar on a "
                    "terminal (a line every --interval seconds otherwise). Exits 0 when every "
                    "task is done, 1 when any failed, died or was cancelled, 7 on --timeout.",
                    ["guidist wait nightly --connect 127.0.0.1:5000",
                     "guidist wait 12 --timeout 600 && guidist results 12 -o out.csv"],
                    parents)
    p.add_argument("job", metavar="JOB", help="the job's name or id")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="give up (exit 7) after this long")
    p.add_argument("--interval", type=float, metavar="SECONDS", default=5.0,
                   help="seconds between progress lines when not on a terminal")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="the redrawn progress bar (default: on a terminal only)")
    add_connection_options(p)
    p = add_command(sub, "results", "write a job's results",
                    "Write a job's results in submission order, one per task, as JSON lines "
                    "or CSV: id, state, result, error, args, runtime. Results the server no "
                    "longer holds in memory are read back from its journal.",
                    ["guidist results nightly -o nightly.jsonl",
                     "guidist results 12 --format csv --connect 127.0.0.1:5000"], parents)
    p.add_argument("job", metavar="JOB", help="the job's name or id")
    p.add_argument("--format", choices=["csv", "jsonl"], help="default: from -o's suffix")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="file to write (default: standard output)")
    add_connection_options(p)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "jobs": cmd_jobs, "wait": cmd_wait, "results": cmd_results,
}
