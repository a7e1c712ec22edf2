"""Built-in task functions, the resolver for "package.module:function", and argument parsing."""

from __future__ import annotations

import ast
import asyncio
import functools
import importlib
import math
import random
import time
from collections.abc import Callable
from typing import Any

from . import remote


def square(n: int) -> int:
    """The tutorial's task: n * n."""
    return n * n


def sleep(seconds: float = 0.1) -> float:
    """Sleep, then return the seconds slept: a stand-in for blocking work."""
    time.sleep(float(seconds))
    return float(seconds)


def primes(limit: int = 20_000) -> int:
    """Count the primes below limit by trial division: CPU-bound on purpose."""
    limit = int(limit)
    count = 0
    for n in range(2, limit):
        for d in range(2, math.isqrt(n) + 1):
            if n % d == 0:
                break
        else:
            count += 1
    return count


def fail(probability: float = 0.5) -> str:
    """Raise with the given probability, otherwise return "ok": for demonstrating failures."""
    if random.random() < float(probability):
        raise RuntimeError(f"random failure (probability {probability})")
    return "ok"


def echo(x: Any = None) -> Any:
    """Return the argument unchanged."""
    return x


def io_wait(seconds: float = 0.05) -> float:
    """Block for seconds without using the CPU, like a network or disk call."""
    time.sleep(float(seconds))
    return float(seconds)


async def aio_wait(seconds: float = 0.05) -> float:
    """The async twin of io_wait: awaits instead of blocking."""
    await asyncio.sleep(float(seconds))
    return float(seconds)


#: Names a person can type instead of a dotted path.
BUILTINS: dict[str, Callable[..., Any]] = {
    "square": square,
    "sleep": sleep,
    "primes": primes,
    "fail": fail,
    "echo": echo,
    "io_wait": io_wait,
    "aio_wait": aio_wait,
}


class TaskNotFound(LookupError):
    """A task name that is neither built in nor an importable "package.module:function"."""


def resolve(name: str) -> Callable[..., Any]:
    """Return the callable for a built-in name, a "package.module:function" path, or a
    function sent by value and defined in this process (see remote)."""
    if name in BUILTINS:
        return BUILTINS[name]
    if remote.is_by_value(name):
        fn = remote.load(name)
        if fn is None:
            raise TaskNotFound(f"{name!r} was sent by value and its bytes are not here "
                               "(the server no longer has them)")
        return fn
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise TaskNotFound(
            f"unknown task {name!r}: use one of {', '.join(BUILTINS)} "
            "or 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskNotFound(f"cannot import {module_name!r} for task {name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise TaskNotFound(f"{module_name!r} has no attribute {attr!r}")
    if not callable(obj):
        raise TaskNotFound(f"{name!r} is not callable")
    return obj


def chunk_function(fn: Any) -> Any:
    """The function a map with chunksize > 1 submits: fn applied to each item of a chunk."""
    return functools.partial(run_chunk, fn)


def run_chunk(fn: Any, chunk: list[tuple]) -> list[Any]:
    """Run fn over a chunk of argument tuples, in order (a task of a chunked map)."""
    if isinstance(fn, str):
        fn = resolve(fn)
    return [fn(*args) for args in chunk]


def check_task_name(name: str) -> str:
    """Validate a task name as typed by a person; returns it stripped or raises ValueError."""
    name = name.strip()
    if name in BUILTINS:
        return name
    module_name, sep, attr = name.partition(":")
    ident = all(p.isidentifier() for p in module_name.split(".")) and all(
        p.isidentifier() for p in attr.split("."))
    if not sep or not ident:
        raise ValueError(f"unknown task {name!r}: use one of {', '.join(BUILTINS)} "
                         "or 'package.module:function'")
    return name


def parse_value(text: str) -> Any:
    """Parse one argument typed by a person as a Python literal (never eval); bare words are str."""
    text = text.strip()
    if not text:
        raise ValueError("empty argument")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        bare = text.replace("_", "").replace("-", "").replace(".", "")
        if bare.isalnum() and not text[0].isdigit():
            return text  # a bare word such as hello: treat it as a string
        raise ValueError(f"not a Python literal: {text!r}") from None


def parse_range(text: str) -> range:
    """Parse "A..B" (inclusive, like the CLI's --range) into a range."""
    a, sep, b = text.partition("..")
    try:
        if not sep:
            raise ValueError
        lo, hi = int(a.strip()), int(b.strip())
    except ValueError:
        raise ValueError(f"malformed range {text!r}: write it as A..B, e.g. 1..100") from None
    if hi < lo:
        raise ValueError(f"empty range {text!r}: the end must not be below the start")
    return range(lo, hi + 1)


def as_args(value: Any) -> tuple:
    """Turn one parsed line into positional arguments: a list becomes several, anything else one."""
    if isinstance(value, list):
        return tuple(value)
    return (value,)
