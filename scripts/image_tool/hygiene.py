"""Nothing of the build host in an image: its files and environment are read from the local store and checked
for the host's own CA certificates, pip configuration, index URLs and credentials, for source trees beyond the
installed package, and for files the non-root user owns outside /tmp."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts.image_tool.engines import buildah, run

WORKER_UID = 10001
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")  # where a host's own (proxy, corporate) CAs are added
PIP_CONFIGS = ("etc/pip.conf", "etc/xdg/pip", "root/.config/pip", "root/.pip", "tmp/.config/pip", "opt/venv/pip.conf")
CREDENTIAL_FILES = ("root/.aws", "tmp/.aws", "root/.cache/huggingface/token", "root/.netrc", "root/.docker")
SOURCE_MARKERS = ("pyproject.toml", "Dockerfile", ".git")
FORBIDDEN_ENV = re.compile(
    r"^(PIP_(INDEX_URL|EXTRA_INDEX_URL|CERT|FIND_LINKS|CONSTRAINT)|AWS_.*|HF_TOKEN|.*CA_BUNDLE)$"
)
TEXT_SUFFIXES = (".crt", ".pem", ".conf", ".cfg", ".ini", ".txt", ".json", ".toml")
MAX_TEXT_BYTES = 2_000_000


@contextmanager
def mounted(tag: str) -> Iterator[Path]:
    container = run(buildah("from", "--pull-never", tag)).strip()
    try:
        yield Path(run(buildah("mount", container)).strip())
    finally:
        run(buildah("umount", container), check=False)
        run(buildah("rm", container), check=False)


def _pem_bodies(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S)
    return {"".join(block.split()) for block in blocks}


def _pip_places() -> set[str]:
    """The host's package sources as pip sees them: index URLs, local wheel folders, constraint files."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    places: set[str] = set()
    for line in listing.splitlines():
        key, _, value = line.partition("=")
        if key.rsplit(".", 1)[-1] in ("index-url", "extra-index-url", "find-links", "constraint"):
            places |= set(value.strip("'\"").split())
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT"):
        places |= set(os.environ.get(name, "").split())
    return {place.removeprefix("file://") for place in places if len(place) > 4}


def host_markers() -> tuple[set[str], set[str]]:
    """(the host's own CA certificates, the host's package sources) to look for in the image."""
    certs: set[str] = set()
    if HOST_CA_DIR.is_dir():
        for path in HOST_CA_DIR.rglob("*.crt"):
            certs |= _pem_bodies(path)
    return certs, _pip_places()


def _text_files(root: Path) -> Iterator[Path]:
    for top in ("etc", "usr/local/share", "usr/share/ca-certificates", "opt", "root", "tmp", "run"):
        base = root / top
        if not base.exists():
            continue
        for path in base.rglob("*"):
            wanted = path.suffix in TEXT_SUFFIXES and path.is_file() and not path.is_symlink()
            if wanted and path.stat().st_size <= MAX_TEXT_BYTES:
                yield path


def problems(tag: str) -> list[str]:
    """What of the build host (or of the build) the image carries; empty when it is clean."""
    found: list[str] = []
    config = json.loads(run(buildah("inspect", "--type", "image", tag)))["OCIv1"]["config"]
    for entry in config.get("Env", []):
        name = entry.split("=", 1)[0]
        if FORBIDDEN_ENV.match(name):
            found.append(f"environment: {name} is set")
    host_certs, host_places = host_markers()
    with mounted(tag) as root:
        for relative in (*PIP_CONFIGS, *CREDENTIAL_FILES):
            if (root / relative).exists() or (root / relative).is_symlink():
                found.append(f"/{relative} exists")
        if (root / "mnt").is_dir() and any((root / "mnt").iterdir()):
            found.append("/mnt is not empty (the build's read-only mount of pip settings left something)")
        for path in _text_files(root):
            text = path.read_text(encoding="utf-8", errors="replace")
            if host_certs and "BEGIN CERTIFICATE" in text and _pem_bodies(path) & host_certs:
                found.append(f"{path.relative_to(root)}: carries a CA certificate of the build host")
            for place in host_places:
                if place in text:
                    found.append(f"{path.relative_to(root)}: names the build host's {place}")
        for marker in SOURCE_MARKERS:
            for hit in (root / "src", root / "build", root / "opt" / "f5-worker"):
                if (hit / marker).exists():
                    found.append(f"/{(hit / marker).relative_to(root)}: a source tree in the image")
        packages = [p.parent for p in root.glob("opt/venv/lib/python3*/site-packages/consumer/worker/job.py")]
        copies = [p for p in root.rglob("consumer/worker/job.py") if p.parent not in packages]
        found += [f"/{p.relative_to(root)}: a copy of the source beside the installed package" for p in copies]
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            if here == root / "tmp":
                dirnames[:] = []
                continue
            for name in (*dirnames, *filenames):
                path = here / name
                if path.lstat().st_uid == WORKER_UID:
                    found.append(f"/{path.relative_to(root)}: owned by the worker's uid {WORKER_UID} (outside /tmp)")
    return found
