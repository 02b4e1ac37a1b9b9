"""A real streaming replica of the test PostgreSQL, started from this machine's binaries.

``start_streaming_replica`` takes a base backup (``pg_basebackup -R``, about a second for a test
cluster) of the server at ``TEST_POSTGRES_URL`` into a temporary folder and starts it as a hot
standby on a free port of 127.0.0.1, with its own socket folder. PostgreSQL refuses to run as
root, so under root (CI) it runs as the ``postgres`` system user, which owns the folder.
``StreamingReplica.destroy`` stops it (immediate shutdown, bounded) and removes the folder; it
never raises, so a fixture can call it in ``finally``.

The base backup needs a replication connection: ``.ci/run`` adds
``host replication all 127.0.0.1/32 trust`` to the server's pg_hba.conf when it is missing.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import attrs

from tests.support.services import POSTGRES_URL, free_port, psql, require_postgres, unavailable

__all__ = ["StreamingReplica", "start_streaming_replica"]

_START_TIMEOUT = 60
_STOP_TIMEOUT = 30
# Hot standby refuses to start when these are lower than on the primary.
_COPIED_SETTINGS = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


def _server_user() -> str | None:
    """Who runs the replica: ourselves, or ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        unavailable("running as root without a 'postgres' system user to run a replica as")
        raise AssertionError("unreachable") from None
    return "postgres"


def _server_binaries() -> Path:
    """The folder of ``pg_basebackup`` and ``pg_ctl`` of the test server's major version (a
    standby must run the same major version as its primary)."""
    major = int(psql("SHOW server_version_num")) // 10000
    candidates = [Path(f"/usr/lib/postgresql/{major}/bin")]
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(found.stdout.strip()))
    for folder in candidates:
        version = folder / "pg_ctl"
        if not (folder / "pg_basebackup").is_file() or not version.is_file():
            continue
        output = subprocess.run([version, "--version"], capture_output=True, text=True, check=False)
        if re.search(rf"\b{major}(\.|\b)", output.stdout):
            return folder
    unavailable(
        f"no PostgreSQL {major} server binaries (pg_basebackup, pg_ctl) to run a replica of the "
        f"test server; looked in {', '.join(map(str, candidates))}"
    )
    raise AssertionError("unreachable")


def _run(command: list[str], user: str | None, what: str, timeout: float) -> None:
    result = subprocess.run(
        command,
        user=user,
        cwd="/",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-2000:]
        raise RuntimeError(f"{what} failed (exit code {result.returncode}): {output}")


@attrs.define(eq=False)
class StreamingReplica:
    """A hot standby of the test server, streaming from it on 127.0.0.1:``port``."""

    folder: Path
    port: int
    user: str | None
    binaries: Path
    running: bool = False

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def url(self, database: str) -> str:
        """The libpq URL of ``database`` on the replica."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{urllib.parse.quote(database)}"

    def query(self, sql: str, database: str = "postgres") -> str:
        """One query on the replica (``psql -tA``)."""
        return psql(sql, database_url=self.url(database))

    def start(self) -> None:
        """Start the server and wait until it streams from the primary."""
        _run(
            [
                str(self.binaries / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.folder / "postgresql.log"),
                "-w",
                "-t",
                str(_START_TIMEOUT),
                "start",
            ],
            self.user,
            f"starting the replica (log: {self.folder / 'postgresql.log'})",
            _START_TIMEOUT + 5,
        )
        self.running = True
        deadline = time.monotonic() + _START_TIMEOUT
        while self.query(
            "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'"
        ) != ("1"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replica on port {self.port} does not stream")
            time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: connections are closed, as when a server goes down)."""
        _run(
            [
                str(self.binaries / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                mode,
                "-w",
                "-t",
                str(_STOP_TIMEOUT),
                "stop",
            ],
            self.user,
            "stopping the replica",
            _STOP_TIMEOUT + 5,
        )
        self.running = False

    def pause_replay(self) -> None:
        """Stop applying WAL (it is still received): the replica falls behind."""
        self.query("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.query("SELECT pg_wal_replay_resume()")

    def replayed(self) -> bool:
        """Whether the replica has replayed everything the primary had written when asked."""
        lsn = psql("SELECT pg_current_wal_lsn()")
        return self.query(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == "t"

    def destroy(self) -> None:
        """Stop the server (immediate, bounded; killed if that fails) and remove its folder."""
        if self.running:
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                self._kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _kill(self) -> None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass  # not running (any more)
        self.running = False


def _configure(replica: StreamingReplica) -> None:
    """postgresql.conf and pg_hba.conf of the copy (a Debian server keeps them outside its data
    folder, so the backup may have none); primary_conninfo came with ``-R``."""
    copied = "\n".join(f"{name} = {psql(f'SHOW {name}')}" for name in _COPIED_SETTINGS)
    (replica.data_dir / "postgresql.conf").write_text(
        f"port = {replica.port}\n"
        "listen_addresses = '127.0.0.1'\n"
        f"unix_socket_directories = '{replica.folder}'\n"
        "hot_standby = on\n"
        "fsync = off\n"
        "wal_receiver_status_interval = 1s\n"
        f"{copied}\n"
    )
    (replica.data_dir / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 trust\n"
    )
    if replica.user is not None:
        entry = pwd.getpwnam(replica.user)
        for name in ("postgresql.conf", "pg_hba.conf"):
            os.chown(replica.data_dir / name, entry.pw_uid, entry.pw_gid)


def start_streaming_replica() -> StreamingReplica:
    """Base-back-up the test server and start the copy as a streaming hot standby.

    Fails (CI) or skips when PostgreSQL, binaries of its version or a replication connection are
    missing.
    """
    require_postgres()
    binaries = _server_binaries()
    user = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="wo-replica-"))
    replica = StreamingReplica(folder=folder, port=free_port(), user=user, binaries=binaries)
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        primary = urllib.parse.urlsplit(POSTGRES_URL)
        backup = subprocess.run(
            [
                str(binaries / "pg_basebackup"),
                "-h",
                primary.hostname or "127.0.0.1",
                "-p",
                str(primary.port or 5432),
                "-U",
                primary.username or "postgres",
                "-D",
                str(replica.data_dir),
                "--write-recovery-conf",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-sync",
                "--no-manifest",
            ],
            user=user,
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT,
            check=False,
        )
        if "no pg_hba.conf entry for replication connection" in backup.stderr:
            unavailable(
                "the test PostgreSQL refuses replication connections; add "
                "'host replication all 127.0.0.1/32 trust' to its pg_hba.conf and reload it "
                "(.ci/run does this)"
            )
        if backup.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed: {backup.stderr.strip()[-2000:]}")
        _configure(replica)
        replica.start()
    except BaseException:
        replica.destroy()
        raise
    return replica
