"""`OidcVerifier`: which tokens become principals and the reason each refusal gives."""

from __future__ import annotations

import base64
import time
from typing import Any

import attrs
import jwt
import pytest
import trio

from tests.support.tokens import (
    AUDIENCE,
    ISSUER,
    claims,
    forge_hs256,
    jwks_of,
    new_ec_key,
    new_rsa_key,
    unsigned,
)
from workflow_orchestrator.config import OidcSettings
from workflow_orchestrator.security import (
    InvalidToken,
    OidcVerifier,
    Principal,
    Unauthenticated,
)
from workflow_orchestrator.security._tokens import MAX_TOKEN_LENGTH

RSA, EC = new_rsa_key("rsa-1"), new_ec_key("ec-1")
SETTINGS = OidcSettings(
    enabled=True, issuer=ISSUER, audience=AUDIENCE, jwks_url="https://issuer.test/jwks"
)


def verifier(settings: OidcSettings = SETTINGS, document: bytes | None = None) -> OidcVerifier:
    body = jwks_of(RSA, EC) if document is None else document

    async def source() -> bytes:
        return body

    return OidcVerifier(settings, source)


async def refusal(token: str, settings: OidcSettings = SETTINGS) -> tuple[str, str]:
    with pytest.raises(InvalidToken) as refused:
        await verifier(settings).verify(token)
    assert isinstance(refused.value, Unauthenticated)
    return refused.value.reason, str(refused.value)


async def test_a_valid_token_is_a_principal_with_roles_and_namespaces() -> None:
    """RSA- and EC-signed tokens give the subject, known roles and namespaces, via oidc."""
    for key in (RSA, EC):
        principal = await verifier().verify(key.mint(claims(roles=["operator", "god"])))
        assert principal == Principal(
            name="alice", roles=frozenset({"operator"}), namespaces=frozenset({"shop"}), via="oidc"
        )


async def test_claim_names_come_from_the_settings() -> None:
    """rolesClaim, namespacesClaim and subjectClaim pick the claims (dotted paths too)."""
    settings = attrs.evolve(
        SETTINGS,
        roles_claim="realm_access.roles",
        namespaces_claim="tenants",
        subject_claim="preferred_username",
    )
    token = RSA.mint(
        claims(
            realm_access={"roles": ["admin"]},
            tenants="shop billing",
            preferred_username="bob",
        )
    )
    principal = await verifier(settings).verify(token)
    assert (principal.name, principal.roles, principal.namespaces) == (
        "bob",
        {"admin"},
        {"shop", "billing"},
    )


async def test_an_audience_list_naming_the_service_is_accepted() -> None:
    """``aud`` may be a list; it must contain the configured audience."""
    token = RSA.mint(claims(aud=["account", AUDIENCE]))
    assert (await verifier().verify(token)).name == "alice"


async def test_a_token_without_kid_uses_the_only_key_of_its_algorithm() -> None:
    """An issuer with one key may omit ``kid``."""
    assert (await verifier().verify(EC.mint(claims(), kid=None))).name == "alice"


async def test_ps256_with_an_rsa_key_that_does_not_name_its_alg() -> None:
    """The header picks RS256 or PS256 for an RSA key without ``alg``."""
    assert (await verifier().verify(RSA.mint(claims(), alg="PS256"))).name == "alice"


@pytest.mark.parametrize(
    ("changes", "reason", "message"),
    [
        ({"exp": -120}, "expired", "the token has expired"),
        ({"nbf": 120}, "not-yet-valid", "the token is not valid yet"),
        ({"iat": 3600}, "not-yet-valid", "the token is not valid yet"),
        ({"aud": "another-service"}, "wrong-audience", "the token is not meant for this service"),
        ({"iss": "https://evil.test"}, "wrong-issuer", "the token is not from the accepted issuer"),
        ({"exp": None}, "missing-claim", "the token has no 'exp' claim"),
        ({"iss": None}, "missing-claim", "the token has no 'iss' claim"),
        ({"aud": None}, "missing-claim", "the token has no 'aud' claim"),
        ({"sub": None}, "missing-claim", "the token has no 'sub' claim"),
    ],
)
async def test_claims_are_checked(changes: dict[str, Any], reason: str, message: str) -> None:
    """Expiry, not-before, issued-at, audience, issuer and the required claims, beyond leeway."""
    now = int(time.time())
    timed = {
        k: now + v if k in ("exp", "nbf", "iat") and v is not None else v
        for k, v in changes.items()
    }
    assert await refusal(RSA.mint(claims(**timed))) == (reason, message)


