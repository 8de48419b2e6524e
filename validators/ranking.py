"""Validation of rerankers (``model.kind: cross``): does the exported model order passages like torch?

A reranker's output is only ever used to sort the passages of one query, so the yardstick is per query group:
the torch CrossEncoder's activated scores (``CrossEncoder.predict``, the model's own activation: sigmoid for one
label) of every (query, passage) pair, against the variant's. Measured per group and over all groups:

* ``max_abs_diff``: the largest |score difference| over every pair (activated scores);
* ``ranking``: the share of groups whose ranking is torch's, where two passages whose torch scores differ by less
  than ``tie_tolerance`` may swap (a near tie has no right order to keep);
* ``top1_agreement``: the share of groups whose top passage is torch's (or ties torch's within the tolerance);
* ``spearman_mean``: the mean per-group Spearman correlation of the scores;
* ``ndcg_at_5``: the mean NDCG@5 of the variant's ranking, with torch's scores as the graded relevance (torch's
  own ranking is the ideal: 1.0).

The groups are the built-in set (``exporter/data/rerank_groups.jsonl``) or the recipe's ``validation.pairs`` (JSONL,
one ``{"query": str, "passages": [str, ...]}`` per line; an optional ``labels`` list of the same length is accepted
and ignored). The stored reference (``parity/rerank_groups.jsonl`` + ``parity/rerank_scores.npy``) holds the groups
and torch's scores, so ``exporter fetch --check`` proves a deploy host without torch.

Numpy only below ``validate_ranking``'s torch reference: a deploy install has no scipy or torch.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from exporter.errors import BadInputError
from exporter.validators.checks import Check, average_ranks

GROUPS_NAME = "rerank_groups.jsonl"
STORED_GROUPS_FILE = f"parity/{GROUPS_NAME}"
STORED_SCORES_FILE = "parity/rerank_scores.npy"
RANKING_CHECKS = ("runs", "finite", "max_abs_diff", "ranking", "top1_agreement", "spearman_mean", "ndcg_at_5")
RANKING_THRESHOLD_KEYS = ("max_abs_diff", "tie_tolerance", "ranking", "top1_agreement", "spearman_mean", "ndcg_at_5")
# "max" thresholds are upper bounds; every other one a lower bound; tie_tolerance is a setting, not a check.
UPPER_BOUNDS = frozenset({"max_abs_diff"})
NDCG_AT = 5
# Defaults per precision. fp32: the floor (scores within 1e-4, rankings identical but for near ties).
# fp16 / bf16 / int8: measured on the tiny random rerankers and the MiniLM reranker (docs/rerankers.md).
RANKING_DEFAULTS: dict[str, dict[str, float | None]] = {
    "fp32": {"max_abs_diff": 1e-4, "tie_tolerance": 1e-4, "ranking": 1.0, "top1_agreement": 1.0,
             "spearman_mean": 0.99, "ndcg_at_5": 0.999},
    "fp16": {"max_abs_diff": 5e-3, "tie_tolerance": 5e-3, "ranking": 0.9, "top1_agreement": 0.975,
             "spearman_mean": 0.98, "ndcg_at_5": 0.99},
    "bf16": {"max_abs_diff": 5e-2, "tie_tolerance": 1e-2, "ranking": 0.5, "top1_agreement": 0.95,
             "spearman_mean": 0.95, "ndcg_at_5": 0.98},
    # int8: the rankings are the gate (the floors); its score differences (0.2-0.4 on sigmoid scores for the
    # MiniLM reranker) and exact orderings are reported, not gated.
    "int8": {"max_abs_diff": None, "tie_tolerance": 1e-2, "ranking": None, "top1_agreement": 0.95,
             "spearman_mean": 0.95, "ndcg_at_5": 0.97},
}


def ranking_thresholds(precision: str) -> dict[str, float | None]:
    """The default ranking thresholds of ``precision``; ``BadInputError`` for an unknown one."""
    if precision not in RANKING_DEFAULTS:
        raise BadInputError(f"no ranking thresholds for precision {precision!r} (known: {', '.join(RANKING_DEFAULTS)})")
    return dict(RANKING_DEFAULTS[precision])


# -- query groups ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryGroup:
    """One query and the passages a reranker orders for it."""

    query: str
    passages: tuple[str, ...]
    origin: str = "builtin"

    def pairs(self) -> list[tuple[str, str]]:
        return [(self.query, passage) for passage in self.passages]


def builtin_groups_path():
    return resources.files("exporter") / "data" / GROUPS_NAME


def builtin_groups() -> list[QueryGroup]:
    """The built-in query groups shipped with the tool (``exporter/data/rerank_groups.jsonl``)."""
    path = builtin_groups_path()
    return parse_groups(path.read_text(encoding="utf-8"), f"exporter/data/{GROUPS_NAME}", origin="builtin")


def read_groups(path: Path, origin: str = "extra") -> list[QueryGroup]:
    """The query groups of a JSONL file; ``BadInputError`` naming file:line and field for a malformed one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"{path}: cannot be read ({type(error).__name__})") from None
    return parse_groups(text, str(path), origin=origin)


