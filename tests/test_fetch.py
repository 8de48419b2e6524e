"""``exporter fetch`` / ``exporter.fetch`` / ``exporter.load`` against the local Hub server, with the real
huggingface_hub client and real runtimes, and the host-profile variant choice as a pure function.

One tiny BERT artifact (ONNX fp32 / fp16 / int8 for AVX-512 VNNI, OpenVINO fp32, an ONNX sentence graph) is
built and validated (parity against the torch model, reference stored in parity/) once per session, pushed
once per module to a module-scoped server; each test fetches into its own cache or destination folder.

The server is reached only through ``endpoint=`` / ``--endpoint``: the client's default endpoint is left
alone (as for a user without ``HF_ENDPOINT``), except around the few ``HfApi`` commits the tests make
themselves (``client_defaults_at``). Expected choices are the variant names a host profile must get.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SENTENCE_TRANSFORMERS_ONNX, write_recipe
from hub_fixtures import HUB_TOKEN, allow_hub_requests, client_defaults_at
from hub_server import HubServer

import exporter
from exporter import HostProfile, Manifest, choose_variant, fetch_variant, read_manifest
from exporter.artifact.integrity import sha256_file
from exporter.artifact.manifest import file_entry, write_manifest
from exporter.cli import main
from exporter.constants import BACKENDS, ENCODER_BACKENDS, METHODS, PRECISION_BACKENDS, PRECISIONS
from exporter.deploy.choice import assess, quantization_kind
from exporter.deploy.fetch import DOCUMENTATION_FILES, load_line
from exporter.deploy.speed_table import shipped_speed_table
from exporter.errors import (
    BadInputError,
    ExternalError,
    IntegrityError,
    ManifestError,
    NotFoundOnHubError,
    NotValidatedError,
    ParityFailedError,
)
from exporter.runtime.host import ISA_CLASSES
from exporter.runtime.packages import installed_version

REPO_ID = "test-user/tiny-fetch"
RECIPE = """\
name: tiny-fetch
model:
  id: test-org/tiny-bert
  path: {model}
variants:
  - {{backend: onnx}}
  - {{backend: onnx, precision: fp16}}
  - {{backend: onnx, precision: int8, quantization: {{isa: avx512_vnni}}}}
  - {{backend: openvino}}
  - {{backend: onnx, graph: sentence}}
"""
ALL_RUNTIMES = {"onnxruntime": "1.31.1", "openvino": "2026.4.1", "sentence-transformers": "5.7.0",
                "optimum-onnx": "0.1.0", "optimum-intel": "1.27.0", "torch": "2.13.0", "transformers": "4.57.6"}
AVX2_ONLY = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx", "avx2", "fma", "f16c"}), runtimes=ALL_RUNTIMES)
VNNI = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2", "avx512f", "avx512bw", "avx512_vnni"}),
                   runtimes=ALL_RUNTIMES)
ARM = HostProfile(arch="aarch64", cpu_flags=frozenset({"asimd", "asimddp"}), runtimes=ALL_RUNTIMES)
CUDA = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2"}), runtimes=ALL_RUNTIMES, cuda=True,
                   onnx_providers=("CUDAExecutionProvider", "CPUExecutionProvider"), gpus=("NVIDIA H100",))
AMX = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile",
                                                      "amx_int8", "amx_bf16"}),
                  runtimes=ALL_RUNTIMES, cpu_name="Intel(R) Xeon(R) Platinum 8480+")
ZEN4 = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}),
                   runtimes=ALL_RUNTIMES, cpu_name="AMD EPYC 9654 96-Core Processor")

# The artifact's int8 graph, quantised for AVX-512 VNNI: what a VNNI host gets (the speed table's estimate: x2
# over fp32, nothing was measured on AVX-512 VNNI CPUs without BF16).
VNNI_INT8 = "onnx-int8-dynamic-avx512-vnni"
VNNI_INT8_FILE = "onnx/model_int8_dynamic_avx512_vnni.onnx"

_BUILT: dict[str, Path] = {}


def built_artifact(tiny_model, tmp_path_factory) -> Path:
    """The tiny artifact, built and validated once per session (test_doctor uses it too). Read only."""
    if "artifact" not in _BUILT:
        from exporter.export.builder import build

        workdir = tmp_path_factory.mktemp("fetch-artifact")
        recipe = write_recipe(workdir, RECIPE.format(model=tiny_model("bert")))
        result = build(recipe, output=workdir / "artifact")
        assert result.report is not None and result.report.passed, result.report and result.report.failures()
        _BUILT["artifact"] = result.output
    return _BUILT["artifact"]


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def artifact(tiny_model, tmp_path_factory) -> Path:
    return built_artifact(tiny_model, tmp_path_factory)


@pytest.fixture(scope="module")
def hub(artifact, tmp_path_factory):
    """A module-scoped local Hub holding the artifact at REPO_ID (pushed with ``exporter.push``).

    ``pushed_manifest``: the pushed manifest (typed); ``pushed_json``: its JSON, for tests that upload a
    doctored copy; ``commit``: the pushed commit; ``token_path``: an empty token file for the client."""
    from huggingface_hub.utils import close_session

    with HubServer(root=tmp_path_factory.mktemp("fetch-hub"), token=HUB_TOKEN) as server, \
            pytest.MonkeyPatch.context() as monkeypatch:
        server.token_path = tmp_path_factory.mktemp("fetch-token") / "token"
        allow_hub_requests(monkeypatch, server.token_path)
        folder = Path(shutil.copytree(artifact, tmp_path_factory.mktemp("fetch-push") / "artifact"))
        pushed = exporter.push(folder, REPO_ID, endpoint=server.url, token=HUB_TOKEN)
        server.pushed_manifest = read_manifest(folder)
        server.pushed_json = (folder / "manifest.json").read_text(encoding="utf-8")
        server.commit = pushed.commit_oid
        yield server
    close_session()


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "hf-cache"


@pytest.fixture
def local_copy(artifact, tmp_path) -> Path:
    return Path(shutil.copytree(artifact, tmp_path / "local-artifact"))


def fetch_cli(*args: str):
    return CliRunner().invoke(main, ["fetch", *args])


def file_gets(server: HubServer) -> list[str]:
    """Paths of the files whose content was downloaded (GET on /resolve/), in request order."""
    pattern = re.compile(r"^/" + re.escape(REPO_ID) + r"/resolve/[^/]+/(.+)$")
    return [match.group(1) for method, path in server.requests if method == "GET" and (match := pattern.match(path))]


def expected_files(manifest: Manifest, name: str) -> set[str]:
    shared = {e.path for e in manifest.shared_files if e.path not in DOCUMENTATION_FILES}
    return shared | {e.path for e in manifest.variant(name).files} | {"manifest.json"}


def upload_manifest(server: HubServer, repo_id: str, data: dict, revision: str | None = None) -> None:
    """Commit a (doctored) manifest.json with ``HfApi``, whose commits need the client's defaults pointed."""
    from huggingface_hub import HfApi

    with client_defaults_at(server.url, server.token_path):
        api = HfApi(endpoint=server.url, token=HUB_TOKEN)
        api.create_repo(repo_id, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        api.upload_file(path_or_fileobj=json.dumps(data).encode(), path_in_repo="manifest.json", repo_id=repo_id,
                        revision=revision)


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and ".cache" not in p.relative_to(folder).parts}


