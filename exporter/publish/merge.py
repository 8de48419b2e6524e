"""``merge_shards``: assemble the shards of one recipe's CI build into the folder one whole build gives.

Each shard is an artifact folder ``exporter run RECIPE --variant ... --output SHARD`` built: the shared files
(sentence-transformers configs, tokenizer, parity reference) and some variants. The merge checks before it writes
anything:

* every shard's files match its own manifest (sha256, size): otherwise ``IntegrityError`` (exit 1);
* every shard is of the same recipe (the recipe text's sha256), every shared file is byte-identical across the
  shards that have it, a variant in two shards has the same files, and each variant is on the file name the whole
  recipe assigns it (``Recipe.file_names``: never one assigned from a subset): otherwise ``BadInputError``
  (exit 2) naming the shard and the file.

The merged manifest is the first shard's with the variants of all of them in recipe order, the shared files of
all, and the validation results combined (``parity_report.json``: every shard's variant results, in recipe
order). The model card is not copied: ``exporter push`` writes it from the merged manifest, as for a whole build.
What differs from a whole build's manifest is what records time and host: ``created_at``, ``parity.validated_on``
and the measured parity numbers when a shard ran on another CPU class (docs/ci-zoo.md).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.artifact.integrity import mismatch, write_text_atomic
from exporter.artifact.manifest import FileEntry, Manifest, ValidationRecord, Variant, file_entry, read_manifest
from exporter.artifact.manifest import write_manifest as write_manifest_file
from exporter.constants import MANIFEST_NAME
from exporter.errors import BadInputError, IntegrityError
from exporter.progress import Progress, SilentProgress

REPORT_NAME = "parity_report.json"
CARD_NAME = "README.md"
NOT_COMPARED = frozenset({REPORT_NAME, CARD_NAME})  # per-shard records, rebuilt by the merge (the card by push)


@dataclass
class MergeResult:
    output: Path
    manifest: Manifest
    shards: list[Path]
    passed: bool | None  # every variant validated and passed; None when no shard was validated
    from_shard: dict[str, str] = field(default_factory=dict)  # variant -> the shard it was taken from

    def to_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "recipe": self.manifest.recipe_name, "passed": self.passed,
                "shards": [str(shard) for shard in self.shards],
                "variants": [{"name": v.name, "file_name": v.file_name, "shard": self.from_shard.get(v.name),
                              "passed": v.parity.passed if v.parity is not None else None}
                             for v in self.manifest.variants]}


def merge_shards(shards: list[str | os.PathLike], *, output: str | os.PathLike,
                 cache: str | os.PathLike | None = None, recipe: str | os.PathLike | None = None,
                 progress: Progress | None = None) -> MergeResult:
    """Merge ``shards`` (artifact folders of one recipe) into ``output``, atomically (built beside it and moved
    into place; an existing artifact folder there is replaced whole). See the module docstring for the checks.

    ``cache`` (with ``recipe``, the recipe file the keys are computed from): variants no shard holds are
    restored from this build cache (the jobs ``exporter plan --missing-from`` left out), and the shards' variants
    are stored there.

    Raises ``IntegrityError`` for a shard whose files do not match its manifest, ``BadInputError`` for shards
    that cannot be merged (named by shard and file), ``TargetBusyError`` while another run writes ``output``.
    """
    from exporter.export.staging import check_output, staging_for

    progress = progress or SilentProgress()
    folders = [Path(shard) for shard in shards]
    if not folders:
        raise BadInputError("shards: give at least one shard folder")
    manifests = [read_manifest(folder) for folder in folders]
    with progress.step(f"Checking {len(folders)} shard(s) against their manifests"):
        for folder, manifest in zip(folders, manifests, strict=True):
            check_shard_files(folder, manifest)
    recipe_variants = check_same_recipe(folders, manifests)
    shared = merged_shared_files(folders, manifests)
    variants, from_shard = merged_variants(folders, manifests, recipe_variants)
    store, keys = _cache_and_keys(cache, recipe, manifests[0])
    target = Path(output).resolve()
    check_output(target)
    with staging_for(target) as staging:
        cached_results = _restore_missing(store, keys, recipe_variants, variants, staging.folder, progress)
        with progress.step(f"Copying {len(shared)} shared file(s) and {len(variants)} variant(s)"):
            for path, (folder, _entry) in shared.items():
                _copy(folder / path, staging.folder / path)
            for variant in variants:
                if variant.name not in from_shard:
                    continue  # restored from the cache, already in place
                for entry in variant.files:
                    _copy(from_shard[variant.name] / entry.path, staging.folder / entry.path)
        manifest = manifests[0].model_copy(deep=True)
        manifest.variants = variants
        manifest.shared_files = sorted((entry for _folder, entry in shared.values()), key=lambda e: e.path)
        manifest.created_at = max((m.created_at for m in manifests if m.created_at), default=manifest.created_at)
        requirements: dict[str, str] = {}
        for shard_manifest in manifests:
            requirements.update(shard_manifest.runtime_requirements or {})
        manifest.runtime_requirements = dict(sorted(requirements.items())) if requirements else None
        passed = merge_reports(folders, manifests, staging.folder, manifest, target=target, extra=cached_results)
        write_manifest_file(staging.folder, manifest)
        if store is not None:
            reports = _report_results(staging.folder)
            for variant in manifest.variants:
                if variant.name in from_shard and (variant.parity is None or variant.parity.passed):
                    store.store(keys[variant.name], staging.folder, variant, reports.get(variant.name))
        staging.place()
    return MergeResult(output=target, manifest=manifest, shards=folders, passed=passed,
                       from_shard={name: str(folder) for name, folder in from_shard.items()})


def _cache_and_keys(cache, recipe, manifest: Manifest):
    if cache is None:
        return None, {}
    if recipe is None:
        raise BadInputError("cache= needs recipe=: the cache keys are computed from the recipe file")
    from exporter.export.cache import BuildCache
    from exporter.export.plan import variant_keys
    from exporter.recipe import load_recipe

    loaded = load_recipe(recipe)
    if manifest.recipe is None or loaded.text != manifest.recipe.text:
        raise BadInputError(f"recipe={recipe}: is not the recipe the shards were built from")
    return BuildCache(cache), variant_keys(loaded)


def _restore_missing(store, keys: dict[str, str], recipe_variants: list[tuple[str, str, str]],
                     variants: list[Variant], folder: Path, progress: Progress) -> list[dict[str, Any]]:
    """Restore the recipe's variants that no shard holds from the cache into ``folder`` (adding them to
    ``variants``, in recipe order); returns their kept parity results."""
    if store is None:
        return []
    from exporter.export.cache import host_isa_class

    have = {variant.name for variant in variants}
    order = [name for name, _file, _failed in recipe_variants]
    results = []
    for name in order:
        if name in have:
            continue
        hit = store.restore(keys[name], folder, isa_class=host_isa_class())
        for line in store.discarded:
            progress.log(f"{name}: {line}")
        store.discarded.clear()
        if hit is None:
            progress.log(f"{name}: in no shard and not in the cache: the merged folder lacks it")
            continue
        progress.log(f"{name}: restored from the cache ({keys[name][:12]})")
        variants.append(hit.record)
        if hit.result is not None:
            results.append(hit.result)
    variants.sort(key=lambda variant: order.index(variant.name))
    return results


def _report_results(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / REPORT_NAME
    if not path.is_file():
        return {}
    return {item["name"]: item for item in json.loads(path.read_text(encoding="utf-8")).get("variants") or []}


def check_shard_files(folder: Path, manifest: Manifest) -> None:
    """Every file ``manifest`` lists is in ``folder`` with its sha256 and size; ``IntegrityError`` otherwise."""
    for relative, entry in manifest.entries().items():
        problem = mismatch(folder / relative, entry)
        if problem is not None:
            raise IntegrityError(f"{folder / relative}: {problem} (shard {folder} does not match its "
                                 f"{MANIFEST_NAME})", path=str(folder / relative))


def check_same_recipe(folders: list[Path], manifests: list[Manifest]) -> list[tuple[str, str, str]]:
    """The recipe every shard was built from (the same text); returns its variants as (name, file name, file name
    when failed), in recipe order. ``BadInputError`` naming the shard's manifest otherwise."""
    from exporter.recipe import load_recipe

    first = manifests[0].recipe
    if first is None or not first.text:
        raise BadInputError(f"{folders[0] / MANIFEST_NAME}: records no recipe text: not a shard of `exporter run`")
    for folder, manifest in zip(folders[1:], manifests[1:], strict=True):
        recipe = manifest.recipe
        if recipe is None or recipe.text != first.text:
            name = recipe.name if recipe is not None else None
            raise BadInputError(f"{folder / MANIFEST_NAME}: recipe {name!r} ({recipe.file if recipe else None}) is "
                                f"not the recipe of {folders[0]} ({first.name!r}, {first.file}): shards of "
                                "different recipes")
    with tempfile.TemporaryDirectory(prefix="exporter-merge-") as scratch:
        path = Path(scratch) / (first.file or "recipe.yaml")
        path.write_text(first.text, encoding="utf-8")
        recipe = load_recipe(path).recipe
    names = recipe.file_names()
    return [(v.resolved_name, names[v.resolved_name].file_name, names[v.resolved_name].failed_file_name)
            for v in recipe.variants]


