"""fp16, int8 and graph-optimised variants: each kind exports, loads and stays close to torch; settings are
recorded; invalid key combinations are bad input."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import RECIPES, cosine, encode_transformer_variant, run_plain_runtime, write_recipe
from sentence_transformers import SentenceTransformer

from exporter import build
from exporter.cli import main
from exporter.export.calibration import builtin_validation_records
from exporter.export.onnx_backend import static_quantizable
from exporter.validators.thresholds import default_thresholds

TEXTS = [r["text"] for r in builtin_validation_records()][::6]

ALL_KINDS = (
    """
name: tiny-kinds
model: {{path: {model}}}
variants:
  - {{backend: onnx}}
  - {{backend: onnx, optimize: O2}}
  - {{backend: onnx, precision: fp16}}
  - {{backend: onnx, precision: int8, quantization: {{isa: avx2}}}}
  - {{backend: onnx, precision: int8, optimize: O1, graph: sentence, quantization: {{method: dynamic}}}}
  - {{backend: onnx, precision: int8, quantization: {{method: static, calibration: {{corpus: calib.txt, samples: 8}}}}}}
  - {{backend: openvino}}
  - {{backend: openvino, precision: fp16, graph: sentence}}
"""
    '  - {{backend: openvino, precision: int8, quantization: {{calibration: {{samples: 16, seed: 3}}, '
    'exclude: [".*output/dense/MatMul.*"]}}}}\n'
    """  - {{backend: openvino, precision: int8, quantization: {{method: weight_only}}, graph: sentence}}
