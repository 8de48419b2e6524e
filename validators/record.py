"""Recording a validation in the artifact folder, so later steps (push, deploy) can see the verdict.

Writes ``parity_report.json`` and updates ``manifest.json``: each variant gets ``parity`` (its verdict and
headline numbers), the top level gets ``validation: {passed, report}``, and the files validation added
(``parity/texts.jsonl``, ``parity/reference.npy``, ``parity_report.json``) are listed in ``shared_files``
with sha256 and size, keeping "every file in the folder except manifest.json is listed" true.
"""

from __future__ import annotations

from pathlib import Path

from exporter.artifact.integrity import write_text_atomic
from exporter.artifact.manifest import Parity, ValidationRecord, file_entry, read_manifest, write_manifest
from exporter.runtime.host import HostProfile
from exporter.validators.checks import PROMPT_CHECK_PREFIX
from exporter.validators.reference import REFERENCE_FILE, SPARSE_REFERENCE_FILE, TEXTS_FILE, TOKEN_IDS_FILE
from exporter.validators.report import REPORT_NAME, ParityReport

HEADLINE_CHECKS = ("cosine_min", "cosine_mean", "neighbour_overlap", "spearman")
# Rerankers (``exporter.validators.ranking``): their headline numbers instead.
RANKING_HEADLINE = ("max_abs_diff", "ranking", "top1_agreement", "spearman_mean", "ndcg_at_5")
# A sparse encoder's further headline numbers (exporter.validators.sparse).
SPARSE_HEADLINE = ("dot_parity", "top_k_overlap_min", "top_k_overlap_mean", "nnz_drift_max", "nnz_mean")


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
