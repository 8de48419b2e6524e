"""``push``: publish an artifact folder to a Hugging Face Hub model repository in one commit.

Steps: refuse variants that were not validated or failed validation → check the folder against
manifest.json (no missing, changed or unlisted file) → finalise the manifest and refresh the model card →
create the repo (``exist_ok``) → compare the remote tree with the folder → one ``create_commit`` with the
changed files (LFS through the client's LFS upload) and the deletion of remote files the artifact no longer
has (``.gitattributes`` is kept) → optionally tag the commit. After a push the branch (or the pull request)
holds exactly the artifact folder.

Identical content makes no commit. The client retries LFS uploads itself but never the commit call: a
failed commit call (5xx, lost connection, or an answer the client cannot parse) is retried here, bounded and
with backoff, but only after checking whether the commit landed anyway (the remote tree equals the folder):
a commit whose answer was lost is not made twice.

Endpoint: huggingface_hub 0.36 parses the commit URL the Hub answers against ``constants.ENDPOINT`` (read
from ``HF_ENDPOINT`` once, at import), not against ``HfApi(endpoint=...)``: with any other endpoint it
raises ``ValueError`` after the commit has landed. ``push`` points ``constants.ENDPOINT`` at the endpoint it
uses for the duration of the push (and treats that ``ValueError``, should it still happen, like a lost answer:
it looks the commit up on the Hub).

The token is never printed, logged or written: it is removed from every message this module produces.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from exporter import __version__
from exporter.errors import BadInputError, CheckFailedError, ExporterError, ExternalError
from exporter.hub import check_endpoint, first_line, http_status, redact
from exporter.constants import MANIFEST_NAME
from exporter.artifact.manifest import list_files, read_manifest
from exporter.progress import Progress, SilentProgress

# Delays (seconds) before each retry of a failed Hub call; len() + 1 attempts in all.
RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0)
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_REVISION = "main"
KEEP_REMOTE = frozenset({".gitattributes"})
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_ENDPOINT_TRAP = "Unable to retrieve user and repo ID"
T = TypeVar("T")


@dataclass
class PushResult:
    """What ``push`` did. ``created_commit`` is False when the Hub already held identical files."""

    repo_id: str
    commit_url: str
    pr_url: str | None
    commit_oid: str
    created_commit: bool
    files: int
    changed: int = 0
    deleted: int = 0
    revision: str = DEFAULT_REVISION
    endpoint: str = ""
    pr_ref: str | None = None
    tag: str | None = None
    tag_created: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The result for people: what happened and where to look."""
        where = f"{self.repo_id}@{self.revision}"
        if not self.created_commit:
            lines = [f"No changes: {where} already holds these {self.files} files; no new commit was made.",
                     f"Commit: {self.commit_url}"]
        else:
            what = f"{self.changed} of {self.files} files changed" + (f", {self.deleted} deleted" if self.deleted else "")
            if self.pr_url:
                lines = [f"Opened pull request {self.pr_ref or ''} against {where} ({what}): {self.pr_url}".replace("  ", " "),
                         f"Commit: {self.commit_url}"]
            else:
                lines = [f"Pushed to {where} ({what}).", f"Commit: {self.commit_url}"]
        if self.tag:
            lines.append(f"Tag {self.tag}: {'created' if self.tag_created else 'already'} at {self.commit_oid[:12]}")
        return lines


@dataclass(frozen=True)
class LocalFile:
    sha256: str
    size: int
    git_oid: str  # the git blob id the Hub reports for a regular (non-LFS) file


# ------------------------------------------------------------------------------------------- local checks


