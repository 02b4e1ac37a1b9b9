"""The service refuses a primary pool too small for its long-lived sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_orchestrator.config import load_config, startup_problems


def problems(tmp_path: Path, database: str, **environ: str) -> list[tuple[str, str, str]]:
    path = tmp_path / "application.yaml"
    path.write_text(f"database:\n{database}")
    loaded = load_config(config_path=path, environ=environ, cwd=tmp_path)
    return [
        (p.key, p.source, p.message) for p in startup_problems(loaded.settings, loaded.source_of)
    ]


def message(size: int) -> str:
    return (
        f"{size} connections cannot run the service: up to 4 stay open for its whole life "
        "(LISTEN for wake-ups, ended instances and database events, and the replica id's "
        "lock); set at least 5 (the default is 20)"
    )


@pytest.mark.parametrize("size", [1, 4])
def test_a_pool_below_five_is_refused_naming_where_it_was_set(tmp_path: Path, size: int) -> None:
    found = problems(tmp_path, "  url: jdbc:postgresql://db/w\n", DATABASE_POOL_SIZE=str(size))
    assert found == [("database.poolSize", "env DATABASE_POOL_SIZE", message(size))]


def test_the_primary_block_is_named_when_it_sets_the_size(tmp_path: Path) -> None:
    found = problems(
        tmp_path, "  primary:\n    url: jdbc:postgresql://db/w\n    poolSize: 3\n  poolSize: 20\n"
    )
    assert [(key, text) for key, _, text in found] == [("database.primary.poolSize", message(3))]


@pytest.mark.parametrize("size", [5, 20])
def test_five_and_more_start(tmp_path: Path, size: int) -> None:
    assert problems(tmp_path, f"  url: jdbc:postgresql://db/w\n  poolSize: {size}\n") == []
