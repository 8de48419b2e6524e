"""Shared fixtures: the packaged MiniLM, tiny random models, and recipe writing helpers."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

import exporter  # noqa: F401  first: declines OpenVINO's and NNCF's telemetry here, whether or not CI=true is set

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tests never reach the Hub; the local server is explicit
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hub_fixtures import hub_endpoint, hub_server, hub_url_fixture  # noqa: F401, E402
from models import MINILM_DIR, build_tiny_model  # noqa: E402
from reranker_fixtures import minilm_reranker_dir, reranker_script  # noqa: F401, E402

from exporter.runtime.packages import import_problem  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return MINILM_DIR


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A factory: tiny_model(architecture, pooling, dense, normalize) -> model folder (cached)."""
    cache: dict[tuple, Path] = {}

    def make(architecture: str = "bert", pooling: str = "mean", dense: bool = False, normalize: bool = True) -> Path:
        key = (architecture, pooling, dense, normalize)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"tiny-{architecture}-{pooling}-{int(dense)}{int(normalize)}")
            cache[key] = build_tiny_model(folder, architecture, pooling, dense, normalize)
        return cache[key]

    return make


# `python -c DEPLOY_HOST_CLI <exporter arguments>`: the CLI on a deploy install, where the build stack (torch,
# transformers, sentence-transformers, optimum, nncf) is not importable.
DEPLOY_HOST_CLI = """
import importlib.abc, sys
BLOCKED = ("torch", "transformers", "sentence_transformers", "optimum", "nncf")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f"{name} is not installed on a deploy host")
sys.meta_path.insert(0, Block())
from exporter.cli import main
sys.argv = ["exporter", *sys.argv[1:]]
main()
"""


def write_recipe(folder: Path, body: str, name: str = "recipe.yaml") -> Path:
    """Write a recipe file (dedented) and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity."""
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def run_plain_runtime(folder: Path, variant, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    """Run a graph: sentence variant (a manifest ``Variant``) with plain onnxruntime / OpenVINO on the tokenizer's
    outputs, compiled with the numerics settings the manifest records (OpenVINO's inference precision)."""
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    feeds = {name: encoded[name].astype(np.int64) for name in variant.inputs}
    path = str(folder / variant.file_name)
    if variant.backend == "onnx":
        import onnxruntime as ort

        return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    import openvino as ov

    compiled = ov.Core().compile_model(path, "CPU", dict(variant.runtime_options))
    if variant.runtime_options["INFERENCE_PRECISION_HINT"] == "f32":  # f32 is honoured on every CPU; bf16 is not
        assert compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"
    return compiled(feeds)[0]


# sentence-transformers 6 loads ONNX only through optimum-onnx, which has no release for transformers 5: in the
# build environment ONNX transformer graphs run through the deploy runtime instead, and compat/check_st57.sh
# proves that sentence-transformers 5.7 loads them. An optimum-onnx left over beside transformers 5 imports as a module
# but not its model class: it counts as absent, as it does for the validator and doctor.
SENTENCE_TRANSFORMERS_ONNX = import_problem("optimum-onnx") is None


def encode_transformer_variant(folder: Path, variant, texts: list[str]) -> np.ndarray:
    """Encode with a graph: transformer variant as a user would here: ``SentenceTransformer(folder, backend=...)``
    as the card says, or — for ONNX where this sentence-transformers cannot load it — the deploy runtime."""
    if variant.backend == "onnx" and not SENTENCE_TRANSFORMERS_ONNX:
        from exporter import load_encoder

        return load_encoder(folder, variant.name).encode(texts)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", backend=variant.backend,
                                model_kwargs=st_model_kwargs(variant))
    return model.encode(texts)


def st_model_kwargs(variant) -> dict:
    """``model_kwargs`` that load a graph: transformer variant in sentence-transformers as the card says: its
    file, and for OpenVINO the recorded inference precision (bf16-capable CPUs default to bf16)."""
    kwargs = {"file_name": variant.file_name}
    if variant.backend == "openvino":
        kwargs["ov_config"] = dict(variant.runtime_options)
    return kwargs
