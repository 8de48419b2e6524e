"""The default int8 rule (``precision: int8`` with no ``exclude``): a variant that passes on the model at hand, at
a bounded cost, or a one-line account of what was tried.

Plain int8 breaks on real transformers because a few hidden channels carry activations tens to hundreds of
times larger than the rest: one per-tensor uint8 range spent on them leaves a handful of levels for every other
channel. Each backend's quantiser already smooths outlier channels into the weights (ONNX static:
``SMOOTH_CAP``; NNCF: SmoothQuant), which fixes most of them; what it does not fix, the rule keeps in float:

1. **One pass, no quantisation** (``matmul_sensitivity``): the fp32 ONNX graph runs on ``PROBE_SAMPLES``
   calibration texts with every weight MatMul's input as an extra output. For each MatMul, int8 is simulated in
   numpy as the backend does it (its smoothing, a uint8 activation range over the calibration texts or per batch
   for dynamic, symmetric int8 weights per output channel) and the relative error of its output measured:
   ``||XW - XqWq|| / ||XW||``. That orders the MatMuls by how much int8 costs each.
2. **At most ``MAX_ATTEMPTS`` quantisations** (``plan_attempts``): first with the MatMuls whose simulated error
   is an outlier among them (``OUTLIER_FACTOR`` x the median and above ``ERROR_FLOOR``) in float; then, while
   the judge refuses, with the most sensitive ``FALLBACK_SHARES`` of them in float as well.
3. **A judge decides** (``Judge``: a callable taking a ``Candidate``, returning a ``Verdict``). The default
   (``EmbeddingJudge``) is ``exclude: auto``'s target: the validator's metrics between the candidate's and the
   fp32 graph's sentence embeddings on 200 held-out texts, each meeting the variant's threshold with a margin.
   Rerankers and sparse encoders pass their own. The first candidate the judge accepts is kept; when none is,
   the best-scoring one is kept and validation (the final gate) decides, with ``RuleResult.line`` saying what
   was tried and the best reached.

Cost: the probe (a fraction of one calibration pass), the judge's fp32 reference, and one quantisation plus one
judge pass per attempt: 1.5-4.5x the plain int8 build (measured in docs/int8.md), against ``exclude: auto``'s
up to ~40 quantisations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from exporter.progress import Progress, quiet_libraries

MAX_ATTEMPTS = 3  # quantisations at most: with the probe and the judge's passes, under 5x the plain build
FALLBACK_SHARES = (1 / 6, 1 / 3)  # of the weight MatMuls, most sensitive first, kept in float by attempts 2 and 3
OUTLIER_FACTOR = 4.0  # attempt 1 keeps in float a MatMul whose simulated error is this many times the median...
ERROR_FLOOR = 0.02  # ...and above this relative output error (below it int8 is harmless whatever the median)
PROBE_SAMPLES = 32  # calibration texts the sensitivity pass runs
PROBE_ROWS_PER_TEXT = 16  # token rows per text kept to simulate each MatMul (ranges use every row)
NNCF_SMOOTH_ALPHA = 0.95  # NNCF's default SmoothQuant alpha for MatMuls

Scheme = Literal["onnx-static", "onnx-dynamic", "openvino-static", "openvino-static-unsmoothed"]
Feed = dict[str, np.ndarray]


@dataclass
class Sensitivity:
    """One weight MatMul: its simulated int8 output error and its input's outlier ratio (max / median channel)."""

    name: str
    error: float
    outlier_ratio: float


@dataclass
class Verdict:
    """A judge's answer on one candidate: whether it passes, a score to rank candidates (higher is better, >= 0
    passes for the default judge), a one-line summary and the metrics behind it."""

    passes: bool
    score: float
    summary: str
    metrics: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Candidate:
    """One quantised graph: the MatMuls kept in float, and ``run(feeds)``, its raw output per feed (computed in
    f32 whatever the CPU's default precision)."""

    kept_float: list[str]
    run: Callable[[list[Feed]], list[np.ndarray]]


