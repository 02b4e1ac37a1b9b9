"""The wheel is the product: installed far from any checkout, it serves the guide's requests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.parse
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.listening import netstat_programs, pgrep_full, ss_processes
from tests.support.process import REPOSITORY, RunningService, run_service
from tests.support.services import unavailable

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUILD_TIMEOUT = 600
GUIDE_INSTANCE = {
    "workflowDefinitionId": "order_processing",
    "input": {"orderId": "ORD-12345", "customerId": "CUST-789"},
}
OPERATOR_FILES = (
    "CHANGELOG.md",
    "config/application.yaml.example",
    "config/development.yaml",
    "config/production.yaml",
    "config/staging.yaml",
    "bin/start.sh",
    "bin/init-schema.sh",
    "bin/migrate.sh",
    "schema/init.sql",
    "examples/order_processing.yaml",
    "docs/deployment.md",
    "deploy/systemd/workflow-orchestrator.service",
    "deploy/release/build_release.py",
)
TOP = "workflow-orchestrator"
#: The release folder's files besides the wheel.
RELEASE_FILES = (
    "README.md",
    "bin/_common.sh",
    "bin/start.sh",
    "bin/init-schema.sh",
    "bin/migrate.sh",
    "config/application.yaml.example",
    "config/development.yaml",
    "config/staging.yaml",
    "config/production.yaml",
    "schema/init.sql",
    "examples/order_processing.yaml",
    "deploy/systemd/workflow-orchestrator.service",
    "deploy/systemd/workflow-orchestrator.env",
    "dashboards/workflow-orchestrator.json",
    "deploy/prometheus/alerts.yaml",
    "deploy/prometheus/prometheus.yaml",
)
HIDDEN_PASSWORD = "not-for-ps-eyes"
#: The deployment guide's "Manual Deployment" after `unzip workflow-orchestrator.zip`, as the
#: release README gives it (the guide's "Edit application.yaml" comes between the two).
GUIDE_CONFIGURE = f"cd {TOP}\ncp config/application.yaml.example config/application.yaml\n"
GUIDE_START = "./bin/start.sh\n"


def package_files() -> set[str]:
    """Every file of the package in the checkout (modules and run-time data), without caches."""
    root = REPOSITORY / "workflow_orchestrator"
    return {
        str(path.relative_to(REPOSITORY))
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, the wheel built from it and the release zip, as `make dist` builds them."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "deploy.release.build_release", "--outdir", str(out)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_wheel_and_sdist_carry_every_file_the_service_needs(dist: Path) -> None:
    """The wheel holds every module and data file of the package; the sdist also the operator's."""
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    expected = package_files()
    assert {
        "workflow_orchestrator/py.typed",
        "workflow_orchestrator/gateway/openapi.yaml",
        "workflow_orchestrator/storage/migrations/V001__initial_schema.sql",
    } <= expected
    assert expected - in_wheel == set()
    outside = {name for name in in_wheel - expected if ".dist-info/" not in name}
    assert outside == set(), "the wheel carries files that are not the package's"
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        in_sdist = {name.removeprefix(top + "/") for name in archive.getnames()}
    assert (expected | set(OPERATOR_FILES)) - in_sdist == set()
    assert "config/application.yaml" not in in_sdist, "a local configuration leaked"


def test_release_zip_holds_the_release_folder(dist: Path) -> None:
    """One folder `workflow-orchestrator/` with the wheel, the scripts (executable), the
    configuration, the schema, the examples, the systemd unit and the README."""
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(dist / "workflow-orchestrator.zip") as archive:
        entries = {info.filename: info for info in archive.infolist()}
        assert archive.read(f"{TOP}/{wheel.name}") == wheel.read_bytes()
        readme = archive.read(f"{TOP}/README.md").decode()
    assert all(name.startswith(f"{TOP}/") for name in entries)
    names = {name.removeprefix(f"{TOP}/") for name in entries}
    assert names == set(RELEASE_FILES) | {wheel.name}
    modes = {name: entries[f"{TOP}/{name}"].external_attr >> 16 for name in names}
    executables = {name for name, mode in modes.items() if mode & 0o111}
    assert executables == {"bin/start.sh", "bin/init-schema.sh", "bin/migrate.sh"}
    assert all(mode & 0o777 in (0o644, 0o755) for mode in modes.values()), modes
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert blocks[:3] == [GUIDE_CONFIGURE, GUIDE_START, by_hand_install(wheel.name)]
    assert "@VERSION@" not in readme and "@WHEEL@" not in readme


def by_hand_install(wheel: str) -> str:
    return f"python3.11 -m venv .venv\n.venv/bin/pip install {wheel}\n"


