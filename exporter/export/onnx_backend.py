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
* int8 ``static``: int8 weights and uint8 activations with ranges calibrated on texts, for the MatMuls with
  a constant weight; outlier channels smoothed first, the residual stream kept float, each MatMul and its bias
  fused into one integer kernel (``quantize_onnx_static`` says why each step is needed).
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


def export_onnx_graph(model, graph: str, path: Path, truncate_dim: int | None = None) -> GraphSpec:
    """Export ``graph`` ("transformer" or "sentence") of a sentence-transformers model to fp32 ONNX at ``path``.

    Batch and sequence axes are dynamic; the sentence graph's output is declared ``[batch, dim]`` with the
    embedding dimension fixed (the exporter alone leaves it symbolic). Weights go to ``<file>_data`` beside
    the model when they would not fit in one protobuf (2 GiB). ``truncate_dim``: a sentence graph outputs the
    first N dimensions (renormalised when the model normalises), declared ``[batch, N]``.
    """
    import onnx
    import torch

    input_names = graph_inputs(model)
    inputs = sample_inputs(model, input_names)
    if graph == "transformer":
        module, output = TransformerGraph(model, input_names), TRANSFORMER_OUTPUT
        output_axes = {0: "batch_size", 1: "sequence_length"}
    else:
        module, output = SentenceGraph(model, input_names, truncate_dim), SENTENCE_OUTPUT
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


# The node types each ONNX quantiser turns into int8 (``exclude`` and ``exclude: auto`` choose among them;
# static only those with a constant weight, ``static_quantizable``).
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


# Static int8 smooths outlier channels first (``_smooth_outlier_channels``): an input channel whose calibrated
# |max| exceeds SMOOTH_CAP x the median channel's is divided by (ratio / SMOOTH_CAP) ** SMOOTH_ALPHA, and its
# weight row multiplied by the same. Measured on all-MiniLM-L6-v2 (cosine min vs torch on the built-in
# validation set): cap 2 / alpha 0.5 0.986; cap 1.5 0.974, cap 3 0.982, alpha 0.25 0.978, alpha 0.75 0.971;
# SmoothQuant's own rule (every channel, alpha 0.5) 0.933; no smoothing 0.955.
SMOOTH_CAP = 2.0
SMOOTH_ALPHA = 0.5


