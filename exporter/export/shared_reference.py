"""``write_shared_reference``: the validation reference of a recipe, computed once for every shard of its build.

Shards of one build may run on runners with different CPUs; torch's own embeddings differ in the last bits from
one CPU to another, so each shard computing its own reference would validate against a slightly different
yardstick, and the merged folder would hold one of them. ``exporter plan --reference-out DIR`` computes it once
(the torch model on the validation texts, tokenised with the tokenizer files the artifact will ship) and every
shard takes it with ``exporter run --reference DIR``: it validates against it and stores it as its own, byte for
byte what a whole build computing it on the same CPU stores.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from exporter.progress import Progress, SilentProgress
from exporter.recipe import LoadedRecipe, load_recipe


@dataclass
class SharedReference:
    folder: Path
    recipe: str
    texts: int
    seconds: float


def write_shared_reference(recipe: str | os.PathLike | LoadedRecipe, output: str | os.PathLike, *,
                           progress: Progress | None = None) -> SharedReference:
    """Compute ``recipe``'s validation reference into ``output`` (``parity/`` and ``reference.json``).

    Raises ``BadInputError`` for a bad recipe or model path, ``RuntimeUnavailableError`` without the build stack.
    """
    import time

    from exporter.artifact.manifest import Manifest, SourceRecord
    from exporter.artifact.model_folder import prompts as model_prompts
    from exporter.export.builder import write_shared_files
    from exporter.export.plan import fingerprint_source
    from exporter.export.source import load_sentence_transformer, resolve_source
    from exporter.runtime.packages import require_build_stack
    from exporter.texts import builtin_texts, read_extra_texts
    from exporter.validators.reference import compute_reference, store_shared_reference

    require_build_stack("computing a validation reference")
    started = time.perf_counter()
    progress = progress or SilentProgress()
    loaded = recipe if isinstance(recipe, LoadedRecipe) else load_recipe(recipe)
    source = resolve_source(loaded.recipe.model, loaded.base_dir, loaded.path)
    validation = loaded.recipe.validation
    texts = builtin_texts() + (read_extra_texts(loaded.base_dir / validation.texts)
                               if validation is not None and validation.texts else [])
    with progress.step(f"Loading {source.location}"):
        model = load_sentence_transformer(source.directory, loaded.recipe.model, for_export=True)
    with tempfile.TemporaryDirectory(prefix="exporter-reference-") as scratch:
        folder = Path(scratch)
        write_shared_files(model, folder, source.directory)  # the tokenizer files the artifact will ship
        manifest = Manifest(variants=[], source=SourceRecord(location=source.location,
                                                             max_seq_length=model.max_seq_length))
        declared = {name: text for name, text in model_prompts(folder)[0].items() if text}
        with progress.step(f"Encoding {len(texts)} texts with the torch model ({source.location})"):
            reference = compute_reference(source.directory, source.location, manifest, texts,
                                          trust_remote_code=loaded.recipe.model.trust_remote_code,
                                          tokenizer_folder=folder, prompts=declared)
    target = Path(output)
    target.mkdir(parents=True, exist_ok=True)
    fingerprint = hashlib.sha256(json.dumps(fingerprint_source(loaded), sort_keys=True).encode()).hexdigest()
    store_shared_reference(target, reference, recipe=loaded.recipe.name, source=fingerprint)
    return SharedReference(folder=target, recipe=loaded.recipe.name, texts=len(texts),
                           seconds=time.perf_counter() - started)
