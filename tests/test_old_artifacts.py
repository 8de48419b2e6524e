"""Old artifacts keep working: a folder built and pushed by release 0.1.0 still fetches, loads and checks.

``tests/fixtures/artifact-0.1.0`` was built by 0.1.0's own ``exporter run`` (commit f7fc79c, on its stack:
sentence-transformers 5.7, transformers 4.57, huggingface-hub 0.36) and pushed by its ``exporter push``, which
added the card (see tests/fixtures/README.md): manifest schema 1, 0.1.0's file names (``onnx/model.onnx``,
``openvino/openvino_model.xml``, ``openvino/openvino_model_int8_static.xml``) and the tokenizer files copied
unchanged from the model, so tokenizer.json truncates and pads to 128 tokens while ``max_seq_length`` is 256.

The folder is uploaded as it is with the real ``HfApi.upload_folder`` (as 0.1.0 left it on the Hub; our own
push would re-verify and rewrite it), then fetched with today's ``exporter fetch`` / ``exporter.load`` and held
to the reference 0.1.0 stored in ``parity/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hub_fixtures import HUB_TOKEN, allow_hub_requests, client_defaults_at
from hub_server import HubServer

import exporter
from exporter import read_manifest
from exporter.artifact.integrity import sha256_file
from exporter.cli import main

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "artifact-0.1.0"
REPO_ID = "test-user/tiny-0.1.0"
# 0.1.0's names: the plain fp32 transformer graphs on the sentence-transformers defaults, the rest suffixed.
FILE_NAMES = {
    "onnx-fp32": "onnx/model.onnx",
    "openvino-fp32": "openvino/openvino_model.xml",
    "openvino-int8-static": "openvino/openvino_model_int8_static.xml",
}
FP32 = ["onnx-fp32", "openvino-fp32"]
DIMENSION = 16
MAX_SEQ_LENGTH = 256


def _close_sessions() -> None:
    from huggingface_hub import utils

    (getattr(utils, "close_session", None) or utils.reset_sessions)()


def _texts() -> list[str]:
    lines = (FIXTURE / "parity" / "texts.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def fetch_cli(*args: str):
    return CliRunner().invoke(main, ["fetch", *args])


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A module-scoped local Hub holding the 0.1.0 folder at REPO_ID, uploaded unchanged with ``HfApi``."""
    from huggingface_hub import HfApi

    with HubServer(root=tmp_path_factory.mktemp("old-hub"), token=HUB_TOKEN) as server, \
            pytest.MonkeyPatch.context() as monkeypatch:
        token_path = tmp_path_factory.mktemp("old-token") / "token"
        allow_hub_requests(monkeypatch, token_path)
        with client_defaults_at(server.url, token_path):
            api = HfApi(endpoint=server.url, token=HUB_TOKEN)
            api.create_repo(REPO_ID)
            server.commit = api.upload_folder(folder_path=FIXTURE, repo_id=REPO_ID,
                                              commit_message="Upload the 0.1.0 artifact").oid
        allow_hub_requests(monkeypatch, token_path)  # client_defaults_at restored the offline switch
        yield server
    _close_sessions()


# ------------------------------------------------------------------------------------------ the fixture itself


def test_fixture_is_a_0_1_0_artifact():
    manifest = read_manifest(FIXTURE)
    data = json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))
    assert data["schema_version"] == 1 and data["tool"] == {"name": "embedding-exporter", "version": "0.1.0"}
    assert manifest.source.dimension == DIMENSION and manifest.source.max_seq_length == MAX_SEQ_LENGTH
    assert {v.name: v.file_name for v in manifest.variants} == FILE_NAMES
    assert all(v.validated for v in manifest.variants)
    # every file listed, with its sha256, and nothing else (the card 0.1.0's push added is listed too)
    listed = {e.path: e for e in manifest.entries().values()}
    on_disk = {p.relative_to(FIXTURE).as_posix() for p in FIXTURE.rglob("*") if p.is_file()}
    assert on_disk - {"manifest.json"} == set(listed) and "README.md" in listed
    for path, entry in listed.items():
        assert sha256_file(FIXTURE / path) == entry.sha256, path
    assert sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file()) < 1_000_000

    # 0.1.0's tokenizer files: truncation and fixed padding at 128, longer than that in max_seq_length
    tokenizer = json.loads((FIXTURE / "tokenizer.json").read_text(encoding="utf-8"))
    assert tokenizer["truncation"]["max_length"] == 128 and tokenizer["padding"]["strategy"] == {"Fixed": 128}
    from tokenizers import Tokenizer

    plain = Tokenizer.from_file(str(FIXTURE / "tokenizer.json"))
    plain.no_truncation()
    plain.no_padding()
    lengths = [len(plain.encode(text).ids) for text in _texts()]
    assert sum(128 < n for n in lengths) >= 20  # the reference covers texts the 128-token files would cut short
    assert np.load(FIXTURE / "parity" / "reference.npy").shape == (len(lengths), DIMENSION)