def quantize_onnx_static(source: Path, target: Path, feeds: list[dict[str, np.ndarray]], per_channel: bool,
                         exclude: list[str]) -> None:
    """Static int8: every MatMul with a constant weight (``static_quantizable``) except ``exclude`` gets int8
    weights (symmetric, per output channel unless ``per_channel`` is false) and a uint8 input whose range is
    calibrated on ``feeds`` (MinMax); everything else stays float32.

    ONNX Runtime's QDQ quantiser does the quantisation; around it, four choices turn its defaults (cosine
    mean / min 0.907 / 0.72 against torch on all-MiniLM-L6-v2) into a variant that meets the int8 gate with
    room (0.9965 / 0.986, top-10 overlap 0.94) at dynamic int8's speed:

    * MatMul outputs are not quantised (``OpTypesToExcludeOutputQuantization``): the FFN output projection
      writes the [CLS] token's massive activations, and one uint8 range over them wipes out every other token.
    * The residual stream stays float: ORT shares one QuantizeLinear/DequantizeLinear pair among all readers
      of a tensor, so the residual Add would read the int8-rounded LayerNorm output (``_float_residuals``).
    * Outlier channels are smoothed before calibration (``SMOOTH_CAP``).
    * Each quantised MatMul and its bias Add become one ``com.microsoft`` MatMulIntegerToFloat, the kernel ORT
      fuses QDQ MatMuls into anyway, here with the bias inside (ORT leaves the Add: about 8% slower).

    Attention's activation x activation MatMuls stay float: quantising them buys no speed on CPU and costs
    accuracy (cosine min 0.980 instead of 0.986).
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self):
            return next(self._feeds, None)

    model = onnx.load(str(source), load_external_data=True)
    for index, node in enumerate(model.graph.node):  # the steps below find nodes by name
        node.name = node.name or f"{node.op_type}_{index}"
    candidates = _weight_matmuls(model)
    excluded = set(matching_nodes((node.name for node in candidates), exclude))
    chosen = [node for node in candidates if node.name not in excluded]
    if not chosen:  # everything excluded: ORT would read an empty nodes_to_quantize as "all of them"
        _save_onnx_model(model, target)
        return
    with tempfile.TemporaryDirectory(prefix="static-int8-") as scratch:
        smoothed = Path(scratch) / "smoothed.onnx"
        _smooth_outlier_channels(model, chosen, feeds, Path(scratch))
        save_onnx(model, smoothed)
        del model
        raw = Path(scratch) / target.name
        with quiet_libraries():
            quantize_static(
                str(smoothed), str(raw), Reader(),
                use_external_data_format=_has_external_data(smoothed),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(STATIC_OP_TYPES),
                nodes_to_quantize=[node.name for node in chosen],
                per_channel=per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                extra_options={
                    "DefaultTensorType": onnx.TensorProto.FLOAT,
                    "WeightSymmetric": True,
                    "ActivationSymmetric": False,
                    "OpTypesToExcludeOutputQuantization": list(STATIC_OP_TYPES),
                },
            )
        quantized = onnx.load(str(raw), load_external_data=True)
        _float_residuals(quantized, {node.name for node in chosen})
        _fuse_integer_matmuls(quantized)
        _save_onnx_model(quantized, target)


def static_quantizable(path: Path) -> list[str]:
    """Names of the nodes ``quantize_onnx_static`` turns into int8 (its ``exclude`` chooses among them)."""
    import onnx

    return [node.name for node in _weight_matmuls(onnx.load(str(path), load_external_data=False))]


def _weight_matmuls(model) -> list:
    """MatMul nodes of ``model`` computing activation x constant weight (a 2-D float32 initializer)."""
    import onnx

    weights = {tensor.name for tensor in model.graph.initializer
               if tensor.data_type == onnx.TensorProto.FLOAT and len(tensor.dims) == 2}
    return [node for node in model.graph.node
            if node.op_type in STATIC_OP_TYPES and node.input[1] in weights and node.input[0] not in weights]


def _smooth_outlier_channels(model, nodes: list, feeds: list[dict[str, np.ndarray]], scratch: Path) -> None:
    """Divide the outlier channels of each quantised MatMul input by a per-channel Mul and multiply the
    matching weight rows, so that one uint8 range fits the other channels too (``SMOOTH_CAP``). Exact in
    float; the weight quantiser sees the scaled rows. MatMuls sharing an input share one Mul."""
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    groups: dict[str, list] = {}
    for node in nodes:
        groups.setdefault(node.input[0], []).append(node)
    peaks = _channel_absmax(model, list(groups), feeds, scratch)
    producers = {output: index for index, node in enumerate(graph.node) for output in node.output}
    inserts: list[tuple[int, object]] = []
    replaced: set[str] = set()
    for tensor, consumers in groups.items():
        peak = peaks[tensor]
        median = float(np.median(peak))
        weights = [numpy_helper.to_array(initializers[node.input[1]]) for node in consumers]
        if median <= 0 or any(weight.shape[0] != peak.size for weight in weights):
            continue
        scale = np.maximum(1.0, peak / (SMOOTH_CAP * median)) ** SMOOTH_ALPHA
        if np.all(scale == 1.0):
            continue
        for node, weight in zip(consumers, weights, strict=True):
            replaced.add(node.input[1])
            name = f"{node.name}/smoothed_weight"
            graph.initializer.append(numpy_helper.from_array((weight * scale[:, None]).astype(np.float32), name))
            node.input[1] = name
        divisor, smoothed = f"{tensor}_smoothing_scale", f"{tensor}_smoothed"
        graph.initializer.append(numpy_helper.from_array((1.0 / scale).astype(np.float32), divisor))
        inserts.append((producers.get(tensor, -1) + 1,
                        helper.make_node("Mul", [tensor, divisor], [smoothed], name=f"{tensor}_smoothing")))
        for node in consumers:
            node.input[0] = smoothed
    order = list(graph.node)
    for index, mul in sorted(inserts, key=lambda entry: entry[0], reverse=True):  # after its producer
        order.insert(index, mul)
    del graph.node[:]
    graph.node.extend(order)
    still_used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name not in replaced or tensor.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def probe_session(model, tensors: list[str], path: Path):
    """A quiet CPU session of a copy of ``model`` (saved at ``path``) that also outputs the float ``tensors``, and
    the names of its inputs (feeds carry keys a graph may not take, e.g. token_type_ids)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    declared = {output.name for output in probe.graph.output}
    for name in tensors:
        if name not in declared:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    save_onnx(probe, path)
    del probe
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, {entry.name for entry in session.get_inputs()}


