"""In-memory fake of the Hugging Face Hub HTTP API, for tests.

`HubServer` speaks the subset of the Hub protocol that the installed ``huggingface_hub`` (2.4) uses for
creating repos, uploading (regular *and* LFS path), committing, listing and downloading files. It is
stdlib-only, binds ``127.0.0.1`` on free ports and keeps everything in memory::

    with HubServer(tokens={"hf_alice": "alice"}) as hub:
        api = HfApi(endpoint=hub.endpoint, token="hf_alice")
        api.create_repo("alice/demo")
        api.upload_folder(repo_id="alice/demo", folder_path=folder)
        assert hub.repo_files("alice/demo") == {...}

Xet must be disabled in the client (``HF_HUB_DISABLE_XET=1`` set *before* ``huggingface_hub`` is
imported: the flag is read once into ``huggingface_hub.constants`` at import time). With Xet enabled
the client would ask for Xet tokens, which this server does not implement (such requests get a loud
404, see below).

Two listeners
-------------
* ``hub.endpoint`` -- the Hub API (``/api/...``, ``/{repo}/resolve/...``, ``/{repo}.git/info/lfs/...``).
* ``hub.storage_endpoint`` -- a fake S3/CDN on another port (a different *origin*). LFS upload hrefs
  and LFS download redirects point there, like the real Hub does, so the client follows exactly the
  code paths it uses in production: the ``HEAD /resolve`` of an LFS file answers ``302`` with
  ``X-Linked-Etag``/``X-Linked-Size``; the client does not follow a redirect to another origin, reads
  the metadata from the 302 itself, drops its ``Authorization`` header and downloads from the CDN.
  Those URLs carry an unguessable ticket instead of a token (like a pre-signed URL).

Routes (anything else answers ``404`` with a JSON ``{"error": ...}`` and *no* ``X-Error-Code``, so a
protocol change in ``huggingface_hub`` fails loudly instead of being mistaken for "repo not found"):

=====================  =========================================================================
route kind             request
=====================  =========================================================================
``create``             ``POST /api/repos/create``
``delete``             ``DELETE /api/repos/delete``
``whoami``             ``GET /api/whoami-v2``
``validate_yaml``      ``POST /api/validate-yaml``
``info``               ``GET /api/{models|datasets|spaces}/{repo}[/revision/{rev}]``
``tree``               ``GET /api/{type}s/{repo}/tree/{rev}[/{path}]`` (``recursive``, ``expand``,
                       cursor pagination through the ``Link`` header)
``preupload``          ``POST /api/{type}s/{repo}/preupload/{rev}``
``commit``             ``POST /api/{type}s/{repo}/commit/{rev}`` (ndjson body)
``lfs_batch``          ``POST /[{type}s/]{repo}.git/info/lfs/objects/batch``
``lfs_verify``         ``POST /[{type}s/]{repo}.git/info/lfs/objects/verify``
``resolve``            ``HEAD|GET /[{type}s/]{repo}/resolve/{rev}/{path}``
``lfs_upload``         ``PUT {storage_endpoint}/_lfs/upload/{ticket}``
``cdn_download``       ``HEAD|GET {storage_endpoint}/_lfs/download/{ticket}`` (supports ``Range``)
=====================  =========================================================================

Hub behaviours mirrored
-----------------------
* Auth is ``Authorization: Bearer <token>``. An unknown token is rejected with 401 ``"Invalid
  credentials in Authorization header"`` on *every* route (as the Hub does); a missing token is a 401
  on write routes and on ``whoami``.
* ``create``: 403 ``"You don't have the rights ..."`` when the namespace is neither the token's user
  nor one of its orgs -- checked *before* existence, like the Hub; 409 when the repo exists, with a
  body that still carries ``"url"``. ``create_repo(exist_ok=True)`` swallows the 409, and on a 403 it
  falls back to ``repo_info`` and succeeds if the repo exists and is readable.
* A private repo (or a missing one) reads as 401 without a token and 404 with someone else's token,
  both with ``X-Error-Code: RepoNotFound``, which ``huggingface_hub`` maps to
  ``RepositoryNotFoundError``. (Its other 401 -> ``RepositoryNotFoundError`` rule only applies to
  ``https://`` URLs, so the error code header is what matters against a local ``http://`` server.)
  Unknown revisions answer ``X-Error-Code: RevisionNotFound``, missing files ``EntryNotFound``.
* ``preupload`` answers ``"lfs"`` for files of at least ``lfs_threshold`` bytes and ``"regular"``
  otherwise, plus the ``oid`` of the file already at that path (sha256 for LFS files, git blob sha1
  for regular ones) so the client's "unchanged file" detection works. ``shouldIgnore`` is always
  false (``.gitignore`` is not interpreted).
* A commit is all-or-nothing: the ndjson body is fully validated (every ``lfsFile`` must have been
  uploaded to this repo, deleted paths must exist, ``parentCommit`` must be the head) before a new
  snapshot is appended, under one lock. Only the ``main`` branch exists; ``create_pr`` is refused.
* Unlike the Hub, a new repo has **no** commit (pass ``initial_commit=True`` to get the Hub's initial
  commit with a ``.gitattributes`` file), so ``hub.commits(repo)`` only lists what a test pushed.

Fault injection and client retries
----------------------------------
``hub.fail_next(route, status=..., count=n)`` answers the next ``n`` requests of that route kind with
that HTTP status; ``drop=True`` reads the request then closes the connection without an answer (the
client sees ``httpx2.RemoteProtocolError: Server disconnected without sending a response``). Injected
failures happen before the request is processed, so they never change state (``after_apply=True``
processes the request first and then loses/replaces the answer -- e.g. a commit that landed but whose
response never arrived). Each *attempt* consumes one unit of ``count``, so to make a call fail for
good you must cover the client's retries. What ``huggingface_hub`` 2.4 retries
(``utils/_http.py::http_backoff``: up to 5 retries -- 6 attempts -- on status 408/429/500/502/503/504
and on ``httpx2`` timeout/network/``RemoteProtocolError`` errors, sleeping 1, 2, 4, 8, 8 seconds):

* retried by ``http_backoff``: ``tree`` (pagination), ``preupload``, ``lfs_batch``, ``lfs_upload``
  (the file object is re-seeked) and ``lfs_verify``. A ``count`` of 5 or less is absorbed by retries;
  ``count >= 6`` makes the call fail (the LFS upload then surfaces as a ``RuntimeError("Error while
  uploading ...")`` from ``upload_folder``). 4xx statuses other than 408/429 are never retried.
  Concurrent LFS uploads (one thread per file) draw from the same ``lfs_upload`` count: to make every
  file fail, use ``count=6 * number_of_lfs_files``.
* **not** retried: ``create``, ``info``, ``whoami``, ``validate_yaml`` and -- notably -- ``commit``
  (``create_commit`` posts it once with the plain session: a 500 is raised at once as
  ``HfHubHTTPError``, a drop as a raw ``httpx2.RemoteProtocolError``).
* ``HEAD /resolve`` (``resolve``) is first tried *without* retries so the client can fall back to its
  cache; if the file is not cached and the status was retryable (408/429/5xx), ``hf_hub_download``
  tries once more with the full ``http_backoff``: 1 + 6 = 7 attempts, so ``count=1`` is absorbed
  without any sleep and ``count=7`` ends in ``LocalEntryNotFoundError``. 401s and
  ``RepositoryNotFoundError`` are re-raised as they are. A *dropped* HEAD is not caught at all: it
  escapes ``hf_hub_download`` at once as ``httpx2.RemoteProtocolError``.
* the file ``GET`` (``resolve`` for regular files, ``cdn_download`` for LFS ones) is retried on
  408/429 only, but a dropped connection is retried by ``file_download.http_get`` itself, 5 times
  (6 attempts) after a ``time.sleep(1)`` each, resuming with a ``Range`` header once bytes arrived.

The backoff sleeps make exhausting retries take ~23 s; tests should replace the ``time`` module seen by
``huggingface_hub.utils._http`` (and ``huggingface_hub.file_download``) with one whose ``sleep`` is a
no-op (see ``tests/test_hub_server.py::no_backoff_sleep``).

Every request is recorded in ``hub.requests`` (method, path, route kind, status; ``status`` is
``None`` for a dropped connection) for assertions.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FAULT_ROUTES", "HubServer", "RecordedRequest"]

logger = logging.getLogger(__name__)

#: Route kinds accepted by `HubServer.fail_next` (and reported in `RecordedRequest.route`).
FAULT_ROUTES: frozenset[str] = frozenset(
    {
        "create",
        "delete",
        "whoami",
        "validate_yaml",
        "info",
        "tree",
        "preupload",
        "lfs_batch",
        "lfs_verify",
        "lfs_upload",
        "commit",
        "resolve",
        "cdn_download",
    }
)

_REPO_TYPES_BY_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_COMMIT_OID_RE = re.compile(r"[0-9a-f]{40}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")
_TREE_PAGE_SIZE = 1000
_GITATTRIBUTES = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def _now_iso() -> str:
    """Current UTC time in the Hub's format (``2024-01-31T12:00:00.000Z``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _git_blob_oid(content: bytes) -> str:
    """The git object id of a blob (sha1 of ``blob <len>\\0<content>``)."""
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()


