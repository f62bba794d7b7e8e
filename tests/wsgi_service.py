"""A real WSGI service (the standard library's wsgiref) for transparency tests.

wsgiref is strict in the ways real services are: it reads a body by
``CONTENT_LENGTH`` only (a chunked body arrives empty), writes header values
as Latin-1 bytes, and adds nothing of its own but ``Date``, ``Server`` and,
where the app sets none, nothing at all. It runs in a thread on a free
loopback port, one thread per request.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from shell.local_redis import free_port

StartResponse = Callable[..., Any]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


HEAD_BODY = b"h" * 1000


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    method = environ["REQUEST_METHOD"]
    if path.endswith("/plain"):
        start_response("200 OK", [("X-Kind", "plain")])  # no Content-Type
        return [b"plain words"]
    if path.endswith("/latin"):
        disposition = 'attachment; filename="caf\xe9.pdf"'  # sent as Latin-1 bytes
        start_response("200 OK", [("Content-Type", "application/pdf"),
                                  ("Content-Disposition", disposition)])  # fmt: skip
        return [b"%PDF-1.4"]
    if path.endswith("/head"):
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HEAD_BODY)))]
        )
        return [] if method == "HEAD" else [HEAD_BODY]
    if path.endswith("/redirect"):
        target = f"http://{environ.get('HTTP_HOST', '')}{path.rsplit('/', 1)[0]}/echo"
        start_response("302 Found", [("Location", target), ("Content-Length", "0")])
        return []
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    seen = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            seen[key.replace("_", "-").lower()] = environ[key]
    answer = {
        "method": method,
        "path": path,
        "query": environ.get("QUERY_STRING", ""),
        "headers": seen,
        "body_bytes": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    out = json.dumps(answer, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])  # fmt: skip
    return [out]


class WsgiService:
    def __init__(self) -> None:
        self.port = free_port()
        self._server = make_server(
            "127.0.0.1", self.port, app, server_class=_Threading, handler_class=_Quiet
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> WsgiService:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def running() -> Iterator[WsgiService]:
    with WsgiService() as service:
        yield service
