"""What the submit panel asks for, as plain data: presets, validated jobs, argument streams.

Qt-free, so the parsing is tested without a window. A job is a recipe, not a list: the submit
thread iterates it lazily, so a million tasks are never held as one list in the window.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.protocol import check_job_name
from ..core.rows import RowError, iter_file_rows, iter_text_rows
from ..core.tasks import as_args, check_task_name, parse_value

MAX_TASKS = 10_000_000
#: Pasted text up to this size is checked at once on Enqueue; bigger pastes (and files) are
#: checked by the submit thread before anything is sent, so the window never stalls.
PRECHECK_CHARS = 200_000

#: How the arguments of the tasks are made.
MODE_FIXED, MODE_RANGE, MODE_RANDOM, MODE_ROWS = "fixed", "range", "random", "rows"
MODES: dict[str, str] = {
    MODE_RANGE: "Range (n, n+1, …)",
    MODE_FIXED: "Same value",
    MODE_RANDOM: "Random in a range",
    MODE_ROWS: "Paste or load a file",
}

#: Field names used in InputError, so the panel can point at the right widget.
FIELD_FUNCTION, FIELD_COUNT, FIELD_VALUE, FIELD_START = "function", "count", "value", "start"
FIELD_LOW, FIELD_HIGH, FIELD_ROWS, FIELD_JOB = "low", "high", "rows", "job"


class InputError(ValueError):
    """Bad input in one field; ``field`` names it, ``str(error)`` says what to type instead."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _number(what: str, lo: float | None = None, hi: float | None = None,
            integer: bool = False) -> Callable[[Any], None]:
    """A checker for one argument of a built-in task."""

    def check(value: Any) -> None:
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or (isinstance(value, float) and
                                                  not math.isfinite(value)):
            raise ValueError(f"{what} must be {'a whole number' if integer else 'a number'}, "
                             f"not {value!r}")
        if lo is not None and value < lo:
            raise ValueError(f"{what} must be at least {lo}, not {value!r}")
        if hi is not None and value > hi:
            raise ValueError(f"{what} must be at most {hi}, not {value!r}")

    return check


@dataclass(frozen=True)
class Preset:
    """A task the panel offers by name, with sensible default arguments."""

    key: str
    label: str
    function: str | None  # None: the person types "package.module:function"
    mode: str
    value: str = ""
    start: str = "1"
    low: str = "1"
    high: str = "100"
    needs_arg: bool = False
    check: Callable[[Any], None] | None = None
    help: str = ""
    fits: str = ""  # the worker mode that suits the task (see worker_hint)


PRESETS: dict[str, Preset] = {p.key: p for p in (
    Preset("square", "square (classic)", "square", MODE_RANGE, value="7", start="1",
           low="1", high="10000", needs_arg=True, check=_number("n", integer=True),
           help="n × n, the tutorial's task; tutorial-style workers run it too.",
           fits="inline"),
    Preset("sleep", "sleep", "sleep", MODE_RANDOM, value="0.1", low="0.05", high="0.5",
           check=_number("seconds", 0, 3600),
           help="Sleep for the given seconds: stands in for I/O-bound work.", fits="thread"),
    Preset("primes", "primes (CPU)", "primes", MODE_FIXED, value="20000", low="5000",
           high="50000", check=_number("limit", 2, 10_000_000, integer=True),
           help="Count primes below the limit by trial division: CPU-bound work.",
           fits="process"),
    Preset("io_wait", "io_wait (I/O, blocking)", "io_wait", MODE_RANDOM, value="0.05",
           low="0.02", high="0.1", check=_number("seconds", 0, 3600),
           help="Block for the given seconds without using the CPU, like a network call.",
           fits="thread"),
    Preset("aio_wait", "aio_wait (async I/O)", "aio_wait", MODE_RANDOM, value="0.05",
           low="0.02", high="0.1", check=_number("seconds", 0, 3600),
           help="An async def that awaits the given seconds: I/O on an event loop.",
           fits="async"),
    Preset("fail", "fail (random failures)", "fail", MODE_FIXED, value="0.3", low="0.1",
           high="0.9", check=_number("probability", 0, 1),
           help="Raise with the given probability, to watch failures and retries.",
           fits="inline"),
    Preset("custom", "custom function…", None, MODE_FIXED, value="",
           help="Any importable 'package.module:function' the workers can import."),
)}


