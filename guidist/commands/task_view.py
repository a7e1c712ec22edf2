"""``guidist task ID``: one task in full, for people or as JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

from ..core.errors import NotFound
from ..core.protocol import Task
from .connection import add_connection_options, connected, require_target
from .help import add_command


def task_to_dict(task: Task) -> dict[str, Any]:
    """Every field of a task (new fields included), enums as their values."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(task):
        value = getattr(task, f.name)
        out[f.name] = value.value if isinstance(value, Enum) else value
    if isinstance(out.get("exception"), bytes):  # pickled by the worker: its size, not bytes
        out["exception"] = f"<pickled exception, {len(out['exception'])} bytes>"
    if isinstance(out.get("args"), tuple):
        out["args"] = list(out["args"])
    return out


def _when(t: float | None) -> str:
    if not t:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


def task_lines(task: Task) -> list[str]:
    """The task as a short report: state, call, times, worker, then result or traceback."""
    kwargs = ", ".join(f"{k}={v!r}" for k, v in (task.kwargs or {}).items())
    call_args = ", ".join([*(repr(a) for a in task.args), *([kwargs] if kwargs else [])])
    lines = [f"task {task.id}: {task.state.value}",
             f"  call       {task.function}({call_args})",
             f"  attempts   {task.attempts}",
             f"  submitted  {_when(task.submitted)}",
             f"  started    {_when(task.started)}",
             f"  finished   {_when(task.finished)}"]
    if task.waited is not None:
        lines.append(f"  waited     {task.waited:.3f} s")
    if task.runtime is not None:
        lines.append(f"  ran        {task.runtime:.6f} s (measured by the worker)")
    if task.job is not None:
        lines.append(f"  job        {task.job}")
    known = {f.name for f in dataclasses.fields(Task)} - {
        "id", "function", "args", "kwargs", "state", "attempts", "submitted", "started",
        "finished", "worker", "result", "error", "runtime", "job", "exception"}
    for name in sorted(known):  # fields added after this report was written still show
        lines.append(f"  {name:<10} {getattr(task, name)!r}")
    lines.append(f"  worker     {task.worker or '-'}")
    if task.error:
        lines.append("  error:")
        lines.extend(f"    {line}" for line in task.error.rstrip().splitlines())
    elif task.state.value == "done":
        lines.append(f"  result     {task.result!r}")
    return lines


def cmd_task(args: argparse.Namespace) -> int:
    """Print one task in full."""
    with connected(args) as client:
        task = client.get_task(args.id)
    if task is None:
        raise NotFound(f"no task {args.id} on {require_target(args).describe()} (finished "
                       "tasks that left the server's memory are in its journal: guidist "
                       "export)")
    if args.json:
        print(json.dumps(task_to_dict(task), sort_keys=True, default=repr))
    else:
        print("\n".join(task_lines(task)))
    return 0


def add_parsers(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """The task command's parser."""
    p = add_command(sub, "task", "show one task in full",
                    "Show one task in full: its call, state, attempts, times, worker, and its "
                    "result or traceback, as the window's task details do.",
                    ["guidist task 42 --connect 127.0.0.1:5000",
                     "guidist task 42 --json --redis"], parents)
    p.add_argument("id", type=int, metavar="ID", help="the task id")
    p.add_argument("--json", action="store_true", help="one JSON object")
    add_connection_options(p)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"task": cmd_task}
