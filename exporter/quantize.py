"""Graph optimisation, fp16 weights and int8 quantisation, for both backends.

Each function takes the fp32 graph written by ``exporter.export`` and writes a new one; every variant keeps
float32 inputs/outputs. ONNX Runtime's and NNCF's own tools do the work; this module only picks settings:

* ONNX ``optimize``: O1 basic ONNX Runtime graph rewrites; O2 adds transformer fusions (attention,
  LayerNorm, GELU) from ``onnxruntime.transformers``; O3 adds the GELU approximation (changes numerics).
* ONNX fp16: weights stored as float16 and cast back to float32 in the graph. CPUs compute in float32 (ONNX
  Runtime folds the casts at load), so the file halves at fp32 speed and near-fp32 accuracy.
* ONNX int8 ``dynamic``: weights int8, activations quantised per batch at run time; the ISA decides whether
  weights use the reduced 7-bit range (AVX2/AVX-512 without VNNI can saturate otherwise).
* ONNX int8 ``static``: QDQ graph calibrated on texts.
* OpenVINO fp16: IR with fp16-compressed weights. int8 ``static``: NNCF post-training quantisation calibrated
  on texts; ``weight_only``: NNCF int8 weight compression.
"""

from __future__ import annotations

import contextlib
import platform
import tempfile
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

ISAS = ("arm64", "avx2", "avx512", "avx512_vnni")


def detect_isa() -> str:
    """The best int8 instruction set of this host, for ``isa: auto``."""
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return "arm64"
    flags = _cpu_flags()
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def matching_nodes(node_names: Iterable[str], patterns: list[str]) -> list[str]:
    """Node names that fully match any of the regular expressions."""
    compiled = [re.compile(pattern) for pattern in patterns]
    return [name for name in node_names if any(regex.fullmatch(name) for regex in compiled)]


# --- ONNX -------------------------------------------------------------------------------------------


def optimize_onnx(source: Path, target: Path, level: str, model_type: str, num_heads: int, hidden_size: int) -> None:
    """Apply ONNX Runtime graph optimisation ``level`` (O1, O2, O3) for CPU."""
    import onnx
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    fusion_type = model_type if model_type in ("bert", "bart", "gpt2", "t5", "vit", "clip", "unet") else "bert"
    if level == "O1":
        optimized = optimize_model(str(source), model_type=fusion_type, opt_level=1, only_onnxruntime=True)
    else:
        options = FusionOptions(fusion_type)
        options.enable_gelu_approximation = level == "O3"
        optimized = optimize_model(
            str(source), model_type=fusion_type, num_heads=num_heads, hidden_size=hidden_size,
            optimization_options=options, opt_level=0,  # Python fusions only: the result stays portable
        )
    model = optimized.model
    # Fused nodes (Attention, SkipLayerNormalization...) live in the com.microsoft domain, which the
    # Python fusions do not always declare; shape inference in the quantiser needs the declaration.
    if not any(entry.domain == "com.microsoft" for entry in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    _save_onnx_model(model, target)


def onnx_fp16_weights(source: Path, target: Path, min_elements: int = 16) -> None:
    """Store float32 initializers as float16 with a Cast back to float32 in front of their consumers."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    replacements: dict[str, str] = {}
    new_initializers = []
    cast_nodes = []
    for tensor in graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT or int(np.prod(tensor.dims)) < min_elements:
            new_initializers.append(tensor)
            continue
        values = numpy_helper.to_array(tensor)
        half = numpy_helper.from_array(np.clip(values, -65504, 65504).astype(np.float16), tensor.name + "_fp16")
        new_initializers.append(half)
        replacements[tensor.name] = tensor.name
        cast_nodes.append(helper.make_node("Cast", [half.name], [tensor.name], to=onnx.TensorProto.FLOAT,
                                           name=tensor.name + "_cast"))
    del graph.initializer[:]
    graph.initializer.extend(new_initializers)
    # Casts go first: their outputs carry the original names, so consumers need no rewiring.
    nodes = cast_nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    _save_onnx_model(model, target)


def quantize_onnx_dynamic(source: Path, target: Path, isa: str, per_channel: bool, exclude: list[str]) -> None:
    """Dynamic int8: int8 weights, uint8 activations quantised at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source), load_external_data=False)
    excluded = matching_nodes((node.name for node in model.graph.node), exclude)
    with _normalised_output(target) as raw_target:
        quantize_dynamic(
            str(source), str(raw_target),
            use_external_data_format=_has_external_data(source),
            op_types_to_quantize=["MatMul", "Attention"],
            per_channel=per_channel,
            reduce_range=isa in ("avx2", "avx512"),
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # needed after contrib-op fusions
        )


def quantize_onnx_static(source: Path, target: Path, feeds: list[dict[str, np.ndarray]], per_channel: bool,
                         exclude: list[str]) -> None:
    """Static int8 (QDQ): activation ranges calibrated on ``feeds``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self):
            return next(self._feeds, None)

    model = onnx.load(str(source), load_external_data=False)
    excluded = matching_nodes((node.name for node in model.graph.node), exclude)
    with _normalised_output(target) as raw_target:
        quantize_static(
            str(source), str(raw_target), Reader(),
            use_external_data_format=_has_external_data(source),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


@contextlib.contextmanager
def _normalised_output(target: Path) -> Iterator[Path]:
    """Let a quantiser write into a scratch folder, then save the result with our external-data rule,
    so the variant's files are always ``<file>`` and, for large models only, ``<file>_data``."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="quantized-") as scratch:
        raw = Path(scratch) / target.name
        yield raw
        _save_onnx_model(onnx.load(str(raw), load_external_data=True), target)


def _has_external_data(path: Path) -> bool:
    return (path.parent / f"{path.name}_data").exists()


def _save_onnx_model(model, target: Path) -> None:
    from exporter.export import save_onnx

    save_onnx(model, target)


# --- OpenVINO ---------------------------------------------------------------------------------------


def _quiet_nncf():
    import logging

    import nncf

    logging.getLogger("nncf").setLevel(logging.WARNING)  # its INFO lines list every node it skips
    return nncf


def quantize_openvino_static(ov_model, feeds: list[dict[str, np.ndarray]], exclude: list[str],
                             smooth_quant: bool):
    """NNCF post-training int8 quantisation of an OpenVINO model, calibrated on ``feeds``."""
    nncf = _quiet_nncf()

    advanced = None
    if not smooth_quant:
        advanced = nncf.AdvancedQuantizationParameters(
            smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=-1)
        )
    ignored = nncf.IgnoredScope(patterns=exclude, validate=False) if exclude else None
    return nncf.quantize(
        ov_model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(feeds),
        ignored_scope=ignored, advanced_parameters=advanced,
    )


def compress_openvino_weights(ov_model, exclude: list[str]):
    """NNCF int8 weight-only compression (activations stay float32)."""
    nncf = _quiet_nncf()

    ignored = nncf.IgnoredScope(patterns=exclude, validate=False) if exclude else None
    return nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=ignored)
