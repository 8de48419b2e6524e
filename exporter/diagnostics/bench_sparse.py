"""``exporter bench`` on a sparse-encoder artifact (SPLADE): texts/s of each variant through the torch-free runtime
``SparseEncoder`` against torch ``SparseEncoder.encode`` in the same run, and what the output costs a sparse index
(non-zero terms per text, bytes of CSR rows per text).

Every model runs in this process with the same thread count, warmed up, then interleaved round by round (the order
rotated each round) on the same texts; throughput = texts / median round time, so a busy host slows every model
alike. The cosine and top-k term overlap with torch are of the first measured round.
"""

from __future__ import annotations

import datetime as _dt
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exporter.artifact import model_folder
from exporter.artifact.manifest import read_manifest
from exporter.errors import BadInputError
from exporter.validators.sparse import sparse_metrics

BYTES_PER_TERM = 8  # a CSR entry: int32 index + float32 weight


@dataclass
class SparseModelResult:
    name: str
    backend: str
    precision: str
    graph: str
    texts_per_second: float
    ratio_to_torch: float | None
    nnz_per_text: float
    bytes_per_text: float
    cosine_min: float | None = None
    top_k_overlap_mean: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in self.__dict__.items()}


@dataclass
class SparseBenchResult:
    folder: Path
    created_at: str
    host: dict[str, Any]
    settings: dict[str, Any]
    results: list[SparseModelResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "sparse", "folder": str(self.folder), "created_at": self.created_at, "host": self.host,
                "settings": self.settings, "results": [r.to_dict() for r in self.results], "notes": self.notes}


def bench_sparse(folder: str | Path, *, variants: Sequence[str] | None = None, batch_size: int = 32,
                 num_texts: int = 256, rounds: int = 3, warmup_rounds: int = 1, threads: int | None = None,
                 texts_file: str | Path | None = None, source_dir: str | Path | None = None,
                 progress=None) -> SparseBenchResult:
    """Benchmark the variants (all, or ``variants``) of the sparse-encoder artifact ``folder`` against the torch
    ``SparseEncoder`` of its source model (when found here), interleaved in one run. Nothing is written."""
    from exporter.diagnostics.bench_measure import available_cores, host_info, load_texts
    from exporter.runtime.packages import missing_build_stack
    from exporter.runtime.sparse import load_sparse_encoder

    root = Path(folder).expanduser().resolve()
    manifest = read_manifest(root)
    if manifest.source.kind != "sparse":
        raise BadInputError(f"{root}: not a sparse-encoder artifact (source.kind {manifest.source.kind})")
    threads = threads or available_cores()
    texts, source = load_texts(texts_file)
    texts = (texts * (num_texts // max(1, len(texts)) + 1))[:num_texts]
    chosen = [manifest.variant(name) for name in variants] if variants else [
        v for v in manifest.variants if v.backend != "torch"]
    notes: list[str] = []
    runners: list[tuple[str, Any, Callable[[list[str]], np.ndarray]]] = []
    found = model_folder.find_source_model(manifest, source_dir)
    missing = missing_build_stack()
    if found.directory is not None and not missing:
        import torch

        from exporter.recipe import ModelSource
        from exporter.runtime.runners import use_folder_tokenizer
        from exporter.validators.sparse import load_sparse_encoder as load_torch
        from exporter.validators.sparse import torch_sparse_vectors

        torch.set_num_threads(threads)
        model = load_torch(found.directory, ModelSource(path=str(found.directory),
                                                        max_seq_length=manifest.source.max_seq_length))
        use_folder_tokenizer(model, root)
        runners.append(("torch", None, lambda batch, m=model: torch_sparse_vectors(m, batch, batch_size)))
    else:
        notes.append("no torch reference here (" + (", ".join(missing) + " not installed" if missing else
                                                     found.reason or "source model not found") + "): no ratios")
    for variant in chosen:
        encoder = load_sparse_encoder(root, variant, manifest=manifest, threads=threads)
        runners.append((variant.name, variant, lambda batch, e=encoder: e.encode(batch, batch_size=batch_size)))

    outputs: dict[str, Any] = {}
    times: dict[str, list[float]] = {name: [] for name, _, _ in runners}
    for round_index in range(warmup_rounds + rounds):
        shift = round_index % len(runners)
        for name, _, run in runners[shift:] + runners[:shift]:
            started = time.perf_counter()
            output = run(texts)
            elapsed = time.perf_counter() - started
            if round_index >= warmup_rounds:
                times[name].append(elapsed)
                outputs.setdefault(name, output)
        if progress is not None and round_index >= warmup_rounds:
            progress.log(f"round {round_index - warmup_rounds + 1} of {rounds} done")
    speed = {name: len(texts) / statistics.median(values) for name, values in times.items()}
    reference = outputs.get("torch")
    results = []
    for name, variant, _ in runners:
        dense = outputs[name].toarray() if hasattr(outputs[name], "toarray") else np.asarray(outputs[name])
        nnz = float(np.count_nonzero(dense, axis=1).mean())
        metrics = sparse_metrics(dense, reference) if reference is not None else {}
        results.append(SparseModelResult(
            name=name, backend=variant.backend if variant else "torch",
            precision=variant.precision if variant else "fp32", graph=variant.graph if variant else "-",
            texts_per_second=speed[name],
            ratio_to_torch=speed[name] / speed["torch"] if "torch" in speed else None,
            nnz_per_text=nnz, bytes_per_text=nnz * BYTES_PER_TERM,
            cosine_min=metrics.get("cosine_min"), top_k_overlap_mean=metrics.get("top_k_overlap_mean")))
    return SparseBenchResult(
        folder=root, created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        host=host_info(threads), results=results, notes=notes,
        settings={"batch_size": batch_size, "num_texts": len(texts), "rounds": rounds, "warmup_rounds": warmup_rounds,
                  "threads": threads, "texts": source,
                  "order": "interleaved, rotated each round; texts/s = texts / median round time"})


def render_sparse(result: SparseBenchResult, console) -> None:
    """The result as a table on ``console``."""
    from rich import box
    from rich.table import Table

    settings = result.settings
    table = Table(title=f"{result.folder.name} (sparse): {settings['num_texts']} texts per round, batch "
                        f"{settings['batch_size']}, {settings['threads']} threads, median of {settings['rounds']} "
                        f"rounds; {result.host.get('cpu')}", box=box.SIMPLE_HEAD)
    for column in ("model", "runtime", "precision", "graph", "texts/s", "× torch", "nnz/text", "bytes/text",
                   "cos min", "top-k mean"):
        table.add_column(column, justify="left" if column in ("model", "runtime", "precision", "graph") else "right")
    for row in result.results:
        table.add_row(row.name, row.backend, row.precision, row.graph, f"{row.texts_per_second:.1f}",
                      "-" if row.ratio_to_torch is None else f"{row.ratio_to_torch:.2f}x", f"{row.nnz_per_text:.1f}",
                      f"{row.bytes_per_text:.0f}", "-" if row.cosine_min is None else f"{row.cosine_min:.5f}",
                      "-" if row.top_k_overlap_mean is None else f"{row.top_k_overlap_mean:.4f}")
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")
