"""Parity of a sparse encoder (SPLADE): every variant must give the torch ``SparseEncoder``'s terms with its weights.

A sparse index matches on terms: a variant whose vectors are "close" by cosine but whose strongest terms changed
matches other documents. So besides per-text cosine, each text's top-k terms are compared (k = min(20, the
reference's non-zero terms); a term the variant ranks in its top k counts as shared when the reference weights it
within ``TIE_TOLERANCE`` of the reference's k-th weight: ties are not errors), and the dot products between texts
(the scores an index ranks by) must agree. Reported too: the relative drift of each text's non-zero count (index
size) and the largest absolute weight difference.

The reference is the torch model's vectors of the built-in texts (and the recipe's ``validation.texts``), stored as
a sparse array (``parity/sparse_reference.npz``: CSR ``data``/``indices``/``indptr``/``shape``, read with numpy
alone) beside ``parity/texts.jsonl``, so ``exporter fetch --check`` runs on a deploy host without torch. Results go
into the same ``ParityReport`` (JSON, JUnit, Markdown) and manifest verdicts as an embedding model's.
"""

from __future__ import annotations

import datetime as _dt
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exporter import __version__
from exporter.artifact import model_folder
from exporter.artifact.integrity import sha256_file
from exporter.artifact.manifest import Manifest, Variant
from exporter.errors import BadInputError, RuntimeUnavailableError, first_line
from exporter.progress import Progress, SilentProgress
from exporter.texts import ValidationText, builtin_texts, read_texts, write_texts
from exporter.validators.checks import SENTENCE_TRANSFORMERS_CHECK, TOKENIZATION_CHECK, Check, cosine_rows
from exporter.validators.reference import SPARSE_REFERENCE_FILE, TEXTS_FILE, TOKEN_IDS_FILE
from exporter.validators.report import ParityReport, VariantResult

TOP_K = 20
TIE_TOLERANCE = 1e-4
# Gating checks (all ">=") and the reported ones, in report order.
SPARSE_GATING = ("cosine_min", "cosine_mean", "dot_parity", "top_k_overlap_min", "top_k_overlap_mean")
SPARSE_REPORTED = ("nnz_drift_max", "max_abs_diff", "nnz_mean", "nnz_reference_mean")

# Floors per precision. fp32: the same terms on every text (ties excepted). fp16 / bf16 / int8: measured on
# SPLADE-tiny and tiny random BERT / DistilBERT sparse models (docs/sparse-encoders.md), with a margin.
_FLOORS: dict[str, dict[str, float]] = {
    "fp32": {"cosine_min": 0.9999, "cosine_mean": 0.9999, "dot_parity": 0.999, "top_k_overlap_min": 1.0,
             "top_k_overlap_mean": 1.0},
    "fp16": {"cosine_min": 0.999, "cosine_mean": 0.9995, "dot_parity": 0.99, "top_k_overlap_min": 0.8,
             "top_k_overlap_mean": 0.95},
    "bf16": {"cosine_min": 0.99, "cosine_mean": 0.995, "dot_parity": 0.95, "top_k_overlap_min": 0.6,
             "top_k_overlap_mean": 0.9},
    "int8": {"cosine_min": 0.99, "cosine_mean": 0.99, "dot_parity": 0.9, "top_k_overlap_min": 0.5,
             "top_k_overlap_mean": 0.9},
}


@dataclass(frozen=True)
class SparseThresholds:
    """The floors a sparse variant is held to (every key ``>=``); ``slack`` / ``worst`` for the int8 rule's judge."""

    required: dict[str, float]

    @property
    def thresholds(self) -> dict[str, float]:  # the int8 rule's record reads ``target.thresholds``
        return dict(self.required)

    def slack(self, metrics: dict[str, Any]) -> float:
        """The smallest normalised margin over the floors (>= 0: all met)."""
        values = [_slack(metrics.get(key), required) for key, required in self.required.items()]
        return min(values) if values else 0.0

    def worst(self, metrics: dict[str, Any]) -> str:
        return min(self.required, key=lambda key: _slack(metrics.get(key), self.required[key]))


