"""``embed``: a corpus through a validated variant into Parquet parts, resumable, on one machine or on Ray.

What users do right after fetching an artifact is embed a corpus (backfill a vector index, re-embed after a
model upgrade). This is that loop, done once properly: the variant is fetched and verified as
``exporter.load`` does (same ``fetch_variant``, same Encoder, same pinned numerics), the input is streamed
in chunks (``exporter.deploy.embed_io``), every chunk becomes one Parquet part written atomically, and
``_manifest.json`` records the artifact (variant, sha256 of its files), the numerics settings, the inputs
with their row counts, the parts and the skipped bad rows.

Resume: part boundaries depend only on the input and ``chunk_rows``, so a rerun with the same arguments
re-reads the input (cheap next to encoding), skips every part the manifest lists whose file still matches
its sha256, and encodes the rest. A different artifact, variant or setting in the same ``output`` is refused
(``EmbedOutputConflictError``) unless ``overwrite=True``.

Engines: ``local`` encodes in this process (``workers=1``) or in ``workers`` spawned processes, each with its
own Encoder and ``threads`` runtime threads (default: cores // workers, so workers x threads <= cores); each
part is split into one slice per worker, so parts still finish in order and memory stays a few chunks.
``ray`` hands the chunks to Ray Data actors (``exporter.integrations.ray``); the parts, the manifest and the
embeddings are the same. The engine never decides what is written: this module does.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from exporter.deploy.embed_io import (
    EMBED_FORMAT,
    EMBED_FORMAT_VERSION,
    MANIFEST_FILE,
    Chunk,
    Columns,
    part_is_complete,
    part_name,
    part_table,
    read_chunks,
    read_output_manifest,
    remove_leftovers,
    require_pyarrow,
    resolve_inputs,
    write_output_manifest,
    write_part,
)
from exporter.errors import BadInputError

if TYPE_CHECKING:
    from exporter.deploy.fetch import FetchResult

ENGINES = ("local", "ray")
BAD_ROW_POLICIES = ("fail", "skip")
DEFAULT_CHUNK_ROWS = 10_000
DEFAULT_BATCH_SIZE = 32
RESERVED_COLUMNS = ("embedding",)


class EmbedOutputConflictError(BadInputError):
    """``output`` holds embeddings made with another artifact, variant, input or settings (or other files).
    ``differs``: what differs."""

    def __init__(self, message: str, differs: str | None = None):
        super().__init__(message)
        self.differs = differs


def default_workers(cores: int) -> int:
    """Worker processes for ``workers=None``: one per core up to 4 cores (one runtime thread each), then one per
    two cores. Measured on 2 cores (Sapphire Rapids class, MiniLM ONNX fp32, short mixed texts, a shared
    machine): 2 workers x 1 thread ran 1.46x the rows/s of 1 worker x 2 threads: tokenising, padding and the
    small per-batch graphs of one process leave a core idle that a second process fills. Each worker holds its
    own model, so on large hosts workers of two threads keep memory in check."""
    return max(1, cores if cores <= 4 else cores // 2)


@dataclass
class EmbedResult:
    """What a run wrote and how fast it went. ``rows``: embedded rows (all parts, reused included);
    ``encoded_rows`` / ``tokens`` / ``seconds``: what this run encoded and how long it took."""

    output: Path
    source: str
    variant: str
    engine: str
    workers: int
    threads: int
    rows: int
    input_rows: int
    skipped_rows: int
    parts: int
    parts_reused: int
    encoded_rows: int
    tokens: int
    seconds: float
    bad_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.encoded_rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output), "source": self.source, "variant": self.variant, "engine": self.engine,
            "workers": self.workers, "threads": self.threads, "rows": self.rows, "input_rows": self.input_rows,
            "skipped_rows": self.skipped_rows, "parts": self.parts, "parts_reused": self.parts_reused,
            "encoded_rows": self.encoded_rows, "tokens": self.tokens, "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1), "tokens_per_second": round(self.tokens_per_second, 1),
            "manifest": str(self.output / MANIFEST_FILE),
        }


# ---------------------------------------------------------------------------------------------- API


def embed(
    source: str | os.PathLike,
    *,
    input: str | os.PathLike,
    output: str | os.PathLike,
    variant: str | None = "auto",
    text_column: str = "text",
    id_column: str | None = "id",
    keep_columns: Sequence[str] = (),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    prompt_name: str | None = None,
    on_bad_row: str = "fail",
    overwrite: bool = False,
    engine: str = "local",
    workers: int | None = None,
    threads: int | None = None,
    mode: str = "latency",
    address: str | None = None,
    show_progress: bool = False,
    **fetch_options: Any,
) -> EmbedResult:
    """Embed the rows of ``input`` (a JSONL/CSV/Parquet file, folder or glob) with a validated variant of
    ``source`` into Parquet parts under ``output``; resumable (see the module docstring).

    Every part holds ``id`` (``id_column``'s value; the row's position in the input when the first row has no
    such field), ``embedding`` (fixed-size list of float32) and the ``keep_columns``, in input order. A row
    whose text is missing, not a string or empty (or whose id is missing) fails the run with
    ``on_bad_row="fail"`` (``BadRowError``, naming file, row and field) and is skipped and listed in the
    manifest with ``"skip"``. ``mode="throughput"`` runs each worker's batches concurrently inside the runtime
    (OpenVINO's THROUGHPUT hint and async queue; a speed setting, numerics unchanged). ``engine="ray"`` runs
    the Encoders as Ray Data actors (``workers`` of them, on the cluster at ``address``; default: a local
    instance). ``fetch_options`` go to ``fetch_variant``
    (``revision``, ``endpoint``, ``token``, ``cache_dir``, ``trust_remote_code``, ``backend``, ...).

    Raises ``BadInputError`` (bad argument or input; ``BadRowError``; ``EmbedOutputConflictError``), the
    errors of ``fetch_variant``, and ``RuntimeUnavailableError`` (exit 3) without pyarrow (the ``embed``
    extra) or, for ``engine="ray"``, without Ray (the ``ray`` extra).
    """
    require_pyarrow()
    if engine not in ENGINES:
        raise BadInputError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if on_bad_row not in BAD_ROW_POLICIES:
        raise BadInputError(f"on_bad_row {on_bad_row!r}: expected one of {', '.join(BAD_ROW_POLICIES)}")
    if chunk_rows < 1 or batch_size < 1:
        raise BadInputError(f"chunk_rows {chunk_rows}, batch_size {batch_size}: expected at least 1")
    if workers is not None and workers < 1:
        raise BadInputError(f"workers {workers}: expected at least 1")
    if threads is not None and threads < 1:
        raise BadInputError(f"threads {threads}: expected at least 1")
    if address is not None and engine != "ray":
        raise BadInputError("address= applies to engine='ray'")
    columns = _columns(text_column, id_column, keep_columns)
    files = resolve_inputs(input)
    output = Path(output)
    from exporter.deploy.fetch import fetch_variant

    fetched = fetch_variant(source, variant=variant, **fetch_options)
    from exporter.runtime.encoder import physical_cores

    cores = physical_cores()
    workers = workers or default_workers(cores)
    threads = threads or max(1, cores // workers)
    settings = {**columns.record(), "chunk_rows": chunk_rows, "batch_size": batch_size,
                "prompt_name": prompt_name, "on_bad_row": on_bad_row}
    run = _Run(output, fetched, str(source), files, settings, overwrite)
    from exporter.runtime.encoder import MODES

    if mode not in MODES:
        raise BadInputError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    options = _EncodeOptions(str(fetched.path), fetched.variant.name, threads, batch_size, prompt_name, mode)
    if engine == "ray":
        from exporter.deploy.ray_engine import RayChunkEngine

        runner: _Engine = RayChunkEngine(_remote_source(source, fetched), fetched.variant.name, workers=workers,
                                         threads=threads, batch_size=batch_size, prompt_name=prompt_name,
                                         mode=mode, address=address, fetch_options=_portable(fetch_options, fetched))
    else:
        runner = LocalEngine(options, workers)
    return run.execute(read_chunks, columns, runner, engine_name=engine, workers=workers, threads=threads,
                       show_progress=show_progress)


def _columns(text_column: str, id_column: str | None, keep_columns: Sequence[str]) -> Columns:
    keep = tuple(dict.fromkeys(keep_columns))
    if not text_column:
        raise BadInputError("text_column: expected a column name")
    for name in keep:
        if name in RESERVED_COLUMNS or name == "id":
            raise BadInputError(f"keep_columns: {name!r} is a column of the output itself")
    return Columns(text_column, id_column or None, keep)


def _remote_source(source: str | os.PathLike, fetched: FetchResult) -> str:
    """What a Ray worker fetches: the Hub repo (at the commit this run verified), or the local folder."""
    return str(fetched.source) if fetched.kind == "hub" else str(fetched.path)


def _portable(fetch_options: dict[str, Any], fetched: FetchResult) -> dict[str, Any]:
    kept = {key: value for key, value in fetch_options.items()
            if key in ("endpoint", "token", "cache_dir", "trust_remote_code") and value is not None}
    if fetched.kind == "hub" and fetched.commit:
        kept["revision"] = fetched.commit
    return kept


# --------------------------------------------------------------------------------------- the run


class _Engine:
    """Turns chunks into embeddings, in order: ``run`` yields ``(chunk, embeddings, tokens)`` for each chunk
    it is given, reading ahead only a bounded number of chunks."""

    def run(self, chunks: Iterator[Chunk]) -> Iterator[tuple[Chunk, np.ndarray, int]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Run:
    """One run into ``output``: its identity (what must match to resume), the parts done, the manifest."""

    def __init__(self, output: Path, fetched: FetchResult, source: str, files: list, settings: dict[str, Any],
                 overwrite: bool):
        from exporter.artifact.manifest import read_manifest
        from exporter.runtime.encoder import numerics_settings

        self.output = output
        self.fetched = fetched
        manifest = read_manifest(fetched.path)
        entries, _ = manifest.needed_entries(fetched.variant)
        self.dimension = manifest.source.dimension
        variant = fetched.variant
        self.artifact = {"source": source, "path": str(fetched.path), "kind": fetched.kind,
                         "commit": fetched.commit, "variant": variant.name, "backend": variant.backend,
                         "precision": variant.precision, "graph": variant.graph, "file_name": variant.file_name,
                         "model": manifest.source.id,
                         "dimension": self.dimension,
                         "files": {entry.path: entry.sha256 for entry in entries}}
        self.numerics = numerics_settings(variant)
        self.settings = settings
        self.inputs = [item.record() for item in files]
        self.files = files
        self.parts: dict[int, dict[str, Any]] = {}
        self._prepare(overwrite)

    def _identity(self, data: dict[str, Any]) -> dict[str, Any]:
        artifact = data.get("artifact") or {}
        return {"artifact": {key: artifact.get(key) for key in ("variant", "files")},
                "settings": data.get("settings"),
                "inputs": [{key: item.get(key) for key in ("path", "size")} for item in data.get("inputs") or []]}

    def _prepare(self, overwrite: bool) -> None:
        output = self.output
        if output.exists() and not output.is_dir():
            raise BadInputError(f"output {output}: exists and is not a folder")
        if overwrite and output.is_dir():
            for path in [*output.glob("part-*.parquet"), output / MANIFEST_FILE]:
                if path.is_file():
                    path.unlink()
        output.mkdir(parents=True, exist_ok=True)
        remove_leftovers(output)
        existing = read_output_manifest(output)
        if existing is None:
            stray = sorted(path.name for path in output.iterdir() if not path.name.startswith("."))
            if stray:
                raise EmbedOutputConflictError(f"output {output}: not empty and holds no {MANIFEST_FILE} ({stray[0]}"
                                               f"{', ...' if len(stray) > 1 else ''}); pass overwrite=True to "
                                               "replace its parts, or choose another folder", "files")
            return
        mine = self._identity(self._data([]))
        theirs = self._identity(existing)
        for what, label in (("artifact", "another artifact or variant"), ("settings", "other settings"),
                            ("inputs", "other input files")):
            if mine[what] != theirs[what]:
                recorded = existing.get("artifact", {}).get("variant")
                raise EmbedOutputConflictError(
                    f"output {output}: holds embeddings made with {label} (variant {recorded!r}, "
                    f"{MANIFEST_FILE}); pass overwrite=True to start over, or choose another folder", what)
        for record in existing.get("parts") or []:
            index = _part_index(str(record.get("name", "")))
            if index is not None and part_is_complete(output, record):
                self.parts[index] = record

    def _data(self, bad_rows: list[dict[str, Any]], row_counts: dict[str, int] | None = None,
              complete: bool = False) -> dict[str, Any]:
        parts = [self.parts[index] for index in sorted(self.parts)]
        inputs = [{**item, "rows": (row_counts or {}).get(item["path"])} for item in self.inputs]
        return {
            "format": EMBED_FORMAT, "format_version": EMBED_FORMAT_VERSION, "complete": complete,
            "artifact": self.artifact, "numerics": self.numerics, "settings": self.settings,
            "schema": {"id": "id", "embedding": f"fixed_size_list<float32>[{self.dimension}]",
                       "keep_columns": self.settings["keep_columns"]},
            "inputs": inputs, "parts": parts,
            "rows": sum(int(part["rows"]) for part in parts),
            "input_rows": sum(int(part.get("input_rows", 0)) for part in parts),
            "skipped_rows": len(bad_rows), "bad_rows": bad_rows,
        }

    def execute(self, reader: Callable[..., Iterator[Chunk]], columns: Columns, engine: _Engine, *,
                engine_name: str = "local", workers: int = 1, threads: int = 1,
                show_progress: bool = False) -> EmbedResult:
        started = time.perf_counter()
        row_counts: dict[str, int] = {}
        read_bytes = [0]
        id_source: list[str] = []
        bad_rows: list[dict[str, Any]] = []
        reused = 0
        bar = _Bar(sum(item.size for item in self.files)) if show_progress else None
        encoded_rows = 0
        tokens = 0

        def pending() -> Iterator[Chunk]:
            nonlocal reused
            for chunk in reader(self.files, columns, int(self.settings["chunk_rows"]),
                                on_bad_row=str(self.settings["on_bad_row"]), row_counts=row_counts,
                                read_bytes=read_bytes, id_source=id_source):
                bad_rows.extend(item.record() for item in chunk.bad_rows)
                if chunk.index in self.parts:
                    reused += 1
                    if bar:
                        bar.update(read_bytes[0], 0)
                    continue
                if not chunk.texts:  # every row of the part was skipped: an empty part keeps the numbering
                    self._write(chunk, np.zeros((0, self.dimension or 0), dtype=np.float32), bad_rows)
                    continue
                yield chunk

        try:
            for chunk, embeddings, chunk_tokens in engine.run(pending()):
                if self.dimension is None:
                    self.dimension = int(embeddings.shape[1])
                self._write(chunk, embeddings, bad_rows)
                encoded_rows += len(chunk.texts)
                tokens += chunk_tokens
                if bar:
                    bar.update(read_bytes[0], len(chunk.texts))
        finally:
            engine.close()
            if bar:
                bar.close()
        expected = max(self.parts) + 1 if self.parts else 0
        for stale in self.output.glob("part-*.parquet"):  # parts past the end of an input that shrank: refused
            if stale.name not in {part_name(index) for index in range(expected)}:
                stale.unlink()
        data = self._data(bad_rows, row_counts, complete=True)
        data["id_source"] = id_source[0] if id_source else "column"
        write_output_manifest(self.output, data)
        seconds = time.perf_counter() - started
        return EmbedResult(output=self.output, source=self.artifact["source"], variant=self.artifact["variant"],
                           engine=engine_name, workers=workers, threads=threads, rows=data["rows"],
                           input_rows=sum(row_counts.values()), skipped_rows=len(bad_rows), parts=len(self.parts),
                           parts_reused=reused, encoded_rows=encoded_rows, tokens=tokens, seconds=seconds,
                           bad_rows=bad_rows)

    def _write(self, chunk: Chunk, embeddings: np.ndarray, bad_rows: list[dict[str, Any]]) -> None:
        table = part_table(chunk, embeddings, self.dimension or embeddings.shape[1])

        def record_part(record: dict[str, Any]) -> None:
            record["input_rows"] = chunk.input_rows
            self.parts[chunk.index] = record
            write_output_manifest(self.output, self._data(bad_rows))

        write_part(self.output, chunk.index, table, before_publish=record_part)


def _part_index(name: str) -> int | None:
    """The index of a part file name (``part-00042.parquet`` -> 42), None for any other name."""
    digits = name.removeprefix("part-").removesuffix(".parquet")
    return int(digits) if name.startswith("part-") and digits.isdigit() and part_name(int(digits)) == name else None


# ---------------------------------------------------------------------------------- local engine


@dataclass(frozen=True)
class _EncodeOptions:
    folder: str
    variant: str
    threads: int
    batch_size: int
    prompt_name: str | None
    mode: str = "latency"


_WORKER: dict[str, Any] = {}


def _worker_start(options: _EncodeOptions) -> None:
    """A worker process's Encoder, loaded once from the folder the parent fetched and verified."""
    from exporter.runtime.encoder import load_encoder

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _WORKER["encoder"] = load_encoder(options.folder, options.variant, threads=options.threads,
                                     mode=options.mode)
    _WORKER["options"] = options


def _worker_encode(texts: list[str]) -> tuple[np.ndarray, int]:
    encoder = _WORKER["encoder"]
    options: _EncodeOptions = _WORKER["options"]
    before = encoder.tokens_encoded
    embeddings = encoder.encode(texts, batch_size=options.batch_size, prompt_name=options.prompt_name)
    return embeddings, encoder.tokens_encoded - before


class LocalEngine(_Engine):
    """This process (``workers=1``) or a pool of spawned worker processes, each with its own Encoder."""

    def __init__(self, options: _EncodeOptions, workers: int):
        self.options = options
        self.workers = workers
        self.pool = None
        if workers == 1:
            _worker_start(options)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: a forked OpenVINO / ONNX Runtime / tokenizers process can hang on their threads.
            self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_start, initargs=(options,))

    def run(self, chunks: Iterator[Chunk]) -> Iterator[tuple[Chunk, np.ndarray, int]]:
        if self.pool is None:
            for chunk in chunks:
                embeddings, tokens = _worker_encode(chunk.texts)
                yield chunk, embeddings, tokens
            return
        in_flight: deque = deque()
        for chunk in chunks:
            size = -(-len(chunk.texts) // self.workers)
            futures = [self.pool.submit(_worker_encode, chunk.texts[start:start + size])
                       for start in range(0, len(chunk.texts), size)]
            in_flight.append((chunk, futures))
            while len(in_flight) > 1:  # one part encoding, the next one queued: workers never wait for input
                yield self._collect(*in_flight.popleft())
        while in_flight:
            yield self._collect(*in_flight.popleft())

    @staticmethod
    def _collect(chunk: Chunk, futures: list) -> tuple[Chunk, np.ndarray, int]:
        results = [future.result() for future in futures]
        return chunk, np.concatenate([embeddings for embeddings, _ in results]), sum(tokens for _, tokens in results)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


# ---------------------------------------------------------------------------------------- progress


class _Bar:
    """A rich progress bar on stderr (only on a terminal): input read, rows embedded, rows/s, ETA."""

    def __init__(self, total_bytes: int):
        from rich.console import Console

        console = Console(stderr=True)
        self.progress = None
        if not console.is_terminal:
            return
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("Embedding"), BarColumn(), TaskProgressColumn(),
                                 TextColumn("{task.fields[rows]:,} rows, {task.fields[rate]:,.0f} rows/s"),
                                 TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False)
        self.task = self.progress.add_task("embed", total=max(1, total_bytes), rows=0, rate=0.0)
        self.rows = 0
        self.started = time.perf_counter()
        self.progress.start()

    def update(self, read_bytes: int, rows: int) -> None:
        if self.progress is None:
            return
        self.rows += rows
        rate = self.rows / max(1e-9, time.perf_counter() - self.started)
        self.progress.update(self.task, completed=read_bytes, rows=self.rows, rate=rate)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
