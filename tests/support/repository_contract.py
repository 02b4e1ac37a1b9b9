"""The instance repository contract: what every ``InstanceRepository`` does.

``InstanceRepositoryContract`` holds the tests; a test module subclasses it (``TestXxx``) and
provides an ``open_harness`` fixture: a callable opening a ``RepositoryHarness``. The
``DatabaseInstanceRepository`` runs them against PostgreSQL (``tests/integration/instances``),
``InMemoryInstanceStore`` in memory (``tests/unit/instances``), so the runtime's unit tests
run on a store that behaves as the database does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import pytest
import trio

from workflow_orchestrator.instances import DefinitionSource, InstanceRepository
from workflow_orchestrator.storage import (
    DefinitionNotFound,
    InstanceNotFound,
    InvalidStatusTransition,
)
from workflow_orchestrator.storage.instances import (
    COMMAND_VERSION_STEP,
    DEFAULT_PARTITION_COUNT,
    InstanceStatus,
    NewInstance,
    Retry,
    partition_of,
)

ALL = frozenset(range(DEFAULT_PARTITION_COUNT))


def document(definition_id: str, version: str) -> dict[str, Any]:
    """A small valid definition document."""
    return {
        "document": {
            "dsl": "1.0.3",
            "namespace": "shop",
            "name": definition_id,
            "version": version,
        },
        "do": [{"greet": {"set": {"hello": "world"}}}],
    }


class RepositoryHarness(Protocol):
    """A repository and the levers the contract needs around it."""

    repository: InstanceRepository
    definitions: DefinitionSource  # the same object as ``repository`` in both

    async def register(self, definition_id: str, version: str) -> None:
        """Register ``document(definition_id, version)`` (the latest version from now on)."""
        ...

    async def delete(self, definition_id: str) -> None:
        """Soft-delete every version of ``definition_id``."""
        ...

    async def deliver(self, instance_id: uuid.UUID, event_id: str) -> None:
        """Put an event in the instance's inbox."""
        ...

    async def history(self, instance_id: uuid.UUID) -> list[str]:
        """The kinds of the instance's history rows, in order."""
        ...

    async def woken(self, count: int) -> list[uuid.UUID]:
        """The first ``count`` ids given to ``notify_wake``, as the other replicas see them."""
        ...

    async def create_child(
        self, parent_id: uuid.UUID, *, awaited: bool = True, number: int = 1
    ) -> uuid.UUID:
        """A pending child of ``parent_id`` of ``orders`` 1.0.0 (as a parent's snapshot
        creates it), with an id made of ``parent_id`` and ``number``."""
        ...


OpenHarness = Callable[[], AbstractAsyncContextManager[RepositoryHarness]]


async def _create(harness: RepositoryHarness, key: str | None = None, **changes: Any) -> Any:
    values: dict[str, Any] = {
        "definition_id": "orders",
        "definition_version": "1.0.0",
        "input": {"n": 1},
        "business_key": None,
        "idempotency_key": key,
    }
    values.update(changes)
    return await harness.repository.create_instance(**values)


