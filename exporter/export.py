"""Exporting the torch model to fp32 ONNX graphs, and converting them to OpenVINO IR.

Every variant starts from one of two fp32 ONNX graphs (``transformer`` or ``sentence``, see
``exporter.graphs``), exported once per run and shared by all variants that need it. OpenVINO IR is
converted from that same ONNX graph, so both backends start from identical numerics.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from exporter.graphs import (
    SENTENCE_OUTPUT,
    TRANSFORMER_OUTPUT,
    GraphSpec,
    SentenceGraph,
    TransformerGraph,
    graph_inputs,
    sample_inputs,
)

ONNX_OPSET = 17
# Protobuf cannot hold a model of 2 GiB or more: larger weights go to a single external data file.
EXTERNAL_DATA_THRESHOLD = 2 * 1024**3 - 64 * 1024**2


def export_onnx_graph(model, graph: str, path: Path) -> GraphSpec:
    """Export ``graph`` ("transformer" or "sentence") of a sentence-transformers model to fp32 ONNX at ``path``.

    Batch and sequence axes are dynamic. Weights go to ``<file>_data`` beside the model when they would
    not fit in one protobuf (2 GiB).
    """
    import onnx

    input_names = graph_inputs(model)
    if graph == "transformer":
        module, output = TransformerGraph(model, input_names), TRANSFORMER_OUTPUT
        output_axes = {0: "batch_size", 1: "sequence_length"}
    else:
        module, output = SentenceGraph(model, input_names), SENTENCE_OUTPUT
        output_axes = {0: "batch_size"}
    module.eval()
    dynamic_axes = {name: {0: "batch_size", 1: "sequence_length"} for name in input_names}
    dynamic_axes[output] = output_axes
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as scratch:
        # Export into a scratch folder: for huge models torch scatters one file per tensor there.
        raw_path = Path(scratch) / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                sample_inputs(model, input_names),
                str(raw_path),
                input_names=list(input_names),
                output_names=[output],
                dynamic_axes=dynamic_axes,
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
                dynamo=False,  # the TorchScript exporter handles dynamic axes of HF encoders reliably
            )
        proto = onnx.load(str(raw_path), load_external_data=True)
        save_onnx(proto, path)
    return GraphSpec(inputs=input_names, output=output)


def save_onnx(proto, path: Path, external_data_threshold: int | None = None) -> list[Path]:
    """Save an ONNX model, with its weights in ``<name>_data`` when they are too large for protobuf
    (``EXTERNAL_DATA_THRESHOLD`` unless given). Returns the files written.
    """
    import onnx

    if external_data_threshold is None:
        external_data_threshold = EXTERNAL_DATA_THRESHOLD
    weights_size = sum(_tensor_nbytes(tensor) for tensor in proto.graph.initializer)
    path.parent.mkdir(parents=True, exist_ok=True)
    if weights_size >= external_data_threshold:
        data_name = f"{path.name}_data"
        onnx.save_model(
            proto,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_name,
            size_threshold=1024,
        )
        return [path, path.parent / data_name]
    onnx.save_model(proto, str(path))
    return [path]


def _tensor_nbytes(tensor) -> int:
    import numpy as np
    import onnx

    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return next((int(entry.value) for entry in tensor.external_data if entry.key == "length"), 0)
    if tensor.raw_data:
        return len(tensor.raw_data)
    itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    return int(np.prod(tensor.dims, dtype=np.int64)) * itemsize


def onnx_files(path: Path) -> list[Path]:
    """The ONNX file and its external data file, if it has one."""
    data = path.parent / f"{path.name}_data"
    return [path, data] if data.exists() else [path]


def copy_onnx(source: Path, target: Path) -> list[Path]:
    """Copy an ONNX model (and its external data, keeping the reference valid) to ``target``."""
    import onnx

    if not (source.parent / f"{source.name}_data").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return [target]
    proto = onnx.load(str(source), load_external_data=True)
    return save_onnx(proto, target, external_data_threshold=0)


OPENVINO_RUNTIME_OPTIONS = {"INFERENCE_PRECISION_HINT": "f32"}


def read_onnx_as_openvino(onnx_path: Path):
    """Convert an ONNX graph to an in-memory OpenVINO model with reproducible op names."""
    import openvino as ov

    ov_model = ov.convert_model(str(onnx_path))
    _name_unnamed_ops_by_position(ov_model)
    return ov_model


def save_openvino(ov_model, xml_path: Path, compress_to_fp16: bool = False,
                  runtime_options: dict[str, str] | None = None) -> list[Path]:
    """Write OpenVINO IR (``.xml`` + ``.bin``); fp32 weights unless ``compress_to_fp16``.

    ``runtime_options`` are stored in the IR, and OpenVINO applies them when it compiles the model. The
    default pins f32 inference precision: without it, CPUs with AMX run fp32 models in bf16 and embeddings
    drift.
    """
    import openvino as ov

    _name_unnamed_ops_by_position(ov_model)  # again: NNCF adds auto-named ops too
    options = OPENVINO_RUNTIME_OPTIONS if runtime_options is None else runtime_options
    for key, value in options.items():
        ov_model.set_rt_info(value, ["runtime_options", key])
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov_model, str(xml_path), compress_to_fp16=compress_to_fp16)
    return [xml_path, xml_path.with_suffix(".bin")]


def _name_unnamed_ops_by_position(ov_model) -> None:
    """Give auto-named ops (``Constant_4079``, ``Range_32``) names from their position in the graph.

    OpenVINO numbers unnamed ops with a process-wide counter, so a second conversion in the same process
    would write a different .xml for the same model; position-based names keep builds byte-identical.
    """
    for index, op in enumerate(ov_model.get_ordered_ops()):
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9]*_\d+", op.get_friendly_name()):
            op.set_friendly_name(f"{op.get_type_name()}_{index}")
