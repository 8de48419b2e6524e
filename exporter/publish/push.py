"""``push``: publish an artifact folder to a Hugging Face Hub model repository in one commit.

Steps: refuse variants that were not validated or failed validation → check the folder against
manifest.json (no missing, changed or unlisted file, every sha256) → re-verify every variant: a recorded
verdict is never taken on trust, so each variant is run again (the deploy runtime, mixed-length batches of 32)
on the stored reference texts and compared with the stored reference embeddings, held to its recorded
thresholds (the recipe author's gate; loosened ones are named in the card); ``verify=False`` skips this and
the commit description and the result say so → finalise the manifest and refresh the model card →
create the repo (``exist_ok``) → compare the remote tree with the folder → one ``create_commit`` with the
changed files (LFS through the client's LFS upload) and the deletion of remote files the artifact no longer
has (``.gitattributes`` is kept; the files are named before the commit and in the result, ``deleted``) →
optionally tag the commit. After a push the branch (or the pull request) holds exactly the artifact folder.

Identical content makes no commit. The client retries LFS uploads itself but never the commit call: a
failed commit call (5xx, lost connection, or an answer the client cannot parse) is retried here, bounded and
with backoff, but only after checking whether the commit landed anyway (the remote tree equals the folder):
a commit whose answer was lost is not made twice. Every other call (repo creation and lookup, listings, refs,
tags) is retried by ``exporter.hub.HubClient.call``; a failure before the commit call (pre-upload, LFS
batch, an LFS upload that failed or timed out) leaves the branch as it was and is retried as a whole (uploads
the Hub already holds are skipped). The branch moves only by that single commit: a push killed at any point
(SIGKILL mid-upload included) leaves it at its old commit, or at the new one when the commit call had been
made, and a rerun completes it (LFS files the Hub already holds are not uploaded again).

The Hub plumbing (endpoint, retries with backoff, the mapping of client errors to ours, the token kept out
of messages, the client's progress bars silenced, timeouts) is ``exporter.hub``'s, shared with ``fetch``; this
module holds the flow. Endpoint: early huggingface_hub 1.x releases parse the commit URL the Hub answers against
``constants.ENDPOINT`` (read from ``HF_ENDPOINT`` once, at import), not against ``HfApi(endpoint=...)``:
with any other endpoint they raise ``ValueError`` after the commit has landed. ``push`` points
``constants.ENDPOINT`` at the endpoint it uses for the duration of the push (``exporter.hub.client_endpoint``)
and treats that ``ValueError``, should it still happen, like a lost answer: it looks the commit up on the Hub.
Uploads: the client uploads through Xet whenever ``hf_xet`` is installed, and a Hub without Xet storage
would refuse every one; ``push`` asks the Hub first and has the client use LFS unless the Hub grants Xet
write access (``exporter.hub.HubClient.upload_protocol``).

The token is never printed, logged or written: it is removed from every message this module produces.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exporter import __version__
from exporter.artifact.integrity import list_files
from exporter.artifact.manifest import FileEntry, Manifest, read_manifest
from exporter.constants import DEFAULT_REVISION, MANIFEST_NAME, REPO_ID_PATTERN
from exporter.errors import (
    BadInputError,
    CheckFailedError,
    HubAuthError,
    IntegrityError,
    NotFoundOnHubError,
    NotValidatedError,
    ParityFailedError,
)
from exporter.hub import HubClient, describe, http_status, resolve_token, retryable, root_cause
from exporter.progress import Progress, SilentProgress
from exporter.publish.defaults import PublishDefaults

KEEP_REMOTE = frozenset({".gitattributes"})
_ENDPOINT_TRAP = "Unable to retrieve user and repo ID"


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
    deleted: list[str] = field(default_factory=list)  # remote files the commit deleted (the folder lacks them)
    revision: str = DEFAULT_REVISION
    endpoint: str = ""
    pr_ref: str | None = None
    tag: str | None = None
    tag_created: bool = False
    verified: bool = True  # every variant was re-run on the stored reference before pushing (verify=False: not)
    verified_variants: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The result for people: what happened and where to look."""
        where = f"{self.repo_id}@{self.revision}"
        if not self.created_commit:
            lines = [f"No changes: {where} already holds these {self.files} files; no new commit was made.",
                     f"Commit: {self.commit_url}"]
        else:
            what = f"{self.changed} of {self.files} files changed" + (
                f", {len(self.deleted)} deleted" if self.deleted else "")
            if self.pr_url:
                opened = f"Opened pull request {self.pr_ref or ''} against {where} ({what}): {self.pr_url}"
                lines = [opened.replace("  ", " "), f"Commit: {self.commit_url}"]
            else:
                lines = [f"Pushed to {where} ({what}).", f"Commit: {self.commit_url}"]
            if self.deleted:
                lines.append(f"Deleted from {where} (not in the folder): {', '.join(self.deleted)}")
        if self.tag:
            lines.append(f"Tag {self.tag}: {'created' if self.tag_created else 'already'} at {self.commit_oid[:12]}")
        if not self.verified:
            lines.append("Not re-verified: the variants were pushed on their recorded verdicts (verification "
                         "skipped; the commit description says so).")
        return lines


