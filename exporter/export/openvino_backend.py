"""Everything OpenVINO: converting the fp32 ONNX graph to IR, saving it (fp32 or fp16-compressed weights),
and NNCF int8 quantisation (``static``: post-training quantisation calibrated on texts; ``weight_only``:
int8 weight compression).

IR is converted from the same fp32 ONNX graph the ONNX backend uses, so both backends start from identical
numerics. Auto-named ops are renamed by graph position so that builds are byte-identical.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from exporter.constants import OPENVINO_NUMERICS
from exporter.progress import quiet_libraries


def read_onnx_as_openvino(onnx_path: Path):
    """Convert an ONNX graph to an in-memory OpenVINO model with reproducible op names."""
    import openvino as ov

    ov_model = ov.convert_model(str(onnx_path))
    _name_unnamed_ops_by_position(ov_model)
    return ov_model


def save_openvino(ov_model, xml_path: Path, compress_to_fp16: bool = False,
                  runtime_options: dict[str, str] | None = None) -> list[Path]:
    """Write OpenVINO IR (``.xml`` + ``.bin``); fp32 weights unless ``compress_to_fp16``.

    ``runtime_options`` are stored in the IR's ``rt_info`` (and the manifest records them). The default is
    f32 inference precision: without it, CPUs with AVX512_BF16 or AMX run fp32 models in bf16 and embeddings
    drift. OpenVINO 2026.4's CPU plugin does not apply ``INFERENCE_PRECISION_HINT`` from the IR by itself
    (``compile_model(xml, "CPU")`` still runs bf16 there), so whoever compiles the model passes them.
    """
    import openvino as ov

    _name_unnamed_ops_by_position(ov_model)  # again: NNCF adds auto-named ops too
    options = OPENVINO_NUMERICS if runtime_options is None else runtime_options
    for key, value in options.items():
        ov_model.set_rt_info(value, ["runtime_options", key])
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov_model, str(xml_path), compress_to_fp16=compress_to_fp16)
    return [xml_path, xml_path.with_suffix(".bin")]


def move_openvino(xml_path: Path, target: Path) -> list[Path]:
    """Move OpenVINO IR (``.xml`` and the ``.bin`` beside it, which it finds by name) to ``target``; returns
    the files now there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    moved = []
    for source, destination in ((xml_path, target), (xml_path.with_suffix(".bin"), target.with_suffix(".bin"))):
        if source.exists():
            source.replace(destination)
            moved.append(destination)
    return moved


# OpenVINO's names for ops it created: type name + process-wide counter, plus a copy counter after a clone.
AUTO_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(_\d+)+")


def _name_unnamed_ops_by_position(ov_model) -> None:
    """Give auto-named ops (``Constant_4079``, ``Range_32``) names from their position in the graph.

    OpenVINO numbers unnamed ops with a process-wide counter, so a second conversion in the same process
    would write a different .xml for the same model; position-based names keep builds byte-identical. A
    transformation that copies an op appends a counter of its own (``Constant_349_1``), and only in some
    conversions of a process (measured: the first one): such names are auto names too, or a variant built alone
    (``exporter run --variant``, a CI shard) differs from the same variant built after others.
    """
    for index, op in enumerate(ov_model.get_ordered_ops()):
        if AUTO_NAME.fullmatch(op.get_friendly_name()):
            op.set_friendly_name(f"{op.get_type_name()}_{index}")


def _quiet_nncf():
    import logging

    import nncf

    logging.getLogger("nncf").setLevel(logging.WARNING)  # its INFO lines list every node it skips
    return nncf


def quantize_openvino_static(ov_model, feeds: list[dict[str, np.ndarray]], exclude: list[str],
                             smooth_quant: bool):
    """NNCF post-training int8 quantisation of an OpenVINO model, calibrated on ``feeds``."""
    nncf = _quiet_nncf()

    advanced = quantization_parameters(smooth_quant)
    ignored = nncf.IgnoredScope(patterns=exclude, validate=False) if exclude else None
    with quiet_libraries():
        return nncf.quantize(
            ov_model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(feeds),
            ignored_scope=ignored, advanced_parameters=advanced,
        )


# What int8 looks like in an OpenVINO model: a MatMul fed, through these pass-through ops, by a FakeQuantize
# (static int8) or by an integer Constant (weight-only compression).
PASSTHROUGH_OPS = frozenset({"Convert", "Reshape", "Transpose", "Multiply", "Subtract", "Unsqueeze", "Squeeze"})
INT_WEIGHT_TYPES = frozenset({"i8", "u8", "i4", "u4"})
WALK_DEPTH = 6


def matmul_int8_inputs(ov_model) -> dict[str, set[str]]:
    """Per MatMul (by friendly name): what int8 feeds it, ``fq`` (a FakeQuantize) and/or ``weights`` (an integer
    Constant); an empty set: it runs in float."""

    def feeds(node, depth: int = 0) -> set[str]:
        kind = node.get_type_name()
        if kind == "FakeQuantize":
            return {"fq"}
        if kind == "Constant":
            return {"weights"} if node.get_output_element_type(0).get_type_name() in INT_WEIGHT_TYPES else set()
        if kind not in PASSTHROUGH_OPS or depth >= WALK_DEPTH:
            return set()
        return set().union(*(feeds(port.get_source_output().get_node(), depth + 1) for port in node.inputs()))

    return {op.get_friendly_name(): set().union(*(feeds(port.get_source_output().get_node()) for port in op.inputs()))
            for op in ov_model.get_ordered_ops() if op.get_type_name() == "MatMul"}


def quantization_parameters(smooth_quant: bool):
    """NNCF's advanced parameters for static int8: None (its defaults, SmoothQuant on) or SmoothQuant off."""
    import nncf

    if smooth_quant:
        return None
    return nncf.AdvancedQuantizationParameters(smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=-1))


def compress_openvino_weights(ov_model, exclude: list[str]):
    """NNCF int8 weight-only compression (activations stay float32)."""
    nncf = _quiet_nncf()

    ignored = nncf.IgnoredScope(patterns=exclude, validate=False) if exclude else None
    with quiet_libraries():
        return nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=ignored)
