"""The parity metrics and the checks built from them.

Per-text cosine catches a variant that computes something else; the neighbour overlap and the Spearman
correlation of pairwise similarities catch what matters for search even when every single vector is
"close": a ranking that changed. Everything is computed in float64 on the variant's and the reference's
embeddings of the same texts.

Gating checks decide the verdict; reported ones (``gating=False``) are there to read, never fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exporter.validators.thresholds import THRESHOLD_KEYS, Thresholds

NEIGHBOURS = 10
# Gating checks, in report order. "runs" fails when the variant cannot be loaded or run at all.
GATING_CHECKS = ("runs", "shape", "dtype", "finite", *THRESHOLD_KEYS)
REPORTED_CHECKS = ("cosine_p01", "max_abs_diff", "norm_mean", "norm_min", "norm_max")
CHECK_NAMES = GATING_CHECKS + REPORTED_CHECKS
# graph: transformer variants also get the sentence-transformers loading path checked (gating when it ran).
SENTENCE_TRANSFORMERS_CHECK = "sentence_transformers"
# Every variant: the Encoder's token ids of the texts equal the torch reference's (gating when measured).
TOKENIZATION_CHECK = "tokenization"
# One per prompt the model declares: cosine_min of the texts encoded with that prompt ("prompt:query").
PROMPT_CHECK_PREFIX = "prompt:"


def check_names(graph: str, prompts: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The checks a variant of this graph kind gets, in report order (``prompts``: the model's prompt names)."""
    return (CHECK_NAMES + (TOKENIZATION_CHECK,) + tuple(PROMPT_CHECK_PREFIX + name for name in prompts)
            + ((SENTENCE_TRANSFORMERS_CHECK,) if graph == "transformer" else ()))


@dataclass
class Check:
    """One check of one variant: what was measured, what was required, and the verdict.

    ``measured`` is the worse value over the encoding passes; ``by_batch`` has each pass's value, keyed by
    batch size. ``comparison`` is ">=" or "==" for gating checks, ``None`` for reported ones.
    """

    name: str
    measured: Any
    required: Any = None
    comparison: str | None = None
    passed: bool = True
    gating: bool = True
    by_batch: dict[str, Any] = field(default_factory=dict)
    detail: str | None = None


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (1 for two zero rows, 0 for one)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = (a * b).sum(axis=1)
    both_zero = (np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosines = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)
    return np.where(both_zero, 1.0, cosines)


