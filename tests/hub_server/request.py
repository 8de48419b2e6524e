"""HTTP request plumbing between the socket and the route handlers: ``RequestBody`` (a lazy
Content-Length or chunked body reader), ``HubRequest`` (the parsed request a handler sees), ``Route`` /
``RouteHandler``, and the path regex fragments (repo API, web/git and revision parts) that the route
table is built from. It depends on neither the HTTP server class nor the app, which both import it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from re import Pattern
from typing import Any, BinaryIO

from .common import _CHUNK
from .errors import HubResponse, bad_request

# --------------------------------------------------------------------------------------------------
# HTTP request plumbing
# --------------------------------------------------------------------------------------------------


class RequestBody:
    """Lazy reader of a request body (Content-Length or chunked); ``drain`` discards what is left."""

    def __init__(self, rfile: BinaryIO, headers: Message) -> None:
        self._rfile = rfile
        self._chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self._remaining = int(headers.get("Content-Length") or 0)
        self._done = not self._chunked and self._remaining == 0

    def iter_chunks(self) -> Iterator[bytes]:
        """Yield the body in pieces of at most 1 MiB."""
        while not self._done:
            chunk = self._read_chunked_piece() if self._chunked else self._read_sized_piece()
            if chunk:
                yield chunk

    def read_all(self) -> bytes:
        return b"".join(self.iter_chunks())

    def drain(self) -> None:
        for _ in self.iter_chunks():
            pass

    def _read_sized_piece(self) -> bytes:
        chunk = self._rfile.read(min(_CHUNK, self._remaining))
        self._remaining -= len(chunk)
        if not chunk or self._remaining <= 0:
            self._done = True
        return chunk

    def _read_chunked_piece(self) -> bytes:
        size = int(self._rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while self._rfile.readline().strip():  # trailers, then the final empty line
                pass
            self._done = True
            return b""
        chunk = self._rfile.read(size)
        self._rfile.readline()  # CRLF after each chunk
        return chunk


@dataclass
class HubRequest:
    """A parsed request as seen by route handlers."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: RequestBody
    authenticated: bool
    base_url: str

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() in ("1", "true", "yes")

    def json(self) -> Any:
        raw = self.body.read_all()
        try:
            return json.loads(raw or b"{}")
        except ValueError as exc:
            raise bad_request(f"Invalid JSON body: {exc}") from exc


RouteHandler = Callable[[HubRequest, dict[str, str]], HubResponse]


@dataclass
class Route:
    """``methods`` + a regex over the raw (percent-encoded) path; groups are unquoted for the handler."""

    methods: tuple[str, ...]
    pattern: Pattern[str]
    handler: RouteHandler


_REPO_API = r"^/api/(?P<kind>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)"
_REPO_WEB = r"^/(?:(?P<kind>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+?)"
_REV = r"(?P<rev>refs/(?:pr|convert)/[^/]+|[^/]+)"  # the client sends refs%2Fpr%2FN; plain form accepted too
