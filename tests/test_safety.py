"""Deploy safety: nothing from an artifact executes unless the caller opts in, and the deployer owns the gate.

Hostile repos are uploaded to the local Hub server with ``HfApi`` as an attacker would (a doctored copy of a
real, validated tiny artifact whose manifest lists every added file with its true sha256, so integrity checks
alone let it through): a manifest asking for ``trust_remote_code``; a ``modules.json`` naming a module class
whose import writes a marker file; a listed ``.py``; a pickle whose unpickling writes a marker. Each refusal
is exit 2 with one line, after nothing but manifest.json (and modules.json) was downloaded, and no marker
ever appears. Thresholds: sub-floor values are bad input wherever written (recipe, file, manifest); loosened
ones are named in every report; ``validate`` and ``fetch --check`` hold artifacts to at least the defaults
unless told otherwise. Push re-runs every variant on the stored reference, so an edited graph or verdict
is refused; ``--no-verify`` pushes and says so.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SENTENCE_TRANSFORMERS_ONNX, write_recipe
from hub_fixtures import HUB_TOKEN, allow_hub_requests, client_defaults_at
from hub_server import HubServer

import exporter
from exporter import HostProfile, Manifest, choose_variant, read_manifest
from exporter.artifact import safety
from exporter.artifact.manifest import file_entry, write_manifest
from exporter.cli import main
from exporter.errors import NotValidatedError, ParityFailedError, UnsafeArtifactError
from exporter.runtime.runners import RunSpec, load_runner
from exporter.validators import default_thresholds, report_schema

RECIPE = """\
name: tiny-safety
model:
  id: test-org/tiny-bert
  path: {model}
variants:
  - {{backend: onnx}}
  - {{backend: onnx, precision: int8, quantization: {{isa: avx2}}, validation: {{thresholds: {{cosine_min: 0.9}}}}}}
  - {{backend: openvino}}
"""
FP32, INT8, OPENVINO = "onnx-fp32", "onnx-int8-dynamic-avx2", "openvino-fp32"
# What sentence-transformers loads here: ONNX needs optimum-onnx, which has no release beside sentence-transformers 6.
ST_LOADABLE = FP32 if SENTENCE_TRANSFORMERS_ONNX else OPENVINO
LOOSENED_INT8 = "cosine_min 0.9 < default 0.95"
GOOD_REPO = "test-user/tiny-safe"
PLUGIN = "exporter_marker_plugin"  # a module on sys.path whose import writes the marker file
EVIL_CODE = ("import os, pathlib\npathlib.Path(os.environ['EXPORTER_TEST_MARKER']).write_text('ran')\n\n\n"
             "class Evil:\n    pass\n")


class _WritesMarker:
    """Unpickling this opens (creates) the marker file: what a hostile pickle does, harmlessly."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


# ------------------------------------------------------------------------------------------ helpers


def cli(*args: str):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def assert_refused(result, *fragments: str) -> str:
    """Exit 2 with exactly one line on stderr (no traceback) containing every fragment; returns the line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def relist(folder: Path, manifest: Manifest, relative: str) -> None:
    """List ``relative`` with its true sha256 and size: in the variant that owns it, else as a shared file."""
    entry = file_entry(folder, relative)
    for variant in manifest.variants:
        if any(known.path == relative for known in variant.files):
            variant.files = [entry if known.path == relative else known for known in variant.files]
            return
    manifest.set_shared_file(entry)


def doctor_copy(artifact: Path, target: Path, change) -> Path:
    """A copy of the artifact changed by ``change(folder, manifest)``, its manifest rewritten to match."""
    folder = Path(shutil.copytree(artifact, target))
    manifest = read_manifest(folder)
    change(folder, manifest)
    write_manifest(folder, manifest)
    return folder


def upload(server: HubServer, repo_id: str, folder: Path) -> None:
    """Upload a folder as it is (as an attacker would: not through exporter.push, which re-verifies)."""
    from huggingface_hub import HfApi

    with client_defaults_at(server.url, server.token_path):
        api = HfApi(endpoint=server.url, token=HUB_TOKEN)
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id)


def file_gets(server: HubServer, repo_id: str) -> list[str]:
    """The files whose content was downloaded from ``repo_id`` (GET on /resolve/), in request order."""
    pattern = re.compile(r"^/" + re.escape(repo_id) + r"/resolve/[^/]+/(.+)$")
    return [match.group(1) for method, path in server.requests if method == "GET" and (match := pattern.match(path))]


def add_module(folder: Path, manifest: Manifest, class_ref: str) -> None:
    """Append a module naming ``class_ref`` to modules.json (listed with its new sha256)."""
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": "", "type": class_ref})
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    relist(folder, manifest, "modules.json")


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def built(tiny_model, tmp_path_factory):
    """The tiny artifact, built through ``exporter.run_recipe`` (the recipe loosens the int8 cosine_min to
    0.9) and validated with the recipe's thresholds: (folder, run summary)."""
    workdir = tmp_path_factory.mktemp("safety-artifact")
    recipe = write_recipe(workdir, RECIPE.format(model=tiny_model("bert")))
    result = exporter.run_recipe(recipe, output=workdir / "artifact")
    assert result.passed, result.build.report.failures()
    return result.build.output, result.summary()