Judge = Callable[[Candidate], Verdict]


@dataclass
class Attempt:
    kept_float: list[str]
    verdict: Verdict
    seconds: float


@dataclass
class RuleResult:
    """What the rule chose (``kept_float``, the index of the attempt kept) and everything it tried."""

    kept_float: list[str]
    chosen: int
    attempts: list[Attempt]
    candidates: int  # weight MatMuls the rule chose among
    seconds: float
    probe_seconds: float
    scheme: str

    @property
    def verdict(self) -> Verdict:
        return self.attempts[self.chosen].verdict

    @property
    def passed(self) -> bool:
        return self.verdict.passes

    def line(self) -> str:
        """One line: what was tried and the best reached (the build prints it when the variant fails)."""
        tried = ", ".join(str(len(attempt.kept_float)) for attempt in self.attempts)
        return (f"int8 rule tried {len(self.attempts)} configuration(s) ({tried} of {self.candidates} MatMuls in "
                f"float), best reached {self.verdict.summary}")

    def reason(self) -> str:
        verdict = "accepted" if self.passed else "NOT accepted by the judge (validation will judge it)"
        return (f"int8 rule ({self.scheme}): MatMuls ordered by simulated int8 output error on calibration texts; "
                f"attempt {self.chosen + 1} of {len(self.attempts)} kept {len(self.kept_float)} of {self.candidates} "
                f"in float: {self.verdict.summary} ({verdict})")


# ------------------------------------------------------------------------------------------------ analysis


def matmul_sensitivity(onnx_path: Path, feeds: list[Feed], *, scheme: Scheme, scratch: Path) -> list[Sensitivity]:
    """Every weight MatMul of the fp32 ONNX graph at ``onnx_path``, most sensitive first (module docstring, step 1).
    ``scheme`` says how the backend quantises: ``onnx-static`` (smoothing as ``quantize_onnx_static``, one range
    from calibration), ``onnx-dynamic`` (no smoothing, a range per batch), ``openvino-static`` (SmoothQuant)."""
    import tempfile

    import onnx
    from onnx import numpy_helper

    from exporter.export.onnx_backend import probe_session

    model = onnx.load(str(onnx_path), load_external_data=True)
    weights = {tensor.name: tensor for tensor in model.graph.initializer}
    nodes = [node for node in model.graph.node if node.op_type == "MatMul" and node.input[1] in weights
             and node.input[0] not in weights and len(weights[node.input[1]].dims) == 2]
    tensors = sorted({node.input[0] for node in nodes})
    folder = Path(tempfile.mkdtemp(prefix="sensitivity-", dir=scratch))
    session, wanted = probe_session(model, tensors, folder / "probe.onnx")
    del model
    rng = np.random.default_rng(0)
    stats: dict[str, dict] = {name: {"rows": [], "feed": [], "low": [], "high": [], "cmin": None, "cmax": None}
                              for name in tensors}
    for index, feed in enumerate(feeds[:PROBE_SAMPLES]):
        values = session.run(tensors, {key: value for key, value in feed.items() if key in wanted})
        mask = feed["attention_mask"].reshape(-1).astype(bool)
        for name, value in zip(tensors, values, strict=True):
            rows = value.reshape(-1, value.shape[-1])
            rows = rows[mask] if rows.shape[0] == mask.size else rows  # real tokens only, as a batch of one
            entry = stats[name]
            low, high = rows.min(axis=0), rows.max(axis=0)
            entry["cmin"] = low if entry["cmin"] is None else np.minimum(entry["cmin"], low)
            entry["cmax"] = high if entry["cmax"] is None else np.maximum(entry["cmax"], high)
            entry["low"].append(float(low.min()))
            entry["high"].append(float(high.max()))
            keep = rng.choice(rows.shape[0], size=min(PROBE_ROWS_PER_TEXT, rows.shape[0]), replace=False)
            entry["rows"].append(rows[keep].astype(np.float64))
            entry["feed"].append(np.full(keep.size, index))
    del session
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    model = onnx.load(str(onnx_path), load_external_data=True)
    weights = {tensor.name: tensor for tensor in model.graph.initializer}
    result = []
    for node in nodes:
        entry = stats[node.input[0]]
        weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float64)
        rows, feed_of = np.concatenate(entry["rows"]), np.concatenate(entry["feed"])
        peak = np.maximum(np.abs(entry["cmin"]), np.abs(entry["cmax"])).astype(np.float64)
        median = float(np.median(peak))
        error = _simulated_error(rows, feed_of, weight, entry, peak, scheme)
        result.append(Sensitivity(name=node.name, error=error,
                                  outlier_ratio=float(peak.max() / median) if median > 0 else math.inf))
    return sorted(result, key=lambda item: item.error, reverse=True)


