"""How ``exporter bench`` measures: the text set, the thread count, the host it ran on, and the timed rounds.

Every model runs in one process with the same thread count, warmed up, and interleaved: each round runs
every length class (``bench_classes``) in turn, and in each class every model once over the class's texts,
in an order rotated from round to round, so drift (turbo, other processes, thermal) hits all of them alike.
Throughput is texts / median round time per class; latency is measured at batch 1 on each class's texts
(p50/p95); cosines compare each model's embeddings of the first measured round with the torch model's.

Nothing but the standard library and light modules of this package are imported at module level (the CLI
reads the defaults from here when it builds ``exporter --help``); torch, numpy and psutil are imported where
they are used.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.errors import BadInputError, ExternalError, first_line
from exporter.runtime.host import cpu_flags, cpu_name
from exporter.texts import builtin_texts, parse_jsonl, read_text_file

if TYPE_CHECKING:
    import numpy as np

    from exporter.diagnostics.bench_targets import Target
    from exporter.runtime.runners import VariantRunner

BUILTIN_TEXTS = "data/validation.jsonl"  # inside the ``exporter`` package
DEFAULT_BATCH_SIZE = 32
DEFAULT_NUM_TEXTS = 128
DEFAULT_ROUNDS = 3
DEFAULT_WARMUP_ROUNDS = 1
DEFAULT_LATENCY_TEXTS = 30
# How variants and --compare peers are loaded: the deploy runtime (``Encoder``, what deploy hosts run) and/or
# ``SentenceTransformer(folder, backend=...)`` (graph: transformer only). The torch model always goes through
# sentence-transformers.
LOADERS = ("encoder", "sentence-transformers")
DEFAULT_VIA = ("encoder",)
# The Encoder's mode for encoder rows (``exporter.runtime.encoder.MODES``; kept here so the CLI needs no runtime).
MODES = ("latency", "throughput")
DEFAULT_MODE = "latency"
# Before each model's timed block: a pause, so the thread pools of the model before (ONNX Runtime and
# OpenMP spin after a run) are idle and do not steal cores from it; batch-1 blocks also start with one
# untimed encode. Measured here: without it torch's batch-1 latency right after ONNX Runtime doubled.
SWITCH_PAUSE_S = 0.05
NOISY_SPREAD = 1.5  # slowest / fastest measured round of one model above this: the result says the host was busy
# The CPU features bench.json's host lists (what decides int8 / bf16 speed on x86).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
             "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")


# -------------------------------------------------------------------------------------------- progress


class SilentBenchProgress:
    """Reports nothing. A progress object has ``step`` and ``log`` (as ``exporter.progress.Progress``) and,
    optionally, ``track(description, total)``: a context manager yielding a function to call once per tick."""

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        yield

    def log(self, message: str) -> None:
        pass

    @contextlib.contextmanager
    def track(self, description: str, total: int) -> Iterator[Callable[[], None]]:
        yield lambda: None


@contextlib.contextmanager
def track(progress, description: str, total: int) -> Iterator[Callable[[], None]]:
    """``progress.track`` when it has one, else one ``progress.step`` for the whole phase."""
    tracker = getattr(progress, "track", None)
    if tracker is None:
        with progress.step(description):
            yield lambda: None
        return
    with tracker(description, total) as advance:
        yield advance


# ------------------------------------------------------------------------------------------------ texts


def load_texts(texts_file: str | Path | None = None) -> tuple[list[str], str]:
    """The text set: ``texts_file`` (.jsonl with "text", else one text per line) or the built-in one.
    Returns the texts and where they came from. ``BadInputError`` for a missing, unreadable or empty file."""
    if texts_file is None:
        return [text.text for text in builtin_texts()], f"builtin:{BUILTIN_TEXTS}"
    path = Path(texts_file)
    content = read_text_file(path, f"texts_file {path}", "bench texts")
    if path.suffix.lower() == ".jsonl":
        texts = [row["text"] for row in parse_jsonl(content, str(path)) if row["text"].strip()]
    else:
        texts = [line for line in content.splitlines() if line.strip()]
    if not texts:
        raise BadInputError(f"texts_file {path}: no texts in it")
    return texts, str(path)


def select_texts(texts: Sequence[str], count: int) -> list[str]:
    """``count`` texts: evenly spread over the set when it is larger, cycled when it is smaller."""
    if count <= len(texts):
        return [texts[i * len(texts) // count] for i in range(count)]
    return [texts[i % len(texts)] for i in range(count)]


def latency_texts(texts: Sequence[str], count: int) -> list[str]:
    """``count`` texts of a length class for its batch-1 latency (none when ``count`` is 0)."""
    return select_texts(texts, count) if count > 0 else []


# --------------------------------------------------------------------------------------- threads, host


def available_cores() -> int:
    """Physical cores this process may use: physical cores, capped by the CPU affinity and a cgroup quota."""
    import psutil

    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    cores = physical
    with contextlib.suppress(AttributeError, OSError):
        allowed = len(os.sched_getaffinity(0))
        # Only part of the machine allowed: count the allowed logical CPUs as cores, scaled by SMT.
        cores = min(cores, max(1, allowed * physical // logical))
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    return max(1, cores)


def configure_threads(threads: int) -> int | None:
    """Set torch's intra-op threads (ONNX Runtime and OpenVINO get theirs per model); returns the previous, None
    where torch is not installed (a deploy install: there is no torch model to run)."""
    try:
        import torch
    except ImportError:
        return None

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    return previous


def host_info(threads: int) -> dict[str, Any]:
    """The host as bench.json records it; its load average is the one the run starts with."""
    import psutil

    flags = cpu_flags()
    return {
        "cpu": cpu_name() or platform.machine(),
        "machine": platform.machine(),
        "cores": psutil.cpu_count(logical=False),
        "logical_cpus": psutil.cpu_count(logical=True),
        "available_cores": available_cores(),
        "threads": threads,
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "load_average": load_average(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
    }


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


# ----------------------------------------------------------------------------------------------- rounds


@dataclass
class Throughput:
    """Each model's measured round times (seconds), and its embeddings from the first measured round."""

    round_seconds: list[list[float]]
    embeddings: list[Any]

    def texts_per_second(self, index: int, num_texts: int) -> float:
        return num_texts / statistics.median(self.round_seconds[index])

    def spread(self) -> float:
        """The largest slowest / fastest round ratio of one model."""
        return max(max(times) / min(times) for times in self.round_seconds)


