"""Artifacts that clients load as they are: tokenizer files that state max_seq_length, plain runtimes on the
artifact's own tokenizer.json, client-default file names (assigned from the whole recipe, explicit
``file_name``, never on a variant that failed parity) and sentence graphs declared ``[batch, dim]``."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import RECIPES, cosine, encode_transformer_variant, write_recipe
from sentence_transformers import SentenceTransformer

from exporter import build, read_manifest
from exporter.artifact.integrity import list_files, sha256_file
from exporter.cli import main
from exporter.errors import RecipeError
from exporter.recipe import load_recipe

MAX_SEQ_LENGTH = 256  # all-MiniLM-L6-v2's, above its tokenizer file's original 128
LONG_TEXT = " ".join(f"word{i % 37} about topic{i % 11}" for i in range(100))  # 300 words, > 256 tokens
LONG_TEXTS = [LONG_TEXT, "word " * 400, " ".join(["naïve café 日本語"] * 120)]
TEXTS = ["backend choice check", "short text", "a", "def f(x):\n    return x ** 2  # 42", *LONG_TEXTS]


# ------------------------------------------------------------------------------------------ the shipped recipes


@pytest.fixture(scope="module")
def minilm_artifacts(tmp_path_factory):
    """minilm-onnx whole, and minilm-openvino's sentence graph alone (a subset build), not validated."""
    root = tmp_path_factory.mktemp("client-files")
    onnx_build = build(RECIPES / "minilm-onnx.yaml", output=root / "minilm-onnx", validate=False)
    openvino_build = build(RECIPES / "minilm-openvino.yaml", output=root / "minilm-openvino", validate=False,
                           variants=["openvino-fp32-sentence"])
    return {"onnx": onnx_build.output, "openvino": openvino_build.output}


@pytest.fixture(scope="module")
def reference(minilm_dir):
    return SentenceTransformer(str(minilm_dir), device="cpu")


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_tokenizer_files_state_max_seq_length(minilm_artifacts, backend):
    folder = minilm_artifacts[backend]
    saved = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    assert saved["truncation"]["max_length"] == MAX_SEQ_LENGTH
    assert saved["padding"] is None
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["model_max_length"] == MAX_SEQ_LENGTH
    assert config.get("max_length", MAX_SEQ_LENGTH) == MAX_SEQ_LENGTH
    assert json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"] == MAX_SEQ_LENGTH
    manifest = read_manifest(folder)
    assert manifest.source.max_seq_length == MAX_SEQ_LENGTH
    for entry in manifest.shared_files:  # the rewritten files are the listed ones
        assert entry.sha256 == sha256_file(folder / entry.path), entry.path


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_plain_tokenizers_truncate_at_max_seq_length_and_pad_nothing(minilm_artifacts, backend):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_artifacts[backend] / "tokenizer.json"))
    assert len(tokenizer.encode(LONG_TEXT).ids) == MAX_SEQ_LENGTH
    short = tokenizer.encode("short text")
    assert len(short.ids) == 4 and all(short.attention_mask)  # [CLS] short text [SEP], no padding
    assert [len(e.ids) for e in tokenizer.encode_batch(["short text", "a"])] == [4, 3]


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_transformers_auto_tokenizer_truncates_at_max_seq_length(minilm_artifacts, backend):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_artifacts[backend]))
    assert tokenizer.model_max_length == MAX_SEQ_LENGTH
    assert len(tokenizer(LONG_TEXT, truncation=True)["input_ids"]) == MAX_SEQ_LENGTH
    assert len(tokenizer("short text")["input_ids"]) == 4
    assert [len(ids) for ids in tokenizer(["short text", "a"], truncation=True)["input_ids"]] == [4, 3]


