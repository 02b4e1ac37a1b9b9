"""The command line: help texts, version, config show, exit codes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.spec import require_spec
from workflow_orchestrator import __version__
from workflow_orchestrator.cli import _process_title, main
from workflow_orchestrator.config import ENVIRONMENT_OVERRIDES


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


def test_definitions_validate_compiles_sandboxed_expressions_without_a_sandbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`definitions validate` checks expressions that need the sandbox by compiling them only."""
    path = tmp_path / "sum.yaml"
    path.write_text(
        "document: {dsl: '1.0.3', namespace: test, name: sum, version: '0.1.0'}\n"
        "do:\n  - total:\n      set:\n        sum: '${ reduce .items[] as $x (0; . + $x) }'\n"
    )
    assert main(["definitions", "validate", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: valid\n"


# -- a user's mistakes: one line naming what to change, a non-zero exit, no traceback ----------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without config/, and none of the machine's override variables."""
    for name in (*ENVIRONMENT_OVERRIDES, "WORKFLOW_CONFIG", "WORKFLOW_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and the last line of standard error of ``workflow-orchestrator ARGS``."""
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's usage errors
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip().splitlines()[-1].strip()


def unreadable_file(folder: Path) -> Path:
    """A file that exists and cannot be read, also by root (which ignores permissions)."""
    if os.geteuid() == 0:
        return Path("/proc/self/clear_refs")  # write-only: reading fails with EINVAL
    path = folder / "secret.yaml"
    path.write_text("server: {port: 1}\n")
    path.chmod(0)
    return path


@pytest.mark.parametrize("command", [["serve"], ["init-schema"], ["migrate"], ["config", "show"]])
def test_missing_config_file(
    command: list[str], workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --config file that does not exist names the file and how to create it (exit 2)."""
    assert run_cli([*command, "--config", "nothere.yaml"], capsys) == (
        2,
        "- --config: configuration file nothere.yaml does not exist; create it from "
        "config/application.yaml.example or point to another file",
    )


def test_unreadable_config_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A configuration file that cannot be read names the file and the reason (exit 2)."""
    path = unreadable_file(workdir)
    code, line = run_cli(["serve", "--config", str(path)], capsys)
    assert code == 2
    assert line.startswith(f"- {path}: cannot read the file: ")


def test_invalid_yaml_names_file_and_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Broken YAML names the file, line and column (exit 2)."""
    (workdir / "app.yaml").write_text("server:\n  port: [8080\n")
    assert run_cli(["migrate", "--config", "app.yaml"], capsys) == (
        2,
        "- app.yaml: not valid YAML at line 3, column 1: expected ',' or ']', but got "
        "'<stream end>'",
    )


def test_config_file_in_another_encoding(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not UTF-8 names the line of the first bad byte (exit 2)."""
    (workdir / "app.yaml").write_bytes(b"logging:\n  level: \xe9\n")
    assert run_cli(["init-schema", "--config", "app.yaml"], capsys) == (
        2,
        "- app.yaml: not UTF-8 text (byte 0xe9 at line 2); save the file as UTF-8",
    )


def test_unknown_profile(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown profile names the missing file and the profiles to choose from (exit 2)."""
    assert run_cli(["serve", "--profile", "prod"], capsys) == (
        2,
        f"- --profile: profile 'prod' has no file {workdir / 'config' / 'prod.yaml'}; create it "
        "or choose one of: local, development, staging, production",
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["serve", "--port", "eighty"],
            {},
            "workflow-orchestrator serve: error: argument --port: invalid int value: 'eighty'",
        ),
        (
            ["serve", "--port", "70000"],
            {},
            "- --port: server.port: expected a TCP port number between 1 and 65535, got 70000 "
            "(out of range)",
        ),
        (
            ["serve"],
            {"MANAGEMENT_PORT": "http"},
            "- env MANAGEMENT_PORT: server.managementPort: expected a TCP port number between 1 "
            "and 65535, got 'http'",
        ),
        (
            ["serve", "--port", "8081"],
            {},
            "- --port: server.port: the API port 8081 equals server.managementPort; give the two "
            "listeners different ports",
        ),
    ],
)
def test_bad_ports(
    args: list[str],
    env: dict[str, str],
    expected: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A port that is not a number, out of range or clashing names the option or variable."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert run_cli(args, capsys) == (2, expected)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve", "--verbose"], "workflow-orchestrator: error: unrecognized arguments: --verbose"),
        (
            ["start"],
            "workflow-orchestrator: error: argument COMMAND: invalid choice: 'start' "
            "(choose from 'serve', 'init-schema', 'migrate', 'config', 'definitions', 'version')",
        ),
        (
            ["migrate", "--url"],
            "workflow-orchestrator migrate: error: argument --url: expected one argument",
        ),
    ],
)
def test_unknown_options_and_commands(
    args: list[str], expected: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unknown options and commands print usage and the offending word (exit 2)."""
    assert run_cli(args, capsys) == (2, expected)


def test_a_database_url_that_is_not_one(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --url that is not a PostgreSQL URL names the option and the expected form (exit 2)."""
    assert run_cli(["migrate", "--url", "db-host:5432/workflows"], capsys) == (
        2,
        "- --url: database.url: expected a URL starting with jdbc:postgresql:// or "
        "postgresql://, got one starting with 'db-host:'",
    )


def test_unwritable_log_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A log file that cannot be created names logging.appenders.file.path and its file."""
    (workdir / "blocker").write_text("")
    config = workdir / "app.yaml"
    config.write_text(
        "logging:\n  appenders:\n    file:\n      enabled: true\n      path: blocker/x.log\n"
    )
    code, line = run_cli(["migrate", "--config", str(config)], capsys)
    assert code == 2
    assert line.startswith(
        f"- {config}: logging.appenders.file.path: cannot open log file blocker/x.log: "
    )
    assert line.endswith(
        "choose a path this user may write (or create the folder for it), or set "
        "logging.appenders.file.enabled: false"
    )


SHELL_TASK = (
    "document: {dsl: '1.0.3', namespace: test, name: shell, version: '0.1.0'}\n"
    "do:\n  - hello:\n      run:\n        shell:\n          command: echo hello\n"
)


def test_definitions_validate_warns_about_what_will_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid DSL the service will not run is a warning (exit 0); --strict makes it a failure."""
    path = tmp_path / "shell.yaml"
    path.write_text(SHELL_TASK)
    warning = (
        "/do/0/hello/run/shell: this service does not run run.shell while workflows.run.shell "
        "is false (the default); set workflows.run.shell: true in the configuration, or remove "
        "this task (shell-disabled)"
    )
    assert main(["definitions", "validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"{path}: warning: {warning}",
        f"{path}: valid, with 1 warning",
    ]
    assert captured.err == (
        "1 of 1 files use what this service will not run as configured (the warnings); "
        "registering them fails until that changes; --strict fails here too\n"
    )
    assert main(["definitions", "validate", "--strict", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"{path}: {warning}"]
    assert captured.err == "1 of 1 files have problems\n"
    assert main(["definitions", "validate", "--allow-shell", "--strict", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: valid\n"


def test_definitions_validate_allows_mcp_stdio_on_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--allow-mcp-stdio accepts call: mcp over stdio, which --strict refuses by default."""
    example = str(require_spec() / "examples" / "call-mcp.yaml")
    assert main(["definitions", "validate", "--strict", example]) == 1
    assert "(mcp-stdio-disabled)" in capsys.readouterr().out
    assert main(["definitions", "validate", "--strict", "--allow-mcp-stdio", example]) == 0
    assert capsys.readouterr().out == f"{example}: valid\n"


def test_definitions_validate_refuses_a_wrong_schema_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing or foreign schema file is one line naming where it came from, exit 2."""
    path = tmp_path / "flow.yaml"
    path.write_text(SHELL_TASK)
    missing = tmp_path / "nowhere.yaml"
    advice = (
        "point it at the official Serverless Workflow 1.0.3 schema/workflow.yaml, or leave it "
        "empty (definitions are validated without it)"
    )
    assert main(["definitions", "validate", "--schema", str(missing), str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"workflow-orchestrator: --schema: the schema file {missing} does not exist; {advice}\n"
    )
    other = tmp_path / "other.yaml"
    other.write_text("$id: https://example.com/other.yaml\ntype: object\n")
    monkeypatch.setenv("WORKFLOW_DSL_SCHEMA", str(other))
    assert main(["definitions", "validate", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"workflow-orchestrator: env WORKFLOW_DSL_SCHEMA: definitions.schema: the schema file "
        f"{other} is not the Serverless Workflow 1.0.3 schema ($id is "
        "'https://example.com/other.yaml', expected "
        f"'https://serverlessworkflow.io/schemas/1.0.3/workflow.yaml'); {advice}\n"
    )
    other.write_text("- not\n- a mapping\n")
    assert main(["definitions", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"the schema file {other} is not a YAML or JSON mapping" in err


def test_definitions_validate_every_official_example(capsys: pytest.CaptureFixture[str]) -> None:
    """All official examples are valid without a schema file; the 13 that run containers,
    scripts or shells or start an MCP server over stdio get a warning with the default
    settings, none fails."""
    examples = sorted(str(p) for p in (require_spec() / "examples").glob("*.yaml"))
    assert main(["definitions", "validate", *examples]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if line.endswith(": valid")]) == len(examples) - 13
    assert len([line for line in lines if ": warning: /do/" in line]) == 13


def test_definitions_validate_strict_with_the_features_enabled_in_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--strict accepts every official example under a configuration that enables
    containers, shells, scripts and MCP stdio servers and grants the secrets; without it, the
    same files fail."""
    examples = sorted(str(p) for p in (require_spec() / "examples").glob("*.yaml"))
    config = tmp_path / "application.yaml"
    config.write_text(
        "workflows:\n  run:\n    shell: true\n    script: true\n"
        "    container:\n      runtime: podman\n"
        "  calls:\n    mcp:\n      stdio: true\n"
        "security:\n  secrets:\n    grants:\n      - namespace: '*'\n"
        "        secrets: [mySecret]\n"
    )
    assert main(["definitions", "validate", "--strict", "--config", str(config), *examples]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if line.endswith(": valid")]) == len(examples)
    assert main(["definitions", "validate", "--strict", *examples]) == 1


def test_definitions_validate_with_the_official_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--schema adds the official schema as an extra check; the two agree on a bad file."""
    schema = require_spec() / "schema" / "workflow.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHELL_TASK.replace("version: '0.1.0'", "version: '1.0'"))
    assert main(["definitions", "validate", "--schema", str(schema), str(bad)]) == 1
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{bad}: /document/version: '1.0' is not a semantic version such as 1.0.0 (pattern)"
    )


@pytest.mark.parametrize(
    ("argv", "title"),
    [
        (["serve"], "workflow-orchestrator serve"),
        (
            ["serve", "--url", "jdbc:postgresql://db/w", "--password", "s3cret", "--port", "1"],
            "workflow-orchestrator serve --url jdbc:postgresql://db/w --password ****** --port 1",
        ),
        (["migrate", "--password=s3cret"], "workflow-orchestrator migrate --password=******"),
        (["serve", "--pass", "s3cret"], "workflow-orchestrator serve --pass ******"),
        (["serve", "--profile", "production"], "workflow-orchestrator serve --profile production"),
    ],
)
def test_process_title_names_the_service_and_hides_the_password(
    argv: list[str], title: str
) -> None:
    """What ps, pgrep -f and netstat show: the name, the arguments, never the password (argparse
    also takes the abbreviation --pass)."""
    assert _process_title(argv) == title