def _slack(value: float | None, required: float) -> float:
    return -1.0 if value is None else (value - required) / max(1.0 - required, 1e-3)


def sparse_thresholds(precision: str) -> SparseThresholds:
    """The floors of ``precision`` (``ValueError`` for an unknown one)."""
    if precision not in _FLOORS:
        raise ValueError(f"no sparse parity floors for precision {precision!r} (known: {', '.join(_FLOORS)})")
    return SparseThresholds(dict(_FLOORS[precision]))


# --- metrics -----------------------------------------------------------------------------------------------------


def top_k_overlap(vector: np.ndarray, reference: np.ndarray, k: int = TOP_K,
                  tolerance: float = TIE_TOLERANCE) -> float:
    """Share of the reference's top-k terms (k = min(``k``, its non-zero count)) that the variant also ranks in
    its top k; a variant term outside the reference's top k counts when the reference weights it within
    ``tolerance`` of its k-th weight (a tie). 1.0 when both are empty."""
    nonzero = int(np.count_nonzero(reference))
    k = min(k, nonzero)
    if k == 0:
        return 1.0 if np.count_nonzero(vector) == 0 else 0.0
    ours = np.argsort(-vector, kind="stable")[:k]
    theirs = np.argsort(-reference, kind="stable")[:k]
    kth = reference[theirs[-1]]
    accepted = set(theirs.tolist())
    shared = sum(1 for term in ours.tolist()
                 if term in accepted or (reference[term] > 0 and abs(reference[term] - kth) < tolerance))
    return shared / k


def sparse_metrics(vectors: np.ndarray, reference: np.ndarray) -> dict[str, float | None]:
    """Every sparse metric of ``vectors`` against the ``reference`` rows of the same texts (dense ``[n, vocab]``)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)
    if vectors.shape != reference.shape:
        raise ValueError(f"expected vectors of shape {list(reference.shape)}, got {list(vectors.shape)}")
    cosines = cosine_rows(vectors, reference)
    scores = vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    wanted = reference.astype(np.float64) @ reference.T.astype(np.float64)
    scale = float(np.abs(wanted).max()) if wanted.size else 0.0
    dot_parity = 1.0 - float(np.abs(scores - wanted).max()) / scale if scale > 0 else float(np.allclose(scores, 0))
    overlaps = [top_k_overlap(row, ref) for row, ref in zip(vectors, reference, strict=True)]
    nnz = np.count_nonzero(vectors, axis=1)
    nnz_reference = np.count_nonzero(reference, axis=1)
    drift = np.abs(nnz - nnz_reference) / np.maximum(nnz_reference, 1)
    finite = bool(np.isfinite(vectors).all())
    return {
        "cosine_min": float(cosines.min()) if finite and len(cosines) else None,
        "cosine_mean": float(cosines.mean()) if finite and len(cosines) else None,
        "dot_parity": dot_parity if finite else None,
        "top_k_overlap_min": float(min(overlaps)) if overlaps else None,
        "top_k_overlap_mean": float(np.mean(overlaps)) if overlaps else None,
        "nnz_drift_max": float(drift.max()) if len(drift) else None,
        "max_abs_diff": float(np.abs(vectors - reference).max()) if vectors.size and finite else None,
        "nnz_mean": float(nnz.mean()) if len(nnz) else None,
        "nnz_reference_mean": float(nnz_reference.mean()) if len(nnz) else None,
    }


def sparse_checks(by_pass: dict[int, dict[str, Any]], shape_ok: bool, thresholds: SparseThresholds) -> list[Check]:
    """The gating and reported checks from each pass's metrics (``by_pass``: batch size -> metrics); a gate is
    measured at its worse pass."""
    checks = [Check("runs", measured=True, required=True, comparison="==", passed=True),
              Check("shape", measured=shape_ok, required=True, comparison="==", passed=shape_ok,
                    detail="[texts, vocabulary] float32")]
    for name in SPARSE_GATING:
        values = {str(batch): metrics.get(name) for batch, metrics in by_pass.items()}
        worst = None if any(v is None for v in values.values()) else min(values.values())
        required = thresholds.required.get(name)
        passed = worst is not None and (required is None or worst >= required)
        checks.append(Check(name, measured=worst, required=required, comparison=">=", passed=passed,
                            by_batch=values))
    for name in SPARSE_REPORTED:
        values = {str(batch): metrics.get(name) for batch, metrics in by_pass.items()}
        known = [v for v in values.values() if v is not None]
        measured = max(known) if known and name in ("nnz_drift_max", "max_abs_diff") else (known[-1] if known
                                                                                            else None)
        checks.append(Check(name, measured=measured, gating=False, by_batch=values))
    return checks


def failed_sparse_checks(detail: str, thresholds: SparseThresholds) -> list[Check]:
    checks = [Check("runs", measured=False, required=True, comparison="==", passed=False, detail=detail)]
    checks += [Check(name, measured=None, required=thresholds.required.get(name), comparison=">=", passed=False,
                     detail="not measured: the variant did not run") for name in SPARSE_GATING]
    return checks


def load_sparse_encoder(directory: Path, source, for_export: bool = False):
    """The torch ``SparseEncoder`` on CPU (``source``: the recipe's ``ModelSource``; eager attention when exporting,
    as ``load_sentence_transformer``), with the recipe's max_seq_length override applied."""
    from sentence_transformers import SparseEncoder

    from exporter.progress import quiet_loading

    model_kwargs = {"attn_implementation": "eager"} if for_export else None
    try:
        with quiet_loading():
            model = SparseEncoder(str(directory), device="cpu", trust_remote_code=source.trust_remote_code,
                                  local_files_only=True, model_kwargs=model_kwargs)
    except Exception as error:  # noqa: BLE001 - any failure here means the directory is not a usable model
        raise BadInputError(f"model.path: {directory} could not be loaded by sentence-transformers' SparseEncoder: "
                            f"{first_line(error)}") from None
    if source.max_seq_length:
        model.max_seq_length = source.max_seq_length
    model.eval()
    return model


