"""A local, file-backed stand-in for the Hugging Face Hub HTTP API, for tests.

It answers the endpoints that the real ``huggingface_hub`` client (written against 1.21 and checked
against 2.4) calls for repository creation, commits (regular files, LFS files through the "basic" LFS
transfer, deletions, pull requests), refs (branches, tags, ``refs/pr/N``), file listings and downloads, so
the project's push code can be exercised end to end without a network. It has no Xet storage.

Run it by hand
--------------
::

    python tests/hub_server --root /tmp/hub --port 8080 --token hf_xxx
    cd tests && python -m hub_server --root /tmp/hub --port 8080 --token hf_xxx    # the same

prints ``http://127.0.0.1:8080`` and serves until Ctrl-C. Point the client at it with
``HF_ENDPOINT=http://127.0.0.1:8080`` (exported *before* Python starts) and/or ``endpoint=...``, and
authenticate with ``token="hf_xxx"`` (the user is ``--username``, default ``test-user``). Repos, commits,
refs and blobs persist under ``--root`` as JSON and content-addressed blob files, so restarting the server
on the same root shows the same repositories.

From Python::

    with HubServer(root=tmp_path, token="hf_test_token") as server:
        api = HfApi(endpoint=server.url, token="hf_test_token")
        server.fail_next("POST", r"/commit/", times=1)            # next commit answers 503
        server.fail_next("POST", r"/commit/", after=True)         # commit lands, client still sees 503
        server.reset_next("GET", r"/resolve/")                    # connection reset, no answer
        server.reset_next("GET", r"/resolve/", keep=100)          # reset after 100 bytes of the body
        server.stall_next("PUT", r"^/_lfs/", seconds=3)           # nothing for 3 s, then dropped
        server.truncate_next("GET", r"/resolve/")                 # Content-Length N, half the body, close
        server.requests                                           # [(method, path), ...]

Client traps (huggingface_hub 1.21 and 2.4, verified against their source)
------------------------------------------------------------------------
* Transport: ``httpx`` in 1.x, its fork ``httpx2`` in 2.x (``huggingface_hub.utils.httpx`` names the one in
  use from 1.30 on); ``requests`` is no longer involved. The client shares one HTTP client, built by a
  factory (``set_client_factory``) with no timeout; ``close_session()`` (formerly ``reset_sessions()``)
  drops it and the next request builds a new one.
* ``HF_ENDPOINT`` is read once, when ``huggingface_hub.constants`` is imported. ``HfApi(endpoint=...)``,
  ``hf_hub_download(endpoint=...)`` and ``snapshot_download(endpoint=...)`` take the endpoint per call.
  This server answers ``commitUrl = <the URL the client used>/<repo_id>/commit/<sha>`` (the real Hub's
  shape). 1.21 and 2.4 parse it against the ``HfApi``'s endpoint (``CommitInfo._endpoint``); early 1.x
  releases (1.3) parse it against ``constants.ENDPOINT`` and raise ``ValueError: Unable to retrieve user and
  repo ID`` unless it equals the server URL (after the commit has landed). ``hf_hub_url`` builds download
  URLs from ``constants.HUGGINGFACE_CO_URL_TEMPLATE`` and only swaps in ``endpoint=`` when it starts with
  ``constants.ENDPOINT``. The module-level helpers (``huggingface_hub.upload_file`` ...) are bound to an
  ``HfApi()`` created at import, with its own ``endpoint``. ``hub_fixtures.patch_hf_endpoint`` patches all of
  this.
* ``HF_HUB_OFFLINE=1`` (also read at import) makes every request of the client raise, even to 127.0.0.1.
  The fixture turns it off and closes the client's shared HTTP session.
* ``create_repo(private=...)`` and ``update_repo_settings(private=...)`` send ``visibility``
  (``"private"``/``"public"``); older clients sent ``private``. Both are understood.
* No-op commits: in pre-upload, the server reports each existing file's ``oid`` (git blob sha1 for
  regular files, sha256 for LFS files, as the client computes ``_local_oid``). When every added file is
  unchanged, the client makes no commit call and returns the current head from ``repo_info``.
* Xet: whenever ``hf_xet`` is installed (a dependency of huggingface_hub 1.x and 2.x) and
  ``constants.HF_HUB_DISABLE_XET`` is off (read at call time), the client uploads LFS files through Xet: it
  asks ``GET /api/models/{repo}/xet-write-token/{revision}`` (``?create_pr=1`` for a pull request) for
  connection headers and has no fallback. This server answers that route (and ``xet-read-token``) with 404,
  so such an upload fails with hf_xet's ``ConnectionError``; with Xet disabled the client uses the LFS batch
  API (``transfers=["basic", "multipart"]``) and this server answers ``"basic"``. Downloads only use Xet when
  ``X-Xet-Hash`` is in the headers, which this server never sends. ``exporter.push`` asks the token route
  first and disables Xet for its own uploads; tests uploading with ``HfApi`` set ``HF_HUB_DISABLE_XET``.
* Errors map to exception classes through the ``X-Error-Code`` header (``RepoNotFound``,
  ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``); this server always sends it. A wrong token gets
  401 with ``X-Error-Message``/``{"error": "Invalid credentials in Authorization header"}``, which the
  client raises as a plain ``HfHubHTTPError`` (``whoami`` as its own "Invalid user token").
* The client retries LFS upload PUTs and the HEAD/GET of downloads on 408/429/5xx, timeouts and lost
  connections (``http_backoff``: 1, 2, 4, 8, 8 s, 5 retries), and resumes a download whose body broke off
  or ended before its ``Content-Length`` (``http_get``). Every other call (repo creation, pre-upload, LFS
  batch and verify, the commit POST, listings) is sent once, with no timeout. In 1.x, ``http_backoff``
  closes the shared client after a failed connection and retries on the closed one (``RuntimeError:
  Cannot send a request, as the client has been closed``); 2.x fetches the client again on each attempt.

Simplifications: one user (``username``) owns every namespace; the LFS/regular choice uses fixed
``.gitattributes``-style patterns, a 10 MiB size limit and a NUL-byte check on the sample, not the repo's
own ``.gitattributes``; ``shouldIgnore`` is always false; listings are not paginated.

Layout
------
A package split along the server's layers; each module imports only modules listed before it
(``httpd`` names ``HubServer`` in annotations only, under ``TYPE_CHECKING``), so each one imports
on its own:

* ``common``: constants, LFS rules and small helpers (hashes, timestamps, front matter, repo ids).
* ``errors``: ``HubResponse``, ``json_response``, ``HubError`` and its shortcuts.
* ``storage``: ``FileEntry``, ``Commit``, ``RepoState`` and ``HubStorage`` (repos, commits, refs, blobs on disk).
* ``faults``: ``FaultRule``, ``FaultInjector`` and ``RequestRecord`` (fault injection: statuses, resets,
  stalls, truncated bodies; the request log).
* ``request``: ``RequestBody``, ``HubRequest``, ``Route`` and the route path regex fragments.
* ``app``: ``HubApp``, one method per Hub endpoint.
* ``httpd``: the ``ThreadingHTTPServer`` subclass and the request handler.
* ``server``: ``HubServer``, the public API.
* ``cli``: ``main``, the command line; ``__main__`` runs it for ``python tests/hub_server`` and
  ``python -m hub_server``.

This ``__init__`` re-exports the public names of these modules, so ``from hub_server import HubServer``
(and every other public name of the former single-file ``tests/hub_server.py``) keeps working.
"""

