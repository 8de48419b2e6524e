"""``validate``: prove that every variant in an artifact folder gives the torch model's embeddings.

Steps: read the manifest → settle each variant's thresholds → get the reference (the torch model when it
can be found, else the stored one) → plan the two encoding passes (batch size 1, mixed-length batches of 32)
→ run each variant the way its users will → measure and judge. A variant that cannot be loaded or run
fails its ``runs`` check (the artifact is broken); problems with the input itself (folder, manifest,
thresholds, reference) raise ``BadInputError`` before any variant is run.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from exporter import __version__
from exporter.errors import BadInputError, ExternalError
from exporter.artifact.manifest import read_manifest, variant_entry
from exporter.progress import Progress, SilentProgress
from exporter.validators.batching import EncodingPass, mixed_length_pass, single_text_pass, token_lengths
from exporter.validators.checks import build_checks, failed_run_checks, measure
from exporter.validators.reference import (
    TEXTS_FILE,
    Reference,
    compute_reference,
    find_source,
    has_stored_reference,
    load_stored_reference,
    store_reference,
)
from exporter.validators.report import ParityReport, VariantResult
from exporter.runtime.runners import VariantRunner, load_tokenizer, make_runner, sequence_length
from exporter.texts import ValidationText, builtin_texts, read_extra_texts, read_texts
from exporter.validators.thresholds import Thresholds, effective_thresholds

ThresholdsFor = Callable[[dict[str, Any]], Thresholds]


def validate(
    folder: Path,
    source_dir: Path | None = None,
    extra_texts_file: Path | None = None,
    thresholds_for: ThresholdsFor | None = None,
    write_reference: bool = True,
    progress: Progress | None = None,
) -> ParityReport:
    """Validate every variant of the artifact folder against the torch model; returns the report.

    ``source_dir`` is the source model directory; without it the manifest's ``source.location`` is tried,
    and when that does not resolve here the stored reference (``parity/``) is used. ``extra_texts_file``
    adds texts (.txt / .jsonl) to the built-in set and needs the source model; without it, the extra texts
    of the stored reference (a recipe's ``validation.texts``, stored when ``exporter run`` validated) are
    used again, so a revalidation keeps the same text set. ``thresholds_for(variant)``
    gives a manifest variant's thresholds (explicit keys override the precision's defaults); by default
    they come from the variant's ``validation_thresholds`` in the manifest. ``write_reference`` stores the
    texts and torch embeddings in ``parity/`` when the reference was computed from the source model.

    Raises ``BadInputError`` for a missing folder, a missing or malformed manifest, bad thresholds or texts,
    and when neither the source model nor a stored reference is available. Threshold failures are not
    exceptions: they are in the report (``report.passed``, ``report.failures()``).
    """
    started = time.perf_counter()
    progress = progress or SilentProgress()
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"{folder}: artifact folder not found" if not folder.exists() else f"{folder}: not a folder")
    manifest = read_manifest(folder)
    if not manifest["variants"]:
        raise BadInputError(f"{folder}/manifest.json: no variants to validate")
    thresholds = {v["name"]: _thresholds(v, thresholds_for) for v in manifest["variants"]}
    reference = _reference(folder, manifest, source_dir, extra_texts_file, write_reference, progress)

    tokenizer, max_length, passes = _passes(folder, manifest, reference)
    texts = [t.text for t in reference.texts]
    trust_remote_code = _trust_remote_code(manifest)

    results = []
    for variant in manifest["variants"]:
        with progress.step(f"Validating {variant['name']} ({variant.get('backend')}, graph: {variant.get('graph')})"):
            results.append(validate_variant(folder, variant, reference, passes, tokenizer, max_length,
                                            thresholds[variant["name"]], trust_remote_code))
    return ParityReport(
        folder=str(folder),
        recipe=(manifest.get("recipe") or {}).get("name"),
        reference=reference.kind,
        source=reference.location,
        max_seq_length=max_length,
        texts={
            "total": len(texts),
            "builtin": sum(t.origin == "builtin" for t in reference.texts),
            "extra": sum(t.origin != "builtin" for t in reference.texts),
            "batch_1": len(passes[0].indices),
        },
        batch_sizes=[p.batch_size for p in passes],
        variants=results,
        seconds=time.perf_counter() - started,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        tool_version=__version__,
    )


def validate_variant(
    folder: Path,
    variant: dict[str, Any],
    reference: Reference,
    passes: list[EncodingPass],
    tokenizer,
    max_length: int,
    thresholds: Thresholds,
    trust_remote_code: bool = False,
) -> VariantResult:
    """Run one variant through every pass and judge it. Any failure to load or run it is a failed check
    (a broken artifact), except a missing runtime package (``ExternalError``, exit 3)."""
    started = time.perf_counter()
    texts = [t.text for t in reference.texts]
    try:
        runner = make_runner(folder, variant, tokenizer, max_length, trust_remote_code)
        metrics = {p.batch_size: measure(encode_pass(runner, texts, p), reference.embeddings[p.indices]) for p in passes}
        checks = build_checks(metrics, thresholds)
    except BadInputError:
        raise
    except ImportError as error:  # the runtime itself is missing: not the artifact's fault
        raise ExternalError(f"variant {variant['name']}: the {variant.get('backend')} runtime cannot start: {error}") from None
    except Exception as error:  # noqa: BLE001 - a variant that cannot load or run is a broken artifact
        checks = failed_run_checks(_one_line(error), thresholds)
    return VariantResult(
        name=variant["name"],
        backend=str(variant.get("backend")),
        precision=str(variant.get("precision")),
        graph=str(variant.get("graph")),
        file_name=str(variant.get("file_name")),
        thresholds=thresholds.model_dump(),
        checks=checks,
        seconds=time.perf_counter() - started,
    )


def encode_pass(runner: VariantRunner, texts: list[str], encoding: EncodingPass) -> np.ndarray:
    """Encode the pass's batches; rows come back in ascending text order (``encoding.indices``)."""
    rows: dict[int, np.ndarray] = {}
    for batch in encoding.batches:
        output = np.asarray(runner.encode([texts[i] for i in batch]))
        if output.ndim != 2 or output.shape[0] != len(batch):
            raise ValueError(f"expected [{len(batch)}, dim] embeddings for a batch of {len(batch)}, got {list(output.shape)}")
        rows.update(zip(batch, output))
    return np.stack([rows[i] for i in encoding.indices])


