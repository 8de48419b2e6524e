"""A build cache: built variants kept under their plan key (``exporter.export.plan``), restored instead of rebuilt.

The cache is a plain folder, so a CI system persists it with its own cache action or an object-store sync, and
runners can share it on a volume. One entry per variant key::

    CACHE/<key[:2]>/<key>/entry.json     the variant's manifest record (files with sha256), its parity result
    CACHE/<key[:2]>/<key>/files/...      the variant's files, at their paths in the artifact folder

An entry appears atomically: it is written under ``CACHE/.tmp-<id>/`` and renamed into place, and a writer that
finds the entry already there (another runner stored the same key meanwhile) drops its own copy. Readers never
see half an entry, so concurrent writers need no lock. A restored entry is verified file by file against the
sha256 its record lists; a corrupted one (a flipped byte, a truncated file) is discarded (renamed away, then
removed) and the variant is rebuilt. Nothing is evicted automatically: an entry is about the size of the
variant's files (MiniLM: 23-90 MB); remove entries by age (``find CACHE -mindepth 2 -maxdepth 2 -mtime +30``)
or let the CI cache's own size limit evict them.

Parity results travel with an entry, but a restored variant keeps them only when the CPU that validated it is of
this host's ISA class (``HostProfile.isa_class``: AMX, AVX-512 VNNI with or without BF16, AVX-VNNI, AVX2: what
changes numerics); otherwise the variant is validated again.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.artifact.integrity import mismatch, write_text_atomic
from exporter.artifact.manifest import Variant
from exporter.errors import BadInputError

ENTRY_FILE = "entry.json"
FILES_DIR = "files"
ENTRY_SCHEMA = 1


@dataclass
class CachedVariant:
    """A variant restored from the cache: its manifest record (``parity`` cleared when it must be validated
    again) and its parity result as ``parity_report.json`` holds it (None: validate it again)."""

    key: str
    record: Variant
    result: dict[str, Any] | None

    @property
    def validated(self) -> bool:
        return self.result is not None and self.record.parity is not None


class BuildCache:
    """The cache folder at ``root`` (created on the first store)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise BadInputError(f"cache={self.root}: is a file, expected a folder")
        self.discarded: list[str] = []  # what restore found corrupted and removed, one line each

    def entry_dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def has(self, key: str) -> bool:
        return (self.entry_dir(key) / ENTRY_FILE).is_file()

    def restore(self, key: str, folder: Path, *, isa_class: str | None) -> CachedVariant | None:
        """Copy the entry's files into ``folder`` and return its record; None when there is no entry or it is
        corrupted (then it is discarded and ``discarded`` says why). ``isa_class``: this host's, which the
        validating CPU's must equal for the parity result to be kept."""
        entry = self.entry_dir(key)
        if not (entry / ENTRY_FILE).is_file():
            return None
        try:
            data = json.loads((entry / ENTRY_FILE).read_text(encoding="utf-8"))
            record = Variant.model_validate(data["variant"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            self._discard(key, f"unreadable {ENTRY_FILE}: {error}")
            return None
        for file in record.files:
            problem = mismatch(entry / FILES_DIR / file.path, file)
            if problem is not None:
                self._discard(key, f"{file.path}: {problem}")
                return None
        for file in record.files:
            destination = folder / file.path
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry / FILES_DIR / file.path, destination)
        result = data.get("result")
        if record.parity is None or result is None or _isa_class(record.parity.validated_on) != isa_class:
            record.parity, result = None, None
        return CachedVariant(key=key, record=record, result=result)

    def store(self, key: str, folder: Path, record: Variant, result: dict[str, Any] | None) -> bool:
        """Keep ``record``'s files (read from ``folder``) under ``key``; False when the entry was there already
        (another writer was first). Atomic: the entry is renamed into place whole."""
        if self.has(key):
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = self.root / f".tmp-{uuid.uuid4().hex}"
        try:
            for file in record.files:
                destination = scratch / FILES_DIR / file.path
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / file.path, destination)
            write_text_atomic(scratch / ENTRY_FILE, json.dumps(
                {"schema": ENTRY_SCHEMA, "key": key, "variant": record.to_json_dict(), "result": result},
                indent=2) + "\n")
            final = self.entry_dir(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(scratch, final)
            except OSError:  # another writer placed the same key first (rename onto a non-empty folder fails)
                return False
            return True
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _discard(self, key: str, why: str) -> None:
        entry = self.entry_dir(key)
        trash = self.root / f".trash-{uuid.uuid4().hex}"
        try:
            os.rename(entry, trash)  # out of sight of other readers at once, then removed
        except OSError:
            trash = entry
        shutil.rmtree(trash, ignore_errors=True)
        self.discarded.append(f"cache entry {key[:12]} discarded ({why}); rebuilding")


def _isa_class(cpu_line: str | None) -> str | None:
    if not cpu_line:
        return None
    from exporter.runtime.host import HostProfile

    return HostProfile.from_cpu_line(cpu_line).isa_class


def host_isa_class() -> str | None:
    from exporter.runtime.host import HostProfile

    return HostProfile.detect(probe=False).isa_class
