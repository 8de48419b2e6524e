"""Helpers that every huggingface_hub call of ours shares (push and fetch): endpoint checking, one-line error
descriptions, the HTTP status of an error, and keeping the token out of messages."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from exporter import errors
from exporter.errors import BadInputError


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` without a trailing slash; ``BadInputError`` unless it is an http(s) URL."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInputError(f"--endpoint {endpoint!r}: expected an http(s) URL such as https://huggingface.co")
    return endpoint.rstrip("/")


def first_line(error: BaseException) -> str:
    """A short description: the OS reason for a failed connection, else the first line."""
    import requests

    text = str(error).strip()
    if isinstance(error, (requests.ConnectionError, requests.Timeout)):
        reason = re.search(r"\[Errno -?\d+\] ([^\"')]+)", text)
        if reason:
            return reason.group(1).strip().lower()
        if "timed out" in text.lower() or isinstance(error, requests.Timeout):
            return "timed out"
        return type(error).__name__
    return errors.first_line(error)


def http_status(error: BaseException) -> int | None:
    """The HTTP status code of a huggingface_hub / requests error, when it has a response."""
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def redact(text: str, token: str | None) -> str:
    """``text`` with ``token`` starred out. Messages never contain the token; this is a second line of
    defence (a token too short to be a real one is left alone rather than starring out every word)."""
    return text.replace(token, "***") if token and len(token) >= 8 else text
