"""Figure 1: throughput of trivial 'square' tasks end to end, 2 local workers.

    python -m benchmarks.throughput [--quick] [--rounds N]

Variants, run side by side in interleaved rounds (each round starts fresh processes, untimed):

(a) classic   the tutorial's BaseManager with two queue.Queue, per-item put/get, 2 stdlib workers
              (benchmarks/_classic.py). Timed from the first put until the master has read every
              result.
(b) guidist   ServerProcess + WorkerPool.launch(2) + Client.submit_many, journal off; and journal
              on as soon as guidist.core.backends.memory.journal exists (picked up automatically). Timed from just
              before the first submit until the server stored the last result: that moment is
              the server's own ``finished`` stamp of the last task (``results_since``), so the
              20 ms completion poll adds nothing to the figure.
(c) pool      multiprocessing.Pool(2).imap_unordered(square, range(N), chunksize): the local
              ceiling with no network and no bookkeeping. Timed over the iteration only.
(r) bare      reference, not a figure of the issue: a bare batched manager (benchmarks/_bare.py),
              guidist's shape — batches of 1,000 per round trip, TCP_NODELAY — with no
              bookkeeping at all, timed like (b). b/r is the share of the transport's ceiling
              that guidist keeps after its ledger, leases and counters.

Each variant gets enough tasks to run for a second or more; the figure is tasks/s, and the
comparison is b/a and b/c per round (median, min–max).
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import sys
import time
from typing import Any

from guidist.core.tasks import square

from . import _bare, _classic
from .common import (
    AUTHKEY,
    finish,
    fmt,
    fmt_summary,
    guidist_stack,
    interleaved,
    journal_available,
    machine_info,
    machine_line,
    parser,
    ratios,
    summary,
    table,
    verdict,
    wait_until,
)

FIGURE = "1"
NAME = "throughput"
WORKERS = 2

# Sized so every run lasts a second or more here (classic ~3-7k/s, guidist ~0.25-0.5M/s,
# Pool ~4-5M/s); a run much shorter than that would mostly measure its own start and tail.
FULL = {"classic": 20_000, "guidist": 1_000_000, "pool": 5_000_000, "bare": 3_000_000,
        "rounds": 5}
QUICK = {"classic": 2_000, "guidist": 30_000, "pool": 100_000, "bare": 100_000, "rounds": 1}

TARGET_RATIO, GOAL_RATIO, TARGET_TPS = 15.0, 25.0, 100_000.0


def pool_chunksize(n: int) -> int:
    """About 50 chunks per worker: big enough to amortise the pipe, small enough to balance."""
    return max(100, n // (WORKERS * 50))


def run_classic(n: int) -> dict[str, Any]:
    """(a) the tutorial design."""
    return _classic.run(n, WORKERS, AUTHKEY.encode())


def run_guidist(n: int, journal: bool, server_gc: str | None = None,
                worker_args: tuple[str, ...] = (),
                server_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """(b) guidist end to end: submit n squares, until the server stored the last result."""
    with guidist_stack(WORKERS, journal=journal, server_gc=server_gc, worker_args=worker_args,
                       **(server_options or {})) as (_server, _pool, client):
        def finished() -> int:
            snap = client.snapshot()
            return snap.count("done") + snap.count("failed") + snap.count("dead")

        t0 = time.time()
        client.submit_many("square", range(n))
        t_submit = time.time()
        wait_until(lambda: finished() >= n, 60 + n / 5_000, f"{n} results", interval=0.02)
        t_seen = time.time()
        snap = client.snapshot()
        # The n-th result stored has sequence number n on a fresh server: its server-side
        # finish stamp is the end of the run, free of the poll interval.
        _cursor, last = client.results_since(n - 1, 1)
        end = last[0].finished if last and last[0].finished else t_seen
        elapsed = end - t0
        out = {"tasks": n, "seconds": elapsed, "tasks_per_s": n / elapsed,
               "submit_seconds": t_submit - t0, "poll_overshoot_s": t_seen - end,
               "failed": snap.count("failed") + snap.count("dead"),
               "end_from": "server finish stamp" if last else "poll"}
        if journal:
            # Stored is not yet durable: the journal writes in the background. Also time the
            # moment every result is in the SQLite file (polled every 0.1 s from a reader).
            path = _server.config.journal
            out["journal_rows_when_stored"] = _journal_rows(path)
            wait_until(lambda: _journal_rows(path) >= n, 120 + n / 1_000,
                       "the journal to hold every result", interval=0.1)
            durable = time.time() - t0
            out.update(durable_seconds=durable, durable_tasks_per_s=n / durable)
        return out


def _journal_rows(path: str) -> int:
    """Finished tasks in a journal file, read from a separate read-only connection."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        # Successes are stored a completed batch per row in `done`; the rest in `finished`.
        done = con.execute("SELECT COALESCE(SUM(n), 0) FROM done").fetchone()[0]
        return int(done) + int(con.execute("SELECT count(*) FROM finished").fetchone()[0])
    except sqlite3.OperationalError:  # the table is created by the server's first connect
        return 0
    finally:
        con.close()