# --------------------------------------------------------------------------------------------------
# Storage model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Blob:
    """A file stored in a commit: its bytes and whether it was committed through LFS."""

    data: bytes
    lfs: bool
    sha256: str
    git_oid: str  # for LFS files: oid of the pointer file, as on a real git remote
    pointer_size: int

    @classmethod
    def make(cls, data: bytes, *, lfs: bool) -> _Blob:
        sha = hashlib.sha256(data).hexdigest()
        if lfs:
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()
            return cls(data, True, sha, _git_blob_oid(pointer), len(pointer))
        return cls(data, False, sha, _git_blob_oid(data), 0)

    @property
    def oid_for_preupload(self) -> str:
        """The oid the client compares its local file with (sha256 for LFS, git sha1 otherwise)."""
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class _Commit:
    oid: str
    message: str
    description: str
    author: str
    date: str
    files: dict[str, _Blob]


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    sdk: str | None = None
    commits: list[_Commit] = field(default_factory=list)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content (uploaded, maybe uncommitted)
    uid: str = field(default_factory=lambda: secrets.token_hex(12))

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/", 1)[0]

    @property
    def head(self) -> _Commit | None:
        return self.commits[-1] if self.commits else None


@dataclass(frozen=True)
class RecordedRequest:
    """One request seen by the server.

    Attributes:
        method: HTTP method.
        path: URL path, without the query string, as sent (still percent-encoded).
        route: route kind (one of `FAULT_ROUTES`, or ``"unknown"``).
        status: HTTP status answered, or ``None`` if the connection was dropped without an answer.
        query: raw query string.
    """

    method: str
    path: str
    route: str
    status: int | None
    query: str = ""


@dataclass
class _Fault:
    route: str
    status: int | None
    drop: bool
    after_apply: bool
    remaining: int


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------