@dataclass(frozen=True)
class LocalFile:
    sha256: str
    size: int
    git_oid: str  # the git blob id the Hub reports for a regular (non-LFS) file


# ------------------------------------------------------------------------------------------- local checks


def unvalidated_variants(manifest: Manifest) -> tuple[list[str], list[str]]:
    """Names of the variants without ``parity`` and of those whose parity did not pass."""
    missing = [variant.name for variant in manifest.variants if variant.parity is None]
    failed = [variant.name for variant in manifest.variants if variant.parity is not None and not variant.validated]
    return missing, failed


def check_validated(manifest: Manifest, folder: Path) -> None:
    """Raise ``NotValidatedError`` naming every variant that was not validated or failed validation."""
    if not manifest.variants:
        raise BadInputError(f"{folder}: the manifest lists no variants; nothing to push")
    missing, failed = unvalidated_variants(manifest)
    problems = []
    if failed:
        problems.append(f"failed validation: {', '.join(failed)}")
    if missing:
        problems.append(f"not validated (no parity in {MANIFEST_NAME}): {', '.join(missing)}")
    if problems:
        raise NotValidatedError(f"{folder}: refusing to push: {'; '.join(problems)}; validate the folder first "
                                "(only variants whose parity passed are published)", variants=failed + missing)


def _some(paths: list[str]) -> str:
    return ", ".join(paths[:10]) + (f" (and {len(paths) - 10} more)" if len(paths) > 10 else "")


def check_listing(folder: Path, manifest: Manifest, ignore: frozenset[str] = frozenset()) -> None:
    """Every listed file exists with its size, and every file is listed (cheap: no hashing)."""
    entries = manifest.entries()
    present = set(list_files(folder))
    missing = sorted(path for path in entries if path not in present and path not in ignore)
    if missing:
        raise IntegrityError(f"{folder}: listed in {MANIFEST_NAME} but missing: {_some(missing)}", path=missing[0])
    unlisted = sorted(path for path in present if path not in entries and path not in ignore)
    if unlisted:
        raise CheckFailedError(f"{folder}: not listed in {MANIFEST_NAME}: {_some(unlisted)}; remove them or rebuild "
                               "the folder")
    changed = sorted(path for path, entry in entries.items()
                     if path not in ignore and (folder / path).stat().st_size != entry.size)
    if changed:
        raise IntegrityError(f"{folder}: changed since {MANIFEST_NAME} was written (size differs): "
                             f"{', '.join(changed)}", path=changed[0])


def hash_file(path: Path) -> LocalFile:
    """sha256 and git blob id of a file in one read."""
    size = path.stat().st_size
    sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            sha256.update(block)
            sha1.update(block)
    return LocalFile(sha256.hexdigest(), size, sha1.hexdigest())


def local_files(folder: Path, manifest: Manifest, *, skip: frozenset[str] = frozenset(),
                known: dict[str, LocalFile] | None = None) -> dict[str, LocalFile]:
    """Every file to push (the listed ones and manifest.json), hashed; listed sha256 must match.

    ``skip``: listed paths left out (the card, before it is written); ``known``: hashes this push took
    already (of files it has not written since), reused instead of reading the files again."""
    entries: dict[str, FileEntry] = manifest.entries()
    known = known or {}
    files = {path: known.get(path) or hash_file(folder / path) for path in sorted(entries) if path not in skip}
    changed = sorted(path for path, local in files.items() if local.sha256 != entries[path].sha256)
    if changed:
        raise IntegrityError(f"{folder}: changed since {MANIFEST_NAME} was written (sha256 differs): "
                             f"{', '.join(changed)}", path=changed[0])
    files[MANIFEST_NAME] = hash_file(folder / MANIFEST_NAME)
    return files