def unvalidated_variants(manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Names of the variants without ``parity`` and of those whose ``parity.passed`` is not true."""
    missing, failed = [], []
    for variant in manifest["variants"]:
        parity = variant.get("parity")
        if not isinstance(parity, dict):
            missing.append(variant["name"])
        elif parity.get("passed") is not True:
            failed.append(variant["name"])
    return missing, failed


def check_validated(manifest: dict[str, Any], folder: Path) -> None:
    """Raise ``CheckFailedError`` naming every variant that was not validated or failed validation."""
    if not manifest["variants"]:
        raise BadInputError(f"{folder}: the manifest lists no variants; nothing to push")
    missing, failed = unvalidated_variants(manifest)
    problems = []
    if failed:
        problems.append(f"failed validation: {', '.join(failed)}")
    if missing:
        problems.append(f"not validated (no parity in manifest.json): {', '.join(missing)}")
    if problems:
        raise CheckFailedError(f"{folder}: refusing to push: {'; '.join(problems)}; validate the folder first "
                               "(only variants whose parity passed are published)")


def listed_entries(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries = {entry["path"]: entry for entry in manifest.get("shared_files", [])}
    for variant in manifest["variants"]:
        entries.update({entry["path"]: entry for entry in variant["files"]})
    return entries


def check_listing(folder: Path, manifest: dict[str, Any], ignore: frozenset[str] = frozenset()) -> None:
    """Every listed file exists with its size, and every file is listed (cheap: no hashing)."""
    entries = listed_entries(manifest)
    present = set(list_files(folder))
    missing = sorted(path for path in entries if path not in present and path not in ignore)
    if missing:
        raise CheckFailedError(f"{folder}: listed in manifest.json but missing: {', '.join(missing[:10])}"
                               + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""))
    unlisted = sorted(path for path in present if path not in entries and path not in ignore)
    if unlisted:
        raise CheckFailedError(f"{folder}: not listed in manifest.json: {', '.join(unlisted[:10])}"
                               + (f" (and {len(unlisted) - 10} more)" if len(unlisted) > 10 else "")
                               + "; remove them or rebuild the folder")
    changed = sorted(path for path, entry in entries.items()
                     if path not in ignore and (folder / path).stat().st_size != entry["size"])
    if changed:
        raise CheckFailedError(f"{folder}: changed since manifest.json was written (size differs): {', '.join(changed)}")


def hash_file(path: Path) -> LocalFile:
    """sha256 and git blob id of a file in one read."""
    size = path.stat().st_size
    sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            sha256.update(block)
            sha1.update(block)
    return LocalFile(sha256.hexdigest(), size, sha1.hexdigest())


def local_files(folder: Path, manifest: dict[str, Any]) -> dict[str, LocalFile]:
    """Every file to push (the listed ones and manifest.json), hashed; listed sha256 must match."""
    entries = listed_entries(manifest)
    files = {path: hash_file(folder / path) for path in sorted(entries)}
    changed = sorted(path for path, local in files.items() if local.sha256 != entries[path]["sha256"])
    if changed:
        raise CheckFailedError(f"{folder}: changed since manifest.json was written (sha256 differs): {', '.join(changed)}")
    files[MANIFEST_NAME] = hash_file(folder / MANIFEST_NAME)
    return files


# --------------------------------------------------------------------------------------- Hub plumbing


@contextlib.contextmanager
def client_endpoint(endpoint: str) -> Iterator[None]:
    """Point huggingface_hub's import-time ``constants.ENDPOINT`` (which ``CommitInfo``/``RepoUrl`` parse
    URLs against) at ``endpoint`` while pushing; restored afterwards."""
    from huggingface_hub import constants

    previous = constants.ENDPOINT
    constants.ENDPOINT = endpoint
    try:
        yield
    finally:
        constants.ENDPOINT = previous


class _Hub:
    """The huggingface_hub calls of one push, with bounded retries and errors mapped to exit codes."""

    def __init__(self, api, repo_id: str, endpoint: str, token: str, progress: Progress, sleep: Callable[[float], None]):
        self.api = api
        self.repo_id = repo_id
        self.endpoint = endpoint
        self.token = token
        self.progress = progress
        self.sleep = sleep

    def redact(self, text: str) -> str:
        return redact(text, self.token)

    def log(self, message: str) -> None:
        self.progress.log(self.redact(message))

    @staticmethod
    def retryable(error: BaseException) -> bool:
        import requests
        from huggingface_hub.errors import OfflineModeIsEnabled

        if isinstance(error, OfflineModeIsEnabled):
            return False
        if isinstance(error, (requests.ConnectionError, requests.Timeout)):
            return True
        return http_status(error) in RETRYABLE_STATUS

    def fail(self, error: BaseException, what: str) -> ExporterError:
        """The ``ExporterError`` for a failed call (after retries where they apply)."""
        from huggingface_hub.errors import OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError

        status, detail = http_status(error), self.redact(first_line(error))
        if isinstance(error, OfflineModeIsEnabled):
            return BadInputError("HF_HUB_OFFLINE is set: pushing needs the Hub; unset HF_HUB_OFFLINE")
        if status == 401:
            return BadInputError(f"the Hub at {self.endpoint} rejected the token (401 Unauthorized) while {what}; "
                                 "pass a valid --token, set HF_TOKEN or log in with `hf auth login`")
        if status == 403:
            return BadInputError(f"the token may not write to {self.repo_id} on {self.endpoint} (403 Forbidden) "
                                 f"while {what}: {detail}")
        if isinstance(error, RevisionNotFoundError):
            return BadInputError(f"{self.repo_id}: revision not found on {self.endpoint} while {what}: {detail}")
        if isinstance(error, RepositoryNotFoundError):
            return BadInputError(f"{self.repo_id}: repository not found on {self.endpoint}, or not visible to this "
                                 f"token ({what})")
        import requests

        if isinstance(error, (requests.ConnectionError, requests.Timeout)):
            return ExternalError(f"cannot reach the Hub at {self.endpoint} while {what} "
                                 f"({len(RETRY_DELAYS) + 1} attempts): {detail}")
        if status is not None:
            return ExternalError(f"the Hub at {self.endpoint} answered HTTP {status} while {what}"
                                 + (f" ({len(RETRY_DELAYS) + 1} attempts)" if status in RETRYABLE_STATUS else "")
                                 + f": {detail}")
        return ExternalError(f"Hub call failed while {what}: {type(error).__name__}: {detail}")

    def call(self, what: str, function: Callable[[], T]) -> T:
        """Run an idempotent call, retrying connection failures and 5xx answers with backoff."""
        for attempt in range(len(RETRY_DELAYS) + 1):
            try:
                return function()
            except Exception as error:  # noqa: BLE001 - mapped below
                if not self.retryable(error) or attempt == len(RETRY_DELAYS):
                    raise self.fail(error, what) from None
                delay = RETRY_DELAYS[attempt]
                self.log(f"{what}: {self.redact(first_line(error))}; retrying in {delay:g} s")
                self.sleep(delay)
        raise AssertionError("unreachable")

    # -- reads ------------------------------------------------------------------------------------

    def head(self, revision: str) -> str:
        return self.call(f"reading {self.repo_id}@{revision}",
                         lambda: self.api.model_info(self.repo_id, revision=revision).sha)

    def tree(self, revision: str) -> dict[str, Any]:
        from huggingface_hub.hf_api import RepoFile

        entries = self.call(f"listing {self.repo_id}@{revision}",
                            lambda: list(self.api.list_repo_tree(self.repo_id, revision=revision, recursive=True)))
        return {entry.path: entry for entry in entries if isinstance(entry, RepoFile)}

    def refs(self):
        return self.call(f"listing the refs of {self.repo_id}",
                         lambda: self.api.list_repo_refs(self.repo_id, include_pull_requests=True))

    def commit_url(self, oid: str) -> str:
        return f"{self.endpoint}/{self.repo_id}/commit/{oid}"


def diff(local: dict[str, LocalFile], remote: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(paths to upload, remote paths to delete) to make the remote tree hold exactly ``local``."""
    upload = []
    for path, file in local.items():
        entry = remote.get(path)
        if entry is None:
            upload.append(path)
        elif entry.lfs is not None:
            if entry.lfs.sha256 != file.sha256:
                upload.append(path)
        elif entry.blob_id != file.git_oid:
            upload.append(path)
    delete = sorted(path for path in remote if path not in local and path not in KEEP_REMOTE)
    return upload, delete


