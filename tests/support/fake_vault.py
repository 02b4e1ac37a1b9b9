"""A local stand-in for HashiCorp Vault (no Vault server can be installed here).

It listens on a real socket and speaks the part of Vault's HTTP API the ``vault`` secrets
provider uses, with its own token checks: KV version 2 reads (``GET /v1/<mount>/data/<path>``),
``auth/token/lookup-self`` and ``renew-self``, AppRole login (``auth/<mount>/login`` with
``role_id``/``secret_id``) and Kubernetes login (``role``/``jwt``). Tokens expire by the
``clock`` the test shares with the provider, so renewal and cache expiry are tested without
sleeping. Every request is recorded in ``calls`` (``"GET /v1/secret/data/app"``).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.define(eq=False)
class ManualClock:
    """Monotonic seconds that move only when the test says so."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@attrs.define(eq=False)
class FakeToken:
    expires_at: float | None  # None: never (a root token)
    ttl: float
    renewable: bool


@attrs.define(eq=False)
class FakeVault:
    """The fake's data: KV secrets by ``mount/path``, tokens, AppRoles, Kubernetes roles."""

    clock: Callable[[], float] = time.monotonic
    kv: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    tokens: dict[str, FakeToken] = attrs.field(factory=dict)
    approles: dict[str, str] = attrs.field(factory=dict)  # role_id -> secret_id
    kubernetes_roles: dict[str, str] = attrs.field(factory=dict)  # role -> accepted jwt
    login_ttl: float = 60.0
    renewals_refused: bool = False
    calls: list[str] = attrs.field(factory=list)
    url: str = ""
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def add_token(self, token: str, *, ttl: float = 0.0, renewable: bool = False) -> None:
        expires = self.clock() + ttl if ttl > 0 else None
        self.tokens[token] = FakeToken(expires_at=expires, ttl=ttl, renewable=renewable)

    def count(self, call: str) -> int:
        return sum(1 for made in self.calls if made == call)

    def _valid(self, token: str | None) -> FakeToken | None:
        found = self.tokens.get(token or "")
        if found is None or (found.expires_at is not None and self.clock() >= found.expires_at):
            return None
        return found

    def _login(self) -> dict[str, Any]:
        token = "s." + secrets.token_hex(8)
        self.add_token(token, ttl=self.login_ttl, renewable=True)
        return {
            "auth": {
                "client_token": token,
                "lease_duration": int(self.login_ttl),
                "renewable": True,
                "policies": ["default"],
            }
        }

    def answer(
        self, method: str, path: str, token: str | None, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of one request (the server's only logic)."""
        with self._lock:
            self.calls.append(f"{method} {path}")
            denied = (403, {"errors": ["permission denied"]})
            if method == "POST" and path.endswith("/login"):
                mount = path.removeprefix("/v1/auth/").removesuffix("/login")
                if mount == "approle":
                    known = self.approles.get(str(body.get("role_id")))
                    if known is None or known != body.get("secret_id"):
                        return 400, {"errors": ["invalid role or secret ID"]}
                    return 200, self._login()
                if mount == "kubernetes":
                    jwt = self.kubernetes_roles.get(str(body.get("role")))
                    if jwt is None or jwt != body.get("jwt"):
                        return 403, {"errors": ["permission denied"]}
                    return 200, self._login()
                return 404, {"errors": [f"no handler for route 'auth/{mount}'"]}
            current = self._valid(token)
            if current is None:
                return denied
            if path == "/v1/auth/token/lookup-self" and method == "GET":
                remaining = (
                    0 if current.expires_at is None else int(current.expires_at - self.clock())
                )
                return 200, {"data": {"ttl": remaining, "renewable": current.renewable}}
            if path == "/v1/auth/token/renew-self" and method == "POST":
                if self.renewals_refused or not current.renewable:
                    return 400, {"errors": ["lease is not renewable"]}
                current.expires_at = self.clock() + current.ttl
                return 200, {
                    "auth": {
                        "client_token": token,
                        "lease_duration": int(current.ttl),
                        "renewable": True,
                    }
                }
            if method == "GET" and "/data/" in path:
                mount, _, secret_path = path.removeprefix("/v1/").partition("/data/")
                data = self.kv.get(f"{mount}/{secret_path}")
                if data is None:
                    return 404, {"errors": []}
                return 200, {
                    "data": {
                        "data": dict(data),
                        "metadata": {
                            "created_time": "2026-01-01T00:00:00Z",
                            "deletion_time": "",
                            "destroyed": False,
                            "version": 1,
                        },
                    }
                }
            return 404, {"errors": [f"no handler for {method} {path}"]}


def _handler(vault: FakeVault) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            status, answer = vault.answer(
                method, self.path.split("?", 1)[0], self.headers.get("X-Vault-Token"), body
            )
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@contextmanager
def serve_fake_vault(vault: FakeVault) -> Iterator[FakeVault]:
    """Serve ``vault`` on a free port of 127.0.0.1 (``vault.url``) until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(vault))
    server.daemon_threads = True
    vault.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-vault", daemon=True)
    thread.start()
    try:
        yield vault
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