def reverify_variants(folder: Path, manifest: Manifest, progress: Progress | None = None) -> list[str]:
    """Re-run every variant on the stored reference against its recorded thresholds (``exporter.validators.
    parity.reverify``); returns the names. ``ParityFailedError`` naming each failed check when one fails (its
    files or its verdict changed after validation); ``NotValidatedError`` when there is no stored reference to
    re-run against."""
    from exporter.validators.parity import reverify
    from exporter.validators.ranking import has_stored_ranking_reference
    from exporter.validators.reference import REFERENCE_FILE, TEXTS_FILE, has_stored_reference

    if manifest.source.kind == "sparse":  # a sparse encoder's reference: exporter.validators.sparse
        from exporter.validators.reference import SPARSE_REFERENCE_FILE as REFERENCE_FILE
        from exporter.validators.sparse import has_sparse_reference as has_stored_reference
    stored = (has_stored_ranking_reference(folder) if manifest.source.kind == "cross"  # a reranker's groups
              else has_stored_reference(folder))
    if not stored:
        raise NotValidatedError(f"{folder}: refusing to push: no stored reference ({TEXTS_FILE}, {REFERENCE_FILE}) "
                                "to re-verify the variants against; validate the folder first (that stores it)",
                                variants=manifest.variant_names)
    results = reverify(folder, manifest, progress=progress)
    failures = [line for result in results for line in result.failures()]
    if failures:
        failed = [result.name for result in results if not result.passed]
        raise ParityFailedError(f"{folder}: refusing to push: re-run on the stored reference, "
                                f"{', '.join(failed)} fail{'s' if len(failed) == 1 else ''} the recorded "
                                f"thresholds ({'; '.join(failures)}) although {MANIFEST_NAME} records a pass: "
                                "the files or the verdict changed after validation; validate the folder again",
                                failures)
    return [result.name for result in results]


# --------------------------------------------------------------------------------------- reads of the repo


def _head(hub: HubClient, revision: str) -> str:
    return hub.call(f"reading {hub.repo_id}@{revision}", lambda: hub.api.model_info(hub.repo_id, revision=revision).sha,
                    revision=revision)


def _tree(hub: HubClient, revision: str) -> dict[str, Any]:
    from huggingface_hub.hf_api import RepoFile

    entries = hub.call(f"listing {hub.repo_id}@{revision}",
                       lambda: list(hub.api.list_repo_tree(hub.repo_id, revision=revision, recursive=True)),
                       revision=revision)
    return {entry.path: entry for entry in entries if isinstance(entry, RepoFile)}


def _refs(hub: HubClient):
    return hub.call(f"listing the refs of {hub.repo_id}",
                    lambda: hub.api.list_repo_refs(hub.repo_id, include_pull_requests=True))


def _commit_url(hub: HubClient, oid: str) -> str:
    return f"{hub.endpoint}/{hub.repo_id}/commit/{oid}"


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


