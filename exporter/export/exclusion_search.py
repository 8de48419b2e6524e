"""``quantization.exclude: auto``: the int8 configuration with the fewest layers in float that still meets the
variant's declared thresholds, found on held-out texts (not the validation set, which stays the final gate).

The target: the validator's own metrics (cosine min and mean, top-10 neighbour overlap, Spearman) between the
int8 and the fp32 graph's sentence embeddings of the search texts, each meeting the variant's threshold with a
margin (``MARGIN`` of the room between the threshold and 1), so that validation, on other texts, passes too.
Everything runs in f32 (OpenVINO compiled with ``INFERENCE_PRECISION_HINT: f32``, ONNX Runtime on the CPU),
never in the build host's default precision, so the result does not depend on the CPU that built it.

The search is the same for both backends, over MatMul *roles* (the same MatMul in every layer: query, key,
value, attention scores, attention output, FFN in, FFN out; ONNX's fused Attention nodes count as MatMuls):
quantise everything; while that misses the target, keep in float the role whose exclusion helps most; then try
to quantise each float MatMul again, one by one, keeping it int8 where the target still holds. A trial is one
quantisation (ONNX Runtime's quantiser; NNCF with a smaller calibration subset, ``TRIAL_SAMPLES``) and one pass
over the search texts; the winner is quantised once more with the whole calibration set.

The result names the MatMuls kept in float (what the manifest records and the log prints as an
``exclude:`` list a recipe can pin).
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporter.progress import Progress, quiet_libraries
from exporter.runtime.pooling import run_steps
from exporter.validators.thresholds import Thresholds

TRIAL_SAMPLES = 64  # calibration texts per NNCF trial (the winner is calibrated on all of them)
MARGIN = 0.2  # of (1 - threshold): the search asks cosine_min >= t + 0.2 * (1 - t) on its texts
SEARCH_TEXTS = 200  # held-out texts the search measures on
LAYER_INDEX = re.compile(r"\.\d+(?=[./])|/\d+(?=/)|_\d+(?=[._/])")


@dataclass
class SearchTarget:
    """The thresholds the search must meet on its texts: the variant's, each tightened by ``MARGIN``."""

    thresholds: dict[str, float]

    @classmethod
    def from_thresholds(cls, thresholds: Thresholds) -> SearchTarget:
        declared = {key: value for key, value in thresholds.model_dump().items() if value is not None}
        return cls({key: value + MARGIN * (1.0 - value) for key, value in declared.items()})

    def slack(self, metrics: dict[str, float | None]) -> float:
        """1 for a perfect copy, 0 exactly at the target, below 0 when it misses (the worst metric decides)."""
        worst = 1.0
        for key, required in self.thresholds.items():
            value = metrics.get(key)
            worst = min(worst, -1.0 if value is None else (value - required) / max(1.0 - required, 1e-12))
        return float(worst)

    def met(self, metrics: dict[str, float | None]) -> bool:
        return self.slack(metrics) >= 0.0

    def describe(self) -> str:
        return ", ".join(f"{key} >= {value:.5g}" for key, value in self.thresholds.items())


@dataclass
class SearchResult:
    """What the search chose: the MatMuls kept in float, the metrics on its texts, how many trials it took."""

    kept_float: list[str]
    metrics: dict[str, float | None]
    met: bool
    trials: int
    texts: int
    seconds: float
    method: str

    def exclude_patterns(self) -> list[str]:
        """The ``exclude:`` list that pins this result in a recipe (exact node names)."""
        return [re.escape(name) for name in self.kept_float]


def headline(embeddings: np.ndarray, reference: np.ndarray) -> dict[str, float | None]:
    """The validator's gated metrics (cosine min/mean, neighbour overlap, Spearman) of one trial."""
    from exporter.validators.checks import measure
    from exporter.validators.thresholds import THRESHOLD_KEYS

    metrics = measure(embeddings.astype(np.float32), reference.astype(np.float32))
    return {key: metrics[key] for key in THRESHOLD_KEYS}


