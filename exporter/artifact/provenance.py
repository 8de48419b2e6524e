"""The manifest's final form: what a deploy job needs beyond the build's own record.

``finalize_manifest(folder)`` adds, once (existing values are kept, so calling it again, e.g. from
``exporter push`` on a folder built elsewhere, changes nothing):

* ``runtime_requirements``: the minimum versions to load the artifacts, the installed versions of
  onnxruntime / openvino (for the backends present), sentence-transformers and optimum, as ``">=X.Y"``;
* ``environment``: the exact versions of the toolchain (python, torch, transformers, ...), for the card;
* ``source.weights_file`` / ``source.weights_sha256``: the sha256 of the source model's single weight
  file (model.safetensors, else pytorch_model.bin), when the source directory is available locally
  (``source.location`` is ``package:...``, a path, or ``hub:<id>`` already in the Hugging Face cache;
  sharded weights are not fingerprinted);
* ``source.license``: the license in the source model's README front matter, when readable locally.

It writes no file other than manifest.json, so "every other file is listed" stays true.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
from pathlib import Path
from typing import Any

from exporter.artifact.manifest import read_manifest, sha256_file, write_manifest

# What loading a variant needs: distribution -> the backend it is needed for (None: always).
REQUIREMENT_PACKAGES: dict[str, str | None] = {
    "onnxruntime": "onnx",
    "openvino": "openvino",
    "sentence-transformers": None,
    "optimum": None,
}
# The toolchain the card reports.
ENVIRONMENT_PACKAGES = ("torch", "transformers", "sentence-transformers", "optimum", "optimum-onnx",
                        "optimum-intel", "onnx", "onnxruntime", "openvino", "nncf", "huggingface-hub")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def minimum_requirement(version: str) -> str:
    """``"1.31.1"`` -> ``">=1.31"`` (major.minor of the version the artifacts were built with)."""
    parts = re.findall(r"\d+", version)[:2]
    return ">=" + ".".join(parts or [version])


def runtime_requirements(backends: set[str]) -> dict[str, str]:
    requirements = {}
    for distribution, backend in REQUIREMENT_PACKAGES.items():
        version = installed_version(distribution)
        if version and (backend is None or backend in backends):
            requirements[distribution] = minimum_requirement(version)
    return requirements


def environment() -> dict[str, Any]:
    packages = {name: installed_version(name) for name in ENVIRONMENT_PACKAGES}
    return {"python": platform.python_version(), "packages": {k: v for k, v in packages.items() if v}}


def local_source_dir(manifest: dict[str, Any]) -> Path | None:
    """The source model's directory when it is on this machine; never downloads. None otherwise."""
    source = manifest.get("source") or {}
    location = source.get("location")
    if not isinstance(location, str) or not location:
        return None
    try:
        if location.startswith("hub:"):
            from huggingface_hub import snapshot_download

            directory = Path(snapshot_download(location[4:], revision=source.get("revision"), local_files_only=True))
        elif location.startswith("package:"):
            from exporter.recipe import ModelSource
            from exporter.export.source import resolve_source

            directory = resolve_source(ModelSource(id=source.get("id"), path=location), Path.cwd()).directory
        else:
            directory = Path(location).expanduser()
            directory = directory if directory.is_absolute() else Path.cwd() / directory
    except Exception:  # noqa: BLE001 - not in the cache, package missing: the source is not available here
        return None
    return directory.resolve() if directory.is_dir() else None


def _transformer_dir(source_dir: Path) -> Path:
    try:
        modules = json.loads((source_dir / "modules.json").read_text(encoding="utf-8"))
        path = next((m.get("path", "") for m in modules if str(m.get("type", "")).endswith(".Transformer")), "")
    except (OSError, ValueError, AttributeError, TypeError):
        path = ""
    return source_dir / path


def source_weights(source_dir: Path) -> tuple[str, str] | None:
    """(file name relative to the source directory, sha256) of the single weight file, or None."""
    for directory in dict.fromkeys((_transformer_dir(source_dir), source_dir)):
        for name in WEIGHT_FILES:
            path = directory / name
            if path.is_file():
                return path.relative_to(source_dir).as_posix(), sha256_file(path)
    return None


def source_license(source_dir: Path) -> str | None:
    """The ``license`` of the source model's README front matter (a string), or None."""
    readme = source_dir / "README.md"
    if not readme.is_file():
        return None
    try:
        from huggingface_hub.repocard import metadata_load

        metadata = metadata_load(readme) or {}
    except Exception:  # noqa: BLE001 - malformed front matter: no license known
        return None
    value = metadata.get("license")
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    return value if isinstance(value, str) and value.strip() else None


def finalize_manifest(folder: str | Path, source_dir: str | Path | None = None) -> dict[str, Any]:
    """Add ``runtime_requirements``, ``environment`` and what is computable about the source (see the
    module docstring) to ``folder``'s manifest.json, keeping values already there. Returns the manifest.

    ``source_dir`` is the source model's directory when the caller knows it (``build`` does: a relative
    ``source.location`` is relative to the recipe, not to the working directory); otherwise it is found
    from ``source.location``. Raises ``BadInputError`` when the folder has no valid manifest.
    """
    root = Path(folder)
    manifest = read_manifest(root)
    changed = False
    backends = {str(v.get("backend")) for v in manifest["variants"]}
    if "runtime_requirements" not in manifest:
        manifest["runtime_requirements"] = runtime_requirements(backends)
        changed = True
    if "environment" not in manifest:
        manifest["environment"] = environment()
        changed = True
    source = manifest.get("source")
    if isinstance(source, dict) and ("weights_sha256" not in source or "license" not in source):
        source_dir = Path(source_dir) if source_dir is not None else local_source_dir(manifest)
        if source_dir is not None and source_dir.is_dir():
            if "weights_sha256" not in source:
                weights = source_weights(source_dir)
                if weights:
                    source["weights_file"], source["weights_sha256"] = weights
                    changed = True
            if "license" not in source:
                license_ = source_license(source_dir)
                if license_:
                    source["license"] = license_
                    changed = True
    if changed:
        write_manifest(root, manifest)
    return manifest
