"""``exporter embed``: a generated 20,000-row corpus through a tiny artifact gives, with the local engine and
with Ray, exactly ``exporter.load(...).encode`` row for row; a SIGKILLed run resumes without recomputing its
finished parts; bad rows fail or are skipped; no pyarrow is exit 3; peak memory does not grow with the corpus."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import cosine, write_recipe

import exporter
from exporter.texts import builtin_texts

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

ROWS = 20_000
CHUNK = 4_000
VARIANT = "onnx-fp32-sentence"


def _texts(count: int, seed: int = 0) -> list[str]:
    """Varied texts: the built-in ones (cut to 160 characters) and recombinations of two or three of them."""
    base = [t.text.strip()[:160] for t in builtin_texts() if t.text.strip()]
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(count):
        if i < len(base):
            texts.append(base[i])
            continue
        picks = rng.integers(0, len(base), size=int(rng.integers(2, 4)))
        texts.append(" ".join(base[p] for p in picks)[: int(rng.integers(8, 240))].strip() or base[i % len(base)])
    return texts


def _write_corpus(path: Path, count: int, seed: int = 0) -> list[str]:
    texts = _texts(count, seed)
    with open(path, "w", encoding="utf-8") as stream:
        for i, text in enumerate(texts):
            stream.write(json.dumps({"id": f"doc-{i}", "text": text, "n": i}, ensure_ascii=False) + "\n")
    return texts


def _read(output: Path) -> tuple[list, np.ndarray, list]:
    parts = sorted(output.glob("part-*.parquet"))
    table = pa.concat_tables([pq.read_table(part) for part in parts])
    embeddings = np.asarray(table.column("embedding").combine_chunks().flatten()).reshape(table.num_rows, -1)
    kept = table.column("n").to_pylist() if "n" in table.column_names else []
    return table.column("id").to_pylist(), embeddings, kept


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("embed")
    recipe = write_recipe(root, f"name: tiny\nmodel:\n  path: {tiny_model('bert', 'mean', False, True)}\n"
                          "variants:\n  - {backend: onnx, graph: sentence}\n")
    artifact = exporter.build(recipe, output=root / "artifact").output
    corpus = root / "corpus.jsonl"
    texts = _write_corpus(corpus, ROWS)
    expected = exporter.load(str(artifact), VARIANT).encode(texts)
    return {"root": root, "artifact": artifact, "corpus": corpus, "texts": texts, "expected": expected}


@pytest.fixture(scope="module")
def local_run(setup):
    output = setup["root"] / "local"
    result = exporter.embed(str(setup["artifact"]), input=setup["corpus"], output=output, variant=VARIANT,
                            chunk_rows=CHUNK, keep_columns=["n"], workers=2)
    return output, result


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exporter", "embed", *args], capture_output=True, text=True,
                          timeout=timeout)


def _assert_equal_to_load(output: Path, setup) -> None:
    ids, embeddings, kept = _read(output)
    assert ids == [f"doc-{i}" for i in range(ROWS)]
    assert kept == list(range(ROWS))
    assert embeddings.dtype == np.float32 and embeddings.shape == setup["expected"].shape
    assert cosine(embeddings, setup["expected"]).min() >= 0.99999
    assert np.abs(embeddings - setup["expected"]).max() <= 1e-5


def test_local_engine_equals_load_row_for_row_and_records_the_artifact(setup, local_run):
    output, result = local_run
    _assert_equal_to_load(output, setup)
    assert (result.rows, result.parts, result.workers, result.skipped_rows) == (ROWS, ROWS // CHUNK, 2, 0)
    assert result.tokens > ROWS and result.rows_per_second > 0
    schema = pq.read_schema(output / "part-00000.parquet")
    assert str(schema.field("embedding").type) == "fixed_size_list<element: float>[32]"
    manifest = json.loads((output / "_manifest.json").read_text())
    artifact = exporter.read_manifest(setup["artifact"])
    variant = artifact.variant(VARIANT)
    entries, _ = artifact.needed_entries(variant)
    assert manifest["complete"] is True and manifest["artifact"]["variant"] == VARIANT
    assert manifest["artifact"]["files"] == {entry.path: entry.sha256 for entry in entries}
    assert variant.file_name in manifest["artifact"]["files"]
    assert manifest["numerics"] == exporter.load(str(setup["artifact"]), VARIANT).settings["numerics"]
    assert manifest["inputs"] == [{"path": str(setup["corpus"].resolve()), "format": "jsonl",
                                   "size": setup["corpus"].stat().st_size, "rows": ROWS}]
    assert [part["rows"] for part in manifest["parts"]] == [CHUNK] * (ROWS // CHUNK)
    assert not list(output.glob(".*"))


def test_sigkill_mid_run_then_rerun_keeps_finished_parts_and_equals_an_uninterrupted_run(setup, local_run):
    output = setup["root"] / "killed"
    args = [str(setup["artifact"]), "--input", str(setup["corpus"]), "--output", str(output), "--variant", VARIANT,
            "--chunk-rows", str(CHUNK), "--keep-columns", "n", "--workers", "1", "--threads", "1", "--batch-size", "8"]
    process = subprocess.Popen([sys.executable, "-m", "exporter", "embed", *args, "--quiet"])
    deadline = time.monotonic() + 120
    while not (output / "part-00000.parquet").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = {path.name: path.stat().st_mtime_ns for path in output.glob("part-*.parquet")}
    assert finished and len(finished) < ROWS // CHUNK, finished
    rerun = _cli(*args, "--json")
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["parts_reused"] >= len(finished) and summary["rows"] == ROWS
    assert summary["encoded_rows"] == ROWS - CHUNK * summary["parts_reused"]
    for name, mtime in finished.items():
        assert (output / name).stat().st_mtime_ns == mtime, f"{name} was rewritten"
    assert not list(output.glob(".*")), "a temporary file was left"
    ids, embeddings, kept = _read(output)
    reference_ids, reference, reference_kept = _read(local_run[0])
    assert ids == reference_ids and kept == reference_kept
    assert np.abs(embeddings - reference).max() <= 1e-6
    manifest = json.loads((output / "_manifest.json").read_text())
    assert [p["rows"] for p in manifest["parts"]] == [CHUNK] * (ROWS // CHUNK) and manifest["complete"]


def test_a_part_is_recorded_in_the_manifest_before_it_appears(tmp_path):
    # A kill between a part's rename and its manifest record left a folder the rerun refused ("not empty and holds
    # no _manifest.json"): the record is now written first, so no visible part is ever unrecorded.
    import pyarrow as pa

    from exporter.artifact.integrity import sha256_file
    from exporter.deploy.embed_io import write_part

    table = pa.table({"id": ["a", "b"], "n": [1, 2]})
    seen = []

    def before_publish(record):
        seen.append((dict(record), (tmp_path / record["name"]).exists(), sorted(p.name for p in tmp_path.iterdir())))

    record = write_part(tmp_path, 3, table, before_publish=before_publish)
    (early, visible, names), = seen
    assert early == record and record["name"] == "part-00003.parquet" and record["rows"] == 2
    assert not visible and len(names) == 1 and names[0].startswith(".part-00003.parquet.")
    assert sha256_file(tmp_path / record["name"]) == record["sha256"]


def test_another_variant_or_setting_in_the_same_output_is_refused_unless_overwrite(setup, tmp_path):
    small = tmp_path / "small.jsonl"
    _write_corpus(small, 50)
    output = tmp_path / "out"
    assert _cli(str(setup["artifact"]), "--input", str(small), "--output", str(output), "-q").returncode == 0
    manifest = json.loads((output / "_manifest.json").read_text())
    file_name = exporter.read_manifest(setup["artifact"]).variant(VARIANT).file_name
    manifest["artifact"]["files"][file_name] = "0" * 64  # as if another build of the artifact had written it
    (output / "_manifest.json").write_text(json.dumps(manifest))
    refused = _cli(str(setup["artifact"]), "--input", str(small), "--output", str(output))
    assert refused.returncode == 2, refused.stderr
    assert "another artifact or variant" in refused.stderr and "--overwrite" in refused.stderr
    changed = _cli(str(setup["artifact"]), "--input", str(small), "--output", str(output), "--chunk-rows", "7",
                   "--overwrite", "--json")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["parts"] == 8
    assert len(list(output.glob("part-*.parquet"))) == 8


def test_bad_rows_fail_naming_file_line_and_field_or_are_skipped_and_listed(setup, tmp_path):
    rows = [{"id": "a", "text": "fine"}, {"id": "b"}, {"id": "c", "text": 7}, {"id": "d", "text": "  "},
            {"id": "e", "text": "also fine"}]
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text("".join(json.dumps(row) + "\n" for row in rows) + "not json\n", encoding="utf-8")
    failed = _cli(str(setup["artifact"]), "--input", str(corpus), "--output", str(tmp_path / "fail"))
    assert failed.returncode == 2
    assert f"{corpus.resolve()}: line 2: field 'text': missing" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr
    skipped = _cli(str(setup["artifact"]), "--input", str(corpus), "--output", str(tmp_path / "skip"),
                   "--on-bad-row", "skip", "--json")
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout)["rows"] == 2
    manifest = json.loads((tmp_path / "skip" / "_manifest.json").read_text())
    listed = [(bad["line"], bad["field"], bad["problem"].split(" (")[0].split(":")[0]) for bad in manifest["bad_rows"]]
    assert listed == [(2, "text", "missing"), (3, "text", "not a string"), (4, "text", "empty"),
                      (6, "(line)", "not a JSON object")]
    ids, embeddings, _ = _read(tmp_path / "skip")
    assert ids == ["a", "e"]
    expected = exporter.load(str(setup["artifact"]), VARIANT).encode(["fine", "also fine"])
    assert cosine(embeddings, expected).min() >= 0.99999


def test_a_folder_of_jsonl_csv_and_parquet_reads_in_file_order(setup, tmp_path):
    texts = _texts(30, seed=3)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": t, "url": f"u{i}"}) + "\n"
                                            for i, t in enumerate(texts[:10])), encoding="utf-8")
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa.table({"text": texts[10:20], "url": [f"u{i}" for i in range(10, 20)]}), folder / "b.csv")
    pq.write_table(pa.table({"text": texts[20:], "url": [f"u{i}" for i in range(20, 30)]}), folder / "c.parquet")
    result = exporter.embed(str(setup["artifact"]), input=folder, output=tmp_path / "out", variant=VARIANT,
                            keep_columns=["url"], chunk_rows=8, workers=1)
    assert (result.rows, result.parts) == (30, 4)
    table = pa.concat_tables([pq.read_table(p) for p in sorted((tmp_path / "out").glob("part-*.parquet"))])
    assert table.column("id").to_pylist() == list(range(30))  # no id field: row positions
    assert table.column("url").to_pylist() == [f"u{i}" for i in range(30)]
    embeddings = np.asarray(table.column("embedding").combine_chunks().flatten()).reshape(30, -1)
    expected = exporter.load(str(setup["artifact"]), VARIANT).encode(texts)
    assert cosine(embeddings, expected).min() >= 0.99999
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert [(Path(item["path"]).name, item["rows"]) for item in manifest["inputs"]] == [
        ("a.jsonl", 10), ("b.csv", 10), ("c.parquet", 10)]


def test_without_pyarrow_the_command_exits_3_naming_the_extra(setup, tmp_path):
    small = tmp_path / "small.jsonl"
    _write_corpus(small, 5)
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'pyarrow':
            raise ImportError("No module named 'pyarrow'")
sys.meta_path.insert(0, Block())
from exporter.cli import main
sys.argv = ['exporter', 'embed', {str(setup['artifact'])!r}, '--input', {str(small)!r}, '--output',
            {str(tmp_path / 'out')!r}]
main()
"""
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert process.returncode == 3, process.stderr
    assert 'pip install "embedding-exporter[embed]"' in process.stderr
    assert not (tmp_path / "out").exists()


