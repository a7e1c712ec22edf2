"""Tasks and results as CSV or JSON lines: the one writer behind ``export``, ``results`` and the
window's Export buttons."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import IO, Any

from .protocol import Task

FORMATS = ("csv", "jsonl")
EXPORT_COLUMNS = ("id", "function", "args", "kwargs", "state", "attempts", "submitted",
                  "started", "finished", "runtime", "worker", "result", "error")
#: Columns whose values are Python objects: CSV cells carry them as JSON text.
_JSON_COLUMNS = frozenset({"args", "kwargs", "result"})


def iso_time(t: float | None) -> str | None:
    """An epoch time as ISO-8601 in UTC with microseconds (``2024-05-01T12:00:00.250000Z``)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"


def task_to_row(task: Task) -> dict[str, Any]:
    """A task as a flat dict of JSON-friendly values; times in ISO-8601 UTC, runtime in s."""
    return {"id": task.id, "function": task.function, "args": list(task.args),
            "kwargs": task.kwargs, "state": task.state.value, "attempts": task.attempts,
            "submitted": iso_time(task.submitted or None), "started": iso_time(task.started),
            "finished": iso_time(task.finished), "runtime": task.runtime,
            "worker": task.worker, "result": task.result, "error": task.error}


def write_rows(rows: Iterable[dict[str, Any]], out: IO[str], fmt: str,
               columns: tuple[str, ...]) -> int:
    """Write dict rows as CSV (with a header of columns) or JSON lines; returns the count.

    Values JSON lacks become their repr; in CSV, object columns (args, kwargs, result) are JSON
    text, and an empty kwargs is an empty cell.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use csv or jsonl")
    n = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, default=repr) + "\n")
            n += 1
        return n
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        cells = dict(row)
        for k in _JSON_COLUMNS.intersection(cells):
            value = cells[k]
            cells[k] = "" if k == "kwargs" and not value else json.dumps(value, default=repr)
        writer.writerow(cells)
        n += 1
    return n


def write_export(tasks: Iterable[Task], out: IO[str], fmt: str) -> int:
    """Write tasks as CSV or JSON lines (EXPORT_COLUMNS); returns the count."""
    return write_rows((task_to_row(t) for t in tasks), out, fmt, EXPORT_COLUMNS)
