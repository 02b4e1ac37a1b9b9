"""A local HTTP stub for end-to-end tests that counts requests per (path, Idempotency-Key).

The stub runs a ``ThreadingHTTPServer`` on 127.0.0.1 in a background thread (one thread per
connection, HTTP/1.1 keep-alive). Every request is answered ``200`` with the JSON
``{"endpoint": path, "idempotencyKey": key, "received": <the JSON body or null>}`` after a
random delay, so that calls are in flight at any moment a test chooses to kill the caller.
``GET /size/<n>`` answers instead a JSON string of exactly ``n`` bytes (``"xxx..."``) with its
``Content-Length``; ``/size/<n>?stream`` sends the same without a length (it ends when the
connection closes), for clients that must count what arrives.
A request is counted when it arrives (what a real service would have acted on), even if its
caller is gone before the answer. The counters are guarded by a lock; read them through
``calls()``, ``total()`` and ``wait_for_total()``.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

__all__ = ["HttpStub", "run_http_stub"]


@attrs.define(eq=False)
class HttpStub:
    """Counts the requests it received; ``url`` is its ``http://127.0.0.1:port`` root."""

    url: str
    delay: tuple[float, float]
    _calls: Counter[tuple[str, str | None]] = attrs.field(factory=Counter, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _changed: threading.Condition = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)

    def record(self, path: str, key: str | None) -> None:
        """Count one received request (called by the request handler)."""
        with self._changed:
            self._calls[(path, key)] += 1
            self._changed.notify_all()

    def calls(self) -> dict[tuple[str, str | None], int]:
        """A copy of the counters: (path, Idempotency-Key or None) -> requests received."""
        with self._lock:
            return dict(self._calls)

    def total(self) -> int:
        """How many requests were received so far."""
        with self._lock:
            return sum(self._calls.values())

    def wait_for_total(self, count: int, timeout: float) -> int:
        """Block until at least ``count`` requests were received or ``timeout`` passed;
        returns the total seen."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (seen := sum(self._calls.values())) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return seen


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # hundreds of instances connect at once
    stub: HttpStub

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
        # else: the caller was killed mid-request, which is what the stub is for


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the caller's connection pool reuses sockets
    server: _Server

    def _answer(self) -> None:
        stub = self.server.stub
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        key = self.headers.get("Idempotency-Key")
        # Counted on arrival: a request whose caller dies before the answer still happened,
        # which is what a real service sees.
        stub.record(self.path, key)
        try:
            received: Any = json.loads(raw) if raw else None
        except ValueError:
            received = raw.decode(errors="replace")
        if self.path.startswith("/size/"):
            self._sized(self.path.removeprefix("/size/"))
            return
        time.sleep(random.uniform(*stub.delay))
        body = json.dumps(
            {"endpoint": self.path, "idempotencyKey": key, "received": received}
        ).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the caller went away (killed) while we slept

    def _sized(self, spec: str) -> None:
        size, _, query = spec.partition("?")
        length = max(int(size), 2)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if query == "stream":
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(b'"')
            left = length - 2
            while left > 0:
                piece = min(left, 65536)
                self.wfile.write(b"x" * piece)
                left -= piece
            self.wfile.write(b'"')
        except OSError:
            self.close_connection = True  # the client stopped reading: what a cap does

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # thousands of requests per test; the counters are the record


@contextmanager
def run_http_stub(delay: tuple[float, float] = (0.005, 0.03)) -> Iterator[HttpStub]:
    """Serve the stub on a free 127.0.0.1 port (in a thread) until the block exits.

    ``delay`` bounds the random pause, in seconds, before each answer.
    """
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stub = HttpStub(url=f"http://127.0.0.1:{server.server_address[1]}", delay=delay)
    thread = threading.Thread(target=server.serve_forever, name="http-stub", daemon=True)
    thread.start()
    try:
        yield server.stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
