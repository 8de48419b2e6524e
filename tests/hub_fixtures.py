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
    (``HF_TOKEN`` / the token file) and ``HF_ENDPOINT`` from subprocesses, and resets the client's cached
    HTTP sessions (they were built with the old offline setting). The client's default endpoint is unchanged.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import reset_sessions

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_path))
    reset_sessions()


def patch_hf_endpoint(monkeypatch: pytest.MonkeyPatch, url: str, token_path: Path) -> None:
    """``allow_hub_requests``, and point the client's defaults at ``url`` for the duration of a test.

    Setting ``HF_ENDPOINT`` after import has no effect (huggingface_hub 0.36 reads it once), so this
    patches what the client reads at call time: ``constants.ENDPOINT`` (``CommitInfo``/``RepoUrl``
    parse commit URLs against it), the download URL template (imported by name into ``file_download``;
    ``hf_hub_url`` only applies ``endpoint=`` when the template starts with ``constants.ENDPOINT``) and the
    module-level ``HfApi`` behind ``huggingface_hub.upload_file`` & co. ``HF_ENDPOINT`` is set for
    subprocesses started by the test.
    """
    from huggingface_hub import constants, file_download, hf_api

    allow_hub_requests(monkeypatch, token_path)
    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(hf_api.api, "endpoint", url)


@contextlib.contextmanager
def client_defaults_at(url: str, token_path: Path) -> Iterator[None]:
    """``patch_hf_endpoint`` for a block only (e.g. an ``HfApi`` commit in a test that otherwise passes
    ``endpoint=``); everything is restored afterwards, the offline switch and the sessions included."""
    from huggingface_hub.utils import reset_sessions

    with pytest.MonkeyPatch.context() as monkeypatch:
        patch_hf_endpoint(monkeypatch, url, token_path)
        yield
    reset_sessions()


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
    from huggingface_hub.utils import reset_sessions

    allow_hub_requests(monkeypatch, tmp_path_factory.mktemp("hf-token") / "token")
    yield hub_server.url
    reset_sessions()  # sessions are rebuilt lazily, after monkeypatch restores HF_HUB_OFFLINE


@pytest.fixture
def hub_endpoint(
    hub_server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The server URL, with the huggingface_hub client's defaults pointed at it (``patch_hf_endpoint``)."""
    from huggingface_hub.utils import reset_sessions

    patch_hf_endpoint(monkeypatch, hub_server.url, tmp_path_factory.mktemp("hf-token") / "token")
    yield hub_server.url
    reset_sessions()  # sessions are rebuilt lazily, after monkeypatch restores HF_HUB_OFFLINE