def check_stored(folder: Path, variant: dict[str, Any] | str) -> VariantResult:
    """Run one variant (a manifest entry or a name) on the stored validation texts on this host and compare
    with the stored reference embeddings (``parity/``), against the variant's ``validation_thresholds``.

    Needs no torch weights: this is how a deploy host checks that its numerics still meet the thresholds.
    Raises ``BadInputError`` when there is no stored reference.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    entry = variant_entry(manifest, variant) if isinstance(variant, str) else variant
    if not has_stored_reference(folder):
        raise BadInputError(f"{folder}: no stored reference ({TEXTS_FILE} and parity/reference.npy) to check against")
    reference = load_stored_reference(folder, manifest)
    tokenizer, max_length, passes = _passes(folder, manifest, reference)
    return validate_variant(folder, entry, reference, passes, tokenizer, max_length, _thresholds(entry, None),
                            _trust_remote_code(manifest))


def _passes(folder: Path, manifest: dict[str, Any], reference: Reference) -> tuple[Any, int, list[EncodingPass]]:
    """The tokenizer, the sequence length and the two runs (batch 1, mixed-length batches) over the texts."""
    tokenizer = load_tokenizer(folder)
    max_length = sequence_length(folder, manifest, tokenizer)
    lengths = token_lengths(tokenizer, [t.text for t in reference.texts], max_length)
    return tokenizer, max_length, [single_text_pass(lengths, max_length), mixed_length_pass(lengths)]


def _trust_remote_code(manifest: dict[str, Any]) -> bool:
    return bool((manifest.get("source") or {}).get("trust_remote_code", False))


def _thresholds(variant: dict[str, Any], thresholds_for: ThresholdsFor | None) -> Thresholds:
    name, precision = variant["name"], variant.get("precision", "fp32")
    if thresholds_for is not None:
        explicit = thresholds_for(variant)
    else:
        raw = variant.get("validation_thresholds")
        try:
            explicit = Thresholds.model_validate(raw) if raw is not None else None
        except ValidationError as error:
            problem = error.errors(include_url=False)[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise BadInputError(f"manifest.json: variant {name!r}: validation_thresholds.{where}: {problem['msg']}") from None
    try:
        return effective_thresholds(str(precision), None, explicit)
    except ValueError as error:
        raise BadInputError(f"manifest.json: variant {name!r}: {error}") from None


def _reference(
    folder: Path,
    manifest: dict[str, Any],
    source_dir: Path | None,
    extra_texts_file: Path | None,
    write_reference: bool,
    progress: Progress,
) -> Reference:
    """The torch model's embeddings: computed from the source when found (and stored), else the stored ones.

    Extra texts: ``extra_texts_file``, else those of an earlier run (kept in ``parity/texts.jsonl``).
    """
    extra = read_extra_texts(extra_texts_file) if extra_texts_file is not None else None
    found = find_source(manifest, source_dir)
    if found is None:
        location = (manifest.get("source") or {}).get("location")
        if not has_stored_reference(folder):
            raise BadInputError(
                f"{folder}: the source model ({location or 'not recorded'}) cannot be found here and there is no "
                f"stored reference ({TEXTS_FILE}); pass --source DIR"
            )
        if extra is not None:
            raise BadInputError(
                f"{extra_texts_file}: extra texts need the source model (the stored reference covers only its own "
                f"texts); pass --source DIR"
            )
        return load_stored_reference(folder, manifest)
    directory, location = found
    texts = builtin_texts() + (extra if extra is not None else _stored_extra_texts(folder))
    with progress.step(f"Encoding {len(texts)} texts with the torch model ({location})"):
        reference = compute_reference(directory, location, manifest, texts)
    if write_reference:
        store_reference(folder, reference)
    return reference


def _stored_extra_texts(folder: Path) -> list[ValidationText]:
    """Extra texts of an earlier run (kept in parity/texts.jsonl), so revalidating keeps the same text set."""
    path = folder / TEXTS_FILE
    if not path.is_file():
        return []
    return [t for t in read_texts(path) if t.origin != "builtin"]


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
