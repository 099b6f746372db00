"""Exception hierarchy and exit codes.

Owns: the error families every module raises and the exit code each maps to.
Does not own: printing or exiting (that is `reprover.cli`).

A difference between artifacts is data (see `reprover.model`), not an error. A trust check
that ran and failed raises `VerificationError`. Being unable to decide raises an
`InconclusiveError`. Bad user input raises `InputError`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, identical for every command (see README, "Exit codes")."""

    OK = 0
    FAIL = 1
    BAD_INPUT = 2
    INCONCLUSIVE = 3
    INTERRUPTED = 130


class Error(Exception):
    """Base of every error reprover raises on purpose.

    Args:
        message: one line saying what went wrong.
        hint: one line saying what the user can do about it, if anything.
        details: further lines (a log tail, a list of findings) shown under the message.
    """

    exit_code: ExitCode = ExitCode.INCONCLUSIVE

    def __init__(self, message: str, *, hint: str | None = None, details: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def diagnostics(self) -> str:
        """Return the full human-readable explanation: message, details, then hint."""
        parts = [self.message]
        if self.details:
            parts.append(self.details.rstrip("\n"))
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)


class InputError(Error):
    """Usage or bad input: malformed manifest, layout, link or key; unreadable file."""

    exit_code = ExitCode.BAD_INPUT


class VerificationError(Error):
    """A trust check ran and said no (bad signature, layout violated, wrong signer)."""

    exit_code = ExitCode.FAIL


class InconclusiveError(Error):
    """reprover could not decide: the check did not run to completion."""

    exit_code = ExitCode.INCONCLUSIVE


class BuildError(InconclusiveError):
    """The rebuild failed, timed out, or could not be isolated as the recipe asks."""


class ToolMissingError(InconclusiveError):
    """A program reprover needs (git, unshare, a compiler) is not installed."""
