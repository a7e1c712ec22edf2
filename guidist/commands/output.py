"""Where a command writes rows: a file named by -o (its format from the suffix), or stdout."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import IO

from .failures import CliError


def output_format(args: argparse.Namespace) -> str:
    """--format, else csv for an -o FILE.csv, else JSON lines."""
    return args.format or ("csv" if (args.output or "").lower().endswith(".csv") else "jsonl")


def write_output(args: argparse.Namespace, write: Callable[[IO[str]], int],
                 what: str) -> int:
    """Run write on -o FILE (saying on stderr how many of what went where) or on stdout."""
    if not args.output or args.output == "-":
        return write(sys.stdout)
    try:
        out = open(args.output, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror}") from None
    with out:
        n = write(out)
    print(f"wrote {n} {what} to {args.output}", file=sys.stderr)
    return n
