"""The memory broker's own work per task, in one process: no sockets, no scheduler noise.

    python -m benchmarks.broker_core [--tasks N] [--rounds R] [--claim K] [--tree NAME=PATH ...]

A ``Broker`` is driven the way the server drives it for figure 1: submits of 20,000 trivial
tasks (pickled as that tree's client sends them: one blob, or pieces), and two workers taking
turns at ``exchange`` with the results of their previous claim packed as that tree's worker
packs them, claiming K at a time (default 10,000, the workers' default --prefetch; 1,000
before that default changed) with the first one running, and the claim pickled as the manager
pickles its reply.
What is timed is the server's share: the broker calls and the reply's pickling (the worker's
packing and the client's are taken out), as CPU seconds of this process with the server's GC thresholds, the
journal's writer thread included when the journal is on. On a shared machine this moves far
less than a throughput figure.

With ``--tree`` each tree's code runs in its own interpreter (the tree first on PYTHONPATH),
in interleaved rounds, and the ratios are per round against the first tree.
"""

from __future__ import annotations

import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "broker_core"
CHUNK = 20_000
CLAIM = 10_000


def run_once(n: int, journal: bool, claim: int = CLAIM) -> dict[str, Any]:
    """Pass n tasks through a broker; returns the server's CPU microseconds per task."""
    import gc

    from guidist.core.backends.memory.broker import Broker

    try:  # pack results as that tree's worker does
        from guidist.core.payload import pack_results
    except ImportError:  # a tree from before results travelled as columns
        from guidist.core.payload import pack as pack_results
    try:  # pack submits as that tree's client does
        from guidist.core.payload import submission_args
    except ImportError:  # a tree from before submits travelled bare
        def submission_args(items: list) -> list:
            return [(a,) for a in items]
    try:  # a tree whose submits travel as pieces the server keeps packed
        from guidist.core.payload import MAX_PAYLOAD, pack_pieces

        def submit_calls(items: list) -> list:
            return [c for _n, c in pack_pieces(submission_args(items), MAX_PAYLOAD, str)]
    except ImportError:
        def submit_calls(items: list) -> list:
            return [pickle.dumps(submission_args(items))]
    gc.freeze()  # as the server does (server.py): young collections far less often
    gc.set_threshold(100_000, 50, 1000)
    tmp = tempfile.TemporaryDirectory()
    if journal:
        from guidist.core.backends.memory.journal import open_journaled_broker
        broker = open_journaled_broker(Path(tmp.name) / "j.sqlite")
    else:
        broker = Broker()
    workers = [broker.register_worker(f"w{i}", "bench", i)["id"] for i in range(2)]
    pending: dict[str, list] = {w: [] for w in workers}
    submitted = finished = 0
    excluded = 0.0  # the worker's side: packing results, unpickling claims
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    while finished < n:
        if submitted < n and broker.queued_count() < 3 * claim * len(workers):
            k = min(CHUNK, n - submitted)
            t0 = time.process_time()  # the client's packing is not the server's work
            calls = submit_calls(list(range(submitted, submitted + k)))
            excluded += time.process_time() - t0
            for call in calls:
                broker.submit("square", call)
            submitted += k
        for w in workers:
            t0 = time.process_time()
            blob = pack_results(pending[w])
            excluded += time.process_time() - t0
            _cmd, groups = broker.exchange(w, blob, claim, 0.0, None, None)
            reply = pickle.dumps(groups, protocol=pickle.HIGHEST_PROTOCOL)
            t0 = time.process_time()
            groups = pickle.loads(reply)
            now = time.time()
            results = [(tid, True, a[0] * a[0], now, 1e-6)
                       for g in groups for tid, a in zip(g[2], _readable(g[3]))]
            excluded += time.process_time() - t0
            finished += len(pending[w])
            pending[w] = results
    cpu = time.process_time() - t_cpu - excluded
    wall = time.perf_counter() - t_wall
    broker.close()
    tmp.cleanup()
    return {"us_per_task": cpu / n * 1e6, "tasks_per_cpu_s": n / cpu, "wall_s": wall}


def _readable(args: Any) -> Any:
    """A claimed group's arguments as the worker reads them (a piece decoded by it)."""
    return args.args() if hasattr(args, "blob") else args


# The tree's guidist, this file's driver (an older tree has no such benchmark).
_RUN = ("import json, sys, importlib.util; sys.path.insert(0, '.');"
        "spec = importlib.util.spec_from_file_location('broker_core', {here!r});"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "print('RESULT ' + json.dumps(m.run_once({n}, {journal}, {claim})))")


def run_in(tree: Path, n: int, journal: bool, claim: int = CLAIM) -> dict[str, Any]:
    """One run_once in tree, in its own interpreter."""
    from .common import run_in_tree

    return run_in_tree(tree, ["-c", _RUN.format(here=__file__, n=n, journal=journal,
                                                claim=claim)])


def main(argv: list[str] | None = None) -> int:
    """Run (trees side by side, or this tree); print and save the table."""
    from .common import finish, fmt_summary, machine_info, machine_line, parser, summary, table

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                   help="a source tree to measure (the first is the baseline)")
    p.add_argument("--tasks", type=int, default=500_000)
    p.add_argument("--claim", type=int, default=CLAIM, help="tasks a claim asks for")
    args = p.parse_args(argv)
    trees = [(name, Path(path).resolve()) for name, _, path in
             (t.partition("=") for t in args.tree)] or [("this", Path.cwd())]
    rounds = args.rounds or (1 if args.quick else 3)
    n = 50_000 if args.quick else args.tasks
    per: dict[str, list[dict[str, Any]]] = {}
    for r in range(rounds):
        order = trees[r % len(trees):] + trees[:r % len(trees)]
        for journal in (False, True):
            for name, tree in order:
                res = run_in(tree, n, journal, args.claim)
                per.setdefault(f"{name}, journal {'on' if journal else 'off'}", []).append(res)
                print(f"round {r + 1}: {name} journal={'on' if journal else 'off'} "
                      f"{res['us_per_task']:.2f} µs/task", file=sys.stderr)
    rows = []
    out: dict[str, Any] = {"name": NAME, "tasks": n, "rounds": rounds,
                           "machine": machine_info(), "runs": per}
    for key, runs in per.items():
        s = summary([x["us_per_task"] for x in runs])
        out.setdefault("us_per_task", {})[key] = s
        rows.append([f"{key}, µs per task", *fmt_summary(s, 2)])
    base = trees[0][0]
    for name, _ in trees[1:]:
        for j in ("off", "on"):
            ratios = [b["us_per_task"] / a["us_per_task"] for a, b in
                      zip(per[f"{base}, journal {j}"], per[f"{name}, journal {j}"])]
            s = summary(ratios)
            out.setdefault("ratios", {})[f"{name} ÷ {base}, journal {j}"] = s
            rows.append([f"{name} ÷ {base}, journal {j}, µs ratio", *fmt_summary(s, 2)])
    print(machine_line(out["machine"]))
    print(table(["", "median", "range"], rows))
    return finish(NAME, out, args.no_save)


if __name__ == "__main__":
    raise SystemExit(main())