#: Why a worker mode suits a kind of task: the tutorial's claim, one line each.
_MODE_REASONS: dict[str, str] = {
    "inline": "tiny tasks run fastest one at a time",
    "process": "CPU-bound, a process per core (threads do not help: the GIL)",
    "thread": "blocking I/O, many threads wait at once (async fits too)",
    "async": "async def, one event loop awaits many at once",
}


def worker_hint(preset: str, mode: str | None = None) -> str:
    """One line (rich text) saying which worker mode fits a preset's tasks; ✓ when mode does."""
    p = PRESETS.get(preset)
    if p is None or not p.fits:
        return "For custom tasks: <b>process</b> if CPU-bound, <b>thread</b> or <b>async</b> " \
               "if they wait on I/O."
    name = p.label.split(" (")[0]
    ok = mode == p.fits or (p.fits == "thread" and mode == "async")
    return f"For {name}: <b>{p.fits}</b> — {_MODE_REASONS[p.fits]}{' ✓' if ok else ''}"


@dataclass(frozen=True)
class SubmitJob:
    """A validated request to queue tasks; iterate ``groups()`` to get the arguments."""

    function: str
    mode: str
    count: int = 0
    value: tuple = ()
    start: int = 1
    low: float = 0
    high: float = 0
    rows_text: str | None = None
    rows_path: str | None = None
    seed: int | None = None
    job_name: str | None = None  # the job the tasks join (None: one named by the server)

    @property
    def total(self) -> int | None:
        """How many tasks, when known before reading any rows."""
        return None if self.mode == MODE_ROWS else self.count

    def describe(self) -> str:
        """One line for the log: what was asked (and in which job)."""
        text = self._describe_tasks()
        return f"{text}, in job {self.job_name}" if self.job_name else text

    def _describe_tasks(self) -> str:
        if self.mode == MODE_RANGE:
            return (f"{self.count:,} × {self.function}(n) for n in "
                    f"{self.start:,}..{self.start + self.count - 1:,}")
        if self.mode == MODE_FIXED:
            shown = ", ".join(repr(a) for a in self.value)
            return f"{self.count:,} × {self.function}({shown})"
        if self.mode == MODE_RANDOM:
            return f"{self.count:,} × {self.function}(random {self.low}..{self.high})"
        where = Path(self.rows_path).name if self.rows_path else "pasted rows"
        return f"{self.function} with arguments from {where}"

    def groups(self) -> list[tuple[dict | None, Iterable[tuple]]]:
        """(kwargs, argument tuples) groups; rows are read and checked here, before any is sent.

        Raises InputError for a bad row, so a file with a mistake queues nothing.
        """
        if self.mode == MODE_FIXED:
            return [(None, _repeat(self.value, self.count))]
        if self.mode == MODE_RANGE:
            return [(None, ((n,) for n in range(self.start, self.start + self.count)))]
        if self.mode == MODE_RANDOM:
            return [(None, _random_args(self.low, self.high, self.count, self.seed))]
        rows = parse_rows(self.rows_text or "", self.rows_path)
        grouped: dict[str, tuple[dict | None, list[tuple]]] = {}
        for args, kwargs in rows:
            key = json.dumps(kwargs, sort_keys=True, default=repr) if kwargs else ""
            grouped.setdefault(key, (kwargs, []))[1].append(args)
        return list(grouped.values())


def _repeat(args: tuple, n: int) -> Iterator[tuple]:
    for _ in range(n):
        yield args


def _random_args(low: float, high: float, n: int, seed: int | None) -> Iterator[tuple]:
    rng = random.Random(seed)
    if isinstance(low, int) and isinstance(high, int):
        for _ in range(n):
            yield (rng.randint(low, high),)
    else:
        for _ in range(n):
            yield (round(rng.uniform(low, high), 6),)


def _literal(field: str, text: str, what: str) -> Any:
    try:
        return parse_value(text)
    except ValueError as exc:
        raise InputError(field, f"{what}: {exc}. Type a Python literal such as 7, 0.5, "
                         "'text' or [1, 2].") from None


def check_job_field(text: str) -> str | None:
    """The job name typed in the submit panel: None when empty; InputError when unusable."""
    if not text.strip():
        return None
    try:
        return check_job_name(text)
    except ValueError as exc:
        raise InputError(FIELD_JOB, _sentence(str(exc))) from None


