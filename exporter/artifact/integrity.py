"""Integrity of an artifact folder: checksums, the listing of its files, and writing files atomically.
(The manifest entry of a file, ``file_entry``, is the manifest's: ``exporter.artifact.manifest``.)

Every file of a folder except manifest.json is listed in the manifest with its sha256 and size; fetch and
push accept a file only when both match. Files are written to a temporary name beside their target and
renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.constants import MANIFEST_NAME

if TYPE_CHECKING:
    from exporter.artifact.manifest import FileEntry


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def list_files(root: Path) -> list[str]:
    """Every file under ``root`` except the manifest, as sorted POSIX relative paths."""
    return sorted(
        path.relative_to(root).as_posix()
        for path in Path(root).rglob("*")
        if path.is_file() and path.relative_to(root).as_posix() != MANIFEST_NAME
    )


def mismatch(path: Path, entry: FileEntry) -> str | None:
    """Why ``path`` is not the file ``entry`` describes (missing, size, then sha256), or None when it is."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != entry.size:
        return f"size {size} bytes, {MANIFEST_NAME} says {entry.size}"
    digest = sha256_file(path)
    if digest != entry.sha256:
        return f"sha256 {digest[:16]}..., {MANIFEST_NAME} says {entry.sha256[:16]}..."
    return None


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a temporary file beside ``path`` (``.<name>.*.tmp``), flush it to disk, then rename it
    into place: ``path`` is either the old file or the whole new one, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it into place."""
    write_atomic(path, lambda temporary: temporary.write_bytes(data))


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def is_cache_snapshot(folder: Path) -> bool:
    """A huggingface_hub cache snapshot (``.../snapshots/<commit>``, files linked into ``../../blobs``)."""
    folder = Path(folder)
    return folder.parent.name == "snapshots" and (folder.parent.parent / "blobs").is_dir()


def outside_link(root: Path, relative: str) -> Path | None:
    """Where ``root``/``relative`` resolves when that is outside ``root`` — other than a cache snapshot's links
    into its own blobs — else None."""
    root = Path(root)
    path = root / relative
    resolved = path.resolve()
    allowed = [root.resolve()]
    if is_cache_snapshot(root):
        allowed.append((root.parent.parent / "blobs").resolve())
    if any(resolved == base or base in resolved.parents for base in allowed):
        return None
    return resolved
