"""Constants and small helpers of the local Hub server: the defaults (user, branch), the LFS rules
(size threshold, default ``.gitattributes`` patterns, ``should_use_lfs``), the id/ref/sha regexes, the
git and LFS hashes (``git_blob_oid``, ``lfs_pointer``), Hub timestamps, model-card front-matter parsing
and repo-id checks. They import nothing from the package, so every other module can use them without
import cycles.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from datetime import datetime, timezone
from typing import Any

import yaml

DEFAULT_USERNAME = "test-user"
DEFAULT_BRANCH = "main"
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
LFS_PATTERNS: tuple[str, ...] = (
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


def parse_front_matter(readme: str) -> Any | None:
    """The YAML front matter of a model card, or None when there is none. Raises ``yaml.YAMLError``."""
    match = _FRONT_MATTER_RE.match(readme)
    return yaml.safe_load(match.group(1)) if match else None


def is_valid_repo_id(repo_id: str) -> bool:
    """``namespace/name`` made of safe characters (repo ids become directory names on disk)."""
    return bool(_REPO_ID_RE.match(repo_id)) and ".." not in repo_id


def url_prefix(repo_type: str) -> str:
    """The path prefix of a repo type in web/git URLs (models have none)."""
    return "" if repo_type == "model" else f"{repo_type}s/"