def merged_shared_files(folders: list[Path], manifests: list[Manifest]) -> dict[str, tuple[Path, FileEntry]]:
    """Every shared file (path -> the first shard that has it, its entry); ``BadInputError`` naming the file when
    two shards hold different bytes under one path."""
    shared: dict[str, tuple[Path, FileEntry]] = {}
    for folder, manifest in zip(folders, manifests, strict=True):
        for entry in manifest.shared_files:
            if entry.path in NOT_COMPARED:
                continue
            known = shared.get(entry.path)
            if known is None:
                shared[entry.path] = (folder, entry)
            elif known[1].sha256 != entry.sha256:
                raise BadInputError(f"{folder / entry.path}: differs from {known[0] / entry.path} (sha256 "
                                    f"{entry.sha256[:12]} vs {known[1].sha256[:12]}): shared files must be "
                                    "byte-identical across shards (built with other package versions?)")
    return shared


def merged_variants(folders: list[Path], manifests: list[Manifest], recipe_variants: list[tuple[str, str, str]]
                    ) -> tuple[list[Variant], dict[str, Path]]:
    """The shards' variants in recipe order and the shard each comes from. ``BadInputError`` for a variant the
    recipe lacks, one on a file name the whole recipe does not give it, or one in two shards with different
    files (naming the file)."""
    allowed = {name: (file_name, failed) for name, file_name, failed in recipe_variants}
    found: dict[str, tuple[Path, Variant]] = {}
    for folder, manifest in zip(folders, manifests, strict=True):
        for variant in manifest.variants:
            where = f"{folder / MANIFEST_NAME}: variant {variant.name!r}"
            if variant.name not in allowed:
                raise BadInputError(f"{where}: not a variant of recipe {manifest.recipe_name!r}")
            if variant.file_name not in allowed[variant.name]:
                raise BadInputError(f"{where}: file_name {variant.file_name!r} is not the one the whole recipe "
                                    f"assigns it ({allowed[variant.name][0]!r})")
            known = found.get(variant.name)
            if known is None:
                found[variant.name] = (folder, variant)
                continue
            theirs = {entry.path: entry.sha256 for entry in known[1].files}
            for entry in variant.files:
                if theirs.get(entry.path) != entry.sha256:
                    raise BadInputError(f"{folder / entry.path}: variant {variant.name!r} is also in {known[0]} "
                                        "with different contents")
            if set(theirs) != {entry.path for entry in variant.files}:
                raise BadInputError(f"{where}: is also in {known[0]} with other files")
    order = [name for name, _file, _failed in recipe_variants if name in found]
    return ([found[name][1].model_copy(deep=True) for name in order], {name: found[name][0] for name in order})