def _plain_feeds(folder, inputs: list[str], texts: list[str]) -> dict[str, np.ndarray]:
    """The artifact's own tokenizer.json as it is, batches padded to their longest text (as a client does)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
    encodings = tokenizer.encode_batch(texts)
    arrays = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings],
              "token_type_ids": [e.type_ids for e in encodings]}
    return {name: np.array(arrays[name], dtype=np.int64) for name in inputs}


def _assert_fp32_parity(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape and got.dtype == np.float32
    assert cosine(got, expected).min() >= 0.99999
    norms, expected_norms = np.linalg.norm(got, axis=1), np.linalg.norm(expected, axis=1)
    assert np.abs(norms / expected_norms - 1).max() <= 1e-4


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_plain_runtime_on_the_artifact_tokenizer_meets_the_fp32_bar(minilm_artifacts, reference, backend):
    """onnxruntime / OpenVINO on the sentence graph, fed by tokenizer.json as it is: long texts included."""
    folder = minilm_artifacts[backend]
    variant = next(v for v in read_manifest(folder).variants if v.graph == "sentence")
    expected = reference.encode(TEXTS)
    feeds = _plain_feeds(folder, variant.inputs, TEXTS)
    assert feeds["input_ids"].shape[1] == MAX_SEQ_LENGTH  # the long texts are cut where sentence-transformers cuts
    if backend == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(folder / variant.file_name), providers=["CPUExecutionProvider"])
        got = session.run(["sentence_embedding"], feeds)[0]
        single = session.run(["sentence_embedding"], _plain_feeds(folder, variant.inputs, TEXTS[:1]))[0]
    else:
        import openvino as ov

        # The manifest's runtime_options (f32): OpenVINO does not take them from the IR, and CPUs with
        # AVX512_BF16 or AMX otherwise run the fp32 graph in bf16 (cosine 0.99997 on long texts).
        compiled = ov.Core().compile_model(str(folder / variant.file_name), "CPU", dict(variant.runtime_options))
        assert compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"
        got = compiled(feeds)["sentence_embedding"]
        single = compiled(_plain_feeds(folder, variant.inputs, TEXTS[:1]))["sentence_embedding"]
    _assert_fp32_parity(got, expected)
    _assert_fp32_parity(single, expected[:1])  # unpadded, as a lean client runs one query


def _onnx_output_shape(path) -> list:
    output = onnx.load(str(path), load_external_data=False).graph.output[0]
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in output.type.tensor_type.shape.dim]


def test_sentence_graph_output_is_batch_by_dimension(minilm_artifacts):
    import openvino as ov

    onnx_variant = read_manifest(minilm_artifacts["onnx"]).variant("onnx-fp32-sentence")
    shape = _onnx_output_shape(minilm_artifacts["onnx"] / onnx_variant.file_name)
    assert isinstance(shape[0], str) and shape[1:] == [384]  # [batch, 384]
    core = ov.Core()
    for model in (core.read_model(str(minilm_artifacts["openvino"] / "openvino/openvino_model_fp32_sentence.xml")),
                  core.read_model(str(minilm_artifacts["onnx"] / onnx_variant.file_name))):
        output = model.output("sentence_embedding").get_partial_shape()
        assert output.rank.get_length() == 2 and output[0].is_dynamic and output[1].get_length() == 384


# ------------------------------------------------------------------------------------------ names


MIXED = """\
name: mixed
model: {{path: {model}}}
variants:
  - {{backend: onnx, graph: sentence}}
  - {{backend: onnx, optimize: O2}}
  - {{backend: onnx}}
  - {{backend: onnx, precision: int8, graph: sentence, quantization: {{method: dynamic}}}}
  - {{backend: onnx, precision: int8, optimize: O1, quantization: {{isa: avx2}}}}
  - {{backend: onnx, precision: int8, quantization: {{isa: avx2}}}}
  - {{backend: onnx, precision: fp16, graph: sentence}}
  - {{backend: onnx, precision: fp16}}
  - {{backend: openvino, precision: int8, quantization: {{method: weight_only}}}}
  - {{backend: openvino, graph: sentence}}
  - {{backend: openvino}}
  - {{backend: openvino, precision: fp16}}
