"""`open_oidc_verifier` against a JWKS served over a real socket: caching, rotation, outages.

The server runs in the test's trio run (``tests/support/jwks_server.py``). Tests that age the
cache use pytest-trio's ``mock_clock`` and jump it; it moves on its own only after `HANG`
seconds with every task blocked, so real I/O is unaffected while a hung test still reaches its
``trio.fail_after`` deadline.
"""

from __future__ import annotations

import json
import socket

import attrs
import pytest
import trio
import trio.testing

from tests.support.jwks_server import serve_jwks
from tests.support.tokens import AUDIENCE, ISSUER, claims, jwks_of, new_ec_key, new_rsa_key
from workflow_orchestrator.config import OidcSettings
from workflow_orchestrator.security import (
    InvalidToken,
    OidcVerifier,
    Principal,
    TokenKeysUnavailable,
    open_oidc_verifier,
)

OLD, NEW, EC = new_rsa_key("2024-old"), new_rsa_key("2025-new"), new_ec_key("ec-1")


#: Real seconds of all tasks blocked after which the mock clock jumps (only a hung test waits).
HANG = 5.0


def settings_for(url: str, **changes: object) -> OidcSettings:
    base = OidcSettings(enabled=True, issuer=ISSUER, audience=AUDIENCE, jwks_url=url)
    return attrs.evolve(base, **changes)


