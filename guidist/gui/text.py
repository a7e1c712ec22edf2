"""Qt-free text helpers of the window, so the network process can use them without Qt."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """"1 task", "2 tasks", "1,000 tasks"."""
    return f"{fmt_int(n)} {word if n == 1 else (many or word + 's')}"


def fmt_int(n: int | float) -> str:
    """Thousands separators, so a million reads as 1,000,000."""
    return f"{int(n):,}"


def shorten(text: str, limit: int = 120) -> str:
    """One line, at most limit characters, with an ellipsis when cut."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
