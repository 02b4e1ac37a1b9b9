"""Configuration loading: files, profiles, interpolation, environment overrides, error texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_orchestrator.config import (
    ENVIRONMENT_OVERRIDES,
    ConfigError,
    effective_rows,
    effective_tree,
    load_config,
    startup_problems,
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / "config" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def test_defaults_apply_without_a_file(tmp_path: Path) -> None:
    """With no file and no environment the documented defaults are used."""
    loaded = load_config(cwd=tmp_path, environ={})
    settings = loaded.settings
    assert (settings.server.port, settings.server.management_port) == (8080, 8081)
    assert settings.server.context_path == "/api"
    assert settings.database.url == ""
    assert settings.database.pool_size == 20
    assert settings.event_processing.rabbitmq.exchanges == ("business-events", "system-events")
    assert loaded.files == ()
    assert loaded.source_of("server.port") == "default"


def test_default_file_is_read_from_the_config_folder(tmp_path: Path) -> None:
    """./config/application.yaml is found without being named."""
    path = write(tmp_path, "application.yaml", "server:\n  port: 9090\n")
    loaded = load_config(cwd=tmp_path, environ={})
    assert loaded.settings.server.port == 9090
    assert loaded.source_of("server.port") == str(path)


def test_config_option_wins_over_workflow_config(tmp_path: Path) -> None:
    """--config beats $WORKFLOW_CONFIG, which beats ./config/application.yaml."""
    write(tmp_path, "application.yaml", "server:\n  port: 1111\n")
    env_file = tmp_path / "env.yaml"
    env_file.write_text("server:\n  port: 2222\n")
    option_file = tmp_path / "option.yaml"
    option_file.write_text("server:\n  port: 3333\n")
    environ = {"WORKFLOW_CONFIG": str(env_file)}
    assert load_config(cwd=tmp_path, environ=environ).settings.server.port == 2222
    loaded = load_config(cwd=tmp_path, environ=environ, config_path=option_file)
    assert loaded.settings.server.port == 3333


@pytest.mark.parametrize(
    ("variable", "value", "read"),
    [
        ("SERVER_PORT", "9001", lambda s: s.server.port == 9001),
        ("MANAGEMENT_PORT", "9002", lambda s: s.server.management_port == 9002),
        (
            "DATABASE_URL",
            "jdbc:postgresql://db:5432/wf",
            lambda s: s.database.url == "jdbc:postgresql://db:5432/wf",
        ),
        ("DATABASE_USERNAME", "alice", lambda s: s.database.username == "alice"),
        ("DATABASE_PASSWORD", "s3cret", lambda s: s.database.password == "s3cret"),
        ("DATABASE_POOL_SIZE", "7", lambda s: s.database.pool_size == 7),
        (
            "KAFKA_BOOTSTRAP_SERVERS",
            "k1:9092,k2:9092",
            lambda s: s.event_processing.kafka.bootstrap_servers == "k1:9092,k2:9092",
        ),
        (
            "RABBITMQ_URL",
            "amqp://u:p@mq:5672/",
            lambda s: s.event_processing.rabbitmq.url == "amqp://u:p@mq:5672/",
        ),
        ("LOG_LEVEL", "debug", lambda s: s.logging.level == "DEBUG"),
        ("METRICS_ENABLED", "false", lambda s: s.metrics.enabled is False),
        ("REPLICA_ID", "replica-2", lambda s: s.cluster.replica_id == "replica-2"),
        (
            "WORKFLOW_DSL_SCHEMA",
            "/opt/spec/workflow.yaml",
            lambda s: s.definitions.schema == "/opt/spec/workflow.yaml",
        ),
        (
            "VAULT_ADDR",
            "https://vault.company.com",
            lambda s: s.security.secrets.vault.address == "https://vault.company.com",
        ),
        (
            "VAULT_TOKEN",
            "s.xxxxxxxx",
            lambda s: s.security.secrets.vault.auth.token == "s.xxxxxxxx",
        ),
    ],
)
def test_every_environment_variable_overrides_the_file(
    tmp_path: Path, variable: str, value: str, read: object
) -> None:
    """Each of the guide's environment variables wins over the file and is reported as its source."""
    write(
        tmp_path,
        "application.yaml",
        "server:\n  port: 1\n  managementPort: 2\ndatabase:\n  poolSize: 3\n"
        "logging:\n  level: ERROR\nmetrics:\n  enabled: true\n",
    )
    loaded = load_config(cwd=tmp_path, environ={variable: value})
    assert callable(read) and read(loaded.settings)
    assert loaded.source_of(ENVIRONMENT_OVERRIDES[variable]) == f"env {variable}"


