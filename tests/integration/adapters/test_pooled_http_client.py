"""`PooledHttpClient` against real local servers: pooling, framing, redirects, limits, failures.

Each test runs a small HTTP/1.1 server in its own Trio run (`RawServer`: it parses requests
far enough for the test and answers what the test's ``respond`` returns, raw bytes, keeping the
connection open unless told otherwise), so the test sees every connection and request.
"""

from __future__ import annotations

import gzip
import ssl
import subprocess
import zlib
from pathlib import Path

import attrs
import pytest
import trio

from tests.support.certificates import CertificateAuthority
from tests.support.http_stub import run_http_stub
from tests.support.raw_http import RawServer, Seen, ok, serving
from workflow_orchestrator.adapters import PooledHttpClient
from workflow_orchestrator.config import OutboundSettings
from workflow_orchestrator.dsl.errors import WorkflowError
from workflow_orchestrator.dsl.runtime import HttpRequest
from workflow_orchestrator.security import OutboundPolicy

LOOPBACK = OutboundPolicy.from_settings(OutboundSettings(allow=("127.0.0.0/8",)))


def _client(**options: object) -> PooledHttpClient:
    return PooledHttpClient(policy=LOOPBACK, default_timeout=10, **options)  # type: ignore[arg-type]


def _get(url: str, **options: object) -> HttpRequest:
    return HttpRequest(method="GET", url=url, **options)  # type: ignore[arg-type]


async def _error(client: PooledHttpClient, request: HttpRequest) -> WorkflowError:
    with pytest.raises(WorkflowError) as caught:
        await client.http(request)
    return caught.value


# -- the pool ------------------------------------------------------------------------------


async def test_a_kept_alive_connection_carries_the_next_requests() -> None:
    """Requests one after another share one connection; it stays idle in the pool."""
    server = RawServer()
    async with serving(server), _client() as client:
        bodies = [(await client.http(_get(f"{server.url}/{k}"))).body for k in range(3)]
        assert bodies == [b"GET /0 #1.1", b"GET /1 #1.2", b"GET /2 #1.3"]
        assert (client.pool.open_connections, client.pool.idle_connections) == (1, 1)
    assert server.connections == 1


async def test_connections_to_an_origin_are_capped_and_waiters_served() -> None:
    """With max_per_origin=2, six slow calls at once use two connections, and all complete."""

    async def slow(seen: Seen) -> bytes:
        await trio.sleep(0.05)
        return ok()

    server = RawServer(slow)
    async with serving(server), _client(max_per_origin=2) as client:
        statuses: list[int] = []

        async def call() -> None:
            statuses.append((await client.http(_get(f"{server.url}/slow"))).status)

        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(call)
        assert statuses == [200] * 6
        assert client.pool.open_connections == 2
    assert (server.connections, server.most_active) == (2, 2)


async def test_the_total_cap_closes_an_idle_connection_of_another_origin() -> None:
    """At max_connections, a call to a new origin replaces the oldest idle connection."""
    one, two = RawServer(), RawServer(host="127.0.0.2")
    async with serving(one, two), _client(max_connections=1) as client:
        await client.http(_get(f"{one.url}/"))
        await client.http(_get(f"{two.url}/"))
        await client.http(_get(f"{one.url}/"))
        assert client.pool.open_connections == 1
    assert (one.connections, two.connections) == (2, 1)


async def test_idle_connections_expire() -> None:
    """A connection idle for longer than idle_expiry is closed, not reused."""
    server = RawServer()
    async with serving(server), _client(idle_expiry=0.05) as client:
        await client.http(_get(f"{server.url}/"))
        await trio.sleep(0.1)
        assert (await client.http(_get(f"{server.url}/"))).body == b"GET / #2.1"
        assert client.pool.open_connections == 1