async def refused(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as refusal:
        await verifier.verify(token)
    return refusal.value.reason


async def unavailable(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(TokenKeysUnavailable) as error:
        await verifier.verify(token)
    return error.value.reason


async def test_a_token_signed_by_a_published_key_is_a_principal() -> None:
    """RSA and EC tokens verify against the served JWKS, fetched once for both."""
    with trio.fail_after(30):
        async with serve_jwks(jwks_of(OLD, EC)) as server:
            async with open_oidc_verifier(settings_for(server.url)) as verifier:
                rsa = await verifier.verify(OLD.mint(claims(roles="viewer", namespaces="*")))
                ec = await verifier.verify(EC.mint(claims(sub="bob")))
            assert rsa == Principal(name="alice", roles=frozenset({"viewer"}), via="oidc")
            assert (ec.name, ec.roles, ec.namespaces) == (
                "bob",
                {"operator", "developer"},
                {"shop"},
            )
            assert server.fetches == 1


async def test_key_rotation(mock_clock: trio.testing.MockClock) -> None:
    """A token of a new key refetches once and is accepted; the old key is refused once the
    cache holds the set without it."""
    mock_clock.autojump_threshold = HANG
    with trio.fail_after(3600):
        async with (
            serve_jwks(jwks_of(OLD)) as server,
            open_oidc_verifier(settings_for(server.url)) as verifier,
        ):
            await verifier.verify(OLD.mint(claims()))
            server.document = jwks_of(NEW)
            mock_clock.jump(30)
            assert (await verifier.verify(NEW.mint(claims()))).name == "alice"
            assert server.fetches == 2
            assert await refused(verifier, OLD.mint(claims())) == "unknown-key"
            assert verifier.statistics().key_ids == ("2025-new",)
            assert server.fetches == 2


async def test_unknown_kids_refetch_at_most_every_refresh_interval(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Tokens with unknown key ids refetch once per interval however many arrive."""
    stranger = new_rsa_key("made-up")
    mock_clock.autojump_threshold = HANG
    with trio.fail_after(3600):
        async with (
            serve_jwks(jwks_of(OLD)) as server,
            open_oidc_verifier(settings_for(server.url)) as verifier,
        ):
            await verifier.verify(OLD.mint(claims()))
            mock_clock.jump(30)
            for _ in range(10):
                assert await refused(verifier, stranger.mint(claims())) == "unknown-key"
            assert server.fetches == 2
            mock_clock.jump(29)
            assert await refused(verifier, stranger.mint(claims())) == "unknown-key"
            assert server.fetches == 2
            mock_clock.jump(1)
            assert await refused(verifier, stranger.mint(claims())) == "unknown-key"
            assert server.fetches == 3


async def test_a_cached_set_keeps_serving_while_the_jwks_is_down(
    mock_clock: trio.testing.MockClock,
) -> None:
    """After the TTL, an issuer that fails (503, then gone) does not stop verification."""
    mock_clock.autojump_threshold = HANG
    with trio.fail_after(3600):
        async with (
            serve_jwks(jwks_of(OLD)) as server,
            open_oidc_verifier(settings_for(server.url)) as verifier,
        ):
            await verifier.verify(OLD.mint(claims()))
            server.status = 503
            mock_clock.jump(300)
            assert (await verifier.verify(OLD.mint(claims()))).name == "alice"
            assert server.fetches == 2
            server.close()
            mock_clock.jump(300)
            assert (await verifier.verify(OLD.mint(claims()))).name == "alice"
            assert verifier.statistics().failures == 2


async def test_nothing_cached_and_the_jwks_down_is_keys_unavailable() -> None:
    """A refused connection, a 503 and a non-JWKS answer: `TokenKeysUnavailable`, each with
    its reason, and no token is judged."""
    with trio.fail_after(30):
        async with open_oidc_verifier(settings_for(f"{closed_port_url()}/jwks")) as verifier:
            assert (await unavailable(verifier, OLD.mint(claims()))).startswith("ConnectError")
        async with serve_jwks(jwks_of(OLD)) as server:
            server.status = 503
            async with open_oidc_verifier(settings_for(server.url)) as verifier:
                reason = await unavailable(verifier, OLD.mint(claims()))
                assert reason == "the issuer answered HTTP 503"
                server.status, server.document = 200, b"<html>sign in</html>"
                reason = await unavailable(verifier, OLD.mint(claims()))
                assert reason.startswith("the answer is not JSON")
                server.document = json.dumps({"keys": [OLD.public_jwk(kty="oct")]}).encode()
                reason = await unavailable(verifier, OLD.mint(claims()))
                assert reason == "no key verifies any of the algorithms ES256, EdDSA, PS256, RS256"
                assert server.fetches == 3


async def test_an_oversized_jwks_is_refused_declared_or_not() -> None:
    """A body over the cap fails, by its Content-Length or by the bytes counted."""
    padding = {"kid": "padding", "kty": "none", "x": "y" * 5000}
    document = json.dumps({"keys": [OLD.public_jwk(), padding]}).encode()
    with trio.fail_after(30):
        async with serve_jwks(document) as server:
            for declared in (True, False):
                server.declare_length = declared
                async with open_oidc_verifier(
                    settings_for(server.url), max_jwks_size=4096
                ) as verifier:
                    reason = await unavailable(verifier, OLD.mint(claims()))
                    assert reason == "the answer is larger than 4096 bytes"
            async with open_oidc_verifier(settings_for(server.url)) as verifier:
                assert (await verifier.verify(OLD.mint(claims()))).name == "alice"


async def test_a_jwks_that_does_not_answer_times_out() -> None:
    """An issuer that accepts and never answers fails after the fetch timeout."""
    with trio.fail_after(30):
        async with serve_jwks(jwks_of(OLD)) as server:
            server.gate = trio.Event()
            async with open_oidc_verifier(settings_for(server.url), fetch_timeout=0.5) as verifier:
                assert await unavailable(verifier, OLD.mint(claims())) == "no answer within 0.5s"
            server.gate.set()


async def test_concurrent_verifications_share_one_fetch() -> None:
    """Fifty requests arriving before the JWKS is cached cause one fetch, and all verify."""
    with trio.fail_after(30):
        async with serve_jwks(jwks_of(OLD)) as server:
            server.gate = trio.Event()
            names: list[str] = []
            async with open_oidc_verifier(settings_for(server.url)) as verifier:

                async def verify(subject: str) -> None:
                    names.append((await verifier.verify(OLD.mint(claims(sub=subject)))).name)

                async with trio.open_nursery() as nursery:
                    for i in range(50):
                        nursery.start_soon(verify, f"user-{i}")
                    await server.request_arrived.wait()
                    await trio.testing.wait_all_tasks_blocked()
                    server.gate.set()
            assert server.fetches == 1
            assert sorted(names) == sorted(f"user-{i}" for i in range(50))


def closed_port_url() -> str:
    """``http://127.0.0.1:<port>`` of a port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
