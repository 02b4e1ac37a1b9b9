"""Parsing a JWKS: which keys verify which algorithms."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.tokens import new_ec_key, new_rsa_key
from workflow_orchestrator.security._key_set import JwksError, parse_key_set

ALL = ("RS256", "PS256", "ES256", "EdDSA")


def document(*jwks: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(jwks)}).encode()


def test_each_key_verifies_the_allowed_algorithms_of_its_type() -> None:
    """An RSA key verifies RS*/PS*, a P-256 key ES256, each only among the allowed ones."""
    rsa, ec = new_rsa_key("r"), new_ec_key("e")
    keys = parse_key_set(document(rsa.public_jwk(), ec.public_jwk()), ALL)
    assert sorted(keys.keys["r"]) == ["PS256", "RS256"]
    assert sorted(keys.keys["e"]) == ["ES256"]
    assert keys.key_for("r", "ES256") is None
    assert keys.key_for("e", "ES256") is not None
    assert keys.key_ids == ["r", "e"]


def test_a_key_naming_its_alg_verifies_only_that_one() -> None:
    """``alg: RS256`` on a key keeps a PS256 token from using it."""
    keys = parse_key_set(document(new_rsa_key("r").public_jwk(alg="RS256")), ALL)
    assert sorted(keys.keys["r"]) == ["RS256"]


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "kid": "h", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"},
        {"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0"},
        "encryption",
        "wrap-only",
        "not-an-object",
    ],
)
def test_unusable_keys_are_skipped(jwk: Any) -> None:
    """Symmetric, encryption and non-verify keys are never used; the set then has no key."""
    if jwk == "encryption":
        jwk = new_rsa_key("x").public_jwk(use="enc")
    elif jwk == "wrap-only":
        jwk = new_rsa_key("x").public_jwk(key_ops=["wrapKey"])
    algorithms = (*ALL, "HS256")  # even if a caller let HMAC through
    with pytest.raises(JwksError) as refused:
        parse_key_set(document(jwk), algorithms)
    assert str(refused.value) == "no key verifies any of the algorithms ES256, EdDSA, PS256, RS256"


def test_a_document_that_is_not_a_jwks_is_refused() -> None:
    """Not JSON, or JSON without a keys list, is an error saying which."""
    with pytest.raises(JwksError) as refused:
        parse_key_set(b"<html>", ALL)
    assert (
        str(refused.value) == "the answer is not JSON (Expecting value: line 1 column 1 (char 0))"
    )
    with pytest.raises(JwksError) as refused:
        parse_key_set(b'{"keys": {}}', ALL)
    assert str(refused.value) == "the answer is not a JWKS (an object with a 'keys' list)"


def test_a_token_without_kid_gets_the_only_key_of_its_algorithm() -> None:
    """No ``kid``: the one key verifying the algorithm, or none when several could."""
    one = parse_key_set(document(new_rsa_key("r").public_jwk(), new_ec_key("e").public_jwk()), ALL)
    assert one.key_for(None, "RS256") is one.keys["r"]["RS256"]
    two = parse_key_set(document(new_rsa_key("a").public_jwk(), new_rsa_key("b").public_jwk()), ALL)
    assert two.key_for(None, "RS256") is None
    assert two.key_for("b", "RS256") is two.keys["b"]["RS256"]
