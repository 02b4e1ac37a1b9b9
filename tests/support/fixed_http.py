"""A local HTTP server answering each path with a fixed raw body (for bodies that no JSON
library writes: NaN, NUL characters), in a background thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["serve_fixed_bodies"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    bodies: Mapping[str, bytes]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        body = self.server.bodies.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_fixed_bodies(bodies: Mapping[str, bytes]) -> Iterator[str]:
    """Serve ``bodies`` (path -> raw JSON body) on a free 127.0.0.1 port until the block
    exits; yields the ``http://127.0.0.1:port`` root."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.bodies = bodies
    thread = threading.Thread(target=server.serve_forever, name="fixed-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
