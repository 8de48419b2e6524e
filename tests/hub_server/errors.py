"""Errors and responses: ``HubResponse`` (a status, headers and either bytes or a slice of a file),
``json_response``, and ``HubError`` with its shortcuts (``repo_not_found``, ``revision_not_found``,
``entry_not_found``, ``unauthenticated``, ``bad_request``) that answer like the Hub, with the JSON
``{"error": ...}`` body and the ``X-Error-Code``/``X-Error-Message`` headers huggingface_hub maps to its
exception classes. Kept apart because storage, the app, fault injection and the HTTP glue all build or
raise these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------------------------------
# Errors and responses
# --------------------------------------------------------------------------------------------------


@dataclass
class HubResponse:
    """What a route answers: a status, headers and either in-memory bytes or a slice of a file."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file_path: Path | None = None
    file_offset: int = 0
    file_length: int = 0

    @property
    def content_length(self) -> int:
        return self.file_length if self.file_path is not None else len(self.body)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HubResponse:
    """A JSON response; ``headers`` can override the content type."""
    all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return HubResponse(status, all_headers, json.dumps(data).encode())


class HubError(Exception):
    """An HTTP error answered like the Hub: JSON ``{"error": ...}`` plus X-Error-Code/X-Error-Message."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})

    def to_response(self) -> HubResponse:
        headers = {"X-Error-Message": self.message, **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return json_response({"error": self.message}, self.status, headers)


def repo_not_found(repo_id: str) -> HubError:
    return HubError(404, f"Repository not found: {repo_id}", code="RepoNotFound")


def revision_not_found(revision: str) -> HubError:
    return HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")


def entry_not_found(path: str, commit_id: str | None = None) -> HubError:
    headers = {"X-Repo-Commit": commit_id} if commit_id else {}
    return HubError(404, f"Entry not found: {path}", code="EntryNotFound", headers=headers)


def unauthenticated() -> HubError:
    return HubError(401, "You must be authenticated (Authorization: Bearer <token>) to do this.")


def bad_request(message: str) -> HubError:
    return HubError(400, message)
