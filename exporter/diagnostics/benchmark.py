"""``bench``: throughput, latency and memory of an artifact folder's variants against the torch model.

The steps, one module each: ``bench_targets`` decides what is measured (the torch reference, the
variants, ``compare`` peers), ``bench_classes`` the texts of each length class (short, mixed, long) and
the tokens each model runs on them, ``bench_measure`` runs the interleaved rounds in this process,
``bench_precision`` reads back the precision each model runs at,
``bench_memory`` measures each model's resident memory in a child process, ``bench_results`` holds the
numbers and writes bench.json and the manifest's summaries. Every model is loaded through
``exporter.runtime.runners``, the one runner validate and fetch use too, so bench measures the variants
with the settings they were validated with: through the deploy runtime (``via="encoder"``, the default),
and/or as sentence-transformers loads them (``via="sentence-transformers"``), each loader a row of its own
in the same interleaved run. The manifest's summaries come from the encoder rows only.

The module is not called ``bench``: a submodule named like the function would replace it on the package
once imported.
"""

from __future__ import annotations

import datetime as _dt
import gc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from exporter.artifact.manifest import read_manifest
from exporter.diagnostics.bench_classes import (
    LENGTH_CLASSES,
    SUMMARY_CLASS,
    LengthClass,
    check_classes,
    class_texts,
    token_counts,
)
from exporter.diagnostics.bench_measure import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LATENCY_TEXTS,
    DEFAULT_MODE,
    DEFAULT_NUM_TEXTS,
    DEFAULT_ROUNDS,
    DEFAULT_VIA,
    DEFAULT_WARMUP_ROUNDS,
    LOADERS,
    MODES,
    NOISY_SPREAD,
    SilentBenchProgress,
    Throughput,
    available_cores,
    configure_threads,
    cosines,
    host_info,
    latency_rounds,
    latency_texts,
    load_average,
    load_texts,
    percentile_ms,
    throughput_rounds,
)
from exporter.diagnostics.bench_memory import measure_all
from exporter.diagnostics.bench_precision import precision_in_force
from exporter.diagnostics.bench_results import BENCH_NAME, BenchResult, ClassResult, ModelResult, save_result
from exporter.diagnostics.bench_targets import (
    Target,
    find_reference,
    parse_compare,
    unique_names,
    variant_targets,
    with_loaders,
)
from exporter.errors import BadInputError, ExporterError
from exporter.runtime.packages import versions
from exporter.runtime.runners import load_runner

MINIMUMS = {"batch_size": 1, "num_texts": 1, "rounds": 1, "warmup_rounds": 0, "latency_count": 0, "threads": 1}
# The packages bench.json's ``versions`` lists, under the keys it has always used.
VERSION_KEYS = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino",
                "sentence_transformers": "sentence-transformers", "transformers": "transformers",
                "optimum": "optimum", "optimum_intel": "optimum-intel", "exporter": "embedding-exporter"}