# ------------------------------------------------------------------------------------------------ push


def resolve_token(token: str | None) -> str | None:
    """``token``, else HF_TOKEN, else the huggingface_hub login; None when there is none."""
    if token:
        return token
    from huggingface_hub import get_token

    return get_token() or None


def _default_message(manifest: dict[str, Any]) -> tuple[str, str]:
    recipe = manifest.get("recipe") or {}
    names = [v["name"] for v in manifest["variants"]]
    title = f"Upload {recipe.get('name', 'artifacts')} ({len(names)} variant{'s' if len(names) != 1 else ''})"
    description = (f"Built with embedding-exporter {__version__} from recipe {recipe.get('file', '')} "
                   f"(sha256 {recipe.get('sha256', '')}).\n\nVariants: {', '.join(names)}.")
    return title, description


def push(
    folder: str | Path,
    repo_id: str | None = None,
    *,
    private: bool | None = None,
    create_pr: bool | None = None,
    revision: str | None = None,
    tag: str | None = None,
    commit_message: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    progress: Progress | None = None,
) -> PushResult:
    """Publish ``folder`` to the Hub model repo ``repo_id`` in one commit (see the module docstring).

    Unset options default to the manifest's ``publish`` section (from the recipe), then to: public repo,
    branch ``main``, no pull request, no tag. ``token`` defaults to HF_TOKEN / the huggingface_hub login.

    Raises ``CheckFailedError`` (nothing pushed) when a variant was not validated or failed validation or
    the folder does not match its manifest; ``BadInputError`` for a bad argument, a missing or rejected
    token, or a repo that cannot be written; ``ExternalError`` when the Hub cannot be reached or keeps
    failing after retries.
    """
    from exporter.publish.card import CARD_NAME, write_card
    from exporter.artifact.provenance import finalize_manifest

    progress = progress or SilentProgress()
    root = Path(folder)
    if not root.is_dir():
        raise BadInputError(f"{folder}: not a folder")
    manifest = read_manifest(root)
    publish = manifest.get("publish") if isinstance(manifest.get("publish"), dict) else {}
    repo_id = repo_id or publish.get("repo_id")
    if not repo_id:
        raise BadInputError("no repository: pass --repo-id ORG/NAME (or set publish.repo_id in the recipe)")
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith(".git"):
        raise BadInputError(f"--repo-id {repo_id!r}: expected ORG/NAME (letters, digits, '.', '_', '-')")
    private = private if private is not None else publish.get("private")
    private = None if private is None else bool(private)
    create_pr = bool(create_pr if create_pr is not None else publish.get("create_pr", False))
    revision = revision or publish.get("revision") or DEFAULT_REVISION
    tag = tag or publish.get("tag") or None
    if tag and create_pr:
        raise BadInputError("--tag and --create-pr: a pull request's commit is not tagged; tag it once merged")

    check_validated(manifest, root)
    check_listing(root, manifest, ignore=frozenset({CARD_NAME}))

    token = resolve_token(token)
    if not token:
        kind = "a private repo" if private else "a repo"
        raise BadInputError(f"no Hub token: pushing to {kind} needs one; pass --token, set HF_TOKEN or log in "
                            "with `hf auth login`")
    from huggingface_hub import HfApi, constants

    endpoint = check_endpoint(endpoint or constants.ENDPOINT)
    if constants.HF_HUB_OFFLINE:
        raise BadInputError("HF_HUB_OFFLINE is set: pushing needs the Hub; unset HF_HUB_OFFLINE")

    with progress.step("Writing the model card and finalising manifest.json"):
        finalize_manifest(root)
        write_card(root, repo_id)
        manifest = read_manifest(root)
        local = local_files(root, manifest)

    api = HfApi(endpoint=endpoint, token=token, library_name="embedding-exporter", library_version=__version__)
    hub = _Hub(api, repo_id, endpoint, token, progress, time.sleep)
    with client_endpoint(endpoint):
        try:
            return _push(hub, root, manifest, local, private=private, create_pr=create_pr, revision=revision,
                         tag=tag, commit_message=commit_message, publish=publish)
        except ExporterError as error:
            error.args = (hub.redact(str(error)),)
            raise


