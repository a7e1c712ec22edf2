"""Bad input and failures as one line on stderr, with one exit code per kind of failure."""

from __future__ import annotations

from ..core.errors import ExitCode, GuidistError


class CliError(Exception):
    """Bad input (or a request this machine cannot serve): one line, exit 2 unless told."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code of a command that failed with exc (the table is errors.ExitCode)."""
    if isinstance(exc, (CliError, GuidistError)):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED
