"""The local Hub server, driven only through the real huggingface_hub client (no fakes)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hub_fixtures import HUB_TOKEN, client_httpx  # the hub_server and hub_endpoint fixtures come from conftest.py
from hub_server import HubServer
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    constants,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

README = "---\nlicense: apache-2.0\nlibrary_name: sentence-transformers\ntags:\n- sentence-similarity\n---\n# Model\n"
BIG_SIZE = 11 * 1024 * 1024


@pytest.fixture
def api(hub_endpoint: str) -> HfApi:  # noqa: F811 - pytest fixture injection
    """An authenticated client; the endpoint is passed explicitly *and* patched globally (trap)."""
    return HfApi(endpoint=hub_endpoint, token=HUB_TOKEN)


@pytest.fixture
def anonymous(hub_endpoint: str) -> HfApi:  # noqa: F811
    """A client that sends no token at all (token=False also ignores HF_TOKEN and the token file)."""
    return HfApi(endpoint=hub_endpoint, token=False)


@pytest.fixture
def download(hub_endpoint: str, tmp_path: Path) -> Callable[..., Path]:  # noqa: F811
    """hf_hub_download against the server (explicit endpoint and token, per-test cache); returns a Path."""

    def fetch(repo_id: str, filename: str, **kwargs: Any) -> Path:
        options = {"endpoint": hub_endpoint, "token": HUB_TOKEN, "cache_dir": tmp_path / "hf-cache", **kwargs}
        return Path(hf_hub_download(repo_id, filename, **options))

    return fetch


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_model_folder(folder: Path) -> Path:
    """A folder with a regular file, a model card with front matter and an 11 MB binary (LFS)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"hidden_size": 8}\n')
    (folder / "README.md").write_text(README)
    (folder / "weights.bin").write_bytes(os.urandom(BIG_SIZE))
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "vocab.txt").write_text("a\nb\nc\n")
    return folder


def upload_text(api: HfApi, repo_id: str, path: str, text: str, **kwargs):
    return api.upload_file(path_or_fileobj=text.encode(), path_in_repo=path, repo_id=repo_id, **kwargs)


def test_create_repos_whoami_and_exist_ok(api: HfApi, anonymous: HfApi) -> None:
    public = api.create_repo("test-user/public-model")
    private = api.create_repo("test-user/private-model", private=True)
    assert public.repo_id == "test-user/public-model"
    assert api.create_repo("test-user/public-model", exist_ok=True).repo_id == public.repo_id
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo("test-user/public-model")
    assert conflict.value.response.status_code == 409
    assert api.whoami()["name"] == "test-user"
    assert api.repo_exists(public.repo_id) and api.repo_exists(private.repo_id)
    assert api.model_info(private.repo_id).private is True
    assert api.list_repo_files(public.repo_id) == [".gitattributes"]
    assert anonymous.repo_exists(public.repo_id)
    assert not api.repo_exists("test-user/does-not-exist")


