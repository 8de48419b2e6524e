"""The one wrapper around the huggingface_hub client that ``push`` and ``fetch`` share.

Both stages talk to the same client and must fail the same way, so everything that is not their own flow
lives here once: the endpoint is checked once (``check_endpoint``), every client error is turned into one
of our errors by one function (``hub_error``), idempotent calls are retried with backoff in one place
(``HubClient.call``), the token is starred out of every message (``redact``), and the client's own
progress bars and log lines are silenced while our progress draws on stderr (``quiet_client``).

What is retried: no answer at all (refused, reset or dropped connection, DNS failure, timeout), an answer
cut short (a body that broke off or ended before its ``Content-Length``, a download of the wrong size) and
the statuses that say "try again" (408, 429, 5xx). The delays are ``RETRY_DELAYS`` (1, 2, 4 s: four attempts),
or ``EXPORTER_HUB_RETRY_DELAYS`` (comma-separated seconds; ``0`` or empty: one attempt). The client
retries some calls itself first (the HEAD and GET of a download and LFS upload PUTs: 5 retries over 23 s),
so on those a Hub that stops answering is given up on after about a minute and a half.

Timeouts: recent huggingface_hub releases (1.21 and 2.4 do; 1.3 still had a 10 s read default) build their
shared HTTP client with no timeout at all, and send repo creation, pre-upload, the LFS batch, LFS uploads,
the commit and listings without one: a Hub that accepts the connection and never answers would hang a push
for ever. ``HubClient.session`` gives every such request ``CALL_TIMEOUT`` (``EXPORTER_HUB_TIMEOUT``) through
the client's own hook for this (``set_client_factory``, ``default_timeout``); requests that carry their own
timeout (downloads: ``HF_HUB_ETAG_TIMEOUT``, ``HF_HUB_DOWNLOAD_TIMEOUT``) keep it.

Uploads: the client uploads through Xet whenever ``hf_xet`` is installed (a dependency of huggingface_hub 1.x
and 2.x), with no fallback for a Hub without Xet storage. ``HubClient.upload_protocol`` asks the Hub for Xet
write access first and, unless it answers with Xet's connection headers, has the client upload through
LFS for that push only.

huggingface_hub 1.x sends its requests with ``httpx``; 2.x with ``httpx2``, a fork under its own module name
(``huggingface_hub.utils.httpx`` names whichever is in use from 1.30 on). Connection errors of both are
recognised, and neither is imported to do so: the error classes are looked up in ``sys.modules``, since an
error of a library that was never imported cannot have been raised. (``requests`` is not the client's
transport any more, so its errors are not the client's.)
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote, urlsplit

from exporter import errors
from exporter.constants import DEFAULT_REVISION
from exporter.errors import (
    BadInputError,
    ExporterError,
    HubAuthError,
    HubError,
    IntegrityError,
    NotFoundOnHubError,
)

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from exporter.progress import Progress

# Delays (seconds) before each retry of a failed idempotent Hub call; len() + 1 attempts in all.
RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0)
RETRY_DELAYS_ENV = "EXPORTER_HUB_RETRY_DELAYS"  # e.g. "0.5,1": overrides RETRY_DELAYS; "0" or "": no retries
MAX_RETRIES, MAX_RETRY_DELAY = 10, 120.0  # bounds on what the variable may ask for
# Seconds a Hub call the client sends without a timeout may wait for each step (connect, read, write, a
# connection from the pool): the client sets none on most calls.
CALL_TIMEOUT = 60.0
CALL_TIMEOUT_ENV = "EXPORTER_HUB_TIMEOUT"
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# OS failures of this host (a full disk, a folder we may not write) pass through ``HubClient.call`` unchanged:
# the CLI reports them as such (3 and 2), not as a Hub failure.
_LOCAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})
TOKEN_HINT = "pass a valid token (token=, HF_TOKEN or `hf auth login`)"
# The headers with which a Hub grants Xet write access (huggingface_hub.constants.HUGGINGFACE_HEADER_X_XET_*).
XET_HEADERS = ("X-Xet-Cas-Url", "X-Xet-Access-Token", "X-Xet-Token-Expiration")
# The modules the client's httpx may have: httpx (huggingface_hub 1.x) and its fork httpx2 (2.x).
_HTTPX_MODULES = ("httpx", "httpx2")
T = TypeVar("T")


# --------------------------------------------------------------------------------------- endpoint, token


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` without a trailing slash; ``BadInputError`` unless it is an http(s) URL."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInputError(f"endpoint={endpoint!r}: expected an http(s) URL such as https://huggingface.co")
    return endpoint.rstrip("/")


def resolve_endpoint(endpoint: str | None) -> str:
    """``endpoint`` checked, else the client's default (``HF_ENDPOINT``, else https://huggingface.co)."""
    from huggingface_hub import constants

    return check_endpoint(endpoint or constants.ENDPOINT)


