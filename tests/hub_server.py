"""A loopback stand-in for the Hugging Face Hub, for tests of the real ``huggingface_hub`` client.

Standard library only. It binds to 127.0.0.1 on a free port, serves each request on a daemon
thread, and implements the part of the Hub HTTP API (as spoken by huggingface_hub 2.4) that
creating, uploading, listing and downloading model repos uses:

- ``GET /api/whoami-v2``, ``GET /api/agent-harnesses`` (fetched by the client itself)
- ``POST /api/repos/create`` (409 when the repo exists, like the Hub)
- ``POST /api/validate-yaml`` (README.md metadata check)
- ``POST /api/models/{repo}/preupload/{rev}`` (always ``uploadMode: "regular"``, so the client
  never needs LFS or Xet; reports the remote blob ``oid`` so unchanged files are skipped)
- ``POST /api/models/{repo}/commit/{rev}`` (NDJSON: ``header``, ``file``, ``deletedFile``,
  ``deletedFolder``; ``?create_pr=1``)
- ``POST /api/models/{repo}/branch/{branch}``
- ``POST /api/models/{repo}/discussions`` and ``GET .../discussions/{num}`` (pull requests)
- ``GET /api/models/{repo}`` and ``GET /api/models/{repo}/revision/{rev}`` (info + siblings)
- ``GET /api/models/{repo}/tree/{rev}[/{path}]`` (``recursive``)
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag``,
  ``Content-Length`` (and ``Range``)

It rejects what the Hub rejects on these paths: writes without a valid token (401), writes to a
namespace the token does not own (403), unknown repos (404 ``X-Error-Code: RepoNotFound``),
unknown revisions (``RevisionNotFound``) and files (``EntryNotFound``), private repos without
the owner's token, and a README.md whose YAML header does not parse or has ill-typed fields
(400). Every request is recorded (``server.requests``); a request it does not understand is
answered 501 and recorded in ``server.unhandled``, which the pytest fixture turns into a test
failure.

Point a client at it with ``HF_ENDPOINT=server.endpoint`` in a subprocess environment (the
variable is read when huggingface_hub is imported), or in-process with :meth:`patch_client`,
which sets ``huggingface_hub.constants.ENDPOINT`` and ``HUGGINGFACE_CO_URL_TEMPLATE``
(``HfApi(endpoint=...)`` objects created before that keep their old endpoint).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

WRITE_TOKEN = "hf_standin_write_0123456789abcdef"
READ_TOKEN = "hf_standin_read_0123456789abcdef"
USER = "tester"
ORGS = ("gqa-org",)


def git_blob_oid(data: bytes) -> str:
    """The git blob id of ``data`` (what the Hub reports as a regular file's ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    message: str
    files: dict[str, bytes]


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # "main", "refs/pr/1" -> commit oid
    discussions: list[dict[str, Any]] = field(default_factory=list)

    def resolve(self, revision: str) -> Commit | None:
        if revision in self.refs:
            return self.commits[self.refs[revision]]
        return self.commits.get(revision)


@dataclass
class RecordedRequest:
    method: str
    path: str  # URL path, unquoted per segment
    query: dict[str, list[str]]
    authorized: bool
    status: int
    body: Any = None  # parsed JSON, or a list of NDJSON items (file contents elided)

    @property
    def line(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


class _HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _repo_not_found() -> _HubError:
    return _HubError(404, "Repository not found", "RepoNotFound")


def validate_card_yaml(content: str) -> list[str]:
    """Errors the Hub would report for a README.md's YAML header (empty list: valid)."""
    if not content.startswith("---"):
        return []
    parts = content.split("\n---", 1)
    if len(parts) < 2:
        return ["YAML header is not closed by a '---' line"]
    try:
        meta = yaml.safe_load(parts[0][3:])
    except yaml.YAMLError as err:
        return [f"YAML header does not parse: {str(err).splitlines()[0]}"]
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return ["YAML header must be a mapping"]
    errors = []
    for key in ("license", "library_name", "pipeline_tag", "base_model_relation"):
        if key in meta and not isinstance(meta[key], str):
            errors.append(f'"{key}" must be a string')
    for key in ("tags", "datasets", "language"):
        value = meta.get(key)
        if value is not None and not (
            isinstance(value, str)
            or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            errors.append(f'"{key}" must be a string or a list of strings')
    base = meta.get("base_model")
    if base is not None:
        bases = base if isinstance(base, list) else [base]
        if not all(isinstance(b, str) and b.count("/") <= 1 and b for b in bases):
            errors.append('"base_model" must be a Hub model id or a list of them')
    relation = meta.get("base_model_relation")
    if relation is not None and relation not in ("adapter", "merge", "quantized", "finetune"):
        errors.append('"base_model_relation" must be one of adapter, merge, quantized, finetune')
    if "model-index" in meta:
        errors.extend(_model_index_errors(meta["model-index"]))
    return errors


def _model_index_errors(index: Any) -> list[str]:
    if not isinstance(index, list):
        return ['"model-index" must be a list']
    for entry in index:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            return ['"model-index" entries need a "name"']
        for result in entry.get("results", []):
            task = result.get("task") if isinstance(result, dict) else None
            dataset = result.get("dataset") if isinstance(result, dict) else None
            metrics = result.get("metrics") if isinstance(result, dict) else None
            if not isinstance(task, dict) or not isinstance(task.get("type"), str):
                return ['"model-index" results need task.type']
            if not isinstance(dataset, dict) or not all(
                isinstance(dataset.get(k), str) for k in ("type", "name")
            ):
                return ['"model-index" results need dataset.type and dataset.name']
            if not isinstance(metrics, list) or not metrics:
                return ['"model-index" results need a non-empty metrics list']
            for metric in metrics:
                if not isinstance(metric, dict) or not isinstance(metric.get("type"), str):
                    return ['"model-index" metrics need a type']
                if "value" not in metric:
                    return ['"model-index" metrics need a value']
    return []


def _card_data(readme: bytes | None) -> dict[str, Any] | None:
    """The parsed YAML header of a README.md, as the Hub reports it in ``cardData``."""
    if readme is None:
        return None
    text = readme.decode("utf-8", "replace")
    if not text.startswith("---") or validate_card_yaml(text):
        return None
    meta = yaml.safe_load(text.split("\n---", 1)[0][3:])
    return meta if isinstance(meta, dict) else None


class HubStandIn:
    """The stand-in server: state (repos, records) plus the HTTP server thread."""

    def __init__(self, *, time_limit: float = 600.0) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[str] = []
        # Simulated interruption: after this many successful commits, the next commit request
        # hangs (``commit_hanging`` is set) until ``release_commit`` is set, then its connection
        # is closed without committing, as when the uploading process is killed mid-commit.
        self.hang_commit_after: int | None = None
        self.commit_hanging = threading.Event()
        self.release_commit = threading.Event()
        self._commits_seen = 0
        self.lock = threading.RLock()
        self._counter = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._timer = threading.Timer(time_limit, self.stop)
        self._timer.daemon = True

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> HubStandIn:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def patch_client(
        self, monkeypatch: Any, *, token: str | None = WRITE_TOKEN, cache_dir: Any = None
    ) -> None:
        """Point this process's huggingface_hub (and subprocesses, via env) at the stand-in.

        With ``cache_dir``, this process also downloads into that (empty) HF hub cache, so
        recorded downloads are not hidden by files another test already cached.
        """
        from huggingface_hub import constants

        if cache_dir is not None:
            monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))
        monkeypatch.setenv("HF_ENDPOINT", self.endpoint)
        monkeypatch.setattr(constants, "ENDPOINT", self.endpoint)
        monkeypatch.setattr(
            constants,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            self.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        )
        if token is None:
            monkeypatch.delenv("HF_TOKEN", raising=False)
        else:
            monkeypatch.setenv("HF_TOKEN", token)

    # -- test helpers ------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        private: bool = False,
        repo_type: str = "model",
    ) -> str:
        """Create a repo holding ``files`` directly (as if pushed earlier); returns the commit.

        ``repo_type="dataset"`` makes a dataset repo (served read-only under ``/datasets/`` and
        ``/api/datasets/``, as ``datasets.load_dataset`` reads it).
        """
        key = f"datasets/{repo_id}" if repo_type == "dataset" else repo_id
        with self.lock:
            repo = Repo(key, private)
            self.repos[key] = repo
            return self._commit(repo, "main", dict(files), "initial commit")

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        commit = self.repos[repo_id].resolve(revision)
        assert commit is not None, f"no revision {revision!r} in {repo_id}"
        return dict(commit.files)

    def downloaded(self, repo_id: str) -> list[str]:
        """Paths fetched with GET .../resolve/... for ``repo_id``, in order."""
        prefix = f"/{repo_id}/resolve/"
        return [
            r.path[len(prefix) :].split("/", 1)[1]
            for r in self.requests
            if r.method == "GET" and r.path.startswith(prefix) and r.status in (200, 206)
        ]

    def committed_paths(self, repo_id: str) -> list[str]:
        """Every file path sent in successful commit payloads to ``repo_id``, in order."""
        out = []
        for r in self.requests:
            is_commit = r.method == "POST" and r.path.startswith(f"/api/models/{repo_id}/commit/")
            if is_commit and r.status == 200:
                out += [item["path"] for item in r.body if "path" in item]
        return out

    def clear_records(self) -> None:
        with self.lock:
            self.requests.clear()

    # -- state changes -----------------------------------------------------------------------

    def _commit(self, repo: Repo, ref: str, files: dict[str, bytes], message: str) -> str:
        self._counter += 1
        parent = repo.refs.get(ref)
        oid = hashlib.sha1(f"{repo.repo_id}:{self._counter}:{message}".encode()).hexdigest()
        repo.commits[oid] = Commit(oid, parent, message, files)
        repo.refs[ref] = oid
        return oid


