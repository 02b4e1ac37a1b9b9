"""From a verified token's claims to a `Principal`, and telling a JWT from an API key.

Pure functions: no I/O, no clock. The token's signature and registered claims are checked
before these run (``_tokens``); here only the claims that carry who the caller is are read.

Invariants:

- roles are only the known ones (``viewer``, ``operator``, ``developer``, ``publisher``,
  ``admin``); anything else the issuer puts in the claim is dropped, never an error;
- a namespaces claim that is absent (or null) or holds ``*`` means every namespace; one that
  is present but empty means none (fail closed: an issuer that says "no namespaces" is not
  read as "all of them"); one of another type refuses the token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.config import ROLES
from workflow_orchestrator.security._errors import InvalidToken
from workflow_orchestrator.security._principal import Principal, namespaces_from

__all__ = ["claim_at", "looks_like_jwt", "principal_from_claims", "words_of"]

# header.payload.signature, each base64url without padding (the signature may be empty, as in
# an unsigned token, which the verifier then refuses by its algorithm).
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_MISSING = object()


def looks_like_jwt(text: str) -> bool:
    """Whether ``text`` has a JWT's shape: three base64url parts separated by dots.

    The gateway uses it to send a bearer credential to the token verifier rather than to the
    API keys; it says nothing about whether the token is valid.
    """
    return _JWT.fullmatch(text) is not None


def claim_at(claims: Mapping[str, Any], name: str) -> Any:
    """The claim ``name``, or None when absent.

    A name that is a key of ``claims`` is taken as is (``https://example.com/roles``, as some
    issuers name their claims); otherwise a dotted name walks into objects
    (``realm_access.roles``).
    """
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def words_of(value: Any) -> list[str] | None:
    """The texts of a claim that is a list of texts or a space-separated text; None for any
    other type (items of a list that are not texts are dropped)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return None


def principal_from_claims(
    claims: Mapping[str, Any],
    *,
    subject_claim: str,
    roles_claim: str,
    namespaces_claim: str,
) -> Principal:
    """The principal a verified token stands for (``via="oidc"``).

    Raises `InvalidToken` (``missing-claim``) when the subject claim is not a non-empty text
    and (``malformed``) when the namespaces claim is neither a list nor a text.
    """
    subject = claim_at(claims, subject_claim)
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("missing-claim", f"the token has no '{subject_claim}' claim")
    roles = frozenset(r for r in words_of(claim_at(claims, roles_claim)) or () if r in ROLES)
    raw_namespaces = claim_at(claims, namespaces_claim)
    namespaces: frozenset[str] | None
    if raw_namespaces is None:
        namespaces = None
    else:
        words = words_of(raw_namespaces)
        if words is None:
            raise InvalidToken(
                "malformed",
                f"the token's '{namespaces_claim}' claim is neither a list nor a text",
            )
        listed = [word for word in words if word]
        namespaces = namespaces_from(listed) if listed else frozenset()
    return Principal(name=subject, roles=roles, namespaces=namespaces, via="oidc")
