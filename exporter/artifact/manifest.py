"""manifest.json: what an artifact folder holds, with a sha256 and size for every file.

Deploy jobs read it to choose a variant and verify what they downloaded, so every file in the folder
except manifest.json itself is listed: ``shared_files`` (what every variant needs: the
sentence-transformers configs, tokenizer, module files) or one variant's ``files``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Any

from exporter.errors import BadInputError

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(root: Path, relative: str) -> dict[str, Any]:
    path = root / relative
    return {"path": relative, "sha256": sha256_file(path), "size": path.stat().st_size}


def list_files(root: Path) -> list[str]:
    """Every file under ``root`` except the manifest, as sorted POSIX relative paths."""
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and path.relative_to(root).as_posix() != MANIFEST_NAME
    )


def describe_files(root: Path, variant_files: dict[str, list[str]]) -> tuple[list[dict], dict[str, list[dict]]]:
    """Split the folder's files into shared files and each variant's own files, with checksums."""
    owned = {relative for files in variant_files.values() for relative in files}
    shared = [file_entry(root, relative) for relative in list_files(root) if relative not in owned]
    per_variant = {name: [file_entry(root, relative) for relative in sorted(files)] for name, files in variant_files.items()}
    return shared, per_variant


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    path = root / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def read_manifest(root: Path) -> dict[str, Any]:
    """Read and sanity-check a manifest. Raises ``BadInputError`` for a missing, malformed or unsafe one."""
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise BadInputError(f"{root}: not an artifact folder (no {MANIFEST_NAME})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInputError(f"{path}: malformed manifest: {error}") from None
    check_manifest(manifest, str(path))
    return manifest


def check_manifest(manifest: Any, where: str) -> None:
    """Structure and path safety: every listed path must stay inside the artifact folder."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("variants"), list):
        raise BadInputError(f"{where}: malformed manifest: expected an object with a 'variants' list")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise BadInputError(
            f"{where}: schema_version {manifest.get('schema_version')!r} is not supported (expected {SCHEMA_VERSION})"
        )
    entries = list(manifest.get("shared_files", []))
    for variant in manifest["variants"]:
        if not isinstance(variant, dict) or "name" not in variant or not isinstance(variant.get("files"), list):
            raise BadInputError(f"{where}: malformed manifest: every variant needs a name and a files list")
        entries.extend(variant["files"])
        _check_relative(variant.get("file_name", ""), where)
    for entry in entries:
        if not isinstance(entry, dict) or not {"path", "sha256", "size"} <= entry.keys():
            raise BadInputError(f"{where}: malformed manifest: every file needs path, sha256 and size")
        _check_relative(entry["path"], where)


def _check_relative(relative: Any, where: str) -> None:
    text = str(relative)
    pure = PurePosixPath(text)
    if (
        not isinstance(relative, str)
        or not text
        or pure.is_absolute()
        or "\\" in text
        or ".." in pure.parts
        or (len(text) > 1 and text[1] == ":")
    ):
        raise BadInputError(f"{where}: unsafe path {text!r} in manifest (absolute or outside the folder)")


def variant_entry(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    for variant in manifest["variants"]:
        if variant["name"] == name:
            return variant
    known = ", ".join(v["name"] for v in manifest["variants"])
    raise BadInputError(f"no variant {name!r} in the manifest (variants: {known})")
