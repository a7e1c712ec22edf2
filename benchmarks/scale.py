"""Figure 5 (core part): a million queued tasks in one server.

    python -m benchmarks.scale [--quick] [--rounds N] [--tasks N]

Per round, on fresh servers (no workers, so nothing drains the queue):

* memory: server RSS (psutil on ServerProcess.pid) after connecting, and again after
  ``Client.submit_many("square", range(N))`` (20,000 per call) and a 0.5 s settle; the difference
  over N is bytes per task. Journal off, and journal on when guidist.core.backends.memory.journal exists.
* submit time: wall time of that submit_many, from the client.
* does the server stay fast at that size: the same calls are timed, alternately (A B A B …), on a
  small server and on the one holding N tasks, and reported as a ratio big/small:
  ``snapshot()`` (empty vs N queued), the window's task-table pages ``list_tasks(offset=0,
  limit=100)`` and ``list_tasks("queued", offset=N/2, limit=100)``, and a worker's
  ``claim(1000)`` and ``complete(1000 results)`` (small server: 30,000 queued).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from .common import (
    finish,
    fmt,
    fmt_summary,
    guidist_stack,
    journal_available,
    machine_info,
    machine_line,
    parser,
    rss,
    summary,
    table,
    verdict,
)

FIGURE = "5"
NAME = "scale"
CHUNK = 20_000
SMALL_QUEUE = 30_000
TARGET_BYTES, TARGET_SUBMIT_S = 300.0, 10.0


def load(server: Any, client: Any, n: int) -> dict[str, Any]:
    """Submit n squares in chunks; RSS before/after and the time it took."""
    client.snapshot()  # the connection and its server thread exist before the first reading
    time.sleep(0.3)
    before = rss(server.pid)
    t0 = time.perf_counter()
    client.submit_many("square", range(n), chunk=CHUNK)
    seconds = time.perf_counter() - t0
    after_submit = rss(server.pid)
    time.sleep(0.5)
    after = rss(server.pid)
    queued = client.snapshot().count("queued")
    return {"tasks": n, "queued": queued, "seconds": seconds, "tasks_per_s": n / seconds,
            "rss_before": before, "rss_after_submit": after_submit, "rss_after": after,
            "bytes_per_task": (after - before) / n}


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def compare_ops(small: Any, big: Any, n_big: int, reps: int) -> dict[str, dict[str, Any]]:
    """Time the same calls alternately on a small and a big server; ms medians and their ratio."""
    out: dict[str, dict[str, Any]] = {}

    def pair(name: str, f_small: Callable[[], Any], f_big: Callable[[], Any]) -> None:
        a, b = [], []
        for _ in range(reps):
            a.append(_timed(f_small))
            b.append(_timed(f_big))
        ma, mb = statistics.median(a), statistics.median(b)
        out[name] = {"small_ms": ma, "big_ms": mb, "ratio": mb / ma if ma else None,
                     "small_max_ms": max(a), "big_max_ms": max(b)}

    pair("snapshot (empty vs N queued)", small.snapshot, big.snapshot)
    small.submit_many("square", range(SMALL_QUEUE), chunk=CHUNK)
    pair("list_tasks first page", lambda: small.list_tasks(None, 0, 100),
         lambda: big.list_tasks(None, 0, 100))
    # Both offsets land at the same place inside a submit batch (15,000 of 20,000): paging
    # skips whole batches arithmetically but walks item by item inside one, so comparing a
    # mid-batch offset with a batch-aligned one would measure the alignment, not the size.
    inside = (SMALL_QUEUE // 2) % CHUNK
    pair("list_tasks queued, middle page",
         lambda: small.list_tasks("queued", SMALL_QUEUE // 2, 100),
         lambda: big.list_tasks("queued", (n_big // 2 // CHUNK) * CHUNK + inside, 100))

    ids = {}
    for name, c in (("small", small), ("big", big)):
        ids[name] = c.call("register_worker", f"bench-{name}", "localhost", os.getpid(),
                           "inline", 1)["id"]
    claim_ms: dict[str, list[float]] = {"small": [], "big": []}
    complete_ms: dict[str, list[float]] = {"small": [], "big": []}
    for _ in range(min(reps, SMALL_QUEUE // 1000 - 1)):
        for name, c in (("small", small), ("big", big)):
            t = time.perf_counter()
            groups = c.call("claim", ids[name], 1000, 0.0)
            claim_ms[name].append((time.perf_counter() - t) * 1e3)
            results = [(tid, True, args[0] * args[0])
                       for _fn, _kw, tids, args_list in groups
                       for tid, args in zip(tids, args_list)]
            t = time.perf_counter()
            c.call("complete", ids[name], results)
            complete_ms[name].append((time.perf_counter() - t) * 1e3)
    for op, d in (("claim 1000", claim_ms), ("complete 1000", complete_ms)):
        ma, mb = statistics.median(d["small"]), statistics.median(d["big"])
        out[op] = {"small_ms": ma, "big_ms": mb, "ratio": mb / ma if ma else None,
                   "small_max_ms": max(d["small"]), "big_max_ms": max(d["big"])}
    return out


def main(argv: list[str] | None = None) -> int:
    """Run figure 5 (core part) and print its tables."""
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=None, help="queued tasks (default 1,000,000)")
    args = p.parse_args(argv)
    n = args.tasks or (100_000 if args.quick else 1_000_000)
    rounds = args.rounds or (1 if args.quick else 3)
    reps = 20 if args.quick else 200
    info = machine_info()
    has_journal, journal_reason = journal_available()
    journals = [False, True] if has_journal else [False]
    print(f"Figure 5 (core) — {n:,} queued tasks "
          f"({rounds} round{'s' * (rounds != 1)}{', quick' if args.quick else ''})")
    print(machine_line(info))
    if not has_journal:
        print(f"journal on: skipped ({journal_reason})")

    loads: dict[str, list[dict[str, Any]]] = {}
    ops_runs: list[dict[str, Any]] = []
    for r in range(rounds):
        # Rotate which journal setting goes first, as the other figures rotate their variants.
        order = journals[r % len(journals):] + journals[:r % len(journals)]
        for journal in order:
            label = "journal on" if journal else "journal off"
            with guidist_stack(0, journal=journal) as (server, _pool, big):
                res = load(server, big, n)
                res["round"] = r
                loads.setdefault(label, []).append(res)
                print(f"  round {r + 1}/{rounds}  {label:<11}  submit {res['seconds']:.2f} s  "
                      f"{res['bytes_per_task']:.0f} B/task  (RSS {res['rss_before'] / 2**20:.0f}"
                      f" -> {res['rss_after'] / 2**20:.0f} MiB)")
                if not journal:
                    with guidist_stack(0) as (_s, _p, small):
                        ops = compare_ops(small, big, n, reps)
                    ops_runs.append(ops)
                    print("  round %d/%d  big/small: %s" % (r + 1, rounds, ", ".join(
                        f"{k.split(' (')[0]} {v['ratio']:.2f}" for k, v in ops.items())))

    print()
    rows, load_out, targets = [], {}, []
    for label, runs in loads.items():
        b = summary([x["bytes_per_task"] for x in runs])
        s = summary([x["seconds"] for x in runs])
        load_out[label] = {"bytes_per_task": b, "submit_seconds": s, "runs": runs}
        rows.append([f"bytes per task ({label})", *fmt_summary(b),
                     f"<= {TARGET_BYTES:g}: {verdict(b['median'], TARGET_BYTES, False)}"])
        rows.append([f"submit {n:,} from the client, s ({label})", *fmt_summary(s),
                     f"<= {TARGET_SUBMIT_S:g}: {verdict(s['median'], TARGET_SUBMIT_S, False)}"])
        targets += [
            {"target": f"bytes/task ({label}) <= {TARGET_BYTES:g}", "value": b["median"],
             "verdict": verdict(b["median"], TARGET_BYTES, False)},
            {"target": f"submit ({label}) <= {TARGET_SUBMIT_S:g} s", "value": s["median"],
             "verdict": verdict(s["median"], TARGET_SUBMIT_S, False)},
        ]
    print(table(["memory and submit", "median", "min – max", "target"], rows))

    print()
    op_rows, op_out = [], {}
    for op in ops_runs[0]:
        small_ms = summary([o[op]["small_ms"] for o in ops_runs])
        big_ms = summary([o[op]["big_ms"] for o in ops_runs])
        ratio = summary([o[op]["ratio"] for o in ops_runs])
        op_out[op] = {"small_ms": small_ms, "big_ms": big_ms, "ratio": ratio,
                      "runs": [o[op] for o in ops_runs]}
        op_rows.append([op, fmt(small_ms["median"]), fmt(big_ms["median"]),
                        *fmt_summary(ratio)])
    print(table(["call, ms median (alternating)", "small", f"{n:,} queued", "ratio big/small",
                 "min – max"], op_rows))
    worst = max((v["ratio"]["median"] or 0) for v in op_out.values())
    flat = worst <= 1.5
    print(f"\nworst big/small ratio {worst:.2f} ("
          + ("flat: the queue size does not slow these calls" if flat
             else "GROWS with the queue size") + ")")

    payload = {
        "figure": FIGURE, "name": NAME, "quick": args.quick, "rounds": rounds, "tasks": n,
        "machine": info, "journal": {"available": has_journal, "reason": journal_reason},
        "method": __doc__.split("\n\n", 2)[2].strip(),
        "load": load_out, "ops": op_out, "targets": targets,
    }
    return finish(NAME, payload, args.no_save)


if __name__ == "__main__":
    sys.exit(main())
