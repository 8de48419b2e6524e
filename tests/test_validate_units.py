"""The parity validator's parts on their own: thresholds, texts, batching, metrics, report formatting.
No model is loaded here; these run in a second."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from exporter.errors import BadInputError
from exporter.texts import builtin_texts, read_extra_texts
from exporter.validators.batching import mixed_length_pass, single_text_pass
from exporter.validators.checks import CHECK_NAMES, Check, build_checks, failed_run_checks, measure
from exporter.validators.report import ParityReport, VariantResult, format_value
from exporter.validators.thresholds import Thresholds, default_thresholds, effective_thresholds

# --- thresholds ----------------------------------------------------------------------------------------


def test_default_thresholds_per_precision():
    assert default_thresholds("fp32").cosine_min == 0.9999
    assert default_thresholds("fp16").cosine_min == 0.999
    assert default_thresholds("int8").model_dump() == {
        "cosine_min": 0.95, "cosine_mean": 0.99, "neighbour_overlap": 0.90, "spearman": 0.98}
    assert default_thresholds("bf16") == default_thresholds("fp16")
    with pytest.raises(ValueError, match="fp8"):
        default_thresholds("fp8")


def test_explicit_thresholds_override_key_by_key_variant_over_global():
    merged = effective_thresholds("int8", Thresholds(cosine_min=0.97, spearman=0.99), Thresholds(spearman=0.95))
    assert merged.model_dump() == {"cosine_min": 0.97, "cosine_mean": 0.99, "neighbour_overlap": 0.90, "spearman": 0.95}
    assert effective_thresholds("fp32") == default_thresholds("fp32")
    # Loosening is allowed, but only explicitly.
    assert effective_thresholds("fp32", None, Thresholds(cosine_min=0.5)).cosine_min == 0.5


def test_thresholds_are_strict():
    with pytest.raises(ValidationError):
        Thresholds(cosine_min=1.1)
    with pytest.raises(ValidationError):
        Thresholds(spearman=-1.5)
    with pytest.raises(ValidationError):
        Thresholds.model_validate({"cosine_minimum": 0.9})


# --- texts ---------------------------------------------------------------------------------------------


def test_builtin_validation_set():
    texts = builtin_texts()
    assert len(texts) == 362 and all(t.origin == "builtin" and t.text for t in texts)
    assert sum(t.kind == "long" for t in texts) == 27


def test_extra_texts_from_txt_and_jsonl(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("first\n\n  \nsecond line\n", encoding="utf-8")
    assert [t.text for t in read_extra_texts(txt)] == ["first", "second line"]
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text('{"text": "x", "domain": "legal"}\n\n{"text": "y"}\n', encoding="utf-8")
    texts = read_extra_texts(jsonl)
    assert [(t.text, t.origin, t.domain) for t in texts] == [("x", "extra", "legal"), ("y", "extra", None)]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("bad.jsonl", '{"text": "ok"}\n{"txt": "no"}\n', "bad.jsonl:2"),
    ("bad2.jsonl", "{not json\n", "bad2.jsonl:1: malformed JSON"),
    ("empty.txt", "\n\n", "no validation texts"),
    ("texts.csv", "a,b\n", ".txt"),
])
def test_bad_extra_texts_are_bad_input(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BadInputError, match=message.replace(".", r"\.")):
        read_extra_texts(path)
    with pytest.raises(BadInputError, match="not found"):
        read_extra_texts(tmp_path / "missing.txt")


# --- batching ------------------------------------------------------------------------------------------


def test_mixed_length_batches_cover_every_text_once_and_mix_lengths():
    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(3, 60, size=300)] + [256] * 27
    encoding = mixed_length_pass(lengths, batch_size=32)
    assert encoding.indices == list(range(len(lengths)))
    assert all(len(batch) <= 32 for batch in encoding.batches)
    first = [lengths[i] for i in encoding.batches[0]]
    assert max(first) == 256 and min(first) == min(lengths)  # longest and shortest together
    assert sum(256 in (lengths[i] for i in batch) for batch in encoding.batches) <= 2  # long texts stay together


def test_single_text_pass_takes_short_texts_and_a_few_long_ones():
    lengths = [5, 300, 10, 256, 256, 200, 7, 129, 128]
    encoding = single_text_pass(lengths, max_length=256, long_texts=3)
    assert all(len(batch) == 1 for batch in encoding.batches)
    chosen = encoding.indices
    assert {0, 2, 6} <= set(chosen) and len(chosen) == 6
    assert 8 in chosen and 1 in chosen  # the shortest (128 = half the maximum) and the longest of the long ones


def test_single_text_pass_samples_many_short_texts_evenly():
    lengths = [10] * 1000 + [256] * 30
    chosen = single_text_pass(lengths, max_length=256, short_texts=100, long_texts=3).indices
    short = [i for i in chosen if i < 1000]
    assert len(short) == 100 and short[0] == 0 and short[-1] == 999
    assert max(b - a for a, b in zip(short, short[1:], strict=False)) <= 11  # no region of the list is skipped
    assert len(chosen) == 103


# --- metrics and checks --------------------------------------------------------------------------------


def _embeddings(n=40, dim=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def test_identical_embeddings_measure_perfect():
    reference = _embeddings()
    values = measure(reference.copy(), reference)
    assert values["cosine_min"] == pytest.approx(1.0) and values["neighbour_overlap"] == 1.0
    assert values["spearman"] == pytest.approx(1.0) and values["max_abs_diff"] == 0.0
    checks = build_checks({1: values, 32: values}, default_thresholds("fp32"))
    assert [c.name for c in checks] == list(CHECK_NAMES) and all(c.passed for c in checks)


def test_noise_lowers_cosine_and_ranking():
    reference = _embeddings()
    noisy = reference + 0.5 * _embeddings(seed=1)
    values = measure(noisy, reference)
    assert values["cosine_min"] < 0.95 and values["neighbour_overlap"] < 1.0 and values["spearman"] < 0.99
    checks = {
        c.name: c for c in build_checks({1: measure(reference, reference), 32: values}, default_thresholds("int8"))
    }
    assert not checks["cosine_min"].passed
    assert checks["cosine_min"].measured == values["cosine_min"]  # the worse pass is reported
    assert checks["cosine_min"].by_batch["1"] == pytest.approx(1.0)


def test_non_finite_and_wrong_shape_fail_without_numbers():
    reference = _embeddings()
    broken = reference.copy()
    broken[3, 2] = np.nan
    checks = {c.name: c for c in build_checks({32: measure(broken, reference)}, default_thresholds("fp32"))}
    assert checks["finite"].measured == 1 and not checks["finite"].passed
    assert checks["cosine_min"].measured is None and not checks["cosine_min"].passed
    checks = {c.name: c for c in build_checks({32: measure(reference[:, :8], reference)}, default_thresholds("fp32"))}
    assert checks["shape"].measured == [40, 8] and checks["shape"].required == [40, 16] and not checks["shape"].passed
    fp16 = {
        c.name: c
        for c in build_checks({32: measure(reference.astype(np.float16), reference)}, default_thresholds("fp16"))
    }
    assert fp16["dtype"].measured == "float16" and not fp16["dtype"].passed


# --- report --------------------------------------------------------------------------------------------


def _report(cosine_min: float) -> ParityReport:
    thresholds = default_thresholds("int8")
    checks = [Check("cosine_min", measured=cosine_min, required=0.95, comparison=">=", passed=cosine_min >= 0.95)]
    broken = VariantResult("onnx-broken", "onnx", "fp32", "sentence", "onnx/x.onnx", thresholds.model_dump(),
                           failed_run_checks("InvalidProtobuf: bad file", thresholds))
    return ParityReport(
        folder="artifacts/x", recipe="x", reference="stored", source=None, max_seq_length=128,
        texts={"total": 2, "builtin": 2, "extra": 0, "batch_1": 2}, batch_sizes=[1, 32],
        variants=[VariantResult("onnx-int8", "onnx", "int8", "transformer", "onnx/model_int8.onnx",
                                thresholds.model_dump(), checks), broken],
    )


def test_failure_lines_name_variant_check_measured_and_required():
    report = _report(0.94123)
    assert not report.passed
    failures = report.failures()
    assert failures[0] == "variant onnx-int8: cosine_min 0.9412 < required 0.95"
    assert failures[1] == "variant onnx-broken: runs failed: InvalidProtobuf: bad file"
    assert failures[2] == "variant onnx-broken: shape not measured: the variant did not run"
    assert _report(0.96).variant("onnx-int8").passed


def test_measured_values_print_with_enough_digits_to_show_the_verdict():
    assert format_value(0.94123, 0.95) == "0.9412"
    assert format_value(0.99989, 0.9999) == "0.99989"
    assert format_value(0.999899999, 0.9999) == "0.999899999"
    assert format_value(0.99999999, 1.0) == "0.99999999"
    assert format_value(3.5e-7) == "3.50e-07"
    assert format_value([362, 384]) == "362×384" and format_value(None) == "n/a"


def test_report_json_is_plain_data():
    data = json.loads(_report(0.9).to_json())
    assert data["passed"] is False and data["variants"][1]["checks"][0]["detail"] == "InvalidProtobuf: bad file"


def test_spearman_matches_scipy_with_ties():
    """The numpy implementation (the deploy install has no scipy) agrees with scipy's, ties included."""
    scipy_stats = pytest.importorskip("scipy.stats")
    from exporter.validators.checks import spearman

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 6))
    reference = vectors @ vectors.T
    variant = np.round(reference + rng.normal(scale=0.4, size=reference.shape), 1)  # rounding makes ties
    upper = np.triu_indices(30, k=1)
    expected = scipy_stats.spearmanr(variant[upper], reference[upper]).statistic
    assert spearman(variant, reference) == pytest.approx(expected, abs=1e-12)


def test_text_files_are_capped(tmp_path, monkeypatch):
    """Validation, bench and calibration texts go through one reader with a size cap."""
    import exporter.texts
    from exporter.export.calibration import load_corpus

    monkeypatch.setattr(exporter.texts, "MAX_TEXT_FILE_BYTES", 100)
    big = tmp_path / "big.txt"
    big.write_text("a line of text\n" * 20, encoding="utf-8")
    with pytest.raises(BadInputError, match=r"big.txt: 300 bytes; validation texts may be at most 100 bytes"):
        read_extra_texts(big)
    with pytest.raises(BadInputError, match=r"calibration.corpus: .*big.txt: 300 bytes"):
        load_corpus("big.txt", tmp_path)