async def test_a_response_saying_connection_close_is_not_reused() -> None:
    """``Connection: close`` ends the connection after its response."""

    async def closing(seen: Seen) -> bytes:
        return ok(b"bye", "Connection: close")

    server = RawServer(closing)
    async with serving(server), _client() as client:
        for _ in range(2):
            assert (await client.http(_get(f"{server.url}/"))).body == b"bye"
        assert client.pool.open_connections == 0
    assert server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    """The server closes a kept-alive connection after answering (no ``Connection: close``):
    the pool notices before sending, so even a POST without a key goes on a new connection."""
    server = RawServer(close_after_answer=True)
    async with serving(server), _client() as client:
        assert (await client.http(_get(f"{server.url}/"))).body == b"GET / #1.1"
        await trio.sleep(0.05)  # the server's FIN arrives
        post = HttpRequest(method="POST", url=f"{server.url}/", body=b"x")
        assert (await client.http(post)).body == b"POST / #2.1"
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("method", "key", "sent_again"),
    [("GET", "", True), ("POST", "i-1/do/0/x", True), ("POST", "", False)],
)
async def test_a_reused_connection_dropped_before_answering_is_retried_once(
    method: str, key: str, sent_again: bool
) -> None:
    """A reused connection that closes without answering: an idempotent request (its method,
    or an Idempotency-Key) goes again on a fresh connection; another fails as communication."""

    async def drop_second(seen: Seen) -> bytes | None:
        if seen.number == 2:
            return None
        return ok(b"answered")

    server = RawServer(drop_second)
    async with serving(server), _client() as client:
        await client.http(_get(f"{server.url}/"))
        request = HttpRequest(method=method, url=f"{server.url}/x", body=b"{}", idempotency_key=key)
        if sent_again:
            assert (await client.http(request)).body == b"answered"
            assert [seen.connection for seen in server.requests] == [1, 1, 2]
        else:
            error = await _error(client, request)
            assert error.problem.status == 503
            assert (error.problem.detail or "").startswith(f"POST {server.url}/x failed: ")
            assert len(server.requests) == 2
        assert client.pool.open_connections == (1 if sent_again else 0)


async def test_a_timed_out_or_cancelled_call_leaves_no_connection_behind() -> None:
    """A call that times out is the spec's timeout error; its connection is closed."""

    async def never(seen: Seen) -> bytes | None:
        await trio.sleep(3600)
        return None

    server = RawServer(never)
    async with serving(server), _client() as client:
        error = await _error(client, _get(f"{server.url}/", timeout=0.2))
        assert error.problem.status == 408
        assert error.problem.detail == f"GET {server.url}/ got no response within 0.2s"
        with trio.move_on_after(0.1):
            await client.http(_get(f"{server.url}/"))
        assert client.pool.open_connections == 0


# -- what is sent and what comes back ------------------------------------------------------


async def test_request_head_body_and_idempotency_key() -> None:
    """The host map, the method, headers, body and the Idempotency-Key arrive as sent."""
    server = RawServer()
    async with serving(server):
        hosts = {"https://petstore.example.com": server.url}
        async with _client(host_map=hosts) as client:
            response = await client.http(
                HttpRequest(
                    method="POST",
                    url="https://petstore.example.com/v2/pet?a=b c&é=1",
                    headers={"content-type": "application/json", "X-Trace": "t"},
                    body=b'{"a":1}',
                    idempotency_key="i-1/do/0/save",
                )
            )
    seen = server.requests[0]
    assert (seen.method, seen.target, seen.body) == ("POST", "/v2/pet?a=b%20c&%C3%A9=1", b'{"a":1}')
    assert seen.headers["host"] == f"127.0.0.1:{server.port}"
    assert seen.headers["idempotency-key"] == "i-1/do/0/save"
    assert seen.headers["x-trace"] == "t"
    assert seen.headers["content-length"] == "7"
    assert response.status == 200
    assert response.headers["content-length"] == str(len(response.body))


async def test_a_header_cannot_smuggle_another_request() -> None:
    """A header value with CR/LF is refused (a communication error), not sent."""
    server = RawServer()
    async with serving(server), _client() as client:
        error = await _error(
            client, _get(f"{server.url}/", headers={"x-a": "1\r\nGET /evil HTTP/1.1"})
        )
    assert error.problem.status == 503
    assert server.requests == []


