"""What ``exporter bench`` records: one ``ModelResult`` per model (with a ``ClassResult`` per length class), the
``BenchResult`` of a run, and where they go.

``BenchResult.to_dict()`` is bench.json's content (schema version 2; numbers rounded so the file reads
well). Each model's row has its numbers per length class under ``classes``, and at its top level the numbers
of the summary class (``mixed`` when measured, else the first class measured; ``summary_class`` names it), as
schema 1 had them. ``save_result`` writes it into the artifact folder and updates manifest.json through the
typed manifest: bench.json joins ``shared_files`` (every file of the folder is listed), and each variant
measured through the encoder (what deploy hosts run) gets a ``bench`` summary (``BenchSummary``, the summary
class's numbers) that deploy's variant choice ranks by; rows through sentence-transformers never make a summary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.artifact.integrity import write_bytes_atomic, write_text_atomic
from exporter.artifact.layout import BENCH_NAME, CHART_NAMES, CHART_STEM
from exporter.artifact.manifest import BenchSummary, file_entry, read_manifest, write_manifest
from exporter.diagnostics.bench_precision import Precision
from exporter.diagnostics.bench_targets import Target

BENCH_SCHEMA_VERSION = 2


@dataclass
class ClassResult:
    """What was measured for one model on one length class."""

    texts: int  # per round
    mean_tokens: float  # tokens per text the model ran (its tokenizer, truncated at max_seq_length)
    throughput: float  # texts/s: texts / median round time
    ratio_to_torch: float | None  # throughput / torch's on the same class, same run
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    round_seconds: list[float]
    latency_samples: int
    cosine_mean: float | None = None  # against the torch model's embeddings of the same texts
    cosine_min: float | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.throughput * self.mean_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "mean_tokens": _round(self.mean_tokens, 2),
            "texts_per_second": _round(self.throughput, 2),
            "tokens_per_second": _round(self.tokens_per_second, 1),
            "ratio_to_torch": _round(self.ratio_to_torch, 3),
            "latency_p50_ms": _round(self.latency_p50_ms, 3),
            "latency_p95_ms": _round(self.latency_p95_ms, 3),
            "cosine_mean": _round(self.cosine_mean, 5),
            "cosine_min": _round(self.cosine_min, 5),
            "round_seconds": [_round(s, 4) for s in self.round_seconds],
            "latency_samples": self.latency_samples,
        }


@dataclass
class ModelResult:
    """What was measured for one model: per length class, and what it ran at."""

    target: Target
    classes: dict[str, ClassResult]
    precision: Precision  # what was in force, read back from the runtime and the graph
    rss_delta_mb: float | None
    runtime: dict[str, Any]  # the runner's settings: what was in force (threads, precision hint, providers...)
    summary_class: str

    @property
    def summary_numbers(self) -> ClassResult:
        return self.classes[self.summary_class]

    # The summary class's numbers, under the names schema 1 used.
    @property
    def throughput(self) -> float:
        return self.summary_numbers.throughput

    @property
    def ratio_to_torch(self) -> float | None:
        return self.summary_numbers.ratio_to_torch

    @property
    def latency_p50_ms(self) -> float | None:
        return self.summary_numbers.latency_p50_ms

    @property
    def latency_p95_ms(self) -> float | None:
        return self.summary_numbers.latency_p95_ms

    @property
    def cosine_mean(self) -> float | None:
        return self.summary_numbers.cosine_mean

    @property
    def cosine_min(self) -> float | None:
        return self.summary_numbers.cosine_min

    def to_dict(self) -> dict[str, Any]:
        t = self.target
        summary = self.summary_numbers.to_dict()
        return {
            "name": t.name,
            "kind": t.kind,
            "backend": t.backend,
            "precision": t.precision,
            "precision_in_force": self.precision.label,
            "graph": t.graph,
            "loader": t.loader,
            "file_name": t.file_name,
            "size_bytes": t.size_bytes,
            "summary_class": self.summary_class,
            "throughput": summary["texts_per_second"],
            "tokens_per_second": summary["tokens_per_second"],
            "ratio_to_torch": summary["ratio_to_torch"],
            "latency_p50_ms": summary["latency_p50_ms"],
            "latency_p95_ms": summary["latency_p95_ms"],
            "rss_delta_mb": _round(self.rss_delta_mb, 1),
            "cosine_mean": summary["cosine_mean"],
            "cosine_min": summary["cosine_min"],
            "round_seconds": summary["round_seconds"],
            "latency_samples": summary["latency_samples"],
            "classes": {name: numbers.to_dict() for name, numbers in self.classes.items()},
            "precision_detail": self.precision.to_dict(),
            "runtime": self.runtime,
        }

    def summary(self) -> BenchSummary:
        """The short form stored on the variant's manifest entry: bench.json's numbers of the summary's fields."""
        full = self.to_dict()
        return BenchSummary(**{key: full[key] for key in BenchSummary.model_fields if key in full})


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
    chart_file: Path | None = None  # where ``plot`` drew the run's chart (``bench_plot``)

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


def save_result(root: Path, result: BenchResult, *, chart: tuple[str, bytes] | None = None) -> Path:
    """Write bench.json and record it in manifest.json: a shared file, and a summary on each variant measured
    through the encoder (variants not measured in this run lose a previous summary, so the manifest agrees
    with bench.json). A run through sentence-transformers only leaves the summaries as they were.

    ``chart`` (suffix, bytes: ``bench_plot.render_chart``) is written beside it as ``bench.png`` / ``bench.svg``
    and listed like bench.json; a chart of an earlier run is removed (and unlisted) either way, so the folder
    never shows a chart of other numbers than its bench.json."""

    root = Path(root)
    path = root / BENCH_NAME
    write_text_atomic(path, json.dumps(result.to_dict(), indent=2) + "\n")
    chart_name = f"{CHART_STEM}{chart[0]}" if chart is not None else None
    if chart is not None:
        write_bytes_atomic(root / chart_name, chart[1])
    manifest = read_manifest(root)
    manifest.set_shared_file(file_entry(root, BENCH_NAME))
    stale = [name for name in CHART_NAMES if name != chart_name]
    manifest.shared_files = [entry for entry in manifest.shared_files if entry.path not in stale]
    if chart_name is not None:
        manifest.set_shared_file(file_entry(root, chart_name))
    if updates_summaries(result):
        from exporter.runtime.host import HostProfile

        measured_on = HostProfile.detect(probe=False).cpu_line()
        summaries = {r.target.name: r.summary().model_copy(update={"measured_on": measured_on})
                     for r in result.results if r.target.kind == "variant" and r.target.loader == "encoder"}
        for variant in manifest.variants:
            variant.bench = summaries.get(variant.name)
    write_manifest(root, manifest)
    for name in stale:  # after the manifest stops listing it: a folder never lists a missing file
        (root / name).unlink(missing_ok=True)
    return path


__all__ = ["BENCH_NAME", "BENCH_SCHEMA_VERSION", "BenchResult", "ClassResult", "ModelResult", "save_result",
           "updates_summaries"]
