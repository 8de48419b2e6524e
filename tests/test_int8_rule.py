"""The default int8 rule (``exclude: sensitive``): on a model with real-looking outlier channels, today's plain
defaults fail the int8 gate and ``precision: int8`` with no other settings passes on both backends, recording what
it kept in float and why; when nothing passes, one line says what was tried and the best reached."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from conftest import write_recipe
from models import build_outlier_model

from exporter import build
from exporter.export.int8_rule import MAX_ATTEMPTS, Sensitivity, plan_attempts


@pytest.fixture(scope="module")
def outlier_model(tmp_path_factory):
    return build_outlier_model(tmp_path_factory.mktemp("outlier-model"))


@pytest.fixture(scope="module")
def outlier_build(tmp_path_factory, outlier_model):
    folder = tmp_path_factory.mktemp("int8-rule")
    recipe = write_recipe(folder, f"""\
        name: outliers
        model:
          path: {outlier_model}
        variants:
          - {{backend: onnx, precision: int8, name: onnx-plain, quantization: {{method: dynamic, exclude: []}}}}
          - {{backend: onnx, precision: int8}}
          - {{backend: openvino, precision: int8}}
        """)
    return build(recipe, output=folder / "out")


def test_plain_dynamic_int8_fails_the_gate_on_outliers(outlier_build):
    plain = next(v for v in outlier_build.report.variants if v.name == "onnx-plain")
    assert not plain.passed, "the outlier model must break today's default ONNX int8"


def test_default_int8_passes_on_both_backends_and_records_why(outlier_build):
    by_name = {v.name: v for v in outlier_build.report.variants}
    for name in ("onnx-int8-static", "openvino-int8-static"):
        assert by_name[name].passed, name
        quantization = outlier_build.manifest.variant(name).quantization
        search = quantization.search
        assert quantization.exclude_requested == "sensitive" and search.met
        assert 1 <= search.trials <= MAX_ATTEMPTS and len(search.attempts) == search.trials
        assert quantization.exclude == [re.escape(name) for name in search.kept_float]
        assert search.outcome.startswith(f"int8 rule tried {search.trials} configuration(s)")
        assert "simulated int8 output error" in search.reason
        assert all(search.measured[key] >= required for key, required in search.target.items())


def test_onnx_rule_keeps_the_outlier_readers_in_float(outlier_build):
    from exporter.export.exclusion_search import onnx_float_nodes
    from exporter.export.onnx_backend import STATIC_OP_TYPES

    variant = outlier_build.manifest.variant("onnx-int8-static")
    kept = variant.quantization.search.kept_float
    assert kept and len(kept) < 24  # some float, most int8
    assert sorted(onnx_float_nodes(outlier_build.output / variant.file_name, STATIC_OP_TYPES)) == sorted(kept)


def test_plan_attempts_is_bounded_and_grows():
    sensitivities = [Sensitivity(f"m{i}", error, 1.0) for i, error in enumerate([0.5, 0.2] + [0.01] * 34)]
    plans = plan_attempts(sensitivities)
    assert plans[0] == ["m0", "m1"]  # the outliers among the MatMuls, first
    assert len(plans) <= MAX_ATTEMPTS and [len(p) for p in plans] == sorted({len(p) for p in plans})
    assert plans[-1][:2] == ["m0", "m1"] and len(plans[-1]) == 12


def test_nothing_passes_exits_1_with_one_line(tmp_path, tiny_model):
    from exporter.cli import main

    recipe = write_recipe(tmp_path, f"""\
        name: too-tight
        model:
          path: {tiny_model("bert", "mean", False, True)}
        variants:
          - backend: onnx
            precision: int8
            quantization: {{calibration: {{samples: 16}}}}
            validation: {{thresholds: {{cosine_min: 0.9999999, cosine_mean: 0.99999999}}}}
        """)
    result = CliRunner().invoke(main, ["run", str(recipe), "--output", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if "int8 rule tried" in line]
    assert len(lines) == 1 and "best reached" in lines[0], result.output
