"""What ``exporter embed`` reads and writes: input files streamed in chunks of rows, Parquet parts written
atomically, and the ``_manifest.json`` that makes a run resumable.

Inputs are JSONL, CSV or Parquet: one file, a folder (its files with those extensions, sorted) or a glob.
Nothing is read whole: JSONL is read line by line with Python's ``json`` (pyarrow's JSON reader types a
column from its first block and fails the whole block on one odd row, and a bad row must be named, then
failed or skipped, on its own), CSV through pyarrow's streaming CSV reader (every column read as a string,
so a later block can never disagree with the first), Parquet one record batch at a time.

Parts are cut by input rows in input order (``chunk_rows`` rows per part, across file boundaries, bad rows
counted), so the same input and settings always give the same part boundaries: that is what lets a rerun
skip the parts already written. Each part is written to a temporary name and renamed into place; the
manifest records each finished part (rows, size, sha256) and is rewritten, also atomically, after each one.

pyarrow is the ``embed`` extra: it is imported only here, and its absence is one line naming the extra.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exporter.errors import BadInputError, RuntimeUnavailableError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet",
           ".pq": "parquet"}
MANIFEST_FILE = "_manifest.json"
PART_PATTERN = "part-{index:05d}.parquet"
EMBED_FORMAT = "embedding-exporter/embeddings"
EMBED_FORMAT_VERSION = 1
ROW_NUMBER_ID = "row"  # the id when the input has no id column: the row's 0-based position in the whole input
_READ_BLOCK_ROWS = 4096


def require_pyarrow():
    """``pyarrow``, or ``RuntimeUnavailableError`` naming the ``embed`` extra."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 - the writer
    except ImportError as error:
        fix = 'pip install "embedding-exporter[embed]"'
        raise RuntimeUnavailableError(f"embedding a corpus needs pyarrow ({error}): {fix}", fix=fix) from None
    return pyarrow


# --- inputs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputFile:
    """One input file: where it is, how it is read, and its size (what a rerun compares)."""

    path: Path
    format: str
    size: int
    # Another source of rows (a Ray dataset): called with the Columns, yields (Raw, bytes read) blocks.
    blocks: Callable[[Columns], Iterator[tuple[Raw, int]]] | None = field(default=None, compare=False)

    def record(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "size": self.size}


def resolve_inputs(input: str | os.PathLike) -> list[InputFile]:
    """The files ``input`` names: a file, a folder (its JSONL/CSV/Parquet files, sorted, not recursive) or a
    glob (sorted). ``BadInputError`` when it names none, or a file of another kind."""
    text = str(input)
    path = Path(text)
    if path.is_file():
        paths = [path]
        if _format(path) is None:
            raise BadInputError(f"input {text}: unknown format (expected {', '.join(sorted(FORMATS))})")
    elif path.is_dir():
        paths = sorted(item for item in path.iterdir() if item.is_file() and _format(item) is not None)
        if not paths:
            raise BadInputError(f"input {text}: the folder holds no {', '.join(sorted(FORMATS))} file")
    else:
        matches = sorted(Path(item) for item in glob.glob(text, recursive=True))
        paths = [item for item in matches if item.is_file() and _format(item) is not None]
        if not paths:
            raise BadInputError(f"input {text}: no such file or folder, and no JSONL/CSV/Parquet file matches it")
    return [InputFile(item.resolve(), _format(item) or "", item.stat().st_size) for item in paths]


def _format(path: Path) -> str | None:
    return FORMATS.get(path.suffix.lower())


@dataclass
class BadRow:
    """A row that cannot be embedded: its file, 1-based line (JSONL) or row (CSV, Parquet), the field, why."""

    file: str
    row: int
    field: str
    problem: str
    unit: str = "row"

    def __str__(self) -> str:
        return f"{self.file}: {self.unit} {self.row}: field {self.field!r}: {self.problem}"

    def record(self) -> dict[str, Any]:
        return {"file": self.file, self.unit: self.row, "field": self.field, "problem": self.problem}