def sentence_embeddings(outputs: list[np.ndarray], feeds: list[dict[str, np.ndarray]], steps: list) -> np.ndarray:
    """One embedding per feed: the graph's output pooled by the model's modules (``steps``) for a transformer
    graph; a sentence graph's output as it is (``steps`` empty)."""
    return np.stack([np.asarray(run_steps(steps, output, feed["attention_mask"]), dtype=np.float64).reshape(-1)
                     for output, feed in zip(outputs, feeds, strict=True)])


# ------------------------------------------------------------------------------------------------ OpenVINO


def openvino_float_matmuls(ov_model) -> list[str]:
    """MatMuls of an OpenVINO model that no FakeQuantize feeds: the ones static int8 left in float."""
    from exporter.export.openvino_backend import matmul_int8_inputs

    return [name for name, feeds in matmul_int8_inputs(ov_model).items() if "fq" not in feeds]


def openvino_matmuls(ov_model) -> list[str]:
    """Every MatMul of an OpenVINO model (NNCF quantises weight and attention MatMuls alike)."""
    return [op.get_friendly_name() for op in ov_model.get_ordered_ops() if op.get_type_name() == "MatMul"]


def openvino_search(ov_model, calibration_feeds: list[dict[str, np.ndarray]], search_feeds: list[dict[str, np.ndarray]],
                    steps: list, output: str, target: SearchTarget, smooth_quant: bool, progress: Progress):
    """``greedy_search`` over NNCF static int8 of ``ov_model``: (the quantised model, ``SearchResult``)."""
    import openvino as ov

    from exporter.constants import OPENVINO_NUMERICS
    from exporter.export.openvino_backend import quantize_openvino_static

    started = time.perf_counter()
    core = ov.Core()

    def run(model) -> np.ndarray:
        compiled = core.compile_model(model, "CPU", dict(OPENVINO_NUMERICS))  # f32 pinned, never the CPU default
        return sentence_embeddings([compiled(feed)[output] for feed in search_feeds], search_feeds, steps)

    reference = run(ov_model)
    trial_feeds = calibration_feeds[:TRIAL_SAMPLES]

    def trial(kept: set[str]) -> dict[str, float | None]:
        quantized = quantize_openvino_static(ov_model, trial_feeds, exact_patterns(kept), smooth_quant)
        return headline(run(quantized), reference)

    kept, trials = greedy_search(openvino_matmuls(ov_model), trial, target, progress)
    quantized = quantize_openvino_static(ov_model, calibration_feeds, exact_patterns(kept), smooth_quant)
    metrics = headline(run(quantized), reference)
    return quantized, SearchResult(
        kept_float=sorted(kept), metrics=metrics, met=target.met(metrics),
        trials=trials, texts=len(search_feeds), seconds=time.perf_counter() - started,
        method=f"greedy MatMul-role search (NNCF static int8, {len(trial_feeds)} calibration texts per trial)")


def exact_patterns(names: set[str] | list[str]) -> list[str]:
    """``exclude`` patterns matching exactly these node names."""
    return [f"^{re.escape(name)}$" for name in sorted(names)]


def greedy_search(candidates: list[str], trial: Callable[[set[str]], dict[str, float | None]], target: SearchTarget,
                  progress: Progress) -> tuple[set[str], int]:
    """The MatMuls to keep in float (module docstring): (kept, trials run); each trial is logged.
    ``trial(kept)`` quantises all ``candidates`` except ``kept`` and returns the ``headline`` metrics to fp32."""
    cache: dict[frozenset[str], dict[str, float | None]] = {}

    def measure(kept: set[str]) -> dict[str, float | None]:
        key = frozenset(kept)
        if key not in cache:
            with quiet_libraries():
                cache[key] = trial(set(kept))
            shown = ", ".join(f"{name} {value:.4f}" for name, value in cache[key].items() if value is not None)
            line = (f"  trial {len(cache)}: {len(kept)} of {len(candidates)} MatMuls in float: {shown}"
                    f"{'  (target met)' if target.met(cache[key]) else ''}")
            progress.log(line)
        return cache[key]

    roles: dict[str, list[str]] = {}
    for name in candidates:
        roles.setdefault(role_of(name), []).append(name)
    kept: set[str] = set()
    rows = measure(kept)
    remaining = dict(roles)
    while not target.met(rows) and remaining:
        scored = {role: target.slack(measure(kept | set(names))) for role, names in remaining.items()}
        best = max(scored, key=lambda role: scored[role])
        kept |= set(remaining.pop(best))
        rows = measure(kept)
    if target.met(rows):  # give back, one at a time, every float MatMul the target does not need
        for name in sorted(kept):
            if target.met(measure(kept - {name})):
                kept = kept - {name}
    return kept, len(cache)