def bench(
    folder: str | Path,
    *,
    variants: Sequence[str] | None = None,
    compare: Sequence[str] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_texts: int = DEFAULT_NUM_TEXTS,
    threads: int | None = None,
    rounds: int = DEFAULT_ROUNDS,
    warmup_rounds: int = DEFAULT_WARMUP_ROUNDS,
    latency_count: int = DEFAULT_LATENCY_TEXTS,
    texts_file: str | Path | None = None,
    source_dir: str | Path | None = None,
    measure_memory: bool = True,
    save: bool = True,
    progress=None,
    via: list[str] | tuple[str, ...] = DEFAULT_VIA,
    mode: str = DEFAULT_MODE,
    trust_remote_code: bool = False,
    report_dir: str | Path | None = None,
    length_classes: Sequence[str] | None = None,
    plot: str | Path | None = None,
) -> BenchResult:
    """Benchmark an artifact folder's variants (all, or ``variants``) against the torch reference and the
    ``compare`` models (``FOLDER:FILE``). Saves bench.json and updates manifest.json when ``save``, once every
    model has been measured, each file atomically; ``report_dir`` saves them (a copy of manifest.json) there
    instead, and a huggingface_hub cache snapshot is never written to (a note says so).

    ``via`` names the loaders each variant and peer is measured through, in the same interleaved run:
    ``encoder`` (the deploy runtime, what deploy hosts run) and/or ``sentence-transformers`` (rows named
    ``<name> (sentence-transformers)``; ``graph: sentence`` variants are skipped, with a note). The manifest's
    summaries come from the encoder rows; a run without the encoder leaves them as they were. ``mode``
    (``latency`` | ``throughput``) is the encoder's mode.

    ``length_classes`` (default: all of ``short``, ``mixed``, ``long``; rules in ``bench_classes``) are measured
    in the same interleaved rounds: ``num_texts`` texts per round for short and mixed, a quarter of that for
    long, ``latency_count`` batch-1 encodes per class. Each model's result has per class: texts/s, tokens/s
    (texts/s × the mean tokens it ran per text), the ratio to torch on that class, p50/p95 latency and cosine
    with torch; and the precision in force (``bench_precision``). The manifest's summaries, and each row's
    top-level numbers, are the ``mixed`` class's (else the first class measured).

    ``plot`` (a ``.png`` or ``.svg`` path) draws the run's speed/accuracy chart there (``bench_plot``); when the
    run is saved, the same chart goes beside bench.json as ``bench.png`` / ``bench.svg`` (listed in the manifest,
    so ``exporter push`` uploads it and the card shows it). matplotlib (the ``plot`` extra) is checked before
    anything is measured.

    ``trust_remote_code=True`` lets sentence-transformers load folders that name custom module classes (or
    hold code or pickles); without it they are refused (``UnsafeArtifactError``), whatever the manifest records.

    Raises:
        BadInputError: a missing folder or manifest, an unknown variant, a bad ``compare`` spec, texts file,
            ``source_dir``, ``via``, ``mode``, ``length_classes`` or ``plot``, a setting out of range, a text set
            with no text for any class asked for (the message names the parameter).
        ExternalError: a runtime cannot load or run a model (the message names it); ``plot`` without
            matplotlib (``RuntimeUnavailableError`` naming the ``plot`` extra), before anything is measured.
    """
    progress = progress or SilentBenchProgress()
    _check_settings(batch_size=batch_size, num_texts=num_texts, rounds=rounds, warmup_rounds=warmup_rounds,
                    latency_count=latency_count, threads=threads)
    loaders = _check_choices(via=via, mode=mode)
    chosen_classes = check_classes(length_classes)
    if plot is not None:  # before anything is measured: a missing extra must not cost a whole run
        from exporter.diagnostics.bench_plot import chart_suffix, require_matplotlib

        chart_suffix(plot)
        require_matplotlib()
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise BadInputError(f"{folder}: no such artifact folder")
    root = root.resolve()
    manifest = read_manifest(root)
    if manifest.source.kind == "cross":  # a reranker: pairs/s against CrossEncoder.predict (bench_cross)
        from exporter.diagnostics.bench_cross import bench_cross

        return bench_cross(root, manifest, variants=variants, batch_size=batch_size, num_texts=num_texts,
                           threads=threads, rounds=rounds, warmup_rounds=warmup_rounds, source_dir=source_dir,
                           save=save and report_dir is None, length_classes=length_classes,
                           trust_remote_code=trust_remote_code)
    models = unique_names([*variant_targets(root, manifest, variants, trust_remote_code=trust_remote_code),
                           *(parse_compare(spec, trust_remote_code=trust_remote_code) for spec in compare)])
    targets, notes = with_loaders(models, loaders)
    targets = unique_names(targets)
    all_texts, texts_source = load_texts(texts_file)
    classes, notes_on_texts = class_texts(all_texts, chosen_classes, num_texts)
    notes.extend(notes_on_texts)
    summary_class = SUMMARY_CLASS if any(c.name == SUMMARY_CLASS for c in classes) else classes[0].name
    threads = threads or available_cores()

    if save and "encoder" not in loaders:
        notes.append("manifest.json's bench summaries were left as they were: they come from the encoder rows "
                     "(what deploy hosts run), and this run measured sentence-transformers only")
    reference, location, missing = find_reference(manifest, source_dir, trust_remote_code=trust_remote_code)
    if missing:
        notes.append(missing)
    if reference is not None:
        targets.insert(0, reference)

    host = host_info(threads)  # before measuring: its load average is the one the run started with
    measured = _measure(targets, classes, threads=threads, batch_size=batch_size, rounds=rounds,
                        warmup_rounds=warmup_rounds, latency_count=latency_count, mode=mode, progress=progress)
    host["load_average_end"] = load_average()
    memory: dict[str, float | None] = {}
    if measure_memory:
        memory_texts = next(c.texts for c in classes if c.name == summary_class)
        memory, problems = measure_all(targets, threads=threads, texts=memory_texts, batch_size=batch_size,
                                       progress=progress, mode=mode)
        notes.extend(problems)

    spread = max(throughput.spread() for throughput in measured.throughput.values())
    if rounds > 1 and spread > NOISY_SPREAD:
        load_before = host["load_average"]
        notes.append(f"round times of one model varied up to {spread:.1f}x (load average "
                     f"{load_before[0] if load_before else '?'} at the start): the host was busy, so the numbers "
                     "are noisy; rerun on a quiet machine, with more --rounds, or with fewer --threads")
    results = []
    for index, target in enumerate(targets):
        per_class = {c.name: _class_result(measured, c, index, has_reference=reference is not None)
                     for c in classes}
        results.append(ModelResult(target=target, classes=per_class, precision=measured.precisions[index],
                                   rss_delta_mb=memory.get(target.name), runtime=measured.runtimes[index],
                                   summary_class=summary_class))
    result = BenchResult(
        folder=root,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        host=host,
        settings={"batch_size": batch_size, "num_texts": num_texts, "rounds": rounds, "warmup_rounds": warmup_rounds,
                  "latency_texts": latency_count if latency_count > 0 else 0, "threads": threads,
                  "texts": texts_source, "via": list(loaders), "mode": mode,
                  "length_classes": {c.name: c.describe() for c in classes}, "summary_class": summary_class,
                  "memory": "rss delta of load + run in a child process (MiB)" if measure_memory else None,
                  "order": "interleaved: each round runs every class, every model once per class in an order "
                           "rotated each round; throughput = texts / median round time",
                  "tokens": "per text, with each model's tokenizer, truncated at its max_seq_length, padding "
                            "excluded; tokens/s = texts/s x mean tokens",
                  "cosine": "per-text cosine with the torch model's embeddings of the first measured round"},
        versions=_versions(),
        results=results,
        reference={"available": reference is not None, "location": location or None},
        notes=notes,
    )
    chart = None
    if plot is not None:
        from exporter.diagnostics.bench_plot import chart_suffix, manifest_overlap, render_chart

        suffix = chart_suffix(plot)
        try:
            chart = (suffix, render_chart(result.to_dict(), suffix, name=root.name,
                                          overlap=manifest_overlap(manifest)))
        except BadInputError as error:  # nothing to draw (no torch reference): the numbers are still kept
            result.notes.append(f"no chart drawn: {error}")
    if save:
        from exporter.artifact.integrity import is_cache_snapshot
        from exporter.artifact.manifest import write_manifest

        if report_dir is not None:
            destination = Path(report_dir)
            destination.mkdir(parents=True, exist_ok=True)
            write_manifest(destination, read_manifest(root))  # a copy the results are recorded against
            result.bench_file = save_result(destination, result, chart=chart)
        elif is_cache_snapshot(root):
            result.notes.append(f"{root} is a huggingface_hub cache snapshot (its files are links into the cache): "
                                "bench.json was not written there; pass --report-dir DIR to keep it")
        else:
            result.bench_file = save_result(root, result, chart=chart)
    if chart is not None:
        from exporter.artifact.integrity import write_bytes_atomic

        result.chart_file = Path(plot).expanduser().absolute()
        write_bytes_atomic(result.chart_file, chart[1])
    return result


