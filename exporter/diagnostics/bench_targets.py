"""What ``exporter bench`` measures: the torch reference, the artifact's variants and ``--compare`` peers.

Each model is a ``Target``: how bench names and reports it (kind, precision, size on disk) around the
``RunSpec`` that ``exporter.runtime.runners`` loads it from, so bench runs every model exactly as validate
and fetch do (OpenVINO at the inference precision the manifest records, f32 otherwise).

* ``torch``: the source model (``manifest.source.location``, or ``source_dir``) in sentence-transformers, fp32
  on CPU. Without it (or without torch and sentence-transformers: a deploy install) the run goes on without
  ratios, and the result says why.
* ``variant``: a manifest variant, through the deploy runtime (``Encoder``: the folder's tokenizer, ONNX
  Runtime / OpenVINO and numpy pooling) — what deploy hosts run.
* ``compare``: any other sentence-transformers-loadable ONNX / OpenVINO file (``FOLDER:FILE``), run like a
  ``graph: transformer`` fp32 variant.

``with_loaders`` adds, for ``--via sentence-transformers``, the same variants and peers loaded through
``SentenceTransformer(folder, backend=...)`` (``graph: transformer`` only), named ``<name> (sentence-transformers)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.artifact.model_folder import check_sentence_transformers_dir, find_source_model, torch_weights_size
from exporter.constants import OPENVINO_NUMERICS
from exporter.errors import BadInputError
from exporter.runtime.packages import BUILD_EXTRA, missing_build_stack
from exporter.runtime.runners import RunSpec

if TYPE_CHECKING:
    from exporter.artifact.manifest import Manifest, Variant

KINDS = ("torch", "variant", "compare")
COMPARE_BACKENDS = {".onnx": "onnx", ".xml": "openvino"}


@dataclass(frozen=True)
class Target:
    """One model to measure: what to load (``spec``) and how the result describes it."""

    kind: str  # torch | variant | compare
    spec: RunSpec
    precision: str | None
    size_bytes: int | None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def backend(self) -> str:
        return self.spec.backend

    @property
    def graph(self) -> str:
        return self.spec.graph

    @property
    def folder(self) -> str:
        return self.spec.folder

    @property
    def file_name(self) -> str | None:
        return self.spec.file_name

    @property
    def loader(self) -> str:
        """What loads it: ``encoder`` or ``sentence-transformers`` (always, for the torch model)."""
        return "sentence-transformers" if self.kind == "torch" else self.spec.loader

    def renamed(self, name: str) -> Target:
        return dataclasses.replace(self, spec=dataclasses.replace(self.spec, name=name))

    def describe(self) -> str:
        """The model as an error message names it."""
        if self.kind == "torch":
            return f"torch reference {self.folder}"
        where = f" ({self.file_name})" if self.file_name else ""
        return f"{'variant' if self.kind == 'variant' else 'compare'} {self.name}{where}"


def variant_target(folder: Path, manifest: Manifest, variant: Variant, *, trust_remote_code: bool = False) -> Target:
    """A manifest variant of the artifact in ``folder``; ``BadInputError`` when its file is missing.
    ``trust_remote_code`` is the caller's (the manifest's record of it is never obeyed)."""
    if not (folder / variant.file_name).is_file():
        raise BadInputError(f"{folder}: variant {variant.name}'s file {variant.file_name} is missing")
    spec = RunSpec.for_variant(folder, manifest, variant, trust_remote_code=trust_remote_code)
    return Target(kind="variant", spec=spec, precision=variant.precision, size_bytes=variant.size)


def variant_targets(folder: Path, manifest: Manifest, names: Sequence[str] | None = None, *,
                    trust_remote_code: bool = False) -> list[Target]:
    """The variants called ``names`` (each once, in the order given), or every variant of the manifest."""
    chosen = [manifest.variant(name) for name in dict.fromkeys(names)] if names else list(manifest.variants)
    return [variant_target(folder, manifest, variant, trust_remote_code=trust_remote_code) for variant in chosen]


def torch_target(directory: Path, manifest: Manifest, *, trust_remote_code: bool = False) -> Target:
    """The source model in ``directory``, with the artifact's max_seq_length."""
    spec = RunSpec.for_torch(directory, manifest, trust_remote_code=trust_remote_code)
    return Target(kind="torch", spec=spec, precision="fp32", size_bytes=torch_weights_size(directory))


