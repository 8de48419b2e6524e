"""Hub faults on every call kind of ``push`` and ``fetch``: real ``exporter`` processes (and the library, in
process) driving the real huggingface_hub client against the local Hub server on 127.0.0.1, whose fault
injection answers 5xx, resets the connection, stalls past the client's timeout or cuts a body short.

Each call kind gets each fault once (the operation succeeds: exactly one new commit, or files that match their
sha256) and for good (exit 3 with one line on stderr naming the Hub, or exit 1 naming the file for a download
cut short every time; nothing half-written locally, the remote branch unchanged). A push SIGKILLed
mid-upload leaves the branch at its old commit, and a rerun completes it with one commit.

Speed: retries are shortened, never skipped. Ours through ``EXPORTER_HUB_RETRY_DELAYS`` (and the call
timeout through ``EXPORTER_HUB_TIMEOUT``); the client's own backoff (``http_backoff``: 1, 2, 4, 8, 8 s;
``http_get``'s 1 s before resuming) is capped at 10 ms and its download timeouts (``HF_HUB_ETAG_TIMEOUT``,
``HF_HUB_DOWNLOAD_TIMEOUT``, whole seconds when set through the environment, and the 60 s of its second metadata
request for a file not in the cache, ``file_download._ETAG_RETRY_TIMEOUT``) are set to ``CLIENT_TIMEOUT``
in its ``constants``: in this process by ``monkeypatch``, in the ``exporter`` processes by ``BOOT``, which
does that and then runs the CLI. A stall lasts ``STALL`` seconds, longer than every timeout, and never past
the server's ``stop()``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from conftest import write_recipe
from hub_fixtures import HUB_TOKEN, allow_hub_requests, client_defaults_at, client_httpx
from hub_server import HubServer
from huggingface_hub import HfApi

import exporter
from exporter.artifact.integrity import sha256_file
from exporter.progress import SilentProgress

CLIENT_TIMEOUT = 0.4  # seconds: the client's download timeouts and our call timeout, in every test
STALL = 3.0  # seconds a stalled request sends nothing: longer than every timeout above
PERSISTENT = 1000  # "for good": more hits than all retries together
FETCH_REPO = "test-user/tiny-faults"
RECIPE = """\
name: tiny-faults
model:
  id: test-org/tiny-bert
  path: {model}
variants:
  - {{backend: onnx}}
"""
# The call kinds, as (method, request-target regex) of the requests that make them.
FETCH_CALLS = {
    "manifest-download": ("GET", r"/resolve/[^/]+/manifest\.json$"),
    "variant-download": ("GET", r"/resolve/[0-9a-f]{40}/onnx/model\.onnx$"),
    "metadata-head": ("HEAD", r"/resolve/[^/]+/manifest\.json$"),
}
PUSH_CALLS = {
    "repo-create": ("POST", r"^/api/repos/create$"),
    "repo-lookup": ("GET", r"^/api/models/test-user/[^/]+/refs"),
    "preupload": ("POST", r"/preupload/"),
    "lfs-batch": ("POST", r"\.git/info/lfs/objects/batch$"),
    "lfs-upload": ("PUT", r"^/_lfs/"),
    "commit": ("POST", r"/commit/"),
}
FAULTS = ("5xx", "reset", "stall")
# What each fault's last failure says ("the Hub at URL answered HTTP 503 while ...", "cannot reach the Hub at
# URL while ... (N attempts): <reason>"). A reset reads as one or the other, depending on whether the RST
# reached the client before it read the (empty) answer.
FAULT_REASON = {"5xx": ("answered HTTP 503",), "reset": ("connection reset by peer", "closed without an answer"),
                "stall": ("timed out",)}

# Runs the exporter CLI with the client's backoff sleeps capped and its download timeouts set (see above).
BOOT = f"""
import sys, time, types
from huggingface_hub import constants, file_download
from huggingface_hub.utils import _http
fast = types.SimpleNamespace(**{{name: getattr(time, name) for name in dir(time) if not name.startswith("__")}})
fast.sleep = lambda seconds: time.sleep(min(seconds, 0.01))
_http.time = file_download.time = fast
constants.HF_HUB_ETAG_TIMEOUT = constants.HF_HUB_DOWNLOAD_TIMEOUT = {CLIENT_TIMEOUT}
if hasattr(file_download, "_ETAG_RETRY_TIMEOUT"):
    file_download._ETAG_RETRY_TIMEOUT = {CLIENT_TIMEOUT}