def _channel_absmax(model, tensors: list[str], feeds: list[dict[str, np.ndarray]],
                    scratch: Path) -> dict[str, np.ndarray]:
    """Per last-axis channel max |value| of each of ``tensors`` over ``feeds`` (one float32 run per feed)."""
    path = scratch / "probe.onnx"
    session, wanted = probe_session(model, tensors, path)
    peaks: dict[str, np.ndarray] = {}
    for feed in feeds:
        values = session.run(tensors, {key: value for key, value in feed.items() if key in wanted})
        for name, value in zip(tensors, values, strict=True):
            peak = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            peaks[name] = np.maximum(peaks[name], peak) if name in peaks else peak
    del session
    for used in onnx_files(path):
        used.unlink()
    return peaks


def _float_residuals(model, quantized: set[str]) -> None:
    """Let every reader of a quantised activation other than the ``quantized`` nodes read the float tensor,
    not its DequantizeLinear copy (ORT shares one QDQ pair among all readers: the residual Add, or a MatMul
    kept float, would read the int8-rounded values)."""
    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    outputs = {output.name for output in graph.output}
    for dq in [node for node in graph.node if node.op_type == "DequantizeLinear"]:
        q = producers.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear" or dq.output[0] in outputs:
            continue
        for node in graph.node:
            if node.name in quantized or node is dq:
                continue
            for index, name in enumerate(node.input):
                if name == dq.output[0]:
                    node.input[index] = q.input[0]


def _through_identity(name: str, producers: dict) -> str:
    """The tensor an Identity chain copies (torch's exporter shares equal initializers through Identity)."""
    while name in producers and producers[name].op_type == "Identity":
        name = producers[name].input[0]
    return name


def _fuse_integer_matmuls(model) -> None:
    """DequantizeLinear(a), DequantizeLinear(constant w) -> MatMul [-> Add(constant bias)] into one
    ``com.microsoft`` MatMulIntegerToFloat named as the MatMul; drops the DequantizeLinear nodes left unread."""
    import onnx
    from onnx import helper

    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    fused: dict[int, object] = {}
    absorbed: set[int] = set()
    for matmul in [node for node in graph.node if node.op_type in STATIC_OP_TYPES]:
        dq_a, dq_w = producers.get(matmul.input[0]), producers.get(matmul.input[1])
        if (dq_a is None or dq_w is None or dq_a.op_type != "DequantizeLinear" or dq_w.op_type != "DequantizeLinear"
                or dq_w.input[0] not in initializers or len(dq_a.input) < 3 or len(dq_w.input) < 3):
            continue
        columns = initializers[dq_w.input[0]].dims[-1]
        weight_scale = initializers.get(dq_w.input[1])
        axis = next((attribute.i for attribute in dq_w.attribute if attribute.name == "axis"), 1)
        if weight_scale is None or (int(np.prod(weight_scale.dims)) != 1 and axis not in (1, -1)):
            continue
        inputs = [dq_a.input[0], dq_w.input[0], dq_a.input[1], dq_w.input[1], dq_a.input[2], dq_w.input[2]]
        output = matmul.output[0]
        users = readers.get(output, [])
        if len(users) == 1 and users[0].op_type == "Add" and output not in {o.name for o in graph.output}:
            bias = [_through_identity(name, producers) for name in users[0].input if name != output]
            if (len(bias) == 1 and bias[0] in initializers and initializers[bias[0]].data_type == onnx.TensorProto.FLOAT
                    and list(initializers[bias[0]].dims) == [columns]):
                inputs.append(bias[0])
                output = users[0].output[0]
                absorbed.add(id(users[0]))
        fused[id(matmul)] = helper.make_node("MatMulIntegerToFloat", inputs, [output], name=matmul.name,
                                             domain="com.microsoft")
    if not fused:
        return
    nodes = [fused.get(id(node), node) for node in graph.node if id(node) not in absorbed]
    read = {name for node in nodes for name in node.input} | {output.name for output in graph.output}
    nodes = [node for node in nodes if not (node.op_type == "DequantizeLinear" and node.output[0] not in read)]
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(entry.domain == "com.microsoft" for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


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


