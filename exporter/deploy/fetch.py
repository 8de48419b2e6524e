"""``fetch``: get one variant of an artifact onto this host, verified, ready to load.

SOURCE is a Hugging Face Hub model repo id (``org/name``; ``revision``, ``endpoint``, ``token``) or a local
artifact folder. Steps: read manifest.json (typed: ``read_manifest``) → choose the variant
(``exporter.deploy.choice.choose_variant``: ``auto`` picks the best validated variant for this host) → get
the chosen variant's files and the shared files → verify each against the manifest's sha256 and size →
optionally ``check`` the variant's numerics on this host against the stored reference embeddings.

What is fetched: the variant's ``files`` and every ``shared_files`` entry (sentence-transformers configs,
tokenizer, module folders, the ``parity/`` reference that ``check`` needs, extra validation texts) except
``README.md`` (model card), ``bench.json`` (and its chart, ``bench.png`` / ``bench.svg``) and
``parity_report.json``: documentation, not needed to load or check a variant (their numbers are in
manifest.json). Other variants' files are never downloaded.

Hub downloads go through ``huggingface_hub.hf_hub_download``, one file at a time: into the huggingface_hub
cache (``cache_dir``, default ``HF_HUB_CACHE``; the result is the cache's snapshot folder of the commit), or
into ``dest`` (``local_dir=``; huggingface_hub keeps its bookkeeping in ``dest/.cache/huggingface/``). The
revision is resolved once, when manifest.json is downloaded, and every other file is downloaded at that
commit, so a push landing mid-fetch cannot mix two versions. A second fetch of the same revision downloads
nothing (the cache or ``dest`` already holds every file; only manifest.json's metadata is asked for when the
revision is a branch). ``HF_HUB_OFFLINE`` is honoured: everything then comes from the cache. The Hub plumbing
(endpoint, retries of lost connections and 5xx answers with backoff, the mapping of client errors to ours,
the token kept out of messages) is ``exporter.hub``'s, shared with ``push``.

Integrity: manifest.json is the root of trust (pin it with ``revision=<commit>``). Every other file is
accepted only when its size and sha256 match the manifest, also when it was already cached. A mismatch
deletes the file (the cache blob, or the file in ``dest``) and downloads it once more; a second mismatch
raises ``IntegrityError`` naming the file (``path``), which is deleted. huggingface_hub downloads to ``*.incomplete``
and renames when done, and a resumed or truncated download still has to match its sha256, so an interrupted
fetch never leaves a file that a later fetch accepts.

Faults: every download is retried by ``exporter.hub.HubClient.call`` (after the client's own retries) when the
Hub does not answer, answers 5xx/408/429, or the body is cut short (it broke off, or ended before its
``Content-Length``: resumed from what arrived; a file of the wrong size: downloaded afresh). When the last
attempt fails, the error names the Hub (``HubError``, exit 3) or, for a download cut short every time, the file
(``IntegrityError``, exit 1); either way nothing half-written is left: the client's ``*.incomplete`` file of
that download is deleted (unless another process holds its lock: it is downloading the same file), and a
``dest`` folder this fetch created is removed entirely. Local copies (``dest`` with a local SOURCE) are
written to a temporary name and renamed once verified; manifest.json is placed last. A manifest with an
absolute path or ``..`` anywhere is refused (``ManifestError``, when it is parsed) before any other file is
fetched.

Safety: nothing from an artifact executes unless the caller passes ``trust_remote_code=True`` (a manifest's
``source.trust_remote_code`` is reported in the result, never obeyed). Without it, a manifest that lists code
or pickle files is refused right after it is read, and ``modules.json`` is downloaded (and verified) before
anything else and refused when it names a module class outside sentence-transformers' own
(``UnsafeArtifactError``, exit 2, naming the file; the rules: ``exporter.artifact.safety``). A refused
manifest and modules.json are not left in ``dest``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.artifact import safety
from exporter.artifact.integrity import mismatch
from exporter.artifact.layout import BENCH_NAME, CHART_NAMES
from exporter.artifact.manifest import FileEntry, Manifest, Variant, read_manifest
from exporter.constants import DEFAULT_REVISION, MANIFEST_NAME, REPO_ID_PATTERN
from exporter.deploy.choice import Choice, choose_variant
from exporter.errors import (
    BadInputError,
    IntegrityError,
    ManifestError,
    NotFoundOnHubError,
    ParityFailedError,
    RuntimeUnavailableError,
    UnsafeArtifactError,
)
from exporter.progress import Progress, SilentProgress
from exporter.runtime.host import HostProfile

if TYPE_CHECKING:
    from exporter.runtime.encoder import Encoder

DOCUMENTATION_FILES = frozenset({"README.md", BENCH_NAME, *CHART_NAMES, "parity_report.json"})
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
Select = Callable[[Manifest], Choice]


@dataclass
class FetchResult:
    """Where the variant is, which one it is, and what this fetch did."""

    path: Path
    source: str
    kind: str  # "hub" or "local"
    variant: Variant
    choice: Choice
    files: list[str]  # every file of the result (relative), manifest.json included
    downloaded: list[str] = field(default_factory=list)  # files this fetch downloaded or copied
    skipped: list[str] = field(default_factory=list)  # shared documentation files left out
    revision: str | None = None
    commit: str | None = None
    endpoint: str | None = None
    check: Any = None  # exporter.validators.VariantResult when check=True
    trust_remote_code: bool = False  # the caller's: the only trust in force
    recorded_trust_remote_code: bool = False  # the manifest's source.trust_remote_code: reported, never obeyed
    thresholds: dict[str, Any] | None = None  # the check's thresholds policy (ThresholdPolicy.to_dict)

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def model_kind(self) -> str:
        """What the model computes (manifest ``source.kind``): sentence, cross (a reranker) or sparse."""
        try:
            return read_manifest(self.path).source.kind
        except ManifestError:
            return "sentence"

    def python_line(self) -> str:
        """One line of Python that loads the variant from ``path``."""
        return load_line(self.path, self.variant, self.choice.device)

    def to_dict(self) -> dict[str, Any]:
        check = None
        if self.check is not None:
            check = {"passed": self.check.passed, "failures": self.check.failures(),
                     "thresholds": dict(self.check.thresholds), "policy": self.thresholds,
                     "loosened": [item.to_dict() for item in self.check.loosened],
                     "measured": {c.name: c.measured for c in self.check.checks
                                  if c.name.startswith(("cosine", "neighbour", "spearman", "max_abs_diff", "ranking",
                                                        "top1", "ndcg", "top_k", "dot", "nnz"))}}
        return {
            "path": str(self.path), "source": self.source, "kind": self.kind, "model_kind": self.model_kind,
            "revision": self.revision,
            "commit": self.commit, "endpoint": self.endpoint, "variant": self.name,
            "backend": self.variant.backend, "precision": self.variant.precision,
            "graph": self.variant.graph, "file_name": self.variant.file_name,
            "device": self.choice.device, "reason": self.choice.reason, "python": self.python_line(),
            "files": list(self.files), "downloaded": list(self.downloaded), "skipped": list(self.skipped),
            "check": check, "candidates": [c.to_dict() for c in self.choice.candidates],
            "trust_remote_code": {"recorded": self.recorded_trust_remote_code, "used": self.trust_remote_code},
        }

    def trust_note(self) -> str | None:
        """A line for people when the manifest asks for trust that was not given (None otherwise)."""
        if self.recorded_trust_remote_code and not self.trust_remote_code:
            return (f"note: {MANIFEST_NAME} records trust_remote_code: true; not used (only the caller's "
                    "trust_remote_code=True allows an artifact's code)")
        return None


def load_line(path: Path, variant: Variant, device: str = "cpu") -> str:
    """The exact Python line that loads ``variant`` from the folder ``path``: the deploy runtime (no torch), or for
    a torch variant sentence-transformers with its device and dtype. A ``truncate_dim`` is stated (the Encoder
    applies it from the manifest; sentence-transformers is told)."""
    if variant.backend == "torch":
        from exporter.constants import TORCH_DTYPES

        truncate = f", truncate_dim={variant.truncate_dim}" if variant.truncate_dim is not None else ""
        normalize = ", normalize_embeddings=True" if variant.truncate_dim is not None and _normalizes(path) else ""
        return ("import torch; from sentence_transformers import SentenceTransformer; "
                f"model = SentenceTransformer({_py(str(path))}, device={_py(device)}{truncate}, model_kwargs="
                f"{{\"variant\": {_py(variant.precision)}, \"dtype\": torch.{TORCH_DTYPES[variant.precision]}}}); "
                f"model.encode([\"first text\", \"second text\"]{normalize})")
    device_arg = f", device={_py(device)}" if device != "cpu" else ""
    if (path / "manifest.json").is_file() and read_manifest(path).source.kind == "sparse":  # scipy.sparse rows
        return (f"from exporter.runtime.sparse import load_sparse_encoder; model = load_sparse_encoder("
                f"{_py(str(path))}, {_py(variant.name)}{device_arg}); model.encode([\"first text\", \"second text\"])")
    if variant.output in ("logits", "scores"):  # a reranker's graph: the Reranker (exporter.runtime.reranker)
        return (f"import exporter; model = exporter.load({_py(str(path))}, {_py(variant.name)}{device_arg}); "
                "model.rank(\"a query\", [\"first passage\", \"second passage\"])")
    truncated = f"  # truncate_dim {variant.truncate_dim}, from the manifest" if variant.truncate_dim else ""
    return (f"import exporter; model = exporter.load_encoder({_py(str(path))}, {_py(variant.name)}{device_arg}); "
            "model.encode([\"first text\", \"second text\"])" + truncated)


def _normalizes(path: Path) -> bool:
    from exporter.runtime.pooling import has_normalize

    try:
        return has_normalize(path)
    except BadInputError:
        return False


def _py(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------- API


def fetch(source: str | os.PathLike, **options: Any) -> Path:
    """Fetch one variant of SOURCE (a Hub repo id or a local artifact folder), verified; returns its folder.

    Options: ``variant`` (``"auto"`` or a name), ``backend``, ``precision``, ``graph``, ``min_cosine``,
    ``revision``, ``endpoint``, ``token``, ``dest``, ``cache_dir``, ``check``, ``thresholds``,
    ``trust_remote_code``, ``host`` (a ``HostProfile``; default: this host), ``progress``. See
    ``fetch_variant`` for the result with the details.
    """
    return fetch_variant(source, **options).path


def load(source: str | os.PathLike, variant: str | None = "auto", *, device: str = "auto", mode: str = "latency",
         threads: int | None = None, **options: Any) -> Encoder:
    """``fetch`` a variant (verified) and return it as a ready ``Encoder``: the deploy runtime, no torch.

    ``source`` is a Hub repo id or a local artifact folder; ``variant`` a name or ``"auto"`` (the best
    validated variant for this host); the other options are those of ``fetch`` (``backend``, ``precision``,
    ``graph``, ``min_cosine``, ``revision``, ``endpoint``, ``token``, ``dest``, ``cache_dir``, ``check``,
    ``thresholds``, ``trust_remote_code``, ``host``, ``progress``): an artifact that holds code or pickles, or
    names custom module classes, is refused unless ``trust_remote_code=True``. ``device`` (``auto``: where
    the choice runs, CPU unless asked), ``mode`` (``latency`` or ``throughput``) and ``threads`` go to the
    Encoder; a device other than the validated one is used only when asked, and ``encoder.settings`` marks it
    not validated. A reranker artifact (``source.kind: cross``) gives a ``Reranker`` (``predict`` / ``rank``, as
    ``CrossEncoder``'s) instead of an Encoder.
    """
    from exporter.runtime.encoder import Encoder, torch_variant_error

    if options.get("backend") == "torch":
        raise BadInputError("backend='torch': exporter.load runs onnx and openvino variants (the torch-free deploy "
                            "runtime); load torch variants with exporter.load_sentence_transformer(..., "
                            "backend='torch')")
    result = fetch_variant(source, variant=variant, **options)
    if result.variant.backend == "torch":
        raise torch_variant_error(result.name)
    manifest = read_manifest(result.path)
    if manifest.source.kind == "sparse":  # SPLADE: scipy.sparse rows (exporter.runtime.sparse)
        from exporter.runtime.sparse import SparseEncoder

        return SparseEncoder(result.path, manifest, result.variant, device=device, mode=mode, threads=threads)
    if manifest.source.kind == "cross":  # a reranker: exporter.runtime.reranker
        from exporter.runtime.reranker import Reranker

        return Reranker(result.path, manifest, result.variant, device=device, mode=mode, threads=threads)
    return Encoder(result.path, manifest, result.variant, device=device, mode=mode, threads=threads)


def load_sentence_transformer(source: str | os.PathLike, *, device: str | None = None,
                              model_kwargs: dict[str, Any] | None = None, **options: Any):
    """``fetch`` a ``graph: transformer`` variant and return it as a ``SentenceTransformer`` (needs
    sentence-transformers and its backend: ``pip install "sentence-transformers[onnx]"`` or ``[openvino]``).

    torch variants (``backend="torch"``, or their name) load with ``model_kwargs={"variant": <precision>,
    "dtype": <its torch dtype>}`` (needs ``pip install "embedding-exporter[torch]"``); a variant's
    ``truncate_dim`` is passed to ``SentenceTransformer``. Takes the options of ``fetch`` (``graph`` is always
    ``transformer``) plus ``device`` (default: ``cuda``
    when the choice runs on the GPU, else ``cpu``) and extra ``model_kwargs`` for sentence-transformers.
    OpenVINO variants get the validated numerics settings (``ov_config``) unless ``model_kwargs`` says
    otherwise. A reranker artifact (``source.kind: cross``) gives a ``CrossEncoder`` (the name is kept: it loads
    whatever sentence-transformers class the artifact is). sentence-transformers gets ``trust_remote_code`` from
    the caller only (default ``False``), never
    from the manifest.
    """
    if options.get("graph") not in (None, "transformer"):
        raise BadInputError("load_sentence_transformer() returns a SentenceTransformer: only graph: transformer "
                            "variants load that way")
    if options.get("variant") in (None, "", "auto"):
        options["graph"] = "transformer"
    result = fetch_variant(source, **options)
    if result.variant.graph != "transformer":
        raise BadInputError(f"variant {result.name} is a graph: sentence variant; load_sentence_transformer() "
                            f"needs graph: transformer (load it with: {result.python_line()})")
    if read_manifest(result.path).source.kind == "cross":  # a reranker: sentence-transformers' CrossEncoder
        return _cross_encoder(result, device, model_kwargs, options)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise RuntimeUnavailableError(f"load_sentence_transformer() needs sentence-transformers: {error}",
                                      fix=f'pip install "sentence-transformers[{result.variant.backend}]"') from None

    from exporter.runtime.encoder import numerics_settings

    trust_remote_code = bool(options.get("trust_remote_code", False))
    if read_manifest(result.path).source.kind == "sparse":  # a sentence-transformers SparseEncoder
        from exporter.validators.sparse import load_sentence_transformers_sparse

        backend = result.variant.backend
        try:
            return load_sentence_transformers_sparse(result.path, result.variant, device=device or result.choice.device,
                                                     trust_remote_code=trust_remote_code, model_kwargs=model_kwargs)
        except ImportError as error:
            raise RuntimeUnavailableError(f"variant {result.name}: the {backend} runtime cannot start: {error}",
                                          fix=f'pip install "sentence-transformers[{backend}]"') from None
    if result.variant.backend == "torch":
        from exporter.runtime.runners import require_torch, torch_model_kwargs

        require_torch(result.name)
        kwargs: dict[str, Any] = torch_model_kwargs(result.variant.precision)
    else:
        kwargs = {"file_name": result.variant.file_name}
    if result.variant.backend == "openvino":
        kwargs["ov_config"] = numerics_settings(result.variant)
    kwargs.update(model_kwargs or {})
    try:
        return SentenceTransformer(str(result.path), backend=result.variant.backend,
                                   device=device or result.choice.device, local_files_only=True,
                                   trust_remote_code=trust_remote_code, model_kwargs=kwargs,
                                   truncate_dim=result.variant.truncate_dim)
    except ImportError as error:
        raise RuntimeUnavailableError(f"variant {result.name}: the {result.variant.backend} runtime cannot start: "
                                      f"{error}", fix=f'pip install "sentence-transformers[{result.variant.backend}]"'
                                      ) from None


def _cross_encoder(result: FetchResult, device: str | None, model_kwargs: dict[str, Any] | None,
                   options: dict[str, Any]):
    """A reranker's ``graph: transformer`` variant as sentence-transformers' ``CrossEncoder`` (its logits graph,
    the model's activation from the folder's config), OpenVINO pinned to the validated numerics."""
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as error:
        raise RuntimeUnavailableError(f"load_sentence_transformer() needs sentence-transformers: {error}",
                                      fix=f'pip install "sentence-transformers[{result.variant.backend}]"') from None
    from exporter.runtime.encoder import numerics_settings

    kwargs: dict[str, Any] = {"file_name": result.variant.file_name}
    if result.variant.backend == "openvino":
        kwargs["ov_config"] = numerics_settings(result.variant)
    kwargs.update(model_kwargs or {})
    try:
        return CrossEncoder(str(result.path), backend=result.variant.backend, device=device or result.choice.device,
                            local_files_only=True, trust_remote_code=bool(options.get("trust_remote_code", False)),
                            model_kwargs=kwargs)
    except ImportError as error:
        raise RuntimeUnavailableError(f"variant {result.name}: the {result.variant.backend} runtime cannot start: "
                                      f"{error}", fix=f'pip install "sentence-transformers[{result.variant.backend}]"'
                                      ) from None


def fetch_variant(
    source: str | os.PathLike,
    *,
    variant: str | None = "auto",
    backend: str | None = None,
    precision: str | None = None,
    graph: str | None = None,
    min_cosine: float | None = None,
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    dest: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    check: bool = False,
    thresholds: str | os.PathLike | None = None,
    trust_remote_code: bool = False,
    host: HostProfile | None = None,
    progress: Progress | None = None,
) -> FetchResult:
    """``fetch`` with the details: which variant, why, which files, what was downloaded, the check.

    ``check`` holds the variant to ``thresholds`` (``exporter.validators.policy.ThresholdPolicy``: by default
    the stricter of the precision defaults and the artifact's recorded thresholds; ``"defaults"``,
    ``"artifact"`` or a thresholds file). ``trust_remote_code=True`` is the only way to fetch an artifact that
    lists code or pickle files or names custom module classes in modules.json.

    Raises ``BadInputError`` (bad argument; ``ManifestError``: unsafe or malformed manifest;
    ``UnsafeArtifactError``: code or pickles without ``trust_remote_code=True``;
    ``NotFoundOnHubError``: unknown repo, revision or file; ``HubAuthError``; offline and not cached),
    ``CheckFailedError`` (``IntegrityError``: a file that does not match its sha256 twice, or a missing file;
    ``ParityFailedError``: a failed ``check``; ``NotValidatedError``: no validated variant) or
    ``ExternalError`` (``HubError``: Hub unreachable; a runtime missing).
    """
    progress = progress or SilentProgress()
    host = host or HostProfile.detect()

    def select(manifest: Manifest) -> Choice:
        return choose_variant(manifest, host, variant=variant, backend=backend, precision=precision, graph=graph,
                              min_cosine=min_cosine)

    local = Path(source)
    if local.is_dir():
        if revision or endpoint:
            raise BadInputError(f"{source}: revision= and endpoint= apply to Hub repos, not to a local folder")
        result = _fetch_local(local, Path(dest) if dest is not None else None, select, progress, trust_remote_code)
    elif isinstance(source, str) and REPO_ID_PATTERN.match(source) and ".." not in source:
        fetcher = _HubFetch(source, revision or DEFAULT_REVISION, endpoint, token, dest, cache_dir, progress,
                            trust_remote_code)
        result = fetcher.fetch(select)
    elif local.exists():
        raise BadInputError(f"{source}: not a folder (expected an artifact folder or a Hub repo id ORG/NAME)")
    else:
        raise BadInputError(f"{source}: no such folder, and not a Hub repo id (ORG/NAME)")
    result.trust_remote_code = trust_remote_code
    if check:
        from exporter.validators.policy import ThresholdPolicy

        policy = ThresholdPolicy.parse(thresholds)
        result.thresholds = policy.to_dict()
        with progress.step(f"Checking {result.name} on this host against the stored reference"):
            result.check = check_variant(result.path, result.variant, thresholds=policy,
                                         trust_remote_code=trust_remote_code)
        if not result.check.passed:
            loosened = "; ".join(str(item) for item in result.check.loosened)
            raise ParityFailedError(f"{result.name} on this host: " + "; ".join(result.check.failures())
                                    + f" (stored reference in {result.path / 'parity'}"
                                    + (f"; thresholds loosened: {loosened}" if loosened else "") + ")",
                                    failures=result.check.failures())
    return result


# ------------------------------------------------------------------------------------------ files


def _check_dest(dest: Path) -> None:
    if dest.exists() and not dest.is_dir():
        raise BadInputError(f"dest={str(dest)!r}: exists and is not a folder")


def _inside(root: Path, relative: str) -> Path:
    """``root / relative``, refusing anything that resolves outside ``root`` (symlinked folders included)."""
    target = root / relative
    base = root.resolve()
    resolved = target.parent.resolve() / target.name
    if resolved != base and base not in resolved.parents:
        raise BadInputError(f"{relative}: resolves outside {root}; refusing to write there")
    return target


# ------------------------------------------------------------------------------------------- local


def _fetch_local(root: Path, dest: Path | None, select: Select, progress: Progress,
                 trust_remote_code: bool = False) -> FetchResult:
    manifest = read_manifest(root)
    if not trust_remote_code:
        safety.check_folder(root, manifest)
    choice = select(manifest)
    entries, skipped = manifest.needed_entries(choice.variant, skip=DOCUMENTATION_FILES)
    if dest is not None and dest.exists() and dest.resolve() == root.resolve():
        dest = None
    copied: list[str] = []
    if dest is None:
        with progress.step(f"Verifying {len(entries)} files of {choice.name} in {root}"):
            for entry in entries:
                problem = mismatch(root / entry.path, entry)
                if problem:
                    raise IntegrityError(f"{root / entry.path}: {problem}; the folder does not match its manifest",
                                         path=entry.path)
    else:
        _check_dest(dest)
        dest.mkdir(parents=True, exist_ok=True)
        manifest_target = _inside(dest, MANIFEST_NAME)
        manifest_bytes = (root / MANIFEST_NAME).read_bytes()
        if manifest_target.is_file() and manifest_target.read_bytes() != manifest_bytes:
            manifest_target.unlink()  # a different artifact's manifest must not sit beside half-copied files
        with progress.step(f"Copying {choice.name} to {dest}"):
            for entry in entries:
                target = _inside(dest, entry.path)
                if mismatch(target, entry) is None:
                    continue
                _copy_verified(root / entry.path, target, entry)
                copied.append(entry.path)
            if not manifest_target.is_file():
                _copy_verified(root / MANIFEST_NAME, manifest_target, None)
                copied.append(MANIFEST_NAME)
    files = sorted([entry.path for entry in entries] + [MANIFEST_NAME])
    return FetchResult(path=dest if dest is not None else root, source=str(root), kind="local",
                       variant=choice.variant, choice=choice, files=files, downloaded=copied, skipped=skipped,
                       recorded_trust_remote_code=manifest.source.trust_remote_code)


def _copy_verified(source: Path, target: Path, entry: FileEntry | None) -> None:
    """Copy to a temporary name beside ``target``, verify, then rename: never a half file under the real name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        problem = mismatch(Path(temporary), entry) if entry is not None else None
        if problem:
            raise IntegrityError(f"{source}: {problem}; the folder does not match its manifest (nothing copied "
                                 f"under {entry.path})", path=entry.path)
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


# --------------------------------------------------------------------------------------------- hub


class _HubFetch:
    """The downloads of one Hub fetch (through ``exporter.hub.HubClient``: retries, errors, redaction)."""

    def __init__(self, repo_id: str, revision: str, endpoint: str | None, token: str | None,
                 dest: str | os.PathLike | None, cache_dir: str | os.PathLike | None, progress: Progress,
                 trust_remote_code: bool = False):
        from exporter.hub import HubClient

        self.hub = HubClient(repo_id, endpoint=endpoint, token=token, progress=progress)
        self.repo_id = repo_id
        self.revision = revision
        self.dest = Path(dest) if dest is not None else None
        self.cache_dir = str(cache_dir) if cache_dir is not None else None
        self.progress = progress
        self.trust_remote_code = trust_remote_code
        if self.dest is not None:
            _check_dest(self.dest)

    def download(self, filename: str, revision: str, force: bool = False) -> Path:
        """One file through ``hf_hub_download`` (into the cache, or into ``dest``), retried when the Hub is
        unreachable, answers 5xx or the body is cut short; a file the Hub does not have is named as such. A
        download that fails for good leaves no ``*.incomplete`` file behind (``remove_partial``)."""
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        from exporter.hub import cut_short, is_connection_error, root_cause

        where = f"{self.repo_id}@{revision if _COMMIT.match(revision) is None else revision[:12]}"
        fresh = [force]  # a file of the wrong size is not resumed from: the next attempt starts afresh

        def attempt() -> Path:
            try:
                return Path(hf_hub_download(
                    self.repo_id, filename, revision=revision, endpoint=self.hub.endpoint, token=self.hub.token,
                    cache_dir=self.cache_dir, local_dir=str(self.dest) if self.dest is not None else None,
                    force_download=fresh[-1],
                ))
            except Exception as error:  # noqa: BLE001 - a missing file is this flow's own failure
                cause = root_cause(error)
                if isinstance(cause, EntryNotFoundError) and not isinstance(cause, LocalEntryNotFoundError):
                    if filename == MANIFEST_NAME:
                        raise NotFoundOnHubError(f"{where}: no {MANIFEST_NAME}: not an embedding-exporter artifact "
                                                 "repo", repo_id=self.repo_id, revision=revision) from None
                    raise IntegrityError(f"{filename}: listed in {MANIFEST_NAME} but missing from {where}",
                                         path=filename) from None
                if cut_short(cause) is not None and not is_connection_error(cause):
                    fresh.append(True)
                raise

        try:
            return self.hub.call(f"downloading {filename} of {where}", attempt, revision=revision, path=filename)
        except IntegrityError as error:
            if error.path == filename and self._remove_partial_quietly(filename):
                raise IntegrityError(f"{error}; the partial download was deleted", path=filename) from None
            raise
        except BaseException:
            self._remove_partial_quietly(filename)
            raise

    def _remove_partial_quietly(self, filename: str) -> bool:
        """``remove_partial``, never masking the failure being raised."""
        try:
            return self.remove_partial(filename)
        except Exception:  # noqa: BLE001 - clean-up on the way out of a failure
            return False

    def remove_partial(self, filename: str) -> bool:
        """Delete the client's ``*.incomplete`` download of ``filename`` (in ``dest``), or every one of this repo
        (in the cache), skipping any whose lock another process holds (it is downloading that file now). True
        when something was deleted. (From 1.21 on the client deletes the partial file of a download that failed
        itself; one can still be left by a process that was killed.)"""
        import filelock

        candidates: list[tuple[Path, Path]] = []  # (partial file, the lock that guards it)
        if self.dest is not None:
            downloads = self.dest / ".cache" / "huggingface" / "download"
            if downloads.is_dir():
                from huggingface_hub._local_folder import get_local_download_paths

                paths = get_local_download_paths(self.dest, filename)
                pattern = paths.incomplete_path("*")
                candidates = [(partial, paths.lock_path) for partial in pattern.parent.glob(pattern.name)]
        else:
            from huggingface_hub import constants
            from huggingface_hub.file_download import repo_folder_name

            cache = Path(self.cache_dir or constants.HF_HUB_CACHE)
            folder = repo_folder_name(repo_id=self.repo_id, repo_type="model")
            # "<etag>.incomplete" (early 1.x) or "<etag>.<random>.incomplete" (1.21 on, one per process): the
            # lock that guards it is "<etag>.lock" either way (an etag is a hex digest: no dot)
            candidates = [(partial, cache / ".locks" / folder / f"{partial.name.split('.', 1)[0]}.lock")
                          for partial in (cache / folder / "blobs").glob("*.incomplete")]
        removed = False
        for partial, lock_path in candidates:
            if not lock_path.parent.is_dir():
                continue
            try:
                with filelock.FileLock(str(lock_path), timeout=0):
                    partial.unlink(missing_ok=True)
                    removed = True
            except (filelock.Timeout, OSError):
                continue  # another process is downloading it: its file, not ours to delete
        return removed

    def discard(self, path: Path, filename: str) -> None:
        """Delete a file that failed verification, and what would make the client trust it again."""
        if self.dest is not None:
            from huggingface_hub._local_folder import get_local_download_paths

            paths = get_local_download_paths(self.dest, filename)
            for stale in (paths.file_path, paths.metadata_path):
                with contextlib.suppress(OSError):
                    stale.unlink()
            return
        blob = path.resolve()
        with contextlib.suppress(OSError):
            path.unlink()
        if blob != path and blob.parent.name == "blobs":
            with contextlib.suppress(OSError):
                blob.unlink()

    def commit_of(self, manifest_path: Path) -> str:
        """The commit the manifest was downloaded at: the cache's snapshot folder, or the local_dir metadata."""
        if self.dest is None:
            commit = manifest_path.parent.name
        else:
            from huggingface_hub._local_folder import read_download_metadata

            metadata = read_download_metadata(self.dest, MANIFEST_NAME)
            commit = metadata.commit_hash if metadata is not None else ""
        return commit if _COMMIT.match(commit) else self.revision

    # -- the fetch --------------------------------------------------------------------------------

    def fetch(self, select: Select) -> FetchResult:
        created = None  # the outermost folder of dest that this fetch creates
        if self.dest is not None:
            for folder in [self.dest.absolute(), *self.dest.absolute().parents]:
                if folder.exists():
                    break
                created = folder
        try:
            with self.hub.session():
                return self._fetch(select, created)
        except BaseException:
            if created is not None:  # a failed fetch leaves no folder it made (a rerun starts afresh)
                shutil.rmtree(created, ignore_errors=True)
            raise

    def _fetch(self, select: Select, created: Path | None) -> FetchResult:
        endpoint = self.hub.endpoint
        with self.progress.step(f"Reading {MANIFEST_NAME} of {self.repo_id}@{self.revision} from {endpoint}"):
            manifest_path = self.download(MANIFEST_NAME, self.revision)
        root = manifest_path.parent
        try:
            manifest = read_manifest(root)
        except BadInputError:
            self._forget_manifest(manifest_path, created)
            raise
        commit = self.commit_of(manifest_path)
        where = f"{self.repo_id}@{commit[:12]}"
        if not self.trust_remote_code:
            self._refuse_unsafe(lambda: safety.check_manifest(manifest, f"{where}: {MANIFEST_NAME}"),
                                manifest_path, created)
        choice = select(manifest)
        entries, skipped = manifest.needed_entries(choice.variant, skip=DOCUMENTATION_FILES)
        downloaded = []
        modules = next((entry for entry in entries if entry.path == safety.MODULES_FILE), None)
        if modules is not None and not self.trust_remote_code:
            # modules.json names the classes sentence-transformers imports: verified and inspected before the rest
            if self._get_verified(root, modules, commit):
                downloaded.append(modules.path)
            entries = [modules, *(entry for entry in entries if entry is not modules)]

            def inspect() -> None:
                safety.check_modules(root / safety.MODULES_FILE, f"{where}: {safety.MODULES_FILE}")

            self._refuse_unsafe(inspect, manifest_path, created, also=root / safety.MODULES_FILE)
        size = sum(entry.size for entry in entries)
        label = (f"Fetching {choice.name}: {len(entries)} files ({size / 1e6:.1f} MB) of {self.repo_id}@{commit[:12]}"
                 + (f" into {self.dest}" if self.dest is not None else ""))
        with self.progress.step(label):
            for entry in entries:
                if entry is modules and not self.trust_remote_code:
                    continue  # verified above
                if self._get_verified(root, entry, commit):
                    downloaded.append(entry.path)
        files = sorted([entry.path for entry in entries] + [MANIFEST_NAME])
        return FetchResult(path=root, source=self.repo_id, kind="hub", variant=choice.variant, choice=choice,
                           files=files, downloaded=downloaded, skipped=skipped, revision=self.revision, commit=commit,
                           endpoint=endpoint, recorded_trust_remote_code=manifest.source.trust_remote_code)

    def _refuse_unsafe(self, check: Callable[[], None], manifest_path: Path, created: Path | None,
                       also: Path | None = None) -> None:
        """Run a safety ``check``; on refusal leave nothing of the artifact in ``dest`` and say what was fetched."""
        try:
            check()
        except UnsafeArtifactError as error:
            if also is not None and self.dest is not None:
                self.discard(also, safety.MODULES_FILE)
            self._forget_manifest(manifest_path, created)
            fetched = f"{MANIFEST_NAME} and {safety.MODULES_FILE}" if also is not None else MANIFEST_NAME
            raise UnsafeArtifactError(f"{error}; nothing but {fetched} was downloaded", path=error.path,
                                      reason=error.reason) from None

    def _forget_manifest(self, manifest_path: Path, created: Path | None) -> None:
        """A refused manifest is not left in ``dest`` (folders this fetch created go entirely)."""
        if self.dest is None:
            return
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        else:
            self.discard(manifest_path, MANIFEST_NAME)

    def _get_verified(self, root: Path, entry: FileEntry, commit: str) -> bool:
        """Download (or find) one file and verify it; True when it was not there before."""
        relative = entry.path
        expected = _inside(root, relative)
        was_there = expected.is_file()
        problem = None
        for attempt in range(2):
            path = self.download(relative, commit, force=attempt > 0)
            problem = mismatch(path, entry)
            if problem is None:
                return not was_there or attempt > 0
            self.discard(path, relative)
            if attempt == 0:
                self.progress.log(f"{relative}: {problem}; deleted, downloading it again")
        raise IntegrityError(f"{relative}: {problem} (downloaded twice from {self.repo_id}@{commit[:12]}); "
                             "the file was deleted", path=relative)


# ------------------------------------------------------------------------------------------- check


def check_variant(folder: str | os.PathLike, variant: Variant | str, *, thresholds: Any = None,
                  trust_remote_code: bool = False):
    """Run ``variant`` (a manifest entry or a name) of the artifact in ``folder`` on the stored validation
    texts on this host and compare with the stored reference embeddings, against the thresholds
    ``thresholds`` selects (default: the stricter of the precision defaults and the recorded ones); no torch
    weights needed. Returns an ``exporter.validators.VariantResult`` (``passed``, ``failures()``,
    ``loosened``)."""
    from exporter.validators.parity import check_stored

    return check_stored(Path(folder), variant, thresholds=thresholds, trust_remote_code=trust_remote_code)


__all__ = ["DOCUMENTATION_FILES", "FetchResult", "check_variant", "fetch", "fetch_variant", "load", "load_line",
           "load_sentence_transformer"]
