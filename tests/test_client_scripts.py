"""Third-party clients load the shipped recipes' artifacts as they are: the checks in examples/clients/ (fastembed,
transformers.js), each run through its wrapper, which makes the client's own environment, on freshly built
recipes/minilm-onnx.yaml and recipes/minilm-onnx-int8.yaml folders, comparing with the folders' stored reference.

Slow and needing the package registries the first time: building both artifacts takes about a minute (once per
session), the fastembed check about a minute (pip installs fastembed into examples/clients/.venv-fastembed on
first use), the transformers.js check about 20 s (npm installs @huggingface/transformers into
examples/clients/node_modules on first use); both folders are git-ignored and reused. A check whose environment
cannot be made (no node or npm, pip or npm cannot reach the registry: the wrappers exit 3) is skipped with the
reason; EXPORTER_CLIENT_CHECKS=0 skips both without trying (e.g. a CI job without network).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLIENTS = REPO / "examples" / "clients"
RECIPES = ("minilm-onnx", "minilm-onnx-int8")

pytestmark = pytest.mark.skipif(os.environ.get("EXPORTER_CLIENT_CHECKS") == "0",
                                reason="client checks disabled (EXPORTER_CLIENT_CHECKS=0)")


@pytest.fixture(scope="module")
def shipped_artifacts(tmp_path_factory) -> list[Path]:
    """The shipped ONNX recipes, built the way the README says (``python -m exporter run RECIPE --output DIR``)."""
    root = tmp_path_factory.mktemp("client-artifacts")
    folders = []
    for recipe in RECIPES:
        folder = root / recipe
        process = subprocess.run(
            [sys.executable, "-m", "exporter", "run", str(REPO / "recipes" / f"{recipe}.yaml"), "--output",
             str(folder), "--quiet"], capture_output=True, text=True, timeout=900)
        assert process.returncode == 0, process.stderr[-3000:]
        folders.append(folder)
    return folders


def expected_rows(folders: list[Path]) -> list[str]:
    """Every ONNX variant of the folders passed parity when built: each must be checked, none skipped."""
    names = []
    for folder in folders:
        for variant in json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["variants"]:
            assert variant["backend"] == "onnx" and variant["parity"]["passed"], variant["name"]
            names.append(variant["name"])
    assert any(name.startswith("onnx-int8") for name in names)
    return names


def run_wrapper(script: str, folders: list[Path]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "EXPORTER_PYTHON": sys.executable}
    env.pop("PYTHONPATH", None)
    process = subprocess.run(["bash", str(CLIENTS / script), *map(str, folders)], capture_output=True, text=True,
                             timeout=1500, env=env, cwd=REPO)
    if process.returncode == 3:  # the client's environment could not be made: not a finding about the artifact
        pytest.skip(f"{script}: {process.stderr.strip().splitlines()[-1] if process.stderr.strip() else 'exit 3'}")
    return process


def assert_all_ok(process: subprocess.CompletedProcess, names: list[str]) -> None:
    output = f"{process.stdout}\n{process.stderr}"
    assert process.returncode == 0, output[-6000:]
    rows = {line.split(" | ")[0].strip(): line for line in process.stdout.splitlines() if " | " in line}
    for name in names:
        assert name in rows, f"{name} not checked:\n{output[-6000:]}"
        assert rows[name].rstrip().endswith("| ok"), rows[name]
        if "onnx/model_quantized.onnx" in rows[name] and "transformers" in process.stdout.splitlines()[0]:
            assert '"dtype":"q8"' in rows[name], rows[name]  # the library's own name for int8: no file name needed


def test_fastembed_loads_every_onnx_variant(shipped_artifacts):
    """fastembed (add_custom_model + specific_model_path, offline): fp32 transformer (its mean pooling +
    normalization) and sentence graphs (output_name="sentence_embedding", no pooling) at cosine >= 0.99999 and
    norms within 1e-4 on all validation texts, long ones included; the int8 variant within its recorded
    cosine_min."""
    process = run_wrapper("check_fastembed.sh", shipped_artifacts)
    assert_all_ok(process, expected_rows(shipped_artifacts))


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (apt-get install nodejs npm)")
def test_transformersjs_loads_every_onnx_variant(shipped_artifacts):
    """transformers.js in Node (local model, no remote): fp32 through pipeline("feature-extraction") with mean
    pooling + normalize and the sentence graph through AutoModel at the fp32 bar on texts within max_seq_length;
    the int8 variant with its recorded cosine_min (dtype "q8" when it is onnx/model_quantized.onnx)."""
    process = run_wrapper("check_transformersjs.sh", shipped_artifacts)
    assert_all_ok(process, expected_rows(shipped_artifacts))
