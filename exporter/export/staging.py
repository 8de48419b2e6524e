"""Building beside the target and placing atomically.

Everything is built in a hidden folder beside the target (``.<name>.partial-<id>``) and renamed into
place only when the whole run has finished, so a crash or Ctrl-C leaves the previous folder as it was and
no half folder; a previous artifact folder is replaced by two renames. Folders created for the target
are removed again when nothing was placed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from exporter.constants import MANIFEST_NAME
from exporter.errors import BadInputError


def check_output(target: Path) -> None:
    """The target may be absent, an empty folder or a previous artifact folder; nothing else is replaced."""
    if target.is_file() or (target.exists() and not target.is_dir()):
        raise BadInputError(f"output={target}: is a file, expected a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST_NAME).is_file():
        raise BadInputError(
            f"output={target}: exists and is not an artifact folder (no {MANIFEST_NAME}); refusing to replace it"
        )
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BadInputError(f"output={target}: {parent} is a file, expected a folder")
            if not os.access(parent, os.W_OK):
                raise BadInputError(f"output={target}: {parent} is not writable")
            break


@dataclass
class Staging:
    """The hidden folder a build writes into; ``place()`` moves it onto the target."""

    folder: Path
    target: Path
    placed: bool = False

    def place(self) -> None:
        place(self.folder, self.target)
        self.placed = True


@contextlib.contextmanager
def staging_for(target: Path) -> Iterator[Staging]:
    """A fresh staging folder beside ``target``; removed on exit, with any folders made for it when nothing
    was placed."""
    created = [parent for parent in reversed(target.parents) if not parent.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Staging(folder=target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}", target=target)
    try:
        staging.folder.mkdir()
        yield staging
    finally:
        if staging.folder.exists():
            shutil.rmtree(staging.folder, ignore_errors=True)
        if not staging.placed:  # leave no empty folders behind either
            for parent in reversed(created):
                if parent.exists() and not any(parent.iterdir()):
                    parent.rmdir()


def place(staging: Path, target: Path) -> None:
    """Move the finished folder into place, replacing a previous artifact folder in two renames."""
    if not target.exists():
        os.replace(staging, target)
        return
    retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(target, retired)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(retired, target)
        raise
    shutil.rmtree(retired, ignore_errors=True)
