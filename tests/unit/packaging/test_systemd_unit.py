"""deploy/systemd: the unit passes `systemd-analyze verify` and keeps the service's contract."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import unavailable
from workflow_orchestrator.config import ENVIRONMENT_OVERRIDES, Settings, load_config

REPOSITORY = Path(__file__).resolve().parents[3]
UNIT = REPOSITORY / "deploy" / "systemd" / "workflow-orchestrator.service"
ENV_FILE = REPOSITORY / "deploy" / "systemd" / "workflow-orchestrator.env"
INSTALLED_UNIT = "/etc/systemd/system/workflow-orchestrator.service"
NOBODY = 65534
#: Where systemd keeps its own units (sysinit.target, ...), which every service depends on.
SYSTEMD_UNITS = ("usr/lib/systemd/system", "lib/systemd/system")


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        unavailable("systemd-analyze is not installed; install systemd")
    return str(found)


def directives(path: Path) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, values in order (keys may repeat)."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


UNIT_SETTINGS = directives(UNIT)


def one(key: str) -> str:
    (value,) = UNIT_SETTINGS[key]
    return value


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    """A file system root as after the README's install: the repository's unit in
    /etc/systemd/system, the release's bin/ in /opt/workflow-orchestrator, and systemd's own
    units. Readable by everyone, so `nobody` can verify it too."""
    systemd_units = next((Path("/", p) for p in SYSTEMD_UNITS if Path("/", p).is_dir()), None)
    if systemd_units is None:
        unavailable(
            "systemd's units are not installed (no /usr/lib/systemd/system); install systemd"
        )
    folder = Path(tempfile.mkdtemp(prefix="wo-systemd-root-"))
    try:
        folder.chmod(0o755)
        shutil.copytree(systemd_units, folder / "usr/lib/systemd/system", symlinks=True)
        unit = folder / INSTALLED_UNIT.lstrip("/")
        unit.parent.mkdir(parents=True)
        shutil.copy2(UNIT, unit)
        shutil.copytree(REPOSITORY / "bin", folder / one("WorkingDirectory").lstrip("/") / "bin")
        for path in folder.rglob("*"):
            if path.is_symlink():  # systemd's masked units point at /dev/null: not ours
                continue
            path.chmod(path.stat().st_mode | stat.S_IRGRP | stat.S_IROTH)
        yield folder
    finally:
        shutil.rmtree(folder)


def verify(root: Path, *, as_nobody: bool) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [systemd_analyze(), "verify", f"--root={root}", INSTALLED_UNIT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
        user=NOBODY if as_nobody else None,
        group=NOBODY if as_nobody else None,
        extra_groups=[] if as_nobody else None,
    )


# As root, also as `nobody` (the unit must verify unprivileged); an ordinary user's run is
# already unprivileged, so it has the one case.
ACCOUNTS = ["as-us", "as-nobody"] if os.geteuid() == 0 else ["as-us"]


@pytest.mark.parametrize("account", ACCOUNTS)
def test_systemd_analyze_verify_passes(root: Path, account: str) -> None:
    """`systemd-analyze verify` reports nothing: every directive known, ExecStart executable."""
    result = verify(root, as_nobody=account == "as-nobody")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_catches_a_missing_program(root: Path) -> None:
    """The check is real: without bin/start.sh where ExecStart points, verify fails."""
    start = root / one("ExecStart").split()[0].lstrip("/")
    hidden = start.with_name("start.sh.hidden")
    start.rename(hidden)
    try:
        result = verify(root, as_nobody=False)
    finally:
        hidden.rename(start)
    assert result.returncode != 0
    assert "is not executable: No such file or directory" in result.stderr


def test_hardening_keeps_a_low_exposure_score(root: Path) -> None:
    """`systemd-analyze security` rates the unit at most 2.0 ("OK") of 10."""
    result = subprocess.run(
        [
            systemd_analyze(),
            "security",
            "--offline=yes",
            f"--root={root}",
            "--threshold=20",
            INSTALLED_UNIT,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "Overall exposure level for workflow-orchestrator.service: 1." in result.stdout


def test_unit_runs_the_release_as_its_own_user() -> None:
    """A dedicated user, the release's start.sh with its configuration, an environment file."""
    assert one("User") == one("Group") == "workflow-orchestrator"
    assert "DynamicUser" not in UNIT_SETTINGS
    home = one("WorkingDirectory")
    assert one("ExecStart") == f"{home}/bin/start.sh --config {home}/config/application.yaml"
    assert one("EnvironmentFile") == "-/etc/workflow-orchestrator/workflow-orchestrator.env"
    assert one("Type") == "exec"  # serve does not speak sd_notify


def test_unit_gives_the_drain_time_to_finish() -> None:
    """SIGTERM starts the drain; systemd waits longer than the grace period plus the margin
    for pools (cli._serve bounds the stop at grace + 15s) before SIGKILL; failures restart."""
    grace = Settings().server.shutdown_grace_period
    assert one("KillSignal") == "SIGTERM"
    assert int(one("TimeoutStopSec")) > grace + 15
    assert one("Restart") == "on-failure"
    assert one("RestartPreventExitStatus") == "2"  # a configuration error does not heal


def test_unit_keeps_restarting_through_a_database_outage() -> None:
    """`serve` exits 1 within seconds while PostgreSQL is unreachable: no start limit (systemd
    would otherwise give up after StartLimitBurst failures), a pause between attempts, and only
    directives that RHEL 9's systemd 252 and Ubuntu 22.04's 249 know (RestartSteps= and
    RestartMaxDelaySec= came in 254; 252 ignores them, so verify would report them)."""
    assert one("StartLimitIntervalSec") == "0"
    assert "StartLimitBurst" not in UNIT_SETTINGS
    delay = one("RestartSec")
    assert delay.endswith("s") and 5 <= int(delay.removesuffix("s")) <= 30
    assert not {"RestartSteps", "RestartMaxDelaySec"} & set(UNIT_SETTINGS)


def test_unit_makes_the_guides_log_file() -> None:
    """The unit creates /var/log/workflow-orchestrator and turns on the example's file
    appender, whose default path is the guide's service.log."""
    example = REPOSITORY / "config" / "application.yaml.example"
    file_log = load_config(config_path=example, environ={}).settings.logging.appenders.file
    assert not file_log.enabled  # ./bin/start.sh by hand needs no /var/log folder
    (setting,) = [v for v in UNIT_SETTINGS["Environment"] if v.startswith("LOG_FILE_ENABLED=")]
    name, _, value = setting.partition("=")
    file_log = load_config(
        config_path=example, environ={name: value}
    ).settings.logging.appenders.file
    assert file_log.enabled
    assert file_log.path == f"/var/log/{one('LogsDirectory')}/service.log"
    assert file_log.path == "/var/log/workflow-orchestrator/service.log"


def test_environment_file_sets_only_what_the_service_reads() -> None:
    """Each variable of the example environment file is one the service or its example
    configuration reads."""
    example = (REPOSITORY / "config" / "application.yaml.example").read_text()
    for line in ENV_FILE.read_text().splitlines():
        text = line.removeprefix("# ")
        if "=" not in text or " " in text.partition("=")[0] or not text[:1].isupper():
            continue
        name = text.partition("=")[0]
        assert (
            name in ENVIRONMENT_OVERRIDES
            or name == "WORKFLOW_PROFILE"
            or ("${" + name + ":-" in example)
        ), name