def resolve_token(token: str | None) -> str | None:
    """``token``, else HF_TOKEN, else the huggingface_hub login; None when there is none."""
    if token:
        return token
    from huggingface_hub import get_token

    return get_token() or None


def redact(text: str, token: str | None) -> str:
    """``text`` with ``token`` starred out. Messages never contain the token; this is a second line of
    defence (a token too short to be a real one is left alone rather than starring out every word)."""
    return text.replace(token, "***") if token and len(token) >= 8 else text


@contextlib.contextmanager
def client_endpoint(endpoint: str) -> Iterator[None]:
    """Point huggingface_hub's import-time ``constants.ENDPOINT`` at ``endpoint`` for the duration.

    Early 1.x releases (1.3 is one) parse the commit URL the Hub answers (``CommitInfo``/``RepoUrl``) against
    ``constants.ENDPOINT`` (read from ``HF_ENDPOINT`` once, at import), not against ``HfApi(endpoint=...)``:
    with any other endpoint a commit raises ``ValueError`` after it has landed. Later releases give
    ``CommitInfo`` the ``HfApi``'s endpoint, and this changes nothing there."""
    from huggingface_hub import constants

    previous = constants.ENDPOINT
    constants.ENDPOINT = endpoint
    try:
        yield
    finally:
        constants.ENDPOINT = previous


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Silence huggingface_hub's tqdm bars (they would fight our spinner on stderr); restored afterwards."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    were_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not were_disabled:
            enable_progress_bars()


@contextlib.contextmanager
def quiet_client() -> Iterator[None]:
    """``quiet_progress_bars``, and the client's log lines below ERROR dropped ("Retrying in 1s", "Trying to
    resume download..."): our own retry lines say what happens. ``EXPORTER_VERBOSE=1`` (``--verbose``) lets
    its log lines through."""
    import logging

    from exporter.progress import VERBOSE_ENV

    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    if os.environ.get(VERBOSE_ENV, "") in ("", "0"):
        logger.setLevel(logging.ERROR)
    try:
        with quiet_progress_bars():
            yield
    finally:
        logger.setLevel(level)


def retry_delays() -> tuple[float, ...]:
    """The delays before each retry: ``EXPORTER_HUB_RETRY_DELAYS`` (comma-separated seconds; "0" or "": no
    retry) when set, else ``RETRY_DELAYS``. ``BadInputError`` naming the variable for anything else."""
    raw = os.environ.get(RETRY_DELAYS_ENV)
    if raw is None:
        return tuple(RETRY_DELAYS)
    if raw.strip() in ("", "0"):
        return ()
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        delays = ()
    if not delays or len(delays) > MAX_RETRIES or not all(0 <= delay <= MAX_RETRY_DELAY for delay in delays):
        raise BadInputError(f"{RETRY_DELAYS_ENV}={raw!r}: expected up to {MAX_RETRIES} comma-separated delays in "
                            f"seconds, each between 0 and {MAX_RETRY_DELAY:g} (e.g. 1,2,4)")
    return delays


