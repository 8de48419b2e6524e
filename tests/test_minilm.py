"""Integration: the shipped recipes on the packaged all-MiniLM-L6-v2, real export and real inference."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import RECIPES, SENTENCE_TRANSFORMERS_ONNX, cosine, encode_transformer_variant, run_plain_runtime
from sentence_transformers import SentenceTransformer

from exporter import build, read_manifest
from exporter.artifact.integrity import list_files, sha256_file

TEXTS = ["backend choice check", "short text"]
VARIED = TEXTS + ["a", "naïve café 😀 日本語のテキスト", "def f(x):\n    return x ** 2  # 42", "word " * 400]


@pytest.fixture(scope="session")
def reference(minilm_dir):
    return SentenceTransformer(str(minilm_dir), device="cpu")


@pytest.fixture(scope="session", params=["minilm-onnx", "minilm-openvino"])
def built(request, tmp_path_factory):
    output = tmp_path_factory.mktemp("artifacts") / request.param
    result = build(RECIPES / f"{request.param}.yaml", output=output)
    # Shipped recipes pass parity validation with the default thresholds.
    assert result.report.passed, result.report.failures()
    return result.output


def test_every_file_is_in_the_manifest_with_its_checksum(built):
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert manifest["source"]["id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest["source"]["dimension"] == 384
    listed = {entry["path"]: entry for entry in manifest["shared_files"]}
    for variant in manifest["variants"]:
        listed.update({entry["path"]: entry for entry in variant["files"]})
    assert sorted(listed) == list_files(built)
    for relative, entry in listed.items():
        assert entry["sha256"] == sha256_file(built / relative)
        assert entry["size"] == (built / relative).stat().st_size
    shared = {entry["path"] for entry in manifest["shared_files"]}
    assert {"modules.json", "config.json", "tokenizer.json", "1_Pooling/config.json"} <= shared
    assert "model.safetensors" not in shared  # the graphs replace the torch weights


def test_transformer_variants_load_in_sentence_transformers(built, reference):
    manifest = read_manifest(built)
    expected = reference.encode(VARIED)
    transformer_variants = [v for v in manifest.variants if v.graph == "transformer" and v.precision == "fp32"]
    assert transformer_variants
    for variant in transformer_variants:
        embeddings = encode_transformer_variant(built, variant, TEXTS)
        assert embeddings.shape == (2, 384) and embeddings.dtype == np.float32
        assert cosine(embeddings, expected[:2]).min() >= 0.9999
        assert cosine(encode_transformer_variant(built, variant, VARIED), expected).min() >= 0.9999


def test_reduced_precision_variants_load_and_stay_close(built, reference):
    manifest = read_manifest(built)
    expected = reference.encode(TEXTS)
    minimum = {"fp16": 0.999, "bf16": 0.999, "int8": 0.95}
    for variant in manifest.variants:
        if variant.precision in minimum:
            embeddings = encode_transformer_variant(built, variant, TEXTS)
            assert embeddings.shape == (2, 384) and embeddings.dtype == np.float32
            assert cosine(embeddings, expected).min() >= minimum[variant.precision], variant.name
            assert variant.parity.passed is True


def test_sentence_variants_run_in_the_plain_runtime(built, reference):
    manifest = read_manifest(built)
    expected = reference.encode(VARIED)
    sentence_variants = [v for v in manifest.variants if v.graph == "sentence"]
    assert sentence_variants
    for variant in sentence_variants:
        assert variant.output == "sentence_embedding"
        embeddings = run_plain_runtime(built, variant, reference.tokenizer, VARIED, reference.max_seq_length)
        assert embeddings.shape == (len(VARIED), 384) and embeddings.dtype == np.float32
        assert cosine(embeddings, expected).min() >= 0.9999


def test_default_file_choice_never_lands_on_the_sentence_graph(built, tmp_path, reference):
    manifest = read_manifest(built)
    backend = manifest.variants[0].backend
    if backend == "onnx" and not SENTENCE_TRANSFORMERS_ONNX:
        pytest.skip("this sentence-transformers cannot load ONNX (no optimum-onnx for transformers 5): "
                    "compat/check_st57.sh checks the default file in a sentence-transformers 5.7 environment")
    # Without file_name, sentence-transformers picks the plain transformer graph...
    pinned = {"ov_config": dict(manifest.variants[0].runtime_options)} if backend == "openvino" else None
    model = SentenceTransformer(str(built), backend=backend, model_kwargs=pinned)
    assert cosine(model.encode(TEXTS), reference.encode(TEXTS)).min() >= 0.9999
    # ...and with only the sentence graph present it finds no default file at all (it would try to export).
    sentence_only = tmp_path / "sentence-only"
    shutil.copytree(built, sentence_only)
    for variant in manifest.variants:
        if variant.graph == "transformer":
            for entry in variant.files:
                (sentence_only / entry.path).unlink()
    # sentence-transformers then tries to export the torch weights, which the artifact does not ship.
    with pytest.raises(OSError, match="no file named .*model.safetensors"):
        SentenceTransformer(str(sentence_only), backend=backend)
