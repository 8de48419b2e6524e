"""A local, file-backed stand-in for the Hugging Face Hub HTTP API, for tests.

It answers the endpoints that the real ``huggingface_hub`` client (written against 0.36.2) calls for
repository creation, commits (regular files, LFS files through the "basic" LFS transfer, deletions,
pull requests), refs (branches, tags, ``refs/pr/N``), file listings and downloads, so the project's push
code can be exercised end to end without a network.

Run it by hand
--------------
::

    python tests/hub_server.py --root /tmp/hub --port 8080 --token hf_xxx

prints ``http://127.0.0.1:8080`` and serves until Ctrl-C. Point the client at it with
``HF_ENDPOINT=http://127.0.0.1:8080`` (exported *before* Python starts) and/or ``endpoint=...``, and
authenticate with ``token="hf_xxx"`` (the user is ``--username``, default ``test-user``). Repos, commits,
refs and blobs persist under ``--root`` as JSON and content-addressed blob files, so restarting the server
on the same root shows the same repositories.

From Python::

    with HubServer(root=tmp_path, token="hf_test_token") as server:
        api = HfApi(endpoint=server.url, token="hf_test_token")
        server.fail_next("POST", r"/commit/", times=1)            # next commit answers 503
        server.fail_next("POST", r"/commit/", after=True)         # commit lands, client still sees 503
        server.requests                                           # [(method, path), ...]

Client traps (huggingface_hub 0.36.2, verified against its source)
------------------------------------------------------------------
* ``HF_ENDPOINT`` is read once, when ``huggingface_hub.constants`` is imported. ``HfApi(endpoint=...)``,
  ``hf_hub_download(endpoint=...)`` and ``snapshot_download(endpoint=...)`` take the endpoint per call, but
  ``CommitInfo`` parses the commit URL with ``RepoUrl(...)`` against ``constants.ENDPOINT``. This server
  answers ``commitUrl = <the URL the client used>/<repo_id>/commit/<sha>`` (the real Hub's shape), so
  ``create_commit`` / ``upload_*`` raise ``ValueError: Unable to retrieve user and repo ID`` unless
  ``constants.ENDPOINT`` equals the server URL. This happens for no-op commits (the client builds the
  URL itself from ``HfApi.endpoint``) *and* for real commits, after the commit has landed (measured).
  No ``commitUrl`` shape works both with and without the patch, hence the patch. Setting the environment
  variable after import does nothing: patch ``constants.ENDPOINT``. Also patch
  ``constants.HUGGINGFACE_CO_URL_TEMPLATE`` *and* ``file_download.HUGGINGFACE_CO_URL_TEMPLATE`` (imported
  by name): ``hf_hub_url`` only swaps in ``endpoint=`` when the template starts with
  ``constants.ENDPOINT``, so patching ``ENDPOINT`` alone sends downloads to https://huggingface.co.
  The module-level helpers (``huggingface_hub.upload_file`` ...) are bound to an ``HfApi()`` created at
  import, with its own ``endpoint``. ``hub_fixtures.patch_hf_endpoint`` does all of this.
* ``HF_HUB_OFFLINE=1`` (also read at import) makes every request of the client raise, even to 127.0.0.1.
  The fixture turns it off and resets the client's cached HTTP sessions.
* No-op commits: in pre-upload, the server reports each existing file's ``oid`` (git blob sha1 for
  regular files, sha256 for LFS files, as the client computes ``_local_oid``). When every added file is
  unchanged, the client makes no commit call and returns the current head from ``repo_info``.
* Xet: ``hf_xet`` is installed, so the client offers ``transfers=["basic", "multipart", "xet"]`` in the
  LFS batch call. It only uploads through xet if the server answers ``"transfer": "xet"``; this server
  answers ``"basic"``. Downloads only use xet when ``X-Xet-Hash`` is in the headers, which this server never
  sends. ``HF_HUB_DISABLE_XET`` is not needed.
* Errors map to exception classes through the ``X-Error-Code`` header (``RepoNotFound``,
  ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``). The client maps a bare 401 to
  ``RepositoryNotFoundError`` only for ``https://`` URLs, so this server always sends ``X-Error-Code``.
  A wrong token gets 401 with ``X-Error-Message``/``{"error": "Invalid credentials in Authorization
  header"}``, which the client raises as a plain ``HfHubHTTPError``.
* The client retries LFS upload PUTs on 5xx (``http_backoff``: 1 s, then 2 s, ...) but never retries
  the commit POST.

Simplifications: one user (``username``) owns every namespace; the LFS/regular choice uses fixed
``.gitattributes``-style patterns, a 10 MiB size limit and a NUL-byte check on the sample, not the repo's
own ``.gitattributes``; ``shouldIgnore`` is always false; listings are not paginated.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import fnmatch
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Pattern, Set, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

DEFAULT_USERNAME = "test-user"
DEFAULT_BRANCH = "main"
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
LFS_PATTERNS: Tuple[str, ...] = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
    "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
    "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*",
    "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
)  # fmt: skip
URL_KIND_TO_REPO_TYPE = {"models": "model", "datasets": "dataset", "spaces": "space"}
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_HEX_RE = re.compile(r"^[0-9a-f]{5,40}$")
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_PR_REF_RE = re.compile(r"^refs/pr/(\d+)$")
_FRONT_MATTER_RE = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.DOTALL)
_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------------
# Small helpers: hashes, timestamps, LFS rules
# --------------------------------------------------------------------------------------------------


def git_blob_oid(data: bytes) -> str:
    """Git's object id of a blob (sha1 over ``blob <size>\\0<data>``), the Hub's oid for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that git stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def utc_now_iso() -> str:
    """Current time in the Hub's date format (``2024-01-31T12:00:00.000Z``), parsed by the client."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def matches_lfs_pattern(path: str) -> bool:
    """Whether ``path`` matches one of the default ``.gitattributes`` LFS patterns of Hub repos."""
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(path if "/" in pattern else name, pattern) for pattern in LFS_PATTERNS)


def should_use_lfs(path: str, size: int, sample: bytes) -> bool:
    """The upload mode the server prescribes: LFS for large, binary or LFS-pattern files (never empty ones)."""
    if size == 0:
        return False
    return size >= LFS_SIZE_THRESHOLD or matches_lfs_pattern(path) or b"\0" in sample


def default_gitattributes() -> bytes:
    """The ``.gitattributes`` of the initial commit, listing the patterns that ``should_use_lfs`` uses."""
    return "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS_PATTERNS).encode()


def parse_front_matter(readme: str) -> Optional[Any]:
    """The YAML front matter of a model card, or None when there is none. Raises ``yaml.YAMLError``."""
    match = _FRONT_MATTER_RE.match(readme)
    return yaml.safe_load(match.group(1)) if match else None


def is_valid_repo_id(repo_id: str) -> bool:
    """``namespace/name`` made of safe characters (repo ids become directory names on disk)."""
    return bool(_REPO_ID_RE.match(repo_id)) and ".." not in repo_id


def url_prefix(repo_type: str) -> str:
    """The path prefix of a repo type in web/git URLs (models have none)."""
    return "" if repo_type == "model" else f"{repo_type}s/"


# --------------------------------------------------------------------------------------------------
# Errors and responses
# --------------------------------------------------------------------------------------------------


@dataclass
class HubResponse:
    """What a route answers: a status, headers and either in-memory bytes or a slice of a file."""

    status: int
    headers: Dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file_path: Optional[Path] = None
    file_offset: int = 0
    file_length: int = 0

    @property
    def content_length(self) -> int:
        return self.file_length if self.file_path is not None else len(self.body)


def json_response(data: Any, status: int = 200, headers: Optional[Dict[str, str]] = None) -> HubResponse:
    """A JSON response; ``headers`` can override the content type."""
    all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return HubResponse(status, all_headers, json.dumps(data).encode())


class HubError(Exception):
    """An HTTP error answered like the Hub: JSON ``{"error": ...}`` plus X-Error-Code/X-Error-Message."""

    def __init__(
        self, status: int, message: str, *, code: Optional[str] = None, headers: Optional[Dict[str, str]] = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})

    def to_response(self) -> HubResponse:
        headers = {"X-Error-Message": self.message, **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return json_response({"error": self.message}, self.status, headers)


def repo_not_found(repo_id: str) -> HubError:
    return HubError(404, f"Repository not found: {repo_id}", code="RepoNotFound")


def revision_not_found(revision: str) -> HubError:
    return HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")


def entry_not_found(path: str, commit_id: Optional[str] = None) -> HubError:
    headers = {"X-Repo-Commit": commit_id} if commit_id else {}
    return HubError(404, f"Entry not found: {path}", code="EntryNotFound", headers=headers)


def unauthenticated() -> HubError:
    return HubError(401, "You must be authenticated (Authorization: Bearer <token>) to do this.")


def bad_request(message: str) -> HubError:
    return HubError(400, message)


# --------------------------------------------------------------------------------------------------
# Storage: repos, commits (full tree snapshots), refs and content-addressed blobs on disk
# --------------------------------------------------------------------------------------------------


@dataclass
class FileEntry:
    """One file of a commit's tree: blob sha256, size, whether it is an LFS file, and its git oid."""

    sha256: str
    size: int
    lfs: bool
    oid: str

    @property
    def upload_oid(self) -> str:
        """The oid the client compares against in pre-upload: sha256 for LFS files, git sha1 otherwise."""
        return self.sha256 if self.lfs else self.oid

    def to_json(self) -> Dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "lfs": self.lfs, "oid": self.oid}

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "FileEntry":
        return cls(sha256=data["sha256"], size=data["size"], lfs=data["lfs"], oid=data["oid"])