def _push(hub: _Hub, root: Path, manifest: dict[str, Any], local: dict[str, LocalFile], *, private: bool | None,
          create_pr: bool, revision: str, tag: str | None, commit_message: str | None,
          publish: dict[str, Any]) -> PushResult:
    api, repo_id = hub.api, hub.repo_id
    with hub.progress.step(f"Preparing {repo_id} on {hub.endpoint}"):
        hub.call(f"creating {repo_id}", lambda: api.create_repo(repo_id, private=private, exist_ok=True))
        if private:
            info = hub.call(f"reading {repo_id}", lambda: api.model_info(repo_id))
            if not info.private:
                raise BadInputError(f"{repo_id} exists and is public: --private does not change an existing repo's "
                                    "visibility; make it private on the Hub first, or push without --private")
        refs = hub.refs()
        branches = {ref.name: ref.target_commit for ref in refs.branches}
        is_pr_ref = revision.startswith("refs/pr/")
        if is_pr_ref and revision not in {ref.ref for ref in refs.pull_requests}:
            raise BadInputError(f"--revision {revision}: no such pull request in {repo_id}")
        if not is_pr_ref and revision not in branches:
            if create_pr:
                raise BadInputError(f"--revision {revision}: no such branch in {repo_id} to open a pull request against")
            hub.call(f"creating branch {revision}", lambda: api.create_branch(repo_id, branch=revision, exist_ok=True))
        head = hub.head(revision)
        upload, delete = diff(local, hub.tree(revision))
        tags = {ref.name: ref.target_commit for ref in refs.tags}
        if tag and tag in tags and (upload or delete or tags[tag] != head):
            raise BadInputError(f"tag {tag!r} already exists in {repo_id} (at {tags[tag][:12]}); tags are never "
                                "moved: choose another --tag")

    result = PushResult(repo_id=repo_id, commit_url=hub.commit_url(head), pr_url=None, commit_oid=head,
                        created_commit=False, files=len(local), revision=revision, endpoint=hub.endpoint)
    if upload or delete:
        title, description = _default_message(manifest)
        message = commit_message or publish.get("commit_message") or title
        size = sum(local[path].size for path in upload)
        label = f"Uploading {len(upload)} file{'s' if len(upload) != 1 else ''} ({size / 1e6:.1f} MB)" + (
            f", deleting {len(delete)}" if delete else "") + f" to {repo_id}@{revision}" + (" as a pull request" if create_pr else "")
        with hub.progress.step(label):
            result = _commit(hub, root, local, upload, delete, head, revision, create_pr, message, description, refs)
    if tag:
        result.tag = tag
        if tags.get(tag) != result.commit_oid:
            with hub.progress.step(f"Tagging {result.commit_oid[:12]} as {tag}"):
                result.tag_created = _create_tag(hub, tag, result.commit_oid)
    return result


