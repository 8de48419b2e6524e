"""Tiny random models: other architectures, every pooling mode, with and without Dense and Normalize.

Each graph: sentence variant must match SentenceTransformer.encode when run in the plain runtime, and
each graph: transformer variant must load through sentence-transformers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import cosine, encode_transformer_variant, run_plain_runtime, write_recipe
from models import PIPELINES
from sentence_transformers import SentenceTransformer

from exporter import build

TEXTS = ["a", "hello world", "a somewhat longer sentence with more tokens in it", "日本語 😀 123", "x " * 200]



def _recipe(tmp_path, model_dir, backends=("onnx", "openvino")):
    tmp_path.mkdir(parents=True, exist_ok=True)
    variants = "".join(
        f"  - {{backend: {backend}, graph: {graph}}}\n" for backend in backends for graph in ("transformer", "sentence")
    )
    return write_recipe(tmp_path, f"name: tiny\nmodel:\n  path: {model_dir}\nvariants:\n{variants}")


@pytest.mark.parametrize(("architecture", "pooling", "dense", "normalize"), PIPELINES)
def test_sentence_graph_matches_sentence_transformers(tmp_path, tiny_model, architecture, pooling, dense, normalize):
    model_dir = tiny_model(architecture, pooling, dense, normalize)
    result = build(_recipe(tmp_path, model_dir), output=tmp_path / "out", validate=False)
    reference = SentenceTransformer(str(model_dir), device="cpu")
    expected = reference.encode(TEXTS)
    manifest = result.manifest
    assert manifest.source.dimension == expected.shape[1]
    for variant in manifest.variants:
        if variant.graph == "sentence":
            got = run_plain_runtime(result.output, variant, reference.tokenizer, TEXTS, reference.max_seq_length)
        else:
            got = encode_transformer_variant(result.output, variant, TEXTS)
        assert got.shape == expected.shape, variant.name
        assert got.dtype == np.float32
        assert cosine(got, expected).min() >= 0.9999, variant.name
        if not normalize:  # without Normalize the scale must match too
            np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(expected, axis=1), rtol=1e-3)


def test_inputs_follow_the_architecture(tmp_path, tiny_model):
    bert = build(_recipe(tmp_path / "b", tiny_model("bert"), ("onnx",)), output=tmp_path / "b" / "out", validate=False)
    distil = build(_recipe(tmp_path / "d", tiny_model("distilbert"), ("onnx",)), output=tmp_path / "d" / "out",
                   validate=False)
    assert bert.manifest.variants[0].inputs == ["input_ids", "attention_mask", "token_type_ids"]
    assert distil.manifest.variants[0].inputs == ["input_ids", "attention_mask"]


def test_dense_weights_are_shared_files(tmp_path, tiny_model):
    result = build(_recipe(tmp_path, tiny_model("bert", "mean", True, True), ("onnx",)), output=tmp_path / "out",
                   validate=False)
    shared = {entry.path for entry in result.manifest.shared_files}
    assert any(path.startswith("2_Dense/") for path in shared)
    modules = json.loads((result.output / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Dense", "Normalize"]


def test_large_models_use_onnx_external_data(tmp_path, tiny_model, monkeypatch):
    """Models over 2 GB keep ONNX weights in <file>_data; lowering the threshold exercises that path."""
    import exporter.export.onnx_backend

    monkeypatch.setattr(exporter.export.onnx_backend, "EXTERNAL_DATA_THRESHOLD", 0)
    model_dir = tiny_model("bert", "mean", False, True)
    recipe = write_recipe(tmp_path, f"name: big\nmodel:\n  path: {model_dir}\nvariants:\n"
                          "  - {backend: onnx}\n  - {backend: onnx, graph: sentence}\n  - {backend: openvino}\n"
                          "  - {backend: onnx, precision: int8}\n")
    result = build(recipe, output=tmp_path / "out", validate=False)
    reference = SentenceTransformer(str(model_dir), device="cpu")
    expected = reference.encode(TEXTS)
    for variant in result.manifest.variants:
        paths = [entry.path for entry in variant.files]
        if variant.backend == "onnx":
            assert paths == sorted([variant.file_name, variant.file_name + "_data"])
        if variant.graph == "sentence":
            got = run_plain_runtime(result.output, variant, reference.tokenizer, TEXTS, reference.max_seq_length)
        else:
            got = encode_transformer_variant(result.output, variant, TEXTS)
        minimum = 0.95 if variant.precision == "int8" else 0.9999
        assert cosine(got, expected).min() >= minimum, variant.name
