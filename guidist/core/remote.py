"""What crosses the wire by value: functions a worker cannot import, and task exceptions.

A task names its function. A function a worker can import goes *by reference*, as
``"package.module:function"``. A function defined in the caller's ``__main__``, a lambda, a
closure or a ``functools.partial`` goes *by value*: cloudpickle turns it into bytes, the
server keeps those bytes under a name that ends in ``#`` and a digest
(``"__main__:cube#1f2e3d4c5b6a"``), and each worker fetches them once and loads them. So a
script runs on workers without installing anything there.

Loading bytes runs code, which is the same trust as the key already gives: whoever holds it
can run code on the server and the workers. The server never loads these bytes itself.

A task that raises sends its exception back the same way (cloudpickled, so an exception
class defined in ``__main__`` travels too), and ``Future.result()`` raises it again where
it can be loaded; the traceback text always travels beside it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import pickle
import threading
from collections.abc import Callable
from typing import Any

#: Marks a by-value function name: what follows is a digest of its bytes.
BY_VALUE = "#"
_MAX_EXCEPTION = 1 << 20  # bytes: a larger pickled exception travels as its text only

_DEFINED: dict[str, bytes] = {}  # by-value name -> cloudpickled bytes, in this process
_LOADED: dict[str, Callable[..., Any]] = {}
_lock = threading.Lock()


class NotSendable(ValueError):
    """A function that can go neither by reference nor by value."""


def is_by_value(name: str) -> bool:
    """True for a name made by function_spec for a function sent as bytes."""
    return BY_VALUE in name


def importable_name(fn: Any) -> str | None:
    """"module:qualname" when importing that gives back fn itself (so it can go by
    reference); None for functions of __main__, lambdas, closures and other locals."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if obj is fn else None


def function_spec(fn: Any) -> tuple[str, bytes | None]:
    """(name, bytes) for a task function: bytes is None when it goes by reference.

    fn may be a "package.module:function" (or built-in) name, which is used as is. Raises
    NotSendable, with what to do, for a callable that can go neither way.
    """
    if isinstance(fn, str):
        return fn, None
    if not callable(fn):
        raise NotSendable(f"{fn!r} is not callable: pass a function or a "
                          "'package.module:function' name")
    name = importable_name(fn)
    if name is not None:
        return name, None
    try:
        import cloudpickle

        blob = cloudpickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise NotSendable(
            f"{_describe(fn)} cannot be sent to workers: it is not importable there and "
            f"cloudpickle cannot copy it ({type(exc).__name__}: {exc}). Move it to a module "
            "the workers can import, or make what it captures picklable.") from None
    digest = hashlib.sha256(blob).hexdigest()[:16]
    return f"{_label(fn)}{BY_VALUE}{digest}", blob


def define(name: str, blob: bytes) -> None:
    """Make a by-value function known in this process (a worker fetched it)."""
    with _lock:
        _DEFINED[name] = blob


def blob_of(name: str) -> bytes | None:
    """The bytes of a by-value function known here, or None."""
    return _DEFINED.get(name)


def load(name: str) -> Callable[..., Any] | None:
    """The by-value function of that name, loaded once per process; None if not defined."""
    fn = _LOADED.get(name)
    if fn is not None:
        return fn
    blob = _DEFINED.get(name)
    if blob is None:
        return None
    fn = pickle.loads(blob)  # cloudpickle's output loads with pickle (cloudpickle installed)
    with _lock:
        _LOADED[name] = fn
    return fn


def dump_exception(exc: BaseException) -> bytes | None:
    """A task's exception as bytes to send back, or None when it cannot be pickled."""
    try:
        import cloudpickle

        blob = cloudpickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        # Round-trip here: an exception whose __init__ takes other arguments than it passes
        # to Exception pickles but fails to load, and the caller must then get TaskFailed.
        pickle.loads(blob)
    except Exception:
        return None
    return blob if len(blob) <= _MAX_EXCEPTION else None


def load_exception(blob: bytes | None) -> BaseException | None:
    """The exception sent back by a worker, or None when it cannot be loaded here."""
    if not blob:
        return None
    try:
        exc = pickle.loads(blob)
    except Exception:
        return None
    return exc if isinstance(exc, BaseException) else None


def _label(fn: Any) -> str:
    """A readable prefix for a by-value name: module:qualname (or the partial's function)."""
    if isinstance(fn, functools.partial):
        inner = fn.func
        if getattr(inner, "__name__", "") == "run_chunk" and fn.args:  # tasks.chunk_function
            return _label(fn.args[0]) + "[chunks]"
        return _label(inner) + "[partial]"
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or type(fn).__name__
    return f"{module}:{qualname}".replace(BY_VALUE, "")


def _describe(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
