"""The primary pool must hold the service's long-lived sessions and still do its work.

The service keeps up to four of the primary pool's connections for its whole life: the LISTEN
sessions for wake-ups, for ended instances and (with the ``database`` event source) for new
events, and the session that holds this replica id's advisory lock. Measured with
``benchmarks/database_at_scale.py``: a pool of 2 or 3 never becomes ready, 4 starts but its
requests hang, 5 works. ``pool_startup_problems`` runs when the service starts
(``startup_problems``); tools that open smaller pools (``migrate``) are not concerned.
"""

from __future__ import annotations

from collections.abc import Callable

from workflow_orchestrator.config._errors import ConfigProblem
from workflow_orchestrator.config._settings import Settings

__all__ = ["MINIMUM_SERVICE_POOL_SIZE", "pool_startup_problems"]

#: The long-lived sessions (4) and one connection for the work.
MINIMUM_SERVICE_POOL_SIZE = 5


def pool_startup_problems(
    settings: Settings, source_of: Callable[[str], str]
) -> list[ConfigProblem]:
    """A problem when the primary pool is too small to run the service, else none."""
    database = settings.database
    size = database.primary_pool_size
    if size >= MINIMUM_SERVICE_POOL_SIZE:
        return []
    # The loader copies database.poolSize into database.primary.poolSize when only it is set.
    own = database.primary.pool_size not in (None, database.pool_size)
    key = "database.primary.poolSize" if own else "database.poolSize"
    return [
        ConfigProblem(
            source=source_of(key),
            key=key,
            message=(
                f"{size} connections cannot run the service: up to 4 stay open for its whole "
                "life (LISTEN for wake-ups, ended instances and database events, and the "
                f"replica id's lock); set at least {MINIMUM_SERVICE_POOL_SIZE} (the default is "
                "20)"
            ),
        )
    ]
