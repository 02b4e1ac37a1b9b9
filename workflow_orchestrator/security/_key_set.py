"""An issuer's JSON Web Key Set, parsed into the keys a token may be verified with.

Pure: bytes in, a `KeySet` out. Every key is bound to the algorithms it may verify *before* a
token is seen, so the token's header only selects among them and never decides how a key is
used: an RSA key verifies RS*/PS* signatures, an EC key the ES* algorithm of its curve, an OKP
key EdDSA; a key that says ``alg`` verifies only that one; a symmetric (``oct``) key, a key for
encryption (``use: enc``) and a key whose ``key_ops`` exclude ``verify`` are never used, and
neither is any algorithm outside the configured list (so never ``none`` or HMAC).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import jwt

from workflow_orchestrator.errors import OrchestratorError

__all__ = ["SIGNING_ALGORITHMS", "JwksError", "KeySet", "parse_key_set"]

logger = logging.getLogger(__name__)

#: Every algorithm a token may be signed with, by key type (and curve).
_BY_KEY_TYPE: dict[tuple[str, str | None], frozenset[str]] = {
    ("RSA", None): frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    ("EC", "P-256"): frozenset({"ES256"}),
    ("EC", "P-384"): frozenset({"ES384"}),
    ("EC", "P-521"): frozenset({"ES512"}),
    ("OKP", "Ed25519"): frozenset({"EdDSA"}),
    ("OKP", "Ed448"): frozenset({"EdDSA"}),
}
#: The asymmetric signature algorithms ``security.authentication.oidc.algorithms`` may list.
SIGNING_ALGORITHMS: frozenset[str] = frozenset().union(*_BY_KEY_TYPE.values())


class JwksError(OrchestratorError):
    """A JWKS that cannot be had or used (the reason is the message); the cache turns it into
    `TokenKeysUnavailable` when nothing is cached, and never lets it out otherwise."""


@attrs.frozen
class KeySet:
    """Usable keys: key id (None for a key without one) -> algorithm -> key."""

    keys: Mapping[str | None, Mapping[str, jwt.PyJWK]]

    @property
    def key_ids(self) -> list[str | None]:
        """The key ids, in the document's order."""
        return list(self.keys)

    def has(self, kid: str | None) -> bool:
        """Whether a token naming ``kid`` (None: naming none) finds a key here at all."""
        if kid is None:
            return bool(self.keys)
        return kid in self.keys

    def key_for(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        """The key that verifies ``algorithm`` signatures for a token naming ``kid``.

        A token without a ``kid`` gets the key only when exactly one key of the set verifies
        its algorithm (an issuer with one key often omits it); otherwise None.
        """
        if kid is not None:
            return self.keys.get(kid, {}).get(algorithm)
        found = [by_alg[algorithm] for by_alg in self.keys.values() if algorithm in by_alg]
        return found[0] if len(found) == 1 else None


def _algorithms_of(jwk: Mapping[str, Any], allowed: frozenset[str]) -> frozenset[str]:
    if jwk.get("use", "sig") != "sig":
        return frozenset()
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return frozenset()
    kty = jwk.get("kty")
    crv = None if kty == "RSA" else jwk.get("crv")
    if not isinstance(kty, str) or not (crv is None or isinstance(crv, str)):
        return frozenset()
    possible = _BY_KEY_TYPE.get((kty, crv), frozenset()) & allowed
    declared = jwk.get("alg")
    if declared is not None:
        return possible & {declared} if isinstance(declared, str) else frozenset()
    return possible


def parse_key_set(document: bytes, algorithms: Iterable[str]) -> KeySet:
    """The usable keys of a JWKS ``document`` for the ``algorithms`` allowed.

    Keys that cannot verify any allowed algorithm are skipped (a set often holds encryption
    keys too); raises `JwksError` when the document is not a JWKS or no key is usable.
    """
    allowed = frozenset(algorithms) & SIGNING_ALGORITHMS
    try:
        parsed = json.loads(document)
    except (ValueError, UnicodeDecodeError) as error:
        raise JwksError(f"the answer is not JSON ({error})") from None
    entries = parsed.get("keys") if isinstance(parsed, dict) else None
    if not isinstance(entries, list):
        raise JwksError("the answer is not a JWKS (an object with a 'keys' list)")
    keys: dict[str | None, dict[str, jwt.PyJWK]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        for algorithm in sorted(_algorithms_of(entry, allowed)):
            try:
                key = jwt.PyJWK(entry, algorithm=algorithm)
            except jwt.PyJWTError as error:
                logger.debug("JWKS key %r skipped: %s", kid, error)
                continue
            keys.setdefault(kid, {}).setdefault(algorithm, key)
    if not keys:
        raise JwksError(f"no key verifies any of the algorithms {', '.join(sorted(allowed))}")
    return KeySet(keys=keys)
