"""Install profiles: a deploy host installs the base package plus a runtime extra and gets no torch,
transformers, sentence-transformers, optimum or nncf; fetching, loading, encoding and checking a variant
there imports none of them."""

from __future__ import annotations

import json
import re
import shutil
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


# Prepended to the code a deploy-install interpreter runs: importing a build-only package (or requests) fails there as
# it does where the package is not installed.
DEPLOY_PRELUDE = f"""
import importlib.abc, sys
BLOCKED = {BUILD_MODULES + NOT_DEPENDENCIES!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f"{{name}} is not installed on a deploy host")
sys.meta_path.insert(0, Block())
"""
DEPLOY_EPILOGUE = "\nprint(sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED))\n"


def run_on_a_deploy_install(code: str, cwd: Path | None = None) -> list[str]:
    """Run ``code`` in a fresh interpreter where every build-only package fails to import; its stdout lines, the last
    one checked: no build-only module was imported."""
    process = subprocess.run([sys.executable, "-c", DEPLOY_PRELUDE + code + DEPLOY_EPILOGUE], capture_output=True,
                             text=True, timeout=600, cwd=cwd)
    assert process.returncode == 0, process.stderr[-3000:]
    lines = process.stdout.strip().splitlines()
    assert lines[-1] == "[]", lines[-1]
    return lines


@pytest.fixture(scope="module")
def deploy_artifact(tmp_path_factory, tiny_model):
    """A validated tiny artifact (an ONNX and an OpenVINO variant) with its recipe, built once."""
    from conftest import write_recipe

    import exporter

    folder = tmp_path_factory.mktemp("deploy")
    recipe = write_recipe(folder, f"name: tiny\nmodel:\n  path: {tiny_model('bert', 'mean', True, True)}\n"
                          "variants:\n  - {backend: onnx}\n  - {backend: openvino, graph: sentence}\n")
    built = exporter.build(recipe, output=folder / "built")
    assert built.report.passed
    return recipe, built.output


def test_fetch_load_encode_and_check_import_no_build_package(tmp_path, deploy_artifact):
    """In a fresh interpreter where importing any build-only package fails, the deploy path still works."""
    folder = deploy_artifact[1]
    code = f"""
import exporter
from exporter.deploy.fetch import check_variant
for name in ("onnx-fp32", "openvino-fp32-sentence"):
    result = exporter.fetch_variant({str(folder)!r}, variant=name, dest={str(tmp_path / 'deploy')!r})
    encoder = exporter.load_encoder(result.path, name)
    embeddings = encoder.encode(["a deploy host", "no torch here"])
    assert embeddings.shape == (2, 24), embeddings.shape
    assert check_variant(result.path, name).passed
"""
    run_on_a_deploy_install(code)


def test_every_command_works_or_names_the_build_extra_on_a_deploy_install(tmp_path, deploy_artifact):
    """run, bench, validate (with and without a stored reference), doctor and recipe check, through the CLI, where
    torch and the rest of the build stack cannot be imported: each works or exits 3 with one line naming
    ``pip install "embedding-exporter[build]"``; no traceback anywhere."""
    recipe, built = deploy_artifact
    artifact, no_reference = tmp_path / "artifact", tmp_path / "no-reference"
    shutil.copytree(built, artifact)
    shutil.copytree(built, no_reference)
    shutil.rmtree(no_reference / "parity")
    quick = ["--rounds", "1", "--warmup", "0", "--num-texts", "8", "--latency-texts", "2", "--no-memory", "--no-save"]
    commands = {
        "run": ["run", str(recipe), "--output", str(tmp_path / "out")],
        "bench": ["bench", str(artifact), *quick],
        "bench --json": ["bench", str(artifact), "--json", *quick],
        "bench via sentence-transformers": ["bench", str(artifact), "--via", "sentence-transformers", *quick],
        "validate": ["validate", str(artifact)],
        "validate without a stored reference": ["validate", str(no_reference)],
        "doctor": ["doctor"],
        "recipe check": ["recipe", "check", str(recipe)],
    }
    code = f"""
import json
from click.testing import CliRunner
from exporter.cli import main
for name, arguments in {commands!r}.items():
    result = CliRunner().invoke(main, arguments)
    print(json.dumps({{"name": name, "exit": result.exit_code, "stdout": result.stdout, "stderr": result.stderr,
                      "exception": repr(result.exception) if result.exit_code not in (0, 1, 2, 3) else None}}))
"""
    results = {row["name"]: row for row in map(json.loads, run_on_a_deploy_install(code)[:-1])}
    build_extra = 'pip install "embedding-exporter[build]"'
    for name, row in results.items():
        assert "Traceback" not in row["stdout"] + row["stderr"], (name, row)
        assert row["exit"] in (0, 3), (name, row)
        if row["exit"] == 3:
            assert row["stderr"].strip().count("\n") == 0 and build_extra in row["stderr"], (name, row["stderr"])
    assert {name for name, row in results.items() if row["exit"] == 3} == {
        "run", "bench via sentence-transformers", "validate without a stored reference"}
    assert results["run"]["stderr"].startswith("error: building a recipe needs torch")
    assert not (tmp_path / "out").exists()
    assert "no stored reference" in results["validate without a stored reference"]["stderr"]

    bench = results["bench"]["stderr"]
    assert "onnx-fp32" in bench and "openvino-fp32-sentence" in bench and "texts/s" in bench
    assert "× torch" not in bench and "cos min" not in bench  # the torch columns are left out...
    assert "note: no torch reference" in bench and build_extra in bench  # ...and the output says why
    data = json.loads(results["bench --json"]["stdout"])
    assert data["reference"]["available"] is False
    assert [row["kind"] for row in data["results"]] == ["variant", "variant"]
    assert all(numbers["texts_per_second"] > 0 and numbers["ratio_to_torch"] is None
               for row in data["results"] for numbers in row["classes"].values())

    assert "Reference: stored reference (parity/)" in results["validate"]["stderr"]
    assert "all variants passed" in results["validate"]["stderr"]
    doctor = results["doctor"]["stdout"]
    assert "torch     UNUSABLE" in doctor and "exporting the demo model needs torch" in doctor and build_extra in doctor
    assert "ok" in results["recipe check"]["stdout"]
