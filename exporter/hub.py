"""The one wrapper around the huggingface_hub client that ``push`` and ``fetch`` share.

Both stages talk to the same client and must fail the same way, so everything that is not their own flow
lives here once: the endpoint is checked once (``check_endpoint``), every client error is turned into one
of our errors by one function (``hub_error``), idempotent calls are retried with backoff in one place
(``HubClient.call``), the token is starred out of every message (``redact``), and the client's own
progress bars are silenced while our progress draws on stderr (``quiet_progress_bars``).

huggingface_hub 0.36 sends its requests with ``requests``; 1.x sends them with ``httpx``. Connection
errors of both are recognised, and neither library is imported to do so: the error classes are looked up
in ``sys.modules``, since an error of a library that was never imported cannot have been raised.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

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
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
TOKEN_HINT = "pass a valid token (token=, HF_TOKEN or `hf auth login`)"
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

    huggingface_hub 0.36 parses the commit URL the Hub answers (``CommitInfo``/``RepoUrl``) against
    ``constants.ENDPOINT`` (read from ``HF_ENDPOINT`` once, at import), not against
    ``HfApi(endpoint=...)``: with any other endpoint a commit raises ``ValueError`` after it has landed."""
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


# --------------------------------------------------------------------------------------- what an error is


def _connection_error_types() -> tuple[type[BaseException], ...]:
    """The transport-level failures of the HTTP libraries that are loaded (requests, httpx)."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    requests = sys.modules.get("requests")
    if requests is not None:
        found += [requests.ConnectionError, requests.Timeout]
    httpx = sys.modules.get("httpx")
    if httpx is not None:
        found += [getattr(httpx, name) for name in ("NetworkError", "TimeoutException", "RemoteProtocolError")
                  if isinstance(getattr(httpx, name, None), type)]
    return tuple(found)


def _timeout_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [TimeoutError]
    requests = sys.modules.get("requests")
    if requests is not None:
        found.append(requests.Timeout)
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(getattr(httpx, "TimeoutException", None), type):
        found.append(httpx.TimeoutException)
    return tuple(found)


def is_offline(error: BaseException) -> bool:
    """The client refused to send a request because ``HF_HUB_OFFLINE`` is set."""
    offline = getattr(sys.modules.get("huggingface_hub.errors"), "OfflineModeIsEnabled", None)
    return offline is not None and isinstance(error, offline)


def is_connection_error(error: BaseException) -> bool:
    """The request never got an answer: refused or lost connection, DNS failure, timeout (requests or httpx)."""
    return isinstance(error, _connection_error_types()) and not is_offline(error)


def http_status(error: BaseException | None) -> int | None:
    """The HTTP status code of a huggingface_hub / requests / httpx error, when it has a response."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def root_cause(error: BaseException) -> BaseException:
    """The failure behind the client's wrappers: ``hf_hub_download`` raises ``LocalEntryNotFoundError`` (or a
    ``ValueError`` when forced) *from* the error of its metadata request (offline, connection, HTTP status)."""
    seen = {id(error)}
    while isinstance(error, ValueError) and error.__cause__ is not None and id(error.__cause__) not in seen:
        error = error.__cause__
        seen.add(id(error))
    return error


def retryable(error: BaseException) -> bool:
    """Worth another attempt: no answer at all, or a status that says "try again later"."""
    cause = root_cause(error)
    if is_offline(cause) or isinstance(error, ExporterError):
        return False
    return is_connection_error(cause) or http_status(cause) in RETRYABLE_STATUS


def describe(error: BaseException) -> str:
    """A short description: the OS reason for a failed connection, else the first line."""
    text = str(error).strip()
    if is_connection_error(error):
        reason = re.search(r"\[Errno -?\d+\] ([^\"')]+)", text)
        if reason:
            return reason.group(1).strip().lower()
        if "timed out" in text.lower() or isinstance(error, _timeout_types()):
            return "timed out"
        return type(error).__name__
    return errors.first_line(error)


def hub_error(
    error: BaseException,
    *,
    what: str,
    repo_id: str,
    endpoint: str,
    revision: str | None = None,
    token: str | None = None,
    attempts: int = 1,
) -> ExporterError:
    """Our error for a failed huggingface_hub call. ``what`` says what was being done ("downloading
    config.json of org/name@main"); ``attempts`` how many calls were made. The token is never in the message.

    ``BadInputError`` (exit 2): ``HF_HUB_OFFLINE`` set; ``HubAuthError``: a rejected or missing token, a gated
    or forbidden repo; ``NotFoundOnHubError``: no such repo, revision or file. ``HubError`` (exit 3): the Hub
    could not be reached or answered an error status. ``IntegrityError`` (exit 1): a download of the wrong size.
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
    if isinstance(cause, OSError) and "Consistency check failed" in str(cause):
        return IntegrityError(f"the download was cut short or has the wrong size while {what}: {detail}")
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
        self.delays = RETRY_DELAYS  # read at construction, so tests can shorten them
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

    def fail(self, error: BaseException, what: str, *, revision: str | None = None,
             attempts: int = 1) -> ExporterError:
        """The ``ExporterError`` for a failed call (see ``hub_error``)."""
        return hub_error(error, what=what, repo_id=self.repo_id, endpoint=self.endpoint, revision=revision,
                         token=self.secret, attempts=attempts)

    def call(self, what: str, function: Callable[[], T], *, revision: str | None = None) -> T:
        """Run an idempotent call, retrying lost connections and retryable statuses (5xx, 408, 429) with
        backoff; any other failure, or the last one, is raised as our error (an ``ExporterError`` raised by
        ``function`` passes unchanged)."""
        for attempt in range(self.attempts):
            try:
                return function()
            except ExporterError:
                raise
            except Exception as error:  # noqa: BLE001 - mapped below
                if not retryable(error) or attempt == len(self.delays):
                    raise self.fail(error, what, revision=revision, attempts=attempt + 1) from None
                delay = self.delays[attempt]
                self.log(f"{what}: {describe(root_cause(error))}; retrying in {delay:g} s")
                self.sleep(delay)
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def session(self, *, point_client: bool = False) -> Iterator[HubClient]:
        """The span of one push or fetch: the client's bars silenced, its default endpoint pointed here when
        ``point_client`` (see ``client_endpoint``), and the token starred out of any error raised inside."""
        pointed = client_endpoint(self.endpoint) if point_client else contextlib.nullcontext()
        try:
            with quiet_progress_bars(), pointed:
                yield self
        except ExporterError as error:
            error.args = (self.redact(str(error)),)
            raise


__all__ = ["HubClient", "RETRYABLE_STATUS", "RETRY_DELAYS", "check_endpoint", "client_endpoint", "describe",
           "http_status", "hub_error", "is_connection_error", "is_offline", "quiet_progress_bars", "redact",
           "resolve_endpoint", "resolve_token", "retryable", "root_cause"]
