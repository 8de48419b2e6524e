"""``plan``: the build jobs of recipes, each with a content-addressed key, for a CI system to fan out.

A zoo is rebuilt by the CI system its team already runs (a GitHub Actions matrix, a Kubernetes Indexed Job, a
Slurm array): the tool brings no scheduler, it says what to build. One job per recipe × variant (or one per
recipe); each variant has a key, the sha256 of everything that changes its bytes or its record:

* the source model: for a local source the sha256 of every file; for a Hub source the revision's commit and each
  file's LFS sha256 (or git blob id), read from the Hub API without downloading anything;
* the recipe's whole resolved ``model:`` section (new fields flow into the key by themselves), the variant's
  resolved settings, the file name the whole recipe assigns it, its Matryoshka truncation and thresholds;
* host-dependent resolutions, made here and not in the shard (``isa: auto`` becomes this host's instruction set,
  which the job carries to the shard as ``--isa``);
* the calibration corpus (its sha256) and the recipe's validation texts;
* the tool's version and the versions of the packages that change the bytes (``BYTE_PACKAGES``).

The same key names a variant's entry in a build cache (``exporter.export.cache``): ``--missing-from CACHE``
lists only the jobs a cache cannot restore.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter import __version__
from exporter.errors import BadInputError
from exporter.recipe import LoadedRecipe, Variant, load_recipe

KEY_SCHEMA = 1  # bump when what goes into a key changes: every old key then misses
# The packages whose versions change the files a build writes (exporters, converters, quantisers, tokenizers).
BYTE_PACKAGES = ("torch", "transformers", "sentence-transformers", "optimum", "optimum-intel", "onnx",
                 "onnxruntime", "openvino", "nncf", "numpy", "tokenizers", "safetensors")
RECIPE_SUFFIXES = (".yaml", ".yml")
PER_CHOICES = ("variant", "recipe")


@dataclass
class Job:
    """One build job: a recipe and the variants one shard builds, each variant's key, and the job's key."""

    recipe: str  # the recipe's path as the plan was given it (relative paths stay relative)
    name: str  # the recipe's name
    variants: list[str]
    keys: dict[str, str]  # variant name -> its key
    isa: str | None = None  # what ``isa: auto`` resolved to on the planning host (None: no variant asks)

    @property
    def key(self) -> str:
        """The job's key: its variant's key, or (several variants) the sha256 of theirs in order."""
        if len(self.variants) == 1:
            return self.keys[self.variants[0]]
        return hashlib.sha256(" ".join(self.keys[name] for name in self.variants).encode()).hexdigest()

    @property
    def id(self) -> str:
        """A name for the job's shard folder and CI job: ``<recipe>`` or ``<recipe>--<variant>``."""
        return self.name if len(self.variants) != 1 else f"{self.name}--{self.variants[0]}"

    def run_args(self) -> list[str]:
        """The ``exporter run`` arguments after the recipe that build this job's shard."""
        args = [part for name in self.variants for part in ("--variant", name)]
        return args + (["--isa", self.isa] if self.isa else [])

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "recipe": self.recipe, "name": self.name, "variants": list(self.variants),
                "key": self.key, "keys": dict(self.keys), "isa": self.isa, "args": " ".join(self.run_args())}

    def line(self) -> str:
        """The one-line form, tab-separated: id, recipe, ``exporter run`` arguments, key."""
        return "\t".join((self.id, self.recipe, " ".join(self.run_args()), self.key))


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)

    def to_list(self) -> list[dict[str, Any]]:
        return [job.to_dict() for job in self.jobs]

    def missing_from(self, cache: str | os.PathLike) -> Plan:
        """The jobs with at least one variant whose key the cache at ``cache`` has no entry for."""
        from exporter.export.cache import BuildCache

        store = BuildCache(cache)
        return Plan([job for job in self.jobs if any(not store.has(key) for key in job.keys.values())])