class _HttpError(Exception):
    """Raised by route handlers; rendered as a JSON error like the Hub's."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def to_response(self) -> _Response:
        headers = {"X-Error-Message": self.message.encode("latin-1", "replace").decode("latin-1"), **self.headers}
        if self.code is not None:
            headers["X-Error-Code"] = self.code
        return _Response.json(self.status, {"error": self.message, **self.extra}, headers=headers)


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Response:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Message  # case-insensitive, as sent
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as err:
            raise _HttpError(400, f"Invalid JSON body: {err}") from err

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true", "yes")


_Handler = Callable[..., _Response]


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _HubHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its `HubServer` and tracks open connections to close them on stop."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hub: HubServer, role: str) -> None:
        self.hub = hub
        self.role = role
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RequestHandler)

    def track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def close_connections(self) -> None:
        """Shut down every open (e.g. keep-alive) connection so that no handler thread outlives the server."""
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):  # already closed by the peer
                conn.shutdown(socket.SHUT_RDWR)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real Hub; every answer carries a Content-Length
    server_version = "tlzoo-test-hub/1.0"
    timeout = 60  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid Nagle/delayed-ACK 40 ms stalls
    server: _HubHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.server.role, format % args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError as err:
                    raise _BodyError(400, "Malformed chunked body") from err
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > limit:
                    raise _BodyError(413, "Request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            raise _BodyError(413, "Request body too large")
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        hub = self.server.hub
        split = urlsplit(self.path)
        route, handler, params = hub._match(self.server.role, self.command, split.path)
        try:
            body = self._read_body(hub.max_body_bytes)
        except _BodyError as err:
            self.close_connection = True
            self._send(_HttpError(err.status, str(err)).to_response())
            hub._record(RecordedRequest(self.command, split.path, route, err.status, split.query))
            return
        request = _Request(
            method=self.command,
            path=split.path,
            query={k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()},
            headers=self.headers,
            body=body,
        )

        fault = hub._take_fault(route)
        response: _Response | None
        if fault is not None and not fault.after_apply:
            response = None if fault.drop else hub._injected(fault)
        else:
            response = self._run(handler, request, params)
            if fault is not None:
                response = None if fault.drop else hub._injected(fault)

        hub._record(
            RecordedRequest(self.command, split.path, route, None if response is None else response.status, split.query)
        )
        if response is None:
            logger.info("HubServer: dropping connection for %s %s (injected)", self.command, split.path)
            self.close_connection = True  # answer nothing; socketserver closes the socket
            return
        self._send(response)

    def _run(self, handler: _Handler | None, request: _Request, params: dict[str, str]) -> _Response:
        if handler is None:
            logger.warning("HubServer: no route for %s %s", request.method, request.path)
            return _Response.json(
                404, {"error": f"HubServer: no route for {request.method} {request.path} (protocol change?)"}
            )
        try:
            return handler(request, **params)
        except _HttpError as err:
            return err.to_response()
        except Exception:  # a bug in the fake must surface as a 500, not as a hung connection
            logger.exception("HubServer: handler crashed on %s %s", request.method, request.path)
            return _Response.json(500, {"error": "HubServer internal error (see test logs)"})

    def _send(self, response: _Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class HubServer:
    """An in-memory Hugging Face Hub for tests (see the module docstring for the protocol details).

    Args:
        tokens: maps bearer tokens to user names, e.g. ``{"hf_alice": "alice"}``.
        orgs: maps organization names to their members; members may create repos in and push to them.
        lfs_threshold: files of at least this many bytes are uploaded through LFS (``preupload`` answer).
        initial_commit: if true, a new repo starts with the Hub's "initial commit" holding a
            ``.gitattributes`` file; by default it starts with no commit at all.
        max_body_bytes: requests with a larger body are refused with 413.
    """

    def __init__(
        self,
        tokens: Mapping[str, str] | None = None,
        *,
        orgs: Mapping[str, Iterable[str]] | None = None,
        lfs_threshold: int = 1024,
        initial_commit: bool = False,
        max_body_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self._tokens = dict(tokens or {})
        self._orgs = {org: frozenset(members) for org, members in (orgs or {}).items()}
        self.lfs_threshold = lfs_threshold
        self.initial_commit = initial_commit
        self.max_body_bytes = max_body_bytes

        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._upload_tickets: dict[str, tuple[str, str, int]] = {}  # ticket -> (repo uid, sha256, size)
        self._download_tickets: dict[tuple[str, str], str] = {}  # (repo uid, sha256) -> ticket
        self._commit_counter = 0

        self._servers: list[_HubHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._routes: dict[str, list[tuple[frozenset[str], re.Pattern[str], str, _Handler]]] = self._build_routes()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> HubServer:
        """Bind both listeners on free ports of 127.0.0.1 and serve them from daemon threads."""
        if self._servers:
            raise RuntimeError("HubServer already started")
        for role in ("api", "storage"):
            server = _HubHTTPServer(self, role)
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.01}, name=f"HubServer-{role}", daemon=True
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        logger.debug("HubServer listening on %s (storage %s)", self.endpoint, self.storage_endpoint)
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and wait (boundedly) for the serving threads."""
        servers, threads = self._servers, self._threads
        self._servers, self._threads = [], []
        for server in servers:
            server.shutdown()
            server.close_connections()
            server.server_close()
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """Base URL of the Hub API, e.g. ``http://127.0.0.1:54321`` (pass it as ``endpoint=``)."""
        return self._url_of("api")

    @property
    def storage_endpoint(self) -> str:
        """Base URL of the fake S3/CDN that LFS uploads and downloads are sent to."""
        return self._url_of("storage")

    def _url_of(self, role: str) -> str:
        for server in self._servers:
            if server.role == role:
                return f"http://127.0.0.1:{server.server_address[1]}"
        raise RuntimeError("HubServer is not running (use it as a context manager or call start())")

    # ---------------------------------------------------------------- fault injection & request log

    def fail_next(
        self,
        route: str,
        status: int | None = None,
        *,
        drop: bool = False,
        count: int = 1,
        after_apply: bool = False,
    ) -> None:
        """Make the next `count` requests of kind `route` fail.

        Args:
            route: a route kind from `FAULT_ROUTES` (``"create"``, ``"preupload"``, ``"lfs_batch"``,
                ``"lfs_upload"``, ``"commit"``, ``"resolve"``, ...).
            status: answer this HTTP status (with a JSON error body) instead of processing the request.
            drop: read the request, then close the connection without answering.
            count: number of consecutive attempts to fail. Client retries consume it too: see the module
                docstring for which calls ``huggingface_hub`` retries (6 attempts for ``http_backoff``).
            after_apply: process the request normally (state changes happen) and only then drop or
                replace the answer -- a request that succeeded but whose response was lost.

        Faults queued for the same route are consumed in order.
        """
        if route not in FAULT_ROUTES:
            raise ValueError(f"Unknown route kind {route!r}; expected one of {sorted(FAULT_ROUTES)}")
        if drop == (status is not None):
            raise ValueError("Pass exactly one of `status=` or `drop=True`")
        if status is not None and not 100 <= status <= 599:
            raise ValueError(f"Invalid HTTP status {status}")
        if count < 1:
            raise ValueError("`count` must be >= 1")
        with self._lock:
            self._faults.append(_Fault(route, status, drop, after_apply, count))

    def clear_faults(self) -> None:
        """Forget every pending injected fault."""
        with self._lock:
            self._faults.clear()

    def pending_faults(self, route: str | None = None) -> int:
        """Number of injected failures not consumed yet (for `route`, or for all routes)."""
        with self._lock:
            return sum(f.remaining for f in self._faults if route is None or f.route == route)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, route: str) -> list[RecordedRequest]:
        """The recorded requests of one route kind."""
        return [r for r in self.requests if r.route == route]

    def _take_fault(self, route: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.route == route:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    @staticmethod
    def _injected(fault: _Fault) -> _Response:
        assert fault.status is not None
        return _HttpError(fault.status, f"Injected failure (HTTP {fault.status}) by HubServer.fail_next").to_response()

    def _record(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(entry)

    # ---------------------------------------------------------------- helpers for tests

    def repo_exists(self, repo_id: str, repo_type: str = "model") -> bool:
        """Whether the repo exists (regardless of its visibility)."""
        with self._lock:
            return (repo_type, repo_id) in self._repos

    def repo_files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """The files of the repo at `revision` (``"main"`` or a commit oid), as ``{path: bytes}``."""
        with self._lock:
            commit = self._commit_at(self._get_repo(repo_type, repo_id), revision)
            return {} if commit is None else {path: blob.data for path, blob in commit.files.items()}

    def lfs_files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> set[str]:
        """The paths that were committed through LFS at `revision`."""
        with self._lock:
            commit = self._commit_at(self._get_repo(repo_type, repo_id), revision)
            return set() if commit is None else {path for path, blob in commit.files.items() if blob.lfs}

    def commits(self, repo_id: str, repo_type: str = "model") -> list[dict[str, Any]]:
        """The repo history, oldest first: dicts with ``oid``, ``message``, ``description``, ``author``, ``files``."""
        with self._lock:
            return [
                {
                    "oid": c.oid,
                    "message": c.message,
                    "description": c.description,
                    "author": c.author,
                    "files": {path: blob.data for path, blob in c.files.items()},
                }
                for c in self._get_repo(repo_type, repo_id).commits
            ]

    def seed_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        *,
        repo_type: str = "model",
        private: bool = False,
        message: str = "Seed commit",
    ) -> str:
        """Create (if needed) a repo and commit `files` to it directly, without going through HTTP.

        Files of at least `lfs_threshold` bytes are stored as LFS files. Returns the new commit oid.
        """
        if repo_type not in _URL_PREFIX:
            raise ValueError(f"Invalid repo type {repo_type!r}")
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
            if repo is None:
                repo = self._new_repo(repo_type, repo_id, private=private, sdk=None)
            snapshot = dict(repo.head.files) if repo.head else {}
            for path, data in files.items():
                lfs = len(data) >= self.lfs_threshold
                blob = _Blob.make(bytes(data), lfs=lfs)
                if lfs:
                    repo.lfs_objects[blob.sha256] = blob.data
                snapshot[_validate_path(path)] = blob
            return self._append_commit(repo, snapshot, message, "", repo.namespace).oid

    def _get_repo(self, repo_type: str, repo_id: str) -> _Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise KeyError(f"No {repo_type} repo {repo_id!r} on the test hub")
        return repo

    # ---------------------------------------------------------------- state helpers (call with the lock held)

    def _new_repo(self, repo_type: str, repo_id: str, *, private: bool, sdk: str | None) -> _Repo:
        repo = _Repo(repo_type=repo_type, repo_id=repo_id, private=private, created_at=_now_iso(), sdk=sdk)
        self._repos[(repo_type, repo_id)] = repo
        if self.initial_commit:
            self._append_commit(
                repo, {".gitattributes": _Blob.make(_GITATTRIBUTES, lfs=False)}, "initial commit", "", repo.namespace
            )
        return repo

    def _append_commit(
        self, repo: _Repo, files: dict[str, _Blob], message: str, description: str, author: str
    ) -> _Commit:
        self._commit_counter += 1
        parent = repo.head.oid if repo.head else ""
        digest = hashlib.sha1()
        for part in (repo.uid, parent, message, str(self._commit_counter), secrets.token_hex(8)):
            digest.update(part.encode() + b"\x00")
        for path in sorted(files):
            digest.update(f"{path}\x00{files[path].git_oid}\x00".encode())
        commit = _Commit(digest.hexdigest(), message, description, author, _now_iso(), files)
        repo.commits.append(commit)
        return commit

    @staticmethod
    def _commit_at(repo: _Repo, revision: str) -> _Commit | None:
        """The commit at `revision`; None for ``main`` of an empty repo; 404 RevisionNotFound otherwise."""
        if revision == "main":
            return repo.head
        if _COMMIT_OID_RE.fullmatch(revision):
            for commit in repo.commits:
                if commit.oid == revision:
                    return commit
        raise _HttpError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")

    def _can_write(self, user: str | None, namespace: str) -> bool:
        return user is not None and (user == namespace or user in self._orgs.get(namespace, frozenset()))

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.endpoint}/{_URL_PREFIX[repo_type]}{repo_id}"

    # ---------------------------------------------------------------- auth

    def _user(self, request: _Request) -> str | None:
        """The user behind the request's bearer token; None without a token; 401 for an unknown token."""
        auth = request.headers.get("Authorization")
        if not auth:
            return None
        scheme, _, token = auth.partition(" ")
        user = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise _HttpError(401, "Invalid credentials in Authorization header")
        return user

    def _require_user(self, request: _Request) -> str:
        user = self._user(request)
        if user is None:
            raise _HttpError(401, "Invalid credentials in Authorization header (no token was sent)")
        return user

    def _readable_repo(self, user: str | None, repo_type: str, repo_id: str) -> _Repo:
        """The repo if `user` may read it; otherwise 'not found' (401 anonymous / 404 authenticated), as the Hub."""
        repo = self._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._can_write(user, repo.namespace)):
            raise _HttpError(401 if user is None else 404, "Repository not found", code="RepoNotFound")
        return repo

    def _writable_repo(self, request: _Request, repo_type: str, repo_id: str) -> tuple[str, _Repo]:
        user = self._require_user(request)
        repo = self._readable_repo(user, repo_type, repo_id)
        if not self._can_write(user, repo.namespace):
            raise _HttpError(403, f"You don't have the rights to push to {repo_type} repo {repo_id}")
        return user, repo

    # ---------------------------------------------------------------- routing

    def _build_routes(self) -> dict[str, list[tuple[frozenset[str], re.Pattern[str], str, _Handler]]]:
        types = r"(?P<types>models|datasets|spaces)"
        repo = r"(?P<ns>[^/]+)/(?P<name>[^/]+?)"
        prefix = r"(?:(?P<prefix>datasets|spaces)/)?"
        api: list[tuple[str, str, str, _Handler]] = [
            ("POST", r"/api/repos/create", "create", self._handle_create),
            ("DELETE", r"/api/repos/delete", "delete", self._handle_delete),
            ("GET", r"/api/whoami-v2", "whoami", self._handle_whoami),
            ("POST", r"/api/validate-yaml", "validate_yaml", self._handle_validate_yaml),
            ("GET", rf"/api/{types}/{repo}(?:/revision/(?P<rev>[^/]+))?", "info", self._handle_info),
            ("GET", rf"/api/{types}/{repo}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?", "tree", self._handle_tree),
            ("POST", rf"/api/{types}/{repo}/preupload/(?P<rev>[^/]+)", "preupload", self._handle_preupload),
            ("POST", rf"/api/{types}/{repo}/commit/(?P<rev>[^/]+)", "commit", self._handle_commit),
            ("POST", rf"/{prefix}{repo}\.git/info/lfs/objects/batch", "lfs_batch", self._handle_lfs_batch),
            ("POST", rf"/{prefix}{repo}\.git/info/lfs/objects/verify", "lfs_verify", self._handle_lfs_verify),
            ("GET HEAD", rf"/{prefix}{repo}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve", self._handle_resolve),
        ]
        storage: list[tuple[str, str, str, _Handler]] = [
            ("PUT", r"/_lfs/upload/(?P<ticket>[0-9a-f]+)", "lfs_upload", self._handle_lfs_upload),
            ("GET HEAD", r"/_lfs/download/(?P<ticket>[0-9a-f]+)", "cdn_download", self._handle_cdn_download),
        ]
        return {
            role: [(frozenset(m.split()), re.compile(p), kind, h) for m, p, kind, h in table]
            for role, table in (("api", api), ("storage", storage))
        }

    def _match(self, role: str, method: str, path: str) -> tuple[str, _Handler | None, dict[str, str]]:
        for methods, pattern, kind, handler in self._routes[role]:
            match = pattern.fullmatch(path)
            if match and method in methods:
                params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                return kind, handler, self._normalize_params(params)
        return "unknown", None, {}

    @staticmethod
    def _normalize_params(params: dict[str, str]) -> dict[str, str]:
        """Turn the regex groups into handler kwargs: ``repo_type``, ``repo_id``, ``rev``, ``path``, ..."""
        out: dict[str, str] = {}
        if "types" in params:
            out["repo_type"] = _REPO_TYPES_BY_PLURAL[params.pop("types")]
        elif "ns" in params:
            out["repo_type"] = _REPO_TYPES_BY_PLURAL[params.pop("prefix", "models")]
        if "ns" in params:
            out["repo_id"] = f"{params.pop('ns')}/{params.pop('name')}"
        out.update(params)
        return out

    # ---------------------------------------------------------------- route handlers

    def _handle_create(self, request: _Request) -> _Response:
        user = self._require_user(request)
        payload = request.json()
        if not isinstance(payload, dict):
            raise _HttpError(400, "Expected a JSON object")
        name = payload.get("name")
        namespace = payload.get("organization") or user
        repo_type = payload.get("type") or "model"
        if repo_type not in _URL_PREFIX:
            raise _HttpError(400, f"Invalid repo type: {repo_type}")
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or not _NAME_RE.fullmatch(namespace):
            raise _HttpError(400, f"Invalid repo name: {namespace}/{name}")
        if repo_type == "space" and not payload.get("sdk"):
            raise _HttpError(400, "Missing sdk for a space")
        if not self._can_write(user, namespace):  # the Hub checks the namespace before existence
            raise _HttpError(
                403, f'You don\'t have the rights to create a {repo_type} under the namespace "{namespace}"'
            )
        repo_id = f"{namespace}/{name}"
        url = self._repo_url(repo_type, repo_id)
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                raise _HttpError(409, f"You already created this {repo_type} repo", extra={"url": url})
            private = payload.get("visibility") == "private" or payload.get("private") is True
            repo = self._new_repo(repo_type, repo_id, private=private, sdk=payload.get("sdk"))
        return _Response.json(200, {"url": url, "name": repo_id, "id": repo.uid})

    def _handle_delete(self, request: _Request) -> _Response:
        user = self._require_user(request)
        payload = request.json()
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            raise _HttpError(400, "Expected a JSON object with a name")
        repo_id = f"{payload.get('organization') or user}/{payload['name']}"
        repo_type = payload.get("type") or "model"
        with self._lock:
            repo = self._readable_repo(user, repo_type, repo_id)
            if not self._can_write(user, repo.namespace):
                raise _HttpError(403, f"You don't have the rights to delete {repo_type} repo {repo_id}")
            del self._repos[(repo_type, repo_id)]
        return _Response.json(200, {})

    def _handle_whoami(self, request: _Request) -> _Response:
        user = self._require_user(request)
        orgs = [{"type": "org", "name": org, "roleInOrg": "write"} for org, m in self._orgs.items() if user in m]
        return _Response.json(
            200,
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user,
                "email": None,
                "emailVerified": False,
                "isPro": False,
                "orgs": orgs,
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            },
        )

    def _handle_validate_yaml(self, request: _Request) -> _Response:
        self._user(request)  # a bad token is still a 401
        payload = request.json()
        content = payload.get("content") if isinstance(payload, dict) else None
        if not isinstance(content, str):
            raise _HttpError(400, "Missing content", extra={"errors": [{"message": "Missing content"}]})
        lines = content.splitlines()
        if lines and lines[0].strip() == "---" and not any(line.strip() == "---" for line in lines[1:]):
            message = "Unterminated YAML metadata block"
            return _Response.json(400, {"error": message, "errors": [{"message": message}], "warnings": []})
        return _Response.json(200, {"errors": [], "warnings": []})

    def _handle_info(self, request: _Request, repo_type: str, repo_id: str, rev: str = "main") -> _Response:
        user = self._user(request)
        with self._lock:
            repo = self._readable_repo(user, repo_type, repo_id)
            commit = self._commit_at(repo, rev)
            blobs = request.flag("blobs")
            siblings = []
            for path, blob in sorted((commit.files if commit else {}).items()):
                sibling: dict[str, Any] = {"rfilename": path}
                if blobs:
                    sibling.update(size=len(blob.data), blobId=blob.git_oid)
                    if blob.lfs:
                        sibling["lfs"] = {
                            "size": len(blob.data),
                            "sha256": blob.sha256,
                            "pointerSize": blob.pointer_size,
                        }
                siblings.append(sibling)
            info: dict[str, Any] = {
                "_id": repo.uid,
                "id": repo_id,
                "author": repo.namespace,
                "sha": commit.oid if commit else None,
                "lastModified": commit.date if commit else repo.created_at,
                "createdAt": repo.created_at,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(len(b) for b in repo.lfs_objects.values()),
            }
            if repo_type == "model":
                info["modelId"] = repo_id
            if repo_type == "space":
                info["sdk"] = repo.sdk
        return _Response.json(200, info)

    def _handle_tree(
        self, request: _Request, repo_type: str, repo_id: str, rev: str, path: str | None = None
    ) -> _Response:
        user = self._user(request)
        recursive, expand = request.flag("recursive"), request.flag("expand")
        with self._lock:
            repo = self._readable_repo(user, repo_type, repo_id)
            commit = self._commit_at(repo, rev)
            files = commit.files if commit else {}
            base = (path or "").strip("/")
            prefix = f"{base}/" if base else ""
            if base and not any(p.startswith(prefix) for p in files):
                raise _HttpError(404, f"Entry not found: {base}", code="EntryNotFound")
            dirs: set[str] = set()
            entries: list[dict[str, Any]] = []
            for file_path, blob in files.items():
                if not file_path.startswith(prefix):
                    continue
                parts = file_path[len(prefix) :].split("/")
                for depth in range(1, len(parts)):
                    if recursive or depth == 1:
                        dirs.add(prefix + "/".join(parts[:depth]))
                if recursive or len(parts) == 1:
                    entry: dict[str, Any] = {
                        "type": "file",
                        "oid": blob.git_oid,
                        "size": len(blob.data),
                        "path": file_path,
                    }
                    if blob.lfs:
                        entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": blob.pointer_size}
                    if expand and commit is not None:
                        entry["lastCommit"] = self._last_commit_touching(repo, commit, file_path)
                    entries.append(entry)
            for dir_path in dirs:
                tree_oid = hashlib.sha1(f"tree\x00{commit.oid if commit else ''}\x00{dir_path}".encode()).hexdigest()
                entry = {"type": "directory", "oid": tree_oid, "size": 0, "path": dir_path}
                if expand and commit is not None:
                    entry["lastCommit"] = {"id": commit.oid, "title": commit.message, "date": commit.date}
                entries.append(entry)
        entries.sort(key=lambda e: e["path"])
        cursor = int(request.query.get("cursor") or 0)
        page = entries[cursor : cursor + _TREE_PAGE_SIZE]
        headers: dict[str, str] = {}
        if cursor + _TREE_PAGE_SIZE < len(entries):
            query = f"recursive={str(recursive).lower()}&expand={str(expand).lower()}&cursor={cursor + _TREE_PAGE_SIZE}"
            headers["Link"] = f'<{self.endpoint}{request.path}?{query}>; rel="next"'
        return _Response.json(200, page, headers=headers)

    @staticmethod
    def _last_commit_touching(repo: _Repo, commit: _Commit, path: str) -> dict[str, str]:
        history = repo.commits[: repo.commits.index(commit) + 1]
        last = history[0]
        previous: _Blob | None = None
        for c in history:
            blob = c.files.get(path)
            if blob is not None and (previous is None or blob.git_oid != previous.git_oid):
                last = c
            previous = blob
        return {"id": last.oid, "title": last.message, "date": last.date}

    def _handle_preupload(self, request: _Request, repo_type: str, repo_id: str, rev: str) -> _Response:
        payload = request.json()
        files = payload.get("files") if isinstance(payload, dict) else None
        if not isinstance(files, list):
            raise _HttpError(400, "Expected {'files': [...]}")
        with self._lock:
            _, repo = self._writable_repo(request, repo_type, repo_id)
            head = self._commit_at(repo, rev)
            answer = []
            for item in files:
                if (
                    not isinstance(item, dict)
                    or not isinstance(item.get("path"), str)
                    or not isinstance(item.get("size"), int)
                ):
                    raise _HttpError(400, f"Malformed preupload entry: {item!r}")
                existing = head.files.get(item["path"]) if head else None
                answer.append(
                    {
                        "path": item["path"],
                        "uploadMode": "lfs" if item["size"] >= self.lfs_threshold else "regular",
                        "shouldIgnore": False,
                        "oid": existing.oid_for_preupload if existing else None,
                    }
                )
        return _Response.json(200, {"files": answer, "commitOid": head.oid if head else None})

    def _handle_lfs_batch(self, request: _Request, repo_type: str, repo_id: str) -> _Response:
        payload = request.json()
        if not isinstance(payload, dict) or payload.get("operation") != "upload":
            raise _HttpError(400, "HubServer only implements the LFS 'upload' batch operation")
        transfers = payload.get("transfers") or ["basic"]
        if "basic" not in transfers:
            raise _HttpError(400, f"No supported transfer adapter in {transfers} (HubServer speaks 'basic')")
        objects = []
        with self._lock:
            _, repo = self._writable_repo(request, repo_type, repo_id)
            verify_href = f"{self.endpoint}/{_URL_PREFIX[repo_type]}{repo_id}.git/info/lfs/objects/verify"
            for obj in payload.get("objects") or []:
                oid, size = obj.get("oid"), obj.get("size")
                if not isinstance(oid, str) or not _SHA256_RE.fullmatch(oid) or not isinstance(size, int) or size < 0:
                    objects.append(
                        {
                            "oid": str(oid),
                            "size": size if isinstance(size, int) else 0,
                            "error": {"code": 422, "message": "Invalid object"},
                        }
                    )
                    continue
                stored = repo.lfs_objects.get(oid)
                if stored is not None and len(stored) == size:
                    objects.append({"oid": oid, "size": size})  # already uploaded: no actions
                    continue
                ticket = secrets.token_hex(16)
                self._upload_tickets[ticket] = (repo.uid, oid, size)
                objects.append(
                    {
                        "oid": oid,
                        "size": size,
                        "authenticated": True,
                        "actions": {
                            "upload": {"href": f"{self.storage_endpoint}/_lfs/upload/{ticket}"},
                            "verify": {"href": verify_href},
                        },
                    }
                )
        return _Response.json(
            200,
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            headers={"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _repo_by_uid(self, uid: str) -> _Repo:
        for repo in self._repos.values():
            if repo.uid == uid:
                return repo
        raise _HttpError(404, "NoSuchBucket: the repository was deleted")

    def _handle_lfs_upload(self, request: _Request, ticket: str) -> _Response:
        with self._lock:
            target = self._upload_tickets.get(ticket)
            if target is None:
                raise _HttpError(403, "AccessDenied: unknown or expired upload URL")
            uid, oid, size = target
            repo = self._repo_by_uid(uid)
        if len(request.body) != size or hashlib.sha256(request.body).hexdigest() != oid:
            raise _HttpError(400, f"BadDigest: uploaded content does not match oid {oid} / size {size}")
        with self._lock:
            repo.lfs_objects[oid] = request.body
        return _Response(200, b"", {"ETag": f'"{hashlib.md5(request.body).hexdigest()}"'})

    def _handle_lfs_verify(self, request: _Request, repo_type: str, repo_id: str) -> _Response:
        payload = request.json()
        if not isinstance(payload, dict):
            raise _HttpError(400, "Expected {'oid': ..., 'size': ...}")
        with self._lock:
            _, repo = self._writable_repo(request, repo_type, repo_id)
            stored = repo.lfs_objects.get(str(payload.get("oid")))
        if stored is None or len(stored) != payload.get("size"):
            raise _HttpError(404, f"LFS object {payload.get('oid')} was not uploaded (or has another size)")
        return _Response.json(200, {"success": True})

    def _handle_commit(self, request: _Request, repo_type: str, repo_id: str, rev: str) -> _Response:
        if request.flag("create_pr"):
            raise _HttpError(400, "HubServer does not implement pull requests (create_pr)")
        try:
            lines = [json.loads(line) for line in request.body.decode().splitlines() if line.strip()]
        except (UnicodeDecodeError, ValueError) as err:
            raise _HttpError(400, f"Invalid ndjson commit payload: {err}") from err
        if not lines or not isinstance(lines[0], dict) or lines[0].get("key") != "header":
            raise _HttpError(400, "The first ndjson line of a commit must be the header")
        header = lines[0].get("value") or {}
        summary = header.get("summary")
        if not isinstance(summary, str) or not summary:
            raise _HttpError(400, "Missing commit summary")

        with self._lock:  # validate everything, then append one snapshot: all-or-nothing
            user, repo = self._writable_repo(request, repo_type, repo_id)
            if rev != "main":
                raise _HttpError(404, f"Invalid rev id: {rev} (HubServer only has 'main')", code="RevisionNotFound")
            head = repo.head
            parent = header.get("parentCommit")
            if parent is not None and parent != (head.oid if head else None):
                raise _HttpError(412, "A commit has happened since. Please refresh and try again.")
            snapshot = dict(head.files) if head else {}
            for line in lines[1:]:
                self._apply_operation(repo, snapshot, line)
            commit = self._append_commit(repo, snapshot, summary, str(header.get("description") or ""), user)
        return _Response.json(
            200,
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{self._repo_url(repo_type, repo_id)}/commit/{commit.oid}",
                "hookOutput": "",
                "pullRequestUrl": None,
            },
        )

    @staticmethod
    def _apply_operation(repo: _Repo, snapshot: dict[str, _Blob], line: Any) -> None:
        if not isinstance(line, dict) or not isinstance(line.get("value"), dict):
            raise _HttpError(400, f"Malformed commit operation: {line!r}")
        key, value = line.get("key"), line["value"]
        path = _validate_path(value.get("path"), folder=key == "deletedFolder")
        if key == "file":
            content = value.get("content")
            if not isinstance(content, str):
                raise _HttpError(400, f"Missing content for {path}")
            encoding = value.get("encoding", "utf-8")
            try:
                data = base64.b64decode(content, validate=True) if encoding == "base64" else content.encode()
            except ValueError as err:
                raise _HttpError(400, f"Invalid base64 content for {path}") from err
            snapshot[path] = _Blob.make(data, lfs=False)
        elif key == "lfsFile":
            oid = value.get("oid")
            if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str):
                raise _HttpError(400, f"Invalid LFS pointer for {path}")
            stored = repo.lfs_objects.get(oid)
            if stored is None or ("size" in value and value["size"] != len(stored)):
                raise _HttpError(
                    400,
                    "Your push was rejected because an LFS pointer pointed to a file that does not exist: "
                    f"{path} ({oid})",
                )
            snapshot[path] = _Blob.make(stored, lfs=True)
        elif key == "deletedFile":
            if snapshot.pop(path, None) is None:
                raise _HttpError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
        elif key == "deletedFolder":
            folder = path + "/"
            doomed = [p for p in snapshot if p.startswith(folder)]
            if not doomed:
                raise _HttpError(404, f"A folder with this name doesn't exist: {path}", code="EntryNotFound")
            for p in doomed:
                del snapshot[p]
        else:
            raise _HttpError(400, f"HubServer does not implement commit operation {key!r}")

    def _handle_resolve(self, request: _Request, repo_type: str, repo_id: str, rev: str, path: str) -> _Response:
        user = self._user(request)
        with self._lock:
            repo = self._readable_repo(user, repo_type, repo_id)
            commit = self._commit_at(repo, rev)
            blob = commit.files.get(path) if commit else None
            if commit is None or blob is None:
                headers = {"X-Repo-Commit": commit.oid} if commit else {}
                raise _HttpError(404, f"Entry not found: {path}", code="EntryNotFound", headers=headers)
            common = {"X-Repo-Commit": commit.oid, "ETag": f'"{blob.git_oid}"', "Accept-Ranges": "bytes"}
            if blob.lfs:  # like the Hub: redirect to the CDN (another origin), metadata on the redirect itself
                key = (repo.uid, blob.sha256)
                ticket = self._download_tickets.setdefault(key, secrets.token_hex(16))
                return _Response(
                    302,
                    b"",
                    {
                        **common,
                        "Location": f"{self.storage_endpoint}/_lfs/download/{ticket}",
                        "X-Linked-Etag": f'"{blob.sha256}"',
                        "X-Linked-Size": str(len(blob.data)),
                    },
                )
        return _ranged(request, blob.data, {**common, "Content-Type": "application/octet-stream"})

    def _handle_cdn_download(self, request: _Request, ticket: str) -> _Response:
        with self._lock:
            for (uid, sha), known in self._download_tickets.items():
                if known == ticket:
                    data = self._repo_by_uid(uid).lfs_objects.get(sha)
                    break
            else:
                data = None
        if data is None:
            raise _HttpError(403, "AccessDenied: unknown or expired download URL")
        return _ranged(
            request,
            data,
            {
                "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
            },
        )


