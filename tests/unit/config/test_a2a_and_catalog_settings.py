"""``workflows.calls.a2a`` and ``workflows.defaultCatalog``: defaults, and where they go."""

from __future__ import annotations

from pathlib import Path

from workflow_orchestrator.config import load_config
from workflow_orchestrator.instances import runtime_options


def _write(folder: Path, text: str) -> None:
    path = folder / "config" / "application.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a2a_is_on_and_no_default_catalog_by_default(tmp_path: Path) -> None:
    """A2A calls run (30 s each); no catalog is called 'default' unless configured."""
    options = runtime_options(load_config(cwd=tmp_path, environ={}).settings.workflows)
    assert "a2a" in options.enabled_calls
    assert options.a2a_timeout == 30.0
    assert options.default_catalog == ""


def test_the_settings_reach_the_interpreter(tmp_path: Path) -> None:
    """Turning A2A off, its timeout and the default catalog's root reach RuntimeOptions."""
    _write(
        tmp_path,
        "workflows:\n  defaultCatalog: https://github.com/serverlessworkflow/catalog/tree/main\n"
        "  calls:\n    a2a:\n      enabled: false\n      timeout: 2m\n",
    )
    options = runtime_options(load_config(cwd=tmp_path, environ={}).settings.workflows)
    assert "a2a" not in options.enabled_calls
    assert options.a2a_timeout == 120.0
    assert options.default_catalog == "https://github.com/serverlessworkflow/catalog/tree/main"
