"""The operating-system account the embedded PostgreSQL's programs run as.

PostgreSQL refuses to run as root. When ``serve`` runs as root, every PostgreSQL program we start
(``initdb``, ``pg_ctl``, ``psql``, ``createdb``, the ``--version`` probes) runs as a system
user: ``postgres`` when the machine has one (its PostgreSQL packages created it), else
``workflow-orchestrator``, created here with ``useradd --system`` the first time. Otherwise they
run as ourselves.

Invariants: a child started for the account has its uid, its primary gid and no supplementary
groups (so it never keeps root's groups), and an environment without the ``PG*`` variables of
ours (``PGOPTIONS`` or ``PGHOST`` must not change what we start). Whether the account may enter a
folder is decided from the permission bits for that uid and gid, exactly as the kernel does
without ACLs.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import attrs

from workflow_orchestrator.storage._errors import EmbeddedDatabaseError

__all__ = ["ServerAccount", "blocking_folder", "child_environment", "run_options", "server_account"]

PREFERRED_USER = "postgres"
CREATED_USER = "workflow-orchestrator"
_USERADD_TIMEOUT = 30.0


@attrs.frozen(kw_only=True)
class ServerAccount:
    """A system user (not root) that the PostgreSQL programs run as."""

    name: str
    uid: int
    gid: int


def _lookup(name: str) -> ServerAccount | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return ServerAccount(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def _create_user() -> None:
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    command = [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    try:
        result = subprocess.run(
            [*command, CREATED_USER],
            capture_output=True,
            text=True,
            check=False,
            timeout=_USERADD_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it did not finish"
        raise EmbeddedDatabaseError(
            f"cannot create the system user {CREATED_USER!r} for the embedded PostgreSQL "
            f"(useradd: {reason}); create a system user named {PREFERRED_USER!r} or "
            f"{CREATED_USER!r}, run serve as an ordinary user, or set database.url"
        ) from None
    # Exit code 9: another serve created it meanwhile, which is just as good.
    if result.returncode not in (0, 9):
        raise EmbeddedDatabaseError(
            f"cannot create the system user {CREATED_USER!r} for the embedded PostgreSQL "
            f"(useradd exit code {result.returncode}: {result.stderr.strip()}); create a system "
            f"user named {PREFERRED_USER!r} or {CREATED_USER!r}, run serve as an ordinary user, "
            "or set database.url"
        )


def server_account() -> ServerAccount | None:
    """The account to run PostgreSQL as, or None to run it as ourselves (we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in (PREFERRED_USER, CREATED_USER):
        account = _lookup(name)
        if account is not None:
            return account
    _create_user()
    account = _lookup(CREATED_USER)
    if account is None:
        raise EmbeddedDatabaseError(
            f"useradd reported success but there is no user {CREATED_USER!r}; create a system "
            f"user named {PREFERRED_USER!r} or {CREATED_USER!r}, or set database.url"
        )
    return account


def child_environment() -> dict[str, str]:
    """Our environment without the libpq and server variables (``PG*``)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def run_options(account: ServerAccount | None) -> dict[str, Any]:
    """Keyword arguments for ``subprocess``/``trio.run_process`` that run a child as ``account``."""
    options: dict[str, Any] = {"env": child_environment(), "cwd": "/"}
    if account is not None:
        options.update(user=account.uid, group=account.gid, extra_groups=[])
    return options


def _may_enter(info: os.stat_result, account: ServerAccount) -> bool:
    if info.st_uid == account.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == account.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def blocking_folder(folder: Path, account: ServerAccount) -> Path | None:
    """The first of ``folder`` and the folders above it that ``account`` may not enter."""
    resolved = folder.resolve()
    for path in (*reversed(resolved.parents), resolved):
        if not _may_enter(path.stat(), account):
            return path
    return None