@pytest.fixture(scope="module")
def artifact(built) -> Path:
    return built[0]


@pytest.fixture
def copy(artifact, tmp_path) -> Path:
    return Path(shutil.copytree(artifact, tmp_path / "artifact"))


@pytest.fixture(scope="module")
def hub(artifact, tmp_path_factory):
    """A local Hub holding the good artifact at GOOD_REPO (through exporter.push, which re-verifies it)."""
    from huggingface_hub.utils import close_session

    with HubServer(root=tmp_path_factory.mktemp("safety-hub"), token=HUB_TOKEN) as server, \
            pytest.MonkeyPatch.context() as monkeypatch:
        server.token_path = tmp_path_factory.mktemp("safety-token") / "token"
        allow_hub_requests(monkeypatch, server.token_path)
        folder = Path(shutil.copytree(artifact, tmp_path_factory.mktemp("safety-push") / "artifact"))
        server.pushed = exporter.push(folder, GOOD_REPO, endpoint=server.url, token=HUB_TOKEN)
        yield server
    close_session()


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Path:
    """The file hostile code would create; ``PLUGIN`` importable from sys.path (and forgotten afterwards)."""
    path = tmp_path / "MARKER"
    monkeypatch.setenv("EXPORTER_TEST_MARKER", str(path))
    plugins = tmp_path / "site"
    plugins.mkdir()
    (plugins / f"{PLUGIN}.py").write_text(EVIL_CODE)
    monkeypatch.syspath_prepend(str(plugins))
    yield path
    sys.modules.pop(PLUGIN, None)
    sys.modules.pop("modeling_evil", None)


# ------------------------------------------------------------------------------------------ the rule


@pytest.mark.parametrize("path", ["modeling_evil.py", "0_Transformer/__pycache__/x.cpython-311.pyc", "data.pkl",
                                  "x.pickle", "optimizer.pt", "rng_state.pth", "last.ckpt", "pytorch_model.bin",
                                  "2_Dense/pytorch_model-00001-of-00002.bin", "training_args.bin", "MODEL.PY"])
def test_code_and_pickles_are_unsafe(path):
    assert safety.unsafe_kind(path) in ("Python code", "a pickle")


@pytest.mark.parametrize("path", ["openvino/openvino_model.bin", "openvino/openvino_model_int8_static.bin",
                                  "onnx/model.onnx", "onnx/model.onnx_data", "model.safetensors", "vocab.txt",
                                  "modules.json", "parity/reference.npy", "tokenizer.json"])
def test_weights_and_configs_are_fine(path):
    assert safety.unsafe_kind(path) is None


def test_only_sentence_transformers_own_modules_are_allowed():
    assert safety.refused_module({"type": "sentence_transformers.models.Pooling"}) is None
    assert safety.refused_module({"type": "sentence_transformers.base.modules.transformer.Transformer"}) is None
    for class_ref in ("custom.Module", "sentence_transformers_evil.X", "modeling_x.Custom", ""):
        assert "not one of sentence-transformers' own" in safety.refused_module({"type": class_ref})
    assert "imports the classes" in safety.refused_module({"type": "sentence_transformers.models.Router"})


