"""``exporter bench`` for rerankers (``source.kind: cross``): pairs per second of each variant through the deploy
``Reranker`` against the torch ``CrossEncoder.predict``, in one interleaved run with the same threads.

A reranker scores one short query against many passages, so every pair here is a built-in query (about 10
tokens) with a passage of one of three lengths, all from the built-in query groups: ``short`` (each passage's
first sentence), ``mixed`` (the passages as written) and ``long`` (three passages of a group joined, cut by the
model's max length). Rounds alternate between the models so a busy host slows them alike; each model's number is
the median round's. The result goes to bench.json and each variant's ``bench`` summary in manifest.json (the
``mixed`` class: throughput in pairs/s, ratio to torch).
"""

from __future__ import annotations

import datetime as _dt
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.errors import BadInputError

CLASSES = ("short", "mixed", "long")
SUMMARY_CLASS = "mixed"


def pair_classes(limit: int) -> dict[str, list[tuple[str, str]]]:
    """The benchmark's pairs per length class, ``limit`` each (fewer for long)."""
    from exporter.validators.ranking import builtin_groups

    groups = builtin_groups()
    mixed = [(g.query, p) for g in groups for p in g.passages]
    short = [(q, p.split(". ")[0].rstrip(".") + ".") for q, p in mixed]
    long = [(g.query, " ".join(g.passages[i:i + 3])) for g in groups for i in range(0, len(g.passages) - 2, 3)]
    return {"short": short[:limit], "mixed": mixed[:limit], "long": long[:max(1, limit // 4)]}


@dataclass
class CrossBenchResult:
    """One run: per model and class, pairs/s and the ratio to torch."""

    folder: Path
    created_at: str
    host: dict[str, Any]
    settings: dict[str, Any]
    models: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "cross", "folder": str(self.folder), "created_at": self.created_at, "host": self.host,
                "settings": self.settings, "models": self.models, "notes": self.notes,
                "reference": {"available": any(m["name"] == "torch" for m in self.models)}}

    def render(self, console) -> None:
        from rich import box
        from rich.table import Table

        table = Table(title=f"{self.folder.name}: pairs/s, batch {self.settings['batch_size']}, "
                            f"{self.settings['threads']} threads, median of {self.settings['rounds']} rounds",
                      box=box.SIMPLE_HEAD)
        for name, justify in (("model", "left"), ("class", "left"), ("pairs", "right"), ("pairs/s", "right"),
                              ("× torch", "right")):
            table.add_column(name, justify=justify)
        for model in self.models:
            for name, numbers in model["classes"].items():
                ratio = numbers.get("ratio_to_torch")
                table.add_row(model["name"], name, str(numbers["pairs"]), f"{numbers['pairs_per_s']:.1f}",
                              f"{ratio:.2f}×" if ratio is not None else "")
        console.print(table)
        for note in self.notes:
            console.print(f"note: {note}")


def bench_cross(root: Path, manifest, *, variants=None, batch_size: int = 32, num_texts: int = 256,
                threads: int | None = None, rounds: int = 3, warmup_rounds: int = 1, source_dir=None,
                save: bool = True, length_classes=None, trust_remote_code: bool = False) -> CrossBenchResult:
    """Benchmark a reranker folder's variants against torch (see the module docstring)."""
    from exporter.artifact import model_folder
    from exporter.diagnostics.bench_measure import available_cores, host_info
    from exporter.runtime.reranker import Reranker

    classes = list(length_classes or CLASSES)
    unknown = [name for name in classes if name not in CLASSES]
    if unknown:
        raise BadInputError(f"length_classes: {unknown[0]!r} is not one of {', '.join(CLASSES)}")
    threads = threads or available_cores()
    chosen = [manifest.variant(name) for name in variants] if variants else [
        v for v in manifest.variants if v.backend in ("onnx", "openvino")]
    pairs = {name: items for name, items in pair_classes(num_texts).items() if name in classes}
    models: list[tuple[str, Any]] = []
    notes: list[str] = []
    found = model_folder.find_source_model(manifest, source_dir)
    try:
        if found.directory is None:
            raise ImportError("the source model is not on this machine")
        import torch
        from sentence_transformers import CrossEncoder

        from exporter.progress import quiet_loading

        torch.set_num_threads(threads)
        with quiet_loading():
            reference = CrossEncoder(str(found.directory), device="cpu", local_files_only=True,
                                     trust_remote_code=trust_remote_code)
        if manifest.source.max_seq_length:
            reference.max_seq_length = manifest.source.max_seq_length
        models.append(("torch", lambda items: reference.predict(items, batch_size=batch_size,
                                                                 show_progress_bar=False)))
    except ImportError as error:
        notes.append(f"no torch reference: {error}")
    for variant in chosen:
        reranker = Reranker(root, manifest, variant, threads=threads)
        models.append((variant.name, lambda items, r=reranker: r.predict(items, batch_size=batch_size)))
    times: dict[tuple[str, str], list[float]] = {}
    for round_index in range(warmup_rounds + rounds):
        for class_name, items in pairs.items():
            for name, run in models:
                started = time.perf_counter()
                run(items)
                if round_index >= warmup_rounds:
                    times.setdefault((name, class_name), []).append(time.perf_counter() - started)
    results = []
    for name, _ in models:
        per_class = {}
        for class_name, items in pairs.items():
            rate = len(items) / statistics.median(times[(name, class_name)])
            torch_times = times.get(("torch", class_name))
            torch_rate = len(items) / statistics.median(torch_times) if torch_times else None
            per_class[class_name] = {"pairs": len(items), "pairs_per_s": round(rate, 2),
                                     "ratio_to_torch": round(rate / torch_rate, 3) if torch_rate else None}
        results.append({"name": name, "classes": per_class})
    host = host_info(threads)
    result = CrossBenchResult(
        folder=root, created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), host=host,
        settings={"batch_size": batch_size, "rounds": rounds, "warmup_rounds": warmup_rounds, "threads": threads,
                  "unit": "pairs/s", "length_classes": {name: len(items) for name, items in pairs.items()}},
        models=results, notes=notes)
    if save:
        _save(root, manifest, result, host)
    return result


def _save(root: Path, manifest, result: CrossBenchResult, host: dict[str, Any]) -> None:
    from exporter.artifact.integrity import write_text_atomic
    from exporter.artifact.layout import BENCH_NAME
    from exporter.artifact.manifest import BenchSummary, file_entry, write_manifest
    from exporter.runtime.host import HostProfile

    write_text_atomic(root / BENCH_NAME, json.dumps(result.to_dict(), indent=2) + "\n")
    measured_on = HostProfile.detect(probe=False).cpu_line()
    by_name = {model["name"]: model["classes"] for model in result.models}
    for variant in manifest.variants:
        numbers = (by_name.get(variant.name) or {}).get(SUMMARY_CLASS)
        if numbers is not None:
            variant.bench = BenchSummary(throughput=numbers["pairs_per_s"], ratio_to_torch=numbers["ratio_to_torch"],
                                         measured_on=measured_on)
    manifest.set_shared_file(file_entry(root, BENCH_NAME))
    write_manifest(root, manifest)