def _operations(root: Path, upload: list[str], delete: list[str]) -> list[Any]:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    return ([CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(root / path)) for path in upload]
            + [CommitOperationDelete(path_in_repo=path) for path in delete])


def _commit(hub: _Hub, root: Path, local: dict[str, LocalFile], upload: list[str], delete: list[str], head: str,
            revision: str, create_pr: bool, message: str, description: str, refs) -> PushResult:
    """One commit, retried after failures only once it is known not to have landed."""
    known_prs = {ref.ref for ref in refs.pull_requests}
    what = f"committing to {hub.repo_id}@{revision}"
    for attempt in range(len(RETRY_DELAYS) + 1):
        try:
            info = hub.api.create_commit(
                hub.repo_id, _operations(root, upload, delete), commit_message=message,
                commit_description=description, revision=revision, create_pr=create_pr, parent_commit=head,
            )
        except Exception as error:  # noqa: BLE001 - classified below
            trap = isinstance(error, ValueError) and _ENDPOINT_TRAP in str(error)
            stale = http_status(error) == 412  # the branch moved since `head` was read
            if not (trap or stale or hub.retryable(error)):
                raise hub.fail(error, what) from None
            hub.log(f"{what}: {hub.redact(first_line(error))}; checking whether the commit landed")
            landed = _landed(hub, local, head, revision, create_pr, known_prs)
            if landed is not None:
                oid, pr_ref = landed
                hub.log(f"the commit landed ({pr_ref or revision} at {oid[:12]}): not committing again")
                return _result(hub, local, oid, revision, created=True, changed=len(upload), deleted=len(delete),
                               pr_ref=pr_ref)
            if not create_pr:  # a commit by someone else may have moved the branch: diff against it
                current = hub.head(revision)
                if current != head:
                    head = current
                    upload, delete = diff(local, hub.tree(current))
                    if not upload and not delete:
                        return _result(hub, local, head, revision, created=False)
            if attempt == len(RETRY_DELAYS):
                raise hub.fail(error, what) from None
            if not trap:
                delay = RETRY_DELAYS[attempt]
                hub.log(f"{what}: not landed; retrying in {delay:g} s")
                hub.sleep(delay)
            continue
        created = info.oid != head or bool(info.pr_url)
        result = _result(hub, local, info.oid, revision, created=created, changed=len(upload), deleted=len(delete),
                         pr_ref=getattr(info, "pr_revision", None) if created and info.pr_url else None)
        result.commit_url = info.commit_url or result.commit_url
        if created and info.pr_url:
            result.pr_url = info.pr_url
        return result
    raise AssertionError("unreachable")