from exporter.cli import main
main(prog_name="exporter")
"""


# ------------------------------------------------------------------------------------------ helpers


def inject(server: HubServer, call: tuple[str, str], fault: str, times: int = 1, *, after: bool = False):
    method, pattern = call
    if fault == "5xx":
        return server.fail_next(method, pattern, times, status=503, after=after)
    if fault == "reset":
        return server.reset_next(method, pattern, times, after=after)
    return server.stall_next(method, pattern, times, seconds=STALL, after=after)


def cli_env(home: Path) -> dict[str, str]:
    """The environment of an ``exporter`` process: the Hub reachable, no token but the one passed, our
    retries and call timeout short (two attempts)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "EXPORTER_VERBOSE")}
    env.update(HF_HUB_OFFLINE="0", HF_HOME=str(home), HF_HUB_CACHE=str(home / "hub"), PYTHONUNBUFFERED="1",
               EXPORTER_HUB_RETRY_DELAYS="0.01", EXPORTER_HUB_TIMEOUT=str(CLIENT_TIMEOUT),
               EXPORTER_LOG_DIR=str(home / "logs"))
    return env


def exporter_cli(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BOOT, *args], capture_output=True, text=True, timeout=timeout,
                          env=cli_env(home))


def one_line(process: subprocess.CompletedProcess) -> str:
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in process.stderr, process.stderr
    return lines[0]


def partial_files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*.incomplete")) if folder.exists() else []


def fast_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process: what ``BOOT`` does in an ``exporter`` process, plus our short retries and timeout."""
    from huggingface_hub import constants, file_download
    from huggingface_hub.utils import _http

    real_sleep = time.sleep
    fast = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("__")})
    fast.sleep = lambda seconds: real_sleep(min(seconds, 0.01))
    monkeypatch.setattr(_http, "time", fast)
    monkeypatch.setattr(file_download, "time", fast)
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", CLIENT_TIMEOUT)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", CLIENT_TIMEOUT)
    if hasattr(file_download, "_ETAG_RETRY_TIMEOUT"):  # the metadata retry of a file not in the cache (1.x: 60 s)
        monkeypatch.setattr(file_download, "_ETAG_RETRY_TIMEOUT", CLIENT_TIMEOUT)
    monkeypatch.setenv("EXPORTER_HUB_RETRY_DELAYS", "0.01,0.01,0.01")
    monkeypatch.setenv("EXPORTER_HUB_TIMEOUT", str(CLIENT_TIMEOUT))
    monkeypatch.delenv("EXPORTER_VERBOSE", raising=False)


def assert_verified(folder: Path, files: list[str], manifest) -> None:
    """Every file of a fetch is whole and matches the manifest's sha256 (manifest.json itself aside)."""
    entries = manifest.entries()
    for path in files:
        if path != "manifest.json":
            assert sha256_file(folder / path) == entries[path].sha256, path
    assert not partial_files(folder)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def artifact(tiny_model, tmp_path_factory) -> Path:
    """A tiny validated artifact (one ONNX variant, ~5 MB, its graph and reference through LFS). Read only."""
    workdir = tmp_path_factory.mktemp("faults-artifact")
    result = exporter.build(write_recipe(workdir, RECIPE.format(model=tiny_model("bert"))),
                            output=workdir / "artifact")
    assert result.report is not None and result.report.passed
    return result.output


