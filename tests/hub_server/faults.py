"""Fault injection and the request log: ``FaultRule`` (answer the next N matching requests with an
error status, before or after processing them), the thread-safe ``FaultInjector`` that the HTTP handler
consults on every request, and ``RequestRecord``, one entry of the log behind ``HubServer.requests`` and
``count_requests``. Kept apart so that the handler (``hub_server.httpd``) and ``HubServer`` share them
without importing each other.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from re import Pattern

from .errors import HubResponse, json_response

# --------------------------------------------------------------------------------------------------
# Fault injection and request log
# --------------------------------------------------------------------------------------------------


@dataclass
class FaultRule:
    """Answer the next ``remaining`` requests matching ``method`` and ``pattern`` with ``status``.

    With ``after=True`` the request is processed first (e.g. the commit lands) and only the response
    is replaced, to test client retry logic against lost responses."""

    method: str
    pattern: Pattern[str]
    remaining: int
    status: int = 503
    after: bool = False
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method) and bool(self.pattern.search(target))

    def response(self) -> HubResponse:
        message = f"Injected fault ({self.status}) for {self.method} {self.pattern.pattern}"
        return json_response({"error": message}, self.status, {"X-Error-Message": message})


class FaultInjector:
    """Thread-safe list of fault rules; ``take`` consumes one hit of the first matching rule."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, method: str, target: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, target):
                    rule.remaining -= 1
                    rule.hits += 1
                    return rule
        return None


@dataclass
class RequestRecord:
    """One served request: method, path as sent (percent-encoded, no query), query string and status."""

    method: str
    path: str
    query: str
    status: int | None = None
    fault: bool = False
