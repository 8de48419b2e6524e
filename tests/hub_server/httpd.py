"""HTTP server glue: ``_HubHTTPServer`` (a ``ThreadingHTTPServer`` that knows its ``HubServer`` and can
close idle keep-alive connections) and ``_HubRequestHandler``, which turns each HTTP request into a
``HubRequest``, checks the bearer token, applies injected faults (statuses, connection resets, stalls,
bodies cut short: see ``hub_server.faults``) and the request log, and writes the ``HubResponse`` (streaming
file bodies). It names ``HubServer`` only in type annotations (imported under
``TYPE_CHECKING``), so ``hub_server.server`` can import this module without a cycle.
"""

from __future__ import annotations

import hmac
import socket
import struct
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .common import _CHUNK, INVALID_CREDENTIALS
from .errors import HubError, HubResponse, json_response
from .faults import FaultRule
from .request import HubRequest, RequestBody

if TYPE_CHECKING:
    from .server import HubServer

# --------------------------------------------------------------------------------------------------
# HTTP server glue
# --------------------------------------------------------------------------------------------------


class _HubHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its ``HubServer`` and can close idle keep-alive connections."""

    daemon_threads = True
    block_on_close = False
    hub: HubServer

    def __init__(self, address: tuple[str, int], hub: HubServer) -> None:
        self.hub = hub
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.resetting: set[socket.socket] = set()  # connections to end with a TCP reset, not a FIN
        super().__init__(address, _HubRequestHandler)

    def close_connections(self) -> None:
        with self.connections_lock:
            for connection in list(self.connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def shutdown_request(self, request: Any) -> None:
        """Close a connection; one marked by a ``reset`` fault goes without the FIN (``SO_LINGER`` 0: a RST)."""
        with self.connections_lock:
            resetting = request in self.resetting
            self.resetting.discard(request)
        if resetting:
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (timed out, was killed, reset its end) is not a server error."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _HubRequestHandler(BaseHTTPRequestHandler):
    """Turns HTTP requests into ``HubRequest``s, applies auth, faults and logging, writes responses."""

    protocol_version = "HTTP/1.1"
    timeout = 60
    server: _HubHTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        if self.server.hub.verbose:
            sys.stderr.write(f"[hub] {self.address_string()} {format % args}\n")

    def _handle(self) -> None:
        hub = self.server.hub
        split = urlsplit(self.path)
        body = RequestBody(self.rfile, self.headers)
        record = hub._log_request(self.command, split.path, split.query)
        fault = hub.faults.take(self.command, self.path)
        record.fault = fault is not None
        record.fault_action = fault.action if fault is not None else None
        if fault is not None and fault.action != "status" and not fault.processes:
            self._drop(hub, fault)  # a reset or a stall before processing: the request never happened
            return
        response = self._respond(hub, split, body, fault)
        body.drain()
        if fault is not None and fault.action == "stall":
            hub.faults.stall(fault)  # processed; the answer comes late (after the client has given up)
        if fault is not None and fault.action in ("reset", "truncate"):
            keep = fault.kept_bytes(response.content_length)
            record.status = response.status if keep is not None else None
            self._cut(response, keep, reset=fault.action == "reset")
            return
        record.status = response.status
        self._write(response)

    def _drop(self, hub: HubServer, fault: FaultRule) -> None:
        """Answer nothing: stall first (a ``stall``), then close; a ``reset`` closes with a RST at once."""
        if fault.action == "stall":
            hub.faults.stall(fault)
        self._close(reset=fault.action == "reset")

    def _close(self, *, reset: bool) -> None:
        self.close_connection = True
        if reset:
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                return
            with self.server.connections_lock:
                self.server.resetting.add(self.connection)

    def _cut(self, response: HubResponse, keep: int | None, *, reset: bool) -> None:
        """Send the headers (with the full ``Content-Length``) and ``keep`` bytes of the body, then close; no
        answer at all when ``keep`` is None."""
        if keep is not None:
            self._write(response, limit=keep)
            try:
                self.wfile.flush()
            except OSError:
                pass
        self._close(reset=reset)

    def _respond(self, hub: HubServer, split: Any, body: RequestBody, fault: FaultRule | None) -> HubResponse:
        if fault is not None and fault.action == "status" and not fault.after:
            return fault.response()
        try:
            response = hub.app.dispatch(self._build_request(hub, split, body))
        except HubError as error:
            response = error.to_response()
        except Exception as exc:  # a bug in the server: answer 500 and show it
            traceback.print_exc()
            response = json_response({"error": f"Internal server error: {exc!r}"}, 500)
        return fault.response() if fault is not None and fault.action == "status" else response

    def _build_request(self, hub: HubServer, split: Any, body: RequestBody) -> HubRequest:
        authenticated = self._check_token(hub.token)
        host = self.headers.get("Host") or f"{hub.host}:{hub.port}"
        return HubRequest(
            self.command, split.path, parse_qs(split.query, keep_blank_values=True), self.headers, body,
            authenticated, f"http://{host}",
        )  # fmt: skip

    def _check_token(self, token: str) -> bool:
        """True with the right bearer token, False without one; a wrong token is a 401 on any request."""
        header = self.headers.get("Authorization")
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), token):
            raise HubError(401, INVALID_CREDENTIALS)
        return True

    def _write(self, response: HubResponse, limit: int | None = None) -> None:
        """Send ``response``; ``limit``: send only that many bytes of the body (a fault cutting it short)."""
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(response.content_length))
            self.end_headers()
            if self.command != "HEAD":
                self._write_body(response, response.content_length if limit is None else limit)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _write_body(self, response: HubResponse, length: int) -> None:
        if response.file_path is None:
            self.wfile.write(response.body[:length])
            return
        with open(response.file_path, "rb") as source:
            source.seek(response.file_offset)
            remaining = min(response.file_length, length)
            while remaining > 0:
                chunk = source.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)
