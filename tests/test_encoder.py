"""The deploy runtime (``exporter.Encoder``): torch-free, precision-pinned, and meeting the fp32 parity bar
against ``SentenceTransformer(source).encode`` on every pooling mode, with and without Dense and Normalize,
on both backends and both graph kinds, on whatever CPU runs the suite.

The fp32 parity bar: per text, cosine >= 0.99999 and norm within 1e-4 (relative)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import RECIPES, cosine, write_recipe
from models import PIPELINES
from sentence_transformers import SentenceTransformer

import exporter
from exporter.errors import BadInputError
from exporter.runtime.pooling import UnsupportedModuleError
from exporter.texts import builtin_texts

TEXTS = [t.text for t in builtin_texts()][::4] + ["", "  padded with spaces  ", "word " * 300]
ALL_KINDS = "".join(f"  - {{backend: {backend}, graph: {graph}}}\n"
                    for backend in ("onnx", "openvino") for graph in ("transformer", "sentence"))


def assert_fp32_parity(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert got.dtype == np.float32 and got.shape == expected.shape, what
    assert cosine(got, expected).min() >= 0.99999, (what, cosine(got, expected).min())
    ratio = np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert np.abs(ratio - 1).max() <= 1e-4, (what, np.abs(ratio - 1).max())


def _build(tmp_path, model_dir, variants=ALL_KINDS):
    recipe = write_recipe(tmp_path, f"name: tiny\nmodel:\n  path: {model_dir}\nvariants:\n{variants}")
    return exporter.build(recipe, output=tmp_path / "out", validate=False)


@pytest.mark.parametrize(("architecture", "pooling", "dense", "normalize"), PIPELINES)
def test_encoder_meets_the_fp32_parity_bar(tmp_path, tiny_model, architecture, pooling, dense, normalize):
    model_dir = tiny_model(architecture, pooling, dense, normalize)
    result = _build(tmp_path, model_dir)
    expected = SentenceTransformer(str(model_dir), device="cpu").encode(TEXTS)
    for variant in result.manifest.variants:
        for mode in ("latency", "throughput"):
            encoder = exporter.load_encoder(result.output, variant.name, mode=mode)
            assert_fp32_parity(encoder.encode(TEXTS, batch_size=8), expected, f"{variant.name} {mode}")


def test_minilm_variants_meet_the_bar_with_long_texts(tmp_path, minilm_dir):
    """The built-in validation set, long texts included (truncated at 256, not the tokenizer file's 128)."""
    result = exporter.build(exporter.load_recipe(RECIPES / "minilm-openvino.yaml"), output=tmp_path / "ov",
                            variants=["openvino-fp32", "openvino-fp32-sentence"], validate=False)
    texts = [t.text for t in builtin_texts()]
    expected = SentenceTransformer(str(minilm_dir), device="cpu").encode(texts)
    for variant in result.manifest.variants:
        encoder = exporter.load_encoder(result.output, variant.name)
        assert encoder.max_seq_length == 256 and encoder.dimension == 384
        assert_fp32_parity(encoder.encode(texts), expected, variant.name)


def test_precision_in_force_is_read_back_and_equals_the_manifest(tmp_path, tiny_model):
    result = _build(tmp_path, tiny_model("bert", "mean", False, True))
    for variant in result.manifest.variants:
        settings = exporter.load_encoder(result.output, variant.name).settings
        assert settings["numerics"] == ({**variant.runtime_options} if variant.backend == "openvino"
                                        else {"execution_provider": "CPUExecutionProvider",
                                              "graph_optimization_level": "ORT_ENABLE_ALL"})
        if variant.backend == "openvino":
            # Read from the compiled model, not from what was asked: bf16-capable CPUs default to bf16.
            assert settings["compiled_inference_precision"] == variant.runtime_options["INFERENCE_PRECISION_HINT"]
            assert settings["compiled_inference_precision"] == "f32"
        else:
            assert settings["providers"] == ["CPUExecutionProvider"]
        assert settings["validated"] is True and settings["device"] == "cpu"


def test_artifacts_without_runtime_options_get_f32_and_say_so(tmp_path, tiny_model):
    result = _build(tmp_path, tiny_model("bert", "mean", False, True), "  - {backend: openvino}\n")
    manifest = exporter.read_manifest(result.output)
    manifest.variants[0].runtime_options = {}
    encoder = exporter.Encoder(result.output, manifest, manifest.variants[0])
    assert encoder.settings["compiled_inference_precision"] == "f32"
    assert encoder.settings["numerics_source"].startswith("default")


def test_single_string_order_and_normalisation(tmp_path, tiny_model):
    model_dir = tiny_model("bert", "cls", True, False)
    result = _build(tmp_path, model_dir, "  - {backend: onnx}\n")
    encoder = exporter.load_encoder(result.output)
    batch = encoder.encode(TEXTS, batch_size=3)
    one = encoder.encode(TEXTS[5])
    assert one.shape == (batch.shape[1],) and np.allclose(one, batch[5], atol=1e-5)
    normalised = encoder.encode(TEXTS, normalize_embeddings=True)
    assert np.allclose(np.linalg.norm(normalised, axis=1), 1.0, atol=1e-5)
    assert np.allclose(normalised, batch / np.linalg.norm(batch, axis=1, keepdims=True), atol=1e-5)
    assert encoder.encode([]).shape[0] == 0


def test_batches_group_texts_by_token_count(tmp_path, tiny_model):
    """Few characters can be many tokens (digits, symbols, rare words) and many characters few: batches are
    grouped by token count, so no batch pads a two-token text to the longest text of the call."""
    model_dir = tiny_model("bert", "mean", False, True)
    result = _build(tmp_path, model_dir, "  - {backend: onnx}\n")
    encoder = exporter.load_encoder(result.output)
    many_tokens = ["7 3 9 1 % 4 8 2 $ 5 6 0 # 1 2 3"] * 4  # 31 characters, 18 tokens
    few_tokens = ["the " * 10] * 4  # 40 characters, fewer tokens
    texts = [text for pair in zip(few_tokens, many_tokens, strict=True) for text in pair]
    token_counts = encoder.tokenizer.token_counts(texts)
    assert token_counts[1] > token_counts[0] and len(texts[1]) < len(texts[0])  # the premise
    widths = []
    run_all = encoder.session.run_all

    def recording(feeds, advance):
        widths.extend(feed["attention_mask"].shape[1] for feed in feeds)
        return run_all(feeds, advance)

    encoder.session.run_all = recording  # records the batches; the real session still runs them
    got = encoder.encode(texts, batch_size=4)
    assert widths == [token_counts[1], token_counts[0]]  # each batch as wide as its own texts, no wider
    expected = SentenceTransformer(str(model_dir), device="cpu").encode(texts)
    assert_fp32_parity(got, expected, "token-count batches")
    assert encoder.settings["batch_order"] == "token_count"


def test_prompts_and_include_prompt_follow_sentence_transformers(tmp_path, tiny_model):
    # A copy: the session's tiny model is shared, and prompts would put prompt checks into every later build.
    model_dir = Path(shutil.copytree(tiny_model("bert", "mean", False, True), tmp_path / "prompted-model"))
    pooling_config = model_dir / "1_Pooling" / "config.json"
    config = json.loads(pooling_config.read_text())
    pooling_config.write_text(json.dumps({**config, "include_prompt": False}))
    st_config = model_dir / "config_sentence_transformers.json"
    settings = json.loads(st_config.read_text())
    settings["prompts"] = {"query": "query: ", "document": "passage: "}
    st_config.write_text(json.dumps(settings))
    result = _build(tmp_path, model_dir, "  - {backend: onnx}\n  - {backend: openvino}\n")
    reference = SentenceTransformer(str(model_dir), device="cpu")
    for variant in result.manifest.variants:
        encoder = exporter.load_encoder(result.output, variant.name)
        assert_fp32_parity(encoder.encode_query(TEXTS[:20]), reference.encode(TEXTS[:20], prompt_name="query"),
                           f"{variant.name} query")
        assert_fp32_parity(encoder.encode_document(TEXTS[:20]),
                           reference.encode(TEXTS[:20], prompt_name="document"), f"{variant.name} document")
        assert_fp32_parity(encoder.encode(TEXTS[:20], prompt="custom: "),
                           reference.encode(TEXTS[:20], prompt="custom: "), f"{variant.name} custom")
        with pytest.raises(BadInputError, match="prompt_name 'nope'"):
            encoder.encode(TEXTS[:2], prompt_name="nope")


def test_sentence_graph_of_a_model_that_pools_without_its_prompt_is_refused(tmp_path, tiny_model):
    """A sentence graph pools every token it gets: with include_prompt: false and declared prompts it cannot
    embed like the model, so the build refuses it before writing anything (graph: transformer handles it)."""
    model_dir = Path(shutil.copytree(tiny_model("bert", "mean", False, True), tmp_path / "prompted-model"))
    pooling_config = model_dir / "1_Pooling" / "config.json"
    pooling_config.write_text(json.dumps({**json.loads(pooling_config.read_text()), "include_prompt": False}))
    st_config = model_dir / "config_sentence_transformers.json"
    st_config.write_text(json.dumps({**json.loads(st_config.read_text()), "prompts": {"query": "query: "}}))
    with pytest.raises(BadInputError, match=r"recipe.yaml:6: variants\[1\].graph: variant 'onnx-fp32-sentence': "
                                            r"a sentence graph .* include_prompt: false; prompts: query\); use graph: "
                                            "transformer"):
        _build(tmp_path, model_dir, "  - {backend: onnx}\n  - {backend: onnx, graph: sentence}\n")
    assert not (tmp_path / "out").exists()


def test_a_module_the_runtime_cannot_compute_is_refused_at_load(tmp_path, tiny_model):
    result = _build(tmp_path, tiny_model("bert", "mean", False, True), "  - {backend: onnx}\n")
    modules_file = result.output / "modules.json"
    modules = json.loads(modules_file.read_text())
    modules.insert(1, {"idx": 1, "name": "custom", "path": "custom", "type": "my_package.LayerThatDoesMagic"})
    modules_file.write_text(json.dumps(modules))
    with pytest.raises(UnsupportedModuleError, match="my_package.LayerThatDoesMagic") as caught:
        exporter.load_encoder(result.output)
    assert caught.value.exit_code == 2 and caught.value.module == "LayerThatDoesMagic"


def test_bad_arguments_are_bad_input(tmp_path, tiny_model):
    result = _build(tmp_path, tiny_model("bert", "mean", False, True), "  - {backend: onnx}\n")
    with pytest.raises(BadInputError, match="mode 'fast'"):
        exporter.load_encoder(result.output, mode="fast")
    encoder = exporter.load_encoder(result.output)
    with pytest.raises(BadInputError, match="batch_size 0"):
        encoder.encode(["a"], batch_size=0)
    with pytest.raises(BadInputError, match="texts"):
        encoder.encode([1, 2])
