"""The command line: help texts, version, config show, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.spec import require_spec
from workflow_orchestrator import __version__
from workflow_orchestrator.cli import main


@pytest.mark.parametrize(
    "command", [[], ["serve"], ["init-schema"], ["migrate"], ["config", "show"]]
)
def test_every_command_has_useful_help(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--help explains the command and where the configuration comes from."""
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: workflow-orchestrator" in out
    assert "WORKFLOW_CONFIG" in out or "config show" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`version` prints the package version."""
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"workflow-orchestrator {__version__}"


def test_config_show_reports_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config show` lists each value with where it came from, secrets masked."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_PASSWORD", "hunter2")
    monkeypatch.setenv("SERVER_PORT", "9999")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "application.yaml").write_text("database:\n  poolSize: 9\n")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    lines = {
        line.split()[0]: line.split()[1:] for line in out.splitlines() if not line.startswith("#")
    }
    assert lines["server.port"] == ["9999", "env", "SERVER_PORT"]
    assert lines["database.password"] == ['"******"', "env", "DATABASE_PASSWORD"]
    assert lines["database.poolSize"] == ["9", str(tmp_path / "config" / "application.yaml")]
    assert main(["config", "show", "--format", "json"]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert tree["server"]["port"] == 9999 and tree["database"]["password"] == "******"


def test_config_show_prints_the_pool_of_each_database_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config show --config FILE` accepts the guide's redundancy block and shows every pool."""
    monkeypatch.delenv("DATABASE_POOL_SIZE", raising=False)
    path = tmp_path / "ha.yaml"
    path.write_text(
        "database:\n  primary:\n    url: jdbc:postgresql://db-primary:5432/workflows\n"
        "    poolSize: 20\n  replicas:\n"
        "    - url: jdbc:postgresql://db-replica-1:5432/workflows\n      poolSize: 30\n"
        "    - url: jdbc:postgresql://db-replica-2:5432/workflows\n      poolSize: 30\n"
        "  readPreference: PREFER_REPLICA\n"
    )
    assert main(["config", "show", "--config", str(path)]) == 0
    lines = {
        line.split()[0]: line.split()[1]
        for line in capsys.readouterr().out.splitlines()
        if not line.startswith("#")
    }
    assert lines["database.primary.poolSize"] == "20"
    assert lines["database.replicas[0].poolSize"] == "30"
    assert lines["database.replicas[1].poolSize"] == "30"
    assert lines["database.maxReplicaLag"] == "10.0"


def test_config_errors_exit_2_with_every_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad configuration exits 2 and prints each problem on its own line."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SERVER_PORT", raising=False)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "application.yaml").write_text("server:\n  prot: 1\n  port: x\n")
    assert main(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("workflow-orchestrator: invalid configuration (2 problems):\n")
    assert "server.prot: unknown key; did you mean 'server.port'?" in err
    assert "server.port: expected a TCP port number between 1 and 65535, got 'x'" in err


def test_definitions_validate_prints_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`definitions validate` prints each problem with its JSON pointer and exits 1."""
    require_spec()
    good = tmp_path / "good.yaml"
    good.write_text(
        "document: {dsl: '1.0.0', namespace: test, name: good, version: '0.1.0'}\n"
        "do:\n  - greet:\n      set:\n        message: hello\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "document: {dsl: '1.0.0', namespace: test, name: bad, version: '0.1.0'}\n"
        "do:\n  - first:\n      set:\n        a: ${ .x | }\n      then: nowhere\n"
    )
    assert main(["definitions", "validate", str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == f"{good}: valid"
    assert lines[1].startswith(
        f"{bad}: /do/0/first/set/a: expression '${{ .x | }}': is not valid jq"
    )
    assert lines[2] == (
        f"{bad}: /do/0/first/then: then refers to task 'nowhere', which is not in the same task "
        "list; use one of ['first'] or continue, exit, end (then-target)"
    )
    assert captured.err == "1 of 2 files have problems\n"
    assert main(["definitions", "validate", str(good)]) == 0