def _result(hub: _Hub, local: dict[str, LocalFile], oid: str, revision: str, *, created: bool, changed: int = 0,
            deleted: int = 0, pr_ref: str | None = None) -> PushResult:
    pr_url = f"{hub.endpoint}/{hub.repo_id}/discussions/{pr_ref.rsplit('/', 1)[-1]}" if pr_ref else None
    return PushResult(repo_id=hub.repo_id, commit_url=hub.commit_url(oid), pr_url=pr_url, commit_oid=oid,
                      created_commit=created, files=len(local), changed=changed if created else 0,
                      deleted=deleted if created else 0, revision=revision, pr_ref=pr_ref, endpoint=hub.endpoint)


def _landed(hub: _Hub, local: dict[str, LocalFile], head: str, revision: str, create_pr: bool,
            known_prs: set[str]) -> tuple[str, str | None] | None:
    """(commit id, new PR ref or None) of the commit that a failed call made anyway, recognised by its tree
    (which equals the folder); None when it did not land."""
    if create_pr:
        for ref in hub.refs().pull_requests:
            if ref.ref not in known_prs and diff(local, hub.tree(ref.ref)) == ([], []):
                return ref.target_commit, ref.ref
        return None
    current = hub.head(revision)
    if current != head and diff(local, hub.tree(current)) == ([], []):
        return current, None
    return None


def _create_tag(hub: _Hub, tag: str, oid: str) -> bool:
    """Tag ``oid``; True when created, False when it already was (e.g. a retried call whose answer was lost)."""
    from huggingface_hub.errors import HfHubHTTPError

    def attempt() -> bool:
        try:
            hub.api.create_tag(hub.repo_id, tag=tag, revision=oid, tag_message=f"embedding-exporter {__version__}")
            return True
        except HfHubHTTPError as error:
            if http_status(error) == 409:
                return False
            raise

    if hub.call(f"creating tag {tag}", attempt):
        return True
    target = {ref.name: ref.target_commit for ref in hub.refs().tags}.get(tag)
    if target == oid:
        return False
    raise BadInputError(f"tag {tag!r} already exists in {hub.repo_id} (at {str(target)[:12]}); choose another --tag")
