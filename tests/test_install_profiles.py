"""Install profiles: a deploy host installs the base package plus a runtime extra and gets no torch,
transformers, sentence-transformers, optimum or nncf; fetching, loading, encoding and checking a variant
there imports none of them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD_ONLY = ("torch", "transformers", "sentence-transformers", "optimum", "optimum-onnx", "optimum-intel", "nncf")
BUILD_MODULES = ("torch", "transformers", "sentence_transformers", "optimum", "nncf")
# Not a dependency of huggingface_hub >= 1.0 (its transport is httpx, or httpx2 in 2.x): the deploy path must not
# need it either.
NOT_DEPENDENCIES = ("requests",)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize(("extra", "runtime"), [("openvino", "openvino"), ("onnx", "onnxruntime")])
def test_runtime_extras_resolve_without_the_build_stack(tmp_path, extra, runtime):
    """``pip install --dry-run --report`` resolves the extra from the package registry, ignoring what is
    installed here."""
    report = tmp_path / "report.json"
    process = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
         str(report), f"{REPO}[{extra}]"], capture_output=True, text=True, timeout=600)
    if process.returncode != 0 and not report.exists():
        pytest.skip(f"pip could not resolve from the registry here: {process.stderr.strip().splitlines()[-1:]}")
    versions = {_normalise(item["metadata"]["name"]): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    names = set(versions)
    assert runtime in names and "tokenizers" in names and "huggingface-hub" in names
    assert not names & {_normalise(name) for name in BUILD_ONLY}, sorted(names)
    assert "requests" not in names, sorted(names)  # huggingface_hub >= 1.0 brings httpx (or httpx2), not requests
    major, minor = (int(part) for part in versions["huggingface-hub"].split(".")[:2])
    assert (major, minor) >= (1, 3), versions["huggingface-hub"]


def test_fetch_load_encode_and_check_import_no_build_package(tmp_path, tiny_model):
    """In a fresh interpreter where importing any build-only package fails, the deploy path still works."""
    from conftest import write_recipe

    import exporter

    recipe = write_recipe(tmp_path, f"name: tiny\nmodel:\n  path: {tiny_model('bert', 'mean', True, True)}\n"
                          "variants:\n  - {backend: onnx}\n  - {backend: openvino, graph: sentence}\n")
    built = exporter.build(recipe, output=tmp_path / "built")
    assert built.report.passed
    folder = built.output
    code = f"""
import importlib.abc, sys
BLOCKED = {BUILD_MODULES!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED + {NOT_DEPENDENCIES!r}:
            raise ImportError(f"{{name}} is not installed on a deploy host")
sys.meta_path.insert(0, Block())
import exporter
from exporter.deploy.fetch import check_variant
for name in ("onnx-fp32", "openvino-fp32-sentence"):
    result = exporter.fetch_variant({str(folder)!r}, variant=name, dest={str(tmp_path / 'deploy')!r})
    encoder = exporter.load_encoder(result.path, name)
    embeddings = encoder.encode(["a deploy host", "no torch here"])
    assert embeddings.shape == (2, 24), embeddings.shape
    assert check_variant(result.path, name).passed
print(sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED + {NOT_DEPENDENCIES!r}))
"""
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stdout.strip().splitlines()[-1] == "[]"