# --- the reference -----------------------------------------------------------------------------------------------


@dataclass
class SparseReference:
    """The torch model's vectors (dense ``[texts, vocab]`` float32, row i is ``texts[i]``) and where they came from."""

    texts: list[ValidationText]
    vectors: np.ndarray
    kind: str  # "source" or "stored"
    location: str | None = None
    token_ids: list[list[int]] | None = None
    prompts: dict[str, str] = field(default_factory=dict)


def compute_sparse_reference(directory: Path, location: str, manifest: Manifest, texts: list[ValidationText], *,
                             folder: Path, trust_remote_code: bool = False) -> SparseReference:
    """Encode ``texts`` with the torch ``SparseEncoder`` on CPU, tokenising with the artifact's tokenizer files
    and with the model's ``max_active_dims``; also the token ids of each text."""
    from exporter.recipe import ModelSource
    from exporter.runtime.runners import use_folder_tokenizer

    model = load_sparse_encoder(directory, ModelSource(path=str(directory), trust_remote_code=trust_remote_code,
                                                       max_seq_length=manifest.source.max_seq_length))
    use_folder_tokenizer(model, folder)
    plain = [t.text for t in texts]
    vectors = torch_sparse_vectors(model, plain)
    if not np.isfinite(vectors).all():
        raise BadInputError(f"{location}: the torch model itself produces NaN/inf weights; nothing to compare with")
    from exporter.export.graphs import tokenize

    features = tokenize(model, plain)
    token_ids = [[int(i) for i, m in zip(ids, mask, strict=True) if m]
                 for ids, mask in zip(features["input_ids"].tolist(), features["attention_mask"].tolist(),
                                      strict=True)]
    return SparseReference(texts, vectors, "source", location, token_ids=token_ids)


