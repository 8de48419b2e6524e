"""The CLI contract: bad input is exit 2 with one line naming file:line and field, and nothing written;
runs are atomic; recipe schema/check."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import RECIPES, REPO, write_recipe

from exporter import build
from exporter.cli import main

GOOD_VARIANTS = "variants:\n  - {backend: onnx}\n"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_bad_input(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message, message
    assert message.startswith("error: ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _model_block(path) -> str:
    return f"model:\n  path: {path}\n"


BAD_RECIPES = {
    "malformed yaml": ("name: tiny\nmodel: [unclosed\n", ["recipe.yaml:", "malformed YAML"]),
    "empty file": ("", ["recipe.yaml:1", "expected a mapping"]),
    "a list": ("- a\n- b\n", ["recipe.yaml:1", "expected a mapping"]),
    "unknown key": ("name: tiny\n{model}variants:\n  - backend: onnx\n    colour: red\n",
                    ["recipe.yaml:6", "variants[0].colour", "unknown key"]),
    "unknown top-level key": ("name: tiny\nflavour: x\n{model}" + GOOD_VARIANTS,
                              ["recipe.yaml:2", "flavour", "unknown key"]),
    "unknown backend": ("name: tiny\n{model}variants:\n  - backend: tensorrt\n",
                        ["recipe.yaml:5", "variants[0].backend", "'onnx'", "'openvino'", "'tensorrt'"]),
    "unknown precision": ("name: tiny\n{model}variants:\n  - backend: onnx\n    precision: int4\n",
                          ["recipe.yaml:6", "variants[0].precision", "'int4'"]),
    "unknown graph": ("name: tiny\n{model}variants:\n  - {{backend: onnx, graph: tokens}}\n",
                      ["variants[0].graph", "'tokens'"]),
    "missing name": ("{model}" + GOOD_VARIANTS, ["recipe.yaml:1", "name", "required"]),
    "no variants": ("name: tiny\n{model}variants: []\n", ["recipe.yaml:4", "variants"]),
    "no id or path": ("name: tiny\nmodel:\n  revision: main\n" + GOOD_VARIANTS,
                      ["recipe.yaml:2", "model", "id", "path"]),
    "bad name": ("name: ../escape\n{model}" + GOOD_VARIANTS, ["recipe.yaml:1", "name"]),
    "duplicate name": ("name: tiny\n{model}variants:\n  - {{backend: onnx, name: a}}\n"
                       "  - {{backend: openvino, name: a}}\n",
                       ["recipe.yaml:6", "variants[1]", "duplicate variant name 'a'"]),
    "bf16 on onnx": ("name: tiny\n{model}variants:\n  - {{backend: onnx, precision: bf16}}\n",
                     ["recipe.yaml:5",
                      "variants[0].precision: bf16 is built only for backend openvino | torch, not onnx"]),
    "exclude auto on weight_only": (
        "name: tiny\n{model}variants:\n  - backend: openvino\n    precision: int8\n"
        "    quantization: {{method: weight_only, exclude: auto}}\n",
        ["recipe.yaml:", "variants[0].quantization.exclude: auto is for static and dynamic int8, not weight_only"]),
    "same build twice": ("name: tiny\n{model}variants:\n  - {{backend: onnx}}\n  - {{backend: onnx, name: other}}\n",
                         ["recipe.yaml:6", "variants[1]", "same artifact as variant 0"]),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_bad_recipe_is_exit_2_with_one_line_and_nothing_written(case, workdir, tiny_model):
    body, fragments = BAD_RECIPES[case]
    recipe = write_recipe(
        workdir, body.replace("{model}", _model_block(tiny_model())).replace("{{", "{").replace("}}", "}")
    )
    assert_bad_input(invoke("run", str(recipe), "--output", "out"), *fragments)
    assert_bad_input(invoke("recipe", "check", str(recipe)), *fragments)
    assert sorted(p.name for p in workdir.iterdir()) == ["recipe.yaml"]


def test_missing_recipe_file(workdir):
    assert_bad_input(invoke("run", "nope.yaml"), "nope.yaml", "not found")


def test_missing_model_path(workdir):
    recipe = write_recipe(workdir, "name: tiny\nmodel:\n  path: does/not/exist\n" + GOOD_VARIANTS)
    assert_bad_input(invoke("run", str(recipe)), "model.path", "does/not/exist", "does not exist")
    assert_bad_input(invoke("recipe", "check", str(recipe)), "does not exist")
    assert not (workdir / "artifacts").exists()


def test_model_path_relative_to_recipe_not_cwd(workdir, tiny_model):
    (workdir / "recipes").mkdir()
    recipe = write_recipe(workdir / "recipes", "name: tiny\nmodel:\n  path: ../nothing-here\n" + GOOD_VARIANTS)
    assert_bad_input(invoke("recipe", "check", str(recipe)), str(workdir / "nothing-here"))


def test_path_that_is_not_a_sentence_transformers_model(workdir):
    (workdir / "empty-model").mkdir()
    recipe = write_recipe(workdir, "name: tiny\nmodel:\n  path: empty-model\n" + GOOD_VARIANTS)
    assert_bad_input(invoke("run", str(recipe)), "empty-model", "not a sentence-transformers model")
    assert not (workdir / "artifacts").exists()


def test_missing_package_resource(workdir):
    recipe = write_recipe(workdir, "name: tiny\nmodel:\n  path: package:no_such_package_xyz/model\n" + GOOD_VARIANTS)
    assert_bad_input(invoke("run", str(recipe)), "no_such_package_xyz", "not installed")


def test_output_that_is_a_file(workdir, tiny_model):
    recipe = write_recipe(workdir, "name: tiny\n" + _model_block(tiny_model()) + GOOD_VARIANTS)
    (workdir / "out").write_text("keep me")
    assert_bad_input(invoke("run", str(recipe), "--output", "out"), "out", "is a file")
    assert (workdir / "out").read_text() == "keep me"


def test_output_that_is_a_foreign_folder(workdir, tiny_model):
    recipe = write_recipe(workdir, "name: tiny\n" + _model_block(tiny_model()) + GOOD_VARIANTS)
    (workdir / "out").mkdir()
    (workdir / "out" / "notes.txt").write_text("keep me")
    assert_bad_input(invoke("run", str(recipe), "--output", "out"), "not an artifact folder")
    assert [p.name for p in (workdir / "out").iterdir()] == ["notes.txt"]


def test_unknown_variant_selected(workdir, tiny_model):
    recipe = write_recipe(workdir, "name: tiny\n" + _model_block(tiny_model()) + GOOD_VARIANTS)
    assert_bad_input(invoke("run", str(recipe), "--variant", "nope"), "no variant 'nope'", "onnx-fp32")


def test_run_json_summary_and_default_output(workdir, tiny_model):
    recipe = write_recipe(workdir, "name: tiny\n" + _model_block(tiny_model()) + GOOD_VARIANTS)
    result = invoke("run", str(recipe), "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["output"] == str(workdir / "artifacts" / "tiny")
    assert summary["variants"][0]["file_name"] == "onnx/model.onnx"
    assert (workdir / "artifacts" / "tiny" / "onnx" / "model.onnx").is_file()


class _InterruptAt:
    """A progress reporter that presses Ctrl-C when a step whose description contains ``text`` starts."""

    def __init__(self, text: str):
        self.text = text

    def step(self, description: str):
        import contextlib

        if self.text in description:
            raise KeyboardInterrupt
        return contextlib.nullcontext()

    def log(self, message: str) -> None:
        pass


def test_interrupted_run_leaves_previous_folder_untouched(workdir, tiny_model):
    recipe = write_recipe(workdir, "name: tiny\n" + _model_block(tiny_model()) + GOOD_VARIANTS)
    first = build(recipe, output="out", validate=False)
    before = {p.relative_to(first.output): p.read_bytes() for p in first.output.rglob("*") if p.is_file()}
    with pytest.raises(KeyboardInterrupt):
        build(recipe, output="out", validate=False, progress=_InterruptAt("Building"))
    after = {p.relative_to(first.output): p.read_bytes() for p in first.output.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in workdir.iterdir()) == ["out", "recipe.yaml"]  # no half folder beside it
    with pytest.raises(KeyboardInterrupt):
        build(recipe, output="fresh", validate=False, progress=_InterruptAt("Exporting"))
    assert not (workdir / "fresh").exists()


def test_rerun_replaces_a_previous_artifact_folder(workdir, tiny_model):
    recipe = write_recipe(workdir, "name: tiny\n" + _model_block(tiny_model()) + GOOD_VARIANTS)
    build(recipe, output="out", validate=False)
    (workdir / "out" / "stale.txt").write_text("from an older run")
    build(recipe, output="out", validate=False)
    assert not (workdir / "out" / "stale.txt").exists()
    assert sorted(p.name for p in workdir.iterdir()) == ["out", "recipe.yaml"]


def test_shipped_recipes_check(tmp_path, minilm_reranker_dir):
    # minilm-reranker's model.path is the folder examples/reranker/train_minilm_reranker.py writes into artifacts/.
    shutil.copytree(RECIPES, tmp_path / "recipes")
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "minilm-reranker-source").symlink_to(minilm_reranker_dir)
    for recipe in sorted((tmp_path / "recipes").glob("*.yaml")):
        result = invoke("recipe", "check", str(recipe))
        made_by = re.search(r"python (examples/\S+\.py) (\S+)", recipe.read_text())  # a model folder a script makes
        if made_by and not (tmp_path / made_by[2]).exists():  # not made here: the check names exactly that folder
            assert result.exit_code == 2 and f"{tmp_path / made_by[2]} does not exist" in result.stderr, result.stderr
            assert (REPO / made_by[1]).is_file()
            continue
        assert result.exit_code == 0, (recipe, result.stderr)
        assert "ok" in result.stdout


def test_recipe_schema_is_json_schema():
    schema = json.loads(invoke("recipe", "schema").stdout)
    assert schema["title"] == "exporter recipe"
    assert {"name", "model", "variants", "output"} <= set(schema["properties"])
    variant = schema["$defs"]["Variant"]["properties"]
    assert variant["backend"]["enum"] == ["onnx", "openvino", "torch"]
    assert "description" in variant["graph"]


def test_real_process_exit_code_and_help(tmp_path):
    bad = write_recipe(tmp_path, "name: x\nmodel: {path: .}\nvariants:\n  - backend: nope\n")
    process = subprocess.run([sys.executable, "-m", "exporter", "run", str(bad)], capture_output=True, text=True)
    assert process.returncode == 2
    assert "Traceback" not in process.stderr and process.stderr.count("\n") == 1
    help_text = subprocess.run([sys.executable, "-m", "exporter", "--help"], capture_output=True, text=True).stdout
    assert "not `export`" in help_text and "run" in help_text


def test_public_api_functions_stay_callable_after_their_modules_are_imported(tmp_path):
    """Importing a submodule binds its name on the package: a module named like a public function would
    replace it, so the second ``exporter.build(...)`` would call a module. Checked in a fresh process."""
    code = (
        "import exporter, exporter.cli, exporter.cli.push, exporter.cli.fetch\n"
        "for name in ('build', 'validate', 'push', 'fetch', 'load', 'load_recipe', "
        "'write_card', 'finalize_manifest'):\n"
        "    first = getattr(exporter, name); second = getattr(exporter, name)\n"
        "    assert callable(first) and second is first and not isinstance(second, type(exporter)), name\n"
        "import exporter.export.builder, exporter.publish.push, exporter.deploy.fetch, exporter.validators.parity\n"
        "assert exporter.build is exporter.export.builder.build and exporter.fetch is exporter.deploy.fetch.fetch\n"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert process.returncode == 0, process.stderr


def test_validators_folder_installs_inside_the_package(tmp_path):
    """The repository's validators/ folder is exporter.validators once installed: it never provides (and so
    never shadows) a top-level `validators` module such as PyPI's. Checked from outside the checkout."""
    code = (
        "import importlib.util, exporter.validators; "
        "spec = importlib.util.find_spec('validators'); "
        "print(exporter.validators.__name__, spec.origin if spec else None)"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert process.returncode == 0, process.stderr
    name, origin = process.stdout.split()
    assert name == "exporter.validators"
    assert origin == "None" or "site-packages/validators" in origin  # PyPI's, never ours


def test_same_recipe_builds_byte_identical_model_files(workdir, tiny_model):
    recipe = write_recipe(workdir, "name: tiny\n" + _model_block(tiny_model("bert", "cls", True, False)) +
                          "variants:\n  - {backend: onnx}\n  - {backend: openvino, graph: sentence}\n"
                          "  - {backend: onnx, precision: int8}\n  - {backend: onnx, precision: fp16}\n"
                          "  - {backend: openvino, precision: int8, quantization: {calibration: {samples: 12}}}\n")
    first = build(recipe, output="one", validate=False).manifest
    second = build(recipe, output="two", validate=False).manifest
    assert [v.files for v in first.variants] == [v.files for v in second.variants]
    assert first.shared_files == second.shared_files