class BadRowError(BadInputError):
    """A row without a usable text or id, and ``on_bad_row="fail"``. ``bad_row``: which and why."""

    def __init__(self, bad_row: BadRow):
        super().__init__(f"{bad_row} (on_bad_row='skip' skips such rows and lists them in {MANIFEST_FILE})")
        self.bad_row = bad_row


@dataclass(frozen=True)
class Columns:
    """Which input columns are read: the text, the id (absent: row numbers) and those copied as they are."""

    text: str = "text"
    id: str | None = "id"
    keep: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        return {"text_column": self.text, "id_column": self.id, "keep_columns": list(self.keep)}


@dataclass
class Chunk:
    """The input rows of one part: their ids, texts and kept columns (valid rows only), and the bad rows."""

    index: int
    ids: list[Any]
    texts: list[str]
    keep: dict[str, list[Any]]
    input_rows: int
    bad_rows: list[BadRow] = field(default_factory=list)


class Raw:
    """A block of raw rows from one file: values per column (``None``: absent), and the rows' numbers."""

    def __init__(self, columns: dict[str, list[Any]], numbers: list[int], problems: dict[int, BadRow] | None = None):
        self.columns = columns
        self.numbers = numbers
        self.problems = problems or {}


def read_chunks(files: list[InputFile], columns: Columns, chunk_rows: int, *, on_bad_row: str = "fail",
                row_counts: dict[str, int] | None = None, read_bytes: list[int] | None = None,
                id_source: list[str] | None = None) -> Iterator[Chunk]:
    """The input as ``Chunk``s of ``chunk_rows`` input rows each (the last one shorter), in input order.

    Ids come from ``columns.id`` when the input's first row has that field, else every row's id is its 0-based
    position in the whole input (``id_source`` gets ``"column"`` or ``"row"``). ``row_counts`` (filled in as
    files are read through) gets each file's row count; ``read_bytes[0]`` grows as input is read (a progress
    bar's measure). A bad row raises ``BadRowError`` with ``on_bad_row="fail"`` and is listed in its chunk's
    ``bad_rows`` with ``"skip"``."""
    if chunk_rows < 1:
        raise BadInputError(f"chunk_rows {chunk_rows}: expected at least 1")
    if on_bad_row not in ("fail", "skip"):
        raise BadInputError(f"on_bad_row {on_bad_row!r}: expected 'fail' or 'skip'")
    index, position = 0, 0
    current = Chunk(0, [], [], {name: [] for name in columns.keep}, 0)
    use_ids: list[bool] = []
    id_kind: list[type] = []
    for item in files:
        rows = 0
        done_bytes = 0
        for raw, file_bytes in _read_file(item, columns):
            if read_bytes is not None:
                read_bytes[0] += max(0, file_bytes - done_bytes)
                done_bytes = max(done_bytes, file_bytes)
            values_id = raw.columns.get(columns.id) if columns.id else None
            if not use_ids:
                use_ids.append(values_id is not None and bool(raw.numbers) and values_id[0] is not _ABSENT)
                if id_source is not None:
                    id_source.append("column" if use_ids[0] else ROW_NUMBER_ID)
            texts = raw.columns[columns.text]
            for offset, number in enumerate(raw.numbers):
                rows += 1
                identifier = values_id[offset] if use_ids[0] and values_id is not None else position
                problem = raw.problems.get(offset) or _problem(item, number, texts[offset], identifier, columns,
                                                               id_kind)
                current.input_rows += 1
                if problem is not None:
                    if on_bad_row == "fail":
                        raise BadRowError(problem)
                    current.bad_rows.append(problem)
                else:
                    current.ids.append(identifier)
                    current.texts.append(texts[offset])
                    for name in columns.keep:
                        value = raw.columns[name][offset]
                        current.keep[name].append(None if value is _ABSENT else value)
                position += 1
                if current.input_rows == chunk_rows:
                    yield current
                    index += 1
                    current = Chunk(index, [], [], {name: [] for name in columns.keep}, 0)
        if read_bytes is not None:
            read_bytes[0] += max(0, item.size - done_bytes)
        if row_counts is not None:
            row_counts[str(item.path)] = rows
    if current.input_rows:
        yield current


