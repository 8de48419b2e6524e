"""What an artifact may hold for this tool to fetch, load or validate it without the caller's opt-in.

sha256 checks prove that the files are the ones the manifest lists, not that they are harmless: whoever
wrote the files wrote the manifest too. Code runs from a sentence-transformers folder in three ways:

* Python files (``*.py``, ``*.pyc``) that a loader imports (sentence-transformers loads a module class from
  a ``.py`` file of a local folder even without ``trust_remote_code``);
* pickles (``*.pkl``, ``*.pickle``, torch's ``*.pt`` / ``*.pth`` / ``*.ckpt``, ``pytorch_model*.bin``,
  ``training_args.bin``) that torch unpickles; OpenVINO's ``openvino_model*.bin`` weights are raw tensors
  and fine;
* a ``modules.json`` naming a module class outside sentence-transformers' own (``sentence_transformers.*``),
  which sentence-transformers imports from wherever Python finds it, or a module of its own that imports
  further classes its configuration names (``Router``, ``Asym``, ``WordEmbeddings``).

The only source of trust is the caller (``trust_remote_code=True``, ``--trust-remote-code``); a manifest's
``source.trust_remote_code`` is reported, never obeyed. Without it, fetch refuses such an artifact after
reading manifest.json (and modules.json, verified against the manifest) and before anything else is
downloaded; ``exporter.load``, ``validate``, ``fetch --check`` and every sentence-transformers load of a
folder check it too. The deploy runtime (``Encoder``) never imports a module class nor unpickles anything.

This module is the one place the rule is written down; it imports nothing heavy.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from exporter.errors import UnsafeArtifactError

if TYPE_CHECKING:
    from exporter.artifact.manifest import Manifest

CODE_PATTERNS = ("*.py", "*.pyc")
PICKLE_PATTERNS = ("*.pkl", "*.pickle", "*.pt", "*.pth", "*.ckpt", "pytorch_model*.bin", "training_args.bin")
# File name pattern (matched case-insensitively against the last path part) -> what such a file is.
UNSAFE_FILES: dict[str, str] = {**{pattern: "Python code" for pattern in CODE_PATTERNS},
                                **{pattern: "a pickle" for pattern in PICKLE_PATTERNS}}
MODULES_FILE = "modules.json"
ALLOWED_MODULE_PREFIX = "sentence_transformers."
# sentence-transformers' own modules that import further classes named in their own configuration.
NESTED_CLASS_MODULES = frozenset({"Router", "Asym", "WordEmbeddings"})
OPT_IN = "pass trust_remote_code=True to allow its code"
# Folders of a deploy folder that hold client bookkeeping, not the artifact (huggingface_hub's local_dir).
_BOOKKEEPING = (".cache",)


def unsafe_kind(path: str) -> str | None:
    """What the file ``path`` is when it could run code ("Python code", "a pickle"), else None."""
    name = PurePosixPath(path).name.lower()
    return next((kind for pattern, kind in UNSAFE_FILES.items() if fnmatch.fnmatchcase(name, pattern)), None)


def refused_module(entry: Any) -> str | None:
    """Why a ``modules.json`` entry would import code (None when it is one of sentence-transformers' own)."""
    kind = str(entry.get("type", "")) if isinstance(entry, dict) else ""
    if not kind.startswith(ALLOWED_MODULE_PREFIX):
        return f"module {kind!r} is not one of sentence-transformers' own, so loading it imports code"
    if kind.rsplit(".", 1)[-1] in NESTED_CLASS_MODULES:
        return f"module {kind!r} imports the classes its own configuration names"
    return None


def check_paths(paths: Iterable[str], where: str, *, verb: str = "lists", opt_in: str = OPT_IN) -> None:
    """``UnsafeArtifactError`` for the first of ``paths`` that is code or a pickle."""
    for path in paths:
        kind = unsafe_kind(path)
        if kind is not None:
            raise UnsafeArtifactError(f"{where}: {verb} {path} ({kind}, which could run code on this host); "
                                      f"refusing the artifact ({opt_in})", path=path, reason=kind)


def check_manifest(manifest: Manifest, where: str, *, opt_in: str = OPT_IN) -> None:
    """Every file the manifest lists (shared and every variant's) must be neither code nor a pickle."""
    check_paths(manifest.entries(), where, opt_in=opt_in)


def check_modules(path: Path, where: str | None = None, *, opt_in: str = OPT_IN, subject: str = "the artifact") -> None:
    """``path`` (a ``modules.json``; absent is fine) must name sentence-transformers' own module classes only.
    ``subject`` is what the message refuses ("the artifact", "the source model").

    An unreadable or malformed file is left to the loaders, which fail on it without importing anything."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return
    for entry in data if isinstance(data, list) else []:
        reason = refused_module(entry)
        if reason is not None:
            raise UnsafeArtifactError(f"{where or path}: {reason}; refusing {subject} ({opt_in})",
                                      path=MODULES_FILE, reason=reason)


def check_folder(folder: str | Path, manifest: Manifest | None = None, *, opt_in: str = OPT_IN) -> None:
    """A local artifact folder: the files its manifest lists, the files it holds (client bookkeeping aside)
    and its ``modules.json``."""
    root = Path(folder)
    if manifest is not None:
        check_manifest(manifest, f"{root / 'manifest.json'}", opt_in=opt_in)
    present = (p.relative_to(root).as_posix() for p in root.rglob("*")
               if p.is_file() and not set(p.relative_to(root).parts) & set(_BOOKKEEPING))
    check_paths(present, str(root), verb="holds", opt_in=opt_in)
    check_modules(root / MODULES_FILE, opt_in=opt_in)


__all__ = ["ALLOWED_MODULE_PREFIX", "CODE_PATTERNS", "MODULES_FILE", "NESTED_CLASS_MODULES", "PICKLE_PATTERNS",
           "UNSAFE_FILES", "check_folder", "check_manifest", "check_modules", "check_paths", "refused_module",
           "unsafe_kind"]
