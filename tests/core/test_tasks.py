"""tasks: built-in functions, the resolver, and parsing what a person types (never eval)."""

from __future__ import annotations

import ast
import builtins

import pytest

from guidist.core import tasks
from guidist.core.tasks import (
    TaskNotFound,
    as_args,
    check_task_name,
    parse_range,
    parse_value,
    resolve,
)


def test_builtins() -> None:
    assert tasks.square(7) == 49
    assert tasks.echo({"a": 1}) == {"a": 1}
    assert tasks.primes(30) == 10
    assert tasks.sleep(0) == 0.0
    assert tasks.fail(0.0) == "ok"
    with pytest.raises(RuntimeError, match="random failure"):
        tasks.fail(1.0)
    assert set(tasks.BUILTINS) == {"square", "sleep", "primes", "fail", "echo", "io_wait",
                                   "aio_wait"}


def test_resolve_builtin_and_dotted_path() -> None:
    assert resolve("square") is tasks.square
    assert resolve("guidist.core.tasks:echo") is tasks.echo
    assert resolve("os.path:join").__name__ == "join"
    from tests import jobs

    assert resolve("tests.jobs:slow_square") is jobs.slow_square


@pytest.mark.parametrize("name, match", [
    ("nosuch", "unknown task"),
    (":square", "unknown task"),
    ("os.path:", "unknown task"),
    ("no_such_module_xyz:f", "cannot import"),
    ("os.path:no_such_attr", "has no attribute"),
    ("os:sep", "not callable"),
])
def test_resolve_errors(name: str, match: str) -> None:
    with pytest.raises(TaskNotFound, match=match):
        resolve(name)


def test_check_task_name() -> None:
    assert check_task_name(" square ") == "square"
    assert check_task_name("pkg.mod:func") == "pkg.mod:func"
    for bad in ("nosuch", "pkg.mod", "pkg mod:f", "pkg.mod:f()", "1pkg:f", ""):
        with pytest.raises(ValueError, match="unknown task"):
            check_task_name(bad)


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("-2.5", -2.5), ("'hi'", "hi"), ("[1, 2]", [1, 2]), ("(1,)", (1,)),
    ("{'a': 1}", {"a": 1}), ("None", None), ("True", True), ("hello", "hello"),
    ("my-name_1", "my-name_1"), ("  7  ", 7),
])
def test_parse_value_literals(text: str, value: object) -> None:
    assert parse_value(text) == value


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "open('/etc/passwd')", "1 +", "[1, 2", "a b", "",
    "   ", "(lambda: 1)()", "2 ** 1000000000",
])
def test_parse_value_refuses_code(text: str) -> None:
    with pytest.raises(ValueError):
        parse_value(text)


def test_parse_value_never_calls_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    """literal_eval is the only evaluator: eval/exec/compile in mode 'eval' must not run."""
    calls = []

    def spy(name):  # type: ignore[no-untyped-def]
        real = getattr(builtins, name)

        def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            calls.append(name)
            return real(*a, **k)
        return wrapper

    monkeypatch.setattr(builtins, "eval", spy("eval"))
    monkeypatch.setattr(builtins, "exec", spy("exec"))
    used = []
    real_literal_eval = ast.literal_eval
    monkeypatch.setattr(ast, "literal_eval", lambda t: used.append(t) or real_literal_eval(t))
    assert parse_value("[1, 'x']") == [1, "x"]
    with pytest.raises(ValueError):
        parse_value("__import__('os').getpid()")
    assert calls == []
    assert used == ["[1, 'x']", "__import__('os').getpid()"]


def test_parse_range() -> None:
    assert parse_range("1..5") == range(1, 6)
    assert parse_range(" -2 .. 2 ") == range(-2, 3)
    assert parse_range("7..7") == range(7, 8)


@pytest.mark.parametrize("text, match", [
    ("1-5", "malformed range"), ("a..b", "malformed range"), ("1..", "malformed range"),
    ("..3", "malformed range"), ("", "malformed range"), ("1...5", "malformed range"),
    ("5..1", "empty range"),
])
def test_parse_range_errors(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_range(text)


def test_as_args() -> None:
    assert as_args([1, 2]) == (1, 2)
    assert as_args((1, 2)) == ((1, 2),)
    assert as_args(5) == (5,)
    assert as_args(None) == (None,)