# ------------------------------------------------------------------------------------------------ ONNX


def _weight_nodes(model, op_types: tuple[str, ...]) -> list:
    """The nodes of those types the quantisers can make int8: a MatMul only with a constant weight (attention's
    activation x activation MatMuls stay float in both methods); fused nodes (Attention) as they are."""
    weights = {tensor.name for tensor in model.graph.initializer}
    return [node for node in model.graph.node if node.op_type in op_types
            and (node.op_type != "MatMul" or (node.input[1] in weights and node.input[0] not in weights))]


def onnx_quantizable(path: Path, op_types: tuple[str, ...]) -> list[str]:
    """The nodes of an ONNX graph the quantiser turns into int8 (its ``op_types_to_quantize``)."""
    import onnx

    return [node.name for node in _weight_nodes(onnx.load(str(path), load_external_data=False), op_types)]


def onnx_float_nodes(path: Path, op_types: tuple[str, ...]) -> list[str]:
    """The quantisable nodes that still run in float in a quantised graph: not replaced by an integer kernel
    (MatMulInteger, MatMulIntegerToFloat, QAttention...) and fed by no DequantizeLinear (QDQ)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dequantized = {output for node in model.graph.node if node.op_type == "DequantizeLinear" for output in node.output}
    return [node.name for node in _weight_nodes(model, op_types) if not dequantized.intersection(node.input)]


def role_of(name: str) -> str:
    """A node name without its layer index: the same MatMul in every layer shares a role."""
    return LAYER_INDEX.sub("", name)


def onnx_search(source: Path, target_path: Path, quantize: Callable[[Path, list[str]], None],
                op_types: tuple[str, ...], search_feeds: list[dict[str, np.ndarray]], steps: list,
                target: SearchTarget, progress: Progress) -> SearchResult:
    """``greedy_search`` over the ``op_types`` nodes with ``quantize(path, exclude_patterns)`` (ONNX Runtime's
    quantiser); the winner is written to ``target_path``."""
    import onnxruntime as ort

    started = time.perf_counter()

    def run(path: Path) -> np.ndarray:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        wanted = {i.name for i in session.get_inputs()}
        outputs = [session.run(None, {k: v for k, v in feed.items() if k in wanted})[0] for feed in search_feeds]
        return sentence_embeddings(outputs, search_feeds, steps)

    reference = run(source)
    with tempfile.TemporaryDirectory(prefix="exclude-search-") as scratch:
        count = [0]

        def trial(kept: set[str]) -> dict[str, float | None]:
            count[0] += 1
            path = Path(scratch) / f"trial-{count[0]}.onnx"
            quantize(path, exact_patterns(kept))
            metrics = headline(run(path), reference)
            for used in (path, path.with_name(path.name + "_data")):  # 40 trials of a big model fill a disk
                used.unlink(missing_ok=True)
            return metrics

        kept, trials = greedy_search(onnx_quantizable(source, op_types), trial, target, progress)
    with quiet_libraries():
        quantize(target_path, exact_patterns(kept))
    metrics = headline(run(target_path), reference)
    return SearchResult(kept_float=sorted(kept), metrics=metrics, met=target.met(metrics), trials=trials,
                        texts=len(search_feeds), seconds=time.perf_counter() - started,
                        method="greedy MatMul-role search (ONNX Runtime)")
