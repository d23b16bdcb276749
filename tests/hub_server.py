"""A local, in-memory Hugging Face Hub: the HTTP API that the real `huggingface_hub` client calls to push and load.

Tests start it on 127.0.0.1 (a random free port, a background thread) and point client subprocesses at it with
`HF_ENDPOINT=http://127.0.0.1:PORT`, `HF_TOKEN=<anything>`, a fresh `HF_HOME` and `HF_HUB_DISABLE_XET=1` (with
`hf_xet` installed the client would otherwise upload LFS files through Xet, which this server does not speak). The
client code of `huggingface_hub` and `transformers` runs unchanged: only the server is fake.

```python
with LocalHub() as hub:                      # or the `hub_server` pytest fixture of tests/test_hub.py
    env = hub.client_env(tmp_path / "hf_home")
    subprocess.run([python, "push.py"], env=env)
    hub.repo("user/tiny-lm").files()         # {path: bytes} at the head of main
```

Endpoints (the payloads follow huggingface_hub 2.4's hf_api.py, _commit_api.py, lfs.py and file_download.py;
`{type}s` is `models`, `datasets` or `spaces`, and non-model repos take a `datasets/` or `spaces/` prefix outside
`/api`):

| request | what it does |
|---|---|
| `POST /api/repos/create` | creates the repo with an initial commit holding the Hub's default `.gitattributes`; 409 with `url` in its JSON when it exists (`exist_ok=True` relies on it) |
| `DELETE /api/repos/delete` | deletes a repo |
| `GET /api/whoami-v2` | the user (`user` unless configured) for any `Authorization: Bearer` token |
| `GET /api/agent-harnesses`, `/api/telemetry/...` | what the client's user agent and telemetry fetch: an empty registry, 200 |
| `POST /api/validate-yaml` | parses README.md's YAML front matter: 400 with `errors` when it is not a mapping |
| `POST /api/{type}s/{repo}/preupload/{rev}` | per file: `uploadMode` (`lfs` for paths matching a `filter=lfs` pattern of `.gitattributes`, such as `*.safetensors`, for binary samples and for files of 10 MB or more; `regular` otherwise), `shouldIgnore` (`.gitignore`), and `oid` of the file already at that path (sha256 for LFS, git blob sha1 otherwise), which the client compares to skip unchanged files |
| `POST /{repo}.git/info/lfs/objects/batch` | LFS batch API: an `upload` and a `verify` action per object the repo lacks, no action for one it holds |
| `PUT /__lfs__/{type}/{repo}/{oid}` | the upload target of the batch API (the signed-storage-URL stand-in): checks size and sha256 |
| `POST /{repo}.git/info/lfs/objects/verify` | 200 when the object was uploaded, 404 otherwise |
| `POST /api/{type}s/{repo}/commit/{rev}` | NDJSON: `header` (summary, description, `parentCommit` checked: 412 when stale), `file` (base64), `lfsFile` (must have been uploaded), `deletedFile`, `deletedFolder`; `?create_pr=1` commits on a new `refs/pr/N`; a binary or `.gitattributes`-LFS file sent as a regular file is rejected as the Hub does. Every accepted commit is a new commit, as with git: skipping unchanged files is the client's job (from the preupload `oid`) |
| `GET /api/{type}s/{repo}`, `.../revision/{rev}` | repo info: 40-hex `sha`, `siblings` (`?blobs=true` adds size, blob id, lfs), `cardData`, `tags`, `pipeline_tag`, `library_name` from README.md, `config` from config.json |
| `GET /api/{type}s/{repo}/tree/{rev}[/{path}]` | files and folders under a path, `?recursive=true` for all levels |
| `POST /api/{type}s/{repo}/paths-info/{rev}` | the entries for the given `paths` (form data) |
| `GET /api/{type}s/{repo}/commits/{rev}` | history, newest first |
| `GET /api/{type}s/{repo}/refs` | branches (and `pullRequests` with `?include_prs=1`) |
| `POST`/`DELETE /api/{type}s/{repo}/branch/{branch}` | creates a branch (`startingPoint`, 409 when it exists) / deletes one |
| `HEAD`/`GET /{repo}/resolve/{rev}/{path}` | the file, with `X-Repo-Commit`, `ETag` (git blob sha1), and for LFS files `X-Linked-Etag` (sha256) and `X-Linked-Size`; byte ranges for resumed downloads |

Errors are typed as the client expects: a missing repo is 404 with `X-Error-Code: RepoNotFound` (401 for a private
repo without a token), a missing revision `RevisionNotFound`, a missing file `EntryNotFound` (with `X-Repo-Commit`,
so the client caches the absence), each with a JSON body `{"error": ...}` and `X-Error-Message`. Writes need an
`Authorization` header. A request the server does not implement is answered 404 (no error code) and recorded in
`LocalHub.unhandled`, so that a test can assert the client never called anything this server lacks.

Not implemented: Xet storage, multipart LFS uploads (never offered: the batch API always answers `basic`), tags,
discussions beyond `create_pr`, pagination (every listing fits one page), gated repos, Spaces' runtime.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit


# The .gitattributes the Hub puts in every new model repo (the LFS part of it).
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*", "*.mlmodel",
        "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt",
        "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm",
        "*.xz", "*.zip", "*.zst", "*tfevents*",
    )
)  # fmt: skip
# Settings of the caller that would point a client elsewhere or keep it offline
_CLIENT_SETTINGS_TO_DROP = (
    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE",
    "HF_MODULES_CACHE", "HF_TOKEN_PATH", "HF_HUB_DISABLE_IMPLICIT_TOKEN",
)  # fmt: skip
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub refuses regular (non-LFS) files of 10 MB or more
REPO_TYPES = ("model", "dataset", "space")
COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")
_ACTIONS = {"revision", "tree", "preupload", "commit", "paths-info", "commits", "refs", "branch"}  # after a repo id


def git_blob_sha1(data: bytes) -> str:
    """What `git hash-object` gives for `data` (the Hub's blob id and ETag of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file stored in git in place of an LFS file's content."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Blob:
    """One file's content, stored in git as a regular blob or as an LFS pointer."""

    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def pointer(self) -> bytes:
        return lfs_pointer(self.sha256, len(self.content))

    @property
    def blob_id(self) -> str:
        """The git object id: of the content for a regular file, of the pointer for an LFS file."""
        return git_blob_sha1(self.pointer if self.lfs else self.content)

    @property
    def oid(self) -> str:
        """The id the client compares to skip an unchanged file: sha256 for LFS, git blob sha1 otherwise."""
        return self.sha256 if self.lfs else git_blob_sha1(self.content)

    def entry(self, path: str) -> dict:
        """The tree / paths-info JSON of this file."""
        entry = {"type": "file", "oid": self.blob_id, "size": len(self.content), "path": path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": len(self.content), "pointerSize": len(self.pointer)}
        return entry


@dataclass
class Commit:
    id: str
    parent: str | None
    files: dict[str, Blob]
    title: str
    message: str
    date: str
    author: str


@dataclass
class Repo:
    """A repository: commits as full snapshots (path -> Blob) and refs (branch names and refs/pr/N) to commit ids."""

    repo_id: str
    repo_type: str
    private: bool
    created_at: str = field(default_factory=_now)
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content, uploaded through the batch API
    pull_requests: int = 0

    def resolve(self, revision: str) -> Commit | None:
        """A branch, `refs/heads/<branch>`, `refs/pr/N` or a full commit id; None when unknown."""
        revision = revision.removeprefix("refs/heads/")
        if revision in self.refs:
            return self.commits[self.refs[revision]]
        if COMMIT_ID.match(revision):
            return self.commits.get(revision)
        return None

    def head(self, branch: str = "main") -> Commit:
        return self.commits[self.refs[branch]]

    def files(self, revision: str = "main") -> dict[str, bytes]:
        """{path: content} at `revision` (for test assertions)."""
        commit = self.resolve(revision)
        if commit is None:
            raise KeyError(f"{self.repo_id} has no revision {revision!r}")
        return {path: blob.content for path, blob in commit.files.items()}

    def history(self, revision: str = "main") -> list[Commit]:
        """Commits reachable from `revision`, newest first."""
        commit, commits = self.resolve(revision), []
        while commit is not None:
            commits.append(commit)
            commit = self.commits.get(commit.parent) if commit.parent else None
        return commits

    def add_commit(self, ref: str, files: dict[str, Blob], title: str, message: str = "", author: str = "user"):
        parent = self.refs.get(ref)
        digest = hashlib.sha1()
        for part in (parent or "", title, message, repr(time.time_ns()), str(len(self.commits))):
            digest.update(part.encode() + b"\0")
        for path in sorted(files):
            digest.update(f"{path}\0{files[path].blob_id}\0".encode())
        commit = Commit(digest.hexdigest(), parent, dict(files), title, message, _now(), author)
        self.commits[commit.id] = commit
        self.refs[ref] = commit.id
        return commit


class HubError(Exception):
    """An error answer: status, message, and the `X-Error-Code` the client types its exception by."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **body):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.body = status, message, code, headers or {}, body


def _gitattributes_lfs_patterns(files: dict[str, Blob]) -> list[str]:
    blob = files.get(".gitattributes")
    text = blob.content.decode("utf-8", "replace") if blob is not None else DEFAULT_GITATTRIBUTES
    patterns = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def _matches(path: str, pattern: str) -> bool:
    """gitattributes / gitignore matching, enough for the usual patterns: a pattern without a slash matches the file
    name at any depth; one with a slash matches the path from the root; a trailing slash matches a folder."""
    if pattern.endswith("/"):
        folder = pattern.rstrip("/").lstrip("/")
        parts = path.split("/")[:-1]
        if "/" not in folder:
            return any(fnmatch.fnmatchcase(part, folder) for part in parts)
        return any(fnmatch.fnmatchcase("/".join(parts[: i + 1]), folder) for i in range(len(parts)))
    if "/" not in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    return fnmatch.fnmatchcase(path, pattern.lstrip("/"))


def _is_binary(sample: bytes) -> bool:
    if b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as error:  # a multi-byte character cut at the end of the sample is still text
        return error.start < len(sample) - 4
    return False


def _parse_front_matter(content: str):
    """README.md's YAML metadata: (mapping or None, error message or None)."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.DOTALL)
    if match is None:
        return None, None
    try:
        import yaml
    except ImportError:  # huggingface_hub depends on PyYAML: never expected
        return {}, None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as error:
        return None, f"Invalid YAML in README.md metadata: {error}"
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return None, "README.md metadata must be a YAML mapping"
    return data, None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries a Content-Length
    server: _Server

    # -- plumbing -----------------------------------------------------------------------------------------------------

    def log_message(self, format, *args):  # silence the default stderr log
        pass

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self):
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            raise HubError(400, "Invalid JSON body") from None

    def _send(self, status: int, body=b"", headers: dict | None = None, content_length: int | None = None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.server.hub.log.append((self.command, self.path, status))

    def _dispatch(self):
        hub = self.server.hub
        self.body = b""
        try:
            self.body = self._read_body()
            split = urlsplit(self.path)
            self.query = parse_qs(split.query, keep_blank_values=True)
            self.segments = [segment for segment in split.path.split("/") if segment]  # still URL-quoted
            with hub.lock:
                handled = self._route()
            if not handled:
                hub.unhandled.append(f"{self.command} {self.path}")
                raise HubError(404, f"Not implemented by the local test Hub: {self.command} {split.path}")
        except HubError as error:
            headers = dict(error.headers)
            headers["X-Error-Message"] = error.message.encode("ascii", "replace").decode()
            if error.code:
                headers["X-Error-Code"] = error.code
            self._send(error.status, {"error": error.message, **error.body}, headers)
        except Exception as error:  # noqa: BLE001  (a bug of this server: a 500 the test will see)
            hub.errors.append(f"{self.command} {self.path}: {error!r}")
            self._send(500, {"error": f"Local test Hub failed: {error!r}"})

    def _param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def _flag(self, name: str) -> bool:
        return (self._param(name) or "").lower() in ("1", "true")

    def _token(self) -> str | None:
        authorization = self.headers.get("Authorization", "")
        return authorization[7:] if authorization.lower().startswith("bearer ") and len(authorization) > 7 else None

    def _require_token(self):
        if self._token() is None:
            raise HubError(401, "Invalid credentials in Authorization header")

    # -- routing ------------------------------------------------------------------------------------------------------

    def _route(self) -> bool:
        segments, method = self.segments, self.command
        if segments[:1] == ["api"]:
            rest = segments[1:]
            if rest == ["repos", "create"] and method == "POST":
                return self._create_repo()
            if rest == ["repos", "delete"] and method == "DELETE":
                return self._delete_repo()
            if rest == ["whoami-v2"] and method == "GET":
                return self._whoami()
            if rest == ["validate-yaml"] and method == "POST":
                return self._validate_yaml()
            if rest == ["agent-harnesses"] and method == "GET":  # the user-agent's AI-agent detection registry
                self._send(200, {"standardEnvVars": [], "harnesses": {}})
                return True
            if rest[:1] == ["telemetry"] and method in ("HEAD", "GET", "POST"):
                self._send(200, b"")
                return True
            if rest and rest[0] in ("models", "datasets", "spaces") and len(rest) >= 2:
                return self._repo_api(rest[0][:-1], rest[1:])
            return False
        if segments[:1] == ["__lfs__"] and method == "PUT" and len(segments) >= 4:
            return self._lfs_put(segments[1], "/".join(unquote(s) for s in segments[2:-1]), segments[-1])
        repo_type = "model"
        if segments and segments[0] in ("datasets", "spaces") and len(segments) > 1:
            repo_type, segments = segments[0][:-1], segments[1:]
        if "resolve" in segments[1:3] and method in ("GET", "HEAD"):
            index = segments.index("resolve", 1)
            if len(segments) > index + 2:
                repo_id = "/".join(unquote(s) for s in segments[:index])
                revision = unquote(segments[index + 1])
                path = "/".join(unquote(s) for s in segments[index + 2 :])
                return self._resolve(repo_type, repo_id, revision, path)
        for index in (1, 2):  # {repo}.git/info/lfs/objects/{batch,verify}
            if (
                len(segments) == index + 4
                and segments[index - 1].endswith(".git")
                and segments[index : index + 3] == ["info", "lfs", "objects"]
                and method == "POST"
            ):
                repo_id = "/".join(unquote(s) for s in segments[:index])[: -len(".git")]
                if segments[-1] == "batch":
                    return self._lfs_batch(repo_type, repo_id)
                if segments[-1] == "verify":
                    return self._lfs_verify(repo_type, repo_id)
        return False

    def _split_repo(self, repo_type: str, rest: list[str]) -> tuple[str, list[str]]:
        """`namespace/name/<action>...` or a namespace-less (legacy) `name/<action>...` -> (repo_id, the rest)."""
        if len(rest) >= 2:
            two = f"{unquote(rest[0])}/{unquote(rest[1])}"
            if (repo_type, two) in self.server.hub.repos or rest[1] not in _ACTIONS:
                return two, rest[2:]
        return unquote(rest[0]), rest[1:]

    def _repo_api(self, repo_type: str, rest: list[str]) -> bool:
        repo_id, rest = self._split_repo(repo_type, rest)
        method = self.command
        action, args = (rest[0], rest[1:]) if rest else (None, [])
        if action is None and method == "GET":
            return self._repo_info(repo_type, repo_id, "main")
        if action == "revision" and args and method == "GET":
            return self._repo_info(repo_type, repo_id, unquote("/".join(args)))
        if action == "tree" and args and method == "GET":
            return self._tree(repo_type, repo_id, unquote(args[0]), "/".join(unquote(a) for a in args[1:]))
        if action == "paths-info" and args and method == "POST":
            return self._paths_info(repo_type, repo_id, unquote("/".join(args)))
        if action == "preupload" and args and method == "POST":
            return self._preupload(repo_type, repo_id, unquote("/".join(args)))
        if action == "commit" and args and method == "POST":
            return self._commit(repo_type, repo_id, unquote("/".join(args)))
        if action == "commits" and args and method == "GET":
            return self._commits(repo_type, repo_id, unquote("/".join(args)))
        if action == "refs" and not args and method == "GET":
            return self._refs(repo_type, repo_id)
        if action == "branch" and args and method in ("POST", "DELETE"):
            return self._branch(repo_type, repo_id, unquote("/".join(args)))
        return False

    # -- lookups ------------------------------------------------------------------------------------------------------

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        repo = self.server.hub.repos.get((repo_type, repo_id))
        if write:
            self._require_token()
        if repo is None or (repo.private and self._token() is None):
            status = 401 if self._token() is None else 404
            raise HubError(status, "Repository not found", "RepoNotFound")
        return repo

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _repo_url(self, repo: Repo) -> str:
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return f"{self.server.hub.url}/{prefix}{repo.repo_id}"

    # -- account, repos, YAML -----------------------------------------------------------------------------------------

    def _whoami(self) -> bool:
        self._require_token()
        name = self.server.hub.username
        auth = {"type": "access_token", "accessToken": {"displayName": "local-test", "role": "write"}}
        self._send(200, {"type": "user", "id": "0" * 24, "name": name, "fullname": name, "orgs": [], "auth": auth})
        return True

    def _create_repo(self) -> bool:
        self._require_token()
        hub, payload = self.server.hub, self._json_body()
        name, organization = payload.get("name"), payload.get("organization") or hub.username
        repo_type = payload.get("type") or "model"
        if not name or repo_type not in REPO_TYPES or not re.fullmatch(r"[\w.\-]{1,96}", name):
            raise HubError(400, f"Invalid repo name {name!r} or type {repo_type!r}")
        repo_id = f"{organization}/{name}"
        existing = hub.repos.get((repo_type, repo_id))
        if existing is not None:
            kind = {"model": "model", "dataset": "dataset", "space": "Space"}[repo_type]
            raise HubError(409, f"You already created this {kind} repo", url=self._repo_url(existing))
        private = payload.get("private") or payload.get("visibility") == "private"
        repo = Repo(repo_id, repo_type, bool(private))
        repo.add_commit("main", {".gitattributes": Blob(DEFAULT_GITATTRIBUTES.encode(), lfs=False)}, "initial commit")
        hub.repos[(repo_type, repo_id)] = repo
        self._send(200, {"url": self._repo_url(repo), "name": repo_id, "id": repo_id})
        return True

    def _delete_repo(self) -> bool:
        self._require_token()
        hub, payload = self.server.hub, self._json_body()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or hub.username}/{payload.get('name')}"
        if hub.repos.pop((repo_type, repo_id), None) is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        self._send(200, b"")
        return True

    def _validate_yaml(self) -> bool:
        content = self._json_body().get("content") or ""
        data, error = _parse_front_matter(content)
        if error is not None:
            self._send(400, {"errors": [{"message": error}], "warnings": []})
        elif not data:
            self._send(200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata in repo card"}]})
        else:
            self._send(200, {"errors": [], "warnings": []})
        return True

    def _repo_info(self, repo_type: str, repo_id: str, revision: str) -> bool:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit_at(repo, revision)
        blobs = self._flag("blobs")
        siblings = []
        for path in sorted(commit.files):
            sibling = {"rfilename": path}
            if blobs:
                blob = commit.files[path]
                sibling.update(size=len(blob.content), blobId=blob.blob_id)
                if blob.lfs:
                    sibling["lfs"] = {
                        "sha256": blob.sha256,
                        "size": len(blob.content),
                        "pointerSize": len(blob.pointer),
                    }
            siblings.append(sibling)
        info = {
            "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0] if "/" in repo_id else None,
            "sha": commit.id,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        if repo_type == "model":
            info["modelId"] = repo_id
        readme = commit.files.get("README.md")
        if readme is not None:
            card_data, _ = _parse_front_matter(readme.content.decode("utf-8", "replace"))
            if card_data:
                info["cardData"] = card_data
                tags = card_data.get("tags") or []
                info["tags"] = list(tags) if isinstance(tags, list) else [str(tags)]
                for key in ("pipeline_tag", "library_name"):
                    if card_data.get(key):
                        info[key] = card_data[key]
        config = commit.files.get("config.json")
        if config is not None and repo_type == "model":
            try:
                config_json = json.loads(config.content)
            except ValueError:
                config_json = {}
            if isinstance(config_json, dict):
                info["config"] = {
                    key: config_json[key] for key in ("architectures", "model_type", "auto_map") if key in config_json
                }
                if "transformers" not in info["tags"]:
                    info["tags"].append("transformers")
                info.setdefault("library_name", "transformers")
        self._send(200, info)
        return True

    def _branch(self, repo_type: str, repo_id: str, branch: str) -> bool:
        repo = self._repo(repo_type, repo_id, write=True)
        branch = branch.removeprefix("refs/heads/")
        if self.command == "DELETE":
            if branch not in repo.refs or branch == "main":
                raise HubError(404 if branch not in repo.refs else 403, f"Cannot delete branch {branch}")
            del repo.refs[branch]
        else:
            if branch in repo.refs:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            starting_point = self._json_body().get("startingPoint") or "main"
            repo.refs[branch] = self._commit_at(repo, starting_point).id
        self._send(200, b"")
        return True

    def _refs(self, repo_type: str, repo_id: str) -> bool:
        repo = self._repo(repo_type, repo_id)

        def ref(name):
            full = name if name.startswith("refs/") else f"refs/heads/{name}"
            return {"name": name, "ref": full, "targetCommit": repo.refs[name]}

        answer = {
            "branches": [ref(name) for name in repo.refs if not name.startswith("refs/pr/")],
            "converts": [],
            "tags": [],
        }
        if self._flag("include_prs"):
            answer["pullRequests"] = [ref(name) for name in repo.refs if name.startswith("refs/pr/")]
        self._send(200, answer)
        return True

    def _commits(self, repo_type: str, repo_id: str, revision: str) -> bool:
        repo = self._repo(repo_type, repo_id)
        self._commit_at(repo, revision)
        history = [
            {"id": c.id, "title": c.title, "message": c.message, "authors": [{"user": c.author}], "date": c.date}
            for c in repo.history(revision)
        ]
        self._send(200, history)
        return True

    # -- listing ------------------------------------------------------------------------------------------------------

    def _entries(self, commit: Commit, path: str, recursive: bool) -> list[dict] | None:
        """Entries under folder `path` ("" for the root), folders first as the Hub lists them; None if no folder."""
        prefix = f"{path}/" if path else ""
        files, folders = [], {}
        for file_path in sorted(commit.files):
            if not file_path.startswith(prefix):
                continue
            relative = file_path[len(prefix) :]
            parts = relative.split("/")
            for depth in range(1, len(parts)):
                if depth > 1 and not recursive:
                    break
                folder = prefix + "/".join(parts[:depth])
                folders.setdefault(folder, hashlib.sha1(f"tree {commit.id} {folder}".encode()).hexdigest())
            if len(parts) == 1 or recursive:
                files.append(commit.files[file_path].entry(file_path))
        if path and not files and not folders:
            return None
        return [
            {"type": "directory", "oid": oid, "size": 0, "path": name} for name, oid in sorted(folders.items())
        ] + files

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> bool:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit_at(repo, revision)
        path = path.strip("/")
        if path in commit.files:
            raise HubError(404, f"{path} is a file, not a folder", "EntryNotFound")
        entries = self._entries(commit, path, self._flag("recursive"))
        if entries is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.id})
        self._send(200, entries, {"X-Repo-Commit": commit.id})
        return True

    def _paths_info(self, repo_type: str, repo_id: str, revision: str) -> bool:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit_at(repo, revision)
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            paths = self._json_body().get("paths") or []
        else:
            paths = parse_qs(self.body.decode(), keep_blank_values=True).get("paths", [])
        answer = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                answer.append(commit.files[path].entry(path))
            elif any(file_path.startswith(f"{path}/") for file_path in commit.files):
                oid = hashlib.sha1(f"tree {commit.id} {path}".encode()).hexdigest()
                answer.append({"type": "directory", "oid": oid, "size": 0, "path": path})
        self._send(200, answer)
        return True

    # -- uploads ------------------------------------------------------------------------------------------------------

    def _upload_mode(self, files: dict[str, Blob], path: str, size: int, sample: bytes) -> str:
        if size >= LFS_SIZE_THRESHOLD or _is_binary(sample):
            return "lfs"
        if any(_matches(path, pattern) for pattern in _gitattributes_lfs_patterns(files)):
            return "lfs"
        return "regular"

    def _preupload(self, repo_type: str, repo_id: str, revision: str) -> bool:
        repo = self._repo(repo_type, repo_id, write=True)
        commit = self._commit_at(repo, revision)
        payload = self._json_body()
        gitignore = payload.get("gitIgnore")
        if gitignore is None and ".gitignore" in commit.files:
            gitignore = commit.files[".gitignore"].content.decode("utf-8", "replace")
        ignore_patterns = [
            line.strip() for line in (gitignore or "").splitlines() if line.strip() and not line.startswith(("#", "!"))
        ]
        answer = []
        for item in payload.get("files") or []:
            path, size = item["path"], int(item.get("size", 0))
            sample = base64.b64decode(item.get("sample") or "")
            mode = self._upload_mode(commit.files, path, size, sample)
            entry = {
                "path": path,
                "uploadMode": mode,
                "shouldIgnore": any(_matches(path, pattern) for pattern in ignore_patterns),
            }
            existing = commit.files.get(path)
            if existing is not None:
                entry["oid"] = existing.oid
            answer.append(entry)
        self._send(200, {"files": answer, "commitOid": commit.id})
        return True

    def _lfs_batch(self, repo_type: str, repo_id: str) -> bool:
        repo = self._repo(repo_type, repo_id, write=True)
        payload = self._json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, "Only the upload operation of the LFS batch API is implemented")
        if payload.get("ref"):
            self._commit_at(repo, payload["ref"].get("name", "main"))
        base = self.server.hub.url
        objects = []
        for item in payload.get("objects") or []:
            oid, size = item["oid"], int(item["size"])
            entry = {"oid": oid, "size": size, "authenticated": True}
            if oid not in repo.lfs_objects:
                upload = f"{base}/__lfs__/{repo_type}/{quote(repo_id)}/{oid}"
                prefix = "" if repo_type == "model" else f"{repo_type}s/"
                verify = f"{base}/{prefix}{repo_id}.git/info/lfs/objects/verify"
                entry["actions"] = {"upload": {"href": upload, "header": {}}, "verify": {"href": verify, "header": {}}}
            objects.append(entry)
        self._send(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})
        return True

    def _lfs_put(self, repo_type: str, repo_id: str, oid: str) -> bool:
        repo = self.server.hub.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        if hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match its sha256 {oid}")
        repo.lfs_objects[oid] = self.body
        self.server.hub.lfs_uploads.append((repo_id, oid, len(self.body)))
        self._send(200, b"", {"ETag": f'"{hashlib.md5(self.body).hexdigest()}"'})
        return True

    def _lfs_verify(self, repo_type: str, repo_id: str) -> bool:
        repo = self._repo(repo_type, repo_id, write=True)
        payload = self._json_body()
        content = repo.lfs_objects.get(payload.get("oid"))
        if content is None or len(content) != int(payload.get("size", -1)):
            raise HubError(404, f"LFS object {payload.get('oid')} was not uploaded")
        self._send(200, {"success": True})
        return True

    def _commit(self, repo_type: str, repo_id: str, revision: str) -> bool:
        repo = self._repo(repo_type, repo_id, write=True)
        commit = self._commit_at(repo, revision)
        ref = revision.removeprefix("refs/heads/")
        create_pr = self._flag("create_pr")
        if not create_pr and ref not in repo.refs:
            raise HubError(400, f"Cannot commit to {revision}: not a branch")
        lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with a header line")
        header = lines[0]["value"]
        if header.get("parentCommit") and header["parentCommit"] != commit.id:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(commit.files)
        lfs_patterns = _gitattributes_lfs_patterns(files)
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value") or {}
            path = value.get("path", "").strip("/")
            if not path or any(part in ("", ".", "..", ".git") for part in path.split("/")):
                raise HubError(400, f"Invalid path {path!r}")
            if key == "file":
                content = value.get("content", "")
                data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                if data and (
                    len(data) >= LFS_SIZE_THRESHOLD
                    or _is_binary(data[:512])
                    or any(_matches(path, pattern) for pattern in lfs_patterns)
                ):
                    raise HubError(
                        400, f"Your push was rejected because {path} is a binary or LFS-tracked file sent as a regular "
                        "file: upload it through git-lfs"
                    )  # fmt: skip
                files[path] = Blob(data, lfs=False)
            elif key == "lfsFile":
                data = repo.lfs_objects.get(value.get("oid"))
                if data is None or ("size" in value and int(value["size"]) != len(data)):
                    raise HubError(422, f"LFS file {path} (oid {value.get('oid')}) was not uploaded")
                files[path] = Blob(data, lfs=True)
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            elif key == "deletedFolder":
                doomed = [p for p in files if p.startswith(f"{path}/")]
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                for p in doomed:
                    del files[p]
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        if create_pr:
            repo.pull_requests += 1
            number = repo.pull_requests
            ref = f"refs/pr/{number}"
            repo.refs[ref] = commit.id
        summary = header.get("summary") or "Upload files"
        new = repo.add_commit(ref, files, summary, header.get("description") or "", self.server.hub.username)
        answer = {"success": True, "commitOid": new.id, "commitUrl": f"{self._repo_url(repo)}/commit/{new.id}"}
        if create_pr:
            answer["pullRequestUrl"] = f"{self._repo_url(repo)}/discussions/{number}"
        self._send(200, answer)
        return True

    # -- downloads ----------------------------------------------------------------------------------------------------

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> bool:
        repo = self._repo(repo_type, repo_id)
        commit = self._commit_at(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.id})
        self.server.hub.downloads.append((self.command, repo_id, path))
        content = blob.content
        headers = {
            "X-Repo-Commit": commit.id,
            "ETag": f'"{blob.blob_id}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"',
        }
        if blob.lfs:
            headers.update({"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(len(content))})
        status = 200
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if match and (match.group(1) or match.group(2)):
            size = len(content)
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:  # a suffix: the last N bytes
                start, end = max(size - int(match.group(2)), 0), size - 1
            if start >= size or start > end:
                raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            content, status = content[start : end + 1], 206
        self._send(status, content, headers)
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: LocalHub


class LocalHub:
    """The server and its in-memory state. `start()` / `stop()`, or use it as a context manager."""

    def __init__(self, username: str = "user", host: str = "127.0.0.1"):
        self.username = username
        self.host = host
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()
        self.log: list[tuple[str, str, int]] = []  # (method, path, status) of every request
        self.unhandled: list[str] = []  # requests of an endpoint this server does not implement
        self.errors: list[str] = []  # exceptions raised by this server (500s)
        self.lfs_uploads: list[tuple[str, str, int]] = []  # (repo_id, sha256, size) of every LFS PUT
        self.downloads: list[tuple[str, str, str]] = []  # (method, repo_id, path) of every resolve
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalHub is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> LocalHub:
        self._server = _Server((self.host, 0), _Handler)
        self._server.hub = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-hub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        with self.lock:
            return self.repos[(repo_type, repo_id)]

    def client_env(self, hf_home: str | os.PathLike, token: str = "hf_local_test_token", base: dict | None = None):
        """Environment of a client subprocess: this server as the Hub, a token, a fresh cache, no Xet, online."""
        env = dict(os.environ if base is None else base)
        for name in _CLIENT_SETTINGS_TO_DROP:
            env.pop(name, None)
        no_proxy = ",".join(filter(None, [env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1", "localhost"]))
        env.update(
            HF_ENDPOINT=self.url,
            HF_TOKEN=token,
            HF_HOME=str(Path(hf_home)),
            HF_HUB_DISABLE_XET="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HUB_ETAG_TIMEOUT="30",
            HF_HUB_DOWNLOAD_TIMEOUT="60",
            TOKENIZERS_PARALLELISM="false",
            NO_PROXY=no_proxy,
            no_proxy=no_proxy,
        )
        return env