def _check_settings(**settings: int | None) -> None:
    for name, value in settings.items():
        if value is not None and value < MINIMUMS[name]:
            raise BadInputError(f"{name} must be at least {MINIMUMS[name]}, got {value}")


def _check_choices(*, via: Sequence[str], mode: str) -> tuple[str, ...]:
    """The loaders of ``via``, each once, in ``LOADERS`` order; ``BadInputError`` naming the parameter."""
    if isinstance(via, str):
        via = (via,)
    if not via:
        raise BadInputError(f"via: expected one or more of {', '.join(LOADERS)}, got none")
    unknown = [loader for loader in via if loader not in LOADERS]
    if unknown:
        raise BadInputError(f"via {unknown[0]!r}: expected one or more of {', '.join(LOADERS)}")
    if mode not in MODES:
        raise BadInputError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    return tuple(loader for loader in LOADERS if loader in via)


@dataclass
class _Measured:
    """What ``_measure`` found, per model index: throughput and latency samples per class, tokens per text per
    class, the runtime settings and the precision in force."""

    throughput: dict[str, Throughput]
    latencies: dict[str, list[list[float]]]
    tokens: dict[str, list[list[int]]]
    runtimes: list[dict]
    precisions: list


def _measure(targets: list[Target], classes: list[LengthClass], *, threads: int, batch_size: int, rounds: int,
             warmup_rounds: int, latency_count: int, mode: str, progress) -> _Measured:
    """Load every model, count its tokens, run the throughput and latency rounds of every class.
    The models are released before returning, so the memory children start on a clean host."""
    previous_threads = configure_threads(threads)
    runners = []
    try:
        for target in targets:
            with progress.step(f"Loading {target.name}"):
                runners.append(_load(target, threads=threads, mode=mode))
        tokens = {c.name: [token_counts(runner, c.texts) for runner in runners] for c in classes}
        precisions = [precision_in_force(target, runner) for target, runner in zip(targets, runners, strict=True)]
        throughput = throughput_rounds(targets, runners, {c.name: c.texts for c in classes}, batch_size=batch_size,
                                       rounds=rounds, warmup_rounds=warmup_rounds, progress=progress)
        latencies = {c.name: latency_rounds(targets, runners, latency_texts(c.texts, latency_count), rounds=rounds,
                                            progress=progress, label=f" ({c.name})")
                     for c in classes}
        runtimes = [dict(runner.settings) for runner in runners]
    finally:
        runners.clear()
        gc.collect()
        if previous_threads is not None:
            configure_threads(previous_threads)
    return _Measured(throughput, latencies, tokens, runtimes, precisions)


