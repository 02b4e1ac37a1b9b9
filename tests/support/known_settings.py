"""A configuration file of the settings this service knows, from a wish list of settings.

A suite written ahead of the settings it needs (the service refuses unknown keys at startup)
asks for them all; ``configuration_file`` writes the ones the service under test accepts and
returns the others, so the suite runs now and reports what is missing instead of not starting.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from workflow_orchestrator.config import ConfigError, load_config

__all__ = ["configuration_file"]


def _nested(settings: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for dotted, value in settings.items():
        *parents, leaf = dotted.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _unknown(path: Path, settings: Mapping[str, Any]) -> set[str]:
    """The dotted keys of ``settings`` that the service refuses as unknown."""
    path.write_text(yaml.safe_dump(_nested(settings), sort_keys=True))
    try:
        load_config(config_path=path, environ={}, cwd=path.parent)
    except ConfigError as error:
        refused = [p.key for p in error.problems if p.message.startswith("unknown key")]
        return {
            key for key in settings if any(key == r or key.startswith(r + ".") for r in refused)
        }
    return set()


def configuration_file(path: Path, wanted: Mapping[str, Any]) -> list[str]:
    """Write the settings of ``wanted`` (dotted key -> value) that this service knows to
    ``path`` as YAML; returns the keys it does not know, sorted."""
    unknown = _unknown(path, wanted)
    known = {key: value for key, value in wanted.items() if key not in unknown}
    if _unknown(path, known):
        raise AssertionError(f"settings refused after trimming: {sorted(_unknown(path, known))}")
    try:
        load_config(config_path=path, environ={}, cwd=path.parent)
    except ConfigError as error:  # a known key with a value it refuses: the suite's mistake
        raise AssertionError(f"the suite's settings are invalid: {error}") from None
    return sorted(unknown)