def torch_sparse_vectors(model, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """``SparseEncoder.encode`` as dense float32 ``[texts, vocab]`` (its ``max_active_dims`` applied)."""
    import torch

    with torch.inference_mode():
        encoded = model.encode(texts, batch_size=batch_size, convert_to_tensor=True, convert_to_sparse_tensor=False)
    return np.asarray(encoded.float().cpu().numpy(), dtype=np.float32)


def store_sparse_reference(folder: Path, reference: SparseReference) -> list[str]:
    """``parity/texts.jsonl``, ``parity/sparse_reference.npz`` (CSR arrays, no pickle) and ``parity/token_ids.json``,
    each written atomically; returns their relative paths."""
    import json

    from exporter.artifact.integrity import write_bytes_atomic, write_text_atomic

    write_texts(folder / TEXTS_FILE, reference.texts)
    rows = reference.vectors
    indptr = np.concatenate([[0], np.cumsum(np.count_nonzero(rows, axis=1))]).astype(np.int64)
    indices = np.concatenate([np.flatnonzero(row) for row in rows]).astype(np.int32) if len(rows) else \
        np.zeros(0, np.int32)
    data = np.concatenate([row[np.flatnonzero(row)] for row in rows]).astype(np.float32) if len(rows) else \
        np.zeros(0, np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, data=data, indices=indices, indptr=indptr,
                        shape=np.asarray(rows.shape, dtype=np.int64))
    write_bytes_atomic(folder / SPARSE_REFERENCE_FILE, buffer.getvalue())
    written = [TEXTS_FILE, SPARSE_REFERENCE_FILE]
    if reference.token_ids is not None:
        write_text_atomic(folder / TOKEN_IDS_FILE, json.dumps(reference.token_ids, separators=(",", ":")) + "\n")
        written.append(TOKEN_IDS_FILE)
    return written


def has_sparse_reference(folder: Path) -> bool:
    return (Path(folder) / TEXTS_FILE).is_file() and (Path(folder) / SPARSE_REFERENCE_FILE).is_file()


def load_sparse_reference(folder: Path, manifest: Manifest) -> SparseReference:
    """The stored reference, checked against the manifest's sha256 (when listed) and its texts; ``BadInputError``
    when a file is missing, altered or inconsistent."""
    from exporter.validators.reference import _stored_token_ids

    listed = {entry.path: entry for entry in manifest.shared_files}
    for relative in (TEXTS_FILE, SPARSE_REFERENCE_FILE):
        path = folder / relative
        if not path.is_file():
            raise BadInputError(f"{folder}: no stored sparse reference ({relative} is missing)")
        if relative in listed and listed[relative].sha256 != sha256_file(path):
            raise BadInputError(f"{path}: does not match the sha256 recorded in manifest.json (altered reference)")
    texts = read_texts(folder / TEXTS_FILE)
    path = folder / SPARSE_REFERENCE_FILE
    try:
        with np.load(path, allow_pickle=False) as arrays:
            data, indices, indptr = arrays["data"], arrays["indices"], arrays["indptr"]
            rows, width = (int(v) for v in arrays["shape"])
    except (OSError, ValueError, KeyError) as error:
        raise BadInputError(f"{path}: unreadable: {error}") from None
    if rows != len(texts) or len(indptr) != rows + 1 or data.dtype != np.float32 or indptr[-1] != len(data):
        raise BadInputError(f"{path}: expected float32 CSR arrays of {len(texts)} rows")
    vectors = np.zeros((rows, width), dtype=np.float32)
    for row in range(rows):
        vectors[row, indices[indptr[row]:indptr[row + 1]]] = data[indptr[row]:indptr[row + 1]]
    return SparseReference(texts, vectors, "stored", None, token_ids=_stored_token_ids(folder, listed, len(texts)))


# --- validating --------------------------------------------------------------------------------------------------


def validate_sparse(folder: Path, manifest: Manifest, *, source_dir: Path | None = None,
                    extra_texts_file: Path | None = None, write_reference: bool = True, record: bool = False,
                    progress: Progress | None = None, trust_remote_code: bool = False,
                    variants=None, kept: list[VariantResult] | None = None,
                    report_dir: Path | None = None) -> ParityReport:
    """``exporter.validators.validate`` for a sparse-encoder artifact (``source.kind: sparse``): every variant
    against the torch ``SparseEncoder`` (or the stored sparse reference), judged on the sparse metrics."""
    from exporter.runtime.packages import BUILD_EXTRA, missing_build_stack
    from exporter.texts import read_extra_texts

    started = time.perf_counter()
    progress = progress or SilentProgress()
    extra = read_extra_texts(extra_texts_file) if extra_texts_file is not None else None
    found = model_folder.find_source_model(manifest, source_dir)
    missing = missing_build_stack()
    if missing and (source_dir is not None or extra is not None or not has_sparse_reference(folder)):
        raise RuntimeUnavailableError(f"{folder}: the torch model cannot run here ({', '.join(missing)} not "
                                      f"installed) and there is no stored sparse reference: {BUILD_EXTRA}",
                                      fix=BUILD_EXTRA)
    if found.directory is None or missing:
        if not has_sparse_reference(folder):
            raise BadInputError(f"{folder}: the source model ({manifest.source.location or 'not recorded'}) cannot "
                                f"be found here and there is no stored reference ({SPARSE_REFERENCE_FILE})")
        reference = load_sparse_reference(folder, manifest)
    else:
        stored = [t for t in read_texts(folder / TEXTS_FILE) if t.origin != "builtin"] \
            if (folder / TEXTS_FILE).is_file() else []
        texts = builtin_texts() + (extra if extra is not None else stored)
        with progress.step(f"Encoding {len(texts)} texts with the torch SparseEncoder ({found.location})"):
            reference = compute_sparse_reference(found.directory, found.location, manifest, texts, folder=folder,
                                                 trust_remote_code=trust_remote_code)
    max_length, passes = _passes(folder, manifest, reference)
    results = []
    kept_by_name = {result.name: result for result in kept or []}
    for variant in manifest.variants:
        if variant.name in kept_by_name:
            results.append(kept_by_name[variant.name])
            continue
        if variants is not None and variant.name not in variants:
            continue
        with progress.step(f"Validating {variant.name} ({variant.backend}, graph: {variant.graph}, sparse)"):
            results.append(validate_sparse_variant(folder, manifest, variant, reference, passes,
                                                   trust_remote_code=trust_remote_code))
    report = ParityReport(
        folder=str(folder), recipe=manifest.recipe.name if manifest.recipe is not None else None,
        reference=reference.kind, source=reference.location, max_seq_length=max_length,
        texts={"total": len(reference.texts), "builtin": sum(t.origin == "builtin" for t in reference.texts),
               "extra": sum(t.origin != "builtin" for t in reference.texts), "batch_1": len(passes[0].indices)},
        batch_sizes=[p.batch_size for p in passes], variants=results, seconds=time.perf_counter() - started,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), tool_version=__version__,
        thresholds={"policy": "sparse", "file": None,
                    "description": "the sparse-encoder floors of each precision (docs/sparse-encoders.md)"},
        trust_remote_code={"recorded": manifest.source.trust_remote_code, "used": trust_remote_code})
    from exporter.validators.record import write_results

    def store(destination: Path) -> None:
        if reference.kind == "source":  # a stored reference is already in the folder
            store_sparse_reference(destination, reference)

    write_results(folder, manifest, report, store, write_reference=write_reference, record=record,
                  report_dir=Path(report_dir) if report_dir is not None else None)
    return report


