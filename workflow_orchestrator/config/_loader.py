"""Load the effective configuration: defaults, file, profile overlay, environment.

Order (later wins): built-in defaults -> ``application.yaml`` -> ``<profile>.yaml`` beside it ->
the environment variables of the deployment guide. The file is ``--config PATH``, else
``$WORKFLOW_CONFIG``, else ``./config/application.yaml``; with none, the defaults apply. The
profile is ``--profile NAME``, else ``$WORKFLOW_PROFILE``. String values in files may use
``${VAR}`` and ``${VAR:-default}``. Every value remembers where it came from, for
``workflow-orchestrator config show`` and for error messages.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from workflow_orchestrator.config._convert import convert
from workflow_orchestrator.config._database_url import InvalidDatabaseURL, parse_database_url
from workflow_orchestrator.config._errors import ConfigError, ConfigProblem
from workflow_orchestrator.config._kafka_checks import check_kafka
from workflow_orchestrator.config._security_checks import check_security
from workflow_orchestrator.config._settings import DatabaseEndpoint, Settings

__all__ = ["ENVIRONMENT_OVERRIDES", "LoadedConfig", "load_config"]

DEFAULT_CONFIG_PATH = Path("config/application.yaml")
PROFILES = ("local", "development", "staging", "production")

#: Environment variable -> dotted key path it overrides (the deployment guide's list).
ENVIRONMENT_OVERRIDES: Mapping[str, str] = {
    "SERVER_PORT": "server.port",
    "MANAGEMENT_PORT": "server.managementPort",
    "DATABASE_URL": "database.url",
    "DATABASE_USERNAME": "database.username",
    "DATABASE_PASSWORD": "database.password",
    "DATABASE_POOL_SIZE": "database.poolSize",
    "KAFKA_BOOTSTRAP_SERVERS": "eventProcessing.kafka.bootstrapServers",
    "RABBITMQ_URL": "eventProcessing.rabbitmq.url",
    "LOG_LEVEL": "logging.level",
    "METRICS_ENABLED": "metrics.enabled",
    "REPLICA_ID": "cluster.replicaId",
    "WORKFLOW_DSL_SCHEMA": "definitions.schema",
    "VAULT_ADDR": "security.secrets.vault.address",
    "VAULT_TOKEN": "security.secrets.vault.auth.token",
}

_UNSET = "\x00unset\x00"
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


@attrs.frozen(kw_only=True)
class LoadedConfig:
    """The settings plus where each value came from.

    ``sources`` maps dotted key paths (camelCase, as in the YAML) to ``default``, a file path,
    ``env NAME`` or ``--option``; ``files`` lists the files read, in order.
    """

    settings: Settings
    sources: Mapping[str, str]
    files: tuple[str, ...]
    profile: str | None

    def source_of(self, key: str) -> str:
        """Where ``key`` (or its nearest configured parent) came from; ``default`` if nowhere."""
        return _source_of(self.sources, key)


def _source_of(sources: Mapping[str, str], key: str) -> str:
    probe = key
    while probe:
        if probe in sources:
            return sources[probe]
        probe = probe.rpartition(".")[0]
    # A list item's key is ``path[3].url``; fall back to the list itself.
    if "[" in key:
        return _source_of(sources, key.split("[", 1)[0])
    # A mapping (even an unknown one) came from where its first member came from.
    for known, source in sources.items():
        if known.startswith(key + "."):
            return source
    return "default"


def _text_line(path: Path, offset: int) -> int:
    """The 1-based line of byte ``offset`` in ``path`` (for a decoding error)."""
    try:
        return path.read_bytes()[:offset].count(b"\n") + 1
    except OSError:
        return 1


def _read_yaml(path: Path, problems: list[ConfigProblem]) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(
            ConfigProblem(source=str(path), key="", message=f"cannot read the file: {exc.strerror}")
        )
        return {}
    except UnicodeDecodeError as exc:
        line = _text_line(path, exc.start)
        problems.append(
            ConfigProblem(
                source=str(path),
                key="",
                message=f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at line {line}); "
                "save the file as UTF-8",
            )
        )
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        problems.append(
            ConfigProblem(source=str(path), key="", message=f"not valid YAML{where}: {problem}")
        )
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(
            ConfigProblem(
                source=str(path), key="", message="the file must contain a mapping of settings"
            )
        )
        return {}
    return data


def _interpolate(
    value: Any,
    key: str,
    source: str,
    environ: Mapping[str, str],
    problems: list[ConfigProblem],
) -> Any:
    if isinstance(value, dict):
        return {
            k: _interpolate(v, f"{key}.{k}" if key else str(k), source, environ, problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate(v, f"{key}[{i}]", source, environ, problems) for i, v in enumerate(value)
        ]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = environ.get(name)
        if found is not None and (found != "" or default is None):
            return found
        if default is not None:
            return default
        problems.append(
            ConfigProblem(
                source=source,
                key=key,
                message=f"environment variable {name} is not set; set it, or write "
                f"${{{name}:-default}} to give a default",
            )
        )
        return _UNSET

    result = _INTERPOLATION.sub(replace, value)
    # A value that needed a missing variable is dropped: its problem is already reported, and
    # converting what is left of it would report the same cause again.
    return None if _UNSET in result else result


def _without_nulls(value: Any) -> Any:
    """Drop keys whose value is null: an empty value (or one whose ``${VAR}`` was missing)
    keeps the value of the layer below."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def _merge(
    base: dict[str, Any],
    overlay: Mapping[str, Any],
    source: str,
    sources: dict[str, str],
    prefix: str,
) -> None:
    for key, value in _without_nulls(overlay).items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, source, sources, path)
            continue
        base[key] = value
        for known in [k for k in sources if k.startswith(path + ".") or k.startswith(path + "[")]:
            del sources[known]
        _record(value, path, source, sources)


