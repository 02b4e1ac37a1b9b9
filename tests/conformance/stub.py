"""The CTK's HTTP peers, stubbed: a petstore, its Swagger document and httpbin's basic auth.

`stub_response` is a pure function from request to response; `serve_stub` exposes it over real
HTTP on 127.0.0.1 (a thread running the standard library's server) for the conformance tests,
which reach it through the service's HTTP client with the CTK's hosts mapped to it.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse

PETSTORE = "https://petstore.swagger.io"
HTTPBIN = "https://httpbin.org"

PETS = [
    {"id": 1, "name": "Milou", "status": "available", "category": {"id": 1, "name": "dogs"}},
    {"id": 2, "name": "Garfield", "status": "available", "category": {"id": 2, "name": "cats"}},
    {"id": 3, "name": "Nemo", "status": "sold", "category": {"id": 3, "name": "fish"}},
]

SWAGGER = {
    "swagger": "2.0",
    "info": {"title": "Swagger Petstore (stub)", "version": "1.0.7"},
    "host": "petstore.swagger.io",
    "basePath": "/v2",
    "schemes": ["https", "http"],
    "paths": {
        "/pet/findByStatus": {
            "get": {
                "operationId": "findPetsByStatus",
                "parameters": [
                    {"name": "status", "in": "query", "required": True, "type": "array"}
                ],
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/pet/{petId}": {
            "get": {
                "operationId": "getPetById",
                "parameters": [
                    {"name": "petId", "in": "path", "required": True, "type": "integer"}
                ],
                "responses": {"200": {"description": "ok"}},
            }
        },
    },
}

_PET = re.compile(r"^/v2/pet/(\d+)$")
_BASIC = re.compile(r"^/basic-auth/([^/]+)/([^/]+)$")


def _json(status: int, content: object) -> HttpResponse:
    return HttpResponse(
        status=status,
        headers={"content-type": "application/json"},
        body=json.dumps(content).encode(),
    )


def stub_response(request: HttpRequest) -> HttpResponse:
    """The stub's answer to ``request`` (hosts are ignored; paths decide)."""
    parts = urlsplit(request.url)
    path = parts.path
    query = parse_qs(parts.query)
    if path == "/v2/swagger.json":
        return _json(200, SWAGGER)
    if path == "/v2/pet/findByStatus":
        wanted = set(query.get("status", ["available"]))
        return _json(200, [pet for pet in PETS if pet["status"] in wanted])
    match = _PET.match(path)
    if match:
        pet = next((p for p in PETS if p["id"] == int(match.group(1))), None)
        if pet is None:
            return _json(404, {"code": 1, "type": "error", "message": "Pet not found"})
        return _json(200, pet)
    match = _BASIC.match(path)
    if match:
        expected = base64.b64encode(f"{match.group(1)}:{match.group(2)}".encode()).decode()
        if request.headers.get("authorization") == f"Basic {expected}":
            return _json(200, {"authenticated": True, "user": match.group(1)})
        return HttpResponse(status=401, headers={"www-authenticate": 'Basic realm="stub"'})
    return _json(404, {"code": 404, "message": f"no stub route for {path}"})


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        request = HttpRequest(
            method=self.command,
            url=f"http://stub{self.path}",
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        response = stub_response(request)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


@contextmanager
def serve_stub() -> Iterator[Mapping[str, str]]:
    """Serve the stub on a free local port; yields the host map for the HTTP client."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="ctk-stub", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield {PETSTORE: base, HTTPBIN: base}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