def find_reference(manifest: Manifest, source_dir: str | Path | None = None, *,
                   trust_remote_code: bool = False) -> tuple[Target | None, str, str | None]:
    """(the torch target or None, where the source model was looked for, why it is missing or None).

    ``source_dir`` must be a model folder (``BadInputError`` otherwise); without it the manifest's
    ``source.location`` is looked up on this machine, never downloaded (``exporter.artifact.model_folder``).
    """
    source = find_source_model(manifest, source_dir)
    if source.directory is None:
        return None, source.location, f"no torch reference ({source.reason}); pass --source DIR for ratios"
    missing = missing_build_stack()
    if missing:  # a deploy install: the variants are measured, without the torch column
        return None, source.location, (f"no torch reference: {', '.join(missing)} not installed here, so no ratio "
                                       f"to torch and no cosines ({BUILD_EXTRA} for them)")
    return torch_target(source.directory, manifest, trust_remote_code=trust_remote_code), source.location, None


def parse_compare(spec: str, *, trust_remote_code: bool = False) -> Target:
    """``FOLDER:FILE`` → a compare target; the backend follows the file extension. ``BadInputError`` naming
    ``compare`` when the spec is malformed or the file is not there."""
    folder_text, sep, file_name = spec.rpartition(":")
    if not sep or not folder_text or not file_name:
        raise BadInputError(f"compare {spec!r}: expected FOLDER:FILE, e.g. my-model:onnx/model_qint8.onnx")
    backend = COMPARE_BACKENDS.get(Path(file_name).suffix.lower())
    if backend is None:
        raise BadInputError(f"compare {spec!r}: cannot tell the backend of {file_name!r} "
                            f"(expected a .onnx or an OpenVINO .xml file)")
    folder = Path(folder_text).expanduser()
    if not folder.is_dir():
        raise BadInputError(f"compare {spec!r}: folder {folder} does not exist")
    if Path(file_name).is_absolute() or ".." in Path(file_name).parts:
        raise BadInputError(f"compare {spec!r}: FILE must be relative to FOLDER, inside it")
    model_file = folder / file_name
    if not model_file.is_file():
        raise BadInputError(f"compare {spec!r}: no file {file_name} in {folder}")
    check_sentence_transformers_dir(folder, f"compare {spec!r}")
    sidecars = [model_file.with_suffix(".bin")] if backend == "openvino" else [
        Path(f"{model_file}_data"), model_file.with_suffix(".onnx_data")]
    size = model_file.stat().st_size + sum(p.stat().st_size for p in set(sidecars) if p.is_file())
    folder = folder.resolve()
    relative = Path(file_name).as_posix()
    run_spec = RunSpec(name=f"{folder.name}/{relative}", backend=backend, graph="transformer", folder=str(folder),
                       file_name=relative, trust_remote_code=trust_remote_code,
                       runtime_options=dict(OPENVINO_NUMERICS) if backend == "openvino" else {})
    return Target(kind="compare", spec=run_spec, precision=None, size_bytes=size)


def with_loaders(targets: Sequence[Target], via: Sequence[str]) -> tuple[list[Target], list[str]]:
    """Each of ``targets`` (variants and compare peers) once per loader of ``via``, the loaders of one model
    side by side; a row through sentence-transformers is named ``<name> (sentence-transformers)``.
    ``graph: sentence`` models have no sentence-transformers row; the notes (one at most) say so. torch variants
    load through sentence-transformers only: one row, under their own name."""
    rows: list[Target] = []
    skipped: list[str] = []
    for target in targets:
        if target.spec.is_torch_variant:  # sentence-transformers is its only loader: one row
            rows.append(target)
            continue
        for loader in via:
            if loader == "encoder":
                rows.append(target)
            elif target.graph != "transformer":
                skipped.append(target.name)
            else:
                spec = dataclasses.replace(target.spec.via(loader), name=f"{target.name} ({loader})")
                rows.append(dataclasses.replace(target, spec=spec))
    notes = []
    if skipped:
        notes.append(f"not measured through sentence-transformers: {', '.join(skipped)} (graph: sentence; "
                     "sentence-transformers loads graph: transformer variants only)")
    return rows, notes


def unique_names(targets: Sequence[Target]) -> list[Target]:
    """``targets`` (variants and compare peers) with a repeated name, or ``torch`` (the reference's name,
    whether or not it is found), suffixed ``#2``, ``#3``... in order."""
    seen: dict[str, int] = {"torch": 1}
    renamed = []
    for target in targets:
        if target.name in seen:
            seen[target.name] += 1
            target = target.renamed(f"{target.name}#{seen[target.name]}")
        else:
            seen[target.name] = 1
        renamed.append(target)
    return renamed


__all__ = ["COMPARE_BACKENDS", "KINDS", "Target", "find_reference", "parse_compare", "torch_target",
           "unique_names", "variant_target", "variant_targets", "with_loaders"]
