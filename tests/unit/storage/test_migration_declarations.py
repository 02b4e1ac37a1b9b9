"""Each migration declares whether the release before it runs on the schema after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_orchestrator.storage import MigrationError, load_migrations

# Written before releases declared compatibility; they count as incompatible (no release
# before the first one runs on them anyway).
UNDECLARED = {1, 2, 3, 4, 5}


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_every_later_migration_declares_it() -> None:
    """From V006 on, every migration carries an explicit `-- previous-release:` line."""
    for migration in load_migrations():
        declares = any(
            line.startswith("-- previous-release:") for line in migration.sql.splitlines()
        )
        assert declares or migration.version in UNDECLARED, (
            f"{migration.filename} must declare '-- previous-release: compatible' or "
            "'-- previous-release: incompatible' in its leading comments"
        )
        if migration.version in UNDECLARED:
            assert not migration.previous_release_compatible


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-- previous-release: compatible\nCREATE TABLE t (a int);", True),
        ("-- Adds t.\n--   previous-release :  incompatible  \nDROP TABLE t;", False),
        ("\n-- about it\n\n-- previous-release: compatible\nSELECT 1;", True),
        ("-- nothing declared\nSELECT 1;", False),
        # Only the leading comments count, not a comment after the first statement.
        ("SELECT 1;\n-- previous-release: compatible\n", False),
    ],
)
def test_declaration_is_read_from_the_leading_comments(
    tmp_path: Path, text: str, expected: bool
) -> None:
    folder = write(tmp_path / "m", "V007__probe.sql", text)
    (migration,) = load_migrations(folder)
    assert migration.previous_release_compatible is expected


def test_a_wrong_value_names_the_file_and_the_two_values(tmp_path: Path) -> None:
    folder = write(tmp_path / "m", "V007__probe.sql", "-- previous-release: yes\nSELECT 1;")
    with pytest.raises(MigrationError) as exc:
        load_migrations(folder)
    assert str(exc.value) == (
        "migration V007__probe.sql declares 'previous-release: yes'; write "
        "'-- previous-release: compatible' (the previous release runs on the schema after it) "
        "or '-- previous-release: incompatible'"
    )
