"""Prometheus metrics of the supervision tree (registered on the default registry).

Labels are supervisor paths and strategies, never instance ids: the instance supervisor has
one path however many instances it runs.
"""

from __future__ import annotations

from prometheus_client import Counter

ACTOR_RESTARTS = Counter(
    "workflow_orchestrator_actor_restarts_total",
    "Children restarted by a supervisor, by supervisor path and restart strategy.",
    ["supervisor", "strategy"],
)
