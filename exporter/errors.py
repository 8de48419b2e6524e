"""Error classes and the exit codes they map to.

Every failure the CLI reports is one of these, so the exit code is decided where the failure is
understood, not guessed from an exception type at the top:

* 1 ``CheckFailedError``: a check failed (parity threshold, checksum, refused push).
* 2 ``BadInputError``: input the user must fix (recipe, arguments, paths, manifest, token).
* 3 ``ExternalError``: an external failure after retries (network, Hub, a runtime that cannot start).
"""

from __future__ import annotations


class ExporterError(Exception):
    """Base class: a failure with a one-line message meant for the user."""

    exit_code: int = 1


class CheckFailedError(ExporterError):
    """A check failed: parity threshold, integrity, or a refused push of unvalidated artifacts."""

    exit_code = 1


class BadInputError(ExporterError):
    """Input the user must fix: recipe, arguments, paths, manifest, token."""

    exit_code = 2


class RecipeError(BadInputError):
    """A recipe that cannot be read or does not match the schema."""


class ExternalError(ExporterError):
    """An external failure after retries: network, Hub, or a runtime that cannot start."""

    exit_code = 3


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type name when empty), at most 300 characters: error
    messages of ours are one line, and third-party messages can run to pages."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= 300 else line[:297] + "..."