def build_job(preset_key: str, *, mode: str, count: int, function: str = "", value: str = "",
              start: str = "", low: str = "", high: str = "", rows_text: str = "",
              rows_path: str | None = None, seed: int | None = None) -> SubmitJob:
    """Validate what a person typed into the submit panel; raises InputError naming the field."""
    preset = PRESETS.get(preset_key)
    if preset is None:
        raise InputError(FIELD_FUNCTION, f"unknown preset {preset_key!r}")
    if preset.function is None:
        if not function.strip():
            raise InputError(FIELD_FUNCTION, "Type the function to run, as "
                             "package.module:function (the workers must be able to import it).")
        try:
            fn = check_task_name(function)
        except ValueError as exc:
            raise InputError(FIELD_FUNCTION, _sentence(str(exc))) from None
    else:
        fn = preset.function
    if mode not in MODES:
        raise InputError(FIELD_VALUE, f"unknown argument mode {mode!r}")
    if mode != MODE_ROWS and not 1 <= count <= MAX_TASKS:
        raise InputError(FIELD_COUNT, f"The number of tasks must be between 1 and "
                         f"{MAX_TASKS:,}.")

    def checked(field: str, v: Any) -> Any:
        if preset.check is not None:
            try:
                preset.check(v)
            except ValueError as exc:
                raise InputError(field, f"{preset.function}: {exc}.") from None
        return v

    if mode == MODE_FIXED:
        if not value.strip():
            if preset.needs_arg:
                raise InputError(FIELD_VALUE, f"{fn} needs an argument, for example "
                                 f"{preset.value or '7'}.")
            return SubmitJob(fn, mode, count, ())
        args = as_args(_literal(FIELD_VALUE, value, "Value"))
        if preset.check is not None:
            if len(args) != 1:
                raise InputError(FIELD_VALUE, f"{fn} takes one argument, not {len(args)}.")
            checked(FIELD_VALUE, args[0])
        return SubmitJob(fn, mode, count, args)
    if mode == MODE_RANGE:
        first = _literal(FIELD_START, start, "Start")
        if isinstance(first, bool) or not isinstance(first, int):
            raise InputError(FIELD_START, f"A range starts at a whole number, not {first!r}.")
        checked(FIELD_START, first)
        checked(FIELD_START, first + count - 1)
        return SubmitJob(fn, mode, count, start=first)
    if mode == MODE_RANDOM:
        lo = _literal(FIELD_LOW, low, "Low")
        hi = _literal(FIELD_HIGH, high, "High")
        for field, v in ((FIELD_LOW, lo), (FIELD_HIGH, hi)):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InputError(field, f"Random values need numeric bounds, not {v!r}.")
            checked(field, v)
        if hi < lo:
            raise InputError(FIELD_HIGH, f"High ({hi}) must not be below low ({lo}).")
        return SubmitJob(fn, mode, count, low=lo, high=hi, seed=seed)
    if not rows_text.strip() and not rows_path:
        raise InputError(FIELD_ROWS, "Paste one task per line (a value, a CSV row or a JSON "
                         "line), or load a CSV or JSON-lines file.")
    if rows_path is None and len(rows_text) <= PRECHECK_CHARS:
        parse_rows(rows_text)  # check pasted text now, next to the field
    elif rows_path is not None and not Path(rows_path).is_file():
        raise InputError(FIELD_ROWS, f"Cannot read {rows_path}: no such file.")
    return SubmitJob(fn, mode, rows_text=rows_text or None, rows_path=rows_path)


def parse_rows(text: str, path: str | None = None) -> list[tuple[tuple, dict | None]]:
    """One (args, kwargs) per non-empty line of pasted text or of a file (``core.rows``'s rules).

    Raises InputError naming the line, or when there are no rows at all.
    """
    try:
        rows = list(iter_file_rows(path) if path is not None else iter_text_rows(text))
    except RowError as exc:
        message = str(exc)
        raise InputError(FIELD_ROWS, message if message.endswith(".") else message + ".") \
            from None
    if not rows:
        raise InputError(FIELD_ROWS, "There are no tasks in the text: write one per line.")
    return rows


def _sentence(text: str) -> str:
    """Capital first letter and a final full stop, leaving the rest as it is."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