"""
)
MIN_COSINE = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.95}


@pytest.fixture(scope="module")
def kinds(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("kinds")
    model_dir = tiny_model("bert", "mean", True, True)
    (folder / "calib.txt").write_text("\n".join(f"calibration text number {i} about topic {i * 7}" for i in range(30)))
    recipe = write_recipe(folder, ALL_KINDS.format(model=model_dir))
    result = build(recipe, output=folder / "out", validate=False)
    return result, SentenceTransformer(str(model_dir), device="cpu")


def _encode(folder, variant, reference):
    if variant.graph == "sentence":
        return run_plain_runtime(folder, variant, reference.tokenizer, TEXTS, reference.max_seq_length)
    return encode_transformer_variant(folder, variant, TEXTS)


def test_every_kind_loads_and_stays_close_to_torch(kinds):
    result, reference = kinds
    expected = reference.encode(TEXTS)
    assert len(result.manifest.variants) == 10
    for variant in result.manifest.variants:
        got = _encode(result.output, variant, reference)
        assert got.dtype == np.float32 and got.shape == expected.shape, variant.name
        assert cosine(got, expected).min() >= MIN_COSINE[variant.precision], variant.name


def test_names_and_files_are_derived_from_settings(kinds):
    result, _ = kinds
    files = {v.name: v.file_name for v in result.manifest.variants}
    # The first transformer variant of each kind takes the name its clients load by default...
    assert files["onnx-fp32"] == "onnx/model.onnx"
    assert files["onnx-fp16"] == "onnx/model_fp16.onnx"
    assert files["onnx-int8-dynamic-avx2"] == "onnx/model_quantized.onnx"
    assert files["openvino-fp32"] == "openvino/openvino_model.xml"
    # ...every other variant a name suffixed with its variant name.
    assert files["onnx-fp32-O2"] == "onnx/model_fp32_O2.onnx"
    assert files["onnx-int8-O1-dynamic-sentence"] == "onnx/model_int8_O1_dynamic_sentence.onnx"
    assert files["onnx-int8-static"] == "onnx/model_int8_static.onnx"
    assert files["openvino-int8-weight-only-sentence"] == "openvino/openvino_model_int8_weight_only_sentence.xml"


def _onnx_weight_types(path) -> set[int]:
    return {tensor.data_type for tensor in onnx.load(str(path)).graph.initializer if len(tensor.dims) >= 2}


def _ov_const_types(xml_path) -> set[str]:
    root = ET.parse(xml_path).getroot()
    types = {layer.find("data").get("element_type") for layer in root.iter("layer")
             if layer.get("type") == "Const" and layer.find("data").get("shape", "").count(",") >= 1}
    # shape constants and (transformers 5) the causal-mask pattern, not weights
    return types - {"i64", "i32", "boolean"}


def test_weight_precisions(kinds):
    result, _ = kinds
    by_name = {v.name: v for v in result.manifest.variants}
    folder = result.output
    assert _onnx_weight_types(folder / "onnx/model.onnx") == {onnx.TensorProto.FLOAT}
    assert _onnx_weight_types(folder / "onnx/model_fp16.onnx") == {onnx.TensorProto.FLOAT16}
    assert onnx.TensorProto.INT8 in _onnx_weight_types(folder / "onnx/model_quantized.onnx")
    assert _ov_const_types(folder / "openvino/openvino_model.xml") == {"f32"}
    assert "f16" in _ov_const_types(folder / "openvino/openvino_model_fp16_sentence.xml")

    def size(name):
        return sum(f.size for f in by_name[name].files)

    assert 0.4 < size("onnx-fp16") / size("onnx-fp32") < 0.6
    assert 0.4 < size("openvino-fp16-sentence") / size("openvino-fp32") < 0.6


def test_openvino_int8_graphs_are_quantised(kinds):
    result, _ = kinds
    by_name = {v.name: v for v in result.manifest.variants}
    static = ET.parse(result.output / by_name["openvino-int8-static"].file_name).getroot()
    assert any(layer.get("type") == "FakeQuantize" for layer in static.iter("layer"))
    weight_only = _ov_const_types(result.output / by_name["openvino-int8-weight-only-sentence"].file_name)
    assert weight_only & {"i8", "u8"}


def test_manifest_records_settings(kinds):
    result, _ = kinds
    by_name = {v.name: v for v in result.manifest.variants}
    dynamic = by_name["onnx-int8-dynamic-avx2"]
    recorded = dynamic.quantization.to_json_dict()
    assert {key: recorded[key] for key in ("method", "isa", "per_channel")} == {
        "method": "dynamic", "isa": "avx2", "per_channel": True}
    # no exclude given: the int8 rule decided, and recorded what it kept in float (docs/int8.md)
    assert recorded["exclude_requested"] == "sensitive" and recorded["search"]["met"]
    static = by_name["openvino-int8-static"]
    assert static.calibration.corpus == "builtin"
    assert static.calibration.samples == 16 and static.calibration.seed == 3
    assert len(static.calibration.corpus_sha256) == 64
    assert static.quantization.exclude == [".*output/dense/MatMul.*"]
    assert static.runtime_options == {"INFERENCE_PRECISION_HINT": "f32"}
    local = by_name["onnx-int8-static"].calibration
    assert local.corpus == "calib.txt" and local.corpus_size == 30 and local.samples == 8
    auto = by_name["onnx-int8-O1-dynamic-sentence"].quantization
    assert auto.isa_requested == "auto" and auto.isa in ("arm64", "avx2", "avx512", "avx512_vnni")
    assert by_name["onnx-fp32-O2"].optimize == "O2"
    assert by_name["openvino-fp32"].validation_thresholds["cosine_min"] == 0.9999
    assert by_name["onnx-int8-dynamic-avx2"].validation_thresholds["cosine_min"] == 0.95


BAD_COMBINATIONS = {
    "isa on openvino": ("{backend: openvino, precision: int8, quantization: {isa: avx2}}",
                        "variants[0].quantization.isa"),
    "calibration with dynamic": ("{backend: onnx, precision: int8, "
                                 "quantization: {method: dynamic, calibration: {samples: 5}}}",
                                 "variants[0].quantization.calibration"),
    "quantization on fp32": ("{backend: onnx, quantization: {method: dynamic}}", "variants[0].quantization"),
    "optimize on openvino": ("{backend: openvino, optimize: O2}", "variants[0].optimize"),
    "O2 with onnx static": ("{backend: onnx, precision: int8, optimize: O2, quantization: {method: static}}",
                            "variants[0].optimize"),
    "float_precision on onnx": ("{backend: onnx, precision: int8, quantization: {float_precision: bf16}}",
                                "variants[0].quantization.float_precision"),
    "weight_only on onnx": ("{backend: onnx, precision: int8, quantization: {method: weight_only}}",
                            "variants[0].quantization.method"),
    "dynamic on openvino": ("{backend: openvino, precision: int8, quantization: {method: dynamic}}",
                            "variants[0].quantization.method"),
    "per_channel on openvino": ("{backend: openvino, precision: int8, quantization: {per_channel: false}}",
                                "variants[0].quantization.per_channel"),
    "bad regex": ("{backend: onnx, precision: int8, quantization: {exclude: ['(']}}",
                  "variants[0].quantization.exclude[0]"),
    "unknown isa": ("{backend: onnx, precision: int8, quantization: {isa: sse2}}", "variants[0].quantization.isa"),
    "samples zero": ("{backend: openvino, precision: int8, quantization: {calibration: {samples: 0}}}",
                     "variants[0].quantization.calibration.samples"),
}


@pytest.mark.parametrize("case", sorted(BAD_COMBINATIONS))
def test_bad_combinations_are_bad_input(case, tmp_path, monkeypatch, tiny_model):
    variant, field = BAD_COMBINATIONS[case]
    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(tmp_path, f"name: t\nmodel: {{path: {tiny_model()}}}\nvariants:\n  - {variant}\n")
    result = CliRunner().invoke(main, ["run", str(recipe)])
    assert result.exit_code == 2, result.stderr
    message = result.stderr.strip()
    assert "\n" not in message and f"recipe.yaml:4: {field}:" in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]


def test_missing_calibration_file_is_bad_input(tmp_path, monkeypatch, tiny_model):
    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(tmp_path, f"name: t\nmodel: {{path: {tiny_model()}}}\nvariants:\n"
                          "  - {backend: openvino, precision: int8, quantization: {calibration: {corpus: nope.txt}}}\n")
    result = CliRunner().invoke(main, ["run", str(recipe)])
    assert result.exit_code == 2 and "nope.txt" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]


STATIC = """
name: tiny-static
model: {{path: {model}}}
variants:
  - {{backend: onnx, precision: int8, quantization: {{method: static, calibration: {{samples: 40}}}}}}
  - backend: onnx
    precision: int8
    graph: sentence
    quantization: {{method: static, per_channel: false, exclude: ['.*layer\\.1/output/dense/MatMul'],
                   calibration: {{samples: 40}}}}
