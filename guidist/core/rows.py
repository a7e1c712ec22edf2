"""The one parser for task rows (CSV or JSON lines), shared by ``guidist submit`` and the window.

A row becomes (args, kwargs). The rules:

* a ``.csv`` file is CSV throughout, every cell a Python literal (``parse_value``);
* otherwise each line is a JSON value (a list gives several arguments, ``{"args": [...],
  "kwargs": {...}}`` gives both) or, when it is not JSON, a CSV row of Python literals;
* blank lines are skipped; files are UTF-8, with or without a byte-order mark.

Rows stream: a file of millions of lines is never held in memory. Anything unreadable raises
RowError, whose message is one line: ``FILE:LINE: what is wrong`` (``line N: ...`` for text).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .tasks import as_args, parse_value

Row = tuple[tuple, "dict | None"]


class RowError(ValueError):
    """A row that cannot be read; the message names the file or "line" and the line number."""


def iter_text_rows(text: str) -> Iterator[Row]:
    """Rows of pasted text (JSON lines, or CSV rows of literals); errors say "line N: ..."."""
    yield from _lines_rows(io.StringIO(text), "line ")


def iter_file_rows(path: str | Path) -> Iterator[Row]:
    """Rows of a file, streamed; RowError for a file that is missing, binary or not UTF-8."""
    p = Path(path)
    try:
        # utf-8-sig reads a leading byte-order mark (as spreadsheets write them) and drops it.
        handle = p.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise RowError(f"cannot read {p}: {exc.strerror or exc}") from None
    name = f"{p}:"
    with handle:
        lines = _checked_lines(handle, p)
        if p.suffix.lower() == ".csv":
            yield from _csv_rows(lines, name)
        else:
            yield from _lines_rows(lines, name)


def _checked_lines(handle: io.TextIOBase, path: Path) -> Iterator[str]:
    """The file's lines; a decoding error or a NUL byte becomes a RowError naming the line."""
    lineno = 0
    try:
        for lineno, line in enumerate(handle, 1):  # noqa: B007 (lineno is read in the except)
            if "\0" in line:
                raise RowError(f"{path}: line {lineno} holds a NUL byte: this looks like a "
                               "binary file, not CSV or JSON lines")
            yield line
    except UnicodeDecodeError:
        raise RowError(f"{path}: line {lineno + 1} is not UTF-8 text: save the file as UTF-8 "
                       "(with or without a BOM)") from None


def _lines_rows(lines: Iterable[str], name: str) -> Iterator[Row]:
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            if line.lstrip()[:1] in ("{", "["):  # meant as JSON: say what is wrong with it
                raise RowError(f"{name}{lineno}: not JSON ({exc.msg})") from None
            yield from _csv_rows([line], name, lineno)
            continue
        except RecursionError:
            raise RowError(f"{name}{lineno}: nested too deeply to read") from None
        if isinstance(value, dict) and ("args" in value or "kwargs" in value):
            args, kwargs = value.get("args", []), value.get("kwargs")
            if not isinstance(args, list) or not (kwargs is None or isinstance(kwargs, dict)):
                raise RowError(f"{name}{lineno}: 'args' must be a list and 'kwargs' an object")
            yield tuple(args), (kwargs or None)
        else:
            yield as_args(value), None


def _csv_rows(lines: Iterable[str], name: str, first_line: int = 1) -> Iterator[Row]:
    reader = csv.reader(lines)
    for row in reader:
        lineno = first_line + reader.line_num - 1
        if not row or all(not c.strip() for c in row):
            continue
        try:
            yield tuple(_cell(c) for c in row), None
        except ValueError as exc:
            raise RowError(f"{name}{lineno}: {exc}") from None


def _cell(text: str) -> Any:
    try:
        return parse_value(text)
    except (RecursionError, MemoryError):
        raise ValueError("nested too deeply to read") from None