_ABSENT = object()  # a field a row (or a column a file) does not have


def _problem(item: InputFile, number: int, text: Any, identifier: Any, columns: Columns,
             id_kind: list[type]) -> BadRow | None:
    unit = "line" if item.format == "jsonl" else "row"

    def bad(name: str, why: str) -> BadRow:
        return BadRow(str(item.path), number, name, why, unit)

    if text is None or text is _ABSENT:
        return bad(columns.text, "missing")
    if not isinstance(text, str):
        return bad(columns.text, f"not a string ({type(text).__name__})")
    if not text.strip():
        return bad(columns.text, "empty")
    if identifier is None or identifier is _ABSENT:
        return bad(str(columns.id), "missing")
    if isinstance(identifier, bool) or not isinstance(identifier, (int, str)):
        return bad(str(columns.id), f"not a string or an integer ({type(identifier).__name__})")
    if not id_kind:
        id_kind.append(type(identifier))
    elif not isinstance(identifier, id_kind[0]):
        return bad(str(columns.id), f"a {type(identifier).__name__}, where the first id was a {id_kind[0].__name__}")
    return None


def _names(columns: Columns) -> list[str]:
    return list(dict.fromkeys([columns.text, *([columns.id] if columns.id else []), *columns.keep]))


def _read_file(item: InputFile, columns: Columns) -> Iterator[tuple[Raw, int]]:
    """Blocks of raw rows and the bytes of the file read so far (an estimate for CSV and Parquet)."""
    if item.blocks is not None:
        yield from item.blocks(columns)
    elif item.format == "jsonl":
        yield from _read_jsonl(item, columns)
    else:
        yield from _read_arrow(item, columns)


def _read_jsonl(item: InputFile, columns: Columns) -> Iterator[tuple[Raw, int]]:
    names = _names(columns)
    block: dict[str, list[Any]] = {name: [] for name in names}
    numbers: list[int] = []
    problems: dict[int, BadRow] = {}
    read = 0
    with open(item.path, "rb") as stream:
        for number, line in enumerate(stream, start=1):
            read += len(line)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"a JSON {type(row).__name__}, not an object")
            except (ValueError, UnicodeDecodeError) as error:
                problems[len(numbers)] = BadRow(str(item.path), number, "(line)", f"not a JSON object: {error}",
                                                "line")
                row = {}
            for name in names:
                block[name].append(row.get(name, _ABSENT))
            numbers.append(number)
            if len(numbers) == _READ_BLOCK_ROWS:
                yield Raw(block, numbers, problems), read
                block, numbers, problems = {name: [] for name in names}, [], {}
    if numbers:
        yield Raw(block, numbers, problems), read


def _read_arrow(item: InputFile, columns: Columns) -> Iterator[tuple[Raw, int]]:
    """CSV (every column as a string) or Parquet, one record batch at a time."""
    pa = require_pyarrow()
    names = _names(columns)
    try:
        if item.format == "csv":
            import csv as python_csv

            from pyarrow import csv

            with open(item.path, encoding="utf-8", newline="") as stream:
                header = next(python_csv.reader(stream), [])
            wanted = [name for name in names if name in header]
            batches = csv.open_csv(item.path, read_options=csv.ReadOptions(block_size=1 << 20),
                                   convert_options=csv.ConvertOptions(
                                       include_columns=wanted, column_types={name: pa.string() for name in wanted}))
            total_rows = None
        else:
            import pyarrow.parquet as pq

            handle = pq.ParquetFile(item.path)
            header = handle.schema_arrow.names
            wanted = [name for name in names if name in header]
            batches = handle.iter_batches(batch_size=_READ_BLOCK_ROWS, columns=wanted)
            total_rows = max(1, handle.metadata.num_rows)
        if columns.text not in header:
            raise BadInputError(f"{item.path}: no column {columns.text!r} (columns: {', '.join(header) or 'none'})")
        number, read = 0, 0
        for batch in batches:
            data = batch.to_pydict()
            count = batch.num_rows
            block = {name: data[name] if name in data else [_ABSENT] * count for name in names}
            numbers = list(range(number + 1, number + count + 1))
            number += count
            read = int(item.size * number / total_rows) if total_rows else min(item.size, read + batch.nbytes)
            yield Raw(block, numbers), read
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as error:
        kind = "CSV" if item.format == "csv" else "Parquet"
        raise BadInputError(f"{item.path}: cannot be read as {kind}: {str(error).splitlines()[0]}") from None


