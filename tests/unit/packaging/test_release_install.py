"""bin/_common.sh in an unzipped release: the first run installs the wheel next to bin/ into
.venv, or fails leaving no .venv, with a message naming what to do. (The successful install of
the real wheel is driven by tests/e2e/test_wheel.py, which follows the guide.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]
WHEEL = "workflow_orchestrator-0.0.0-py3-none-any.whl"
NOBODY = 65534
#: The interpreter behind this run's virtualenv: a Python 3.11 with venv and ensurepip.
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)
#: A pid above any kernel's pid_max (at most 2**22): no process has it.
DEAD_PID = 2**23


@pytest.fixture
def release() -> Iterator[Path]:
    """A release folder as unzipped: bin/ and a wheel (not a valid one: nothing here installs
    successfully). Readable by everyone, so `nobody` can run its scripts too."""
    folder = Path(tempfile.mkdtemp(prefix="wo-release-"))
    try:
        folder.chmod(0o755)
        shutil.copytree(REPOSITORY / "bin", folder / "bin")
        (folder / WHEEL).write_bytes(b"not a zip archive")
        yield folder
    finally:
        shutil.rmtree(folder)


def start(folder: Path, *, user: int | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["./bin/start.sh", "--help"],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder), "LANG": "C.UTF-8", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        user=user,
        group=user,
        extra_groups=None if user is None else [],
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".venv"))


def test_checkout_without_install_says_make_install(tmp_path: Path) -> None:
    """No wheel next to bin/ (a checkout): nothing is installed, as before."""
    shutil.copytree(REPOSITORY / "bin", tmp_path / "bin")
    result = start(tmp_path, PYTHON=BASE_PYTHON)
    assert result.returncode == 1
    assert result.stderr == (
        "error: workflow-orchestrator is not installed; run 'make install' or 'pip install .'\n"
    )
    assert leftovers(tmp_path) == []


def test_missing_python_names_what_to_install(release: Path) -> None:
    """Without the interpreter: exit 2 (systemd does not restart), and what to install."""
    missing = str(release / "no-such-python3.11")
    result = start(release, PYTHON=missing)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: workflow-orchestrator is not installed, and {missing}, which would install it "
        f"into {release}/.venv, was not found; install Python 3.11 with its venv module"
    )
    assert "apt-get install python3.11 python3.11-venv" in result.stderr
    assert "or set PYTHON to a Python 3.11 interpreter" in result.stderr
    assert leftovers(release) == []


def test_unwritable_release_folder_says_how_to_install(release: Path) -> None:
    """A folder the user cannot write (the systemd unit's read-only /opt): exit 2 with the
    commands that install it by hand."""
    user = NOBODY if os.geteuid() == 0 else None
    if user is None:
        release.chmod(0o555)
    try:
        result = start(release, user=user, PYTHON=BASE_PYTHON)
    finally:
        release.chmod(0o755)
    assert result.returncode == 2, result.stderr
    assert f"{release} is not writable to install it into {release}/.venv" in result.stderr
    assert f"-m venv {release}/.venv && {release}/.venv/bin/pip install {release}/{WHEEL}" in (
        result.stderr
    )
    assert leftovers(release) == []


def test_venv_without_the_command_is_left_alone(release: Path) -> None:
    """A .venv someone made, without workflow-orchestrator in it, is neither trusted nor
    replaced."""
    (release / ".venv").mkdir()
    (release / ".venv" / "mine").write_text("kept")
    result = start(release, PYTHON=BASE_PYTHON)
    assert result.returncode == 2
    assert f"error: {release}/.venv exists but has no bin/workflow-orchestrator" in result.stderr
    assert (release / ".venv" / "mine").read_text() == "kept"


def test_several_wheels_are_not_guessed_between(release: Path) -> None:
    """An older release's wheel left beside the new one: no install, the operator chooses."""
    older = "workflow_orchestrator-0.0.0a1-py3-none-any.whl"
    (release / older).write_bytes(b"older")
    result = start(release, PYTHON=BASE_PYTHON)
    assert result.returncode == 2
    assert f"holds several wheels ({release}/{WHEEL} {release}/{older})" in result.stderr
    assert leftovers(release) == []


@pytest.mark.slow
def test_failed_install_keeps_no_virtualenv(release: Path) -> None:
    """pip fails (here: the wheel is broken): exit 1, pip's own error and ours on stderr, no
    .venv and no build folder left, nothing on stdout; a build folder left by a killed install
    is cleared too."""
    (release / f".venv.tmp.{DEAD_PID}" / "bin").mkdir(parents=True)
    result = start(release, PYTHON=BASE_PYTHON)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"start.sh: first run of this release: installing {WHEEL} and its dependencies into "
        f"{release}/.venv with {BASE_PYTHON} (needs the package index; once only)"
    )
    assert "ERROR:" in result.stderr  # pip's
    assert lines[-2].startswith(f"error: installing {WHEEL} into {release}/.venv failed")
    assert "nothing was kept" in lines[-2]
    assert lines[-1] == (
        f"  {BASE_PYTHON} -m venv {release}/.venv && {release}/.venv/bin/pip install "
        f"{release}/{WHEEL}"
    )
    assert leftovers(release) == []