def parse_groups(text: str, where: str, origin: str = "extra") -> list[QueryGroup]:
    """Parse JSONL query groups: ``{"query": str, "passages": [str, ...]}`` per line, an optional ``labels`` list of
    ints of the same length (ignored), blank lines skipped, nothing else accepted."""
    groups = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as error:
            raise BadInputError(f"{where}:{number}: not a JSON object ({error.msg})") from None
        if not isinstance(data, dict):
            raise BadInputError(f"{where}:{number}: expected a JSON object with query and passages")
        unknown = sorted(set(data) - {"query", "passages", "labels"})
        if unknown:
            raise BadInputError(f"{where}:{number}: {unknown[0]}: unknown field (expected query, passages, labels)")
        query = data.get("query")
        if not isinstance(query, str) or not query.strip():
            raise BadInputError(f"{where}:{number}: query: " + ("missing" if "query" not in data
                                                                 else "expected a non-empty string"))
        passages = data.get("passages")
        if "passages" not in data:
            raise BadInputError(f"{where}:{number}: passages: missing")
        if (not isinstance(passages, list) or len(passages) < 2
                or not all(isinstance(p, str) and p.strip() for p in passages)):
            raise BadInputError(f"{where}:{number}: passages: expected a list of at least 2 non-empty strings")
        if "labels" in data:
            labels = data["labels"]
            if (not isinstance(labels, list) or len(labels) != len(passages)
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in labels)):
                raise BadInputError(f"{where}:{number}: labels: expected a list of {len(passages)} integers "
                                    "(one per passage)")
        groups.append(QueryGroup(query=query, passages=tuple(passages), origin=origin))
    if not groups:
        raise BadInputError(f"{where}: no query groups")
    return groups


def groups_to_jsonl(groups: list[QueryGroup]) -> str:
    return "".join(json.dumps({"query": g.query, "passages": list(g.passages)}, ensure_ascii=False) + "\n"
                   for g in groups)


def all_pairs(groups: list[QueryGroup]) -> list[tuple[str, str]]:
    return [pair for group in groups for pair in group.pairs()]


def split_scores(scores: np.ndarray, groups: list[QueryGroup]) -> list[np.ndarray]:
    """The flat scores of ``all_pairs(groups)`` cut back into one array per group."""
    bounds = np.cumsum([0] + [len(g.passages) for g in groups])
    return [np.asarray(scores[bounds[i]:bounds[i + 1]], dtype=np.float64) for i in range(len(groups))]


# -- metrics ---------------------------------------------------------------------------------------------------


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    if denominator == 0:  # constant scores on one side: the same ranking only when both are constant
        return 1.0 if np.ptp(a) == 0 and np.ptp(b) == 0 else 0.0
    return float((ra * rb).sum() / denominator)


