"""Figure 1 (guidist rows) across source trees: before and after a change, side by side.

    git worktree add /tmp/before <commit>
    python -m benchmarks.ab_trees --tree before=/tmp/before --tree after=. [--tasks N] [--rounds R]

Each run is ``benchmarks.throughput.run_guidist`` (2 local workers, N trivial squares, journal
on and off) executed by a fresh interpreter inside that tree, with the tree first on
PYTHONPATH, so the server, the workers and the client all run that tree's code. Rounds are
interleaved and the order rotates each round, as everywhere in these benchmarks; ratios are
taken per round against the first tree. The figures are saved as
``benchmarks/results/ab_trees.json``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from .common import (
    finish,
    fmt_summary,
    machine_info,
    machine_line,
    parser,
    run_in_tree,
    summary,
    table,
)

NAME = "ab_trees"
_RUN = ("import json, sys; sys.path.insert(0, '.');"
        "from benchmarks.throughput import run_guidist;"
        "print('RESULT ' + json.dumps(run_guidist({n}, {journal})))")


def run_in(tree: Path, n: int, journal: bool) -> dict[str, Any]:
    """One run_guidist in tree, in its own interpreter."""
    return run_in_tree(tree, ["-c", _RUN.format(n=n, journal=journal)])


def _commit_of(tree: Path) -> str:
    """The tree's git commit (its path is no use on another machine)."""
    out = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True,
                         text=True)
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    """Run the trees side by side; print and save the table."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--tree", action="append", required=True, metavar="NAME=PATH",
                   help="a source tree to measure (the first is the baseline)")
    p.add_argument("--tasks", type=int, default=1_000_000)
    args = p.parse_args(argv)
    trees = [(name, Path(path).resolve()) for name, _, path in
             (t.partition("=") for t in args.tree)]
    rounds = args.rounds or (1 if args.quick else 4)
    n = 30_000 if args.quick else args.tasks
    variants = [(f"{name}, journal {'on' if j else 'off'}", tree, j)
                for name, tree in trees for j in (True, False)]
    res: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in variants}
    info = machine_info()
    print(machine_line(info))
    for r in range(rounds):
        for label, tree, journal in variants[r % len(variants):] + variants[:r % len(variants)]:
            out = run_in(tree, n, journal)
            out["round"] = r
            res[label].append(out)
            print(f"  round {r + 1}/{rounds}  {label:<28} {out['tasks_per_s']:>10,.0f} tasks/s"
                  f"  submit {out['submit_seconds']:.2f} s", flush=True)
    base = trees[0][0]
    rows = []
    for label, runs in res.items():
        rows.append([f"{label}, tasks/s",
                     *fmt_summary(summary([x["tasks_per_s"] for x in runs]))])
        rows.append([f"{label}, submit s",
                     *fmt_summary(summary([x["submit_seconds"] for x in runs]))])
        if runs and "durable_tasks_per_s" in runs[0]:
            rows.append([f"{label}, until on disk/s",
                         *fmt_summary(summary([x["durable_tasks_per_s"] for x in runs]))])
    ratios: dict[str, Any] = {}
    for name, _ in trees[1:]:
        for j in ("on", "off"):
            a, b = res[f"{name}, journal {j}"], res[f"{base}, journal {j}"]
            for key in ("tasks_per_s", "submit_seconds"):
                per_round = [x[key] / y[key] for x, y in zip(a, b)]
                ratios[f"{name} / {base}, journal {j}, {key}"] = summary(per_round)
                rows.append([f"{name} ÷ {base}, journal {j}, {key}",
                             *fmt_summary(summary(per_round))])
    print(table(["", "median", "min – max"], rows))
    return finish(NAME, {"name": NAME, "rounds": rounds, "tasks": n, "machine": info,
                         "trees": {name: _commit_of(tree) for name, tree in trees}, "runs": res,
                         "ratios": ratios, "method": __doc__}, args.no_save)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