def _default_message(manifest: Manifest) -> tuple[str, str]:
    recipe = manifest.recipe
    names = manifest.variant_names
    title = (f"Upload {recipe.name if recipe is not None else 'artifacts'} "
             f"({len(names)} variant{'s' if len(names) != 1 else ''})")
    recipe_file = (recipe.file if recipe is not None else None) or ""
    recipe_sha256 = (recipe.sha256 if recipe is not None else None) or ""
    description = (f"Built with embedding-exporter {__version__} from recipe {recipe_file} (sha256 {recipe_sha256})."
                   f"\n\nVariants: {', '.join(names)}.")
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
    verify: bool = True,
    progress: Progress | None = None,
) -> PushResult:
    """Publish ``folder`` to the Hub model repo ``repo_id`` in one commit (see the module docstring).

    Unset options default to the manifest's ``publish`` section (from the recipe), then to: public repo,
    branch ``main``, no pull request, no tag. ``token`` defaults to HF_TOKEN / the huggingface_hub login.
    ``verify`` (default) re-runs every variant on the stored reference before anything is sent;
    ``verify=False`` skips that and records it (``result.verified``, the commit description).

    Raises ``NotValidatedError`` (nothing pushed) when a variant was not validated or failed validation, or
    there is no stored reference to re-verify against; ``ParityFailedError`` when a re-run variant fails its
    recorded thresholds;
    ``IntegrityError`` / ``CheckFailedError`` when the folder does not match its manifest; ``BadInputError``
    for a bad argument (``HubAuthError``: a missing or rejected token, a repo the token may not write;
    ``NotFoundOnHubError``: no such pull request or branch); ``HubError`` when the Hub cannot be reached or
    keeps failing after retries.
    """
    from exporter.export.provenance import finalize_manifest
    from exporter.publish.card import CARD_NAME, write_card

    progress = progress or SilentProgress()
    root = Path(folder)
    if not root.is_dir():
        raise BadInputError(f"{folder}: not a folder")
    manifest = read_manifest(root)
    defaults = PublishDefaults.of(manifest, root)
    repo_id = repo_id or defaults.repo_id
    if not repo_id:
        raise BadInputError("no repository: pass repo_id='ORG/NAME' (or set publish.repo_id in the recipe)")
    if not REPO_ID_PATTERN.match(repo_id) or ".." in repo_id or repo_id.endswith(".git"):
        raise BadInputError(f"repo_id={repo_id!r}: expected ORG/NAME (letters, digits, '.', '_', '-')")
    private = private if private is not None else defaults.private
    create_pr = create_pr if create_pr is not None else defaults.create_pr
    revision = revision or defaults.revision or DEFAULT_REVISION
    tag = tag or defaults.tag or None
    if tag and create_pr:
        raise BadInputError("tag= and create_pr=True: a pull request's commit is not tagged; tag it once merged")

    check_validated(manifest, root)
    check_listing(root, manifest, ignore=frozenset({CARD_NAME}))

    token = resolve_token(token)
    if not token:
        kind = "a private repo" if private else "a repo"
        raise HubAuthError(f"no Hub token: pushing to {kind} needs one; pass a token (token=, HF_TOKEN or "
                           "`hf auth login`)")
    from huggingface_hub import constants

    hub = HubClient(repo_id, endpoint=endpoint, token=token, progress=progress)
    if constants.HF_HUB_OFFLINE:
        raise BadInputError("HF_HUB_OFFLINE is set: pushing needs the Hub; unset HF_HUB_OFFLINE")

    with progress.step("Checking every file's sha256"):
        hashed = local_files(root, manifest, skip=frozenset({CARD_NAME}))
    verified = reverify_variants(root, manifest, progress) if verify else []

    with progress.step("Writing the model card and finalising manifest.json"):
        finalize_manifest(root)
        write_card(root, repo_id)
        manifest = read_manifest(root)
        hashed.pop(MANIFEST_NAME, None)
        local = local_files(root, manifest, known=hashed)

    with hub.session(point_client=True):
        result = _push(hub, root, manifest, local, private=private, create_pr=create_pr, revision=revision,
                       tag=tag, commit_message=commit_message or defaults.commit_message,
                       verification=verification_note(verified if verify else None))
    result.verified, result.verified_variants = verify, verified
    return result


def verification_note(verified: list[str] | None) -> str:
    """The commit description's record of the re-verification (``None``: skipped)."""
    if verified is None:
        return ("Not re-verified before pushing (verify=False): the variants were published on the verdicts "
                f"recorded in {MANIFEST_NAME}.")
    return ("Re-verified before pushing: " + ", ".join(verified) + " re-run on the stored reference "
            "(parity/), each meeting its recorded thresholds.")


