"""The package's shape: every module imports on its own, library code never imports the CLI, ``exporter --help``
stays light, and the manifest keeps what a newer version wrote."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import exporter
import exporter.validators
from exporter.artifact.manifest import Manifest

HEAVY = ("torch", "transformers", "sentence_transformers", "onnxruntime", "openvino", "nncf", "optimum", "matplotlib")
# exporter.validators lives in the repository's validators/ folder (mapped by the install): walk it too.
MODULES = sorted({info.name for info in pkgutil.walk_packages(exporter.__path__, "exporter.")}
                 | {"exporter.validators"}
                 | {info.name for info in pkgutil.walk_packages(exporter.validators.__path__, "exporter.validators.")})


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    """No import cycles: each module is importable first (a cycle shows up as an ImportError for some order)."""
    assert "exporter.artifact.manifest" in MODULES and "exporter.validators.parity" in MODULES
    code = ("import importlib, subprocess, sys\n"
            f"names = {[name for name in MODULES if name != 'exporter.__main__']!r}  # __main__ runs the CLI\n"
            "failed = []\n"
            "for name in names:\n"
            "    result = subprocess.run([sys.executable, '-c', f'import {name}'], capture_output=True, text=True)\n"
            "    if result.returncode:\n"
            "        failed.append((name, result.stderr.strip().splitlines()[-1:]))\n"
            "print(failed)\n")
    process = _run(code)
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "[]", process.stdout


def test_library_modules_never_import_the_cli():
    library = [name for name in MODULES if not name.startswith("exporter.cli") and name != "exporter.__main__"]
    code = ("import sys\n"
            f"for name in {library!r}:\n"
            "    __import__(name)\n"
            "print(sorted(m for m in sys.modules if m == 'exporter.cli' or m.startswith('exporter.cli.')))\n")
    process = _run(code)
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "[]"


@pytest.mark.parametrize("arguments", [["--help"], ["run", "--help"], ["fetch", "--help"], ["validate", "--help"]])
def test_help_imports_no_ml_library(arguments):
    code = ("import sys\n"
            "from exporter.cli import main\n"
            "try:\n"
            f"    main({arguments!r}, standalone_mode=False)\n"
            "except SystemExit:\n"
            "    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n")
    process = _run(code)
    assert process.returncode == 0, process.stderr
    assert process.stderr.strip().splitlines()[-1] == "[]", process.stderr
    assert "Usage: " in process.stdout


def test_help_in_a_subprocess_is_light():
    """The installed command itself, as a user runs it."""
    code = ("import runpy, sys\n"
            "sys.argv = ['exporter', '--help']\n"
            "try:\n"
            "    runpy.run_module('exporter', run_name='__main__')\n"
            "except SystemExit:\n"
            "    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n")
    process = _run(code)
    assert process.stderr.strip().splitlines()[-1] == "[]", process.stderr
    assert "not `export`" in process.stdout


def test_manifest_round_trip_keeps_unknown_keys(tmp_path: Path):
    data = {
        "schema_version": 1,
        "added_by_a_newer_version": {"nested": [1, 2]},
        "source": {"id": "org/model", "location": "hub:org/model", "future_field": True},
        "shared_files": [{"path": "config.json", "sha256": "a" * 64, "size": 10, "mode": "0644"}],
        "variants": [{"name": "onnx-fp32", "backend": "onnx", "precision": "fp32", "graph": "transformer",
                      "file_name": "onnx/model.onnx", "inputs": ["input_ids", "attention_mask"],
                      "output": "last_hidden_state", "quantization": None, "hardware_hint": "avx512",
                      "files": [{"path": "onnx/model.onnx", "sha256": "b" * 64, "size": 20}]}],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    manifest = exporter.read_manifest(tmp_path)
    assert isinstance(manifest, Manifest) and manifest.variants[0].size == 20
    exporter.artifact.manifest.write_manifest(tmp_path, manifest)
    assert json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8")) == data


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.update(shared_files=None), "shared_files"),
    (lambda m: m["variants"][0].update(files=[{"path": "../x", "sha256": "b" * 64, "size": 1}]), "unsafe path"),
    (lambda m: m["variants"][0]["files"][0].update(sha256="nope"), "is not a sha256"),
    (lambda m: m["variants"][0]["files"][0].update(size=-1), "variants.0.files.0.size"),
    (lambda m: m["variants"].append(dict(m["variants"][0])), "variant names listed twice: a"),
    (lambda m: m.update(schema_version=2), "schema_version 2 is not supported"),
])
def test_malformed_manifests_are_refused_with_the_field(tmp_path: Path, change, message):
    data = {"schema_version": 1, "variants": [{"name": "a", "backend": "onnx", "precision": "fp32",
                                               "file_name": "onnx/model.onnx",
                                               "files": [{"path": "onnx/model.onnx", "sha256": "b" * 64, "size": 2}]}]}
    change(data)
    (tmp_path / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(exporter.errors.ManifestError, match=message) as caught:
        exporter.read_manifest(tmp_path)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
