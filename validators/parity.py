"""``validate``: prove that every variant in an artifact folder gives the torch model's embeddings.

Steps: read the manifest → settle each variant's thresholds → get the reference (the torch model when it
can be found, else the stored one) → plan the two encoding passes (batch size 1, mixed-length batches of 32)
→ run each variant the way its users will → measure and judge. A variant that cannot be loaded or run
fails its ``runs`` check (the artifact is broken); problems with the input itself (folder, manifest,
thresholds, reference) raise ``BadInputError`` before any variant is run.

The caller owns the gate and the trust: thresholds follow ``thresholds=`` (``ThresholdPolicy``: by default
the stricter of the precision defaults and the artifact's recorded thresholds; every loosened one is
reported), and only ``trust_remote_code=True`` lets a folder holding code or pickles, or naming custom
module classes, be loaded (``exporter.artifact.safety``); the manifest's own ``source.trust_remote_code``
is reported, never obeyed.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from exporter import __version__
from exporter.artifact import model_folder, safety
from exporter.artifact.manifest import Manifest, Variant, read_manifest, write_manifest
from exporter.errors import BadInputError, RuntimeUnavailableError, first_line
from exporter.progress import Progress, SilentProgress
from exporter.runtime.packages import BUILD_EXTRA, import_problem, missing_build_stack
from exporter.runtime.runners import RunSpec, VariantRunner, load_runner
from exporter.runtime.tokenization import TextTokenizer
from exporter.texts import ValidationText, builtin_texts, read_extra_texts, read_texts
from exporter.validators.batching import EncodingPass, mixed_length_pass, single_text_pass
from exporter.validators.checks import (
    PROMPT_CHECK_PREFIX,
    SENTENCE_TRANSFORMERS_CHECK,
    TOKENIZATION_CHECK,
    Check,
    build_checks,
    cosine_rows,
    failed_run_checks,
    measure,
    not_run_check,
)
from exporter.validators.policy import ARTIFACT, ThresholdPolicy
from exporter.validators.reference import (
    TEXTS_FILE,
    Reference,
    compute_reference,
    has_stored_reference,
    load_stored_reference,
    store_reference,
)
from exporter.validators.report import ParityReport, VariantResult
from exporter.validators.thresholds import Thresholds, effective_thresholds, loosened

ThresholdsFor = Callable[[Variant], Thresholds]


def validate(
    folder: Path,
    source_dir: Path | None = None,
    extra_texts_file: Path | None = None,
    thresholds_for: ThresholdsFor | None = None,
    write_reference: bool = True,
    record: bool = False,
    progress: Progress | None = None,
    *,
    thresholds: str | os.PathLike | ThresholdPolicy | None = None,
    trust_remote_code: bool = False,
    report_dir: str | os.PathLike | None = None,
    reference_dir: str | os.PathLike | None = None,
    variants: Collection[str] | None = None,
    kept: list[VariantResult] | None = None,
) -> ParityReport:
    """Validate every variant of the artifact folder against the torch model; returns the report.

    ``source_dir`` is the source model directory; without it the manifest's ``source.location`` is tried,
    and when that does not resolve here the stored reference (``parity/``) is used. ``extra_texts_file``
    adds texts (.txt / .jsonl) to the built-in set and needs the source model; without it, the extra texts
    of the stored reference (a recipe's ``validation.texts``, stored when ``exporter run`` validated) are
    used again, so a revalidation keeps the same text set. ``thresholds`` says which thresholds each
    variant is held to (``ThresholdPolicy.parse``): ``None`` / ``"strict"`` the stricter of its precision's
    defaults and its recorded ``validation_thresholds``, ``"defaults"``, ``"artifact"`` (the recorded ones, as
    ``exporter run`` validates), or the path of a thresholds file; ``thresholds_for(variant)``, when it returns
    thresholds, overrides that for one variant (explicit keys over the precision's defaults). Thresholds
    looser than the precision's defaults are reported (``variant.loosened``). ``trust_remote_code=True``
    allows a folder that holds code or pickles or names custom module classes (refused otherwise:
    ``UnsafeArtifactError``); the manifest's ``source.trust_remote_code`` is only reported.
    ``write_reference`` stores the texts and torch embeddings in ``parity/`` when the reference was computed
    from the source model.
    ``record`` writes the results into the folder (``record_results``: parity_report.json and the verdicts in
    manifest.json); a folder that cannot be written keeps its old record and ``report.record_error`` says why.
    Nothing in the folder changes until every variant has run, and each file is replaced atomically. A
    huggingface_hub cache snapshot (its files are links into the cache's blobs) is never written to:
    ``report_dir`` receives the results instead (parity_report.json, parity/, and manifest.json with the
    verdicts), else ``report.record_error`` says that nothing was written.

    ``reference_dir``: a shared reference (``exporter plan --reference-out``) to validate against instead of
    computing one, so shards on different CPUs use the same torch embeddings. ``variants``: run only these
    variants; ``kept``: results of other variants to report as they are (a build cache's, validated on a CPU of
    this host's class).

    Raises ``BadInputError`` for a missing folder, a missing or malformed manifest, bad thresholds or texts,
    and when neither the source model nor a stored reference is available; ``RuntimeUnavailableError`` on an
    install without the build stack (torch, sentence-transformers) when there is no stored reference, or
    ``source_dir`` or ``extra_texts_file`` asks for the torch model. Threshold failures are not
    exceptions: they are in the report (``report.passed``, ``report.failures()``).
    """
    started = time.perf_counter()
    progress = progress or SilentProgress()
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(
            f"{folder}: artifact folder not found" if not folder.exists() else f"{folder}: not a folder"
        )
    manifest = read_manifest(folder)
    if not manifest.variants:
        raise BadInputError(f"{folder}/manifest.json: no variants to validate")
    if not trust_remote_code:
        safety.check_folder(folder, manifest)
    if manifest.source.kind == "sparse":  # SPLADE: its own metrics and reference (exporter.validators.sparse)
        from exporter.validators.sparse import validate_sparse

        return validate_sparse(folder, manifest, source_dir=source_dir, extra_texts_file=extra_texts_file,
                               write_reference=write_reference, record=record, progress=progress,
                               trust_remote_code=trust_remote_code, variants=variants, kept=kept,
                               report_dir=Path(report_dir) if report_dir is not None else None)
    if manifest.source.kind == "cross":  # a reranker: judged by its rankings (exporter.validators.ranking)
        return _validate_ranking(folder, manifest, source_dir, extra_texts_file, write_reference, record, progress,
                                 trust_remote_code, report_dir, variants)
    policy = ThresholdPolicy.parse(thresholds)
    held_to = {v.name: _thresholds(v, thresholds_for, policy) for v in manifest.variants}
    torch_variants = [v.name for v in manifest.variants if v.backend == "torch"]
    if torch_variants:  # before the reference: a deploy host without torch says so, naming the extra
        from exporter.runtime.runners import require_torch

        require_torch(", ".join(torch_variants))
    if reference_dir is not None:
        from exporter.validators.reference import load_shared_reference

        reference = load_shared_reference(Path(reference_dir), recipe=manifest.recipe_name)
    else:
        reference = _reference(folder, manifest, source_dir, extra_texts_file, write_reference, progress,
                               trust_remote_code)

    max_length, passes = _passes(folder, manifest, reference)
    texts = [t.text for t in reference.texts]

    results = []
    kept_by_name = {result.name: result for result in kept or []}
    for variant in manifest.variants:
        if variant.name in kept_by_name:
            results.append(kept_by_name[variant.name])
            continue
        if variants is not None and variant.name not in variants:
            continue
        with progress.step(f"Validating {variant.name} ({variant.backend}, graph: {variant.graph})"):
            results.append(validate_variant(folder, manifest, variant, reference, passes, held_to[variant.name],
                                            trust_remote_code))
    report = ParityReport(
        folder=str(folder),
        recipe=manifest.recipe.name if manifest.recipe is not None else None,
        reference=reference.kind,
        source=reference.location,
        max_seq_length=max_length,
        texts={
            "total": len(texts),
            "builtin": sum(t.origin == "builtin" for t in reference.texts),
            "extra": sum(t.origin != "builtin" for t in reference.texts),
            "batch_1": len(passes[0].indices),
        },
        batch_sizes=[p.batch_size for p in passes],
        variants=results,
        seconds=time.perf_counter() - started,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        tool_version=__version__,
        thresholds=policy.to_dict(),
        trust_remote_code={"recorded": manifest.source.trust_remote_code, "used": trust_remote_code},
    )
    from exporter.validators.record import write_results

    def store(destination: Path) -> None:
        if reference.kind == "source":  # a stored reference is already in the folder
            store_reference(destination, reference)

    write_results(folder, manifest, report, store, write_reference=write_reference, record=record,
                  report_dir=Path(report_dir) if report_dir is not None else None)
    return report


def _validate_ranking(folder: Path, manifest: Manifest, source_dir, pairs_file, write_reference: bool, record: bool,
                      progress: Progress, trust_remote_code: bool, report_dir, variants) -> ParityReport:
    """``validate`` of a reranker artifact (``extra_texts_file`` is a query-groups JSONL file there): the reference
    and the results go to ``report_dir`` when given, else into the folder."""
    from exporter.validators.ranking import validate_ranking
    from exporter.validators.record import record_results

    destination = Path(report_dir) if report_dir is not None else folder
    if destination != folder:
        destination.mkdir(parents=True, exist_ok=True)
        write_manifest(destination, manifest)
    report = validate_ranking(folder, manifest, source_dir=source_dir, pairs_file=pairs_file, progress=progress,
                              trust_remote_code=trust_remote_code, write_reference=write_reference,
                              variants=variants, reference_dir=destination)
    if record:
        try:
            record_results(destination, report)
        except OSError as error:
            report.record_error = f"{type(error).__name__}: {error}"
    return report


def validate_variant(
    folder: Path,
    manifest: Manifest,
    variant: Variant,
    reference: Reference,
    passes: list[EncodingPass],
    thresholds: Thresholds,
    trust_remote_code: bool = False,
    *,
    sentence_transformers: bool = True,
) -> VariantResult:
    """Run one variant through every pass and judge it. Any failure to load or run it is a failed check
    (a broken artifact), except a missing runtime package (``ExternalError``, exit 3). ``sentence_transformers``:
    also check a ``graph: transformer`` variant loaded through sentence-transformers."""
    started = time.perf_counter()
    texts = [t.text for t in reference.texts]
    inference_precision = None
    reference = truncated_reference(folder, variant, reference)
    try:
        spec = RunSpec.for_variant(folder, manifest, variant, trust_remote_code=trust_remote_code)
        runner = load_runner(spec)
        inference_precision = getattr(runner, "settings", {}).get("compiled_inference_precision")
        metrics = {
            p.batch_size: measure(encode_pass(runner, texts, p), reference.embeddings[p.indices]) for p in passes
        }
        checks = build_checks(metrics, thresholds)
        checks.append(tokenization_check(folder, manifest, reference))
        checks += [prompt_check(runner, name, reference, passes[-1], thresholds) for name in reference.prompted]
    except (BadInputError, RuntimeUnavailableError):
        raise  # the input or this host is the problem, not the artifact
    except ImportError as error:  # the runtime itself is missing: not the artifact's fault
        raise RuntimeUnavailableError(f"variant {variant.name}: the {variant.backend} runtime cannot start: "
                                      f"{error}") from None
    except Exception as error:  # noqa: BLE001 - a variant that cannot load or run is a broken artifact
        checks = failed_run_checks(_one_line(error), thresholds)
        checks.append(not_run_check(TOKENIZATION_CHECK, "the variant did not run"))
        checks += [Check(PROMPT_CHECK_PREFIX + name, measured=None, required=thresholds.cosine_min, comparison=">=",
                         passed=False, detail="not measured: the variant did not run") for name in reference.prompted]
    if variant.graph == "transformer" and sentence_transformers and variant.backend != "torch":
        checks.append(sentence_transformers_check(folder, manifest, variant, reference, passes[-1], thresholds,
                                                  trust_remote_code))
    return VariantResult(
        name=variant.name,
        backend=variant.backend,
        precision=variant.precision,
        graph=variant.graph,
        file_name=variant.file_name,
        thresholds=thresholds.model_dump(),
        checks=checks,
        seconds=time.perf_counter() - started,
        loosened=loosened(thresholds, variant.precision),
        inference_precision=inference_precision,
    )


def truncated_reference(folder: Path, variant: Variant, reference: Reference) -> Reference:
    """The reference a variant with ``truncate_dim`` is held to: what ``SentenceTransformer(..., truncate_dim=N)
    .encode(..., normalize_embeddings=<the model normalises>)`` gives, i.e. the full-width reference's first N
    dimensions, L2-normalised again when the model has a Normalize module (``exporter.runtime.pooling.
    truncate``). The stored reference stays full width: one yardstick for every truncation."""
    if variant.truncate_dim is None:
        return reference
    from dataclasses import replace

    from exporter.runtime.pooling import has_normalize, truncate

    if variant.truncate_dim > reference.embeddings.shape[1]:
        raise BadInputError(f"manifest.json: variant {variant.name!r}: truncate_dim {variant.truncate_dim} is larger "
                            f"than the reference's dimension {reference.embeddings.shape[1]}")
    normalizes = has_normalize(folder)
    prompted = {name: truncate(embeddings, variant.truncate_dim, normalizes)  # the prompt checks' yardstick too
                for name, embeddings in reference.prompted.items()}
    return replace(reference, embeddings=truncate(reference.embeddings, variant.truncate_dim, normalizes),
                   prompted=prompted)


def tokenization_check(folder: Path, manifest: Manifest, reference: Reference) -> Check:
    """The Encoder's token ids (``tokenizers`` reading the folder's tokenizer.json, as every client does) must
    be the torch reference's for every text; a failure names the first text that differs. Not run against a
    stored reference (it keeps no token ids)."""
    if reference.token_ids is None:
        return not_run_check(TOKENIZATION_CHECK, "the stored reference keeps no token ids")
    texts = [t.text for t in reference.texts]
    tokenizer = TextTokenizer(folder, model_folder.max_seq_length(folder, manifest))
    got = [list(encoding.ids) for encoding in tokenizer.encode(texts)]
    differing = [index for index, (ids, want) in enumerate(zip(got, reference.token_ids, strict=True)) if ids != want]
    agree = 1.0 - len(differing) / max(1, len(texts))
    if not differing:
        return Check(TOKENIZATION_CHECK, measured=agree, required=1.0, comparison=">=", passed=True,
                     detail=f"the Encoder's token ids equal the reference's on all {len(texts)} texts")
    first = differing[0]
    return Check(TOKENIZATION_CHECK, measured=None, required=1.0, comparison=">=", passed=False,
                 detail=f"differs on {len(differing)} of {len(texts)} texts, first text {first} {texts[first]!r}: "
                        f"reference ids {reference.token_ids[first][:12]}, Encoder ids {got[first][:12]}")


def prompt_check(runner: VariantRunner, name: str, reference: Reference, encoding: EncodingPass,
                 thresholds: Thresholds) -> Check:
    """The texts encoded with the model's prompt ``name`` on the mixed-length pass, against the torch model's
    embeddings with the same prompt: ``cosine_min`` at the variant's threshold."""
    prompt = reference.prompts[name]
    texts = [t.text for t in reference.texts]
    rows: dict[int, np.ndarray] = {}
    for batch in encoding.batches:
        output = np.asarray(runner.encode([texts[i] for i in batch], batch_size=max(1, len(batch)), prompt=prompt))
        rows.update(zip(batch, output, strict=True))
    embeddings = np.stack([rows[i] for i in encoding.indices])
    cosines = cosine_rows(embeddings, reference.prompted[name][encoding.indices])
    measured = float(cosines.min()) if np.isfinite(cosines).all() else None
    required = thresholds.cosine_min
    passed = measured is not None and (required is None or measured >= required)
    return Check(PROMPT_CHECK_PREFIX + name, measured=measured, required=required, comparison=">=", passed=passed,
                 by_batch={str(encoding.batch_size): measured}, detail=f"cosine_min with the prompt {prompt!r}")


def sentence_transformers_check(folder: Path, manifest: Manifest, variant: Variant, reference: Reference,
                                encoding: EncodingPass, thresholds: Thresholds, trust_remote_code: bool) -> Check:
    """The card's sentence-transformers snippet, checked separately: the variant loaded with
    ``SentenceTransformer(folder, backend=..., model_kwargs={"file_name": ..., "ov_config": <numerics>})`` must
    meet ``cosine_min`` on the mixed-length pass. Not run (and not gating) where the installed
    sentence-transformers cannot load that backend."""
    spec = RunSpec.for_variant(folder, manifest, variant, trust_remote_code=trust_remote_code).via(
        "sentence-transformers")
    try:
        import sentence_transformers  # noqa: F401 - presence only
    except ImportError:
        return not_run_check(SENTENCE_TRANSFORMERS_CHECK, "sentence-transformers is not installed here")
    if variant.backend == "onnx" and (problem := import_problem("optimum-onnx")) is not None:
        return not_run_check(SENTENCE_TRANSFORMERS_CHECK, f"sentence-transformers' ONNX backend needs optimum-onnx "
                             f"({problem}), which has no release for transformers 5: compat/check_st57.sh checks it "
                             "in a sentence-transformers 5.7 environment")
    try:
        runner = load_runner(spec)
    except Exception as error:  # noqa: BLE001 - e.g. no optimum backend for it in this environment
        return not_run_check(SENTENCE_TRANSFORMERS_CHECK, f"sentence-transformers cannot load it here: "
                                                          f"{_one_line(error)}")
    texts = [t.text for t in reference.texts]
    try:
        embeddings = encode_pass(runner, texts, encoding)
    except Exception as error:  # noqa: BLE001 - it loaded but failed to run: the snippet is broken
        return Check(SENTENCE_TRANSFORMERS_CHECK, measured=None, required=thresholds.cosine_min, comparison=">=",
                     passed=False, detail=f"failed to encode: {_one_line(error)}")
    cosines = cosine_rows(embeddings, reference.embeddings[encoding.indices])
    measured = float(cosines.min()) if np.isfinite(cosines).all() else None
    required = thresholds.cosine_min
    passed = measured is not None and (required is None or measured >= required)
    return Check(SENTENCE_TRANSFORMERS_CHECK, measured=measured, required=required, comparison=">=", passed=passed,
                 by_batch={str(encoding.batch_size): measured}, detail="cosine_min through sentence-transformers")


def encode_pass(runner: VariantRunner, texts: list[str], encoding: EncodingPass) -> np.ndarray:
    """Encode the pass's batches; rows come back in ascending text order (``encoding.indices``)."""
    rows: dict[int, np.ndarray] = {}
    for batch in encoding.batches:
        output = np.asarray(runner.encode([texts[i] for i in batch], batch_size=max(1, len(batch))))
        if output.ndim != 2 or output.shape[0] != len(batch):
            raise ValueError(f"expected [{len(batch)}, dim] embeddings for a batch of {len(batch)}, "
                             f"got {list(output.shape)}")
        rows.update(zip(batch, output, strict=True))
    return np.stack([rows[i] for i in encoding.indices])


def check_stored(folder: Path, variant: Variant | str, *,
                 thresholds: str | os.PathLike | ThresholdPolicy | None = None,
                 trust_remote_code: bool = False) -> VariantResult:
    """Run one variant (a manifest entry or a name) on the stored validation texts on this host and compare
    with the stored reference embeddings (``parity/``), against the thresholds ``thresholds`` selects (as
    ``validate``'s: by default the stricter of the precision defaults and the variant's recorded ones).

    Needs no torch weights: this is how a deploy host checks that its numerics still meet the thresholds.
    Raises ``BadInputError`` when there is no stored reference, ``UnsafeArtifactError`` for a folder holding
    code or pickles (or naming custom module classes) without ``trust_remote_code=True``.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    entry = manifest.variant(variant) if isinstance(variant, str) else variant
    if not trust_remote_code:
        safety.check_folder(folder, manifest)
    if manifest.source.kind == "sparse":
        from exporter.validators.sparse import check_stored_sparse

        return check_stored_sparse(folder, manifest, entry, trust_remote_code=trust_remote_code)
    if manifest.source.kind == "cross":  # a reranker: its stored groups and torch scores
        from exporter.validators.ranking import load_stored_ranking_reference, validate_ranking_variant

        return validate_ranking_variant(folder, manifest, entry, load_stored_ranking_reference(folder, manifest),
                                        sentence_transformers=False)
    held_to = _thresholds(entry, None, ThresholdPolicy.parse(thresholds))
    reference = _stored_reference(folder, manifest)
    max_length, passes = _passes(folder, manifest, reference)
    return validate_variant(folder, manifest, entry, reference, passes, held_to, trust_remote_code)


def reverify(folder: Path, manifest: Manifest | None = None, *, progress: Progress | None = None
             ) -> list[VariantResult]:
    """What ``push`` runs before publishing: every variant through the deploy runtime (``Encoder``, which never
    imports a module class nor unpickles anything; torch variants through sentence-transformers, which needs
    torch: else ``RuntimeUnavailableError`` naming the ``torch`` extra) on the stored texts in mixed-length
    batches of 32, against
    the stored reference embeddings and the variant's recorded thresholds (the recipe author's gate). A few
    seconds per variant; a recorded verdict is never taken on trust.

    Raises ``BadInputError`` when there is no stored reference or a recorded threshold is malformed.
    """
    folder = Path(folder)
    progress = progress or SilentProgress()
    manifest = manifest or read_manifest(folder)
    if manifest.source.kind == "sparse":
        from exporter.validators.sparse import check_stored_sparse

        results = []
        for variant in manifest.variants:
            with progress.step(f"Re-running {variant.name} on the stored sparse reference"):
                results.append(check_stored_sparse(folder, manifest, variant, passes_last_only=True))
        return results
    if manifest.source.kind == "cross":  # a reranker: its stored groups and torch scores
        from exporter.validators.ranking import load_stored_ranking_reference, validate_ranking_variant

        stored = load_stored_ranking_reference(folder, manifest)
        return [validate_ranking_variant(folder, manifest, variant, stored, sentence_transformers=False)
                for variant in manifest.variants]
    policy = ThresholdPolicy(ARTIFACT)
    held_to = {v.name: _thresholds(v, None, policy) for v in manifest.variants}
    reference = _stored_reference(folder, manifest)
    _, passes = _passes(folder, manifest, reference)
    results = []
    for variant in manifest.variants:
        with progress.step(f"Re-running {variant.name} on the stored reference"):
            results.append(validate_variant(folder, manifest, variant, reference, passes[-1:], held_to[variant.name],
                                            sentence_transformers=False))
    return results


def _stored_reference(folder: Path, manifest: Manifest) -> Reference:
    if not has_stored_reference(folder):
        raise BadInputError(f"{folder}: no stored reference ({TEXTS_FILE} and parity/reference.npy) to check against")
    return load_stored_reference(folder, manifest)


def _passes(folder: Path, manifest: Manifest, reference: Reference) -> tuple[int, list[EncodingPass]]:
    """The sequence length and the two runs (batch 1, mixed-length batches) over the texts."""
    tokenizer = TextTokenizer(folder, model_folder.max_seq_length(folder, manifest))
    max_length = tokenizer.max_length
    lengths = tokenizer.token_counts([t.text for t in reference.texts])
    return max_length, [single_text_pass(lengths, max_length), mixed_length_pass(lengths)]


def _thresholds(variant: Variant, thresholds_for: ThresholdsFor | None, policy: ThresholdPolicy) -> Thresholds:
    """The thresholds ``variant`` is held to: ``thresholds_for``'s when it gives some, else the policy's. The
    recorded ones are checked either way (malformed or below the sanity floor: ``BadInputError``)."""
    name, precision = variant.name, variant.precision
    raw = variant.validation_thresholds
    try:
        recorded = Thresholds.model_validate(raw) if raw is not None else None
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        raise BadInputError(f"manifest.json: variant {name!r}: validation_thresholds.{where}: {message}") from None
    explicit = thresholds_for(variant) if thresholds_for is not None else None
    try:
        if explicit is not None:
            return effective_thresholds(str(precision), None, explicit)
        return policy.resolve(str(precision), recorded)
    except ValueError as error:
        raise BadInputError(f"manifest.json: variant {name!r}: {error}") from None


def _reference(
    folder: Path,
    manifest: Manifest,
    source_dir: Path | None,
    extra_texts_file: Path | None,
    write_reference: bool,
    progress: Progress,
    trust_remote_code: bool = False,
) -> Reference:
    """The torch model's embeddings: computed from the source when found (and stored), else the stored ones; the
    stored ones on a host without the build stack too (``RuntimeUnavailableError`` there when there are none, or
    when ``source_dir`` or extra texts ask for the torch model).

    Extra texts: ``extra_texts_file``, else those of an earlier run (kept in ``parity/texts.jsonl``).
    """
    extra = read_extra_texts(extra_texts_file) if extra_texts_file is not None else None
    found = model_folder.find_source_model(manifest, source_dir)
    missing = missing_build_stack()  # a deploy install: the torch model cannot run here
    if missing and (source_dir is not None or extra is not None or not has_stored_reference(folder)):
        stored = "" if has_stored_reference(folder) else f" and there is no stored reference ({TEXTS_FILE})"
        raise RuntimeUnavailableError(f"{folder}: the torch model cannot run here ({', '.join(missing)} not "
                                      f"installed){stored}: {BUILD_EXTRA}", fix=BUILD_EXTRA)
    if found.directory is None or missing:
        location = manifest.source.location
        if not has_stored_reference(folder):
            raise BadInputError(
                f"{folder}: the source model ({location or 'not recorded'}) cannot be found here and there is no "
                f"stored reference ({TEXTS_FILE}); pass source_dir"
            )
        if extra is not None:
            raise BadInputError(
                f"{extra_texts_file}: extra texts need the source model (the stored reference covers only its own "
                f"texts); pass source_dir"
            )
        return load_stored_reference(folder, manifest)
    directory, location = found.directory, found.location
    texts = builtin_texts() + (extra if extra is not None else _stored_extra_texts(folder))
    with progress.step(f"Encoding {len(texts)} texts with the torch model ({location})"):
        reference = compute_reference(directory, location, manifest, texts, trust_remote_code=trust_remote_code,
                                      tokenizer_folder=folder, prompts=_declared_prompts(folder))
    return reference  # stored (when asked) only once every variant has run: see validate()


def _declared_prompts(folder: Path) -> dict[str, str]:
    """The model's prompts that change the text (sentence-transformers 6 declares empty ones by default)."""
    return {name: text for name, text in model_folder.prompts(folder)[0].items() if text}


def _stored_extra_texts(folder: Path) -> list[ValidationText]:
    """Extra texts of an earlier run (kept in parity/texts.jsonl), so revalidating keeps the same text set."""
    path = folder / TEXTS_FILE
    if not path.is_file():
        return []
    return [t for t in read_texts(path) if t.origin != "builtin"]


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {first_line(error)}"
