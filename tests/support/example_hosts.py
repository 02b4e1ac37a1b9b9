"""Local stand-ins for every host the official DSL examples call, on real sockets.

`open_example_hosts` serves each host on its own port of 127.0.0.1 (a ``ThreadingHTTPServer``
per host, in threads) and yields `ExampleHosts`, whose ``host_map`` sends ``https://swapi.dev``
and the others there (the service's ``host_map``, as the CTK's hosts are mapped). What a host
answers is decided by plain functions of the request (`answer`); what each host received is
recorded in arrival order (`ExampleHosts.received`).

The hosts, as the examples use them:

- ``petstore.swagger.io``: the CTK stub's petstore (`tests.conformance.stub`) with its Swagger
  document, plus pet 69 and ``PUT /v2/pet/{id}`` (answers the pet as sent, with its id). Calls
  without ``Authorization`` are served (as the real petstore does); a call that presents one
  must carry ``Bearer <token>`` of a token this module knows (`STATIC_TOKEN`, or one a token
  endpoint issued), else ``401``.
- ``swapi.dev``: people (search and by id) and planets, shaped as swapi's answers.
- ``keycloak``: realm ``fake-authority`` with a token endpoint at ``/auth/token`` (the oauth2
  example's ``endpoints.token`` under the authority), and the OpenID Connect discovery document
  naming ``/protocol/openid-connect/token`` (Keycloak's own path).
- ``myorg.io``: an OAuth2/OIDC authority at the root (``/oauth2/token``, discovery document) and
  ``/ordersservices.json``, an OpenAPI 3 document with ``logreading`` and ``produceReport``.
- The token endpoints accept ``client_credentials`` and ``password`` grants from `CLIENTS` (in the
  form, or as HTTP Basic) and `USERS`, form- or JSON-encoded; anything else is ``400``/``401``
  with the OAuth2 error code.
- ``fake-hospital.com``, ``hospital.example.com``, ``superbet-casinos.com``,
  ``virtual-wf-powered-race.com``, ``fake-chat-api.com``, ``example.com``: the one operation each
  example calls, answering what it was asked.
- ``fake.com``: ``GET /sample`` (mock-service-extension's call, which its extension does not
  mock).
- ``petstore.com``, ``serverlessworkflow.io``, ``my.home.com``, ``mocked.service.com``: named by
  the examples (event sources, error types, the mocked host) but never called; they answer
  ``404`` naming the path.

Tests change three things while they run: `ExampleHosts.moved` answers ``301`` from a path prefix
to another (a relative ``Location``, so a followed redirect stays on the stand-in),
`ExampleHosts.failing` answers the next requests of a path ``503`` (an outage to retry past), and
`ExampleHosts.held` keeps the answers to one path back until the block exits (the losing branch
of a ``compete`` fork).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from tests.conformance.stub import stub_response
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse

__all__ = [
    "CLIENTS",
    "HOSTS",
    "PEOPLE",
    "PET_69",
    "PLANETS",
    "STATIC_TOKEN",
    "USERS",
    "ExampleHosts",
    "Received",
    "open_example_hosts",
]

#: Every host the examples name, with the scheme they name it with.
HOSTS = {
    "petstore.swagger.io": "https",
    "swapi.dev": "https",
    "keycloak": "http",
    "myorg.io": "http",
    "fake-hospital.com": "https",
    "hospital.example.com": "https",
    "superbet-casinos.com": "https",
    "virtual-wf-powered-race.com": "https",
    "fake-chat-api.com": "https",
    "example.com": "https",
    "petstore.com": "https",
    "serverlessworkflow.io": "https",
    "my.home.com": "https",
    "fake.com": "https",
    "mocked.service.com": "https",
}
#: A bearer token the petstore accepts without a token endpoint (the bearer examples' input).
STATIC_TOKEN = "petstore-static-token"
#: OAuth2 clients (id -> secret) and resource owners (username -> password) of both authorities.
CLIENTS = {"workflow-runtime-id": "workflow-runtime-secret", "orders-app": "orders-app-secret"}
USERS = {"ada": "lovelace-1815"}

PET_69 = {"id": 69, "name": "Rex", "status": "pending", "category": {"id": 1, "name": "dogs"}}
PEOPLE = {
    1: {"name": "Luke Skywalker", "height": "172", "homeworld": "https://swapi.dev/api/planets/1/"},
    4: {"name": "Darth Vader", "height": "202", "homeworld": "https://swapi.dev/api/planets/1/"},
    5: {"name": "Leia Organa", "height": "150", "homeworld": "https://swapi.dev/api/planets/2/"},
}
PLANETS = {
    1: {"name": "Tatooine", "climate": "arid", "terrain": "desert"},
    2: {"name": "Alderaan", "climate": "temperate", "terrain": "grasslands, mountains"},
}
ORDERS_OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Orders services (stand-in)", "version": "1.0.0"},
    "servers": [{"url": "http://myorg.io/orders"}],
    "paths": {
        "/readings": {"post": {"operationId": "logreading", "responses": {"200": {}}}},
        "/reports": {"post": {"operationId": "produceReport", "responses": {"200": {}}}},
    },
}
_REALM = "/realms/fake-authority"
_HOLD_LIMIT = 30.0  # seconds a held answer waits at most (a test that forgot to release)
_WAIT_LIMIT = 20.0  # seconds wait_received waits at most


@attrs.frozen(kw_only=True)
class Received:
    """One request a stand-in received: the JSON body parsed, a form body as a dict."""

    host: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


def _json(status: int, content: Any, **headers: str) -> HttpResponse:
    return HttpResponse(
        status=status,
        headers={"content-type": "application/json", **headers},
        body=json.dumps(content).encode(),
    )


def _not_found(received: Received) -> HttpResponse:
    return _json(404, {"error": f"no route {received.method} {received.path} on {received.host}"})


def _person(number: int) -> dict[str, Any]:
    return {**PEOPLE[number], "url": f"https://swapi.dev/api/people/{number}/"}


def _swapi(received: Received) -> HttpResponse:
    path = received.path
    if path == "/api/people/":
        term = received.query.get("search", [""])[0].lower()
        found = [_person(n) for n in sorted(PEOPLE) if term in PEOPLE[n]["name"].lower()]
        return _json(200, {"count": len(found), "next": None, "previous": None, "results": found})
    match = re.fullmatch(r"/api/(people|planets)/(\d+)/?", path)
    if match is not None:
        table = PEOPLE if match.group(1) == "people" else PLANETS
        number = int(match.group(2))
        if number in table:
            return _json(200, _person(number) if table is PEOPLE else PLANETS[number])
        return _json(404, {"detail": "Not found"})
    return _not_found(received)


def _petstore(received: Received, tokens: set[str]) -> HttpResponse:
    authorization = received.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or token not in tokens:
            return _json(401, {"code": 401, "message": "invalid bearer token"})
    match = re.fullmatch(r"/v2/pet/(\d+)", received.path)
    if match is not None and received.method == "PUT":
        return _json(200, {**(received.body or {}), "id": int(match.group(1))})
    if received.path == "/v2/pet/69" and received.method == "GET":
        return _json(200, PET_69)
    query = "&".join(f"{k}={v}" for k, values in received.query.items() for v in values)
    url = f"http://stub{received.path}" + (f"?{query}" if query else "")
    return stub_response(HttpRequest(method=received.method, url=url, headers=received.headers))


def _client(received: Received, form: dict[str, str]) -> str | None:
    """The authenticated client id (client_secret_basic or client_secret_post), or None."""
    basic = received.headers.get("authorization", "")
    if basic.startswith("Basic "):
        try:
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        except ValueError:
            return None
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    return client_id if CLIENTS.get(client_id) == secret and secret else None


def _token(received: Received, issued: Callable[[str], str]) -> HttpResponse:
    body = received.body
    form = {k: str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    grant = form.get("grant_type")
    if grant not in ("client_credentials", "password"):
        return _json(400, {"error": "unsupported_grant_type", "grant_type": grant})
    client = _client(received, form)
    if client is None:
        return _json(401, {"error": "invalid_client"})
    if grant == "password" and USERS.get(form.get("username", "")) != form.get("password"):
        return _json(400, {"error": "invalid_grant"})
    token = issued(f"{received.host}:{client}:{grant}")
    return _json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300})


def _discovery(issuer: str, token_path: str) -> HttpResponse:
    return _json(
        200,
        {
            "issuer": issuer,
            "token_endpoint": issuer + token_path,
            "grant_types_supported": ["client_credentials", "password"],
        },
    )


def _identity(received: Received, issued: Callable[[str], str]) -> HttpResponse | None:
    """The answers of the two authorities, or None for another path."""
    if received.host == "keycloak":
        if received.path == f"{_REALM}/auth/token" and received.method == "POST":
            return _token(received, issued)
        if received.path == f"{_REALM}/protocol/openid-connect/token" and received.method == "POST":
            return _token(received, issued)
        if received.path == f"{_REALM}/.well-known/openid-configuration":
            return _discovery(f"http://keycloak{_REALM}", "/protocol/openid-connect/token")
    if received.host == "myorg.io":
        if received.path == "/oauth2/token" and received.method == "POST":
            return _token(received, issued)
        if received.path == "/.well-known/openid-configuration":
            return _discovery("http://myorg.io", "/oauth2/token")
    return None


def _business(received: Received) -> HttpResponse:
    """The one operation each of the other hosts offers."""
    host, path, body = received.host, received.path, received.body
    if host == "myorg.io" and path == "/ordersservices.json":
        return _json(200, ORDERS_OPENAPI)
    if host == "myorg.io" and path in ("/orders/readings", "/orders/reports"):
        return _json(200, {"operation": path.rsplit("/", 1)[1], "received": body})
    match = re.fullmatch(r"/api/v3/alert/(nurses|doctor)", path)
    if host == "fake-hospital.com" and match and received.method == "PUT":
        return _json(200, {"alerted": match.group(1), **(body or {})})
    if host == "hospital.example.com" and path == "/api/v1/notify":
        return _json(200, {"notified": "nurse on duty", "patientId": (body or {}).get("patientId")})
    if host == "superbet-casinos.com" and path == "/api/bet/on/football":
        return _json(201, {"betId": "bet-1", "placed": body})
    match = re.fullmatch(r"/api/v4/cars/([^/]+)/start", path)
    if host == "virtual-wf-powered-race.com" and match:
        return _json(200, {"carId": match.group(1), "started": True})
    match = re.fullmatch(r"/room/([^/]+)", path)
    if host == "fake-chat-api.com" and match and received.method == "POST":
        return _json(200, {"room": match.group(1), "posted": body})
    if host == "fake.com" and path == "/sample" and received.method == "GET":
        return _json(200, {"sample": "from fake.com"})
    if host == "example.com" and path == "/api/v1/backup/start" and received.method == "POST":
        return _json(202, {"backup": "started"})
    return _not_found(received)


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if "x-www-form-urlencoded" in content_type:
        return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


@attrs.define(eq=False)
class ExampleHosts:
    """The running stand-ins: ``host_map`` for the service, and what each host received."""

    host_map: dict[str, str] = attrs.field(factory=dict)
    _received: list[Received] = attrs.field(factory=list, init=False)
    _tokens: dict[str, str] = attrs.field(factory=dict, init=False)  # token -> who got it
    _moved: dict[tuple[str, str], str] = attrs.field(factory=dict, init=False)
    _held: dict[tuple[str, str], threading.Event] = attrs.field(factory=dict, init=False)
    _failing: dict[tuple[str, str], list[int]] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _arrived: threading.Condition = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._arrived = threading.Condition(self._lock)

    # -- what tests read -------------------------------------------------------------------

    def received(self, host: str | None = None) -> list[Received]:
        """The requests received (by ``host``, when given), in arrival order."""
        with self._lock:
            return [r for r in self._received if host is None or r.host == host]

    def issued(self) -> dict[str, str]:
        """The tokens the token endpoints issued: token -> ``host:client:grant``."""
        with self._lock:
            return dict(self._tokens)

    def wait_received(self, host: str, count: int) -> list[Received]:
        """Block (at most 20 s) until ``host`` received ``count`` requests; returns what it
        received."""
        with self._arrived:
            self._arrived.wait_for(
                lambda: sum(r.host == host for r in self._received) >= count, _WAIT_LIMIT
            )
        return self.received(host)

    def forget(self) -> None:
        """Drop the record of received requests and issued tokens (between tests)."""
        with self._lock:
            self._received.clear()
            self._tokens.clear()

    # -- what tests change -----------------------------------------------------------------

    @contextmanager
    def moved(self, host: str, prefix: str, to: str) -> Iterator[None]:
        """Within the block, the resources of ``host`` under ``prefix`` live under ``to``: the
        old paths answer ``301`` to the new ones (same rest of the path, same query), which
        answer what the old ones did."""
        with self._lock:
            self._moved[(host, prefix)] = to
        try:
            yield
        finally:
            with self._lock:
                del self._moved[(host, prefix)]

    @contextmanager
    def failing(self, host: str, path: str, times: int, status: int = 503) -> Iterator[None]:
        """Within the block, the next ``times`` requests to ``host`` ``path`` are answered
        ``status`` (an outage the caller may retry past)."""
        with self._lock:
            self._failing[(host, path)] = [times, status]
        try:
            yield
        finally:
            with self._lock:
                del self._failing[(host, path)]

    @contextmanager
    def held(self, host: str, path: str) -> Iterator[None]:
        """Within the block, answers to ``host`` ``path`` wait (at most 30 s) until it exits."""
        release = threading.Event()
        with self._lock:
            self._held[(host, path)] = release
        try:
            yield
        finally:
            release.set()
            with self._lock:
                del self._held[(host, path)]

    # -- what the servers call -------------------------------------------------------------

    def _issue(self, holder: str) -> str:
        token = "tok-" + secrets.token_hex(8)
        with self._lock:
            self._tokens[token] = holder
        return token

    def answer(self, received: Received) -> HttpResponse:
        """Record ``received`` and answer it (after a hold, if one applies)."""
        with self._arrived:
            self._received.append(received)
            self._arrived.notify_all()
            release = self._held.get((received.host, received.path))
            moved = [
                (prefix, to)
                for (host, prefix), to in self._moved.items()
                if host == received.host and received.path.startswith(prefix)
            ]
            tokens = {STATIC_TOKEN, *self._tokens}
            outage = self._failing.get((received.host, received.path))
            failed = outage is not None and outage[0] > 0
            if outage is not None and failed:
                outage[0] -= 1
            # What a moved path serves now: the answers the old path used to give.
            now_at = [
                (to, prefix)
                for (host, prefix), to in self._moved.items()
                if host == received.host and received.path.startswith(to)
            ]
        if release is not None:
            release.wait(_HOLD_LIMIT)
        if outage is not None and failed:
            return _json(outage[1], {"error": f"{received.host} is unavailable (stand-in)"})
        if moved:
            prefix, to = moved[0]
            query = "&".join(f"{k}={v}" for k, vs in received.query.items() for v in vs)
            location = to + received.path[len(prefix) :] + (f"?{query}" if query else "")
            return _json(301, {"movedTo": location}, location=location)
        if now_at:
            to, prefix = now_at[0]
            received = attrs.evolve(received, path=prefix + received.path[len(to) :])
        if received.host == "swapi.dev":
            return _swapi(received)
        if received.host == "petstore.swagger.io":
            return _petstore(received, tokens)
        identity = _identity(received, self._issue)
        return identity if identity is not None else _business(received)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    host_name: str
    hosts: ExampleHosts

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
        # else: the caller went away (a cancelled compete branch): nothing to answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        received = Received(
            host=self.server.host_name,
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers=headers,
            body=_decode(raw, headers.get("content-type", "")),
        )
        response = self.server.hosts.answer(received)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """The record of received requests is the log."""


@contextmanager
def open_example_hosts() -> Iterator[ExampleHosts]:
    """Serve every host of `HOSTS` on its own free port of 127.0.0.1 until the block exits."""
    hosts = ExampleHosts()
    with ExitStack() as stack:
        for name, scheme in HOSTS.items():
            server = _Server(("127.0.0.1", 0), _Handler)
            server.host_name, server.hosts = name, hosts
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"stand-in {name}"
            )
            thread.daemon = True
            thread.start()
            stack.callback(thread.join, 10)
            stack.callback(server.server_close)
            stack.callback(server.shutdown)
            hosts.host_map[f"{scheme}://{name}"] = f"http://127.0.0.1:{server.server_address[1]}"
        yield hosts
