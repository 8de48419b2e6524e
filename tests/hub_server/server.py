"""The public API: ``HubServer``, a local Hub on ``http://host:port`` backed by files under ``root``. It
wires storage, app, fault injector and HTTP server together, serves in a background thread
(``start``/``stop`` or a ``with`` block) and offers the hooks the tests use (``fail_next``, ``reset_next``,
``stall_next``, ``truncate_next``, ``requests``, ``count_requests``, ``clear_requests``, ``set_gated``).
The tests import it as ``from hub_server import HubServer``; see the package docstring
(``hub_server/__init__.py``).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from .app import HubApp
from .common import DEFAULT_USERNAME
from .faults import FaultInjector, FaultRule, RequestRecord
from .httpd import _HubHTTPServer
from .storage import HubStorage

# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


class HubServer:
    """A local Hub on ``http://host:port`` backed by files under ``root``.

    ``start()``/``stop()`` or use as a context manager. ``port=0`` picks a free port (see ``url``).
    Requests with ``Authorization: Bearer <token>`` act as ``username``; see the package docstring."""

    def __init__(
        self,
        root: Path,
        token: str,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        username: str = DEFAULT_USERNAME,
        verbose: bool = False,
    ) -> None:
        self.root = Path(root)
        self.token = token
        self.host = host
        self.username = username
        self.verbose = verbose
        self.storage = HubStorage(self.root)
        self.app = HubApp(self.storage, username)
        self.faults = FaultInjector()
        self._requested_port = port
        self._records: list[RequestRecord] = []
        self._records_lock = threading.Lock()
        self._httpd: _HubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> HubServer:
        """Bind and serve in a background thread; returns self."""
        if self._httpd is not None:
            return self
        self.faults.rearm()
        self._httpd = _HubHTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # fast shutdown(); the default 0.5 s adds up over many tests
            name=f"hub-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket and any idle keep-alive connections."""
        if self._httpd is None:
            return
        self.faults.wake()  # end any stall now: its thread must not outlive the server
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd, self._thread = None, None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("HubServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to use as ``endpoint=`` / ``HF_ENDPOINT``, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    # -- fault injection ---------------------------------------------------------------------------

    def fail_next(
        self, method: str, path_regex: str, times: int = 1, *, status: int = 503, after: bool = False
    ) -> FaultRule:
        """Make the next ``times`` requests with ``method`` (``"*"`` for any) whose request target
        (percent-encoded path plus ``?query``) matches ``path_regex`` (``re.search``) answer ``status``.

        ``after=False``: the request is not processed. ``after=True``: it is processed (a commit lands,
        an upload is stored) and only the answer is replaced. The returned rule's ``hits`` counts uses."""
        return self.faults.add(FaultRule(method.upper(), re.compile(path_regex), times, status, after))

    def reset_next(
        self, method: str, path_regex: str, times: int = 1, *, keep: int | None = None, after: bool = False
    ) -> FaultRule:
        """Make the next ``times`` matching requests (see ``fail_next``) end in a TCP reset.

        ``keep=None``: no answer at all (the client sees a dropped connection); ``keep=N``: the request is
        processed, the headers and N bytes of the body are sent, then the reset (a connection broken
        mid-body). ``after=True`` with ``keep=None``: processed (a commit lands), and then no answer."""
        return self.faults.add(FaultRule(method.upper(), re.compile(path_regex), times, after=after or keep is not None,
                                         action="reset", keep=keep))

    def stall_next(
        self, method: str, path_regex: str, times: int = 1, *, seconds: float, after: bool = False
    ) -> FaultRule:
        """Make the next ``times`` matching requests (see ``fail_next``) send nothing for ``seconds`` (at most
        ``MAX_STALL``; ``stop()`` ends a stall early): longer than the client's timeout, it gives up.

        ``after=False``: the request is then dropped unprocessed (a server that hung). ``after=True``: it is
        processed (a commit lands) and the answer is sent late, to a client that has stopped waiting."""
        return self.faults.add(FaultRule(method.upper(), re.compile(path_regex), times, after=after, action="stall",
                                         seconds=seconds))

    def truncate_next(self, method: str, path_regex: str, times: int = 1, *, keep: int | None = None) -> FaultRule:
        """Make the next ``times`` matching requests (see ``fail_next``) answer with their full
        ``Content-Length`` but only ``keep`` bytes of the body (default: half), then close the connection."""
        return self.faults.add(FaultRule(method.upper(), re.compile(path_regex), times, action="truncate", keep=keep))

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- request log -------------------------------------------------------------------------------

    def _log_request(self, method: str, path: str, query: str) -> RequestRecord:
        record = RequestRecord(method, path, query)
        with self._records_lock:
            self._records.append(record)
        return record

    @property
    def requests(self) -> list[tuple[str, str]]:
        """A snapshot of (method, path) of every request so far; path as sent, without the query."""
        with self._records_lock:
            return [(r.method, r.path) for r in self._records]

    @property
    def request_records(self) -> list[RequestRecord]:
        """A snapshot of the detailed log (method, path, query, status, whether a fault answered)."""
        with self._records_lock:
            return list(self._records)

    def count_requests(self, method: str, path_regex: str) -> int:
        """How many requests so far had ``method`` (``"*"`` for any) and a path matching ``path_regex``."""
        pattern = re.compile(path_regex)
        return sum(1 for m, p in self.requests if method.upper() in ("*", m) and pattern.search(p))

    def clear_requests(self) -> None:
        with self._records_lock:
            self._records.clear()

    # -- direct (non-HTTP) helpers for tests -------------------------------------------------------

    def set_gated(self, repo_id: str, gated: Any = "auto", repo_type: str = "model") -> None:
        """Gate a repo: downloads without a valid token then fail with ``GatedRepoError``."""
        repo = self.storage.get_repo(repo_type, repo_id)
        if repo is None:
            raise KeyError(repo_id)
        with self.storage.lock:
            repo.gated = gated
            self.storage.save_repo(repo)