# ------------------------------------------------------------------------------------------ fetch, load, check


@pytest.mark.parametrize("variant", list(FILE_NAMES))
def test_fetch_from_the_hub(hub, tmp_path, variant):
    result = fetch_cli(REPO_ID, "--endpoint", hub.url, "--token", HUB_TOKEN, "--variant", variant,
                       "--cache-dir", str(tmp_path / "cache"), "--json", "-q")
    assert result.exit_code == 0, (result.output, result.stderr)
    fetched = json.loads(result.stdout)
    assert fetched["variant"] == variant and fetched["commit"] == hub.commit
    folder = Path(fetched["path"])
    manifest = read_manifest(folder)
    entries = manifest.entries()
    variant_files = {e.path for e in manifest.variant(variant).files}
    assert FILE_NAMES[variant] in variant_files and variant_files <= set(fetched["files"])
    for path in fetched["files"]:
        if path != "manifest.json":
            assert sha256_file(folder / path) == entries[path].sha256, path


def test_auto_choice_fetches_a_validated_variant(hub, tmp_path):
    result = fetch_cli(REPO_ID, "--endpoint", hub.url, "--token", HUB_TOKEN, "--cache-dir", str(tmp_path / "c"),
                       "--json", "-q")
    assert result.exit_code == 0, (result.output, result.stderr)
    assert json.loads(result.stdout)["variant"] in FILE_NAMES


@pytest.mark.parametrize("variant", list(FILE_NAMES))
def test_load_through_the_encoder_matches_the_stored_reference(hub, tmp_path, variant):
    model = exporter.load(REPO_ID, variant, endpoint=hub.url, token=HUB_TOKEN, cache_dir=tmp_path / "cache")
    assert isinstance(model, exporter.Encoder) and model.variant.name == variant
    assert model.dimension == DIMENSION and model.max_seq_length == MAX_SEQ_LENGTH  # not the tokenizer's 128
    pair = model.encode(["hello world", "a second, longer text"])
    assert pair.shape == (2, DIMENSION) and pair.dtype == np.float32 and np.isfinite(pair).all()
    assert model.encode("hello world").shape == (DIMENSION,)

    embeddings = model.encode(_texts())
    reference = np.load(FIXTURE / "parity" / "reference.npy")
    assert embeddings.shape == reference.shape
    cosines = _cosine(embeddings, reference)
    floor = 0.9999 if variant in FP32 else model.variant.validation_thresholds["cosine_min"]
    assert cosines.min() >= floor, (variant, float(cosines.min()))


@pytest.mark.parametrize("variant", list(FILE_NAMES))
def test_fetch_check_passes(hub, tmp_path, variant):
    result = fetch_cli(REPO_ID, "--endpoint", hub.url, "--token", HUB_TOKEN, "--variant", variant,
                       "--cache-dir", str(tmp_path / "cache"), "--check", "--json", "-q")
    assert result.exit_code == 0, (result.output, result.stderr)
    check = json.loads(result.stdout)["check"]
    assert check["passed"] is True and check["failures"] == []
    assert check["measured"]["cosine_min"] >= check["thresholds"]["cosine_min"]
    if variant in FP32:
        assert check["measured"]["cosine_min"] >= 0.9999


def test_local_copy_fetches_and_checks(tmp_path):
    """The folder as a user keeps it on disk (no Hub): verified in place, --check on the stored reference."""
    folder = Path(shutil.copytree(FIXTURE, tmp_path / "artifact-0.1.0"))
    result = fetch_cli(str(folder), "--variant", "onnx-fp32", "--check", "--json", "-q")
    assert result.exit_code == 0, (result.output, result.stderr)
    assert json.loads(result.stdout)["check"]["passed"] is True
    assert exporter.load_encoder(folder, "openvino-fp32").encode(["x"]).shape == (1, DIMENSION)
