"""Everything ONNX: the torch → ONNX export, saving with external data, graph optimisation, fp16 weights
and int8 quantisation.

Every variant starts from one of two fp32 ONNX graphs (``transformer`` or ``sentence``, see
``exporter.export.graphs``), exported once per run and shared by all variants that need it (the OpenVINO
backend converts the same graph, so both backends start from identical numerics). Each transformation takes
a graph file and writes a new one; every variant keeps float32 inputs/outputs. ONNX Runtime's own tools do
the work; this module only picks settings:

* ``optimize``: O1 basic ONNX Runtime graph rewrites; O2 adds transformer fusions (attention, LayerNorm,
  GELU) from ``onnxruntime.transformers``; O3 adds the GELU approximation (changes numerics).
* fp16: weights stored as float16 and cast back to float32 in the graph. CPUs compute in float32 (ONNX
  Runtime folds the casts at load), so the file halves at fp32 speed and near-fp32 accuracy.
* int8 ``dynamic``: weights int8, activations quantised per batch at run time; the ISA decides whether
  weights use the reduced 7-bit range (AVX2/AVX-512 without VNNI can saturate otherwise).
* int8 ``static``: QDQ graph calibrated on texts.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from exporter.export.graphs import (
    SENTENCE_OUTPUT,
    TRANSFORMER_OUTPUT,
    GraphSpec,
    SentenceGraph,
    TransformerGraph,
    graph_inputs,
    sample_inputs,
)
from exporter.progress import quiet_libraries

ONNX_OPSET = 17
# Protobuf cannot hold a model of 2 GiB or more: larger weights go to a single external data file.
EXTERNAL_DATA_THRESHOLD = 2 * 1024**3 - 64 * 1024**2


def export_onnx_graph(model, graph: str, path: Path) -> GraphSpec:
    """Export ``graph`` ("transformer" or "sentence") of a sentence-transformers model to fp32 ONNX at ``path``.

    Batch and sequence axes are dynamic; the sentence graph's output is declared ``[batch, dim]`` with the
    embedding dimension fixed (the exporter alone leaves it symbolic). Weights go to ``<file>_data`` beside
    the model when they would not fit in one protobuf (2 GiB).
    """
    import onnx
    import torch

    input_names = graph_inputs(model)
    inputs = sample_inputs(model, input_names)
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
                inputs,
                str(raw_path),
                input_names=list(input_names),
                output_names=[output],
                dynamic_axes=dynamic_axes,
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
                dynamo=False,  # the TorchScript exporter handles dynamic axes of HF encoders reliably
            )
        proto = onnx.load(str(raw_path), load_external_data=True)
        if graph == "sentence":
            with torch.no_grad():
                dimension = int(module(*inputs).shape[-1])
            declare_static_dimension(proto, output, axis=1, size=dimension)
        save_onnx(proto, path)
    return GraphSpec(inputs=input_names, output=output)


def declare_static_dimension(proto, output: str, axis: int, size: int) -> None:
    """Declare ``size`` as the ``axis`` dimension of the graph output called ``output`` (replacing a symbolic
    one), so that runtimes and clients read e.g. ``[batch, 384]``."""
    value = next(value for value in proto.graph.output if value.name == output)
    dimension = value.type.tensor_type.shape.dim[axis]
    dimension.ClearField("dim_param")
    dimension.dim_value = size


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


def move_onnx(source: Path, target: Path) -> list[Path]:
    """Move an ONNX model (and its external data) to ``target``; returns the files now there. A graph with
    ``<file>_data`` is saved again, since it names its data file inside."""
    if not (source.parent / f"{source.name}_data").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        source.replace(target)
        return [target]
    files = copy_onnx(source, target)
    for old in onnx_files(source):
        old.unlink()
    return files


def matching_nodes(node_names: Iterable[str], patterns: list[str]) -> list[str]:
    """Node names that fully match any of the regular expressions."""
    compiled = [re.compile(pattern) for pattern in patterns]
    return [name for name in node_names if any(regex.fullmatch(name) for regex in compiled)]


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


# The node types each ONNX quantiser turns into int8 (``exclude`` and ``exclude: auto`` choose among them).
DYNAMIC_OP_TYPES = ("MatMul", "Attention")
STATIC_OP_TYPES = ("MatMul",)


def quantize_onnx_dynamic(source: Path, target: Path, isa: str, per_channel: bool, exclude: list[str]) -> None:
    """Dynamic int8: int8 weights, uint8 activations quantised at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source), load_external_data=False)
    excluded = matching_nodes((node.name for node in model.graph.node), exclude)
    with _normalised_output(target) as raw_target:
        with quiet_libraries():
            quantize_dynamic(
                str(source), str(raw_target),
                use_external_data_format=_has_external_data(source),
                op_types_to_quantize=list(DYNAMIC_OP_TYPES),
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
        with quiet_libraries():
            quantize_static(
                str(source), str(raw_target), Reader(),
                use_external_data_format=_has_external_data(source),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(STATIC_OP_TYPES),
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
    save_onnx(model, target)


