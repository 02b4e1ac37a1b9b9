"""The ``workflow-orchestrator`` command.

Exit codes: 0 success; 1 the work failed (database unreachable, migration failed, invalid
definition); 2 the command line or the configuration is wrong. Errors are one readable paragraph
on standard error, never a traceback, unless ``LOG_LEVEL`` is DEBUG or TRACE.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import setproctitle
import trio
import yaml

from workflow_orchestrator._version import __version__
from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import (
    ENVIRONMENT_OVERRIDES,
    PROFILES,
    ConfigError,
    ConfigProblem,
    LoadedConfig,
    effective_rows,
    effective_tree,
    load_config,
)
from workflow_orchestrator.errors import OrchestratorError, exception_leaves
from workflow_orchestrator.observability import WorkerGroup, configure_logging
from workflow_orchestrator.supervision import ChildStartFailed
from workflow_orchestrator.workers import WorkerParent, worker_count

if TYPE_CHECKING:
    from workflow_orchestrator.dsl.validation import OfficialSchema, ValidationOptions
    from workflow_orchestrator.service import Service
    from workflow_orchestrator.storage import SchemaStatus

# The service, the storage and the DSL are imported by the commands that use them, so that the
# parent of ``serve --workers N`` (which runs none of them) stays small (about 36 MB, not 125).

__all__ = ["build_parser", "main"]

logger = logging.getLogger("workflow_orchestrator")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: The process title: what ``ps``, ``pgrep -f``, ``netstat -p`` and (as the 15-character
#: ``workflow-orches``) ``top``, ``ss -p`` and ``pgrep`` without ``-f`` show.
PROCESS_NAME = "workflow-orchestrator"
_MASK = "******"

_EPILOG = (
    "The configuration is read from --config PATH, else $WORKFLOW_CONFIG, else "
    "./config/application.yaml; with none, built-in defaults apply (and `serve` starts an embedded "
    "PostgreSQL). Environment variables override the file: "
    + ", ".join(ENVIRONMENT_OVERRIDES)
    + ". `workflow-orchestrator config show` prints the result and where each value came from."
)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="the application.yaml to read (default: $WORKFLOW_CONFIG, ./config/application.yaml)",
    )
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help=f"overlay config/NAME.yaml, e.g. {', '.join(PROFILES)} (default: $WORKFLOW_PROFILE)",
    )


def _database_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("database (override database.* settings)")
    group.add_argument(
        "--url",
        metavar="URL",
        help="PostgreSQL URL, JDBC (jdbc:postgresql://host:5432/db) or postgresql:// form",
    )
    group.add_argument("--username", metavar="USER", help="PostgreSQL user name")
    group.add_argument("--password", metavar="PASSWORD", help="PostgreSQL password")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="workflow-orchestrator",
        description="Durable workflow orchestration for the CNCF Serverless Workflow DSL 1.0.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the service (API on 8080, management on 8081)",
        description="Run the service until SIGTERM or SIGINT. Without a configured database an "
        "embedded PostgreSQL is started in the user's state directory and reused next time.",
        epilog=_EPILOG,
    )
    _common(serve)
    _database_options(serve)
    serve.add_argument("--port", type=int, metavar="N", help="API port (server.port)")
    serve.add_argument(
        "--management-port", type=int, metavar="N", help="management port (server.managementPort)"
    )
    serve.add_argument(
        "--workers",
        metavar="N|auto",
        help="service processes on this machine, sharing both ports (server.workers; auto: one "
        "per usable CPU; default 1)",
    )

    init_schema = commands.add_parser(
        "init-schema",
        help="create the database schema on a new database",
        description="Create every table, index and required extension on an empty database. "
        "On a database that already has the schema this changes nothing (use `migrate` to "
        "upgrade it).",
        epilog=_EPILOG,
    )
    _common(init_schema)
    _database_options(init_schema)

    migrate_cmd = commands.add_parser(
        "migrate",
        help="apply pending schema migrations",
        description="Apply the schema migrations this release has and the database lacks. Safe "
        "to run from several replicas at once (an advisory lock serialises them).",
        epilog=_EPILOG,
    )
    _common(migrate_cmd)
    _database_options(migrate_cmd)
    migrate_cmd.add_argument(
        "--status", action="store_true", help="only report applied and pending migrations"
    )

    config = commands.add_parser("config", help="inspect the configuration")
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    show = config_commands.add_parser(
        "show",
        help="print the effective configuration with the source of each value",
        description="Print every setting after the file, profile and environment are applied, "
        "with where each value came from. Secrets are masked.",
        epilog=_EPILOG,
    )
    _common(show)
    show.add_argument(
        "--format", choices=("table", "yaml", "json"), default="table", help="output format"
    )

    definitions = commands.add_parser("definitions", help="work with workflow definitions")
    definition_commands = definitions.add_subparsers(
        dest="definitions_command", metavar="COMMAND", required=True
    )
    validate = definition_commands.add_parser(
        "validate",
        help="check definition files against the DSL and what this service runs",
        description="Validate Serverless Workflow DSL 1.0 definitions (YAML or JSON): their "
        "structure, as the official 1.0.3 schema defines it (no schema file needed), and the "
        "semantic rules (task references, declared functions, errors, secrets, expressions). "
        "Prints every problem as `FILE: POINTER: message (rule)` and exits 1 when any file has "
        "one. What is valid DSL but this service will not run as configured (containers, shell "
        "and script tasks and MCP stdio servers while disabled, calls whose kind is disabled, "
        "secrets not granted, schedules it cannot read) is printed as `FILE: warning: POINTER: "
        "message (rule)`; --strict makes those failures too. --config checks against a "
        "configuration's settings.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="definition files to check")
    validate.add_argument(
        "--config",
        metavar="PATH",
        help="check as a service with this application.yaml would register them: the calls, "
        "containers, processes and secrets it enables (default: $WORKFLOW_CONFIG when set; "
        "without either, the default settings)",
    )
    validate.add_argument(
        "--profile",
        metavar="NAME",
        help=f"with --config, overlay config/NAME.yaml, e.g. {', '.join(PROFILES)}",
    )
    validate.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) also for what this service will not run, as registration does",
    )
    validate.add_argument(
        "--schema",
        metavar="PATH",
        help="also check with the official DSL 1.0.3 schema at PATH, the workflow.yaml of the "
        "specification (default: $WORKFLOW_DSL_SCHEMA; none when unset)",
    )
    validate.add_argument(
        "--allow-shell", action="store_true", help="accept run.shell tasks (off in the service)"
    )
    validate.add_argument(
        "--allow-script", action="store_true", help="accept run.script tasks (off in the service)"
    )
    validate.add_argument(
        "--allow-mcp-stdio",
        action="store_true",
        help="accept call: mcp over the stdio transport (off in the service)",
    )
    validate.add_argument(
        "--container-runtime",
        action="store_true",
        help="accept run.container tasks (as when a container runtime is configured)",
    )

    commands.add_parser("version", help="print the version")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, tuple[str, Any]]:
    overrides: dict[str, tuple[str, Any]] = {}
    for option, key in (
        ("url", "database.url"),
        ("username", "database.username"),
        ("password", "database.password"),
        ("port", "server.port"),
        ("management_port", "server.managementPort"),
        ("workers", "server.workers"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            overrides[key] = ("--" + option.replace("_", "-"), value)
    return overrides


def _load(args: argparse.Namespace) -> LoadedConfig:
    return load_config(config_path=args.config, profile=args.profile, overrides=_overrides(args))


def _show_config(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if args.format == "json":
        print(json.dumps(effective_tree(loaded), indent=2))
    elif args.format == "yaml":
        print(yaml.safe_dump(effective_tree(loaded), sort_keys=False), end="")
    else:
        rows = effective_rows(loaded)
        width = max(len(key) for key, _, _ in rows)
        value_width = min(max(len(value) for _, value, _ in rows), 48)
        print(f"# files: {', '.join(loaded.files) or '(none: built-in defaults)'}")
        print(f"# profile: {loaded.profile or '(none)'}")
        for key, value, source in rows:
            print(f"{key:<{width}}  {value:<{value_width}}  {source}")
    return EXIT_OK


async def _stop_without_parent(service: Service, parent: int) -> None:
    """A worker's watch of its parent: gone (killed), the worker stops as on SIGTERM."""
    while True:
        await trio.sleep(1.0)
        if os.getppid() != parent:
            break
    logger.warning("the parent process (pid %d) is gone: stopping", parent)
    service.request_shutdown()


