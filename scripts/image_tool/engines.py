"""The container tools, as they work on a root shell without a Docker engine: buildah builds, podman runs, both
on the same `overlay` store. Two settings come from what such sandboxes allow, not from taste:

- podman runs containers with `runc`: crun refuses cgroup v1/v2 hybrid hosts ("cgroups in hybrid mode").
- every container gets explicit `--ulimit`s at or under this process's own: podman's defaults try to raise
  RLIMIT_NOFILE/NPROC, which a process without CAP_SYS_RESOURCE may not do.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

STORAGE = ["--storage-driver", "overlay"]
NEEDED = ("buildah", "podman", "runc", "debootstrap", "ip")
_NO_CNI = Path(tempfile.gettempdir()) / "f5-image-no-cni"  # no bridge networks: containers join a given netns


# A container tool that fails raises RuntimeError naming the command and its last output lines.
ToolError = RuntimeError


def missing_tools() -> list[str]:
    return [tool for tool in NEEDED if shutil.which(tool) is None]


def run(argv: Sequence[str], *, check: bool = True, timeout: float | None = None, log: Path | None = None) -> str:
    """Run a tool; its combined output, written to `log` as it comes when one is given (a build's progress can
    be followed with `tail -f`). A failure raises ToolError with the last lines."""
    if log is None:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
        output, status = result.stdout + result.stderr, result.returncode
    else:
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"$ {' '.join(argv)}\n")
            handle.flush()
            start = handle.tell()
            status = subprocess.run(
                list(argv), stdout=handle, stderr=subprocess.STDOUT, timeout=timeout, check=False
            ).returncode
        with log.open(encoding="utf-8", errors="replace") as handle:
            handle.seek(start)
            output = handle.read()
    if check and status != 0:
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise ToolError(f"{' '.join(argv[:4])} ... exited {status}:\n{tail}")
    return output


def buildah(*args: str) -> list[str]:
    return ["buildah", *STORAGE, *args]


def podman(*args: str) -> list[str]:
    """A podman command. From inside `ip netns exec` (the run checks), it runs back in the namespaces of the
    process named by F5_IMAGE_HOST_PID: podman and runc need the host's cgroup mounts, which `ip netns exec`
    hides, and runc refuses a container's network namespace that is its own."""
    _NO_CNI.mkdir(exist_ok=True)
    host = os.environ.get("F5_IMAGE_HOST_PID")
    escape = ["nsenter", "--target", host, "--mount", "--net", "--"] if host else []
    return [*escape, "podman", *STORAGE, "--runtime", "runc", "--cni-config-dir", str(_NO_CNI), *args]


def ulimits() -> list[str]:
    """`--ulimit` flags no higher than this process's own limits (raising them needs CAP_SYS_RESOURCE)."""
    flags: list[str] = []
    for name, limit in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        soft, hard = resource.getrlimit(limit)
        cap = 4096 if name == "nproc" else 65536
        value = min(v for v in (soft, hard, cap) if v != resource.RLIM_INFINITY)
        flags += ["--ulimit", f"{name}={value}:{value}"]
    return flags


def image_exists(tag: str) -> bool:
    return subprocess.run(buildah("inspect", "--type", "image", tag), capture_output=True, check=False).returncode == 0


def dangling_images() -> set[str]:
    """IDs of the untagged images in the store: a build's stage caches (`--layers`) and what earlier builds left."""
    return set(run(buildah("images", "--filter", "dangling=true", "--quiet", "--no-trunc")).split())


def remove_images(ids: set[str]) -> None:
    """Remove images; layers that newer images still use stay (buildah keeps what is referenced)."""
    for image_id in ids:
        run(buildah("rmi", image_id), check=False)


def image_size_mb(tag: str) -> int:
    """The image's size in the local store (all layers, uncompressed), in MB."""
    size = run(podman("image", "inspect", "--format", "{{.Size}}", tag)).strip()
    return round(int(size) / 1e6)
