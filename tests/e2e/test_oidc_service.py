"""OIDC bearer tokens through the real service: a JWKS served on a local socket, keys made in
the test; roles and namespaces from the token's claims, expiry, wrong audience, key rotation,
and an issuer that cannot be reached."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tests.support.jwks_server import JwksServer, serve_jwks
from tests.support.service import InProcessService, open_service
from tests.support.services import create_database, drop_database, url_for
from tests.support.tokens import AUDIENCE, ISSUER, claims, jwks_of, new_rsa_key

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

OLD, NEW = new_rsa_key("2026-old"), new_rsa_key("2027-new")
DEFINITION = """
document: {dsl: '1.0.0', namespace: %s, name: %s, version: '1.0.0'}
do:
  - done:
      set: {ok: true}
"""


@pytest.fixture
async def jwks() -> AsyncIterator[JwksServer]:
    async with serve_jwks(jwks_of(OLD)) as server:
        yield server


@pytest.fixture
async def app(jwks: JwksServer) -> AsyncIterator[InProcessService]:
    name = create_database("wo_oidc")
    try:
        async with open_service(
            url_for(name),
            settings={
                "security.authentication.enabled": True,
                "security.authentication.oidc": {
                    "enabled": True,
                    "issuer": ISSUER,
                    "audience": AUDIENCE,
                    "jwksUrl": jwks.url,
                    "jwksRefreshInterval": "0s",
                },
            },
        ) as service:
            yield service
    finally:
        drop_database(name)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(app: InProcessService, token: str, namespace: str, name: str) -> int:
    response = await app.api.post(
        "/v1/workflow-definitions",
        content=DEFINITION % (namespace, name),
        headers={**bearer(token), "Content-Type": "application/yaml"},
    )
    return response.status_code


async def test_a_token_carries_roles_and_namespaces(app: InProcessService) -> None:
    developer = OLD.mint(claims(sub="dana", roles=["developer"], namespaces=["shop"]))
    admin = OLD.mint(claims(sub="root", roles=["admin"], namespaces=None))
    viewer = OLD.mint(claims(sub="vic", roles=["viewer"], namespaces=["shop"]))
    assert await register(app, developer, "shop", "cart") == 201
    assert await register(app, developer, "billing", "invoice") == 403
    assert await register(app, admin, "billing", "invoice") == 201
    assert await register(app, viewer, "shop", "other") == 403
    listing = await app.api.get("/v1/workflow-definitions", headers=bearer(viewer))
    assert listing.status_code == 200
    assert [item["id"] for item in listing.json()["items"]] == ["cart"]
    hidden = await app.api.get("/v1/workflow-definitions/invoice", headers=bearer(viewer))
    assert hidden.status_code == 404
    metrics = await app.management.get("/metrics", headers=bearer(viewer))
    assert metrics.status_code == 200
    tree = await app.management.get("/supervisor", headers=bearer(viewer))
    assert tree.status_code == 403
    assert (await app.management.get("/supervisor", headers=bearer(admin))).status_code == 200


async def test_expired_wrong_audience_and_forged_tokens_are_401(app: InProcessService) -> None:
    now = int(time.time())
    stranger = new_rsa_key("2026-old")  # the same kid, another key: a forgery
    for token in (
        OLD.mint(claims(exp=now - 3600, iat=now - 7200)),
        OLD.mint(claims(aud="another-service")),
        OLD.mint(claims(iss="https://evil.example")),
        stranger.mint(claims()),
    ):
        response = await app.api.get("/v1/workflow-definitions", headers=bearer(token))
        assert response.status_code == 401, response.text
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_keys_rotate_without_a_restart(app: InProcessService, jwks: JwksServer) -> None:
    before = OLD.mint(claims(roles=["viewer"]))
    after = NEW.mint(claims(roles=["viewer"]))
    assert (await app.api.get("/v1/workflow-definitions", headers=bearer(before))).is_success
    assert (await app.api.get("/v1/workflow-definitions", headers=bearer(after))).status_code == 401
    jwks.document = jwks_of(NEW)  # the issuer rotates: the new key signs, the old one is gone
    assert (await app.api.get("/v1/workflow-definitions", headers=bearer(after))).is_success


async def test_an_unreachable_issuer_without_cached_keys_is_503(
    app: InProcessService, jwks: JwksServer
) -> None:
    jwks.close()
    token = OLD.mint(claims(roles=["viewer"]))
    response = await app.api.get("/v1/workflow-definitions", headers=bearer(token))
    assert response.status_code == 503, response.text
    assert response.json()["type"].endswith("/token-keys-unavailable")