def _simulated_error(rows: np.ndarray, feed_of: np.ndarray, weight: np.ndarray, entry: dict, peak: np.ndarray,
                     scheme: Scheme) -> float:
    """Relative error of ``rows @ weight`` when both go through int8 as ``scheme`` quantises them."""
    from exporter.export.onnx_backend import SMOOTH_ALPHA, SMOOTH_CAP

    reference = rows @ weight
    scale = np.ones_like(peak)
    if scheme == "onnx-static" and np.median(peak) > 0:
        scale = np.maximum(1.0, peak / (SMOOTH_CAP * np.median(peak))) ** SMOOTH_ALPHA
    elif scheme == "openvino-static":
        weight_peak = np.maximum(np.abs(weight).max(axis=1), 1e-12)
        scale = np.clip(np.maximum(peak, 1e-12) ** NNCF_SMOOTH_ALPHA / weight_peak ** (1 - NNCF_SMOOTH_ALPHA),
                        1e-5, None)
    smoothed, smoothed_weight = rows / scale, weight * scale[:, None]
    if scheme == "onnx-dynamic":  # one range per batch: here per text
        low = np.minimum(np.asarray(entry["low"])[feed_of], 0.0)[:, None]
        high = np.maximum(np.asarray(entry["high"])[feed_of], 0.0)[:, None]
    else:
        low = min(float((entry["cmin"] / scale).min()), 0.0)
        high = max(float((entry["cmax"] / scale).max()), 0.0)
    step = np.maximum((high - low) / 255.0, 1e-12)
    zero = np.round(-low / step)
    quantized_rows = (np.clip(np.round(smoothed / step) + zero, 0, 255) - zero) * step
    weight_step = np.maximum(np.abs(smoothed_weight).max(axis=0), 1e-12) / 127.0
    quantized_weight = np.round(smoothed_weight / weight_step) * weight_step
    error = np.linalg.norm(reference - quantized_rows @ quantized_weight)
    return float(error / max(np.linalg.norm(reference), 1e-12))


def plan_attempts(sensitivities: list[Sensitivity]) -> list[list[str]]:
    """The MatMuls each attempt keeps in float (module docstring, step 2): distinct, growing, at most
    ``MAX_ATTEMPTS``. ``sensitivities`` most sensitive first."""
    errors = np.asarray([item.error for item in sensitivities])
    median = float(np.median(errors)) if errors.size else 0.0
    flagged = [item.name for item in sensitivities if item.error > max(OUTLIER_FACTOR * median, ERROR_FLOOR)]
    plans = [flagged]
    for share in FALLBACK_SHARES:
        top = [item.name for item in sensitivities[:math.ceil(share * len(sensitivities))]]
        plan = flagged + [name for name in top if name not in flagged]
        if len(plan) > len(plans[-1]):
            plans.append(plan)
    return plans[:MAX_ATTEMPTS]