@pytest.fixture(scope="module")
def fetch_hub(artifact, tmp_path_factory):
    """A module-scoped Hub holding the artifact at FETCH_REPO; ``manifest``: the pushed manifest."""
    from huggingface_hub.utils import close_session

    with HubServer(root=tmp_path_factory.mktemp("faults-hub"), token=HUB_TOKEN) as server, \
            pytest.MonkeyPatch.context() as monkeypatch:
        allow_hub_requests(monkeypatch, tmp_path_factory.mktemp("faults-token") / "token")
        folder = Path(shutil.copytree(artifact, tmp_path_factory.mktemp("faults-push") / "artifact"))
        exporter.push(folder, FETCH_REPO, endpoint=server.url, token=HUB_TOKEN, verify=False)
        server.manifest = exporter.read_manifest(folder)
        yield server
    close_session()


@pytest.fixture
def fetch_server(fetch_hub, monkeypatch, tmp_path):
    """``fetch_hub`` for one test: the client may reach it, retries are short, no fault outlives the test."""
    allow_hub_requests(monkeypatch, tmp_path / "token")
    fast_client(monkeypatch)
    fetch_hub.clear_faults()
    yield fetch_hub
    fetch_hub.clear_faults()


@pytest.fixture
def push_repo(hub_server, hub_url, artifact, monkeypatch, tmp_path):
    """(server, repo id, folder to push, api, head before): a repo holding one older commit (``old.txt``, which
    the folder lacks), and a copy of the artifact to push to it."""
    fast_client(monkeypatch)
    repo_id = "test-user/pushed"
    api = HfApi(endpoint=hub_url, token=HUB_TOKEN)
    api.create_repo(repo_id)
    with client_defaults_at(hub_url, tmp_path / "token"):
        api.upload_file(path_or_fileobj=b"the previous version\n", path_in_repo="old.txt", repo_id=repo_id)
    head = api.model_info(repo_id).sha
    folder = Path(shutil.copytree(artifact, tmp_path / "artifact"))
    hub_server.clear_requests()
    return types.SimpleNamespace(server=hub_server, repo_id=repo_id, folder=folder, api=api, head=head, url=hub_url)


def remote_state(repo) -> tuple[str, list[str], int]:
    """(head, files, number of commits) of the repo's main branch."""
    api, repo_id = repo.api, repo.repo_id
    return api.model_info(repo_id).sha, sorted(api.list_repo_files(repo_id)), len(api.list_repo_commits(repo_id))


def assert_pushed_once(repo, result_oid: str, before: tuple[str, list[str], int]) -> None:
    """Exactly one new commit, on top of the old head, holding exactly the folder (old.txt deleted)."""
    head, files, commits = remote_state(repo)
    assert head == result_oid and commits == before[2] + 1
    assert repo.api.list_repo_commits(repo.repo_id)[1].commit_id == repo.head
    manifest = exporter.read_manifest(repo.folder)
    assert files == sorted({*manifest.entries(), "manifest.json", ".gitattributes"})


# ------------------------------------------------------------------------------------------ fetch: once


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", FETCH_CALLS)
def test_fetch_fault_once_is_retried(fetch_server, tmp_path, kind, fault):
    rule = inject(fetch_server, FETCH_CALLS[kind], fault)
    result = exporter.fetch_variant(FETCH_REPO, endpoint=fetch_server.url, dest=tmp_path / "dest")
    assert rule.hits == 1
    assert_verified(result.path, result.files, fetch_server.manifest)
    assert "onnx/model.onnx" in result.files


@pytest.mark.parametrize("how", ["truncated", "reset-mid-body"])
@pytest.mark.parametrize("into", ["dest", "cache"])
def test_download_cut_short_once_is_resumed_and_verified(fetch_server, tmp_path, how, into):
    pattern = FETCH_CALLS["variant-download"][1]
    if how == "truncated":
        rule = fetch_server.truncate_next("GET", pattern)  # Content-Length N, half the body, then closed
    else:
        rule = fetch_server.reset_next("GET", pattern, keep=100_000)  # a RST after 100 kB
    where = {"dest": tmp_path / "dest"} if into == "dest" else {"cache_dir": tmp_path / "cache"}
    result = exporter.fetch_variant(FETCH_REPO, endpoint=fetch_server.url, **where)
    assert rule.hits == 1
    assert_verified(result.path, result.files, fetch_server.manifest)
    assert not partial_files(tmp_path)


