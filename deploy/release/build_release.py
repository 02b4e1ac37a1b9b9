"""Build the release into a folder: the sdist, the wheel, and ``workflow-orchestrator.zip``.

``make dist`` runs it (and then ``make chart`` for the Helm chart archive)::

    python -m deploy.release.build_release --outdir dist

The zip holds one folder, ``workflow-orchestrator/``: the wheel, ``bin/``, ``config/`` (the
example and the profiles), ``schema/init.sql``, ``examples/``, ``deploy/systemd/``,
``dashboards/``, ``deploy/prometheus/`` and a ``README.md`` of the steps (from
``deploy/release/README.md``). File modes are kept, so the
scripts in ``bin/`` stay executable after ``unzip``.
"""

from __future__ import annotations

import argparse
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
TOP = "workflow-orchestrator"
ZIP_NAME = "workflow-orchestrator.zip"
README_TEMPLATE = "deploy/release/README.md"
#: What the zip carries from the repository, at the same paths (glob patterns, files only).
RELEASE_FILES = (
    "bin/*.sh",
    "config/application.yaml.example",
    "config/development.yaml",
    "config/staging.yaml",
    "config/production.yaml",
    "schema/init.sql",
    "examples/**/*",
    "deploy/systemd/*",
    # The guide's Grafana import (`-d @dashboards/workflow-orchestrator.json`) and Prometheus.
    "dashboards/*.json",
    "deploy/prometheus/alerts.yaml",
    "deploy/prometheus/prometheus.yaml",
)


def build_distributions(outdir: Path) -> tuple[Path, Path]:
    """The sdist and the wheel built from it by ``python -m build``, in ``outdir``."""
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(outdir), str(REPOSITORY)], check=True
    )
    return only(outdir, "*.tar.gz"), only(outdir, "*.whl")


def only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"expected one {pattern} in {folder}, found {[p.name for p in found]}")
    return found[0]


def release_files() -> list[Path]:
    """The repository's files that go into the zip, each pattern matching at least one."""
    files: list[Path] = []
    for pattern in RELEASE_FILES:
        matched = sorted(
            path
            for path in REPOSITORY.glob(pattern)
            if path.is_file() and "__pycache__" not in path.parts
        )
        if not matched:
            raise SystemExit(f"nothing in {REPOSITORY} matches {pattern}")
        files.extend(matched)
    return files


def readme(wheel: Path) -> str:
    version = wheel.name.split("-")[1]
    text = (REPOSITORY / README_TEMPLATE).read_text()
    return text.replace("@VERSION@", version).replace("@WHEEL@", wheel.name)


def write_zip(path: Path, wheel: Path) -> None:
    """``workflow-orchestrator.zip``: the release folder; executables get mode 0755, the rest
    0644, whatever the checkout's umask made of them."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for source in release_files():
            executable = bool(source.stat().st_mode & 0o111)
            add(archive, source.relative_to(REPOSITORY).as_posix(), source.read_bytes(), executable)
        add(archive, wheel.name, wheel.read_bytes(), executable=False)
        add(archive, "README.md", readme(wheel).encode(), executable=False)


def add(archive: zipfile.ZipFile, name: str, data: bytes, executable: bool) -> None:
    info = zipfile.ZipInfo(f"{TOP}/{name}", date_time=time.localtime()[:6])
    info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the sdist, the wheel and workflow-orchestrator.zip into a folder."
    )
    parser.add_argument("--outdir", type=Path, default=REPOSITORY / "dist", help="default: dist/")
    args = parser.parse_args(argv)
    outdir: Path = args.outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    _, wheel = build_distributions(outdir)
    write_zip(outdir / ZIP_NAME, wheel)
    print(f"built {outdir / ZIP_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