def flip_byte(path: Path, offset: int = 100) -> None:
    path.chmod(0o644)
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


# ------------------------------------------------------------------------------------------ Hub fetch


def test_auto_fetch_downloads_only_the_chosen_variant_and_verifies(hub, cache):
    from huggingface_hub import constants

    assert constants.ENDPOINT != hub.url  # only endpoint= points the client at the server
    hub.clear_requests()
    result = fetch_variant(REPO_ID, host=VNNI, endpoint=hub.url, token=HUB_TOKEN, cache_dir=cache)
    fetched = result.to_dict()
    assert fetched["variant"] == VNNI_INT8 and fetched["device"] == "cpu"  # VNNI host: the int8 graph built for it
    assert fetched["reason"].startswith(f"{VNNI_INT8} for this host (x86_64, AVX2/AVX-512/VNNI (no AMX), no CUDA): "
                                        "onnx int8 (graph: transformer) on cpu, validated (cosine_min ")
    assert "estimated x2 for int8 on AVX-512 VNNI CPUs without BF16 (no measurement)" in fetched["reason"]
    assert fetched["commit"] == hub.commit and fetched["endpoint"] == hub.url and HUB_TOKEN not in json.dumps(fetched)
    manifest = hub.pushed_manifest
    chosen = manifest.variant(VNNI_INT8)
    assert chosen.validated and result.variant == chosen

    folder = Path(fetched["path"])
    assert folder.parent.name == "snapshots" and folder.name == hub.commit  # the cache's snapshot of the commit
    want = expected_files(manifest, VNNI_INT8)
    assert files_under(folder) == want == set(fetched["files"])  # only what arrived: no other variant, no docs
    assert set(file_gets(hub)) == want and len(file_gets(hub)) == len(want)  # each downloaded once
    assert set(fetched["skipped"]) == {"README.md", "parity_report.json"}
    entries = manifest.entries()
    for path in want - {"manifest.json"}:
        assert sha256_file(folder / path) == entries[path].sha256, path
    assert fetched["python"] == (f'import exporter; model = exporter.load_encoder("{folder}", "{VNNI_INT8}"); '
                                 'model.encode(["first text", "second text"])')

    # the second fetch of the same revision downloads nothing (at most metadata HEADs)
    hub.clear_requests()
    again = fetch_variant(REPO_ID, host=VNNI, endpoint=hub.url, token=HUB_TOKEN, cache_dir=cache)
    assert again.path == folder and again.name == VNNI_INT8 and again.downloaded == []
    assert file_gets(hub) == [] and all(method != "GET" or "/resolve/" not in path for method, path in hub.requests)

    # offline (HF_HUB_OFFLINE): the cache alone, no request at all
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    hub.clear_requests()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        close_session()
        offline = fetch_variant(REPO_ID, host=VNNI, endpoint=hub.url, token=HUB_TOKEN, cache_dir=cache)
        assert offline.path == folder and offline.downloaded == []
        with pytest.raises(BadInputError, match="HF_HUB_OFFLINE is set and downloading manifest.json"):
            fetch_variant(REPO_ID, endpoint=hub.url, cache_dir=cache.parent / "empty-cache")  # not cached
    close_session()
    assert hub.requests == []