# ------------------------------------------------------------------------------------------ fetch: for good


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", FETCH_CALLS)
def test_fetch_fault_for_good_is_exit_3_and_leaves_nothing(fetch_server, tmp_path, kind, fault):
    inject(fetch_server, FETCH_CALLS[kind], fault, PERSISTENT)
    dest = tmp_path / "models" / "dest"
    process = exporter_cli("fetch", FETCH_REPO, "--endpoint", fetch_server.url, "--dest", str(dest), "--quiet",
                           home=tmp_path / "home")
    line = one_line(process)
    assert process.returncode == 3, process.stderr
    assert line.startswith("error: ") and fetch_server.url in line and "(2 attempts)" in line, line
    assert any(reason in line for reason in FAULT_REASON[fault]), line
    filename = "onnx/model.onnx" if kind == "variant-download" else "manifest.json"
    assert f"downloading {filename} of {FETCH_REPO}@" in line, line
    assert not (tmp_path / "models").exists()  # the folders this fetch made are gone, partial files with them
    assert not partial_files(tmp_path / "home")


@pytest.mark.parametrize("into", ["dest", "cache"])
def test_download_cut_short_every_time_is_exit_1_naming_the_file(fetch_server, tmp_path, into):
    fetch_server.truncate_next("GET", FETCH_CALLS["variant-download"][1], PERSISTENT, keep=50_000)
    dest = tmp_path / "dest"
    dest.mkdir()  # an existing folder stays, with only whole, verified files in it
    where = ["--dest", str(dest)] if into == "dest" else []
    process = exporter_cli("fetch", FETCH_REPO, "--endpoint", fetch_server.url, *where, "--quiet",
                           home=tmp_path / "home")
    line = one_line(process)
    assert process.returncode == 1, process.stderr
    assert "onnx/model.onnx" in line and "cut short" in line and "(2 attempts)" in line, line
    assert fetch_server.url in line, line
    assert not partial_files(tmp_path)  # deleted (by the client itself from 1.21 on, else by the fetch)
    entries = fetch_server.manifest.entries()
    kept = [path for path in dest.rglob("*") if path.is_file() and ".cache" not in path.parts]
    for path in kept:  # what stayed (downloaded before the failure) is whole
        relative = path.relative_to(dest).as_posix()
        assert relative == "manifest.json" or sha256_file(path) == entries[relative].sha256, relative
    assert not (dest / "onnx" / "model.onnx").exists()


# ------------------------------------------------------------------------------------------ push: once


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", PUSH_CALLS)
def test_push_fault_once_makes_exactly_one_commit(push_repo, kind, fault):
    before = remote_state(push_repo)
    rule = inject(push_repo.server, PUSH_CALLS[kind], fault)
    result = exporter.push(push_repo.folder, push_repo.repo_id, endpoint=push_repo.url, token=HUB_TOKEN,
                           verify=False)
    assert rule.hits == 1 and result.created_commit
    assert result.deleted == ["old.txt"]
    assert_pushed_once(push_repo, result.commit_oid, before)


@pytest.mark.parametrize("fault", FAULTS)
def test_commit_that_lands_but_whose_answer_is_lost_is_made_once(push_repo, fault):
    before = remote_state(push_repo)
    rule = inject(push_repo.server, PUSH_CALLS["commit"], fault, after=True)  # processed, then 503/reset/stall
    result = exporter.push(push_repo.folder, push_repo.repo_id, endpoint=push_repo.url, token=HUB_TOKEN,
                           verify=False)
    assert rule.hits == 1 and result.created_commit
    assert push_repo.server.count_requests("POST", r"/commit/") == 1  # looked up, not committed again
    assert_pushed_once(push_repo, result.commit_oid, before)