"""
MIXED_NAMES = {
    "onnx-fp32-sentence": "onnx/model_fp32_sentence.onnx",
    "onnx-fp32-O2": "onnx/model_fp32_O2.onnx",  # optimised: not sentence-transformers' plain default
    "onnx-fp32": "onnx/model.onnx",
    "onnx-int8-dynamic-sentence": "onnx/model_int8_dynamic_sentence.onnx",
    "onnx-int8-O1-dynamic-avx2": "onnx/model_quantized.onnx",  # the first int8 transformer in recipe order
    "onnx-int8-dynamic-avx2": "onnx/model_int8_dynamic_avx2.onnx",
    "onnx-fp16-sentence": "onnx/model_fp16_sentence.onnx",
    "onnx-fp16": "onnx/model_fp16.onnx",
    "openvino-int8-weight-only": "openvino/openvino_model_int8_weight_only.xml",
    "openvino-fp32-sentence": "openvino/openvino_model_fp32_sentence.xml",
    "openvino-fp32": "openvino/openvino_model.xml",
    "openvino-fp16": "openvino/openvino_model_fp16.xml",
}


def test_client_default_names_for_a_mixed_recipe(tmp_path, tiny_model):
    recipe = load_recipe(write_recipe(tmp_path, MIXED.format(model=tiny_model())))
    files = recipe.recipe.file_names()
    assert {name: f.file_name for name, f in files.items()} == MIXED_NAMES
    # Where a variant moves when it fails parity: off the client default, to its own name.
    assert files["onnx-fp32"].failed_file_name == "onnx/model_fp32.onnx"
    assert files["onnx-int8-O1-dynamic-avx2"].failed_file_name == "onnx/model_int8_O1_dynamic_avx2.onnx"
    assert files["onnx-fp16"].failed_file_name == "onnx/model_fp16_transformer.onnx"  # model_fp16 is a default
    assert files["openvino-fp32"].failed_file_name == "openvino/openvino_model_fp32.xml"
    assert files["onnx-fp32-sentence"].failed_file_name == "onnx/model_fp32_sentence.onnx"


def test_a_subset_build_gets_the_names_of_the_whole_recipe(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, MIXED.format(model=tiny_model()))
    subset = ["onnx-int8-dynamic-avx2", "onnx-fp32-O2", "onnx-fp16-sentence", "openvino-fp16"]
    result = build(recipe, output=tmp_path / "out", variants=subset, validate=False)
    assert {v.name: v.file_name for v in result.manifest.variants} == {name: MIXED_NAMES[name] for name in subset}
    assert not (result.output / "onnx/model.onnx").exists()  # no variant is promoted to a free default
    assert not (result.output / "onnx/model_quantized.onnx").exists()
    assert not (result.output / "openvino/openvino_model.xml").exists()
    for variant in result.manifest.variants:
        assert (result.output / variant.file_name).is_file()


def test_sentence_graphs_declare_batch_by_dimension_in_every_kind(tmp_path, tiny_model):
    """Derived graphs (optimised, fp16, int8, OpenVINO) keep [batch, dim]; with a Dense layer dim is its output."""
    import openvino as ov

    recipe = write_recipe(tmp_path, f"""\
        name: sentence-kinds
        model: {{path: {tiny_model("bert", "mean", True, True)}}}
        variants:
          - {{backend: onnx, graph: sentence}}
          - {{backend: onnx, graph: sentence, optimize: O2}}
          - {{backend: onnx, graph: sentence, precision: fp16}}
          - {{backend: onnx, graph: sentence, precision: int8}}
          - {{backend: openvino, graph: sentence}}
          - {{backend: openvino, graph: sentence, precision: int8}}
        """)
    result = build(recipe, output=tmp_path / "out", validate=False)
    for variant in result.manifest.variants:
        path = result.output / variant.file_name
        if variant.backend == "onnx":
            shape = _onnx_output_shape(path)
            assert isinstance(shape[0], str) and shape[1:] == [24], variant.name  # the Dense layer's 24
        output = ov.Core().read_model(str(path)).output("sentence_embedding").get_partial_shape()
        assert output.rank.get_length() == 2 and output[0].is_dynamic and output[1].get_length() == 24, variant.name


def test_explicit_file_names(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, f"""\
        name: explicit
        model: {{path: {tiny_model()}}}
        variants:
          - {{backend: onnx}}
          - {{backend: onnx, optimize: O2, file_name: onnx/model.onnx}}
          - {{backend: onnx, graph: sentence, file_name: onnx/embeddings.onnx}}
          - {{backend: openvino, file_name: openvino/custom/openvino_encoder.xml}}
        """)
    result = build(recipe, output=tmp_path / "out", validate=False)
    files = {v.name: v.file_name for v in result.manifest.variants}
    assert files == {"onnx-fp32": "onnx/model_fp32.onnx",  # the default it would take is claimed explicitly
                     "onnx-fp32-O2": "onnx/model.onnx", "onnx-fp32-sentence": "onnx/embeddings.onnx",
                     "openvino-fp32": "openvino/custom/openvino_encoder.xml"}
    openvino_files = [entry.path for entry in result.manifest.variant("openvino-fp32").files]
    assert openvino_files == ["openvino/custom/openvino_encoder.bin", "openvino/custom/openvino_encoder.xml"]
    reference = SentenceTransformer(str(tiny_model()), device="cpu")
    for variant in (result.manifest.variant("onnx-fp32-O2"), result.manifest.variant("openvino-fp32")):
        got = encode_transformer_variant(result.output, variant, TEXTS[:4])
        assert cosine(got, reference.encode(TEXTS[:4])).min() >= 0.9999


@pytest.mark.parametrize(("variants", "line", "message"), [
    ("  - {backend: onnx, file_name: onnx/a.onnx}\n  - {backend: onnx, precision: fp16, file_name: onnx/a.onnx}",
     5, "variants[1].file_name: 'onnx/a.onnx' is also the file of variant 0 (onnx-fp32)"),
    ("  - {backend: onnx}\n  - {backend: onnx, precision: fp16, file_name: onnx/model_fp32.onnx}",
     5, "variants[1].file_name: 'onnx/model_fp32.onnx' is where variant 0 (onnx-fp32) moves when it fails parity"),
    ("  - {backend: onnx, name: onnx-a.b}\n  - {backend: onnx, name: onnx-a_b, optimize: O1}",
     5, "variants[1].file_name: 'onnx/model_a_b.onnx' is where variant 0 (onnx-a.b) moves when it fails parity; "
        "derived from the name 'onnx-a_b': set file_name or another name"),
    ("  - {backend: onnx, graph: sentence, file_name: onnx/model.onnx}", 4,
     "variants[0].file_name: onnx/model.onnx is a client-default name"),
    ("  - {backend: openvino, graph: sentence,\n     file_name: openvino/openvino_model.xml}", 5,
     "variants[0].file_name: openvino/openvino_model.xml is a client-default name"),
    ("  - {backend: onnx, file_name: openvino/model.xml}", 4,
     "variants[0].file_name: an onnx variant's file is onnx/<name>.onnx, got 'openvino/model.xml'"),
    ("  - {backend: openvino, file_name: openvino/model.onnx}", 4,
     "variants[0].file_name: an openvino variant's file is openvino/openvino<name>.xml"),
    ("  - {backend: openvino, file_name: openvino/encoder.xml}", 4,
     "an openvino variant's file is openvino/openvino<name>.xml (sentence-transformers finds only openvino*.xml)"),
    ("  - {backend: onnx, file_name: /tmp/model.onnx}", 4,
     "variants[0].file_name: '/tmp/model.onnx' is not a relative"),
    ("  - {backend: onnx, file_name: onnx/../../model.onnx}", 4, "is not a relative path"),
    ("  - {backend: onnx, precision: fp16, file_name: onnx/model_quantized.onnx}", 4,
     "variants[0].file_name: onnx/model_quantized.onnx is what transformers.js (dtype q8) loads as int8; "
     "this variant is fp16"),
])
def test_bad_file_names_are_bad_input(tmp_path, variants, line, message):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: x\nmodel: {{path: model}}\nvariants:\n{variants}\n", encoding="utf-8")
    with pytest.raises(RecipeError) as raised:
        load_recipe(recipe)
    assert str(raised.value).startswith(f"{recipe}:{line}: ") and message in str(raised.value)
    result = CliRunner().invoke(main, ["recipe", "check", str(recipe)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr


# ------------------------------------------------------------------------------------------ failed variants


FAILING = """\
name: failing
model: {{path: {model}}}
variants:
  - {{backend: onnx}}
  - {{backend: onnx, precision: int8, quantization: {{isa: avx2}}, validation: {{thresholds: {{cosine_min: 1.0}}}}}}
  - {{backend: openvino}}