def test_release_zip_runs_as_the_guide_says(dist: Path, tmp_path: Path, database_url: str) -> None:
    """The guide's manual deployment verbatim, far from the checkout: unzip, cd, cp the example,
    edit it, ./bin/start.sh, whose first run installs the bundled wheel into .venv (no other
    install step); then the guide's troubleshooting: the log file, pgrep -f, netstat and ss name
    the process workflow-orchestrator."""
    if shutil.which("unzip") is None:
        unavailable("unzip is not installed; install unzip")
    download = tmp_path / "download"
    download.mkdir()
    shutil.copy2(dist / "workflow-orchestrator.zip", download)  # curl -LO ...
    shims = tmp_path / "shims"  # `python3.11` of start.sh is the interpreter of this run
    shims.mkdir()
    (shims / "python3.11").symlink_to(getattr(sys, "_base_executable", sys.executable))
    base_env = {
        "PATH": f"{shims}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LANG": "C.UTF-8",
    }
    run_in(download, ["unzip", "workflow-orchestrator.zip"], base_env)
    release = download / TOP
    assert GUIDE_CONFIGURE.startswith(f"cd {TOP}\n")
    run_in(download, ["bash", "-euo", "pipefail", "-c", GUIDE_CONFIGURE], base_env)
    assert not (release / ".venv").exists()

    # "Edit application.yaml": no broker here, and a log file where this test may write.
    log_file = tmp_path / "var-log" / "service.log"
    log_file.parent.mkdir()
    config_path = release / "config" / "application.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["eventProcessing"]["source"] = "database"
    config["logging"]["appenders"]["file"]["path"] = str(log_file)
    config_path.write_text(yaml.safe_dump(config))

    (wheel,) = dist.glob("*.whl")
    assert GUIDE_START == "./bin/start.sh\n"
    with run_service(
        tmp_path,
        command=("./bin/start.sh",),
        subcommand=(),
        args=("--password", HIDDEN_PASSWORD),
        ready_timeout=BUILD_TIMEOUT,  # the first start installs the wheel and its dependencies
        base_env=base_env,
        env={
            "DATABASE_URL": database_url,
            "DATABASE_USERNAME": urllib.parse.urlsplit(database_url).username or "",
            "LOG_LEVEL": "INFO",
            "LOG_FILE_ENABLED": "true",
        },
        cwd=release,
    ) as service:
        registered = httpx.post(
            service.api + "/api/v1/workflow-definitions",
            params={"id": "order_processing"},
            content=(release / "examples" / "order_processing.yaml").read_bytes(),
            headers={"Content-Type": "application/yaml"},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
        started = httpx.post(
            service.api + "/api/v1/workflow-instances", json=GUIDE_INSTANCE, timeout=30
        )
        assert started.status_code == 201, started.text
        assert started.json()["workflowDefinitionId"] == "order_processing"
        check_process_names(service)
        check_first_run_install(release, wheel.name, service.log())
        code, _ = service.stop()
        assert code == 0, service.log()
        assert "workflow-orchestrator stopped" in service.log()
    logged = log_file.read_text()
    assert "workflow-orchestrator is ready" in logged and "workflow-orchestrator stopped" in logged


def check_first_run_install(release: Path, wheel: str, log: str) -> None:
    """start.sh said it installed the wheel into the release's .venv (built elsewhere and
    renamed, with its scripts pointing at .venv), and that .venv serves."""
    assert (
        f"start.sh: first run of this release: installing {wheel} and its dependencies into "
        f"{release}/.venv with python3.11 (needs the package index; once only)\n"
    ) in log
    assert f"start.sh: installed workflow-orchestrator into {release}/.venv\n" in log
    assert sorted(p.name for p in release.iterdir() if p.name.startswith(".venv")) == [".venv"]
    venv = release / ".venv"
    script = (venv / "bin" / "workflow-orchestrator").read_text().splitlines()
    # pip writes `#!<python>`, or, when that path is longer than a shebang may be, a /bin/sh
    # line that execs it: either way, the .venv's own python, not the build folder's.
    assert script[0] == f"#!{venv}/bin/python" or (
        script[0] == "#!/bin/sh" and f"{venv}/bin/python" in script[1]
    ), script[:3]
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import workflow_orchestrator as w; print(w.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=release,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},  # no PYTHONPATH to the checkout
    )
    assert where.stdout.strip().startswith(f"{venv}/lib/"), where.stdout


def check_process_names(service: RunningService) -> None:
    """ps, pgrep -f, top, netstat -tulpn and ss -tlnp find the service by its name; the
    password given on the command line is masked in it."""
    pid = service.process.pid  # bin/start.sh execs the service: the same process
    proc = Path(f"/proc/{pid}")
    title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode()
    assert title == "workflow-orchestrator serve --password ******"
    assert HIDDEN_PASSWORD.encode() not in (proc / "cmdline").read_bytes()
    assert (proc / "comm").read_text().strip() == "workflow-orches"  # top, ss -p, pgrep
    assert pid in pgrep_full("workflow-orchestrator")
    for url in (service.api, service.management):
        port = int(url.rsplit(":", 1)[1])
        # netstat cuts "PID/Program name" to 19 characters.
        assert netstat_programs(port) == {f"{pid}/workflow-orchestrator"[:19]}
        (users,) = ss_processes(port)
        assert f'(("workflow-orches",pid={pid},' in users


def run_in(
    folder: Path, command: list[str], env: dict[str, str], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command,
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result