@dataclass
class Commit:
    """An immutable commit: its parents, message, author, date and full file tree."""

    id: str
    parents: List[str]
    title: str
    message: str
    author: str
    date: str
    tree: Dict[str, FileEntry]

    def to_json(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "parents": self.parents,
            "title": self.title,
            "message": self.message,
            "author": self.author,
            "date": self.date,
            "tree": {path: entry.to_json() for path, entry in self.tree.items()},
        }

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "Commit":
        tree = {path: FileEntry.from_json(entry) for path, entry in data["tree"].items()}
        return cls(data["id"], data["parents"], data["title"], data["message"], data["author"], data["date"], tree)


@dataclass
class RepoState:
    """A repository's mutable state: visibility and refs (branches, tags, pull-request refs)."""

    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    gated: Any = False
    branches: Dict[str, str] = field(default_factory=dict)
    tags: Dict[str, str] = field(default_factory=dict)
    prs: Dict[int, str] = field(default_factory=dict)

    def to_json(self) -> Dict[str, Any]:
        return {
            "type": self.repo_type,
            "id": self.repo_id,
            "private": self.private,
            "createdAt": self.created_at,
            "gated": self.gated,
            "branches": self.branches,
            "tags": self.tags,
            "prs": {str(num): sha for num, sha in self.prs.items()},
        }

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "RepoState":
        prs = {int(num): sha for num, sha in data.get("prs", {}).items()}
        return cls(
            data["type"], data["id"], data["private"], data["createdAt"], data.get("gated", False),
            dict(data["branches"]), dict(data["tags"]), prs,
        )  # fmt: skip


