"""``exporter push`` against the local Hub server, driven by the real huggingface_hub client.

One tiny BERT artifact (ONNX and OpenVINO, transformer and sentence graphs) is built and validated by the
real validator (``exporter.build``: parity of the exported variants against the torch model) once per
session and copied for each test. Tests that need a failed verdict validate the copy again with thresholds
it cannot meet (bit-exact parity), so every verdict a test sees was reached by ``exporter.validate``.

Most tests pass ``endpoint=`` (fixture ``hub_url``: the client's default endpoint is left alone, as for a
user without ``HF_ENDPOINT``); only code that takes no endpoint (sentence-transformers, the card's
snippets) runs under ``hub_endpoint``, which points the client's defaults at the server.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SENTENCE_TRANSFORMERS_ONNX, cosine, write_recipe
from hub_fixtures import HUB_TOKEN, allow_hub_requests, client_httpx, hub_url_fixture  # noqa: F401 - hub_url
from hub_server import HubServer
from huggingface_hub import HfApi, ModelCard, constants, snapshot_download

import exporter
from exporter.artifact.integrity import list_files
from exporter.artifact.manifest import write_manifest
from exporter.cli import main
from exporter.errors import (
    BadInputError,
    HubAuthError,
    HubError,
    NotFoundOnHubError,
    NotValidatedError,
)
from exporter.publish.card import ONNX_LOADER_NOTE
from exporter.validators import Thresholds, record_results

RECIPE = """\
name: tiny-push
model:
  id: test-org/tiny-bert
  path: {model}
variants:
  - {{backend: onnx}}
  - {{backend: onnx, graph: sentence}}
  - {{backend: openvino}}
  - {{backend: openvino, graph: sentence}}
"""
# What no exported variant reaches: bit-exact parity with the torch model.
BIT_EXACT = Thresholds(cosine_min=1.0, cosine_mean=1.0, neighbour_overlap=1.0, spearman=1.0)


# ------------------------------------------------------------------------------------------ helpers


def build_validated(workdir: Path, model_dir: Path) -> Path:
    """Build the recipe with validation (the real validator records each variant's verdict)."""
    recipe = write_recipe(workdir, RECIPE.format(model=model_dir))
    result = exporter.build(recipe, output=workdir / "artifact", validate=True)
    assert result.report is not None and result.report.passed, result.report and result.report.failures()
    return result.output


def revalidate(folder: Path, source: Path, *, failing: set[str] = frozenset(), unvalidated: set[str] = frozenset()):
    """Validate ``folder`` again with ``exporter.validate`` and record the verdicts: the variants in ``failing``
    are held to ``BIT_EXACT`` (so they fail), the others to their own thresholds. The variants in
    ``unvalidated`` then lose their verdict, like a variant added after validation. Returns the manifest."""
    report = exporter.validate(folder, source_dir=source,
                               thresholds_for=lambda variant: BIT_EXACT if variant.name in failing else None)
    assert {v.name for v in report.variants if not v.passed} == set(failing), report.failures()
    record_results(folder, report)
    manifest = exporter.read_manifest(folder)
    for name in unvalidated:
        manifest.variant(name).parity = None
    write_manifest(folder, manifest)
    return exporter.read_manifest(folder)


def licensed_copy(model_dir: Path, target: Path, license_: str = "apache-2.0") -> Path:
    """A copy of a tiny model whose README front matter declares a license."""
    shutil.copytree(model_dir, target)
    readme = target / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8").replace("---\n", f"---\nlicense: {license_}\n", 1),
                      encoding="utf-8")
    return target


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listed(manifest) -> dict[str, str]:
    """Every file the manifest lists, with its sha256."""
    return {path: entry.sha256 for path, entry in manifest.entries().items()}


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, ["push", *args], env=env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def commits(api: HfApi, repo_id: str, revision: str = "main") -> int:
    return len(api.list_repo_commits(repo_id, revision=revision))


_BUILT: dict[str, tuple[Path, Path]] = {}