def _ndcg(variant: np.ndarray, reference: np.ndarray, k: int = NDCG_AT) -> float:
    """NDCG@k of the variant's order, the reference scores (shifted to be >= 0) as graded relevance."""
    gains = reference - reference.min()
    discounts = 1.0 / np.log2(np.arange(2, min(k, len(gains)) + 2))
    ideal = (np.sort(gains)[::-1][: len(discounts)] * discounts).sum()
    if ideal <= 0:
        return 1.0
    ours = (gains[np.argsort(-variant, kind="stable")][: len(discounts)] * discounts).sum()
    return float(ours / ideal)


def _same_ranking(variant: np.ndarray, reference: np.ndarray, tolerance: float) -> bool:
    """Whether every pair of passages the variant orders differently from torch is a torch near tie."""
    order = np.argsort(-variant, kind="stable")
    ref = reference[order]
    # an inversion: a passage ranked above one torch scores higher by at least the tolerance
    return not bool((ref[None, :] - ref[:, None] >= tolerance)[np.triu_indices(len(ref), k=1)].any())


def _top1_agrees(variant: np.ndarray, reference: np.ndarray, tolerance: float) -> bool:
    return bool(reference.max() - reference[int(np.argmax(variant))] < tolerance)


def ranking_metrics(variant: list[np.ndarray], reference: list[np.ndarray], tie_tolerance: float
                    ) -> dict[str, float | None]:
    """Every ranking metric of per-group variant scores against the reference's (same groups, same order)."""
    if not variant:
        return {key: None for key in RANKING_CHECKS[2:]}
    flat_v, flat_r = np.concatenate(variant), np.concatenate(reference)
    groups = list(zip(variant, reference, strict=True))
    return {
        "max_abs_diff": float(np.abs(flat_v - flat_r).max()),
        "ranking": float(np.mean([_same_ranking(v, r, tie_tolerance) for v, r in groups])),
        "top1_agreement": float(np.mean([_top1_agrees(v, r, tie_tolerance) for v, r in groups])),
        "spearman_mean": float(np.mean([_spearman(v, r) for v, r in groups])),
        "ndcg_at_5": float(np.mean([_ndcg(v, r) for v, r in groups])),
    }


def meets(metrics: dict[str, float | None], thresholds: dict[str, float]) -> list[str]:
    """The metrics that miss their thresholds, as one-line reasons (empty: every one is met)."""
    problems = []
    for key in RANKING_CHECKS[2:]:
        value, required = metrics.get(key), thresholds.get(key)
        if required is None:
            continue
        if value is None or not np.isfinite(value):
            problems.append(f"{key} not measured")
        elif key in UPPER_BOUNDS and value > required:
            problems.append(f"{key} {value:.3g} > {required:.3g}")
        elif key not in UPPER_BOUNDS and value < required:
            problems.append(f"{key} {value:.4f} < {required:.4f}")
    return problems


def ranking_checks(metrics: dict[str, float | None], thresholds: dict[str, float], groups: int) -> list[Check]:
    """The gating checks of one variant's metrics."""
    checks = [Check("runs", measured=True, required=True, comparison="==", passed=True),
              Check("finite", measured=True, required=True, comparison="==", passed=True)]
    for key in RANKING_CHECKS[2:]:
        value, required = metrics.get(key), thresholds.get(key)
        upper = key in UPPER_BOUNDS
        passed = value is not None and (required is None or (value <= required if upper else value >= required))
        checks.append(Check(key, measured=value, required=required, comparison="<=" if upper else ">=",
                            passed=passed, detail=f"over {groups} query groups"
                            + (f" (ties within {thresholds['tie_tolerance']:g} may swap)"
                               if key in ("ranking", "top1_agreement") else "")))
    return checks


def failed_checks(reason: str, thresholds: dict[str, float]) -> list[Check]:
    """A variant that could not load or run: ``runs`` fails, every metric is not measured."""
    return [Check("runs", measured=False, required=True, comparison="==", passed=False, detail=reason)] + [
        Check(key, measured=None, required=thresholds.get(key), comparison="<=" if key in UPPER_BOUNDS else ">=",
              passed=False, detail="not measured: the variant did not run") for key in RANKING_CHECKS[1:]]


# -- the reference ---------------------------------------------------------------------------------------------


