"""Redis's own time per task, summed from SLOWLOG, for several source trees side by side.

    python -m benchmarks.redis_time --tree before=PATH --tree after=. [--tasks N] [--rounds R]

Each run starts a fresh redis-server (no persistence) and a fresh interpreter inside one tree
(the tree first on PYTHONPATH, so its broker and scripts run). That interpreter submits N
trivial tasks 20,000 at a time, then one loop on the ``RedisBroker`` object takes them
1,000 a time with ``exchange`` and hands the results of each batch back with the next call,
as a direct worker does (no worker processes: the figure is Redis's work alone, not the
scheduler's). With ``slowlog-log-slower-than 0`` every script call is logged with its
duration; their sum over N is the figure, in µs a task, split by script, beside the CPU time
of Redis's main thread over the run (``INFO cpu``; preemption on a busy machine inflates the
durations, less so the CPU time). Rounds alternate the
trees, so a busy machine weighs on each alike. Saved as ``benchmarks/results/redis_time.json``.
"""

from __future__ import annotations

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
from .redis_backend import redis_server

NAME = "redis_time"
REQUIRES = ("redis",)

# Run inside the tree measured: only guidist and redis are imported there.
_CHILD = r"""
import json, sys, time
import redis
from guidist.core.backends.redis.broker import RedisBroker

url, n = sys.argv[1], int(sys.argv[2])
raw = redis.Redis.from_url(url)
b = RedisBroker(url)
names = {s.sha: name for name, s in b._scripts.items()}
raw.config_set("slowlog-log-slower-than", 0)
raw.config_set("slowlog-max-len", 1000000)
raw.slowlog_reset()


def cpu():
    info = raw.info("cpu")
    return (info.get("used_cpu_user_main_thread", info["used_cpu_user"])
            + info.get("used_cpu_sys_main_thread", info["used_cpu_sys"]))


cpu0 = cpu()
t0 = time.perf_counter()
for i in range(0, n, 20000):
    b.submit("square", [(x,) for x in range(i, min(n, i + 20000))])
w = b.register_worker("w", "h", 1)["id"]
results, done = None, 0
while True:
    _cmd, groups = b.exchange(w, results, 1000)
    done += len(results or ())
    if not groups:
        break
    now = time.time()
    results = [(tid, True, a[0] * a[0], now, 1e-6)
               for _f, _kw, ids, args, *_ in groups for tid, a in zip(ids, args)]
seconds = time.perf_counter() - t0
cpu_s = cpu() - cpu0
raw.config_set("slowlog-log-slower-than", 10000)
per: dict = {}
calls: dict = {}
for e in raw.slowlog_get(1000000):
    cmd = e["command"]
    if isinstance(cmd, bytes):
        cmd = cmd.decode("utf-8", "replace")
    parts = cmd.split(" ")
    if parts[0].upper() != "EVALSHA":
        continue
    name = names.get(parts[1], "other")
    per[name] = per.get(name, 0) + e["duration"]
    calls[name] = calls.get(name, 0) + 1
assert done == n, (done, n)
print("RESULT " + json.dumps({"us_per_task": sum(per.values()) / n,
                              "cpu_us_per_task": cpu_s * 1e6 / n,
                              "scripts": {k: v / n for k, v in per.items()},
                              "calls": calls, "tasks_per_s": n / seconds}))
b.close()
"""


def run_in(tree: Path, n: int) -> dict[str, Any]:
    """One measured run of tree's broker against a fresh redis-server."""
    with redis_server() as url:
        return run_in_tree(tree, ["-c", _CHILD, url, str(n)])


def main(argv: list[str] | None = None) -> int:
    """Alternate the trees for R rounds; print µs of Redis time a task per tree."""
    p = parser(__doc__ or NAME)
    p.add_argument("--tree", action="append", required=True, metavar="NAME=PATH")
    p.add_argument("--tasks", type=int, default=200_000)
    args = p.parse_args(argv)
    trees = [(name, Path(path).resolve()) for name, _, path in
             (t.partition("=") for t in args.tree)]
    n = 20_000 if args.quick else args.tasks
    rounds = 1 if args.quick else (args.rounds or 3)
    info = machine_info()
    print(machine_line(info))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
    for r in range(rounds):
        for name, tree in trees[r % len(trees):] + trees[:r % len(trees)]:
            res = run_in(tree, n)
            runs[name].append(res)
            split = ", ".join(f"{k} {v:.2f}" for k, v in sorted(res["scripts"].items()))
            print(f"  round {r + 1}/{rounds}  {name:<10} {res['us_per_task']:.2f} µs a task "
                  f"({split}), Redis CPU {res['cpu_us_per_task']:.2f} µs; "
                  f"{res['tasks_per_s']:,.0f} tasks/s")
    rows = []
    for name, _ in trees:
        us = summary([x["us_per_task"] for x in runs[name]])
        cpu = summary([x["cpu_us_per_task"] for x in runs[name]])
        rate = summary([x["tasks_per_s"] for x in runs[name]])
        rows.append([name, *fmt_summary(us), *fmt_summary(cpu), *fmt_summary(rate)])
    print(table(["tree", "µs a task", "min – max", "CPU µs", "min – max", "loop tasks/s",
                 "min – max"], rows))
    payload = {"machine": info, "tasks": n, "rounds": rounds,
               "trees": {name: str(tree) for name, tree in trees}, "runs": runs,
               "method": "SLOWLOG (threshold 0) summed over the scripts' calls, one loop of "
                         "1,000-task exchanges on the broker object, trees alternated"}
    return finish(NAME, payload, args.no_save)


if __name__ == "__main__":
    raise SystemExit(main())
