"""API keys: plain or SHA-256-hashed, every key compared, roles and namespaces carried."""

from __future__ import annotations

import hashlib

import pytest

from workflow_orchestrator.config import ApiKeySettings
from workflow_orchestrator.security import (
    ANONYMOUS,
    ApiKeys,
    Authenticator,
    Permission,
    Principal,
    Unauthenticated,
    looks_like_jwt,
    namespaces_from,
)

PLAIN = "plain-key-0123456789abcdef"
HASHED = "hashed-key-fedcba9876543210"


def keys() -> ApiKeys:
    return ApiKeys(
        [
            ApiKeySettings(name="ops", key=PLAIN, roles=("operator",), namespaces=("shop",)),
            ApiKeySettings(
                name="root",
                key="sha256:" + hashlib.sha256(HASHED.encode()).hexdigest(),
                roles=("admin",),
                namespaces=("*",),
            ),
        ]
    )


def test_a_plain_and_a_hashed_key_find_their_principals() -> None:
    found = keys()
    ops = found.find(PLAIN)
    root = found.find(HASHED)
    assert ops == Principal(
        name="ops", roles=frozenset({"operator"}), namespaces=frozenset({"shop"})
    )
    assert root is not None and root.name == "root" and root.namespaces is None
    assert found.find(PLAIN + "x") is None
    assert found.find("sha256:" + hashlib.sha256(HASHED.encode()).hexdigest()) is None
    assert found.find("") is None


def test_roles_give_their_permissions() -> None:
    operator = Principal(name="o", roles=frozenset({"operator"}))
    assert operator.may(Permission.READ) and operator.may(Permission.OPERATE)
    assert not operator.may(Permission.DEVELOP) and not operator.may(Permission.ADMIN)
    publisher = Principal(name="p", roles=frozenset({"publisher"}))
    assert publisher.permissions == frozenset({Permission.PUBLISH})
    both = Principal(name="b", roles=frozenset({"developer", "publisher"}))
    assert both.may(Permission.DEVELOP) and both.may(Permission.PUBLISH)
    assert not both.may(Permission.OPERATE)
    assert ANONYMOUS.permissions == frozenset(Permission)


def test_namespaces() -> None:
    assert namespaces_from([]) is None
    assert namespaces_from(["*"]) is None
    assert namespaces_from(["shop", "*"]) is None
    assert namespaces_from(["shop", "billing"]) == frozenset({"shop", "billing"})
    principal = Principal(name="x", roles=frozenset({"viewer"}), namespaces=frozenset({"shop"}))
    assert principal.sees("shop") and not principal.sees("billing")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "needs a credential"),
        ("", "needs a credential"),
        ("Basic abc", "must be 'Bearer"),
        ("Bearer", "must be 'Bearer"),
        ("Bearer wrong-key-0123456789", "not valid"),
        ("Bearer " + "k" * 9000, "not valid"),
    ],
)
async def test_the_authenticator_refuses_what_is_not_a_known_key(
    header: str | None, reason: str
) -> None:
    authenticator = Authenticator(enabled=True, api_keys=keys())
    with pytest.raises(Unauthenticated, match=reason):
        await authenticator.authenticate(header)


async def test_the_authenticator_accepts_a_key_in_any_case_of_the_scheme() -> None:
    authenticator = Authenticator(enabled=True, api_keys=keys())
    assert (await authenticator.authenticate(f"bearer {PLAIN}")).name == "ops"
    assert (await authenticator.authenticate(f"  Bearer   {HASHED} ")).name == "root"


async def test_with_authentication_off_everyone_is_anonymous() -> None:
    authenticator = Authenticator(enabled=False, api_keys=keys())
    assert await authenticator.authenticate(None) is ANONYMOUS
    assert await authenticator.authenticate("Bearer whatever") is ANONYMOUS


class _Tokens:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def verify(self, token: str) -> Principal:
        self.seen.append(token)
        return Principal(name="sub-1", roles=frozenset({"viewer"}), via="oidc")


async def test_a_jwt_goes_to_the_token_verifier_and_a_key_does_not() -> None:
    tokens = _Tokens()
    authenticator = Authenticator(enabled=True, api_keys=keys(), tokens=tokens)
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    assert looks_like_jwt(jwt) and not looks_like_jwt(PLAIN)
    assert (await authenticator.authenticate(f"Bearer {jwt}")).via == "oidc"
    assert (await authenticator.authenticate(f"Bearer {PLAIN}")).name == "ops"
    assert tokens.seen == [jwt]
