"""Rerankers (``model.kind: cross``): CrossEncoders exported to ONNX / OpenVINO, proven to rank like torch, loaded
through sentence-transformers' CrossEncoder and the torch-free Reranker, pushed, fetched and checked on a deploy
host without torch.

One tiny random BERT reranker artifact (ONNX fp32 logits and scores graphs, OpenVINO fp32, ONNX and OpenVINO int8
by the default rule) is built once for the module; a tiny XLM-RoBERTa reranker and a legacy
``BertForSequenceClassification`` folder (no modules.json) get one small build each.
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

import exporter
from exporter import read_manifest
from exporter.cli import main
from exporter.errors import BadInputError
from exporter.validators.ranking import (
    RANKING_DEFAULTS,
    STORED_GROUPS_FILE,
    STORED_SCORES_FILE,
    all_pairs,
    builtin_groups,
    parse_groups,
    ranking_metrics,
)

BERT_RECIPE = """\
name: tiny-reranker
model:
  path: {model}
variants:
  - {{backend: onnx}}
  - {{backend: onnx, graph: scores}}
  - {{backend: openvino}}
  - {{backend: onnx, precision: int8}}
  - {{backend: openvino, precision: int8}}
"""


@pytest.fixture(scope="module")
def bert_reranker(tmp_path_factory) -> Path:
    from models import build_cross_encoder

    return build_cross_encoder(tmp_path_factory.mktemp("bert-reranker"), "bert")


@pytest.fixture(scope="module")
def built(bert_reranker, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reranker-artifact")
    recipe = write_recipe(workdir, BERT_RECIPE.format(model=bert_reranker))
    result = CliRunner().invoke(main, ["run", str(recipe), "--output", str(workdir / "artifact"), "--json"])
    assert result.exit_code == 0, (result.output, result.stderr)
    return workdir / "artifact", json.loads(result.stdout)


def _torch(model_dir: Path):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(model_dir), device="cpu")


# -- build, validation, records ----------------------------------------------------------------------------------


def test_every_variant_ranks_like_torch_and_records_it(built):
    folder, _ = built
    manifest = read_manifest(folder)
    assert manifest.source.kind == "cross" and manifest.source.dimension == 1
    outputs = {v.name: (v.graph, v.output, v.file_name) for v in manifest.variants}
    assert outputs["onnx-fp32"] == ("transformer", "logits", "onnx/model.onnx")
    assert outputs["onnx-fp32-scores"][:2] == ("scores", "scores")
    assert outputs["openvino-fp32"] == ("transformer", "logits", "openvino/openvino_model.xml")
    for variant in manifest.variants:
        parity = variant.parity.model_dump()
        assert variant.parity.passed, (variant.name, parity)
        if variant.precision == "fp32":  # the bar: within 1e-4 and identical rankings on the groups
            assert parity["max_abs_diff"] <= 1e-4 and parity["ranking"] == 1.0, (variant.name, parity)
        else:
            assert parity["top1_agreement"] >= 0.95 and parity["spearman_mean"] >= 0.95, (variant.name, parity)
            assert variant.quantization.exclude_requested == "sensitive"  # the int8 rule, judged by rankings
            assert "query groups" in variant.quantization.search.outcome or variant.quantization.search.reason
        assert variant.validation_thresholds == RANKING_DEFAULTS[variant.precision]
    shared = {entry.path for entry in manifest.shared_files}
    assert {STORED_GROUPS_FILE, STORED_SCORES_FILE, "parity_report.json"} <= shared
    stored = [json.loads(line) for line in (folder / STORED_GROUPS_FILE).read_text().splitlines()]
    assert len(stored) == len(builtin_groups()) >= 40 and all(len(g["passages"]) >= 8 for g in stored)
    report = json.loads((folder / "parity_report.json").read_text())
    checks = {c["name"] for c in report["variants"][0]["checks"]}
    assert {"max_abs_diff", "ranking", "top1_agreement", "spearman_mean", "ndcg_at_5",
            "sentence_transformers"} <= checks


def test_openvino_int8_keeps_the_scoring_head_in_float(built):
    # The score is a projection of one pooled vector per pair: the rule never quantises the head (pooler,
    # classifier), and records it in `exclude` so that pinning the logged list rebuilds the same graph.
    import openvino as ov

    from exporter.export.openvino_backend import matmul_int8_inputs

    folder, _ = built
    variant = next(v for v in read_manifest(folder).variants if v.name == "openvino-int8-static")
    int8_inputs = matmul_int8_inputs(ov.Core().read_model(folder / variant.file_name))
    head = ["/classifier/bert/pooler/dense/Gemm/WithoutBiases", "logits"]
    assert all(int8_inputs[name] == set() for name in head), int8_inputs
    assert sum("fq" in feeds for feeds in int8_inputs.values()) >= 8  # the encoder's MatMuls are int8
    assert [pattern.replace("\\", "") for pattern in variant.quantization.exclude[:2]] == head


def test_validate_reports_rankings_in_json_and_junit(built, bert_reranker, tmp_path):
    folder, _ = built
    junit = tmp_path / "parity.xml"
    result = CliRunner().invoke(main, ["validate", str(folder), "--source", str(bert_reranker), "--junit",
                                       str(junit), "--json", "--report-dir", str(tmp_path / "report")])
    assert result.exit_code == 0, (result.output, result.stderr)
    printed = json.loads(result.stdout)
    fp32 = next(v for v in printed["variants"] if v["name"] == "onnx-fp32")
    measured = {c["name"]: c["measured"] for c in fp32["checks"]}
    assert measured["max_abs_diff"] <= 1e-4 and measured["top1_agreement"] == 1.0 and measured["ndcg_at_5"] > 0.999
    xml = junit.read_text()
    assert 'name="top1_agreement"' in xml and 'name="ndcg_at_5"' in xml and "<failure" not in xml


def test_card_reports_the_ranking_metrics(built):
    from exporter import write_card

    folder, _ = built
    card = write_card(folder).read_text()
    assert "top1 agreement" in card and "ndcg@5" in card and "a reranker (CrossEncoder)" in card
    assert 'CrossEncoder("artifact", backend="openvino"' in card and "reranker.rank(" in card


# -- the runtimes --------------------------------------------------------------------------------------------------


def test_reranker_is_a_drop_in_for_crossencoder(built, bert_reranker):
    folder, _ = built
    torch_model = _torch(bert_reranker)
    pairs = all_pairs(builtin_groups()[:6])
    pairs.append(("a long query " * 40, "and a much longer passage that must be cut " * 30))  # longest_first
    expected = torch_model.predict(pairs, batch_size=32)
    reranker = exporter.load(str(folder), "onnx-fp32")
    assert type(reranker).__name__ == "Reranker" and "torch" not in reranker.settings["tokenizer"]
    got = reranker.predict(pairs, batch_size=5)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4
    features = torch_model[0].preprocess([list(pairs[-1])])
    assert list(reranker.tokenizer.encode_pairs([pairs[-1]])[0].ids) == features["input_ids"][0].tolist()
    scores_graph = exporter.load(str(folder), "onnx-fp32-scores")
    assert np.abs(scores_graph.predict(pairs) - expected).max() <= 1e-4
    logits = reranker.predict(pairs, activation_fn=lambda x: x)
    assert np.abs(logits - torch_model.predict(pairs, activation_fn=__import__("torch").nn.Identity())).max() <= 1e-4
    with pytest.raises(BadInputError, match="activation inside"):
        scores_graph.predict(pairs, activation_fn=lambda x: x)
    group = builtin_groups()[0]
    want = torch_model.rank(group.query, list(group.passages), top_k=3, return_documents=True)
    ranked = reranker.rank(group.query, list(group.passages), top_k=3, return_documents=True)
    assert [(r["corpus_id"], r["text"]) for r in ranked] == [(r["corpus_id"], r["text"]) for r in want]
    assert all(set(r) == {"corpus_id", "score", "text"} and abs(r["score"] - w["score"]) <= 1e-4
               for r, w in zip(ranked, want, strict=True))
    assert isinstance(reranker.predict(pairs[0]), np.floating)


def test_graph_transformer_variants_load_in_crossencoder(built, bert_reranker):
    folder, _ = built
    from sentence_transformers import CrossEncoder

    pairs = all_pairs(builtin_groups()[:4])
    expected = _torch(bert_reranker).predict(pairs)
    model = exporter.load_sentence_transformer(str(folder), variant="openvino-fp32")
    assert isinstance(model, CrossEncoder) and model.backend == "openvino"
    assert np.abs(model.predict(pairs) - expected).max() <= 1e-4
    int8 = exporter.load_sentence_transformer(str(folder), variant="openvino-int8-static")
    got = int8.predict(pairs)
    assert ranking_metrics([got[:8]], [expected[:8]], 1e-2)["top1_agreement"] == 1.0


# -- push, fetch --check on a deploy host ------------------------------------------------------------------------------


def test_pushed_reranker_is_checked_by_fetch_on_a_host_without_torch(built, tmp_path):
    from hub_fixtures import HUB_TOKEN, allow_hub_requests
    from hub_server import HubServer
    from huggingface_hub.utils import close_session

    folder, _ = built
    with HubServer(root=tmp_path / "hub", token=HUB_TOKEN) as server, pytest.MonkeyPatch.context() as monkeypatch:
        allow_hub_requests(monkeypatch, tmp_path / "token")
        copy = Path(shutil.copytree(folder, tmp_path / "push"))
        exporter.push(copy, "test-user/tiny-reranker", endpoint=server.url, token=HUB_TOKEN)
        process = subprocess.run(
            [sys.executable, "-c", DEPLOY_HOST_CLI, "fetch", "test-user/tiny-reranker", "--endpoint", server.url,
             "--cache-dir", str(tmp_path / "cache"), "--variant", "onnx-int8-static", "--check", "--json"],
            capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "HF_HUB_OFFLINE": "0"})
    close_session()
    assert process.returncode == 0, process.stderr[-3000:]
    printed = json.loads(process.stdout)
    check = printed["check"]
    assert check["passed"] is True and check["failures"] == []
    assert check["measured"]["top1_agreement"] >= 0.95 and check["measured"]["spearman_mean"] >= 0.95
    assert "exporter.load(" in printed["python"] and "model.rank(" in printed["python"]
    assert printed["model_kind"] == "cross"


# -- other architectures, legacy folders ----------------------------------------------------------------------------


def test_xlm_roberta_reranker_builds_and_loads(tmp_path):
    from models import build_cross_encoder

    model_dir = build_cross_encoder(tmp_path / "xlmr", "xlm-roberta")
    recipe = write_recipe(tmp_path, f"""
        name: tiny-xlmr-reranker
        model:
          path: {model_dir}
          kind: cross
        variants:
          - {{backend: onnx}}
          - {{backend: openvino, graph: scores}}
        """)
    result = CliRunner().invoke(main, ["run", str(recipe), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, (result.output, result.stderr)
    manifest = read_manifest(tmp_path / "out")
    assert all(v.parity.max_abs_diff <= 1e-4 and v.parity.ranking == 1.0 for v in manifest.variants)
    assert manifest.variant("onnx-fp32").inputs == ["input_ids", "attention_mask"]  # no token_type_ids
    pairs = all_pairs(builtin_groups()[:3])
    got = exporter.load(str(tmp_path / "out"), "openvino-fp32-scores").predict(pairs)
    assert np.abs(got - _torch(model_dir).predict(pairs)).max() <= 1e-4


def test_legacy_sequence_classification_folder_is_built_as_a_reranker(tmp_path):
    from models import build_legacy_cross_encoder

    folder = build_legacy_cross_encoder(tmp_path / "legacy")
    assert not (folder / "modules.json").exists()
    recipe = write_recipe(tmp_path, f"""
        name: legacy-reranker
        model:
          path: {folder}
        variants:
          - {{backend: onnx}}
        """)
    result = CliRunner().invoke(main, ["run", str(recipe), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, (result.output, result.stderr)
    manifest = read_manifest(tmp_path / "out")
    assert manifest.source.kind == "cross" and manifest.variants[0].output == "logits"
    assert manifest.variants[0].parity.max_abs_diff <= 1e-4


# -- bad input: exit 2, one line with file:line and field, nothing written --------------------------------------


def _refused(tmp_path, recipe_text: str, needle: str, *files: tuple[str, str]) -> str:
    for name, content in files:
        (tmp_path / name).write_text(content, encoding="utf-8")
    recipe = write_recipe(tmp_path, recipe_text)
    result = CliRunner().invoke(main, ["run", str(recipe), "--output", str(tmp_path / "out")])
    message = result.stderr.strip()
    assert result.exit_code == 2, (result.output, message)
    assert "\n" not in message and "Traceback" not in message and needle in message, message
    assert not (tmp_path / "out").exists()
    return message


def test_sentence_graph_on_a_reranker_is_refused(bert_reranker, tmp_path):
    message = _refused(tmp_path, f"""
        name: wrong-graph
        model:
          path: {bert_reranker}
        variants:
          - {{backend: onnx}}
          - {{backend: onnx, graph: sentence}}
        """, "variants[1].graph")
    assert "recipe.yaml:6:" in message and "graph transformer | scores" in message


def test_scores_graph_on_an_embedding_model_is_refused(tmp_path):
    from models import MINILM_DIR

    _refused(tmp_path, f"""
        name: scores-on-embedder
        model:
          path: {MINILM_DIR}
        variants:
          - {{backend: onnx, graph: scores}}
        """, "recipe.yaml:5: variants[0].graph")


def test_pairs_file_with_a_missing_field_is_refused(bert_reranker, tmp_path):
    good = json.dumps({"query": "q", "passages": ["a", "b"], "labels": [1, 0]})
    message = _refused(tmp_path, f"""
        name: bad-pairs
        model:
          path: {bert_reranker}
        variants:
          - {{backend: onnx}}
        validation:
          pairs: pairs.jsonl
        """, "pairs.jsonl:2: passages: missing", ("pairs.jsonl", good + "\n" + json.dumps({"query": "q2"}) + "\n"))
    assert str(tmp_path / "pairs.jsonl") in message


def test_causal_lm_rerankers_are_refused_naming_logitscore(bert_reranker, tmp_path):
    folder = Path(shutil.copytree(bert_reranker, tmp_path / "causal"))
    entries = json.loads((folder / "modules.json").read_text())
    entries.append({"idx": 1, "name": "1", "path": "1_LogitScore",
                    "type": "sentence_transformers.cross_encoder.modules.logit_score.LogitScore"})
    (folder / "modules.json").write_text(json.dumps(entries))
    _refused(tmp_path, f"""
        name: causal
        model:
          path: {folder}
        variants:
          - {{backend: onnx}}
        """, "LogitScore")


@pytest.mark.parametrize(("line", "problem"), [
    ('{"query": "q", "passages": ["a", "b"], "labels": [1]}', "f.jsonl:1: labels: expected a list of 2 integers"),
    ('{"query": "q", "passages": ["a", "b"], "score": 1}', "f.jsonl:1: score: unknown field"),
    ('{"passages": ["a", "b"]}', "f.jsonl:1: query: missing"),
    ('{"query": "q", "passages": "a"}', "f.jsonl:1: passages: expected a list"),
    ("[1, 2]", "f.jsonl:1: expected a JSON object"),
])
def test_groups_parser_names_line_and_field(line, problem):
    with pytest.raises(BadInputError, match=problem.replace("[", r"\[")):
        parse_groups(line, "f.jsonl")
    groups = parse_groups('{"query": "q", "passages": ["a", "b"], "labels": [3, 0]}\n\n', "ok.jsonl")
    assert groups[0].pairs() == [("q", "a"), ("q", "b")]


def test_ranking_metrics_treat_near_ties_as_ties():
    reference = [np.array([0.9, 0.5, 0.49995, 0.1])]
    swapped_tie = [np.array([0.9, 0.49990, 0.5, 0.1])]
    metrics = ranking_metrics(swapped_tie, reference, 1e-4)
    assert metrics["ranking"] == 1.0 and metrics["top1_agreement"] == 1.0
    wrong_top = [np.array([0.5, 0.9, 0.4, 0.1])]
    metrics = ranking_metrics(wrong_top, reference, 1e-4)
    assert metrics["ranking"] == 0.0 and metrics["top1_agreement"] == 0.0 and metrics["ndcg_at_5"] < 1.0


# -- bench ---------------------------------------------------------------------------------------------------------


def test_bench_measures_pairs_per_second_against_torch(built, bert_reranker, tmp_path):
    folder = Path(shutil.copytree(built[0], tmp_path / "bench"))
    result = CliRunner().invoke(main, ["bench", str(folder), "--source", str(bert_reranker), "--variant",
                                       "openvino-fp32", "--num-texts", "16", "--rounds", "1", "--warmup", "0",
                                       "--json"])
    assert result.exit_code == 0, (result.output, result.stderr)
    data = json.loads(result.stdout)
    assert data["settings"]["unit"] == "pairs/s" and set(data["settings"]["length_classes"]) == {"short", "mixed",
                                                                                              "long"}
    rows = {model["name"]: model["classes"] for model in data["models"]}
    assert set(rows) == {"torch", "openvino-fp32"}
    assert all(numbers["pairs_per_s"] > 0 and numbers["ratio_to_torch"] > 0
               for numbers in rows["openvino-fp32"].values())
    summary = read_manifest(folder).variant("openvino-fp32").bench
    assert summary.throughput == rows["openvino-fp32"]["mixed"]["pairs_per_s"] and summary.ratio_to_torch > 0
    assert "bench.json" in {entry.path for entry in read_manifest(folder).shared_files}


def test_docs_snippet_ranks_with_the_built_artifact(built, tmp_path, monkeypatch):
    folder, _ = built
    source = (Path(__file__).resolve().parents[1] / "docs" / "snippets" / "rerank.py").read_text(encoding="utf-8")
    source = source.replace('"artifacts/minilm-reranker"', json.dumps(str(folder)))
    namespace: dict = {}
    exec(compile(source, "rerank.py", "exec"), namespace)  # noqa: S102 - the docs' own snippet
    assert [item["corpus_id"] for item in namespace["ranked"]] == list(np.argsort(-namespace["scores"]))
    assert type(namespace["model"]).__name__ == "CrossEncoder"
