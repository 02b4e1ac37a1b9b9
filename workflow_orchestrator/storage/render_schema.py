"""Print ``schema/init.sql``: ``python -m workflow_orchestrator.storage.render_schema``."""

from __future__ import annotations

import sys

from workflow_orchestrator.storage._migrations import render_init_sql

if __name__ == "__main__":
    sys.stdout.write(render_init_sql())
