"""Ray Data engine for ``exporter.embed(..., engine="ray")``: ``EncoderUDF`` (one verified Encoder per actor)
and ``RayChunkEngine`` (windows of chunks through ``map_batches``). Here, below ``exporter.deploy.embed``, so
the embed stage can use it without an import circle; ``exporter.integrations.ray`` is the documented entry
point (see its docstring for the design).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from exporter.errors import BadInputError, RuntimeUnavailableError

RAY_FIX = 'pip install "embedding-exporter[ray]"'


def require_ray():
    """``ray`` with Ray Data, or ``RuntimeUnavailableError`` naming the ``ray`` extra."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise RuntimeUnavailableError(f"engine ray needs ray[data] ({error}): {RAY_FIX}", fix=RAY_FIX) from None
    return ray


class EncoderUDF:
    """A callable class for ``ds.map_batches(EncoderUDF, fn_constructor_kwargs={...}, concurrency=N,
    batch_format="pyarrow")``: one verified Encoder per actor; each batch becomes a table of ``id`` (from
    ``id_column``, when the batch has it), ``embedding`` (fixed-size list of float32) and ``keep_columns``.

    A text that is missing, not a string or empty raises ``BadInputError`` naming the row's id: validate or
    filter rows first (``exporter.embed`` and ``embed_dataset`` do, with ``on_bad_row``)."""

    def __init__(self, source: str | os.PathLike, variant: str | None = "auto", *, text_column: str = "text",
                 id_column: str | None = "id", keep_columns: Sequence[str] = (), batch_size: int = 32,
                 prompt_name: str | None = None, threads: int | None = None, mode: str = "latency",
                 **fetch_options: Any):
        from exporter.deploy.fetch import load

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.encoder = load(source, variant, threads=threads, mode=mode, **fetch_options)
        self.text_column = text_column
        self.id_column = id_column
        self.keep_columns = tuple(keep_columns)
        self.batch_size = batch_size
        self.prompt_name = prompt_name

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        table = batch if isinstance(batch, pa.Table) else pa.table(dict(batch))
        texts = table.column(self.text_column).to_pylist()
        for offset, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                where = (f"id {table.column(self.id_column)[offset].as_py()!r}"
                         if self.id_column and self.id_column in table.column_names else f"batch row {offset}")
                raise BadInputError(f"{where}: field {self.text_column!r}: missing, not a string or empty")
        before = self.encoder.tokens_encoded
        embeddings = np.ascontiguousarray(self.encoder.encode(texts, batch_size=self.batch_size,
                                                              prompt_name=self.prompt_name), dtype=np.float32)
        tokens = self.encoder.tokens_encoded - before
        dimension = embeddings.shape[1] if embeddings.ndim == 2 else int(self.encoder.dimension or 0)
        data: dict[str, Any] = {}
        if self.id_column and self.id_column in table.column_names:
            data["id"] = table.column(self.id_column)
        data["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1), pa.float32()),
                                                              dimension)
        for name in self.keep_columns:
            data[name] = table.column(name)
        self.last_tokens = tokens
        return pa.table(data)


class _ChunkUDF(EncoderUDF):
    """``EncoderUDF`` for the chunk engine: keeps the part and row numbers and reports each batch's tokens."""

    def __init__(self, source: str, variant: str, **options: Any):
        super().__init__(source, variant, id_column=None, keep_columns=("_part", "_row"), **options)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        table = super().__call__(batch)
        tokens = np.zeros(table.num_rows, dtype=np.int64)
        if table.num_rows:
            tokens[0] = self.last_tokens
        return table.append_column("_tokens", pa.array(tokens))


def _init_ray(address: str | None, threads: int, workers: int) -> Any:
    ray = require_ray()
    if not ray.is_initialized():
        options: dict[str, Any] = {"ignore_reinit_error": True, "include_dashboard": False,
                                   "log_to_driver": False, "configure_logging": False}
        if address:
            options["address"] = address
        else:
            options["num_cpus"] = max(threads * workers, 1)
        try:
            ray.init(**options)
        except ConnectionError as error:
            from exporter.errors import ExternalError

            raise ExternalError(f"address {address}: no Ray cluster answers ({error})") from None
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    return ray


class RayChunkEngine:
    """The ``ray`` engine of ``exporter.deploy.embed``: chunks in, ``(chunk, embeddings, tokens)`` out, in
    order, through ``map_batches(_ChunkUDF, concurrency=workers)`` one window of chunks at a time."""

    def __init__(self, source: str, variant: str, *, workers: int, threads: int, batch_size: int,
                 prompt_name: str | None, mode: str = "latency", address: str | None = None,
                 fetch_options: dict[str, Any] | None = None,
                 window_parts: int | None = None):
        self.ray = _init_ray(address, threads, workers)
        self.workers = workers
        self.threads = threads
        self.window_parts = window_parts or 8 * workers
        self.constructor = {"source": source, "variant": variant, "batch_size": batch_size,
                            "prompt_name": prompt_name, "threads": threads, "mode": mode,
                            **(fetch_options or {})}

    def run(self, chunks: Iterator[Any]) -> Iterator[tuple[Any, np.ndarray, int]]:
        window: list[Any] = []
        for chunk in chunks:
            window.append(chunk)
            if len(window) == self.window_parts:
                yield from self._window(window)
                window = []
        if window:
            yield from self._window(window)

    def _window(self, chunks: list[Any]) -> Iterator[tuple[Any, np.ndarray, int]]:
        import pyarrow as pa

        ray = self.ray
        tables = [pa.table({"_part": pa.array(np.full(len(chunk.texts), chunk.index, dtype=np.int64)),
                            "_row": pa.array(np.arange(len(chunk.texts), dtype=np.int64)),
                            "text": pa.array(chunk.texts, pa.string())}) for chunk in chunks]
        rows = sum(table.num_rows for table in tables)
        batch_rows = max(1, min(4096, -(-rows // (self.workers * 4))))
        dataset = ray.data.from_arrow(tables).map_batches(
            _ChunkUDF, fn_constructor_kwargs=self.constructor, concurrency=self.workers, num_cpus=self.threads,
            batch_size=batch_rows, batch_format="pyarrow")
        result = pa.concat_tables([ray.get(ref) for ref in dataset.to_arrow_refs()])
        parts = result.column("_part").to_numpy()
        order = np.lexsort((result.column("_row").to_numpy(), parts))
        parts = parts[order]
        embeddings = _matrix(result.column("embedding"))[order]
        tokens = result.column("_tokens").to_numpy()[order]
        for chunk in chunks:
            mask = parts == chunk.index
            yield chunk, embeddings[mask], int(tokens[mask].sum())

    def close(self) -> None:
        pass


def _matrix(column: Any) -> np.ndarray:
    """A fixed-size-list column as a ``(rows, dim)`` float32 array."""
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    dimension = array.type.list_size
    return array.flatten().to_numpy(zero_copy_only=False).reshape(-1, dimension).astype(np.float32, copy=False)