@dataclass
class RankingReference:
    """Torch's activated scores of every pair of ``groups`` (flat, group by group)."""

    groups: list[QueryGroup]
    scores: np.ndarray
    kind: str  # "source" or "stored"
    location: str | None = None


def torch_scores(directory: Path, pairs: list[tuple[str, str]], *, tokenizer_folder: Path | None = None,
                 max_seq_length: int | None = None, trust_remote_code: bool = False) -> np.ndarray:
    """``CrossEncoder.predict`` of the torch model in ``directory`` (its default activation), tokenising with the
    artifact's tokenizer files when ``tokenizer_folder`` is given."""
    from sentence_transformers import CrossEncoder

    from exporter.progress import quiet_loading
    from exporter.runtime.runners import use_folder_tokenizer

    with quiet_loading():
        model = CrossEncoder(str(directory), device="cpu", trust_remote_code=trust_remote_code,
                             local_files_only=True)
    if tokenizer_folder is not None:
        use_folder_tokenizer(model, Path(tokenizer_folder))
    if max_seq_length:
        model.max_seq_length = max_seq_length
    scores = np.asarray(model.predict(pairs, batch_size=32, show_progress_bar=False), dtype=np.float32)
    return scores.reshape(len(pairs), -1)[:, 0] if scores.ndim > 1 else scores


def has_stored_ranking_reference(folder: Path) -> bool:
    return (folder / STORED_GROUPS_FILE).is_file() and (folder / STORED_SCORES_FILE).is_file()


def load_stored_ranking_reference(folder: Path, manifest) -> RankingReference:
    """The stored groups and torch scores, checked against the manifest's sha256 when it lists them."""
    from exporter.artifact.integrity import sha256_file

    for relative in (STORED_GROUPS_FILE, STORED_SCORES_FILE):
        entry = next((e for e in manifest.shared_files if e.path == relative), None)
        if entry is not None and sha256_file(folder / relative) != entry.sha256:
            raise BadInputError(f"{folder / relative}: does not match the sha256 manifest.json records (the stored "
                                "reference changed)")
    groups = read_groups(folder / STORED_GROUPS_FILE, origin="stored")
    scores = np.load(folder / STORED_SCORES_FILE, allow_pickle=False)
    if scores.shape != (sum(len(g.passages) for g in groups),):
        raise BadInputError(f"{folder / STORED_SCORES_FILE}: {list(scores.shape)} scores for "
                            f"{sum(len(g.passages) for g in groups)} pairs")
    return RankingReference(groups=groups, scores=scores.astype(np.float32), kind="stored")


def store_ranking_reference(folder: Path, reference: RankingReference) -> None:
    import io

    from exporter.artifact.integrity import write_text_atomic

    (folder / "parity").mkdir(exist_ok=True)
    write_text_atomic(folder / STORED_GROUPS_FILE, groups_to_jsonl(reference.groups))
    buffer = io.BytesIO()
    np.save(buffer, reference.scores.astype(np.float32), allow_pickle=False)
    temporary = folder / (STORED_SCORES_FILE + ".tmp")
    temporary.write_bytes(buffer.getvalue())
    temporary.replace(folder / STORED_SCORES_FILE)


# -- validation ------------------------------------------------------------------------------------------------


def variant_scores(folder: Path, manifest, variant, pairs: list[tuple[str, str]], batch_size: int = 32):
    """(the variant's activated scores of ``pairs``, the ``Reranker`` that ran them): the deploy runtime."""
    from exporter.runtime.reranker import Reranker

    reranker = Reranker(folder, manifest, variant)
    return reranker.predict(pairs, batch_size=batch_size), reranker


def held_to(variant) -> dict[str, float]:
    """The thresholds a variant is held to: its precision's defaults, then those its manifest records."""
    thresholds = ranking_thresholds(variant.precision)
    for key, value in (variant.validation_thresholds or {}).items():
        if key in RANKING_THRESHOLD_KEYS and value is not None:
            thresholds[key] = float(value)
    return thresholds


