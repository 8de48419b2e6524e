"""Ray Data: the validated, torch-free Encoder as the batch-inference step of a Ray pipeline.

Ray Data's documented pattern for batch inference is ``ds.map_batches(CallableClass, concurrency=N)``: each
actor builds the model once in ``__init__`` and is called on batches. ``EncoderUDF`` is that class for an
artifact: its actors fetch and verify the variant as ``exporter.load`` does (on a cluster, from the Hub at the
commit the driver verified), with the pinned numerics, and return ``id``, ``embedding`` (fixed-size list of
float32) and the kept columns as a pyarrow table — so a user's own pipeline can end in ``write_parquet`` or a
vector store.

``embed_dataset(ds, source, output=...)`` and ``exporter embed --engine ray`` go further and write exactly
what the local engine writes (parts, ``_manifest.json``, resume): the driver streams the input in chunks of
``chunk_rows`` rows (a Ray dataset's own read tasks still read it in parallel), validates rows, skips the
parts already done, and sends windows of chunks through ``map_batches(EncoderUDF, concurrency=workers)``;
the parts come back in order and ``exporter.deploy.embed`` writes them. Each window starts its actors once
(``window_parts`` chunks per window, default 8 per actor), so memory on the driver stays a few windows.

Needs the ``ray`` extra: ``pip install "embedding-exporter[openvino,ray]"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from exporter.deploy import embed as embed_module
from exporter.deploy.ray_engine import RAY_FIX, EncoderUDF, RayChunkEngine, require_ray
from exporter.errors import BadInputError


def embed_dataset(ds: Any, source: str | os.PathLike, *, output: str | os.PathLike, variant: str | None = "auto",
                  text_column: str = "text", id_column: str | None = "id", keep_columns: Sequence[str] = (),
                  chunk_rows: int | None = None, batch_size: int | None = None, prompt_name: str | None = None,
                  on_bad_row: str = "fail", overwrite: bool = False, concurrency: int | None = None,
                  threads: int | None = None, show_progress: bool = False, **fetch_options: Any):
    """Embed the Ray dataset ``ds`` with a validated variant of ``source`` into ``output``: the same parts,
    ``_manifest.json`` and resume as ``exporter.embed`` (the input is recorded as ``<ray dataset>``: a rerun
    resumes when the dataset yields the same rows in the same order). ``concurrency``: Encoder actors (default
    one per two CPUs of the Ray cluster); ``threads``: runtime threads per actor. Returns ``EmbedResult``."""
    ray = require_ray()
    from exporter.deploy.embed_io import InputFile, require_pyarrow
    from exporter.deploy.fetch import fetch_variant

    require_pyarrow()
    chunk_rows = chunk_rows or embed_module.DEFAULT_CHUNK_ROWS
    batch_size = batch_size or embed_module.DEFAULT_BATCH_SIZE
    if on_bad_row not in embed_module.BAD_ROW_POLICIES:
        raise BadInputError(f"on_bad_row {on_bad_row!r}: expected one of {', '.join(embed_module.BAD_ROW_POLICIES)}")
    columns = embed_module._columns(text_column, id_column, keep_columns)
    fetched = fetch_variant(source, variant=variant, **fetch_options)
    cpus = int(ray.cluster_resources().get("CPU", 2)) if ray.is_initialized() else (os.cpu_count() or 2)
    workers = concurrency or embed_module.default_workers(cpus)
    threads = threads or max(1, cpus // workers)
    item = InputFile(path=embed_module.Path("<ray dataset>"), format="ray", size=0,
                     blocks=lambda wanted: _dataset_blocks(ds, wanted))
    settings = {**columns.record(), "chunk_rows": chunk_rows, "batch_size": batch_size, "prompt_name": prompt_name,
                "on_bad_row": on_bad_row}
    run = embed_module._Run(embed_module.Path(output), fetched, str(source), [item], settings, overwrite)
    engine = RayChunkEngine(embed_module._remote_source(source, fetched), fetched.variant.name, workers=workers,
                            threads=threads, batch_size=batch_size, prompt_name=prompt_name,
                            fetch_options=embed_module._portable(fetch_options, fetched))
    from exporter.deploy.embed_io import read_chunks

    return run.execute(read_chunks, columns, engine, engine_name="ray", workers=workers, threads=threads,
                       show_progress=show_progress)


def _dataset_blocks(ds: Any, columns: Any) -> Iterator[tuple[Any, int]]:
    from exporter.deploy.embed_io import _ABSENT, Raw

    names = list(dict.fromkeys([columns.text, *([columns.id] if columns.id else []), *columns.keep]))
    present = set(ds.schema().names)
    if columns.text not in present:
        raise BadInputError(f"ds: no column {columns.text!r} (columns: {', '.join(sorted(present))})")
    number = 0
    for batch in ds.select_columns([name for name in names if name in present]).iter_batches(
            batch_size=4096, batch_format="pyarrow"):
        data = batch.to_pydict()
        count = batch.num_rows
        block = {name: data[name] if name in data else [_ABSENT] * count for name in names}
        yield Raw(block, list(range(number + 1, number + count + 1))), 0
        number += count


__all__ = ["RAY_FIX", "EncoderUDF", "RayChunkEngine", "embed_dataset", "require_ray"]