def validated_artifact(tiny_model, tmp_path_factory) -> tuple[Path, Path]:
    """(source model with a license, built and validated artifact), made once per session and shared by
    test_push and test_card; tests work on copies (push writes README.md and the manifest)."""
    if "bert" not in _BUILT:
        source = licensed_copy(tiny_model("bert"), tmp_path_factory.mktemp("licensed") / "model")
        _BUILT["bert"] = source, build_validated(tmp_path_factory.mktemp("validated-artifact"), source)
    return _BUILT["bert"]


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def source_model(tiny_model, tmp_path_factory) -> Path:
    return validated_artifact(tiny_model, tmp_path_factory)[0]


@pytest.fixture(scope="module")
def artifact(tiny_model, tmp_path_factory) -> Path:
    return validated_artifact(tiny_model, tmp_path_factory)[1]


@pytest.fixture
def folder(artifact, tmp_path) -> Path:
    return Path(shutil.copytree(artifact, tmp_path / "artifact"))


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr("exporter.hub.RETRY_DELAYS", (0.05, 0.1, 0.2))


@pytest.fixture
def api(hub_url) -> HfApi:
    return HfApi(endpoint=hub_url, token=HUB_TOKEN)


# ------------------------------------------------------------------------------------------ tests


def test_push_then_snapshot_matches_manifest_and_repush_is_a_noop(folder, hub_server, hub_url, api, tmp_path):
    repo_id = "test-user/tiny-push"
    assert constants.ENDPOINT != hub_url  # only --endpoint points the client at the server
    result = invoke(str(folder), "--repo-id", repo_id, "--endpoint", hub_url, "--token", HUB_TOKEN,
                    "--tag", "v1.0", "--json")
    assert result.exit_code == 0, (result.output, result.stderr)
    pushed = json.loads(result.stdout)
    manifest = exporter.read_manifest(folder)
    assert all(variant.validated for variant in manifest.variants)  # the validator's verdicts, all passed
    assert pushed["created_commit"] is True and pushed["files"] == len(listed(manifest)) + 1
    assert pushed["commit_url"] == f"{hub_url}/{repo_id}/commit/{pushed['commit_oid']}"
    assert pushed["tag"] == "v1.0" and pushed["tag_created"] is True
    assert pushed["verified"] is True and pushed["verified_variants"] == manifest.variant_names  # re-run first
    assert hub_server.count_requests("POST", r"/commit/") == 1  # one commit for everything
    assert hub_server.count_requests("PUT", r"^/_lfs/") >= 4  # the graphs went through LFS
    assert api.model_info(repo_id).sha == pushed["commit_oid"]
    assert [(t.name, t.target_commit) for t in api.list_repo_refs(repo_id).tags] == [("v1.0", pushed["commit_oid"])]

    # every file listed (README.md included) and every listed file on the Hub with the manifest's sha256
    assert set(list_files(folder)) == set(listed(manifest))
    local = Path(snapshot_download(repo_id, endpoint=hub_url, cache_dir=tmp_path / "cache"))
    downloaded = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert downloaded == set(listed(manifest)) | {"manifest.json", ".gitattributes"}
    for path, sha256 in listed(manifest).items():
        assert sha256_of(local / path) == sha256, path
    assert (local / "manifest.json").read_bytes() == (folder / "manifest.json").read_bytes()
    assert exporter.read_manifest(local) == manifest
    tree = {entry.path: entry for entry in api.list_repo_tree(repo_id, recursive=True) if hasattr(entry, "lfs")}
    assert tree["onnx/model.onnx"].lfs is not None and tree["openvino/openvino_model.bin"].lfs is not None

    card = ModelCard.load(local / "README.md")
    assert card.data.base_model == "test-org/tiny-bert" and card.data.license == "apache-2.0"
    assert card.data.library_name == "sentence-transformers" and card.data.pipeline_tag == "sentence-similarity"
    assert {"onnx", "openvino", "sentence-transformers"} <= set(card.data.tags)
    assert api.model_info(repo_id).card_data.library_name == "sentence-transformers"

    # identical again: no commit call, no new commit, and it says so
    hub_server.clear_requests()
    again = invoke(str(folder), "--repo-id", repo_id, "--endpoint", hub_url, "--token", HUB_TOKEN, "--tag", "v1.0")
    assert again.exit_code == 0, (again.output, again.stderr)
    assert "No changes" in again.stdout and "no new commit" in again.stdout
    assert pushed["commit_oid"][:12] in again.stdout
    assert hub_server.count_requests("POST", r"/commit/") == 0
    assert hub_server.count_requests("PUT", r"^/_lfs/") == 0
    assert commits(api, repo_id) == 2  # the repo's initial commit and ours