def _passes(folder: Path, manifest: Manifest, reference: SparseReference):
    from exporter.runtime.tokenization import TextTokenizer
    from exporter.validators.batching import mixed_length_pass, single_text_pass

    tokenizer = TextTokenizer(folder, model_folder.max_seq_length(folder, manifest))
    lengths = tokenizer.token_counts([t.text for t in reference.texts])
    return tokenizer.max_length, [single_text_pass(lengths, tokenizer.max_length), mixed_length_pass(lengths)]


def encode_sparse_pass(encode, texts: list[str], encoding) -> np.ndarray:
    """Dense ``[texts of the pass, vocab]`` rows in ascending text order; ``encode(batch)`` returns a CSR matrix or
    a dense array of the batch."""
    rows: dict[int, np.ndarray] = {}
    for batch in encoding.batches:
        output = encode([texts[i] for i in batch])
        output = output.toarray() if hasattr(output, "toarray") else np.asarray(output)
        if output.ndim != 2 or output.shape[0] != len(batch):
            raise ValueError(f"expected [{len(batch)}, vocab] vectors for a batch of {len(batch)}, got "
                             f"{list(output.shape)}")
        rows.update(zip(batch, output, strict=True))
    return np.stack([rows[i] for i in encoding.indices])


def validate_sparse_variant(folder: Path, manifest: Manifest, variant: Variant, reference: SparseReference, passes,
                            *, trust_remote_code: bool = False, sentence_transformers: bool = True) -> VariantResult:
    """Run one variant through the runtime ``SparseEncoder`` on every pass and judge it on the sparse floors of its
    precision; a variant that cannot load or run fails ``runs``."""
    from exporter.runtime.sparse import load_sparse_encoder

    started = time.perf_counter()
    thresholds = sparse_thresholds(str(variant.precision))
    texts = [t.text for t in reference.texts]
    inference_precision = None
    try:
        if variant.backend == "torch":
            raise BadInputError(f"variant {variant.name!r}: torch variants of sparse encoders are not supported")
        encoder = load_sparse_encoder(folder, variant, manifest=manifest)
        inference_precision = encoder.settings.get("compiled_inference_precision")
        by_pass = {}
        shape_ok = True
        for encoding in passes:
            got = encode_sparse_pass(lambda batch: encoder.encode(batch, batch_size=max(1, len(batch))), texts,
                                     encoding)
            shape_ok = shape_ok and got.shape[1] == reference.vectors.shape[1] and got.dtype == np.float32
            by_pass[encoding.batch_size] = sparse_metrics(got, reference.vectors[encoding.indices])
        checks = sparse_checks(by_pass, shape_ok, thresholds)
        checks.append(tokenization_check(folder, manifest, reference))
    except (BadInputError, RuntimeUnavailableError):
        raise
    except ImportError as error:
        raise RuntimeUnavailableError(f"variant {variant.name}: the {variant.backend} runtime cannot start: "
                                      f"{error}") from None
    except Exception as error:  # noqa: BLE001 - a variant that cannot load or run is a broken artifact
        checks = failed_sparse_checks(_one_line(error), thresholds)
    if variant.graph == "transformer" and sentence_transformers:
        checks.append(sentence_transformers_sparse_check(folder, variant, reference, passes[-1], thresholds,
                                                         trust_remote_code))
    return VariantResult(name=variant.name, backend=variant.backend, precision=variant.precision,
                         graph=variant.graph, file_name=variant.file_name, thresholds=dict(thresholds.required),
                         checks=checks, seconds=time.perf_counter() - started,
                         inference_precision=inference_precision)