def _push(hub: HubClient, root: Path, manifest: Manifest, local: dict[str, LocalFile], *, private: bool | None,
          create_pr: bool, revision: str, tag: str | None, commit_message: str | None,
          verification: str = "") -> PushResult:
    api, repo_id = hub.api, hub.repo_id
    with hub.progress.step(f"Preparing {repo_id} on {hub.endpoint}"):
        hub.call(f"creating {repo_id}", lambda: api.create_repo(repo_id, private=private, exist_ok=True))
        if private:
            info = hub.call(f"reading {repo_id}", lambda: api.model_info(repo_id))
            if not info.private:
                raise BadInputError(f"{repo_id} exists and is public: private=True does not change an existing "
                                    "repo's visibility; make it private on the Hub first, or push it as public")
        refs = _refs(hub)
        branches = {ref.name: ref.target_commit for ref in refs.branches}
        is_pr_ref = revision.startswith("refs/pr/")
        if is_pr_ref and revision not in {ref.ref for ref in refs.pull_requests}:
            raise NotFoundOnHubError(f"revision={revision!r}: no such pull request in {repo_id}", repo_id=repo_id,
                                     revision=revision)
        if not is_pr_ref and revision not in branches:
            if create_pr:
                raise NotFoundOnHubError(f"revision={revision!r}: no such branch in {repo_id} to open a pull request "
                                         "against", repo_id=repo_id, revision=revision)
            hub.call(f"creating branch {revision}", lambda: api.create_branch(repo_id, branch=revision, exist_ok=True))
        head = _head(hub, revision)
        upload, delete = diff(local, _tree(hub, revision))
        tags = {ref.name: ref.target_commit for ref in refs.tags}
        if tag and tag in tags and (upload or delete or tags[tag] != head):
            raise BadInputError(f"tag {tag!r} already exists in {repo_id} (at {tags[tag][:12]}); tags are never "
                                "moved: choose another tag")

    result = PushResult(repo_id=repo_id, commit_url=_commit_url(hub, head), pr_url=None, commit_oid=head,
                        created_commit=False, files=len(local), revision=revision, endpoint=hub.endpoint)
    if upload or delete:
        title, description = _default_message(manifest)
        description += f"\n\n{verification}" if verification else ""
        message = commit_message or title
        size = sum(local[path].size for path in upload)
        label = (f"Uploading {len(upload)} file{'s' if len(upload) != 1 else ''} ({size / 1e6:.1f} MB)"
                 + (f", deleting {len(delete)}" if delete else "") + f" to {repo_id}@{revision}"
                 + (" as a pull request" if create_pr else ""))
        if delete:  # said before anything changes: these remote files go
            hub.log(f"{repo_id}@{revision} has {len(delete)} file{'s' if len(delete) != 1 else ''} the folder "
                    f"lacks; the commit deletes {'them' if len(delete) != 1 else 'it'}: {', '.join(delete)}")
        with hub.progress.step(label), hub.upload_protocol(revision, create_pr=create_pr):
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


def _commit(hub: HubClient, root: Path, local: dict[str, LocalFile], upload: list[str], delete: list[str], head: str,
            revision: str, create_pr: bool, message: str, description: str, refs) -> PushResult:
    """One commit, retried after failures only once it is known not to have landed."""
    known_prs = {ref.ref for ref in refs.pull_requests}
    what = f"committing to {hub.repo_id}@{revision}"
    for attempt in range(hub.attempts):
        try:
            info = hub.api.create_commit(
                hub.repo_id, _operations(root, upload, delete), commit_message=message,
                commit_description=description, revision=revision, create_pr=create_pr, parent_commit=head,
            )
        except Exception as error:  # noqa: BLE001 - classified below
            trap = isinstance(error, ValueError) and _ENDPOINT_TRAP in str(error)
            stale = http_status(error) == 412  # the branch moved since `head` was read
            failed = _stage(error, hub.repo_id, revision)
            if not (trap or stale or retryable(error)):
                raise hub.fail(error, failed, revision=revision, attempts=attempt + 1) from None
            hub.log(f"{failed}: {describe(root_cause(error))}; checking whether the commit landed")
            landed = _landed(hub, local, head, revision, create_pr, known_prs)
            if landed is not None:
                oid, pr_ref = landed
                hub.log(f"the commit landed ({pr_ref or revision} at {oid[:12]}): not committing again")
                return _result(hub, local, oid, revision, created=True, changed=len(upload), deleted=delete,
                               pr_ref=pr_ref)
            if not create_pr:  # a commit by someone else may have moved the branch: diff against it
                current = _head(hub, revision)
                if current != head:
                    head = current
                    upload, delete = diff(local, _tree(hub, current))
                    if not upload and not delete:
                        return _result(hub, local, head, revision, created=False)
            if attempt == len(hub.delays):
                raise hub.fail(error, failed, revision=revision, attempts=attempt + 1) from None
            if not trap:
                delay = hub.delays[attempt]
                hub.log(f"{what}: not landed; retrying in {delay:g} s")
                hub.sleep(delay)
            continue
        created = info.oid != head or bool(info.pr_url)
        result = _result(hub, local, info.oid, revision, created=created, changed=len(upload), deleted=delete,
                         pr_ref=getattr(info, "pr_revision", None) if created and info.pr_url else None)
        result.commit_url = info.commit_url or result.commit_url
        if created and info.pr_url:
            result.pr_url = info.pr_url
        return result
    raise AssertionError("unreachable")


