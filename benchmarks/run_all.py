"""Run every figure, one after the other, each in its own process.

    python -m benchmarks.run_all [--quick] [--only 1,2] [--skip 5]

A figure is any module in this package that assigns a ``FIGURE = "<number>"`` string at top level
and has a ``main(argv)``; the window figures (3, 4 and the window part of 5) join by adding their
own module, with ``REQUIRES = ("PySide6", ...)`` naming what must be importable (a figure whose
requirements are missing is reported as skipped, not failed). Modules are found by reading their
source, so discovering a window figure never imports Qt here.

Each figure runs as ``python -m benchmarks.<module>`` so its processes, memory and timings never
leak into the next one. The exit code is non-zero only if a figure crashed.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import ROOT, machine_info, machine_line, save, table

PACKAGE = Path(__file__).resolve().parent


def discover() -> list[dict[str, Any]]:
    """Figure modules in this package, ordered by figure number then name."""
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem.startswith("_") or path.stem == "run_all":
            continue
        try:
            tree = ast.parse(path.read_text(), str(path))
        except SyntaxError as exc:
            found.append({"module": path.stem, "figure": "?", "requires": (),
                          "error": f"syntax error: {exc}"})
            continue
        consts: dict[str, Any] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                    isinstance(node.targets[0], ast.Name) and \
                    node.targets[0].id in ("FIGURE", "REQUIRES"):
                try:
                    consts[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    pass
        if "FIGURE" in consts:
            found.append({"module": path.stem, "figure": str(consts["FIGURE"]),
                          "requires": tuple(consts.get("REQUIRES", ()))})

    def key(f: dict[str, Any]) -> tuple:
        num = f["figure"].split(".")[0]
        return (int(num) if num.isdigit() else 99, f["figure"], f["module"])

    return sorted(found, key=key)


def missing(requires: tuple[str, ...]) -> list[str]:
    """Required modules that are not importable here."""
    out = []
    for name in requires:
        try:
            if importlib.util.find_spec(name) is None:
                out.append(name)
        except (ImportError, ValueError):
            out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the figures; print a summary of what ran."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="every figure in its quick mode (CI)")
    p.add_argument("--only", help="comma-separated figure numbers or module names to run")
    p.add_argument("--skip", help="comma-separated figure numbers or module names to skip")
    p.add_argument("--no-save", action="store_true", help="no results/*.json")
    args = p.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    skip = set(args.skip.split(",")) if args.skip else set()

    info = machine_info()
    print(machine_line(info))
    figures = discover()
    summary_rows, results = [], []
    crashed = False
    for f in figures:
        names = {f["figure"], f["module"]}
        if (only is not None and not names & only) or names & skip:
            continue
        status, seconds = "", 0.0
        if "error" in f:
            status, crashed = f["error"], True
        elif (gone := missing(f["requires"])):
            status = f"skipped: needs {', '.join(gone)}"
        else:
            cmd = [sys.executable, "-m", f"benchmarks.{f['module']}"]
            cmd += ["--quick"] if args.quick else []
            cmd += ["--no-save"] if args.no_save else []
            print(f"\n=== figure {f['figure']}: {' '.join(cmd[1:])}", flush=True)
            t0 = time.monotonic()
            code = subprocess.call(cmd, cwd=ROOT)
            seconds = time.monotonic() - t0
            status = "ok" if code == 0 else f"CRASHED (exit {code})"
            crashed |= code != 0
        summary_rows.append([f["figure"], f["module"], status, f"{seconds:.0f}"])
        results.append({"figure": f["figure"], "module": f["module"], "status": status,
                        "seconds": round(seconds, 1)})

    print()
    print(table(["figure", "module", "status", "s"], summary_rows))
    path = save("run_all", {"name": "run_all", "quick": args.quick, "machine": info,
                            "figures": results}, args.no_save)
    if path is not None:
        print(f"\nsaved {path.relative_to(ROOT)}")
        for r in results:
            sub = PACKAGE / "results" / f"{r['module']}{'.quick' if args.quick else ''}.json"
            if r["status"] == "ok" and sub.exists():
                try:
                    json.loads(sub.read_text())
                except ValueError:
                    print(f"warning: {sub.name} is not valid JSON", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
