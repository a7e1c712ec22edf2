"""``guidist workers`` (every worker the server knows) and ``guidist workers stop NAME...``."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

from ..core.errors import NotAGuidistServer, NotFound
from ..core.protocol import WorkerInfo, WorkerState, host_label
from .connection import add_connection_options, connected, require_target
from .failures import CliError
from .help import add_command

#: Cursors past any real one: the snapshot then carries the workers and the server's clock
#: without the series points or events a monitor would want.
_NOTHING_NEW = 2**53


def worker_to_dict(w: WorkerInfo, now: float) -> dict[str, Any]:
    """Every field of a worker (resource fields too, as they are added), plus how long ago
    its last heartbeat was on the server's clock."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(w):
        value = getattr(w, f.name)
        out[f.name] = value.value if isinstance(value, Enum) else (
            list(value) if isinstance(value, tuple) else value)
    out["last_heartbeat_s"] = round(max(0.0, now - w.last_seen), 3) if w.last_seen else None
    return out


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def worker_table(rows: list[dict[str, Any]]) -> list[str]:
    """The workers as an aligned table, one line each."""
    head = ("NAME", "HOST", "PID", "STATE", "MODE", "RUNNING", "CLAIMED", "DONE", "FAILED",
            "CPU", "MEMORY", "TASK", "HEARTBEAT")
    body = []
    for r in rows:
        mode = r["mode"] if r.get("concurrency", 1) <= 1 else f"{r['mode']} x{r['concurrency']}"
        body.append((r["name"] or r["id"], host_label(r["host"], r.get("address", "")),
                     str(r["pid"]), r["state"], mode,
                     str(r.get("running", 0)), str(r.get("claimed", 0)),
                     str(r["done"]), str(r["failed"]),
                     "-" if r.get("cpu_percent") is None else f"{r['cpu_percent']:.0f} %",
                     "-" if r.get("rss_bytes") is None else f"{r['rss_bytes'] / 2**20:.0f} MiB",
                     "-" if r.get("current_task") is None else str(r["current_task"]),
                     _ago(r["last_heartbeat_s"])))
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
            for row in (head, *body)]


def cmd_workers(args: argparse.Namespace) -> int:
    """List the workers, or ask some to stop."""
    if getattr(args, "workers_action", None) == "stop":
        return _stop(args)
    with connected(args) as client:
        snap = client.snapshot(_NOTHING_NEW, _NOTHING_NEW)
    if snap.kind == "classic":
        raise NotAGuidistServer(f"{require_target(args).describe()} is a classic tutorial "
                                "master: it does not know its workers.")
    rows = [worker_to_dict(w, snap.time) for w in snap.workers]
    if args.json:
        print(json.dumps(rows, sort_keys=True, default=repr))
    elif not rows:
        print(f"no workers on {require_target(args).describe()}")
    else:
        print("\n".join(worker_table(rows)))
    return 0


def _stop(args: argparse.Namespace) -> int:
    if args.all and args.names:
        raise CliError("pass worker names or --all, not both")
    if not args.all and not args.names:
        raise CliError("pass the names of the workers to stop (guidist workers lists them), "
                       "or --all")
    with connected(args) as client:
        live = [w for w in client.workers() if w.state is not WorkerState.OFFLINE]
        if args.all:
            chosen = live
        else:
            by_name: dict[str, WorkerInfo] = {}
            for w in live:
                by_name.setdefault(w.name, w)
                by_name[w.id] = w
            unknown = [n for n in args.names if n not in by_name]
            if unknown:
                known = ", ".join(sorted({w.name or w.id for w in live})) or "none"
                raise NotFound(f"no connected worker named {', '.join(unknown)} "
                               f"(connected: {known})")
            chosen = list({by_name[n].id: by_name[n] for n in args.names}.values())
        n = client.request_stop([w.id for w in chosen]) if chosen else 0
    print(f"asked {n} worker(s) to stop: each finishes the task at hand and hands back the "
          "rest")
    return 0


def add_parsers(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """The workers command's parsers (and its stop subcommand)."""
    p = add_command(sub, "workers", "list the workers, or stop some",
                    "List every worker the server knows: where it runs, its state and mode, "
                    "what it has done and when it last sent a heartbeat. 'guidist workers stop "
                    "NAME...' asks workers (remote ones too) to leave, as the window's Stop "
                    "does.",
                    ["guidist workers --connect 127.0.0.1:5000",
                     "guidist workers --json --redis",
                     "guidist workers stop build-7-4242 --connect 127.0.0.1:5000"], parents)
    p.add_argument("--json", action="store_true", help="a JSON array, one object per worker")
    add_connection_options(p)
    actions = p.add_subparsers(dest="workers_action", metavar="{stop}")
    stop = add_command(actions, "stop", "ask workers to finish their task and leave",
                       "Ask workers to finish the task at hand, hand back the rest and exit "
                       "(remote ones too). NAME is a worker's name or id, as "
                       "'guidist workers' shows it.",
                       ["guidist workers stop build-7-4242 --connect 127.0.0.1:5000",
                        "guidist workers stop --all --redis"], parents)
    stop.add_argument("names", nargs="*", metavar="NAME", help="worker names or ids")
    stop.add_argument("--all", action="store_true", help="every connected worker")
    # The stop parser's own copies must not reset what was given before "stop".
    add_connection_options(stop)
    for action in stop._actions:
        if action.dest in ("connect", "redis", "authkey"):
            action.default = argparse.SUPPRESS


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"workers": cmd_workers}
