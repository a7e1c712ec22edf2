"""Validation and argument streams of the submit panel's jobs (Qt-free)."""

from __future__ import annotations

import pytest

from guidist.gui.submission import (
    FIELD_COUNT,
    FIELD_FUNCTION,
    FIELD_HIGH,
    FIELD_ROWS,
    FIELD_START,
    FIELD_VALUE,
    PRESETS,
    InputError,
    build_job,
    parse_rows,
)


def _args(job) -> list[tuple[dict | None, list[tuple]]]:
    return [(kw, list(args)) for kw, args in job.groups()]


def test_range_fixed_and_random_jobs() -> None:
    job = build_job("square", mode="range", count=5, start="10")
    assert job.total == 5 and _args(job) == [(None, [(10,), (11,), (12,), (13,), (14,)])]
    assert "10..14" in job.describe()
    job = build_job("primes", mode="fixed", count=3, value="2000")
    assert _args(job) == [(None, [(2000,)] * 3)]
    job = build_job("sleep", mode="random", count=200, low="0.01", high="0.02", seed=1)
    values = [a[0] for a in _args(job)[0][1]]
    assert len(values) == 200 and all(0.01 <= v <= 0.02 for v in values)
    job = build_job("square", mode="random", count=50, low="1", high="3")
    assert {a[0] for a in _args(job)[0][1]} <= {1, 2, 3}


def test_custom_functions_take_any_literals() -> None:
    job = build_job("custom", mode="fixed", count=2, function=" tests.jobs:slow_square ",
                    value="[3, 0.5]")
    assert job.function == "tests.jobs:slow_square"
    assert _args(job) == [(None, [(3, 0.5), (3, 0.5)])]
    assert build_job("custom", mode="fixed", count=1, function="pkg.mod:fn").value == ()


@pytest.mark.parametrize(("preset", "fields", "field", "words"), [
    ("square", dict(mode="fixed", value=""), FIELD_VALUE, "needs an argument"),
    ("square", dict(mode="fixed", value="1 +"), FIELD_VALUE, "Python literal"),
    ("square", dict(mode="fixed", value="2.5"), FIELD_VALUE, "whole number"),
    ("square", dict(mode="fixed", value="[1, 2]"), FIELD_VALUE, "one argument"),
    ("square", dict(mode="range", start="1.5"), FIELD_START, "whole number"),
    ("primes", dict(mode="range", start="1"), FIELD_START, "at least 2"),
    ("sleep", dict(mode="random", low="1", high="x"), FIELD_HIGH, "numeric bounds"),
    ("sleep", dict(mode="random", low="-1", high="1"), "low", "at least 0"),
    ("fail", dict(mode="fixed", value="True"), FIELD_VALUE, "a number"),
    ("custom", dict(mode="fixed", function=""), FIELD_FUNCTION, "package.module:function"),
    ("custom", dict(mode="fixed", function="os.system"), FIELD_FUNCTION, "Unknown task"),
    ("square", dict(mode="rows", rows_text="  \n"), FIELD_ROWS, "Paste one task"),
    ("square", dict(mode="fixed", value="1", count=0), FIELD_COUNT, "between 1"),
])
def test_bad_input_names_the_field(preset: str, fields: dict, field: str, words: str) -> None:
    kwargs = dict(count=10)
    kwargs.update(fields)
    with pytest.raises(InputError) as err:
        build_job(preset, **kwargs)
    assert err.value.field == field
    assert words in str(err.value)


def test_rows_accept_values_lists_csv_and_json_objects() -> None:
    rows = parse_rows('7\n[3, 4]\n\n{"args": [2], "kwargs": {"x": 1}}\n1, \'a\'\nhello\n')
    assert rows == [((7,), None), ((3, 4), None), ((2,), {"x": 1}), ((1, "a"), None),
                    (("hello",), None)]
    job = build_job("custom", mode="rows", count=0, function="pkg.mod:fn",
                    rows_text='1\n{"args": [2], "kwargs": {"x": 1}}\n3')
    assert _args(job) == [(None, [(1,), (3,)]), ({"x": 1}, [(2,)])]
    with pytest.raises(InputError, match="line 2"):
        parse_rows('1\n{"args": 3}')


def test_rows_from_files(tmp_path) -> None:
    csv_file = tmp_path / "tasks.csv"
    csv_file.write_text("1,2\n\n3,'x'\n")
    assert parse_rows("", str(csv_file)) == [((1, 2), None), ((3, "x"), None)]
    jsonl = tmp_path / "tasks.jsonl"
    jsonl.write_text("[1]\n{bad\n")
    with pytest.raises(InputError, match="tasks.jsonl:2: not JSON"):
        parse_rows("", str(jsonl))
    job = build_job("square", mode="rows", count=0, rows_path=str(csv_file))
    assert job.total is None and len(_args(job)[0][1]) == 2
    with pytest.raises(InputError, match="no such file"):
        build_job("square", mode="rows", count=0, rows_path=str(tmp_path / "missing.csv"))


def test_every_preset_builds_with_its_defaults() -> None:
    for key, p in PRESETS.items():
        if p.function is None:
            continue
        job = build_job(key, mode=p.mode, count=3, value=p.value, start=p.start, low=p.low,
                        high=p.high)
        assert len(_args(job)[0][1]) == 3
