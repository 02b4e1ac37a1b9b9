"""Log destinations and formats."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import free_port
from workflow_orchestrator.config import (
    ConfigError,
    ConsoleAppenderSettings,
    FileAppenderSettings,
    LoggingAppenders,
    LoggingSettings,
    RollingPolicy,
    SyslogAppenderSettings,
)
from workflow_orchestrator.observability import TRACE, configure_logging, level_number


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def settings(**appenders: object) -> LoggingSettings:
    return LoggingSettings(
        level="INFO",
        appenders=LoggingAppenders(
            console=ConsoleAppenderSettings(enabled=False),
            **appenders,  # type: ignore[arg-type]
        ),
    )


def test_levels() -> None:
    """TRACE and WARN are understood next to the standard names."""
    assert level_number("trace") == TRACE
    assert level_number("WARN") == logging.WARNING
    assert level_number("error") == logging.ERROR


def test_json_lines_in_a_rolling_file(tmp_path: Path) -> None:
    """The file appender writes JSON lines with structured fields and rolls over by size."""
    path = tmp_path / "logs" / "service.log"
    configure_logging(
        settings(
            file=FileAppenderSettings(
                enabled=True,
                path=str(path),
                format="json",
                rolling_policy=RollingPolicy(max_size=2048, max_history=2),
            )
        )
    )
    log = logging.getLogger("workflow_orchestrator.test")
    log.info("instance started", extra={"instance_id": "abc-1"})
    first = json.loads(path.read_text().splitlines()[0])
    assert first["message"] == "instance started"
    assert first["instance_id"] == "abc-1"
    assert first["level"] == "INFO" and first["logger"] == "workflow_orchestrator.test"
    for i in range(200):
        log.info("filler line %d %s", i, "x" * 40)
    rolled = sorted(p.name for p in path.parent.iterdir())
    assert rolled == ["service.log", "service.log.1", "service.log.2"]


def test_syslog_over_udp_reaches_a_server() -> None:
    """The syslog appender sends each record to the configured UDP server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        port = server.getsockname()[1]
        configure_logging(
            settings(syslog=SyslogAppenderSettings(enabled=True, host="127.0.0.1", port=port))
        )
        logging.getLogger("workflow_orchestrator.test").warning("disk almost full")
        datagram = server.recv(4096).decode()
    assert datagram.endswith(
        "workflow-orchestrator: workflow_orchestrator.test: disk almost full\x00"
    )


def test_unreachable_tcp_syslog_is_a_config_error() -> None:
    """A TCP syslog server that refuses connections is reported with the key to fix."""
    port = free_port()
    with pytest.raises(ConfigError) as exc:
        configure_logging(
            settings(
                syslog=SyslogAppenderSettings(
                    enabled=True, host="127.0.0.1", port=port, protocol="tcp"
                )
            )
        )
    (problem,) = exc.value.problems
    assert problem.key == "logging.appenders.syslog.host"
    assert problem.message.startswith(f"cannot reach the syslog server 127.0.0.1:{port} over tcp")
    assert problem.message.endswith("fix host/port/protocol or disable the syslog appender")


def test_unwritable_log_file_names_the_setting_and_its_source(tmp_path: Path) -> None:
    """A log file that cannot be opened is a config error naming the path setting's source."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = blocker / "service.log"  # its folder is a file: not creatable, even for root
    with pytest.raises(ConfigError) as exc:
        configure_logging(
            settings(file=FileAppenderSettings(enabled=True, path=str(path))),
            source_of=lambda key: f"config/production.yaml ({key})",
        )
    (problem,) = exc.value.problems
    assert (problem.source, problem.key) == (
        "config/production.yaml (logging.appenders.file.path)",
        "logging.appenders.file.path",
    )
    assert problem.message.startswith(f"cannot open log file {path}: ")
    assert problem.message.endswith(
        "choose a path this user may write (or create the folder for it), or set "
        "logging.appenders.file.enabled: false"
    )
