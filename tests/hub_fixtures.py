"""Pytest fixtures for the local Hub server (the ``hub_server`` package).

Use from a conftest with ``from hub_fixtures import hub_server, hub_endpoint  # noqa: F401`` (or
``pytest_plugins = ["hub_fixtures"]``):

* ``hub_server``: a started ``HubServer`` on a free port with its own root directory, token ``HUB_TOKEN``.
* ``hub_endpoint``: ``hub_server`` plus the huggingface_hub client pointed at it (see
  ``patch_hf_endpoint``); returns the server URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from hub_server import HubServer

HUB_TOKEN = "hf_test_token"


def patch_hf_endpoint(monkeypatch: pytest.MonkeyPatch, url: str, token_path: Path) -> None:
    """Point the already-imported huggingface_hub client at ``url`` for the duration of a test.

    Setting ``HF_ENDPOINT`` after import has no effect (huggingface_hub 0.36 reads it once), so this
    patches what the client reads at call time: ``constants.ENDPOINT`` (``CommitInfo``/``RepoUrl``
    parse commit URLs against it), the download URL template (imported by name into ``file_download``;
    ``hf_hub_url`` only applies ``endpoint=`` when the template starts with ``constants.ENDPOINT``) and the
    module-level ``HfApi`` behind ``huggingface_hub.upload_file`` & co. It also switches
    ``HF_HUB_OFFLINE`` off (it blocks every request, local ones included) and hides any real token
    (``HF_TOKEN`` / the token file) so only explicit ``token=`` arguments authenticate.
    """
    from huggingface_hub import constants, file_download, hf_api
    from huggingface_hub.utils import reset_sessions

    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setenv("HF_ENDPOINT", url)  # for subprocesses started by the test
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(hf_api.api, "endpoint", url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_path))
    reset_sessions()  # cached per-thread sessions were built with the old offline setting


@pytest.fixture
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A started local Hub (fresh root, token ``HUB_TOKEN``), stopped after the test."""
    with HubServer(root=tmp_path_factory.mktemp("hub-root"), token=HUB_TOKEN) as server:
        yield server


@pytest.fixture
def hub_endpoint(
    hub_server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The server URL, with the huggingface_hub client patched to use it (``patch_hf_endpoint``)."""
    from huggingface_hub.utils import reset_sessions

    patch_hf_endpoint(monkeypatch, hub_server.url, tmp_path_factory.mktemp("hf-token") / "token")
    yield hub_server.url
    reset_sessions()  # sessions are rebuilt lazily, after monkeypatch restores HF_HUB_OFFLINE