def _peak_rss_mb(setup, corpus: Path, output: Path) -> float:
    code = f"""
import resource, exporter
exporter.embed({str(setup['artifact'])!r}, input={str(corpus)!r}, output={str(output)!r}, variant={VARIANT!r},
               chunk_rows=2000, workers=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-2000:]
    return float(process.stdout.strip().splitlines()[-1])


def test_peak_memory_stays_bounded_when_the_corpus_doubles(setup, tmp_path):
    """The corpus rows are padded to ~1 KB each so the file dominates a whole-file read: 20,000 and 40,000 rows
    (~20 and ~40 MB). Streaming keeps the peak within a few MB; reading the file whole would add its size."""
    sizes = {}
    for rows in (20_000, 40_000):
        corpus = tmp_path / f"corpus-{rows}.jsonl"
        texts = _texts(rows, seed=5)
        with open(corpus, "w", encoding="utf-8") as stream:
            for i, text in enumerate(texts):
                stream.write(json.dumps({"id": i, "text": text[:40], "pad": "x" * 1000}) + "\n")
        sizes[rows] = _peak_rss_mb(setup, corpus, tmp_path / f"out-{rows}")
    print(f"peak RSS: 20k rows {sizes[20_000]:.1f} MB, 40k rows {sizes[40_000]:.1f} MB")
    assert sizes[40_000] - sizes[20_000] < 15, sizes  # the second file is ~20 MB larger


# --- Ray ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray", reason="ray[data] is not installed (the ray extra)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_engine_equals_load_and_the_local_engine(setup, local_run, ray_instance):
    output = setup["root"] / "ray"
    result = exporter.embed(str(setup["artifact"]), input=setup["corpus"], output=output, variant=VARIANT,
                            chunk_rows=CHUNK, keep_columns=["n"], engine="ray", workers=2)
    assert (result.engine, result.rows, result.parts) == ("ray", ROWS, ROWS // CHUNK)
    _assert_equal_to_load(output, setup)
    ours = json.loads((output / "_manifest.json").read_text())
    local = json.loads((local_run[0] / "_manifest.json").read_text())
    for key in ("artifact", "numerics", "settings", "inputs", "schema", "rows", "bad_rows"):
        assert ours[key] == local[key], key
    assert [p["rows"] for p in ours["parts"]] == [p["rows"] for p in local["parts"]]


def test_embed_dataset_and_encoder_udf_on_a_ray_dataset(setup, tmp_path, ray_instance):
    from exporter.integrations.ray import EncoderUDF, embed_dataset

    texts = setup["texts"][:600]
    dataset = ray_instance.data.from_items([{"id": f"doc-{i}", "text": t} for i, t in enumerate(texts)])
    result = embed_dataset(dataset, str(setup["artifact"]), output=tmp_path / "out", variant=VARIANT,
                           chunk_rows=250, concurrency=1)
    assert (result.rows, result.parts) == (600, 3)
    ids, embeddings, _ = _read(tmp_path / "out")
    assert ids == [f"doc-{i}" for i in range(600)]
    assert cosine(embeddings, setup["expected"][:600]).min() >= 0.99999
    mapped = dataset.map_batches(EncoderUDF, fn_constructor_kwargs={"source": str(setup["artifact"]),
                                                                    "variant": VARIANT},
                                 concurrency=1, batch_size=200, batch_format="pyarrow").to_arrow_refs()
    table = pa.concat_tables([ray_instance.get(ref) for ref in mapped])
    by_id = dict(zip(table.column("id").to_pylist(), table.column("embedding").to_pylist(), strict=True))
    got = np.array([by_id[f"doc-{i}"] for i in range(600)], dtype=np.float32)
    assert cosine(got, setup["expected"][:600]).min() >= 0.99999


def test_docs_faiss_snippet_finds_a_passage_by_its_own_text(setup, local_run):
    pytest.importorskip("faiss", reason="faiss-cpu is not installed (a dev dependency)")
    snippet = Path(__file__).resolve().parents[1] / "docs" / "snippets" / "embed_faiss.py"
    query = setup["texts"][4321]
    process = subprocess.run([sys.executable, str(snippet), str(setup["artifact"]), str(local_run[0]), query],
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr[-2000:]
    hits = json.loads(process.stdout)
    assert len(hits) == 5 and hits[0]["score"] >= 0.9999
    assert setup["texts"][int(hits[0]["id"].removeprefix("doc-"))] == query
