"""A job's results in submission order, as rows for JSON lines or CSV (CLI and window)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from .client import Client
from .export import write_rows
from .protocol import Job, Task

RESULT_COLUMNS = ("id", "state", "result", "error", "args", "runtime")
_LOOKUP = 5000  # tasks per get_tasks call


def job_tasks(client: Client, job: Job) -> Iterator[tuple[int, Task | None]]:
    """(id, task) for every task of the job, in submission order, a few thousand per call."""
    chunk: list[int] = []
    for first, n in job.ranges:
        for tid in range(first, first + n):
            chunk.append(tid)
            if len(chunk) >= _LOOKUP:
                yield from zip(chunk, client.get_tasks(chunk))
                chunk = []
    if chunk:
        yield from zip(chunk, client.get_tasks(chunk))


def result_row(tid: int, task: Task | None) -> dict[str, Any]:
    """One line of ``guidist results``: JSON-friendly values."""
    if task is None:
        return {"id": tid, "state": "unknown", "result": None,
                "error": "no longer kept by the server", "args": None, "runtime": None}
    return {"id": tid, "state": task.state.value, "result": task.result, "error": task.error,
            "args": list(task.args), "runtime": task.runtime}


def write_results(rows: Iterator[dict[str, Any]], out: IO[str], fmt: str) -> int:
    """Write result rows as JSON lines or CSV (RESULT_COLUMNS); returns the count."""
    return write_rows(rows, out, fmt, RESULT_COLUMNS)
