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

from pathlib import Path

from exporter.artifact.manifest import Manifest, read_manifest, write_manifest
from exporter.artifact.model_folder import find_source_model, source_license, source_weights
from exporter.runtime.packages import environment, minimum_requirement, runtime_requirements

__all__ = ["environment", "finalize_manifest", "minimum_requirement", "runtime_requirements"]


def finalize_manifest(folder: str | Path, source_dir: str | Path | None = None) -> Manifest:
    """Add ``runtime_requirements``, ``environment`` and what is computable about the source (see the
    module docstring) to ``folder``'s manifest.json, keeping values already there. Returns the manifest.

    ``source_dir`` is the source model's directory when the caller knows it (``build`` does: a relative
    ``source.location`` is relative to the recipe, not to the working directory); otherwise it is found
    from ``source.location``. Raises ``ManifestError`` when the folder has no valid manifest.
    """
    root = Path(folder)
    manifest = read_manifest(root)
    changed = False
    if manifest.runtime_requirements is None:
        manifest.runtime_requirements = runtime_requirements(manifest.backends)
        changed = True
    if manifest.environment is None:
        manifest.environment = environment()
        changed = True
    source = manifest.source
    if source.weights_sha256 is None or source.license is None:
        directory = Path(source_dir) if source_dir is not None else find_source_model(manifest).directory
        if directory is not None and directory.is_dir():
            if source.weights_sha256 is None:
                weights = source_weights(directory)
                if weights:
                    source.weights_file, source.weights_sha256 = weights
                    changed = True
            if source.license is None:
                license_ = source_license(directory)
                if license_:
                    source.license = license_
                    changed = True
    if changed:
        write_manifest(root, manifest)
    return manifest