def _write_json_atomically(path: Path, data: Any) -> None:
    """Write JSON through a temporary file + rename so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


class HubStorage:
    """Persistent store under ``root``: ``repos/<type>s/<ns>/<name>/{repo.json,commits/<id>.json}`` and
    ``blobs/<sha256[:2]>/<sha256>``. State is cached in memory; every change is written through to disk.
    ``lock`` serialises changes of refs (callers hold it around read-modify-write sequences)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.lock = threading.RLock()
        self._repos: Dict[Tuple[str, str], RepoState] = {}
        self._commits: Dict[str, Commit] = {}
        for sub in ("repos", "blobs", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- repos -------------------------------------------------------------------------------------

    def _repo_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_type}s" / repo_id

    def get_repo(self, repo_type: str, repo_id: str) -> Optional[RepoState]:
        """The repo, loaded from disk on first access, or None."""
        with self.lock:
            key = (repo_type, repo_id)
            if key not in self._repos:
                path = self._repo_dir(repo_type, repo_id) / "repo.json"
                if not path.is_file():
                    return None
                self._repos[key] = RepoState.from_json(json.loads(path.read_text(encoding="utf-8")))
            return self._repos[key]

    def save_repo(self, repo: RepoState) -> None:
        with self.lock:
            _write_json_atomically(self._repo_dir(repo.repo_type, repo.repo_id) / "repo.json", repo.to_json())
            self._repos[(repo.repo_type, repo.repo_id)] = repo

    def list_repos(self) -> List[RepoState]:
        """Every repo on disk (for listings and the admin API)."""
        found = []
        for path in sorted((self.root / "repos").glob("*/*/*/repo.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            repo = self.get_repo(data["type"], data["id"])
            if repo is not None:
                found.append(repo)
        return found

    def create_repo(self, repo_type: str, repo_id: str, private: bool, author: str) -> RepoState:
        """Create a repo whose ``main`` holds an initial commit with ``.gitattributes``, like the Hub."""
        with self.lock:
            repo = RepoState(repo_type, repo_id, private, utc_now_iso())
            gitattributes = default_gitattributes()
            sha256 = self.store_blob_bytes(gitattributes)
            entry = FileEntry(sha256, len(gitattributes), False, git_blob_oid(gitattributes))
            commit = self.add_commit(repo, [], {".gitattributes": entry}, "initial commit", "", author)
            repo.branches[DEFAULT_BRANCH] = commit.id
            self.save_repo(repo)
            return repo

    def delete_repo(self, repo: RepoState) -> None:
        """Remove a repo (its blobs stay: they are shared and content-addressed)."""
        with self.lock:
            shutil.rmtree(self._repo_dir(repo.repo_type, repo.repo_id), ignore_errors=True)
            self._repos.pop((repo.repo_type, repo.repo_id), None)

    # -- commits -----------------------------------------------------------------------------------

    def add_commit(
        self, repo: RepoState, parents: List[str], tree: Dict[str, FileEntry], title: str, message: str, author: str
    ) -> Commit:
        """Store a new commit (refs are not touched) and return it."""
        date = utc_now_iso()
        seed = json.dumps([repo.repo_id, parents, title, message, date, uuid.uuid4().hex, sorted(tree)])
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parents, title, message, author, date, dict(tree))
        commit_file = self._repo_dir(repo.repo_type, repo.repo_id) / "commits" / f"{commit.id}.json"
        _write_json_atomically(commit_file, commit.to_json())
        self._commits[commit.id] = commit
        return commit

    def get_commit(self, repo: RepoState, commit_id: str) -> Commit:
        """A commit of ``repo`` by full id."""
        if commit_id not in self._commits:
            path = self._repo_dir(repo.repo_type, repo.repo_id) / "commits" / f"{commit_id}.json"
            self._commits[commit_id] = Commit.from_json(json.loads(path.read_text(encoding="utf-8")))
        return self._commits[commit_id]

    def find_commit(self, repo: RepoState, prefix: str) -> Optional[str]:
        """The full id of the only commit starting with ``prefix`` (5 to 40 hex chars), else None."""
        folder = self._repo_dir(repo.repo_type, repo.repo_id) / "commits"
        ids = [p.stem for p in folder.glob(f"{prefix}*.json")] if _HEX_RE.match(prefix) else []
        return ids[0] if len(ids) == 1 else None

    def history(self, repo: RepoState, head: str) -> Iterator[Commit]:
        """Commits reachable from ``head`` through first parents, newest first."""
        commit_id: Optional[str] = head
        while commit_id:
            commit = self.get_commit(repo, commit_id)
            yield commit
            commit_id = commit.parents[0] if commit.parents else None

    def resolve(self, repo: RepoState, revision: str) -> str:
        """The commit id of a branch, tag, ``refs/heads|tags/X``, ``refs/pr/N`` or a (short) commit sha."""
        name = revision
        for prefix in ("refs/heads/", "refs/tags/"):
            name = name[len(prefix):] if name.startswith(prefix) else name
        pr_match = _PR_REF_RE.match(revision)
        if pr_match and int(pr_match.group(1)) in repo.prs:
            return repo.prs[int(pr_match.group(1))]
        if name in repo.branches:
            return repo.branches[name]
        if name in repo.tags:
            return repo.tags[name]
        commit_id = self.find_commit(repo, revision)
        if commit_id is None:
            raise revision_not_found(revision)
        return commit_id

    # -- blobs -------------------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def has_blob(self, sha256: str) -> bool:
        return bool(_SHA256_RE.match(sha256)) and self.blob_path(sha256).is_file()

    def store_blob_bytes(self, data: bytes) -> str:
        """Store ``data`` content-addressed and return its sha256."""
        return self.store_blob_stream(iter([data]))[0]

    def store_blob_stream(self, chunks: Iterator[bytes], expected_sha256: Optional[str] = None) -> Tuple[str, int]:
        """Stream chunks into a blob, checking ``expected_sha256`` if given; returns (sha256, size)."""
        digest, size = hashlib.sha256(), 0
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as tmp:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    tmp.write(chunk)
            sha256 = digest.hexdigest()
            if expected_sha256 is not None and sha256 != expected_sha256:
                raise bad_request(f"sha256 mismatch: expected {expected_sha256}, received {sha256} ({size} bytes)")
            target = self.blob_path(sha256)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, target)
            return sha256, size
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)


# --------------------------------------------------------------------------------------------------
# Fault injection and request log
# --------------------------------------------------------------------------------------------------


@dataclass
class FaultRule:
    """Answer the next ``remaining`` requests matching ``method`` and ``pattern`` with ``status``.

    With ``after=True`` the request is processed first (e.g. the commit lands) and only the response
    is replaced, to test client retry logic against lost responses."""

    method: str
    pattern: Pattern[str]
    remaining: int
    status: int = 503
    after: bool = False
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method) and bool(self.pattern.search(target))

    def response(self) -> HubResponse:
        message = f"Injected fault ({self.status}) for {self.method} {self.pattern.pattern}"
        return json_response({"error": message}, self.status, {"X-Error-Message": message})


class FaultInjector:
    """Thread-safe list of fault rules; ``take`` consumes one hit of the first matching rule."""

    def __init__(self) -> None:
        self._rules: List[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, method: str, target: str) -> Optional[FaultRule]:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, target):
                    rule.remaining -= 1
                    rule.hits += 1
                    return rule
        return None


@dataclass
class RequestRecord:
    """One served request: method, path as sent (percent-encoded, no query), query string and status."""

    method: str
    path: str
    query: str
    status: Optional[int] = None
    fault: bool = False


# --------------------------------------------------------------------------------------------------
# HTTP request plumbing
# --------------------------------------------------------------------------------------------------


