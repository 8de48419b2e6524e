"""Storage: ``FileEntry``, ``Commit`` (an immutable full tree snapshot) and ``RepoState`` (visibility
and refs), and ``HubStorage``, which keeps repos, commits, refs and content-addressed blobs under the
server root as JSON and blob files (so a restarted server on the same root shows the same
repositories) and resolves revisions to commits. It knows nothing about HTTP; ``hub_server.app`` reads
and changes state only through it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import _HEX_RE, _PR_REF_RE, _SHA256_RE, DEFAULT_BRANCH, default_gitattributes, git_blob_oid, utc_now_iso
from .errors import bad_request, revision_not_found

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

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "lfs": self.lfs, "oid": self.oid}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileEntry:
        return cls(sha256=data["sha256"], size=data["size"], lfs=data["lfs"], oid=data["oid"])


@dataclass
class Commit:
    """An immutable commit: its parents, message, author, date and full file tree."""

    id: str
    parents: list[str]
    title: str
    message: str
    author: str
    date: str
    tree: dict[str, FileEntry]

    def to_json(self) -> dict[str, Any]:
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
    def from_json(cls, data: dict[str, Any]) -> Commit:
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
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    prs: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
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
    def from_json(cls, data: dict[str, Any]) -> RepoState:
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
        self._repos: dict[tuple[str, str], RepoState] = {}
        self._commits: dict[str, Commit] = {}
        for sub in ("repos", "blobs", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- repos -------------------------------------------------------------------------------------

    def _repo_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_type}s" / repo_id

    def get_repo(self, repo_type: str, repo_id: str) -> RepoState | None:
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

    def list_repos(self) -> list[RepoState]:
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
        self, repo: RepoState, parents: list[str], tree: dict[str, FileEntry], title: str, message: str, author: str
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

    def find_commit(self, repo: RepoState, prefix: str) -> str | None:
        """The full id of the only commit starting with ``prefix`` (5 to 40 hex chars), else None."""
        folder = self._repo_dir(repo.repo_type, repo.repo_id) / "commits"
        ids = [p.stem for p in folder.glob(f"{prefix}*.json")] if _HEX_RE.match(prefix) else []
        return ids[0] if len(ids) == 1 else None

    def history(self, repo: RepoState, head: str) -> Iterator[Commit]:
        """Commits reachable from ``head`` through first parents, newest first."""
        commit_id: str | None = head
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

    def store_blob_stream(self, chunks: Iterator[bytes], expected_sha256: str | None = None) -> tuple[str, int]:
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
