"""Observability: logging set-up and Prometheus metrics."""

from workflow_orchestrator.observability._logging import (
    TRACE,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    level_number,
)
from workflow_orchestrator.observability._metrics import CONTENT_TYPE, PoolReading, ServiceMetrics

__all__ = [
    "CONTENT_TYPE",
    "TRACE",
    "JsonFormatter",
    "PoolReading",
    "ServiceMetrics",
    "TextFormatter",
    "configure_logging",
    "level_number",
]