def recipe_paths(paths: list[str | os.PathLike]) -> list[Path]:
    """Each path, a folder standing for its ``*.yaml`` / ``*.yml`` recipes (sorted); ``BadInputError`` for a path
    that does not exist or a folder without recipes."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            recipes = sorted(p for p in path.iterdir() if p.suffix in RECIPE_SUFFIXES and p.is_file())
            if not recipes:
                raise BadInputError(f"{path}: no recipes (*.yaml, *.yml) in this folder")
            found += recipes
        elif path.is_file():
            found.append(path)
        else:
            raise BadInputError(f"{path}: no such recipe file or folder")
    return found


def plan_builds(paths: list[str | os.PathLike], *, per: str = "variant", endpoint: str | None = None,
                token: str | None = None) -> Plan:
    """The build jobs of the recipes at ``paths`` (files, or folders of recipes): one per recipe × variant, or
    with ``per="recipe"`` one per recipe. ``endpoint`` / ``token``: the Hub that Hub sources are looked up on
    (their files' checksums only; nothing is downloaded).

    Raises ``BadInputError`` for a path, recipe or local model that cannot be read, ``HubError`` when a Hub
    source cannot be looked up.
    """
    if per not in PER_CHOICES:
        raise BadInputError(f"per={per!r}: expected one of {', '.join(PER_CHOICES)}")
    jobs: list[Job] = []
    for path in recipe_paths(paths):
        loaded = load_recipe(path)
        keys = variant_keys(loaded, endpoint=endpoint, token=token)
        isa = planned_isa(loaded)
        names = [variant.resolved_name for variant in loaded.recipe.variants]
        groups = [[name] for name in names] if per == "variant" else [names]
        jobs += [Job(recipe=str(path), name=loaded.recipe.name, variants=group,
                     keys={name: keys[name] for name in group},
                     isa=isa if any(_wants_auto_isa(loaded.recipe.variant(name)) for name in group) else None)
                 for group in groups]
    return Plan(jobs)


def _wants_auto_isa(variant: Variant) -> bool:
    quantization = variant.resolved_quantization
    return quantization is not None and quantization.isa == "auto"


def planned_isa(loaded: LoadedRecipe, isa: str | None = None) -> str | None:
    """What ``isa: auto`` resolves to for this recipe: ``isa`` when given (a shard carries the plan's), else this
    host's; None when no variant asks for it."""
    if not any(_wants_auto_isa(variant) for variant in loaded.recipe.variants):
        return None
    if isa is not None:
        return isa
    from exporter.runtime.host import detect_isa

    return detect_isa()


def variant_keys(loaded: LoadedRecipe, *, isa: str | None = None, endpoint: str | None = None,
                 token: str | None = None, source_fingerprint: dict[str, Any] | None = None) -> dict[str, str]:
    """Every variant's key (see the module docstring), by resolved name. ``isa``: what ``isa: auto`` resolves to
    (default: this host's); ``source_fingerprint``: the source model's, when the caller has it already."""
    recipe = loaded.recipe
    common = {
        "key_schema": KEY_SCHEMA,
        "tool": __version__,
        "packages": byte_package_versions(),
        "model": recipe.model.model_dump(mode="json"),
        "source": source_fingerprint if source_fingerprint is not None else fingerprint_source(
            loaded, endpoint=endpoint, token=token),
        "validation": _validation_inputs(loaded),
    }
    resolved_isa = planned_isa(loaded, isa)
    file_names = recipe.file_names()
    keys = {}
    for variant in recipe.variants:
        name = variant.resolved_name
        keys[name] = _digest({**common, "variant": _variant_inputs(loaded, variant, resolved_isa),
                              "file_name": file_names[name].file_name,
                              "failed_file_name": file_names[name].failed_file_name})
    return keys


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def byte_package_versions() -> dict[str, str | None]:
    from exporter.runtime.packages import distribution_version

    return {name: distribution_version(name) for name in BYTE_PACKAGES}


def _variant_inputs(loaded: LoadedRecipe, variant: Variant, isa: str | None) -> dict[str, Any]:
    """The variant's settings with every default filled in and host-dependent choices resolved."""
    from exporter.export.calibration import load_corpus
    from exporter.validators.thresholds import effective_thresholds

    settings = variant.model_dump(mode="json", exclude={"quantization", "validation"})
    settings["name"] = variant.resolved_name
    quantization = variant.resolved_quantization
    if quantization is not None:
        resolved = quantization.model_dump(mode="json")
        if resolved.get("isa") == "auto":
            resolved["isa"] = isa
        calibration = quantization.calibration
        if calibration is not None:
            texts = load_corpus(calibration.corpus, loaded.base_dir, calibration.column,
                                f"{loaded.path}: {variant.resolved_name}: quantization.calibration.corpus")
            resolved["calibration_sha256"] = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
        settings["quantization"] = resolved
    settings["truncate_dim"] = loaded.recipe.truncate_dim(variant, None)
    recipe_level = loaded.recipe.validation.thresholds if loaded.recipe.validation else None
    variant_level = variant.validation.thresholds if variant.validation else None
    settings["thresholds"] = effective_thresholds(variant.precision, recipe_level, variant_level).model_dump(
        mode="json")  # as exporter.export.builder.variant_thresholds
    return settings


def _validation_inputs(loaded: LoadedRecipe) -> dict[str, Any]:
    """What the parity results recorded with a variant depend on besides the variant: the extra texts."""
    validation = loaded.recipe.validation
    if validation is None or not validation.texts:
        return {}
    path = loaded.base_dir / validation.texts
    from exporter.artifact.integrity import sha256_file

    return {"texts_sha256": sha256_file(path) if path.is_file() else None}


def fingerprint_source(loaded: LoadedRecipe, *, endpoint: str | None = None, token: str | None = None
                       ) -> dict[str, Any]:
    """What identifies the source model's files: ``{"files": {path: sha256}}`` for a local folder (or package
    resource); ``{"repo", "commit", "files": {path: lfs sha256 or blob id}}`` for a Hub model, from the Hub API
    (``model_info(files_metadata=True)``: no file is downloaded)."""
    model = loaded.recipe.model
    if model.path:
        from exporter.export.source import resolve_source

        directory = resolve_source(model, loaded.base_dir, loaded.path).directory
        return {"files": local_file_hashes(directory)}
    return hub_fingerprint(model.id, model.revision, endpoint=endpoint, token=token)


def local_file_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory`` (hidden folders such as ``.git`` and ``__pycache__`` left out)."""
    from exporter.artifact.integrity import sha256_file

    hashes = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if not path.is_file() or any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        hashes[relative.as_posix()] = sha256_file(path)
    return hashes


def hub_fingerprint(repo_id: str, revision: str | None, *, endpoint: str | None = None,
                    token: str | None = None) -> dict[str, Any]:
    """A Hub model's commit and its files' checksums, from ``model_info`` (no download)."""
    from exporter.hub import HubClient
    from exporter.progress import SilentProgress

    client = HubClient(repo_id, endpoint=endpoint, token=token, progress=SilentProgress())
    with client.session():
        info = client.call(f"looking up {repo_id} on {client.endpoint}",
                           lambda: client.api.model_info(repo_id, revision=revision, files_metadata=True),
                           revision=revision)
    files = {}
    for sibling in info.siblings or []:
        lfs = getattr(sibling, "lfs", None)
        files[sibling.rfilename] = (lfs.sha256 if lfs is not None else None) or sibling.blob_id
    return {"repo": repo_id, "commit": info.sha, "files": dict(sorted(files.items()))}
