"""Podman for the container tests: images built here from Debian's ``busybox-static`` (no
registry is reachable), and the CLI environment the adapter runs podman with.

The images stand in for the ones the official examples name: ``localhost/hello-world`` (its
default command prints a greeting as Docker's does) and ``localhost/alpine`` (``/bin/sh``);
podman resolves the short names ``hello-world`` and ``alpine`` to them without a registry.
Both are a root filesystem of busybox and its applets, imported with ``podman import``.

The tests' own ``containers.conf`` (``CONTAINERS_CONF`` in that environment) adapts podman to
machines such as CI's: the default limits podman asks for are the ones this process has (root
without CAP_SYS_RESOURCE cannot raise them), and runc is the OCI runtime when installed (crun
refuses hosts with cgroup v1 and v2 controllers mixed). The product sets none of this: it
runs podman as the operator configured it.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import attrs

from tests.support.services import unavailable
from workflow_orchestrator.adapters.containers import LABEL, cli_environment

HELLO_WORLD = "localhost/hello-world:latest"
ALPINE = "localhost/alpine:latest"
GREETING = "Hello from Docker!"
_HELLO = f"""#!/bin/sh
echo
echo "{GREETING}"
echo "This message shows that your installation appears to be working correctly."
"""


@attrs.frozen(kw_only=True)
class Podman:
    """Podman with the test images: ``binary`` and the CLI ``environment`` to run it with."""

    binary: str
    environment: Mapping[str, str]

    def run(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``podman ARGUMENTS`` in the tests' environment."""
        result = subprocess.run(
            [self.binary, *arguments],
            env=dict(self.environment),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(arguments[:3])} failed ({result.returncode}): {result.stderr}"
            )
        return result

    def labelled(self, label: str) -> list[dict[str, object]]:
        """``container inspect`` of every container (running or not) carrying ``label``
        (``key`` or ``key=value``)."""
        ids = self.run("ps", "-a", "-q", "--no-trunc", "--filter", f"label={label}").stdout.split()
        if not ids:
            return []
        result = self.run("container", "inspect", *ids, check=False)
        return list(json.loads(result.stdout or "[]"))

    def remove_labelled(self, labels: Iterable[str]) -> None:
        """Remove the containers carrying any of ``labels``."""
        for label in labels:
            ids = self.run("ps", "-a", "-q", "--filter", f"label={label}").stdout.split()
            if ids:
                self.run("rm", "-f", "-t", "0", *ids, check=False)

    def exists(self, name: str) -> bool:
        """Whether a container named ``name`` exists."""
        return self.run("container", "exists", name, check=False).returncode == 0


def _root_filesystem(into: Path, busybox: str) -> Path:
    """A tar of a root filesystem with busybox, its applets and ``/hello``."""
    root = into / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    for folder in ("tmp", "etc", "proc", "sys", "dev"):
        (root / folder).mkdir()
    (root / "hello").write_text(_HELLO)
    (root / "hello").chmod(0o755)
    archive = into / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted(root.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def containers_conf(into: Path) -> Path:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    processes = 4096 if nproc == resource.RLIM_INFINITY else min(4096, nproc)
    lines = [
        "[containers]",
        f'default_ulimits = ["nofile={soft}:{hard}", "nproc={processes}:{processes}"]',
    ]
    if shutil.which("runc"):
        lines += ["[engine]", 'runtime = "runc"']
    path = into / "containers.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def static_busybox() -> str:
    """Debian's static busybox (package ``busybox-static``)."""
    busybox = shutil.which("busybox")
    if busybox is None:
        unavailable("busybox is not installed; install Debian's busybox-static")
        raise AssertionError("unreachable")
    # A dynamically linked program names its loader (PT_INTERP); a static one does not.
    if b"ld-linux" in Path(busybox).read_bytes()[:8192]:
        unavailable(f"{busybox} is not statically linked; install Debian's busybox-static")
    return busybox


def build_images(podman: Podman, folder: Path) -> None:
    """Import the test images into ``podman``'s storage, unless images of the same content
    (a label holds its hash) are there already: runs do not pile up old images."""
    busybox = static_busybox()
    digest = hashlib.sha256(Path(busybox).read_bytes() + _HELLO.encode()).hexdigest()[:24]
    archive: Path | None = None
    for image, command in ((HELLO_WORLD, '["/hello"]'), (ALPINE, '["/bin/sh"]')):
        present = podman.run(
            "image", "inspect", "--format", "{{index .Config.Labels \"wo-test-rootfs\"}}", image,
            check=False,
        )  # fmt: skip
        if present.returncode == 0 and present.stdout.strip() == digest:
            continue
        archive = archive or _root_filesystem(folder, busybox)
        podman.run(
            "import", "--quiet", "--change", f"CMD {command}",
            "--change", f"LABEL wo-test-rootfs={digest}", str(archive), image,
        )  # fmt: skip


@contextmanager
def open_podman() -> Iterator[Podman]:
    """Podman with the test images built (see the module docstring); containers the tests
    left behind are removed at the end."""
    binary = shutil.which("podman")
    if binary is None:
        unavailable("podman is not installed; install Debian's podman (and runc)")
        raise AssertionError("unreachable")
    with tempfile.TemporaryDirectory(prefix="wo-podman-") as folder:
        environment = {
            **cli_environment(os.environ),
            "CONTAINERS_CONF": str(containers_conf(Path(folder))),
        }
        podman = Podman(binary=binary, environment=environment)
        build_images(podman, Path(folder))
        probe = podman.run("run", "--rm", "--network", "none", HELLO_WORLD, check=False)
        if GREETING not in probe.stdout:
            unavailable(f"podman cannot run containers here: {probe.stderr.strip()}")
        try:
            yield podman
        finally:
            podman.remove_labelled([f"{LABEL}.namespace=test", f"{LABEL}.namespace="])
