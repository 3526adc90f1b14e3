"""Stand-in base images, made from Debian's packages with debootstrap (no registry is reachable here) and kept
in the local store: a second run reuses them. Each one's labels say which official base it stands in for and why.

One Debian 12 root filesystem serves both: it has what the official bases offer the Dockerfile (a Python with
venv for the API stage, as python:slim has; apt for the runtime's base stage, as nvidia/cuda has). Differences
that matter: Python 3.11 instead of 3.12 (the build argument PYTHON says which), and no CUDA libraries (this
machine has no GPU; torch brings its own CUDA runtime wheels and runs on the CPU here)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scripts.image_tool.engines import buildah, image_exists, run

VERSION = "1"  # bump when the recipe changes: cached stand-ins are rebuilt
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
REASON = "no container registry is reachable here; Debian 12 minbase from Debian's packages (debootstrap)"


@dataclass(frozen=True)
class StandIn:
    tag: str
    stands_in_for: str
    python: str  # the PYTHON build argument on this base


CUDA = StandIn("localhost/f5-standin-cuda:bookworm", "nvidia/cuda:12.8.1-base-ubuntu24.04", "python3.11")
PYTHON_SLIM = StandIn("localhost/f5-standin-python:bookworm", "python:3.12.8-slim-bookworm", "python3.11")
STAND_INS = (CUDA, PYTHON_SLIM)


def _current(stand_in: StandIn) -> bool:
    if not image_exists(stand_in.tag):
        return False
    labels = run(
        buildah(
            "inspect", "--type", "image", "--format", "{{.ImageAnnotations}} {{.Docker.Config.Labels}}", stand_in.tag
        )
    )
    return f"org.f5-worker.stand-in.version:{VERSION}" in labels


def ensure_bases(log: Path) -> list[str]:
    """Make the stand-ins that are missing or stale; the tags made (empty: all were cached)."""
    stale = [s for s in STAND_INS if not _current(s)]
    if not stale:
        return []
    work = Path(tempfile.mkdtemp(prefix="f5-standin-"))
    try:
        rootfs = work / "rootfs"
        include = ",".join(PACKAGES)
        run(["debootstrap", "--variant=minbase", f"--include={include}", SUITE, str(rootfs), MIRROR], log=log)
        for stand_in in stale:
            container = run(buildah("from", "scratch")).strip()
            try:
                mount = run(buildah("mount", container)).strip()
                run(["cp", "-a", f"{rootfs}/.", mount])
                run(buildah("umount", container))
                run(
                    buildah(
                        "config",
                        "--label",
                        f"org.f5-worker.stand-in-for={stand_in.stands_in_for}",
                        "--label",
                        f"org.f5-worker.stand-in.reason={REASON}",
                        "--label",
                        f"org.f5-worker.stand-in.version={VERSION}",
                        "--env",
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "--cmd",
                        "/bin/bash",
                        container,
                    )
                )
                run(buildah("commit", "--quiet", container, stand_in.tag))
            finally:
                run(buildah("rm", container), check=False)
        return [s.tag for s in stale]
    finally:
        shutil.rmtree(work, ignore_errors=True)
