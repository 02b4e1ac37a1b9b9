"""Package the chart into dist/ (``make chart``): ``workflow-orchestrator-<version>.tgz``.

Uses helm-python-sdk (``helm package`` of Helm v4's library; no helm binary). The chart's
version and appVersion must equal the package version (setup.cfg), so a release's chart
archive names the release it deploys.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import helm_python

from deploy.helm.rendering import CHART_DIR, REPOSITORY
from workflow_orchestrator._version import __version__

__all__ = ["main", "package"]


def package(destination: Path) -> Path:
    """Write the chart archive into ``destination``; returns its path."""
    with helm_python.Chart.load(CHART_DIR) as chart:
        metadata = chart.metadata
    versions = {str(metadata.get("version")), str(metadata.get("appVersion"))}
    if versions != {__version__}:
        raise SystemExit(
            f"{CHART_DIR / 'Chart.yaml'}: version {metadata.get('version')} and appVersion "
            f"{metadata.get('appVersion')} must both be the package version {__version__}; "
            "update Chart.yaml"
        )
    destination.mkdir(parents=True, exist_ok=True)
    return Path(helm_python.package(CHART_DIR, destination=destination))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--destination",
        type=Path,
        default=REPOSITORY / "dist",
        help="the folder to write the archive to (default: dist/)",
    )
    args = parser.parse_args(argv)
    print(package(args.destination))
    return 0


if __name__ == "__main__":
    sys.exit(main())
