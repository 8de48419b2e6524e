"""Building beside the target and placing atomically.

Everything is built in a hidden folder beside the target (``.<name>.partial-<id>``) and renamed into
place only when the whole run has finished, so a crash or Ctrl-C leaves the previous folder as it was and
no half folder; a previous artifact folder is replaced by two renames. Folders created for the target
are removed again when nothing was placed.

One run per target: a run holds an exclusive lock on ``.<name>.lock`` beside the target (``flock``: the
kernel releases it when the process dies, ``kill -9`` included), which holds its pid for the message a
second run gets. Holding the lock, a run removes what killed runs left (their staging and retired
folders): nothing else can own them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from exporter.constants import MANIFEST_NAME
from exporter.errors import BadInputError
from exporter.progress import raise_if_signalled


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
        raise_if_signalled()  # a Ctrl-C swallowed inside a library's __del__ must not place the folder
        place(self.folder, self.target)
        self.placed = True


class TargetBusyError(BadInputError):
    """Another run is building the same target. ``pid``: that run's process id (None when unknown)."""

    def __init__(self, message: str, pid: int | None = None):
        super().__init__(message)
        self.pid = pid


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def target_lock(target: Path, *, wait: bool = False, poll_seconds: float = 0.5) -> Iterator[None]:
    """Hold the target's lock for the block; ``TargetBusyError`` naming the holder's pid unless ``wait``."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking, as before
        yield
        return
    path = _lock_path(target)
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(handle)
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if not wait:
                pid = _holder(path)
                who = f"pid {pid}" if pid else "another process"
                raise TargetBusyError(f"output={target}: another run ({who}) is building it; wait for it to finish "
                                      "or pass wait=True", pid) from None
            time.sleep(poll_seconds)
            continue
        # The previous holder may have removed the file after we opened it: lock the current one.
        try:
            same = os.fstat(handle).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(handle)
    try:
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        remove_litter(target)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(handle)


def _holder(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip() or 0) or None
    except (OSError, ValueError):
        return None


def remove_litter(target: Path) -> list[Path]:
    """Remove the staging and retired folders of ``target`` that killed runs left; call holding its lock."""
    removed = []
    for pattern in (f".{target.name}.partial-*", f".{target.name}.old-*"):
        for stale in target.parent.glob(pattern):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
                removed.append(stale)
    return removed


@contextlib.contextmanager
def staging_for(target: Path, *, wait: bool = False) -> Iterator[Staging]:
    """A fresh staging folder beside ``target``, the target's lock held; removed on exit, with any folders
    made for it when nothing was placed."""
    created = [parent for parent in reversed(target.parents) if not parent.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Staging(folder=target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}", target=target)
    try:
        with target_lock(target, wait=wait):
            try:
                staging.folder.mkdir()
                yield staging
            finally:
                if staging.folder.exists():
                    shutil.rmtree(staging.folder, ignore_errors=True)
    finally:
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