def similarity_matrix(embeddings: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarities."""
    vectors = embeddings.astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    return unit @ unit.T


def neighbour_overlap(variant_sim: np.ndarray, reference_sim: np.ndarray, k: int = NEIGHBOURS) -> float | None:
    """Mean over texts of |top-k neighbours by the variant ∩ top-k by the reference| / k, self excluded."""
    n = variant_sim.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return None

    def top(similarities: np.ndarray) -> np.ndarray:
        masked = similarities.copy()
        np.fill_diagonal(masked, -np.inf)
        return np.argsort(-masked, axis=1, kind="stable")[:, :k]

    ours, theirs = top(variant_sim), top(reference_sim)
    shared = [len(set(ours[i]).intersection(theirs[i])) for i in range(n)]
    return float(np.mean(shared) / k)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank (what Spearman's correlation ranks by)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts) - 1  # tie group of each sorted position
    bounds = np.r_[np.flatnonzero(starts), len(values)]  # first sorted position of each group, then the end
    average = (bounds[:-1] + bounds[1:] + 1) / 2.0  # mean of the 1-based positions in each group
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = average[group]
    return ranks


def spearman(variant_sim: np.ndarray, reference_sim: np.ndarray) -> float | None:
    """Spearman correlation of the upper triangles (pairs i < j) of two similarity matrices (numpy only: the
    deploy install has no scipy)."""
    upper = np.triu_indices(variant_sim.shape[0], k=1)
    if upper[0].size < 3:
        return None
    a, b = average_ranks(variant_sim[upper]), average_ranks(reference_sim[upper])
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else None


def measure(embeddings: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Every metric of one encoding pass against the reference rows of the same texts.

    Metrics that need comparable finite vectors are ``None`` when the shapes differ or values are not finite.
    """
    values: dict[str, Any] = {
        "shape": list(embeddings.shape),
        "expected_shape": list(reference.shape),
        "dtype": str(embeddings.dtype),
        "finite": int(np.size(embeddings) - np.count_nonzero(np.isfinite(embeddings))),
    }
    values.update({name: None for name in (*THRESHOLD_KEYS, *REPORTED_CHECKS)})
    if embeddings.shape != reference.shape or values["finite"] or embeddings.size == 0:
        return values
    cosines = cosine_rows(embeddings, reference)
    norms = np.linalg.norm(embeddings.astype(np.float64), axis=1)
    variant_sim, reference_sim = similarity_matrix(embeddings), similarity_matrix(reference)
    values.update(
        cosine_min=float(cosines.min()),
        cosine_mean=float(cosines.mean()),
        neighbour_overlap=neighbour_overlap(variant_sim, reference_sim),
        spearman=spearman(variant_sim, reference_sim),
        cosine_p01=float(np.percentile(cosines, 1)),
        max_abs_diff=float(np.abs(embeddings.astype(np.float64) - reference.astype(np.float64)).max()),
        norm_mean=float(norms.mean()),
        norm_min=float(norms.min()),
        norm_max=float(norms.max()),
    )
    # A NaN metric (e.g. Spearman of constant similarities) is "not measured", never a passing number.
    return {name: None if isinstance(v, float) and not np.isfinite(v) else v for name, v in values.items()}


def build_checks(passes: dict[int, dict[str, Any]], thresholds: Thresholds) -> list[Check]:
    """Checks from the metrics of each pass (keyed by batch size); each takes the worse pass's value.

    The passes encode different numbers of texts (batch size 1 runs on a subset), so ``shape`` reports the
    first pass whose shape differs from the reference rows of its texts, else the largest pass's shape.
    """
    checks = [Check("runs", measured=True, required=True, comparison="==", by_batch={str(b): True for b in passes})]
    shapes = {str(b): m["shape"] for b, m in passes.items()}
    largest = max(passes.values(), key=lambda m: m["expected_shape"][0])
    wrong = next((m for m in passes.values() if m["shape"] != m["expected_shape"]), largest)
    checks.append(_exact("shape", wrong["shape"], wrong["expected_shape"], shapes))
    dtypes = {str(b): m["dtype"] for b, m in passes.items()}
    checks.append(_exact("dtype", next((d for d in dtypes.values() if d != "float32"), "float32"), "float32", dtypes))
    finite = {str(b): m["finite"] for b, m in passes.items()}
    checks.append(_exact("finite", max(finite.values()), 0, finite, detail="count of NaN/inf values"))
    required = thresholds.model_dump()
    for name in THRESHOLD_KEYS:
        checks.append(_at_least(name, {str(b): m[name] for b, m in passes.items()}, required[name]))
    for name in REPORTED_CHECKS:
        values = {str(b): m[name] for b, m in passes.items()}
        worse = max if name == "max_abs_diff" else min
        known = [v for v in values.values() if v is not None]
        checks.append(Check(name, measured=worse(known) if known else None, gating=False, by_batch=values))
    return checks


def failed_run_checks(error: str, thresholds: Thresholds) -> list[Check]:
    """The checks of a variant that could not be loaded or run: ``runs`` fails, the rest are unmeasured."""
    required: dict[str, Any] = {"shape": None, "dtype": "float32", "finite": 0, **thresholds.model_dump()}
    checks = [Check("runs", measured=False, required=True, comparison="==", passed=False, detail=error)]
    for name in GATING_CHECKS[1:]:
        checks.append(Check(name, measured=None, required=required[name],
                            comparison=">=" if name in THRESHOLD_KEYS else "==",
                            passed=False, detail="not measured: the variant did not run"))
    checks.extend(Check(name, measured=None, gating=False, detail="not measured") for name in REPORTED_CHECKS)
    return checks


def _exact(name: str, measured: Any, required: Any, by_batch: dict[str, Any], detail: str | None = None) -> Check:
    return Check(name, measured=measured, required=required, comparison="==", passed=measured == required,
                 by_batch=by_batch, detail=detail)


def _at_least(name: str, values: dict[str, float | None], required: float | None) -> Check:
    if any(v is None for v in values.values()):
        return Check(name, measured=None, required=required, comparison=">=", passed=False, by_batch=values,
                     detail="not measured: wrong shape, non-finite values, or too few texts")
    measured = min(values.values())
    passed = True if required is None else measured >= required
    return Check(name, measured=measured, required=required, comparison=">=", passed=passed, by_batch=values)


def not_run_check(name: str, reason: str) -> Check:
    """A check that could not run on this host: reported with the reason, never gating."""
    return Check(name, measured=None, gating=False, passed=True, detail=f"not run: {reason}")