"""


@pytest.fixture(scope="module")
def static_build(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("static")
    model_dir = tiny_model("bert", "mean", True, True)
    result = build(write_recipe(folder, STATIC.format(model=model_dir)), output=folder / "out", validate=False)
    return result, SentenceTransformer(str(model_dir), device="cpu")


def _static_graph_parts(path):
    """(node op types by name, every node, names of the tensors QuantizeLinear writes) of a static int8 graph."""
    model = onnx.load(str(path))
    quantized_tensors = {node.output[0] for node in model.graph.node if node.op_type == "QuantizeLinear"}
    return {node.name: node.op_type for node in model.graph.node}, list(model.graph.node), quantized_tensors


def test_static_onnx_quantises_every_weight_matmul_into_one_integer_kernel(static_build):
    result, _ = static_build
    variant = result.manifest.variant("onnx-int8-static")
    ops, nodes, quantized_tensors = _static_graph_parts(result.output / variant.file_name)
    weight_matmuls = [name for name, op in ops.items() if op == "MatMulIntegerToFloat"]
    float_matmuls = [node for node in nodes if node.op_type == "MatMul"]
    # two layers: query, key, value, attention output, FFN in, FFN out each
    assert len(weight_matmuls) == 12 and all(name.endswith("/MatMul") for name in weight_matmuls)
    # what stays float: attention's activation x activation products only (no constant input)
    weights = {t.name for t in onnx.load(str(result.output / variant.file_name)).graph.initializer}
    assert len(float_matmuls) == 4 and not any(set(node.input) & weights for node in float_matmuls)
    # the integer kernels carry their bias; no DequantizeLinear is left; MatMul outputs are never quantised
    fused = [node for node in nodes if node.op_type == "MatMulIntegerToFloat"]
    assert all(len(node.input) == 7 and node.domain == "com.microsoft" for node in fused)
    assert "DequantizeLinear" not in ops.values()
    producers = {output: node for node in nodes for output in node.output}
    assert not any(producers[node.input[0]].op_type in ("MatMul", "MatMulIntegerToFloat")
                   for node in nodes if node.op_type == "QuantizeLinear")
    # only the integer kernels read int8 activations: the residual stream (Add, LayerNormalization) stays float
    assert all(node.op_type == "MatMulIntegerToFloat" for node in nodes if set(node.input) & quantized_tensors)
    assert all(node.input[0] in quantized_tensors for node in fused)


def test_static_onnx_exclude_and_per_channel_are_honoured(static_build):
    result, _ = static_build
    variant = result.manifest.variant("onnx-int8-static-sentence")
    assert variant.quantization.per_channel is False
    assert variant.quantization.exclude == [r".*layer\.1/output/dense/MatMul"]
    model = onnx.load(str(result.output / variant.file_name))
    ops = {node.name: node.op_type for node in model.graph.node}
    kept = [name for name in ops if re.fullmatch(r".*layer\.1/output/dense/MatMul", name)]
    assert len(kept) == 1 and ops[kept[0]] == "MatMul"  # in float, and reading the float activation
    reader = next(node for node in model.graph.node if node.name == kept[0])
    quantized_tensors = {node.output[0] for node in model.graph.node if node.op_type == "QuantizeLinear"}
    assert not set(reader.input) & quantized_tensors
    fused = [node for node in model.graph.node if node.op_type == "MatMulIntegerToFloat"]
    assert len(fused) == 11
    scales = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert all(scales[node.input[3]].size == 1 for node in fused)  # per-tensor weight scales


def test_static_onnx_stays_close_to_torch(static_build):
    result, reference = static_build
    expected = reference.encode(TEXTS)
    for variant in result.manifest.variants:
        got = _encode(result.output, variant, reference)
        assert cosine(got, expected).min() >= 0.99, variant.name


def test_static_quantizable_names_the_weight_matmuls(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, f"name: t\nmodel: {{path: {tiny_model()}}}\nvariants:\n  - {{backend: onnx}}\n")
    result = build(recipe, output=tmp_path / "out", validate=False)
    names = static_quantizable(result.output / result.manifest.variants[0].file_name)
    assert len(names) == 12 and not any(name.endswith(("self/MatMul", "self/MatMul_1")) for name in names)


def test_minilm_onnx_static_meets_the_default_int8_gate(tmp_path, minilm_dir):
    recipe = write_recipe(tmp_path, f"""\
        name: minilm-static
        model: {{id: sentence-transformers/all-MiniLM-L6-v2, path: {minilm_dir}}}
        variants:
          - {{backend: onnx, precision: int8, quantization: {{method: static}}}}
        """)
    result = build(recipe, output=tmp_path / "out")
    variant = result.manifest.variants[0]
    assert result.report.passed, result.report.failures()
    assert variant.validation_thresholds == default_thresholds("int8").model_dump()
    reference = SentenceTransformer(str(minilm_dir), device="cpu")
    got = _encode(result.output, variant, reference)
    similarity = cosine(got, reference.encode(TEXTS))
    assert similarity.mean() >= 0.995 and similarity.min() >= 0.98  # measured 0.9965 / 0.986 on all 362 texts
    ops = [node.op_type for node in onnx.load(str(result.output / variant.file_name)).graph.node]
    assert ops.count("MatMulIntegerToFloat") == 36 and ops.count("MatMul") == 12


def test_minilm_onnx_int8_recipe(tmp_path, minilm_dir):
    result = build(RECIPES / "minilm-onnx-int8.yaml", output=tmp_path / "out")
    assert result.report.passed, result.report.failures()  # the shipped recipe passes its own gate
    assert all(variant.parity.passed for variant in result.manifest.variants)
    reference = SentenceTransformer(str(minilm_dir), device="cpu")
    expected = reference.encode(TEXTS)
    for variant in result.manifest.variants:
        got = _encode(result.output, variant, reference)
        assert got.shape == (len(TEXTS), 384)
        assert cosine(got, expected).mean() >= 0.99, variant.name
        assert variant.quantization.method == "static" and variant.calibration.samples == 300
    manifest = json.loads((result.output / "manifest.json").read_text())
    assert manifest == result.manifest.to_json_dict()
