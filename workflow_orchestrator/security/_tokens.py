"""OIDC/JWT bearer tokens: `OidcVerifier` turns a token into a `Principal` or refuses it.

A token is accepted only when all of these hold, checked in this order (the first failure is
the reason given):

1. it has a JWT's shape and is at most `MAX_TOKEN_LENGTH` characters (``malformed``);
2. its header's ``alg`` is one of ``security.authentication.oidc.algorithms``, which can only
   list asymmetric algorithms: never ``none``, never HMAC (``algorithm-not-allowed``);
3. the issuer's JWKS (``_jwks_cache``) has a key with the header's ``kid`` for that algorithm
   (``unknown-key``; `TokenKeysUnavailable` when no JWKS can be had at all);
4. the signature verifies with that key (``bad-signature``);
5. ``exp``, ``iss`` and ``aud`` are present (``missing-claim``), the token is not expired and
   ``nbf``/``iat`` are not in the future, within ``leeway`` (``expired``, ``not-yet-valid``),
   ``iss`` is the issuer and ``aud`` names the audience (``wrong-issuer``, ``wrong-audience``);
6. the subject claim is a non-empty text (``missing-claim``).

Roles and namespaces then come from the claims (``_claims``). Verification itself does no I/O
but the JWKS fetches. Decoding and checking a token costs about half a millisecond of CPU, so
the principals of the last `VERIFIED_CACHE_SIZE` tokens accepted are kept until they expire:
a token seen again skips the decode as long as the key that verified it is still the one the
JWKS cache gives for it (a rotation or a refetched set verifies it again).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import trio

from workflow_orchestrator.config import OidcSettings
from workflow_orchestrator.security._claims import looks_like_jwt, principal_from_claims
from workflow_orchestrator.security._errors import InvalidToken
from workflow_orchestrator.security._jwks_cache import JwksCache, JwksSource, JwksStatistics
from workflow_orchestrator.security._jwks_http import (
    DEFAULT_MAX_JWKS_SIZE,
    HttpJwksSource,
    printable_url,
)
from workflow_orchestrator.security._key_set import SIGNING_ALGORITHMS
from workflow_orchestrator.security._principal import Principal

__all__ = [
    "DEFAULT_JWKS_TIMEOUT",
    "MAX_TOKEN_LENGTH",
    "VERIFIED_CACHE_SIZE",
    "OidcVerifier",
    "open_oidc_verifier",
]

logger = logging.getLogger(__name__)

#: The longest token looked at; real ones are a few kilobytes at most.
MAX_TOKEN_LENGTH = 16 * 1024
#: How many accepted tokens keep their principal (until they expire).
VERIFIED_CACHE_SIZE = 10_000
#: How long one fetch of the JWKS may take.
DEFAULT_JWKS_TIMEOUT = 10.0

# PyJWT's errors, most specific first, and the reason each one is.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str, str], ...] = (
    (jwt.ExpiredSignatureError, "expired", "the token has expired"),
    (jwt.ImmatureSignatureError, "not-yet-valid", "the token is not valid yet"),
    (jwt.InvalidAudienceError, "wrong-audience", "the token is not meant for this service"),
    (jwt.InvalidIssuerError, "wrong-issuer", "the token is not from the accepted issuer"),
    (jwt.InvalidSignatureError, "bad-signature", "the token's signature is not valid"),
    (jwt.InvalidAlgorithmError, "algorithm-not-allowed", "the token's algorithm is not allowed"),
    (jwt.InvalidKeyError, "unknown-key", "the token is signed by an unusable key"),
)


def _refusal(error: jwt.PyJWTError) -> InvalidToken:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return InvalidToken("missing-claim", f"the token has no '{error.claim}' claim")
    for kind, reason, message in _REASONS:
        if isinstance(error, kind):
            return InvalidToken(reason, message)
    return InvalidToken("malformed", "the token is malformed")


class OidcVerifier:
    """Verifies bearer tokens of one issuer (``security.authentication.oidc``).

    ``source`` fetches the issuer's JWKS document (`open_oidc_verifier` gives one over HTTP);
    a fetch taking longer than ``fetch_timeout`` seconds counts as failed.
    Raises `ValueError` naming the setting when ``settings.algorithms`` lists an algorithm
    that is not an asymmetric signature (the configuration refuses those first).
    """

    def __init__(
        self,
        settings: OidcSettings,
        source: JwksSource,
        *,
        fetch_timeout: float = DEFAULT_JWKS_TIMEOUT,
    ) -> None:
        refused = sorted(set(settings.algorithms) - SIGNING_ALGORITHMS)
        if refused or not settings.algorithms:
            what = f"{', '.join(refused)} cannot verify tokens" if refused else "it is empty"
            raise ValueError(
                f"security.authentication.oidc.algorithms: {what}; list some of "
                f"{', '.join(sorted(SIGNING_ALGORITHMS))} (asymmetric signatures only)"
            )
        self._settings = settings
        self._algorithms = frozenset(settings.algorithms)
        # token -> (the principal, its kid and alg, the key that verified it, its exp claim)
        self._verified: OrderedDict[str, tuple[Principal, str | None, str, jwt.PyJWK, float]] = (
            OrderedDict()
        )
        self._keys = JwksCache(
            source,
            url=printable_url(settings.jwks_url),
            algorithms=settings.algorithms,
            ttl=settings.jwks_cache_ttl,
            refresh_interval=settings.jwks_refresh_interval,
            timeout=fetch_timeout,
        )

    def statistics(self) -> JwksStatistics:
        """The JWKS cache's fetches, failures and cached key ids."""
        return self._keys.statistics()

    async def verify(self, token: str) -> Principal:
        """The principal ``token`` stands for.

        Raises `InvalidToken` (an `Unauthenticated`) with a reason safe to show the client,
        or `TokenKeysUnavailable` when the issuer's keys cannot be fetched and none are cached.
        """
        try:
            return await self._verify(token)
        except InvalidToken as refusal:
            logger.debug("bearer token refused: %s", refusal.reason)
            raise

    async def _verify(self, token: str) -> Principal:
        seen = self._verified.get(token)
        if seen is not None:
            principal, seen_kid, seen_algorithm, verified_with, expires = seen
            current = await self._keys.key_for(seen_kid, seen_algorithm)
            if current is verified_with and time.time() <= expires + self._settings.leeway:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        if len(token) > MAX_TOKEN_LENGTH or not looks_like_jwt(token):
            raise InvalidToken("malformed", "the token is malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed", "the token is malformed") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise InvalidToken("algorithm-not-allowed", "the token's algorithm is not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("malformed", "the token is malformed")
        key = await self._keys.key_for(kid, algorithm)
        settings = self._settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway,
                options={
                    "require": ["exp", "iss", "aud"],
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as error:
            raise _refusal(error) from None
        principal = principal_from_claims(
            claims,
            subject_claim=settings.subject_claim,
            roles_claim=settings.roles_claim,
            namespaces_claim=settings.namespaces_claim,
        )
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            self._verified[token] = (principal, kid, algorithm, key, float(exp))
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal


@asynccontextmanager
async def open_oidc_verifier(
    settings: OidcSettings,
    *,
    fetch_timeout: float = DEFAULT_JWKS_TIMEOUT,
    max_jwks_size: int = DEFAULT_MAX_JWKS_SIZE,
) -> AsyncIterator[OidcVerifier]:
    """A verifier fetching the JWKS from ``settings.jwks_url`` with its own HTTP client,
    closed (shielded, within 5 seconds) when the block exits."""
    client = httpx.AsyncClient(timeout=httpx.Timeout(fetch_timeout))
    try:
        source = HttpJwksSource(client, settings.jwks_url, max_size=max_jwks_size)
        yield OidcVerifier(settings, source, fetch_timeout=fetch_timeout)
    finally:
        with trio.move_on_after(5, shield=True):
            await client.aclose()