_LFS_UPLOAD = re.compile(r"Error while uploading '(.+)' to the Hub")
_STAGES = (("/preupload/", "preparing the upload to"), ("/info/lfs/objects/batch", "negotiating the LFS upload to"),
           ("/info/lfs/objects/verify", "verifying the LFS upload to"), ("/commit/", "committing to"))


def _stage(error: BaseException, repo_id: str, revision: str) -> str:
    """What a failed ``create_commit`` was doing, for the message: the client wraps an LFS upload's failure in
    ``RuntimeError("Error while uploading '<path>' ...")``; the other steps are told apart by the URL of the
    request that failed (pre-upload, LFS batch or verify, the commit itself)."""
    upload = _LFS_UPLOAD.search(str(error))
    if upload:
        return f"uploading {upload.group(1)} to {repo_id}@{revision}"
    cause = root_cause(error)
    url = str(getattr(_request_of(cause) or _request_of(getattr(cause, "response", None)), "url", "") or "")
    step = next((label for marker, label in _STAGES if marker in url), "committing to")
    return f"{step} {repo_id}@{revision}"


def _request_of(thing: Any) -> Any:
    """The ``request`` of an httpx error or response, or None: httpx's ``request`` property raises
    ``RuntimeError`` instead of returning None when it was never set (an ``HfHubHTTPError`` built by the client)."""
    try:
        return getattr(thing, "request", None)
    except RuntimeError:
        return None


def _result(hub: HubClient, local: dict[str, LocalFile], oid: str, revision: str, *, created: bool, changed: int = 0,
            deleted: list[str] | None = None, pr_ref: str | None = None) -> PushResult:
    pr_url = f"{hub.endpoint}/{hub.repo_id}/discussions/{pr_ref.rsplit('/', 1)[-1]}" if pr_ref else None
    return PushResult(repo_id=hub.repo_id, commit_url=_commit_url(hub, oid), pr_url=pr_url, commit_oid=oid,
                      created_commit=created, files=len(local), changed=changed if created else 0,
                      deleted=sorted(deleted or []) if created else [], revision=revision, pr_ref=pr_ref,
                      endpoint=hub.endpoint)


def _landed(hub: HubClient, local: dict[str, LocalFile], head: str, revision: str, create_pr: bool,
            known_prs: set[str]) -> tuple[str, str | None] | None:
    """(commit id, new PR ref or None) of the commit that a failed call made anyway, recognised by its tree
    (which equals the folder); None when it did not land."""
    if create_pr:
        for ref in _refs(hub).pull_requests:
            if ref.ref not in known_prs and diff(local, _tree(hub, ref.ref)) == ([], []):
                return ref.target_commit, ref.ref
        return None
    current = _head(hub, revision)
    if current != head and diff(local, _tree(hub, current)) == ([], []):
        return current, None
    return None


def _create_tag(hub: HubClient, tag: str, oid: str) -> bool:
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
    target = {ref.name: ref.target_commit for ref in _refs(hub).tags}.get(tag)
    if target == oid:
        return False
    raise BadInputError(f"tag {tag!r} already exists in {hub.repo_id} (at {str(target)[:12]}); choose another tag")


__all__ = ["KEEP_REMOTE", "LocalFile", "PublishDefaults", "PushResult", "check_listing", "check_validated", "diff",
           "local_files", "push", "resolve_token", "reverify_variants", "unvalidated_variants", "verification_note"]