def test_load_returns_a_ready_encoder_and_sentence_transformer(hub, cache):
    # sentence-transformers 6 cannot load ONNX (no optimum-onnx for transformers 5): compare on OpenVINO there
    backend = None if SENTENCE_TRANSFORMERS_ONNX else "openvino"
    model = exporter.load(REPO_ID, endpoint=hub.url, token=HUB_TOKEN, cache_dir=cache, graph="transformer",
                          backend=backend)
    assert isinstance(model, exporter.Encoder) and model.variant.graph == "transformer"
    embeddings = model.encode(["hello world", "a second, longer text"])
    assert embeddings.shape == (2, hub.pushed_manifest.source.dimension) and embeddings.dtype == np.float32
    assert np.isfinite(embeddings).all()
    st_model = exporter.load_sentence_transformer(REPO_ID, variant=model.variant.name, endpoint=hub.url,
                                                  token=HUB_TOKEN, cache_dir=cache)
    same = st_model.encode(["hello world", "a second, longer text"])
    cosines = (same * embeddings).sum(axis=1) / np.linalg.norm(same, axis=1) / np.linalg.norm(embeddings, axis=1)
    assert cosines.min() >= 0.99999  # both paths load the same validated variant with the same numerics
    path = exporter.fetch(REPO_ID, endpoint=hub.url, token=HUB_TOKEN, cache_dir=cache, graph="transformer")
    assert (path / "manifest.json").is_file()


def test_fetch_into_dest_twice_and_a_damaged_local_file_is_replaced(hub, tmp_path):
    dest = tmp_path / "deploy"
    result = fetch_cli(REPO_ID, "--endpoint", hub.url, "--variant", "onnx-fp32", "--dest", str(dest), "-q")
    assert result.exit_code == 0, (result.output, result.stderr)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Chose onnx-fp32 as asked") and lines[1] == str(dest)
    assert lines[2] == (f'import exporter; model = exporter.load_encoder("{dest}", "onnx-fp32"); '
                        'model.encode(["first text", "second text"])')
    assert files_under(dest) == expected_files(hub.pushed_manifest, "onnx-fp32")
    assert not any(p.is_symlink() for p in dest.rglob("*"))

    hub.clear_requests()
    assert fetch_variant(REPO_ID, endpoint=hub.url, variant="onnx-fp32", dest=dest).downloaded == []
    assert file_gets(hub) == []

    # a file damaged after it was accepted (or a half-written one) is caught, deleted and downloaded again
    (dest / "onnx" / "model.onnx").write_bytes(b"truncated")
    hub.clear_requests()
    repaired = fetch_variant(REPO_ID, endpoint=hub.url, variant="onnx-fp32", dest=dest)
    assert repaired.downloaded == ["onnx/model.onnx"] and file_gets(hub) == ["onnx/model.onnx"]
    entry = hub.pushed_manifest.variant("onnx-fp32").files[0]
    assert sha256_file(dest / "onnx" / "model.onnx") == entry.sha256


def test_interrupted_download_is_never_accepted(hub, cache):
    """A leftover ``<etag>.incomplete`` blob with wrong bytes (what a killed download leaves) never makes it into
    the result. Clients before 1.21 resume from it: the result fails verification and is replaced by a full
    download (two GETs, and the leftover is gone). From 1.21 on the client downloads to a file of its own per
    process and never reads the leftover (one GET)."""
    entry = hub.pushed_manifest.variant("onnx-fp32").files[0]
    blobs = cache / ("models--" + REPO_ID.replace("/", "--")) / "blobs"
    blobs.mkdir(parents=True)
    leftover = blobs / f"{entry.sha256}.incomplete"
    leftover.write_bytes(b"\0garbage" * 1000)
    hub.clear_requests()
    result = fetch_variant(REPO_ID, endpoint=hub.url, variant="onnx-fp32", cache_dir=cache)
    assert sha256_file(result.path / "onnx" / "model.onnx") == entry.sha256
    gets = file_gets(hub).count("onnx/model.onnx")
    if gets == 2:  # resumed from the leftover, refused by its sha256, downloaded whole
        assert not list(blobs.glob("*.incomplete"))
    else:  # the leftover was not read: one download, and no partial file of this fetch is left
        assert gets == 1 and list(blobs.glob("*.incomplete")) == [leftover]
    assert "onnx/model.onnx" in result.files and result.name == "onnx-fp32"


def test_tampered_blob_on_the_server_fails_naming_the_file(hub, cache):
    entry = hub.pushed_manifest.variant("onnx-fp32").files[0]
    blob = hub.storage.blob_path(entry.sha256)
    original = blob.read_bytes()
    flip_byte(blob)
    try:
        hub.clear_requests()
        result = fetch_cli(REPO_ID, "--endpoint", hub.url, "--variant", "onnx-fp32", "--cache-dir", str(cache))
    finally:
        blob.write_bytes(original)
    assert result.exit_code == 1, (result.output, result.stderr)
    assert "onnx/model.onnx" in result.stderr and "sha256" in result.stderr and "deleted" in result.stderr
    assert file_gets(hub).count("onnx/model.onnx") == 2  # deleted, downloaded once more, refused
    assert not list(cache.rglob("model.onnx"))  # nothing left that a later fetch could accept
    # the blob restored: the same cache now fetches fine
    assert fetch_variant(REPO_ID, endpoint=hub.url, variant="onnx-fp32", cache_dir=cache).name == "onnx-fp32"


def test_manifest_with_a_wrong_sha256_fails_naming_the_file(hub, cache):
    manifest = json.loads(hub.pushed_json)
    entry = next(e for e in manifest["shared_files"] if e["path"] == "config.json")
    entry["sha256"] = "0" * 64
    upload_manifest(hub, REPO_ID, manifest, revision="wrong-sha")
    result = fetch_cli(REPO_ID, "--endpoint", hub.url, "--revision", "wrong-sha", "--cache-dir", str(cache))
    assert result.exit_code == 1, (result.output, result.stderr)
    assert "error: config.json: sha256" in result.stderr and "downloaded twice" in result.stderr
    with pytest.raises(IntegrityError, match="downloaded twice") as raised:
        fetch_variant(REPO_ID, endpoint=hub.url, revision="wrong-sha", cache_dir=cache)
    assert raised.value.path == "config.json"