class InstanceRepositoryContract:
    """The contract tests (see the module docstring)."""

    async def test_create_is_idempotent_by_key(self, open_harness: OpenHarness) -> None:
        """A create makes a pending instance in its partition; a create with a used key
        returns that instance, whatever the other arguments say."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                await harness.register("orders", "1.0.0")
                record, created = await _create(harness, "k1", business_key="b-1")
                again, created_again = await _create(harness, "k1", input={"n": 2})
                other, created_other = await _create(harness)
        assert created and record.status is InstanceStatus.PENDING
        assert (record.input, record.business_key, record.idempotency_key) == (
            {"n": 1},
            "b-1",
            "k1",
        )
        assert record.partition == partition_of(record.instance_id)
        assert record.snapshot_version == 0 and record.completed_at is None
        assert (again.instance_id, created_again, again.input) == (
            record.instance_id,
            False,
            {"n": 1},
        )
        assert created_other and other.instance_id != record.instance_id

    async def test_create_names_what_is_registered(self, open_harness: OpenHarness) -> None:
        """A create of an unknown id or version, or of a deleted definition, fails naming what
        is registered; a used key still finds its instance after the deletion."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                await harness.register("orders", "1.0.0")
                record, _ = await _create(harness, "k1")
                errors = []
                for changes in ({"definition_id": "ordres"}, {"definition_version": "9.9.9"}):
                    with pytest.raises(DefinitionNotFound) as caught:
                        await _create(harness, **changes)
                    errors.append(str(caught.value))
                await harness.delete("orders")
                with pytest.raises(DefinitionNotFound) as deleted:
                    await _create(harness)
                found, created = await _create(harness, "k1")
        assert errors == [
            "definition 'ordres' not found; registered: ['orders']",
            "definition 'orders' has no version '9.9.9'; registered versions: ['1.0.0']",
        ]
        assert str(deleted.value) == "definition 'orders' not found; registered: []"
        assert (found.instance_id, created) == (record.instance_id, False)

    async def test_latest_version_and_documents(self, open_harness: OpenHarness) -> None:
        """The latest live version is the one registered last; a deleted version's document
        is still found (its running instances go on), but it is no longer the latest."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                repository = harness.repository
                await harness.register("orders", "1.0.0")
                await harness.register("orders", "2.0.0")
                latest = await repository.latest_version("orders")
                await harness.delete("orders")
                kept = await harness.definitions.definition_document("orders", "1.0.0")
                with pytest.raises(DefinitionNotFound) as caught:
                    await repository.latest_version("orders")
                with pytest.raises(DefinitionNotFound):
                    await harness.definitions.definition_document("orders", "3.0.0")
        assert latest == "2.0.0" and kept == document("orders", "1.0.0")
        assert str(caught.value) == "definition 'orders' not found; registered: []"

    async def test_batched_creates_check_the_version(self, open_harness: OpenHarness) -> None:
        """While batching runs, a start of the latest version (or of a named live one) is
        created, a stale or unknown one asks for a retry, and a used key finds its instance."""

        def item(version: str, *, latest: bool, key: str | None = None) -> NewInstance:
            return NewInstance(
                definition_id="orders",
                definition_version=version,
                latest=latest,
                input={"n": 1},
                idempotency_key=key,
            )

        with trio.fail_after(30):
            async with open_harness() as harness, trio.open_nursery() as nursery:
                repository = harness.repository
                await harness.register("orders", "1.0.0")
                await harness.register("orders", "2.0.0")
                before = repository.batching
                await nursery.start(repository.run_batching)
                during = repository.batching
                latest = await repository.create_batched(item("2.0.0", latest=True, key="k1"))
                stale = await repository.create_batched(item("1.0.0", latest=True))
                named = await repository.create_batched(item("1.0.0", latest=False))
                unknown = await repository.create_batched(item("9.9.9", latest=False))
                used = await repository.create_batched(item("1.0.0", latest=True, key="k1"))
                nursery.cancel_scope.cancel()
            after = repository.batching
        assert (before, during, after) == (False, True, False)
        assert isinstance(latest, tuple) and latest[1]
        assert latest[0].definition_version == "2.0.0"
        assert isinstance(stale, Retry) and isinstance(unknown, Retry)
        assert isinstance(named, tuple) and named[1] and named[0].definition_version == "1.0.0"
        assert isinstance(used, tuple) and used == (latest[0], False)

    async def test_load_gives_the_inbox_until_terminal(self, open_harness: OpenHarness) -> None:
        """A load returns the record, no snapshot before the first commit, and the inbox in
        order; an unknown instance is named in the error."""
        unknown = uuid.UUID(int=7)
        with trio.fail_after(30):
            async with open_harness() as harness:
                repository = harness.repository
                await harness.register("orders", "1.0.0")
                record, _ = await _create(harness)
                await harness.deliver(record.instance_id, "e1")
                await harness.deliver(record.instance_id, "e2")
                loaded = await repository.load(record.instance_id)
                await repository.set_status(
                    record.instance_id,
                    InstanceStatus.CANCELLED,
                    allowed_from={InstanceStatus.PENDING},
                )
                ended = await repository.load(record.instance_id)
                with pytest.raises(InstanceNotFound) as caught:
                    await repository.load(unknown)
        assert loaded.record == record and loaded.snapshot is None and loaded.has_inbox
        assert [e.event["id"] for e in loaded.inbox] == ["e1", "e2"]
        assert ended.inbox == () and not ended.has_inbox
        assert str(caught.value) == f"workflow instance {unknown} not found"

    async def test_recoverable_instances_come_in_pages(self, open_harness: OpenHarness) -> None:
        """Recovery pages list the non-terminal instances of the partitions asked, by id,
        saying which have events waiting."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                repository = harness.repository
                await harness.register("orders", "1.0.0")
                made = [(await _create(harness))[0] for _ in range(5)]
                done, heard = made[0], made[1]
                await repository.set_status(
                    done.instance_id,
                    InstanceStatus.COMPLETED,
                    allowed_from={InstanceStatus.PENDING},
                )
                await harness.deliver(heard.instance_id, "e1")
                pages = []
                after = None
                while True:
                    page = await repository.list_recoverable(partitions=ALL, after=after, limit=2)
                    pages.append(page)
                    if len(page) < 2:
                        break
                    after = page[-1].record.instance_id
                elsewhere = await repository.list_recoverable(
                    partitions=ALL - {heard.partition}, after=None, limit=10
                )
        listed = [item for page in pages for item in page]
        expected = sorted(r.instance_id for r in made[1:])
        assert [len(p) for p in pages] == [2, 2, 0]
        assert [item.record.instance_id for item in listed] == expected
        assert {item.record.instance_id for item in listed if item.has_inbox} == {heard.instance_id}
        assert all(item.inbox == () and item.snapshot is None for item in listed)
        assert heard.instance_id not in {item.record.instance_id for item in elsewhere}

    async def test_status_changes_only_from_allowed(self, open_harness: OpenHarness) -> None:
        """A status change from an allowed status is stored with its history row (a terminal
        one with its completion time); from another status it is refused, naming both."""
        unknown = uuid.UUID(int=9)
        with trio.fail_after(30):
            async with open_harness() as harness:
                repository = harness.repository
                await harness.register("orders", "1.0.0")
                record, _ = await _create(harness)
                instance_id = record.instance_id
                suspended = await repository.set_status(
                    instance_id,
                    InstanceStatus.SUSPENDED,
                    allowed_from={InstanceStatus.PENDING, InstanceStatus.RUNNING},
                    history_kind="workflow.suspended",
                )
                with pytest.raises(InvalidStatusTransition) as refused:
                    await repository.set_status(
                        instance_id,
                        InstanceStatus.SUSPENDED,
                        allowed_from={InstanceStatus.PENDING, InstanceStatus.RUNNING},
                    )
                cancelled = await repository.set_status(
                    instance_id,
                    InstanceStatus.CANCELLED,
                    allowed_from={InstanceStatus.SUSPENDED},
                    history_kind="workflow.cancelled",
                )
                with pytest.raises(InstanceNotFound):
                    await repository.set_status(
                        unknown, InstanceStatus.CANCELLED, allowed_from={InstanceStatus.PENDING}
                    )
                history = await harness.history(instance_id)
        assert suspended.status is InstanceStatus.SUSPENDED and suspended.completed_at is None
        assert cancelled.status is InstanceStatus.CANCELLED and cancelled.completed_at is not None
        assert history == ["workflow.suspended", "workflow.cancelled"]
        assert str(refused.value) == (
            f"workflow instance {instance_id} is suspended; it can become suspended only "
            "from: pending, running"
        )
        assert refused.value.status == InstanceStatus.SUSPENDED

    async def test_a_status_change_takes_a_version_of_its_own(
        self, open_harness: OpenHarness
    ) -> None:
        """Each status change moves ``snapshot_version`` by ``COMMAND_VERSION_STEP`` (2), past
        the next version a run of the instance writes, so that late write is refused as
        older (never taken for a retry of the command's version); a refused change moves
        nothing."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                repository = harness.repository
                await harness.register("orders", "1.0.0")
                record, _ = await _create(harness)
                instance_id = record.instance_id
                suspended = await repository.set_status(
                    instance_id, InstanceStatus.SUSPENDED, allowed_from={InstanceStatus.PENDING}
                )
                resumed = await repository.set_status(
                    instance_id, InstanceStatus.RUNNING, allowed_from={InstanceStatus.SUSPENDED}
                )
                with pytest.raises(InvalidStatusTransition):
                    await repository.set_status(
                        instance_id,
                        InstanceStatus.RUNNING,
                        allowed_from={InstanceStatus.SUSPENDED},
                    )
                cancelled = await repository.set_status(
                    instance_id, InstanceStatus.CANCELLED, allowed_from={InstanceStatus.RUNNING}
                )
        assert COMMAND_VERSION_STEP == 2
        assert [r.snapshot_version for r in (record, suspended, resumed, cancelled)] == [
            0,
            2,
            4,
            6,
        ]

    async def test_wake_reaches_the_other_replicas(self, open_harness: OpenHarness) -> None:
        """The ids given to ``notify_wake`` reach the other replicas, in order."""
        ids = [uuid.UUID(int=1), uuid.UUID(int=2)]
        with trio.fail_after(30):
            async with open_harness() as harness:
                await harness.repository.notify_wake(ids)
                woken = await harness.woken(2)
        assert woken == ids

    async def test_shapes_and_retained_events(self, open_harness: OpenHarness) -> None:
        """A shape without correlation is 0; the same shape gets the same id, another one
        another; nothing is retained before an unmatched event arrives."""
        correlate = (("orderId", "${ .data.id }"),)
        with trio.fail_after(30):
            async with open_harness() as harness:
                repository = harness.repository
                plain = await repository.shape_id("com.example.ping", ())
                first = await repository.shape_id("com.example.ping", correlate)
                again = await repository.shape_id("com.example.ping", correlate)
                other = await repository.shape_id("com.example.pong", correlate)
                retained = await repository.retained_events({"com.example.ping"}, 60.0)
        assert plain == 0 and first == again and first > 0 and other not in (0, first)
        assert list(retained) == []

    async def test_subflow_definitions_and_children_are_found(
        self, open_harness: OpenHarness
    ) -> None:
        """``resolve_workflow`` finds a live definition by its document's namespace, name and
        version (the one registered last without a version); ``find`` reads an instance or
        says there is none."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                repository = harness.repository
                await harness.register("orders", "1.0.0")
                await harness.register("orders", "2.0.0")
                latest = await repository.resolve_workflow("shop", "orders", None)
                named = await repository.resolve_workflow("shop", "orders", "1.0.0")
                unknown = [
                    await repository.resolve_workflow("shop", "orders", "9.9.9"),
                    await repository.resolve_workflow("other", "orders", None),
                ]
                record, _ = await _create(harness)
                found = await repository.find(record.instance_id)
                missing = await repository.find(uuid.UUID(int=77))
                await harness.delete("orders")
                deleted = await repository.resolve_workflow("shop", "orders", None)
        assert latest == ("orders", "2.0.0") and named == ("orders", "1.0.0")
        assert unknown == [None, None] and deleted is None
        assert found == record and missing is None

    async def test_a_command_ending_an_awaited_child_tells_its_parent(
        self, open_harness: OpenHarness
    ) -> None:
        """A terminal status set on a child its parent awaits puts the child's end in the
        parent's inbox; a child not awaited puts nothing there."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                repository = harness.repository
                await harness.register("orders", "1.0.0")
                parent, _ = await _create(harness)
                awaited = await harness.create_child(parent.instance_id, number=1)
                alone = await harness.create_child(parent.instance_id, awaited=False, number=2)
                for child in (awaited, alone):
                    await repository.set_status(
                        child, InstanceStatus.CANCELLED, allowed_from={InstanceStatus.PENDING}
                    )
                inbox = (await repository.load(parent.instance_id)).inbox
        ((item,),) = (inbox,)
        assert item.key == f"subflow:{awaited}"
        assert item.event["data"] == {
            "childId": str(awaited),
            "status": "cancelled",
            "output": None,
            "error": None,
        }

    async def test_cancelling_cancels_the_descendants(self, open_harness: OpenHarness) -> None:
        """``cancel_instance`` cancels the instance and its descendants that have not ended,
        each with a history row; ``cancel_descendants`` does the same for instances cancelled
        already, and for the cancelled instances of the partitions given."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                repository = harness.repository
                await harness.register("orders", "1.0.0")
                parent, _ = await _create(harness)
                child = await harness.create_child(parent.instance_id, number=1)
                grandchild = await harness.create_child(child, number=2)
                done = await harness.create_child(parent.instance_id, number=3)
                await repository.set_status(
                    done, InstanceStatus.COMPLETED, allowed_from={InstanceStatus.PENDING}
                )
                record, cascade = await repository.cancel_instance(
                    parent.instance_id,
                    allowed_from={InstanceStatus.PENDING},
                    history_kind="workflow.cancelled",
                )
                other, _ = await _create(harness)
                orphan = await harness.create_child(other.instance_id, number=4)
                await repository.set_status(
                    other.instance_id,
                    InstanceStatus.CANCELLED,
                    allowed_from={InstanceStatus.PENDING},
                )
                elsewhere = await repository.cancel_descendants(partitions=ALL - {other.partition})
                recovered = await repository.cancel_descendants(partitions={other.partition})
                again = await repository.cancel_descendants(parents=[parent.instance_id])
                statuses = [
                    (await repository.load(i)).record.status
                    for i in (child, grandchild, done, orphan)
                ]
                history = await harness.history(grandchild)
        assert record.status is InstanceStatus.CANCELLED
        assert sorted(r.instance_id for r in cascade) == sorted([child, grandchild])
        assert all(r.status is InstanceStatus.CANCELLED for r in cascade)
        assert elsewhere == () and [r.instance_id for r in recovered] == [orphan] and again == ()
        assert statuses == [
            InstanceStatus.CANCELLED,
            InstanceStatus.CANCELLED,
            InstanceStatus.COMPLETED,
            InstanceStatus.CANCELLED,
        ]
        assert history == ["workflow.cancelled"]