def _record(value: Any, path: str, source: str, sources: dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _record(v, f"{path}.{k}", source, sources)
    else:
        sources[path] = source


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def _get_path(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _profiles_in(folder: Path, config_file: Path | None) -> list[str]:
    """The profiles whose files are in ``folder`` (the shipped names when it has none)."""
    try:
        found = [
            p.stem
            for p in folder.glob("*.yaml")
            if p.is_file() and p.stem != "application" and p != config_file
        ]
    except OSError:
        found = []
    shipped = [name for name in PROFILES if name in found]
    return shipped + sorted(set(found) - set(shipped)) if found else list(PROFILES)


def _find_file(
    config_path: str | os.PathLike[str] | None, environ: Mapping[str, str], cwd: Path
) -> tuple[Path | None, str]:
    if config_path is not None:
        return Path(config_path), "--config"
    if environ.get("WORKFLOW_CONFIG"):
        return Path(environ["WORKFLOW_CONFIG"]), "env WORKFLOW_CONFIG"
    default = cwd / DEFAULT_CONFIG_PATH
    return (default if default.is_file() else None), "default"


def load_config(
    *,
    config_path: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    overrides: Mapping[str, tuple[str, Any]] | None = None,
) -> LoadedConfig:
    """Load and validate the effective configuration, or raise ``ConfigError`` with every problem.

    ``overrides`` maps dotted keys to ``(option, value)`` given on the command line
    (``("--url", "jdbc:...")``); they win over everything and are reported as that option.
    """
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    problems: list[ConfigProblem] = []
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    files: list[str] = []

    path, how = _find_file(config_path, environ, cwd)
    if path is not None:
        if path.is_dir():
            problems.append(
                ConfigProblem(
                    source=how,
                    key="",
                    message=f"{path} is a folder; name the configuration file in it, e.g. "
                    f"{path / 'application.yaml'}",
                )
            )
        elif not path.is_file():
            problems.append(
                ConfigProblem(
                    source=how,
                    key="",
                    message=f"configuration file {path} does not exist; create it from "
                    "config/application.yaml.example or point to another file",
                )
            )
        else:
            data = _interpolate(_read_yaml(path, problems), "", str(path), environ, problems)
            _merge(raw, data, str(path), sources, "")
            files.append(str(path))

    profile_source = "--profile" if profile else "env WORKFLOW_PROFILE"
    profile = profile or environ.get("WORKFLOW_PROFILE") or None
    if profile:
        folder = path.parent if path is not None else cwd / DEFAULT_CONFIG_PATH.parent
        profile_path = folder / f"{profile}.yaml"
        if not profile_path.is_file():
            problems.append(
                ConfigProblem(
                    source=profile_source,
                    key="",
                    message=f"profile {profile!r} has no file {profile_path}; create it or "
                    f"choose one of: {', '.join(_profiles_in(folder, path))}",
                )
            )
        else:
            data = _interpolate(
                _read_yaml(profile_path, problems), "", str(profile_path), environ, problems
            )
            _merge(raw, data, str(profile_path), sources, "")
            files.append(str(profile_path))

    for name, dotted in ENVIRONMENT_OVERRIDES.items():
        if name in environ:
            _set_path(raw, dotted, environ[name])
            sources[dotted] = f"env {name}"
    # The variables name "the database"; a primary written in a file must not hide them.
    for name, key in (("DATABASE_URL", "url"), ("DATABASE_POOL_SIZE", "poolSize")):
        if name in environ and _get_path(raw, f"database.primary.{key}") not in (None, ""):
            _set_path(raw, f"database.primary.{key}", environ[name])
            sources[f"database.primary.{key}"] = f"env {name}"
    for dotted, (option, value) in (overrides or {}).items():
        _set_path(raw, dotted, value)
        sources[dotted] = option

    settings, conversion_problems = convert(Settings, raw, lambda key: _source_of(sources, key))
    problems.extend(conversion_problems)
    if not conversion_problems:
        problems.extend(_check_semantics(settings, sources))
    if problems:
        raise ConfigError(problems)
    settings = _with_pool_sizes(settings, sources)
    return LoadedConfig(
        settings=settings, sources=dict(sources), files=tuple(files), profile=profile
    )


def _with_pool_sizes(settings: Settings, sources: dict[str, str]) -> Settings:
    """Every endpoint with the pool size it gets: its own ``poolSize``, else
    ``database.poolSize`` (recorded as the source), so ``config show`` shows each pool."""
    database = settings.database
    inherited = f"database.poolSize ({_source_of(sources, 'database.poolSize')})"

    def resolved(endpoint: DatabaseEndpoint, key: str) -> DatabaseEndpoint:
        if endpoint.pool_size is not None:
            return endpoint
        sources[f"{key}.poolSize"] = inherited
        return attrs.evolve(endpoint, pool_size=database.pool_size)

    database = attrs.evolve(
        database,
        primary=resolved(database.primary, "database.primary"),
        replicas=tuple(
            resolved(r, f"database.replicas[{i}]") for i, r in enumerate(database.replicas)
        ),
        read_replicas=tuple(
            resolved(r, f"database.readReplicas[{i}]") for i, r in enumerate(database.read_replicas)
        ),
    )
    if database.replica_urls and _source_of(sources, "database.readPreference") == "default":
        sources["database.readPreference"] = "default (replicas are configured)"
    return attrs.evolve(settings, database=database)


def _check_semantics(settings: Settings, sources: Mapping[str, str]) -> list[ConfigProblem]:
    """Checks across fields that the type converter cannot make."""
    problems: list[ConfigProblem] = check_security(settings, sources, _source_of)
    database = settings.database
    urls = [("database.url", database.url), ("database.primary.url", database.primary.url)]
    urls += [(f"database.replicas[{i}].url", r.url) for i, r in enumerate(database.replicas)]
    urls += [
        (f"database.readReplicas[{i}].url", r.url) for i, r in enumerate(database.read_replicas)
    ]
    for key, url in urls:
        if not url:
            continue
        try:
            parse_database_url(url)
        except InvalidDatabaseURL as exc:
            problems.append(
                ConfigProblem(source=_source_of(sources, key), key=key, message=str(exc))
            )
    server = settings.server
    if server.port == server.management_port:
        # Blame the port the user set: a default is not what they would think of changing.
        if _source_of(sources, "server.managementPort") == "default":
            key, other, what = "server.port", "server.managementPort", "API port"
        else:
            key, other, what = "server.managementPort", "server.port", "management port"
        problems.append(
            ConfigProblem(
                source=_source_of(sources, key),
                key=key,
                message=f"the {what} {server.port} equals {other}; give the two listeners "
                "different ports",
            )
        )
    if not server.context_path.startswith("/"):
        problems.append(
            ConfigProblem(
                source=_source_of(sources, "server.contextPath"),
                key="server.contextPath",
                message=f"expected a path starting with '/', got {server.context_path!r}",
            )
        )
    try:
        zoneinfo.ZoneInfo(settings.scheduler.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(
            ConfigProblem(
                source=_source_of(sources, "scheduler.timezone"),
                key="scheduler.timezone",
                message=f"unknown time zone {settings.scheduler.timezone!r}; use an IANA name "
                "such as UTC, Europe/Paris or America/New_York",
            )
        )
    problems.extend(check_kafka(settings, sources, _source_of))
    exchanges = settings.event_processing.rabbitmq.exchanges
    if settings.event_processing.source == "rabbitmq" and len(exchanges) < 2:
        problems.append(
            ConfigProblem(
                source=_source_of(sources, "eventProcessing.rabbitmq.exchanges"),
                key="eventProcessing.rabbitmq.exchanges",
                message="name two exchanges: the business exchange (consumed; emitted events "
                "go there) and the system exchange (lifecycle events), e.g. "
                "[business-events, system-events]",
            )
        )
    relative = [d for d in settings.workflows.calls.mcp.stdio_path if not d.startswith("/")]
    if relative:
        problems.append(
            ConfigProblem(
                source=_source_of(sources, "workflows.calls.mcp.stdioPath"),
                key="workflows.calls.mcp.stdioPath",
                message=f"expected absolute directories, got {relative}; a relative entry "
                "would find commands in the MCP server's working directory",
            )
        )
    if database.read_preference == "PREFER_REPLICA" and not database.replica_urls:
        problems.append(
            ConfigProblem(
                source=_source_of(sources, "database.readPreference"),
                key="database.readPreference",
                message="PREFER_REPLICA needs at least one database.replicas[].url "
                "(or database.readReplicas[].url); add one or use PRIMARY",
            )
        )
    return problems