# ------------------------------------------------------------------------------------------ hostile repos


def test_a_manifest_asking_for_trust_is_reported_never_obeyed(hub, artifact, tmp_path, monkeypatch):
    def ask_for_trust(folder, manifest):
        manifest.source.trust_remote_code = True

    repo = "test-user/asks-for-trust"
    upload(hub, repo, doctor_copy(artifact, tmp_path / "asks", ask_for_trust))
    cache = tmp_path / "cache"
    result = cli("fetch", repo, "--endpoint", hub.url, "--variant", FP32, "--cache-dir", cache, "--json", "-q")
    assert result.exit_code == 0, result.stderr
    fetched = json.loads(result.stdout)
    assert fetched["trust_remote_code"] == {"recorded": True, "used": False}
    assert "records trust_remote_code: true; not used (only --trust-remote-code" in result.stderr

    import sentence_transformers

    passed = []
    real = sentence_transformers.SentenceTransformer

    def spy(*args, **kwargs):
        passed.append(kwargs.get("trust_remote_code"))
        return real(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", spy)
    exporter.load_sentence_transformer(repo, variant=ST_LOADABLE, endpoint=hub.url, cache_dir=cache)
    exporter.load_sentence_transformer(repo, variant=ST_LOADABLE, endpoint=hub.url, cache_dir=cache,
                                       trust_remote_code=True)
    assert passed == [False, True]  # only the caller's value reaches sentence-transformers

    local = doctor_copy(artifact, tmp_path / "local", ask_for_trust)
    report = exporter.validate(local)
    assert report.trust_remote_code == {"recorded": True, "used": False} and report.passed
    validated = cli("validate", local, "--json", "--quiet")
    assert json.loads(validated.stdout)["trust_remote_code"] == {"recorded": True, "used": False}
    assert "records trust_remote_code: true; not used" in validated.stderr


def test_a_custom_module_class_is_refused_and_never_imported(hub, artifact, tmp_path, marker):
    repo = "test-user/custom-module"
    upload(hub, repo, doctor_copy(artifact, tmp_path / "custom", lambda f, m: add_module(f, m, f"{PLUGIN}.Evil")))
    dest = tmp_path / "deploy" / "model"
    hub.clear_requests()
    line = assert_refused(cli("fetch", repo, "--endpoint", hub.url, "--dest", dest, "-q"),
                          "modules.json", f"'{PLUGIN}.Evil'", "not one of sentence-transformers' own",
                          "--trust-remote-code", "nothing but manifest.json and modules.json was downloaded")
    assert "trust_remote_code=True" not in line  # the CLI names its flag
    assert file_gets(hub, repo) == ["manifest.json", "modules.json"]  # verified, inspected, refused: nothing else
    assert not dest.exists() and not (tmp_path / "deploy").exists()  # nothing left behind
    with pytest.raises(UnsafeArtifactError, match="trust_remote_code=True") as raised:
        exporter.load(repo, endpoint=hub.url, cache_dir=tmp_path / "cache")
    assert raised.value.path == "modules.json" and raised.value.exit_code == 2
    assert not marker.exists() and PLUGIN not in sys.modules

    # a local copy: validate, load and the sentence-transformers runner (bench, doctor) refuse it too
    local = doctor_copy(artifact, tmp_path / "local", lambda f, m: add_module(f, m, f"{PLUGIN}.Evil"))
    assert_refused(cli("validate", local, "--quiet"), "modules.json", "--trust-remote-code")
    with pytest.raises(UnsafeArtifactError):
        exporter.load(local, variant=FP32)
    spec = RunSpec.for_variant(local, read_manifest(local), read_manifest(local).variant(FP32)).via(
        "sentence-transformers")
    with pytest.raises(UnsafeArtifactError):
        load_runner(spec)
    assert not marker.exists() and PLUGIN not in sys.modules

    # the control: the threat is real. With the caller's opt-in the artifact is fetched and
    # sentence-transformers imports the class, which writes the marker.
    with contextlib.suppress(Exception):
        exporter.load_sentence_transformer(repo, variant=ST_LOADABLE, endpoint=hub.url, cache_dir=tmp_path / "trusted",
                                           trust_remote_code=True)
    assert marker.read_text() == "ran"


def test_a_source_model_naming_a_custom_module_is_refused_at_build(tiny_model, tmp_path, marker):
    source = Path(shutil.copytree(tiny_model("bert"), tmp_path / "source"))
    modules = json.loads((source / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": "x", "path": "", "type": f"{PLUGIN}.Evil"})
    (source / "modules.json").write_text(json.dumps(modules))
    recipe = write_recipe(tmp_path, RECIPE.format(model=source))
    assert_refused(cli("run", recipe, "-q", "--output", tmp_path / "out"), "recipe.yaml: model:", f"{PLUGIN}.Evil",
                   "refusing the source model (set model.trust_remote_code: true in the recipe")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_listed_python_file_is_refused(hub, artifact, tmp_path, marker):
    def add_code(folder, manifest):
        (folder / "modeling_evil.py").write_text(EVIL_CODE)
        relist(folder, manifest, "modeling_evil.py")
        add_module(folder, manifest, "modeling_evil.Evil")  # sentence-transformers would load it from the folder

    repo = "test-user/listed-code"
    upload(hub, repo, doctor_copy(artifact, tmp_path / "code", add_code))
    hub.clear_requests()
    assert_refused(cli("fetch", repo, "--endpoint", hub.url, "--cache-dir", tmp_path / "cache", "-q"),
                   "lists modeling_evil.py (Python code", "--trust-remote-code",
                   "nothing but manifest.json was downloaded")
    assert file_gets(hub, repo) == ["manifest.json"]
    local = doctor_copy(artifact, tmp_path / "local", add_code)
    assert_refused(cli("fetch", local, "-q"), "modeling_evil.py")
    assert_refused(cli("validate", local, "--quiet"), "modeling_evil.py")
    assert not marker.exists() and "modeling_evil" not in sys.modules


def test_a_pickle_is_refused_and_never_unpickled(hub, artifact, tmp_path, marker):
    def add_pickle(folder, manifest):
        (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_WritesMarker(marker)))
        relist(folder, manifest, "pytorch_model.bin")

    repo = "test-user/pickle"
    upload(hub, repo, doctor_copy(artifact, tmp_path / "pickle", add_pickle))
    hub.clear_requests()
    result = cli("fetch", repo, "--endpoint", hub.url, "--dest", tmp_path / "dest", "--check", "-q")
    assert_refused(result, "lists pytorch_model.bin (a pickle", "--trust-remote-code")
    assert file_gets(hub, repo) == ["manifest.json"] and not (tmp_path / "dest").exists()
    local = doctor_copy(artifact, tmp_path / "local", add_pickle)
    with pytest.raises(UnsafeArtifactError) as raised:
        exporter.fetch_variant(local, variant=OPENVINO, check=True)
    assert raised.value.path == "pytorch_model.bin" and raised.value.reason == "a pickle"
    assert_refused(cli("validate", local, "--quiet"), "pytorch_model.bin")
    assert not marker.exists()
    # with the caller's opt-in it is fetched (and still never unpickled: the deploy runtime reads no pickle)
    encoder = exporter.load(repo, variant=OPENVINO, endpoint=hub.url, cache_dir=tmp_path / "cache",
                            trust_remote_code=True)
    assert (encoder.folder / "pytorch_model.bin").is_file() and encoder.encode("text").shape == (32,)
    assert not marker.exists()


def test_the_good_repo_fetches_openvino_weights_and_checks(hub, tmp_path):
    assert hub.pushed.verified and hub.pushed.verified_variants == [FP32, INT8, OPENVINO]
    result = cli("fetch", GOOD_REPO, "--endpoint", hub.url, "--variant", OPENVINO, "--cache-dir", tmp_path / "c",
                 "--check", "--json", "-q")
    assert result.exit_code == 0, result.stderr
    fetched = json.loads(result.stdout)
    assert "openvino/openvino_model.bin" in fetched["files"]  # OpenVINO weights are not pickles
    assert fetched["check"]["passed"] and fetched["check"]["policy"]["policy"] == "strict"
    assert fetched["trust_remote_code"] == {"recorded": False, "used": False}


# ------------------------------------------------------------------------------------------ thresholds


def test_sub_floor_thresholds_are_bad_input_in_recipes_files_and_manifests(tiny_model, copy, tmp_path, hub):
    recipe = write_recipe(tmp_path, RECIPE.format(model=tiny_model("bert")).replace(
        "variants:\n", "validation:\n  thresholds: {cosine_min: -1, spearman: -1}\nvariants:\n"), "loose.yaml")
    assert_refused(cli("recipe", "check", recipe), "loose.yaml:6: validation.thresholds.cosine_min: -1 is below the "
                                                   "sanity floor 0.5")
    assert_refused(cli("run", recipe, "-q", "--output", tmp_path / "out"), "loose.yaml:6", "sanity floor 0.5")
    assert not (tmp_path / "out").exists()

    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("cosine_min: 0.9\nneighbour_overlap: 0\n")
    assert_refused(cli("validate", copy, "--thresholds", thresholds, "--quiet"),
                   f"{thresholds}:2: neighbour_overlap: 0 is below the sanity floor 0.5")
    assert_refused(cli("fetch", copy, "--check", "--thresholds", thresholds, "-q"), f"{thresholds}:2")
    thresholds.write_text('{"cosine_min": 0.9, "colour": 1}')
    assert_refused(cli("validate", copy, "--thresholds", thresholds, "--quiet"), "colour: unknown key")
    assert_refused(cli("validate", copy, "--thresholds", "lenient", "--quiet"),
                   "--thresholds 'lenient': expected strict, defaults, artifact or a thresholds file")

    manifest = read_manifest(copy)
    manifest.variant(INT8).validation_thresholds = {"cosine_min": 0.1}
    write_manifest(copy, manifest)
    assert_refused(cli("validate", copy, "--quiet"),
                   f"variant '{INT8}': validation_thresholds.cosine_min: 0.1 is below the sanity floor 0.5")
    assert_refused(cli("push", copy, "--repo-id", "test-user/floor", "--endpoint", hub.url, "--token", HUB_TOKEN,
                       "-q"), "validation_thresholds.cosine_min")


def test_loosened_thresholds_are_named_in_every_report(built, copy, tmp_path):
    _, summary = built
    assert summary["loosened"] == [f"variant {INT8}: {LOOSENED_INT8}"]  # exporter run: the recipe's gate

    junit, markdown = tmp_path / "parity.xml", tmp_path / "parity.md"
    result = cli("validate", copy, "--thresholds", "artifact", "--json", "--junit", junit, "--markdown", markdown)
    assert result.exit_code == 0, result.stderr
    assert f"loosened: variant {INT8}: {LOOSENED_INT8}" in result.stderr.splitlines()
    report = json.loads(result.stdout)
    assert report["thresholds"]["policy"] == "artifact"
    variants = {v["name"]: v for v in report["variants"]}
    assert variants[INT8]["loosened"] == [{"check": "cosine_min", "required": 0.9, "default": 0.95}]
    assert variants[INT8]["thresholds"]["cosine_min"] == 0.9 and variants[FP32]["loosened"] == []
    stored = json.loads((copy / "parity_report.json").read_text())
    jsonschema.validate(stored, report_schema())
    assert stored["variants"][1]["loosened"][0]["check"] == "cosine_min"
    suite = ET.parse(junit).getroot().find(f"testsuite[@name='parity.{INT8}']")
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert properties == {"thresholds": "artifact", "loosened.cosine_min": LOOSENED_INT8}
    case = suite.find("testcase[@name='cosine_min']")
    assert case.find("system-out").text.endswith(f"(loosened: {LOOSENED_INT8})")
    assert f"**Loosened thresholds** (below the precision defaults): {LOOSENED_INT8}." in markdown.read_text()

    # the default: the stricter of the defaults and the artifact's, so nothing is loosened
    strict = cli("validate", copy, "--json", "--quiet")
    assert strict.exit_code == 0, strict.stderr
    assert "loosened" not in strict.stderr
    report = json.loads(strict.stdout)
    assert report["thresholds"]["policy"] == "strict"
    for variant in report["variants"]:
        assert variant["loosened"] == []
        assert variant["thresholds"] == default_thresholds(variant["precision"]).model_dump()
    jsonschema.validate(report, report_schema())

    card = exporter.write_card(copy, "test-user/tiny-safe").read_text()
    row = next(line for line in card.splitlines() if line.startswith(f"| `{INT8}`"))
    assert "✅ pass (loosened)" in row
    assert f"`{INT8}`: loosened: {LOOSENED_INT8}" in card
    fp32_row = next(line for line in card.splitlines() if line.startswith(f"| `{FP32}`"))
    assert "✅ pass |" in fp32_row


def test_fetch_check_holds_the_artifact_to_the_defaults_unless_told_otherwise(copy, tmp_path):
    """One stored reference text moved to cosine 0.93 from its embedding: above the recipe's loosened int8
    cosine_min (0.9), below the int8 default (0.95)."""
    reference = np.load(copy / "parity" / "reference.npy")
    row = reference[0].astype(np.float64)
    other = np.roll(row, 1) - np.roll(row, 1).dot(row) / row.dot(row) * row
    moved = 0.93 * row / np.linalg.norm(row) + np.sqrt(1 - 0.93**2) * other / np.linalg.norm(other)
    reference[0] = (moved * np.linalg.norm(row)).astype(np.float32)
    np.save(copy / "parity" / "reference.npy", reference)
    manifest = read_manifest(copy)
    relist(copy, manifest, "parity/reference.npy")
    write_manifest(copy, manifest)

    strict = cli("fetch", copy, "--variant", INT8, "--check", "-q")
    assert strict.exit_code == 1 and "cosine_min 0.93" in strict.stderr and "< required 0.95" in strict.stderr
    defaults = cli("fetch", copy, "--variant", INT8, "--check", "--thresholds", "defaults", "-q")
    assert defaults.exit_code == 1 and "< required 0.95" in defaults.stderr
    artifact = cli("fetch", copy, "--variant", INT8, "--check", "--thresholds", "artifact", "--json", "-q")
    assert artifact.exit_code == 0, artifact.stderr
    assert f"loosened: variant {INT8}: {LOOSENED_INT8}" in artifact.stderr
    check = json.loads(artifact.stdout)["check"]
    assert check["policy"]["policy"] == "artifact" and check["thresholds"]["cosine_min"] == 0.9
    assert check["loosened"] == [{"check": "cosine_min", "required": 0.9, "default": 0.95}]
    own = tmp_path / "deployer.json"
    own.write_text('{"cosine_min": 0.92}')
    mine = exporter.fetch_variant(copy, variant=INT8, check=True, thresholds=own)
    assert mine.check.passed and [str(item) for item in mine.check.loosened] == ["cosine_min 0.92 < default 0.95"]
    own.write_text('{"cosine_min": 0.935}')
    with pytest.raises(ParityFailedError, match=r"thresholds loosened: cosine_min 0.935 < default 0.95\)$"):
        exporter.fetch_variant(copy, variant=INT8, check=True, thresholds=own)
    with pytest.raises(ParityFailedError, match="< required 0.9999"):  # fp32 recorded no looser gate
        exporter.fetch_variant(copy, variant=FP32, check=True, thresholds="artifact")


def _variant(name: str, precision: str, cosine: float) -> dict:
    return {"name": name, "backend": "onnx", "precision": precision, "file_name": f"{name}.onnx",
            "quantization": {"method": "dynamic", "isa": "avx512_vnni"} if precision == "int8" else None,
            "files": [{"path": f"{name}.onnx", "sha256": "0" * 64, "size": 1}],
            "parity": {"passed": True, "cosine_min": cosine, "cosine_mean": 0.995, "neighbour_overlap": 0.95,
                       "spearman": 0.99}}


def test_the_automatic_choice_prefers_variants_that_pass_the_defaults():
    vnni = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2", "avx512f", "avx512_vnni"}),
                       runtimes={"onnxruntime": "1.31.1"})
    manifest = Manifest.parse({"schema_version": 1, "variants": [
        _variant("int8-loosened", "int8", 0.93), _variant("fp32", "fp32", 0.99999)]}, "test")
    choice = choose_variant(manifest, vnni)
    assert choice.name == "fp32"  # the int8 graph is estimated 2x faster, but passed only a loosened gate
    loose = next(c for c in choice.candidates if c.name == "int8-loosened")
    assert not loose.meets_defaults and loose.below_defaults == ["cosine_min 0.9300 < default 0.95"]
    only = choose_variant(manifest, vnni, precision="int8")
    assert only.name == "int8-loosened" and "passed only loosened thresholds: cosine_min 0.9300" in only.reason
    honest = Manifest.parse({"schema_version": 1, "variants": [
        _variant("int8", "int8", 0.96), _variant("fp32", "fp32", 0.99999)]}, "test")
    assert choose_variant(honest, vnni).name == "int8"


# ------------------------------------------------------------------------------------------ push re-verifies


def _negate_largest_initializer(path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    largest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)) if t.dims else 0)
    largest.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(largest), largest.name))
    onnx.save(model, str(path))


