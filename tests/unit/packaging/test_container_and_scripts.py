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


def test_containerfile_passes_hadolint(tmp_path: Path) -> None:
    """hadolint finds nothing, down to its style rules: no rule disabled by a configuration
    file (none is read: empty folders and environment) or by an inline ignore pragma."""
    result = subprocess.run(
        [
            hadolint(),
            "--failure-threshold",
            "style",
            "--disable-ignore-pragma",
            str(REPOSITORY / "Containerfile"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def copied_sources() -> list[str]:
    """The build-context paths the Containerfile's COPY lines read (not those --from a stage)."""
    sources: list[str] = []
    for line in (REPOSITORY / "Containerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from=") for w in words):
            sources.extend(w for w in words[1:-1] if not w.startswith("--"))
    return sources


def test_build_context_is_the_repository_alone() -> None:
    """Every COPY source is a file or folder of the repository, and .dockerignore (read by
    docker, podman and buildah) lets exactly those into the context: no .venv, .git, tests or
    local config/application.yaml."""
    sources = copied_sources()
    assert "workflow_orchestrator" in sources and "config/application.yaml.example" in sources
    for source in sources:
        assert (REPOSITORY / source).exists(), source
    rules = [
        line
        for line in (REPOSITORY / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {rule.removeprefix("!") for rule in rules if rule.startswith("!")}
    assert allowed == set(sources)
    assert "**/__pycache__" in rules


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
