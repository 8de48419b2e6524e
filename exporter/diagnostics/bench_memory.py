"""The memory a model adds, measured in a fresh child process per model.

Resident memory is per process and never given back cleanly, so measuring in the benchmark's own process
would charge each model with what the models before it left behind. Each child imports the libraries
first (they are the baseline, not what the model adds), then loads the model through
``exporter.runtime.runners``, encodes the text set once, and prints the growth of its resident set.
The ``RunSpec`` travels to the child as JSON on stdin.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from exporter.diagnostics.bench_measure import configure_threads, track

if TYPE_CHECKING:
    from exporter.diagnostics.bench_targets import Target
    from exporter.runtime.runners import RunSpec

MEMORY_WORKERS = 2  # memory children may run side by side: resident memory is per process
MEMORY_TIMEOUT_S = 900
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_CHILD_CODE = "import sys; from exporter.diagnostics.bench_memory import memory_child; sys.exit(memory_child())"


def memory_child() -> int:
    """Entry of a memory child: reads {spec, threads, texts, batch_size, mode} on stdin, prints
    {"rss_delta_mb": ...}."""
    import gc

    from exporter.runtime.runners import RunSpec, load_runner, quiet_loading

    request = json.loads(sys.stdin.read())
    spec = RunSpec.from_dict(request["spec"])
    threads = int(request["threads"])
    mode = request.get("mode", "latency")
    import psutil

    for library in ("sentence_transformers", "torch", "transformers"):  # the baseline, not what the model adds
        with contextlib.suppress(ImportError):  # not on a deploy install
            importlib.import_module(library)

    with quiet_loading():
        if spec.backend == "onnx":
            import onnxruntime  # noqa: F401
            if spec.loader == "sentence-transformers":
                import optimum.onnxruntime  # noqa: F401
        elif spec.backend == "openvino":
            import openvino  # noqa: F401
            if spec.loader == "sentence-transformers":
                import optimum.intel.openvino  # noqa: F401
    configure_threads(threads)
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    runner = load_runner(spec, threads=threads, mode=mode)
    runner.encode(request["texts"], int(request["batch_size"]))
    runner.encode(request["texts"][:1], 1)
    gc.collect()
    after = process.memory_info().rss
    print(json.dumps({"rss_delta_mb": (after - before) / 2**20}))
    return 0


def measure_memory(spec: RunSpec, *, threads: int, texts: list[str], batch_size: int,
                   mode: str = "latency") -> tuple[float | None, str | None]:
    """RSS delta (MiB) of loading and running ``spec`` in a fresh child process; (None, reason) on failure."""
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(threads))}
    request = json.dumps({"spec": spec.to_dict(), "threads": threads, "texts": texts, "batch_size": batch_size,
                          "mode": mode})
    try:
        completed = subprocess.run([sys.executable, "-c", _CHILD_CODE], input=request, capture_output=True, text=True,
                                   env=env, timeout=MEMORY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, f"memory of {spec.name}: the child process ran past {MEMORY_TIMEOUT_S} s"
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        errors = [line for line in completed.stderr.strip().splitlines() if line.strip()]
        why = errors[-1] if errors else f"exit {completed.returncode}"
        return None, f"memory of {spec.name}: the child process failed: {why}"
    return float(json.loads(lines[-1])["rss_delta_mb"]), None


def measure_all(targets: Sequence[Target], *, threads: int, texts: list[str], batch_size: int, progress,
                mode: str = "latency") -> tuple[dict[str, float | None], list[str]]:
    """Each target's RSS delta by name (None where it failed), and one note per failure."""
    from concurrent.futures import ThreadPoolExecutor

    memory: dict[str, float | None] = {}
    notes: list[str] = []
    with track(progress, f"Memory: {len(targets)} child processes", len(targets)) as tick:
        with ThreadPoolExecutor(max_workers=MEMORY_WORKERS) as pool:
            futures = {target.name: pool.submit(measure_memory, target.spec, threads=threads, texts=texts,
                                                batch_size=batch_size, mode=mode) for target in targets}
            for name, future in futures.items():
                value, problem = future.result()
                memory[name] = value
                if problem:
                    notes.append(problem)
                tick()
    return memory, notes


__all__ = ["measure_all", "measure_memory", "memory_child"]