def validate_ranking_variant(folder: Path, manifest, variant, reference: RankingReference, *,
                             sentence_transformers: bool = True):
    """Run one variant on every pair of the reference's groups and judge its rankings."""
    from exporter.errors import RuntimeUnavailableError
    from exporter.validators.report import VariantResult

    started = time.perf_counter()
    thresholds = held_to(variant)
    pairs = all_pairs(reference.groups)
    inference_precision = None
    try:
        scores, reranker = variant_scores(folder, manifest, variant, pairs)
        inference_precision = reranker.settings.get("compiled_inference_precision")
        if not np.isfinite(scores).all():
            checks = failed_checks("non-finite scores", thresholds)
            checks[0] = Check("runs", measured=True, required=True, comparison="==", passed=True)
        else:
            metrics = ranking_metrics(split_scores(scores, reference.groups),
                                      split_scores(reference.scores, reference.groups), thresholds["tie_tolerance"])
            checks = ranking_checks(metrics, thresholds, len(reference.groups))
    except (BadInputError, RuntimeUnavailableError):
        raise
    except Exception as error:  # noqa: BLE001 - a variant that cannot load or run is a broken artifact
        from exporter.errors import first_line

        checks = failed_checks(f"{type(error).__name__}: {first_line(error)}", thresholds)
    if sentence_transformers and variant.graph == "transformer":
        checks.append(cross_encoder_check(folder, variant, reference, thresholds))
    return VariantResult(name=variant.name, backend=variant.backend, precision=variant.precision, graph=variant.graph,
                         file_name=variant.file_name, thresholds=thresholds, checks=checks,
                         seconds=time.perf_counter() - started, loosened=[], inference_precision=inference_precision)


def cross_encoder_check(folder: Path, variant, reference: RankingReference, thresholds: dict[str, float]) -> Check:
    """The card's snippet, checked: ``CrossEncoder(folder, backend=..., model_kwargs={"file_name": ...})`` must keep
    the rankings (``top1_agreement`` at the variant's threshold). Not run where sentence-transformers cannot load
    that backend here (its ONNX backend needs optimum-onnx, which has no release for transformers 5)."""
    from exporter.runtime.packages import import_problem

    name = "sentence_transformers"
    try:
        import sentence_transformers  # noqa: F401 - presence only
    except ImportError:
        return Check(name, measured=None, gating=False, passed=True, detail="not run: sentence-transformers is "
                                                                            "not installed here")
    if variant.backend == "onnx" and (problem := import_problem("optimum-onnx")) is not None:
        return Check(name, measured=None, gating=False, passed=True,
                     detail=f"not run: sentence-transformers' ONNX backend needs optimum-onnx ({problem})")
    try:
        model = load_cross_encoder(folder, variant)
        scores = np.asarray(model.predict(all_pairs(reference.groups), batch_size=32, show_progress_bar=False),
                            dtype=np.float64).reshape(-1)
    except Exception as error:  # noqa: BLE001 - the snippet does not work here
        from exporter.errors import first_line

        return Check(name, measured=None, required=thresholds["top1_agreement"], comparison=">=", passed=False,
                     detail=f"CrossEncoder cannot load or run it: {type(error).__name__}: {first_line(error)}")
    metrics = ranking_metrics(split_scores(scores, reference.groups), split_scores(reference.scores, reference.groups),
                              thresholds["tie_tolerance"])
    value = metrics["top1_agreement"]
    return Check(name, measured=value, required=thresholds["top1_agreement"], comparison=">=",
                 passed=value is not None and value >= thresholds["top1_agreement"],
                 detail=f"top1_agreement through CrossEncoder(backend={variant.backend!r}); max_abs_diff "
                        f"{metrics['max_abs_diff']:.3g}")


def load_cross_encoder(folder: Path, variant):
    """``CrossEncoder(folder, backend=..., model_kwargs={"file_name": ..., "ov_config": <numerics>})``: the card's
    snippet for a ``graph: transformer`` variant (OpenVINO variants pinned to the numerics they were validated with)."""
    from sentence_transformers import CrossEncoder

    from exporter.constants import OPENVINO_NUMERICS
    from exporter.progress import quiet_loading

    kwargs: dict[str, Any] = {"file_name": variant.file_name.split("/", 1)[-1]}
    if variant.backend == "openvino":
        kwargs["ov_config"] = dict(variant.runtime_options or OPENVINO_NUMERICS)
    with quiet_loading():
        return CrossEncoder(str(folder), backend=variant.backend, model_kwargs=kwargs, device="cpu",
                            local_files_only=True)


