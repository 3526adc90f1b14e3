"""The Dockerfile built and run on this machine (`bash scripts/image`): both targets from the stand-in bases, the
refused bad build arguments, nothing of the build host in either image, and the images run as RunPod runs them
(uid 10001, read-only root, loopback-only network): health before and after ready, a job end to end, SIGTERM in
the middle of a job, two workers in one container, the API image. Where buildah cannot run (no tools, not root),
skipped with the reason; CI installs the tools (.ci/run) and runs it on its own after the suite (scripts/test)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.paths import REPO

pytestmark = pytest.mark.image

NEEDED = ("buildah", "podman", "runc", "debootstrap", "ip")
SUMMARY = re.compile(
    r"^image: runtime_mb=(\d+) api_mb=(\d+) build_s=(\d+) ready_s=([\d.]+) job=ok sigterm=ok multi_gpu=ok$"
)


def _cannot_build() -> str | None:
    if os.geteuid() != 0:
        return "building images here needs root (chroot builds, network namespaces)"
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install buildah podman runc debootstrap iproute2; .ci/run does)"
    return None


skip_without_tools = pytest.mark.skipif(_cannot_build() is not None, reason=_cannot_build() or "")


@skip_without_tools
def test_the_hygiene_check_finds_what_a_careless_build_leaves(tmp_path: Path) -> None:
    """The checker behind "nothing of the build host in the image" sees each kind of leak in a scratch image."""
    from scripts.image_tool.engines import buildah, run
    from scripts.image_tool.hygiene import HOST_CA_DIR, problems

    container = run(buildah("from", "scratch")).strip()
    tag = "localhost/f5-worker-leaky:test"
    try:
        root = Path(run(buildah("mount", container)).strip())
        (root / "etc").mkdir()
        (root / "etc" / "pip.conf").write_text("[global]\nfind-links = /opt/wheels\n")
        (root / "src").mkdir()
        (root / "src" / "pyproject.toml").write_text("[project]\n")
        owned = root / "opt" / "f5-worker" / "model"
        owned.mkdir(parents=True)
        os.chown(owned, 10001, 10001)
        host_cas = sorted(HOST_CA_DIR.glob("*.crt")) if HOST_CA_DIR.is_dir() else []
        if host_cas:
            (root / "etc" / "ca.pem").write_bytes(host_cas[0].read_bytes())
        run(buildah("umount", container))
        run(buildah("config", "--env", "PIP_INDEX_URL=https://user:secret@index.example/simple", container))
        run(buildah("commit", "--quiet", container, tag))
        found = "\n".join(problems(tag))
    finally:
        run(buildah("rm", container), check=False)
        run(buildah("rmi", "--force", tag), check=False)
    assert "PIP_INDEX_URL is set" in found
    assert "/etc/pip.conf exists" in found and "etc/pip.conf: names the build host's /opt/wheels" in found
    assert "/src/pyproject.toml: a source tree in the image" in found
    assert "/opt/f5-worker/model: owned by the worker's uid 10001" in found
    if host_cas:
        assert "etc/ca.pem: carries a CA certificate of the build host" in found


@skip_without_tools
@pytest.mark.timeout(3000)  # a cold build downloads torch and its CUDA wheels (about 3 GB) and commits 9 GB
def test_the_images_build_and_run_as_runpod_would_run_them() -> None:
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "image")], cwd=REPO, capture_output=True, text=True, timeout=3000, check=False
    )
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0 and SUMMARY.match(last), result.stdout[-2000:] + result.stderr[-6000:]
    runtime_mb, api_mb, _build_s, ready_s = (float(g) for g in SUMMARY.match(last).groups())  # type: ignore[union-attr]
    assert api_mb < runtime_mb / 10  # the API image has no torch
    assert 0 < ready_s < 300
    for refused in ("no MODEL_SHA256", "a wrong MODEL_SHA256", "model-src without a checkpoint", "FLASH_ATTN_WHEEL"):
        assert f"refused {refused}" in result.stderr or f"refused an unknown {refused}" in result.stderr, refused
    assert "carries nothing of the build host" in result.stderr