from __future__ import annotations

from .app import HubApp
from .cli import main
from .common import (
    DEFAULT_BRANCH,
    DEFAULT_USERNAME,
    INVALID_CREDENTIALS,
    LFS_PATTERNS,
    LFS_SIZE_THRESHOLD,
    URL_KIND_TO_REPO_TYPE,
    default_gitattributes,
    git_blob_oid,
    is_valid_repo_id,
    lfs_pointer,
    matches_lfs_pattern,
    parse_front_matter,
    should_use_lfs,
    url_prefix,
    utc_now_iso,
)
from .errors import (
    HubError,
    HubResponse,
    bad_request,
    entry_not_found,
    json_response,
    repo_not_found,
    revision_not_found,
    unauthenticated,
)
from .faults import FAULT_ACTIONS, MAX_STALL, FaultInjector, FaultRule, RequestRecord
from .request import HubRequest, RequestBody, Route, RouteHandler
from .server import HubServer
from .storage import Commit, FileEntry, HubStorage, RepoState

__all__ = [
    "DEFAULT_BRANCH",
    "DEFAULT_USERNAME",
    "INVALID_CREDENTIALS",
    "LFS_PATTERNS",
    "LFS_SIZE_THRESHOLD",
    "URL_KIND_TO_REPO_TYPE",
    "default_gitattributes",
    "git_blob_oid",
    "is_valid_repo_id",
    "lfs_pointer",
    "matches_lfs_pattern",
    "parse_front_matter",
    "should_use_lfs",
    "url_prefix",
    "utc_now_iso",
    "HubError",
    "HubResponse",
    "bad_request",
    "entry_not_found",
    "json_response",
    "repo_not_found",
    "revision_not_found",
    "unauthenticated",
    "Commit",
    "FileEntry",
    "HubStorage",
    "RepoState",
    "FAULT_ACTIONS",
    "MAX_STALL",
    "FaultInjector",
    "FaultRule",
    "RequestRecord",
    "HubRequest",
    "RequestBody",
    "Route",
    "RouteHandler",
    "HubApp",
    "HubServer",
    "main",
]
