"""What every benchmark shares: interleaved rounds, summaries, tables, JSON, process hygiene.

The machine these run on is shared and noisy, so a single number means little. Every comparison
runs its variants side by side in the same process, in interleaved rounds (the order rotates each
round so no variant always goes first), and is reported per round as a ratio; the summary is the
median with the min–max over rounds. Targets are printed as met/missed but never change the exit
code: a benchmark fails only when something crashes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib
import importlib.util
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

#: One random key per benchmark process: loopback only, never printed.
AUTHKEY = "bench-" + secrets.token_urlsafe(18)


# ---------------------------------------------------------------------------- command line

def parser(description: str) -> argparse.ArgumentParser:
    """The options every figure takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="small sizes, one round: checks that the benchmark still works (CI)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds (default per figure)")
    p.add_argument("--no-save", action="store_true", help="print only; do not write results/*.json")
    return p


# ---------------------------------------------------------------------------- machine

def machine_info() -> dict[str, Any]:
    """Where and on what the figures were measured."""
    cpu_model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cores_logical": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cores_physical": psutil.cpu_count(logical=False),
        "cpu_model": cpu_model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average": _loadavg(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "guidist")),
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine_line(info: dict[str, Any]) -> str:
    """One line for the top of a table."""
    commit = (info.get("git_commit") or "?")[:10] + ("+dirty" if info.get("git_dirty") else "")
    return (f"machine: {info['cores_usable'] or info['cores_logical']} cores "
            f"({info['cpu_model'] or 'unknown CPU'}), Python {info['python']}, "
            f"{info['platform']}, load {info['load_average']}, guidist {commit}")


# ---------------------------------------------------------------------------- rounds & stats

def interleaved(variants: Sequence[tuple[str, Callable[[], dict[str, Any]]]], rounds: int,
                log: Callable[[str], None] = print) -> dict[str, list[dict[str, Any]]]:
    """Run every variant once per round, rotating the order; returns name -> per-round results.

    A variant returns a dict of its measurements; the round number and load are added to it.
    """
    out: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    k = len(variants)
    for r in range(rounds):
        order = [variants[(r + i) % k] for i in range(k)]
        for name, fn in order:
            res = fn()
            res["round"] = r
            res["load_after"] = _loadavg()
            out[name].append(res)
            log(f"  round {r + 1}/{rounds}  {name:<32} {describe(res)}")
    return out


def describe(res: dict[str, Any]) -> str:
    """A progress line for one measurement."""
    parts = []
    for key in ("tasks_per_s", "seconds", "p50_ms", "p99_ms", "bytes_per_task"):
        if key in res and res[key] is not None:
            v = res[key]
            parts.append(f"{key}={v:,.0f}" if abs(v) >= 100 else f"{key}={v:.3g}")
    return "  ".join(parts)


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median and min–max (and the raw values) of per-round numbers."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "values": vals}