def test_a_bench_chart_is_pushed_and_the_card_shows_it(folder, hub_server, hub_url, api, tmp_path):
    """bench --plot leaves bench.png beside bench.json, listed in the manifest: push uploads it with the rest,
    and the card embeds it (with bench.json's CPU in its note)."""
    result = exporter.bench(folder, num_texts=8, batch_size=4, rounds=1, warmup_rounds=0, latency_count=0,
                            threads=1, measure_memory=False, length_classes=["short"], plot=tmp_path / "chart.png")
    assert result.chart_file == tmp_path / "chart.png" and (folder / "bench.png").is_file()
    repo_id = "test-user/tiny-chart"
    pushed = exporter.push(folder, repo_id, endpoint=hub_url, token=HUB_TOKEN)
    local = Path(snapshot_download(repo_id, endpoint=hub_url, cache_dir=tmp_path / "cache"))
    assert (local / "bench.png").read_bytes() == (folder / "bench.png").read_bytes() == result.chart_file.read_bytes()
    assert exporter.read_manifest(local).entries()["bench.png"].sha256 == sha256_of(folder / "bench.png")
    card = (local / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^!\[Speed against accuracy[^\]]*\]\(bench\.png\)$", card, re.MULTILINE), card
    assert json.loads((folder / "bench.json").read_text())["host"]["cpu"] in card
    assert pushed.created_commit

    # a deploy host's fetch leaves the chart out, as it leaves bench.json out: documentation, not the model
    fetched = exporter.fetch_variant(repo_id, endpoint=hub_url, token=HUB_TOKEN, cache_dir=tmp_path / "fetch-cache")
    assert "bench.png" in fetched.skipped and not (fetched.path / "bench.png").exists()


