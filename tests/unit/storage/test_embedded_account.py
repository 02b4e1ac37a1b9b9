"""Who runs the embedded PostgreSQL's programs, with what environment, and where it may go."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from workflow_orchestrator.storage._embedded_account import (
    ServerAccount,
    blocking_folder,
    child_environment,
    run_options,
    server_account,
)

STRANGER = ServerAccount(name="stranger", uid=54321, gid=54321)


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A 0755 folder in the temporary folder, below folders everybody may enter."""
    folder = Path(tempfile.mkdtemp(prefix="wo-account-"))
    folder.chmod(0o755)
    try:
        closed = [path for path in folder.parents if not path.stat().st_mode & 0o001]
        assert not closed, f"{closed} must be enterable by others (set TMPDIR elsewhere)"
        yield folder
    finally:
        shutil.rmtree(folder)


def test_the_first_closed_folder_on_the_way_down_is_named(open_folder: Path) -> None:
    """A stranger is stopped by the first folder without o+x, counting the folder itself."""
    inner = open_folder / "outer" / "inner"
    inner.mkdir(parents=True)
    assert blocking_folder(inner, STRANGER) is None
    inner.chmod(0o700)
    assert blocking_folder(inner, STRANGER) == inner
    (open_folder / "outer").chmod(0o700)
    assert blocking_folder(inner, STRANGER) == open_folder / "outer"


def test_owner_and_group_bits_decide_for_owner_and_group(open_folder: Path) -> None:
    """A folder closed to others lets its owner pass with u+x and its group with g+x."""
    inner = open_folder / "inner"
    inner.mkdir(mode=0o710)
    inner.chmod(0o710)
    info = inner.stat()
    owner = ServerAccount(name="owner", uid=info.st_uid, gid=99999)
    member = ServerAccount(name="member", uid=99999, gid=info.st_gid)
    assert blocking_folder(inner, owner) is None
    assert blocking_folder(inner, member) is None
    assert blocking_folder(inner, STRANGER) == inner
    inner.chmod(0o700)
    assert blocking_folder(inner, member) == inner


def test_children_do_not_inherit_libpq_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """PGOPTIONS, PGHOST and the like never reach initdb, pg_ctl or psql."""
    monkeypatch.setenv("PGOPTIONS", "-c search_path=evil")
    monkeypatch.setenv("PGHOST", "elsewhere")
    monkeypatch.setenv("LANG", "C.UTF-8")
    environment = child_environment()
    assert not [key for key in environment if key.startswith("PG")]
    assert environment["LANG"] == "C.UTF-8"


def test_a_child_for_an_account_drops_our_groups() -> None:
    """Children run with the account's uid and gid and no supplementary groups, from /."""
    options = run_options(STRANGER)
    assert (options["user"], options["group"], options["extra_groups"]) == (54321, 54321, [])
    assert options["cwd"] == "/"
    assert "user" not in run_options(None)


def test_an_ordinary_user_runs_the_server_itself() -> None:
    """Only root needs a system user; anybody else runs PostgreSQL as themselves."""
    if os.geteuid() == 0:
        account = server_account()
        assert account is not None and account.uid != 0
    else:
        assert server_account() is None