def _ranged(request: _Request, data: bytes, headers: dict[str, str]) -> _Response:
    """A 200 with `data`, or a 206 if the GET carries a satisfiable ``Range: bytes=a-b`` header."""
    spec = request.headers.get("Range")
    if request.method != "GET" or not spec:
        return _Response(200, data, headers)
    match = _RANGE_RE.fullmatch(spec.strip())
    if match is None:
        return _Response(200, data, headers)  # unsupported form (e.g. multi-range): serve everything
    first, last = match.groups()
    size = len(data)
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    elif last:
        start, end = max(size - int(last), 0), size - 1
    else:
        return _Response(200, data, headers)
    if start >= size or start > end:
        raise _HttpError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return _Response(206, data[start : end + 1], {**headers, "Content-Range": f"bytes {start}-{end}/{size}"})


def _validate_path(path: Any, *, folder: bool = False) -> str:
    """Reject paths git/the Hub would refuse (absolute, ``..``, empty segments, ``.git/``)."""
    if not isinstance(path, str):
        raise _HttpError(400, f"Invalid path in repo: {path!r}")
    normalized = path[:-1] if folder and path.endswith("/") else path
    parts = normalized.split("/")
    if not normalized or any(p in ("", ".", "..") for p in parts) or parts[0] == ".git":
        raise _HttpError(400, f"Invalid path in repo: {path!r}")
    return normalized
