"""The wheel is the product: installed far from any checkout, it serves the guide's requests."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support.process import REPOSITORY, run_service

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
)


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
    """The sdist and the wheel built from it, as `make dist` builds them."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPOSITORY)],
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


def test_installed_wheel_serves_the_guides_requests(
    dist: Path, tmp_path: Path, database_url: str
) -> None:
    """pip install of the wheel in a fresh venv: serve, register the example, start an instance."""
    (wheel,) = dist.glob("*.whl")
    venv, work = tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
        cwd=work,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    base_env = {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LANG": "C.UTF-8",
    }
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import workflow_orchestrator as w; print(w.__file__)",
        ],
        capture_output=True,
        text=True,
        env=base_env,
        cwd=work,
        timeout=60,
        check=True,
    )
    assert where.stdout.strip().startswith(str(venv)), where.stdout

    with run_service(
        work,
        command=(str(venv / "bin" / "workflow-orchestrator"),),
        base_env=base_env,
        env={"DATABASE_URL": database_url, "LOG_LEVEL": "INFO"},
        cwd=work,
    ) as service:
        registered = httpx.post(
            service.api + "/api/v1/workflow-definitions",
            params={"id": "order_processing"},
            content=(REPOSITORY / "examples" / "order_processing.yaml").read_bytes(),
            headers={"Content-Type": "application/yaml"},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
        started = httpx.post(
            service.api + "/api/v1/workflow-instances", json=GUIDE_INSTANCE, timeout=30
        )
        assert started.status_code == 201, started.text
        assert started.json()["workflowDefinitionId"] == "order_processing"
        code, _ = service.stop()
        assert code == 0, service.log()
        assert "workflow-orchestrator stopped" in service.log()
