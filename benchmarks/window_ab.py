"""Figure 4 across source trees: the window before and after a change, in alternating runs.

    git worktree add /tmp/before <commit>
    python -m benchmarks.window_ab --tree before=/tmp/before --tree after=. [--runs R] [--tasks N]

Each run is one round of ``benchmarks.window_responsiveness`` (idle, then full load) in a fresh
interpreter whose ``guidist`` is that tree's and whose benchmark code is this one's: a staging
directory holds the two side by side and is the run's working directory and PYTHONPATH, so the
window, its server, its workers and its network process all run that tree's code under the same
probe and the same load. The order of the trees rotates each run. Saved as
``benchmarks/results/window_ab.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .common import finish, fmt, machine_info, machine_line, parser, summary, table
from .window_responsiveness import _who

NAME = "window_ab"  # no FIGURE: run_all skips it (it needs the trees to compare)
HERE = Path(__file__).resolve().parent
FULL = {"tasks": 3_000_000, "runs": 5}
QUICK = {"tasks": 30_000, "runs": 1}


def stage(tree: Path, into: Path) -> Path:
    """A directory with the tree's guidist and this benchmark code side by side."""
    into.mkdir(parents=True)
    (into / "guidist").symlink_to(tree.resolve() / "guidist")
    (into / "benchmarks").symlink_to(HERE)
    return into


def run_in(staged: Path, tasks: int, quick: bool, who_ran: bool = False) -> dict[str, Any]:
    """One round of figure 4 with the staged tree's guidist; its per-phase figures."""
    out = staged / "result.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.window_responsiveness", "--rounds", "1",
           "--tasks", str(tasks), "--no-save", "--json-out", str(out)]
    if quick:
        cmd.append("--quick")
    if who_ran:
        cmd.append("--who-ran")
    env = dict(os.environ, PYTHONPATH=str(staged))
    done = subprocess.run(cmd, cwd=staged, env=env, capture_output=True, text=True,
                          timeout=900)
    if not out.exists():
        raise RuntimeError(f"the run in {staged} failed:\n{done.stderr[-3000:]}")
    phases = json.loads(out.read_text())["phases"]
    return {ph: v["per_round"][0] for ph, v in phases.items()}


def main(argv: list[str] | None = None) -> int:
    """Run figure 4 in each tree, alternating, and print the medians side by side."""
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", required=True, metavar="NAME=PATH",
                   help="a source tree to measure (give two or more)")
    p.add_argument("--runs", type=int, default=None, help="runs per tree (alternating)")
    p.add_argument("--tasks", type=int, default=None, help="square tasks in the load phase")
    p.add_argument("--who-ran", action="store_true",
                   help="split the core time in long gaps between the window's processes and "
                        "the machine's other jobs (window_responsiveness --who-ran)")
    args = p.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    runs = args.runs or (args.rounds or sizes["runs"])
    tasks = args.tasks or sizes["tasks"]
    trees = [(name, Path(path)) for name, _, path in (t.partition("=") for t in args.tree)]
    for name, path in trees:
        if not (path / "guidist" / "__init__.py").exists():
            p.error(f"{name}: no guidist package in {path}")
    info = machine_info()
    print(f"Figure 4 across trees — {', '.join(n for n, _ in trees)}; {runs} alternating "
          f"run{'s' * (runs != 1)} each, {tasks:,} square tasks under full load")
    print(machine_line(info))
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
    with tempfile.TemporaryDirectory(prefix="guidist-window-ab-") as tmp:
        staged = {name: stage(path, Path(tmp) / name) for name, path in trees}
        for r in range(runs):
            order = trees[r % len(trees):] + trees[:r % len(trees)]
            for name, _ in order:
                res = run_in(staged[name], tasks, args.quick, args.who_ran)
                results[name].append(res)
                load, idle = res["full load"], res["idle"]
                print(f"  run {r + 1}/{runs}  {name:<10} idle p99={fmt(idle['p99_ms'])}  "
                      f"full load p99={fmt(load['p99_ms'])} max={fmt(load['max_ms'])} ms  "
                      f"{load['tasks_per_s']:,.0f} tasks/s; GUI slice {fmt(load.get('gui_slice_ms'))} ms, "
                      f"run-queue a tick p99={fmt(load.get('runq_p99_ms'))} "
                      f"mean={fmt(load.get('runq_mean_ms'))} ms; "
                      f"worst [gap, GUI cpu, run-queue] "
                      f"{load.get('worst10_gap_cpu_runq_ms', [])[:3]}{_who(load)}")
    rows, per_tree = [], {}
    for name, _ in trees:
        rs = results[name]
        s = {"idle_p99_ms": summary([x["idle"]["p99_ms"] for x in rs]),
             "p99_ms": summary([x["full load"]["p99_ms"] for x in rs]),
             "max_ms": summary([x["full load"]["max_ms"] for x in rs]),
             "tasks_per_s": summary([x["full load"]["tasks_per_s"] for x in rs]),
             "runq_p99_ms": summary([x["full load"].get("runq_p99_ms") or 0 for x in rs])}
        per_tree[name] = {"summary": s, "runs": rs}
        rows.append([name, fmt(s["idle_p99_ms"]["median"]),
                     f"{fmt(s['p99_ms']['median'])} ({fmt(s['p99_ms']['min'])} – "
                     f"{fmt(s['p99_ms']['max'])})",
                     f"{fmt(s['max_ms']['median'])} ({fmt(s['max_ms']['min'])} – "
                     f"{fmt(s['max_ms']['max'])})",
                     sum(1 for x in rs if x["full load"]["max_ms"] <= 30.0),
                     f"{fmt(s['runq_p99_ms']['median'])} ({fmt(s['runq_p99_ms']['min'])} – "
                     f"{fmt(s['runq_p99_ms']['max'])})",
                     fmt(s["tasks_per_s"]["median"])])
    print()
    print(table(["tree", "idle p99 ms", "full load p99 ms", "full load max ms",
                 "runs with max <= 30", "run-queue a tick p99 ms", "tasks/s"], rows))
    payload = {"name": NAME, "figure": "4", "quick": args.quick, "machine": info,
               "tasks": tasks, "runs": runs, "trees": {n: str(p) for n, p in trees},
               "results": per_tree, "method": __doc__}
    return finish(NAME, payload, args.no_save)


if __name__ == "__main__":
    sys.exit(main())
