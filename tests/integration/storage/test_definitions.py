"""The definitions repository against the real PostgreSQL."""

from __future__ import annotations

import pytest
import trio

from tests.integration.storage.helpers import open_storage, register_sample, sample_document
from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.storage import DefinitionConflict, DefinitionNotFound
from workflow_orchestrator.storage.definitions import (
    RegistrationOutcome,
    content_hash,
    delete_definition,
    get_definition,
    list_definitions,
    list_versions,
    register_definition,
)
from workflow_orchestrator.storage.instances import create_instance

pytestmark = pytest.mark.integration


async def test_register_is_created_then_unchanged(database_url: str) -> None:
    """Registering a document creates it once; the identical document again is a no-op."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            first = await register_sample(database)
            # Same content, different key order and source formatting: still unchanged.
            document = sample_document()
            reordered = dict(reversed(list(document.items())))
            again = await register_definition(
                database,
                definition_id="order_processing",
                version="1.0.0",
                namespace="shop",
                name="order_processing",
                document=reordered,
                source_text="reformatted: true",
            )
            stored = await get_definition(database, "order_processing")
    assert first.outcome is RegistrationOutcome.CREATED and first.created
    assert again.outcome is RegistrationOutcome.UNCHANGED and not again.created
    assert again.definition.created_at == first.definition.created_at
    assert stored.content_hash == content_hash(document) == first.definition.content_hash
    assert stored.document == document and stored.source_text == repr(document)


async def test_same_version_other_content_conflicts(database_url: str) -> None:
    """The same id and version with a different document is refused, naming what to change."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            await register_sample(database)
            with pytest.raises(DefinitionConflict) as exc:
                await register_definition(
                    database,
                    definition_id="order_processing",
                    version="1.0.0",
                    namespace="shop",
                    name="order_processing",
                    document={**sample_document(), "do": []},
                    source_text="{}",
                )
    assert str(exc.value) == (
        "definition 'order_processing' version '1.0.0' is already registered with different "
        "content; register the changed document under a new version (document.version), or "
        "under another id"
    )
    assert (exc.value.definition_id, exc.value.version) == ("order_processing", "1.0.0")
    assert isinstance(exc.value, OrchestratorError) and isinstance(exc.value, ValueError)


async def test_latest_version_and_versions(database_url: str) -> None:
    """get_definition without a version returns the newest live version; versions are listed."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            await register_sample(database, version="1.0.0")
            await register_sample(database, version="1.1.0")
            latest = await get_definition(database, "order_processing")
            older = await get_definition(database, "order_processing", "1.0.0")
            versions = await list_versions(database, "order_processing")
    assert latest.version == "1.1.0" and older.version == "1.0.0"
    assert [v.version for v in versions] == ["1.0.0", "1.1.0"]


async def test_not_found_lists_registered_ids(database_url: str) -> None:
    """An unknown id names the registered ones; an unknown version names the versions."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            await register_sample(database, "billing")
            await register_sample(database, "order-processing")
            with pytest.raises(DefinitionNotFound) as missing:
                await get_definition(database, "order_processing")
            with pytest.raises(DefinitionNotFound) as no_version:
                await get_definition(database, "billing", "9.9")
            with pytest.raises(DefinitionNotFound) as no_versions:
                await list_versions(database, "nope")
    assert str(missing.value) == (
        "definition 'order_processing' not found; registered: ['billing', 'order-processing']"
    )
    assert missing.value.definition_id == "order_processing"
    assert isinstance(missing.value, LookupError)
    assert str(no_version.value) == (
        "definition 'billing' has no version '9.9'; registered versions: ['1.0.0']"
    )
    assert str(no_versions.value).startswith("definition 'nope' not found; registered: [")


async def test_delete_is_soft(database_url: str) -> None:
    """A deleted definition takes no new starts but stays readable for running instances."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            await register_sample(database)
            running, _ = await create_instance(
                database, definition_id="order_processing", definition_version=None, input={}
            )
            deleted = await delete_definition(database, "order_processing")
            with pytest.raises(DefinitionNotFound) as start:
                await create_instance(
                    database, definition_id="order_processing", definition_version=None, input={}
                )
            with pytest.raises(DefinitionNotFound):
                await get_definition(database, "order_processing")
            kept = await get_definition(
                database, "order_processing", running.definition_version, include_deleted=True
            )
            page = await list_definitions(database)
            with pytest.raises(DefinitionNotFound) as again:
                await delete_definition(database, "order_processing")
            revived = await register_sample(database)
    assert deleted == ("1.0.0",)
    assert str(start.value) == "definition 'order_processing' not found; registered: []"
    assert kept.deleted_at is not None
    assert page.items == ()
    assert str(again.value) == "definition 'order_processing' not found; registered: []"
    assert revived.created and revived.definition.deleted_at is None