# --- outputs -------------------------------------------------------------------------------------


def part_name(index: int) -> str:
    return PART_PATTERN.format(index=index)


def part_table(chunk: Chunk, embeddings: np.ndarray, dimension: int, *, id_name: str = "id"):
    """The Arrow table of one part: ``id``, ``embedding`` (fixed-size list of float32) and the kept columns."""
    pa = require_pyarrow()
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32).reshape(len(chunk.texts), dimension)
    values = pa.array(embeddings.reshape(-1), type=pa.float32())
    data: dict[str, Any] = {
        id_name: pa.array(chunk.ids, type=_id_type(pa, chunk.ids)),
        "embedding": pa.FixedSizeListArray.from_arrays(values, dimension),
    }
    for name, column in chunk.keep.items():
        data[name] = pa.array(column)
    return pa.table(data)


def _id_type(pa: Any, ids: list[Any]):
    return pa.string() if ids and isinstance(ids[0], str) else pa.int64()


def write_part(output: Path, index: int, table: Any,
               before_publish: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Write one part atomically (temporary name, fsync, rename); its record for the manifest.

    ``before_publish(record)`` runs once the part is complete under its temporary name and before the rename, so
    a run killed at any moment never leaves a part on disk that its manifest does not record (a rerun would then
    find a folder it cannot account for); a recorded part that never appeared is simply encoded again."""
    import pyarrow.parquet as pq

    from exporter.artifact.integrity import sha256_file, write_atomic

    path = output / part_name(index)
    record: dict[str, Any] = {}

    def write(temporary: Path) -> None:
        pq.write_table(table, temporary, compression="zstd")
        record.update(name=path.name, rows=table.num_rows, size=temporary.stat().st_size,
                      sha256=sha256_file(temporary))
        if before_publish is not None:
            before_publish(record)

    write_atomic(path, write)
    return record


def part_is_complete(output: Path, record: dict[str, Any]) -> bool:
    """Whether the part ``record`` describes is on disk as written (size and sha256)."""
    from exporter.artifact.integrity import sha256_file

    path = output / str(record.get("name", ""))
    try:
        return path.is_file() and path.stat().st_size == record.get("size") and sha256_file(path) == record.get(
            "sha256")
    except OSError:
        return False


def remove_leftovers(output: Path) -> list[str]:
    """Delete temporary part and manifest files a killed run left behind; their names."""
    removed = []
    for path in output.glob(".*.tmp"):
        if path.name.startswith((".part-", f".{MANIFEST_FILE}")):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path.name)
    return removed


def read_output_manifest(output: Path) -> dict[str, Any] | None:
    path = output / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInputError(f"{path}: not readable JSON ({error}); pass overwrite=True to start over") from None
    if not isinstance(data, dict) or data.get("format") != EMBED_FORMAT:
        raise BadInputError(f"{path}: not an embeddings manifest of this tool; pass overwrite=True to start over")
    return data


def write_output_manifest(output: Path, data: dict[str, Any]) -> None:
    from exporter.artifact.integrity import write_text_atomic

    write_text_atomic(output / MANIFEST_FILE, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
