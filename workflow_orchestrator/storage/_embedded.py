"""A private PostgreSQL for ``serve`` when no ``database.url`` is configured.

Which programs run it, and how they stay within reach of the account running them, is
``_embedded_binaries``; which account that is (a system user when we are root, since PostgreSQL
refuses root) is ``_embedded_account``. This module prepares the folders and owns the server's
life.

Folders: the data directory is ``database.embedded.dataDir``, else
``$XDG_STATE_HOME/workflow-orchestrator/postgres``, else
``~/.local/state/workflow-orchestrator/postgres``, and for root without ``XDG_STATE_HOME``
``/var/lib/workflow-orchestrator/postgres``. The folder holding it (the *state folder*) also
holds ``logs/postgresql.log`` and, for root, the staged ``binaries/``. The data directory is
owned by the account that runs the server and has mode 0700; as root, the folders we create
above it get 0755 so that account can pass, and folders that exist already are checked, never
loosened. A second ``serve`` finds the data (and the staged binaries) again.

The server listens on 127.0.0.1 only, with trust authentication for local connections. It is
stopped when ``open_embedded_postgres`` exits, unless it was already running when we came (then
whoever started it owns it).
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

from workflow_orchestrator.config import DatabaseLocation, EmbeddedDatabaseSettings
from workflow_orchestrator.storage._embedded_account import (
    ServerAccount,
    blocking_folder,
    run_options,
    server_account,
)
from workflow_orchestrator.storage._embedded_binaries import (
    find_postgres_binaries,
    postgres_version,
    reachable_binaries,
)
from workflow_orchestrator.storage._errors import EmbeddedDatabaseError

__all__ = ["default_data_dir", "find_postgres_binaries", "open_embedded_postgres"]

logger = logging.getLogger(__name__)

DATABASE_NAME = "workflows"
SUPERUSER = "postgres"
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0
# sun_path holds 107 bytes and a NUL; the socket is <dir>/.s.PGSQL.<port>.
_SOCKET_PATH_LIMIT = 107 - len("/.s.PGSQL.65535")


@attrs.frozen(kw_only=True)
class _Plan:
    """What ``_prepare`` found: the programs to run, where, and as whom."""

    binaries: Path
    version: str
    data_dir: Path
    log_file: Path
    account: ServerAccount | None
    initialised: bool


def default_data_dir() -> Path:
    """Where the embedded database keeps its files when ``dataDir`` is not configured."""
    state_home = os.environ.get("XDG_STATE_HOME")
    if state_home:
        return Path(state_home) / "workflow-orchestrator" / "postgres"
    if os.geteuid() == 0:
        return Path("/var/lib/workflow-orchestrator/postgres")
    return Path.home() / ".local" / "state" / "workflow-orchestrator" / "postgres"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _running_port(data_dir: Path) -> int | None:
    """The port of a server already running on ``data_dir``, from its ``postmaster.pid``."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by the server's account
    return port


async def _run(
    command: Sequence[str], account: ServerAccount | None, what: str, limit: float
) -> str:
    """Run ``command`` as ``account``; its output, or ``EmbeddedDatabaseError`` with its tail."""
    with tempfile.TemporaryFile("w+") as output:
        try:
            with trio.fail_after(limit):
                result = await trio.run_process(
                    list(command),
                    check=False,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    **run_options(account),
                )
        except trio.TooSlowError:
            raise EmbeddedDatabaseError(f"{what} did not finish within {limit:.0f}s") from None
        except OSError as exc:
            raise EmbeddedDatabaseError(
                f"{what} failed: cannot run {command[0]}: {exc.strerror or exc}"
            ) from None
        output.seek(0)
        text = output.read()
        if result.returncode != 0:
            tail = text[-2000:].strip()
            raise EmbeddedDatabaseError(f"{what} failed (exit code {result.returncode}): {tail}")
        return text


