"""scripts/image's pieces that need no container tools: the pip settings a build may see, and the build arguments
that make the Dockerfile build on the stand-in bases."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from scripts.image_tool.build import PIP_MOUNT, ModelSource, api_build, pip_mounts, runtime_build
from tests.paths import REPO


def test_only_the_ca_and_index_reach_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = tmp_path / "host-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv("PIP_CERT", str(ca))
    monkeypatch.setenv("PIP_INDEX_URL", "https://index.example/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    monkeypatch.setenv("PIP_CONSTRAINT", "/etc/xdg/pip/constraints.txt")
    flags = pip_mounts(tmp_path / "work")
    directory = tmp_path / "work" / "pip"
    assert flags == ["-v", f"{directory}:{PIP_MOUNT}:ro"]
    conf = configparser.ConfigParser()
    conf.read(directory / "pip.conf")
    assert dict(conf["global"]) == {"cert": f"{PIP_MOUNT}/ca.crt", "index-url": "https://index.example/simple"}
    assert (directory / "ca.crt").read_bytes() == ca.read_bytes()
    assert sorted(p.name for p in directory.iterdir()) == ["ca.crt", "pip.conf"]  # no wheel folder, no constraints


def test_a_local_file_index_stays_on_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "file:///opt/pypi/simple")
    pip_mounts(tmp_path)
    assert "index-url" not in (tmp_path / "pip" / "pip.conf").read_text()


def test_every_stage_that_runs_pip_reads_the_mounted_configuration() -> None:
    stages = (REPO / "Dockerfile").read_text(encoding="utf-8").split("\nFROM ")
    for stage in stages[1:]:
        name = stage.split("\n", 1)[0]
        reaches_an_index = any(
            ("pip install" in line or "pip wheel" in line) and "--no-index" not in line for line in stage.splitlines()
        )
        if reaches_an_index:
            assert "\nARG PIP_CONFIG_FILE\n" in stage, name
    model = ModelSource(Path("/models/tiny"), "ab" * 32)
    for build in (runtime_build(model), api_build()):
        assert build.args["PIP_CONFIG_FILE"] == f"{PIP_MOUNT}/pip.conf"
    runtime = runtime_build(model)
    assert runtime.args["FLASH_ATTN_WHEEL"] == "none" and runtime.args["MODEL_SHA256"] == model.sha256
    assert runtime.contexts == {"model-src": model.directory}
    argv = runtime.argv(["-v", "x:/mnt:ro"])
    assert argv[-1] == str(REPO) and "--layers" in argv and f"MODEL_SHA256={model.sha256}" in argv
