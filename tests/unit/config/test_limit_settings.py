"""``workflows.limits``: the per-instance budgets, their defaults and their error texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_orchestrator.config import ConfigError, LimitSettings, load_config


def _write(folder: Path, text: str) -> Path:
    path = folder / "config" / "application.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_are_out_of_reach_of_sane_workflows(tmp_path: Path) -> None:
    """Without configuration the documented defaults apply."""
    limits = load_config(cwd=tmp_path, environ={}).settings.workflows.limits
    assert limits == LimitSettings(
        tasks_per_run=100_000,
        total_tasks=1_000_000,
        state_size=16 * 1024 * 1024,
        history_rows=1_000_000,
        loop_iterations=100_000,
        commit_every=1000,
    )


def test_limits_are_read_from_yaml_in_camel_case(tmp_path: Path) -> None:
    """Each limit is a camelCase key under workflows.limits; stateSize takes a size."""
    _write(
        tmp_path,
        "workflows:\n  limits:\n    tasksPerRun: 500\n    totalTasks: 0\n    stateSize: 1MB\n"
        "    historyRows: 70\n    loopIterations: 9\n    commitEvery: 25\n",
    )
    limits = load_config(cwd=tmp_path, environ={}).settings.workflows.limits
    assert limits == LimitSettings(
        tasks_per_run=500,
        total_tasks=0,
        state_size=1024 * 1024,
        history_rows=70,
        loop_iterations=9,
        commit_every=25,
    )


def test_bad_limits_name_the_key_and_what_to_write(tmp_path: Path) -> None:
    """A negative limit or a commitEvery of 0 is refused with the key and the expected value."""
    path = _write(tmp_path, "workflows:\n  limits:\n    tasksPerRun: -1\n    commitEvery: 0\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert [str(p) for p in exc.value.problems] == [
        f"{path}: workflows.limits.tasksPerRun: expected a whole number (0: no limit), got -1 "
        "(out of range)",
        f"{path}: workflows.limits.commitEvery: expected a number of tasks, at least 1, got 0 "
        "(out of range)",
    ]


def test_subflow_depth_is_a_limit_with_a_default_of_ten(tmp_path: Path) -> None:
    """``subflowDepth`` defaults to 10, is read in camelCase, and refuses a negative value."""
    default = load_config(cwd=tmp_path, environ={}).settings.workflows.limits.subflow_depth
    _write(tmp_path, "workflows:\n  limits:\n    subflowDepth: 3\n")
    read = load_config(cwd=tmp_path, environ={}).settings.workflows.limits.subflow_depth
    path = _write(tmp_path, "workflows:\n  limits:\n    subflowDepth: -2\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert (default, read) == (10, 3)
    assert [str(p) for p in exc.value.problems] == [
        f"{path}: workflows.limits.subflowDepth: expected a whole number (0: no limit), got -2 "
        "(out of range)"
    ]
