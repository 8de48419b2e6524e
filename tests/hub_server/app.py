"""The application: ``HubApp`` implements the Hub endpoints, one method each (whoami, repo
create/delete/info/settings, YAML validation, pre-upload, commit, LFS batch/verify/upload, tree,
paths-info, refs, commits, tags, branches, file downloads with ranges), on top of ``HubStorage``, with
its route table and ``dispatch``, plus the byte-range and tree helpers those methods use. It is
independent of the HTTP server class: it takes a ``HubRequest`` and returns a ``HubResponse``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, unquote

import yaml

from .common import (
    _PR_REF_RE,
    _SHA256_RE,
    DEFAULT_BRANCH,
    INVALID_CREDENTIALS,
    URL_KIND_TO_REPO_TYPE,
    git_blob_oid,
    is_valid_repo_id,
    lfs_pointer,
    parse_front_matter,
    should_use_lfs,
    url_prefix,
)
from .errors import (
    HubError,
    HubResponse,
    bad_request,
    entry_not_found,
    json_response,
    repo_not_found,
    revision_not_found,
    unauthenticated,
)
from .request import _REPO_API, _REPO_WEB, _REV, HubRequest, Route, RouteHandler
from .storage import Commit, FileEntry, HubStorage, RepoState

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

    def _build_routes(self) -> list[Route]:
        table: list[tuple[tuple[str, ...], str, RouteHandler]] = [
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
            (("GET",), _REPO_API + r"/xet-(?P<access>read|write)-token/" + _REV + r"$", self.xet_token),
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
    def _repo_key(params: dict[str, str]) -> tuple[str, str]:
        repo_type = URL_KIND_TO_REPO_TYPE[params["kind"]] if params.get("kind") else "model"
        repo_id = f"{params['ns']}/{params['name']}"
        if not is_valid_repo_id(repo_id):
            raise repo_not_found(repo_id)
        return repo_type, repo_id

    def _visible_repo(self, request: HubRequest, params: dict[str, str]) -> RepoState:
        """The repo named by the route, hidden (404 RepoNotFound) when private and unauthenticated."""
        repo = self.storage.get_repo(*self._repo_key(params))
        if repo is None or (repo.private and not request.authenticated):
            raise repo_not_found(self._repo_key(params)[1])
        return repo

    def _writable_repo(self, request: HubRequest, params: dict[str, str]) -> RepoState:
        if not request.authenticated:
            raise unauthenticated()
        return self._visible_repo(request, params)

    def _repo_url(self, request: HubRequest, repo: RepoState) -> str:
        return f"{request.base_url}/{url_prefix(repo.repo_type)}{repo.repo_id}"

    # -- account and repos -------------------------------------------------------------------------

    def whoami(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
        if not request.authenticated:
            raise HubError(401, INVALID_CREDENTIALS)
        return json_response({
            "type": "user", "id": hashlib.sha1(self.username.encode()).hexdigest()[:24], "name": self.username,
            "fullname": self.username, "email": f"{self.username}@example.invalid", "emailVerified": True,
            "isPro": False, "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test token", "role": "write"}},
        })  # fmt: skip

    def create_repo(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
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
            repo = self.storage.create_repo(repo_type, repo_id, _private(payload), self.username)
        return json_response({"url": self._repo_url(request, repo), "name": repo_id, "id": repo_id})

    def delete_repo(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
        if not request.authenticated:
            raise unauthenticated()
        payload = request.json()
        repo_id = f"{payload.get('organization') or self.username}/{payload.get('name')}"
        repo = self.storage.get_repo(payload.get("type") or "model", repo_id) if is_valid_repo_id(repo_id) else None
        if repo is None:
            raise repo_not_found(repo_id)
        self.storage.delete_repo(repo)
        return json_response({})

    def update_settings(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
        repo = self._writable_repo(request, params)
        payload = request.json()
        with self.storage.lock:
            if "private" in payload or "visibility" in payload:
                repo.private = _private(payload)
            if "gated" in payload:
                repo.gated = payload["gated"]
            self.storage.save_repo(repo)
        return json_response({})

    def validate_yaml(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
        """Check a README's front matter: 400 with ``errors`` if it is not a YAML mapping."""
        content = request.json().get("content", "")
        try:
            metadata = parse_front_matter(content)
        except yaml.YAMLError as exc:
            return json_response({"errors": [{"message": f"Invalid YAML: {exc}"}], "warnings": []}, 400)
        if metadata is not None and not isinstance(metadata, dict):
            return json_response({"errors": [{"message": "YAML metadata must be a mapping"}], "warnings": []}, 400)
        return json_response({"errors": [], "warnings": []})

    def repo_info(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
        """Model/dataset/space info at a revision (``sha``, ``siblings``, ``cardData``...)."""
        repo = self._visible_repo(request, params)
        commit = self.storage.get_commit(repo, self.storage.resolve(repo, params.get("rev", DEFAULT_BRANCH)))
        with_blobs = request.flag("blobs")
        siblings = [self._sibling(path, entry, with_blobs) for path, entry in sorted(commit.tree.items())]
        card = self._card_data(commit)
        info: dict[str, Any] = {
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
    def _sibling(path: str, entry: FileEntry, with_blobs: bool) -> dict[str, Any]:
        sibling: dict[str, Any] = {"rfilename": path}
        if with_blobs:
            sibling.update({"size": entry.size, "blobId": entry.oid})
            if entry.lfs:
                pointer_size = len(lfs_pointer(entry.sha256, entry.size))
                sibling["lfs"] = {"sha256": entry.sha256, "size": entry.size, "pointerSize": pointer_size}
        return sibling

    def _card_data(self, commit: Commit) -> dict[str, Any] | None:
        entry = commit.tree.get("README.md")
        if entry is None:
            return None
        try:
            metadata = parse_front_matter(self.storage.blob_path(entry.sha256).read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            return None
        return metadata if isinstance(metadata, dict) else None

    # -- uploads -----------------------------------------------------------------------------------

    def xet_token(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
        """No Xet storage here: 404, as from a Hub without Xet. (The Hub answers 200 with ``X-Xet-Cas-Url``,
        ``X-Xet-Access-Token`` and ``X-Xet-Token-Expiration``; clients upload through LFS without them.)"""
        self._visible_repo(request, params)
        raise HubError(404, f"Xet storage is not available on this server ({params['access']} token requested)")

    def preupload(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
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

    def lfs_batch(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
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

    def _lfs_batch_object(self, request: HubRequest, obj: dict[str, Any], verify_href: str) -> dict[str, Any]:
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

    def lfs_put(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
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

    def lfs_verify(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
        self._visible_repo(request, params)
        payload = request.json()
        oid = str(payload.get("oid", ""))
        if not self.storage.has_blob(oid) or self.storage.blob_path(oid).stat().st_size != payload.get("size"):
            raise HubError(404, f"LFS object {oid} not found or of the wrong size")
        return json_response({"success": True})

    # -- commits -----------------------------------------------------------------------------------

    def commit(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
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
    def _parse_commit_payload(raw: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        try:
            items = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except ValueError as exc:
            raise bad_request(f"Invalid ndjson commit payload: {exc}") from exc
        headers = [item.get("value", {}) for item in items if item.get("key") == "header"]
        return (headers[0] if headers else {}), [item for item in items if item.get("key") != "header"]

    def _commit_base(
        self, repo: RepoState, revision: str, parent_commit: str | None, create_pr: bool
    ) -> tuple[str, int | None]:
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

    def _move_ref(self, repo: RepoState, revision: str, new_pr: int | None, commit_id: str) -> None:
        pr_match = _PR_REF_RE.match(revision)
        if new_pr is not None:
            repo.prs[new_pr] = commit_id
        elif pr_match:
            repo.prs[int(pr_match.group(1))] = commit_id
        else:
            repo.branches[revision.removeprefix("refs/heads/")] = commit_id

    def _apply_operations(self, tree: dict[str, FileEntry], operations: list[dict[str, Any]]) -> dict[str, FileEntry]:
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

    def _regular_entry(self, value: dict[str, Any]) -> FileEntry:
        try:
            raw = value["content"]
            content = base64.b64decode(raw, validate=True) if value.get("encoding") == "base64" else str(raw).encode()
        except (KeyError, binascii.Error) as exc:
            raise bad_request(f"Invalid file content for {value.get('path')}: {exc}") from exc
        return FileEntry(self.storage.store_blob_bytes(content), len(content), False, git_blob_oid(content))

    def _lfs_entry(self, value: dict[str, Any]) -> FileEntry:
        oid = str(value.get("oid", ""))
        if not self.storage.has_blob(oid):
            raise bad_request(f"LFS object {oid} for {value.get('path')} has not been uploaded")
        size = self.storage.blob_path(oid).stat().st_size
        return FileEntry(oid, size, True, git_blob_oid(lfs_pointer(oid, size)))

    @staticmethod
    def _delete_folder(tree: dict[str, FileEntry], folder: str) -> None:
        prefix = folder.rstrip("/") + "/"
        doomed = [path for path in tree if path.startswith(prefix)]
        if not doomed:
            raise entry_not_found(f"A folder with this name doesn't exist: {folder}")
        for path in doomed:
            del tree[path]

    def _commit_answer(
        self, request: HubRequest, repo: RepoState, commit: Commit, pr_num: int | None
    ) -> dict[str, Any]:
        """The commit endpoint's JSON, with the fields ``CommitInfo`` parses."""
        repo_url = self._repo_url(request, repo)
        answer: dict[str, Any] = {
            "success": True, "commitOid": commit.id, "commitUrl": f"{repo_url}/commit/{commit.id}",
            "commitMessage": commit.title, "hookOutput": "",
        }  # fmt: skip
        if pr_num is not None:
            answer["pullRequestUrl"] = f"{repo_url}/discussions/{pr_num}"
        return answer

    # -- listings ----------------------------------------------------------------------------------

    def tree(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
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

    def paths_info(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
        """Info on the listed paths (form-encoded ``paths=...&expand=...``, as the client sends it)."""
        repo = self._visible_repo(request, params)
        commit = self.storage.get_commit(repo, self.storage.resolve(repo, params["rev"]))
        form = parse_qs(request.body.read_all().decode("utf-8"))
        expand = (form.get("expand") or ["false"])[0].lower() == "true"
        folders = _folders_of(commit.tree)
        wanted = [p.strip("/") for p in form.get("paths", [])]
        found = [p for p in wanted if p in commit.tree or p in folders]
        return json_response([self._tree_entry(repo, commit, path, expand) for path in found])

    def _tree_entry(self, repo: RepoState, commit: Commit, path: str, expand: bool) -> dict[str, Any]:
        entry = commit.tree.get(path)
        if entry is None:
            info: dict[str, Any] = {"type": "directory", "oid": _folder_oid(commit.tree, path), "size": 0, "path": path}
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
        for commit, parent in zip(commits, commits[1:], strict=False):
            if _snapshot_of(commit.tree, path) != _snapshot_of(parent.tree, path):
                return commit
        return commits[-1]

    def refs(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
        repo = self._visible_repo(request, params)
        branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c} for n, c in sorted(repo.branches.items())]
        tags = [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": c} for n, c in sorted(repo.tags.items())]
        body: dict[str, Any] = {"branches": branches, "converts": [], "tags": tags}
        if request.flag("include_prs"):
            body["pullRequests"] = [
                {"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": c} for n, c in sorted(repo.prs.items())
            ]
        return json_response(body)

    def commits(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
        repo = self._visible_repo(request, params)
        head = self.storage.resolve(repo, params["rev"])
        formatted = "formatted" in request.query.get("expand[]", [])
        return json_response([self._commit_item(commit, formatted) for commit in self.storage.history(repo, head)])

    @staticmethod
    def _commit_item(commit: Commit, formatted: bool) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": commit.id, "title": commit.title, "message": commit.message, "date": commit.date,
            "authors": [{"user": commit.author, "avatar": None}],
        }  # fmt: skip
        if formatted:
            item["formatted"] = {"title": commit.title, "message": commit.message}
        return item

    # -- tags and branches -------------------------------------------------------------------------

    def create_tag(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
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

    def delete_tag(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
        repo = self._writable_repo(request, params)
        with self.storage.lock:
            if repo.tags.pop(params["tag"], None) is None:
                raise revision_not_found(params["tag"])
            self.storage.save_repo(repo)
        return json_response({})

    def create_branch(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
        repo = self._writable_repo(request, params)
        starting_point = request.json().get("startingPoint") or DEFAULT_BRANCH
        with self.storage.lock:
            if params["branch"] in repo.branches:
                raise HubError(409, f"Branch {params['branch']} already exists")
            repo.branches[params["branch"]] = self.storage.resolve(repo, starting_point)
            self.storage.save_repo(repo)
        return json_response({})

    def delete_branch(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
        repo = self._writable_repo(request, params)
        with self.storage.lock:
            if params["branch"] == DEFAULT_BRANCH:
                raise HubError(403, "Cannot delete the default branch")
            if repo.branches.pop(params["branch"], None) is None:
                raise revision_not_found(params["branch"])
            self.storage.save_repo(repo)
        return json_response({})

    # -- downloads ---------------------------------------------------------------------------------

    def resolve_file(self, request: HubRequest, params: dict[str, str]) -> HubResponse:
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


def _private(payload: dict[str, Any]) -> bool:
    """The visibility a create/settings payload asks for: ``visibility`` ("private", "public"; what
    huggingface_hub >= 1.0 sends), else the boolean ``private`` of older clients."""
    visibility = payload.get("visibility")
    if visibility is not None:
        if visibility not in ("public", "private"):
            raise bad_request(f"Invalid visibility {visibility!r}: expected 'public' or 'private'")
        return visibility == "private"
    return bool(payload.get("private"))


def _byte_range(header: str | None, size: int) -> tuple[int, int, int]:
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


def _folders_of(tree: dict[str, FileEntry]) -> set[str]:
    """Every folder path implied by the files of a tree."""
    folders: set[str] = set()
    for path in tree:
        parts = path.split("/")[:-1]
        folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return folders


def _is_under(path: str, base: str, recursive: bool) -> bool:
    if base and not path.startswith(base + "/"):
        return False
    rest = path[len(base) + 1 :] if base else path
    return recursive or "/" not in rest


def _snapshot_of(tree: dict[str, FileEntry], path: str) -> list[tuple[str, str]]:
    """The (path, sha256) pairs at or under ``path``, to detect whether a commit changed it."""
    return sorted((p, e.sha256) for p, e in tree.items() if p == path or p.startswith(path + "/"))


def _folder_oid(tree: dict[str, FileEntry], folder: str) -> str:
    """A stable synthetic tree id for a folder, derived from its content."""
    return hashlib.sha1(json.dumps(_snapshot_of(tree, folder)).encode()).hexdigest()
