"""Figure 2: latency of one task on an idle system, 1 worker: submit -> result back.

    python -m benchmarks.latency [--quick] [--rounds N] [--tasks N]

Method. The client times ``client.submit(square, i).result()``: from just before the submit
call to the moment ``result()`` returns the value in the client. That covers the client's
request, the wake-up of the worker's waiting claim, the claim reply, running the task, the
report, and the result's way back: the client's result watcher holds a blocking
``wait_results`` call on the server, which returns as soon as the result is stored (no
polling). The worker is idle (blocked in its long-poll claim) whenever a task is submitted.

Also reported: "result stored" (the server's ``finished`` stamp minus the client's start, the
same CLOCK_REALTIME on the same machine: the figure before results came back to Python), the
client→server leg (server ``submitted`` stamp minus the start), and a no-op round trip
(``get_task(0)``) measured between tasks, as the floor any call pays.
"""

from __future__ import annotations

import sys
import time
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
TARGET_P50_MS = 2.0
WARMUP = 20


def one_round(n: int) -> dict[str, Any]:
    """A fresh server and one worker; n tasks one at a time; latencies in milliseconds."""
    with guidist_stack(1) as (_server, _pool, client):
        lat, stored, leg, rtt, call = [], [], [], [], []
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
        s = sorted(lat)
        return {
            "tasks": n,
            "p50_ms": percentile(s, 50), "p90_ms": percentile(s, 90),
            "p99_ms": percentile(s, 99), "max_ms": s[-1], "min_ms": s[0],
            "result_stored_p50_ms": percentile(sorted(stored), 50),
            "client_to_server_p50_ms": percentile(sorted(leg), 50),
            "submit_call_p50_ms": percentile(sorted(call), 50),
            "noop_rtt_p50_ms": percentile(sorted(rtt), 50),
            "noop_rtt_p99_ms": percentile(sorted(rtt), 99),
            "latencies_ms": [round(x, 4) for x in lat],
        }


def main(argv: list[str] | None = None) -> int:
    """Run figure 2 and print its table."""
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=None, help="tasks per round (default 1000)")
    args = p.parse_args(argv)
    n = args.tasks or (100 if args.quick else 1000)
    rounds = args.rounds or (1 if args.quick else 3)
    info = machine_info()
    print(f"Figure 2 — latency, submit -> result back in the client, 1 worker, idle system "
          f"({rounds} round{'s' * (rounds != 1)} of {n} tasks{', quick' if args.quick else ''})")
    print(machine_line(info))
    runs = []
    for r in range(rounds):
        res = one_round(n)
        res["round"] = r
        runs.append(res)
        print(f"  round {r + 1}/{rounds}  p50 {res['p50_ms']:.3f} ms  p99 {res['p99_ms']:.3f} ms"
              f"  no-op rtt {res['noop_rtt_p50_ms']:.3f} ms")

    pooled = sorted(x for r in runs for x in r["latencies_ms"])
    keys = [("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("max_ms", "max"),
            ("result_stored_p50_ms", "result stored on the server p50"),
            ("client_to_server_p50_ms", "client->server leg p50"),
            ("submit_call_p50_ms", "submit call returns p50"),
            ("noop_rtt_p50_ms", "no-op round trip p50"),
            ("noop_rtt_p99_ms", "no-op round trip p99")]
    per_key = {k: summary([r[k] for r in runs]) for k, _ in keys}
    rows = []
    for k, label in keys:
        s = per_key[k]
        rows.append([label, fmt(s["median"]), f"{fmt(s['min'])} – {fmt(s['max'])}"])
    print()
    print(table(["ms (per round)", "median", "min – max"], rows))
    p50_all, p99_all = percentile(pooled, 50), percentile(pooled, 99)
    print(f"\nall {len(pooled)} tasks: p50 {p50_all:.3f} ms, p99 {p99_all:.3f} ms; "
          f"target p50 <= {TARGET_P50_MS:g} ms: {verdict(p50_all, TARGET_P50_MS, False)}")

    payload = {
        "figure": FIGURE, "name": NAME, "quick": args.quick, "rounds": rounds, "machine": info,
        "method": __doc__.split("\n\n", 2)[2].strip(),
        "pooled": {"tasks": len(pooled), "p50_ms": p50_all, "p99_ms": p99_all},
        "per_round": per_key, "runs": runs,
        "targets": [{"target": f"p50 <= {TARGET_P50_MS:g} ms", "value": p50_all,
                     "verdict": verdict(p50_all, TARGET_P50_MS, False)}],
    }
    return finish(NAME, payload, args.no_save)


if __name__ == "__main__":
    sys.exit(main())
