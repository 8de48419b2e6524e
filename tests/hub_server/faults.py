"""Fault injection and the request log: ``FaultRule`` (what to do to the next N matching requests: answer an
error status, before or after processing them; reset the connection, before any answer or mid-body; stall
longer than the client waits; or send a body cut short of its ``Content-Length``), the thread-safe
``FaultInjector`` that the HTTP handler consults on every request, and ``RequestRecord``, one entry of the
log behind ``HubServer.requests`` and ``count_requests``. Kept apart so that the handler
(``hub_server.httpd``) and ``HubServer`` share them without importing each other.

What each fault looks like to the client (huggingface_hub over httpx, or httpx2 in 2.x):

* ``status``: an HTTP error answer (``HfHubHTTPError`` with that status).
* ``reset``: the socket is closed with a TCP reset (``SO_LINGER`` 0), either before any answer
  (``keep=None``: ``ReadError``/``RemoteProtocolError``, "Connection reset by peer" or "Server disconnected
  without sending a response") or after the headers and ``keep`` bytes of the body (``ReadError``).
* ``stall``: nothing is sent for ``seconds`` (at most ``MAX_STALL``, and never past ``HubServer.stop()``), so a
  client with a shorter timeout gives up (``ReadTimeout``). Before processing (``after=False``) the request is
  then dropped unprocessed, as by a server that hung; after processing (``after=True``) the late answer is sent.
* ``truncate``: the request is processed and the answer's headers promise the whole body (``Content-Length``),
  but only ``keep`` bytes (default: half) are sent before the connection is closed (``RemoteProtocolError``:
  "peer closed connection without sending complete message body (received N bytes, expected M)").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from re import Pattern

from .errors import HubResponse, json_response

FAULT_ACTIONS = ("status", "reset", "stall", "truncate")
MAX_STALL = 60.0  # seconds: a stall never holds a server thread longer than this

# --------------------------------------------------------------------------------------------------
# Fault injection and request log
# --------------------------------------------------------------------------------------------------


@dataclass
class FaultRule:
    """Apply ``action`` to the next ``remaining`` requests matching ``method`` and ``pattern``.

    ``action="status"`` (the default) answers ``status``; with ``after=True`` the request is processed first
    (e.g. the commit lands) and only the response is replaced, to test client retry logic against lost
    responses. ``after`` means the same for ``reset`` and ``stall`` (processed, then the answer is lost or
    late); ``truncate`` always processes. ``keep``: bytes of the body sent before a ``reset`` (None: no answer
    at all) or a ``truncate`` (None: half). ``seconds``: how long a ``stall`` lasts (bounded by ``MAX_STALL``)."""

    method: str
    pattern: Pattern[str]
    remaining: int
    status: int = 503
    after: bool = False
    hits: int = 0
    action: str = "status"
    keep: int | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.action not in FAULT_ACTIONS:
            raise ValueError(f"action={self.action!r}: expected one of {', '.join(FAULT_ACTIONS)}")
        if self.keep is not None and self.keep < 0:
            raise ValueError(f"keep={self.keep}: expected a byte count >= 0")
        if not 0 <= self.seconds <= MAX_STALL:
            raise ValueError(f"seconds={self.seconds}: a stall lasts between 0 and {MAX_STALL:g} s")

    def matches(self, method: str, target: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method) and bool(self.pattern.search(target))

    @property
    def processes(self) -> bool:
        """Whether the request is processed (the app runs) before the fault strikes."""
        return self.after or self.action == "truncate"

    def response(self) -> HubResponse:
        message = f"Injected fault ({self.status}) for {self.method} {self.pattern.pattern}"
        return json_response({"error": message}, self.status, {"X-Error-Message": message})

    def kept_bytes(self, content_length: int) -> int | None:
        """How many body bytes to send before cutting the connection (None: the answer is not sent at all)."""
        if self.action == "truncate":
            keep = content_length // 2 if self.keep is None else self.keep
            return min(keep, max(content_length - 1, 0))  # always short of the promised length
        if self.action == "reset" and self.keep is not None:
            return min(self.keep, content_length)
        return None


class FaultInjector:
    """Thread-safe list of fault rules; ``take`` consumes one hit of the first matching rule. ``stall``
    sleeps for a stall rule, and ``wake`` (called by ``HubServer.stop``) ends every stall at once."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

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

    def stall(self, rule: FaultRule) -> None:
        """Sleep for a stall rule's ``seconds`` (bounded), or until ``wake``."""
        self._stop.wait(min(rule.seconds, MAX_STALL))

    def wake(self) -> None:
        self._stop.set()

    def rearm(self) -> None:
        self._stop.clear()


@dataclass
class RequestRecord:
    """One served request: method, path as sent (percent-encoded, no query), query string and status
    (None when no answer was sent: a reset or a stall that dropped the request); ``fault``: whether a fault
    rule struck it, ``fault_action`` which kind ("status", "reset", "stall", "truncate")."""

    method: str
    path: str
    query: str
    status: int | None = None
    fault: bool = False
    fault_action: str | None = None
