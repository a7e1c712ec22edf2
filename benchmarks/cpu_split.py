"""Figure 1's CPU split: CPU µs a task in the client, the server and each worker, per tree.

    python -m benchmarks.cpu_split [--tasks N] [--rounds R] [--journal] [--prefetch K]
                                   [--tree NAME=PATH ...]

One run is figure 1's guidist variant (2 local workers, N trivial squares submitted with one
``submit_many``), and what it reports is the CPU time (user + system, from psutil) each process
spent between just before the submit and the moment every result was stored, divided by the
tasks it handled: the client and the server by N, each worker by the tasks it ran. On two cores
every process shares the CPU, so a process's CPU per task is throughput; unlike tasks/s it moves
little when the machine is busy with other jobs. The bare batched manager's worker (a list
comprehension over the batch, the results pickled as one list) costs about 0.15 µs a task.
"worker alone" is the inline worker's own work measured in this process, with no sockets and
no other process on the CPU (``worker_alone``): the rest of a worker's figure is the exchange
(sending, receiving, unpickling the claim) and sharing the CPU.

With ``--tree`` each tree's code runs in its own interpreter (the tree first on PYTHONPATH), in
interleaved rounds, and the ratios are per round against the first tree.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

NAME = "cpu_split"
# This file runs inside each tree (so a tree from before it existed can be measured too),
# with that tree's benchmarks.common and guidist.
_RUN = ("import importlib.util, json, sys; sys.path.insert(0, '.'); import benchmarks;"
        "spec = importlib.util.spec_from_file_location('benchmarks.cpu_split', {path!r});"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "print('RESULT ' + json.dumps(m.run_once({n}, {journal}, {prefetch})))")


def run_once(n: int, journal: bool, prefetch: int | None = None) -> dict[str, Any]:
    """Submit n squares to a fresh server with 2 workers (claiming at most prefetch tasks
    at a time, if given); CPU µs a task per process."""
    import psutil

    from .common import guidist_stack, wait_until

    worker_args = ("--prefetch", str(prefetch)) if prefetch else ()
    with guidist_stack(2, journal=journal, worker_args=worker_args) as (server, pool, client):
        procs = {"server": psutil.Process(server.pid)}
        for k, pid in enumerate(sorted(pool.pids)):
            procs[f"worker {k + 1}"] = psutil.Process(pid)
        me = psutil.Process()

        def cpu(p: psutil.Process) -> float:
            t = p.cpu_times()
            return t.user + t.system

        def finished() -> int:
            snap = client.snapshot()
            return snap.count("done") + snap.count("failed") + snap.count("dead")

        def ran_by_worker() -> dict[str, int]:
            by_pid = {w.pid: w.done + w.failed for w in client.snapshot().workers}
            return {name: by_pid.get(p.pid, 0) for name, p in procs.items()
                    if name.startswith("worker")}

        before = ran_by_worker()
        cpu0 = {name: cpu(p) for name, p in procs.items()}
        me0 = cpu(me)
        t0 = time.perf_counter()
        client.submit_many("square", range(n))
        wait_until(lambda: finished() >= n, 60 + n / 5_000, f"{n} results", interval=0.02)
        wall = time.perf_counter() - t0
        spent = {name: cpu(p) - cpu0[name] for name, p in procs.items()}
        spent["client"] = cpu(me) - me0
        ran = {name: k - before.get(name, 0) for name, k in ran_by_worker().items()}
    out: dict[str, Any] = {"tasks": n, "journal": journal, "seconds": wall,
                           "tasks_per_s": n / wall, "cpu_s": spent, "ran": ran}
    per_task = {name: 1e6 * s / (ran.get(name) or n) for name, s in spent.items()}
    workers = [per_task[name] for name in ran]
    per_task["worker (mean)"] = sum(workers) / len(workers) if workers else 0.0
    per_task["worker alone"] = worker_alone(min(n, 500_000))
    out["us_per_task"] = per_task
    return out


def worker_alone(n: int, claim: int = 1_000) -> float | None:
    """The inline worker's own CPU µs a task in this process, with no sockets and no other
    process on the CPU: claims of `claim` squares, pickled as the server pickles its reply,
    unpickled, run and their results packed as for the manager, statistics counted as
    usual. It reaches into the worker's internals: a tree that renamed them gives None."""
    import pickle

    from guidist.core.worker import Worker, WorkerConfig

    try:
        from guidist.core.protocol import BareArgs as bare
    except ImportError:  # a tree from before bare arguments
        bare = None
    claims = []
    for b in range(20):
        ids = list(range(b * claim, (b + 1) * claim))
        args = bare(ids) if bare is not None else [(i,) for i in ids]
        claims.append(pickle.dumps([("square", None, ids, args)], pickle.HIGHEST_PROTOCOL))
    w = Worker(WorkerConfig(address=("127.0.0.1", 9), authkey=b"unused"))
    try:
        w._stats_due = float("inf")  # counted as usual, never sent
        t0 = time.process_time()
        for b in range(n // claim):
            w._run_groups(pickle.loads(claims[b % len(claims)]))
            w._packed_results()
            w._pending = type(w._pending)()
        return 1e6 * (time.process_time() - t0) / (n // claim * claim)
    except AttributeError:
        return None


def run_in(tree: Path, n: int, journal: bool, prefetch: int | None) -> dict[str, Any]:
    """One run_once in tree, in its own interpreter."""
    from .common import run_in_tree

    code = _RUN.format(path=str(Path(__file__).resolve()), n=n, journal=journal,
                       prefetch=prefetch)
    return run_in_tree(tree, ["-c", code])


def main(argv: list[str] | None = None) -> int:
    """Run the trees side by side; print and save the table."""
    from .common import finish, fmt_summary, machine_info, machine_line, parser, summary, table

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--tree", action="append", metavar="NAME=PATH",
                   help="a source tree to measure (the first is the baseline; default: .)")
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--journal", action="store_true", help="with the server's journal on")
    p.add_argument("--prefetch", type=int, default=None,
                   help="the workers' --prefetch (default theirs: 10,000 tasks a claim)")
    args = p.parse_args(argv)
    trees = [(name, Path(path).resolve()) for name, _, path in
             (t.partition("=") for t in (args.tree or ["this=."]))]
    rounds = args.rounds or (1 if args.quick else 3)
    n = 30_000 if args.quick else args.tasks
    res: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
    info = machine_info()
    print(machine_line(info))
    for r in range(rounds):
        for name, tree in trees[r % len(trees):] + trees[:r % len(trees)]:
            out = run_in(tree, n, args.journal, args.prefetch)
            out["round"] = r
            res[name].append(out)
            us = out["us_per_task"]
            print(f"  round {r + 1}/{rounds}  {name:<12} {out['tasks_per_s']:>10,.0f} tasks/s  "
                  + "  ".join(f"{k} {v:.3f}" for k, v in us.items() if v is not None),
                  flush=True)
    keys = ["client", "server", "worker (mean)", "worker alone"]
    rows = []
    for name, runs in res.items():
        for key in keys:
            rows.append([f"{name}: {key}, CPU µs a task",
                         *fmt_summary(summary([x["us_per_task"][key] for x in runs]))])
        rows.append([f"{name}: tasks/s", *fmt_summary(summary([x["tasks_per_s"] for x in runs]))])
    base = trees[0][0]
    ratios: dict[str, Any] = {}
    for name, _ in trees[1:]:
        for key in keys:
            per_round = [x["us_per_task"][key] / y["us_per_task"][key]
                         for x, y in zip(res[name], res[base])
                         if x["us_per_task"][key] and y["us_per_task"][key]]
            ratios[f"{name} / {base}, {key}"] = summary(per_round)
            rows.append([f"{name} ÷ {base}: {key}", *fmt_summary(summary(per_round))])
    print(table(["", "median", "min – max"], rows))
    return finish(NAME, {"name": NAME, "rounds": rounds, "tasks": n, "journal": args.journal,
                         "prefetch": args.prefetch,
                         "machine": info, "trees": [name for name, _ in trees], "runs": res,
                         "ratios": ratios, "method": __doc__}, args.no_save)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
