"""Claims to principal, and the JWT shape the gateway tests for."""

from __future__ import annotations

from typing import Any

import pytest

from workflow_orchestrator.security import InvalidToken, Principal, looks_like_jwt
from workflow_orchestrator.security._claims import claim_at, principal_from_claims


def principal(claims: dict[str, Any], **names: str) -> Principal:
    options = {
        "subject_claim": "sub",
        "roles_claim": "roles",
        "namespaces_claim": "namespaces",
        **names,
    }
    return principal_from_claims(claims, **options)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl", True),
        ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", True),
        ("0123456789abcdef0123456789abcdef", False),
        ("a.b", False),
        ("a.b.c.d", False),
        ("a+b.c/d.e", False),
        ("..", False),
        ("", False),
    ],
)
def test_looks_like_jwt(text: str, expected: bool) -> None:
    """Three base64url parts (the last may be empty) are a JWT; an API key is not."""
    assert looks_like_jwt(text) is expected


def test_claim_at_walks_dotted_names_and_prefers_a_literal_key() -> None:
    """``realm_access.roles`` reaches into an object; a claim literally named with dots wins."""
    claims = {
        "realm_access": {"roles": ["admin"]},
        "https://example.com/roles": ["viewer"],
        "https://example": {"com/roles": ["wrong"]},
    }
    assert claim_at(claims, "realm_access.roles") == ["admin"]
    assert claim_at(claims, "https://example.com/roles") == ["viewer"]
    assert claim_at(claims, "realm_access.missing") is None
    assert claim_at(claims, "realm_access.roles.deeper") is None


def test_roles_from_a_list_or_text_keep_only_known_roles() -> None:
    """Unknown roles are dropped; a space-separated text is split; another type gives none."""
    assert principal({"sub": "a", "roles": ["viewer", "root", "admin"]}).roles == {
        "viewer",
        "admin",
    }
    assert principal({"sub": "a", "roles": "operator  publisher superuser"}).roles == {
        "operator",
        "publisher",
    }
    assert principal({"sub": "a", "roles": {"admin": True}}).roles == frozenset()
    assert principal({"sub": "a"}).roles == frozenset()
    nested = {"sub": "a", "realm_access": {"roles": ["developer", 7]}}
    assert principal(nested, roles_claim="realm_access.roles").roles == {"developer"}


def test_namespaces_absent_or_star_mean_all_and_empty_means_none() -> None:
    """Absent or ``*``: every namespace; listed: those; present but empty: none (fail closed)."""
    assert principal({"sub": "a"}).namespaces is None
    assert principal({"sub": "a", "namespaces": None}).namespaces is None
    assert principal({"sub": "a", "namespaces": ["*"]}).namespaces is None
    assert principal({"sub": "a", "namespaces": "shop billing"}).namespaces == {"shop", "billing"}
    assert principal({"sub": "a", "namespaces": []}).namespaces == frozenset()
    assert principal({"sub": "a", "namespaces": [""]}).namespaces == frozenset()
    assert not principal({"sub": "a", "namespaces": []}).sees("shop")


def test_a_namespaces_claim_of_another_type_refuses_the_token() -> None:
    """A namespaces claim that is an object or a number is not read as 'all'."""
    with pytest.raises(InvalidToken) as refused:
        principal({"sub": "a", "tenant": {"shop": True}}, namespaces_claim="tenant")
    assert refused.value.reason == "malformed"
    assert str(refused.value) == "the token's 'tenant' claim is neither a list nor a text"


def test_the_subject_is_the_name_and_via_is_oidc() -> None:
    """The subject claim names the principal; a missing or empty subject refuses the token."""
    found = principal({"sub": "alice", "email": "a@example.com"}, subject_claim="email")
    assert found == Principal(name="a@example.com", roles=frozenset(), namespaces=None, via="oidc")
    for claims in ({}, {"sub": ""}, {"sub": 42}):
        with pytest.raises(InvalidToken) as refused:
            principal(claims)
        assert refused.value.reason == "missing-claim"
        assert str(refused.value) == "the token has no 'sub' claim"