def test_the_override_list_is_the_guides() -> None:
    """The supported environment variables are exactly the documented ones."""
    assert set(ENVIRONMENT_OVERRIDES) == {
        "SERVER_PORT",
        "MANAGEMENT_PORT",
        "DATABASE_URL",
        "DATABASE_USERNAME",
        "DATABASE_PASSWORD",
        "DATABASE_POOL_SIZE",
        "KAFKA_BOOTSTRAP_SERVERS",
        "RABBITMQ_URL",
        "LOG_LEVEL",
        "METRICS_ENABLED",
        "REPLICA_ID",
        "WORKFLOW_DSL_SCHEMA",
        "VAULT_ADDR",
        "VAULT_TOKEN",
    }


def test_interpolation_with_and_without_default(tmp_path: Path) -> None:
    """${VAR} takes the variable; ${VAR:-default} falls back when it is unset or empty."""
    write(
        tmp_path,
        "application.yaml",
        "database:\n  url: jdbc:postgresql://${DB_HOST}:5432/${DB_NAME:-workflows}\n"
        "  poolSize: ${POOL:-12}\n  username: ${DB_USER:-app}\n",
    )
    loaded = load_config(cwd=tmp_path, environ={"DB_HOST": "db.internal", "DB_USER": ""})
    database = loaded.settings.database
    assert database.url == "jdbc:postgresql://db.internal:5432/workflows"
    assert database.pool_size == 12
    assert database.username == "app"


def test_unset_variable_without_default_names_file_key_and_fix(tmp_path: Path) -> None:
    """A ${VAR} with nothing to take says which file, key and variable, and how to fix it."""
    path = write(tmp_path, "application.yaml", "database:\n  password: ${DB_PASSWORD}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert problems(exc) == [
        f"{path}: database.password: environment variable DB_PASSWORD is not set; set it, or "
        "write ${DB_PASSWORD:-default} to give a default"
    ]


def test_profile_overlays_the_base_file(tmp_path: Path) -> None:
    """--profile NAME overlays config/NAME.yaml; untouched keys keep the base file's values."""
    write(tmp_path, "application.yaml", "server:\n  port: 8000\ndatabase:\n  poolSize: 5\n")
    profile = write(tmp_path, "production.yaml", "database:\n  poolSize: 50\n")
    loaded = load_config(cwd=tmp_path, environ={}, profile="production")
    assert loaded.settings.server.port == 8000
    assert loaded.settings.database.pool_size == 50
    assert loaded.source_of("database.poolSize") == str(profile)
    assert loaded.profile == "production"


def test_profile_from_environment(tmp_path: Path) -> None:
    """WORKFLOW_PROFILE selects the profile when --profile is absent."""
    write(tmp_path, "staging.yaml", "logging:\n  level: DEBUG\n")
    loaded = load_config(cwd=tmp_path, environ={"WORKFLOW_PROFILE": "staging"})
    assert loaded.settings.logging.level == "DEBUG"


def test_missing_profile_file_lists_the_profiles(tmp_path: Path) -> None:
    """An unknown profile says which file is missing and which profiles exist."""
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={}, profile="prod")
    expected = tmp_path / "config" / "prod.yaml"
    assert problems(exc) == [
        f"--profile: profile 'prod' has no file {expected}; create it or choose one of: "
        "local, development, staging, production"
    ]


def test_missing_profile_lists_the_profiles_beside_the_file(tmp_path: Path) -> None:
    """The profiles offered are the files next to the configuration file, shipped names first."""
    config = write(tmp_path, "application.yaml", "")
    write(tmp_path, "qa.yaml", "")
    write(tmp_path, "production.yaml", "")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={}, config_path=config, profile="prod")
    assert problems(exc)[0].endswith("create it or choose one of: production, qa")


