"""A/B experiments on guidist's end-to-end throughput (figure 1's b) with server or worker tweaks.

    python -m benchmarks.ab_server --variant default --variant gc=threshold:50000,20,100
    python -m benchmarks.ab_server --variant default --variant "worker=--prefetch 5000"

Each ``--variant`` is ``default``, ``gc=<tweak>`` (applied inside the server process, see
benchmarks/_hooks.py), ``worker=<extra guidist worker options>``, ``server:<option>=<int>`` (a
ServerProcess option such as ``server:keep_done=1000``), ``journal`` or a combination joined by
``+`` (e.g. ``journal+gc=disable``). Variants run in interleaved rounds; every one is
reported as a ratio to the first, per round (median, min–max). For trying a proposed core fix
end to end before it is made; not a figure of issue 4.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from typing import Any

from .common import (
    finish,
    fmt_summary,
    interleaved,
    machine_info,
    machine_line,
    parser,
    ratios,
    summary,
    table,
)
from .throughput import run_guidist

NAME = "ab_server"


def make(variant: str, n: int) -> Callable[[], dict[str, Any]]:
    """The run function for one variant string."""
    gc_tweak, worker_args, journal = None, (), False
    options: dict[str, Any] = {}
    for part in variant.split("+"):
        if part == "default":
            continue
        if part == "journal":
            journal = True
        elif part.startswith("gc="):
            if gc_tweak is not None:
                raise SystemExit(f"{variant!r}: one gc= tweak per variant")
            gc_tweak = part[3:]
        elif part.startswith("server:"):
            key, _, value = part[7:].partition("=")
            options[key] = int(value)
        elif part.startswith("worker="):
            worker_args = tuple(shlex.split(part[7:]))
        else:
            raise SystemExit(f"unknown variant part {part!r}")
    return lambda: run_guidist(n, journal, gc_tweak, worker_args, options)


def main(argv: list[str] | None = None) -> int:
    """Run the variants side by side and print their ratios to the first."""
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--variant", action="append", required=True, help="see the module docstring")
    p.add_argument("--tasks", type=int, default=None, help="tasks per run (default 1,000,000)")
    p.add_argument("--name", default=NAME, help="results/<name>.json (default ab_server)")
    args = p.parse_args(argv)
    n = args.tasks or (30_000 if args.quick else 1_000_000)
    rounds = args.rounds or (1 if args.quick else 5)
    info = machine_info()
    print(f"A/B — guidist end-to-end throughput, {n:,} squares, 2 workers, {rounds} rounds")
    print(machine_line(info))
    res = interleaved([(v, make(v, n)) for v in args.variant], rounds)
    base = args.variant[0]
    rows, out = [], {}
    for v, runs in res.items():
        tps = summary([r["tasks_per_s"] for r in runs])
        rel = ratios(runs, res[base], "tasks_per_s")
        out[v] = {"tasks_per_s": tps, f"ratio_to_{base}": rel, "runs": runs}
        row = [v, *fmt_summary(tps), *fmt_summary(rel)]
        if all("durable_tasks_per_s" in r for r in runs):
            durable = summary([r["durable_tasks_per_s"] for r in runs])
            out[v]["durable_tasks_per_s"] = durable
            row.append(fmt_summary(durable)[0])
        else:
            row.append("—")
        rows.append(row)
    print()
    print(table(["variant", "tasks/s median", "min – max", f"/ {base}", "min – max",
                 "durable tasks/s"], rows))
    payload = {"name": args.name, "argv": sys.argv[1:], "quick": args.quick, "rounds": rounds, "tasks": n, "machine": info,
               "variants": out}
    return finish(args.name, payload, args.no_save)


if __name__ == "__main__":
    sys.exit(main())
