"""Observability: logging set-up and Prometheus metrics."""

from workflow_orchestrator.observability._instance_metrics import InstanceMetrics
from workflow_orchestrator.observability._labels import (
    MAX_LABEL_LENGTH,
    MAX_LABEL_VALUES,
    OTHER,
    BoundedLabel,
    http_method_label,
)
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
    "MAX_LABEL_LENGTH",
    "MAX_LABEL_VALUES",
    "OTHER",
    "TRACE",
    "BoundedLabel",
    "InstanceMetrics",
    "JsonFormatter",
    "PoolReading",
    "ServiceMetrics",
    "TextFormatter",
    "configure_logging",
    "http_method_label",
    "level_number",
]