@pytest.mark.parametrize("bad_path", ["../outside.txt", "ABSOLUTE"])
def test_unsafe_manifest_paths_are_refused_and_nothing_is_written_outside(hub, tmp_path, bad_path):
    outside = tmp_path / "outside.txt"
    bad_path = str(outside) if bad_path == "ABSOLUTE" else bad_path
    manifest = json.loads(hub.pushed_json)
    manifest["shared_files"].append({"path": bad_path, "sha256": "0" * 64, "size": 3})
    repo = f"test-user/unsafe-{'abs' if bad_path.startswith('/') else 'dotdot'}"
    upload_manifest(hub, repo, manifest)
    work = tmp_path / "work"
    work.mkdir()
    dest = work / "sub" / "dest"
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    result = fetch_cli(repo, "--endpoint", hub.url, "--dest", str(dest))
    assert result.exit_code == 2, (result.output, result.stderr)
    assert "unsafe path" in result.stderr and bad_path in result.stderr
    assert not outside.exists() and not dest.exists()  # refused before any file but the manifest, removed again
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before
    with pytest.raises(ManifestError, match="unsafe path"):  # the cache, too: refused before any file
        fetch_variant(repo, endpoint=hub.url, cache_dir=tmp_path / "cache")
    assert not outside.exists()


def test_unknown_repo_and_revision_are_bad_input(hub, cache):
    missing = fetch_cli("test-user/no-such-repo", "--endpoint", hub.url, "--cache-dir", str(cache))
    assert missing.exit_code == 2 and "test-user/no-such-repo: repository not found" in missing.stderr
    revision = fetch_cli(REPO_ID, "--endpoint", hub.url, "--revision", "nope", "--cache-dir", str(cache))
    assert revision.exit_code == 2 and f"{REPO_ID}: revision 'nope' not found" in revision.stderr
    with pytest.raises(NotFoundOnHubError) as raised:
        fetch_variant(REPO_ID, endpoint=hub.url, revision="nope", cache_dir=cache)
    assert (raised.value.repo_id, raised.value.revision) == (REPO_ID, "nope")
    with pytest.raises(BadInputError, match=r"revision= and endpoint= apply to Hub repos"):  # parameters, not flags
        fetch_variant(cache.parent, revision="main")
    with pytest.raises(BadInputError, match=r"^endpoint='ftp://hub': expected an http\(s\) URL"):
        fetch_variant(REPO_ID, endpoint="ftp://hub", cache_dir=cache)


def test_check_passes_on_this_host(hub, cache):
    result = fetch_cli(REPO_ID, "--endpoint", hub.url, "--cache-dir", str(cache), "--variant", "onnx-fp32",
                       "--check", "--json")
    assert result.exit_code == 0, (result.output, result.stderr)
    check = json.loads(result.stdout)["check"]
    assert check["passed"] is True and check["failures"] == []
    assert check["measured"]["cosine_min"] >= check["thresholds"]["cosine_min"] == 0.9999
    assert check["policy"]["policy"] == "strict" and check["loosened"] == []  # at least the defaults, by default


