"""Definitions registered from the configured folders at startup."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.support.database import open_test_database
from workflow_orchestrator.definitions import DefinitionFilesInvalid, register_definition_files
from workflow_orchestrator.storage.definitions import get_definition

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_examples_folder_registers_order_processing(database_url: str) -> None:
    """The shipped examples register, by file name, and a second run changes nothing."""
    with trio.fail_after(60):
        async with open_test_database(database_url) as db:
            first = await register_definition_files(db, [str(EXAMPLES)])
            second = await register_definition_files(db, [str(EXAMPLES)])
            stored = await get_definition(db, "order_processing")
    assert [r.created for r in first] == [True] * len(first)
    assert [r.created for r in second] == [False] * len(second)
    assert (stored.name, stored.version) == ("order-processing", "1.0.0")


async def test_any_bad_file_registers_nothing(database_url: str, tmp_path: Path) -> None:
    """One invalid file stops the whole folder, and every problem is reported with its file."""
    good = tmp_path / "good.yaml"
    good.write_text((EXAMPLES / "order_processing.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text("document: {dsl: '1.0.3', namespace: x, name: bad, version: '1'}\ndo: []\n")
    missing = tmp_path / "missing"
    with trio.fail_after(60):
        async with open_test_database(database_url) as db:
            with pytest.raises(DefinitionFilesInvalid) as exc:
                await register_definition_files(db, [str(tmp_path), str(missing)])
            count = await db.fetchval("SELECT count(*) FROM workflow_definitions")
    assert count == 0
    message = str(exc.value)
    assert message.startswith("definitions from definitions.paths were not registered (")
    assert f"{missing}: no such file or folder (listed in definitions.paths)" in message
    assert f"{bad}: /document/version: " in message
