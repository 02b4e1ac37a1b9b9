"""The ``env`` secrets provider: ``$secrets.<name>`` from ``WORKFLOW_SECRET_<NAME>``.

The variable's name is the secret's in upper case, with every character other than a letter or
a digit turned into ``_`` (``db.password`` -> ``WORKFLOW_SECRET_DB_PASSWORD``). Its value is
JSON when it parses, else text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from workflow_orchestrator.security._secret_values import secret_value

__all__ = ["SECRET_PREFIX", "EnvironmentSecrets", "environment_variable"]

SECRET_PREFIX = "WORKFLOW_SECRET_"
_NOT_NAME = re.compile(r"[^A-Za-z0-9]")


def environment_variable(name: str) -> str:
    """The variable holding secret ``name``."""
    return SECRET_PREFIX + _NOT_NAME.sub("_", name).upper()


@attrs.frozen(kw_only=True)
class EnvironmentSecrets:
    """Secrets from the service's environment (read at each call: nothing is cached)."""

    environ: Mapping[str, str] = attrs.field(default=os.environ, repr=False)
    name: str = "env"

    def where(self, name: str) -> str:
        return f"env {environment_variable(name)}"

    async def read(self, name: str) -> Any:
        raw = self.environ.get(environment_variable(name))
        return None if raw is None else secret_value(raw)

    def close(self) -> None:
        return None
