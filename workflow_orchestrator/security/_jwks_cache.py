"""The cached JWKS of the token issuer: when to fetch it again, and one fetch at a time.

Rules (`refresh_due`, pure, tested under trio's mock clock):

- nothing cached: fetch;
- the set is older than ``ttl`` (``jwksCacheTtl``): fetch again;
- a token names a key id the set lacks (the issuer rotated its keys): fetch again;
- but never two attempts closer than ``refresh_interval`` (``jwksRefreshInterval``) while a set
  is cached, so tokens with made-up key ids cannot make the service hammer the issuer, and a
  failing issuer is retried at that pace while the cached set keeps serving.

A failed fetch never drops the cached set. With nothing cached it raises
`TokenKeysUnavailable`. However many verifications need a fetch at once, one fetch runs and
every one of them uses its outcome (`JwksCache._fetch_once`). Each fetch is bounded by
``timeout``; the source itself (``_jwks_http``) also caps the size of the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

import attrs
import jwt
import trio

from workflow_orchestrator.security._errors import InvalidToken, TokenKeysUnavailable
from workflow_orchestrator.security._key_set import JwksError, KeySet, parse_key_set

__all__ = ["CacheState", "JwksCache", "JwksStatistics", "refresh_due"]

logger = logging.getLogger(__name__)

#: Fetches the JWKS document; raises `JwksError` (the reason) when it cannot.
JwksSource = Callable[[], Awaitable[bytes]]


@attrs.frozen(kw_only=True)
class CacheState:
    """What the cache holds: the key set and when it was fetched, and the last attempt."""

    keys: KeySet | None = None
    fetched_at: float | None = None
    attempted_at: float | None = None


@attrs.frozen(kw_only=True)
class JwksStatistics:
    """A snapshot of the cache: fetch attempts and failures, the cached key ids."""

    fetches: int
    failures: int
    key_ids: tuple[str | None, ...]


def refresh_due(
    state: CacheState, kid: str | None, now: float, *, ttl: float, refresh_interval: float
) -> bool:
    """Whether a token naming ``kid`` should wait for a new fetch of the key set."""
    if state.keys is None or state.fetched_at is None:
        return True
    if state.attempted_at is not None and now - state.attempted_at < refresh_interval:
        return False
    return now - state.fetched_at >= ttl or not state.keys.has(kid)


class JwksCache:
    """The key set of one issuer, fetched from ``source`` when `refresh_due` says so."""

    def __init__(
        self,
        source: JwksSource,
        *,
        url: str,
        algorithms: Iterable[str],
        ttl: float,
        refresh_interval: float,
        timeout: float,
    ) -> None:
        self._source = source
        self._url = url
        self._algorithms = tuple(algorithms)
        self._ttl = ttl
        self._refresh_interval = refresh_interval
        self._timeout = timeout
        self._state = CacheState()
        self._lock = trio.Lock()
        self._attempts = 0
        self._failures = 0
        self._last_reason = "not fetched yet"

    def statistics(self) -> JwksStatistics:
        """Fetch attempts so far (failed ones included) and the key ids now cached."""
        keys = self._state.keys
        return JwksStatistics(
            fetches=self._attempts,
            failures=self._failures,
            key_ids=tuple(keys.key_ids) if keys is not None else (),
        )

    async def key_for(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """The key verifying ``algorithm`` signatures of a token naming ``kid``.

        Fetches the set first when `refresh_due`. Raises `TokenKeysUnavailable` when no set
        can be had, `InvalidToken` (``unknown-key``) when the set has no such key.
        """
        now = trio.current_time()
        if refresh_due(
            self._state, kid, now, ttl=self._ttl, refresh_interval=self._refresh_interval
        ):
            await self._fetch_once()
        keys = self._state.keys
        if keys is None:
            raise TokenKeysUnavailable(self._url, self._last_reason)
        key = keys.key_for(kid, algorithm)
        if key is None:
            raise InvalidToken("unknown-key", "the token is signed by an unknown key")
        return key

    async def _fetch_once(self) -> None:
        # The attempt counter tells a waiter whether a fetch ended while it waited for the
        # lock: then it uses that outcome instead of fetching again. A fetch cancelled with its
        # caller does not count, so the next waiter fetches.
        seen = self._attempts
        async with self._lock:
            if self._attempts != seen:
                return
            try:
                with trio.fail_after(self._timeout):
                    keys = parse_key_set(await self._source(), self._algorithms)
            except (JwksError, trio.TooSlowError) as error:
                reason = (
                    f"no answer within {self._timeout:g}s"
                    if isinstance(error, trio.TooSlowError)
                    else str(error)
                )
                self._record_failure(reason)
            else:
                now = trio.current_time()
                self._state = CacheState(keys=keys, fetched_at=now, attempted_at=now)
                self._attempts += 1
                logger.info(
                    "fetched the token signing keys from %s: key ids %s",
                    self._url,
                    keys.key_ids,
                    extra={"jwks_url": self._url},
                )

    def _record_failure(self, reason: str) -> None:
        self._state = attrs.evolve(self._state, attempted_at=trio.current_time())
        self._attempts += 1
        self._failures += 1
        self._last_reason = reason
        cached = self._state.keys is not None
        logger.warning(
            "cannot fetch the token signing keys from %s: %s; %s",
            self._url,
            reason,
            "the cached keys stay in use" if cached else "tokens cannot be verified meanwhile",
            extra={"jwks_url": self._url},
        )