def test_push_refuses_a_graph_edited_to_change_its_embeddings(copy, hub):
    _negate_largest_initializer(copy / "onnx" / "model.onnx")
    manifest = read_manifest(copy)
    relist(copy, manifest, "onnx/model.onnx")  # the sha256 check alone now passes
    write_manifest(copy, manifest)
    repo = "test-user/edited-graph"
    hub.clear_requests()
    line = assert_refused_push(cli("push", copy, "--repo-id", repo, "--endpoint", hub.url, "--token", HUB_TOKEN,
                                   "-q"))
    assert f"{FP32} fails the recorded thresholds" in line and "re-run on the stored reference" in line
    assert f"variant {FP32}: cosine_min" in line and INT8 not in line.split("(")[0]
    assert hub.requests == []  # refused before the Hub was asked anything
    with pytest.raises(ParityFailedError) as raised:
        exporter.push(copy, repo, endpoint=hub.url, token=HUB_TOKEN)
    assert raised.value.failures and all(f.startswith(f"variant {FP32}: ") for f in raised.value.failures)

    # --no-verify pushes on the recorded verdict, and says so in the result and the commit
    result = cli("push", copy, "--repo-id", repo, "--endpoint", hub.url, "--token", HUB_TOKEN, "--no-verify",
                 "--json", "-q")
    assert result.exit_code == 0, result.stderr
    pushed = json.loads(result.stdout)
    assert pushed["verified"] is False and pushed["verified_variants"] == [] and pushed["created_commit"]
    from huggingface_hub import HfApi

    commit = HfApi(endpoint=hub.url, token=HUB_TOKEN).list_repo_commits(repo)[0]
    assert commit.commit_id == pushed["commit_oid"] and "Not re-verified before pushing" in commit.message
    good = HfApi(endpoint=hub.url, token=HUB_TOKEN).list_repo_commits(GOOD_REPO)[0]
    assert f"Re-verified before pushing: {FP32}, {INT8}, {OPENVINO}" in good.message


def assert_refused_push(result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_push_refuses_a_hand_edited_verdict(copy, hub, tiny_model):
    manifest = read_manifest(copy)
    manifest.variant(OPENVINO).validation_thresholds = {"cosine_min": 1.0, "spearman": 1.0}
    write_manifest(copy, manifest)
    report = exporter.validate(copy, record=True)  # the real validator: openvino-fp32 fails its recipe's gate
    assert [v.name for v in report.variants if not v.passed] == [OPENVINO]
    with pytest.raises(NotValidatedError):
        exporter.push(copy, "test-user/hand-edited", endpoint=hub.url, token=HUB_TOKEN)

    manifest = read_manifest(copy)  # the verdict edited by hand to read "passed"
    manifest.variant(OPENVINO).parity.passed = True
    write_manifest(copy, manifest)
    hub.clear_requests()
    line = assert_refused_push(cli("push", copy, "--repo-id", "test-user/hand-edited", "--endpoint", hub.url,
                                   "--token", HUB_TOKEN, "-q"))
    assert f"{OPENVINO} fails the recorded thresholds" in line and "< required 1" in line
    assert "although manifest.json records a pass" in line
    assert hub.requests == []