def test_private_repo_is_invisible_without_token(api: HfApi, anonymous: HfApi, download: Callable[..., Path]) -> None:
    repo_id = api.create_repo("test-user/secret", private=True).repo_id
    upload_text(api, repo_id, "config.json", "{}")
    assert not anonymous.repo_exists(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        download(repo_id, "config.json", token=False)
    with pytest.raises(HfHubHTTPError) as no_token_write:
        anonymous.create_repo("test-user/other")
    assert no_token_write.value.response.status_code == 401


def test_wrong_token_gets_401(api: HfApi, hub_endpoint: str) -> None:  # noqa: F811
    repo_id = api.create_repo("test-user/public").repo_id
    wrong = HfApi(endpoint=hub_endpoint, token="hf_wrong_token")
    with pytest.raises(HfHubHTTPError) as read_error:
        wrong.model_info(repo_id)
    assert read_error.value.response.status_code == 401
    assert not isinstance(read_error.value, RepositoryNotFoundError)
    assert "Invalid credentials in Authorization header" in str(read_error.value)
    with pytest.raises(HfHubHTTPError, match="Invalid user token") as whoami_error:  # whoami says it its own way
        wrong.whoami()
    assert whoami_error.value.response.status_code == 401


def test_upload_folder_and_snapshot_roundtrip(
    api: HfApi, hub_server: HubServer, hub_endpoint: str, tmp_path: Path  # noqa: F811
) -> None:
    source = make_model_folder(tmp_path / "model")
    repo_id = api.create_repo("test-user/roundtrip").repo_id
    info = api.upload_folder(folder_path=source, repo_id=repo_id, commit_message="Add model")

    assert hub_server.count_requests("POST", r"^/api/validate-yaml$") == 2  # upload_folder + create_commit
    assert hub_server.count_requests("PUT", r"^/_lfs/") == 1  # only the big binary goes through LFS
    assert hub_server.count_requests("POST", r"/commit/main$") == 1
    tree = {entry.path: entry for entry in api.list_repo_tree(repo_id, recursive=True)}
    assert tree["weights.bin"].lfs is not None and tree["weights.bin"].lfs.sha256 == sha256_of(source / "weights.bin")
    assert tree["config.json"].lfs is None and tree["README.md"].lfs is None
    assert "sub" in tree and not hasattr(tree["sub"], "lfs")
    model = api.model_info(repo_id)
    assert model.sha == info.oid
    assert model.card_data is not None and model.card_data.library_name == "sentence-transformers"

    local = Path(snapshot_download(repo_id, endpoint=hub_endpoint, token=HUB_TOKEN, cache_dir=tmp_path / "cache"))
    uploaded = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    downloaded = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    assert downloaded == sorted(uploaded + [".gitattributes"])
    for name in uploaded:
        assert sha256_of(local / name) == sha256_of(source / name), name
    assert local.name == info.oid  # snapshot folder is named after the commit the server reported


def test_invalid_readme_metadata_is_rejected_before_upload(api: HfApi, hub_server: HubServer) -> None:
    repo_id = api.create_repo("test-user/bad-card").repo_id
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        upload_text(api, repo_id, "README.md", "---\nlicense: [unclosed\n---\n# Card\n")
    assert hub_server.count_requests("POST", r"/commit/") == 0


def test_hf_hub_download_uses_cache_second_time(
    api: HfApi, hub_server: HubServer, download: Callable[..., Path]  # noqa: F811
) -> None:
    repo_id = api.create_repo("test-user/cached").repo_id
    upload_text(api, repo_id, "config.json", '{"a": 1}')
    hub_server.clear_requests()
    first = download(repo_id, "config.json")
    second = download(repo_id, "config.json")
    assert first == second and first.read_text() == '{"a": 1}'
    assert hub_server.count_requests("HEAD", r"/resolve/main/config\.json$") == 2
    assert hub_server.count_requests("GET", r"/resolve/") == 1


def test_missing_revision_and_entry_errors(api: HfApi, download: Callable[..., Path]) -> None:
    repo_id = api.create_repo("test-user/errors").repo_id
    with pytest.raises(EntryNotFoundError):
        download(repo_id, "nope.txt")
    with pytest.raises(RevisionNotFoundError):
        download(repo_id, ".gitattributes", revision="v9")
    assert not api.file_exists(repo_id, "nope.txt")
    assert not api.revision_exists(repo_id, "v9")


def test_create_pr_leaves_main_unchanged(api: HfApi, download: Callable[..., Path]) -> None:
    repo_id = api.create_repo("test-user/pr").repo_id
    main_commit = upload_text(api, repo_id, "config.json", "v1")
    pr = upload_text(api, repo_id, "config.json", "v2", create_pr=True, commit_message="Propose v2")

    assert pr.pr_revision == "refs/pr/1" and pr.pr_num == 1
    refs = api.list_repo_refs(repo_id, include_pull_requests=True)
    assert [(ref.ref, ref.target_commit) for ref in refs.pull_requests] == [("refs/pr/1", pr.oid)]
    assert [ref.target_commit for ref in refs.branches if ref.name == "main"] == [main_commit.oid]
    assert download(repo_id, "config.json").read_text() == "v1"
    assert download(repo_id, "config.json", revision="refs/pr/1").read_text() == "v2"
    assert api.list_repo_commits(repo_id, revision="refs/pr/1")[0].title == "Propose v2"


def test_tag_then_download_at_tag(
    api: HfApi, hub_endpoint: str, tmp_path: Path, download: Callable[..., Path]  # noqa: F811
) -> None:
    repo_id = api.create_repo("test-user/tagged").repo_id
    v1 = upload_text(api, repo_id, "config.json", "v1")
    api.create_tag(repo_id, tag="v1.0", tag_message="first release")
    upload_text(api, repo_id, "config.json", "v2")

    assert [(tag.name, tag.target_commit) for tag in api.list_repo_refs(repo_id).tags] == [("v1.0", v1.oid)]
    at_tag = snapshot_download(repo_id, revision="v1.0", endpoint=hub_endpoint, token=HUB_TOKEN, cache_dir=tmp_path)
    assert (Path(at_tag) / "config.json").read_text() == "v1"
    assert download(repo_id, "config.json", revision=v1.oid).read_text() == "v1"
    assert download(repo_id, "config.json").read_text() == "v2"


def test_branch_push_and_delete_operations(api: HfApi) -> None:
    repo_id = api.create_repo("test-user/branchy").repo_id
    api.create_branch(repo_id, branch="dev")
    upload_text(api, repo_id, "sub/a.txt", "a", revision="dev")
    upload_text(api, repo_id, "sub/b.txt", "b", revision="dev")
    assert sorted(api.list_repo_files(repo_id, revision="dev")) == [".gitattributes", "sub/a.txt", "sub/b.txt"]
    assert api.list_repo_files(repo_id) == [".gitattributes"]
    assert len(api.list_repo_commits(repo_id, revision="dev")) == 3

    api.create_commit(repo_id, [CommitOperationDelete("sub/a.txt")], commit_message="rm a", revision="dev")
    assert sorted(api.list_repo_files(repo_id, revision="dev")) == [".gitattributes", "sub/b.txt"]
    with pytest.raises(EntryNotFoundError):
        api.create_commit(repo_id, [CommitOperationDelete("missing.txt")], commit_message="rm", revision="dev")


def test_parent_commit_mismatch_is_rejected(api: HfApi) -> None:
    repo_id = api.create_repo("test-user/parent").repo_id
    first = upload_text(api, repo_id, "a.txt", "1")
    upload_text(api, repo_id, "a.txt", "2", parent_commit=first.oid)
    with pytest.raises(HfHubHTTPError) as stale:
        upload_text(api, repo_id, "a.txt", "3", parent_commit=first.oid)
    assert stale.value.response.status_code == 412


def test_injected_503_on_commit_is_not_retried(api: HfApi, hub_server: HubServer) -> None:
    repo_id = api.create_repo("test-user/flaky-commit").repo_id
    head = api.model_info(repo_id).sha
    hub_server.fail_next("POST", r"/commit/", times=1)
    with pytest.raises(HfHubHTTPError) as error:
        upload_text(api, repo_id, "config.json", "{}")
    assert error.value.response.status_code == 503
    assert hub_server.count_requests("POST", r"/commit/") == 1
    assert api.model_info(repo_id).sha == head


def test_injected_503_on_lfs_upload_is_retried(
    api: HfApi, hub_server: HubServer, download: Callable[..., Path]  # noqa: F811
) -> None:
    repo_id = api.create_repo("test-user/flaky-lfs").repo_id
    payload = os.urandom(256 * 1024)
    rule = hub_server.fail_next("PUT", r"^/_lfs/", times=1)
    api.upload_file(path_or_fileobj=payload, path_in_repo="model.onnx", repo_id=repo_id)
    assert rule.hits == 1
    assert hub_server.count_requests("PUT", r"^/_lfs/") == 2
    assert download(repo_id, "model.onnx").read_bytes() == payload


def test_injected_resets_stalls_and_truncated_bodies(
    api: HfApi, hub_server: HubServer, download: Callable[..., Path]  # noqa: F811
) -> None:
    """What the client sees of each connection-level fault (errors of its httpx: ``httpx`` in huggingface_hub
    1.x, ``httpx2`` in 2.x), and that the server carries on afterwards."""
    httpx = client_httpx()
    repo_id = api.create_repo("test-user/rough-network").repo_id
    payload = os.urandom(300 * 1024)
    api.upload_file(path_or_fileobj=payload, path_in_repo="model.onnx", repo_id=repo_id)
    info = rf"^/api/models/{repo_id}$"
    file = r"/resolve/[^/]+/model\.onnx$"

    hub_server.reset_next("GET", info)  # a RST, no answer: model_info is sent once, so the client raises
    with pytest.raises(httpx.NetworkError, match="reset by peer"):
        api.model_info(repo_id)
    rule = hub_server.stall_next("GET", info, seconds=5)  # nothing sent: the client's timeout ends the wait
    with pytest.raises(httpx.ReadTimeout):
        api.model_info(repo_id, timeout=0.3)
    assert rule.hits == 1 and api.model_info(repo_id).sha  # the next request is served

    hub_server.reset_next("GET", file, keep=1000)  # a RST after 1000 bytes of the body
    with pytest.raises(httpx.NetworkError, match="reset by peer"):
        download(repo_id, "model.onnx")
    hub_server.clear_requests()
    rule = hub_server.truncate_next("GET", file, keep=2000)  # Content-Length promises more; 2000 bytes, closed
    assert download(repo_id, "model.onnx").read_bytes() == payload  # the client resumes the body that ended early
    assert rule.hits == 1 and hub_server.count_requests("GET", file) == 2
    faults = [(r.method, r.status, r.fault_action) for r in hub_server.request_records if r.fault]
    assert faults == [("GET", 200, "truncate")]
    with pytest.raises(ValueError, match="between 0 and"):
        hub_server.stall_next("GET", info, seconds=10_000)


def test_fault_after_commit_then_retry_is_a_client_side_noop(api: HfApi, hub_server: HubServer) -> None:
    repo_id = api.create_repo("test-user/lost-answer").repo_id
    hub_server.fail_next("POST", r"/commit/", after=True)
    with pytest.raises(HfHubHTTPError):
        upload_text(api, repo_id, "config.json", "{}")
    landed = api.model_info(repo_id).sha
    assert api.list_repo_files(repo_id) == [".gitattributes", "config.json"]

    retry = upload_text(api, repo_id, "config.json", "{}")  # unchanged file: pre-upload oid matches
    assert retry.oid == landed
    assert hub_server.count_requests("POST", r"/commit/") == 1
    assert len(api.list_repo_commits(repo_id)) == 2


def test_commits_with_another_default_endpoint(api: HfApi, hub_endpoint: str,  # noqa: F811
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Documents the client trap of early 1.x releases (and 0.x): ``CommitInfo`` parses the commit URL against
    ``constants.ENDPOINT``, not ``HfApi.endpoint``, so a commit lands and then raises. Releases whose
    ``CommitInfo`` takes the ``HfApi``'s endpoint (``_endpoint``) commit without the patch."""
    import dataclasses

    from huggingface_hub import CommitInfo

    repo_id = api.create_repo("test-user/trap").repo_id
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")  # as if HF_ENDPOINT were unset
    if "_endpoint" in {field.name for field in dataclasses.fields(CommitInfo)}:
        landed = upload_text(api, repo_id, "config.json", "{}")
        assert landed.commit_url == f"{hub_endpoint}/{repo_id}/commit/{landed.oid}"
        assert landed.repo_url.repo_id == repo_id and landed.repo_url.endpoint == hub_endpoint
        again = upload_text(api, repo_id, "config.json", "{}")  # the no-op path builds the URL itself
        assert again.oid == landed.oid and again.repo_url.repo_id == repo_id
    else:
        with pytest.raises(ValueError, match="Unable to retrieve user and repo ID"):
            upload_text(api, repo_id, "config.json", "{}")  # a real commit: it lands, then the client raises
        with pytest.raises(ValueError, match="Unable to retrieve user and repo ID"):
            upload_text(api, repo_id, "config.json", "{}")  # the no-op path fails the same way
    assert api.list_repo_files(repo_id) == [".gitattributes", "config.json"]


def test_no_xet_here_and_the_client_has_no_fallback(api: HfApi, hub_server: HubServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The server has no Xet storage: its Xet token routes answer 404. With ``hf_xet`` installed and Xet not
    disabled, the client uploads through Xet and fails (no fallback to LFS), committing nothing; with Xet
    disabled (what the fixture does) the same upload goes through LFS."""
    pytest.importorskip("hf_xet")
    from huggingface_hub.utils import build_hf_headers, get_session

    repo_id = api.create_repo("test-user/no-xet").repo_id
    for access in ("write", "read"):
        answer = get_session().get(f"{hub_server.url}/api/models/{repo_id}/xet-{access}-token/main",
                                   headers=build_hf_headers(token=HUB_TOKEN))
        assert answer.status_code == 404 and "X-Xet-Cas-Url" not in answer.headers
    head = api.model_info(repo_id).sha
    payload = os.urandom(256 * 1024)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    hub_server.clear_requests()
    with pytest.raises(Exception, match="404") as failed:  # hf_xet's own error (a ConnectionError in 1.x and 2.x)
        api.upload_file(path_or_fileobj=payload, path_in_repo="model.onnx", repo_id=repo_id)
    assert "xet-write-token" in str(failed.value)
    assert hub_server.count_requests("GET", r"/xet-write-token/main$") >= 1
    assert hub_server.count_requests("PUT", r"^/_lfs/") == 0 and api.model_info(repo_id).sha == head

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    hub_server.clear_requests()
    api.upload_file(path_or_fileobj=payload, path_in_repo="model.onnx", repo_id=repo_id)
    assert hub_server.count_requests("PUT", r"^/_lfs/") == 1 and hub_server.count_requests("*", r"/xet-") == 0


def test_state_survives_restart(
    api: HfApi, hub_server: HubServer, download: Callable[..., Path]  # noqa: F811
) -> None:
    repo_id = api.create_repo("test-user/durable", private=True).repo_id
    commit = upload_text(api, repo_id, "config.json", "kept")
    api.create_tag(repo_id, tag="v1")
    hub_server.stop()
    with HubServer(root=hub_server.root, token=HUB_TOKEN) as restarted:
        again = HfApi(endpoint=restarted.url, token=HUB_TOKEN)
        assert again.model_info(repo_id).sha == commit.oid and again.model_info(repo_id).private
        assert download(repo_id, "config.json", revision="v1", endpoint=restarted.url).read_text() == "kept"


def test_copy_and_paths_info(api: HfApi) -> None:
    repo_id = api.create_repo("test-user/copies").repo_id
    api.create_commit(
        repo_id,
        [CommitOperationAdd("w.safetensors", os.urandom(1024)), CommitOperationAdd("notes/a.md", b"hello")],
        commit_message="add",
    )
    infos = {info.path: info for info in api.get_paths_info(repo_id, ["w.safetensors", "notes", "missing"])}
    assert set(infos) == {"w.safetensors", "notes"}
    assert infos["w.safetensors"].lfs is not None
    top = sorted(entry.path for entry in api.list_repo_tree(repo_id))
    assert top == [".gitattributes", "notes", "w.safetensors"]
    assert [entry.path for entry in api.list_repo_tree(repo_id, path_in_repo="notes")] == ["notes/a.md"]
