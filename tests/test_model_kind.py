"""model.kind: what a source folder computes is read before anything is built, and a reranker or sparse encoder
folder is never exported as an embedding model."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from conftest import write_recipe

from exporter.cli import main
from exporter.export.model_kind import detect_model_kind


def _json(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _legacy_classifier(source, target):
    """A plain transformers sequence-classification folder (no modules.json) made of a real model's files."""
    target.mkdir()
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        if (source / name).is_file():
            shutil.copy(source / name, target / name)
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    config["architectures"] = ["BertForSequenceClassification"]
    _json(target / "config.json", config)
    return target


TRANSFORMER = "sentence_transformers.base.modules.transformer.Transformer"


@pytest.mark.parametrize(("files", "kind", "reason"), [
    ({"config_sentence_transformers.json": {"model_type": "CrossEncoder"},
      "modules.json": [{"idx": 0, "name": "0", "path": "", "type": TRANSFORMER}]},
     "cross", "model_type CrossEncoder"),
    ({"modules.json": [{"idx": 0, "name": "0", "path": "", "type": TRANSFORMER}],
      "sentence_bert_config.json": {"transformer_task": "sequence-classification"}},
     "cross", "transformer_task sequence-classification"),
    ({"modules.json": [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.MLMTransformer"},
                       {"idx": 1, "name": "1", "path": "1_SpladePooling",
                        "type": "sentence_transformers.sparse_encoder.models.SpladePooling"}]},
     "sparse", "modules.json: MLMTransformer"),
    ({"config.json": {"architectures": ["XLMRobertaForSequenceClassification"]}}, "cross", "no modules.json"),
    ({"config.json": {"architectures": ["BertModel"]},
      "modules.json": [{"idx": 0, "name": "0", "path": "", "type": TRANSFORMER}]}, "sentence", "embedding model"),
])
def test_kind_is_read_from_the_folder(tmp_path, files, kind, reason):
    for name, data in files.items():
        _json(tmp_path / name, data)
    detected = detect_model_kind(tmp_path)
    assert (detected.kind, reason in detected.reason) == (kind, True), detected


def _run(recipe, output):
    return CliRunner().invoke(main, ["run", str(recipe), "--output", str(output)])


def test_legacy_classifier_is_never_exported_as_an_embedder(tmp_path):
    """A legacy ForSequenceClassification folder is a reranker (exporter.export.cross): asking for an embedding
    graph of it is refused, naming the line and field (tests/test_rerankers.py builds one)."""
    from models import MINILM_DIR

    folder = _legacy_classifier(MINILM_DIR, tmp_path / "classifier")
    recipe = write_recipe(tmp_path, f"""
        name: legacy
        model:
          path: {folder}
        variants:
          - {{backend: onnx, graph: sentence}}
        """)
    result = _run(recipe, tmp_path / "out")
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert "\n" not in message and "variants[0].graph" in message and "model.kind cross" in message, message
    assert detect_model_kind(folder).kind == "cross"
    assert not (tmp_path / "out").exists()


def test_declared_kind_the_folder_is_not_is_refused_with_its_line(tmp_path):
    from models import MINILM_DIR

    recipe = write_recipe(tmp_path, f"""
        name: declared
        model:
          path: {MINILM_DIR}
          kind: cross
        variants:
          - {{backend: onnx}}
        """)
    result = _run(recipe, tmp_path / "out")
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert f"{recipe.name}:4: model.kind: declared cross, but" in message and "is a sentence model" in message, message
    assert not (tmp_path / "out").exists()


def test_unknown_kind_is_a_recipe_error(tmp_path):
    recipe = write_recipe(tmp_path, """
        name: unknown
        model:
          path: .
          kind: classifier
        variants:
          - {backend: onnx}
        """)
    result = CliRunner().invoke(main, ["recipe", "check", str(recipe)])
    assert result.exit_code == 2 and "model.kind" in result.stderr and "'sentence'" in result.stderr, result.stderr