async def test_leeway_accepts_a_token_just_expired() -> None:
    """Within ``leeway`` (30s by default) clock skew does not refuse a token."""
    token = RSA.mint(claims(exp=int(time.time()) - 10))
    assert (await verifier().verify(token)).name == "alice"
    strict = attrs.evolve(SETTINGS, leeway=0.0)
    assert await refusal(token, strict) == ("expired", "the token has expired")


async def test_a_bad_signature_is_refused() -> None:
    """A token signed by another key under a known ``kid`` fails the signature check."""
    impostor = new_rsa_key("rsa-1")
    assert await refusal(impostor.mint(claims())) == (
        "bad-signature",
        "the token's signature is not valid",
    )
    header, _, signature = RSA.mint(claims()).split(".")
    tampered = RSA.mint(claims(roles=["admin"])).split(".")[1]
    assert (await refusal(f"{header}.{tampered}.{signature}"))[0] == "bad-signature"


async def test_alg_none_and_hmac_with_the_public_key_are_refused() -> None:
    """``alg: none`` and HS256 signed with the public key never reach a key."""
    not_allowed = ("algorithm-not-allowed", "the token's algorithm is not allowed")
    assert await refusal(unsigned(claims())) == not_allowed
    assert await refusal(forge_hs256(RSA, claims())) == not_allowed


async def test_an_algorithm_outside_the_settings_is_refused() -> None:
    """With ``algorithms: [ES256]`` an RS256 token is refused before any key is looked up."""
    only_ec = attrs.evolve(SETTINGS, algorithms=("ES256",))
    assert (await refusal(RSA.mint(claims()), only_ec))[0] == "algorithm-not-allowed"
    assert (await verifier(only_ec).verify(EC.mint(claims()))).name == "alice"


async def test_a_key_of_the_wrong_type_for_the_algorithm_is_unknown() -> None:
    """A header claiming ES256 with the RSA key's ``kid`` finds no key."""
    token = EC.mint(claims(), kid="rsa-1")
    assert await refusal(token) == ("unknown-key", "the token is signed by an unknown key")


async def test_malformed_tokens_are_refused() -> None:
    """Garbage, a bad header, a non-text kid and an oversized token are malformed."""
    malformed = ("malformed", "the token is malformed")
    assert await refusal("not-a-token") == malformed
    assert await refusal("eyJub3QganNvbg.eyJzdWIiOiJhIn0.c2ln") == malformed
    _, payload, signature = RSA.mint(claims()).split(".")
    numeric_kid = base64.urlsafe_b64encode(b'{"alg": "RS256", "kid": 7}').rstrip(b"=").decode()
    assert await refusal(f"{numeric_kid}.{payload}.{signature}") == malformed
    huge = RSA.mint(claims(padding="x" * MAX_TOKEN_LENGTH))
    assert await refusal(huge) == malformed
    body = jwt.api_jws.PyJWS().encode(
        b"not json", RSA.private_key, algorithm="RS256", headers={"kid": "rsa-1"}
    )
    assert await refusal(body) == malformed


def test_hmac_or_none_in_the_settings_is_refused() -> None:
    """The verifier cannot be built to accept HS256 or none, whatever the caller passes."""

    async def source() -> bytes:
        return b""

    expected = {
        ("RS256", "HS256"): "HS256 cannot verify tokens",
        ("none", "HS512"): "HS512, none cannot verify tokens",
        (): "it is empty",
    }
    for algorithms, what in expected.items():
        with pytest.raises(ValueError, match=r"^security\.authentication") as refused:
            OidcVerifier(attrs.evolve(SETTINGS, algorithms=algorithms), source)
        assert str(refused.value) == (
            f"security.authentication.oidc.algorithms: {what}; list some of ES256, ES384, "
            "ES512, EdDSA, PS256, PS384, PS512, RS256, RS384, RS512 (asymmetric signatures only)"
        )


async def test_an_accepted_token_is_decoded_once_until_it_expires_or_its_key_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The principal of a token seen again comes from the cache; once expired it is checked
    (and refused) again."""
    decodes = 0
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        nonlocal decodes
        decodes += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    documents = [jwks_of(RSA)]

    async def source() -> bytes:
        return documents[-1]

    checker = OidcVerifier(attrs.evolve(SETTINGS, jwks_refresh_interval=0.0, leeway=0.0), source)
    token = RSA.mint(claims())
    first = await checker.verify(token)
    assert await checker.verify(token) == first
    assert decodes == 1
    soon = RSA.mint(claims(exp=int(time.time()) + 1))
    await checker.verify(soon)
    assert decodes == 2
    await trio.sleep(2.1)
    with pytest.raises(InvalidToken) as refused:
        await checker.verify(soon)
    assert refused.value.reason == "expired"
    assert decodes == 3
