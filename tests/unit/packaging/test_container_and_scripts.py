"""The container recipe and the operator scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is missing: install the test extra (pip install -e '.[test]')")
    return found


def test_containerfile_passes_hadolint() -> None:
    """hadolint finds nothing to complain about in the Containerfile."""
    result = subprocess.run(
        [hadolint(), str(REPOSITORY / "Containerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_containerfile_follows_the_deployment_contract() -> None:
    """Non-root user, both ports exposed, a liveness health check and `serve` as the command."""
    text = (REPOSITORY / "Containerfile").read_text()
    assert text.count("FROM python:3.11-slim") == 2  # multi-stage
    assert "USER 10001:10001" in text
    assert "EXPOSE 8080 8081" in text
    assert "HEALTHCHECK" in text and "/health/live" in text
    assert 'ENTRYPOINT ["workflow-orchestrator"]' in text and 'CMD ["serve"]' in text
    assert "/app/config/application.yaml" in text
    # The service validates with its own grammar: no spec build context, no schema file.
    assert "--from=spec" not in text and "WORKFLOW_DSL_SCHEMA=" not in text
    assert "/spec/" not in text


@pytest.mark.parametrize(
    ("script", "command"),
    [("start.sh", "serve"), ("init-schema.sh", "init-schema"), ("migrate.sh", "migrate")],
)
def test_scripts_accept_the_guides_flags(script: str, command: str) -> None:
    """Each bin/ script passes the guide's --url/--username/--password to its subcommand."""
    result = subprocess.run(
        [str(REPOSITORY / "bin" / script), "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "WORKFLOW_ORCHESTRATOR_BIN": str(Path(sys.executable).parent / "workflow-orchestrator"),
        },
    )
    assert result.returncode == 0, result.stderr
    assert f"usage: workflow-orchestrator {command}" in result.stdout
    for flag in ("--url URL", "--username USER", "--password PASSWORD"):
        assert flag in result.stdout


def test_ci_entry_point_sets_ci() -> None:
    """.ci/run exports CI=true before the tests, so a missing service fails instead of skipping."""
    lines = (REPOSITORY / ".ci" / "run").read_text().splitlines()
    assert "export CI=true" in lines
    assert lines.index("export CI=true") < lines.index("make test")