# ------------------------------------------------------------------------------------------------


def _make_handler(hub: HubStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # silence stderr logging
            return

        # -- plumbing ------------------------------------------------------------------------

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _token(self) -> str | None:
            auth = self.headers.get("Authorization", "")
            return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None

        def _user(self, *, required: bool) -> str | None:
            token = self._token()
            if token is None:
                if required:
                    raise _HubError(401, "You must be authenticated to do this (no token)")
                return None
            if token not in (WRITE_TOKEN, READ_TOKEN):
                raise _HubError(401, "Invalid credentials in Authorization header")
            return USER

        def _require_write(self, namespace: str) -> None:
            self._user(required=True)
            if self._token() != WRITE_TOKEN:
                raise _HubError(403, "This token does not have write access")
            if namespace not in (USER, *ORGS):
                raise _HubError(
                    403, f"You don't have the rights to create a model under {namespace}"
                )

        def _send(
            self,
            status: int,
            payload: Any = None,
            *,
            raw: bytes | None = None,
            headers: dict[str, str] | None = None,
            head: bool = False,
        ) -> None:
            data = raw if raw is not None else json.dumps(payload).encode()
            self.send_response(status)
            content_type = "application/octet-stream" if raw is not None else "application/json"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _handle(self, method: str) -> None:
            split = urlsplit(self.path)
            segments = [unquote(s) for s in split.path.split("/")[1:]]
            query = parse_qs(split.query)
            body = self._body() if method in ("POST", "PUT") else b""
            record = RecordedRequest(
                method, "/".join(["", *segments]), query, self._token() is not None, 0
            )
            try:
                with hub.lock:
                    self._route(method, segments, query, body, record)
            except _HubError as err:
                headers = {"X-Error-Message": err.message}
                if err.code:
                    headers["X-Error-Code"] = err.code
                record.status = err.status
                self._send(
                    err.status, {"error": err.message}, headers=headers, head=method == "HEAD"
                )
            except Exception as err:
                hub.unhandled.append(f"{method} {self.path}: {type(err).__name__}: {err}")
                record.status = 500
                self._send(500, {"error": f"stand-in failure: {err}"}, head=method == "HEAD")
            finally:
                hub.requests.append(record)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_HEAD(self) -> None:
            self._handle("HEAD")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        # -- routing -------------------------------------------------------------------------

        def _route(
            self,
            method: str,
            seg: list[str],
            query: dict[str, list[str]],
            body: bytes,
            record: RecordedRequest,
        ) -> None:
            if seg[:1] == ["api"]:
                if method == "GET" and seg[1:] == ["agent-harnesses"]:
                    record.status = 200  # the client's user-agent registry (best effort)
                    return self._send(200, {"standardEnvVars": [], "harnesses": {}})
                if method == "GET" and seg[1:] == ["whoami-v2"]:
                    return self._whoami(record)
                if method == "POST" and seg[1:] == ["repos", "create"]:
                    return self._create_repo(json.loads(body), record)
                if method == "POST" and seg[1:] == ["validate-yaml"]:
                    return self._validate_yaml(json.loads(body), record)
                if len(seg) >= 4 and seg[1] == "models":
                    return self._model_api(
                        method, seg[2] + "/" + seg[3], seg[4:], query, body, record
                    )
                if len(seg) >= 4 and seg[1] == "datasets" and method == "GET":
                    key = f"datasets/{seg[2]}/{seg[3]}"  # dataset repos: read-only routes
                    return self._model_api(method, key, seg[4:], query, body, record)
            elif seg[:1] == ["datasets"] and len(seg) >= 6 and seg[3] == "resolve":
                if method in ("GET", "HEAD"):
                    key = f"datasets/{seg[1]}/{seg[2]}"
                    return self._resolve(method, key, seg[4], "/".join(seg[5:]), record)
            elif len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
                return self._resolve(
                    method, seg[0] + "/" + seg[1], seg[3], "/".join(seg[4:]), record
                )
            self._unhandled(method, record)

        def _unhandled(self, method: str, record: RecordedRequest) -> None:
            hub.unhandled.append(f"{method} {self.path}")
            record.status = 501
            self._send(
                501,
                {"error": f"stand-in does not implement {method} {self.path}"},
                head=method == "HEAD",
            )

        def _repo(self, repo_id: str, *, write: bool = False) -> Repo:
            repo = hub.repos.get(repo_id)
            if write:
                self._require_write(repo_id.split("/")[0])
            if repo is None:
                raise _repo_not_found()
            if repo.private and self._user(required=False) is None:
                raise _repo_not_found()
            return repo

        def _commit_or_404(self, repo: Repo, revision: str) -> Commit:
            commit = repo.resolve(revision)
            if commit is None:
                raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return commit

        # -- endpoints -----------------------------------------------------------------------

        def _whoami(self, record: RecordedRequest) -> None:
            self._user(required=True)
            record.status = 200
            self._send(
                200,
                {
                    "type": "user",
                    "name": USER,
                    "fullname": "Stand-in Tester",
                    "orgs": [{"name": org, "type": "org"} for org in ORGS],
                    "auth": {
                        "type": "access_token",
                        "accessToken": {
                            "displayName": "stand-in",
                            "role": "write" if self._token() == WRITE_TOKEN else "read",
                        },
                    },
                },
            )

        def _create_repo(self, payload: dict[str, Any], record: RecordedRequest) -> None:
            record.body = payload
            if payload.get("type", "model") != "model":
                raise _HubError(400, "the stand-in only hosts model repos")
            namespace = payload.get("organization") or USER
            self._require_write(namespace)
            repo_id = f"{namespace}/{payload['name']}"
            url = f"{hub.endpoint}/{repo_id}"
            if repo_id in hub.repos:
                record.status = 409
                message = "You already created this model repo"
                return self._send(
                    409, {"error": message, "url": url}, headers={"X-Error-Message": message}
                )
            repo = Repo(
                repo_id, payload.get("visibility") == "private" or bool(payload.get("private"))
            )
            hub.repos[repo_id] = repo
            hub._commit(
                repo,
                "main",
                {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                "initial commit",
            )
            record.status = 200
            self._send(200, {"url": url, "name": repo_id, "id": repo_id})

        def _validate_yaml(self, payload: dict[str, Any], record: RecordedRequest) -> None:
            record.body = {"repoType": payload.get("repoType")}
            errors = validate_card_yaml(payload.get("content", ""))
            status = 400 if errors else 200
            record.status = status
            self._send(status, {"errors": [{"message": e} for e in errors], "warnings": []})

        def _model_api(
            self,
            method: str,
            repo_id: str,
            rest: list[str],
            query: dict[str, list[str]],
            body: bytes,
            record: RecordedRequest,
        ) -> None:
            if method == "GET" and not rest:
                return self._info(repo_id, "main", record)
            if method == "GET" and len(rest) == 2 and rest[0] == "revision":
                return self._info(repo_id, rest[1], record)
            if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                return self._tree(repo_id, rest[1], "/".join(rest[2:]), query, record)
            if method == "POST" and len(rest) == 2 and rest[0] == "preupload":
                return self._preupload(repo_id, rest[1], json.loads(body), query, record)
            if method == "POST" and len(rest) == 2 and rest[0] == "commit":
                return self._commit(repo_id, rest[1], body, query, record)
            if method == "POST" and len(rest) == 2 and rest[0] == "branch":
                return self._create_branch(repo_id, rest[1], json.loads(body or b"{}"), record)
            if method == "POST" and rest == ["discussions"]:
                return self._open_pr(repo_id, json.loads(body), record)
            if method == "GET" and len(rest) == 2 and rest[0] == "discussions":
                return self._discussion(repo_id, int(rest[1]), record)
            self._unhandled(method, record)

        def _info(self, repo_id: str, revision: str, record: RecordedRequest) -> None:
            repo = self._repo(repo_id)
            commit = self._commit_or_404(repo, revision)
            record.status = 200
            self._send(
                200,
                {
                    "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
                    "id": repo_id,
                    "modelId": repo_id,
                    "author": repo_id.split("/")[0],
                    "sha": commit.oid,
                    "private": repo.private,
                    "gated": False,
                    "disabled": False,
                    "lastModified": "2026-01-01T00:00:00.000Z",
                    "tags": [],
                    "library_name": None,
                    "siblings": [{"rfilename": p} for p in sorted(commit.files)],
                    "cardData": _card_data(commit.files.get("README.md")),
                },
            )

        def _tree(
            self,
            repo_id: str,
            revision: str,
            prefix: str,
            query: dict[str, list[str]],
            record: RecordedRequest,
        ) -> None:
            repo = self._repo(repo_id)
            commit = self._commit_or_404(repo, revision)
            recursive = query.get("recursive", ["False"])[0].lower() == "true"
            base = prefix.rstrip("/") + "/" if prefix else ""
            entries: dict[str, dict[str, Any]] = {}
            for path, data in sorted(commit.files.items()):
                if not path.startswith(base):
                    continue
                rel = path[len(base) :]
                parts = rel.split("/")
                for depth in range(1, len(parts)):
                    folder = base + "/".join(parts[:depth])
                    if recursive or depth == 1:
                        entries.setdefault(
                            folder,
                            {
                                "type": "directory",
                                "path": folder,
                                "oid": hashlib.sha1(folder.encode()).hexdigest(),
                            },
                        )
                if recursive or len(parts) == 1:
                    entries[path] = {
                        "type": "file",
                        "path": path,
                        "size": len(data),
                        "oid": git_blob_oid(data),
                    }
            if prefix and not entries:
                raise _HubError(404, f"Entry not found: {prefix}", "EntryNotFound")
            record.status = 200
            self._send(200, list(entries.values()))

        def _preupload(
            self,
            repo_id: str,
            revision: str,
            payload: dict[str, Any],
            query: dict[str, list[str]],
            record: RecordedRequest,
        ) -> None:
            record.body = {"files": [f["path"] for f in payload["files"]]}
            repo = self._repo(repo_id, write=True)
            commit = self._commit_or_404(repo, revision)
            files = []
            for item in payload["files"]:
                info = {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False}
                if item["path"] in commit.files:
                    info["oid"] = git_blob_oid(commit.files[item["path"]])
                files.append(info)
            record.status = 200
            self._send(200, {"files": files, "commitOid": commit.oid})

        def _commit(
            self,
            repo_id: str,
            revision: str,
            body: bytes,
            query: dict[str, list[str]],
            record: RecordedRequest,
        ) -> None:
            items = [json.loads(line) for line in body.splitlines() if line.strip()]
            record.body = [
                {"key": i["key"], **({"path": i["value"]["path"]} if "path" in i["value"] else {})}
                for i in items
            ]
            repo = self._repo(repo_id, write=True)
            create_pr = query.get("create_pr", ["0"])[0] == "1"
            base = self._commit_or_404(repo, revision)
            if hub.hang_commit_after is not None and hub._commits_seen >= hub.hang_commit_after:
                hub.hang_commit_after = None
                hub.commit_hanging.set()
                hub.release_commit.wait(timeout=120)
                record.status = 0  # no answer
                self.close_connection = True
                return
            if not items or items[0]["key"] != "header":
                raise _HubError(400, "The first line of the payload must be the commit header")
            header = items[0]["value"]
            if header.get("parentCommit") and header["parentCommit"] != base.oid:
                raise _HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(base.files)
            for item in items[1:]:
                key, value = item["key"], item["value"]
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise _HubError(400, f"unsupported encoding {value.get('encoding')!r}")
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    if value["path"] not in files:
                        raise _HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                    del files[value["path"]]
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: d for p, d in files.items() if not p.startswith(prefix)}
                else:  # lfsFile never happens: preupload always answers "regular"
                    raise _HubError(400, f"unsupported commit operation {key!r}")
            if "README.md" in files:
                errors = validate_card_yaml(files["README.md"].decode("utf-8", "replace"))
                if errors:
                    raise _HubError(400, "Invalid metadata in README.md: " + "; ".join(errors))
            pr_url = None
            ref = revision
            if create_pr:
                num = self._new_discussion(repo, header.get("summary", ""), base_ref=revision)
                ref = f"refs/pr/{num}"
                repo.refs[ref] = base.oid
                pr_url = f"{hub.endpoint}/{repo_id}/discussions/{num}"
            elif revision not in repo.refs:
                raise _HubError(400, f"Cannot commit to {revision}: not a branch")
            oid = hub._commit(repo, ref, files, header.get("summary", ""))
            hub._commits_seen += 1
            record.status = 200
            self._send(
                200,
                {
                    "success": True,
                    "commitOid": oid,
                    "commitUrl": f"{hub.endpoint}/{repo_id}/commit/{oid}",
                    "pullRequestUrl": pr_url,
                },
            )

        def _create_branch(
            self, repo_id: str, branch: str, payload: dict[str, Any], record: RecordedRequest
        ) -> None:
            record.body = payload
            repo = self._repo(repo_id, write=True)
            if branch in repo.refs:
                raise _HubError(409, f"Reference already exists: refs/heads/{branch}")
            start = self._commit_or_404(repo, payload.get("startingPoint") or "main")
            repo.refs[branch] = start.oid
            record.status = 200
            self._send(200, {})

        def _new_discussion(self, repo: Repo, title: str, *, base_ref: str = "main") -> int:
            num = len(repo.discussions) + 1
            repo.discussions.append({"num": num, "title": title, "base": base_ref})
            return num

        def _open_pr(self, repo_id: str, payload: dict[str, Any], record: RecordedRequest) -> None:
            record.body = payload
            repo = self._repo(repo_id, write=True)
            if not payload.get("pullRequest"):
                raise _HubError(400, "the stand-in only opens pull requests")
            num = self._new_discussion(repo, payload.get("title", ""))
            repo.refs[f"refs/pr/{num}"] = repo.refs["main"]
            record.status = 200
            self._send(200, {"num": num, "url": f"{hub.endpoint}/{repo_id}/discussions/{num}"})

        def _discussion(self, repo_id: str, num: int, record: RecordedRequest) -> None:
            repo = self._repo(repo_id)
            if not 1 <= num <= len(repo.discussions):
                raise _HubError(404, "Discussion not found")
            item = repo.discussions[num - 1]
            record.status = 200
            self._send(
                200,
                {
                    "num": num,
                    "title": item["title"],
                    "status": "draft",
                    "isPullRequest": True,
                    "author": {"name": USER},
                    "createdAt": "2026-01-01T00:00:00.000Z",
                    "repo": {"name": repo_id, "type": "model"},
                    "events": [],
                    "changes": {"base": item["base"]},
                    "filesWithConflicts": [],
                    "diff": "",
                },
            )

        def _resolve(
            self, method: str, repo_id: str, revision: str, path: str, record: RecordedRequest
        ) -> None:
            repo = self._repo(repo_id)
            commit = self._commit_or_404(repo, revision)
            if path not in commit.files:
                raise _HubError(404, "Entry not found", "EntryNotFound")
            data = commit.files[path]
            headers = {
                "X-Repo-Commit": commit.oid,
                "ETag": f'"{git_blob_oid(data)}"',
                "Accept-Ranges": "bytes",
            }
            status = 200
            range_header = self.headers.get("Range")
            if range_header and range_header.startswith("bytes=") and method == "GET":
                start_text, _, end_text = range_header[6:].partition("-")
                start = int(start_text)
                end = int(end_text) if end_text else len(data) - 1
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                data = data[start : end + 1]
                status = 206
            record.status = status
            self._send(status, raw=data, headers=headers, head=method == "HEAD")

    return Handler


def serve(time_limit: float = 600.0) -> HubStandIn:
    """Start a stand-in (stopped by :meth:`HubStandIn.stop` or after ``time_limit`` seconds)."""
    return HubStandIn(time_limit=time_limit).start()


if __name__ == "__main__":  # manual use: python tests/hub_server.py
    server = serve()
    print(f"HF_ENDPOINT={server.endpoint} (write token: tests.hub_server.WRITE_TOKEN)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