def merge_reports(folders: list[Path], manifests: list[Manifest], destination: Path, manifest: Manifest, *,
                  target: Path | None = None, extra: list[dict[str, Any]] | None = None) -> bool | None:
    """One ``parity_report.json`` from the shards' (each variant's result from the shard it was taken from, in
    the merged order) and the manifest's ``validation`` record; None (and neither written) when no shard was
    validated."""
    reports = []
    for folder, shard_manifest in zip(folders, manifests, strict=True):
        path = folder / REPORT_NAME
        if shard_manifest.validation is not None and path.is_file():
            try:
                reports.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as error:
                raise BadInputError(f"{path}: unreadable: {error}") from None
    if not reports:
        manifest.validation = None
        return None
    results: dict[str, dict[str, Any]] = {item["name"]: item for item in extra or []}
    for report in reports:
        for result in report.get("variants") or []:
            results.setdefault(result.get("name"), result)
    combined = dict(reports[0])
    combined["variants"] = [results[v.name] for v in manifest.variants if v.name in results]
    combined["passed"] = bool(combined["variants"]) and all(r.get("passed") for r in combined["variants"]) and all(
        v.parity is not None and v.parity.passed for v in manifest.variants)
    combined["created_at"] = max(str(report.get("created_at") or "") for report in reports)
    combined["seconds"] = round(sum(float(report.get("seconds") or 0) for report in reports), 3)
    combined["folder"] = str(target or destination)
    write_text_atomic(destination / REPORT_NAME, json.dumps(combined, indent=2, ensure_ascii=False) + "\n")
    manifest.set_shared_file(file_entry(destination, REPORT_NAME))
    first = next(m.validation for m in manifests if m.validation is not None)
    manifest.validation = ValidationRecord(passed=combined["passed"], reference=first.reference, report=REPORT_NAME)
    return bool(combined["passed"])


def _copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
