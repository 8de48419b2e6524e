"""``exporter bench``: parses arguments, calls ``exporter.diagnostics.benchmark.bench``, renders the result.

Kept apart from ``exporter.cli`` (which registers it) and importing nothing heavy at module level, so
``exporter --help`` stays fast: the defaults come from ``bench_measure``, which imports nothing heavy; the
benchmark itself is imported when the command runs. Errors go through ``exporter.cli.common``,
which puts the flags in place of the parameters the library's messages name.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from exporter.cli.common import (
    EPILOG,
    handle_errors,
    json_option,
    quiet_option,
    reword_errors,
    trust_remote_code_option,
)
from exporter.diagnostics.bench_classes import DEFAULT_LENGTH_CLASSES, LENGTH_CLASSES, LONG_SHARE
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
)


class RichBenchProgress:
    """Spinner lines for steps and a rich.progress bar per measuring phase, on stderr."""

    def __init__(self, console):
        self.console = console

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        started = time.perf_counter()
        with self.console.status(description):
            yield
        self.console.print(f"[green]✓[/green] {description} [dim]({time.perf_counter() - started:.1f} s)[/dim]")

    def log(self, message: str) -> None:
        self.console.print(message)

    @contextlib.contextmanager
    def track(self, description: str, total: int) -> Iterator[Callable[[], None]]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        started = time.perf_counter()
        if not self.console.is_terminal:  # no live bar in a log file: just the line when done
            yield lambda: None
            self.console.print(f"[green]✓[/green] {description} [dim]({time.perf_counter() - started:.1f} s)[/dim]")
            return
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=self.console, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)
        self.console.print(f"[green]✓[/green] {description} [dim]({time.perf_counter() - started:.1f} s)[/dim]")


@click.command("bench", epilog=EPILOG)
@click.argument("artifact_dir", type=click.Path(path_type=str))
@click.option("--variant", "variants", multiple=True, metavar="NAME",
              help="Measure only this variant (repeatable; default: all).")
@click.option("--compare", "compare", multiple=True, metavar="FOLDER:FILE",
              help="Add another sentence-transformers-loadable model: FILE (.onnx → onnx, .xml → openvino) inside "
                   "FOLDER (repeatable).")
@click.option("--via", "via", multiple=True, type=click.Choice(LOADERS), metavar="LOADER",
              help="Load variants and --compare models through LOADER: encoder (the deploy runtime, what deploy "
                   "hosts run) or sentence-transformers (graph: transformer only; rows named 'NAME "
                   "(sentence-transformers)'). Repeatable: both measure each model twice in the same run "
                   f"(default: {', '.join(DEFAULT_VIA)}).")
@click.option("--mode", type=click.Choice(MODES), default=DEFAULT_MODE, show_default=True,
              help="The encoder's mode: latency (one request at a time) or throughput (batches run concurrently).")
@click.option("--length-class", "length_classes", multiple=True, type=click.Choice(LENGTH_CLASSES), metavar="CLASS",
              help="Measure this length class: short (texts under 200 characters), mixed (the whole text set) or "
                   "long (500+ characters, topped up with passages of consecutive texts joined to 1,000+). "
                   f"Repeatable (default: {', '.join(DEFAULT_LENGTH_CLASSES)}).")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Batch size for throughput.")
@click.option("--num-texts", type=click.IntRange(min=1), default=DEFAULT_NUM_TEXTS, show_default=True,
              help=f"Texts per round for the short and mixed classes; long runs 1/{LONG_SHARE} of it (a class's pool "
                   "is cycled when smaller).")
@click.option("--rounds", type=click.IntRange(min=1), default=DEFAULT_ROUNDS, show_default=True,
              help="Measured rounds (every model once per round, order rotated).")
@click.option("--warmup", "warmup_rounds", type=click.IntRange(min=0), default=DEFAULT_WARMUP_ROUNDS,
              show_default=True, help="Warm-up rounds, not counted.")
@click.option("--latency-texts", "latency_count", type=click.IntRange(min=0), default=DEFAULT_LATENCY_TEXTS,
              show_default=True, help="Single-text encodes per model and class for the batch-1 latency (0: none).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads for every runtime (default: the physical cores available).")
@click.option("--texts", "texts_file", type=click.Path(path_type=str),
              help="Text set: .txt (one per line) or .jsonl with \"text\" (default: the built-in validation set).")
@click.option("--source", "source_dir", type=click.Path(path_type=str),
              help="Torch reference model folder (default: the manifest's source.location).")
@click.option("--no-memory", is_flag=True, help="Skip the memory measurement (one child process per model).")
@click.option("--report-dir", type=click.Path(path_type=str, file_okay=False), metavar="DIR",
              help="Write bench.json (and a manifest.json with the summaries) to DIR instead of ARTIFACT_DIR; needed "
                   "for a huggingface_hub cache snapshot, which is never written to.")
@click.option("--no-save", is_flag=True, help="Do not write bench.json nor update manifest.json.")
@click.option("--plot", "plot", type=click.Path(path_type=str, dir_okay=False), metavar="FILE.png|svg",
              help="Draw speed (× torch) against accuracy (cosine min; top-10 overlap from validation) per model "
                   "and length class into FILE, the CPU in the title; a saved run also gets it as bench.png|svg "
                   "beside bench.json, which push uploads and the card shows. Needs the plot extra.")
@trust_remote_code_option
@json_option
@quiet_option
@handle_errors
@reword_errors(compare="--compare", texts_file="--texts", source_dir="--source",  # the others: click checks them
               trust_remote_code="--trust-remote-code", length_classes="--length-class", plot="--plot")
def bench_command(artifact_dir: str, variants: tuple[str, ...], compare: tuple[str, ...], via: tuple[str, ...],
                  mode: str, length_classes: tuple[str, ...], batch_size: int, num_texts: int, rounds: int,
                  warmup_rounds: int, latency_count: int, threads: int | None, texts_file: str | None,
                  source_dir: str | None, no_memory: bool, no_save: bool, report_dir: str | None,
                  plot: str | None, trust_remote_code: bool, as_json: bool, quiet: bool) -> None:
    """Measure the torch model and each variant of ARTIFACT_DIR: throughput, latency, size, memory.

    Every model runs in this process with the same thread count, warmed up and interleaved round by
    round, on each length class (short, mixed, long): texts/s, tokens/s, ratio to torch, p50/p95 latency
    at batch 1, cosine with torch, and the precision in force; memory is measured in one child process
    per model. Variants run through the deploy runtime
    (--via encoder); --via sentence-transformers adds them as SentenceTransformer loads them, in the same
    run. The result goes to ARTIFACT_DIR/bench.json (listed in manifest.json, with a summary on each
    variant from its encoder row).

    \b
    Examples:
      exporter bench artifacts/minilm-onnx
      exporter bench artifacts/minilm-onnx --variant onnx-fp32 --threads 4 --json
      exporter bench artifacts/minilm-onnx --compare st-export:onnx/model_qint8_avx512_vnni.onnx
      exporter bench artifacts/minilm-openvino --via encoder --via sentence-transformers
      exporter bench artifacts/minilm-onnx --length-class short --length-class long
      exporter bench artifacts/minilm-openvino --plot bench.png
    """
    from rich.console import Console

    from exporter.diagnostics.benchmark import SilentBenchProgress, bench

    console = Console(stderr=True)
    if not console.is_terminal:  # a log file or a pipe: rich would fold the table at 80 columns
        console = Console(stderr=True, width=max(console.width, 180))
    if _is_sparse(artifact_dir):  # a SPLADE artifact: texts/s and nnz per text (exporter.diagnostics.bench_sparse)
        from exporter.diagnostics.bench_sparse import bench_sparse, render_sparse

        sparse = bench_sparse(artifact_dir, variants=list(variants) or None, batch_size=batch_size,
                              num_texts=num_texts, rounds=rounds, warmup_rounds=warmup_rounds, threads=threads,
                              texts_file=texts_file, source_dir=source_dir)
        if as_json:
            click.echo(json.dumps(sparse.to_dict(), indent=2))
        elif not quiet:
            render_sparse(sparse, console)
        return
    result = bench(
        artifact_dir, variants=list(variants) or None, compare=list(compare), batch_size=batch_size,
        num_texts=num_texts, threads=threads, rounds=rounds, warmup_rounds=warmup_rounds,
        latency_count=latency_count, texts_file=texts_file, source_dir=source_dir, measure_memory=not no_memory,
        save=not no_save, report_dir=report_dir,
        progress=SilentBenchProgress() if quiet else RichBenchProgress(console),
        via=list(via) or list(DEFAULT_VIA), mode=mode, trust_remote_code=trust_remote_code,
        length_classes=list(length_classes) or None, plot=plot,
    )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    if not quiet:
        from exporter.diagnostics.bench_cross import CrossBenchResult

        result.render(console) if isinstance(result, CrossBenchResult) else render(result, console)


def _is_sparse(artifact_dir: str) -> bool:
    from exporter.artifact.manifest import read_manifest

    folder = Path(artifact_dir)
    return (folder / "manifest.json").is_file() and read_manifest(folder).source.kind == "sparse"


def render(result, console) -> None:
    """The result as a rich table on ``console``: one row per model per length class, a section per class."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    data = result.to_dict()
    settings = data["settings"]
    classes = settings["length_classes"]
    sizes = ", ".join(f"{name} {info['texts']}" for name, info in classes.items())
    title = (f"{result.folder.name}: texts per round {sizes}; batch {settings['batch_size']}, "
             f"{settings['threads']} thread{'s' if settings['threads'] != 1 else ''}, "
             f"median of {settings['rounds']} rounds; latency at batch 1"
             + (f"; encoder in {settings['mode']} mode" if "encoder" in settings["via"] else ""))
    table = Table(title=title, box=box.SIMPLE_HEAD)
    # The via column only when variants went through sentence-transformers too (torch always does).
    with_via = "sentence-transformers" in settings["via"]
    # Without the torch reference (not found, or a deploy install without torch) its columns are left out; a note
    # says why.
    with_torch = bool(data["reference"]["available"])
    columns = (("model", "left"), ("class", "left"), ("runtime", "left"), *((("via", "left"),) if with_via else ()),
               ("precision", "left"), ("MB", "right"), ("texts/s", "right"), ("tokens/s", "right"),
               *((("× torch", "right"),) if with_torch else ()), ("p50 ms", "right"), ("p95 ms", "right"),
               ("+RSS MiB", "right"), *((("cos mean", "right"), ("cos min", "right")) if with_torch else ()))
    for column, justify in columns:  # only the model's name may fold: numbers broken over lines misread
        table.add_column(column, justify=justify, overflow="fold", no_wrap=column != "model")
    for position, class_name in enumerate(classes):
        if position:
            table.add_section()
        for row in data["results"]:
            numbers = row["classes"][class_name]
            runtime = row["backend"] + (" · sentence" if row["graph"] == "sentence" else "")
            # bench.json names a sentence-transformers row "NAME (sentence-transformers)": the via column says it.
            name = row["name"].removesuffix(f" ({row['loader']})") if row["kind"] != "torch" else row["name"]
            table.add_row(
                name, class_name, runtime, *((row["loader"],) if with_via else ()), row["precision_in_force"],
                _fmt(row["size_bytes"], lambda v: f"{v / 1e6:.1f}"),
                _fmt(numbers["texts_per_second"], lambda v: f"{v:.1f}"),
                _fmt(numbers["tokens_per_second"], lambda v: f"{v:.0f}"),
                *((_fmt(numbers["ratio_to_torch"], lambda v: f"{v:.2f}×"),) if with_torch else ()),
                _fmt(numbers["latency_p50_ms"], lambda v: f"{v:.2f}"),
                _fmt(numbers["latency_p95_ms"], lambda v: f"{v:.2f}"),
                _fmt(row["rss_delta_mb"], lambda v: f"{v:.0f}"),
                *((_fmt(numbers["cosine_mean"], lambda v: f"{v:.4f}"),
                   _fmt(numbers["cosine_min"], lambda v: f"{v:.4f}")) if with_torch else ()),
            )
    console.print(table)
    rules = "; ".join(f"{name}: {info['rule']} (mean {info['mean_chars']:.0f} chars"
                      + (f", {info['built_passages']} built" if info["built_passages"] else "") + ")"
                      for name, info in classes.items())
    console.print(f"[dim]{rules}. tokens/s = texts/s × the mean tokens each model ran per text (its tokenizer, "
                  f"truncated at max_seq_length); the manifest's summaries are the {settings['summary_class']} "
                  "class's.[/dim]")
    host = data["host"]
    installed = ", ".join(f"{name} {data['versions'][name]}" for name in ("torch", "onnxruntime", "openvino")
                          if data["versions"].get(name))
    console.print(f"[dim]{host['cpu']} ({host['cores']} cores, ISA: {' '.join(host['isa']) or '-'}); "
                  f"{installed or 'no runtime versions known'}[/dim]")
    for note in data["notes"]:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")  # notes hold pip extras: [build] is not markup
    if result.bench_file:
        console.print(f"Saved {result.bench_file} (listed in manifest.json).")
    if result.chart_file:
        console.print(f"Chart: {result.chart_file}")


def _fmt(value, form: Callable[[Any], str]) -> str:
    return "-" if value is None else form(value)
