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
from workflow_orchestrator.observability._worker_group import (
    GROUP_ENV,
    INDEX_ENV,
    REPLICA_ENV,
    GroupMember,
    WorkerGroup,
    read_status,
    write_members,
)

__all__ = [
    "CONTENT_TYPE",
    "GROUP_ENV",
    "INDEX_ENV",
    "MAX_LABEL_LENGTH",
    "MAX_LABEL_VALUES",
    "OTHER",
    "REPLICA_ENV",
    "TRACE",
    "BoundedLabel",
    "GroupMember",
    "InstanceMetrics",
    "JsonFormatter",
    "PoolReading",
    "ServiceMetrics",
    "TextFormatter",
    "WorkerGroup",
    "configure_logging",
    "http_method_label",
    "level_number",
    "read_status",
    "write_members",
]
