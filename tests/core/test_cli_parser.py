"""The command line's conventions, checked on the parser itself (no processes needed)."""

from __future__ import annotations

import argparse

import pytest

from guidist.cli import _default_to_gui, build_parser
from guidist.commands.connection import CONNECT_ENV, REDIS_ENV, bare_redis_flags, target_from
from guidist.commands.failures import CliError
from guidist.commands.help import verbosity
from guidist.commands.window import NO_DISPLAY, display_problem


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "guidist"
                ) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command parser, with its full name."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append((f"{prefix} {name}", sub))
                out.extend(_subparsers(sub, f"{prefix} {name}"))
    return out


def test_every_command_has_a_description_and_an_example() -> None:
    commands = _subparsers(build_parser())
    names = {name for name, _ in commands}
    assert {"guidist pause", "guidist resume", "guidist cancel", "guidist retry",
            "guidist purge", "guidist task", "guidist workers", "guidist workers stop",
            "guidist status", "guidist submit", "guidist export", "guidist worker",
            "guidist serve", "guidist gui", "guidist prune"} <= names
    for name, sub in commands:
        assert sub.description and len(sub.description) > 20, name
        assert sub.epilog and sub.epilog.startswith("example"), name
        assert name in sub.epilog, name  # the example runs this very command
        assert "(default: None)" not in sub.format_help(), name


def test_help_shows_the_defaults_that_mean_something() -> None:
    commands = dict(_subparsers(build_parser()))
    serve = commands["guidist serve"].format_help()
    assert "(default: 5000)" in serve and "(default: 30.0)" in serve
    assert "(default: False)" not in serve


@pytest.mark.parametrize("argv, expected", [
    ([], ["gui"]),
    (["--demo"], ["gui", "--demo"]),
    (["-v", "--demo"], ["-v", "gui", "--demo"]),
    (["-vq", "-v"], ["-vq", "-v", "gui"]),
    (["--version"], ["--version"]),
    (["-v", "--help"], ["-v", "--help"]),
    (["-q", "status"], ["-q", "status"]),
    (["status", "-v"], ["status", "-v"]),
])
def test_no_command_means_the_window(argv: list[str], expected: list[str]) -> None:
    assert _default_to_gui(argv) == expected


def test_verbose_and_quiet_add_up_on_both_sides_of_the_command() -> None:
    parser = build_parser()
    assert verbosity(parser.parse_args(["-vv", "status", "-v"])) == 3
    assert verbosity(parser.parse_args(["-v", "status", "-qq"])) == -1
    assert verbosity(parser.parse_args(["workers", "-v", "stop", "-v", "x"])) >= 1
    assert verbosity(parser.parse_args(["status"])) == 0


def test_bare_redis_leaves_ids_alone() -> None:
    assert bare_redis_flags(["cancel", "--redis", "1..2"]) == ["cancel", "--redis=", "1..2"]
    assert bare_redis_flags(["status", "--redis", "redis://h:1/0"]) == [
        "status", "--redis", "redis://h:1/0"]
    assert bare_redis_flags(["status", "--redis", "--json"]) == ["status", "--redis", "--json"]
    assert bare_redis_flags(["status", "--redis"]) == ["status", "--redis"]


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(bare_redis_flags(list(argv)))


def test_where_a_command_connects() -> None:
    url = "redis://:pw@127.0.0.1:6379/0"
    env = {CONNECT_ENV: "10.0.0.1:5000", REDIS_ENV: url}
    assert target_from(_args("status", "--connect", "h:1"), env).address == ("h", 1)
    assert target_from(_args("status", "--redis"), env).redis_url == url
    assert target_from(_args("status"), env).address == ("10.0.0.1", 5000)
    assert target_from(_args("status"), {REDIS_ENV: url}).redis_url == url
    assert target_from(_args("status"), {}) is None
    assert target_from(_args("status"), {REDIS_ENV: url}).describe() == \
        "redis://127.0.0.1:6379/0"  # never the password
    with pytest.raises(CliError, match="not both"):
        target_from(_args("status", "--connect", "h:1", "--redis", url), {})
    with pytest.raises(CliError, match="GUIDIST_CONNECT: .*has no port"):
        target_from(_args("status"), {CONNECT_ENV: "h:0"})


def test_display_problem() -> None:
    assert display_problem({}, "linux") == NO_DISPLAY
    assert display_problem({"DISPLAY": ""}, "linux") == NO_DISPLAY
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({"DISPLAY": "remote.example:0"}, "linux") is None  # Qt decides
    assert display_problem({}, "win32") is None and display_problem({}, "darwin") is None