def rotation(count: int, round_index: int) -> list[int]:
    """0..count-1 rotated left by ``round_index``: who runs first changes from round to round."""
    shift = round_index % count if count else 0
    return list(range(shift, count)) + list(range(shift))


def throughput_rounds(targets: Sequence[Target], runners: Sequence[VariantRunner], classes: dict[str, list[str]], *,
                      batch_size: int, rounds: int, warmup_rounds: int, progress) -> dict[str, Throughput]:
    """``warmup_rounds`` + ``rounds`` rounds; in each, every length class in turn, every model once over the
    class's texts, interleaved: a class's ratios come from the same rounds, and drift hits every class alike."""
    times = {name: [[] for _ in runners] for name in classes}
    embeddings: dict[str, list[Any]] = {name: [None for _ in runners] for name in classes}
    total = (warmup_rounds + rounds) * len(runners) * len(classes)
    sizes = ", ".join(f"{name} {len(texts)}" for name, texts in classes.items())
    with track(progress, f"Throughput: texts per round {sizes} × {rounds} rounds (+{warmup_rounds} warm-up)",
               total) as tick:
        for round_index in range(warmup_rounds + rounds):
            for name, texts in classes.items():
                gc.collect()
                for index in rotation(len(runners), round_index):
                    time.sleep(SWITCH_PAUSE_S)
                    started = time.perf_counter()
                    output = encode(targets[index], runners[index], texts, batch_size)
                    elapsed = time.perf_counter() - started
                    if round_index >= warmup_rounds:
                        times[name][index].append(elapsed)
                    if round_index == warmup_rounds:
                        embeddings[name][index] = output
                    tick()
    return {name: Throughput(times[name], embeddings[name]) for name in classes}


def latency_rounds(targets: Sequence[Target], runners: Sequence[VariantRunner], single: list[str], *, rounds: int,
                   progress, label: str = "") -> list[list[float]]:
    """Batch-1 latency samples (seconds) per model: the texts split into chunks, each chunk run by every model
    in a rotated order, each model's block led by a pause and one untimed encode."""
    samples: list[list[float]] = [[] for _ in runners]
    if not single:
        return samples
    warm = single[: min(3, len(single))]
    chunks = max(1, min(rounds, len(single)))
    bounds = [len(single) * i // chunks for i in range(chunks + 1)]
    total = (len(single) + len(warm)) * len(runners)
    with track(progress, f"Latency{label}: {len(single)} single texts", total) as tick:
        for index in range(len(runners)):
            for text in warm:
                encode(targets[index], runners[index], [text], 1)
                tick()
        for chunk in range(chunks):
            for index in rotation(len(runners), chunk):
                time.sleep(SWITCH_PAUSE_S)
                encode(targets[index], runners[index], [single[bounds[chunk]]], 1)
                for text in single[bounds[chunk] : bounds[chunk + 1]]:
                    started = time.perf_counter()
                    encode(targets[index], runners[index], [text], 1)
                    samples[index].append(time.perf_counter() - started)
                    tick()
    return samples


def encode(target: Target, runner: VariantRunner, texts: list[str], batch_size: int):
    """``runner.encode``; a runtime failing mid-run is an ``ExternalError`` naming the model, one line."""
    try:
        return runner.encode(texts, batch_size)
    except Exception as error:  # noqa: BLE001 - a runtime failing mid-run is named, one line
        message = f"{target.describe()}: {target.backend} failed while encoding: {first_line(error)}"
        raise ExternalError(message) from None


def cosines(embeddings, reference) -> np.ndarray:
    """Per-text cosine similarity of two [texts, dim] arrays (float64)."""
    import numpy as np

    a = np.asarray(embeddings, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def percentile_ms(samples: list[float], q: float) -> float | None:
    """The ``q``-th percentile of ``samples`` (seconds) in milliseconds; None without samples."""
    if not samples:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(samples) * 1000.0, q))


__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_LATENCY_TEXTS", "DEFAULT_MODE", "DEFAULT_NUM_TEXTS", "DEFAULT_ROUNDS",
           "DEFAULT_VIA", "DEFAULT_WARMUP_ROUNDS", "LOADERS", "MODES", "SilentBenchProgress", "Throughput",
           "available_cores", "configure_threads", "cosines", "host_info", "latency_rounds", "latency_texts",
           "load_texts", "percentile_ms", "select_texts", "throughput_rounds"]
