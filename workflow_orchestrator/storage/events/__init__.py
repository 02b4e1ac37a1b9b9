"""Storage for the events audience: everything ``events/`` reads and writes in PostgreSQL.

- routing: ``route_batch`` (one transaction per batch of events), its staleness check
  (``definitions_stamp``, ``RoutingStale``) and the definitions ``schedule.on`` starts
  (``load_event_starters``);
- subscriptions: ``SubscriptionShape``, ``ensure_shape``, ``load_shapes``,
  ``count_subscribed_instances``;
- event records: retained unmatched events and housekeeping (``fetch_retained_events``,
  ``purge_event_records``);
- the database source's ``events`` table: claims, deletes inside the routing transaction, dead
  letters (``claim_events``, ``delete_claimed_events``, ``dead_letter_events``);
- the ``outbox`` the relay publishes (``read_outbox``, ``delete_outbox_rows``,
  ``count_outbox``);
- wake-ups across replicas (``WAKE_CHANNEL``, ``notify_wake``, ``instances_to_wake``).

Every function crosses the asyncio bridge once and returns attrs records or plain values;
functions taking a ``connection`` run on the asyncio side, inside the caller's unit of work.
"""

from workflow_orchestrator.storage.events._event_table import (
    EVENTS_CHANNEL,
    ClaimedEvent,
    DeadLetter,
    claim_events,
    dead_letter_events,
    delete_claimed_events,
    oldest_event_age,
)
from workflow_orchestrator.storage.events._outbox import (
    OutboxRow,
    count_outbox,
    dead_letter_outbox_rows,
    delete_outbox_rows,
    read_outbox,
)
from workflow_orchestrator.storage.events._records import (
    count_subscribed_instances,
    fetch_retained_events,
    purge_event_records,
)
from workflow_orchestrator.storage.events._routing import (
    EventToRoute,
    RoutedBatch,
    RoutingRefused,
    RoutingStale,
    StarterVersion,
    StartSlot,
    definitions_stamp,
    load_event_starters,
    route_batch,
)
from workflow_orchestrator.storage.events._shapes import (
    SubscriptionShape,
    ensure_shape,
    load_shapes,
)
from workflow_orchestrator.storage.events._wake import (
    WAKE_CHANNEL,
    instances_to_wake,
    notify_wake,
)

__all__ = [
    "EVENTS_CHANNEL",
    "WAKE_CHANNEL",
    "ClaimedEvent",
    "DeadLetter",
    "EventToRoute",
    "OutboxRow",
    "RoutedBatch",
    "RoutingRefused",
    "RoutingStale",
    "StartSlot",
    "StarterVersion",
    "SubscriptionShape",
    "claim_events",
    "count_outbox",
    "count_subscribed_instances",
    "dead_letter_events",
    "dead_letter_outbox_rows",
    "definitions_stamp",
    "delete_claimed_events",
    "delete_outbox_rows",
    "ensure_shape",
    "fetch_retained_events",
    "instances_to_wake",
    "load_event_starters",
    "load_shapes",
    "notify_wake",
    "oldest_event_age",
    "purge_event_records",
    "read_outbox",
    "route_batch",
]
