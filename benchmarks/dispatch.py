"""Fair dispatch: slow tasks right after a burst of trivial ones, 2 local workers.

    python -m benchmarks.dispatch [--quick] [--rounds N]

Each round starts a fresh server and 2 inline workers (``guidist_stack``), submits 20,000
``square`` and then 200 ``sleep(0.05)`` at once, and waits until nothing is queued, claimed or
running. Reported per round: the seconds from the first sleep's submission to the last sleep's
result (both stamps from the server's clock, so polling does not enter them), and how many of
the sleeps each worker ran. Two workers need 5 s for the sleeps; a worker that claims them all
makes it 10.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from .common import finish, guidist_stack, machine_info, machine_line, parser, summary, table

NAME = "dispatch"
FULL = {"squares": 20_000, "sleeps": 200, "rounds": 3}
QUICK = {"squares": 2_000, "sleeps": 20, "rounds": 1}
SLEEP_S = 0.05


def run(squares: int, sleeps: int) -> dict[str, Any]:
    """One round on fresh processes."""
    with guidist_stack(2) as (_server, _pool, client):
        client.submit_many("square", range(squares))
        ids = client.submit_many("sleep", [(SLEEP_S,)] * sleeps)
        while True:
            snap = client.snapshot()
            # counts.get: the same script also measures a tree without the claimed state
            held = snap.counts.get("claimed", 0) + snap.counts.get("running", 0)
            if snap.count("queued") == 0 and held == 0:
                break
            time.sleep(0.05)
        tasks = [client.get_task(i) for i in ids]
        seconds = max(t.finished for t in tasks) - min(t.submitted for t in tasks)
        split = sorted(Counter(t.worker for t in tasks).values())
        return {"seconds": seconds, "split": split, "smaller_share": split[0] / sleeps
                if len(split) > 1 else 0.0}


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print their table."""
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or sizes["rounds"]
    info = machine_info()
    print(f"Dispatch — {sizes['sleeps']} sleep({SLEEP_S}) after {sizes['squares']:,} square, "
          f"2 workers, {rounds} round{'s' * (rounds != 1)}")
    print(machine_line(info))
    runs = []
    for r in range(rounds):
        res = run(sizes["squares"], sizes["sleeps"])
        res["round"] = r
        print(f"  round {r + 1}/{rounds}  seconds={res['seconds']:.2f}  split={res['split']}")
        runs.append(res)
    secs, share = summary([r["seconds"] for r in runs]), summary([r["smaller_share"]
                                                                  for r in runs])
    print()
    print(table(["measure", "median", "min – max"], [
        ["seconds for the sleeps", f"{secs['median']:.2f}", f"{secs['min']:.2f} – {secs['max']:.2f}"],
        ["smaller worker's share", f"{share['median']:.2f}",
         f"{share['min']:.2f} – {share['max']:.2f}"],
    ]))
    payload = {"name": NAME, "quick": args.quick, "rounds": rounds, "machine": info,
               "sizes": sizes, "method": __doc__.split("\n\n", 2)[2].strip(),
               "seconds": secs, "smaller_share": share, "runs": runs}
    return finish(NAME, payload, args.no_save)


if __name__ == "__main__":
    sys.exit(main())
