"""remote: which functions go by reference, which by value, and exceptions sent back."""

from __future__ import annotations

import functools
import math
import operator
import pickle
import threading

import pytest

from guidist.core import remote
from guidist.core.tasks import chunk_function, resolve
from tests.jobs import boom


def test_importable_functions_go_by_reference() -> None:
    assert remote.function_spec(math.factorial) == ("math:factorial", None)
    assert remote.function_spec(boom) == ("tests.jobs:boom", None)
    assert remote.function_spec(operator.truediv)[1] is None
    assert remote.function_spec("square") == ("square", None)  # names are used as they are


def test_locals_lambdas_and_partials_go_by_value() -> None:
    offset = 5

    def add_offset(x: int) -> int:
        return x + offset

    for fn, label in ((add_offset, "add_offset"), (lambda x: x * 2, "<lambda>"),
                      (functools.partial(operator.add, 1), "[partial]")):
        name, blob = remote.function_spec(fn)
        assert remote.is_by_value(name) and label in name and blob is not None
        # the same function, the same name: defined once however often it is submitted
        assert remote.function_spec(fn)[0] == name
        remote.define(name, blob)
        assert resolve(name)(10) == fn(10)
    name, blob = remote.function_spec(chunk_function(add_offset))
    assert "add_offset[chunks]" in name
    remote.define(name, blob)
    assert resolve(name)([(1,), (2,)]) == [6, 7]


def test_a_function_that_cannot_go_either_way_is_refused_clearly() -> None:
    lock = threading.Lock()
    with pytest.raises(remote.NotSendable, match="cannot be sent to workers.*importable"):
        remote.function_spec(lambda: lock)
    with pytest.raises(remote.NotSendable, match="not callable"):
        remote.function_spec(42)
    with pytest.raises(LookupError, match="sent by value"):
        resolve("__main__:gone#0123456789abcdef")


class _Odd(Exception):
    def __init__(self, a: int, b: int) -> None:  # does not pass its arguments to Exception
        super().__init__(f"{a}/{b}")


def test_exceptions_travel_back_when_they_can() -> None:
    blob = remote.dump_exception(ZeroDivisionError("division by zero"))
    exc = remote.load_exception(blob)
    assert isinstance(exc, ZeroDivisionError) and str(exc) == "division by zero"
    assert remote.dump_exception(_Odd(1, 2)) is None  # would not load again: text only
    assert remote.load_exception(b"not a pickle") is None
    assert remote.load_exception(pickle.dumps("a string")) is None
    assert remote.load_exception(None) is None