def call_timeout() -> float:
    """``EXPORTER_HUB_TIMEOUT`` seconds when set (``BadInputError`` naming it unless a positive number), else
    ``CALL_TIMEOUT``."""
    raw = os.environ.get(CALL_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return CALL_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 3600:
        raise BadInputError(f"{CALL_TIMEOUT_ENV}={raw!r}: expected seconds, more than 0 and at most 3600")
    return seconds


@contextlib.contextmanager
def default_timeout(seconds: float) -> Iterator[None]:
    """Give every request the client sends without a timeout this one, for the duration.

    huggingface_hub builds its one shared ``httpx`` client with a factory (``set_client_factory``); recent
    1.x and 2.x build it with ``timeout=None`` and pass ``timeout=None`` on most calls, so repo creation,
    pre-upload, the LFS batch, LFS uploads and the commit could wait for ever. This wraps the current factory
    so that the client it makes fills in ``seconds`` for every part of a request's timeout (connect, read,
    write, pool) that is unset, just before the request is sent (a request event hook; the transport reads
    the timeout from the request then). Requests that set their own timeout (downloads:
    ``HF_HUB_ETAG_TIMEOUT``, ``HF_HUB_DOWNLOAD_TIMEOUT``) keep it. The previous factory is restored afterwards;
    setting a factory closes the shared client either way, so the next request builds a fresh one."""
    from huggingface_hub.utils import _http

    previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", None)
    configure = getattr(_http, "set_client_factory", None)
    if previous is None or configure is None:  # a client without the factory: nothing to wrap
        yield
        return

    def fill_in(request) -> None:
        timeout = request.extensions.get("timeout")
        if isinstance(timeout, dict) and None in timeout.values():
            request.extensions["timeout"] = {key: seconds if value is None else value for key, value in timeout.items()}

    def factory():
        client = previous()
        hooks = client.event_hooks
        client.event_hooks = {**hooks, "request": [*hooks.get("request", []), fill_in]}
        return client

    configure(factory)
    try:
        yield
    finally:
        configure(previous)


# --------------------------------------------------------------------------------------- what an error is


def _httpx_modules() -> list:
    """The client's httpx modules that are loaded (``httpx``, ``httpx2``)."""
    return [module for name in _HTTPX_MODULES if (module := sys.modules.get(name)) is not None]


def _connection_error_types() -> tuple[type[BaseException], ...]:
    """The transport-level failures of the loaded httpx modules: no answer (``NetworkError``: refused, reset,
    DNS; ``TimeoutException``), or an answer that broke off (``RemoteProtocolError``: a body cut short, a
    server that closed the connection without answering)."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for httpx in _httpx_modules():
        found += [getattr(httpx, name) for name in ("NetworkError", "TimeoutException", "RemoteProtocolError")
                  if isinstance(getattr(httpx, name, None), type)]
    return tuple(found)


def _timeout_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [TimeoutError]
    for httpx in _httpx_modules():
        if isinstance(getattr(httpx, "TimeoutException", None), type):
            found.append(httpx.TimeoutException)
    return tuple(found)


# huggingface_hub 1.x's ``http_backoff`` closes the shared client after a failed connection and then retries
# on the client it closed (fixed in 2.x): what reaches us is this RuntimeError of httpx, not the connect error.
_CLOSED_CLIENT = "Cannot send a request, as the client has been closed"


def is_offline(error: BaseException) -> bool:
    """The client refused to send a request because ``HF_HUB_OFFLINE`` is set."""
    offline = getattr(sys.modules.get("huggingface_hub.errors"), "OfflineModeIsEnabled", None)
    return offline is not None and isinstance(error, offline)


def is_connection_error(error: BaseException) -> bool:
    """The request never got a whole answer: refused or lost connection, DNS failure, timeout, a body that
    broke off (httpx or httpx2), or the 1.x client giving up on its own closed client after a failed connection."""
    if isinstance(error, RuntimeError) and _CLOSED_CLIENT in str(error):
        return True
    return isinstance(error, _connection_error_types()) and not is_offline(error)


# h11 (under httpx and httpx2): "... without sending complete message body (received N bytes, expected M)";
# h11 before 0.16 wrote ": received N bytes, expected M".
_INCOMPLETE = re.compile(r"complete message body:? \(?received (\d+) bytes, expected (\d+)")
_WRONG_SIZE = re.compile(r"Consistency check failed: file should be of size (\d+) but has size (\d+)")


def cut_short(error: BaseException) -> tuple[int, int] | None:
    """(bytes received, bytes expected) of a download that ended short of its size: the body stopped before its
    ``Content-Length`` (h11's "without sending complete message body") or the file has another size than the
    Hub announced (the client's "Consistency check failed"). None for any other error."""
    text = str(error)
    incomplete = _INCOMPLETE.search(text)
    if incomplete:
        return int(incomplete.group(1)), int(incomplete.group(2))
    wrong = _WRONG_SIZE.search(text)
    if wrong and isinstance(error, OSError):
        return int(wrong.group(2)), int(wrong.group(1))
    return None


def http_status(error: BaseException | None) -> int | None:
    """The HTTP status code of a huggingface_hub / httpx error, when it has a response."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def root_cause(error: BaseException) -> BaseException:
    """The failure behind the client's wrappers: ``hf_hub_download`` raises ``LocalEntryNotFoundError`` (or a
    ``ValueError`` when forced) *from* the error of its metadata request (offline, connection, HTTP status),
    and ``create_commit`` a ``RuntimeError("Error while uploading ...")`` from that of an LFS upload.
    (``LocalEntryNotFoundError`` was a ``ValueError`` before 1.0; it is a ``FileNotFoundError`` now.)"""
    wrappers: tuple[type[BaseException], ...] = (ValueError, RuntimeError)
    local_entry = getattr(sys.modules.get("huggingface_hub.errors"), "LocalEntryNotFoundError", None)
    if isinstance(local_entry, type):
        wrappers += (local_entry,)
    seen = {id(error)}
    while (isinstance(error, wrappers) and error.__cause__ is not None
           and id(error.__cause__) not in seen):
        error = error.__cause__
        seen.add(id(error))
    return error


def retryable(error: BaseException) -> bool:
    """Worth another attempt: no answer at all, an answer cut short, or a status that says "try again later"."""
    cause = root_cause(error)
    if is_offline(cause) or isinstance(error, ExporterError):
        return False
    return is_connection_error(cause) or cut_short(cause) is not None or http_status(cause) in RETRYABLE_STATUS


# A URL's query is left out of messages: LFS upload URLs are pre-signed (the signature is a credential).
_URL_QUERY = re.compile(r"(https?://[^\s?]+)\?[^\s]*")
_OS_REASON = re.compile(r"\[Errno -?\d+\] ([^\"')\]]+)|[A-Z]\w*Error\(-?\d+, ['\"]([^'\"]+)['\"]\)")


def describe(error: BaseException) -> str:
    """A short description: how much of a download arrived, the OS reason for a failed connection, else the
    first line."""
    text = str(error).strip()
    short = cut_short(error)
    if short is not None:
        return f"the download was cut short ({short[0]} of {short[1]} bytes received)"
    if is_connection_error(error):
        if "timed out" in text.lower() or isinstance(error, _timeout_types()):
            return "timed out"
        reason = _OS_REASON.search(text)
        if reason:
            return (reason.group(1) or reason.group(2)).strip().lower()
        if "without sending a response" in text or "without response" in text:
            return "the connection was closed without an answer"
        if "Connection broken" in text or "incomplete chunked read" in text:
            return "the connection broke off mid-answer"
        if _CLOSED_CLIENT in text:
            return "the connection failed"
        return type(error).__name__
    return _URL_QUERY.sub(r"\1", errors.first_line(error))


def hub_error(
    error: BaseException,
    *,
    what: str,
    repo_id: str,
    endpoint: str,
    revision: str | None = None,
    token: str | None = None,
    attempts: int = 1,
    path: str | None = None,
) -> ExporterError:
    """Our error for a failed huggingface_hub call. ``what`` says what was being done ("downloading
    config.json of org/name@main"); ``attempts`` how many calls were made; ``path`` the file a download was
    for. The token is never in the message.

    ``BadInputError`` (exit 2): ``HF_HUB_OFFLINE`` set; ``HubAuthError``: a rejected or missing token, a gated
    or forbidden repo; ``NotFoundOnHubError``: no such repo, revision or file. ``HubError`` (exit 3): the Hub
    could not be reached or answered an error status. ``IntegrityError`` (exit 1, ``path``): a download cut
    short or of the wrong size.
    """
    if isinstance(error, ExporterError):
        return error
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    not_cached = isinstance(error, LocalEntryNotFoundError)
    cause = root_cause(error)
    cache_note = ", and it is not in the cache" if not_cached else ""
    tries = f" ({attempts} attempts)" if attempts > 1 else ""
    detail = redact(describe(cause), token)
    status = http_status(cause)
    if cut_short(cause) is not None:
        return IntegrityError(f"{detail} while {what} from {endpoint}{tries}", path=path)
    if is_offline(cause) or (not_cached and constants.HF_HUB_OFFLINE):
        return BadInputError(f"HF_HUB_OFFLINE is set and {what} needs the Hub{cache_note}; unset HF_HUB_OFFLINE "
                             "(or fetch once with network access)")
    if isinstance(cause, GatedRepoError):
        return HubAuthError(f"{repo_id} is gated on {endpoint}: accept its conditions on the Hub and "
                            f"{TOKEN_HINT}")
    if isinstance(cause, RepositoryNotFoundError):
        return NotFoundOnHubError(f"{repo_id}: repository not found on {endpoint}, or not visible to this token "
                                  f"(while {what})", repo_id=repo_id, revision=revision)
    if isinstance(cause, RevisionNotFoundError):
        shown = f"revision {revision!r}" if revision else "revision"
        return NotFoundOnHubError(f"{repo_id}: {shown} not found on {endpoint} (while {what})",
                                  repo_id=repo_id, revision=revision)
    if isinstance(cause, EntryNotFoundError) and not isinstance(cause, LocalEntryNotFoundError):
        return NotFoundOnHubError(f"{what}: no such file in {repo_id}@{revision or DEFAULT_REVISION} on {endpoint}",
                                  repo_id=repo_id, revision=revision)
    if status == 401:
        rejected = "rejected the token" if token else "asked for a token"
        return HubAuthError(f"the Hub at {endpoint} {rejected} (401 Unauthorized) while {what}; {TOKEN_HINT}")
    if status == 403:
        return HubAuthError(f"the token is not allowed to do this on {endpoint} (403 Forbidden) while {what}: "
                            f"{detail}")
    if is_connection_error(cause):
        return HubError(f"cannot reach the Hub at {endpoint} while {what}{cache_note}{tries}: {detail}")
    if status is not None:
        return HubError(f"the Hub at {endpoint} answered HTTP {status} while {what}{cache_note}{tries}: {detail}",
                        status=status)
    return HubError(f"Hub call failed while {what}: {type(cause).__name__}: {detail}")


# --------------------------------------------------------------------------------------------- the client


class HubClient:
    """The huggingface_hub calls of one push or fetch of ``repo_id``: endpoint, token, bounded retries with
    backoff, errors mapped by ``hub_error``, and the token kept out of every message and log line.

    ``token`` is what is sent (None: the client's own default); the token that would be used (``token``, else
    HF_TOKEN, else the login) is starred out of every message either way."""

    def __init__(self, repo_id: str, *, endpoint: str | None, token: str | None, progress: Progress,
                 sleep: Callable[[float], None] = time.sleep):
        self.repo_id = repo_id
        self.endpoint = resolve_endpoint(endpoint)
        self.token = token
        self.secret = resolve_token(token)
        self.progress = progress
        self.sleep = sleep
        self.delays = retry_delays()  # read at construction, so tests can shorten them
        self.timeout = call_timeout()
        self._api: HfApi | None = None

    @property
    def api(self) -> HfApi:
        """An ``HfApi`` on this endpoint with this token (made on first use)."""
        if self._api is None:
            from huggingface_hub import HfApi

            from exporter import __version__

            self._api = HfApi(endpoint=self.endpoint, token=self.token, library_name="embedding-exporter",
                              library_version=__version__)
        return self._api

    @property
    def attempts(self) -> int:
        return len(self.delays) + 1

    def redact(self, text: str) -> str:
        return redact(text, self.secret)

    def log(self, message: str) -> None:
        self.progress.log(self.redact(message))

    def fail(self, error: BaseException, what: str, *, revision: str | None = None, attempts: int = 1,
             path: str | None = None) -> ExporterError:
        """The ``ExporterError`` for a failed call (see ``hub_error``)."""
        return hub_error(error, what=what, repo_id=self.repo_id, endpoint=self.endpoint, revision=revision,
                         token=self.secret, attempts=attempts, path=path)

    def call(self, what: str, function: Callable[[], T], *, revision: str | None = None,
             path: str | None = None) -> T:
        """Run an idempotent call, retrying lost connections, answers cut short and retryable statuses (5xx,
        408, 429) with backoff; any other failure, or the last one, is raised as our error (an
        ``ExporterError`` raised by ``function`` passes unchanged; ``path``: the file a download is for)."""
        for attempt in range(self.attempts):
            try:
                return function()
            except ExporterError:
                raise
            except Exception as error:  # noqa: BLE001 - mapped below
                if isinstance(error, OSError) and error.errno in _LOCAL_ERRNOS:
                    raise  # a full disk or an unwritable folder here: not the Hub's failure
                if not retryable(error) or attempt == len(self.delays):
                    raise self.fail(error, what, revision=revision, attempts=attempt + 1, path=path) from None
                delay = self.delays[attempt]
                self.log(f"{what}: {describe(root_cause(error))}; retrying in {delay:g} s")
                self.sleep(delay)
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def upload_protocol(self, revision: str, *, create_pr: bool = False) -> Iterator[str]:
        """The span of the uploads of one commit to ``revision``: ``"xet"`` when the client will upload through
        Xet, else ``"lfs"``.

        The client uploads through Xet whenever ``hf_xet`` is installed and ``constants.HF_HUB_DISABLE_XET``
        is not set (``is_xet_available()``, read at call time), and has no fallback: on a Hub without Xet
        storage every upload would fail. So the Hub is asked first, the way the client asks it (GET
        ``/api/models/{repo}/xet-write-token/{revision}``); unless it answers with Xet's connection headers,
        the client's Xet switch is turned off for the duration (uploads then go through LFS) and restored
        afterwards. A Hub that cannot be reached or answers 5xx there is retried like any call (``call``)."""
        from huggingface_hub import constants

        if constants.HF_HUB_DISABLE_XET or importlib.util.find_spec("hf_xet") is None:
            yield "lfs"  # the client uploads through LFS anyway
            return
        where = f"{self.repo_id}@{revision}"
        if self.call(f"asking {self.endpoint} for Xet upload access to {where}",
                     lambda: self._offers_xet(revision, create_pr), revision=revision):
            yield "xet"
            return
        previous = constants.HF_HUB_DISABLE_XET
        constants.HF_HUB_DISABLE_XET = True
        try:
            yield "lfs"
        finally:
            constants.HF_HUB_DISABLE_XET = previous

    def _offers_xet(self, revision: str, create_pr: bool) -> bool:
        """Whether the Hub grants Xet write access to ``revision`` (its answer carries ``XET_HEADERS``). A
        status that says "try again" raises (``call`` retries it); any other answer without them is a no."""
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        from exporter import __version__

        url = f"{self.endpoint}/api/models/{self.repo_id}/xet-write-token/{quote(revision, safe='')}"
        headers = build_hf_headers(token=self.token, library_name="embedding-exporter", library_version=__version__)
        response = get_session().get(url, headers=headers, params={"create_pr": "1"} if create_pr else None)
        if response.status_code in RETRYABLE_STATUS:
            hf_raise_for_status(response)
        return response.status_code == 200 and all(name in response.headers for name in XET_HEADERS)

    @contextlib.contextmanager
    def session(self, *, point_client: bool = False) -> Iterator[HubClient]:
        """The span of one push or fetch: the client's bars and log lines silenced (``quiet_client``), a
        timeout on the calls it sends without one (``default_timeout``), its default endpoint pointed here
        when ``point_client`` (see ``client_endpoint``), and the token starred out of any error raised inside.
        It changes the client's process-wide settings: one session at a time per process."""
        pointed = client_endpoint(self.endpoint) if point_client else contextlib.nullcontext()
        try:
            with quiet_client(), default_timeout(self.timeout), pointed:
                yield self
        except ExporterError as error:
            error.args = (self.redact(str(error)),)
            raise


__all__ = ["CALL_TIMEOUT", "CALL_TIMEOUT_ENV", "HubClient", "RETRYABLE_STATUS", "RETRY_DELAYS", "RETRY_DELAYS_ENV",
           "call_timeout", "check_endpoint", "client_endpoint", "cut_short", "default_timeout", "describe",
           "http_status", "hub_error", "is_connection_error", "is_offline", "quiet_client", "quiet_progress_bars",
           "redact", "resolve_endpoint", "resolve_token", "retry_delays", "retryable", "root_cause", "XET_HEADERS"]
