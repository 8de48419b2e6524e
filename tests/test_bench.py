"""``exporter bench``: real export of a tiny model, real inference in torch, ONNX Runtime and OpenVINO.

Small settings throughout (a few texts, rounds and threads): the tests check what is measured and written,
not how fast anything is."""

from __future__ import annotations

import json
import shutil
import statistics

import pytest
from click.testing import CliRunner
from conftest import SENTENCE_TRANSFORMERS_ONNX, write_recipe

from exporter import HostProfile, Manifest, build, read_manifest
from exporter.artifact.integrity import list_files, sha256_file
from exporter.artifact.manifest import BenchSummary, write_manifest
from exporter.cli import main
from exporter.diagnostics.bench_classes import LONG_MIN_CHARS, PASSAGE_CHARS, SHORT_MAX_CHARS, class_texts, long_pool
from exporter.diagnostics.bench_targets import parse_compare, unique_names
from exporter.diagnostics.benchmark import BENCH_NAME, bench
from exporter.errors import BadInputError

VARIANTS = ["onnx-fp32", "onnx-fp32-sentence", "openvino-fp32", "openvino-fp32-sentence"]
SMALL = ["--num-texts", "12", "--batch-size", "4", "--rounds", "2", "--warmup", "1", "--latency-texts", "4",
         "--threads", "1"]
FP32_COSINE = 0.9999  # an fp32 export (OpenVINO pinned at f32) gives torch's embeddings up to float noise
# sentence-transformers loads ONNX through optimum-onnx, which some environments lack or hold unusable
# (conftest.SENTENCE_TRANSFORMERS_ONNX); OpenVINO through optimum-intel always works here.
ST_ONNX = SENTENCE_TRANSFORMERS_ONNX
CLASSES = ["short", "mixed", "long"]



def summary_of(row: dict) -> BenchSummary:
    """The manifest's summary of a bench.json row: its numbers, and the CPU they were measured on (this one)."""
    numbers = {key: row[key] for key in BenchSummary.model_fields if key in row}
    return BenchSummary(**numbers, measured_on=HostProfile.detect(probe=False).cpu_line())

@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model):
    """A tiny model's artifact folder with every loader path: ONNX / OpenVINO × transformer / sentence."""
    folder = tmp_path_factory.mktemp("bench-build")
    variants = "".join(f"  - {{backend: {backend}, graph: {graph}}}\n"
                       for backend in ("onnx", "openvino") for graph in ("transformer", "sentence"))
    recipe = write_recipe(folder, f"name: tiny\nmodel:\n  path: {tiny_model('bert')}\nvariants:\n{variants}")
    return build(recipe, output=folder / "out", validate=False).output


@pytest.fixture
def artifacts(built, tmp_path):
    """A fresh copy of the artifact folder per test: bench writes into it."""
    return shutil.copytree(built, tmp_path / "artifacts")


def invoke(*args: str):
    return CliRunner().invoke(main, ["bench", *args])


def assert_manifest_complete(folder) -> Manifest:
    """manifest.json lists every other file of the folder, with its sha256 and size; bench.json once."""
    manifest = read_manifest(folder)
    listed = manifest.entries()
    assert sorted(listed) == list_files(folder)
    for relative, entry in listed.items():
        assert entry.sha256 == sha256_file(folder / relative), relative
        assert entry.size == (folder / relative).stat().st_size, relative
    assert [entry.path for entry in manifest.shared_files].count(BENCH_NAME) == 1
    return manifest