class RequestBody:
    """Lazy reader of a request body (Content-Length or chunked); ``drain`` discards what is left."""

    def __init__(self, rfile: BinaryIO, headers: Message) -> None:
        self._rfile = rfile
        self._chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self._remaining = int(headers.get("Content-Length") or 0)
        self._done = not self._chunked and self._remaining == 0

    def iter_chunks(self) -> Iterator[bytes]:
        """Yield the body in pieces of at most 1 MiB."""
        while not self._done:
            chunk = self._read_chunked_piece() if self._chunked else self._read_sized_piece()
            if chunk:
                yield chunk

    def read_all(self) -> bytes:
        return b"".join(self.iter_chunks())

    def drain(self) -> None:
        for _ in self.iter_chunks():
            pass

    def _read_sized_piece(self) -> bytes:
        chunk = self._rfile.read(min(_CHUNK, self._remaining))
        self._remaining -= len(chunk)
        if not chunk or self._remaining <= 0:
            self._done = True
        return chunk

    def _read_chunked_piece(self) -> bytes:
        size = int(self._rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while self._rfile.readline().strip():  # trailers, then the final empty line
                pass
            self._done = True
            return b""
        chunk = self._rfile.read(size)
        self._rfile.readline()  # CRLF after each chunk
        return chunk


@dataclass
class HubRequest:
    """A parsed request as seen by route handlers."""

    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Message
    body: RequestBody
    authenticated: bool
    base_url: str

    def param(self, name: str, default: Optional[str] = None) -> Optional[str]:
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() in ("1", "true", "yes")

    def json(self) -> Any:
        raw = self.body.read_all()
        try:
            return json.loads(raw or b"{}")
        except ValueError as exc:
            raise bad_request(f"Invalid JSON body: {exc}") from exc


RouteHandler = Callable[[HubRequest, Dict[str, str]], HubResponse]


@dataclass
class Route:
    """``methods`` + a regex over the raw (percent-encoded) path; groups are unquoted for the handler."""

    methods: Tuple[str, ...]
    pattern: Pattern[str]
    handler: RouteHandler


_REPO_API = r"^/api/(?P<kind>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)"
_REPO_WEB = r"^/(?:(?P<kind>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+?)"
_REV = r"(?P<rev>refs/(?:pr|convert)/[^/]+|[^/]+)"  # the client sends refs%2Fpr%2FN; plain form accepted too


# --------------------------------------------------------------------------------------------------
# The application: one method per endpoint
# --------------------------------------------------------------------------------------------------


class HubApp:
    """Implements the Hub endpoints on top of ``HubStorage``; independent of the HTTP server class."""

    def __init__(self, storage: HubStorage, username: str) -> None:
        self.storage = storage
        self.username = username
        self._lfs_secret = secrets.token_bytes(32)
        self.routes = self._build_routes()

    def _build_routes(self) -> List[Route]:
        table: List[Tuple[Tuple[str, ...], str, RouteHandler]] = [
            (("GET",), r"^/api/whoami-v2$", self.whoami),
            (("POST",), r"^/api/repos/create$", self.create_repo),
            (("DELETE",), r"^/api/repos/delete$", self.delete_repo),
            (("POST",), r"^/api/validate-yaml$", self.validate_yaml),
            (("GET",), _REPO_API + r"$", self.repo_info),
            (("GET",), _REPO_API + r"/revision/" + _REV + r"$", self.repo_info),
            (("POST",), _REPO_API + r"/preupload/" + _REV + r"$", self.preupload),
            (("POST",), _REPO_API + r"/commit/" + _REV + r"$", self.commit),
            (("GET",), _REPO_API + r"/tree/" + _REV + r"(?:/(?P<path>.*))?$", self.tree),
            (("POST",), _REPO_API + r"/paths-info/" + _REV + r"$", self.paths_info),
            (("GET",), _REPO_API + r"/refs$", self.refs),
            (("GET",), _REPO_API + r"/commits/" + _REV + r"$", self.commits),
            (("POST",), _REPO_API + r"/tag/" + _REV + r"$", self.create_tag),
            (("DELETE",), _REPO_API + r"/tag/(?P<tag>[^/]+)$", self.delete_tag),
            (("POST",), _REPO_API + r"/branch/(?P<branch>[^/]+)$", self.create_branch),
            (("DELETE",), _REPO_API + r"/branch/(?P<branch>[^/]+)$", self.delete_branch),
            (("PUT",), _REPO_API + r"/settings$", self.update_settings),
            (("POST",), _REPO_WEB + r"\.git/info/lfs/objects/batch$", self.lfs_batch),
            (("POST",), _REPO_WEB + r"\.git/info/lfs/objects/verify$", self.lfs_verify),
            (("PUT",), r"^/_lfs/(?P<oid>[0-9a-f]{64})$", self.lfs_put),
            (("GET", "HEAD"), _REPO_WEB + r"/resolve/" + _REV + r"/(?P<path>.+)$", self.resolve_file),
        ]
        return [Route(methods, re.compile(pattern), handler) for methods, pattern, handler in table]

    def dispatch(self, request: HubRequest) -> HubResponse:
        """Find the route for the request and run it."""
        for route in self.routes:
            match = route.pattern.match(request.path)
            if match and request.method in route.methods:
                params = {key: unquote(value) for key, value in match.groupdict().items() if value is not None}
                return route.handler(request, params)
        raise HubError(404, f"Sorry, we can't find the page you are looking for: {request.method} {request.path}")

    # -- shared lookups ----------------------------------------------------------------------------

    @staticmethod
    def _repo_key(params: Dict[str, str]) -> Tuple[str, str]:
        repo_type = URL_KIND_TO_REPO_TYPE[params["kind"]] if params.get("kind") else "model"
        repo_id = f"{params['ns']}/{params['name']}"
        if not is_valid_repo_id(repo_id):
            raise repo_not_found(repo_id)
        return repo_type, repo_id

    def _visible_repo(self, request: HubRequest, params: Dict[str, str]) -> RepoState:
        """The repo named by the route, hidden (404 RepoNotFound) when private and unauthenticated."""
        repo = self.storage.get_repo(*self._repo_key(params))
        if repo is None or (repo.private and not request.authenticated):
            raise repo_not_found(self._repo_key(params)[1])
        return repo

    def _writable_repo(self, request: HubRequest, params: Dict[str, str]) -> RepoState:
        if not request.authenticated:
            raise unauthenticated()
        return self._visible_repo(request, params)

    def _repo_url(self, request: HubRequest, repo: RepoState) -> str:
        return f"{request.base_url}/{url_prefix(repo.repo_type)}{repo.repo_id}"

    # -- account and repos -------------------------------------------------------------------------

    def whoami(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        if not request.authenticated:
            raise HubError(401, INVALID_CREDENTIALS)
        return json_response({
            "type": "user", "id": hashlib.sha1(self.username.encode()).hexdigest()[:24], "name": self.username,
            "fullname": self.username, "email": f"{self.username}@example.invalid", "emailVerified": True,
            "isPro": False, "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test token", "role": "write"}},
        })  # fmt: skip

    def create_repo(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        if not request.authenticated:
            raise unauthenticated()
        payload = request.json()
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_KIND_TO_REPO_TYPE.values() or not payload.get("name"):
            raise bad_request(f"Invalid repo type or name: {payload}")
        repo_id = f"{payload.get('organization') or self.username}/{payload['name']}"
        if not is_valid_repo_id(repo_id):
            raise bad_request(f"Invalid repo id: {repo_id}")
        with self.storage.lock:
            existing = self.storage.get_repo(repo_type, repo_id)
            if existing is not None:
                url = self._repo_url(request, existing)
                return json_response({"error": f"You already created this {repo_type} repo", "url": url}, 409)
            repo = self.storage.create_repo(repo_type, repo_id, bool(payload.get("private")), self.username)
        return json_response({"url": self._repo_url(request, repo), "name": repo_id, "id": repo_id})

    def delete_repo(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        if not request.authenticated:
            raise unauthenticated()
        payload = request.json()
        repo_id = f"{payload.get('organization') or self.username}/{payload.get('name')}"
        repo = self.storage.get_repo(payload.get("type") or "model", repo_id) if is_valid_repo_id(repo_id) else None
        if repo is None:
            raise repo_not_found(repo_id)
        self.storage.delete_repo(repo)
        return json_response({})

    def update_settings(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        repo = self._writable_repo(request, params)
        payload = request.json()
        with self.storage.lock:
            if "private" in payload:
                repo.private = bool(payload["private"])
            if "gated" in payload:
                repo.gated = payload["gated"]
            self.storage.save_repo(repo)
        return json_response({})

    def validate_yaml(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        """Check a README's front matter: 400 with ``errors`` if it is not a YAML mapping."""
        content = request.json().get("content", "")
        try:
            metadata = parse_front_matter(content)
        except yaml.YAMLError as exc:
            return json_response({"errors": [{"message": f"Invalid YAML: {exc}"}], "warnings": []}, 400)
        if metadata is not None and not isinstance(metadata, dict):
            return json_response({"errors": [{"message": "YAML metadata must be a mapping"}], "warnings": []}, 400)
        return json_response({"errors": [], "warnings": []})

    def repo_info(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        """Model/dataset/space info at a revision (``sha``, ``siblings``, ``cardData``...)."""
        repo = self._visible_repo(request, params)
        commit = self.storage.get_commit(repo, self.storage.resolve(repo, params.get("rev", DEFAULT_BRANCH)))
        with_blobs = request.flag("blobs")
        siblings = [self._sibling(path, entry, with_blobs) for path, entry in sorted(commit.tree.items())]
        card = self._card_data(commit)
        info: Dict[str, Any] = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0], "sha": commit.id, "lastModified": commit.date,
            "createdAt": repo.created_at, "private": repo.private, "gated": repo.gated, "disabled": False,
            "downloads": 0, "likes": 0, "tags": list(card.get("tags") or []) if card else [],
            "siblings": siblings, "usedStorage": sum(entry.size for entry in commit.tree.values()),
            "xetEnabled": False,
        }  # fmt: skip
        if repo.repo_type == "model":
            info.update({"modelId": repo.repo_id, "spaces": []})
            if card and card.get("library_name"):
                info["library_name"] = card["library_name"]
        if card is not None:
            info["cardData"] = card
        return json_response(info)

    @staticmethod
    def _sibling(path: str, entry: FileEntry, with_blobs: bool) -> Dict[str, Any]:
        sibling: Dict[str, Any] = {"rfilename": path}
        if with_blobs:
            sibling.update({"size": entry.size, "blobId": entry.oid})
            if entry.lfs:
                pointer_size = len(lfs_pointer(entry.sha256, entry.size))
                sibling["lfs"] = {"sha256": entry.sha256, "size": entry.size, "pointerSize": pointer_size}
        return sibling

    def _card_data(self, commit: Commit) -> Optional[Dict[str, Any]]:
        entry = commit.tree.get("README.md")
        if entry is None:
            return None
        try:
            metadata = parse_front_matter(self.storage.blob_path(entry.sha256).read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            return None
        return metadata if isinstance(metadata, dict) else None

    # -- uploads -----------------------------------------------------------------------------------

    def preupload(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        """Tell the client, per file, "lfs" or "regular" and the oid of the file already at the revision."""
        repo = self._writable_repo(request, params)
        tree = self.storage.get_commit(repo, self.storage.resolve(repo, params["rev"])).tree
        files = []
        for item in request.json().get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            lfs = should_use_lfs(item["path"], int(item.get("size", 0)), sample)
            answer = {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            if item["path"] in tree:
                answer["oid"] = tree[item["path"]].upload_oid
            files.append(answer)
        return json_response({"files": files})

    def lfs_batch(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        """Git LFS batch API (upload only): "basic" transfer, upload href on this server, unless present."""
        repo = self._writable_repo(request, params)
        payload = request.json()
        if payload.get("operation") != "upload":
            raise bad_request("Only the 'upload' LFS operation is supported")
        verify_href = f"{self._git_url(request, repo)}/info/lfs/objects/verify"
        objects = [self._lfs_batch_object(request, obj, verify_href) for obj in payload.get("objects", [])]
        body = {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}
        return json_response(body, headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _git_url(self, request: HubRequest, repo: RepoState) -> str:
        return f"{self._repo_url(request, repo)}.git"

    def _lfs_batch_object(self, request: HubRequest, obj: Dict[str, Any], verify_href: str) -> Dict[str, Any]:
        oid, size = str(obj.get("oid", "")), int(obj.get("size", -1))
        if not _SHA256_RE.match(oid) or size < 0:
            return {"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid oid or size"}}
        if self.storage.has_blob(oid):
            return {"oid": oid, "size": size}
        href = f"{request.base_url}/_lfs/{oid}?size={size}&sig={self._lfs_signature(oid, size)}"
        actions = {"upload": {"href": href}, "verify": {"href": verify_href}}
        return {"oid": oid, "size": size, "authenticated": True, "actions": actions}

    def _lfs_signature(self, oid: str, size: int) -> str:
        """Upload hrefs are pre-signed (like S3 URLs): the client sends no token with the PUT."""
        return hmac.new(self._lfs_secret, f"{oid}:{size}".encode(), hashlib.sha256).hexdigest()

    def lfs_put(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        """Receive an LFS object; its sha256 must equal the oid and its size the signed size."""
        oid, size = params["oid"], int(request.param("size", "-1") or -1)
        if not hmac.compare_digest(request.param("sig", "") or "", self._lfs_signature(oid, size)):
            raise HubError(403, "Invalid or missing upload signature")
        if self.storage.has_blob(oid):
            request.body.drain()
        else:
            _, received = self.storage.store_blob_stream(request.body.iter_chunks(), expected_sha256=oid)
            if received != size:
                raise bad_request(f"Size mismatch: expected {size}, received {received}")
        return HubResponse(200, {"ETag": f'"{oid}"'})

    def lfs_verify(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        self._visible_repo(request, params)
        payload = request.json()
        oid = str(payload.get("oid", ""))
        if not self.storage.has_blob(oid) or self.storage.blob_path(oid).stat().st_size != payload.get("size"):
            raise HubError(404, f"LFS object {oid} not found or of the wrong size")
        return json_response({"success": True})

    # -- commits -----------------------------------------------------------------------------------

    def commit(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        """Apply an ndjson commit (header, file, lfsFile, deletedFile, deletedFolder) to a branch or PR."""
        repo = self._writable_repo(request, params)
        header, operations = self._parse_commit_payload(request.body.read_all())
        create_pr = request.flag("create_pr")
        with self.storage.lock:
            parent_id, pr_num = self._commit_base(repo, params["rev"], header.get("parentCommit"), create_pr)
            tree = self._apply_operations(dict(self.storage.get_commit(repo, parent_id).tree), operations)
            title = str(header.get("summary") or "Upload files")
            description = str(header.get("description") or "")
            commit = self.storage.add_commit(repo, [parent_id], tree, title, description, self.username)
            self._move_ref(repo, params["rev"], pr_num, commit.id)
            self.storage.save_repo(repo)
        return json_response(self._commit_answer(request, repo, commit, pr_num))

    @staticmethod
    def _parse_commit_payload(raw: bytes) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
        try:
            items = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except ValueError as exc:
            raise bad_request(f"Invalid ndjson commit payload: {exc}") from exc
        headers = [item.get("value", {}) for item in items if item.get("key") == "header"]
        return (headers[0] if headers else {}), [item for item in items if item.get("key") != "header"]

    def _commit_base(
        self, repo: RepoState, revision: str, parent_commit: Optional[str], create_pr: bool
    ) -> Tuple[str, Optional[int]]:
        """The parent commit id and, for a new PR, its number. Enforces ``parentCommit`` (412 if stale)."""
        head = self.storage.resolve(repo, revision)
        pr_match = _PR_REF_RE.match(revision)
        is_branch = revision.removeprefix("refs/heads/") in repo.branches
        if not create_pr and not is_branch and not pr_match:
            raise bad_request(f"Cannot commit to '{revision}': not a branch or a pull request ref")
        if create_pr:
            base = self.storage.find_commit(repo, parent_commit) if parent_commit else head
            if base is None:
                raise revision_not_found(str(parent_commit))
            return base, max(repo.prs, default=0) + 1
        if parent_commit and not head.startswith(parent_commit.lower()):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        return head, None

    def _move_ref(self, repo: RepoState, revision: str, new_pr: Optional[int], commit_id: str) -> None:
        pr_match = _PR_REF_RE.match(revision)
        if new_pr is not None:
            repo.prs[new_pr] = commit_id
        elif pr_match:
            repo.prs[int(pr_match.group(1))] = commit_id
        else:
            repo.branches[revision.removeprefix("refs/heads/")] = commit_id

    def _apply_operations(self, tree: Dict[str, FileEntry], operations: List[Dict[str, Any]]) -> Dict[str, FileEntry]:
        for operation in operations:
            key, value = operation.get("key"), operation.get("value", {})
            path = str(value.get("path", "")).lstrip("/")
            if key == "file":
                tree[path] = self._regular_entry(value)
            elif key == "lfsFile":
                tree[path] = self._lfs_entry(value)
            elif key == "deletedFile":
                if tree.pop(path, None) is None:
                    raise entry_not_found(f"A file with this name doesn't exist: {path}")
            elif key == "deletedFolder":
                self._delete_folder(tree, path)
            else:
                raise bad_request(f"Unknown commit operation: {key}")
        return tree

    def _regular_entry(self, value: Dict[str, Any]) -> FileEntry:
        try:
            raw = value["content"]
            content = base64.b64decode(raw, validate=True) if value.get("encoding") == "base64" else str(raw).encode()
        except (KeyError, binascii.Error) as exc:
            raise bad_request(f"Invalid file content for {value.get('path')}: {exc}") from exc
        return FileEntry(self.storage.store_blob_bytes(content), len(content), False, git_blob_oid(content))

    def _lfs_entry(self, value: Dict[str, Any]) -> FileEntry:
        oid = str(value.get("oid", ""))
        if not self.storage.has_blob(oid):
            raise bad_request(f"LFS object {oid} for {value.get('path')} has not been uploaded")
        size = self.storage.blob_path(oid).stat().st_size
        return FileEntry(oid, size, True, git_blob_oid(lfs_pointer(oid, size)))

    @staticmethod
    def _delete_folder(tree: Dict[str, FileEntry], folder: str) -> None:
        prefix = folder.rstrip("/") + "/"
        doomed = [path for path in tree if path.startswith(prefix)]
        if not doomed:
            raise entry_not_found(f"A folder with this name doesn't exist: {folder}")
        for path in doomed:
            del tree[path]

    def _commit_answer(
        self, request: HubRequest, repo: RepoState, commit: Commit, pr_num: Optional[int]
    ) -> Dict[str, Any]:
        """The commit endpoint's JSON, with the fields ``CommitInfo`` parses."""
        repo_url = self._repo_url(request, repo)
        answer: Dict[str, Any] = {
            "success": True, "commitOid": commit.id, "commitUrl": f"{repo_url}/commit/{commit.id}",
            "commitMessage": commit.title, "hookOutput": "",
        }  # fmt: skip
        if pr_num is not None:
            answer["pullRequestUrl"] = f"{repo_url}/discussions/{pr_num}"
        return answer

    # -- listings ----------------------------------------------------------------------------------

    def tree(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        """Entries under ``path`` (direct children, or everything with ``recursive``)."""
        repo = self._visible_repo(request, params)
        commit = self.storage.get_commit(repo, self.storage.resolve(repo, params["rev"]))
        base = params.get("path", "").strip("/")
        folders = _folders_of(commit.tree)
        if base and base not in folders:
            raise entry_not_found(base, commit.id)
        recursive, expand = request.flag("recursive"), request.flag("expand")
        paths = [p for p in sorted(folders | set(commit.tree)) if _is_under(p, base, recursive)]
        return json_response([self._tree_entry(repo, commit, path, expand) for path in paths])

    def paths_info(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        """Info on the listed paths (form-encoded ``paths=...&expand=...``, as the client sends it)."""
        repo = self._visible_repo(request, params)
        commit = self.storage.get_commit(repo, self.storage.resolve(repo, params["rev"]))
        form = parse_qs(request.body.read_all().decode("utf-8"))
        expand = (form.get("expand") or ["false"])[0].lower() == "true"
        folders = _folders_of(commit.tree)
        wanted = [p.strip("/") for p in form.get("paths", [])]
        found = [p for p in wanted if p in commit.tree or p in folders]
        return json_response([self._tree_entry(repo, commit, path, expand) for path in found])

    def _tree_entry(self, repo: RepoState, commit: Commit, path: str, expand: bool) -> Dict[str, Any]:
        entry = commit.tree.get(path)
        if entry is None:
            info: Dict[str, Any] = {"type": "directory", "oid": _folder_oid(commit.tree, path), "size": 0, "path": path}
        else:
            info = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
            if entry.lfs:
                pointer_size = len(lfs_pointer(entry.sha256, entry.size))
                info["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": pointer_size}
        if expand:
            last = self._last_commit_touching(repo, commit, path)
            info["lastCommit"] = {"id": last.id, "title": last.title, "date": last.date}
        return info

    def _last_commit_touching(self, repo: RepoState, head: Commit, path: str) -> Commit:
        """The newest first-parent ancestor that changed ``path`` (a file or a folder)."""
        commits = list(self.storage.history(repo, head.id))
        for commit, parent in zip(commits, commits[1:]):
            if _snapshot_of(commit.tree, path) != _snapshot_of(parent.tree, path):
                return commit
        return commits[-1]

    def refs(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        repo = self._visible_repo(request, params)
        branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c} for n, c in sorted(repo.branches.items())]
        tags = [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": c} for n, c in sorted(repo.tags.items())]
        body: Dict[str, Any] = {"branches": branches, "converts": [], "tags": tags}
        if request.flag("include_prs"):
            body["pullRequests"] = [
                {"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": c} for n, c in sorted(repo.prs.items())
            ]
        return json_response(body)

    def commits(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        repo = self._visible_repo(request, params)
        head = self.storage.resolve(repo, params["rev"])
        formatted = "formatted" in request.query.get("expand[]", [])
        return json_response([self._commit_item(commit, formatted) for commit in self.storage.history(repo, head)])

    @staticmethod
    def _commit_item(commit: Commit, formatted: bool) -> Dict[str, Any]:
        item: Dict[str, Any] = {
            "id": commit.id, "title": commit.title, "message": commit.message, "date": commit.date,
            "authors": [{"user": commit.author, "avatar": None}],
        }  # fmt: skip
        if formatted:
            item["formatted"] = {"title": commit.title, "message": commit.message}
        return item

    # -- tags and branches -------------------------------------------------------------------------

    def create_tag(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        repo = self._writable_repo(request, params)
        tag = str(request.json().get("tag") or "")
        if not tag:
            raise bad_request("Missing 'tag'")
        with self.storage.lock:
            if tag in repo.tags:
                raise HubError(409, f"Tag {tag} already exists")
            repo.tags[tag] = self.storage.resolve(repo, params["rev"])
            self.storage.save_repo(repo)
        return json_response({})

    def delete_tag(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        repo = self._writable_repo(request, params)
        with self.storage.lock:
            if repo.tags.pop(params["tag"], None) is None:
                raise revision_not_found(params["tag"])
            self.storage.save_repo(repo)
        return json_response({})

    def create_branch(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        repo = self._writable_repo(request, params)
        starting_point = request.json().get("startingPoint") or DEFAULT_BRANCH
        with self.storage.lock:
            if params["branch"] in repo.branches:
                raise HubError(409, f"Branch {params['branch']} already exists")
            repo.branches[params["branch"]] = self.storage.resolve(repo, starting_point)
            self.storage.save_repo(repo)
        return json_response({})

    def delete_branch(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        repo = self._writable_repo(request, params)
        with self.storage.lock:
            if params["branch"] == DEFAULT_BRANCH:
                raise HubError(403, "Cannot delete the default branch")
            if repo.branches.pop(params["branch"], None) is None:
                raise revision_not_found(params["branch"])
            self.storage.save_repo(repo)
        return json_response({})

    # -- downloads ---------------------------------------------------------------------------------

    def resolve_file(self, request: HubRequest, params: Dict[str, str]) -> HubResponse:
        """HEAD/GET a file with the headers ``hf_hub_download`` checks; honours single ``Range`` requests."""
        repo = self._visible_repo(request, params)
        if repo.gated and not request.authenticated:
            raise HubError(401, f"Access to {repo.repo_id} is restricted: you must be authenticated.", code="GatedRepo")
        commit_id = self.storage.resolve(repo, params["rev"])
        entry = self.storage.get_commit(repo, commit_id).tree.get(params["path"])
        if entry is None:
            raise entry_not_found(params["path"], commit_id)
        etag = entry.sha256 if entry.lfs else entry.oid
        headers = {
            "X-Repo-Commit": commit_id, "ETag": f'"{etag}"', "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }  # fmt: skip
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        offset, length, status = _byte_range(request.headers.get("Range"), entry.size)
        if status == 206:
            headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{entry.size}"
        blob = self.storage.blob_path(entry.sha256)
        return HubResponse(status, headers, file_path=blob, file_offset=offset, file_length=length)


def _byte_range(header: Optional[str], size: int) -> Tuple[int, int, int]:
    """(offset, length, status) for an optional ``Range: bytes=a-b`` header; 416 if unsatisfiable."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header or "")
    if not match or match.groups() == ("", ""):
        return 0, size, 200
    start, end = match.groups()
    first = int(start) if start else max(size - int(end), 0)
    last = min(int(end), size - 1) if start and end else size - 1
    if first >= size or first > last:
        raise HubError(416, f"Range not satisfiable: {header}", headers={"Content-Range": f"bytes */{size}"})
    return first, last - first + 1, 206


def _folders_of(tree: Dict[str, FileEntry]) -> Set[str]:
    """Every folder path implied by the files of a tree."""
    folders: Set[str] = set()
    for path in tree:
        parts = path.split("/")[:-1]
        folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return folders


def _is_under(path: str, base: str, recursive: bool) -> bool:
    if base and not path.startswith(base + "/"):
        return False
    rest = path[len(base) + 1 :] if base else path
    return recursive or "/" not in rest


def _snapshot_of(tree: Dict[str, FileEntry], path: str) -> List[Tuple[str, str]]:
    """The (path, sha256) pairs at or under ``path``, to detect whether a commit changed it."""
    return sorted((p, e.sha256) for p, e in tree.items() if p == path or p.startswith(path + "/"))


def _folder_oid(tree: Dict[str, FileEntry], folder: str) -> str:
    """A stable synthetic tree id for a folder, derived from its content."""
    return hashlib.sha1(json.dumps(_snapshot_of(tree, folder)).encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# HTTP server glue
# --------------------------------------------------------------------------------------------------


class _HubHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its ``HubServer`` and can close idle keep-alive connections."""

    daemon_threads = True
    block_on_close = False
    hub: "HubServer"

    def __init__(self, address: Tuple[str, int], hub: "HubServer") -> None:
        self.hub = hub
        self.connections: Set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _HubRequestHandler)

    def close_connections(self) -> None:
        with self.connections_lock:
            for connection in list(self.connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _HubRequestHandler(BaseHTTPRequestHandler):
    """Turns HTTP requests into ``HubRequest``s, applies auth, faults and logging, writes responses."""

    protocol_version = "HTTP/1.1"
    timeout = 60
    server: _HubHTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        if self.server.hub.verbose:
            sys.stderr.write(f"[hub] {self.address_string()} {format % args}\n")

    def _handle(self) -> None:
        hub = self.server.hub
        split = urlsplit(self.path)
        body = RequestBody(self.rfile, self.headers)
        record = hub._log_request(self.command, split.path, split.query)
        fault = hub.faults.take(self.command, self.path)
        record.fault = fault is not None
        response = self._respond(hub, split, body, fault)
        body.drain()
        record.status = response.status
        self._write(response)

    def _respond(self, hub: "HubServer", split: Any, body: RequestBody, fault: Optional[FaultRule]) -> HubResponse:
        if fault is not None and not fault.after:
            return fault.response()
        try:
            response = hub.app.dispatch(self._build_request(hub, split, body))
        except HubError as error:
            response = error.to_response()
        except Exception as exc:  # a bug in the server: answer 500 and show it
            traceback.print_exc()
            response = json_response({"error": f"Internal server error: {exc!r}"}, 500)
        return fault.response() if fault is not None else response

    def _build_request(self, hub: "HubServer", split: Any, body: RequestBody) -> HubRequest:
        authenticated = self._check_token(hub.token)
        host = self.headers.get("Host") or f"{hub.host}:{hub.port}"
        return HubRequest(
            self.command, split.path, parse_qs(split.query, keep_blank_values=True), self.headers, body,
            authenticated, f"http://{host}",
        )  # fmt: skip

    def _check_token(self, token: str) -> bool:
        """True with the right bearer token, False without one; a wrong token is a 401 on any request."""
        header = self.headers.get("Authorization")
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), token):
            raise HubError(401, INVALID_CREDENTIALS)
        return True

    def _write(self, response: HubResponse) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(response.content_length))
            self.end_headers()
            if self.command != "HEAD":
                self._write_body(response)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _write_body(self, response: HubResponse) -> None:
        if response.file_path is None:
            self.wfile.write(response.body)
            return
        with open(response.file_path, "rb") as source:
            source.seek(response.file_offset)
            remaining = response.file_length
            while remaining > 0:
                chunk = source.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


class HubServer:
    """A local Hub on ``http://host:port`` backed by files under ``root``.

    ``start()``/``stop()`` or use as a context manager. ``port=0`` picks a free port (see ``url``).
    Requests with ``Authorization: Bearer <token>`` act as ``username``; see the module docstring."""

    def __init__(
        self,
        root: Path,
        token: str,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        username: str = DEFAULT_USERNAME,
        verbose: bool = False,
    ) -> None:
        self.root = Path(root)
        self.token = token
        self.host = host
        self.username = username
        self.verbose = verbose
        self.storage = HubStorage(self.root)
        self.app = HubApp(self.storage, username)
        self.faults = FaultInjector()
        self._requested_port = port
        self._records: List[RequestRecord] = []
        self._records_lock = threading.Lock()
        self._httpd: Optional[_HubHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> "HubServer":
        """Bind and serve in a background thread; returns self."""
        if self._httpd is not None:
            return self
        self._httpd = _HubHTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # fast shutdown(); the default 0.5 s adds up over many tests
            name=f"hub-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket and any idle keep-alive connections."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd, self._thread = None, None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("HubServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to use as ``endpoint=`` / ``HF_ENDPOINT``, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    # -- fault injection ---------------------------------------------------------------------------

    def fail_next(
        self, method: str, path_regex: str, times: int = 1, *, status: int = 503, after: bool = False
    ) -> FaultRule:
        """Make the next ``times`` requests with ``method`` (``"*"`` for any) whose request target
        (percent-encoded path plus ``?query``) matches ``path_regex`` (``re.search``) answer ``status``.

        ``after=False``: the request is not processed. ``after=True``: it is processed (a commit lands,
        an upload is stored) and only the answer is replaced. The returned rule's ``hits`` counts uses."""
        return self.faults.add(FaultRule(method.upper(), re.compile(path_regex), times, status, after))

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- request log -------------------------------------------------------------------------------

    def _log_request(self, method: str, path: str, query: str) -> RequestRecord:
        record = RequestRecord(method, path, query)
        with self._records_lock:
            self._records.append(record)
        return record

    @property
    def requests(self) -> List[Tuple[str, str]]:
        """A snapshot of (method, path) of every request so far; path as sent, without the query."""
        with self._records_lock:
            return [(r.method, r.path) for r in self._records]

    @property
    def request_records(self) -> List[RequestRecord]:
        """A snapshot of the detailed log (method, path, query, status, whether a fault answered)."""
        with self._records_lock:
            return list(self._records)

    def count_requests(self, method: str, path_regex: str) -> int:
        """How many requests so far had ``method`` (``"*"`` for any) and a path matching ``path_regex``."""
        pattern = re.compile(path_regex)
        return sum(1 for m, p in self.requests if method.upper() in ("*", m) and pattern.search(p))

    def clear_requests(self) -> None:
        with self._records_lock:
            self._records.clear()

    # -- direct (non-HTTP) helpers for tests -------------------------------------------------------

    def set_gated(self, repo_id: str, gated: Any = "auto", repo_type: str = "model") -> None:
        """Gate a repo: downloads without a valid token then fail with ``GatedRepoError``."""
        repo = self.storage.get_repo(repo_type, repo_id)
        if repo is None:
            raise KeyError(repo_id)
        with self.storage.lock:
            repo.gated = gated
            self.storage.save_repo(repo)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[List[str]] = None) -> int:
    """Command line entry point: serve a root directory until Ctrl-C."""
    parser = argparse.ArgumentParser(description="Local Hugging Face Hub-compatible server for tests.")
    parser.add_argument("--root", type=Path, required=True, help="directory holding repos and blobs")
    parser.add_argument("--port", type=int, default=8080, help="port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--token", required=True, help="the token clients must send (Bearer)")
    parser.add_argument("--username", default=DEFAULT_USERNAME, help="user that the token belongs to")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server = HubServer(args.root, args.token, args.port, host=args.host, username=args.username, verbose=args.verbose)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # `kill` stops it as cleanly as Ctrl-C
    with server:
        print(f"Hub server for {args.root} listening on {server.url}", flush=True)
        print(f"Use: export HF_ENDPOINT={server.url}  (or --endpoint {server.url}), token {args.token}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("Stopping.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
