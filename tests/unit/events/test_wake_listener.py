"""Which ids of a wake-up payload this replica activates."""

from __future__ import annotations

import uuid

from workflow_orchestrator.events._wake_listener import wake_target
from workflow_orchestrator.storage.instances import partition_of

INSTANCE = uuid.UUID("6f1c1d2e-8a51-4c39-9d0e-0d8f4b7f7a10")
MINE = frozenset({partition_of(INSTANCE)})


def test_an_idle_instance_of_a_held_partition_is_activated() -> None:
    """An instance of this replica's partitions that is not running is woken."""
    assert wake_target(str(INSTANCE), MINE, set()) == INSTANCE


def test_instances_of_other_partitions_or_already_running_are_left_alone() -> None:
    """Another replica's instance, or one running here already, is not activated again."""
    assert wake_target(str(INSTANCE), frozenset(), set()) is None
    assert wake_target(str(INSTANCE), MINE, {INSTANCE}) is None


def test_text_that_is_not_an_instance_id_is_ignored() -> None:
    """A malformed id in a payload is skipped, not an error."""
    assert wake_target("not-a-uuid", MINE, set()) is None
    assert wake_target("", MINE, set()) is None