def ratios(num: list[dict[str, Any]], den: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Per-round num[key]/den[key], paired by round, summarised."""
    by_round = {d["round"]: d[key] for d in den if d.get(key)}
    return summary([n[key] / by_round[n["round"]] for n in num
                    if n.get(key) is not None and n["round"] in by_round])


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation of sorted values."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


# ---------------------------------------------------------------------------- printing

def fmt(v: float | None, digits: int = 3) -> str:
    """Numbers for tables: thousands separators for big ones, significant digits for small."""
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def fmt_summary(s: dict[str, Any], digits: int = 3) -> tuple[str, str]:
    """(median, "min – max") strings."""
    if not s or s.get("median") is None:
        return "—", "—"
    return fmt(s["median"], digits), f"{fmt(s['min'], digits)} – {fmt(s['max'], digits)}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        line = "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                         for i, c in enumerate(row))
        lines.append(line.rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(value: float | None, target: float, higher_is_better: bool = True) -> str:
    """'met' / 'MISSED' for a target (printed, never an exit code)."""
    if value is None:
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "MISSED"


# ---------------------------------------------------------------------------- saving

def save(name: str, payload: dict[str, Any], no_save: bool = False) -> Path | None:
    """Write results/<name>.json (quick runs go to <name>.quick.json so they never overwrite)."""
    if no_save:
        return None
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = ".quick.json" if payload.get("quick") else ".json"
    path = RESULTS / f"{name}{suffix}"
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "value"):
        return o.value
    return repr(o)


# ---------------------------------------------------------------------------- guidist helpers

def journal_available() -> tuple[bool, str]:
    """Whether the SQLite journal exists in this checkout (guidist.core.backends.memory.journal), and why not."""
    try:
        if importlib.util.find_spec("guidist.core.backends.memory.journal") is None:
            return False, "guidist.core.backends.memory.journal does not exist yet"
        mod = importlib.import_module("guidist.core.backends.memory.journal")
    except Exception as exc:  # a half-written store must not break the journal-off figures
        return False, f"guidist.core.backends.memory.journal does not import: {type(exc).__name__}: {exc}"
    if not hasattr(mod, "open_journaled_broker"):
        return False, "guidist.core.backends.memory.journal has no open_journaled_broker yet"
    return True, "guidist.core.backends.memory.journal is importable"


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.02) -> Any:
    """Poll until predicate() is truthy; raise TimeoutError naming what we waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def guidist_stack(workers: int, journal: bool = False, server_gc: str | None = None,
                  worker_args: tuple[str, ...] = (), gc_stats_path: str | None = None,
                  **server_options: Any) -> Iterator[Any]:
    """A server on 127.0.0.1:0 (journal in a temp dir if asked), n workers, a connected client.

    ``server_gc`` applies a GC tweak inside the server process and ``gc_stats_path`` makes it
    write its GC statistics there when it stops (see benchmarks/_hooks.py);
    ``worker_args`` are extra ``guidist worker`` options. Yields (server, pool, client) once
    every worker has registered; stops them all by pid afterwards, whatever happened.
    """
    import tempfile

    from guidist.core.client import Client
    from guidist.core.pool import WorkerPool
    from guidist.core.server import ServerProcess

    tmp = tempfile.TemporaryDirectory(prefix="guidist-bench-") if journal else None
    server = ServerProcess("127.0.0.1", 0, AUTHKEY,
                           journal=str(Path(tmp.name) / "journal.sqlite3") if tmp else None,
                           **server_options)
    pool = None
    client = None
    try:
        if (server_gc and server_gc != "default") or gc_stats_path:
            from ._hooks import tweaked_server_entry

            server.config.extra["bench_gc"] = server_gc
            server.config.extra["bench_gc_stats"] = gc_stats_path
            with tweaked_server_entry():
                address = server.start()
        else:
            address = server.start()
        client = Client(address, AUTHKEY).connect()
        if workers:
            pool = WorkerPool(address, AUTHKEY, give_up_after=10.0, extra_args=worker_args)
            pool.launch(workers)
            wait_until(lambda: client.snapshot().connected_workers >= workers, 60,
                       f"{workers} workers to register")
        yield server, pool, client
    finally:
        if client is not None:
            client.close()
        if pool is not None:
            pool.stop_all(timeout=10)
        server.stop()
        if tmp is not None:
            tmp.cleanup()


def run_in_tree(tree: Path, args: Sequence[str], timeout: float = 900) -> dict[str, Any]:
    """Run ``python *args`` with tree's code first on the path (cwd tree); returns the JSON of
    the last line it printed that starts with ``RESULT ``. Comparing source trees side by side
    needs each in an interpreter of its own: modules once imported can't be swapped."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True,
                         text=True, timeout=timeout)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"the run in {tree} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    return result


def rss(pid: int) -> int:
    """Resident set size of a process, in bytes."""
    return psutil.Process(pid).memory_info().rss


def leftover_children() -> list[psutil.Process]:
    """Child processes of this benchmark still running (multiprocessing's tracker excepted)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" in " ".join(p.cmdline()):
                continue
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def stop_leftovers(grace: float = 5.0) -> list[int]:
    """Kill, by pid, any child this benchmark started and failed to stop; returns their pids."""
    deadline = time.monotonic() + grace
    left = leftover_children()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = leftover_children()
    pids = []
    for p in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            pids.append(p.pid)
            p.kill()
    return pids


def finish(name: str, payload: dict[str, Any], no_save: bool) -> int:
    """Save, report leftovers, return the exit code (0: a number never fails a benchmark)."""
    killed = stop_leftovers()
    if killed:
        print(f"warning: had to kill leftover child processes {killed}", file=sys.stderr)
        payload["killed_leftovers"] = killed
    path = save(name, payload, no_save)
    if path is not None:
        print(f"\nsaved {path.relative_to(ROOT)}")
    return 0