def test_sentence_transformers_and_card_snippets_load_pushed_variants(folder, source_model, hub_endpoint, tmp_path,
                                                                      monkeypatch):
    import transformers.utils.hub
    from sentence_transformers import SentenceTransformer

    repo_id = "test-user/tiny-load"
    exporter.push(folder, repo_id, endpoint=hub_endpoint, token=HUB_TOKEN)
    # conftest sets HF_HUB_OFFLINE=1 before transformers is imported; transformers 4.x copied it at import time
    # (transformers 5.x asks huggingface_hub.is_offline_mode(), which the fixture has switched off)
    if hasattr(transformers.utils.hub, "_is_offline_mode"):
        monkeypatch.setattr(transformers.utils.hub, "_is_offline_mode", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # snippets download into an empty cache
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    reference = SentenceTransformer(str(source_model), device="cpu")
    expected = reference.encode(["first text", "second text"])
    manifest = exporter.read_manifest(folder)
    for variant in manifest.variants:
        if variant.graph != "transformer" or (variant.backend == "onnx" and not SENTENCE_TRANSFORMERS_ONNX):
            continue  # ONNX through sentence-transformers needs 5.7 with optimum-onnx: compat/check_st57.sh
        model = SentenceTransformer(repo_id, backend=variant.backend, device="cpu",
                                    cache_folder=str(tmp_path / "st-cache"),
                                    model_kwargs={"file_name": variant.file_name})
        assert cosine(model.encode(["first text", "second text"]), expected).min() >= 0.9999, variant.name

    # every snippet of the card (sentence-transformers and plain runtimes) runs against the Hub
    card = (folder / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"### `([^`]+)` \([^)]*\)\n\n.*?\n\n```python\n(.*?)```", card, re.DOTALL)
    assert [name for name, _ in blocks] == manifest.variant_names
    for name, source in blocks:
        assert repo_id in source
        if ONNX_LOADER_NOTE in source and not SENTENCE_TRANSFORMERS_ONNX:
            source = source.split(ONNX_LOADER_NOTE)[0]  # the deploy runtime's part; compat/ checks the rest
        namespace: dict = {}
        exec(compile(source, f"<card snippet {name}>", "exec"), namespace)  # noqa: S102 - our own card
        assert cosine(np.asarray(namespace["embeddings"]), expected).min() >= 0.9999, name


def test_private_repo_without_token_is_refused(folder, hub_server, hub_url):
    result = invoke(str(folder), "--repo-id", "test-user/secret", "--private", "--endpoint", hub_url)
    assert result.exit_code == 2, (result.output, result.stderr)
    assert "no Hub token" in result.stderr and "private" in result.stderr
    assert hub_server.requests == []


def test_wrong_token_is_exit_2_and_never_printed(folder, hub_server, hub_url):
    secret = "hf_wrongTOKEN_7f3a9c_distinctive"
    result = invoke(str(folder), "--repo-id", "test-user/nope", "--endpoint", hub_url, "--token", secret)
    assert result.exit_code == 2, (result.output, result.stderr)
    errors = [line for line in result.stderr.strip().splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "rejected the token" in errors[0] and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    assert secret not in result.output and secret not in result.stderr
    assert "7f3a9c" not in result.output + result.stderr
    with pytest.raises(HubAuthError, match="rejected the token") as raised:  # the library's error, by what went wrong
        exporter.push(folder, "test-user/nope", endpoint=hub_url, token=secret)
    assert "7f3a9c" not in str(raised.value) and "--" not in str(raised.value)


@pytest.mark.parametrize("after", [False, True], ids=["commit-not-landed", "commit-landed-answer-lost"])
def test_503_on_commit_is_retried_once_landed_check_first(folder, hub_server, hub_url, api, after):
    repo_id = f"test-user/flaky-{int(after)}"
    rule = hub_server.fail_next("POST", r"/commit/", after=after)
    result = exporter.push(folder, repo_id, endpoint=hub_url, token=HUB_TOKEN)
    assert rule.hits == 1
    assert result.created_commit and result.commit_oid == api.model_info(repo_id).sha
    assert commits(api, repo_id) == 2  # the initial commit and exactly one of ours
    assert hub_server.count_requests("POST", r"/commit/") == (1 if after else 2)
    assert api.list_repo_commits(repo_id)[0].commit_id == result.commit_oid


def test_503_on_lfs_upload_is_retried(folder, hub_server, hub_url, api, tmp_path):
    repo_id = "test-user/flaky-lfs"
    rule = hub_server.fail_next("PUT", r"^/_lfs/", times=1)
    result = exporter.push(folder, repo_id, endpoint=hub_url, token=HUB_TOKEN)
    assert rule.hits == 1 and result.created_commit
    assert commits(api, repo_id) == 2
    local = Path(snapshot_download(repo_id, endpoint=hub_url, cache_dir=tmp_path / "cache"))
    for path, sha256 in listed(exporter.read_manifest(folder)).items():
        assert sha256_of(local / path) == sha256, path


def test_pr_whose_answer_was_lost_is_opened_once(folder, hub_server, hub_url, api):
    repo_id = "test-user/flaky-pr"
    hub_server.fail_next("POST", r"/commit/", after=True)
    result = exporter.push(folder, repo_id, create_pr=True, endpoint=hub_url, token=HUB_TOKEN)
    prs = api.list_repo_refs(repo_id, include_pull_requests=True).pull_requests
    assert [(ref.ref, ref.target_commit) for ref in prs] == [("refs/pr/1", result.commit_oid)]
    assert result.pr_url == f"{hub_url}/{repo_id}/discussions/1" and result.pr_ref == "refs/pr/1"
    assert hub_server.count_requests("POST", r"/commit/") == 1


def test_unreachable_hub_is_exit_3(folder, hub_url):
    dead = f"http://127.0.0.1:{free_port()}"
    result = invoke(str(folder), "--repo-id", "test-user/x", "--endpoint", dead, "--token", HUB_TOKEN)
    assert result.exit_code == 3, (result.output, result.stderr)
    assert "cannot reach the Hub" in result.stderr and dead in result.stderr and "(4 attempts)" in result.stderr
    assert HUB_TOKEN not in result.stderr
    with pytest.raises(HubError, match="cannot reach the Hub") as raised:
        exporter.push(folder, "test-user/x", endpoint=dead, token=HUB_TOKEN)
    assert raised.value.status is None and raised.value.exit_code == 3


@pytest.mark.parametrize("verdict", ["missing", "failed"])
def test_unvalidated_or_failed_variants_are_refused(folder, source_model, hub_server, hub_url, verdict):
    names = ["onnx-fp32-sentence", "openvino-fp32-sentence"] if verdict == "missing" else ["openvino-fp32"]
    manifest = revalidate(folder, source_model, failing=set(names) if verdict == "failed" else set(),
                          unvalidated=set(names) if verdict == "missing" else set())
    assert [v.name for v in manifest.variants if not v.validated] == names

    def state() -> dict[str, str]:
        return {path: sha256_of(folder / path) for path in [*list_files(folder), "manifest.json"]}

    before = state()
    result = invoke(str(folder), "--repo-id", "test-user/refused", "--endpoint", hub_url, "--token", HUB_TOKEN)
    assert result.exit_code == 1, (result.output, result.stderr)
    for name in names:
        assert name in result.stderr
    assert ("not validated" if verdict == "missing" else "failed validation") in result.stderr
    with pytest.raises(NotValidatedError) as raised:
        exporter.push(folder, "test-user/refused", endpoint=hub_url, token=HUB_TOKEN)
    assert raised.value.variants == names
    assert hub_server.requests == []  # nothing pushed, nothing asked
    assert before == state()


def test_changed_or_unlisted_files_are_refused(folder, hub_server, hub_url):
    (folder / "notes.txt").write_text("stray")
    result = invoke(str(folder), "--repo-id", "test-user/x", "--endpoint", hub_url, "--token", HUB_TOKEN)
    assert result.exit_code == 1 and "not listed in manifest.json: notes.txt" in result.stderr
    (folder / "notes.txt").unlink()
    config = folder / "config.json"
    data = config.read_bytes()
    config.write_bytes(data[:-1] + (b" " if data[-1:] != b" " else b"\n"))  # same size, other content
    result = invoke(str(folder), "--repo-id", "test-user/x", "--endpoint", hub_url, "--token", HUB_TOKEN)
    assert result.exit_code == 1 and "sha256 differs" in result.stderr and "config.json" in result.stderr
    assert hub_server.count_requests("POST", r"/commit/") == 0


def test_create_pr_opens_a_pr_and_leaves_main(folder, hub_server, hub_url, api):
    repo_id = "test-user/pr"
    result = invoke(str(folder), "--repo-id", repo_id, "--create-pr", "--endpoint", hub_url, "--token", HUB_TOKEN)
    assert result.exit_code == 0, (result.output, result.stderr)
    assert f"{hub_url}/{repo_id}/discussions/1" in result.stdout and "refs/pr/1" in result.stdout
    assert api.list_repo_files(repo_id) == [".gitattributes"]  # main untouched
    assert "manifest.json" in api.list_repo_files(repo_id, revision="refs/pr/1")
    assert [ref.ref for ref in api.list_repo_refs(repo_id, include_pull_requests=True).pull_requests] == ["refs/pr/1"]
    with pytest.raises(BadInputError, match=r"tag= and create_pr=True"):  # messages name parameters
        exporter.push(folder, repo_id, create_pr=True, tag="v1", endpoint=hub_url, token=HUB_TOKEN)
    with pytest.raises(NotFoundOnHubError, match=r"revision='refs/pr/9': no such pull request") as raised:
        exporter.push(folder, repo_id, revision="refs/pr/9", endpoint=hub_url, token=HUB_TOKEN)
    assert (raised.value.repo_id, raised.value.revision) == (repo_id, "refs/pr/9")


def test_publish_defaults_branch_and_stale_files(folder, hub_server, hub_url, api):
    """publish: from the recipe sets the defaults; a re-push deletes files the folder no longer has."""
    manifest = exporter.read_manifest(folder)
    manifest.publish = {"repo_id": "test-user/from-recipe", "private": True, "tag": "v1"}
    write_manifest(folder, manifest)
    first = exporter.push(folder, endpoint=hub_url, token=HUB_TOKEN)
    assert first.repo_id == "test-user/from-recipe" and first.tag_created
    assert api.model_info("test-user/from-recipe").private is True
    assert HfApi(endpoint=hub_url, token=False).repo_exists("test-user/from-recipe") is False

    # drop a variant (its files and its entry), push to a new branch without tag
    manifest = exporter.read_manifest(folder)
    *kept, dropped = manifest.variants
    manifest.variants = kept
    for entry in dropped.files:
        (folder / entry.path).unlink()
    manifest.publish = {key: value for key, value in manifest.publish.items() if key != "tag"}
    write_manifest(folder, manifest)
    second = exporter.push(folder, revision="dev", endpoint=hub_url, token=HUB_TOKEN)
    assert second.created_commit and second.revision == "dev"
    assert second.deleted == sorted(entry.path for entry in dropped.files)
    dev_files = set(api.list_repo_files("test-user/from-recipe", revision="dev"))
    assert dev_files == set(listed(exporter.read_manifest(folder))) | {"manifest.json", ".gitattributes"}
    assert dropped.file_name in api.list_repo_files("test-user/from-recipe")  # main keeps it
    # a tag is never moved
    with pytest.raises(BadInputError, match="already exists") as raised:
        exporter.push(folder, revision="dev", tag="v1", endpoint=hub_url, token=HUB_TOKEN)
    assert "choose another tag" in str(raised.value)


def test_push_with_hf_xet_installed_goes_through_lfs_on_a_hub_without_xet(folder, hub_server, hub_url, api,
                                                                          monkeypatch, tmp_path):
    """huggingface_hub uploads through Xet whenever hf_xet is installed, with no fallback; this server has no
    Xet (its Xet token route answers 404). The push asks first, uploads through LFS, and leaves the client's
    Xet switch as it found it."""
    pytest.importorskip("hf_xet")
    from huggingface_hub.utils._runtime import is_xet_available

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)  # a default install: the client would use Xet
    monkeypatch.delenv("HF_HUB_DISABLE_XET", raising=False)
    assert is_xet_available()
    repo_id = "test-user/lfs-only"
    result = exporter.push(folder, repo_id, endpoint=hub_url, token=HUB_TOKEN, verify=False)
    assert result.created_commit and api.model_info(repo_id).sha == result.commit_oid
    assert constants.HF_HUB_DISABLE_XET is False and is_xet_available()  # restored after the push

    asked = [r for r in hub_server.request_records if "/xet-" in r.path]
    assert [(r.method, r.path, r.status) for r in asked] == [("GET", f"/api/models/{repo_id}/xet-write-token/main",
                                                              404)]  # asked once, before uploading: no Xet here
    manifest = exporter.read_manifest(folder)
    tree = {entry.path: entry for entry in api.list_repo_tree(repo_id, recursive=True) if hasattr(entry, "lfs")}
    lfs = sorted(path for path, entry in tree.items() if entry.lfs is not None)
    assert "onnx/model.onnx" in lfs and "openvino/openvino_model.bin" in lfs
    assert hub_server.count_requests("POST", r"\.git/info/lfs/objects/batch$") >= 1
    assert hub_server.count_requests("PUT", r"^/_lfs/") == len(lfs)  # every LFS file went up through LFS
    local = Path(snapshot_download(repo_id, endpoint=hub_url, cache_dir=tmp_path / "cache"))
    for path, sha256 in listed(manifest).items():
        assert sha256_of(local / path) == sha256, path
    assert tree["onnx/model.onnx"].lfs.sha256 == listed(manifest)["onnx/model.onnx"]

    # a pull request asks for the base branch's Xet access with create_pr, as the client would
    hub_server.clear_requests()
    manifest.publish = {**manifest.publish, "commit_message": "proposal"}
    write_manifest(folder, manifest)
    proposed = exporter.push(folder, repo_id, create_pr=True, endpoint=hub_url, token=HUB_TOKEN, verify=False)
    assert proposed.pr_ref == "refs/pr/1" and constants.HF_HUB_DISABLE_XET is False
    asked = [(r.path, r.query, r.status) for r in hub_server.request_records if "/xet-" in r.path]
    assert asked == [(f"/api/models/{repo_id}/xet-write-token/main", "create_pr=1", 404)]


def test_endpoint_argument_works_without_hf_endpoint(folder, hub_url, monkeypatch):
    """A user passing endpoint= with HF_ENDPOINT unset: the client's import-time ENDPOINT is another URL."""
    import contextlib

    default = constants.ENDPOINT
    assert default != hub_url
    result = exporter.push(folder, "test-user/no-env", endpoint=hub_url, token=HUB_TOKEN)
    assert result.created_commit and result.commit_url.startswith(hub_url + "/test-user/no-env/commit/")
    assert constants.ENDPOINT == default  # restored
    again = exporter.push(folder, "test-user/no-env", endpoint=hub_url, token=HUB_TOKEN)
    assert not again.created_commit and again.commit_oid == result.commit_oid

    # even if the endpoint could not be pointed (the client then raises after the commit landed),
    # the push finds its commit instead of failing or committing twice
    monkeypatch.setattr("exporter.hub.client_endpoint", lambda endpoint: contextlib.nullcontext())
    manifest = exporter.read_manifest(folder)
    manifest.publish = {**manifest.publish, "commit_message": "second"}
    write_manifest(folder, manifest)
    trapped = exporter.push(folder, "test-user/no-env", endpoint=hub_url, token=HUB_TOKEN)
    assert trapped.created_commit and trapped.commit_oid != result.commit_oid
    api = HfApi(endpoint=hub_url, token=HUB_TOKEN)
    assert len(api.list_repo_commits("test-user/no-env")) == 3
    assert api.model_info("test-user/no-env").sha == trapped.commit_oid


def test_token_never_written_or_printed(folder, tmp_path_factory, monkeypatch, caplog):
    """A distinctive token: absent from output, logs, the result, the folder and everything the Hub stored."""
    import logging

    from huggingface_hub.utils import close_session

    secret = "hf_SECRETtoken_9b1e77_do_not_print"
    root = tmp_path_factory.mktemp("secret-hub")
    caplog.set_level(logging.DEBUG)
    with HubServer(root=root, token=secret) as server:
        allow_hub_requests(monkeypatch, tmp_path_factory.mktemp("tok") / "token")
        try:
            server.fail_next("POST", r"/commit/", after=True)  # exercise the retry messages too
            monkeypatch.setenv("HF_TOKEN", secret)  # the default token source
            outputs = []
            for args in (["--private", "--tag", "v1"], ["--json"], ["--token", secret + "x"]):
                result = invoke(str(folder), "--repo-id", "test-user/secret", "--endpoint", server.url, *args)
                outputs.append((result.exit_code, result.stdout + result.stderr))
            manifest = exporter.read_manifest(folder)
            manifest.publish = {**manifest.publish, "commit_message": "again"}  # a new commit, through the API
            write_manifest(folder, manifest)
            pushed = exporter.push(folder, "test-user/secret", endpoint=server.url)
        finally:
            monkeypatch.undo()
            close_session()  # a session built while HF_HUB_OFFLINE was off must not outlive the test
    assert [code for code, _ in outputs] == [0, 0, 2], outputs
    assert pushed.created_commit
    first, wrong = (" ".join(text.split()) for text in (outputs[0][1], outputs[2][1]))  # rich wraps at 80 columns
    assert "checking whether the commit landed" in first and "rejected the token" in wrong
    reported = json.dumps(pushed.to_dict()) + "\n".join(pushed.lines())
    assert "9b1e77" not in reported
    written = "".join(text for _, text in outputs) + caplog.text
    for path in [*folder.rglob("*"), *root.rglob("*")]:
        if path.is_file():
            written += path.read_bytes().decode("utf-8", "replace")
    assert "9b1e77" not in written


# ------------------------------------------------------------------------------------------ exporter.hub


def _http_error(status: int, message: str = "boom"):
    """The client's error for an answer with ``status`` (a response of the client's own httpx)."""
    from huggingface_hub.errors import HfHubHTTPError

    httpx = client_httpx()
    response = httpx.Response(status, request=httpx.Request("GET", "http://hub/api/models/o/n"))
    return HfHubHTTPError(message, response=response)


def test_hub_errors_map_by_what_went_wrong():
    from exporter.errors import IntegrityError
    from exporter.hub import check_endpoint, hub_error, retryable

    token = "hf_mapping_secret_1234"
    where = {"what": "reading o/n@main", "repo_id": "o/n", "endpoint": "http://hub", "token": token}
    busy = hub_error(_http_error(503, f"busy for {token}"), **where, attempts=4)
    assert isinstance(busy, HubError) and busy.status == 503 and busy.exit_code == 3
    assert str(busy) == "the Hub at http://hub answered HTTP 503 while reading o/n@main (4 attempts): busy for ***"
    assert retryable(_http_error(503)) and retryable(_http_error(429)) and not retryable(_http_error(404))
    rejected = hub_error(_http_error(401), **where)
    assert isinstance(rejected, HubAuthError) and "rejected the token" in str(rejected) and "token=" in str(rejected)
    assert isinstance(hub_error(_http_error(403), **where), HubAuthError)
    cut = hub_error(OSError("Consistency check failed: file should be of size 10 but has size 3"), **where)
    assert isinstance(cut, IntegrityError)
    with pytest.raises(BadInputError, match=r"^endpoint='ftp://x': expected an http\(s\) URL"):
        check_endpoint("ftp://x")


def _fake_httpx(name: str) -> types.ModuleType:
    """The exception tree of httpx, under ``name`` (httpx2, the fork of huggingface_hub 2.x, has the same)."""
    fake = types.ModuleType(name)
    fake.TransportError = type("TransportError", (Exception,), {})
    fake.NetworkError = type("NetworkError", (fake.TransportError,), {})
    fake.ConnectError = type("ConnectError", (fake.NetworkError,), {})
    fake.ReadError = type("ReadError", (fake.NetworkError,), {})
    fake.TimeoutException = type("TimeoutException", (fake.TransportError,), {})
    fake.ReadTimeout = type("ReadTimeout", (fake.TimeoutException,), {})
    fake.RemoteProtocolError = type("RemoteProtocolError", (fake.TransportError,), {})
    fake.UnsupportedProtocol = type("UnsupportedProtocol", (fake.TransportError,), {})
    return fake


@pytest.mark.parametrize("name", ["httpx", "httpx2"])
def test_connection_errors_of_httpx_and_httpx2_are_recognised(monkeypatch, name):
    """huggingface_hub 1.x raises httpx errors, 2.x those of its fork httpx2: each recognised once its module
    is loaded, and never imported for it (the client's own module is checked as it is, the other as a stand-in
    with the same exception tree)."""
    from exporter import hub

    if name in sys.modules:
        httpx = sys.modules[name]  # the client's: loaded by huggingface_hub
    else:
        httpx = _fake_httpx(name)
        assert not hub.is_connection_error(httpx.ConnectError("[Errno 111] Connection refused"))  # not loaded
        monkeypatch.setitem(sys.modules, name, httpx)
    assert hub.is_connection_error(httpx.ConnectError("[Errno 111] Connection refused"))
    assert hub.describe(httpx.ConnectError("[Errno 111] Connection refused")) == "connection refused"
    assert hub.describe(httpx.ReadError("[Errno 104] Connection reset by peer")) == "connection reset by peer"
    assert hub.retryable(httpx.ReadTimeout("timed out")) and hub.describe(httpx.ReadTimeout("read")) == "timed out"
    closed = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    assert hub.retryable(closed) and hub.describe(closed) == "the connection was closed without an answer"
    short = httpx.RemoteProtocolError("peer closed connection without sending complete message body (received 2000 "
                                      "bytes, expected 307200)")
    assert hub.retryable(short) and hub.cut_short(short) == (2000, 307200)
    assert not hub.is_connection_error(httpx.UnsupportedProtocol("ftp"))
    error = hub.hub_error(httpx.ConnectError("[Errno 111] Connection refused"), what="downloading x", repo_id="o/n",
                          endpoint="http://hub", attempts=4)
    assert isinstance(error, HubError)
    assert str(error) == "cannot reach the Hub at http://hub while downloading x (4 attempts): connection refused"


def test_exporter_never_imports_requests():
    """``requests`` is no dependency of huggingface_hub >= 1.0: a push or fetch must not need it."""
    import subprocess

    code = ("import sys; sys.modules['requests'] = None\n"  # importing it now raises ImportError
            "import exporter, exporter.hub, exporter.publish.push, exporter.deploy.fetch, exporter.cli\n"
            "from huggingface_hub import HfApi\n"
            "print('ok')")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert process.returncode == 0 and process.stdout.strip() == "ok", process.stderr[-2000:]
