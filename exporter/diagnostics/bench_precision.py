"""The precision a model runs at, as ``exporter bench`` reports it: read back from the runtime and the graph.

* float: OpenVINO's compiled ``INFERENCE_PRECISION_HINT`` (what the plugin actually runs: ``f32`` for an fp16
  IR on CPU, ``bf16`` only where the CPU has it), read back by the deploy runtime
  (``encoder.settings["compiled_inference_precision"]``) or from sentence-transformers' compiled model; for
  ONNX the graph's float type (``f16`` when its MatMul weights are float16); torch runs fp32.
* int8: the share of MatMul-like ops of the graph file that run in int8. OpenVINO IR: MatMuls fed by a
  FakeQuantize (static quantisation) or with int8 / uint8 (or 4-bit) weights (weight-only compression; such
  MatMuls compute in float with decompressed weights, so the label then says ``int8 weights``). ONNX:
  MatMulInteger, QLinearMatMul, DynamicQuantizeMatMul, MatMulIntegerToFloat, QGemm and QAttention nodes, and
  MatMul / Gemm nodes fed by DequantizeLinear (QDQ), against those plus the float MatMul, Gemm, FusedMatMul
  and (Multi-Head) Attention nodes. A fused attention node counts once, and ONNX Runtime may fuse further at
  load time, so the share is of the file's graph.

The label reads ``f32``, ``bf16``, ``int8 75% / f32``, ``int8 weights 100% / f32``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exporter.diagnostics.bench_targets import Target
    from exporter.runtime.runners import VariantRunner

ONNX_INT8_OPS = frozenset({"MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm",
                           "QAttention"})
ONNX_FLOAT_OPS = frozenset({"MatMul", "Gemm", "FusedMatMul", "Attention", "MultiHeadAttention"})
ONNX_QDQ_OPS = frozenset({"MatMul", "Gemm"})  # fed by DequantizeLinear: QDQ format, run as int8 kernels
ONNX_FLOAT_TYPES = {1: "f32", 10: "f16", 16: "bf16", 11: "f64"}  # onnx.TensorProto data types


@dataclass(frozen=True)
class Precision:
    """What a model runs at: the float precision, and the int8 MatMul count (None where not counted)."""

    float_precision: str
    matmuls: int | None = None
    int8_matmuls: int | None = None
    weights_only: bool = False  # OpenVINO: every int8 MatMul has int8 weights but no FakeQuantize
    source: str = ""

    @property
    def int8_share(self) -> float | None:
        if not self.matmuls or self.int8_matmuls is None:
            return None
        return self.int8_matmuls / self.matmuls

    @property
    def label(self) -> str:
        share = self.int8_share
        if not share:
            return self.float_precision
        kind = "int8 weights" if self.weights_only else "int8"
        return f"{kind} {share:.0%} / {self.float_precision}"

    def to_dict(self) -> dict[str, Any]:
        share = self.int8_share
        return {"label": self.label, "float": self.float_precision, "matmuls": self.matmuls,
                "int8_matmuls": self.int8_matmuls, "int8_share": None if share is None else round(share, 4),
                "int8_weights_only": self.weights_only, "source": self.source}


def precision_in_force(target: Target, runner: VariantRunner) -> Precision:
    """The precision ``runner`` (loaded from ``target``) runs at."""
    if target.backend == "torch":
        dtype = str(getattr(runner, "settings", {}).get("dtype") or "float32")
        label = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}.get(dtype, dtype)
        return Precision(label, source=f"torch {dtype} weights and compute")
    path = Path(target.folder) / str(target.file_name)
    if target.backend == "openvino":
        floating = _openvino_compiled_precision(runner)
        counts = _openvino_counts(path)
        source = "compiled INFERENCE_PRECISION_HINT; MatMuls of the IR"
    else:
        counts = _onnx_counts(path)
        floating = counts[3] if counts else "f32"
        counts = counts[:3] if counts else None
        source = "the graph's float type; MatMul-like nodes of the graph file"
    if counts is None:
        return Precision(floating, source=source + " (not counted: the graph could not be read)")
    matmuls, int8, weights_only = counts
    return Precision(floating, matmuls=matmuls, int8_matmuls=int8, weights_only=weights_only, source=source)


def _openvino_compiled_precision(runner: VariantRunner) -> str:
    """The compiled model's inference precision: the Encoder's read-back, else the one sentence-transformers'
    (optimum's) compiled model reports, else the hint requested."""
    settings = runner.settings
    value = settings.get("compiled_inference_precision")
    if value is None:
        with contextlib.suppress(Exception):  # optimum-intel keeps the CompiledModel on ``request``
            compiled = runner.model[0].auto_model.request  # type: ignore[attr-defined]
            value = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    value = value or settings.get("INFERENCE_PRECISION_HINT") or "f32"
    if settings.get("bf16") == "emulated":
        return f"{value} (emulated)"
    return str(value)


def _openvino_counts(path: Path) -> tuple[int, int, bool] | None:
    """(MatMuls, int8 MatMuls, whether none of those has a FakeQuantize) of the IR at ``path``."""
    from exporter.export.openvino_backend import matmul_int8_inputs

    try:
        import openvino as ov

        feeds = matmul_int8_inputs(ov.Core().read_model(str(path)))
    except Exception:  # noqa: BLE001 - the count is informative; the model itself already loaded
        return None
    fake_quantized = sum("fq" in found for found in feeds.values())
    int_weights = sum("fq" not in found and "weights" in found for found in feeds.values())
    return len(feeds), fake_quantized + int_weights, fake_quantized == 0 and int_weights > 0


def _onnx_counts(path: Path) -> tuple[int, int, bool, str] | None:
    """(MatMul-like nodes, int8 ones, False, the float type of the MatMul weights) of the ONNX file."""
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # noqa: BLE001 - the count is informative; the model itself already loaded
        return None
    producers = {output: node.op_type for node in graph.node for output in node.output}
    weight_types = {init.name: init.data_type for init in graph.initializer}
    matmuls = int8 = 0
    float_weights: dict[int, int] = {}
    for node in graph.node:
        if node.op_type in ONNX_INT8_OPS:
            matmuls += 1
            int8 += 1
        elif node.op_type in ONNX_FLOAT_OPS:
            matmuls += 1
            if node.op_type in ONNX_QDQ_OPS and any(producers.get(name) == "DequantizeLinear" for name in node.input):
                int8 += 1
                continue
            for name in node.input:
                if weight_types.get(name) in ONNX_FLOAT_TYPES:
                    float_weights[weight_types[name]] = float_weights.get(weight_types[name], 0) + 1
    floating = ONNX_FLOAT_TYPES[max(float_weights, key=float_weights.__getitem__)] if float_weights else "f32"
    return matmuls, int8, False, floating


__all__ = ["Precision", "precision_in_force"]
