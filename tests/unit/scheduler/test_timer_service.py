"""The timer service's decisions without PostgreSQL: stale claims and one wake-up per instance."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from workflow_orchestrator.scheduler._timer_service import earliest_due, gained_partitions
from workflow_orchestrator.storage.scheduling import DueTimer

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def test_new_partitions_and_new_epochs_are_gained() -> None:
    """A partition held anew, or again under another epoch, has stale claims; a kept one not."""
    previous = {1: 4, 2: 7}
    held = {1: 4, 2: 8, 3: 1}
    assert gained_partitions(previous, held) == [2, 3]
    assert gained_partitions(held, held) == []
    assert gained_partitions({}, {}) == []


def test_each_instance_is_woken_at_its_earliest_timer() -> None:
    """Several claimed timers of one instance arm one wake-up at the earliest due time."""
    first, second = uuid.uuid4(), uuid.uuid4()
    timers = [
        DueTimer(instance_id=first, due_at=NOW + timedelta(seconds=3)),
        DueTimer(instance_id=second, due_at=NOW),
        DueTimer(instance_id=first, due_at=NOW + timedelta(seconds=1)),
    ]
    assert earliest_due(timers) == {first: NOW + timedelta(seconds=1), second: NOW}