def assert_numbers_agree(rows: dict[str, dict], num_texts: int) -> None:
    """Throughput is texts / median round time, and ratio_to_torch each model's throughput / torch's, from
    the rounded numbers bench.json holds (so within their rounding): at the top level (the summary class),
    and in each class, where tokens/s is texts/s × the mean tokens the model ran."""
    torch_throughput = rows["torch"]["throughput"]
    assert rows["torch"]["ratio_to_torch"] == 1.0
    for name, row in rows.items():
        assert row["throughput"] == pytest.approx(num_texts / statistics.median(row["round_seconds"]), rel=0.02), name
        assert row["ratio_to_torch"] == pytest.approx(row["throughput"] / torch_throughput, rel=2e-3, abs=1e-3), name
        summary = row["classes"][row["summary_class"]]
        assert (row["throughput"], row["tokens_per_second"]) == (summary["texts_per_second"],
                                                                 summary["tokens_per_second"]), name
        for class_name, numbers in row["classes"].items():
            torch_numbers = rows["torch"]["classes"][class_name]
            assert numbers["texts_per_second"] == pytest.approx(
                numbers["texts"] / statistics.median(numbers["round_seconds"]), rel=0.02), (name, class_name)
            assert numbers["tokens_per_second"] == pytest.approx(
                numbers["texts_per_second"] * numbers["mean_tokens"], rel=2e-3, abs=0.1), (name, class_name)
            assert numbers["ratio_to_torch"] == pytest.approx(
                numbers["texts_per_second"] / torch_numbers["texts_per_second"], rel=2e-3, abs=1e-3), (name, class_name)
            # One tokenizer (the model's), truncated at the same max_seq_length: the same tokens for every model.
            assert numbers["mean_tokens"] == torch_numbers["mean_tokens"] > 0, (name, class_name)


def test_bench_writes_results_and_updates_the_manifest(artifacts):
    result = invoke(str(artifacts), *SMALL, "--no-memory")
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "texts/s" in result.stderr and "onnx-fp32-sentence" in result.stderr  # the table, on stderr
    assert "cos min" in result.stderr
    assert result.stdout == ""

    assert "tokens/s" in result.stderr and "precision" in result.stderr
    for class_name in CLASSES:
        assert f" {class_name} " in result.stderr

    saved = json.loads((artifacts / BENCH_NAME).read_text())
    assert saved["schema_version"] == 2
    assert saved["settings"] == {**saved["settings"], "batch_size": 4, "num_texts": 12, "rounds": 2, "threads": 1,
                                 "summary_class": "mixed"}
    described = saved["settings"]["length_classes"]
    assert list(described) == CLASSES
    assert [described[name]["texts"] for name in CLASSES] == [12, 12, 3]  # long: a quarter of --num-texts
    assert described["short"]["max_chars"] < SHORT_MAX_CHARS
    assert described["long"]["built_passages"] == 0  # the built-in set has enough long texts for 3
    assert saved["host"]["threads"] == 1 and saved["host"]["cores"] >= 1
    assert {"torch", "onnxruntime", "openvino", "sentence_transformers"} <= saved["versions"].keys()
    assert saved["reference"]["available"] is True
    rows = {row["name"]: row for row in saved["results"]}
    assert list(rows) == ["torch", *VARIANTS]
    assert rows["torch"]["kind"] == "torch" and rows["torch"]["size_bytes"] > 0
    assert_numbers_agree(rows, 12)
    for name in VARIANTS:
        row = rows[name]
        assert row["kind"] == "variant" and row["precision"] == "fp32"
        assert row["graph"] == ("sentence" if name.endswith("sentence") else "transformer")
        assert row["size_bytes"] > 0
        assert row["loader"] == "encoder" and row["runtime"]["mode"] == "latency"  # the defaults
        speed = row["runtime"]["speed"]  # the deploy runtime's settings: speed-only, and numerics
        assert speed.get("intra_op_num_threads", speed.get("INFERENCE_NUM_THREADS")) == 1
        assert row["cosine_min"] >= FP32_COSINE and row["cosine_mean"] >= row["cosine_min"], row
        for class_name in CLASSES:
            assert row["classes"][class_name]["cosine_min"] >= FP32_COSINE, (name, class_name)
        assert row["precision_in_force"] == "f32", row  # read back: OpenVINO's compiled precision, ONNX's graph
        assert row["precision_detail"]["int8_matmuls"] == 0 and row["precision_detail"]["matmuls"] > 0, row
        if row["backend"] == "openvino":  # the manifest's runtime_options are what the runner compiled with
            assert row["runtime"]["numerics"]["INFERENCE_PRECISION_HINT"] == "f32", row["runtime"]
    assert rows["openvino-fp32-sentence"]["runtime"]["compiled_inference_precision"] == "f32"
    assert rows["torch"]["precision_in_force"] == "f32"
    for row in rows.values():
        assert row["throughput"] > 0 and len(row["round_seconds"]) == 2
        assert 0 < row["latency_p50_ms"] <= row["latency_p95_ms"] and row["latency_samples"] == 4
        assert row["rss_delta_mb"] is None  # --no-memory
        assert list(row["classes"]) == CLASSES
        for numbers in row["classes"].values():
            assert len(numbers["round_seconds"]) == 2 and numbers["latency_samples"] == 4
            assert 0 < numbers["latency_p50_ms"] <= numbers["latency_p95_ms"]
        # Long texts run more tokens than short ones (the tiny model truncates at its max_seq_length).
        assert row["classes"]["short"]["mean_tokens"] < row["classes"]["long"]["mean_tokens"]

    manifest = assert_manifest_complete(artifacts)
    for variant in manifest.variants:
        row = rows[variant.name]
        assert variant.bench == summary_of(row)

    # A second run on one variant, --json: replaces bench.json and its manifest entry; the other variants
    # lose their summary, so the manifest agrees with bench.json.
    again = invoke(str(artifacts), *SMALL, "--no-memory", "--variant", "onnx-fp32", "--json", "-q")
    assert again.exit_code == 0, again.stderr
    printed = json.loads(again.stdout)
    assert [row["name"] for row in printed["results"]] == ["torch", "onnx-fp32"]
    assert printed == json.loads((artifacts / BENCH_NAME).read_text())
    manifest = assert_manifest_complete(artifacts)
    assert [variant.bench is not None for variant in manifest.variants] == [True, False, False, False]
    assert manifest.variant("onnx-fp32").bench.throughput == printed["results"][1]["throughput"]


