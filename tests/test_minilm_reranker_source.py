"""The reranker's built-in query groups (exporter/data/rerank_groups.jsonl) and the example MiniLM reranker
(examples/reranker/train_minilm_reranker.py) that recipes/minilm-reranker.yaml builds from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from exporter.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ROOT / "exporter" / "data" / "rerank_groups.jsonl"


def read_groups() -> list[dict]:
    return [json.loads(line) for line in GROUPS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_builtin_groups_schema_and_size():
    groups = read_groups()
    assert len(groups) >= 48
    queries = [group["query"] for group in groups]
    assert len(set(queries)) == len(queries), "duplicate queries"
    for number, group in enumerate(groups, start=1):
        where = f"{GROUPS.name}:{number}"
        assert set(group) == {"query", "passages", "labels"}, where
        assert isinstance(group["query"], str) and group["query"].strip(), where
        assert len(group["passages"]) == 8 and len(group["labels"]) == 8, where
        assert all(isinstance(p, str) and p.strip() for p in group["passages"]), where
        assert len(set(group["passages"])) == 8, f"{where}: duplicate passages"
        assert all(type(label) is int and 0 <= label <= 3 for label in group["labels"]), where
        labels = sorted(group["labels"], reverse=True)
        # 1-2 clearly relevant, near-ties among the partial ones, something to rank below them.
        assert 1 <= labels.count(3) <= 2 and labels.count(2) >= 2 and labels[-1] == 0, where


# ------------------------------------------------------------------------------------------ the example reranker


@pytest.fixture(scope="module")
def reports(minilm_reranker_dir, reranker_script):
    """NDCG@5 and near-ties on every group: the shipped head, and the random head it replaces (seed 0)."""
    from sentence_transformers import CrossEncoder

    groups = reranker_script.read_groups()
    trained_scores = reranker_script.group_scores(CrossEncoder(str(minilm_reranker_dir), device="cpu"), groups)
    random_scores = reranker_script.group_scores(reranker_script.new_cross_encoder(seed=0), groups)
    return {"trained": reranker_script.ranking_report(trained_scores, groups),
            "random": reranker_script.ranking_report(random_scores, groups)}


def test_folder_is_a_sentence_transformers_cross_encoder(minilm_reranker_dir):
    from sentence_transformers import CrossEncoder

    from exporter.export.model_kind import detect_model_kind

    config = json.loads((minilm_reranker_dir / "config_sentence_transformers.json").read_text())
    assert config["model_type"] == "CrossEncoder"
    assert config["activation_fn"] == "torch.nn.modules.activation.Sigmoid"
    assert [m["type"].rsplit(".", 1)[-1] for m in json.loads((minilm_reranker_dir / "modules.json").read_text())] \
        == ["Transformer"]
    assert json.loads((minilm_reranker_dir / "config.json").read_text())["architectures"] \
        == ["BertForSequenceClassification"]
    assert detect_model_kind(minilm_reranker_dir).kind == "cross"
    model = CrossEncoder(str(minilm_reranker_dir), device="cpu")
    assert model.num_labels == 1 and model.max_length == 256
    assert isinstance(model.activation_fn, torch.nn.Sigmoid)
    ranked = model.rank("how long to boil an egg", ["Eggs keep for five weeks in the fridge.",
                                                     "Boil eggs 6 minutes for a runny yolk, 10 for hard-boiled.",
                                                     "The train to Lyon leaves from platform 7."])
    assert [entry["corpus_id"] for entry in ranked][0] == 1


def test_trained_head_ranks_far_better_than_a_random_head(reports):
    trained, random = reports["trained"], reports["random"]
    assert trained["groups"] == random["groups"] >= 48
    # Measured on an Intel Xeon (AMX): 0.985 vs 0.425; the margin leaves room for other CPUs' float noise.
    assert trained["ndcg_at_5"] >= 0.9
    assert trained["ndcg_at_5"] - random["ndcg_at_5"] >= 0.3
    # A random head squeezes a group's scores together (325 pairs within 1e-3 measured); the trained one spreads them.
    assert random["near_ties_1e-3"] > 10 * max(trained["near_ties_1e-3"], 1)


def test_assembling_twice_gives_the_same_folder_and_scores(minilm_reranker_dir, reranker_script, tmp_path):
    from sentence_transformers import CrossEncoder

    again = reranker_script.build_reranker(tmp_path / "again")
    for name in ("model.safetensors", "config.json", "config_sentence_transformers.json", "modules.json",
                 "tokenizer.json"):
        assert (again / name).read_bytes() == (minilm_reranker_dir / name).read_bytes(), name
    groups = reranker_script.read_groups()[:4]
    first, second = (reranker_script.group_scores(CrossEncoder(str(folder), device="cpu"), groups)
                     for folder in (minilm_reranker_dir, again))
    assert first == second


def test_shipped_head_is_small_and_training_is_deterministic(reranker_script):
    from safetensors.torch import load_file

    head = load_file(str(reranker_script.HEAD))
    assert sorted(head) == sorted(reranker_script.HEAD_KEYS)
    assert reranker_script.HEAD.stat().st_size <= 1024 * 1024
    groups = reranker_script.read_groups()[:4]
    runs = [reranker_script.train_head(reranker_script.new_cross_encoder(seed=0), groups, seed=0, steps=20)
            for _ in range(2)]
    assert all(torch.equal(runs[0][key], runs[1][key]) for key in head)
    untrained = reranker_script.new_cross_encoder(seed=0).model.state_dict()
    assert not torch.equal(runs[0]["classifier.weight"], untrained["classifier.weight"])


def test_recipe_checks_once_the_source_folder_exists(minilm_reranker_dir, tmp_path):
    recipe_text = (ROOT / "recipes" / "minilm-reranker.yaml").read_text(encoding="utf-8")
    (tmp_path / "recipes").mkdir()
    recipe = tmp_path / "recipes" / "minilm-reranker.yaml"
    recipe.write_text(recipe_text, encoding="utf-8")
    missing = CliRunner().invoke(cli, ["recipe", "check", str(recipe)])
    assert missing.exit_code == 2
    assert "model.path" in missing.stderr and "minilm-reranker-source does not exist" in missing.stderr
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "minilm-reranker-source").symlink_to(minilm_reranker_dir)
    ok = CliRunner().invoke(cli, ["recipe", "check", str(recipe)])
    assert ok.exit_code == 0, ok.output
    assert "4 variants: onnx-fp32, onnx-int8-static, openvino-fp32, openvino-int8-static" in ok.output