def load_sentence_transformers_sparse(folder: Path, variant: Variant, *, device: str = "cpu",
                                      trust_remote_code: bool = False, model_kwargs: dict[str, Any] | None = None):
    """``sentence_transformers.SparseEncoder(folder, backend=<variant's>, model_kwargs={"file_name": ...,
    "ov_config": <its numerics>})``: the card's snippet."""
    from sentence_transformers import SparseEncoder

    from exporter.progress import quiet_loading
    from exporter.runtime.encoder import numerics_settings

    kwargs: dict[str, Any] = {"file_name": variant.file_name}
    if variant.backend == "openvino":
        kwargs["ov_config"] = numerics_settings(variant)
    kwargs.update(model_kwargs or {})
    with quiet_loading():
        return SparseEncoder(str(folder), backend=variant.backend, device=device, local_files_only=True,
                             trust_remote_code=trust_remote_code, model_kwargs=kwargs)


def sentence_transformers_sparse_check(folder: Path, variant: Variant, reference: SparseReference, encoding,
                                       thresholds: SparseThresholds, trust_remote_code: bool) -> Check:
    """The variant loaded by sentence-transformers' ``SparseEncoder(..., backend=...)`` must meet ``cosine_min`` and
    ``top_k_overlap_min`` on the mixed-length pass; not run (not gating) where that backend cannot load here."""
    from exporter.runtime.packages import import_problem

    def not_run(detail: str) -> Check:
        return Check(SENTENCE_TRANSFORMERS_CHECK, measured=None, gating=False, detail=f"not run: {detail}")

    try:
        import sentence_transformers  # noqa: F401 - presence only
    except ImportError:
        return not_run("sentence-transformers is not installed here")
    if variant.backend == "onnx" and (problem := import_problem("optimum-onnx")) is not None:
        return not_run(f"sentence-transformers' ONNX backend needs optimum-onnx ({problem}), which has no release "
                       "for transformers 5")
    try:
        model = load_sentence_transformers_sparse(folder, variant, trust_remote_code=trust_remote_code)
    except Exception as error:  # noqa: BLE001 - no optimum backend for it in this environment
        return not_run(f"sentence-transformers cannot load it here: {_one_line(error)}")
    texts = [t.text for t in reference.texts]
    required = thresholds.required["cosine_min"]
    try:
        got = encode_sparse_pass(lambda batch: torch_sparse_vectors(model, batch, batch_size=max(1, len(batch))),
                                 texts, encoding)
    except Exception as error:  # noqa: BLE001 - it loaded but failed to run: the snippet is broken
        return Check(SENTENCE_TRANSFORMERS_CHECK, measured=None, required=required, comparison=">=", passed=False,
                     detail=f"failed to encode: {_one_line(error)}")
    metrics = sparse_metrics(got, reference.vectors[encoding.indices])
    measured = metrics["cosine_min"]
    overlap = metrics["top_k_overlap_min"]
    passed = (measured is not None and measured >= required and overlap is not None
              and overlap >= thresholds.required["top_k_overlap_min"])
    return Check(SENTENCE_TRANSFORMERS_CHECK, measured=measured, required=required, comparison=">=", passed=passed,
                 by_batch={str(encoding.batch_size): measured},
                 detail=f"cosine_min through sentence-transformers' SparseEncoder (top-k overlap min {overlap})")


