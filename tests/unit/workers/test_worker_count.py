"""``server.workers`` and ``serve --workers``: parsing, ``auto``, and what the parent refuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workflow_orchestrator.cli import main
from workflow_orchestrator.config import ConfigError, load_config
from workflow_orchestrator.workers import usable_cpus, worker_count, worker_replica_id


def _cpu_max(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpu.max"
    path.write_text(text)
    return path


def _allowed() -> int:
    return min(os.cpu_count() or 1, len(os.sched_getaffinity(0)))


def test_auto_is_the_cpus_this_process_may_use(tmp_path: Path) -> None:
    unlimited = _cpu_max(tmp_path, "max 100000\n")
    assert usable_cpus(unlimited) == _allowed()
    assert worker_count("auto", unlimited) == _allowed()
    assert worker_count("AUTO", tmp_path / "absent") == _allowed()


@pytest.mark.parametrize(
    ("quota", "expected"),
    [("100000 100000", 1), ("50000 100000", 1), ("150000 100000", 1), ("200000 100000", 2)],
)
def test_auto_is_cut_to_the_cgroup_quota(tmp_path: Path, quota: str, expected: int) -> None:
    """Whole CPUs of the quota (at least 1), never more than the affinity allows."""
    assert worker_count("auto", _cpu_max(tmp_path, quota)) == min(expected, _allowed())


def test_a_quota_above_the_cpus_changes_nothing(tmp_path: Path) -> None:
    assert worker_count("auto", _cpu_max(tmp_path, "6400000 100000")) == _allowed()


def test_numbers_are_taken_as_they_are(tmp_path: Path) -> None:
    assert worker_count("1") == 1
    assert worker_count("4", _cpu_max(tmp_path, "100000 100000")) == 4
    with pytest.raises(ValueError, match="at least 1"):
        worker_count("0")


def test_replica_ids_have_the_worker_suffix() -> None:
    assert worker_replica_id("replica-a", 0) == "replica-a-w0"
    assert worker_replica_id("host", 11) == "host-w11"


@pytest.mark.parametrize(
    ("value", "expected"), [(2, "2"), ("3", "3"), (" 4 ", "4"), ("auto", "auto"), ("Auto", "auto")]
)
def test_the_setting_accepts_a_count_or_auto(tmp_path: Path, value: object, expected: str) -> None:
    loaded = load_config(
        config_path=None, profile=None, overrides={"server.workers": ("--workers", value)}
    )
    assert loaded.settings.server.workers == expected
    assert loaded.source_of("server.workers") == "--workers"


def test_the_default_is_one_process() -> None:
    assert load_config(config_path=None, profile=None).settings.server.workers == "1"


@pytest.mark.parametrize("value", [0, -1, "0", "many", "2.5", True, [2]])
def test_the_setting_refuses_anything_else(value: object) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(
            config_path=None, profile=None, overrides={"server.workers": ("--workers", value)}
        )
    assert "server.workers: expected an integer >= 1 or auto (one per usable CPU)" in str(
        raised.value
    )


def test_the_file_sets_it_and_the_flag_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "application.yaml"
    config.write_text("server:\n  workers: auto\n")
    assert main(["config", "show", "--config", str(config), "--format", "json"]) == 0
    assert '"workers": "auto"' in capsys.readouterr().out


def test_several_workers_need_a_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The embedded database belongs to one process: the parent refuses before any worker."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "WORKFLOW_CONFIG", "WORKFLOW_PROFILE", "WORKFLOW_WORKER_GROUP"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "--workers: server.workers: 2 workers need a database.url" in err


def test_the_flag_is_checked_like_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--workers", "none"]) == 2
    assert "--workers: server.workers: expected an integer >= 1 or auto" in capsys.readouterr().err