def test_shipped_profiles_load(tmp_path: Path) -> None:
    """The example file and the four shipped profiles are valid together."""
    shipped = Path(__file__).resolve().parents[3] / "config"
    for name in ("local", "development", "staging", "production"):
        loaded = load_config(
            config_path=shipped / "application.yaml.example", profile=name, environ={}
        )
        assert loaded.profile == name


def test_typo_suggests_the_closest_key(tmp_path: Path) -> None:
    """An unknown key names the file and key path and suggests the closest valid key."""
    path = write(tmp_path, "application.yaml", "server:\n  prot: 8080\ndatabse:\n  url: x\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert problems(exc) == [
        f"{path}: server.prot: unknown key; did you mean 'server.port'?",
        f"{path}: databse: unknown key; did you mean 'database'?",
    ]


def test_wrong_type_says_what_is_expected(tmp_path: Path) -> None:
    """A value of the wrong type names the key and the expected kind of value."""
    path = write(
        tmp_path,
        "application.yaml",
        "server:\n  port: eighty\nmetrics:\n  enabled: maybe\ndatabase:\n  poolSize: 0\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert problems(exc) == [
        f"{path}: server.port: expected a TCP port number between 1 and 65535, got 'eighty'",
        f"{path}: metrics.enabled: expected true or false, got 'maybe'",
        f"{path}: database.poolSize: expected a number of connections >= 1, got 0 (out of range)",
    ]
    assert str(exc.value).startswith("invalid configuration (3 problems):\n  - ")


def test_environment_value_errors_name_the_variable(tmp_path: Path) -> None:
    """A bad value from the environment is reported against that variable."""
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={"SERVER_PORT": "http"})
    assert problems(exc) == [
        "env SERVER_PORT: server.port: expected a TCP port number between 1 and 65535, got 'http'"
    ]


def test_choice_suggests_the_closest(tmp_path: Path) -> None:
    """An enumerated value lists the choices and suggests the closest one."""
    write(tmp_path, "application.yaml", "database:\n  readPreference: PREFER_REPLCA\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert problems(exc)[0].endswith(
        "database.readPreference: expected one of PRIMARY, PREFER_REPLICA, got 'PREFER_REPLCA'; "
        "did you mean 'PREFER_REPLICA'?"
    )


def test_durations_and_sizes(tmp_path: Path) -> None:
    """'30s', '5m' and '100MB' style values are understood."""
    write(
        tmp_path,
        "application.yaml",
        "server:\n  shutdownGracePeriod: 5m\nscheduler:\n  distributed:\n"
        "    leaderElectionInterval: 500ms\nlogging:\n  appenders:\n    file:\n"
        "      rollingPolicy:\n        maxSize: 100MB\n",
    )
    settings = load_config(cwd=tmp_path, environ={}).settings
    assert settings.server.shutdown_grace_period == 300.0
    assert settings.scheduler.distributed.leader_election_interval == 0.5
    assert settings.logging.appenders.file.rolling_policy.max_size == 100 * 1024 * 1024


def test_replicas_and_read_preference(tmp_path: Path) -> None:
    """Both replica spellings are read; PREFER_REPLICA without any replica is rejected."""
    write(
        tmp_path,
        "application.yaml",
        "database:\n  primary:\n    url: jdbc:postgresql://p:5432/wf\n"
        "  replicas:\n    - url: jdbc:postgresql://r1:5432/wf\n"
        "  readReplicas:\n    - url: jdbc:postgresql://r2:5432/wf\n"
        "  readPreference: PREFER_REPLICA\n",
    )
    database = load_config(cwd=tmp_path, environ={}).settings.database
    assert database.primary_url == "jdbc:postgresql://p:5432/wf"
    assert database.replica_urls == ("jdbc:postgresql://r1:5432/wf", "jdbc:postgresql://r2:5432/wf")
    path = write(tmp_path, "application.yaml", "database:\n  readPreference: PREFER_REPLICA\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert problems(exc) == [
        f"{path}: database.readPreference: PREFER_REPLICA needs at least one "
        "database.replicas[].url (or database.readReplicas[].url); add one or use PRIMARY"
    ]