def test_cli_fetch_with_endpoint_in_a_process_without_hf_endpoint(hub, tmp_path):
    """``exporter fetch REPO --endpoint URL`` as a user runs it: a fresh process whose environment has no
    HF_ENDPOINT (nor HF_HUB_OFFLINE, nor a token), so only --endpoint can point it at the server."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGING_FACE_"))}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1")
    cache = tmp_path / "cache"
    hub.clear_requests()
    process = subprocess.run(
        [sys.executable, "-m", "exporter", "fetch", REPO_ID, "--endpoint", hub.url, "--token", HUB_TOKEN,
         "--backend", "openvino", "--cache-dir", str(cache), "--json"],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert process.returncode == 0, process.stderr
    fetched = json.loads(process.stdout)
    assert fetched["variant"] == "openvino-fp32" and fetched["endpoint"] == hub.url and fetched["commit"] == hub.commit
    folder = Path(fetched["path"])
    assert folder.is_relative_to(cache) and files_under(folder) == expected_files(hub.pushed_manifest, "openvino-fp32")
    assert set(file_gets(hub)) == set(fetched["files"])  # every file came from the local server
    assert fetched["python"] == (f'import exporter; model = exporter.load_encoder("{folder}", "openvino-fp32"); '
                                 'model.encode(["first text", "second text"])')
    assert HUB_TOKEN not in process.stdout + process.stderr


# ------------------------------------------------------------------------------------------ local folders


def test_local_folder_verified_in_place_and_copied_to_dest(local_copy, tmp_path):
    result = fetch_variant(local_copy, variant="openvino-fp32")
    assert result.path == local_copy and result.kind == "local" and result.downloaded == []
    dest = tmp_path / "dest"
    copied = fetch_variant(local_copy, variant="openvino-fp32", dest=dest)
    assert files_under(dest) == expected_files(read_manifest(local_copy), "openvino-fp32")
    assert copied.python_line() == (f'import exporter; model = exporter.load_encoder("{dest}", "openvino-fp32"); '
                                    'model.encode(["first text", "second text"])')
    assert set(copied.downloaded) == files_under(dest)
    assert fetch_variant(local_copy, variant="openvino-fp32", dest=dest).downloaded == []  # nothing copied again
    assert not list(dest.rglob("*.part"))
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(BadInputError, match=rf"^dest='{re.escape(str(not_a_folder))}': exists and is not a folder$"):
        fetch_variant(local_copy, variant="openvino-fp32", dest=not_a_folder)


def test_local_tampered_file_fails_and_is_not_deleted(local_copy):
    flip_byte(local_copy / "onnx" / "model.onnx")
    result = fetch_cli(str(local_copy), "--variant", "onnx-fp32")
    assert result.exit_code == 1 and "onnx/model.onnx" in result.stderr and "sha256" in result.stderr
    with pytest.raises(IntegrityError) as raised:
        fetch_variant(local_copy, variant="onnx-fp32")
    assert raised.value.path == "onnx/model.onnx"
    assert (local_copy / "onnx" / "model.onnx").is_file()  # a user's folder is never touched


def test_check_fails_when_this_hosts_numerics_break_the_thresholds(local_copy):
    """A reference the variant does not reproduce (here: altered, with the manifest updated to match it)."""
    reference = np.load(local_copy / "parity" / "reference.npy")
    reference[:, : reference.shape[1] // 2] *= -1
    np.save(local_copy / "parity" / "reference.npy", reference)
    manifest = read_manifest(local_copy)
    manifest.set_shared_file(file_entry(local_copy, "parity/reference.npy"))
    write_manifest(local_copy, manifest)
    result = fetch_cli(str(local_copy), "--variant", "onnx-fp32", "--check")
    assert result.exit_code == 1, (result.output, result.stderr)
    assert "onnx-fp32 on this host" in result.stderr and "cosine_min" in result.stderr
    with pytest.raises(ParityFailedError) as raised:
        fetch_variant(local_copy, variant="onnx-fp32", check=True)
    assert any("cosine_min" in failure for failure in raised.value.failures)


def test_load_runs_sentence_graphs_and_refuses_a_local_unsafe_manifest(local_copy):
    encoder = exporter.load(local_copy, variant="onnx-fp32-sentence")
    assert encoder.encode("one text").shape == (read_manifest(local_copy).source.dimension,)
    with pytest.raises(BadInputError, match="graph: sentence"):
        exporter.load_sentence_transformer(local_copy, variant="onnx-fp32-sentence")
    raw = json.loads((local_copy / "manifest.json").read_text(encoding="utf-8"))  # what the typed model refuses
    raw["variants"][0]["files"][0]["path"] = "/etc/passwd"
    (local_copy / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
    result = fetch_cli(str(local_copy), "--dest", str(local_copy.parent / "d"))
    assert result.exit_code == 2 and "unsafe path" in result.stderr and not (local_copy.parent / "d").exists()


# ------------------------------------------------------------------------------------------ the choice


def variant(name: str, backend: str = "onnx", precision: str = "fp32", graph: str = "transformer", *,
            quantization: dict | None = None, cosine: float = 0.9999, passed: bool | None = True,
            bench: dict | None = None) -> dict:
    entry = {"name": name, "backend": backend, "precision": precision, "graph": graph, "file_name": f"{name}.bin",
             "quantization": quantization, "files": [{"path": f"{name}.bin", "sha256": "0" * 64, "size": 1}]}
    if passed is not None:
        entry["parity"] = {"passed": passed, "cosine_min": cosine}
    if bench is not None:
        entry["bench"] = bench
    return entry


def manifest_of(*variants: dict) -> Manifest:
    """A typed manifest, parsed as a downloaded manifest.json would be."""
    return Manifest.parse({"schema_version": 1, "shared_files": [], "variants": list(variants)}, "test manifest")


MIXED_VARIANTS = (
    variant("onnx-fp32", cosine=0.99999),
    variant("onnx-fp16", precision="fp16", cosine=0.9999),
    variant("onnx-int8-vnni", precision="int8", quantization={"method": "dynamic", "isa": "avx512_vnni"}, cosine=0.990),
    variant("openvino-fp32", backend="openvino", cosine=0.99998),
    variant("openvino-int8", backend="openvino", precision="int8", quantization={"method": "static"}, cosine=0.985),
    variant("onnx-fp32-sentence", graph="sentence", cosine=0.99999),
)
MIXED = manifest_of(*MIXED_VARIANTS)


def by_name(choice) -> dict:
    return {c.name: c for c in choice.candidates}


def table_speed(manifest: Manifest, name: str, host: HostProfile) -> float:
    """The shipped speed table's speed for variant ``name`` of ``manifest`` on ``host`` (it must have a row)."""
    entry = manifest.variant(name)
    row = shipped_speed_table().lookup(host.isa_class, entry.backend, entry.precision, quantization_kind(entry))
    assert row is not None, f"no speed table row for {name} on {host.isa_class}"
    return row.speed_for()[1]


def test_avx2_only_host_avoids_int8_built_for_vnni():
    choice = choose_variant(MIXED, AVX2_ONLY)
    # without VNNI, OpenVINO's int8 is slower than its fp32 (simulated AVX2 rows): fp32 wins
    assert choice.name == "openvino-fp32"
    int8 = by_name(choice)["openvino-int8"]
    assert int8.fit == "good" and int8.speed < by_name(choice)["openvino-fp32"].speed
    assert int8.speed_source == "table avx2 simulated" and "limited to AVX2" in int8.speed_text
    vnni = by_name(choice)["onnx-int8-vnni"]
    assert vnni.fit == "poor" and "no VNNI" in vnni.notes[0] and "saturate" in vnni.notes[0]
    assert "onnx-int8-vnni (poor" in choice.reason and "AVX2 (no AVX-512, no VNNI, no AMX)" in choice.reason
    # rows nothing measured stay estimates, and the reason says so
    fp16 = by_name(choose_variant(MIXED, AVX2_ONLY, precision="fp16"))["onnx-fp16"]
    assert fp16.speed_source == "table avx2 estimated" and "(no measurement)" in fp16.speed_text
    # even when asked for ONNX int8 only, the choice says it is poor here
    only = choose_variant(MIXED, AVX2_ONLY, backend="onnx", precision="int8")
    assert only.name == "onnx-int8-vnni" and "fit: poor" in only.reason
    # without it, ONNX on AVX2 is fp32 (fp16 only halves the file on CPUs)
    assert choose_variant(MIXED, AVX2_ONLY, backend="onnx", graph="transformer",
                          precision=None, min_cosine=0.995).name == "onnx-fp32"


