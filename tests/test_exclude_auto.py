"""``quantization.exclude: auto``: the search keeps the fewest MatMuls in float that meet the variant's
thresholds, records them and why, and a recipe that pins what it printed builds the same graph."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
from conftest import cosine, encode_transformer_variant, write_recipe
from sentence_transformers import SentenceTransformer

from exporter import build
from exporter.export.exclusion_search import MARGIN, SearchTarget, onnx_float_nodes, openvino_float_matmuls, role_of
from exporter.export.onnx_backend import STATIC_OP_TYPES
from exporter.validators.thresholds import default_thresholds

TEXTS = ["a short query", "a longer sentence about quantisation and which layers stay in float", "x y z"]
# ONNX static int8 (per-tensor scales) is nearly lossless on the tiny model: this tight target needs a MatMul in
# float. OpenVINO's int8 meets its looser target with every MatMul quantised.
ONNX_THRESHOLDS = {"cosine_min": 0.999999, "cosine_mean": 0.9999999}
OPENVINO_THRESHOLDS = {"cosine_min": 0.9995, "cosine_mean": 0.9998}


@pytest.fixture(scope="module")
def auto_build(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("exclude-auto")
    recipe = write_recipe(folder, f"""\
        name: tiny-auto
        model:
          path: {tiny_model("bert", "mean", False, True)}
        variants:
          - backend: onnx
            precision: int8
            quantization: {{method: static, per_channel: false, exclude: auto, calibration: {{samples: 40}}}}
            validation: {{thresholds: {json.dumps(ONNX_THRESHOLDS)}}}
          - backend: openvino
            precision: int8
            quantization: {{method: static, exclude: auto, calibration: {{samples: 40}}}}
            validation: {{thresholds: {json.dumps(OPENVINO_THRESHOLDS)}}}
        """)
    return build(recipe, output=folder / "out"), folder


def test_search_records_what_it_kept_in_float_and_meets_its_target(auto_build):
    result, _ = auto_build
    for variant, thresholds in zip(result.manifest.variants, (ONNX_THRESHOLDS, OPENVINO_THRESHOLDS), strict=True):
        quantization = variant.quantization
        search = quantization.search
        assert quantization.exclude_requested == "auto" and search is not None
        assert search.met and search.texts == 200 and search.trials >= 1
        target = SearchTarget.from_thresholds(default_thresholds("int8").model_copy(update=thresholds))
        assert search.target == pytest.approx(target.thresholds)
        assert search.target["cosine_min"] == pytest.approx(thresholds["cosine_min"] + MARGIN * (1 - thresholds[
            "cosine_min"]))
        assert set(search.target) == {"cosine_min", "cosine_mean", "neighbour_overlap", "spearman"}
        assert all(search.measured[key] >= required for key, required in search.target.items())
        # the recorded exclude is the exact names kept in float, ready to pin in a recipe
        assert quantization.exclude == [re.escape(name) for name in search.kept_float]
        assert "held-out texts" in search.reason and "target met" in search.reason


def test_onnx_search_keeps_exactly_the_recorded_matmuls_in_float(auto_build):
    result, _ = auto_build
    variant = result.manifest.variant("onnx-int8-static")
    kept = variant.quantization.search.kept_float
    path = result.output / variant.file_name
    # every other weight MatMul became an integer kernel: the float ones are exactly the kept ones
    assert sorted(onnx_float_nodes(path, STATIC_OP_TYPES)) == sorted(kept)
    quantized = [node for node in onnx.load(str(path)).graph.node if node.op_type == "MatMulIntegerToFloat"]
    assert kept, "the target needs some MatMuls in float on the tiny model"
    assert quantized, "but not all of them"


def test_openvino_search_result_matches_the_saved_ir(auto_build):
    import openvino as ov

    result, _ = auto_build
    variant = result.manifest.variant("openvino-int8-static")
    saved = ov.Core().read_model(str(result.output / variant.file_name))
    assert sorted(openvino_float_matmuls(saved)) == sorted(variant.quantization.search.kept_float)
    assert variant.quantization.search.method.startswith("greedy MatMul-role search (NNCF")


def test_auto_variants_stay_close_to_torch(auto_build, tiny_model):
    result, _ = auto_build
    expected = SentenceTransformer(str(tiny_model("bert", "mean", False, True)), device="cpu").encode(TEXTS)
    for variant in result.manifest.variants:
        got = encode_transformer_variant(result.output, variant, TEXTS)
        assert cosine(got, expected).min() >= 0.999, variant.name
    # the validator judged them against the same thresholds (their numbers are in the manifest either way)
    assert all(variant.parity is not None for variant in result.manifest.variants)


def test_pinning_the_printed_exclusions_rebuilds_the_same_onnx_graph(auto_build, tiny_model):
    result, folder = auto_build
    variant = result.manifest.variant("onnx-int8-static")
    pinned = ", ".join(f"'{pattern}'" for pattern in variant.quantization.exclude)
    recipe = write_recipe(folder, f"""\
        name: tiny-pinned
        model:
          path: {tiny_model("bert", "mean", False, True)}
        variants:
          - backend: onnx
            precision: int8
            quantization: {{method: static, per_channel: false, exclude: [{pinned}], calibration: {{samples: 40}}}}
        """, name="pinned.yaml")
    again = build(recipe, output=folder / "pinned", validate=False)
    first = onnx.load(str(result.output / variant.file_name))
    second = onnx.load(str(again.output / again.manifest.variants[0].file_name))
    assert [n.op_type for n in first.graph.node] == [n.op_type for n in second.graph.node]
    for a, b in zip(first.graph.initializer, second.graph.initializer, strict=True):
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(a), onnx.numpy_helper.to_array(b))


def test_roles_group_the_same_matmul_of_every_layer():
    assert role_of("/0/auto_model/encoder/layer.3/attention/self/query/MatMul") == \
        role_of("/0/auto_model/encoder/layer.11/attention/self/query/MatMul")
    assert role_of("/encoder/layer.3/output/dense/MatMul") != role_of("/encoder/layer.3/intermediate/dense/MatMul")