async def test_chunked_and_compressed_bodies_are_decoded() -> None:
    """Chunked framing, gzip and deflate (zlib or raw) bodies arrive decoded."""
    text = b'{"hello": "world"}' * 100
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    encodings = {
        "/gzip": ("gzip", gzip.compress(text)),
        "/deflate": ("deflate", zlib.compress(text)),
        "/raw-deflate": ("deflate", raw.compress(text) + raw.flush()),
    }

    async def encoded(seen: Seen) -> bytes:
        if seen.target == "/chunked":
            return (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
        encoding, body = encodings[seen.target]
        return ok(body, f"Content-Encoding: {encoding}")

    server = RawServer(encoded)
    async with serving(server), _client() as client:
        chunked = await client.http(_get(f"{server.url}/chunked"))
        assert chunked.body == b"hello world"
        for path in encodings:
            assert (await client.http(_get(server.url + path))).body == text
        assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"
    assert server.connections == 1


async def test_a_compressed_body_is_capped_by_its_decoded_size() -> None:
    """A small gzip body that expands past max_response_size is refused."""
    bomb = gzip.compress(b"\0" * (1024 * 1024))

    async def expand(seen: Seen) -> bytes:
        return ok(bomb, "Content-Encoding: gzip")

    server = RawServer(expand)
    async with serving(server), _client(max_response_size=64 * 1024) as client:
        error = await _error(client, _get(f"{server.url}/"))
    assert error.problem.status == 502
    assert "a body of more than the limit of 65536 bytes" in (error.problem.detail or "")


async def test_bodiless_responses_keep_the_connection() -> None:
    """HEAD, 204 and 304 have no body, whatever their Content-Length says (not held against
    the limit either); the connection is reused."""

    async def bodiless(seen: Seen) -> bytes:
        if seen.method == "HEAD":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        status = seen.target.strip("/")
        length = "Content-Length: 5000\r\n" if status == "304" else ""
        return f"HTTP/1.1 {status} X\r\n{length}\r\n".encode()

    server = RawServer(bodiless)
    async with serving(server), _client(max_response_size=100) as client:
        head = await client.http(HttpRequest(method="HEAD", url=f"{server.url}/"))
        assert (head.status, head.body, head.headers["content-length"]) == (200, b"", "1000")
        for status in (204, 304):
            response = await client.http(_get(f"{server.url}/{status}"))
            assert (response.status, response.body) == (status, b"")
    assert server.connections == 1


@pytest.mark.parametrize(
    ("status", "method", "sent_on"),
    [
        (303, "POST", "GET"),
        (302, "POST", "GET"),
        (301, "POST", "GET"),
        (307, "POST", "POST"),
        (308, "PUT", "PUT"),
        (303, "HEAD", "HEAD"),
    ],
)
async def test_redirects_are_followed_as_httpx_did(status: int, method: str, sent_on: str) -> None:
    """303 (and 302, and 301 for POST) turn into a GET without a body; 307/308 keep both."""

    async def redirect(seen: Seen) -> bytes:
        if seen.target == "/from":
            body = "" if seen.method == "HEAD" else "no"
            return f"HTTP/1.1 {status} Moved\r\nLocation: /to\r\nContent-Length: 2\r\n\r\n{body}".encode()
        if seen.method == "HEAD":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"
        return ok(seen.body or b"none")

    server = RawServer(redirect)
    async with serving(server), _client() as client:
        request = HttpRequest(
            method=method, url=f"{server.url}/from", body=b"data", follow_redirects=True
        )
        response = await client.http(request)
        not_followed = await client.http(attrs.evolve(request, follow_redirects=False))
    second = server.requests[1]
    assert (second.method, second.target) == (sent_on, "/to")
    assert second.body == (b"data" if sent_on == method else b"")
    assert response.status == 200
    assert not_followed.status == status
    assert server.connections == 1


async def test_a_redirect_to_another_origin_drops_the_credentials() -> None:
    """Authorization goes to the origin it was meant for, not to where it redirects."""
    other = RawServer(host="127.0.0.2")

    async def redirect(seen: Seen) -> bytes:
        where = f"{other.url}/there" if seen.target == "/away" else "/here"
        if seen.target in ("/away", "/near"):
            return f"HTTP/1.1 302 Found\r\nLocation: {where}\r\nContent-Length: 0\r\n\r\n".encode()
        return ok()

    server = RawServer(redirect)
    async with serving(server, other), _client() as client:
        for path in ("/away", "/near"):
            request = _get(
                server.url + path, headers={"authorization": "Bearer s3cret"}, follow_redirects=True
            )
            assert (await client.http(request)).status == 200
    assert "authorization" not in other.requests[0].headers
    assert server.requests[-1].headers["authorization"] == "Bearer s3cret"


async def test_redirects_are_limited() -> None:
    """A redirect loop ends after MAX_REDIRECTS hops as a communication error."""

    async def loop(seen: Seen) -> bytes:
        return b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n"

    server = RawServer(loop)
    async with serving(server), _client() as client:
        error = await _error(client, _get(f"{server.url}/", follow_redirects=True))
    assert error.problem.detail == f"GET {server.url}/ failed: more than 20 redirects"
    assert len(server.requests) == 21


async def test_response_size_limits_with_the_shared_stub() -> None:
    """Declared and streamed bodies over the limit are refused; the client stays usable."""
    with run_http_stub() as stub:
        async with _client(max_response_size=64 * 1024) as client:
            declared = await _error(client, _get(stub.url + "/size/70000"))
            streamed = await _error(client, _get(stub.url + f"/size/{200 * 1024 * 1024}?stream"))
            whole = await client.http(_get(stub.url + "/size/3000?stream"))
            small = await client.http(_get(stub.url + "/size/10"))
    assert declared.problem.detail == (
        f"GET {stub.url}/size/70000 answered with a body of 70000 bytes, more than the limit of "
        "65536 bytes; raise the setting workflows.maxResponseSize or ask for less"
    )
    assert "a body of more than the limit of 65536 bytes" in (streamed.problem.detail or "")
    assert len(whole.body) == 3000
    assert small.body == b'"xxxxxxxx"'


async def test_tls_connections_are_pooled_and_verified_with_the_configured_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS to a server whose certificate a CA from SSL_CERT_DIR vouches for; the TLS
    connection is kept alive for the next call."""
    authority = CertificateAuthority.create(tmp_path)
    issued = authority.issue("127.0.0.1", hosts=("127.0.0.1",))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.certificate, issued.private_key)
    hashed = tmp_path / "cas"
    hashed.mkdir()
    pem = authority.certificate_path.read_bytes()
    (hashed / f"{_openssl_subject_hash(pem)}.0").write_bytes(pem)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(hashed))
    server = RawServer()

    async def handle_tls(stream: trio.SocketStream) -> None:
        await server.handle(trio.SSLStream(stream, context, server_side=True))

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        server.port = listeners[0].socket.getsockname()[1]
        await nursery.start(trio.serve_listeners, handle_tls, listeners)
        async with _client() as client:
            url = f"https://127.0.0.1:{server.port}/secure"
            bodies = [(await client.http(_get(url))).body for _ in range(2)]
        nursery.cancel_scope.cancel()
    assert bodies == [b"GET /secure #1.1", b"GET /secure #1.2"]


def _openssl_subject_hash(pem: bytes) -> str:
    """``openssl x509 -hash``: what OpenSSL looks a CA up by in a certificate directory."""
    result = subprocess.run(
        ["openssl", "x509", "-noout", "-hash"], input=pem, capture_output=True, check=True
    )
    return result.stdout.decode().strip()


# -- framing edge cases --------------------------------------------------------------------


async def test_informational_responses_are_skipped() -> None:
    """A 100 Continue (or 103) before the response is not the response."""

    async def early(seen: Seen) -> bytes:
        return b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok(
            b"final", "X-Final: 1"
        )

    server = RawServer(early)
    async with serving(server), _client() as client:
        response = await client.http(_get(f"{server.url}/"))
        again = await client.http(_get(f"{server.url}/"))
    assert (response.status, response.body, response.headers.get("link")) == (200, b"final", None)
    assert response.headers["x-final"] == "1"
    assert again.body == b"final"
    assert server.connections == 1


async def test_a_body_without_length_ends_with_the_connection() -> None:
    """No Content-Length and not chunked: the body is what comes until the server closes."""

    async def until_close(seen: Seen) -> bytes:
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"

    server = RawServer(until_close, close_after_answer=True)
    async with serving(server), _client() as client:
        assert (await client.http(_get(f"{server.url}/"))).body == b"all of it"
        assert client.pool.open_connections == 0


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", "before the end of the body"),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 70_000 + b"\r\n\r\n", "head is larger than"),
        (b"HTTP/1.1 ok\r\n\r\n", "malformed response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "malformed"),
    ],
)
async def test_broken_responses_are_communication_errors(answer: bytes, reason: str) -> None:
    """A truncated body, an endless head or a malformed response fail the call (503) and
    leave no connection behind."""

    async def broken(seen: Seen) -> bytes:
        return answer

    server = RawServer(broken, close_after_answer=True)
    async with serving(server), _client() as client:
        error = await _error(client, _get(f"{server.url}/"))
        assert client.pool.open_connections == 0
    assert error.problem.status == 503
    assert reason in (error.problem.detail or "")


async def test_bytes_after_a_response_make_the_connection_unusable() -> None:
    """A server that answers more than it was asked cannot be trusted with the next request."""

    async def twice(seen: Seen) -> bytes:
        return ok(b"one") + ok(b"two")

    server = RawServer(twice)
    async with serving(server), _client() as client:
        assert (await client.http(_get(f"{server.url}/"))).body == b"one"
        assert (await client.http(_get(f"{server.url}/"))).body == b"one"
    assert server.connections == 2
