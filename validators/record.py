"""Recording a validation in the artifact folder, so later steps (push, deploy) can see the verdict.

Writes ``parity_report.json`` and updates ``manifest.json``: each variant gets ``parity`` (its verdict and
headline numbers), the top level gets ``validation: {passed, report}``, and the files validation added
(``parity/texts.jsonl``, ``parity/reference.npy``, ``parity_report.json``) are listed in ``shared_files``
with sha256 and size, keeping "every file in the folder except manifest.json is listed" true.
"""

from __future__ import annotations

from pathlib import Path

from exporter.artifact.manifest import file_entry, read_manifest, write_manifest
from exporter.validators.reference import REFERENCE_FILE, TEXTS_FILE
from exporter.validators.report import REPORT_NAME, ParityReport

HEADLINE_CHECKS = ("cosine_min", "cosine_mean", "neighbour_overlap", "spearman")


def record_results(folder: Path, report: ParityReport) -> Path:
    """Write ``parity_report.json`` into ``folder`` and record the results in its manifest; returns the manifest path.

    Raises ``BadInputError`` (from ``read_manifest``) when the manifest is missing or malformed, and
    ``OSError`` when the folder cannot be written.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    (folder / REPORT_NAME).write_text(report.to_json() + "\n", encoding="utf-8")
    results = {variant.name: variant for variant in report.variants}
    for entry in manifest["variants"]:
        result = results.get(entry["name"])
        if result is None:
            entry.pop("parity", None)
            continue
        entry["parity"] = {"passed": result.passed, **{name: result.check(name).measured for name in HEADLINE_CHECKS}}
    added = [relative for relative in (TEXTS_FILE, REFERENCE_FILE, REPORT_NAME) if (folder / relative).is_file()]
    shared = [entry for entry in manifest.get("shared_files", []) if entry["path"] not in added]
    manifest["shared_files"] = sorted(shared + [file_entry(folder, relative) for relative in added],
                                      key=lambda entry: entry["path"])
    manifest["validation"] = {"passed": report.passed, "reference": report.reference, "report": REPORT_NAME}
    return write_manifest(folder, manifest)
