"""Errors, named by what went wrong, under the exit-code bases.

Every failure the CLI reports is one of these, so the exit code is decided where the failure is
understood, not guessed from an exception type at the top. Library messages name parameters
(``dest=``), never CLI flags; fields let a Python caller act on the failure without parsing the message.

* 1 ``CheckFailedError``: a check failed (parity threshold, checksum, refused push).
* 2 ``BadInputError``: input the user must fix (recipe, arguments, paths, manifest, token).
* 3 ``ExternalError``: an external failure after retries (network, Hub, a runtime that cannot start).
* 4 anything else: a bug of ours (the CLI says so and where the traceback is).
"""

from __future__ import annotations

from typing import Any


class ExporterError(Exception):
    """Base class: a failure with a one-line message meant for the user."""

    exit_code: int = 1


# --- 1: a check failed ----------------------------------------------------------------------------


class CheckFailedError(ExporterError):
    """A check failed: parity threshold, integrity, or a refused push of unvalidated artifacts."""

    exit_code = 1


class ParityFailedError(CheckFailedError):
    """Variants gave embeddings outside their thresholds. ``failures``: one line per failed check."""

    def __init__(self, message: str, failures: list[str] | None = None):
        super().__init__(message)
        self.failures = list(failures or [])


class IntegrityError(CheckFailedError):
    """A file does not match the sha256/size its manifest lists (or is missing). ``path`` is the file."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


class NotValidatedError(CheckFailedError):
    """Variants that have not passed validation were asked to be published or fetched. ``variants``: their names."""

    def __init__(self, message: str, variants: list[str] | None = None):
        super().__init__(message)
        self.variants = list(variants or [])


# --- 2: bad input ---------------------------------------------------------------------------------


class BadInputError(ExporterError):
    """Input the user must fix: recipe, arguments, paths, manifest, token."""

    exit_code = 2


class RecipeError(BadInputError):
    """A recipe that cannot be read or does not match the schema."""


class ManifestError(BadInputError):
    """A manifest.json that is missing, malformed or unsafe (a path outside the folder)."""


class UnsafeArtifactError(BadInputError):
    """An artifact that would run code on this host (a listed Python file or pickle, or a ``modules.json`` naming
    a module class outside sentence-transformers' own) and the caller did not pass ``trust_remote_code=True``.
    ``path``: the file (relative to the artifact); ``reason``: what it is."""

    def __init__(self, message: str, path: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.path = path
        self.reason = reason


class HubAuthError(BadInputError):
    """The Hub refused the token (or one is needed and missing). The message never contains the token."""


class NotFoundOnHubError(BadInputError):
    """A repository, revision or file that the Hub does not have (or does not show to this token)."""

    def __init__(self, message: str, repo_id: str | None = None, revision: str | None = None):
        super().__init__(message)
        self.repo_id = repo_id
        self.revision = revision


# --- 3: external failure --------------------------------------------------------------------------


class ExternalError(ExporterError):
    """An external failure after retries: network, Hub, or a runtime that cannot start."""

    exit_code = 3


class HubError(ExternalError):
    """The Hub could not be reached or kept failing after retries. ``status``: the last HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class RuntimeUnavailableError(ExternalError):
    """A package a step needs is missing or cannot start. ``fix``: the pip command that installs it."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type name when empty), at most 300 characters: error
    messages of ours are one line, and third-party messages can run to pages."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def validation_problem(error: Any) -> str:
    """The first problem of a pydantic ``ValidationError`` as ``location: message`` (``message`` alone at the
    top level), the way our one-line errors name a field."""
    problem = error.errors()[0]
    location = ".".join(str(part) for part in problem["loc"])
    message = problem["msg"].removeprefix("Value error, ")
    return f"{location}: {message}" if location else message
