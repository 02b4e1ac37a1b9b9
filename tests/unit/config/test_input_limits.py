"""The limits of definitions and fetched documents: defaults, units, errors, and where they go."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_orchestrator.config import ConfigError, load_config
from workflow_orchestrator.instances import runtime_options, validation_options


def _write(folder: Path, text: str) -> Path:
    path = folder / "config" / "application.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_are_far_beyond_any_sane_workflow(tmp_path: Path) -> None:
    """4 MiB expanded, 2000 expressions, 10 s to validate, 10 MiB per fetched document."""
    settings = load_config(cwd=tmp_path, environ={}).settings
    definitions = settings.definitions
    assert definitions.max_expanded_size == 4 * 1024 * 1024
    assert (definitions.max_expressions, definitions.validation_timeout) == (2000, 10.0)
    assert settings.workflows.max_document_size == 10 * 1024 * 1024


def test_limits_take_sizes_and_durations_and_reach_the_engine(tmp_path: Path) -> None:
    """Operators raise the limits with sizes and durations; the validation and runtime get them."""
    _write(
        tmp_path,
        "definitions:\n  maxExpandedSize: 16MB\n  maxExpressions: 5000\n"
        "  validationTimeout: 30s\nworkflows:\n  maxDocumentSize: 50MB\n",
    )
    settings = load_config(cwd=tmp_path, environ={}).settings
    options = validation_options(settings.workflows, definitions=settings.definitions)
    assert (options.max_expanded_size, options.max_expressions, options.timeout) == (
        16 * 1024 * 1024,
        5000,
        30.0,
    )
    assert runtime_options(settings.workflows).max_document_size == 50 * 1024 * 1024


def test_a_limit_out_of_range_says_what_to_write(tmp_path: Path) -> None:
    """Zero expressions or a tiny expanded size are refused with the expected kind of value."""
    path = _write(tmp_path, "definitions:\n  maxExpressions: 0\n  maxExpandedSize: 10\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert sorted(str(problem) for problem in exc.value.problems) == [
        f"{path}: definitions.maxExpandedSize: expected a size such as 4MB, got 10 (out of range)",
        f"{path}: definitions.maxExpressions: expected a number of expressions such as 2000, "
        "got 0 (out of range)",
    ]
