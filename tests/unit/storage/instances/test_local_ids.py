"""New instances get ids in the partitions their replica holds (it runs what it starts)."""

from __future__ import annotations

from typing import Any, cast

from workflow_orchestrator.storage.instances import partition_of
from workflow_orchestrator.storage.instances._creator import InstanceCreator


def _creator(held: frozenset[int] | None) -> InstanceCreator:
    # The ids are drawn without the database.
    return InstanceCreator(
        database=cast(Any, None), local_partitions=None if held is None else (lambda: held)
    )


def test_ids_land_in_the_held_partitions() -> None:
    held = frozenset(range(32, 64))
    creator = _creator(held)
    assert all(partition_of(creator._new_id()) in held for _ in range(500))


def test_one_held_partition_is_found_mostly() -> None:
    """64 draws find one partition of 64 about 64% of the time; the rest go anywhere."""
    creator = _creator(frozenset({7}))
    hits = sum(partition_of(creator._new_id()) == 7 for _ in range(400))
    assert 150 < hits < 400


def test_without_partitions_any_id_goes() -> None:
    for creator in (_creator(None), _creator(frozenset())):
        partitions = {partition_of(creator._new_id()) for _ in range(2000)}
        assert len(partitions) == 64
