"""Partition leases against the real PostgreSQL: acquire, renew, expiry, takeover, epochs."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from tests.integration.storage.helpers import open_storage
from workflow_orchestrator.storage import (
    LeaseSet,
    PartitionLeases,
    acquire_partitions,
    partitions_per_owner,
    release_partitions,
    renew_partitions,
    run_lease_keeper,
)

pytestmark = pytest.mark.integration

ALL = frozenset(range(64))


async def test_one_replica_takes_every_partition(database_url: str) -> None:
    """A lone owner acquires all 64 partitions at epoch 1; renewing keeps the epochs."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            first = await acquire_partitions(database, "replica-a", ttl=30)
            renewed = await renew_partitions(database, "replica-a", ttl=60)
            again = await acquire_partitions(database, "replica-a", ttl=30)
            other = await acquire_partitions(database, "replica-b", ttl=30)
    assert first.partitions == ALL and {lease.epoch for lease in first.leases.values()} == {1}
    assert renewed.partitions == ALL and renewed.epoch_of(5) == 1
    assert renewed.leases[5].expires_at > first.leases[5].expires_at
    assert again.partitions == ALL and again.epoch_of(63) == 1
    assert other.partitions == frozenset() and other.epoch_of(0) is None


async def test_expired_lease_is_taken_over_with_a_new_epoch(database_url: str) -> None:
    """After expiry another owner takes the partition at epoch + 1; the old owner cannot renew."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            await acquire_partitions(database, "replica-a", ttl=30, target=2)
            await database.execute(
                "UPDATE partition_leases SET expires_at = now() - interval '1 second' "
                "WHERE partition = 1"
            )
            taken = await acquire_partitions(database, "replica-b", ttl=30, target=1)
            still = await renew_partitions(database, "replica-a", ttl=30)
            back = await acquire_partitions(database, "replica-a", ttl=30, target=2)
    assert taken.partitions == {1} and taken.epoch_of(1) == 2
    assert still.partitions == {0} and still.epoch_of(0) == 1
    assert back.partitions == {0, 2}  # partition 1 is b's; a tops up with the next free one


async def test_release_hands_over_at_once(database_url: str) -> None:
    """Released partitions are free immediately and their next owner gets a new epoch."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            await acquire_partitions(database, "replica-a", ttl=30)
            released = await release_partitions(database, "replica-a", [3, 4])
            taken = await acquire_partitions(database, "replica-b", ttl=30)
            rest = await release_partitions(database, "replica-a")
            reacquired = await acquire_partitions(database, "replica-a", ttl=30, target=63)
    assert released == {3, 4}
    assert taken.partitions == {3, 4} and taken.epoch_of(3) == 2
    assert rest == ALL - {3, 4}
    assert reacquired.partitions == ALL - {3, 4} and reacquired.epoch_of(0) == 2


async def test_concurrent_owners_split_the_partitions(database_url: str) -> None:
    """Two owners acquiring at once never take the same partition (SKIP LOCKED)."""
    results: dict[str, LeaseSet] = {}
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            target = partitions_per_owner(64, 2)

            async def take(owner: str) -> None:
                results[owner] = await acquire_partitions(database, owner, ttl=30, target=target)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(take, "replica-a")
                nursery.start_soon(take, "replica-b")
    a, b = results["replica-a"].partitions, results["replica-b"].partitions
    assert target == 32 and len(a) == len(b) == 32
    assert not a & b and a | b == ALL


async def test_a_replica_that_joins_gets_its_fair_share(database_url: str) -> None:
    """The holder gives back what exceeds ceil(64 / members) at its next round; the joiner
    takes it (new epochs); when the joiner leaves, the holder takes everything back."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            alone = await acquire_partitions(database, "replica-a", ttl=30)
            joined = await acquire_partitions(database, "replica-b", ttl=30)
            shared = await acquire_partitions(database, "replica-a", ttl=30)
            taken = await acquire_partitions(database, "replica-b", ttl=30)
            await release_partitions(database, "replica-b")
            regained = await acquire_partitions(database, "replica-a", ttl=30)
    assert alone.partitions == ALL and joined.partitions == frozenset()
    assert shared.partitions == frozenset(range(32)) and shared.epoch_of(0) == 1
    assert taken.partitions == frozenset(range(32, 64)) and taken.epoch_of(40) == 2
    assert regained.partitions == ALL and regained.epoch_of(40) == 3


async def test_lease_keeper_holds_and_releases(database_url: str) -> None:
    """run_lease_keeper reports its leases when started, renews them, and releases on exit."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            async with trio.open_nursery() as nursery:
                keeper = partial(run_lease_keeper, database, "replica-a", ttl=30.0, renew_every=0.1)
                leases = await nursery.start(keeper)
                assert isinstance(leases, PartitionLeases)
                held = leases.current()
                await trio.sleep(0.35)
                renewed = leases.current()
                nursery.cancel_scope.cancel()
            owners = await database.fetchval(
                "SELECT count(*) FROM partition_leases WHERE owner_id IS NOT NULL"
            )
    assert held.partitions == ALL
    assert renewed.leases[0].expires_at > held.leases[0].expires_at
    assert renewed.epoch_of(0) == held.epoch_of(0) == 1
    assert owners == 0


async def test_one_live_process_per_replica_id(database_url: str) -> None:
    """A second holder of a replica id is refused while the first lives, accepted after it."""
    from workflow_orchestrator.storage import OwnerIdInUse, hold_owner_id

    with trio.fail_after(60):
        async with open_storage(database_url) as database:
            async with hold_owner_id(database, "replica-a"):
                with pytest.raises(OwnerIdInUse) as exc:
                    async with hold_owner_id(database, "replica-a", attempts=2):
                        pass
                async with hold_owner_id(database, "replica-b", attempts=1):
                    pass
            async with hold_owner_id(database, "replica-a", attempts=1):
                pass
    assert str(exc.value) == (
        "another running process already uses replica id 'replica-a' on this database; give "
        "each replica its own cluster.replicaId (or REPLICA_ID)"
    )
    assert exc.value.owner_id == "replica-a"
