"""One help format for every command: defaults shown, a description and examples."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from typing import Any


class HelpFormatter(argparse.HelpFormatter):
    """Wraps prose, keeps indented blocks (examples, tables) as written, shows defaults.

    argparse's ArgumentDefaultsHelpFormatter would also print "(default: None)" and
    "(default: False)" for every flag; a default is shown here only when it says something.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for para in text.split("\n\n"):
            lines = para.splitlines()
            if any(line.startswith(" ") for line in lines[1:]) or len(lines) > 1:
                out.append("\n".join(indent + line for line in lines))  # a block: as written
            else:
                out.append(textwrap.fill(para, width, initial_indent=indent,
                                         subsequent_indent=indent))
        return "\n\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or action.nargs == 0 or "default" in text.lower()
                or text == argparse.SUPPRESS or default is None or default is False
                or default is argparse.SUPPRESS or default == [] or default == ""):
            return action.help
        return f"{text} (default: %(default)s)"


def examples(*lines: str) -> str:
    """The epilog of a command's help: its examples, one command line each."""
    body = "\n".join(f"  {line}" for line in lines)
    return f"example{'s' if len(lines) > 1 else ''}:\n{body}"


def add_command(sub: Any, name: str, summary: str, description: str,
                example_lines: Sequence[str],
                parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """A subcommand with its one-line summary, a description and its examples."""
    return sub.add_parser(name, help=summary, description=description,
                          epilog=examples(*example_lines), formatter_class=HelpFormatter,
                          parents=list(parents))


def verbosity_parent() -> argparse.ArgumentParser:
    """-v and -q for use after the subcommand (the top-level parser has its own before it).

    Their defaults are SUPPRESS so that a subcommand's parser does not overwrite what was
    counted before the subcommand; main() adds both counts up.
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-v", "--verbose", dest="verbose_after", action="count",
                        default=argparse.SUPPRESS, help="more logging (repeatable)")
    parent.add_argument("-q", "--quiet", dest="quiet_after", action="count",
                        default=argparse.SUPPRESS, help="less logging (repeatable)")
    return parent


def verbosity(args: argparse.Namespace) -> int:
    """Net verbosity: each -v adds one, each -q takes one away, before or after the command."""
    return (int(getattr(args, "verbose", 0) or 0) + int(getattr(args, "verbose_after", 0) or 0)
            - int(getattr(args, "quiet", 0) or 0) - int(getattr(args, "quiet_after", 0) or 0))