async def _serve(loaded: LoadedConfig, group: WorkerGroup | None = None) -> None:
    from workflow_orchestrator.service import Service

    service = Service(loaded, group=group)
    parent = os.getppid()
    grace = loaded.settings.server.shutdown_grace_period
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                async for signum in signals:
                    if service_stopping.is_set():
                        logger.warning("second %s: stopping now", signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()
                        return
                    logger.info("received %s", signal.Signals(signum).name)
                    service_stopping.set()
                    service.request_shutdown()
                    # Bound the whole stop: grace period for requests, then a margin for pools.
                    nursery.cancel_scope.deadline = trio.current_time() + grace + 15.0

            service_stopping = trio.Event()
            nursery.start_soon(watch_signals)
            if group is not None:
                nursery.start_soon(_stop_without_parent, service, parent)
            await service.run()
            nursery.cancel_scope.cancel()
    logger.info("workflow-orchestrator stopped")


async def _schema(loaded: LoadedConfig, action: str) -> int:
    from workflow_orchestrator.service import open_configured_database, with_config_secrets
    from workflow_orchestrator.storage import migrate, schema_status

    loaded = await with_config_secrets(loaded)
    async with open_asyncio_bridge(), open_configured_database(loaded) as database:
        where = database.location.display()
        if action == "status":
            status = await schema_status(database)
            print(f"database: {where}")
            print(f"applied: {list(status.applied)}")
            print(f"pending: {list(status.pending)}")
            if status.mismatched:
                print(f"changed after being applied: {list(status.mismatched)}")
            if status.unknown:
                print(f"from a newer release: {list(status.unknown)}{_newer_note(status)}")
            return EXIT_OK if status.current else EXIT_FAILED
        before = await schema_status(database)
        if action == "init" and before.applied:
            print(
                f"the schema already exists in {where} (version {max(before.applied)}); nothing "
                "to do. Use `workflow-orchestrator migrate` to apply newer migrations."
            )
            return EXIT_OK
        report = await migrate(database)
        if report.applied:
            print(f"applied migrations {list(report.applied)} to {where}")
        elif report.newer:
            print(
                f"the schema of {where} has migrations {list(report.newer)} of a newer release, "
                "each declared compatible with the release before it: this release runs on it "
                f"(version {report.current_version}); nothing to do"
            )
        else:
            print(f"the schema of {where} is current (version {report.current_version})")
        return EXIT_OK


def _newer_note(status: SchemaStatus) -> str:
    if status.incompatible:
        return (
            f" ({list(status.incompatible)} not declared compatible: this release cannot run on it)"
        )
    return " (each declared compatible: this release runs on it)"


def _run_async(fn: Callable[[], Any]) -> Any:
    return trio.run(fn)


def _process_title(argv: Sequence[str]) -> str:
    """``workflow-orchestrator`` and the arguments, the password's value masked.

    The title replaces the command line in ``/proc/PID/cmdline``, so ``--password VALUE`` given
    on the command line stops showing in ``ps`` once the process has started.
    """
    words = [PROCESS_NAME]
    hide_next = False
    for arg in argv:
        if hide_next:
            words.append(_MASK)
            hide_next = False
            continue
        name, equals, _ = arg.partition("=")
        # argparse accepts unambiguous prefixes: --pa, --pass, ... (--p could also be --port).
        is_password = len(name) > 3 and "--password".startswith(name)
        if is_password and equals:
            words.append(f"{name}={_MASK}")
        else:
            words.append(arg)
            hide_next = is_password
    return " ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code.

    Run as the process's own command (``argv`` None), it names the process ``workflow-orchestrator``
    first; called from code with ``argv``, it leaves the caller's process title alone.
    """
    if argv is None:
        setproctitle.setproctitle(_process_title(sys.argv[1:]))
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(arguments)
    if args.command == "version":
        print(f"workflow-orchestrator {__version__}")
        return EXIT_OK
    code = EXIT_OK
    try:
        code = _dispatch(args, arguments)
    except* BrokenPipeError:
        # The reader went away (`config show | head`); not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except* ConfigError as group:
        _report(group)
        code = EXIT_USAGE
    except* OrchestratorError as group:
        _report(group)
        code = EXIT_FAILED
    return code


def _validation_schema(args: argparse.Namespace) -> OfficialSchema | None:
    """The official schema of --schema or $WORKFLOW_DSL_SCHEMA, or None (SchemaFileError)."""
    from workflow_orchestrator.definitions import read_official_schema

    if args.schema:
        return read_official_schema(args.schema, key="", source="--schema")
    if os.environ.get("WORKFLOW_DSL_SCHEMA"):
        path = os.environ["WORKFLOW_DSL_SCHEMA"]
        return read_official_schema(
            path, key="definitions.schema", source="env WORKFLOW_DSL_SCHEMA"
        )
    return None


def _validation_options(args: argparse.Namespace) -> ValidationOptions:
    """The options of ``definitions validate``: the configuration's when one is given (by
    --config or $WORKFLOW_CONFIG), else the defaults; the flags enable more on top."""
    from workflow_orchestrator.dsl.validation import ValidationOptions
    from workflow_orchestrator.instances import validation_options
    from workflow_orchestrator.security import NamespacePolicy

    schema = _validation_schema(args)
    if args.config or os.environ.get("WORKFLOW_CONFIG"):
        settings = load_config(config_path=args.config, profile=args.profile).settings
        options = validation_options(
            settings.workflows,
            official_schema=schema,
            definitions=settings.definitions,
            policy=NamespacePolicy.from_settings(settings),
        )
    else:
        options = ValidationOptions(official_schema=schema)
    return attrs.evolve(
        options,
        container_runtime=options.container_runtime or args.container_runtime,
        allow_shell=options.allow_shell or args.allow_shell,
        allow_script=options.allow_script or args.allow_script,
        allow_mcp_stdio=options.allow_mcp_stdio or args.allow_mcp_stdio,
    )


def _validate_definitions(args: argparse.Namespace) -> int:
    from workflow_orchestrator.definitions import check_definition_file

    options = _validation_options(args)
    failed = warned = 0
    for path in args.files:
        report = check_definition_file(path, options)
        for problem in report.problems:
            print(f"{path}: {problem}")
        prefix = "" if args.strict else "warning: "
        for problem in report.unsupported:
            print(f"{path}: {prefix}{problem}")
        if report.problems or (args.strict and report.unsupported):
            failed += 1
        elif report.unsupported:
            warned += 1
            count = len(report.unsupported)
            print(f"{path}: valid, with {count} warning{'s' if count > 1 else ''}")
        else:
            print(f"{path}: valid")
    total = len(args.files)
    if failed:
        print(f"{failed} of {total} files have problems", file=sys.stderr)
    if warned:
        print(
            f"{warned} of {total} files use what this service will not run as configured (the "
            "warnings); registering them fails until that changes; --strict fails here too",
            file=sys.stderr,
        )
    return EXIT_FAILED if failed else EXIT_OK


def _as_worker(loaded: LoadedConfig, group: WorkerGroup) -> LoadedConfig:
    """The configuration of a worker of a group: its own replica id (``<id>-w<index>``)."""
    setproctitle.setproctitle(f"{setproctitle.getproctitle()} [worker {group.replica}]")
    cluster = attrs.evolve(loaded.settings.cluster, replica_id=group.replica)
    settings = attrs.evolve(loaded.settings, cluster=cluster)
    sources = {**loaded.sources, "cluster.replicaId": "serve --workers (worker of a group)"}
    return attrs.evolve(loaded, settings=settings, sources=sources)


def _serve_command(loaded: LoadedConfig, arguments: Sequence[str]) -> int:
    """``serve``: one service process, a worker of a group, or the parent of a group."""
    group = WorkerGroup.from_environment(os.environ)
    if group is not None:
        worker = _as_worker(loaded, group)
        _run_async(lambda: _serve(worker, group))
        return EXIT_OK
    count = worker_count(loaded.settings.server.workers)
    if count == 1:
        _run_async(lambda: _serve(loaded))
        return EXIT_OK
    if not loaded.settings.database.primary_url:
        raise ConfigError(
            [
                ConfigProblem(
                    source=loaded.source_of("server.workers"),
                    key="server.workers",
                    message=f"{count} workers need a database.url: the embedded database "
                    "belongs to one process; set database.url (or DATABASE_URL), or 1 worker",
                )
            ]
        )
    parent = WorkerParent(loaded, arguments, count)
    code: int = _run_async(parent.run)
    return code


def _dispatch(args: argparse.Namespace, arguments: Sequence[str] = ()) -> int:
    if args.command == "config":
        return _show_config(args)
    if args.command == "definitions":
        return _validate_definitions(args)
    loaded = _load(args)
    configure_logging(loaded.settings.logging, source_of=loaded.source_of)
    if args.command == "serve":
        return _serve_command(loaded, arguments)
    action = "init" if args.command == "init-schema" else "status" if args.status else "migrate"
    code: int = _run_async(lambda: _schema(loaded, action))
    return code


def _shown(error: BaseException) -> list[BaseException]:
    """The errors to show: groups flattened, and a part of the service that failed to start
    replaced by its own error when that is one of ours (it says what to fix)."""
    shown: list[BaseException] = []
    for leaf in exception_leaves(error):
        if isinstance(leaf, ChildStartFailed) and leaf.__cause__ is not None:
            causes = _shown(leaf.__cause__)
            if all(isinstance(cause, OrchestratorError) for cause in causes):
                shown.extend(causes)
                continue
        shown.append(leaf)
    return shown


def _report(group: BaseExceptionGroup[OrchestratorError]) -> None:
    for exc in _shown(group):
        logger.debug("failure details", exc_info=exc)
        print(f"workflow-orchestrator: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
