"""When the JWKS is fetched again, and one fetch at a time (under trio's mock clock)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.support.tokens import jwks_of, new_rsa_key
from workflow_orchestrator.security import InvalidToken, TokenKeysUnavailable
from workflow_orchestrator.security._jwks_cache import CacheState, JwksCache, refresh_due
from workflow_orchestrator.security._key_set import JwksError, parse_key_set

OLD, NEW = new_rsa_key("old"), new_rsa_key("new")


class MemorySource:
    """A JWKS source in memory: counts fetches, can fail, can hold answers until let go."""

    def __init__(self, document: bytes) -> None:
        self.document = document
        self.fetches = 0
        self.failure: str | None = None
        self.gate: trio.Event | None = None

    async def __call__(self) -> bytes:
        self.fetches += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise JwksError(self.failure)
        return self.document


def cache(source: MemorySource, *, ttl: float = 300, refresh_interval: float = 30) -> JwksCache:
    return JwksCache(
        source,
        url="https://issuer.test/jwks",
        algorithms=("RS256",),
        ttl=ttl,
        refresh_interval=refresh_interval,
        timeout=10,
    )


def test_refresh_due_rules() -> None:
    """Nothing cached, stale, or unknown kid: fetch; never within refresh_interval of a try."""
    keys = parse_key_set(jwks_of(OLD), ("RS256",))
    fresh = CacheState(keys=keys, fetched_at=100.0, attempted_at=100.0)
    rules = {"ttl": 300.0, "refresh_interval": 30.0}
    assert refresh_due(CacheState(), "old", 0.0, **rules)
    assert refresh_due(CacheState(attempted_at=99.0), "old", 100.0, **rules)
    assert not refresh_due(fresh, "old", 399.0, **rules)
    assert refresh_due(fresh, "old", 400.0, **rules)
    assert not refresh_due(fresh, "new", 129.0, **rules)
    assert refresh_due(fresh, "new", 130.0, **rules)
    failed_since = CacheState(keys=keys, fetched_at=100.0, attempted_at=390.0)
    assert not refresh_due(failed_since, "old", 410.0, **rules)
    assert refresh_due(failed_since, "old", 420.0, **rules)


async def test_the_set_is_fetched_again_after_the_ttl(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Within the TTL the cached set serves; after it, one new fetch."""
    source = MemorySource(jwks_of(OLD))
    keys = cache(source)
    await keys.key_for("old", "RS256")
    await trio.sleep(299)
    await keys.key_for("old", "RS256")
    assert source.fetches == 1
    await trio.sleep(1)
    await keys.key_for("old", "RS256")
    assert source.fetches == 2


async def test_an_unknown_kid_refetches_at_most_every_refresh_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Made-up key ids cost one fetch per refresh interval, not one per token."""
    source = MemorySource(jwks_of(OLD))
    keys = cache(source)
    await keys.key_for("old", "RS256")
    await trio.sleep(30)
    for _ in range(5):
        with pytest.raises(InvalidToken) as refused:
            await keys.key_for("made-up", "RS256")
        assert refused.value.reason == "unknown-key"
    assert source.fetches == 2
    source.document = jwks_of(OLD, NEW)
    with pytest.raises(InvalidToken):
        await keys.key_for("new", "RS256")
    await trio.sleep(30)
    await keys.key_for("new", "RS256")
    assert source.fetches == 3
    assert keys.statistics().key_ids == ("old", "new")


async def test_a_failed_refresh_keeps_the_cached_set(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With the issuer failing, the stale set keeps serving and is retried at the interval."""
    source = MemorySource(jwks_of(OLD))
    keys = cache(source)
    await keys.key_for("old", "RS256")
    source.failure = "the issuer answered HTTP 503"
    await trio.sleep(300)
    await keys.key_for("old", "RS256")
    await keys.key_for("old", "RS256")
    assert (source.fetches, keys.statistics().failures) == (2, 1)
    await trio.sleep(30)
    await keys.key_for("old", "RS256")
    assert source.fetches == 3


async def test_nothing_cached_and_a_failed_fetch_is_keys_unavailable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """No set at all: `TokenKeysUnavailable` with the URL and the reason."""
    source = MemorySource(b"")
    source.failure = "ConnectError: [Errno 111] Connection refused"
    with pytest.raises(TokenKeysUnavailable) as unavailable:
        await cache(source).key_for("old", "RS256")
    assert str(unavailable.value) == (
        "the token issuer's signing keys cannot be fetched from https://issuer.test/jwks: "
        "ConnectError: [Errno 111] Connection refused; check "
        "security.authentication.oidc.jwksUrl and that the issuer is reachable"
    )


async def test_a_fetch_that_hangs_times_out(autojump_clock: trio.testing.MockClock) -> None:
    """A source that never answers fails after the timeout, naming it."""
    source = MemorySource(jwks_of(OLD))
    source.gate = trio.Event()
    with pytest.raises(TokenKeysUnavailable) as unavailable:
        await cache(source).key_for("old", "RS256")
    assert unavailable.value.reason == "no answer within 10s"


async def test_concurrent_lookups_share_one_fetch_and_its_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Twenty lookups waiting on one fetch all use its outcome: one success, or one failure."""
    for failure in (None, "the issuer answered HTTP 500"):
        source = MemorySource(jwks_of(OLD))
        source.gate, source.failure = trio.Event(), failure
        keys = cache(source)
        outcomes: list[str] = []

        async def look_up(keys: JwksCache = keys, outcomes: list[str] = outcomes) -> None:
            try:
                await keys.key_for("old", "RS256")
                outcomes.append("key")
            except TokenKeysUnavailable:
                outcomes.append("unavailable")

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(look_up)
            await trio.testing.wait_all_tasks_blocked()
            source.gate.set()
        assert source.fetches == 1
        assert outcomes == ["key" if failure is None else "unavailable"] * 20


async def test_a_cancelled_fetch_lets_the_next_waiter_fetch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The lookup that fetches is cancelled (its client left): a waiter fetches instead."""
    source = MemorySource(jwks_of(OLD))
    source.gate = trio.Event()
    keys = cache(source)
    found: list[object] = []
    async with trio.open_nursery() as nursery:
        first = trio.CancelScope()

        async def cancelled() -> None:
            with first:
                await keys.key_for("old", "RS256")

        async def waiting() -> None:
            found.append(await keys.key_for("old", "RS256"))

        nursery.start_soon(cancelled)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(waiting)
        await trio.testing.wait_all_tasks_blocked()
        first.cancel()
        await trio.testing.wait_all_tasks_blocked()
        source.gate.set()
    assert source.fetches == 2
    assert len(found) == 1
