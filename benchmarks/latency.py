"""Figure 2: latency of one task on an idle system, 1 worker: submit -> result back.

    python -m benchmarks.latency [--quick] [--rounds N] [--tasks N] [--tree NAME=PATH ...]

Method. The client times ``client.submit(square, i).result()``: from just before the submit
call to the moment ``result()`` returns the value in the client. That covers the client's
request, the wake-up of the worker's waiting claim, the claim reply, running the task, the
report, and the result's way back: the client's result watcher holds a blocking
``wait_results`` call on the server, which returns as soon as the result is stored (no
polling). The worker is idle (blocked in its long-poll claim) whenever a task is submitted.

Also reported: "result stored" (the server's ``finished`` stamp minus the client's start, the
same CLOCK_REALTIME on the same machine: the figure before results came back to Python), the
client→server leg (server ``submitted`` stamp minus the start), and a no-op round trip
(``get_task(0)``) measured between tasks, as the floor any call pays. The worker's own stamps
split the server's part: "worker starts" (the task's ``started``, taken by the worker) and
"worker ends" (plus its ``runtime``); from there to "result stored" is the worker's report.

With ``--tree`` each tree's code runs in its own interpreter (the tree first on PYTHONPATH), in
alternating rounds, and the p50 ratios are per round against the first tree: the machine's
load moves these figures more than most changes do, so only trees measured side by side
compare.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from .common import (
    finish,
    fmt,
    guidist_stack,
    machine_info,
    machine_line,
    parser,
    percentile,
    summary,
    table,
    verdict,
)

FIGURE = "2"
NAME = "latency"
TARGET_P50_MS = 0.5  # issue 17, target 2 (p99 <= 2 ms too)
WARMUP = 20
# This file runs inside each tree (so a tree from before --tree existed can be measured too),
# with that tree's benchmarks.common and guidist.
_RUN = ("import importlib.util, json, sys; sys.path.insert(0, '.'); import benchmarks;"
        "spec = importlib.util.spec_from_file_location('benchmarks.latency', {path!r});"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "print('RESULT ' + json.dumps(m.one_round({n})))")


def one_round(n: int) -> dict[str, Any]:
    """A fresh server and one worker; n tasks one at a time; latencies in milliseconds."""
    with guidist_stack(1) as (_server, _pool, client):
        lat, stored, leg, rtt, call, start, end = [], [], [], [], [], [], []
        for i in range(-WARMUP, n):
            t0 = time.time()
            fut = client.submit("square", i)
            t_ret = time.time()
            value = fut.result(timeout=30)
            t_back = time.time()
            assert value == i * i
            task = client.get_task(fut.id)  # outside the timed path: the server's stamps
            t1 = time.perf_counter()
            client.get_task(0)  # a no-op round trip on the idle system
            t2 = time.perf_counter()
            if i < 0:
                continue
            lat.append((t_back - t0) * 1e3)
            stored.append((task.finished - t0) * 1e3)
            leg.append((task.submitted - t0) * 1e3)
            call.append((t_ret - t0) * 1e3)
            rtt.append((t2 - t1) * 1e3)
            if task.started is not None:
                start.append((task.started - t0) * 1e3)
                end.append((task.started + (task.runtime or 0.0) - t0) * 1e3)
        s = sorted(lat)
        return {
            "tasks": n,
            "p50_ms": percentile(s, 50), "p90_ms": percentile(s, 90),
            "p99_ms": percentile(s, 99), "max_ms": s[-1], "min_ms": s[0],
            "result_stored_p50_ms": percentile(sorted(stored), 50),
            "client_to_server_p50_ms": percentile(sorted(leg), 50),
            "submit_call_p50_ms": percentile(sorted(call), 50),
            "worker_start_p50_ms": percentile(sorted(start), 50) if start else None,
            "worker_end_p50_ms": percentile(sorted(end), 50) if end else None,
            "noop_rtt_p50_ms": percentile(sorted(rtt), 50),
            "noop_rtt_p99_ms": percentile(sorted(rtt), 99),
            "latencies_ms": [round(x, 4) for x in lat],
        }


KEYS = [("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("max_ms", "max"),
        ("client_to_server_p50_ms", "client->server leg p50"),
        ("submit_call_p50_ms", "submit call returns p50"),
        ("worker_start_p50_ms", "worker starts the task p50"),
        ("worker_end_p50_ms", "worker ends the task p50"),
        ("result_stored_p50_ms", "result stored on the server p50"),
        ("noop_rtt_p50_ms", "no-op round trip p50"),
        ("noop_rtt_p99_ms", "no-op round trip p99")]


def run_in(tree: Path, n: int) -> dict[str, Any]:
    """One round in tree, in its own interpreter."""
    from .common import run_in_tree

    return run_in_tree(tree, ["-c", _RUN.format(path=str(Path(__file__).resolve()), n=n)])


def _rows(runs: list[dict[str, Any]], prefix: str = "") -> list[list[str]]:
    """The table's rows for these rounds: median and range of each figure."""
    rows = []
    for k, label in KEYS:
        values = [r[k] for r in runs if r.get(k) is not None]
        if values:
            s = summary(values)
            rows.append([prefix + label, fmt(s["median"]), f"{fmt(s['min'])} – {fmt(s['max'])}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run figure 2 and print its table."""
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=None, help="tasks per round (default 1000)")
    p.add_argument("--tree", action="append", metavar="NAME=PATH",
                   help="a source tree to measure, rounds alternating (the first is the "
                        "baseline; default: this tree, in this process)")
    args = p.parse_args(argv)
    n = args.tasks or (100 if args.quick else 1000)
    rounds = args.rounds or (1 if args.quick else 3)
    # Without --tree: this tree, in this process (None).
    trees: list[tuple[str, Path | None]] = [
        (name, Path(path).resolve()) for name, _, path in
        (t.partition("=") for t in (args.tree or []))] or [("this", None)]
    info = machine_info()
    print(f"Figure 2 — latency, submit -> result back in the client, 1 worker, idle system "
          f"({rounds} round{'s' * (rounds != 1)} of {n} tasks{', quick' if args.quick else ''})")
    print(machine_line(info))
    res: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
    for r in range(rounds):
        for name, tree in trees[r % len(trees):] + trees[:r % len(trees)]:
            out = run_in(tree, n) if tree is not None else one_round(n)
            out["round"] = r
            res[name].append(out)
            print(f"  round {r + 1}/{rounds}  {name:<10} p50 {out['p50_ms']:.3f} ms  "
                  f"p99 {out['p99_ms']:.3f} ms  no-op rtt {out['noop_rtt_p50_ms']:.3f} ms",
                  flush=True)
    rows = []
    for name, runs in res.items():
        rows += _rows(runs, f"{name}: " if args.tree else "")
    ratios: dict[str, Any] = {}
    base = next(iter(res))
    for name in list(res)[1:]:
        per_round = [x["p50_ms"] / y["p50_ms"] for x, y in zip(res[name], res[base])]
        ratios[f"{name} / {base}, p50"] = s = summary(per_round)
        rows.append([f"{name} ÷ {base}: p50", fmt(s["median"]),
                     f"{fmt(s['min'])} – {fmt(s['max'])}"])
    print()
    print(table(["ms (per round)", "median", "min – max"], rows))
    pooled_by = {name: sorted(x for r in runs for x in r["latencies_ms"])
                 for name, runs in res.items()}
    for name, pooled in pooled_by.items():
        print(f"\n{name + ': ' if args.tree else ''}all {len(pooled)} tasks: "
              f"p50 {percentile(pooled, 50):.3f} ms, p99 {percentile(pooled, 99):.3f} ms; "
              f"target p50 <= {TARGET_P50_MS:g} ms: "
              f"{verdict(percentile(pooled, 50), TARGET_P50_MS, False)}")
    pooled = pooled_by[list(res)[-1]]  # the tree measured last on the command line: the new one
    p50_all, p99_all = percentile(pooled, 50), percentile(pooled, 99)
    per_key = {k: summary([r[k] for r in res[list(res)[-1]] if r.get(k) is not None])
               for k, _ in KEYS if any(r.get(k) is not None for r in res[list(res)[-1]])}
    payload = {
        "figure": FIGURE, "name": NAME, "quick": args.quick, "rounds": rounds, "machine": info,
        "method": __doc__.split("\n\n", 2)[2].strip(),
        "pooled": {"tasks": len(pooled), "p50_ms": p50_all, "p99_ms": p99_all},
        "per_round": per_key, "runs": res[list(res)[-1]],
        "targets": [{"target": f"p50 <= {TARGET_P50_MS:g} ms", "value": p50_all,
                     "verdict": verdict(p50_all, TARGET_P50_MS, False)}],
    }
    if args.tree:
        payload.update(trees=list(res), by_tree=res, ratios=ratios)
    return finish(NAME, payload, args.no_save)


if __name__ == "__main__":
    sys.exit(main())