def test_compare_adds_other_models_to_the_same_run(artifacts, built, tmp_path):
    other = shutil.copytree(built, tmp_path / "other-export")
    result = invoke(str(artifacts), *SMALL, "--no-memory", "--no-save", "--json", "--variant", "onnx-fp32-sentence",
                    "--compare", f"{other}:onnx/model.onnx", "--compare", f"{other}:openvino/openvino_model.xml")
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["results"]}
    assert list(rows) == ["torch", "onnx-fp32-sentence", "other-export/onnx/model.onnx",
                          "other-export/openvino/openvino_model.xml"]
    assert rows["other-export/onnx/model.onnx"]["kind"] == "compare"
    assert rows["other-export/onnx/model.onnx"]["backend"] == "onnx"
    assert rows["other-export/openvino/openvino_model.xml"]["backend"] == "openvino"
    assert rows["other-export/onnx/model.onnx"]["size_bytes"] == (other / "onnx" / "model.onnx").stat().st_size
    assert rows["other-export/openvino/openvino_model.xml"]["runtime"]["numerics"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert_numbers_agree(rows, 12)
    for name, row in rows.items():
        if name != "torch":  # the peers are fp32 exports of the same model: torch's embeddings, same texts
            assert row["cosine_min"] >= FP32_COSINE, row
    assert not (artifacts / BENCH_NAME).exists()  # --no-save


def test_compare_peers_run_like_fp32_transformer_variants_and_repeated_names_are_numbered(built):
    onnx, openvino = parse_compare(f"{built}:onnx/model.onnx"), parse_compare(f"{built}:openvino/openvino_model.xml")
    assert (onnx.kind, onnx.backend, onnx.graph, onnx.spec.runtime_options) == ("compare", "onnx", "transformer", {})
    assert openvino.spec.runtime_options == {"INFERENCE_PRECISION_HINT": "f32"}  # not the CPU's bf16 default
    assert [target.name for target in unique_names([onnx, onnx, onnx.renamed("torch")])] == [
        f"{built.name}/onnx/model.onnx", f"{built.name}/onnx/model.onnx#2", "torch#2"]


@pytest.mark.skipif(not ST_ONNX, reason="sentence-transformers cannot load ONNX here (no usable optimum-onnx)")
def test_via_both_loaders_measures_each_variant_twice_and_the_manifest_keeps_the_encoder_numbers(artifacts, built):
    st = "sentence-transformers"
    peer = f"{built.name}/onnx/model.onnx"
    result = invoke(str(artifacts), "--num-texts", "8", "--batch-size", "4", "--rounds", "1", "--warmup", "0",
                    "--latency-texts", "2", "--threads", "1", "--no-memory", "--json", "-q", "--mode", "throughput",
                    "--via", "encoder", "--via", st, "--compare", f"{built}:onnx/model.onnx")
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == json.loads((artifacts / BENCH_NAME).read_text())
    assert printed["settings"]["via"] == ["encoder", st] and printed["settings"]["mode"] == "throughput"
    rows = {row["name"]: row for row in printed["results"]}
    assert list(rows) == ["torch", "onnx-fp32", f"onnx-fp32 ({st})", "onnx-fp32-sentence", "openvino-fp32",
                          f"openvino-fp32 ({st})", "openvino-fp32-sentence", peer, f"{peer} ({st})"]
    assert rows["torch"]["loader"] == st
    for name, row in rows.items():
        if name == "torch":
            continue
        loader = st if name.endswith(f"({st})") else "encoder"
        assert row["loader"] == loader and row["runtime"]["loader"] == loader, row
        assert row["kind"] == ("compare" if name.startswith(peer) else "variant")
        assert row["cosine_min"] >= FP32_COSINE, row  # fp32 rows of both loaders give torch's embeddings
        if loader == "encoder":
            assert row["runtime"]["mode"] == "throughput"
        else:
            assert row["graph"] == "transformer"  # graph: sentence variants have no sentence-transformers row
    assert rows[f"openvino-fp32 ({st})"]["runtime"]["INFERENCE_PRECISION_HINT"] == "f32"
    skipped = [note for note in printed["notes"] if f"not measured through {st}" in note]
    assert len(skipped) == 1 and "onnx-fp32-sentence" in skipped[0] and "openvino-fp32-sentence" in skipped[0]

    manifest = assert_manifest_complete(artifacts)
    for variant in manifest.variants:  # the summaries come from the encoder rows (what deploy hosts run)
        row = rows[variant.name]
        assert variant.bench == summary_of(row)
    kept = {variant.name: variant.bench for variant in manifest.variants}

    # sentence-transformers only: bench.json has its rows, the manifest's summaries stay as they were.
    only = bench(artifacts, variants=["onnx-fp32", "onnx-fp32-sentence"], via=[st], num_texts=4, batch_size=2,
                 rounds=1, warmup_rounds=0, latency_count=0, threads=1, measure_memory=False)
    assert [(r.target.name, r.target.loader) for r in only.results] == [("torch", st), (f"onnx-fp32 ({st})", st)]
    assert any("bench summaries were left as they were" in note for note in only.notes)
    assert [row["loader"] for row in json.loads((artifacts / BENCH_NAME).read_text())["results"]] == [st, st]
    manifest = assert_manifest_complete(artifacts)
    assert {variant.name: variant.bench for variant in manifest.variants} == kept


def test_via_sentence_transformers_on_openvino_reads_back_the_compiled_precision_per_class(artifacts, built):
    st = "sentence-transformers"
    peer = f"{built.name}/openvino/openvino_model.xml"
    result = invoke(str(artifacts), "--num-texts", "8", "--batch-size", "4", "--rounds", "1", "--warmup", "0",
                    "--latency-texts", "2", "--threads", "1", "--no-memory", "--no-save", "--json", "-q",
                    "--variant", "openvino-fp32", "--variant", "openvino-fp32-sentence", "--via", "encoder",
                    "--via", st, "--compare", f"{built}:openvino/openvino_model.xml")
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    rows = {row["name"]: row for row in printed["results"]}
    assert list(rows) == ["torch", "openvino-fp32", f"openvino-fp32 ({st})", "openvino-fp32-sentence", peer,
                          f"{peer} ({st})"]
    assert_numbers_agree(rows, 8)
    for name, row in rows.items():
        assert list(row["classes"]) == CLASSES
        assert row["precision_in_force"] == "f32", row  # sentence-transformers' rows: optimum's compiled model
        if name != "torch":
            assert row["loader"] == (st if name.endswith(f"({st})") else "encoder")
            for numbers in row["classes"].values():
                assert numbers["cosine_min"] >= FP32_COSINE, row


def test_memory_is_measured_in_child_processes(artifacts):
    result = invoke(str(artifacts), *SMALL, "--variant", "onnx-fp32-sentence", "--json", "-q")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["results"]
    assert [row["name"] for row in rows] == ["torch", "onnx-fp32-sentence"]
    for row in rows:
        assert row["rss_delta_mb"] > 0, row
    manifest = assert_manifest_complete(artifacts)
    assert manifest.variant("onnx-fp32-sentence").bench.rss_delta_mb == rows[1]["rss_delta_mb"]


def test_without_the_torch_reference_ratios_are_omitted(artifacts, tmp_path, tiny_model):
    manifest = read_manifest(artifacts)
    manifest.source.location = str(tmp_path / "gone")
    write_manifest(artifacts, manifest)
    texts = tmp_path / "texts.txt"
    texts.write_text("first text\n\nsecond, a bit longer text\nthird\n", encoding="utf-8")

    result = bench(artifacts, variants=["onnx-fp32-sentence"], texts_file=texts, num_texts=5, batch_size=2,
                   rounds=1, warmup_rounds=0, latency_count=2, threads=1, measure_memory=False, save=False)
    data = result.to_dict()
    assert [row["name"] for row in data["results"]] == ["onnx-fp32-sentence"]
    assert data["results"][0]["ratio_to_torch"] is None and data["results"][0]["throughput"] > 0
    assert data["results"][0]["cosine_min"] is None
    assert data["reference"]["available"] is False
    assert any("no torch reference" in note and "--source" in note for note in data["notes"])
    assert data["settings"]["texts"] == str(texts) and data["settings"]["num_texts"] == 5
    assert not (artifacts / BENCH_NAME).exists()

    # --source brings the reference back.
    with_source = bench(artifacts, variants=["onnx-fp32-sentence"], num_texts=4, batch_size=2, rounds=1,
                        warmup_rounds=0, latency_count=0, threads=1, source_dir=tiny_model("bert"),
                        measure_memory=False, save=False)
    assert [r.target.name for r in with_source.results] == ["torch", "onnx-fp32-sentence"]
    assert with_source.reference == {"available": True, "location": str(tiny_model("bert").resolve())}
    measured, torch = with_source.result("onnx-fp32-sentence"), with_source.result("torch")
    assert measured.ratio_to_torch == pytest.approx(measured.throughput / torch.throughput)
    assert measured.cosine_min >= FP32_COSINE


def _assert_one_line(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_bad_input_is_exit_2(artifacts, tmp_path):
    _assert_one_line(invoke(str(tmp_path / "missing")), 2, "no such artifact folder")
    (tmp_path / "empty").mkdir()
    _assert_one_line(invoke(str(tmp_path / "empty")), 2, "no manifest.json")
    _assert_one_line(invoke(str(artifacts), "--variant", "nope"), 2, "no variant 'nope'")
    _assert_one_line(invoke(str(artifacts), "--compare", str(tmp_path)), 2, "expected FOLDER:FILE")
    _assert_one_line(invoke(str(artifacts), "--compare", f"{artifacts}:tokenizer.json"), 2, "cannot tell the backend")
    _assert_one_line(invoke(str(artifacts), "--compare", f"{artifacts}:onnx/absent.onnx"), 2,
                     "no file onnx/absent.onnx")
    _assert_one_line(invoke(str(artifacts), "--compare", f"{tmp_path / 'nowhere'}:model.onnx"), 2, "does not exist")
    _assert_one_line(invoke(str(artifacts), "--texts", str(tmp_path / "none.txt")), 2, "--texts")
    _assert_one_line(invoke(str(artifacts), "--source", str(tmp_path / "empty")), 2, "--source", "not a sentence-")
    assert not (artifacts / BENCH_NAME).exists()


def test_a_runtime_that_cannot_load_is_exit_3_naming_the_variant(artifacts):
    (artifacts / "onnx" / "model_fp32_sentence.onnx").write_bytes(b"not an onnx graph")
    result = invoke(str(artifacts), *SMALL, "--no-memory", "--variant", "onnx-fp32-sentence")
    _assert_one_line(result, 3, "variant onnx-fp32-sentence", "onnxruntime cannot load it")
    assert not (artifacts / BENCH_NAME).exists()


# --------------------------------------------------------------------------------------- length classes


def test_length_classes_follow_their_rules_and_build_long_passages_deterministically():
    texts = [f"text number {i} " + "word " * (i % 7) for i in range(40)] + ["x" * 700, "y" * (SHORT_MAX_CHARS + 1)]
    classes, notes = class_texts(texts, ["short", "mixed", "long"], 16)
    assert notes == []
    by_name = {c.name: c for c in classes}
    assert all(len(text) < SHORT_MAX_CHARS for text in by_name["short"].texts) and len(by_name["short"].texts) == 16
    assert len(by_name["mixed"].texts) == 16
    long = by_name["long"]
    assert len(long.texts) == 4 and long.built == 3  # one long text in the set: three passages built
    assert long.texts[0] == "x" * 700
    for passage in long.texts[1:]:
        assert len(passage) >= PASSAGE_CHARS and passage.startswith("text number ")
    assert class_texts(texts, ["long"], 16)[0][0].texts == long.texts  # deterministic
    # The passages join consecutive texts under LONG_MIN_CHARS, in the set's order.
    pool, built = long_pool(texts, 2)
    shorter = [text for text in texts if len(text) < LONG_MIN_CHARS]
    assert built == 1 and pool[1].startswith(" ".join(shorter[:3]))

    # A class the set has no text for is left out, with a note; none at all is bad input.
    only_long = ["z" * 600, "w" * 800]
    classes, notes = class_texts(only_long, ["short", "long"], 8)
    assert [c.name for c in classes] == ["long"] and "no text under 200 characters" in notes[0]
    with pytest.raises(BadInputError, match="length_classes short: the text set has no text for it"):
        class_texts(only_long, ["short"], 8)


def test_length_class_option_selects_classes_and_the_summary_class(artifacts):
    result = invoke(str(artifacts), *SMALL, "--no-memory", "--json", "-q", "--variant", "onnx-fp32",
                    "--length-class", "long", "--length-class", "short")
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert list(printed["settings"]["length_classes"]) == ["short", "long"]  # in the classes' own order
    assert printed["settings"]["summary_class"] == "short"  # no mixed class: the first one measured
    rows = {row["name"]: row for row in printed["results"]}
    for row in rows.values():
        assert list(row["classes"]) == ["short", "long"] and row["summary_class"] == "short"
    assert_numbers_agree(rows, 12)
    manifest = assert_manifest_complete(artifacts)
    assert manifest.variant("onnx-fp32").bench.throughput == rows["onnx-fp32"]["classes"]["short"]["texts_per_second"]

    with pytest.raises(BadInputError, match="length_classes 'tiny'"):
        bench(artifacts, length_classes=["tiny"], save=False)


def test_a_texts_file_without_long_texts_gets_built_passages_and_bad_classes_are_exit_2(artifacts, tmp_path):
    texts = tmp_path / "short.txt"
    texts.write_text("\n".join(f"query {i} about topic {i * 3}" for i in range(20)) + "\n", encoding="utf-8")
    result = bench(artifacts, variants=["onnx-fp32-sentence"], texts_file=texts, num_texts=8, batch_size=4,
                   rounds=1, warmup_rounds=0, latency_count=1, threads=1, measure_memory=False, save=False)
    described = result.settings["length_classes"]
    assert described["long"] == {**described["long"], "texts": 2, "built_passages": 2}
    assert described["long"]["mean_chars"] >= PASSAGE_CHARS
    measured = result.result("onnx-fp32-sentence").classes
    assert measured["long"].mean_tokens > measured["short"].mean_tokens
    assert measured["long"].cosine_min >= FP32_COSINE

    long_only = tmp_path / "long.txt"
    long_only.write_text("a long passage " * 60 + "\n", encoding="utf-8")
    _assert_one_line(invoke(str(artifacts), "--texts", str(long_only), "--length-class", "short"), 2,
                     "--length-class short", "no text for it")
    bad = invoke(str(artifacts), "--length-class", "tiny")
    assert bad.exit_code == 2 and "'tiny' is not one of 'short', 'mixed', 'long'" in bad.output


# ------------------------------------------------------------------------------------------------- int8


@pytest.fixture(scope="module")
def int8_built(tmp_path_factory, tiny_model):
    """A tiny model with int8 variants: ONNX dynamic, OpenVINO static (NNCF) and OpenVINO weight-only."""
    folder = tmp_path_factory.mktemp("bench-int8")
    (folder / "calib.txt").write_text("\n".join(f"calibration text {i} about topic {i * 7}" for i in range(20)))
    recipe = write_recipe(folder, f"""
name: tiny-int8
model:
  path: {tiny_model('bert')}
variants:
  - {{backend: onnx, precision: int8, quantization: {{isa: avx2}}}}
  - {{backend: openvino, precision: int8, quantization: {{calibration: {{corpus: calib.txt, samples: 8}}}}}}
  - {{backend: openvino, precision: int8, quantization: {{method: weight_only}}}}
""")
    return build(recipe, output=folder / "out", validate=False).output


def test_int8_variants_report_the_share_of_matmuls_that_run_in_int8(int8_built):
    result = bench(int8_built, num_texts=8, batch_size=4, rounds=1, warmup_rounds=0, latency_count=1, threads=1,
                   measure_memory=False, save=False, length_classes=["short"])
    data = {row["name"]: row for row in result.to_dict()["results"]}
    assert list(data) == ["torch", "onnx-int8-dynamic-avx2", "openvino-int8-static", "openvino-int8-weight-only"]
    for name, row in data.items():
        detail = row["precision_detail"]
        if name == "torch":
            assert row["precision_in_force"] == "f32" and detail["int8_share"] is None
            continue
        assert 0 < detail["int8_share"] <= 1 and 0 < detail["int8_matmuls"] <= detail["matmuls"], row
        assert row["precision_in_force"] == row["precision_detail"]["label"]
        share = f"{detail['int8_share']:.0%}"
        weights = " weights" if name.endswith("weight-only") else ""
        assert row["precision_in_force"] == f"int8{weights} {share} / f32", row  # OpenVINO: compiled at f32
        assert detail["int8_weights_only"] is bool(weights)
        assert 0.5 < row["classes"]["short"]["cosine_min"] <= 1.0  # close to torch, not equal
    # Dynamic ONNX quantisation leaves the activation × activation attention MatMuls in float.
    assert data["onnx-int8-dynamic-avx2"]["precision_detail"]["int8_share"] < 1


# --------------------------------------------------------------------------------------- the chart (--plot)


def png_text(data: bytes) -> dict[str, str]:
    """The tEXt chunks of a PNG (after checking its signature)."""
    import struct

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, position = {}, 8
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            chunks[key.decode("latin-1")] = value.decode("latin-1")
        position += 12 + length
    return chunks


def test_plot_draws_the_run_beside_bench_json_with_the_cpu_in_the_title(artifacts, tmp_path):
    import xml.etree.ElementTree as ElementTree

    from exporter.diagnostics.bench_plot import chart_points, write_chart

    chart = tmp_path / "charts" / "speed.png"
    result = invoke(str(artifacts), *SMALL, "--no-memory", "--plot", str(chart))
    assert result.exit_code == 0, (result.output, result.stderr)
    data = json.loads((artifacts / BENCH_NAME).read_text())
    cpu = data["host"]["cpu"]
    title = png_text(chart.read_bytes())["Title"]
    assert cpu in title and artifacts.name in title
    # the same chart beside bench.json, listed in the manifest like it (push uploads it, the card shows it)
    assert (artifacts / "bench.png").read_bytes() == chart.read_bytes()
    assert "bench.png" in {entry.path for entry in assert_manifest_complete(artifacts).shared_files}
    # every variant and class with a ratio and a cosine is a point; torch is the (1, 1) anchor
    points = chart_points(data)
    assert {(p["model"], p["class"]) for p in points} == {(row["name"], c) for row in data["results"] for c in CLASSES}
    assert all(p["ratio"] > 0 and 0.9 < p["cosine_min"] <= 1.0 for p in points)

    # a saved bench.json plots again as SVG (text kept as text); the same numbers give the same bytes
    svg = write_chart(json.loads((artifacts / BENCH_NAME).read_text()), tmp_path / "again.svg", name="tiny")
    root = ElementTree.parse(svg).getroot()
    assert root.tag.endswith("svg")
    texts = " ".join("".join(node.itertext()) for node in root.iter() if node.tag.endswith("text"))
    assert cpu in texts and "cosine min" in texts and "onnx-fp32-sentence" in texts
    assert write_chart(data, tmp_path / "twice.svg", name="tiny").read_bytes() == svg.read_bytes()

    # a later run with an SVG chart replaces the PNG beside bench.json; one without a chart removes it
    assert invoke(str(artifacts), *SMALL, "--no-memory", "--plot", str(tmp_path / "b.svg")).exit_code == 0
    assert not (artifacts / "bench.png").exists() and (artifacts / "bench.svg").is_file()
    assert invoke(str(artifacts), *SMALL, "--no-memory").exit_code == 0
    assert not (artifacts / "bench.svg").exists()
    assert not {"bench.png", "bench.svg"} & {e.path for e in assert_manifest_complete(artifacts).shared_files}


def test_plot_without_matplotlib_is_exit_3_naming_the_extra_before_measuring(artifacts, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    result = invoke(str(artifacts), *SMALL, "--no-memory", "--plot", str(tmp_path / "x.png"))
    _assert_one_line(result, 3, 'pip install "embedding-exporter[plot]"')
    assert "texts/s" not in result.stderr and "Loading" not in result.stderr  # nothing was measured
    assert not (artifacts / BENCH_NAME).exists() and not (tmp_path / "x.png").exists()


def test_plot_to_another_format_is_exit_2_naming_the_flag(artifacts, tmp_path):
    _assert_one_line(invoke(str(artifacts), *SMALL, "--plot", str(tmp_path / "x.pdf")), 2, "--plot", ".png or .svg")
    assert not (artifacts / BENCH_NAME).exists()
