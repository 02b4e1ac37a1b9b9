"""Every ``application.yaml`` block of the deployment guide loads as it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.guide import guide_blocks, is_application_yaml, require_guide
from tests.support.process import REPOSITORY
from workflow_orchestrator.cli import main
from workflow_orchestrator.config import ENVIRONMENT_OVERRIDES, effective_rows, load_config

# The guide's application.yaml blocks, by the heading above each.
APPLICATION_BLOCKS = (
    "Core Configuration File",
    "Development",
    "Staging",
    "Production",
    "Database Redundancy",
    "Distributed Scheduler",
)


@pytest.fixture
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No override variable of the machine running the test; DATABASE_PASSWORD as the guide
    asks for it; a working directory without config/."""
    for name in (*ENVIRONMENT_OVERRIDES, "WORKFLOW_CONFIG", "WORKFLOW_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_PASSWORD", "secure_password")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def block_text(heading: str) -> str:
    (text,) = [
        block.text
        for block in guide_blocks(require_guide())
        if is_application_yaml(block) and block.heading == heading
    ]
    return text


def test_the_guide_has_the_expected_application_blocks() -> None:
    """The guide's application.yaml blocks are the six this test checks, no more."""
    blocks = [b for b in guide_blocks(require_guide()) if is_application_yaml(b)]
    assert tuple(b.heading for b in blocks) == APPLICATION_BLOCKS


@pytest.mark.parametrize("heading", APPLICATION_BLOCKS)
def test_guide_block_loads_verbatim(
    heading: str, clean_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config show --config FILE` accepts the block as the guide writes it (the core file's
    `source: kafka` included)."""
    path = clean_environment / "application.yaml"
    path.write_text(block_text(heading))
    code = main(["config", "show", "--config", str(path)])
    assert (code, capsys.readouterr().err) == (0, "")


def leaf_keys(value: Any, prefix: str = "") -> list[str]:
    """The dotted keys (``a.b[0].c``) of every plain value in a YAML document."""
    if isinstance(value, dict):
        return [k for key, item in value.items() for k in leaf_keys(item, f"{prefix}.{key}")]
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [k for i, item in enumerate(value) for k in leaf_keys(item, f"{prefix}[{i}]")]
    return [prefix.lstrip(".")]


@pytest.mark.parametrize(
    ("heading", "profile"),
    [("Development", "development"), ("Staging", "staging"), ("Production", "production")],
)
def test_shipped_profiles_hold_the_guides_values(
    heading: str, profile: str, clean_environment: Path
) -> None:
    """config/<profile>.yaml sets every value the guide's block for it sets, to the same value."""
    guide_file = clean_environment / f"{profile}.yaml"
    guide_file.write_text(block_text(heading))
    wanted = {k: v for k, v, _ in effective_rows(load_config(config_path=guide_file))}
    shipped = load_config(config_path=REPOSITORY / "config" / f"{profile}.yaml")
    have = {k: v for k, v, _ in effective_rows(shipped)}
    keys = leaf_keys(yaml.safe_load(block_text(heading)))
    assert keys, heading
    assert {k: have[k] for k in keys} == {k: wanted[k] for k in keys}
