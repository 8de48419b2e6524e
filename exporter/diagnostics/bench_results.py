"""What ``exporter bench`` records: one ``ModelResult`` per model, the ``BenchResult`` of a run, and where they go.

``BenchResult.to_dict()`` is bench.json's content (schema version 1; numbers rounded so the file reads
well). ``save_result`` writes it into the artifact folder and updates manifest.json through the typed
manifest: bench.json joins ``shared_files`` (every file of the folder is listed), and each variant measured
through the encoder (what deploy hosts run) gets a ``bench`` summary (``BenchSummary``) that deploy's variant
choice ranks by; rows through sentence-transformers never make a summary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.artifact.integrity import file_entry, write_text_atomic
from exporter.artifact.manifest import BenchSummary, read_manifest, write_manifest
from exporter.diagnostics.bench_targets import Target

BENCH_NAME = "bench.json"
BENCH_SCHEMA_VERSION = 1


@dataclass
class ModelResult:
    """What was measured for one model."""

    target: Target
    throughput: float
    ratio_to_torch: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    rss_delta_mb: float | None
    runtime: dict[str, Any]  # the runner's settings: what was in force (threads, precision hint, providers...)
    round_seconds: list[float]
    latency_samples: int
    cosine_mean: float | None = None  # against the torch model's embeddings of the same texts
    cosine_min: float | None = None

    def to_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "name": t.name,
            "kind": t.kind,
            "backend": t.backend,
            "precision": t.precision,
            "graph": t.graph,
            "loader": t.loader,
            "file_name": t.file_name,
            "size_bytes": t.size_bytes,
            "throughput": _round(self.throughput, 2),
            "ratio_to_torch": _round(self.ratio_to_torch, 3),
            "latency_p50_ms": _round(self.latency_p50_ms, 3),
            "latency_p95_ms": _round(self.latency_p95_ms, 3),
            "rss_delta_mb": _round(self.rss_delta_mb, 1),
            "cosine_mean": _round(self.cosine_mean, 5),
            "cosine_min": _round(self.cosine_min, 5),
            "runtime": self.runtime,
            "round_seconds": [_round(s, 4) for s in self.round_seconds],
            "latency_samples": self.latency_samples,
        }

    def summary(self) -> BenchSummary:
        """The short form stored on the variant's manifest entry: bench.json's numbers of the summary's fields."""
        full = self.to_dict()
        return BenchSummary(**{key: full[key] for key in BenchSummary.model_fields})


@dataclass
class BenchResult:
    """A benchmark run: ``to_dict()`` is what bench.json holds."""

    folder: Path
    created_at: str
    host: dict[str, Any]
    settings: dict[str, Any]
    versions: dict[str, str | None]
    results: list[ModelResult]
    reference: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    bench_file: Path | None = None

    def result(self, name: str) -> ModelResult:
        """The result of the model called ``name``; ``KeyError`` when none is."""
        for result in self.results:
            if result.target.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": BENCH_SCHEMA_VERSION,
            "created_at": self.created_at,
            "host": self.host,
            "settings": self.settings,
            "versions": self.versions,
            "reference": self.reference,
            "results": [result.to_dict() for result in self.results],
            "notes": list(self.notes),
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def updates_summaries(result: BenchResult) -> bool:
    """Whether the run measured the encoder (the manifest's summaries come from its rows only)."""
    return "encoder" in result.settings.get("via", ("encoder",))


def save_result(root: Path, result: BenchResult) -> Path:
    """Write bench.json and record it in manifest.json: a shared file, and a summary on each variant measured
    through the encoder (variants not measured in this run lose a previous summary, so the manifest agrees
    with bench.json). A run through sentence-transformers only leaves the summaries as they were."""
    path = Path(root) / BENCH_NAME
    write_text_atomic(path, json.dumps(result.to_dict(), indent=2) + "\n")
    manifest = read_manifest(root)
    manifest.set_shared_file(file_entry(root, BENCH_NAME))
    if updates_summaries(result):
        summaries = {r.target.name: r.summary() for r in result.results
                     if r.target.kind == "variant" and r.target.loader == "encoder"}
        for variant in manifest.variants:
            variant.bench = summaries.get(variant.name)
    write_manifest(root, manifest)
    return path


__all__ = ["BENCH_NAME", "BENCH_SCHEMA_VERSION", "BenchResult", "ModelResult", "save_result", "updates_summaries"]