def _reference(folder: Path, manifest, source_dir: Path | None, pairs_file: Path | None, progress,
               trust_remote_code: bool) -> RankingReference:
    from exporter.artifact import model_folder
    from exporter.errors import RuntimeUnavailableError
    from exporter.runtime.packages import BUILD_EXTRA, missing_build_stack

    found = model_folder.find_source_model(manifest, source_dir)
    missing = missing_build_stack()
    if found.directory is None or missing:
        if missing and (source_dir is not None or pairs_file is not None):
            raise RuntimeUnavailableError(f"{folder}: the torch model cannot run here ({', '.join(missing)} not "
                                          f"installed): {BUILD_EXTRA}", fix=BUILD_EXTRA)
        if not has_stored_ranking_reference(folder):
            raise BadInputError(f"{folder}: the source model ({manifest.source.location or 'not recorded'}) cannot "
                                f"be found here and there is no stored reference ({STORED_GROUPS_FILE}); pass "
                                "source_dir")
        return load_stored_ranking_reference(folder, manifest)
    if pairs_file is not None:
        groups = read_groups(pairs_file)
    elif has_stored_ranking_reference(folder):  # revalidating: the same groups as the build's
        groups = read_groups(folder / STORED_GROUPS_FILE, origin="stored")
    else:
        groups = builtin_groups()
    with progress.step(f"Scoring {sum(len(g.passages) for g in groups)} pairs with the torch model "
                       f"({found.location})"):
        scores = torch_scores(found.directory, all_pairs(groups), tokenizer_folder=folder,
                              max_seq_length=manifest.source.max_seq_length, trust_remote_code=trust_remote_code)
    return RankingReference(groups=groups, scores=scores, kind="source", location=found.location)


def validate_ranking(folder: Path, manifest, *, source_dir: Path | None = None, pairs_file: Path | None = None,
                     progress=None, trust_remote_code: bool = False, write_reference: bool = True,
                     variants=None, sentence_transformers: bool = True, reference_dir: Path | None = None):
    """``exporter.validate`` for a reranker artifact: every variant against torch's scores of the groups (computed
    from the source model when it is found, else the stored ones). Returns a ``ParityReport``; threshold failures
    are in it, not raised. ``write_reference`` stores the groups and torch's scores in ``parity/`` of
    ``reference_dir`` (default: the folder)."""
    from exporter import __version__
    from exporter.progress import SilentProgress
    from exporter.validators.report import ParityReport

    started = time.perf_counter()
    progress = progress or SilentProgress()
    reference = _reference(folder, manifest, source_dir, pairs_file, progress, trust_remote_code)
    results = []
    for variant in manifest.variants:
        if variants is not None and variant.name not in variants:
            continue
        with progress.step(f"Validating {variant.name} ({variant.backend}, graph: {variant.graph})"):
            results.append(validate_ranking_variant(folder, manifest, variant, reference,
                                                    sentence_transformers=sentence_transformers))
    report = ParityReport(
        folder=str(folder), recipe=manifest.recipe.name if manifest.recipe is not None else None,
        reference=reference.kind, source=reference.location, max_seq_length=manifest.source.max_seq_length,
        texts={"total": len(reference.groups), "builtin": sum(g.origin == "builtin" for g in reference.groups),
               "extra": sum(g.origin != "builtin" for g in reference.groups), "batch_1": 0,
               "pairs": int(len(reference.scores))},
        batch_sizes=[32], variants=results, seconds=time.perf_counter() - started,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), tool_version=__version__,
        thresholds={"policy": "ranking defaults per precision, then the recorded ones"},
        trust_remote_code={"recorded": manifest.source.trust_remote_code, "used": trust_remote_code},
    )
    if write_reference and reference.kind == "source":
        store_ranking_reference(Path(reference_dir or folder), reference)
    return report