"""


def _assert_listed_as_on_disk(folder) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {entry["path"]: entry for entry in manifest["shared_files"]}
    for variant in manifest["variants"]:
        listed.update({entry["path"]: entry for entry in variant["files"]})
    assert sorted(listed) == list_files(folder)
    for relative, entry in listed.items():
        assert entry["sha256"] == sha256_file(folder / relative) and entry["size"] == (folder / relative).stat().st_size


def test_a_failed_variant_moves_off_its_client_default_name(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, FAILING.format(model=tiny_model()))
    result = CliRunner().invoke(main, ["run", str(recipe), "--output", str(tmp_path / "out")])
    assert result.exit_code == 1, result.stderr
    assert ("onnx-int8-dynamic-avx2 failed parity: moved onnx/model_quantized.onnx → "
            "onnx/model_int8_dynamic_avx2.onnx") in " ".join(result.stderr.split())
    folder = tmp_path / "out"
    manifest = read_manifest(folder)
    failed = manifest.variant("onnx-int8-dynamic-avx2")
    assert failed.parity.passed is False
    assert failed.file_name == "onnx/model_int8_dynamic_avx2.onnx"
    assert [entry.path for entry in failed.files] == ["onnx/model_int8_dynamic_avx2.onnx"]
    assert not (folder / "onnx/model_quantized.onnx").exists()
    assert manifest.variant("onnx-fp32").file_name == "onnx/model.onnx"  # the passing ones keep theirs
    assert manifest.variant("openvino-fp32").file_name == "openvino/openvino_model.xml"
    _assert_listed_as_on_disk(folder)
    report = json.loads((folder / "parity_report.json").read_text())
    assert {v["name"]: v["file_name"] for v in report["variants"]}["onnx-int8-dynamic-avx2"] == failed.file_name
    import onnxruntime as ort

    ort.InferenceSession(str(folder / failed.file_name), providers=["CPUExecutionProvider"])  # still a model


def test_a_failed_variant_with_external_data_is_saved_again_under_its_name(tmp_path, tiny_model, monkeypatch):
    import exporter.export.onnx_backend

    monkeypatch.setattr(exporter.export.onnx_backend, "EXTERNAL_DATA_THRESHOLD", 0)
    recipe = write_recipe(tmp_path, FAILING.format(model=tiny_model()))
    result = build(recipe, output=tmp_path / "out")
    assert not result.report.passed
    assert [item.to_dict() for item in result.renamed] == [
        {"name": "onnx-int8-dynamic-avx2", "from": "onnx/model_quantized.onnx",
         "to": "onnx/model_int8_dynamic_avx2.onnx"}]
    assert result.summary()["renamed"] == [item.to_dict() for item in result.renamed]
    failed = result.manifest.variant("onnx-int8-dynamic-avx2")
    assert [entry.path for entry in failed.files] == [failed.file_name, failed.file_name + "_data"]
    assert not list(result.output.glob("onnx/model_quantized*"))
    graph = onnx.load(str(result.output / failed.file_name), load_external_data=False)
    locations = {entry.value for tensor in graph.graph.initializer for entry in tensor.external_data
                 if entry.key == "location"}
    assert locations == {"model_int8_dynamic_avx2.onnx_data"}  # the reference inside follows the move
    _assert_listed_as_on_disk(result.output)
    import onnxruntime as ort

    session = ort.InferenceSession(str(result.output / failed.file_name), providers=["CPUExecutionProvider"])
    reference = SentenceTransformer(str(tiny_model()), device="cpu")
    tokens = reference.tokenizer(TEXTS[:2], padding=True, return_tensors="np")
    assert session.run(None, {name: tokens[name].astype(np.int64) for name in failed.inputs})[0].shape[0] == 2


def test_moving_openvino_ir_keeps_it_loadable(tmp_path, tiny_model):
    import openvino as ov

    from exporter.export.openvino_backend import move_openvino

    recipe = write_recipe(tmp_path, f"name: ov\nmodel: {{path: {tiny_model()}}}\nvariants: [{{backend: openvino}}]\n")
    result = build(recipe, output=tmp_path / "out", validate=False)
    openvino_dir = result.output / "openvino"
    moved = move_openvino(openvino_dir / "openvino_model.xml", openvino_dir / "openvino_model_fp32.xml")
    assert moved == [openvino_dir / "openvino_model_fp32.xml", openvino_dir / "openvino_model_fp32.bin"]
    assert not list(openvino_dir.glob("openvino_model.*"))
    compiled = ov.Core().compile_model(str(moved[0]), "CPU")
    reference = SentenceTransformer(str(tiny_model()), device="cpu")
    tokens = reference.tokenizer(TEXTS[:2], padding=True, return_tensors="np")
    feeds = {name: tokens[name].astype(np.int64) for name in result.manifest.variants[0].inputs}
    assert compiled(feeds)[0].shape[0] == 2