def test_bad_database_url_is_rejected(tmp_path: Path) -> None:
    """A URL that is neither JDBC nor libpq PostgreSQL is rejected at load time."""
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={"DATABASE_URL": "mysql://db/wf"})
    assert problems(exc) == [
        "env DATABASE_URL: database.url: expected a URL starting with jdbc:postgresql:// or "
        "postgresql://, got one starting with 'mysql:'"
    ]


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    """A YAML syntax error names the file and the position."""
    path = write(tmp_path, "application.yaml", "server:\n  port: [8080\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    (message,) = problems(exc)
    assert message.startswith(f"{path}: not valid YAML at line 3")


def test_secrets_never_appear_in_errors_or_show(tmp_path: Path) -> None:
    """Passwords are masked in `config show` output and absent from error text."""
    write(
        tmp_path,
        "application.yaml",
        "database:\n  password: hunter2\n  poolSize: nope\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert "hunter2" not in str(exc.value)
    loaded = load_config(
        cwd=tmp_path,
        environ={
            "DATABASE_POOL_SIZE": "4",
            "RABBITMQ_URL": "amqp://user:hunter2@mq:5672/",
            "DATABASE_URL": "jdbc:postgresql://db:5432/wf?user=a&password=hunter2",
        },
    )
    rows = effective_rows(loaded)
    assert "hunter2" not in repr(rows)
    assert "hunter2" not in repr(effective_tree(loaded))
    assert ("database.password", '"******"', str(tmp_path / "config" / "application.yaml")) in rows
    tree = effective_tree(loaded)
    assert tree["eventProcessing"]["rabbitmq"]["url"] == "amqp://user:******@mq:5672/"


def test_command_line_overrides_win(tmp_path: Path) -> None:
    """--url/--username/--password beat the environment and are reported as options."""
    loaded = load_config(
        cwd=tmp_path,
        environ={"DATABASE_URL": "jdbc:postgresql://env:5432/wf"},
        overrides={
            "database.url": ("--url", "jdbc:postgresql://cli:5432/wf"),
            "database.username": ("--username", "bob"),
            "server.managementPort": ("--management-port", 9191),
        },
    )
    assert loaded.settings.database.url == "jdbc:postgresql://cli:5432/wf"
    assert loaded.source_of("database.url") == "--url"
    assert loaded.source_of("database.username") == "--username"
    assert loaded.source_of("server.managementPort") == "--management-port"


def test_unknown_empty_mapping_is_blamed_on_its_file(tmp_path: Path) -> None:
    """An unknown key holding an empty mapping is reported against the file it is in."""
    path = write(tmp_path, "application.yaml", "schedular: {}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert problems(exc) == [f"{path}: schedular: unknown key; did you mean 'scheduler'?"]


def test_missing_profile_from_environment_names_the_variable(tmp_path: Path) -> None:
    """A profile chosen by WORKFLOW_PROFILE is reported as coming from that variable."""
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={"WORKFLOW_PROFILE": "qa"})
    assert problems(exc)[0].startswith("env WORKFLOW_PROFILE: profile 'qa' has no file ")


def test_database_url_variable_overrides_a_primary_in_the_file(tmp_path: Path) -> None:
    """DATABASE_URL wins even when the file names the primary under database.primary.url."""
    write(tmp_path, "application.yaml", "database:\n  primary:\n    url: jdbc:postgresql://p/wf\n")
    loaded = load_config(cwd=tmp_path, environ={"DATABASE_URL": "jdbc:postgresql://env/wf"})
    assert loaded.settings.database.primary_url == "jdbc:postgresql://env/wf"
    assert loaded.source_of("database.primary.url") == "env DATABASE_URL"


def test_logging_values_are_checked(tmp_path: Path) -> None:
    """An unknown syslog facility and a history of 0 files are rejected at startup."""
    path = write(
        tmp_path,
        "application.yaml",
        "logging:\n  appenders:\n    syslog:\n      facility: local9\n"
        "    file:\n      rollingPolicy:\n        maxHistory: 0\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    found = problems(exc)
    assert found[0].startswith(f"{path}: logging.appenders.syslog.facility: expected one of ")
    assert "local0, local1" in found[0]
    assert found[0].endswith("got 'local9'; did you mean 'local7'?")
    assert found[1] == (
        f"{path}: logging.appenders.file.rollingPolicy.maxHistory: expected a number of old "
        "files >= 1, got 0 (out of range)"
    )


def test_rabbitmq_source_needs_a_business_and_a_system_exchange(tmp_path: Path) -> None:
    """One exchange is not enough: emitted and lifecycle events need their own."""
    write(
        tmp_path,
        "application.yaml",
        "eventProcessing:\n  source: rabbitmq\n  rabbitmq:\n    exchanges: [only-one]\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert "eventProcessing.rabbitmq.exchanges: name two exchanges" in problems(exc)[0]


def test_event_processing_durations(tmp_path: Path) -> None:
    """Deduplication window, retention and poll interval take durations."""
    write(
        tmp_path,
        "application.yaml",
        "eventProcessing:\n  deduplicationWindow: 2h\n  unmatchedRetention: 5m\n"
        "  pollInterval: 250ms\n  taskEvents: false\n",
    )
    events = load_config(cwd=tmp_path, environ={}).settings.event_processing
    assert (events.deduplication_window, events.unmatched_retention) == (7200.0, 300.0)
    assert (events.poll_interval, events.task_events) == (0.25, False)


# The deployment guide's "Database Redundancy" block, verbatim.
GUIDE_REDUNDANCY = """\
database:
  primary:
    url: jdbc:postgresql://db-primary:5432/workflows
    poolSize: 20
  replicas:
    - url: jdbc:postgresql://db-replica-1:5432/workflows
      poolSize: 30
    - url: jdbc:postgresql://db-replica-2:5432/workflows
      poolSize: 30
  readPreference: PREFER_REPLICA
"""


def test_guide_redundancy_block_gives_each_endpoint_its_pool(tmp_path: Path) -> None:
    """The guide's primary/replicas block loads verbatim, with a pool size per endpoint."""
    path = write(tmp_path, "application.yaml", GUIDE_REDUNDANCY)
    loaded = load_config(cwd=tmp_path, environ={})
    database = loaded.settings.database
    assert (database.primary_url, database.primary_pool_size) == (
        "jdbc:postgresql://db-primary:5432/workflows",
        20,
    )
    assert [(r.url, r.pool_size) for r in database.replica_endpoints] == [
        ("jdbc:postgresql://db-replica-1:5432/workflows", 30),
        ("jdbc:postgresql://db-replica-2:5432/workflows", 30),
    ]
    assert database.read_preference == "PREFER_REPLICA"
    rows = {key: (value, source) for key, value, source in effective_rows(loaded)}
    assert rows["database.primary.poolSize"] == ("20", str(path))
    assert rows["database.replicas[1].poolSize"] == ("30", str(path))


def test_guide_production_replicas_inherit_the_pool_and_take_reads(tmp_path: Path) -> None:
    """readReplicas without poolSize get database.poolSize, and configuring replicas is enough
    for reads to prefer them; readPreference PRIMARY keeps reads on the primary."""
    path = write(
        tmp_path,
        "application.yaml",
        "database:\n  url: jdbc:postgresql://db-prod-primary:5432/workflows_prod\n"
        "  poolSize: 50\n  readReplicas:\n"
        "    - url: jdbc:postgresql://db-prod-replica-1:5432/workflows_prod\n"
        "    - url: jdbc:postgresql://db-prod-replica-2:5432/workflows_prod\n",
    )
    loaded = load_config(cwd=tmp_path, environ={})
    database = loaded.settings.database
    assert [r.pool_size for r in database.replica_endpoints] == [50, 50]
    assert database.primary_pool_size == 50
    assert database.read_preference == "PREFER_REPLICA"
    rows = {key: (value, source) for key, value, source in effective_rows(loaded)}
    assert rows["database.readReplicas[0].poolSize"] == ("50", f"database.poolSize ({path})")
    assert rows["database.readPreference"] == (
        '"PREFER_REPLICA"',
        "default (replicas are configured)",
    )
    assert load_config(cwd=tmp_path, environ={}).settings.database.max_replica_lag == 10.0
    write(
        tmp_path,
        "application.yaml",
        "database:\n  readReplicas:\n    - url: jdbc:postgresql://r:5432/wf\n"
        "  readPreference: primary\n",
    )
    assert load_config(cwd=tmp_path, environ={}).settings.database.read_preference == "PRIMARY"
    assert load_config(cwd=tmp_path, environ={}).settings.database.primary_pool_size == 20


def test_database_pool_size_variable_overrides_the_primary_only(tmp_path: Path) -> None:
    """DATABASE_POOL_SIZE wins over database.primary.poolSize; replicas keep their own."""
    write(tmp_path, "application.yaml", GUIDE_REDUNDANCY)
    loaded = load_config(cwd=tmp_path, environ={"DATABASE_POOL_SIZE": "7"})
    database = loaded.settings.database
    assert database.primary_pool_size == 7
    assert [r.pool_size for r in database.replica_endpoints] == [30, 30]
    assert loaded.source_of("database.primary.poolSize") == "env DATABASE_POOL_SIZE"


def test_replica_settings_are_checked(tmp_path: Path) -> None:
    """A bad per-endpoint pool size or lag bound names its key and what is allowed."""
    path = write(
        tmp_path,
        "application.yaml",
        "database:\n  replicas:\n    - url: jdbc:postgresql://r:5432/wf\n      poolSize: 0\n"
        "  maxReplicaLag: soon\n  replicaCheckInterval: 1ms\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert problems(exc) == [
        f"{path}: database.replicas[0].poolSize: expected a number of connections >= 1, got 0 "
        "(out of range)",
        f"{path}: database.maxReplicaLag: expected a duration such as 10s (0s: caught up), "
        "got 'soon'",
        f"{path}: database.replicaCheckInterval: expected a duration such as 2s (at least 50ms), "
        "got '1ms' (out of range)",
    ]


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    """A configuration file saved in another encoding is refused with the line of the byte."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes("server:\n  host: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={}, config_path=path)
    assert problems(exc) == [
        f"{path}: not UTF-8 text (byte 0xe9 at line 2); save the file as UTF-8"
    ]


def test_a_folder_named_as_the_file_says_so(tmp_path: Path) -> None:
    """--config naming a folder suggests the file inside it."""
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={}, config_path=tmp_path)
    assert problems(exc) == [
        f"--config: {tmp_path} is a folder; name the configuration file in it, e.g. "
        f"{tmp_path / 'application.yaml'}"
    ]


SHIPPED = Path(__file__).resolve().parents[3] / "config"


@pytest.mark.parametrize("profile", ["local", "development", "staging", "production"])
def test_environment_overrides_the_shipped_profiles(profile: str) -> None:
    """DATABASE_URL, DATABASE_POOL_SIZE and LOG_LEVEL win over every shipped profile."""
    environ = {
        "DATABASE_URL": "jdbc:postgresql://elsewhere:5432/mine",
        "DATABASE_POOL_SIZE": "7",
        "LOG_LEVEL": "ERROR",
    }
    loaded = load_config(
        config_path=SHIPPED / "application.yaml.example", profile=profile, environ=environ
    )
    database = loaded.settings.database
    assert (database.url, database.pool_size) == ("jdbc:postgresql://elsewhere:5432/mine", 7)
    assert loaded.settings.logging.level == "ERROR"
    assert loaded.source_of("database.url") == "env DATABASE_URL"


def test_local_profile_needs_nothing_installed() -> None:
    """`make run`'s profile: embedded database, database events, the examples, no log file."""
    settings = load_config(
        config_path=SHIPPED / "application.yaml.example", profile="local", environ={}
    ).settings
    assert settings.database.primary_url == ""
    assert settings.database.embedded.enabled
    assert settings.event_processing.source == "database"
    assert settings.definitions.paths == ("examples",)
    assert not settings.logging.appenders.file.enabled
    assert not settings.logging.appenders.syslog.enabled


def test_the_default_log_file_is_the_guides() -> None:
    """Without a path, the file appender writes the guide's /var/log/... service.log."""
    settings = load_config(config_path=SHIPPED / "production.yaml", environ={}).settings
    assert settings.logging.appenders.file.enabled
    assert settings.logging.appenders.file.path == "/var/log/workflow-orchestrator/service.log"


def test_max_active_instances_is_a_positive_count(tmp_path: Path) -> None:
    """``workflows.maxActiveInstances`` defaults to 10000, is read from the file, and 0 is
    refused naming the setting."""
    assert load_config(cwd=tmp_path, environ={}).settings.workflows.max_active_instances == 10_000
    write(tmp_path, "application.yaml", "workflows:\n  maxActiveInstances: 5\n")
    assert load_config(cwd=tmp_path, environ={}).settings.workflows.max_active_instances == 5
    path = write(tmp_path, "application.yaml", "workflows:\n  maxActiveInstances: 0\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert problems(exc) == [
        f"{path}: workflows.maxActiveInstances: expected a number of instances at least 1, "
        "e.g. 10000, got 0 (out of range)"
    ]


def test_api_keys_are_checked_when_the_configuration_loads(tmp_path: Path) -> None:
    """A short key, a malformed hash, a key without roles or a name used twice is refused."""
    write(
        tmp_path,
        "application.yaml",
        "security:\n  authentication:\n    apiKeys:\n"
        "      - {name: a, key: short, roles: [viewer]}\n"
        "      - {name: a, key: 'sha256:abc', roles: [admin]}\n"
        "      - {name: c, key: long-enough-key-0123456789, roles: []}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={})
    keys = {p.key: p.message for p in caught.value.problems}
    assert "fewer than 16 characters" in keys["security.authentication.apiKeys[0].key"]
    assert "64 hexadecimal digits" in keys["security.authentication.apiKeys[1].key"]
    assert "used twice" in keys["security.authentication.apiKeys[1].name"]
    assert "at least one role" in keys["security.authentication.apiKeys[2].roles"]
    write(
        tmp_path,
        "application.yaml",
        "security:\n  authentication:\n    apiKeys:\n"
        "      - {name: d, key: long-enough-key-0123456789, roles: [superuser]}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={})
    (problem,) = caught.value.problems
    assert problem.key == "security.authentication.apiKeys[0].roles[0]"
    assert "expected one of viewer" in problem.message


def test_authentication_without_a_credential_stops_the_service_not_config_show(
    tmp_path: Path,
) -> None:
    """The production profile's shape: loading works (config show), starting does not."""
    write(tmp_path, "application.yaml", "security:\n  authentication:\n    enabled: true\n")
    loaded = load_config(cwd=tmp_path, environ={})
    problems = startup_problems(loaded.settings, loaded.source_of)
    assert [p.key for p in problems] == ["security.authentication.enabled"]
    assert "no credential is configured" in problems[0].message


def test_mcp_stdio_settings_are_read_and_a_relative_path_refused(tmp_path: Path) -> None:
    """workflows.calls.mcp.stdio is off by default; stdioPath takes absolute directories only
    (a relative one would find commands in the server's working directory)."""
    mcp = load_config(cwd=tmp_path, environ={}).settings.workflows.calls.mcp
    assert (mcp.stdio, mcp.stdio_path) == (False, ("/usr/local/bin", "/usr/bin", "/bin"))
    text = "workflows:\n  calls:\n    mcp:\n      stdio: true\n      stdioPath: [/opt/mcp/bin]\n"
    write(tmp_path, "application.yaml", text)
    mcp = load_config(cwd=tmp_path, environ={}).settings.workflows.calls.mcp
    assert (mcp.stdio, mcp.stdio_path) == (True, ("/opt/mcp/bin",))
    path = write(tmp_path, "application.yaml", text.replace("/opt/mcp/bin", "bin, /usr/bin"))
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path, environ={})
    assert problems(exc) == [
        f"{path}: workflows.calls.mcp.stdioPath: expected absolute directories, got ['bin']; a "
        "relative entry would find commands in the MCP server's working directory"
    ]