# ------------------------------------------------------------------------------------------ push: for good


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", PUSH_CALLS)
def test_push_fault_for_good_is_exit_3_and_leaves_the_branch(push_repo, tmp_path, kind, fault):
    before = remote_state(push_repo)
    inject(push_repo.server, PUSH_CALLS[kind], fault, PERSISTENT)
    process = exporter_cli("push", str(push_repo.folder), "--repo-id", push_repo.repo_id, "--endpoint",
                           push_repo.url, "--token", HUB_TOKEN, "--no-verify", "--quiet", home=tmp_path / "home")
    line = one_line(process)
    assert process.returncode == 3, process.stderr
    assert line.startswith("error: ") and push_repo.url in line and "(2 attempts)" in line, line
    assert any(reason in line for reason in FAULT_REASON[fault]) and HUB_TOKEN not in line, line
    assert "sig=" not in line  # a pre-signed upload URL's signature is left out
    push_repo.server.clear_faults()
    assert remote_state(push_repo) == before  # the branch is where it was


# ------------------------------------------------------------------------------------------ push: killed


def test_push_killed_mid_upload_leaves_the_branch_and_a_rerun_completes(push_repo, tmp_path):
    before = remote_state(push_repo)
    server = push_repo.server
    server.stall_next("PUT", PUSH_CALLS["lfs-upload"][1], seconds=30)  # the first LFS upload hangs
    env = {**cli_env(tmp_path / "home"), "EXPORTER_HUB_TIMEOUT": "60"}
    args = ["push", str(push_repo.folder), "--repo-id", push_repo.repo_id, "--endpoint", push_repo.url,
            "--token", HUB_TOKEN, "--no-verify", "--quiet"]
    process = subprocess.Popen([sys.executable, "-c", BOOT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not server.count_requests("PUT", r"^/_lfs/") and process.poll() is None:
            assert time.monotonic() < deadline, "the push never started uploading"
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGKILL)  # mid-upload: the LFS PUT is in flight
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert server.count_requests("POST", r"/commit/") == 0
    assert remote_state(push_repo) == before  # killed mid-way: the branch is at its old commit

    server.clear_faults()
    rerun = exporter_cli(*args[:-1], "--json", home=tmp_path / "home")
    assert rerun.returncode == 0, rerun.stderr
    pushed = json.loads(rerun.stdout)
    assert pushed["created_commit"] is True and pushed["deleted"] == ["old.txt"]
    assert_pushed_once(push_repo, pushed["commit_oid"], before)


# ------------------------------------------------------------------------------------------ push: deletions


def test_push_names_the_remote_files_it_deletes(push_repo, tmp_path):
    process = exporter_cli("push", str(push_repo.folder), "--repo-id", push_repo.repo_id, "--endpoint",
                           push_repo.url, "--token", HUB_TOKEN, "--no-verify", home=tmp_path / "home")
    assert process.returncode == 0, process.stderr
    assert "old.txt" in process.stderr and "deletes it" in process.stderr  # said before the commit
    assert f"Deleted from {push_repo.repo_id}@main (not in the folder): old.txt" in process.stdout
    assert "1 deleted" in process.stdout
    assert "old.txt" not in push_repo.api.list_repo_files(push_repo.repo_id)


# ------------------------------------------------------------------------------------------ exporter.hub


def test_calls_sent_without_a_timeout_get_one(hub_server, hub_url, monkeypatch):
    """The client sends most calls with no timeout at all; ``default_timeout`` (what ``HubClient.session``
    applies) gives them one, keeps the ones a call sets itself, and is undone afterwards."""
    from huggingface_hub.utils import _http

    from exporter import hub

    api = HfApi(endpoint=hub_url, token=HUB_TOKEN)
    repo_id = api.create_repo("test-user/slow").repo_id
    info = rf"^/api/models/{repo_id}$"
    factory = _http._GLOBAL_CLIENT_FACTORY
    with hub.default_timeout(CLIENT_TIMEOUT):
        hub_server.stall_next("GET", info, seconds=STALL)
        started = time.monotonic()
        with pytest.raises(client_httpx().TimeoutException):
            api.model_info(repo_id)  # sent with timeout=None
        assert time.monotonic() - started < STALL - 1
        hub_server.stall_next("GET", info, seconds=1.0, after=True)  # answered late, within the call's own timeout
        assert api.model_info(repo_id, timeout=STALL).sha
    assert _http._GLOBAL_CLIENT_FACTORY is factory  # restored
    hub_server.stall_next("GET", info, seconds=1.0, after=True)
    started = time.monotonic()
    assert api.model_info(repo_id).sha and time.monotonic() - started >= 0.9  # no timeout again: it waited


def test_retry_settings_and_fault_descriptions(monkeypatch):
    from exporter import hub
    from exporter.errors import BadInputError, HubError, IntegrityError

    monkeypatch.setenv(hub.RETRY_DELAYS_ENV, "0.5, 1")
    assert hub.retry_delays() == (0.5, 1.0)
    monkeypatch.setenv(hub.RETRY_DELAYS_ENV, "0")
    assert hub.retry_delays() == ()
    for bad in ("soon", "1,-2", ",".join(["1"] * 11), "1000"):
        monkeypatch.setenv(hub.RETRY_DELAYS_ENV, bad)
        with pytest.raises(BadInputError, match=hub.RETRY_DELAYS_ENV):
            hub.retry_delays()
    monkeypatch.setenv(hub.CALL_TIMEOUT_ENV, "0")
    with pytest.raises(BadInputError, match=hub.CALL_TIMEOUT_ENV):
        hub.call_timeout()
    monkeypatch.delenv(hub.RETRY_DELAYS_ENV)
    monkeypatch.delenv(hub.CALL_TIMEOUT_ENV)

    httpx = client_httpx()  # the errors of the client's own httpx (httpx2 in huggingface_hub 2.x)
    truncated = httpx.RemoteProtocolError(
        "peer closed connection without sending complete message body (received 100 bytes, expected 500)")
    assert hub.retryable(truncated) and hub.cut_short(truncated) == (100, 500)
    error = hub.hub_error(truncated, what="downloading a.onnx of o/n@abc", repo_id="o/n", endpoint="http://hub",
                          attempts=4, path="a.onnx")
    assert isinstance(error, IntegrityError) and error.path == "a.onnx" and error.exit_code == 1
    assert str(error) == ("the download was cut short (100 of 500 bytes received) while downloading a.onnx of "
                          "o/n@abc from http://hub (4 attempts)")
    wrong_size = OSError("Consistency check failed: file should be of size 10 but has size 3 (a.onnx).")
    assert hub.retryable(wrong_size) and hub.cut_short(wrong_size) == (3, 10)
    broken = httpx.ReadError("[Errno 104] Connection reset by peer")
    assert hub.retryable(broken) and hub.cut_short(broken) is None
    assert hub.describe(broken) == "connection reset by peer"
    assert isinstance(hub.hub_error(broken, what="x", repo_id="o/n", endpoint="http://hub"), HubError)
    lost = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    assert hub.describe(lost) == "the connection was closed without an answer"
    # huggingface_hub 1.x retries a failed connection on the client it has just closed
    closed = RuntimeError("Cannot send a request, as the client has been closed.")
    assert hub.retryable(closed) and hub.describe(closed) == "the connection failed"
    assert not hub.retryable(RuntimeError("something else"))
    signed = OSError("503 Server Error: Service Unavailable for url: https://s3.example/x?X-Amz-Signature=abc")
    assert hub.describe(signed) == "503 Server Error: Service Unavailable for url: https://s3.example/x"

    def disk_full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    client = hub.HubClient("o/n", endpoint="http://hub", token=None, progress=SilentProgress(),
                           sleep=lambda seconds: pytest.fail("retried"))
    with pytest.raises(OSError, match="No space left"):  # this host's failure passes through, not retried
        client.call("writing x", disk_full)
