"""Storage for the instances audience: instance rows, their snapshots, history and creation.

What the instances part (and the API's instance routes) read and write:

- ``InstanceStatus`` and the records (``InstanceRecord``, ``RecoverableInstance``, ...);
- the repository functions (``create_instance``, ``load_instance``, ``list_instances``,
  ``list_recoverable``, ``set_status``, ``instance_history``, ...); a status change by
  ``set_status`` takes a version of its own, so no late snapshot of a run undoes it;
- the group-commit ``SnapshotWriter`` and what a snapshot writes (``InstanceSnapshot`` with its
  ``HistoryRow``, ``SubscriptionRow``, ``TimerRow`` and ``OutgoingEvent`` rows), built into one
  statement per batch from one row type per table; a snapshot holding a value PostgreSQL
  cannot store fails alone with ``SnapshotUnstorable``;
- the batching ``InstanceCreator`` and ``InstanceLoader`` (many activations' reads in one
  crossing, ``load_instances_in``);
- retention: ``delete_expired_instances`` of finished instances, in batches;
- ``count_unfinished_instances`` by definition and status, for the instance gauge;
- subflows: the children a snapshot starts (``ChildRow``), the event that ends a child in its
  parent's inbox (``subflow_ended_event``), children of an instance (``instance_children``)
  and the cancel cascade (``cancel_instance``, ``cancel_descendants``).
"""

from workflow_orchestrator.storage.instances._counts import (
    InstanceCount,
    count_unfinished_instances,
)
from workflow_orchestrator.storage.instances._creator import InstanceCreator, NewInstance, Retry
from workflow_orchestrator.storage.instances._family import (
    InstanceChild,
    cancel_descendants,
    cancel_instance,
    instance_children,
    load_instance_family,
)
from workflow_orchestrator.storage.instances._history import HistoryEntry, instance_history
from workflow_orchestrator.storage.instances._loader import InstanceLoader, load_instances_in
from workflow_orchestrator.storage.instances._queries import (
    COMMAND_VERSION_STEP,
    create_instance,
    fetch_inbox,
    get_instance,
    insert_started_instances,
    list_instances,
    list_recoverable,
    load_instance,
    set_status,
)
from workflow_orchestrator.storage.instances._records import (
    DEFAULT_PARTITION_COUNT,
    INSTANCE_COLUMNS,
    InboxEvent,
    InstancePage,
    InstanceRecord,
    InstanceStart,
    RecoverableInstance,
    instance_record,
    partition_of,
)
from workflow_orchestrator.storage.instances._retention import (
    RetentionBatch,
    RetentionOverride,
    delete_expired_instances,
    retention_overrides,
)
from workflow_orchestrator.storage.instances._snapshot_check import (
    SnapshotUnstorable,
    check_snapshot,
)
from workflow_orchestrator.storage.instances._snapshot_rows import (
    ChildRow,
    HistoryRow,
    InstanceSnapshot,
    OutgoingEvent,
    SubscriptionRow,
    TimerRow,
)
from workflow_orchestrator.storage.instances._snapshot_statement import ENDED_CHANNEL
from workflow_orchestrator.storage.instances._snapshot_writer import (
    SnapshotWriter,
    SnapshotWriterStatistics,
)
from workflow_orchestrator.storage.instances._status import (
    INSTANCE_STATUSES,
    TERMINAL_STATUSES,
    InstanceStatus,
)
from workflow_orchestrator.storage.instances._subflows import (
    SUBFLOW_ENDED_TYPE,
    SUBFLOW_EVENT_SOURCE,
    SUBFLOW_KEY_PREFIX,
    subflow_ended_event,
    subflow_key,
)

__all__ = [
    "COMMAND_VERSION_STEP",
    "DEFAULT_PARTITION_COUNT",
    "ENDED_CHANNEL",
    "INSTANCE_COLUMNS",
    "INSTANCE_STATUSES",
    "SUBFLOW_ENDED_TYPE",
    "SUBFLOW_EVENT_SOURCE",
    "SUBFLOW_KEY_PREFIX",
    "TERMINAL_STATUSES",
    "ChildRow",
    "HistoryEntry",
    "HistoryRow",
    "InboxEvent",
    "InstanceChild",
    "InstanceCount",
    "InstanceCreator",
    "InstanceLoader",
    "InstancePage",
    "InstanceRecord",
    "InstanceSnapshot",
    "InstanceStart",
    "InstanceStatus",
    "NewInstance",
    "OutgoingEvent",
    "RecoverableInstance",
    "RetentionBatch",
    "RetentionOverride",
    "Retry",
    "SnapshotUnstorable",
    "SnapshotWriter",
    "SnapshotWriterStatistics",
    "SubscriptionRow",
    "TimerRow",
    "cancel_descendants",
    "cancel_instance",
    "check_snapshot",
    "count_unfinished_instances",
    "create_instance",
    "delete_expired_instances",
    "fetch_inbox",
    "get_instance",
    "insert_started_instances",
    "instance_children",
    "instance_history",
    "instance_record",
    "list_instances",
    "list_recoverable",
    "load_instance",
    "load_instance_family",
    "load_instances_in",
    "partition_of",
    "retention_overrides",
    "set_status",
    "subflow_ended_event",
    "subflow_key",
]
