"""The model card (README.md) and the manifest's final form (``finalize_manifest``).

The artifact is test_push's: built and validated by the real validator; a test that needs failed or missing
verdicts validates its copy again (``revalidate``)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SENTENCE_TRANSFORMERS_ONNX, cosine
from huggingface_hub import ModelCard, ModelCardData
from test_push import listed, revalidate, validated_artifact

from exporter import finalize_manifest, read_manifest, write_card
from exporter.artifact.integrity import list_files
from exporter.artifact.manifest import write_manifest
from exporter.publish.card import ONNX_LOADER_NOTE, cell, code, fence_for
from exporter.runtime.packages import minimum_requirement

TABLE_ROW = re.compile(r"^\|.*\|$")


@pytest.fixture(scope="module")
def source_model(tiny_model, tmp_path_factory) -> Path:
    return validated_artifact(tiny_model, tmp_path_factory)[0]


@pytest.fixture(scope="module")
def artifact(tiny_model, tmp_path_factory) -> Path:
    return validated_artifact(tiny_model, tmp_path_factory)[1]


@pytest.fixture
def folder(artifact, tmp_path) -> Path:
    return Path(shutil.copytree(artifact, tmp_path / "tiny-card"))


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def tables(text: str) -> list[list[str]]:
    """Consecutive table lines, outside code blocks."""
    found, current, in_code = [], [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and TABLE_ROW.match(line):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found + ([current] if current else [])


def test_card_metadata_parses_and_is_listed(folder):
    finalize_manifest(folder)
    path = write_card(folder, "my-org/tiny-onnx")
    assert path == folder / "README.md"
    data = ModelCard.load(path).data
    assert isinstance(data, ModelCardData)
    assert data.base_model == "test-org/tiny-bert"
    assert data.license == "apache-2.0"  # from the source model's README front matter
    assert data.library_name == "sentence-transformers" and data.pipeline_tag == "sentence-similarity"
    assert {"sentence-transformers", "onnx", "openvino"} <= set(data.tags)
    manifest = read_manifest(folder)
    entry = next(e for e in manifest.shared_files if e.path == "README.md")
    assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and entry.size == path.stat().st_size
    assert set(list_files(folder)) == set(listed(manifest))  # every file listed, the card included
    assert [e.path for e in manifest.shared_files].count("README.md") == 1

    # again (after a manifest change): the entry is replaced, not duplicated; same input, same bytes
    first = path.read_bytes()
    write_card(folder, "my-org/tiny-onnx")
    assert path.read_bytes() == first
    assert [e.path for e in read_manifest(folder).shared_files].count("README.md") == 1


def test_card_content_variants_parity_recipe_versions(folder, source_model):
    revalidate(folder, source_model, failing={"onnx-fp32-sentence"}, unvalidated={"openvino-fp32-sentence"})
    finalize_manifest(folder)
    text = write_card(folder, "my-org/tiny").read_text(encoding="utf-8")
    manifest = read_manifest(folder)

    variants_table = next(t for t in tables(text) if t[0].startswith("| variant |"))
    assert len(variants_table) == 2 + len(manifest.variants)
    rows = {row.split("|")[1].strip(" `"): row for row in variants_table[2:]}
    assert "✅ pass" in rows["onnx-fp32"] and "❌ fail" in rows["onnx-fp32-sentence"]
    assert "not validated" in rows["openvino-fp32-sentence"]
    cosine_min = manifest.variant("onnx-fp32").parity.cosine_min
    assert f"| {math.floor(cosine_min * 1e5) / 1e5:.5f} |" in rows["onnx-fp32"]  # rounded down
    assert "`openvino/openvino_model.xml`" in rows["openvino-fp32"]
    for table in tables(text):  # well-formed: every row has the header's number of cells
        assert len({unescaped_pipes(line) for line in table}) == 1, table
        assert re.fullmatch(r"\|(---\|)+", table[1]), table[1]

    # the recipe verbatim, hashes and versions
    assert manifest.recipe.text.rstrip("\n") in text
    assert manifest.recipe.sha256 in text
    assert manifest.source.weights_sha256 in text
    for name in ("torch", "onnxruntime", "openvino", "sentence-transformers", "transformers", "optimum"):
        assert f"| {name} | {manifest.environment['packages'][name]} |" in text, name
    assert '"onnxruntime>=' in text and '"sentence-transformers>=' in text
    # load snippets: sentence-transformers for transformer graphs, plain runtimes for sentence graphs
    assert ('SentenceTransformer("my-org/tiny", backend="onnx", model_kwargs={"file_name": "onnx/model.onnx"})'
            in text)
    assert "ort.InferenceSession(f\"{folder}/onnx/model_fp32_sentence.onnx\")" in text
    assert "ov.Core().compile_model(f\"{folder}/openvino/openvino_model_fp32_sentence.xml\"" in text
    assert '["sentence_embedding"]' in text


def test_card_bench_columns_only_with_bench_json(folder):
    text = write_card(folder).read_text(encoding="utf-8")
    assert "× torch" not in text
    manifest = read_manifest(folder)  # with the card listed
    for index, variant in enumerate(manifest.variants):
        variant.bench = {"throughput": 100.0 + index, "ratio_to_torch": 2.5 + index, "latency_p50_ms": 1.0,
                         "latency_p95_ms": 2.0, "rss_delta_mb": 10.0}
    (folder / "bench.json").write_text(json.dumps({"host": {"cpu": "Test CPU | 8 cores"},
                                                   "settings": {"batch_size": 32, "threads": 4}}))
    write_manifest(folder, manifest)
    text = write_card(folder).read_text(encoding="utf-8")
    assert "× torch" in text and "| 2.50× | 100.0 |" in text and "| 5.50× | 103.0 |" in text
    assert "Test CPU | 8 cores" in text  # a note, not a table cell


def test_local_card_snippets_run(folder, source_model, monkeypatch):
    """Without a repo id the snippets load the local folder; each one runs and matches the torch model."""
    from sentence_transformers import SentenceTransformer

    text = write_card(folder).read_text(encoding="utf-8")
    monkeypatch.chdir(folder.parent)
    expected = SentenceTransformer(str(source_model), device="cpu").encode(["first text", "second text"])
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == len(read_manifest(folder).variants)
    for source in blocks:
        assert "snapshot_download" not in source and '"tiny-card"' in source
        if ONNX_LOADER_NOTE in source and not SENTENCE_TRANSFORMERS_ONNX:
            source = source.split(ONNX_LOADER_NOTE)[0]  # the deploy runtime's part; compat/ checks the rest
        namespace: dict = {}
        exec(compile(source, "<card snippet>", "exec"), namespace)  # noqa: S102 - our own card
        assert cosine(np.asarray(namespace["embeddings"]), expected).min() >= 0.9999


def test_finalize_manifest(folder, source_model):
    manifest = finalize_manifest(folder)
    assert manifest.source.weights_file == "model.safetensors"
    weights = (source_model / "model.safetensors").read_bytes()
    assert manifest.source.weights_sha256 == hashlib.sha256(weights).hexdigest()
    assert manifest.source.license == "apache-2.0"
    requirements = manifest.runtime_requirements
    assert set(requirements) == {"onnxruntime", "openvino", "sentence-transformers", "optimum"}
    assert all(re.fullmatch(r">=\d+\.\d+", spec) for spec in requirements.values()), requirements
    assert manifest.environment["packages"]["torch"]
    before = (folder / "manifest.json").read_bytes()
    assert finalize_manifest(folder) == manifest and (folder / "manifest.json").read_bytes() == before  # idempotent
    assert set(list_files(folder)) == set(listed(read_manifest(folder)))  # no file added
    assert minimum_requirement("1.31.1") == ">=1.31" and minimum_requirement("2026.4.1") == ">=2026.4"


def test_finalize_without_local_source_and_onnx_only(folder, tmp_path):
    manifest = read_manifest(folder)
    manifest.source.location = str(tmp_path / "gone")
    for key in ("weights_file", "weights_sha256", "license"):  # build already filled them in
        setattr(manifest.source, key, None)
    manifest.runtime_requirements = None
    manifest.variants = [v for v in manifest.variants if v.backend == "onnx"]
    write_manifest(folder, manifest)
    final = finalize_manifest(folder)
    assert final.source.weights_sha256 is None and final.source.license is None
    assert "openvino" not in final.runtime_requirements and "onnxruntime" in final.runtime_requirements
    assert ModelCard.load(write_card(folder)).data.license is None


def test_finalize_with_explicit_source_dir(folder, source_model):
    """What build passes: the resolved source directory (a relative location is relative to the recipe)."""
    manifest = read_manifest(folder)
    manifest.source.location = "../relative/to/the/recipe"
    write_manifest(folder, manifest)
    final = finalize_manifest(folder, source_dir=source_model)
    weights = (source_model / "model.safetensors").read_bytes()
    assert final.source.weights_sha256 == hashlib.sha256(weights).hexdigest()
    assert final.source.license == "apache-2.0"


def test_markdown_helpers():
    assert cell("a|b\nc") == "a\\|b c" and cell(None) == "–"
    assert code("x`y") == "``x`y``"
    assert fence_for("no ticks") == "```" and fence_for("has ```` four") == "`````"
