"""Logging set-up: console (text or JSON lines), a size-rolling file, and syslog (UDP or TCP).

Structured fields are passed with ``extra={...}`` and appear as ``key=value`` in text and as JSON
members in JSON lines. The level comes from ``logging.level`` (``LOG_LEVEL`` overrides it);
``TRACE`` is a level below DEBUG and ``WARN`` means WARNING.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workflow_orchestrator.config import ConfigError, ConfigProblem, LoggingSettings

__all__ = ["TRACE", "JsonFormatter", "TextFormatter", "configure_logging", "level_number"]

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

# The attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_TEXT_FORMAT = "%(asctime)s %(levelname)-5s %(name)s: %(message)s"
_OWNED = "_workflow_orchestrator_handler"


def level_number(level: str) -> int:
    """``"INFO"`` -> 20; accepts TRACE and WARN."""
    name = {"WARN": "WARNING"}.get(level.upper(), level.upper())
    return TRACE if name == "TRACE" else logging.getLevelNamesMapping()[name]


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """``2026-01-01 12:00:00,000 INFO  name: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            text += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, structured fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else TextFormatter()


def _build_handlers(
    settings: LoggingSettings, source_of: Callable[[str], str]
) -> list[logging.Handler]:
    appenders = settings.appenders
    handlers: list[logging.Handler] = []
    if appenders.console.enabled:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(_formatter(appenders.console.format))
        handlers.append(console)
    if appenders.file.enabled:
        path = Path(appenders.file.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            rolling = logging.handlers.RotatingFileHandler(
                path,
                maxBytes=appenders.file.rolling_policy.max_size,
                backupCount=appenders.file.rolling_policy.max_history,
                encoding="utf-8",
            )
        except OSError as exc:
            key = "logging.appenders.file.path"
            raise ConfigError(
                [
                    ConfigProblem(
                        source=source_of(key),
                        key=key,
                        message=f"cannot open log file {path}: {exc.strerror or exc}; choose a "
                        "path this user may write (or create the folder for it), or set "
                        "logging.appenders.file.enabled: false",
                    )
                ]
            ) from exc
        rolling.setFormatter(_formatter(appenders.file.format))
        handlers.append(rolling)
    if appenders.syslog.enabled:
        syslog = appenders.syslog
        socktype = socket.SOCK_STREAM if syslog.protocol == "tcp" else socket.SOCK_DGRAM
        try:
            handler = logging.handlers.SysLogHandler(
                address=(syslog.host, syslog.port),
                facility=syslog.facility,
                socktype=socktype,
            )
        except OSError as exc:
            key = "logging.appenders.syslog.host"
            raise ConfigError(
                [
                    ConfigProblem(
                        source=source_of(key),
                        key=key,
                        message=f"cannot reach the syslog server {syslog.host}:{syslog.port} "
                        f"over {syslog.protocol}: {exc.strerror or exc}; fix host/port/protocol "
                        "or disable the syslog appender",
                    )
                ]
            ) from exc
        handler.setFormatter(logging.Formatter("workflow-orchestrator: %(name)s: %(message)s"))
        handlers.append(handler)
    return handlers


def _no_source(key: str) -> str:
    return ""


def configure_logging(
    settings: LoggingSettings, *, source_of: Callable[[str], str] = _no_source
) -> None:
    """Replace the handlers this function installed before with ones for ``settings``.

    Raises ``ConfigError`` when a log file cannot be opened, a syslog host cannot be resolved or
    a TCP syslog server is unreachable; ``source_of`` names where a setting came from (a file,
    ``env NAME``), as ``LoadedConfig.source_of`` does, for the message.
    """
    handlers = _build_handlers(settings, source_of)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OWNED, False)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        setattr(handler, _OWNED, True)
        root.addHandler(handler)
    root.setLevel(level_number(settings.level))
    # Libraries that are chatty at INFO stay at WARNING unless we trace.
    quiet = logging.WARNING if root.level > logging.DEBUG else root.level
    for name in (
        "hypercorn.access",
        "hypercorn.error",
        "asyncio",
        "aio_pika",
        "aiormq",
        "httpx",
        "httpcore",
    ):
        logging.getLogger(name).setLevel(quiet)