def tokenization_check(folder: Path, manifest: Manifest, reference: SparseReference) -> Check:
    """The runtime's token ids (``tokenizers`` on the folder's tokenizer.json) must be the torch reference's for every
    text; not run against a stored reference without token ids."""
    from exporter.runtime.tokenization import TextTokenizer

    if reference.token_ids is None:
        return Check(TOKENIZATION_CHECK, measured=None, gating=False, detail="not run: no token ids stored")
    texts = [t.text for t in reference.texts]
    tokenizer = TextTokenizer(folder, model_folder.max_seq_length(folder, manifest))
    got = [list(encoding.ids) for encoding in tokenizer.encode(texts)]
    differing = [i for i, (ids, want) in enumerate(zip(got, reference.token_ids, strict=True)) if ids != want]
    detail = (f"the runtime's token ids equal the reference's on all {len(texts)} texts" if not differing else
              f"differs on {len(differing)} of {len(texts)} texts, first {texts[differing[0]]!r}")
    return Check(TOKENIZATION_CHECK, measured=1.0 - len(differing) / max(1, len(texts)), required=1.0,
                 comparison=">=", passed=not differing, detail=detail)


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {first_line(error)}"


def check_stored_sparse(folder: Path, manifest: Manifest, variant: Variant, *,
                        trust_remote_code: bool = False, passes_last_only: bool = False) -> VariantResult:
    """One variant on the stored texts against the stored sparse reference: ``fetch --check`` (no torch)."""
    reference = load_sparse_reference(folder, manifest)
    _, passes = _passes(folder, manifest, reference)
    return validate_sparse_variant(folder, manifest, variant, reference, passes[-1:] if passes_last_only else passes,
                                   trust_remote_code=trust_remote_code, sentence_transformers=False)


__all__ = ["SPARSE_REFERENCE_FILE", "SparseReference", "SparseThresholds", "check_stored_sparse",
           "compute_sparse_reference", "load_sparse_reference", "sparse_metrics", "sparse_thresholds",
           "top_k_overlap", "validate_sparse"]