def _make_folders(folder: Path) -> None:
    """Create ``folder`` and missing parents with mode 0755 whatever the umask (root only)."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue
        path.chmod(0o755)
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))


def _chown_tree(folder: Path, account: ServerAccount) -> None:
    for root, folders, files in os.walk(folder):
        for name in (root, *(os.path.join(root, entry) for entry in (*folders, *files))):
            os.chown(name, account.uid, account.gid, follow_symlinks=False)


def _prepare_directories(data_dir: Path, account: ServerAccount | None) -> None:
    state_dir = data_dir.parent
    try:
        if account is None:
            data_dir.mkdir(parents=True, exist_ok=True)
        else:
            _make_folders(state_dir)
            blocked = blocking_folder(state_dir, account)
            if blocked is not None:
                raise EmbeddedDatabaseError(
                    f"the embedded PostgreSQL runs as system user {account.name!r}, which cannot "
                    f"enter {blocked}; set database.embedded.dataDir to a directory under folders "
                    f"others may enter, or allow it with: chmod o+x {blocked}"
                )
            data_dir.mkdir(exist_ok=True)
        (state_dir / "logs").mkdir(exist_ok=True)
        if account is not None:
            if data_dir.stat().st_uid != account.uid and (data_dir / "PG_VERSION").exists():
                logger.info("giving the embedded database in %s to %r", data_dir, account.name)
                _chown_tree(data_dir, account)
            for path in (data_dir, state_dir / "logs"):
                os.chown(path, account.uid, account.gid)
        data_dir.chmod(0o700)
    except OSError as exc:
        raise EmbeddedDatabaseError(
            f"cannot prepare the embedded database directory {data_dir}: "
            f"{exc.strerror or exc}; set database.embedded.dataDir (or XDG_STATE_HOME) to a "
            "directory this user may write"
        ) from None


def _prepare(settings: EmbeddedDatabaseSettings) -> _Plan:
    """Find the programs, prepare the folders, and make the programs reachable (blocking)."""
    data_dir = Path(settings.data_dir).expanduser() if settings.data_dir else default_data_dir()
    data_dir = data_dir.absolute()
    binaries = find_postgres_binaries(data_dir)
    version = postgres_version(binaries)
    account = server_account()
    _prepare_directories(data_dir, account)
    if account is not None:
        binaries = reachable_binaries(binaries, version, account, data_dir.parent)
    return _Plan(
        binaries=binaries,
        version=version,
        data_dir=data_dir,
        log_file=data_dir.parent / "logs" / "postgresql.log",
        account=account,
        initialised=(data_dir / "PG_VERSION").exists(),
    )


def _server_options(port: int, data_dir: Path) -> str:
    """The server's command line as ``pg_ctl -o`` passes it through a shell."""
    # A Unix socket beside the data is a convenience; a path too long for one would stop the
    # server, so then there is none (we connect over TCP anyway).
    socket_dir = str(data_dir) if len(str(data_dir)) <= _SOCKET_PATH_LIMIT else ""
    return f"-p {port} -h 127.0.0.1 -k {shlex.quote(socket_dir)}"


async def _ensure_database(plan: _Plan, port: int) -> None:
    """Create the ``workflows`` database unless it exists."""
    connection = ["-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER]
    answer = await _run(
        [
            str(plan.binaries / "psql"),
            "-X",
            *connection,
            "-d",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'",
        ],
        plan.account,
        "looking for the embedded database",
        _START_TIMEOUT,
    )
    if answer.strip() != "1":
        await _run(
            [str(plan.binaries / "createdb"), *connection, DATABASE_NAME],
            plan.account,
            "creating the embedded database",
            _START_TIMEOUT,
        )


async def _stop(plan: _Plan) -> None:
    with trio.move_on_after(_STOP_TIMEOUT + 5, shield=True):
        logger.info("stopping the embedded PostgreSQL")
        try:
            await _run(
                [
                    str(plan.binaries / "pg_ctl"),
                    "-D",
                    str(plan.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(_STOP_TIMEOUT)),
                    "stop",
                ],
                plan.account,
                "stopping the embedded PostgreSQL",
                _STOP_TIMEOUT + 5,
            )
        except EmbeddedDatabaseError as exc:
            logger.error("%s", exc)


@asynccontextmanager
async def open_embedded_postgres(
    settings: EmbeddedDatabaseSettings,
) -> AsyncIterator[DatabaseLocation]:
    """Initialise (first time), start and finally stop the embedded server.

    Yields the location of its ``workflows`` database. Raises ``EmbeddedDatabaseError`` with a
    sentence naming what to change (or the server's own output) when it cannot be started.
    """
    plan = await trio.to_thread.run_sync(_prepare, settings)
    if not plan.initialised:
        logger.info("initialising the embedded PostgreSQL in %s", plan.data_dir)
        await _run(
            [
                str(plan.binaries / "initdb"),
                "-D",
                str(plan.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
            plan.account,
            "initdb",
            _START_TIMEOUT,
        )
    port = _running_port(plan.data_dir)
    started_here = port is None
    if port is None:
        port = settings.port or _free_port()
        await _run(
            [
                str(plan.binaries / "pg_ctl"),
                "-D",
                str(plan.data_dir),
                "-l",
                str(plan.log_file),
                "-w",
                "-t",
                str(int(_START_TIMEOUT)),
                "-o",
                _server_options(port, plan.data_dir),
                "start",
            ],
            plan.account,
            f"starting the embedded PostgreSQL (log: {plan.log_file})",
            _START_TIMEOUT + 5,
        )
    else:
        logger.info("reusing the embedded PostgreSQL already running on port %d", port)
    try:
        await _ensure_database(plan, port)
        logger.info(
            "embedded PostgreSQL %s is running%s, data in %s, server log %s; connect with: "
            "psql postgresql://%s@127.0.0.1:%d/%s",
            plan.version,
            f" as system user {plan.account.name!r}" if plan.account else "",
            plan.data_dir,
            plan.log_file,
            SUPERUSER,
            port,
            DATABASE_NAME,
        )
        yield DatabaseLocation(host="127.0.0.1", port=port, database=DATABASE_NAME, user=SUPERUSER)
    finally:
        if started_here:
            await _stop(plan)
