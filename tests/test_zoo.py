"""A zoo at CI scale, on a tiny model: ``exporter plan`` keys, the build cache (restore, rebuild only what
changed, corruption detected) and ``exporter merge`` with its refusals. The MiniLM acceptance run (one process per
shard, merge == whole build, validate, push) is tests/test_zoo_minilm.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_recipe
from hub_fixtures import HUB_TOKEN

from exporter.artifact.integrity import list_files, sha256_file
from exporter.artifact.manifest import read_manifest
from exporter.cli import main

VARIANTS = """\
variants:
  - {backend: openvino, precision: fp32}
  - {backend: openvino, precision: fp16}
  - backend: onnx
    precision: int8
    quantization: {method: dynamic, per_channel: PER_CHANNEL}
"""


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def make_recipe(folder: Path, model: Path, per_channel: str = "true", name: str = "tiny-zoo") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_recipe(folder, f"name: {name}\nmodel:\n  path: {model}\n"
                        + VARIANTS.replace("PER_CHANNEL", per_channel))


def model_files(folder: Path) -> dict[str, str]:
    """sha256 of every file except the per-run records (manifest, parity report)."""
    return {path: sha256_file(folder / path) for path in list_files(folder) if path != "parity_report.json"}


def comparable(folder: Path) -> dict:
    """The manifest without the fields that record time and host (docs/ci-zoo.md)."""
    data = json.loads((folder / "manifest.json").read_text())
    data.pop("created_at")
    data["shared_files"] = [entry for entry in data["shared_files"] if entry["path"] != "parity_report.json"]
    for variant in data["variants"]:
        if variant.get("parity"):
            variant["parity"].pop("validated_on")
        search = (variant.get("quantization") or {}).get("search") or {}
        search.pop("seconds", None)  # how long the int8 rule's quantisations took
        for attempt in search.get("attempts") or []:
            attempt.pop("seconds", None)
    return data


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, tiny_model):
    """A tiny recipe built whole (with a cache), and as one shard per variant with a shared reference."""
    root = tmp_path_factory.mktemp("zoo")
    recipe = make_recipe(root / "recipes", tiny_model())
    planned = invoke("plan", str(recipe), "--json", "--reference-out", str(root / "ref"))
    assert planned.exit_code == 0, planned.output
    jobs = json.loads(planned.stdout)
    whole = invoke("run", str(recipe), "--output", str(root / "whole"), "--cache", str(root / "cache"), "--json")
    assert whole.exit_code == 0, whole.output
    for job in jobs:
        shard = invoke("run", job["recipe"], *job["args"].split(), "--reference", str(root / "ref"),
                       "--output", str(root / "shards" / job["id"]), "-q")
        assert shard.exit_code == 0, shard.output
    return {"root": root, "recipe": recipe, "jobs": jobs, "whole": json.loads(whole.stdout)}


def test_plan_lists_one_job_per_variant_with_keys_a_matrix_and_a_scheduler_can_take(zoo):
    jobs = zoo["jobs"]
    assert [job["variants"] for job in jobs] == [["openvino-fp32"], ["openvino-fp16"], ["onnx-int8-dynamic"]]
    assert all(len(job["key"]) == 64 and job["keys"] == {job["variants"][0]: job["key"]} for job in jobs)
    assert len({job["key"] for job in jobs}) == 3
    assert jobs[2]["isa"] and jobs[2]["args"] == f"--variant onnx-int8-dynamic --isa {jobs[2]['isa']}"
    assert jobs[0]["isa"] is None and jobs[0]["id"] == "tiny-zoo--openvino-fp32"
    lines = invoke("plan", str(zoo["recipe"]))
    assert lines.exit_code == 0
    rows = [line.split("\t") for line in lines.stdout.splitlines()]
    assert [(row[0], row[1], row[2], row[3]) for row in rows] == [
        (job["id"], job["recipe"], job["args"], job["key"]) for job in jobs]
    per_recipe = json.loads(invoke("plan", str(zoo["recipe"].parent), "--per", "recipe", "--json").stdout)
    assert len(per_recipe) == 1 and per_recipe[0]["keys"] == {job["variants"][0]: job["key"] for job in jobs}


def test_plan_key_follows_what_changes_the_files(zoo, tmp_path, tiny_model):
    keys = {job["variants"][0]: job["key"] for job in zoo["jobs"]}
    changed = make_recipe(tmp_path / "changed", tiny_model(), per_channel="false")
    after = {job["variants"][0]: job["key"] for job in json.loads(invoke("plan", str(changed), "--json").stdout)}
    assert after["onnx-int8-dynamic"] != keys["onnx-int8-dynamic"]
    assert {k: v for k, v in after.items() if k != "onnx-int8-dynamic"} == {
        k: v for k, v in keys.items() if k != "onnx-int8-dynamic"}
    model = tmp_path / "model"
    shutil.copytree(tiny_model(), model)
    (model / "config_sentence_transformers.json").write_text(
        (model / "config_sentence_transformers.json").read_text().replace("{", '{"similarity_fn_name": "cosine", ', 1))
    edited = make_recipe(tmp_path / "edited", model)
    moved = {job["variants"][0]: job["key"] for job in json.loads(invoke("plan", str(edited), "--json").stdout)}
    assert all(moved[name] != keys[name] for name in keys)  # a changed source file changes every key


def test_plan_missing_from_lists_only_jobs_the_cache_cannot_restore(zoo, tmp_path, tiny_model):
    cache = str(zoo["root"] / "cache")
    assert json.loads(invoke("plan", str(zoo["recipe"]), "--missing-from", cache, "--json").stdout) == []
    changed = make_recipe(tmp_path / "changed", tiny_model(), per_channel="false")
    missing = json.loads(invoke("plan", str(changed), "--missing-from", cache, "--json").stdout)
    assert [job["variants"] for job in missing] == [["onnx-int8-dynamic"]]
    assert invoke("plan", str(tmp_path / "nothing-here")).exit_code == 2


def test_cache_restores_every_variant_rebuilds_only_a_changed_one_and_detects_a_flipped_byte(zoo, tmp_path,
                                                                                              tiny_model):
    root, cache = zoo["root"], str(zoo["root"] / "cache")
    assert zoo["whole"]["restored"] == []
    warm = invoke("run", str(zoo["recipe"]), "--output", str(tmp_path / "warm"), "--cache", cache, "--json")
    assert warm.exit_code == 0, warm.output
    summary = json.loads(warm.stdout)
    assert summary["restored"] == ["openvino-fp32", "openvino-fp16", "onnx-int8-dynamic"]
    assert summary["revalidated"] == [] and summary["passed"] is True  # same CPU class: parity results kept
    assert model_files(tmp_path / "warm") == model_files(root / "whole")
    assert comparable(tmp_path / "warm") == comparable(root / "whole")

    changed = make_recipe(tmp_path / "changed", tiny_model(), per_channel="false")
    partial = json.loads(invoke("run", str(changed), "--output", str(tmp_path / "partial"), "--cache", cache,
                                "--json").stdout)
    assert partial["restored"] == ["openvino-fp32", "openvino-fp16"]  # only the changed variant was rebuilt

    key = next(job["key"] for job in zoo["jobs"] if job["variants"] == ["openvino-fp16"])
    entry = Path(cache) / key[:2] / key / "files" / "openvino" / "openvino_model_fp16.bin"
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0x01
    entry.write_bytes(bytes(data))
    again = invoke("run", str(zoo["recipe"]), "--output", str(tmp_path / "again"), "--cache", cache, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["restored"] == ["openvino-fp32", "onnx-int8-dynamic"]
    (line,) = json.loads(again.stdout)["cache_discarded"]
    assert line.startswith(f"openvino-fp16: cache entry {key[:12]} discarded (openvino/openvino_model_fp16.bin: ")
    assert model_files(tmp_path / "again") == model_files(root / "whole")  # rebuilt, byte for byte
    assert sha256_file(entry) == sha256_file(root / "whole" / "openvino" / "openvino_model_fp16.bin")  # re-stored


def test_merged_shards_equal_the_whole_build(zoo, tmp_path):
    root = zoo["root"]
    shards = sorted(str(path) for path in (root / "shards").iterdir())
    merged = invoke("merge", *shards, "--output", str(tmp_path / "merged"), "--json")
    assert merged.exit_code == 0, merged.output
    assert json.loads(merged.stdout)["passed"] is True
    assert model_files(tmp_path / "merged") == model_files(root / "whole")
    assert comparable(tmp_path / "merged") == comparable(root / "whole")
    report = json.loads((tmp_path / "merged" / "parity_report.json").read_text())
    assert [v["name"] for v in report["variants"]] == read_manifest(tmp_path / "merged").variant_names
    assert invoke("validate", str(tmp_path / "merged")).exit_code == 0


def test_a_merged_folder_pushes_and_downloads_as_built(zoo, tmp_path, hub_url):
    from huggingface_hub import snapshot_download

    shards = sorted(str(path) for path in (zoo["root"] / "shards").iterdir())
    assert invoke("merge", *shards, "--output", str(tmp_path / "merged")).exit_code == 0
    pushed = invoke("push", str(tmp_path / "merged"), "--repo-id", "test-user/tiny-zoo", "--endpoint", hub_url,
                    "--token", HUB_TOKEN, "--json")
    assert pushed.exit_code == 0, (pushed.output, pushed.stderr)
    assert json.loads(pushed.stdout)["verified"] is True  # push re-ran every merged variant first
    local = Path(snapshot_download("test-user/tiny-zoo", endpoint=hub_url, cache_dir=tmp_path / "cache"))
    assert {path: sha for path, sha in model_files(local).items() if path in model_files(zoo["root"] / "whole")} \
        == model_files(zoo["root"] / "whole")
    assert read_manifest(local).variant_names == read_manifest(zoo["root"] / "whole").variant_names


def test_merge_fills_missing_variants_from_the_cache(zoo, tmp_path):
    root = zoo["root"]
    one = str(root / "shards" / "tiny-zoo--openvino-fp32")
    merged = invoke("merge", one, "--output", str(tmp_path / "merged"), "--cache", str(root / "cache"),
                    "--recipe", str(zoo["recipe"]))
    assert merged.exit_code == 0, merged.output
    assert model_files(tmp_path / "merged") == model_files(root / "whole")
    assert invoke("merge", one, "--output", str(tmp_path / "m2"), "--cache", str(root / "cache")).exit_code == 2


def copy_shard(zoo, job_id: str, to: Path) -> Path:
    shutil.copytree(zoo["root"] / "shards" / job_id, to)
    return to


def test_merge_refuses_a_shard_that_does_not_match_its_manifest_exit_1(zoo, tmp_path):
    shard = copy_shard(zoo, "tiny-zoo--openvino-fp16", tmp_path / "fp16")
    graph = shard / "openvino" / "openvino_model_fp16.bin"
    data = bytearray(graph.read_bytes())
    data[10] ^= 0xFF
    graph.write_bytes(bytes(data))
    result = invoke("merge", str(zoo["root"] / "shards" / "tiny-zoo--openvino-fp32"), str(shard),
                    "--output", str(tmp_path / "merged"))
    assert result.exit_code == 1 and "openvino_model_fp16.bin" in result.stderr
    assert not (tmp_path / "merged").exists()


def test_merge_refuses_shards_of_different_recipes_or_one_variant_twice_exit_2(zoo, tmp_path, tiny_model):
    other = make_recipe(tmp_path / "other", tiny_model(), per_channel="false")
    built = invoke("run", str(other), "--variant", "openvino-fp32", "--output", str(tmp_path / "other-shard"), "-q")
    assert built.exit_code == 0, built.output
    fp16 = str(zoo["root"] / "shards" / "tiny-zoo--openvino-fp16")
    result = invoke("merge", fp16, str(tmp_path / "other-shard"), "--output", str(tmp_path / "merged"))
    assert result.exit_code == 2 and "different recipes" in result.stderr and "manifest.json" in result.stderr

    twin = copy_shard(zoo, "tiny-zoo--openvino-fp16", tmp_path / "twin")
    manifest = json.loads((twin / "manifest.json").read_text())
    xml = twin / "openvino" / "openvino_model_fp16.xml"
    xml.write_text(xml.read_text().replace("<net ", "<net  ", 1))
    entry = next(e for v in manifest["variants"] for e in v["files"] if e["path"].endswith("fp16.xml"))
    entry.update(sha256=sha256_file(xml), size=xml.stat().st_size)
    (twin / "manifest.json").write_text(json.dumps(manifest))
    result = invoke("merge", fp16, str(twin), "--output", str(tmp_path / "merged"))
    assert result.exit_code == 2
    assert "openvino_model_fp16.xml" in result.stderr and "different contents" in result.stderr
    assert not (tmp_path / "merged").exists()


# -- examples/ci/zoo.yml ------------------------------------------------------------------------------------

ZOO_YML = Path(__file__).resolve().parents[1] / "examples" / "ci" / "zoo.yml"


def exporter_invocations(text: str) -> list[list[str]]:
    """Every ``exporter ...`` command line in a shell script, as tokens up to the end of its command."""
    import re
    import shlex

    text = re.sub(r"\$\{\{[^}]*\}\}", "X", text).replace("\\\n", " ")
    text = re.sub(r"\$\((?!exporter)[^()]*\)", "X", text)  # other command substitutions
    found = []
    for match in re.finditer(r"(?:^|[\s;&|(`]|\$\()exporter\s+([^\n;&|)`>]*)", text):
        found.append(shlex.split(match.group(1)))
    return found


def run_scripts(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job.get("steps", []) if "run" in step]


def test_zoo_workflow_uses_only_commands_and_flags_that_exist():
    import click
    import yaml

    workflow = yaml.safe_load(ZOO_YML.read_text())
    invocations = [tokens for script in run_scripts(workflow) for tokens in exporter_invocations(script)]
    used = set()
    for tokens in invocations:
        command: click.Command = main
        while isinstance(command, click.Group):
            name, tokens = tokens[0], tokens[1:]
            assert name in command.commands, f"exporter {name}: no such command"
            command = command.commands[name]
        used.add(command.name)
        flags = {flag for param in command.params for flag in (*param.opts, *param.secondary_opts)}
        for token in tokens:
            if token.startswith("-"):
                assert token.split("=")[0] in flags, f"exporter {command.name}: no option {token}"
    assert {"plan", "run", "merge", "validate", "push"} <= used


def test_zoo_workflow_matrix_reads_fields_the_plan_gives(zoo):
    import re

    text = ZOO_YML.read_text()
    fields = set(re.findall(r"matrix\.job\.([a-z_]+)", text))
    assert fields and fields <= set(zoo["jobs"][0])