def test_vnni_host_takes_the_vnni_int8():
    choice = choose_variant(MIXED, VNNI)
    vnni_int8 = by_name(choice)["onnx-int8-vnni"]
    assert vnni_int8.fit == "good"
    assert vnni_int8.speed == 2.0 and vnni_int8.speed_source == "table avx512_vnni estimated"
    assert by_name(choice)["openvino-int8"].speed_source == "table avx512_vnni simulated"
    assert choice.name == max(("onnx-int8-vnni", "openvino-int8"), key=lambda name: table_speed(MIXED, name, VNNI))
    assert choose_variant(MIXED, VNNI, min_cosine=0.995).variant.precision == "fp32"  # --min-cosine: no int8
    # AMX accelerates int8 too, but there the measured rows decide between the int8 graphs, not the x2 estimate
    amx = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2", "amx_int8", "amx_tile"}), runtimes=ALL_RUNTIMES)
    assert amx.amx and amx.int8_accelerated and amx.isa_class == "amx"
    int8 = choose_variant(MIXED, amx, precision="int8")
    assert int8.name == max(("onnx-int8-vnni", "openvino-int8"), key=lambda name: table_speed(MIXED, name, amx))
    assert by_name(int8)[int8.name].speed_source == "table amx measured"


def test_arm_host():
    choice = choose_variant(MIXED, ARM)
    assert ARM.arch == "arm64" and ARM.arm_dot and ARM.int8_isa() == "arm64"
    candidates = by_name(choice)
    assert candidates["onnx-int8-vnni"].fit == "good"  # ARM kernels do not saturate
    assert candidates["openvino-int8"].fit == "check" and "ARM" in candidates["openvino-int8"].notes[0]
    assert candidates["openvino-fp32"].fit == "good" and "check=True" in candidates["openvino-fp32"].notes[0]
    assert choice.name == "onnx-int8-vnni"
    assert choose_variant(MIXED, ARM, backend="openvino").name == "openvino-fp32"  # fine, with a check note
    assert "check it once on this host (fetch with check=True)" in choose_variant(MIXED, ARM, backend="openvino").reason


def test_cuda_host_prefers_onnx_fp16_on_the_gpu():
    choice = choose_variant(MIXED, CUDA)
    assert choice.name == "onnx-fp16" and choice.device == "cuda" and "on cuda" in choice.reason
    assert by_name(choice)["onnx-fp16"].speed_source == "estimate"  # the GPU keeps its estimate
    assert "estimated x4 for fp16 on this GPU" in choice.reason
    assert by_name(choice)["onnx-int8-vnni"].device == "cpu"
    assert by_name(choice)["onnx-int8-vnni"].speed_source == "table avx2 measured"  # the CPU side: the table
    assert load_line(Path("/m"), choice.variant, choice.device) == (
        'import exporter; model = exporter.load_encoder("/m", "onnx-fp16", device="cuda"); '
        'model.encode(["first text", "second text"])')
    sentence = MIXED.variant("onnx-fp32-sentence")
    assert load_line(Path("/m"), sentence) == (
        'import exporter; model = exporter.load_encoder("/m", "onnx-fp32-sentence"); '
        'model.encode(["first text", "second text"])')
    no_fp16 = manifest_of(*[v for v in MIXED_VARIANTS if v["name"] != "onnx-fp16"])
    assert choose_variant(no_fp16, CUDA).name == "onnx-fp32"
    # a GPU but a CPU-only onnxruntime: runs on the CPU, and says why
    cpu_ort = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2"}), runtimes=ALL_RUNTIMES, cuda=True)
    fallback = choose_variant(MIXED, cpu_ort)
    assert fallback.device == "cpu" and "no CUDAExecutionProvider" in fallback.reason