def run_bare(n: int) -> dict[str, Any]:
    """(r) the bare batched manager: the transport's ceiling for this design."""
    return _bare.run(n, WORKERS, AUTHKEY.encode())


def run_pool(n: int) -> dict[str, Any]:
    """(c) multiprocessing.Pool(2).imap_unordered with a good chunksize."""
    cs = pool_chunksize(n)
    pool = multiprocessing.Pool(WORKERS)
    try:
        sum(pool.imap_unordered(square, range(1000), chunksize=100))  # workers up and warm
        t0 = time.perf_counter()
        count = 0
        for _ in pool.imap_unordered(square, range(n), chunksize=cs):
            count += 1
        elapsed = time.perf_counter() - t0
    finally:
        pool.terminate()
        pool.join()
    assert count == n
    return {"tasks": n, "seconds": elapsed, "tasks_per_s": n / elapsed, "chunksize": cs}


def main(argv: list[str] | None = None) -> int:
    """Run figure 1 and print its table."""
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or sizes["rounds"]
    info = machine_info()
    has_journal, journal_reason = journal_available()

    variants = [
        ("a  classic tutorial", lambda: run_classic(sizes["classic"])),
        ("b  guidist, journal off", lambda: run_guidist(sizes["guidist"], False)),
    ]
    if has_journal:
        variants.append(("b  guidist, journal on", lambda: run_guidist(sizes["guidist"], True)))
    variants.append(("c  Pool(2).imap_unordered", lambda: run_pool(sizes["pool"])))
    variants.append(("r  bare batched manager (ref)", lambda: run_bare(sizes["bare"])))

    print(f"Figure 1 — throughput of trivial square tasks, {WORKERS} workers, end to end "
          f"({rounds} interleaved round{'s' * (rounds != 1)}{', quick' if args.quick else ''})")
    print(machine_line(info))
    if not has_journal:
        print(f"journal on: skipped ({journal_reason})")
    res = interleaved(variants, rounds)
    if "b  guidist, journal on" in res:
        # The same runs, timed until the last result is in the SQLite file instead of in memory.
        res["b  guidist, journal on, durable"] = [
            {**r, "tasks_per_s": r["durable_tasks_per_s"], "seconds": r["durable_seconds"]}
            for r in res["b  guidist, journal on"]]
        res = dict(sorted(res.items(), key=lambda kv: kv[0][0]))  # a, b…, c, r

    rows = []
    per_variant: dict[str, Any] = {}
    for name, runs in res.items():
        tps = summary([r["tasks_per_s"] for r in runs])
        med, rng = fmt_summary(tps)
        rows.append([name, fmt(runs[0]["tasks"]), med, rng])
        per_variant[name] = {"tasks": runs[0]["tasks"], "tasks_per_s": tps, "runs": runs}
    print()
    print(table(["variant", "tasks", "tasks/s median", "min – max"], rows))

    a, c = res["a  classic tutorial"], res["c  Pool(2).imap_unordered"]
    ref = res["r  bare batched manager (ref)"]
    b_names = [n for n in res if n.startswith("b ")]
    ratio_rows, ratio_out, targets = [], {}, []
    for bn in b_names:
        tag = bn.split(", ", 1)[1]
        ba = ratios(res[bn], a, "tasks_per_s")
        bc = ratios(res[bn], c, "tasks_per_s")
        ratio_out[f"b/a ({tag})"], ratio_out[f"b/c ({tag})"] = ba, bc
        ratio_rows.append([f"b/a ({tag})", *fmt_summary(ba),
                           f">= {TARGET_RATIO:g} (goal >= {GOAL_RATIO:g}): "
                           f"{verdict(ba['median'], TARGET_RATIO)}"
                           f"{', goal met' if (ba['median'] or 0) >= GOAL_RATIO else ''}"])
        ratio_rows.append([f"b/c ({tag})", *fmt_summary(bc), "(Pool is the local ceiling)"])
        br = ratios(res[bn], ref, "tasks_per_s")
        ratio_out[f"b/r ({tag})"] = br
        ratio_rows.append([f"b/r ({tag})", *fmt_summary(br), "(share of the bare manager kept)"])
        tps = per_variant[bn]["tasks_per_s"]["median"]
        targets += [
            {"target": f"b/a ({tag}) >= {TARGET_RATIO:g}", "value": ba["median"],
             "verdict": verdict(ba["median"], TARGET_RATIO)},
            {"target": f"b/a ({tag}) >= {GOAL_RATIO:g} (goal)", "value": ba["median"],
             "verdict": verdict(ba["median"], GOAL_RATIO)},
            {"target": f"guidist ({tag}) >= 100k tasks/s", "value": tps,
             "verdict": verdict(tps, TARGET_TPS)},
        ]
    if len(b_names) >= 2:
        on_off = ratios(res[b_names[1]], res[b_names[0]], "tasks_per_s")
        ratio_out["journal on / off"] = on_off
        ratio_rows.append(["journal on / off", *fmt_summary(on_off), "(cost of durability)"])
    print()
    print(table(["ratio (per round)", "median", "min – max", "target"], ratio_rows))
    for bn in b_names:
        tps = per_variant[bn]["tasks_per_s"]["median"]
        print(f"{bn.split(', ', 1)[1]}: guidist median {fmt(tps)} tasks/s, target >= 100,000: "
              f"{verdict(tps, TARGET_TPS)}")
    if "b  guidist, journal on" in res:
        lag = summary([r["journal_rows_when_stored"] / r["tasks"]
                       for r in res["b  guidist, journal on"]])
        print(f"journal on: when the last result was stored, the journal held "
              f"{100 * lag['median']:.0f}% of them (median; {100 * lag['min']:.0f}–"
              f"{100 * lag['max']:.0f}%); the rest was still buffered in memory")

    payload = {
        "figure": FIGURE, "name": NAME, "quick": args.quick, "rounds": rounds,
        "machine": info, "workers": WORKERS,
        "journal": {"available": has_journal, "reason": journal_reason},
        "method": {
            "classic": "perf_counter from the first put until the master read the last result",
            "guidist": "time.time() just before the first submit until the server's finished "
                       "stamp of the last result stored (results_since); completion is polled "
                       "every 20 ms but the poll does not enter the figure",
            "guidist journal on, durable": "the same runs until a read-only connection counts "
                                           "every result in the journal's finished table "
                                           "(polled every 0.1 s)",
            "pool": f"perf_counter over imap_unordered(square, range(N), chunksize=N/"
                    f"{WORKERS * 50}); pool started and warmed before timing",
            "bare": "time.time() before the first submit until the bare server's time.time() "
                    "stamp of its last stored result batch",
            "setup": "every round starts fresh processes; start-up is not timed; the variant "
                     "order rotates each round",
        },
        "variants": per_variant, "ratios": ratio_out, "targets": targets,
    }
    return finish(NAME, payload, args.no_save)


if __name__ == "__main__":
    sys.exit(main())
