"""Names and defaults that every stage shares, defined once."""

from __future__ import annotations

import re
from typing import Literal, get_args

# Each Literal is the one list of its values: recipes validate against it, every stage iterates over it.
Backend = Literal["onnx", "openvino", "torch"]
Precision = Literal["fp32", "fp16", "bf16", "int8"]
Graph = Literal["transformer", "sentence", "scores"]  # scores: rerankers (model.kind cross)
Optimize = Literal["none", "O1", "O2", "O3"]
Method = Literal["dynamic", "static", "weight_only"]
# int8 instruction sets a quantised ONNX graph can be built for ("auto": this host's).
Isa = Literal["arm64", "avx2", "avx512", "avx512_vnni"]
# What a model computes: sentence embeddings (bi-encoder), pair scores (CrossEncoder reranker) or vocabulary-sized
# sparse vectors (SPLADE SparseEncoder).
ModelKind = Literal["sentence", "cross", "sparse"]

BACKENDS: tuple[str, ...] = get_args(Backend)
PRECISIONS: tuple[str, ...] = get_args(Precision)
GRAPHS: tuple[str, ...] = get_args(Graph)
OPTIMIZE_LEVELS: tuple[str, ...] = get_args(Optimize)
ISAS: tuple[str, ...] = get_args(Isa)
MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)
METHODS: dict[str, tuple[str, ...]] = {"onnx": ("dynamic", "static"), "openvino": ("static", "weight_only")}
# What a manifest without a recorded method meant (ONNX's default was dynamic before the int8 rule); recipes
# default to static on both backends (``recipe.Quantization.default_method``).
DEFAULT_METHOD = {"onnx": "dynamic", "openvino": "static"}

# Hub repo ids: ORG/NAME.
REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
DEFAULT_REVISION = "main"

MANIFEST_NAME = "manifest.json"

# The numerics settings every OpenVINO variant is built, validated and run with unless its manifest records others:
# CPUs with AVX512_BF16 or AMX otherwise run fp32 models in bf16.
OPENVINO_NUMERICS: dict[str, str] = {"INFERENCE_PRECISION_HINT": "f32"}
# A bf16 variant is the same graph compiled with bf16 inference precision (OpenVINO keeps the ops that need
# it, e.g. softmax and normalisation statistics, in f32). It runs natively only where the CPU has one of
# NATIVE_BF16_FLAGS; elsewhere OpenVINO runs it in f32 or emulates bf16.
OPENVINO_BF16_NUMERICS: dict[str, str] = {"INFERENCE_PRECISION_HINT": "bf16"}
NATIVE_BF16_FLAGS: frozenset[str] = frozenset({"avx512_bf16", "amx_bf16"})
# Backends a precision can be built for (the others run on every backend).
PRECISION_BACKENDS: dict[str, tuple[str, ...]] = {"bf16": ("openvino", "torch"), "int8": ("onnx", "openvino")}
# torch variants: the Transformer module's weights as ``model.<precision>.safetensors`` (transformers' ``variant``),
# loaded by sentence-transformers with ``model_kwargs={"variant": <precision>, "dtype": <TORCH_DTYPES[precision]>}``.
TORCH_DTYPES: dict[str, str] = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
# Backends that run in the deploy runtime (``exporter.load`` -> Encoder, no torch); torch variants load through
# ``exporter.load_sentence_transformer``.
ENCODER_BACKENDS: tuple[str, ...] = ("onnx", "openvino")
TORCH_EXTRA = 'pip install "embedding-exporter[torch]"'


def torch_weights_name(precision: str) -> str:
    """The file transformers loads for ``variant=<precision>``: ``model.<precision>.safetensors``."""
    return f"model.{precision}.safetensors"


def openvino_numerics(precision: str, float_precision: str | None = None) -> dict[str, str]:
    """The numerics settings an OpenVINO variant of ``precision`` is built, validated and run with
    (``float_precision``: an int8 variant's, for the ops it leaves in float)."""
    bf16 = precision == "bf16" or float_precision == "bf16"
    return dict(OPENVINO_BF16_NUMERICS if bf16 else OPENVINO_NUMERICS)