def choose(plans: list[list[str]], build: Callable[[list[str]], Candidate], judge: Judge, progress: Progress,
           *, candidates: int, scheme: str, probe_seconds: float = 0.0,
           keep: Callable[[int], None] | None = None) -> RuleResult:
    """Build and judge each plan in turn until the judge accepts one (module docstring, step 3). ``build(kept)``
    quantises with ``kept`` in float; ``keep(index)`` is told which attempt won (when it is not the last one
    built, the caller restores it). Each attempt is logged."""
    started = time.perf_counter()
    attempts: list[Attempt] = []
    for kept in plans:
        began = time.perf_counter()
        with quiet_libraries():
            candidate = build(list(kept))
            verdict = judge(candidate)
        attempts.append(Attempt(kept_float=list(kept), verdict=verdict, seconds=time.perf_counter() - began))
        progress.log(f"  int8 rule attempt {len(attempts)}: {len(kept)} of {candidates} MatMuls in float: "
                     f"{verdict.summary}{'  (accepted)' if verdict.passes else ''}")
        if verdict.passes:
            break
    passing = [index for index, attempt in enumerate(attempts) if attempt.verdict.passes]
    chosen = passing[0] if passing else max(range(len(attempts)), key=lambda index: attempts[index].verdict.score)
    if keep is not None:
        keep(chosen)
    return RuleResult(kept_float=sorted(attempts[chosen].kept_float), chosen=chosen, attempts=attempts,
                      candidates=candidates, seconds=time.perf_counter() - started + probe_seconds,
                      probe_seconds=probe_seconds, scheme=scheme)


# ------------------------------------------------------------------------------------------------ default judge


class EmbeddingJudge:
    """Today's default judge: the candidate's sentence embeddings of ``feeds`` (its raw outputs pooled by ``steps``)
    against ``reference`` (the fp32 graph's), measured as the validator measures, each metric meeting ``target``
    (``exclusion_search.SearchTarget``: the variant's thresholds with a margin)."""

    def __init__(self, *, feeds: list[Feed], steps: list, reference: np.ndarray, target) -> None:
        self.feeds, self.steps, self.reference, self.target = feeds, steps, reference, target

    def __call__(self, candidate: Candidate) -> Verdict:
        from exporter.export.exclusion_search import headline, sentence_embeddings

        metrics = headline(sentence_embeddings(candidate.run(self.feeds), self.feeds, self.steps), self.reference)
        def slack(key: str) -> float:
            value, required = metrics.get(key), self.target.thresholds[key]
            return -1.0 if value is None else (value - required) / max(1.0 - required, 1e-12)

        worst = min(self.target.thresholds, key=slack)
        value = metrics.get(worst)
        shown = "n/a" if value is None else f"{value:.4f}"
        relation = ">=" if self.target.met(metrics) else "<"
        summary = (f"{worst} {shown} {relation} {self.target.thresholds[worst]:.4f} on {len(self.feeds)} "
                   "held-out texts")
        return Verdict(passes=self.target.met(metrics), score=self.target.slack(metrics), summary=summary,
                       metrics=metrics)


# ------------------------------------------------------------------------------------------------ runners


def onnx_runner(path: Path) -> Callable[[list[Feed]], list[np.ndarray]]:
    """``run(feeds)`` for an ONNX graph on ONNX Runtime's CPU provider: the first output per feed."""
    import onnxruntime as ort

    def run(feeds: list[Feed]) -> list[np.ndarray]:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        wanted = {entry.name for entry in session.get_inputs()}
        return [session.run(None, {key: value for key, value in feed.items() if key in wanted})[0] for feed in feeds]

    return run


def openvino_runner(ov_model, output: str) -> Callable[[list[Feed]], list[np.ndarray]]:
    """``run(feeds)`` for an in-memory OpenVINO model compiled in f32 (never the CPU's default bf16)."""
    import openvino as ov

    from exporter.constants import OPENVINO_NUMERICS

    def run(feeds: list[Feed]) -> list[np.ndarray]:
        compiled = ov.Core().compile_model(ov_model, "CPU", dict(OPENVINO_NUMERICS))
        return [compiled(feed)[output] for feed in feeds]

    return run
