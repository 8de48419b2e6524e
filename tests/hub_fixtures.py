"""Pytest fixtures for the local Hub server (the ``hub_server`` package).

Use from a conftest with ``from hub_fixtures import hub_server, hub_endpoint  # noqa: F401`` (or
``pytest_plugins = ["hub_fixtures"]``); ``hub_url`` is defined as ``hub_url_fixture`` (import that name),
so a test taking ``hub_url`` does not shadow an imported name:

* ``hub_server``: a started ``HubServer`` on a free port with its own root directory, token ``HUB_TOKEN``.
* ``hub_url``: ``hub_server`` with the huggingface_hub client allowed to reach it (``allow_hub_requests``)
  but its default endpoint left alone: code under test must pass ``endpoint=`` (as a user without
  ``HF_ENDPOINT`` does). Returns the server URL.
* ``hub_endpoint``: ``hub_server`` with the client's default endpoint pointed at it too
  (``patch_hf_endpoint``), for code that takes no endpoint (sentence-transformers loading a repo id, the
  card's snippets, ``HfApi`` commits); returns the server URL.

The server has no Xet storage (its Xet token route answers 404). huggingface_hub >= 1.0 uploads through Xet
whenever ``hf_xet`` is installed and has no fallback, so uploads the tests make with ``HfApi`` themselves go
through LFS (``lfs_uploads``: ``constants.HF_HUB_DISABLE_XET``, under ``hub_endpoint`` and
``client_defaults_at``). ``hub_url`` leaves it alone: ``exporter.push`` must find out by itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import HubServer

HUB_TOKEN = "hf_test_token"


def allow_hub_requests(monkeypatch: pytest.MonkeyPatch, token_path: Path) -> None:
    """Let the already-imported client send requests, authenticated only by explicit ``token=`` arguments.

    Switches ``HF_HUB_OFFLINE`` off (it blocks every request, local ones included), hides any real token
    (``HF_TOKEN`` / the token file) and ``HF_ENDPOINT`` from subprocesses, and closes the client's shared
    HTTP session (``close_session``; it is rebuilt on the next request). The client's default endpoint is
    unchanged, and so is its Xet setting.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_path))
    close_session()


def lfs_uploads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the client upload through LFS, never Xet, for the duration of a test (this server has no Xet).

    ``is_xet_available()`` reads ``constants.HF_HUB_DISABLE_XET`` at call time; the environment variable is
    also set for subprocesses."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")


def patch_hf_endpoint(monkeypatch: pytest.MonkeyPatch, url: str, token_path: Path) -> None:
    """``allow_hub_requests`` and ``lfs_uploads``, and point the client's defaults at ``url`` for the
    duration of a test.

    Setting ``HF_ENDPOINT`` after import has no effect (huggingface_hub reads it once), so this patches what
    the client reads at call time: ``constants.ENDPOINT`` (early 1.x releases parse the commit URL of
    ``CommitInfo`` against it), the download URL template (``hf_hub_url`` only applies ``endpoint=`` when the
    template starts with ``constants.ENDPOINT``; releases that import it by name into ``file_download`` get
    that copy patched too) and the module-level ``HfApi`` behind ``huggingface_hub.upload_file`` & co.
    ``HF_ENDPOINT`` is set for subprocesses started by the test.
    """
    from huggingface_hub import constants, file_download, hf_api

    allow_hub_requests(monkeypatch, token_path)
    lfs_uploads(monkeypatch)
    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    if hasattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE"):
        monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(hf_api.api, "endpoint", url)


def client_httpx():
    """The httpx the client sends its requests with: ``httpx`` (huggingface_hub 1.x) or its fork ``httpx2``
    (2.x; ``huggingface_hub.utils.httpx`` names it from 1.30 on), for tests that look at its errors."""
    import huggingface_hub.utils

    module = getattr(huggingface_hub.utils, "httpx", None)
    if module is None:
        import httpx as module
    return module


@contextlib.contextmanager
def client_defaults_at(url: str, token_path: Path) -> Iterator[None]:
    """``patch_hf_endpoint`` for a block only (e.g. an ``HfApi`` commit in a test that otherwise passes
    ``endpoint=``); everything is restored afterwards, the offline switch and the sessions included."""
    from huggingface_hub.utils import close_session

    with pytest.MonkeyPatch.context() as monkeypatch:
        patch_hf_endpoint(monkeypatch, url, token_path)
        yield
    close_session()


@pytest.fixture
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A started local Hub (fresh root, token ``HUB_TOKEN``), stopped after the test."""
    with HubServer(root=tmp_path_factory.mktemp("hub-root"), token=HUB_TOKEN) as server:
        yield server


@pytest.fixture(name="hub_url")
def hub_url_fixture(
    hub_server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The server URL; the client may reach it, but only where ``endpoint=`` is passed (``allow_hub_requests``)."""
    from huggingface_hub.utils import close_session

    allow_hub_requests(monkeypatch, tmp_path_factory.mktemp("hf-token") / "token")
    yield hub_server.url
    close_session()  # sessions are rebuilt lazily, after monkeypatch restores HF_HUB_OFFLINE


@pytest.fixture
def hub_endpoint(
    hub_server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The server URL, with the huggingface_hub client's defaults pointed at it (``patch_hf_endpoint``)."""
    from huggingface_hub.utils import close_session

    patch_hf_endpoint(monkeypatch, hub_server.url, tmp_path_factory.mktemp("hf-token") / "token")
    yield hub_server.url
    close_session()  # sessions are rebuilt lazily, after monkeypatch restores HF_HUB_OFFLINE
