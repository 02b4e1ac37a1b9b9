"""A directory laid out as the kubelet mounts a Kubernetes Secret, for the ``files`` provider."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["kubernetes_secret_volume"]


def kubernetes_secret_volume(root: Path, values: dict[str, str]) -> Path:
    """``root`` holding ``values``: each key a link into ``..data``, itself a link to the
    timestamped copy holding the files."""
    copy = root / "..2026_12_03_10_00_00.000000001"
    copy.mkdir(parents=True)
    for name, value in values.items():
        (copy / name).write_text(value)
    os.symlink(copy.name, root / "..data")
    for name in values:
        os.symlink(f"..data/{name}", root / name)
    return root
