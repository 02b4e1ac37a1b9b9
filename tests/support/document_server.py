"""A local HTTP server of fixed documents (and an echo route) for the isolation suite.

Paths map to a ``Document`` (status, content type, body bytes prepared once, so an
11 MiB answer costs the test nothing per request). ``POST``/``GET /echo`` answers
``{"received": <the JSON body or null>}``. The server runs a ``ThreadingHTTPServer`` on
127.0.0.1 in a background thread until the ``serve_documents`` block exits.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

__all__ = ["Document", "DocumentServer", "serve_documents"]


@attrs.frozen
class Document:
    """One fixed answer: ``body`` with ``content_type`` and ``status``."""

    body: bytes
    content_type: str = "application/json"
    status: int = 200


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    documents: dict[str, Document]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
        # else: the caller stopped reading (a size cap did its job)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if path == "/echo":
            try:
                received: Any = json.loads(raw) if raw else None
            except ValueError:
                received = raw.decode(errors="replace")
            document = Document(json.dumps({"received": received}).encode())
        else:
            document = self.server.documents.get(
                path, Document(b'{"error": "no such document"}', status=404)
            )
        try:
            self.send_response(document.status)
            self.send_header("Content-Type", document.content_type)
            self.send_header("Content-Length", str(len(document.body)))
            self.end_headers()
            self.wfile.write(document.body)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@attrs.define(eq=False)
class DocumentServer:
    """The running server: ``url`` is its ``http://127.0.0.1:port`` root; ``documents`` may be
    filled once the URL is known (documents that name the server itself)."""

    url: str
    documents: dict[str, Document]


@contextmanager
def serve_documents() -> Iterator[DocumentServer]:
    """Serve the documents put in the yielded server's ``documents`` (and ``/echo``) on a free
    port until the block exits."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.documents = {}
    thread = threading.Thread(target=server.serve_forever, name="document-server", daemon=True)
    thread.start()
    try:
        yield DocumentServer(f"http://127.0.0.1:{server.server_address[1]}", server.documents)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