def test_missing_runtimes_exclude_their_backend():
    without = ("openvino", "optimum-intel")
    no_openvino = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2"}),
                              runtimes={k: v for k, v in ALL_RUNTIMES.items() if k not in without})
    choice = choose_variant(MIXED, no_openvino)
    assert choice.variant.backend == "onnx" and choice.name == "onnx-fp32"
    assert "pip install openvino" in by_name(choice)["openvino-fp32"].excluded
    assert by_name(choice)["openvino-fp32"].exclusion == "runtime"
    with pytest.raises(ExternalError, match="pip install openvino"):
        choose_variant(MIXED, no_openvino, backend="openvino")
    with pytest.raises(ExternalError):
        choose_variant(MIXED, no_openvino, variant="openvino-fp32")
    # a deploy host with the runtime only (no sentence-transformers): the Encoder runs both graph kinds, and
    # the transformer graph still ranks first
    runtime_only = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2"}), runtimes={"onnxruntime": "1.31.1"})
    assert choose_variant(MIXED, runtime_only).name == "onnx-fp32"
    assert choose_variant(MIXED, runtime_only, graph="sentence").name == "onnx-fp32-sentence"
    with pytest.raises(ExternalError, match="pip install onnxruntime"):
        choose_variant(MIXED, HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2"}), runtimes={}))


def test_isa_class_of_written_down_profiles():
    classes = {name: profile.isa_class for name, profile in
               {"AMX": AMX, "ZEN4": ZEN4, "VNNI": VNNI, "AVX2_ONLY": AVX2_ONLY, "ARM": ARM, "CUDA": CUDA}.items()}
    assert classes == {"AMX": "amx", "ZEN4": "avx512_vnni_bf16", "VNNI": "avx512_vnni", "AVX2_ONLY": "avx2",
                       "ARM": "arm64", "CUDA": "avx2"}
    alder_lake = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2", "avx_vnni", "fma"}))
    skylake_sp = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2", "avx512f", "avx512bw"}))  # AVX-512, no VNNI
    assert alder_lake.isa_class == "avx_vnni" and skylake_sp.isa_class == "avx2"
    assert set(classes.values()) | {alder_lake.isa_class} == set(ISA_CLASSES)  # every class has a profile here
    # outside every class: no table row applies, the choice estimates
    for outside in (HostProfile(arch="x86_64", cpu_flags=frozenset({"sse4_2"})),
                    HostProfile(arch="aarch64", cpu_flags=frozenset({"asimd"})),  # no dot-product
                    HostProfile(arch="riscv64")):
        assert outside.isa_class is None
        assert assess(MIXED.variant("onnx-fp32"), outside).speed_source == "estimate"
    # the class survives the one-line CPU description a manifest records (parity.validated_on, bench.measured_on)
    for profile in (AMX, ZEN4, VNNI, AVX2_ONLY, ARM, alder_lake):
        assert HostProfile.from_cpu_line(profile.cpu_line()).isa_class == profile.isa_class, profile.cpu_line()


def test_every_isa_class_has_table_rows_or_falls_back_to_the_estimate():
    table = shipped_speed_table()
    # the speed table covers the deploy runtime's backends (torch variants are never chosen automatically)
    kinds = [(backend, precision, kind) for backend in ENCODER_BACKENDS for precision in PRECISIONS
             if backend in PRECISION_BACKENDS.get(precision, BACKENDS)
             for kind in (METHODS[backend] if precision == "int8" else ("none",))]
    alder_lake = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2", "avx_vnni"}), runtimes=ALL_RUNTIMES)
    for host in (AMX, ZEN4, VNNI, alder_lake, AVX2_ONLY, ARM):
        rows = [row for row in table.rows if row.isa_class == host.isa_class]
        assert rows, host.isa_class
        if all(table.source_of(row).status == "estimated" for row in rows):
            # nothing measured on this class: its estimated rows cover every kind but int8 weight-only compression
            covered = {(row.backend, row.precision, row.quantization) for row in rows}
            assert covered == {kind for kind in kinds if kind[2] != "weight_only"}, host.isa_class
        for backend, precision, kind in kinds:
            quantization = {"method": kind} if precision == "int8" else None
            entry = manifest_of(variant("v", backend, precision, quantization=quantization)).variant("v")
            candidate = assess(entry, host)
            row = table.lookup(host.isa_class, backend, precision, kind)
            if row is None:  # the explicit fallback: the estimate, said as one
                assert candidate.speed_source == "estimate" and candidate.speed_text.startswith("estimated x")
            else:
                status = table.source_of(row).status
                assert candidate.speed_source == f"table {host.isa_class} {status}"
                assert candidate.speed == row.speed_for()[1] > 0
                assert ISA_CLASSES[host.isa_class] in candidate.speed_text
                assert ("(no measurement)" in candidate.speed_text) == (status == "estimated")


BF16_AND_INT8 = manifest_of(
    variant("openvino-fp32", backend="openvino", cosine=0.99998),
    variant("openvino-bf16", backend="openvino", precision="bf16", cosine=0.9995),
    variant("openvino-int8", backend="openvino", precision="int8", quantization={"method": "static"}, cosine=0.985),
    variant("onnx-int8-vnni", precision="int8", quantization={"method": "dynamic", "isa": "avx512_vnni"}, cosine=0.990),
)


@pytest.mark.parametrize("host", [AMX, ZEN4], ids=["amx", "zen4"])
def test_measured_table_rows_rank_the_variants(host):
    """On the classes with measurements, the choice follows the measured rows (on AMX the bf16 OpenVINO graph
    outranks the int8 ones when the table says so), and the reason names where they were measured."""
    table = shipped_speed_table()
    choice = choose_variant(BF16_AND_INT8, host)
    # every variant fits these CPUs and meets its precision's defaults: only the speed orders them
    assert all(c.fit == "good" and c.meets_defaults for c in choice.candidates)
    by_table = sorted(BF16_AND_INT8.variant_names, key=lambda name: -table_speed(BF16_AND_INT8, name, host))
    assert [c.name for c in choice.candidates] == by_table and choice.name == by_table[0]
    best = by_name(choice)[choice.name]
    entry = BF16_AND_INT8.variant(choice.name)
    row = table.lookup(host.isa_class, entry.backend, entry.precision, quantization_kind(entry))
    source = table.source_of(row)
    assert source.status == "measured" and best.speed_source == f"table {host.isa_class} measured"
    # a row without the mixed length class (measured on short texts only) says which class its number is for
    texts = "" if "mixed" in row.speed else f" ({row.speed_for()[0]} texts)"
    assert f"x torch{texts} on {ISA_CLASSES[host.isa_class]} (measured: {source.how} on {source.cpu}" in choice.reason


def test_bench_numbers_rank_only_when_measured_on_this_isa_class():
    def benched(measured_on: str | None, **numbers: dict) -> Manifest:
        where = {} if measured_on is None else {"measured_on": measured_on}
        return manifest_of(
            variant("onnx-fp32", bench={**numbers.get("fp32", {"ratio_to_torch": 2.6, "throughput": 900.0}), **where}),
            variant("openvino-int8", backend="openvino", precision="int8", cosine=0.98,
                    bench={**numbers.get("int8", {"ratio_to_torch": 1.9, "throughput": 700.0}), **where}))

    vnni_host_line = HostProfile(arch="x86_64", cpu_flags=VNNI.cpu_flags, cpu_name="Intel Xeon Gold 6248").cpu_line()
    same = choose_variant(benched(vnni_host_line), VNNI)
    assert same.name == "onnx-fp32" and by_name(same)["onnx-fp32"].speed_source == "bench on this ISA class"
    assert "2.60x torch in the manifest's bench (run on AVX-512 VNNI CPUs without BF16)" in same.reason
    # a deploy install's bench has no torch column: its throughputs rank, when all have them
    throughput = choose_variant(benched(vnni_host_line, fp32={"throughput": 900.0}, int8={"throughput": 700.0}), VNNI)
    assert throughput.name == "onnx-fp32" and "900.0 texts/s in the manifest's bench" in throughput.reason
    # measured on an AMX build host, or with no record of where: the table ranks, not the build host's numbers
    for measured_on in (AMX.cpu_line(), None):
        other = choose_variant(benched(measured_on), VNNI)
        assert all(c.speed_source.startswith("table avx512_vnni ") for c in other.candidates), measured_on
        assert "manifest's bench" not in other.reason
        fastest = max(("onnx-fp32", "openvino-int8"), key=lambda name: table_speed(benched(None), name, VNNI))
        assert other.name == fastest
    # bench on one variant only (one run's numbers compare only with each other): the table for all
    partly = manifest_of(variant("onnx-fp32", bench={"ratio_to_torch": 2.6, "measured_on": vnni_host_line}),
                         variant("openvino-int8", backend="openvino", precision="int8", cosine=0.98))
    assert all(c.speed_source.startswith("table avx512_vnni ") for c in choose_variant(partly, VNNI).candidates)


def test_validation_and_explicit_choices():
    unvalidated = manifest_of(variant("a", passed=None), variant("b", passed=False), variant("c"))
    choice = choose_variant(unvalidated, AVX2_ONLY)
    assert choice.name == "c"
    assert by_name(choice)["a"].excluded == "not validated" and by_name(choice)["b"].excluded == "failed validation"
    with pytest.raises(NotValidatedError, match="no variant passed validation") as none_passed:
        choose_variant(manifest_of(variant("a", passed=None), variant("b", passed=False)), AVX2_ONLY)
    assert sorted(none_passed.value.variants) == ["a", "b"]
    explicit = choose_variant(unvalidated, AVX2_ONLY, variant="a")
    assert explicit.name == "a" and not explicit.auto and "NOT validated" in explicit.reason
    with pytest.raises(NotValidatedError, match="failed validation") as failed:
        choose_variant(unvalidated, AVX2_ONLY, variant="b")
    assert failed.value.variants == ["b"]
    with pytest.raises(ManifestError, match=r"no variant 'zzz' in the manifest \(variants: a, b, c\)"):
        choose_variant(unvalidated, AVX2_ONLY, variant="zzz")
    # messages name the parameters, not the CLI's flags
    with pytest.raises(BadInputError, match=r"^variant='c' chooses one variant: leave out backend="):
        choose_variant(unvalidated, AVX2_ONLY, variant="c", backend="onnx")
    with pytest.raises(BadInputError, match="no variant matches"):
        choose_variant(MIXED, AVX2_ONLY, min_cosine=0.999999)
    with pytest.raises(BadInputError, match=r"^backend='tensorrt': expected one of onnx, openvino, torch$"):
        choose_variant(MIXED, AVX2_ONLY, backend="tensorrt")
    with pytest.raises(BadInputError, match=r"^min_cosine=1.5: expected a number between -1 and 1$"):
        choose_variant(MIXED, AVX2_ONLY, min_cosine=1.5)


def test_this_hosts_profile_reports_what_is_true():
    profile = HostProfile.detect()
    machine = platform.machine().lower()
    assert profile.arch == {"amd64": "x86_64", "aarch64": "arm64"}.get(machine, machine)
    for component in ("onnxruntime", "openvino", "sentence-transformers", "optimum-intel", "torch"):
        assert component in profile.runtimes, component
    # the profile lists what is installed; a stale optimum-onnx beside transformers 5 is installed but unusable
    if SENTENCE_TRANSFORMERS_ONNX:
        assert "optimum-onnx" in profile.runtimes
    if installed_version("optimum-onnx") is None:
        assert "optimum-onnx" not in profile.runtimes
    assert "CPUExecutionProvider" in profile.onnx_providers and "CPU" in profile.openvino_devices
    assert HostProfile.from_dict(profile.to_dict()) == profile
    if profile.arch == "x86_64" and Path("/proc/cpuinfo").is_file():  # the flags the kernel reports
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split(":", 1)[1].split())
        assert profile.avx2 == ("avx2" in flags) and profile.vnni == bool(flags & {"avx512_vnni", "avx_vnni"})
        expected_isa = "avx512_vnni" if "avx512_vnni" in flags else "avx512" if "avx512f" in flags else "avx2"
        assert profile.int8_isa() == expected_isa  # what a build's isa: auto picks here
