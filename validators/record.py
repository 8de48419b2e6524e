"""Recording a validation in the artifact folder, so later steps (push, deploy) can see the verdict.

Writes ``parity_report.json`` and updates ``manifest.json``: each variant gets ``parity`` (its verdict and
headline numbers), the top level gets ``validation: {passed, report}``, and the files validation added
(``parity/texts.jsonl``, ``parity/reference.npy``, ``parity_report.json``) are listed in ``shared_files``
with sha256 and size, keeping "every file in the folder except manifest.json is listed" true.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from exporter.artifact.integrity import is_cache_snapshot, write_text_atomic
from exporter.artifact.manifest import Manifest, Parity, ValidationRecord, file_entry, read_manifest, write_manifest
from exporter.runtime.host import HostProfile
from exporter.validators.checks import PROMPT_CHECK_PREFIX
from exporter.validators.reference import REFERENCE_FILE, SPARSE_REFERENCE_FILE, TEXTS_FILE, TOKEN_IDS_FILE
from exporter.validators.report import REPORT_NAME, ParityReport

HEADLINE_CHECKS = ("cosine_min", "cosine_mean", "neighbour_overlap", "spearman")
# Rerankers (``exporter.validators.ranking``): their headline numbers instead.
RANKING_HEADLINE = ("max_abs_diff", "ranking", "top1_agreement", "spearman_mean", "ndcg_at_5")
# A sparse encoder's further headline numbers (exporter.validators.sparse).
SPARSE_HEADLINE = ("dot_parity", "top_k_overlap_min", "top_k_overlap_mean", "nnz_drift_max", "nnz_mean")


def write_results(folder: Path, manifest: Manifest, report: ParityReport, store: Callable[[Path], object], *,
                  write_reference: bool, record: bool, report_dir: Path | None) -> None:
    """The stored reference (``store(destination)``, when ``write_reference``), parity_report.json and the
    manifest's verdicts, after every variant has run: into ``report_dir`` (with a copy of the manifest) when given,
    else into ``folder`` unless it is a cache snapshot. A write that fails becomes ``report.record_error``."""
    if not write_reference and not record:
        return
    destination = folder
    if report_dir is not None:
        destination = report_dir
        destination.mkdir(parents=True, exist_ok=True)
        write_manifest(destination, manifest)  # a copy, so the results can be recorded against it
    elif is_cache_snapshot(folder):
        report.record_error = (f"{folder} is a huggingface_hub cache snapshot (its files are links into the cache): "
                               "nothing was written there; pass report_dir to keep the results")
        return
    try:
        if write_reference:
            store(destination)
        if record:
            record_results(destination, report)
    except OSError as error:
        report.record_error = f"{type(error).__name__}: {error}"


def record_results(folder: Path, report: ParityReport) -> Path:
    """Write ``parity_report.json`` into ``folder`` and record the results in its manifest; returns the manifest path.

    Raises ``ManifestError`` (from ``read_manifest``) when the manifest is missing or malformed, and
    ``OSError`` when the folder cannot be written.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    write_text_atomic(folder / REPORT_NAME, report.to_json() + "\n")
    results = {variant.name: variant for variant in report.variants}
    validating_host = HostProfile.detect(probe=False).cpu_line()
    for entry in manifest.variants:
        result = results.get(entry.name)
        measured = {check.name: check.measured for check in (result.checks if result else [])}
        entry.parity = None if result is None else Parity(
            passed=result.passed, **{name: measured.get(name) for name in HEADLINE_CHECKS},
            inference_precision=result.inference_precision, validated_on=validating_host)
        if entry.parity is not None and "top1_agreement" in measured:  # a reranker: its ranking metrics
            for name in RANKING_HEADLINE:
                setattr(entry.parity, name, measured.get(name))
        if entry.parity is not None and "top_k_overlap_min" in measured:  # a sparse encoder's headline numbers
            for name in SPARSE_HEADLINE:
                setattr(entry.parity, name, measured.get(name))
        prompts = {check.name.removeprefix(PROMPT_CHECK_PREFIX): check.measured for check in (result.checks if result
                   else []) if check.name.startswith(PROMPT_CHECK_PREFIX)}
        if entry.parity is not None and prompts:
            entry.parity.prompts = prompts
    from exporter.validators.ranking import STORED_GROUPS_FILE, STORED_SCORES_FILE

    for relative in (TEXTS_FILE, REFERENCE_FILE, SPARSE_REFERENCE_FILE, TOKEN_IDS_FILE, STORED_GROUPS_FILE,
                     STORED_SCORES_FILE, REPORT_NAME):
        if (folder / relative).is_file():
            manifest.set_shared_file(file_entry(folder, relative))
    manifest.validation = ValidationRecord(passed=report.passed, reference=report.reference, report=REPORT_NAME)
    return write_manifest(folder, manifest)