def _class_result(measured: _Measured, length_class: LengthClass, index: int, *, has_reference: bool) -> ClassResult:
    """Model ``index``'s numbers on ``length_class``; ratio and cosines against the torch model (index 0)."""
    throughput = measured.throughput[length_class.name]
    count = len(length_class.texts)
    texts_per_second = throughput.texts_per_second(index, count)
    torch_throughput = throughput.texts_per_second(0, count) if has_reference else None
    similarity = cosines(throughput.embeddings[index], throughput.embeddings[0]) if has_reference else None
    tokens = measured.tokens[length_class.name][index]
    samples = measured.latencies[length_class.name][index]
    return ClassResult(
        texts=count,
        mean_tokens=sum(tokens) / len(tokens),
        throughput=texts_per_second,
        ratio_to_torch=texts_per_second / torch_throughput if torch_throughput else None,
        latency_p50_ms=percentile_ms(samples, 50),
        latency_p95_ms=percentile_ms(samples, 95),
        round_seconds=throughput.round_seconds[index],
        latency_samples=len(samples),
        cosine_mean=float(similarity.mean()) if similarity is not None else None,
        cosine_min=float(similarity.min()) if similarity is not None else None,
    )


def _load(target: Target, *, threads: int, mode: str):
    """``load_runner``; a failure's message names the model (the deploy runtime's name the file only)."""
    try:
        return load_runner(target.spec, threads=threads, mode=mode)
    except ExporterError as error:
        if target.name not in str(error):
            error.args = (f"{target.describe()}: {error}",)
        raise


def _versions() -> dict[str, str | None]:
    found = versions(tuple(name for name in VERSION_KEYS.values() if name != "embedding-exporter"))
    return {key: found.get(name) for key, name in VERSION_KEYS.items()}


__all__ = ["BENCH_NAME", "LENGTH_CLASSES", "BenchResult", "ClassResult", "ModelResult", "SilentBenchProgress",
           "Target", "bench", "load_texts", "parse_compare", "save_result"]
